//! A container's IP addresses: the way Proxmox VE reports them
//! (`pvesh get /nodes/NODE/lxc/VMID/interfaces --output-format json`, for `status` and
//! `inventory`), and the way the in-container facts script saw them (one `addr=DEV ADDR/PREFIX`
//! line per global address, for the report of a run: no extra node command). One place turns
//! either into the addresses shown.
//!
//! PVE answers with one object per interface: `name`, `hwaddr`, and `inet` / `inet6` (one
//! address each, `ADDR/PREFIX`); newer pve-container releases add `ip-addresses`, a list of
//! `{"ip-address", "ip-address-type": "inet"|"inet6", "prefix"}`. Both are read; the loopback
//! interface, loopback addresses and IPv6 link-local addresses are left out (they reach nothing
//! from outside). Everything the node prints is untrusted: only values that parse as IP
//! addresses are kept.

use crate::cmd::Cmd;
use crate::transport::{Transport, run_ok};
use anyhow::{Context, Result};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A container's addresses (without prefix lengths), eth0 first, in the node's order.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    /// IPv4 addresses.
    pub ipv4: Vec<String>,
    /// IPv6 addresses (global and unique-local; no link-local).
    pub ipv6: Vec<String>,
}

impl Addresses {
    /// The first IPv4 address, else the first IPv6 one.
    pub fn primary(&self) -> Option<&str> {
        self.ipv4.first().or(self.ipv6.first()).map(String::as_str)
    }

    /// `10.0.0.5, fd00::5` or `-`.
    pub fn text(&self) -> String {
        let all: Vec<&str> = self
            .ipv4
            .iter()
            .chain(&self.ipv6)
            .map(String::as_str)
            .collect();
        if all.is_empty() {
            "-".into()
        } else {
            all.join(", ")
        }
    }
}

fn useful(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_loopback() && !a.is_unspecified() && a != Ipv4Addr::BROADCAST,
        IpAddr::V6(a) => {
            !a.is_loopback()
                && !a.is_unspecified()
                && (a.segments()[0] & 0xffc0) != 0xfe80
                && a != Ipv6Addr::LOCALHOST
        }
    }
}

