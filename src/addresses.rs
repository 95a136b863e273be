//! A container's addresses, from what its facts script saw inside (no extra node command).
//!
//! The in-container facts script ([`crate::facts::INSIDE_FACTS_SCRIPT`]), which already runs
//! once the network is up, prints one `addr=DEV ADDRESS/PREFIX` line per global-scope address
//! (`ip -o addr show scope global`). [`container_addresses`] is the one place that turns those
//! untrusted lines into the addresses a report shows.

use std::net::IpAddr;

/// Interfaces that are not the container's own network: Docker's bridges and their veths.
fn internal(dev: &str) -> bool {
    dev.starts_with("docker") || dev.starts_with("br-") || dev.starts_with("veth")
}

/// The addresses (`10.0.3.17`, no prefix length) of `DEV ADDRESS/PREFIX` lines, IPv4 before
/// IPv6, each once; lines that are not an interface and a valid address are dropped (they
/// come from inside the container: untrusted).
pub fn container_addresses(raw: &[String]) -> Vec<String> {
    let mut v: Vec<IpAddr> = raw
        .iter()
        .filter_map(|l| {
            let (dev, a) = l.trim().split_once(' ')?;
            if internal(dev) {
                return None;
            }
            let ip = a.trim().split('/').next()?;
            ip.parse::<IpAddr>().ok()
        })
        .collect();
    v.sort_by_key(|ip| ip.is_ipv6());
    let mut out: Vec<String> = Vec::new();
    for ip in v {
        let s = ip.to_string();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_keep_the_containers_own_and_drop_dockers_and_garbage() {
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
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            container_addresses(&raw),
            vec!["10.0.3.17", "192.168.7.2", "fd00:10::5"]
        );
        assert!(container_addresses(&[]).is_empty());
    }
}
