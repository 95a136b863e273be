//! Which template a profile means: short names (`ubuntu-24.04`) resolved against what the
//! storage holds and the index offers, newest version first.

use super::*;

/// Splits a version-ish string into comparable chunks (numbers compare as numbers).
fn natural_key(s: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut num = String::new();
    let mut txt = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !txt.is_empty() {
                out.push((0, std::mem::take(&mut txt)));
            }
            num.push(c);
        } else {
            if !num.is_empty() {
                out.push((num.parse().unwrap_or(0), String::new()));
                num.clear();
            }
            txt.push(c);
        }
    }
    if !num.is_empty() {
        out.push((num.parse().unwrap_or(0), String::new()));
    }
    if !txt.is_empty() {
        out.push((0, txt));
    }
    out
}

/// The newest template name for a short form like `ubuntu-24.04` among `names`.
pub fn newest_match<'a>(short: &str, names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let prefix = format!("{short}-standard_");
    names
        .into_iter()
        .map(|n| n.rsplit('/').next().unwrap_or(n))
        .filter(|n| n.starts_with(&prefix) && n.contains("_amd64.tar."))
        .max_by_key(|n| natural_key(n))
        .map(String::from)
}

pub use crate::profile::UBUNTU_LTS;

/// Where the template comes from: the volume id to create from, and the steps to get it.
/// A template whose guest version the node's pve-container refuses at create is refused here,
/// before any change, with the reason and the fix.
pub fn resolve_template(
    p: &Profile,
    tf: &TemplateFacts,
    caps: &Caps,
    notes: &mut Vec<String>,
) -> Result<(String, Vec<Step>)> {
    let (volid, steps) = resolve_template_name(p, tf, caps, notes)?;
    if let Some(guest) = GuestOs::from_template(&volid)
        && let Some(refusal) = caps.guest_refusal(&guest)
    {
        let offered: Vec<String> = tf.available.iter().chain(&tf.present).cloned().collect();
        let alternative = newest_accepted_ubuntu_lts(caps, &offered)
            .map(|n| format!(" (here: {})", n.rsplit('/').next().unwrap_or(n)))
            .unwrap_or_default();
        return Err(InputError {
            file: format!("profile {}", p.name),
            line: 0,
            col: 0,
            field: "template".into(),
            message: format!(
                "{volid}: this node's {} refuses it at create (\"{refusal}\"); update pve-container on the node (apt update && apt full-upgrade), or use a template it accepts, e.g. template = \"{UBUNTU_LTS}\"{alternative}",
                caps.describe()
            ),
        }
        .into());
    }
    Ok((volid, steps))
}

fn resolve_template_name(
    p: &Profile,
    tf: &TemplateFacts,
    caps: &Caps,
    notes: &mut Vec<String>,
) -> Result<(String, Vec<Step>)> {
    if let Some((storage, rest)) = p.template.split_once(':') {
        let name = rest.trim_start_matches("vztmpl/").to_string();
        if tf.present.iter().any(|v| v == &p.template) {
            return Ok((p.template.clone(), vec![]));
        }
        if let Some(image) = p
            .from_image
            .as_deref()
            .filter(|_| image_of(&p.template).is_some())
        {
            return Ok((
                p.template.clone(),
                vec![Step::BuildImage {
                    name: image.to_string(),
                    storage: storage.to_string(),
                }],
            ));
        }
        return Ok((
            p.template.clone(),
            vec![Step::DownloadTemplate {
                storage: storage.to_string(),
                name,
            }],
        ));
    }
    let storage = &p.template_storage;
    let lts = p.template == UBUNTU_LTS;
    let newest = |names: &[String]| {
        if lts {
            newest_accepted_ubuntu_lts(caps, names)
                .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
        } else {
            newest_match(&p.template, names.iter().map(String::as_str))
        }
    };
    if let Some(name) = newest(&tf.available) {
        if lts {
            notes.push(format!(
                "{UBUNTU_LTS}: {name} is the newest Ubuntu LTS that this node's {} accepts",
                caps.describe()
            ));
        }
        let volid = format!("{storage}:vztmpl/{name}");
        if tf.present.iter().any(|v| v == &volid) {
            return Ok((volid, vec![]));
        }
        return Ok((
            volid,
            vec![Step::DownloadTemplate {
                storage: storage.clone(),
                name,
            }],
        ));
    }
    if let Some(name) = newest(&tf.present) {
        notes.push(format!(
            "the template index lists no {}; using the newest one already on {storage}: {name}",
            p.template
        ));
        return Ok((format!("{storage}:vztmpl/{name}"), vec![]));
    }
    if tf.available.is_empty() {
        // Never updated index (or no node at all): update it first; the real run resolves the
        // newest name after the update. The name shown is the newest one known when this
        // version of provision was released.
        let known = if lts {
            let names: Vec<String> = KNOWN_TEMPLATES.iter().map(|(_, n)| n.to_string()).collect();
            newest_accepted_ubuntu_lts(caps, &names).cloned()
        } else {
            KNOWN_TEMPLATES
                .iter()
                .find(|(short, _)| *short == p.template)
                .map(|(_, n)| n.to_string())
        };
        let Some(name) = known else {
            bail!(
                "the template index is empty and {:?} is not a short form provision knows; run `pveam update` on the node or give a volume id like local:vztmpl/NAME.tar.zst",
                p.template
            );
        };
        notes.push(format!(
            "the template index is empty: `pveam update` runs first; {name} is the newest {} known to this version, the run takes the newest the index offers",
            p.template
        ));
        return Ok((
            format!("{storage}:vztmpl/{name}"),
            vec![
                Step::UpdateTemplateIndex,
                Step::DownloadTemplate {
                    storage: storage.clone(),
                    name,
                },
            ],
        ));
    }
    let mut similar: Vec<&str> = tf
        .available
        .iter()
        .filter_map(|n| n.split("-standard_").next())
        .collect();
    similar.sort();
    similar.dedup();
    bail!(
        "no template matches {:?} in `pveam available`; short forms there: {}",
        p.template,
        similar.join(", ")
    )
}
