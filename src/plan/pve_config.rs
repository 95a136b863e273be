//! The container's PVE configuration as strings PVE accepts (`features`, `net0`, `tags`, sizes),
//! the options of `pct create`, and the comparison of wanted and current values that ignores
//! PVE's normalisation.

use super::*;

/// Formats GiB like PVE accepts (`8`, `0.5`).
pub fn fmt_gib(g: f64) -> String {
    let s = format!("{g:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn bool01(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

/// The features property string for a profile (only enabled features, sorted).
pub fn features_string(p: &Profile) -> String {
    let f = &p.features;
    let mut v = Vec::new();
    for (k, on) in [
        ("fuse", f.fuse),
        ("keyctl", f.keyctl),
        ("mknod", f.mknod),
        ("nesting", f.nesting),
    ] {
        if on {
            v.push(format!("{k}=1"));
        }
    }
    v.join(",")
}

/// The net0 property string for a profile.
pub fn net0_string(p: &Profile, keep_hwaddr: Option<&str>) -> String {
    let n = &p.network;
    let mut v = vec!["name=eth0".to_string(), format!("bridge={}", n.bridge)];
    if n.firewall {
        v.push("firewall=1".into());
    }
    if let Some(g) = &n.gateway {
        v.push(format!("gw={g}"));
    }
    if let Some(g) = &n.gateway6 {
        v.push(format!("gw6={g}"));
    }
    if let Some(h) = n.hwaddr.as_deref().or(keep_hwaddr) {
        v.push(format!("hwaddr={h}"));
    }
    v.push(format!("ip={}", n.ip));
    if let Some(i) = &n.ip6 {
        v.push(format!("ip6={i}"));
    }
    if let Some(m) = n.mtu {
        v.push(format!("mtu={m}"));
    }
    if let Some(t) = n.vlan {
        v.push(format!("tag={t}"));
    }
    v.push("type=veth".into());
    v.join(",")
}

/// Tags as PVE stores them, with the tool's own.
pub fn tags_string(p: &Profile) -> String {
    let mut t = p.tags.clone();
    t.push(TOOL_TAG.to_string());
    t.sort();
    t.dedup();
    t.join(";")
}

/// The configuration keys the profile decides, as PVE stores them (no rootfs, no net0 hwaddr).
pub fn desired_config(p: &Profile) -> Vec<(String, String)> {
    let mut v = vec![
        ("cores".to_string(), p.cores.to_string()),
        ("memory".to_string(), p.memory.to_string()),
        ("swap".to_string(), p.swap.to_string()),
        ("onboot".to_string(), bool01(p.onboot)),
        ("tags".to_string(), tags_string(p)),
        ("features".to_string(), features_string(p)),
        ("net0".to_string(), net0_string(p, None)),
    ];
    if !p.nameserver.is_empty() {
        v.push(("nameserver".into(), p.nameserver.join(" ")));
    }
    if let Some(s) = &p.searchdomain {
        v.push(("searchdomain".into(), s.clone()));
    }
    if let Some(t) = &p.timezone {
        v.push(("timezone".into(), t.clone()));
    }
    if !p.description.is_empty() {
        v.push((
            "description".into(),
            format!("{}{}", p.description, crate::profile::DESCRIPTION_SUFFIX),
        ));
    }
    v
}

/// The `pct create` options for a profile, in a stable order.
pub fn create_options(p: &Profile, hostname: &str, has_keys: bool) -> Vec<(String, String)> {
    let mut o = vec![
        ("hostname".to_string(), hostname.to_string()),
        ("unprivileged".to_string(), bool01(p.unprivileged)),
    ];
    let feats = features_string(p);
    if !feats.is_empty() {
        o.push(("features".into(), feats));
    }
    o.push((
        "rootfs".into(),
        format!("{}:{}", p.rootfs.storage, fmt_gib(p.rootfs.size)),
    ));
    o.push(("net0".into(), net0_string(p, None)));
    o.push(("cores".into(), p.cores.to_string()));
    o.push(("memory".into(), p.memory.to_string()));
    o.push(("swap".into(), p.swap.to_string()));
    o.push(("onboot".into(), bool01(p.onboot)));
    o.push(("tags".into(), tags_string(p)));
    if !p.nameserver.is_empty() {
        o.push(("nameserver".into(), p.nameserver.join(" ")));
    }
    if let Some(s) = &p.searchdomain {
        o.push(("searchdomain".into(), s.clone()));
    }
    if let Some(t) = &p.timezone {
        o.push(("timezone".into(), t.clone()));
    }
    if !p.description.is_empty() {
        o.push((
            "description".into(),
            format!("{}{}", p.description, crate::profile::DESCRIPTION_SUFFIX),
        ));
    }
    if has_keys {
        o.push(("ssh-public-keys".into(), String::new()));
    }
    o
}

/// Compares one key; returns a description of the difference, if any.
pub(super) fn differs(key: &str, want: &str, have: Option<&str>) -> Option<String> {
    let have_s = have.unwrap_or("");
    let same = match key {
        // Tags someone else added to the container stay; only missing ones count.
        "tags" => {
            let have = split_tags(have_s);
            split_tags(want).iter().all(|t| have.contains(t))
        }
        "features" => {
            let on = |s: &str| {
                let mut v: Vec<String> = parse_property_string(s, "")
                    .into_iter()
                    .filter(|(_, v)| v == "1")
                    .map(|(k, _)| k)
                    .collect();
                v.sort();
                v
            };
            on(want) == on(have_s)
        }
        "net0" => {
            let norm = |s: &str| {
                let mut m = parse_property_string(s, "name");
                m.remove("hwaddr");
                m.entry("type".into()).or_insert_with(|| "veth".into());
                if m.get("firewall").map(String::as_str) == Some("0") {
                    m.remove("firewall");
                }
                m
            };
            let w = parse_property_string(want, "name");
            let h = parse_property_string(have_s, "name");
            norm(want) == norm(have_s)
                && w.get("hwaddr")
                    .is_none_or(|x| h.get("hwaddr").is_some_and(|y| y.eq_ignore_ascii_case(x)))
        }
        "onboot" => (have_s == "1") == (want == "1"),
        // PVE keeps the description as comment lines: compare the text, not its line ends.
        "description" => have_s.trim() == want.trim(),
        "swap" => have.unwrap_or("512") == want,
        _ => have_s == want,
    };
    (!same).then(|| format!("{key}: {} -> {want}", have.unwrap_or("(unset)")))
}
