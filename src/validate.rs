//! Value rules that a Proxmox VE node enforces (and a few it should), checked here first.
//!
//! Each function returns `Err(rule)` with the rule in words, so that the caller can say which
//! file, line and field broke it. The rules follow pve-reference.md and the pct schemas; where PVE
//! is looser than a good tool (63-character DNS labels), the stricter rule is taken.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A rule that a value broke, in words.
pub type Rule = Result<(), String>;

/// VMID: 100..=999999999.
pub fn vmid(v: i64) -> Rule {
    if (100..=999_999_999).contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "VMID {v} is out of range: PVE accepts 100 to 999999999"
        ))
    }
}

/// Hostname: DNS labels `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?` of at most 63 chars, joined by
/// dots, at most 255 chars in all.
pub fn hostname(h: &str) -> Rule {
    const RULE: &str = "a hostname is DNS labels of letters, digits and inner hyphens (at most 63 characters each) joined by dots, e.g. `web-1` or `web-1.lab`; no underscores, spaces or other characters";
    if h.is_empty() || h.len() > 255 {
        return Err(format!("{h:?} is not a valid hostname: {RULE}"));
    }
    for label in h.split('.') {
        let b = label.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
        if !ok {
            return Err(format!("{h:?} is not a valid hostname: {RULE}"));
        }
    }
    Ok(())
}

/// One PVE tag: `^[a-z0-9_][a-z0-9_\-\+\.]*$` (PVE lower-cases; we require lower case so that
/// what is written is what PVE stores).
pub fn tag(t: &str) -> Rule {
    let b = t.as_bytes();
    let ok = !b.is_empty()
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-+.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{t:?} is not a valid tag: tags are lower-case letters, digits and `_`, then also `-`, `+`, `.` (PVE: ^[a-z0-9_][a-z0-9_\\-\\+\\.]*$)"
        ))
    }
}

/// Storage ID: at least 2 chars, `^[a-z][a-z0-9\-\_\.]*[a-z0-9]$` (case-insensitive).
pub fn storage_id(s: &str) -> Rule {
    let b = s.to_ascii_lowercase().into_bytes();
    let ok = b.len() >= 2
        && b[0].is_ascii_lowercase()
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid storage ID: at least 2 characters, a letter first, then letters, digits, `-`, `_`, `.`, ending in a letter or digit"
        ))
    }
}

/// Bridge name: `^[-_.\w\d]+$`.
pub fn bridge(s: &str) -> Rule {
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
    {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid bridge name: letters, digits, `-`, `_`, `.` only (e.g. vmbr0)"
        ))
    }
}

/// IPv4 with a prefix length, e.g. `10.0.0.5/24`.
pub fn ipv4_cidr(s: &str) -> Rule {
    let err = || format!("{s:?} is not an IPv4 address with prefix length, like 192.168.1.20/24");
    let (addr, len) = s.split_once('/').ok_or_else(err)?;
    addr.parse::<Ipv4Addr>().map_err(|_| err())?;
    match len.parse::<u8>() {
        Ok(n) if n <= 32 && !len.starts_with('+') => Ok(()),
        _ => Err(err()),
    }
}

/// IPv6 with a prefix length.
pub fn ipv6_cidr(s: &str) -> Rule {
    let err = || format!("{s:?} is not an IPv6 address with prefix length, like fd00::5/64");
    let (addr, len) = s.split_once('/').ok_or_else(err)?;
    addr.parse::<Ipv6Addr>().map_err(|_| err())?;
    match len.parse::<u8>() {
        Ok(n) if n <= 128 && !len.starts_with('+') => Ok(()),
        _ => Err(err()),
    }
}

/// net0 `ip=`: `dhcp`, `manual` or IPv4/CIDR.
pub fn ip_config(s: &str) -> Rule {
    match s {
        "dhcp" | "manual" => Ok(()),
        _ => ipv4_cidr(s).map_err(|e| format!("{e}; or `dhcp` or `manual`")),
    }
}

/// net0 `ip6=`: `auto`, `dhcp`, `manual` or IPv6/CIDR.
pub fn ip6_config(s: &str) -> Rule {
    match s {
        "auto" | "dhcp" | "manual" => Ok(()),
        _ => ipv6_cidr(s).map_err(|e| format!("{e}; or `auto`, `dhcp` or `manual`")),
    }
}

/// A plain IPv4 address.
pub fn ipv4(s: &str) -> Rule {
    s.parse::<Ipv4Addr>()
        .map(|_| ())
        .map_err(|_| format!("{s:?} is not an IPv4 address, like 192.168.1.1"))
}

/// A plain IPv6 address.
pub fn ipv6(s: &str) -> Rule {
    s.parse::<Ipv6Addr>()
        .map(|_| ())
        .map_err(|_| format!("{s:?} is not an IPv6 address, like fd00::1"))
}

/// An IPv4 or IPv6 address (nameservers).
pub fn ip_any(s: &str) -> Rule {
    if s.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(format!("{s:?} is not an IP address"))
    }
}

/// A MAC address with the I/G bit not set.
pub fn mac(s: &str) -> Rule {
    let parts: Vec<&str> = s.split(':').collect();
    let hex_ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()));
    if !hex_ok {
        return Err(format!("{s:?} is not a MAC address like BC:24:11:00:00:01"));
    }
    let first = u8::from_str_radix(parts[0], 16).unwrap_or(1);
    if first & 1 == 1 {
        return Err(format!(
            "{s:?} is a group (multicast) MAC address; the first octet must be even"
        ));
    }
    Ok(())
}

