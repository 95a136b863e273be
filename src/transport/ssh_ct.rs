//! A container reached over SSH directly (profile `[access] method = "ssh"`).
//!
//! The connection is made on first use, once the container runs: the address is the profile's
//! (`access.address`, or a static `network.ip`), or else the one the node reports for eth0
//! (`pvesh get /nodes/NODE/lxc/VMID/interfaces`), waited for with a bound. The keys are the
//! ones `pct create --ssh-public-keys` installed. A container's host key is new at every
//! creation, so it is recorded on first contact (trust on first use) in provision's own
//! known_hosts file. When this very run created the container, the key recorded for its
//! address belongs to a container that no longer exists: it is forgotten before the first
//! contact (and `provision destroy` forgets it too). A changed key of a container this run did
//! not create is refused like any other.

use super::ssh::{Ssh, SshOptions, SshTarget};
use super::{LockGuard, Transport, run_ok};
use crate::cmd::{Cmd, Output};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long to wait for the container's address and its sshd.
pub const CONNECT_WAIT: Duration = Duration::from_secs(90);

/// A container over SSH, connected on first use.
pub struct SshContainer {
    node: Arc<dyn Transport>,
    node_name: String,
    vmid: u32,
    address: Option<String>,
    port: u16,
    opts: SshOptions,
    created: bool,
    conn: OnceLock<Ssh>,
}

/// How a container is reached over SSH: the profile's `[access]` and what the run knows.
pub struct CtAccess<'a> {
    /// The profile's `[access]`.
    pub access: &'a crate::profile::Access,
    /// The profile's static `network.ip` (CIDR), if any.
    pub static_ip: Option<&'a str>,
    /// provision's known_hosts file for containers ([`containers_known_hosts`]).
    pub known_hosts: PathBuf,
    /// This run created the container: a key recorded for its address is stale.
    pub created: bool,
}

/// The address a container is reached at without asking the node: the profile's
/// `access.address`, or the address of a static `network.ip`.
pub fn fixed_address(access: &crate::profile::Access, static_ip: Option<&str>) -> Option<String> {
    access.address.clone().or_else(|| {
        static_ip
            .and_then(|ip| ip.split('/').next())
            .map(String::from)
    })
}

/// Forgets the host key recorded for a container at `address:port` (it was destroyed or is
/// about to be created anew). Returns how many entries were removed.
pub fn forget_container_key(
    known_hosts: &std::path::Path,
    address: &str,
    port: u16,
) -> Result<usize> {
    let name = SshTarget {
        user: "root".into(),
        host: address.to_string(),
        port,
    }
    .known_hosts_name();
    super::ssh::forget_host_key(known_hosts, &name).with_context(|| {
        format!(
            "forgetting the host key of {name} in {}",
            known_hosts.display()
        )
    })
}

/// provision's known_hosts for containers: `$XDG_STATE_HOME/provision/known_hosts_containers`
/// (or `~/.local/state/...`).
pub fn containers_known_hosts() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    base.join("provision/known_hosts_containers")
}

impl SshContainer {
    /// A container transport; `base` gives the identities and passphrase settings.
    pub fn new(
        node: Arc<dyn Transport>,
        node_name: &str,
        vmid: u32,
        how: CtAccess<'_>,
        base: &SshOptions,
    ) -> SshContainer {
        let mut opts = base.clone();
        if let Some(id) = &how.access.identity {
            opts.identities = vec![PathBuf::from(id)];
        }
        opts.known_hosts = vec![how.known_hosts];
        opts.accept_new_host_key = true;
        SshContainer {
            node,
            node_name: node_name.to_string(),
            vmid,
            address: fixed_address(how.access, how.static_ip),
            port: how.access.port,
            opts,
            created: how.created,
            conn: OnceLock::new(),
        }
    }

    /// The address the node reports for eth0, waited for (bounded).
    fn discover(&self) -> Result<String> {
        let path = format!("/nodes/{}/lxc/{}/interfaces", self.node_name, self.vmid);
        let deadline = Instant::now() + CONNECT_WAIT;
        loop {
            let out = run_ok(
                self.node.as_ref(),
                &Cmd::new("pvesh").args(["get", &path, "--output-format", "json"]),
                None,
            )?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let ip = v.as_array().and_then(|a| {
                a.iter()
                    .find(|i| i["name"] == "eth0")
                    .and_then(|i| i["inet"].as_str())
                    .and_then(|s| s.split('/').next())
                    .map(String::from)
            });
            if let Some(ip) = ip {
                return Ok(ip);
            }
            if Instant::now() >= deadline {
                bail!(
                    "ct/{}: waited {} s for the node to report an IPv4 address on eth0",
                    self.vmid,
                    CONNECT_WAIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn conn(&self) -> Result<&Ssh> {
        if let Some(c) = self.conn.get() {
            return Ok(c);
        }
        let host = match &self.address {
            Some(a) => a.clone(),
            None => self.discover()?,
        };
        let target = SshTarget {
            user: "root".into(),
            host,
            port: self.port,
        };
        if self.created {
            let n = forget_container_key(&self.opts.known_hosts[0], &target.host, target.port)?;
            if n > 0 {
                tracing::info!(
                    "ct/{}: forgot the host key recorded for {} (the container was created anew)",
                    self.vmid,
                    target.known_hosts_name()
                );
            }
        }
        // sshd in a container that just started may not listen yet: retry, bounded.
        let deadline = Instant::now() + CONNECT_WAIT;
        let ssh = loop {
            match Ssh::connect(target.clone(), &self.opts) {
                Ok(s) => break s,
                Err(e) => {
                    let transient = e.chain().any(|c| {
                        c.downcast_ref::<super::ssh::TcpConnectFailed>()
                            .is_some_and(super::ssh::TcpConnectFailed::is_transient)
                    });
                    if !transient || Instant::now() >= deadline {
                        return Err(e)
                            .with_context(|| format!("ct/{}: connecting over SSH", self.vmid));
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        };
        Ok(self.conn.get_or_init(|| ssh))
    }
}

impl Transport for SshContainer {
    fn label(&self) -> String {
        match self.conn.get() {
            Some(c) => format!("ct/{} ({})", self.vmid, c.label()),
            None => format!("ct/{} (ssh)", self.vmid),
        }
    }

    fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
        self.conn()?.run(cmd, stdin)
    }

    fn put(&self, bytes: &[u8], dest: &str, mode: u32) -> Result<()> {
        self.conn()?.put(bytes, dest, mode)
    }

    fn lock(&self, name: &str, wait: Duration) -> Result<LockGuard> {
        self.node.lock(&format!("ct{}-{name}", self.vmid), wait)
    }
}
