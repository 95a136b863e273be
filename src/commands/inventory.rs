//! `provision inventory FILE --format json|ansible|ssh-config [-o OUT]`: the lab file's
//! containers as CI tools consume them.
//!
//! It reads what `provision status` reads (read-only; addresses from
//! `pvesh get /nodes/NODE/lxc/VMID/interfaces` of each running container) and writes:
//! - `json`: one document, every container with VMID, node, state, address(es), groups and
//!   how to reach it;
//! - `ansible`: an Ansible inventory in YAML. Every container is a host of `all` with
//!   `ansible_host`, `ansible_user: root`, and `provision_vmid`/`provision_node`/
//!   `provision_state`; groups come from the entries' PVE tags (without `provision`) and from
//!   counted entries (`runner-{n}` makes group `runner`), renamed to Ansible's rules
//!   (letters, digits, `_`);
//! - `ssh-config`: one OpenSSH `Host NAME` block per container that has an address, with
//!   `HostName`, `User root`, `Port` (when not 22) and `IdentityFile` when it is known (the
//!   profile's `access.identity`, else the first `--identity`).
//!
//! Reaching containers behind the node: when the node is reached over SSH (`--host` or an
//! entry's `host`), the containers' addresses are on the node's bridge, which the node reaches
//! by construction and the machine running provision often does not. Then each host gets
//! `ProxyJump` to that node (ssh-config) or `ansible_ssh_common_args: -o ProxyJump=...`
//! (Ansible). Locally on the node there is no jump.
//!
//! Nothing the node prints reaches the output unchecked: addresses are parsed as IP addresses,
//! names must be hostnames, every YAML scalar goes through [`yaml_str`] and every ssh_config
//! value through [`ssh_value`], which refuse or escape what could start a new line, key or
//! token.

use super::apply::open_host;
use super::json;
use crate::cli::{GlobalArgs, InventoryArgs, InventoryFormat};
use crate::commands::status::{self, State};
use crate::error::{InputError, InputErrors};
use crate::labfile::Entry;
use crate::transport::ssh::SshTarget;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One container as CI tools see it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Host {
    /// Hostname (the inventory name).
    pub name: String,
    /// VMID, when it exists (or is fixed).
    pub vmid: Option<u32>,
    /// PVE node.
    pub node: Option<String>,
    /// running, stopped, missing...
    pub state: String,
    /// The address to connect to: the profile's `access.address`, else the first IPv4
    /// address the node reports, else the first IPv6 one.
    pub address: Option<String>,
    /// Every IPv4 address the node reports.
    pub ipv4: Vec<String>,
    /// Every IPv6 address (no link-local).
    pub ipv6: Vec<String>,
    /// Groups (Ansible names).
    pub groups: Vec<String>,
    /// SSH user.
    pub user: String,
    /// SSH port.
    pub port: u16,
    /// Private key file, when known.
    pub identity: Option<String>,
    /// `user@node[:port]` to jump through, when the node is reached over SSH.
    pub proxy_jump: Option<String>,
}

/// The `json` document.
#[derive(Serialize, Debug)]
pub struct Inventory {
    /// The lab file.
    pub file: String,
    /// One per selected entry, in file order.
    pub hosts: Vec<Host>,
}

/// Turns a tag or entry pattern into an Ansible group name: letters, digits and `_`, not
/// starting with a digit; None when nothing is left or the name is reserved.
pub fn group_name(raw: &str) -> Option<String> {
    let mut g: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    g = g.trim_matches('_').to_string();
    if g.is_empty() {
        return None;
    }
    if g.starts_with(|c: char| c.is_ascii_digit()) {
        g = format!("_{g}");
    }
    (!matches!(g.as_str(), "all" | "ungrouped")).then_some(g)
}

/// The groups of an entry: its PVE tags (but `provision`) and, for a counted entry, its
/// pattern without the counter (`runner-{n}` -> `runner`).
pub fn groups_of(e: &Entry) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(p) = &e.pattern
        && let Some(g) = group_name(&p.replace("{n}", ""))
    {
        out.push(g);
    }
    for t in &e.request.profile.tags {
        if t != "provision"
            && let Some(g) = group_name(t)
            && !out.contains(&g)
        {
            out.push(g);
        }
    }
    out
}

