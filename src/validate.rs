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

/// One PVE tag: `^[a-z0-9_][a-z0-9_\-\+\.]*$`, case-insensitive (PVE stores it lower-cased,
/// and so does provision).
pub fn tag(t: &str) -> Rule {
    let lower = t.to_ascii_lowercase();
    let b = lower.as_bytes();
    let ok = !b.is_empty()
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-+.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{t:?} is not a valid tag: tags are letters, digits and `_`, then also `-`, `+`, `.` (PVE: ^[a-z0-9_][a-z0-9_\\-\\+\\.]*$, case-insensitive)"
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
        Ok(n) if (8..=32).contains(&n) && !len.starts_with('+') => Ok(()),
        Ok(n) if n < 8 => Err(format!(
            "{s:?}: a prefix length of {n} is refused by PVE (\"value does not look like a valid IPv4 CIDR network\"): 8 to 32"
        )),
        _ => Err(err()),
    }
}

/// IPv6 with a prefix length.
pub fn ipv6_cidr(s: &str) -> Rule {
    let err = || format!("{s:?} is not an IPv6 address with prefix length, like fd00::5/64");
    let (addr, len) = s.split_once('/').ok_or_else(err)?;
    addr.parse::<Ipv6Addr>().map_err(|_| err())?;
    match len.parse::<u8>() {
        Ok(n) if (8..=128).contains(&n) && !len.starts_with('+') => Ok(()),
        Ok(n) if n < 8 => Err(format!(
            "{s:?}: a prefix length of {n} is refused by PVE (\"value does not look like a valid IPv6 CIDR network\"): 8 to 128"
        )),
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

/// Time zone names that PVE accepts besides `UTC` and `host`: the third column of the node's
/// `/usr/share/zoneinfo/zone.tab` (pve-common `pve_verify_timezone`). `Etc/UTC` and `GMT` are
/// not in it: PVE refuses them.
const ZONES: &str = include_str!("data/zones.txt");

/// Timezone: `host`, `UTC` or a zone.tab name like `Europe/Berlin`, as pct decides.
pub fn timezone(s: &str) -> Rule {
    let ok = s == "host"
        || s == "UTC"
        || ZONES
            .lines()
            .filter(|l| !l.starts_with('#'))
            .any(|z| z == s);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a timezone PVE accepts (PVE says \"invalid time zone\"): `host`, `UTC` or a name from zone.tab like Europe/Berlin"
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
    normal_container_path(s).map(|_| ())
}

/// The one normal form of a container path, after [`container_path`]'s rules: `//` collapsed,
/// `.` components dropped (`/etc/docker/./daemon.json`, `//etc//docker/daemon.json` and
/// `/etc/docker/daemon.json/.` are all `/etc/docker/daemon.json`). Profiles store this form, so
/// that every later check (managed paths, duplicates, staging names) compares one spelling.
pub fn normal_container_path(s: &str) -> Result<String, String> {
    path_rules(s)?;
    let parts: Vec<&str> = s
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() {
        return Err(format!(
            "{s:?} names the root directory; give the file's path"
        ));
    }
    Ok(format!("/{}", parts.join("/")))
}

fn path_rules(s: &str) -> Rule {
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

/// SSH public keys as PVE checks them: every non-blank line must be accepted by
/// `ssh-keygen -l` (pve-common `validate_ssh_public_keys`), i.e. an authorized_keys line:
/// optional options (`from="..."`, `no-pty`...), a key type, its base64 body whose own type
/// matches and whose key is well-formed (RSA of at least 1024 bits, ED25519 of 32 bytes, ECDSA
/// on its named curve), then an optional comment. A comment line alone is refused, as
/// ssh-keygen finds no key in it.
pub fn ssh_public_key(s: &str) -> Rule {
    for line in s.lines().filter(|l| !l.trim().is_empty()) {
        sshkey::check_line(line).map_err(|why| {
            format!("not an SSH public key ({why}); PVE says \"SSH public key validation error\" (it runs ssh-keygen -l on each line): give lines like `ssh-ed25519 AAAA... comment`")
        })?;
    }
    if s.contains(['\r', '\0']) {
        return Err("an SSH public key contains a carriage return or NUL".into());
    }
    Ok(())
}

mod sshkey {
    use base64::Engine as _;

    /// Why one authorized_keys line is not a key ssh-keygen would print.
    pub fn check_line(line: &str) -> Result<(), String> {
        let line = line.trim();
        if line.starts_with('#') {
            return Err("a comment line holds no key".into());
        }
        let (kind, body) = match split_key(line) {
            Some(kb) => kb,
            None => {
                // Options first: skip them (quoted strings may hold spaces), then try again.
                let rest = skip_options(line).ok_or("options are not closed")?;
                split_key(rest).ok_or("no key type and base64 body after the options")?
            }
        };
        let blob = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| format!("the body of the {kind} key is not base64"))?;
        let mut r = Reader(&blob);
        let inner = r.string()?;
        if inner != kind.as_bytes() {
            return Err(format!("the key body is not a {kind} key"));
        }
        match kind {
            "ssh-ed25519" => fixed(&mut r, 32, kind)?,
            "sk-ssh-ed25519@openssh.com" => {
                fixed(&mut r, 32, kind)?;
                r.string()?;
            }
            "ssh-rsa" => {
                r.string()?; // e
                let n = r.string()?;
                let bits = mpint_bits(n);
                if bits < 1024 {
                    return Err(format!("an RSA key of {bits} bits (at least 1024)"));
                }
            }
            k if k.starts_with("ecdsa-sha2-") || k == "sk-ecdsa-sha2-nistp256@openssh.com" => {
                let curve = r.string()?;
                let (name, len) = match curve {
                    b"nistp256" => ("nistp256", 65),
                    b"nistp384" => ("nistp384", 97),
                    b"nistp521" => ("nistp521", 133),
                    _ => return Err("an unknown ECDSA curve".into()),
                };
                if !k.contains(name) {
                    return Err(format!("the key's curve is not the one {k} names"));
                }
                let point = r.string()?;
                if point.len() != len || point[0] != 4 {
                    return Err("an ECDSA point of the wrong size".into());
                }
                if k.starts_with("sk-") {
                    r.string()?;
                }
            }
            "ssh-dss" => {
                return Err("a DSA key: OpenSSH 10 (PVE 9) no longer reads them".into());
            }
            _ => return Err(format!("the key type {kind:?} is not one OpenSSH knows")),
        }
        if !r.0.is_empty() {
            return Err("bytes left over after the key".into());
        }
        Ok(())
    }

    const TYPES: &[&str] = &[
        "ssh-ed25519",
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];

    fn split_key(s: &str) -> Option<(&str, &str)> {
        let mut w = s.split_whitespace();
        let kind = w.next()?;
        let body = w.next()?;
        TYPES.contains(&kind).then_some((kind, body))
    }

    /// The rest of the line after an options field (commas and quoted strings, no spaces outside
    /// quotes).
    fn skip_options(s: &str) -> Option<&str> {
        let mut quoted = false;
        for (i, c) in s.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ' ' | '\t' if !quoted => return Some(s[i..].trim_start()),
                _ => {}
            }
        }
        None
    }

    fn fixed(r: &mut Reader<'_>, len: usize, kind: &str) -> Result<(), String> {
        let k = r.string()?;
        if k.len() == len {
            Ok(())
        } else {
            Err(format!("a {kind} key of {} bytes (must be {len})", k.len()))
        }
    }

    fn mpint_bits(n: &[u8]) -> usize {
        let n = match n.iter().position(|b| *b != 0) {
            Some(i) => &n[i..],
            None => return 0,
        };
        n.len() * 8 - n[0].leading_zeros() as usize
    }

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn string(&mut self) -> Result<&'a [u8], String> {
            let short = || "the key body is cut short".to_string();
            let (len, rest) = self.0.split_first_chunk::<4>().ok_or_else(short)?;
            let len = u32::from_be_bytes(*len) as usize;
            if rest.len() < len {
                return Err(short());
            }
            let (s, rest) = rest.split_at(len);
            self.0 = rest;
            Ok(s)
        }
    }
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

