//! A container reached through `pct exec` / `pct push` on a node transport.
//!
//! Nothing here knows whether the node is local or remote: every call becomes a `pct` command run
//! through the wrapped node transport. `pct push` needs the file on the node first; it goes to a
//! private temporary file that is removed again whether the push worked or not.

use super::{LockGuard, Transport, run_ok};
use crate::cmd::{Cmd, Output};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Directory on the node for files on their way into containers (owner-only).
pub const NODE_TMP_DIR: &str = "/run/provision";

static PUSH_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The PATH an in-container command gets (what `pct exec --keep-env 0` sets).
pub const INSIDE_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One container on a node.
pub struct Pct {
    /// The node the container lives on.
    pub node: Arc<dyn Transport>,
    /// Its VMID.
    pub vmid: u32,
    /// The node's pct has `exec --keep-env` (pve-container 5.0.9 and later,
    /// [`crate::release::Caps::exec_keep_env`]).
    pub keep_env: bool,
}

impl Pct {
    /// `pct exec VMID --keep-env 0 -- ARGV...`: the host environment does not leak in. A node
    /// whose pct predates `--keep-env` refuses the option ("Unknown option: keep-env") and
    /// passes its environment through lxc-attach: there the command runs under
    /// `env -i PATH=...`, which gives it the same clean environment.
    pub fn exec_cmd(vmid: u32, keep_env: bool, inner: &Cmd) -> Cmd {
        let mut c = Cmd::new("pct").args(["exec", &vmid.to_string()]);
        c = if keep_env {
            c.args(["--keep-env", "0", "--"])
        } else {
            c.args(["--", "env", "-i", INSIDE_PATH])
        };
        c = c.arg(inner.program.clone());
        c.args.extend(inner.args.iter().cloned());
        c
    }

    /// `pct push VMID SRC DST --perms MODE`.
    pub fn push_cmd(vmid: u32, src: &str, dest: &str, mode: u32) -> Cmd {
        Cmd::new("pct").args([
            "push",
            &vmid.to_string(),
            src,
            dest,
            "--perms",
            &format!("{mode:04o}"),
        ])
    }

    /// A private, unique path on the node for a file on its way into container `vmid`.
    pub fn node_tmp_path(vmid: u32) -> String {
        let n = PUSH_COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{NODE_TMP_DIR}/push-{vmid}-{}-{n}", std::process::id())
    }
}

impl Transport for Pct {
    fn label(&self) -> String {
        format!("ct/{}", self.vmid)
    }

    fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
        self.node
            .run(&Pct::exec_cmd(self.vmid, self.keep_env, cmd), stdin)
    }

    fn put(&self, bytes: &[u8], dest: &str, mode: u32) -> Result<()> {
        let tmp = Pct::node_tmp_path(self.vmid);
        self.node
            .put(bytes, &tmp, 0o600)
            .with_context(|| format!("ct/{}: staging {dest} on the node", self.vmid))?;
        let pushed = run_ok(
            self.node.as_ref(),
            &Pct::push_cmd(self.vmid, &tmp, dest, mode),
            None,
        );
        // Removed whether the push worked or not.
        let removed = self
            .node
            .run(&Cmd::new("rm").args(["-f", "--", &tmp]), None);
        pushed?;
        if let Ok(out) = removed
            && !out.success()
        {
            tracing::warn!("node: could not remove staging file {tmp}: {}", out.tail(3));
        }
        Ok(())
    }

    fn put_from_node(&self, node: &dyn Transport, src: &str, dest: &str, mode: u32) -> Result<()> {
        run_ok(node, &Pct::push_cmd(self.vmid, src, dest, mode), None).map(|_| ())
    }

    fn lock(&self, name: &str, wait: Duration) -> Result<LockGuard> {
        self.node.lock(&format!("ct{}-{name}", self.vmid), wait)
    }
}