/// Timezone: `host` or a zoneinfo name like `Europe/Berlin` (letters, digits, `/_+-`), starting
/// with a letter (a leading `-` would read as an option to the program it is passed to).
pub fn timezone(s: &str) -> Rule {
    let ok = s == "host"
        || (s.starts_with(|c: char| c.is_ascii_alphabetic())
            && !s.split('/').any(|p| p.is_empty() || p == "." || p == "..")
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"/_+-".contains(&c)));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a timezone: `host` or a zoneinfo name like Europe/Berlin"
        ))
    }
}

/// Characters a path written by provision never needs and a shell would act on.
const SHELL_SPECIAL: &[char] = &[
    '$', '`', '\\', '"', '\'', ';', '&', '|', '<', '>', '*', '?', '(', ')', '{', '}', '[', ']',
];

/// An absolute path inside a container: no `..`, no control characters (tab, escape, newline...)
/// or other whitespace than the space, no shell metacharacters, not a directory.
pub fn container_path(s: &str) -> Rule {
    if !s.starts_with('/') {
        return Err(format!(
            "{s:?} is not an absolute path (it must start with /)"
        ));
    }
    if s.split('/').any(|p| p == "..") {
        return Err(format!("{s:?} contains `..`; give the path without it"));
    }
    if s.chars()
        .any(|c| c.is_control() || (c.is_whitespace() && c != ' '))
    {
        return Err(format!(
            "{s:?} contains a control character (newline, tab, escape...)"
        ));
    }
    if let Some(c) = s.chars().find(|c| SHELL_SPECIAL.contains(c)) {
        return Err(format!(
            "{s:?} contains {c:?}, a shell metacharacter; provision does not write such paths"
        ));
    }
    if s.ends_with('/') {
        return Err(format!("{s:?} names a directory; give the file's path"));
    }
    Ok(())
}

/// An SSH public key line: `type base64 [comment]`, one line.
pub fn ssh_public_key(s: &str) -> Rule {
    let mut words = s.split_whitespace();
    let kind = words.next().unwrap_or("");
    let body = words.next().unwrap_or("");
    let known =
        kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-") || kind.starts_with("sk-");
    if s.contains(['\n', '\r', '\0']) || !known || body.is_empty() {
        return Err(
            "not an SSH public key: one line like `ssh-ed25519 AAAA... comment`".to_string(),
        );
    }
    Ok(())
}

/// Text that ends up inside a command or property string: no control characters.
pub fn plain_text(s: &str) -> Rule {
    if s.chars().any(|c| c.is_control() && c != '\t') {
        Err(format!(
            "{s:?} contains a control character (newline, NUL...)"
        ))
    } else {
        Ok(())
    }
}

/// A hex SHA-256.
pub fn sha256_hex(s: &str) -> Rule {
    if s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!("{s:?} is not a SHA-256: 64 hexadecimal digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        for ok in ["a", "web-1", "web-1.lab.example", "x1", &"a".repeat(63)] {
            assert!(hostname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "bad_name!",
            "-a",
            "a-",
            "a..b",
            "a b",
            "a\nb",
            &"a".repeat(64),
            "é",
        ] {
            assert!(hostname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tags_storage_bridge() {
        assert!(tag("provision").is_ok() && tag("_x+1.a-b").is_ok());
        assert!(tag("Docker").is_err() && tag("a,b").is_err() && tag("-a").is_err());
        assert!(storage_id("local-lvm").is_ok() && storage_id("a").is_err());
        assert!(storage_id("x,size=1").is_err());
        assert!(bridge("vmbr0").is_ok() && bridge("vmbr0,tag=5").is_err());
    }

    #[test]
    fn addresses() {
        assert!(ip_config("dhcp").is_ok() && ip_config("10.0.0.5/24").is_ok());
        assert!(ip_config("10.0.0.5").is_err() && ip_config("10.0.0.5/33").is_err());
        assert!(ip_config("notanip").is_err() && ip_config("10.0.0.5/+4").is_err());
        assert!(ip6_config("auto").is_ok() && ip6_config("fd00::5/64").is_ok());
        assert!(mac("BC:24:11:00:00:01").is_ok() && mac("01:00:00:00:00:00").is_err());
    }

    #[test]
    fn paths_and_keys() {
        assert!(container_path("/etc/motd").is_ok());
        for bad in [
            "etc/motd",
            "/etc/../x",
            "/etc/",
            "/a\nb",
            "/a\tb",
            "/a\u{1b}[2Jb",
            "/a\u{2028}b",
            "/tmp/$(id)",
            "/tmp/`id`",
            "/tmp/a;b",
            "/tmp/a|b",
            "/tmp/*",
        ] {
            assert!(container_path(bad).is_err(), "{bad:?}");
        }
        assert!(ssh_public_key("ssh-ed25519 AAAAC3Nz me@x").is_ok());
        assert!(ssh_public_key("hello").is_err());
        assert!(timezone("Europe/Berlin").is_ok() && timezone("../etc").is_err());
        assert!(timezone("Etc/GMT+1").is_ok() && timezone("host").is_ok());
        assert!(timezone("-x").is_err() && timezone("+1").is_err() && timezone("").is_err());
        assert!(container_path("/opt/my app/conf.d/a-b_c+1@x:y,z=%~.conf").is_ok());
        assert!(vmid(99).is_err() && vmid(100).is_ok());
    }
}
