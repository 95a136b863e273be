//! The applier: runs plans through transports, one container at a time per worker, isolating
//! failures, with the VMID lock and the rollback policy.
//!
//! For each container: read its facts, plan the node part, run it (choosing the VMID under the
//! node lock), read the facts inside, plan the inside part, run it, verify, report. A failing
//! step stops that container only and is reported with the step, the error and the last lines
//! of output; with `rollback`, a container created by this very run is destroyed again.

use crate::cmd::{Cmd, Output};
use crate::facts::{self, Guest, InsideFacts, NodeFacts, TemplateFacts};
use crate::plan::{self, Action, Content, InsidePlan, NodePlan, ProfileFiles, SourceFacts, Step};
use crate::profile::{Driver, FuseSource};
use crate::progress::Line;
use crate::report::{ContainerReport, Failure, Outcome, StepReport, StepStatus};
use crate::request::{Options, Request};
use crate::transport::pct::Pct;
use crate::transport::{CmdFailed, Transport, run_ok};
use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod converge;
mod dry_run;
mod gpu;
mod sources;
mod vmid;

pub use converge::*;
pub use dry_run::*;
pub use sources::*;
pub use vmid::*;

/// Shared state of a run.
pub struct Ctx {
    /// The node.
    pub node: Arc<dyn Transport>,
    /// Plan switches.
    pub opts: Options,
    /// Destroy what this run created when it fails.
    pub rollback: bool,
    /// Set on Ctrl-C: no new container is started.
    pub cancel: Arc<AtomicBool>,
    /// How long to wait for the node's VMID lock.
    pub lock_wait: Duration,
    /// The node's VMID lock as this run's workers share it, and the IDs they are creating.
    pub vmids: VmidLock,
    /// Dry runs: the node's next free ID (asked once) and the IDs proposed so far, so that the
    /// plans of a batch show distinct IDs without one `nextid` per container.
    pub proposed: Mutex<(Option<u32>, BTreeSet<u32>)>,
    /// Templates already made present by this run (downloaded once).
    pub templates_done: Mutex<BTreeSet<String>>,
    /// Serialises template downloads.
    pub template_lock: Mutex<()>,
    /// What each template storage held and the index offered, read once per run (parallel
    /// workers creating on the same storage do not each ask `pveam list` and `pveam available`;
    /// a template downloaded meanwhile is caught by `templates_done`).
    pub template_facts: Mutex<BTreeMap<String, TemplateFacts>>,
    /// Opens the transport for a container (pct through the node by default).
    pub container: Box<dyn Fn(u32) -> Arc<dyn Transport> + Send + Sync>,
    /// The node's pct has `exec --keep-env` (from the node facts; set by [`Ctx::use_facts`]).
    pub keep_env: Arc<AtomicBool>,
    /// Bridge MTUs read this run (only for profiles that set `network.mtu`).
    pub bridge_mtu: Mutex<BTreeMap<String, Option<u32>>>,
    /// SSH settings (identities, passphrase) for containers reached with `[access] method = "ssh"`.
    pub container_ssh: crate::transport::ssh::SshOptions,
    /// Where the host keys of containers reached over SSH are recorded.
    pub container_known_hosts: std::path::PathBuf,
    /// Source facts (fuse-overlayfs checksum on the node), read once per run per source.
    pub sources: Mutex<BTreeMap<String, (SourceFacts, Vec<Step>)>>,
}

impl Ctx {
    /// Takes what the node's release can do from its facts (read once per run per node).
    pub fn use_facts(&self, nf: &NodeFacts) {
        self.keep_env
            .store(nf.caps.exec_keep_env, Ordering::Relaxed);
    }

    /// The MTU of `bridge` on the node, read the first time in this run.
    pub fn bridge_mtu_of(&self, bridge: &str) -> Result<Option<u32>> {
        let mut cache = self
            .bridge_mtu
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = cache.get(bridge) {
            return Ok(*m);
        }
        let m = facts::gather_bridge_mtu(self.node.as_ref(), bridge)?;
        cache.insert(bridge.to_string(), m);
        Ok(m)
    }

    /// The VMID a plan shows for a new container: from the node's next free ID (asked once per
    /// run) up, skipping the node's guests and what this run proposed already. A real run
    /// chooses at create time, under the lock.
    pub fn propose_vmid(&self, nf: &NodeFacts) -> Result<u32> {
        let mut p = self
            .proposed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let base = match p.0 {
            Some(b) => b,
            None => {
                let b = next_vmid(self.node.as_ref())?;
                p.0 = Some(b);
                b
            }
        };
        let mut v = base;
        while p.1.contains(&v) || nf.guests.iter().any(|g| g.vmid == v) {
            v += 1;
        }
        p.1.insert(v);
        Ok(v)
    }

