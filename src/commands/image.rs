//! `provision image build|list|prune [--profile P]... [FILE]`: the node-local images of
//! profiles and lab-file entries (see [`crate::image`]). One node: the local one, or --host.

use super::{json, open_node, print_json};
use crate::apply::Ctx;
use crate::cli::{GlobalArgs, ImageAction, ImageArgs};
use crate::error::{InputError, InputErrors};
use crate::facts;
use crate::image::{self, manage};
use crate::profile::{ImageMode, Layer};
use crate::progress::Line;
use crate::request::{Options, Request};
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct Out<'a> {
    action: &'a str,
    images: Vec<manage::ImageRow>,
}

/// The requests whose images count: the named profiles, and the lab file's entries that use
/// images. Input errors (exit 2) before the node is contacted.
fn requests(a: &ImageArgs) -> Result<Vec<(String, Request)>> {
    let mut reqs = Vec::new();
    for p in &a.profile {
        let profile = crate::profile::load(p, &Layer::default())?;
        reqs.push((
            format!("profile {p}"),
            Request {
                hostname: "provision-image-query".into(),
                vmid: None,
                profile,
            },
        ));
    }
    if let Some(f) = &a.file {
        let lab = crate::labfile::load(f, &Layer::default())?;
        for e in &lab.entries {
            if e.host.is_some() {
                return Err(InputErrors(vec![InputError::whole(
                    format!("{} ({})", lab.shown, e.field),
                    "host",
                    "`provision image` works on one node: run it with --host for that node",
                )])
                .into());
            }
            if e.request.profile.image == ImageMode::Auto {
                reqs.push((format!("{} ({})", lab.shown, e.name), e.request.clone()));
            }
        }
    }
    if reqs.is_empty() && a.action != ImageAction::List {
        return Err(InputErrors(vec![InputError::whole(
            "command line",
            "--profile",
            "name the profiles (--profile) or the lab file whose images to build or keep; prune removes only what none of them uses",
        )])
        .into());
    }
    Ok(reqs)
}

/// Runs `provision image`.
pub fn run(a: &ImageArgs, g: &GlobalArgs) -> Result<u8> {
    let reqs = requests(a)?;
    let node = open_node(g)?;
    let nf = facts::gather_node(node.as_ref())?;
    if !nf.pve {
        return Err(InputErrors(vec![InputError::whole(
            "node",
            "",
            "no Proxmox VE tools (pct, pvesh) answer on this machine; run on a PVE node or use --host",
        )])
        .into());
    }
    let ctx = Ctx::new(node.clone(), Options::default());
    let wants = manage::wants(&ctx, &nf, &reqs)?;
    let mut storages: Vec<String> = wants
        .iter()
        .map(|w| w.req.profile.template_storage.clone())
        .collect();
    if storages.is_empty() {
        storages.push("local".into());
    }
    storages.sort();
    storages.dedup();
    let (word, rows) = match a.action {
        ImageAction::List => ("list", manage::list(node.as_ref(), &storages, &wants)?),
        ImageAction::Prune => (
            "prune",
            manage::prune(node.as_ref(), &storages, &wants, g.dry_run)?,
        ),
        ImageAction::Build => ("build", build(&ctx, &nf, &storages, &wants, g.dry_run)?),
    };
    if json(g) {
        print_json(&Out {
            action: word,
            images: rows,
        })?;
    } else {
        for r in &rows {
            crate::outln!(
                "{:<48} {:>10}  {:<16} {}",
                r.name,
                r.size.as_deref().unwrap_or("-"),
                r.status,
                r.used_by.join(", ")
            );
        }
        if rows.is_empty() {
            crate::outln!("no images built by provision on {}", storages.join(", "));
        }
    }
    Ok(0)
}

/// Builds every wanted image that is missing, each once.
fn build(
    ctx: &Ctx,
    nf: &facts::NodeFacts,
    storages: &[String],
    wants: &[manage::Want],
    dry_run: bool,
) -> Result<Vec<manage::ImageRow>> {
    let mut rows = manage::list(ctx.node.as_ref(), storages, wants)?;
    for r in rows.iter_mut().filter(|r| r.status == "missing") {
        if dry_run {
            r.status = "would be built".into();
            continue;
        }
        let Some(w) = wants.iter().find(|w| w.spec.volid == r.volid) else {
            continue;
        };
        let (built, secs) =
            image::build_once(ctx, nf, &w.req, &w.spec, &Line::silent(&w.spec.name))?;
        r.status = if built {
            format!("built in {secs:.1} s")
        } else {
            "built meanwhile".into()
        };
    }
    Ok(rows)
}
