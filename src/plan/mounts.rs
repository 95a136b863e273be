//! Mount points on the node plan: which `mpN` each profile mount gets (stable: a mount already
//! on the container keeps its number, matched by its path inside; a new one takes the lowest
//! free number), what is added (hot-added on a running container, as PVE does), what changes
//! (pending until restart on a running container), and what stays although the profile no
//! longer has it (never detached or deleted by a converge).

use super::*;
use crate::mounts::{MountSpec, Ownership, Source, propstr};
use std::collections::BTreeMap;

/// The mount points part of a node plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MountPlan {
    /// `mpN` keys and values to add or change (create options for a new container).
    pub set: Vec<(String, String)>,
    /// Why, per key.
    pub why: Vec<String>,
    /// Keys PVE takes at once on a running container (new mount points).
    pub hot: Vec<String>,
    /// Node directories to prepare before the keys are set.
    pub host_dirs: Vec<Step>,
    /// Notes for the plan.
    pub notes: Vec<String>,
    /// Mounts already as the profile says.
    pub already: Vec<Already>,
    /// Raw `lxc.*` lines to add (devices on a node without devN).
    pub raw: Vec<(String, String)>,
}

/// The `mpN` keys of a configuration with their effective values, by number.
pub fn config_mounts(cfg: &CtConfig) -> Vec<(u32, String)> {
    config_numbered(cfg, "mp")
}