/// `ADDR` or `ADDR/PREFIX` -> the address, when it is one worth listing.
fn addr(s: &str) -> Option<IpAddr> {
    let (a, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = a.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if let Some(p) = prefix
        && !p.parse::<u8>().is_ok_and(|n| n <= max)
    {
        return None;
    }
    useful(ip).then_some(ip)
}

fn push(out: &mut Addresses, ip: IpAddr) {
    let (list, text) = match ip {
        IpAddr::V4(a) => (&mut out.ipv4, a.to_string()),
        IpAddr::V6(a) => (&mut out.ipv6, a.to_string()),
    };
    if !list.contains(&text) {
        list.push(text);
    }
}

/// Interfaces that are not the container's own network: Docker's bridges and their veths.
fn internal(dev: &str) -> bool {
    dev.starts_with("docker") || dev.starts_with("br-") || dev.starts_with("veth")
}

/// The addresses of the facts script's `DEV ADDRESS/PREFIX` lines (they come from inside the
/// container: untrusted; lines that are not an interface and an address are dropped).
pub fn from_inside(raw: &[String]) -> Addresses {
    let mut out = Addresses::default();
    for l in raw {
        let Some((dev, a)) = l.trim().split_once(' ') else {
            continue;
        };
        if internal(dev) {
            continue;
        }
        if let Some(ip) = addr(a.trim()) {
            push(&mut out, ip);
        }
    }
    out
}

/// [`from_inside`] as one list, IPv4 before IPv6.
pub fn container_addresses(raw: &[String]) -> Vec<String> {
    let a = from_inside(raw);
    a.ipv4.into_iter().chain(a.ipv6).collect()
}

/// Parses the JSON answer of `.../interfaces`.
pub fn parse_interfaces(json: &str) -> Result<Addresses> {
    let v: serde_json::Value =
        serde_json::from_str(json).context("the interfaces answer is not JSON")?;
    let list = v
        .as_array()
        .context("the interfaces answer is not a JSON list")?;
    let mut ifaces: Vec<&serde_json::Value> = list
        .iter()
        .filter(|i| i["name"].as_str().is_some_and(|n| n != "lo"))
        .collect();
    // eth0 first: it is the address provision configures and others reach.
    ifaces.sort_by_key(|i| i["name"].as_str() != Some("eth0"));
    let mut out = Addresses::default();
    for i in ifaces {
        for key in ["inet", "inet6"] {
            if let Some(ip) = i[key].as_str().and_then(addr) {
                push(&mut out, ip);
            }
        }
        if let Some(extra) = i["ip-addresses"].as_array() {
            for a in extra {
                if let Some(ip) = a["ip-address"].as_str().and_then(addr) {
                    push(&mut out, ip);
                }
            }
        }
    }
    Ok(out)
}

/// The command that reads them.
pub fn interfaces_cmd(node_name: &str, vmid: u32) -> Cmd {
    Cmd::new("pvesh").args([
        "get",
        &format!("/nodes/{node_name}/lxc/{vmid}/interfaces"),
        "--output-format",
        "json",
    ])
}

/// Reads a running container's addresses from the node (one `pvesh` call).
pub fn gather(node: &dyn Transport, node_name: &str, vmid: u32) -> Result<Addresses> {
    let out = run_ok(node, &interfaces_cmd(node_name, vmid), None)?;
    parse_interfaces(&out.stdout_text())
        .with_context(|| format!("ct/{vmid}: reading its addresses"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pve_answer_with_inet_and_inet6() {
        let a = parse_interfaces(
            r#"[{"name":"lo","hwaddr":"00:00:00:00:00:00","inet":"127.0.0.1/8","inet6":"::1/128"},
                {"name":"eth0","hwaddr":"bc:24:11:aa:bb:cc","inet":"192.168.1.50/24","inet6":"2001:db8::50/64"}]"#,
        )
        .unwrap();
        assert_eq!(a.ipv4, ["192.168.1.50"]);
        assert_eq!(a.ipv6, ["2001:db8::50"]);
        assert_eq!(a.primary(), Some("192.168.1.50"));
        assert_eq!(a.text(), "192.168.1.50, 2001:db8::50");
    }

    #[test]
    fn ip_addresses_list_link_local_and_eth0_first() {
        let a = parse_interfaces(
            r#"[{"name":"docker0","inet":"172.17.0.1/16"},
                {"name":"eth0","inet6":"fe80::1/64","ip-addresses":[
                  {"ip-address":"10.0.3.7","ip-address-type":"inet","prefix":24},
                  {"ip-address":"fd00::7","ip-address-type":"inet6","prefix":64},
                  {"ip-address":"fe80::be24:11ff:fe00:1","ip-address-type":"inet6","prefix":64}]}]"#,
        )
        .unwrap();
        assert_eq!(a.ipv4, ["10.0.3.7", "172.17.0.1"]);
        assert_eq!(a.ipv6, ["fd00::7"]);
    }

    #[test]
    fn hostile_or_odd_values_are_dropped_not_passed_on() {
        let a = parse_interfaces(
            r#"[{"name":"eth0","inet":"10.0.0.1/24\nHost *","inet6":"$(reboot)"},
                {"name":"eth1","inet":"0.0.0.0/0"},{"noname":1,"inet":"10.9.9.9/8"}]"#,
        )
        .unwrap();
        assert_eq!(a, Addresses::default());
        assert_eq!(a.text(), "-");
        assert!(parse_interfaces("CT 100 not running").is_err());
        assert!(parse_interfaces("{}").is_err());
    }

    #[test]
    fn addresses_seen_inside_keep_the_containers_own_and_drop_dockers_and_garbage() {
        let raw: Vec<String> = [
            "eth0 fd00:10::5/64",
            "eth0 10.0.3.17/24",
            "docker0 172.17.0.1/16",
            "br-1a2b 172.18.0.1/16",
            "eth1 192.168.7.2/24",
            "eth0 10.0.3.17/24",
            "eth0 \x1b[2Jnot-an-address",
            "garbage",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            container_addresses(&raw),
            vec!["10.0.3.17", "192.168.7.2", "fd00:10::5"]
        );
        assert!(container_addresses(&[]).is_empty());
    }
}
