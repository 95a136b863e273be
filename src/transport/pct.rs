//! A container reached through `pct exec` / `pct push` on a node transport.
//!
//! Nothing here knows whether the node is local or remote: every call becomes a `pct` command run
//! through the wrapped node transport. `pct push` needs the file on the node first; it goes to a
//! private temporary file that is removed again whether the push worked or not.

use super::{LockGuard, Transport, run_ok};
use crate::cmd::{Cmd, Output, pct};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;

/// One container on a node.
pub struct Pct {
    /// The node the container lives on.
    pub node: Arc<dyn Transport>,
    /// Its VMID.
    pub vmid: u32,
    /// The node's pct has `exec --keep-env` ([`crate::release::Caps::exec_keep_env`]).
    pub keep_env: bool,
}

impl Transport for Pct {
    fn label(&self) -> String {
        format!("ct/{}", self.vmid)
    }

    fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
        self.node
            .run(&pct::exec(self.vmid, self.keep_env, cmd), stdin)
    }

    fn put(&self, bytes: &[u8], dest: &str, mode: u32) -> Result<()> {
        let tmp = pct::node_tmp_path(self.vmid);
        self.node
            .put(bytes, &tmp, 0o600)
            .with_context(|| format!("ct/{}: staging {dest} on the node", self.vmid))?;
        let pushed = run_ok(
            self.node.as_ref(),
            &pct::push(self.vmid, &tmp, dest, mode),
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
        run_ok(node, &pct::push(self.vmid, src, dest, mode), None).map(|_| ())
    }

    fn lock(&self, name: &str, wait: Duration) -> Result<LockGuard> {
        self.node.lock(&format!("ct{}-{name}", self.vmid), wait)
    }
}