/// The numbered keys `{prefix}N` (`mpN`, `devN`) of a configuration with their effective
/// values (pending over current), by number.
pub fn config_numbered(cfg: &CtConfig, prefix: &str) -> Vec<(u32, String)> {
    let mut keys: Vec<&String> = cfg.current.keys().chain(cfg.pending.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut v: Vec<(u32, String)> = keys
        .into_iter()
        .filter_map(|k| {
            let n = k.strip_prefix(prefix)?.parse::<u32>().ok()?;
            Some((n, cfg.effective(k)?.to_string()))
        })
        .collect();
    v.sort();
    v
}

pub(crate) fn map_of(value: &str) -> BTreeMap<String, String> {
    propstr::parse(value, "volume").into_iter().collect()
}

/// The options of an `mpN` value with PVE's defaults made explicit, for comparison.
fn comparable(value: &str) -> BTreeMap<String, String> {
    let mut m = map_of(value);
    m.remove("volume");
    m.remove("size");
    for (k, default) in [
        ("ro", "0"),
        ("backup", "0"),
        ("quota", "0"),
        ("shared", "0"),
        ("replicate", "1"),
    ] {
        let v = m.remove(k).unwrap_or_else(|| default.to_string());
        let v = if matches!(v.as_str(), "1" | "yes" | "on" | "true") {
            "1"
        } else {
            "0"
        };
        m.insert(k.to_string(), v.to_string());
    }
    if let Some(o) = m.get_mut("mountoptions") {
        let mut v: Vec<&str> = o.split(';').collect();
        v.sort_unstable();
        *o = v.join(";");
    }
    if let Some(p) = m.get_mut("mp") {
        *p = crate::mounts::container_mount_path(p).unwrap_or_else(|_| p.clone());
    }
    m
}

/// Plans the profile's mounts against the container's configuration (None: a new container).
pub fn plan_mounts(p: &Profile, nf: &NodeFacts, cfg: Option<&CtConfig>) -> Result<MountPlan> {
    let mut mp = MountPlan::default();
    let have = cfg.map(config_mounts).unwrap_or_default();
    let mut used: Vec<u32> = have.iter().map(|(n, _)| *n).collect();
    let mut matched: Vec<u32> = Vec::new();
    for (i, m) in p.mounts.iter().enumerate() {
        check_on_node(p, nf, i, m)?;
        let existing = have.iter().find(|(_, v)| {
            map_of(v)
                .get("mp")
                .and_then(|x| crate::mounts::container_mount_path(x).ok())
                .as_deref()
                == Some(m.path.as_str())
        });
        match existing {
            Some((n, value)) => {
                matched.push(*n);
                compare(m, *n, value, &mut mp)?;
            }
            None if cfg.is_some() && m.path == crate::profile::DOCKER_DATA_PATH => {
                bail!(
                    "docker.data: this container has no volume at {0} yet, and mounting one now would hide the Docker data already there (images, containers, volumes) from a running dockerd. Give docker.data when the container is created; for this one, stop Docker, copy {0} onto a new mount point yourself, or drop docker.data from the profile",
                    m.path
                );
            }
            None => {
                let n = (0..256u32).find(|n| !used.contains(n)).ok_or_else(|| {
                    anyhow::anyhow!(
                        "container has no free mount point number (mp0 to mp255 are taken)"
                    )
                })?;
                used.push(n);
                add(p, m, n, cfg.is_some(), &mut mp)?;
            }
        }
        ownership_note(p, m, &mut mp.notes);
    }
    for (n, value) in &have {
        if !matched.contains(n) {
            let m = map_of(value);
            mp.notes.push(format!(
                "mp{n} ({} at {}) is not in the profile: it stays, with its data (provision never detaches or deletes a mount point on its own; `pct set VMID --delete mp{n}` detaches it, and its volume then stays as unusedN)",
                m.get("volume").map_or("?", String::as_str),
                m.get("mp").map_or("?", String::as_str)
            ));
        }
    }
    Ok(mp)
}

/// A new volume's storage must exist and take container volumes; `idmap` needs the release.
fn check_on_node(p: &Profile, nf: &NodeFacts, i: usize, m: &MountSpec) -> Result<()> {
    let refuse = |field: &str, message: String| -> anyhow::Error {
        crate::error::InputErrors(vec![InputError::whole(
            format!("profile {}", p.name),
            format!("mounts[{i}].{field}"),
            message,
        )])
        .into()
    };
    if let Source::New(storage, _) = m.source()
        && nf.pve
    {
        match nf.storages.iter().find(|s| s.name == storage) {
            None => {
                let known: Vec<&str> = nf.storages.iter().map(|s| s.name.as_str()).collect();
                return Err(refuse(
                    "storage",
                    format!(
                        "storage {storage:?} does not exist on this node; storages here: {}",
                        known.join(", ")
                    ),
                ));
            }
            Some(s) if s.content.iter().any(|c| c == "-rootdir") => {
                return Err(refuse(
                    "storage",
                    format!(
                        "storage {storage:?} does not allow container volumes (its content lacks rootdir)"
                    ),
                ));
            }
            _ => {}
        }
    }
    if m.idmap().is_some() && !nf.caps.mp_idmap {
        return Err(refuse(
            "ownership",
            format!(
                "ownership = \"idmap\" needs PVE's mount point idmap option (pve-container 6.1.6, PVE 9.2); this node has pve-container {}. Use ownership = \"shifted\" (the node directory is owned by the container's mapped IDs), or as a last resort raw lxc.idmap lines (see README, \"Data and devices\")",
                nf.caps.container
            ),
        ));
    }
    Ok(())
}

/// A mount the container does not have yet: a create option, or a `pct set` that PVE
/// hot-adds on a running container.
fn add(p: &Profile, m: &MountSpec, n: u32, exists: bool, mp: &mut MountPlan) -> Result<()> {
    let key = format!("mp{n}");
    let value = m
        .value(&m.volume_arg())
        .map_err(|e| anyhow::anyhow!("mounts: {e}"))?;
    if let Source::Bind(h) = m.source()
        && (m.create == Some(true) || m.owner.is_some())
    {
        mp.host_dirs.push(Step::HostDir {
            path: h.to_string(),
            create: m.create == Some(true),
            owner: m.host_owner(p.unprivileged),
        });
    }
    if let Source::New(..) = m.source()
        && m.backup != Some(true)
    {
        mp.notes.push(format!(
            "{key} ({}) is not in vzdump backups (PVE's default for mount points); set backup = true to include it",
            m.path
        ));
    }
    if exists {
        mp.why
            .push(format!("{key}: adds {} at {}", m.volume_arg(), m.path));
        mp.hot.push(key.clone());
    }
    mp.set.push((key, value));
    Ok(())
}

/// A mount the container has as `mpN = have`: already right, or changed (pending on a running
/// container, as PVE keeps it).
fn compare(m: &MountSpec, n: u32, have: &str, mp: &mut MountPlan) -> Result<()> {
    let key = format!("mp{n}");
    let hm = map_of(have);
    let vol = hm.get("volume").cloned().unwrap_or_default();
    let (volume, source_differs) = match m.source() {
        Source::New(storage, gib) => {
            if !vol.starts_with(&format!("{storage}:")) {
                mp.notes.push(format!(
                    "{key} ({}) is volume {vol}, not on the profile's storage {storage:?}; provision does not move volumes",
                    m.path
                ));
            }
            let want = crate::rootdisk::alloc_bytes(gib);
            if let Some(size) = hm.get("size").and_then(|s| crate::rootdisk::parse_size(s))
                && size != want
            {
                mp.notes.push(format!(
                    "{key} ({}) is {}, the profile says {}G; provision does not resize mount point volumes (grow it with `pct resize VMID {key} SIZE`)",
                    m.path,
                    crate::rootdisk::human(size),
                    crate::mounts::fmt_gib(gib)
                ));
            }
            (vol.clone(), false)
        }
        Source::Volume(v) | Source::Bind(v) => (v.to_string(), v != vol),
    };
    let want = m
        .value(&volume)
        .map_err(|e| anyhow::anyhow!("mounts: {e}"))?;
    if source_differs || comparable(&want) != comparable(have) {
        mp.why.push(format!("{key}: {have} -> {want}"));
        mp.set.push((key, want));
    } else {
        mp.already.push(Already {
            step: "mounts".into(),
            why: format!("{key} is {} at {}", vol, m.path),
        });
    }
    Ok(())
}

/// Says how a bind mount's files are owned inside.
fn ownership_note(p: &Profile, m: &MountSpec, notes: &mut Vec<String>) {
    let Source::Bind(h) = m.source() else {
        return;
    };
    let inside = m.owner.as_ref().map(|o| format!("{}:{}", o.uid, o.gid));
    let note = match (m.host_owner(p.unprivileged), m.ownership(), inside) {
        (Some((u, g)), Ownership::Idmap, Some(i)) => format!(
            "bind mount {h} -> {}: ownership by PVE's idmap ({}): node IDs {u}:{g} are {i} inside",
            m.path,
            m.idmap().unwrap_or_default()
        ),
        (Some((u, g)), _, Some(i)) if p.unprivileged => format!(
            "bind mount {h} -> {}: ownership shifted: the node directory is owned by {u}:{g}, which is {i} inside (the container maps its IDs 0-65535 to {}-{})",
            m.path,
            crate::mounts::ID_SHIFT,
            crate::mounts::ID_SHIFT + crate::mounts::ID_RANGE - 1
        ),
        (Some((u, g)), _, _) => format!(
            "bind mount {h} -> {}: privileged container: node IDs are the container's, the directory is owned by {u}:{g}",
            m.path
        ),
        (None, _, _) if p.unprivileged => format!(
            "bind mount {h} -> {}: no `owner`: files on the node owned by IDs outside 100000-165535 show up as nobody (65534) inside and cannot be written by the container; set owner = {{ uid, gid }}",
            m.path
        ),
        (None, _, _) => return,
    };
    notes.push(note);
}

/// One volume or bind mount of a container's configuration, for `destroy`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CtVolume {
    /// `rootfs`, `mpN` or `unusedN`.
    pub key: String,
    /// Volume id, or the node path of a bind mount.
    pub volume: String,
    /// Size as PVE records it (`8G`), when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// A node path (bind or device mount): `pct destroy` never touches it.
    pub bind: bool,
}