/// A YAML double-quoted scalar that any YAML 1.1 or 1.2 parser reads back as exactly `s`:
/// printable ASCII as is (`"` and `\` escaped), everything else as `\uXXXX` / `\UXXXXXXXX`
/// (so no line break, tab, NEL, BOM or bidi control survives as itself).
pub fn yaml_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            ' '..='~' => o.push(c),
            c if (c as u32) <= 0xffff => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(o, "\\U{:08x}", c as u32);
            }
        }
    }
    o.push('"');
    o
}

/// A value for an ssh_config line: refused when it holds a control character or a `"`
/// (nothing can quote those); `%` doubled when `tokens` (keywords that expand `%h`...);
/// double-quoted when it holds a space or `#`.
pub fn ssh_value(s: &str, tokens: bool) -> Result<String> {
    if s.is_empty() {
        bail!("an empty value cannot be written to an ssh_config");
    }
    if s.chars().any(|c| c.is_control() || c == '"') {
        bail!(
            "{s:?} holds a control character or a double quote: it cannot be written to an ssh_config safely"
        );
    }
    let v = if tokens {
        s.replace('%', "%%")
    } else {
        s.to_string()
    };
    Ok(if v.contains([' ', '#', '\t', '\'', '=']) {
        format!("\"{v}\"")
    } else {
        v
    })
}

/// A `Host` name: a hostname (letters, digits, `-`, `.`, `_`), nothing ssh would read as a
/// pattern (`*`, `?`, `!`), list (`,`) or token.
pub fn ssh_host_name(s: &str) -> Result<&str> {
    if !s.is_empty()
        && !s.starts_with(['-', '.'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        Ok(s)
    } else {
        bail!("{s:?} is not a plain host name: it cannot be an ssh_config Host")
    }
}

/// `user@host[:port]` for ProxyJump from an SSH target text.
fn jump_of(target: &str) -> Result<String> {
    let t = SshTarget::parse(target)?;
    let host = if t.host.contains(':') {
        format!("[{}]", t.host)
    } else {
        t.host.clone()
    };
    Ok(if t.port == 22 {
        format!("{}@{host}", t.user)
    } else {
        format!("{}@{host}:{}", t.user, t.port)
    })
}

/// The hosts of a status report and the entries it was made from.
pub fn hosts(g: &GlobalArgs, entries: &[&Entry], st: &status::StatusReport) -> Result<Vec<Host>> {
    let by_name: BTreeMap<&str, &status::EntryStatus> =
        st.containers.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut out = Vec::new();
    for e in entries {
        let s = by_name.get(e.name.as_str());
        let access = &e.request.profile.access;
        let ipv4 = s.map(|s| s.ipv4.clone()).unwrap_or_default();
        let ipv6 = s.map(|s| s.ipv6.clone()).unwrap_or_default();
        let address = access
            .address
            .clone()
            .or_else(|| ipv4.first().cloned())
            .or_else(|| ipv6.first().cloned());
        let identity = access
            .identity
            .clone()
            .or_else(|| g.identity.first().map(|p| p.display().to_string()))
            .map(|p| {
                std::path::absolute(&p)
                    .map(|a| a.display().to_string())
                    .unwrap_or(p)
            });
        let node_target = e.host.as_deref().or(g.host.as_deref());
        let proxy_jump = node_target
            .map(jump_of)
            .transpose()
            .with_context(|| format!("{}: the node's SSH target", e.name))?;
        out.push(Host {
            name: e.name.clone(),
            vmid: s.and_then(|s| s.vmid).or(e.vmid()),
            node: s.and_then(|s| s.node.clone()).or(e.node.clone()),
            state: s.map_or("unknown", |s| s.state.word()).to_string(),
            address,
            ipv4,
            ipv6,
            groups: groups_of(e),
            user: "root".into(),
            port: if access.method == crate::profile::AccessMethod::Ssh {
                access.port
            } else {
                22
            },
            identity,
            proxy_jump,
        });
    }
    Ok(out)
}

/// The Ansible inventory (YAML).
pub fn ansible(file: &str, hosts: &[Host]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Ansible inventory of {} (provision inventory)",
        file.escape_debug()
    );
    let _ = writeln!(s, "all:");
    let _ = writeln!(s, "  hosts:");
    if hosts.is_empty() {
        s.truncate(s.len() - "  hosts:\n".len());
    }
    for h in hosts {
        let _ = writeln!(s, "    {}:", yaml_str(&h.name));
        if let Some(a) = &h.address {
            let _ = writeln!(s, "      ansible_host: {}", yaml_str(a));
        }
        let _ = writeln!(s, "      ansible_user: {}", yaml_str(&h.user));
        if h.port != 22 {
            let _ = writeln!(s, "      ansible_port: {}", h.port);
        }
        if let Some(i) = &h.identity {
            let _ = writeln!(s, "      ansible_ssh_private_key_file: {}", yaml_str(i));
        }
        if let Some(j) = &h.proxy_jump {
            let _ = writeln!(
                s,
                "      ansible_ssh_common_args: {}",
                yaml_str(&format!("-o ProxyJump={j}"))
            );
        }
        if let Some(v) = h.vmid {
            let _ = writeln!(s, "      provision_vmid: {v}");
        }
        if let Some(n) = &h.node {
            let _ = writeln!(s, "      provision_node: {}", yaml_str(n));
        }
        let _ = writeln!(s, "      provision_state: {}", yaml_str(&h.state));
    }
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for h in hosts {
        for gname in &h.groups {
            groups.entry(gname).or_default().push(&h.name);
        }
    }
    if !groups.is_empty() {
        let _ = writeln!(s, "  children:");
        for (gname, members) in groups {
            let _ = writeln!(s, "    {}:", yaml_str(gname));
            let _ = writeln!(s, "      hosts:");
            for m in members {
                let _ = writeln!(s, "        {}: {{}}", yaml_str(m));
            }
        }
    }
    s
}

