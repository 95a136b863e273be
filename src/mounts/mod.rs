//! Mount points (`[[mounts]]`): what a profile may ask for, checked as PVE checks it (and a
//! little more where PVE would accept a mistake silently), and rendered into `mpN` property
//! strings through one renderer ([`propstr`]). Pure: no host is read or changed here; which
//! `mpN` a mount gets on a container is the planner's business (`plan::mounts`).

pub mod devices;
pub mod propstr;
pub mod rawlxc;

use crate::validate;
use serde::{Deserialize, Serialize};

/// The first unprivileged ID of a container on a PVE node (`/etc/subuid` `root:100000:65536`).
pub const ID_SHIFT: u32 = 100_000;

/// How many IDs an unprivileged container maps.
pub const ID_RANGE: u32 = 65_536;

/// The mount options PVE accepts (`mountoptions`, pve-container's `$valid_mount_option_re`).
pub const MOUNT_OPTIONS: &[&str] = &[
    "discard", "lazytime", "noatime", "nodev", "noexec", "nosuid",
];

/// Owner of a bind mount's host directory, as the container sees it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// User ID inside the container (0-65535).
    pub uid: i64,
    /// Group ID inside the container (0-65535).
    pub gid: i64,
}

/// One mount point as written (`[[mounts]]`). Exactly one of `storage` (a new volume, with
/// `size`), `volume` (an existing volume) and `host` (a bind mount of a node directory).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// Where it appears inside the container (absolute; no symbolic links, as PVE requires).
    pub path: String,
    /// A new volume on this storage (must allow `rootdir`), `size` GiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Size in GiB of a new volume (fractions allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<f64>,
    /// An existing volume, e.g. `local-lvm:vm-100-disk-3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// A directory on the node to bind-mount (root@pam only, as PVE has it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// With `host`: create the directory on the node when it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
    /// With `host`: the owner the container should see on the directory (the tool sets it on
    /// the node when it adds the mount).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// With `owner`: `shifted` (the host directory is owned by the container's mapped IDs,
    /// 100000 + uid; works on every release) or `idmap` (PVE's mpN idmap option, pve-container
    /// 6.1.6 and later: the host directory keeps the same IDs as inside).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<String>,
    /// Read-only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ro: Option<bool>,
    /// Include a volume in vzdump backups (PVE's default for mount points: no).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<bool>,
    /// ACL support on or off (default: the file system's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl: Option<bool>,
    /// User quotas inside (volumes only; not on ZFS subvolumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<bool>,
    /// Include a volume in storage replication (PVE's default: yes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicate: Option<bool>,
    /// A bind mount present on every node of the cluster (PVE does not share it itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
    /// Mount options: discard, lazytime, noatime, nodev, noexec, nosuid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mountoptions: Option<Vec<String>>,
    /// Made from `docker.data` (not written in `[[mounts]]`): `profiles show` leaves it out.
    #[serde(skip)]
    #[schemars(skip)]
    pub from_docker_data: bool,
}

/// Serialises the mounts a profile wrote (not the one `docker.data` makes).
pub fn serialize_written<S: serde::Serializer>(m: &[MountSpec], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let written: Vec<&MountSpec> = m.iter().filter(|x| !x.from_docker_data).collect();
    let mut seq = s.serialize_seq(Some(written.len()))?;
    for x in written {
        seq.serialize_element(x)?;
    }
    seq.end()
}

