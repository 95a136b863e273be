//! `provision image build|list|prune`: the images of given profiles and lab-file entries on
//! one node.
//!
//! How prune decides: an image is kept when one of the given profiles or `image = "auto"`
//! entries would be made from it on this node now (same content hash); every other image this
//! tool built (`provision-docker-<12 hex>_amd64.tar.zst`) is removed with `pvesm free`.
//! Containers made from an image do not need it any more (a create copies it), so they never
//! pin one. Templates with any other name are never touched.

use super::*;
use serde::Serialize;

/// An image some profile or entry wants.
#[derive(Clone, Debug)]
pub struct Want {
    /// Who wants it: `profile P` or `FILE (container[i], NAME)`.
    pub by: String,
    /// The request it is built from.
    pub req: Request,
    /// The image.
    pub spec: ImageSpec,
}

/// One image in a listing.
#[derive(Clone, Debug, Serialize)]
pub struct ImageRow {
    /// File name.
    pub name: String,
    /// Volume id.
    pub volid: String,
    /// Size as `pveam list` prints it (None: not on the node).
    pub size: Option<String>,
    /// Who uses it (among the given profiles and entries).
    pub used_by: Vec<String>,
    /// `present`, `missing`, `built`, `removed`, `would be removed`.
    pub status: String,
}

/// The images the given requests want on this node, grouped by image.
pub fn wants(ctx: &Ctx, nf: &NodeFacts, reqs: &[(String, Request)]) -> Result<Vec<Want>> {
    let mut out: Vec<Want> = Vec::new();
    for (by, req) in reqs {
        let mut r = req.clone();
        r.profile.image = ImageMode::Auto;
        if !wanted(&r) {
            bail!(
                "{by}: docker.install = {:?} has no image (only distro and docker-ce are built into images)",
                r.profile.docker.install.as_str()
            );
        }
        let spec = spec_of(ctx, &r, nf)?
            .ok_or_else(|| anyhow!("{by}: no image can be planned for it on this node"))?;
        out.push(Want {
            by: by.clone(),
            req: r,
            spec,
        });
    }
    Ok(out)
}

/// Images on `storage` that this tool built: (volid, size text).
pub fn on_node(node: &dyn Transport, storage: &str) -> Result<Vec<(String, String)>> {
    let out = run_ok(node, &Cmd::new("pveam").args(["list", storage]), None)?;
    Ok(out
        .stdout_text()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let volid = w.next()?;
            let size = w.next().unwrap_or("").to_string();
            (volid.starts_with(&format!("{storage}:vztmpl/")) && plan::image_of(volid).is_some())
                .then(|| (volid.to_string(), size))
        })
        .collect())
}

/// Every image of `storages` on the node and every wanted one, with its users.
pub fn list(node: &dyn Transport, storages: &[String], wants: &[Want]) -> Result<Vec<ImageRow>> {
    let mut rows: Vec<ImageRow> = Vec::new();
    for s in storages {
        for (volid, size) in on_node(node, s)? {
            rows.push(ImageRow {
                name: plan::image_of(&volid).unwrap_or_default().to_string(),
                volid,
                size: Some(size),
                used_by: Vec::new(),
                status: "present".into(),
            });
        }
    }
    for w in wants {
        match rows.iter_mut().find(|r| r.volid == w.spec.volid) {
            Some(r) => r.used_by.push(w.by.clone()),
            None => rows.push(ImageRow {
                name: w.spec.name.clone(),
                volid: w.spec.volid.clone(),
                size: None,
                used_by: vec![w.by.clone()],
                status: "missing".into(),
            }),
        }
    }
    Ok(rows)
}

/// Removes the images on `storages` that no want uses (or says it would, for a dry run), and
/// checks with `pveam list` that they are gone.
pub fn prune(
    node: &dyn Transport,
    storages: &[String],
    wants: &[Want],
    dry_run: bool,
) -> Result<Vec<ImageRow>> {
    let mut rows = list(node, storages, wants)?;
    for r in rows
        .iter_mut()
        .filter(|r| r.used_by.is_empty() && r.status == "present")
    {
        if dry_run {
            r.status = "would be removed".into();
            continue;
        }
        run_ok(node, &Cmd::new("pvesm").args(["free", &r.volid]), None)?;
        r.status = "removed".into();
    }
    if !dry_run {
        for s in storages {
            let left = on_node(node, s)?;
            if let Some(r) = rows
                .iter()
                .find(|r| r.status == "removed" && left.iter().any(|(v, _)| v == &r.volid))
            {
                bail!("`pvesm free {}` did not remove it", r.volid);
            }
        }
    }
    Ok(rows)
}
