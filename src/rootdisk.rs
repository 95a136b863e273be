//! The root disk: on which storage, and how big, exactly as Proxmox VE reads, writes and
//! allocates sizes.
//!
//! PVE parses `N[.N][K|M|G|T][iB]` with a unit-less number meaning **bytes**, writes a size in
//! the largest unit that divides it exactly (`format_size`: plain bytes when it is not a
//! multiple of 1 KiB), and allocates a new disk `STORAGE:GIB` as `int(GIB * 1024)` MiB. The tool
//! keeps profile sizes in GiB; these functions turn them into what PVE will store, so that a
//! fractional size converges in one run and stays converged.

use crate::error::InputError;
use crate::facts::Storage;
use crate::profile::Profile;

/// `rootfs.storage = "auto"` (the default): the node decides, see [`choose_storage`].
pub use crate::profile::AUTO_STORAGE as AUTO;

/// Shown for `auto` where there is no node to ask (a dry run away from Proxmox VE).
const NO_NODE_STORAGE: &str = "local-lvm";

/// The profile with `rootfs.storage = "auto"` replaced by the storage this container's root
/// disk is (or will be) on, and why; None when the profile names a storage. An existing
/// container keeps the storage its disk is on. `storages` must carry the `rootdir` content
/// flag (node facts do; a list from `pvesm status --content rootdir` may mark every entry).
pub fn pin_storage(
    p: &Profile,
    storages: &[Storage],
    existing: Option<&str>,
) -> Result<Option<(Profile, String)>, InputError> {
    if p.rootfs.storage != AUTO {
        return Ok(None);
    }
    let (name, why) = if let Some(s) = existing {
        (
            s.to_string(),
            format!("root disk: stays on {s}, where it is"),
        )
    } else if storages.is_empty() {
        (
            NO_NODE_STORAGE.to_string(),
            format!(
                "root disk: rootfs.storage = \"{AUTO}\" is chosen on the node (its zfspool storage, else its root-disk storage with the most room); shown as {NO_NODE_STORAGE}"
            ),
        )
    } else {
        let (s, why) = choose_storage(storages).ok_or_else(|| InputError {
            file: format!("profile {}", p.name),
            line: 0,
            col: 0,
            field: "rootfs.storage".into(),
            message: format!(
                "rootfs.storage = \"{AUTO}\": no active storage on this node may hold container root disks (content rootdir); storages here: {}. Allow root disks on one (pvesm set STORAGE --content rootdir,...) or name one with --storage",
                storages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })?;
        (s.name.clone(), format!("root disk on {}: {why}", s.name))
    };
    let mut q = p.clone();
    q.rootfs.storage = name;
    Ok(Some((q, why)))
}

/// The storage for a new container's root disk when the profile does not name one: an active
/// `zfspool` storage that may hold container roots (the seed recipe's `local-zfs` on a ZFS
/// install), else the active root-disk storage with the most free space (`local-lvm` on an
/// LVM install, `local` where a directory install lets it hold containers). Ties go to the
/// name that sorts first, so the same node facts always give the same answer.
pub fn choose_storage(storages: &[Storage]) -> Option<(&Storage, String)> {
    let usable: Vec<&Storage> = storages
        .iter()
        .filter(|s| s.status == "active" && s.content.iter().any(|c| c == "rootdir"))
        .collect();
    let zfs: Vec<&Storage> = usable
        .iter()
        .copied()
        .filter(|s| s.kind == "zfspool")
        .collect();
    if let Some(s) = most_free(zfs) {
        return Some((
            s,
            format!(
                "{} is the node's ZFS storage for container root disks",
                s.name
            ),
        ));
    }
    most_free(usable).map(|s| {
        (
            s,
            format!(
                "{} ({}) is the node's active storage for container root disks with the most free space",
                s.name, s.kind
            ),
        )
    })
}

fn most_free(v: Vec<&Storage>) -> Option<&Storage> {
    v.into_iter()
        .max_by(|a, b| a.avail_kib.cmp(&b.avail_kib).then(b.name.cmp(&a.name)))
}

/// Bytes of a PVE size string (`8G`, `307M`, `322122547`, `1.5T`, `512MiB`), as PVE's
/// `parse_size` reads it; None when PVE would not parse it either.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || (num.contains('.') && (frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())))
    {
        return None;
    }
    let shift = match unit {
        "" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        _ => return None,
    };
    // Exact arithmetic: integer part shifted, fraction as a decimal ratio, truncated like
    // Perl's int().
    let whole: u64 = int.parse().ok()?;
    let mut bytes = whole.checked_shl(shift).filter(|b| b >> shift == whole)?;
    if !frac.is_empty() {
        let digits = frac.len().min(18);
        let f: u128 = frac[..digits].parse().ok()?;
        let scale = 10u128.pow(u32::try_from(digits).ok()?);
        let part = (f << shift) / scale;
        bytes = bytes.checked_add(u64::try_from(part).ok()?)?;
    }
    Some(bytes)
}