/// What a mount mounts.
#[derive(Clone, Debug, PartialEq)]
pub enum Source<'a> {
    /// A new volume: storage and GiB.
    New(&'a str, f64),
    /// An existing volume id.
    Volume(&'a str),
    /// A node directory.
    Bind(&'a str),
}

/// How a bind mount's ownership is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Host directory owned by the container's mapped IDs.
    Shifted,
    /// PVE's mpN `idmap`.
    Idmap,
}

impl MountSpec {
    /// A mount with only a path (and no source yet): for building one in code.
    pub fn bare() -> MountSpec {
        MountSpec {
            path: String::new(),
            storage: None,
            size: None,
            volume: None,
            host: None,
            create: None,
            owner: None,
            ownership: None,
            ro: None,
            backup: None,
            acl: None,
            quota: None,
            replicate: None,
            shared: None,
            mountoptions: None,
            from_docker_data: false,
        }
    }

    /// What it mounts (after [`check`]: exactly one source is set).
    pub fn source(&self) -> Source<'_> {
        match (&self.storage, &self.volume, &self.host) {
            (Some(s), _, _) => Source::New(s, self.size.unwrap_or(0.0)),
            (_, Some(v), _) => Source::Volume(v),
            (_, _, Some(h)) => Source::Bind(h),
            _ => Source::Volume(""),
        }
    }

    /// The mapping asked for (default: shifted).
    pub fn ownership(&self) -> Ownership {
        match self.ownership.as_deref() {
            Some("idmap") => Ownership::Idmap,
            _ => Ownership::Shifted,
        }
    }

    /// PVE's `idmap` value for this mount, when it uses one.
    pub fn idmap(&self) -> Option<String> {
        let o = self.owner.as_ref()?;
        (self.ownership() == Ownership::Idmap)
            .then(|| format!("u:{0}:{0}:1;g:{1}:{1}:1", o.uid, o.gid))
    }

    /// The owner (uid, gid) the node's directory gets, for an unprivileged container or not.
    pub fn host_owner(&self, unprivileged: bool) -> Option<(u32, u32)> {
        let o = self.owner.as_ref()?;
        let shift = if unprivileged && self.ownership() == Ownership::Shifted {
            ID_SHIFT
        } else {
            0
        };
        Some((shift + o.uid as u32, shift + o.gid as u32))
    }

    /// The options that PVE keeps beside the volume, as PVE stores them (booleans `0`/`1`,
    /// mount options joined by `;`), in the order PVE prints them: `mp` (required), then the
    /// others sorted by name, so that `pct config` shows what the tool wrote.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        let b = |v: Option<bool>| v.map(|v| if v { "1" } else { "0" }.to_string());
        let mountoptions = self
            .mountoptions
            .as_ref()
            .filter(|m| !m.is_empty())
            .map(|m| m.join(";"));
        let mut o = vec![("mp", self.path.clone())];
        for (k, v) in [
            ("acl", b(self.acl)),
            ("backup", b(self.backup)),
            ("idmap", self.idmap()),
            ("mountoptions", mountoptions),
            ("quota", b(self.quota)),
            ("replicate", b(self.replicate)),
            ("ro", b(self.ro)),
            ("shared", b(self.shared)),
        ] {
            if let Some(v) = v {
                o.push((k, v));
            }
        }
        o
    }

    /// The `mpN` value with `volume` as its volume (`STORAGE:SIZE` for a new one, the volume
    /// id PVE allocated once it exists, or the node path).
    pub fn value(&self, volume: &str) -> Result<String, String> {
        let opts = self.options();
        let rest: Vec<(&str, String)> = opts.iter().map(|(k, v)| (*k, v.clone())).collect();
        propstr::render(volume, &rest)
    }

    /// The volume part of a new mount: `STORAGE:SIZE`, the volume id, or the node path.
    pub fn volume_arg(&self) -> String {
        match self.source() {
            Source::New(s, g) => format!("{s}:{}", fmt_gib(g)),
            Source::Volume(v) | Source::Bind(v) => v.to_string(),
        }
    }
}

