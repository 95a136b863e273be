//! Choosing the VMID of a new container and creating it under the node's `vmid` lock, shared
//! by the workers of one run; a create that loses a race is retried with the next free ID.

use super::*;

/// The container appeared on the node after the facts were read (another run created it).
#[derive(Debug)]
pub struct CreatedMeanwhile {
    /// Its hostname.
    pub hostname: String,
    /// Its VMID.
    pub vmid: u32,
}

impl std::fmt::Display for CreatedMeanwhile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "container {} was created meanwhile by another run (VMID {})",
            self.hostname, self.vmid
        )
    }
}

impl std::error::Error for CreatedMeanwhile {}

/// `pvesh get /cluster/nextid`.
pub fn next_vmid(node: &dyn Transport) -> Result<u32> {
    let out = run_ok(
        node,
        &Cmd::new("pvesh").args(["get", "/cluster/nextid", "--output-format", "json"]),
        None,
    )?;
    let t = out.stdout_text();
    facts::node_vmid_text(&t).map_err(|m| anyhow::anyhow!("pvesh get /cluster/nextid printed {m}"))
}

/// `pct create` failed because its VMID was taken meanwhile (a concurrent creator won).
#[derive(Debug)]
pub struct VmidTaken(pub u32);

impl std::fmt::Display for VmidTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VMID {} was taken by someone else", self.0)
    }
}

impl std::error::Error for VmidTaken {}

/// The one place that reads the node's words: a failed `pct create` whose output says the
/// VMID exists (or its config is locked by another creator) becomes [`VmidTaken`].
fn classify_create_failure(err: anyhow::Error, vmid: u32) -> anyhow::Error {
    let taken = err.chain().any(|c| {
        c.downcast_ref::<CmdFailed>().is_some_and(|f| {
            f.tail.contains("already exists") || f.tail.contains("can't lock file")
        })
    });
    if taken {
        err.context(VmidTaken(vmid))
    } else {
        err
    }
}

/// The node's `vmid` lock, shared by the workers of one run.
///
/// Across processes it works as before: a run holds the node's lock while any of its creates
/// is under way, so another run's `pvesh get /cluster/nextid` only ever sees finished (hence
/// registered) IDs. Within the run, workers do not wait for each other's `pct create` (the
/// slow part: extracting the template): the first creator takes the node's lock, the last one
/// to finish lets it go, and the IDs being created are reserved here so that two workers never
/// pick the same one. A node does not serialise creates of different IDs.
#[derive(Default)]
pub struct VmidLock {
    st: Mutex<VmidState>,
}

#[derive(Default)]
struct VmidState {
    /// Workers of this run inside a create.
    holders: usize,
    /// The node's lock while `holders > 0`.
    guard: Option<crate::transport::LockGuard>,
    /// IDs chosen by this run whose create has not finished.
    reserved: BTreeSet<u32>,
}

/// One worker's share of [`VmidLock`]; the node's lock is let go with the last share.
struct VmidHold<'a> {
    lock: &'a VmidLock,
    vmid: Option<u32>,
}

impl VmidLock {
    fn state(&self) -> std::sync::MutexGuard<'_, VmidState> {
        self.st
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Joins the run's hold on the node's lock, taking it when nobody of this run holds it.
    fn hold(&self, node: &dyn Transport, wait: Duration) -> Result<VmidHold<'_>> {
        let mut st = self.state();
        if st.holders == 0 {
            st.guard = Some(node.lock("vmid", wait)?);
        }
        st.holders += 1;
        Ok(VmidHold {
            lock: self,
            vmid: None,
        })
    }
}

/// Runs `f` while this run holds the node's VMID lock (shared with this run's other workers):
/// no provision process creates a container, so no freed ID is reused, until `f` returns.
pub fn with_vmid_lock<R>(ctx: &Ctx, f: impl FnOnce() -> R) -> Result<R> {
    let _hold = ctx.vmids.hold(ctx.node.as_ref(), ctx.lock_wait)?;
    Ok(f())
}

