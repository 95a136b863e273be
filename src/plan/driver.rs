//! Docker's storage driver for a container: chosen from the storage of its root disk (and the
//! ZFS version), or taken from the profile.

use super::*;

/// Parses "2.2.7-pve1" into (2, 2).
fn zfs_major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Decides the storage driver `auto` stands for, from the rootfs storage type and ZFS version.
///
/// Only a `zfspool` root disk is a ZFS dataset (a subvolume); on every other storage type that
/// allows container root disks, PVE makes an ext4 filesystem (on a volume, or a raw image file
/// on dir/nfs/cifs storages) or a btrfs subvolume, and those host overlayfs. So the choice is
/// fuse-overlayfs for a zfspool root disk on ZFS older than 2.2 (or of unknown version), and
/// overlay2 otherwise.
pub fn decide_driver(storage_type: Option<&str>, zfs_version: Option<&str>) -> (Driver, String) {
    match storage_type {
        Some("zfspool") => match zfs_version.and_then(zfs_major_minor) {
            Some(v) if v >= (2, 2) => (
                Driver::Overlay2,
                format!(
                    "the root disk is a ZFS dataset on ZFS {}, which hosts overlayfs (2.2 or later)",
                    zfs_version.unwrap_or("")
                ),
            ),
            Some(_) => (
                Driver::FuseOverlayfs,
                format!(
                    "the root disk is a ZFS dataset on ZFS {}, older than 2.2, which cannot host overlayfs",
                    zfs_version.unwrap_or("")
                ),
            ),
            None => (
                Driver::FuseOverlayfs,
                "the root disk is a ZFS dataset and the host's ZFS version is unknown (no /sys/module/zfs/version); fuse-overlayfs is the safe choice".to_string(),
            ),
        },
        Some("btrfs") => (
            Driver::Overlay2,
            "the root disk storage is of type btrfs (a btrfs subvolume), which hosts overlayfs"
                .to_string(),
        ),
        Some(t) => (
            Driver::Overlay2,
            format!(
                "the root disk storage is of type {t} (an ext4 filesystem on a volume or image file), which hosts overlayfs"
            ),
        ),
        None => (
            Driver::Overlay2,
            "the root disk storage is unknown here (no node); overlay2 unless it is ZFS older than 2.2".to_string(),
        ),
    }
}

/// The storage an existing container's root disk is on (from its `rootfs` volume id).
pub(super) fn rootfs_storage(ct: Option<&CtConfig>) -> Option<String> {
    let rootfs = ct?.effective("rootfs")?;
    let m = parse_property_string(rootfs, "volume");
    let (storage, _) = m.get("volume")?.split_once(':')?;
    Some(storage.to_string())
}
