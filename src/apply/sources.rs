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
    let have = node_file_sha256(node, nf, &path)?;
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

/// The SHA-256 of the node file `path` that is to be pushed as fuse-overlayfs, after the node
/// checked that it may be ([`plan::NODE_FUSE_CHECK_SCRIPT`]); `None` when it does not exist.
/// The node's answer is untrusted: anything but 64 hex digits is refused.
fn node_file_sha256(node: &dyn Transport, nf: &NodeFacts, path: &str) -> Result<Option<String>> {
    let out = match node.run(&plan::node_fuse_check(path), None) {
        Ok(o) => o,
        Err(e) if !nf.pve => {
            tracing::debug!("cannot check {path} here: {e:#}");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    match out.status {
        0 => {
            let text = out.stdout_text();
            let sum = text.split_whitespace().last().unwrap_or("");
            if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "the node's SHA-256 of {path} is not 64 hex digits (it answered {:?}): refusing to push it",
                    crate::transport::short(&crate::error::escape_unsafe(sum))
                );
            }
            Ok(Some(sum.to_ascii_lowercase()))
        }
        3 => Ok(None),
        // No shell tools here (a machine that is not a node): planned as if it were missing.
        _ if !nf.pve && out.status != 65 => Ok(None),
        status => {
            let why = out.stderr_text();
            let why: String = why.lines().next().unwrap_or("").chars().take(500).collect();
            if why.trim().is_empty() {
                bail!("the node refused {path} as fuse-overlayfs (status {status})");
            }
            bail!("{}", crate::error::escape_unsafe(why.trim()))
        }
    }
}