impl VmidHold<'_> {
    /// Chooses the ID to create: `fixed`, or the node's next free one that no other worker of
    /// this run is creating and that has not failed in this attempt (`tried`).
    fn pick(
        &mut self,
        node: &dyn Transport,
        fixed: Option<u32>,
        tried: &BTreeSet<u32>,
    ) -> Result<u32> {
        self.release_id();
        let mut st = self.lock.state();
        let vmid = match fixed {
            Some(v) => v,
            None => {
                let first = next_vmid(node)?;
                let mut v = first;
                let mut checked = 0;
                loop {
                    if !st.reserved.contains(&v) && !tried.contains(&v) {
                        // The node's answer is free; a later ID is asked about explicitly.
                        if v == first || vmid_free(node, v)? {
                            break v;
                        }
                    }
                    checked += 1;
                    if checked > 100 {
                        bail!(
                            "no free VMID from {first} to {v} (this run is creating {:?})",
                            st.reserved
                        );
                    }
                    v += 1;
                }
            }
        };
        st.reserved.insert(vmid);
        self.vmid = Some(vmid);
        Ok(vmid)
    }

    fn release_id(&mut self) {
        if let Some(v) = self.vmid.take() {
            self.lock.state().reserved.remove(&v);
        }
    }
}

impl Drop for VmidHold<'_> {
    fn drop(&mut self) {
        self.release_id();
        let mut st = self.lock.state();
        st.holders -= 1;
        if st.holders == 0 {
            st.guard = None;
        }
    }
}

/// `pvesh get /cluster/nextid --vmid V` succeeds with V when V is free.
fn vmid_free(node: &dyn Transport, v: u32) -> Result<bool> {
    let out = node.run(
        &Cmd::new("pvesh").args([
            "get",
            "/cluster/nextid",
            "--vmid",
            &v.to_string(),
            "--output-format",
            "json",
        ]),
        None,
    )?;
    Ok(out.success() && out.stdout_text().trim().trim_matches('"') == v.to_string())
}

/// Chooses the VMID and creates the container under the node's VMID lock (shared by this run's
/// workers, see [`VmidLock`]), so that two creators (threads or processes) never pick the same
/// ID. A create that still loses the race (another tool created it meanwhile) is retried with
/// the next free ID.
pub(super) fn create_locked(ctx: &Ctx, step: &Step, fixed: Option<u32>) -> Result<u32> {
    let mut hold = ctx.vmids.hold(ctx.node.as_ref(), ctx.lock_wait)?;
    // Under the lock, the guest list is the truth: another run may have created this very
    // container since the facts were read.
    if let Step::Create { options, .. } = step
        && let Some((_, host)) = options.iter().find(|(k, _)| k == "hostname")
    {
        let guests = facts::gather_guests(ctx.node.as_ref())?;
        if let Some(g) = guests.iter().find(|g| g.name.eq_ignore_ascii_case(host)) {
            return Err(CreatedMeanwhile {
                hostname: host.clone(),
                vmid: g.vmid,
            }
            .into());
        }
    }
    let ct = (ctx.container)(0);
    let mut last_err = None;
    let mut tried = BTreeSet::new();
    for _attempt in 0..5 {
        let vmid = hold.pick(ctx.node.as_ref(), fixed, &tried)?;
        let actions = step.bounded_actions(vmid, ctx.opts.step_timeouts.of(step.kind()));
        let mut res = Ok(());
        for a in &actions {
            let is_cleanup = matches!(a, Action::Node(c) if c.program == "rm");
            if res.is_err() && !is_cleanup {
                continue;
            }
            let r = exec_action(ctx.node.as_ref(), ct.as_ref(), a);
            if is_cleanup {
                // The key file holds public keys only; a failed removal is worth a warning,
                // not a failed create (the container exists by now).
                if let Err(e) = r {
                    tracing::warn!("could not remove the temporary key file on the node: {e:#}");
                }
            } else if res.is_ok() {
                res = r.map(|_| ()).map_err(|e| classify_create_failure(e, vmid));
            }
        }
        match res {
            Ok(()) => return Ok(vmid),
            Err(e) if fixed.is_none() && e.downcast_ref::<VmidTaken>().is_some() => {
                tracing::info!("VMID {vmid} was taken meanwhile; trying the next free one");
                tried.insert(vmid);
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow!("could not create the container")))
        .context("five VMIDs in a row were taken by someone else")
}