    /// The template facts of `storage`, read from the node the first time in this run.
    pub fn templates_of(&self, storage: &str) -> Result<TemplateFacts> {
        let mut seen = self
            .template_facts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tf) = seen.get(storage) {
            return Ok(tf.clone());
        }
        let tf = facts::gather_templates(self.node.as_ref(), storage)?;
        seen.insert(storage.to_string(), tf.clone());
        Ok(tf)
    }

    /// A context whose containers are reached through `pct` on `node`.
    pub fn new(node: Arc<dyn Transport>, opts: Options) -> Ctx {
        let n = node.clone();
        let keep_env = Arc::new(AtomicBool::new(true));
        let keep = keep_env.clone();
        Ctx {
            node,
            opts,
            rollback: false,
            cancel: Arc::new(AtomicBool::new(false)),
            lock_wait: Duration::from_secs(300),
            vmids: VmidLock::default(),
            proposed: Mutex::default(),
            templates_done: Mutex::new(BTreeSet::new()),
            template_facts: Mutex::default(),
            template_lock: Mutex::new(()),
            container: Box::new(move |vmid| {
                Arc::new(Pct {
                    node: n.clone(),
                    vmid,
                    keep_env: keep.load(Ordering::Relaxed),
                }) as Arc<dyn Transport>
            }),
            keep_env,
            bridge_mtu: Mutex::default(),
            sources: Mutex::new(BTreeMap::new()),
            container_ssh: crate::transport::ssh::SshOptions::default(),
            container_known_hosts: crate::transport::ssh_ct::containers_known_hosts(),
        }
    }

    /// The transport for the inside of container `vmid` on node `node_name` (from the plan or
    /// the node facts; None: unknown): pct through the node, or SSH straight in when the
    /// profile asks for it. `created`: this run created the container (a host key recorded for
    /// its address is stale).
    pub fn inside(
        &self,
        req: &Request,
        vmid: u32,
        node_name: Option<&str>,
        created: bool,
    ) -> Result<Arc<dyn Transport>> {
        let access = &req.profile.access;
        if access.method != crate::profile::AccessMethod::Ssh {
            return Ok((self.container)(vmid));
        }
        let static_ip = Some(req.profile.network.ip.as_str()).filter(|ip| ip.contains('/'));
        let node_name = match node_name.filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None if access.address.is_none() && static_ip.is_none() => bail!(
                "cannot tell the node's name (`pvesh get /cluster/status` did not say), which is needed to find the container's address; set access.address or a static network.ip"
            ),
            None => String::new(),
        };
        Ok(Arc::new(crate::transport::ssh_ct::SshContainer::new(
            self.node.clone(),
            &node_name,
            vmid,
            crate::transport::ssh_ct::CtAccess {
                access,
                static_ip,
                known_hosts: self.container_known_hosts.clone(),
                created,
            },
            &self.container_ssh,
        )))
    }
}

/// Everything needed to plan one container, read from the node.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The node plan.
    pub node_plan: NodePlan,
    /// Where the fuse-overlayfs binary comes from and its checksum.
    pub src: SourceFacts,
    /// Steps to get the binary onto the node first (URL source).
    pub src_steps: Vec<Step>,
}

