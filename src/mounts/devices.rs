//! Device passthrough (`[[devices]]`): PVE's `devN` (pve-container 5.0.7 and later), checked as
//! PVE checks it and rendered through the one property-string renderer ([`super::propstr`]).
//! Pure; which `devN` a device gets is the planner's business (`plan::devices`).

use super::propstr;
use crate::validate;
use serde::{Deserialize, Serialize};

/// The render node `gpu = "intel" | "amd"` passes (VA-API, QSV, AMF: what media servers use).
pub const GPU_RENDER_NODE: &str = "/dev/dri/renderD128";

/// One device as written (`[[devices]]`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// The device node on the node, under /dev (it appears at the same path inside).
    pub path: String,
    /// Owner of the node inside the container (default root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// Group of the node inside the container (default root): give the group whose members
    /// may use it, as the container numbers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<i64>,
    /// Access mode, octal like "0660" (PVE's default: the node's own mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Read-only for the container (pve-container 5.2.0 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny_write: Option<bool>,
}

impl DeviceSpec {
    /// The `devN` value, keys in the order PVE prints them (path first, then sorted).
    pub fn value(&self) -> Result<String, String> {
        let mut rest: Vec<(&str, String)> = Vec::new();
        if let Some(d) = self.deny_write {
            rest.push(("deny-write", if d { "1" } else { "0" }.into()));
        }
        if let Some(g) = self.gid {
            rest.push(("gid", g.to_string()));
        }
        if let Some(m) = &self.mode {
            rest.push(("mode", m.clone()));
        }
        if let Some(u) = self.uid {
            rest.push(("uid", u.to_string()));
        }
        propstr::render(&self.path, &rest)
    }
}

/// A device path: absolute, normal, under /dev (not /dev itself), nothing a property string or
/// a config line would split. Returns the normal spelling.
pub fn device_path(s: &str) -> Result<String, String> {
    if s.split('/').any(|p| p == "." || p == "..") {
        return Err(format!(
            "{s:?} contains a `.` or `..` component; give the device's own path under /dev"
        ));
    }
    let n = validate::normal_container_path(s)?;
    propstr::value_rule(&n)?;
    if !n.starts_with("/dev/") {
        return Err(format!(
            "{n:?} is not under /dev: PVE passes device nodes (`/dev/dri/renderD128`), not files or directories (use [[mounts]] for those)"
        ));
    }
    Ok(n)
}

/// Every problem of a list of devices, as (field, message) pairs (`devices[0].path`, ...).
pub fn check(specs: &[DeviceSpec]) -> Vec<(String, String)> {
    let mut er = Vec::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, d) in specs.iter().enumerate() {
        let f = |k: &str| format!("devices[{i}].{k}");
        match device_path(&d.path) {
            Err(e) => er.push((f("path"), e)),
            Ok(n) => {
                if let Some((_, j)) = seen.iter().find(|(p, _)| *p == n) {
                    er.push((f("path"), format!("{n:?} is also the path of devices[{j}]")));
                }
                seen.push((n, i));
            }
        }
        for (k, v) in [("uid", d.uid), ("gid", d.gid)] {
            if let Some(v) = v
                && !(0..i64::from(super::ID_RANGE)).contains(&v)
            {
                er.push((
                    f(k),
                    format!("{v} is out of range: a container's IDs are 0 to 65535"),
                ));
            }
        }
        if let Some(m) = &d.mode {
            let ok = m.len() == 4
                && m.starts_with('0')
                && m[1..].bytes().all(|b| (b'0'..=b'7').contains(&b));
            if !ok {
                er.push((
                    f("mode"),
                    format!("{m:?} is not an octal mode like \"0660\" (PVE's pattern 0[0-7]{{3}})"),
                ));
            }
        }
    }
    if specs.len() > 256 {
        er.push((
            "devices".into(),
            "PVE has 256 devices (dev0 to dev255)".into(),
        ));
    }
    er
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(path: &str) -> DeviceSpec {
        DeviceSpec {
            path: path.into(),
            uid: None,
            gid: Some(104),
            mode: Some("0660".into()),
            deny_write: None,
        }
    }

    #[test]
    fn renders_as_pve_prints_it() {
        assert_eq!(
            dev("/dev/dri/renderD128").value().unwrap(),
            "/dev/dri/renderD128,gid=104,mode=0660"
        );
    }

    #[test]
    fn refuses_what_is_not_a_device_path() {
        for bad in [
            "/etc/shadow",
            "/dev",
            "dev/null",
            "/dev/../etc/shadow",
            "/dev/null,mode=0666",
            "/dev/x=y",
        ] {
            assert!(!check(&[dev(bad)]).is_empty(), "{bad:?}");
        }
        let mut d = dev("/dev/null");
        d.mode = Some("666".into());
        d.gid = Some(-1);
        assert_eq!(check(&[d]).len(), 2);
    }
}
