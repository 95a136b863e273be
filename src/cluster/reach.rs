//! Reaching another member the way PVE's node-to-node SSH does (`PVE::SSHInfo`): `root@` its
//! cluster address, port 22, the host key checked under the node's name (`HostKeyAlias`)
//! against the cluster's own file: `/etc/pve/nodes/NODE/ssh_known_hosts` when it exists (PVE
//! 8.1+), else `/etc/pve/priv/known_hosts`, read through the node the run is on. Never
//! trust-on-first-use. The key: on a node, root's own (`/root/.ssh/id_rsa` and friends, which
//! the cluster's shared `authorized_keys` accepts everywhere); from a workstation (`--host`),
//! the keys that reached the first node (same shared `authorized_keys`).
//!
//! `PROVISION_PVE_ROOT` (default `/`) is where those paths are rooted: the lab cluster keeps
//! its cluster file system and root's key under its own directory.

use super::Member;
use crate::cmd::Cmd;
use crate::transport::Transport;
use crate::transport::ssh::{Ssh, SshOptions, SshTarget};
use anyhow::{Context, Result, anyhow};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a node's `/` is for the cluster's files (`PROVISION_PVE_ROOT`, default `/`).
pub fn pve_root() -> PathBuf {
    std::env::var_os("PROVISION_PVE_ROOT")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// root's private keys on this node, those that exist.
pub fn root_keys() -> Vec<PathBuf> {
    let dir = pve_root().join("root/.ssh");
    ["id_rsa", "id_ed25519", "id_ecdsa"]
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect()
}

/// The cluster's known host keys for `node`, read through `via`.
pub fn cluster_known_hosts(via: &dyn Transport, node: &str) -> Result<String> {
    let root = pve_root();
    let files = [
        root.join(format!("etc/pve/nodes/{node}/ssh_known_hosts")),
        root.join("etc/pve/priv/known_hosts"),
    ];
    for f in &files {
        let out = via.run(&Cmd::new("cat").arg(f.to_string_lossy().as_ref()), None)?;
        if out.success() {
            return Ok(out.stdout_text());
        }
    }
    Err(anyhow!(
        "{}: neither {} nor {} can be read: the cluster's host keys are needed to reach node {node}",
        via.label(),
        files[0].display(),
        files[1].display()
    ))
}

/// A private file holding `text`, removed when dropped.
struct TempKnownHosts(PathBuf);

impl TempKnownHosts {
    fn new(node: &str, text: &str) -> Result<TempKnownHosts> {
        let p = std::env::temp_dir().join(format!(
            "provision-{}-{node}-known_hosts-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .with_context(|| format!("cannot create {}", p.display()))?;
        f.write_all(text.as_bytes())?;
        Ok(TempKnownHosts(p))
    }
}

impl Drop for TempKnownHosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Opens `root@<cluster address>` of member `m`. `base` are the run's SSH options (`--host`
/// mode: its keys are used); `on_node`: the run is on a node, so root's own key is used.
pub fn open_member(
    m: &Member,
    via: &dyn Transport,
    base: &SshOptions,
    on_node: bool,
) -> Result<Arc<dyn Transport>> {
    let kh = TempKnownHosts::new(&m.name, &cluster_known_hosts(via, &m.name)?)?;
    let mut opts = base.clone();
    opts.known_hosts = vec![kh.0.clone()];
    opts.accept_new_host_key = false;
    opts.host_key_alias = Some(m.name.clone());
    if on_node {
        opts.identities = root_keys();
        opts.use_agent = false;
        if opts.identities.is_empty() {
            return Err(anyhow!(
                "root has no SSH key in {} to reach node {} (a PVE cluster node has one)",
                pve_root().join("root/.ssh").display(),
                m.name
            ));
        }
    }
    let target = SshTarget::parse(&format!("root@{}", bracket(&m.ip)))
        .with_context(|| format!("node {}'s cluster address {:?}", m.name, m.ip))?;
    let s = Ssh::connect(target, &opts).with_context(|| format!("node {}", m.name))?;
    Ok(Arc::new(s))
}

fn bracket(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}