impl CtVolume {
    fn show(&self) -> String {
        match &self.size {
            Some(s) => format!("{} {} ({s})", self.key, self.volume),
            None => format!("{} {}", self.key, self.volume),
        }
    }
}

/// The volumes and bind mounts of a configuration (pending values included: `pct destroy`
/// frees those too), root disk first.
pub fn ct_volumes(cfg: &CtConfig) -> Vec<CtVolume> {
    let mut keys: Vec<&String> = cfg.current.keys().chain(cfg.pending.keys()).collect();
    keys.sort_by_key(|k| {
        (
            !k.starts_with("rootfs"),
            k.starts_with("unused"),
            k.len(),
            (*k).clone(),
        )
    });
    keys.dedup();
    let mut v = Vec::new();
    for k in keys {
        let numbered = |p: &str| k.strip_prefix(p).is_some_and(|n| n.parse::<u32>().is_ok());
        if !(k == "rootfs" || numbered("mp") || numbered("unused")) {
            continue;
        }
        for value in [cfg.current.get(k), cfg.pending.get(k)]
            .into_iter()
            .flatten()
        {
            let m = map_of(value);
            let volume = m.get("volume").cloned().unwrap_or_default();
            if volume.is_empty() || v.iter().any(|x: &CtVolume| x.volume == volume) {
                continue;
            }
            v.push(CtVolume {
                key: k.clone(),
                bind: volume.starts_with('/'),
                size: m.get("size").cloned(),
                volume,
            });
        }
    }
    v
}

/// Whether `destroy` may delete a container with these volumes: `Ok(what goes and what
/// stays)`, or `Err(why not)` when it holds volumes besides its root disk and
/// `--delete-volumes` was not given.
pub fn destroy_volumes_verdict(vols: &[CtVolume], delete_volumes: bool) -> Result<String, String> {
    let deleted: Vec<String> = vols
        .iter()
        .filter(|v| !v.bind)
        .map(CtVolume::show)
        .collect();
    let data: Vec<&CtVolume> = vols
        .iter()
        .filter(|v| !v.bind && v.key != "rootfs")
        .collect();
    let binds: Vec<String> = vols
        .iter()
        .filter(|v| v.bind)
        .map(|v| format!("{} ({})", v.volume, v.key))
        .collect();
    let stays = if binds.is_empty() {
        String::new()
    } else {
        format!(
            "; bind-mounted node paths are never touched: {}",
            binds.join(", ")
        )
    };
    if !data.is_empty() && !delete_volumes {
        let list: Vec<String> = data.iter().map(|v| v.show()).collect();
        return Err(format!(
            "holds volumes besides its root disk: {}; destroying it would delete them with their data. --delete-volumes deletes them; --move-volumes-to OTHER keeps them, handed to container OTHER first (`pct move-volume VMID {} --target-vmid OTHER`){stays}",
            list.join(", "),
            data[0].key
        ));
    }
    Ok(format!(
        "deletes {}{stays}",
        if deleted.is_empty() {
            "no volume".to_string()
        } else {
            deleted.join(", ")
        }
    ))
}
