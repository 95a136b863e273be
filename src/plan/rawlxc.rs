//! Devices on a node whose pve-container has no `devN` (before 5.0.7: PVE 7.x and 8.0): the
//! classic raw `lxc.cgroup2.devices.allow` and `lxc.mount.entry` lines, written by a node script
//! under PVE's config lock ([`Step::RawLxc`]) because `pct set` refuses `lxc.*` keys. PVE hands
//! them to LXC at start: on a running container they are pending until it restarts. Lines
//! already there are kept; lines the profile no longer asks for stay (reported).

use super::*;
use crate::mounts::rawlxc::{self, DevNode};

fn refuse(p: &Profile, field: &str, message: String) -> anyhow::Error {
    crate::error::InputErrors(vec![InputError::whole(
        format!("profile {}", p.name),
        field,
        message,
    )])
    .into()
}

/// Plans the raw lines of the profile's devices into `mp.raw` (with why and notes).
pub fn plan_raw_devices(p: &Profile, nf: &NodeFacts, mp: &mut MountPlan) -> Result<()> {
    let c = &nf.caps.container;
    if p.gpu.is_some() {
        return Err(refuse(
            p,
            "gpu",
            format!(
                "this node's pve-container {c} has no devN (5.0.7, PVE 8.1): the gpu shortcut needs devN's gid to give the container's render group the render node; update the node, or pass /dev/dri/renderD128 with [[devices]] (raw lxc lines: the node's owner and mode apply)"
            ),
        ));
    }
    for (i, d) in p.devices.iter().enumerate() {
        if d.uid.is_some() || d.gid.is_some() || d.mode.is_some() || d.deny_write.is_some() {
            return Err(refuse(
                p,
                &format!("devices[{i}]"),
                format!(
                    "this node's pve-container {c} has no devN (5.0.7, PVE 8.1), so {} is passed with raw lxc.cgroup2.devices.allow and lxc.mount.entry lines, which cannot set uid, gid, mode or deny_write (the node's own owner and mode apply, seen inside as nobody unless mapped); remove them, or update the node",
                    d.path
                ),
            ));
        }
    }
    let Some(f) = &nf.raw_lxc else {
        mp.notes.push(format!(
            "devices: raw lxc lines (pve-container {c} has no devN); device numbers not read"
        ));
        return Ok(());
    };
    let mut want: Vec<(String, String)> = Vec::new();
    for (i, d) in p.devices.iter().enumerate() {
        let node: Result<DevNode, String> = match f.nodes.get(&d.path) {
            Some((k, a, b)) => rawlxc::parse_node(k, a, b),
            None => Err("was not read on the node".into()),
        };
        let lines = node
            .and_then(|n| rawlxc::lines(&d.path, n))
            .map_err(|e| refuse(p, &format!("devices[{i}].path"), format!("{}: {e}", d.path)))?;
        for l in lines {
            if !want.contains(&l) {
                want.push(l);
            }
        }
    }
    mp.notes.push(format!(
        "devices: pve-container {c} has no devN (5.0.7, PVE 8.1): passed with raw lxc.cgroup2.devices.allow and lxc.mount.entry lines, written under PVE's config lock (pct set cannot); they apply when the container starts"
    ));
    for l in &want {
        if f.lines.contains(l) {
            mp.already.push(Already {
                step: "devices".into(),
                why: format!("{}: {}", l.0, l.1),
            });
        } else {
            mp.raw.push(l.clone());
        }
    }
    for (k, v) in &f.lines {
        if (k == rawlxc::ALLOW_KEY || k == rawlxc::MOUNT_KEY)
            && !want.iter().any(|w| w.0 == *k && w.1 == *v)
        {
            mp.notes.push(format!(
                "{k}: {v} is not in the profile: it stays (provision never removes a raw lxc line)"
            ));
        }
    }
    Ok(())
}