/// The OpenSSH client configuration. A host without an address is a comment saying why.
pub fn ssh_config(file: &str, hosts: &[Host]) -> Result<String> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# ssh_config of {} (provision inventory); use: ssh -F THIS-FILE NAME",
        file.escape_debug()
    );
    for h in hosts {
        let name = ssh_host_name(&h.name)?;
        let Some(addr) = &h.address else {
            let _ = writeln!(s, "\n# {name}: no address ({})", h.state);
            continue;
        };
        let _ = writeln!(s, "\nHost {name}");
        let _ = writeln!(s, "    HostName {}", ssh_value(addr, true)?);
        let _ = writeln!(s, "    User {}", ssh_value(&h.user, true)?);
        if h.port != 22 {
            let _ = writeln!(s, "    Port {}", h.port);
        }
        if let Some(i) = &h.identity {
            let _ = writeln!(s, "    IdentityFile {}", ssh_value(i, true)?);
            let _ = writeln!(s, "    IdentitiesOnly yes");
        }
        if let Some(j) = &h.proxy_jump {
            let _ = writeln!(s, "    ProxyJump {}", ssh_value(j, false)?);
        }
    }
    Ok(s)
}

/// Runs `provision inventory`.
pub fn run(a: &InventoryArgs, g: &GlobalArgs) -> Result<u8> {
    let lab = super::apply::load_lab(&a.file)?;
    let entries = lab.select(&a.file.only)?;
    let member = super::member_opener(g);
    let report = status::collect_with(&a.file, &|h| open_host(g, h), &member)?;
    let hs = hosts(g, &entries, &report).map_err(|e| {
        InputErrors(vec![InputError::whole(
            lab.shown.clone(),
            "host",
            format!("{e:#}"),
        )])
    })?;
    let text = match a.format {
        InventoryFormat::Json => {
            let doc = Inventory {
                file: report.file.clone(),
                hosts: hs.clone(),
            };
            format!(
                "{}\n",
                crate::error::json_safe(&serde_json::to_string_pretty(&doc)?)
            )
        }
        InventoryFormat::Ansible => ansible(&report.file, &hs),
        InventoryFormat::SshConfig => ssh_config(&report.file, &hs)?,
    };
    match &a.out {
        None => crate::out!("{text}"),
        Some(path) => {
            let tmp = path.with_extension("provision-new");
            std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
            if !json(g) {
                crate::errln!(
                    "{}: {} host(s) written to {}",
                    lab.shown,
                    hs.len(),
                    path.display()
                );
            }
        }
    }
    for n in &report.notes {
        crate::errln!("note: {n}");
    }
    for c in &report.containers {
        if let Some(m) = &c.message {
            crate::errln!("{}: {m}", c.name);
        }
    }
    let unreadable = report.containers.iter().any(|c| c.state == State::Unknown);
    Ok(u8::from(unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> Host {
        Host {
            name: name.into(),
            vmid: Some(300),
            node: Some("pve1".into()),
            state: "running".into(),
            address: Some("10.0.3.12".into()),
            ipv4: vec!["10.0.3.12".into()],
            ipv6: vec![],
            groups: vec!["runner".into(), "ci".into()],
            user: "root".into(),
            port: 22,
            identity: Some("/root/keys/ci key".into()),
            proxy_jump: Some("root@pve1".into()),
        }
    }

    #[test]
    fn yaml_scalars_escape_everything_that_is_not_printable_ascii() {
        assert_eq!(yaml_str("runner-1"), "\"runner-1\"");
        assert_eq!(yaml_str("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(yaml_str("x\ny: 1"), "\"x\\u000ay: 1\"");
        assert_eq!(yaml_str("nel\u{85}ls\u{2028}"), "\"nel\\u0085ls\\u2028\"");
        assert_eq!(yaml_str("🦀"), "\"\\U0001f980\"");
        assert_eq!(yaml_str(""), "\"\"");
        for hostile in [
            "- a",
            "&a *a",
            "!!python/object",
            "{a: 1}",
            "# c",
            "'q'",
            "%x",
        ] {
            let y = yaml_str(hostile);
            assert!(y.starts_with('"') && y.ends_with('"') && !y.contains('\n'));
        }
    }

    #[test]
    fn group_names_follow_ansibles_rules() {
        assert_eq!(group_name("runner-"), Some("runner".into()));
        assert_eq!(group_name("web.front"), Some("web_front".into()));
        assert_eq!(group_name("9lives"), Some("_9lives".into()));
        assert_eq!(group_name("all"), None);
        assert_eq!(group_name("-{}-"), None);
    }

    #[test]
    fn ssh_values_are_escaped_or_refused() {
        assert_eq!(ssh_value("10.0.0.1", true).unwrap(), "10.0.0.1");
        assert_eq!(ssh_value("/k/a b", true).unwrap(), "\"/k/a b\"");
        assert_eq!(ssh_value("/k/%h", true).unwrap(), "/k/%%h");
        assert_eq!(ssh_value("/k/#x", true).unwrap(), "\"/k/#x\"");
        assert!(ssh_value("a\nHost *", true).is_err());
        assert!(ssh_value("a\"b", true).is_err());
        assert!(ssh_value("", true).is_err());
        assert!(ssh_host_name("runner-1").is_ok());
        for bad in [
            "*",
            "a b",
            "a,b",
            "!a",
            "-oProxyCommand=x",
            "a\nb",
            "%h",
            "",
        ] {
            assert!(ssh_host_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ssh_config_block_per_host_with_jump_and_identity() {
        let mut stopped = host("runner-2");
        stopped.address = None;
        stopped.state = "stopped".into();
        let text = ssh_config("lab.toml", &[host("runner-1"), stopped]).unwrap();
        assert!(text.contains(
            "Host runner-1\n    HostName 10.0.3.12\n    User root\n    IdentityFile \"/root/keys/ci key\"\n    IdentitiesOnly yes\n    ProxyJump root@pve1\n"
        ), "{text}");
        assert!(text.contains("# runner-2: no address (stopped)"), "{text}");
        assert!(ssh_config("x", &[host("bad name")]).is_err());
    }

    #[test]
    fn ansible_inventory_has_hosts_vars_and_groups() {
        let text = ansible("lab.toml", &[host("runner-1"), host("runner-2")]);
        assert!(text.contains("all:\n  hosts:\n    \"runner-1\":\n      ansible_host: \"10.0.3.12\"\n      ansible_user: \"root\"\n"), "{text}");
        assert!(text.contains("ansible_ssh_common_args: \"-o ProxyJump=root@pve1\""));
        assert!(text.contains("  children:\n    \"ci\":\n      hosts:\n        \"runner-1\": {}\n        \"runner-2\": {}\n"), "{text}");
        assert!(text.contains("provision_vmid: 300"));
        let no_hosts = ansible("lab.toml", &[]);
        assert_eq!(
            no_hosts.lines().filter(|l| !l.starts_with('#')).count(),
            1,
            "{no_hosts}"
        );
    }

    #[test]
    fn jump_targets() {
        assert_eq!(jump_of("pve1").unwrap(), "root@pve1");
        assert_eq!(jump_of("admin@pve1:2222").unwrap(), "admin@pve1:2222");
        assert_eq!(jump_of("root@[::1]:2222").unwrap(), "root@[::1]:2222");
    }
}
