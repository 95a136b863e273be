//! Keeping data volumes through a destroy: PVE's `pct destroy` deletes every volume the
//! configuration names (mount points, unusedN, pending values), and `pct restore --force` over
//! the container does the same, so the one way PVE keeps a volume is to hand it to another
//! container first: `pct move-volume VMID KEY --target-vmid OTHER --target-volume KEY2`
//! (pve-container 4.1-2), which renames it for its new owner (`vm-OTHER-disk-N`). Pure.

use super::mounts::map_of;
use super::*;
use serde::Serialize;

/// One data volume handed to another container before the destroy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VolumeMove {
    /// Its key in the destroyed container (`mpN` or `unusedN`).
    pub key: String,
    /// Its volume id there.
    pub volume: String,
    /// Size as PVE records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// The mount path inside (mount points only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The container that keeps it.
    pub target_vmid: u32,
    /// Its key there: the same `mpN` when free, else the lowest free one; `unusedN` stays
    /// unused (PVE refuses moving an unused volume to a mount point).
    pub target_key: String,
    /// Its volume id once moved, read back from the target's configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_as: Option<String>,
}

impl VolumeMove {
    /// `mp0 local-lvm:vm-100-disk-1 (16G, /data) -> CT 101 mp0`, and the new id once moved.
    pub fn show(&self) -> String {
        let what: Vec<&str> = [self.size.as_deref(), self.path.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let what = if what.is_empty() {
            String::new()
        } else {
            format!(" ({})", what.join(", "))
        };
        let now = self
            .kept_as
            .as_deref()
            .map_or(String::new(), |v| format!(", now {v}"));
        format!(
            "{} {}{what} -> CT {} {}{now}",
            self.key, self.volume, self.target_vmid, self.target_key
        )
    }

    /// The `pct move-volume` argv.
    pub fn argv(&self, vmid: u32) -> Vec<String> {
        vec![
            "move-volume".into(),
            vmid.to_string(),
            self.key.clone(),
            "--target-vmid".into(),
            self.target_vmid.to_string(),
            "--target-volume".into(),
            self.target_key.clone(),
        ]
    }
}

fn mount_path(value: &str) -> Option<String> {
    map_of(value)
        .get("mp")
        .map(|p| crate::mounts::container_mount_path(p).unwrap_or_else(|_| p.clone()))
}

fn lowest_free(prefix: &str, taken: &[&String]) -> Option<String> {
    (0..256)
        .map(|n| format!("{prefix}{n}"))
        .find(|k| !taken.contains(&k))
}

/// Which data volumes of `src` (VMID `vmid`) go to container `to` (configuration `target`),
/// and which volumes stay with `src` (deleted by its destroy, or bind mounts, never touched).
/// A mount point whose path the target already mounts stays (moving it there would hide one
/// of the two); so does a volume only in a pending change. `Err` when `to` is the container
/// itself.
pub fn plan_moves(
    src: &CtConfig,
    vmid: u32,
    to: u32,
    target: &CtConfig,
) -> Result<(Vec<VolumeMove>, Vec<CtVolume>), String> {
    if to == vmid {
        return Err(format!(
            "--move-volumes-to {to} is the container being destroyed: give another container's VMID"
        ));
    }
    let mut taken: Vec<&String> = target.current.keys().chain(target.pending.keys()).collect();
    let target_paths: Vec<String> = target
        .current
        .iter()
        .chain(target.pending.iter())
        .filter(|(k, _)| k.starts_with("mp") || k.as_str() == "rootfs")
        .filter_map(|(_, v)| mount_path(v))
        .collect();
    let mut names: Vec<String> = Vec::new();
    let mut moves = Vec::new();
    let mut stay = Vec::new();
    for v in ct_volumes(src) {
        let current = src.current.get(&v.key);
        let movable = !v.bind
            && v.key != "rootfs"
            && current.is_some_and(|c| map_of(c).get("volume") == Some(&v.volume));
        let path = current
            .and_then(|c| mount_path(c))
            .filter(|_| v.key.starts_with("mp"));
        if !movable || path.as_ref().is_some_and(|p| target_paths.contains(p)) {
            stay.push(v);
            continue;
        }
        let target_key = if v.key.starts_with("unused") {
            lowest_free("unused", &taken)
        } else if taken.iter().any(|t| **t == v.key) {
            lowest_free("mp", &taken)
        } else {
            Some(v.key.clone())
        };
        let Some(target_key) = target_key else {
            stay.push(v);
            continue;
        };
        names.push(target_key.clone());
        moves.push(VolumeMove {
            key: v.key,
            volume: v.volume,
            size: v.size,
            path,
            target_vmid: to,
            target_key,
            kept_as: None,
        });
        taken = target
            .current
            .keys()
            .chain(target.pending.keys())
            .chain(names.iter())
            .collect();
    }
    Ok((moves, stay))
}