/// A byte count the way PVE writes it into a config (`format_size`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    let mut n = bytes;
    let mut unit = "";
    for u in UNITS {
        if n == 0 || !n.is_multiple_of(1024) {
            break;
        }
        n /= 1024;
        unit = u;
    }
    if bytes == 0 {
        return "0".into();
    }
    format!("{n}{unit}")
}

/// Bytes PVE allocates for a new disk of `gib` GiB (`STORAGE:GIB`): whole MiB, truncated.
pub fn alloc_bytes(gib: f64) -> u64 {
    // Perl: int($size_gb * 1024) * 1024 KiB.
    let mib = (gib * 1024.0).floor();
    if mib.is_finite() && mib > 0.0 {
        (mib as u64).saturating_mul(1 << 20)
    } else {
        0
    }
}

/// The argument for `pct resize ... SIZE` that makes the disk exactly what a create of `gib`
/// would have made, in a unit PVE stores without a remainder.
pub fn resize_arg(gib: f64) -> String {
    format_size(alloc_bytes(gib))
}

/// A size for people: `8G`, `307M`, `1.5G` (two decimals at most).
pub fn human(bytes: u64) -> String {
    let exact = format_size(bytes);
    if exact.ends_with(['K', 'M', 'G', 'T']) && !exact.ends_with('K') {
        return exact;
    }
    let g = bytes as f64 / f64::from(1u32 << 30);
    format!("{}G", (g * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(name: &str, kind: &str, status: &str, avail_kib: u64, rootdir: bool) -> Storage {
        Storage {
            name: name.into(),
            kind: kind.into(),
            status: status.into(),
            avail_kib,
            content: vec![if rootdir { "rootdir" } else { "-rootdir" }.into()],
        }
    }

    #[test]
    fn the_root_disk_storage_follows_the_install_layout() {
        let zfs_install = [
            st("local", "dir", "active", 900, false),
            st("local-zfs", "zfspool", "active", 100, true),
        ];
        assert_eq!(choose_storage(&zfs_install).unwrap().0.name, "local-zfs");
        let lvm_install = [
            st("local", "dir", "active", 900, false),
            st("local-lvm", "lvmthin", "active", 500, true),
        ];
        assert_eq!(choose_storage(&lvm_install).unwrap().0.name, "local-lvm");
        let dir_install = [st("local", "dir", "active", 900, true)];
        assert_eq!(choose_storage(&dir_install).unwrap().0.name, "local");
        // Inactive or non-rootdir storages are never chosen; nothing usable: None.
        let none = [
            st("local", "dir", "active", 900, false),
            st("tank", "zfspool", "inactive", 900, true),
        ];
        assert!(choose_storage(&none).is_none());
        // Ties: the first name.
        let tie = [
            st("b", "dir", "active", 5, true),
            st("a", "lvmthin", "active", 5, true),
        ];
        assert_eq!(choose_storage(&tie).unwrap().0.name, "a");
    }

    #[test]
    fn sizes_parse_like_pve() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("307M"), Some(307 << 20));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        // Unit-less is bytes, not GiB.
        assert_eq!(parse_size("322122547"), Some(322_122_547));
        assert_eq!(parse_size("0.3G"), Some(322_122_547));
        assert_eq!(parse_size("1.5T"), Some(3 << 39));
        for bad in [
            "",
            "G",
            "8g",
            "8 G",
            "-1G",
            "1.G",
            ".5G",
            "8GB",
            "99999999999999999999T",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sizes_are_written_like_pve() {
        assert_eq!(format_size(8 << 30), "8G");
        assert_eq!(format_size(307 << 20), "307M");
        assert_eq!(format_size(322_122_547), "322122547");
        assert_eq!(format_size(1 << 40), "1T");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(format_size(2048), "2K");
        assert_eq!(format_size(0), "0");
    }

    #[test]
    fn a_fractional_disk_converges_in_one_step() {
        // `STORAGE:0.3` allocates 307 MiB and PVE stores `size=307M`; the tool wants exactly
        // that, so the next run sees no difference (before: a resize to 0.3G, then a size
        // read back as 322122547 GiB).
        let want = alloc_bytes(0.3);
        assert_eq!(format_size(want), "307M");
        assert_eq!(parse_size("307M"), Some(want));
        assert_eq!(resize_arg(0.3), "307M");
        assert_eq!(resize_arg(8.0), "8G");
        assert_eq!(resize_arg(1.5), "1536M");
        assert_eq!(alloc_bytes(0.0), 0);
        assert_eq!(human(8 << 30), "8G");
        assert_eq!(human(322_122_547), "0.3G");
    }
}