/// A container description: PVE keeps it as comment lines, so several lines are fine; other
/// control characters (escape sequences, carriage returns, NUL) are not.
pub fn description(s: &str) -> Rule {
    if s.chars().any(|c| c.is_control() && c != '\t' && c != '\n') {
        Err(format!(
            "{s:?} contains a control character other than newline and tab (escape, carriage return, NUL...)"
        ))
    } else {
        Ok(())
    }
}

/// DNS search domains (`dns-name-list`): one or more domain names separated by spaces, commas or
/// semicolons, as PVE splits them.
pub fn search_domains(s: &str) -> Rule {
    let names: Vec<&str> = s.split([' ', ',', ';']).filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err("no search domain given".into());
    }
    for n in names {
        hostname(n).map_err(|m| m.replace("hostname", "search domain"))?;
    }
    Ok(())
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
        assert!(tag("Docker").is_ok() && tag("a,b").is_err() && tag("-a").is_err());
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
        assert!(ssh_public_key(ED25519).is_ok());
        assert!(ssh_public_key("hello").is_err());
        assert!(timezone("Europe/Berlin").is_ok() && timezone("../etc").is_err());
        assert!(timezone("UTC").is_ok() && timezone("host").is_ok());
        assert!(timezone("-x").is_err() && timezone("+1").is_err() && timezone("").is_err());
        assert!(container_path("/opt/my app/conf.d/a-b_c+1@x:y,z=%~.conf").is_ok());
        for (spelled, normal) in [
            ("/etc/docker/./daemon.json", "/etc/docker/daemon.json"),
            ("//etc/docker/daemon.json", "/etc/docker/daemon.json"),
            ("/etc//docker/daemon.json", "/etc/docker/daemon.json"),
            ("/etc/docker/daemon.json/.", "/etc/docker/daemon.json"),
            (
                "/./usr/./local//bin/fuse-overlayfs",
                "/usr/local/bin/fuse-overlayfs",
            ),
            ("/var/lib/provision/./state", "/var/lib/provision/state"),
            ("/etc/motd", "/etc/motd"),
            ("/a/.b/..c", "/a/.b/..c"),
        ] {
            assert_eq!(
                normal_container_path(spelled).as_deref(),
                Ok(normal),
                "{spelled}"
            );
        }
        for bad in [
            "/",
            "//",
            "/.",
            "/./",
            "/a/b/..",
            "/a/./../b",
            "/etc/docker/",
        ] {
            assert!(normal_container_path(bad).is_err(), "{bad:?}");
        }
        assert!(vmid(99).is_err() && vmid(100).is_ok());
    }

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPa/oTsJUg7XJyJvZNihU3R/KM5fBM9qNjI8poTTb80t t@x";
    const RSA1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC9qGoxNUXCfJLYFQmiUwBfG5q9ltwdjNSUxHqZG2sPz/W4kK5M158gxtYuYxCqm90NdpHcQWmAs5TR5cwPFxrBA2in4Ey13tfDsl6Gtjsj4blj2glw+OEiXzzAU2EeBr8nDLPip+02ubdityXk174yU/tA11LJDPpKs2lZIIwmAw== r@x";
    const ECDSA256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBBn/2LyJ674aPaNx/Yh7hHvnf/CGKyvgGW9ojwgmysGmJBu14yufeudqc+iXBFlvXE4qPYhcKN/2DmFy+l8CskM= e@x";

    #[test]
    fn ssh_keys_are_judged_like_ssh_keygen() {
        for ok in [ED25519, RSA1024, ECDSA256] {
            assert!(ssh_public_key(ok).is_ok(), "{ok}");
        }
        // Options before the key, several lines, blank lines: accepted as PVE does.
        let with_opts = format!("from=\"10.0.0.0/8,192.168.1.1\",no-pty {ED25519}");
        assert!(ssh_public_key(&with_opts).is_ok());
        let quoted_space = format!("command=\"echo a b\" {ED25519}");
        assert!(ssh_public_key(&quoted_space).is_ok());
        let several = format!("{ED25519}\n\n{ECDSA256}\n");
        assert!(ssh_public_key(&several).is_ok());
        // What ssh-keygen -l refuses: a cut body, a body of another type, a comment line, a
        // truncated key, an unknown type.
        for bad in [
            "ssh-ed25519 AAAA".to_string(),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@x".to_string(),
            ED25519.replace("ssh-ed25519", "ssh-rsa"),
            format!("# my key\n{ED25519}"),
            ED25519.replace("AAAAI", "AAAAH"),
            format!("ssh-foo {}", &ED25519[12..]),
            "ssh-ed25519 !!!notbase64".to_string(),
        ] {
            let e = ssh_public_key(&bad).unwrap_err();
            assert!(e.contains("SSH public key validation error"), "{bad}: {e}");
        }
    }

    #[test]
    fn time_zones_and_prefixes_are_judged_like_pct() {
        assert!(timezone("America/Argentina/Buenos_Aires").is_ok());
        for bad in ["Etc/UTC", "Etc/GMT+1", "GMT", "utc", "Europe/Nowhere"] {
            let e = timezone(bad).unwrap_err();
            assert!(e.contains("invalid time zone"), "{bad}: {e}");
        }
        assert!(ipv4_cidr("10.0.0.5/8").is_ok() && ipv4_cidr("10.0.0.5/32").is_ok());
        let e = ipv4_cidr("10.0.0.5/7").unwrap_err();
        assert!(e.contains("valid IPv4 CIDR network"), "{e}");
        assert!(ipv4_cidr("10.0.0.5/0").is_err());
        assert!(ipv6_cidr("fd00::5/7").is_err() && ipv6_cidr("fd00::5/8").is_ok());
    }
}
