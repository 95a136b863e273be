//! `provision profiles [show NAME]`.

use super::{json, overrides_layer, print_json};
use crate::cli::{GlobalArgs, ProfilesCmd};
use crate::profile;
use anyhow::Result;

/// Lists profiles or shows one resolved.
pub fn run(action: &Option<Box<ProfilesCmd>>, g: &GlobalArgs) -> Result<u8> {
    match action.as_deref() {
        None => {
            let list = profile::list_profiles();
            if json(g) {
                print_json(&list)?;
            } else {
                let w = list.iter().map(|p| p.name.len()).max().unwrap_or(4);
                for p in &list {
                    crate::outln!(
                        "{:<w$}  {:<10}  {}",
                        p.name,
                        if p.origin == "embedded" {
                            "embedded"
                        } else {
                            "file"
                        },
                        p.description
                    );
                    if p.origin != "embedded" {
                        crate::outln!("{:<w$}  {:<10}  ({})", "", "", p.origin);
                    }
                }
            }
        }
        Some(ProfilesCmd::Show { name, overrides }) => {
            let p = profile::load_as(name, "profiles show NAME", &overrides_layer(overrides))?;
            if json(g) {
                print_json(&p)?;
            } else {
                crate::outln!("# profile {name}, resolved (extends and overrides applied)");
                crate::outln!("# from: {}", p.sources);
                for w in &p.warnings {
                    crate::outln!("# note: {w}");
                }
                crate::out!("{}", p.to_toml());
            }
        }
    }
    Ok(0)
}
