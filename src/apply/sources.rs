//! Where the fuse-overlayfs binary comes from (a node file, a download cached on the node, or
//! the package), read and checked against its pinned checksum before anything changes.

use super::*;

/// Reads the source facts (fuse-overlayfs on the node) and refuses a binary whose checksum is
/// not the pinned one, before anything is changed.
pub fn gather_sources(
    node: &dyn Transport,
    nf: &NodeFacts,
    p: &crate::profile::Profile,
    driver: Option<Driver>,
) -> Result<(SourceFacts, Vec<Step>)> {
    if driver != Some(Driver::FuseOverlayfs) {
        return Ok((SourceFacts::default(), vec![]));
    }
    let (path, pinned, url) = match &p.docker.fuse_overlayfs {
        FuseSource::Package => return Ok((SourceFacts::default(), vec![])),
        FuseSource::Node { path, sha256 } => (path.clone(), sha256.clone(), None),
        FuseSource::Url { url, sha256 } => (
            plan::fuse_cache_path(sha256),
            Some(sha256.clone()),
            Some(url.clone()),
        ),
    };
    let out = node.run(&Cmd::new("sha256sum").arg(&path), None);
    let have = match out {
        Ok(o) if o.success() => o.stdout_text().split_whitespace().next().map(String::from),
        Ok(_) => None,
        Err(e) if !nf.pve => {
            tracing::debug!("no sha256sum here: {e:#}");
            None
        }
        Err(e) => return Err(e),
    };
    match (have, url) {
        (Some(h), url) => {
            if let Some(want) = &pinned
                && &h != want
            {
                if url.is_some() {
                    bail!(
                        "the cached download {path} on the node has SHA-256 {h}, not the {want} it was kept for: it was changed after the download; refusing to push it. Remove the file and run again to download it anew"
                    );
                }
                bail!(
                    "{} on the node has SHA-256 {h}, but the profile pins {want}: refusing to push a binary that is not the one asked for",
                    path
                );
            }
            Ok((
                SourceFacts {
                    fuse_sha256: Some(h),
                    fuse_present: true,
                },
                vec![],
            ))
        }
        (None, Some(url)) => {
            let sha = pinned.unwrap_or_default();
            Ok((
                SourceFacts {
                    fuse_sha256: Some(sha.clone()),
                    fuse_present: false,
                },
                vec![Step::FetchFuseOverlayfs { url, sha256: sha }],
            ))
        }
        (None, None) if nf.pve => bail!(
            "the fuse-overlayfs binary {path} does not exist on the node; put it there, or set docker.fuse_overlayfs.source = \"package\" (or \"url\" with a sha256)"
        ),
        (None, None) => Ok((
            SourceFacts {
                fuse_sha256: pinned,
                fuse_present: false,
            },
            vec![],
        )),
    }
}
