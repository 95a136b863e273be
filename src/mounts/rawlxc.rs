//! Devices on nodes without PVE's `devN` (pve-container before 5.0.7: PVE 7.x and 8.0): the
//! classic raw lines of the container's config, which PVE passes to LXC at start:
//! `lxc.cgroup2.devices.allow: c MAJ:MIN rwm` and
//! `lxc.mount.entry: /dev/X dev/X none bind,optional,create=file`. `pct set` refuses `lxc.*`
//! keys, so the tool writes them with a node script under PVE's config lock
//! (`src/scripts/node-raw-lxc.sh`). Every line is rendered here, from a device path checked by
//! [`super::devices::device_path`] and numbers read on the node and checked for range, and
//! checked once more as a whole before it leaves: nothing a node printed reaches a config line
//! unchecked. Pure.

use super::devices::device_path;

/// The cgroup key (cgroup v2: PVE 7.0 and later boot the unified hierarchy).
pub const ALLOW_KEY: &str = "lxc.cgroup2.devices.allow";
/// The mount key.
pub const MOUNT_KEY: &str = "lxc.mount.entry";

/// A device node as the node's `stat` saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevNode {
    /// `c` (character) or `b` (block).
    pub kind: char,
    /// Major number (Linux: 12 bits).
    pub major: u32,
    /// Minor number (Linux: 20 bits).
    pub minor: u32,
}

/// Reads `KIND MAJHEX MINHEX` (`stat -L -c '%t %T'` prints the numbers in hex) as the node
/// printed it, refusing anything else.
pub fn parse_node(kind: &str, major_hex: &str, minor_hex: &str) -> Result<DevNode, String> {
    let kind = match kind {
        "c" => 'c',
        "b" => 'b',
        other => return Err(format!("is not a device node on the node ({other})")),
    };
    let num = |s: &str, max: u32, what: &str| -> Result<u32, String> {
        if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("the node printed {s:?} for its {what} number"));
        }
        let n = u32::from_str_radix(s, 16).map_err(|e| e.to_string())?;
        if n > max {
            return Err(format!(
                "{what} number {n} is out of Linux's range (0-{max})"
            ));
        }
        Ok(n)
    };
    Ok(DevNode {
        kind,
        major: num(major_hex, 0xfff, "major")?,
        minor: num(minor_hex, 0xf_ffff, "minor")?,
    })
}

/// The two config lines (key, value) that pass `path` with the numbers `node` has.
pub fn lines(path: &str, node: DevNode) -> Result<Vec<(String, String)>, String> {
    let p = device_path(path)?;
    if p.contains(char::is_whitespace) {
        return Err(format!(
            "{p:?} contains white space, which separates the fields of lxc.mount.entry"
        ));
    }
    if !matches!(node.kind, 'c' | 'b') || node.major > 0xfff || node.minor > 0xf_ffff {
        return Err(format!("{p}: not a device number LXC takes"));
    }
    let out = vec![
        (
            ALLOW_KEY.to_string(),
            format!("{} {}:{} rwm", node.kind, node.major, node.minor),
        ),
        (
            MOUNT_KEY.to_string(),
            format!("{p} {} none bind,optional,create=file", &p[1..]),
        ),
    ];
    for (k, v) in &out {
        line_rule(k, v)?;
    }
    Ok(out)
}

/// Why a raw line may not be written, if it may not: only the two keys this module makes, a
/// value of printable ASCII on one line, no `#` (a comment to LXC), no leading or trailing
/// space (PVE trims it, so it would not read back the same).
pub fn line_rule(key: &str, value: &str) -> Result<(), String> {
    if key != ALLOW_KEY && key != MOUNT_KEY {
        return Err(format!(
            "{key:?}: provision writes only {ALLOW_KEY} and {MOUNT_KEY}"
        ));
    }
    if value.is_empty() || value.trim() != value {
        return Err(format!(
            "{key}: {value:?} is empty or has white space at an end"
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(' '..='~').contains(c) || *c == '#')
    {
        return Err(format!(
            "{key}: {value:?} contains {c:?}; a config line is one line of printable text"
        ));
    }
    Ok(())
}

/// The raw `lxc.*` lines of `pct config` output, in order, as PVE prints them (`key: value`,
/// after the sorted keys).
pub fn parse_pct_config(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| l.starts_with("lxc."))
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Fails unless every written line is shown by `pct config` exactly as written.
pub fn check_round_trip(
    written: &[(String, String)],
    shown: &[(String, String)],
) -> anyhow::Result<()> {
    let missing: Vec<String> = written
        .iter()
        .filter(|l| !shown.contains(l))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "the config was written but `pct config` does not show: {}",
            missing.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NULL: DevNode = DevNode {
        kind: 'c',
        major: 1,
        minor: 3,
    };

    #[test]
    fn renders_the_classic_lines() {
        assert_eq!(
            lines("/dev/dri/renderD128", parse_node("c", "e2", "80").unwrap()).unwrap(),
            vec![
                (ALLOW_KEY.to_string(), "c 226:128 rwm".to_string()),
                (
                    MOUNT_KEY.to_string(),
                    "/dev/dri/renderD128 dev/dri/renderD128 none bind,optional,create=file"
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn refuses_hostile_paths_and_numbers() {
        for bad in [
            "/dev/x y",
            "/dev/x\nlxc.apparmor.profile: unconfined",
            "/dev/../etc/shadow",
            "/etc/shadow",
            "/dev/x#",
            "/dev/\u{e9}",
        ] {
            assert!(lines(bad, NULL).is_err(), "{bad:?}");
        }
        for (k, a, b) in [
            ("p", "1", "3"),
            ("c", "1000", "3"),
            ("c", "1", "100000"),
            ("c", "-1", "3"),
            ("c", "1 rwm\n", "3"),
            ("c", "", "3"),
        ] {
            assert!(parse_node(k, a, b).is_err(), "{k} {a} {b}");
        }
        assert!(line_rule("lxc.apparmor.profile", "unconfined").is_err());
        assert!(line_rule(ALLOW_KEY, "a").is_ok());
        assert!(line_rule(ALLOW_KEY, "a ").is_err());
    }

    #[test]
    fn pct_config_lines_are_read_in_order() {
        let t = "arch: amd64\nhostname: a\nlxc.cgroup2.devices.allow: c 1:3 rwm\nlxc.mount.entry: /dev/x dev/x none bind,optional,create=file\n";
        assert_eq!(parse_pct_config(t).len(), 2);
        assert_eq!(parse_pct_config(t)[0].1, "c 1:3 rwm");
    }
}