/// Reads the facts for one request and plans the node part.
///
/// `propose`: ask the node for its next free VMID, to show in a plan (a real run chooses it
/// under the lock at create time, so it does not ask twice).
pub fn prepare(
    ctx: &Ctx,
    req: &Request,
    nf: &NodeFacts,
    propose: bool,
) -> Result<(Prepared, Option<Guest>)> {
    let existing = plan::find_existing(req, &nf.guests, &ctx.opts)?.cloned();
    if let (Some(g), Some(local)) = (&existing, &nf.local_node)
        && &g.node != local
    {
        bail!(
            "container {} (VMID {}) is on node {}, not on {local} where pct runs; run provision there, or with --host root@{}",
            g.name,
            g.vmid,
            g.node,
            g.node
        );
    }
    let ct = match &existing {
        Some(g) => Some(facts::gather_ct(ctx.node.as_ref(), &g.node, g.vmid)?),
        None => None,
    };
    // A profile MTU is checked against the bridge's, as PVE does at start: read it once.
    let with_mtu;
    let nf = match (&req.profile.network.mtu, nf.pve) {
        (Some(_), true) => {
            let bridge = &req.profile.network.bridge;
            let mut n = nf.clone();
            if let Some(m) = ctx.bridge_mtu_of(bridge)? {
                n.bridge_mtu.insert(bridge.clone(), m);
            }
            with_mtu = n;
            &with_mtu
        }
        _ => nf,
    };
    // Devices on a node without devN: their numbers and the container's raw lines, read once.
    let with_raw;
    let nf = if nf.pve && !nf.caps.dev_passthrough && !req.profile.devices.is_empty() {
        let paths: Vec<&str> = req
            .profile
            .devices
            .iter()
            .map(|d| d.path.as_str())
            .collect();
        let mut n = nf.clone();
        n.raw_lxc = Some(facts::gather_raw_lxc(
            ctx.node.as_ref(),
            &paths,
            existing.as_ref().map(|g| g.vmid),
        )?);
        with_raw = n;
        &with_raw
    } else {
        nf
    };
    let tf = match (&existing, nf.pve) {
        (None, true) => Some(ctx.templates_of(&req.profile.template_storage)?),
        _ => None,
    };
    let proposed = match (&existing, req.vmid, nf.pve) {
        (None, None, true) if propose => ctx.propose_vmid(nf)?,
        (None, None, true) => 0,
        (None, None, false) => nf
            .guests
            .iter()
            .map(|g| g.vmid + 1)
            .max()
            .unwrap_or(100)
            .max(100),
        _ => req.vmid.unwrap_or(0),
    };
    let node_plan = plan::plan_node(&plan::NodeInput {
        req,
        facts: nf,
        existing: existing.as_ref(),
        ct: ct.as_ref(),
        templates: tf.as_ref(),
        proposed_vmid: proposed,
        opts: &ctx.opts,
    })?;
    let key = format!(
        "{:?}/{:?}",
        node_plan.driver, req.profile.docker.fuse_overlayfs
    );
    let cached = ctx
        .sources
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
        .cloned();
    let (src, src_steps) = match cached {
        Some(c) => c,
        None => {
            let c = gather_sources(ctx.node.as_ref(), nf, &req.profile, node_plan.driver)?;
            ctx.sources
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key, c.clone());
            c
        }
    };
    Ok((
        Prepared {
            node_plan,
            src,
            src_steps,
        },
        existing,
    ))
}

/// The key for `[access] method = "ssh"` is used only after the container is made: a key that
/// cannot be read is bad input, found before anything changes. The error is the reason.
pub fn check_access_identity(p: &crate::profile::Profile) -> Result<(), String> {
    match &p.access.identity {
        Some(id) if p.access.method == crate::profile::AccessMethod::Ssh => {
            crate::input::read_input(std::path::Path::new(id), crate::input::KEY_LIMIT)
                .map(drop)
                .map_err(|e| format!("cannot read the key file {id}: {e}"))
        }
        _ => Ok(()),
    }
}

/// Source files already read in this run, by path: each is read once per run, however many
/// containers get it, and its bytes are shared.
#[derive(Debug, Default)]
pub struct SourceCache(BTreeMap<std::path::PathBuf, Arc<Vec<u8>>>);

/// Reads the profile's files from the machine running provision.
pub fn read_profile_files(p: &crate::profile::Profile) -> Result<ProfileFiles> {
    read_profile_files_with(p, &mut SourceCache::default())
}

/// [`read_profile_files`], reading each `source` at most once per `cache`. A source is an input
/// file ([`crate::input::read_input`]): a regular file, not under /dev, /proc or /sys, at most
/// [`crate::input::SOURCE_LIMIT`] bytes.
pub fn read_profile_files_with(
    p: &crate::profile::Profile,
    cache: &mut SourceCache,
) -> Result<ProfileFiles> {
    let mut out = Vec::new();
    for f in &p.files {
        let mode = crate::profile::parse_mode(&f.mode).map_err(|e| anyhow!(e))?;
        let bytes = match (&f.content, &f.source) {
            (Some(c), _) => Arc::new(c.clone().into_bytes()),
            (None, Some(src)) => {
                let path = match &p.base_dir {
                    Some(d) if std::path::Path::new(src).is_relative() => d.join(src),
                    _ => std::path::PathBuf::from(src),
                };
                match cache.0.get(&path) {
                    Some(b) => b.clone(),
                    None => {
                        let b = crate::input::read_input(&path, crate::input::SOURCE_LIMIT)
                            .with_context(|| {
                                format!("cannot read {} for {}", path.display(), f.dest)
                            })?;
                        let b = Arc::new(b);
                        cache.0.insert(path, b.clone());
                        b
                    }
                }
            }
            (None, None) => Arc::new(Vec::new()),
        };
        out.push((f.dest.clone(), mode, bytes));
    }
    Ok(out)
}