/// GiB as PVE accepts them (`8`, `0.5`).
pub fn fmt_gib(g: f64) -> String {
    let s = format!("{g:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The rules every path here follows: absolute, no `.` or `..` component (PVE's
/// `pve-lxc-mp-string` refuses them: "invalid path"), no control character, shell or
/// property-string metacharacter, not the root directory (`what` names it). Returns the
/// normal spelling (`//data/` is `/data`).
fn abs_path(s: &str, root: &str) -> Result<String, String> {
    let trimmed = s.trim_end_matches('/');
    if s.starts_with('/') && trimmed.is_empty() {
        return Err(format!("{s:?} is {root}; give a directory below it"));
    }
    if s.split('/').any(|p| p == "." || p == "..") {
        return Err(format!(
            "{s:?} contains a `.` or `..` component; PVE refuses such a mount point path (\"invalid path\")"
        ));
    }
    let n = validate::normal_container_path(if trimmed.is_empty() { s } else { trimmed })?;
    propstr::value_rule(&n)?;
    Ok(n)
}

fn under(n: &str, dirs: &[&str]) -> Option<String> {
    dirs.iter()
        .find(|d| n == **d || n.starts_with(&format!("{d}/")))
        .map(ToString::to_string)
}

/// A mount point path inside the container: [`abs_path`]'s rules, and not where the
/// container's init mounts its kernel file systems.
pub fn container_mount_path(s: &str) -> Result<String, String> {
    let n = abs_path(
        s,
        "the container's root, where its root disk (rootfs) is mounted",
    )?;
    if let Some(d) = under(&n, &["/proc", "/sys", "/dev"]) {
        return Err(format!(
            "{n:?} is under {d}, which the container's init mounts itself; a mount point there would hide it or be hidden"
        ));
    }
    Ok(n)
}

/// A node directory to bind-mount: [`abs_path`]'s rules, not the node's kernel file systems
/// and not the cluster file system.
pub fn host_path(s: &str) -> Result<String, String> {
    let n = abs_path(s, "the node's root directory")?;
    if let Some(d) = under(&n, &["/proc", "/sys", "/dev", "/etc/pve"]) {
        return Err(format!(
            "{n:?} is under {d} (the node's kernel or cluster file system): never bind-mounted into a guest"
        ));
    }
    Ok(n)
}

/// An existing volume id: `STORAGE:NAME`, NAME of letters, digits and `._-/` without `..`.
pub fn volume_id(s: &str) -> validate::Rule {
    let Some((storage, name)) = s.split_once(':') else {
        return Err(format!(
            "{s:?} is not a volume id like local-lvm:vm-100-disk-1 (STORAGE:NAME); for a new volume give `storage` and `size`"
        ));
    };
    validate::storage_id(storage)?;
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
        && !name.split('/').any(|p| p == ".." || p == ".")
        && !name.starts_with('/');
    if !ok {
        return Err(format!(
            "{s:?}: the volume name {name:?} may hold only letters, digits, `.`, `_`, `-` and `/` (no `..`)"
        ));
    }
    propstr::value_rule(s)
}

/// The size of a new volume in GiB.
pub fn size_rule(g: f64) -> validate::Rule {
    if g.is_finite() && (0.001..=131_072.0).contains(&g) {
        Ok(())
    } else {
        Err(format!(
            "{g} is out of range: a new volume is 0.001 to 131072 GiB"
        ))
    }
}

/// Every problem of a list of mounts, as (field, message) pairs (`mounts[1].path`, ...).
pub fn check(specs: &[MountSpec]) -> Vec<(String, String)> {
    let mut er = Vec::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, m) in specs.iter().enumerate() {
        let f = |k: &str| format!("mounts[{i}].{k}");
        match container_mount_path(&m.path) {
            Err(e) => er.push((f("path"), e)),
            Ok(n) => {
                if let Some((_, j)) = seen.iter().find(|(p, _)| *p == n) {
                    er.push((
                        f("path"),
                        format!("{n:?} is also the path of mounts[{j}]: two mount points on one directory hide each other"),
                    ));
                }
                seen.push((n, i));
            }
        }
        check_source(m, &f, &mut er);
        check_options(m, &f, &mut er);
    }
    if specs.len() > 256 {
        er.push((
            "mounts".into(),
            "PVE has 256 mount points (mp0 to mp255)".into(),
        ));
    }
    er
}

fn check_source(m: &MountSpec, f: &dyn Fn(&str) -> String, er: &mut Vec<(String, String)>) {
    let n = [m.storage.is_some(), m.volume.is_some(), m.host.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if n != 1 {
        er.push((
            f("path").replace(".path", ""),
            "give exactly one of `storage` (a new volume, with `size`), `volume` (an existing volume) and `host` (a node directory to bind-mount)".into(),
        ));
    }
    if let Some(s) = &m.storage {
        if let Err(e) = validate::storage_id(s) {
            er.push((f("storage"), e));
        }
        match m.size {
            None => er.push((f("size"), "a new volume needs its size in GiB".into())),
            Some(g) => {
                if let Err(e) = size_rule(g) {
                    er.push((f("size"), e));
                }
            }
        }
    } else if m.size.is_some() {
        er.push((
            f("size"),
            "`size` is for a new volume (`storage`); an existing volume or a bind mount keeps its own size".into(),
        ));
    }
    if let Some(v) = &m.volume
        && let Err(e) = volume_id(v)
    {
        er.push((f("volume"), e));
    }
    if let Some(h) = &m.host
        && let Err(e) = host_path(h)
    {
        er.push((f("host"), e));
    }
    let bind = m.host.is_some();
    for (k, set) in [
        ("create", m.create.is_some()),
        ("owner", m.owner.is_some()),
        ("ownership", m.ownership.is_some()),
        ("shared", m.shared.is_some()),
    ] {
        if set && !bind {
            er.push((f(k), format!("`{k}` is for a bind mount (`host`)")));
        }
    }
    for (k, set) in [
        ("quota", m.quota.is_some()),
        ("backup", m.backup.is_some()),
        ("replicate", m.replicate.is_some()),
    ] {
        if set && bind {
            er.push((
                f(k),
                format!("`{k}` is for volumes; PVE ignores it on a bind mount (bind mounts are never in backups or replication)"),
            ));
        }
    }
}

fn check_options(m: &MountSpec, f: &dyn Fn(&str) -> String, er: &mut Vec<(String, String)>) {
    if let Some(o) = &m.owner {
        for (k, v) in [("uid", o.uid), ("gid", o.gid)] {
            if !(0..i64::from(ID_RANGE)).contains(&v) {
                er.push((
                    f(&format!("owner.{k}")),
                    format!("{v} is out of range: an unprivileged container maps IDs 0 to 65535"),
                ));
            }
        }
    }
    if let Some(w) = &m.ownership {
        if !["shifted", "idmap"].contains(&w.as_str()) {
            er.push((
                f("ownership"),
                format!("{w:?} is not one of: shifted, idmap"),
            ));
        } else if m.owner.is_none() {
            er.push((
                f("ownership"),
                "`ownership` says how `owner` is mapped: give `owner` too".into(),
            ));
        }
    }
    if let Some(opts) = &m.mountoptions {
        for (j, o) in opts.iter().enumerate() {
            if !MOUNT_OPTIONS.contains(&o.as_str()) {
                er.push((
                    f(&format!("mountoptions[{j}]")),
                    format!(
                        "{o:?} is not a mount option PVE accepts: {}",
                        MOUNT_OPTIONS.join(", ")
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests;
