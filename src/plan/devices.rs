//! Devices on the node plan: which `devN` each profile device gets (stable: matched by its
//! path; a new one takes the lowest free number), hot-added on a running container where the
//! node's pve-container does it (6.0.4, PVE 9.0), else pending until restart, and never removed
//! by a converge.

use super::*;
use crate::mounts::devices::{DeviceSpec, GPU_RENDER_NODE};
use crate::mounts::propstr;

/// The `devN` keys of a configuration with their effective values, by number.
fn config_devices(cfg: &CtConfig) -> Vec<(u32, String)> {
    config_numbered(cfg, "dev")
}

fn comparable(value: &str) -> Vec<(String, String)> {
    let mut v = propstr::parse(value, "path");
    if let Some(d) = v.iter_mut().find(|(k, _)| k == "deny-write") {
        d.1 = if d.1 == "1" { "1" } else { "0" }.into();
    } else {
        v.push(("deny-write".into(), "0".into()));
    }
    v.sort();
    v
}

/// Plans the profile's devices against the container's configuration (None: a new one).
/// Adds to `mp` (the same shape as mount points: keys to set, hot keys, notes).
pub fn plan_devices(
    p: &Profile,
    nf: &NodeFacts,
    cfg: Option<&CtConfig>,
    mp: &mut MountPlan,
) -> Result<()> {
    if p.devices.is_empty() && p.gpu.is_none() {
        return Ok(());
    }
    if !nf.caps.dev_passthrough {
        return rawlxc::plan_raw_devices(p, nf, mp);
    }
    let have = cfg.map(config_devices).unwrap_or_default();
    let mut used: Vec<u32> = have.iter().map(|(n, _)| *n).collect();
    let mut matched = Vec::new();
    for d in &p.devices {
        let want = d.value().map_err(|e| anyhow::anyhow!("devices: {e}"))?;
        let existing = have.iter().find(|(_, v)| {
            propstr::parse(v, "path")
                .iter()
                .any(|(k, x)| k == "path" && *x == d.path)
        });
        match existing {
            Some((n, value)) => {
                matched.push(*n);
                let key = format!("dev{n}");
                if comparable(value) == comparable(&want) {
                    mp.already.push(Already {
                        step: "devices".into(),
                        why: format!("{key} is {}", d.path),
                    });
                } else {
                    mp.why.push(format!("{key}: {value} -> {want}"));
                    mp.set.push((key, want));
                }
            }
            None => {
                let n = (0..256u32)
                    .find(|n| !used.contains(n))
                    .ok_or_else(|| anyhow::anyhow!("container has no free device number"))?;
                used.push(n);
                let key = format!("dev{n}");
                if cfg.is_some() {
                    mp.why.push(format!("{key}: passes {}", d.path));
                    if nf.caps.dev_hotplug {
                        mp.hot.push(key.clone());
                    }
                }
                mp.set.push((key, want));
            }
        }
    }
    let gpu_node = |v: &str| {
        p.gpu.is_some()
            && propstr::parse(v, "path")
                .iter()
                .any(|(k, x)| k == "path" && x == GPU_RENDER_NODE)
    };
    for (n, value) in &have {
        if !matched.contains(n) && !gpu_node(value) {
            mp.notes.push(format!(
                "dev{n} ({value}) is not in the profile: it stays (provision never removes a device on its own; `pct set VMID --delete dev{n}` does)"
            ));
        }
    }
    Ok(())
}

/// What `gpu` needs on a running container whose `render` group has ID `render_gid` inside:
/// `Some((key, value, why, pending))` when the render node's `devN` must be added (hot from
/// pve-container 6.0.4, else pending) or changed (pending), None when it is right.
pub fn plan_gpu(
    p: &Profile,
    caps: &Caps,
    cfg: &CtConfig,
    render_gid: Option<u32>,
) -> Result<Option<(String, String, String, bool)>> {
    let Some(vendor) = &p.gpu else {
        return Ok(None);
    };
    let Some(gid) = render_gid else {
        bail!(
            "gpu = {vendor:?}: the container has no `render` group, whose members may use {GPU_RENDER_NODE}; create it inside (`groupadd -r render`) or pass the device with [[devices]] and an explicit gid"
        );
    };
    let want = DeviceSpec {
        path: GPU_RENDER_NODE.into(),
        uid: None,
        gid: Some(i64::from(gid)),
        mode: Some("0660".into()),
        deny_write: None,
    }
    .value()
    .map_err(|e| anyhow::anyhow!("gpu: {e}"))?;
    let have = config_devices(cfg);
    let existing = have.iter().find(|(_, v)| {
        propstr::parse(v, "path")
            .iter()
            .any(|(k, x)| k == "path" && x == GPU_RENDER_NODE)
    });
    Ok(match existing {
        Some((_, v)) if comparable(v) == comparable(&want) => None,
        Some((n, v)) => Some((
            format!("dev{n}"),
            want.clone(),
            format!("dev{n}: {v} -> {want} (the container's render group is {gid})"),
            true,
        )),
        None => {
            let n = (0..256u32)
                .find(|n| !have.iter().any(|(m, _)| m == n))
                .ok_or_else(|| anyhow::anyhow!("container has no free device number"))?;
            Some((
                format!("dev{n}"),
                want,
                format!(
                    "dev{n}: passes the {vendor} GPU's {GPU_RENDER_NODE} with the container's render group {gid}"
                ),
                !caps.dev_hotplug,
            ))
        }
    })
}
