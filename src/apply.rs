//! The applier: runs plans through transports, one container at a time per worker, isolating
//! failures, with the VMID lock and the rollback policy.
//!
//! For each container: read its facts, plan the node part, run it (choosing the VMID under the
//! node lock), read the facts inside, plan the inside part, run it, verify, report. A failing
//! step stops that container only and is reported with the step, the error and the last lines
//! of output; with `rollback`, a container created by this very run is destroyed again.

use crate::cmd::{Cmd, Output};
use crate::facts::{self, Guest, InsideFacts, NodeFacts, TemplateFacts, parse_property_string};
use crate::plan::{
    self, Action, Content, InsidePlan, NodePlan, Options, ProfileFiles, Request, SourceFacts, Step,
};
use crate::profile::{Driver, FuseSource};
use crate::progress::Line;
use crate::report::{ContainerReport, Failure, Outcome, StepReport};
use crate::transport::pct::Pct;
use crate::transport::{CmdFailed, Transport};
use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Runs `cmd`; a non-zero exit becomes [`CmdFailed`] (see [`crate::transport::run_ok`]).
pub fn run_checked(t: &dyn Transport, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
    crate::transport::run_ok(t, cmd, stdin)
}

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
    /// SSH settings (identities, passphrase) for containers reached with `[access] method = "ssh"`.
    pub container_ssh: crate::transport::ssh::SshOptions,
    /// Source facts (fuse-overlayfs checksum on the node), read once per run per source.
    pub sources: Mutex<std::collections::BTreeMap<String, (SourceFacts, Vec<Step>)>>,
    /// Bridge MTUs read this run (only for profiles that set `network.mtu`).
    pub bridge_mtu: Mutex<BTreeMap<String, Option<u32>>>,
}

impl Ctx {
    /// Takes what the node's release can do from its facts (read once per run per node).
    pub fn use_facts(&self, nf: &NodeFacts) {
        self.keep_env
            .store(nf.caps.exec_keep_env, Ordering::Relaxed);
    }

    /// The VMID a plan shows for a new container: from the node's next free ID (asked once per
    /// run) up, skipping the node's guests and what this run proposed already. A real run
    /// chooses at create time, under the lock.
    pub fn propose_vmid(&self, nf: &NodeFacts) -> Result<u32> {
        let mut p = self.proposed.lock().unwrap_or_else(|e| e.into_inner());
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
            .unwrap_or_else(|e| e.into_inner());
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
            sources: Mutex::new(std::collections::BTreeMap::new()),
            bridge_mtu: Mutex::default(),
            container_ssh: crate::transport::ssh::SshOptions::default(),
        }
    }

    /// The transport for the inside of container `vmid` on node `node_name` (empty: unknown):
    /// pct through the node, or SSH straight in when the profile asks for it.
    pub fn inside(&self, req: &Request, vmid: u32, node_name: &str) -> Result<Arc<dyn Transport>> {
        let access = &req.profile.access;
        if access.method != "ssh" {
            return Ok((self.container)(vmid));
        }
        let static_ip = Some(req.profile.network.ip.as_str()).filter(|ip| ip.contains('/'));
        let node_name = if node_name.is_empty() && access.address.is_none() && static_ip.is_none() {
            let out = run_checked(
                self.node.as_ref(),
                &Cmd::new("pvesh").args(["get", "/cluster/status", "--output-format", "json"]),
                None,
            )?;
            crate::batch::local_node_name(&out.stdout_text())
                .context("cannot tell the node's name from `pvesh get /cluster/status` (needed to find the container's address)")?
        } else {
            node_name.to_string()
        };
        Ok(Arc::new(crate::transport::ssh_ct::SshContainer::new(
            self.node.clone(),
            &node_name,
            vmid,
            access,
            static_ip,
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

/// Reads the source facts (fuse-overlayfs on the node) and refuses a binary whose checksum is
/// not the pinned one, before anything is changed.
pub fn gather_sources(
    node: &dyn Transport,
    nf: &NodeFacts,
    p: &crate::profile::Profile,
    driver: Option<Driver>,
) -> Result<(SourceFacts, Vec<Step>)> {
    if driver != Some(Driver::FuseOverlayfs) {
        return Ok((SourceFacts::default(), vec![]));
    }
    let (path, pinned, url) = match &p.docker.fuse_overlayfs {
        FuseSource::Package => return Ok((SourceFacts::default(), vec![])),
        FuseSource::Node { path, sha256 } => (path.clone(), sha256.clone(), None),
        FuseSource::Url { url, sha256 } => (
            plan::fuse_cache_path(sha256),
            Some(sha256.clone()),
            Some(url.clone()),
        ),
    };
    let out = node.run(&Cmd::new("sha256sum").arg(&path), None);
    let have = match out {
        Ok(o) if o.success() => o.stdout_text().split_whitespace().next().map(String::from),
        Ok(_) => None,
        Err(e) if !nf.pve => {
            tracing::debug!("no sha256sum here: {e:#}");
            None
        }
        Err(e) => return Err(e),
    };
    match (have, url) {
        (Some(h), url) => {
            if let Some(want) = &pinned
                && &h != want
            {
                if url.is_some() {
                    bail!(
                        "the cached download {path} on the node has SHA-256 {h}, not the {want} it was kept for: it was changed after the download; refusing to push it. Remove the file and run again to download it anew"
                    );
                }
                bail!(
                    "{} on the node has SHA-256 {h}, but the profile pins {want}: refusing to push a binary that is not the one asked for",
                    path
                );
            }
            Ok((
                SourceFacts {
                    fuse_sha256: Some(h),
                    fuse_present: true,
                },
                vec![],
            ))
        }
        (None, Some(url)) => {
            let sha = pinned.unwrap_or_default();
            Ok((
                SourceFacts {
                    fuse_sha256: Some(sha.clone()),
                    fuse_present: false,
                },
                vec![Step::FetchFuseOverlayfs { url, sha256: sha }],
            ))
        }
        (None, None) if nf.pve => bail!(
            "the fuse-overlayfs binary {path} does not exist on the node; put it there, or set docker.fuse_overlayfs.source = \"package\" (or \"url\" with a sha256)"
        ),
        (None, None) => Ok((
            SourceFacts {
                fuse_sha256: pinned,
                fuse_present: false,
            },
            vec![],
        )),
    }
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
            let mtu = {
                let mut cache = ctx.bridge_mtu.lock().unwrap_or_else(|p| p.into_inner());
                match cache.get(bridge) {
                    Some(m) => *m,
                    None => {
                        let m = facts::gather_bridge_mtu(ctx.node.as_ref(), bridge)?;
                        cache.insert(bridge.clone(), m);
                        m
                    }
                }
            };
            let mut n = nf.clone();
            if let Some(m) = mtu {
                n.bridge_mtu.insert(bridge.clone(), m);
            }
            with_mtu = n;
            &with_mtu
        }
        _ => nf,
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
    let node_plan = plan::plan_node(
        req,
        nf,
        existing.as_ref(),
        ct.as_ref(),
        tf.as_ref(),
        proposed,
        &ctx.opts,
    )?;
    let key = format!(
        "{:?}/{:?}",
        node_plan.driver, req.profile.docker.fuse_overlayfs
    );
    let cached = ctx
        .sources
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    let (src, src_steps) = match cached {
        Some(c) => c,
        None => {
            let c = gather_sources(ctx.node.as_ref(), nf, &req.profile, node_plan.driver)?;
            ctx.sources
                .lock()
                .unwrap_or_else(|p| p.into_inner())
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

/// `pvesh get /cluster/nextid`.
pub fn next_vmid(node: &dyn Transport) -> Result<u32> {
    let out = run_checked(
        node,
        &Cmd::new("pvesh").args(["get", "/cluster/nextid", "--output-format", "json"]),
        None,
    )?;
    let t = out.stdout_text();
    t.trim().trim_matches('"').parse().with_context(|| {
        format!(
            "pvesh get /cluster/nextid printed {:?}, not a VMID",
            t.trim()
        )
    })
}

/// Reads the profile's files from the machine running provision.
pub fn read_profile_files(p: &crate::profile::Profile) -> Result<ProfileFiles> {
    let mut out = Vec::new();
    for f in &p.files {
        let mode = crate::profile::parse_mode(&f.mode).map_err(|e| anyhow!(e))?;
        let bytes = match (&f.content, &f.source) {
            (Some(c), _) => c.clone().into_bytes(),
            (None, Some(src)) => {
                let path = match &p.base_dir {
                    Some(d) if std::path::Path::new(src).is_relative() => d.join(src),
                    _ => std::path::PathBuf::from(src),
                };
                std::fs::read(&path)
                    .with_context(|| format!("reading {} for {}", path.display(), f.dest))?
            }
            (None, None) => Vec::new(),
        };
        out.push((f.dest.clone(), mode, Arc::new(bytes)));
    }
    Ok(out)
}

struct Runner<'a> {
    ctx: &'a Ctx,
    line: &'a Line,
    /// What the run is doing now (a step's name, or a phase between steps): a failure outside
    /// any step is reported under it.
    phase: String,
    report: ContainerReport,
    created: Option<u32>,
    changed: bool,
}

impl Runner<'_> {
    fn step<T>(&mut self, step: &Step, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.ctx.cancel.load(Ordering::SeqCst) {
            // Interrupted: the step before finished; nothing more starts.
            self.report.steps.push(StepReport {
                name: step.name(),
                why: "interrupted before it started".into(),
                status: "failed".into(),
                duration_ms: 0,
                detail: String::new(),
            });
            bail!(
                "interrupted (SIGINT/SIGTERM) before step {:?}; run again to continue",
                step.name()
            );
        }
        self.phase(&step.name());
        let t0 = Instant::now();
        let res = f(self);
        let ms = t0.elapsed().as_millis() as u64;
        self.report.steps.push(StepReport {
            name: step.name(),
            why: step.why(),
            status: if res.is_ok() {
                "done".into()
            } else {
                "failed".into()
            },
            duration_ms: ms,
            detail: String::new(),
        });
        if res.is_ok() && step.changes() {
            self.changed = true;
        }
        res.with_context(|| format!("step {:?}", step.name()))
    }

    /// Runs `step` once per run for `key`, whatever the number of containers that need it:
    /// parallel workers wait for the first, later ones note it as already done (`already`).
    fn once(
        &mut self,
        key: &str,
        step: &Step,
        already: &str,
        f: impl FnOnce(&mut Self) -> Result<()>,
    ) -> Result<()> {
        let ctx = self.ctx;
        let _serial = ctx.template_lock.lock().unwrap_or_else(|p| p.into_inner());
        let done = |k: &str| {
            ctx.templates_done
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(k)
        };
        if done(key) {
            self.report.already.push(plan::Already {
                step: step.name(),
                why: already.into(),
            });
            return Ok(());
        }
        self.step(step, f)?;
        ctx.templates_done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string());
        Ok(())
    }

    /// Names what happens now (progress line and failure reports).
    fn phase(&mut self, name: &str) {
        self.phase = name.to_string();
        self.line.step(name);
    }

    fn run_actions(&mut self, step: &Step, vmid: u32, ct: &dyn Transport) -> Result<Vec<Output>> {
        let node = self.ctx.node.clone();
        let mut outs = Vec::new();
        for a in step.actions(vmid) {
            outs.push(exec_action(node.as_ref(), ct, &a)?);
        }
        Ok(outs)
    }
}

/// Runs one action.
pub fn exec_action(node: &dyn Transport, ct: &dyn Transport, a: &Action) -> Result<Output> {
    match a {
        Action::Node(c) => run_checked(node, c, None),
        Action::Inside(c, None) => run_checked(ct, c, None),
        Action::Inside(c, Some(secret)) => {
            // What goes to stdin is a secret: a command that echoes its input must not carry it
            // into the report.
            let out = ct.run(c, Some(&secret.0))?;
            if !out.success() {
                return Err(CmdFailed {
                    label: ct.label(),
                    cmd: c.to_string(),
                    status: out.status,
                    tail: scrub(&out.tail(20), &secret.0),
                }
                .into());
            }
            Ok(Output {
                stdout: scrub(&out.stdout_text(), &secret.0).into_bytes(),
                stderr: Vec::new(),
                ..out
            })
        }
        Action::Put {
            dest,
            mode,
            content,
            ..
        } => {
            match content {
                Content::Bytes(b) => ct.put(b, dest, *mode)?,
                Content::NodeFile(src) => ct.put_from_node(node, src, dest, *mode)?,
            }
            Ok(Output::default())
        }
        Action::PutNode { dest, bytes } => {
            node.put(bytes, dest, 0o600)?;
            Ok(Output::default())
        }
    }
}

/// Removes every piece of `secret` (each line, and each `user:` line's value) from `text`.
pub fn scrub(text: &str, secret: &[u8]) -> String {
    let secret = String::from_utf8_lossy(secret);
    let mut pieces: Vec<&str> = Vec::new();
    for line in secret.lines().filter(|l| !l.is_empty()) {
        pieces.push(line);
        if let Some((_, v)) = line.split_once(':')
            && !v.is_empty()
        {
            pieces.push(v);
        }
    }
    pieces.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut out = text.to_string();
    for p in pieces {
        out = out.replace(p, "***");
    }
    out
}

/// True when a failed `pct create` says the VMID is taken (a concurrent creator won).
fn vmid_taken(err: &anyhow::Error) -> bool {
    let text = format!("{err:#}");
    text.contains("already exists") || text.contains("can't lock file")
}

/// Brings one container to its profile. Never panics on a node failure: the report says it.
pub fn converge(
    ctx: &Ctx,
    req: &Request,
    nf: &NodeFacts,
    password: Option<&str>,
    files: &ProfileFiles,
    line: &Line,
) -> ContainerReport {
    let t0 = Instant::now();
    let mut r = Runner {
        ctx,
        line,
        report: ContainerReport::new(&req.hostname),
        phase: "facts".to_string(),
        created: None,
        changed: false,
    };
    let mut res = converge_inner(&mut r, req, nf, password, files);
    if let Err(e) = &res
        && e.chain().any(|c| c.is::<CreatedMeanwhile>())
    {
        // Another run created this very container after our facts were read (it held the
        // container's lock meanwhile): read the guest list again and converge what exists.
        r.report.steps.retain(|s| s.name != "create");
        match facts::gather_guests(ctx.node.as_ref()) {
            Ok(guests) => {
                let fresh = NodeFacts {
                    guests,
                    ..nf.clone()
                };
                res = converge_inner(&mut r, req, &fresh, password, files);
            }
            Err(e) => res = Err(e),
        }
    }
    let mut report = r.report;
    report.duration_ms = t0.elapsed().as_millis() as u64;
    match res {
        Ok(()) => {
            report.outcome = if r.created.is_some() {
                Outcome::Created
            } else if r.changed {
                Outcome::Changed
            } else {
                Outcome::Unchanged
            };
            line.finish(true, report.outcome.word());
        }
        Err(e) => {
            let tail = e
                .chain()
                .find_map(|c| c.downcast_ref::<CmdFailed>())
                .map(|c| c.tail.lines().map(String::from).collect())
                .unwrap_or_default();
            let step = report
                .steps
                .iter()
                .rev()
                .find(|s| s.status == "failed")
                .map_or_else(|| r.phase.clone(), |s| s.name.clone());
            let mut left = match (r.created, report.vmid) {
                (Some(v), _) => format!(
                    "container {v} was created by this run and is half-made; the next run continues it"
                ),
                (None, Some(v)) if r.changed => {
                    format!("container {v} was partly changed; the next run continues it")
                }
                (None, Some(v)) => format!("container {v} is as it was"),
                (None, None) => "nothing was changed".to_string(),
            };
            report.outcome = Outcome::Failed;
            if let (Some(v), true) = (r.created, ctx.rollback) {
                match destroy(ctx.node.as_ref(), v) {
                    Ok(()) => {
                        left = format!(
                            "container {v}, created by this run, was destroyed (--rollback)"
                        );
                        report.outcome = Outcome::RolledBack;
                    }
                    Err(de) => {
                        left = format!(
                            "container {v} was created by this run; rollback failed: {de:#}"
                        )
                    }
                }
            }
            report.failure = Some(Failure {
                step,
                message: format!("{e:#}"),
                tail,
                usage: crate::error::is_input_error(&e) && r.created.is_none() && !r.changed,
                left,
            });
            line.finish(
                false,
                &format!(
                    "failed: {}",
                    report.failure.as_ref().map_or("", |f| f.step.as_str())
                ),
            );
        }
    }
    report
}

/// After `pct resize`: the root disk's size in the config is at least `size`.
fn check_resized(node: &dyn Transport, node_name: &str, vmid: u32, size: &str) -> Result<()> {
    let cfg = facts::gather_ct(node, node_name, vmid)?;
    let have = cfg
        .effective("rootfs")
        .map(|r| parse_property_string(r, "volume"))
        .and_then(|m| m.get("size").and_then(|s| crate::rootdisk::parse_size(s)));
    let want = crate::rootdisk::parse_size(size).unwrap_or(u64::MAX);
    match have {
        Some(h) if h >= want => Ok(()),
        Some(h) => bail!(
            "pct resize reported success, but the root disk is still {} (wanted {size}); see the node's task log",
            crate::rootdisk::human(h)
        ),
        None => bail!("pct resize ran, but the container's config shows no root disk size"),
    }
}

/// Stops (when running) and destroys a container with its disks.
pub fn destroy(node: &dyn Transport, vmid: u32) -> Result<()> {
    let id = vmid.to_string();
    let st = node.run(&Cmd::new("pct").args(["status", &id]), None)?;
    if st.stdout_text().contains("running") {
        run_checked(node, &Cmd::new("pct").args(["stop", &id]), None)?;
    }
    run_checked(
        node,
        &Cmd::new("pct").args(["destroy", &id, "--purge"]),
        None,
    )?;
    Ok(())
}

fn converge_inner(
    r: &mut Runner<'_>,
    req: &Request,
    nf: &NodeFacts,
    password: Option<&str>,
    files: &ProfileFiles,
) -> Result<()> {
    let ctx = r.ctx;
    r.phase("facts");
    ctx.use_facts(nf);
    if !nf.pve {
        bail!("no Proxmox VE tools (pct, pvesh) answer on this node; only --dry-run works here");
    }
    // One provision at a time per container name on this node, across processes: a second run
    // for the same container waits, then finds it done.
    let _ct_lock = ctx.node.lock(
        &format!("ct-{}", req.hostname.to_ascii_lowercase()),
        ctx.lock_wait,
    )?;
    let (prep, _existing) = prepare(ctx, req, nf, false)?;
    let Prepared {
        mut node_plan,
        src,
        src_steps,
    } = prep;
    r.report.driver = node_plan.driver.map(|d| d.as_str().to_string());
    r.report.driver_reason = node_plan.driver_reason.clone();
    r.report.notes.extend(node_plan.notes.iter().cloned());
    r.report.already.extend(node_plan.already.iter().cloned());
    r.report.pending = node_plan.pending.clone();
    if node_plan.exists {
        r.report.vmid = Some(node_plan.vmid);
    }
    for s in &src_steps {
        if let Step::FetchFuseOverlayfs { sha256, .. } = s {
            // One download per run, whatever the number of containers.
            let ct = (ctx.container)(0);
            let key = format!("fuse-overlayfs:{sha256}");
            r.once(&key, s, "downloaded earlier in this run", |r| {
                r.run_actions(s, 0, ct.as_ref()).map(|_| ())
            })?;
            continue;
        }
        let ct = (ctx.container)(0);
        r.step(s, |r| r.run_actions(s, 0, ct.as_ref()).map(|_| ()))?;
    }
    let mut vmid = node_plan.vmid;
    let steps = std::mem::take(&mut node_plan.steps);
    let mut i = 0;
    let mut steps = steps;
    while i < steps.len() {
        let step = steps[i].clone();
        match &step {
            Step::UpdateTemplateIndex => {
                // Once per run: parallel workers that all found the index empty update it once.
                r.once("pveam update", &step, "updated earlier in this run", |r| {
                    let out = r.ctx.node.run(&Cmd::new("pveam").arg("update"), None)?;
                    if plan::pveam_update_failed(&out) {
                        bail!(
                            "pveam update failed (it exits 0 even then): {}",
                            out.tail(5).trim()
                        );
                    }
                    Ok(())
                })?;
                let tf = facts::gather_templates(ctx.node.as_ref(), &req.profile.template_storage)?;
                ctx.template_facts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(req.profile.template_storage.clone(), tf.clone());
                let mut notes = Vec::new();
                if tf.available.is_empty() {
                    bail!("the template index is still empty after `pveam update`");
                }
                let (volid, more) =
                    plan::resolve_template(&req.profile, &tf, &nf.caps, &mut notes)?;
                // The download planned before the update named a guess; the index decides now.
                let rest: Vec<Step> = steps
                    .drain(i + 1..)
                    .filter(|s| !matches!(s, Step::DownloadTemplate { .. }))
                    .collect();
                steps.extend(rest);
                for s in steps.iter_mut() {
                    if let Step::Create { template, .. } = s {
                        *template = volid.clone();
                    }
                }
                steps.splice(i + 1..i + 1, more);
            }
            Step::DownloadTemplate { storage, name } => {
                let key = format!("{storage}:vztmpl/{name}");
                let ct = (ctx.container)(0);
                r.once(&key, &step, "downloaded earlier in this run", |r| {
                    let outs = r.run_actions(&step, 0, ct.as_ref())?;
                    let listed = outs
                        .last()
                        .map(|o| facts::parse_pveam_list(&o.stdout_text()))
                        .unwrap_or_default();
                    if !listed.contains(&key) {
                        bail!("pveam download reported success but {key} is not in `pveam list {storage}`");
                    }
                    Ok(())
                })?;
            }
            Step::Create { fixed_vmid, .. } => {
                if ctx.cancel.load(Ordering::SeqCst) {
                    bail!("interrupted before the container was created");
                }
                let fixed = *fixed_vmid;
                vmid = r.step(&step, |r| create_locked(r.ctx, &step, fixed))?;
                r.created = Some(vmid);
                r.report.vmid = Some(vmid);
            }
            Step::Resize { size } => {
                // `pct resize` exits 0 when its storage task fails: the config says what
                // really happened.
                let ct = (ctx.container)(vmid);
                let node_name = node_plan.node.clone();
                r.step(&step, |r| {
                    r.run_actions(&step, vmid, ct.as_ref())?;
                    check_resized(r.ctx.node.as_ref(), &node_name, vmid, size)
                })?;
            }
            _ => {
                let ct = (ctx.container)(vmid);
                r.step(&step, |r| {
                    r.run_actions(&step, vmid, ct.as_ref()).map(|_| ())
                })?;
                if let Step::Set { .. } = step
                    && node_plan.running
                {
                    // What PVE kept pending is read back, not guessed.
                    r.phase("read pending changes");
                    let cfg = facts::gather_ct(ctx.node.as_ref(), &node_plan.node, vmid)?;
                    let mut keys: Vec<String> = cfg
                        .pending
                        .keys()
                        .chain(cfg.pending_delete.iter())
                        .cloned()
                        .collect();
                    keys.sort();
                    keys.dedup();
                    if ctx.opts.restart {
                        // Reboot only when something is really pending.
                        if keys.is_empty() {
                            steps.retain(|s| !matches!(s, Step::Reboot { .. }));
                            r.report.already.push(plan::Already {
                                step: "reboot".into(),
                                why: "PVE applied every change at once; nothing is pending".into(),
                            });
                        } else {
                            for s in steps.iter_mut() {
                                if let Step::Reboot { keys: k } = s {
                                    *k = keys.clone();
                                }
                            }
                            if !steps.iter().any(|s| matches!(s, Step::Reboot { .. })) {
                                steps.push(Step::Reboot { keys });
                            }
                        }
                    } else {
                        r.report.pending.clone_from(&keys);
                        if !keys.is_empty() {
                            r.report.notes.push(format!(
                                "pending until the container restarts: {} (run again with --restart to restart it now)",
                                keys.join(", ")
                            ));
                        }
                    }
                }
            }
        }
        i += 1;
    }
    // Inside.
    let ct = ctx.inside(req, vmid, &node_plan.node)?;
    r.phase("wait for init and network");
    let file_dests: Vec<String> = files.iter().map(|(d, _, _)| d.clone()).collect();
    let t0 = Instant::now();
    let inside = facts::gather_inside(ct.as_ref(), &file_dests)?;
    tracing::debug!("ct/{vmid}: ready and facts read in {:?}", t0.elapsed());
    let ip = plan::plan_inside(
        &req.profile,
        node_plan.driver,
        &inside,
        &src,
        files,
        password,
        &ctx.opts,
    )?;
    r.report.already.extend(ip.already.iter().cloned());
    r.report.notes.extend(ip.notes.iter().cloned());
    for step in &ip.steps {
        let outs = r.step(step, |r| r.run_actions(step, vmid, ct.as_ref()))?;
        if let Step::Verify { .. } = step {
            r.report.verified = true;
            if let (Some(last), Some(sr)) = (outs.last(), r.report.steps.last_mut()) {
                sr.detail = last.stdout_text().trim().to_string();
            }
        }
    }
    Ok(())
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
        self.st.lock().unwrap_or_else(|e| e.into_inner())
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
fn create_locked(ctx: &Ctx, step: &Step, fixed: Option<u32>) -> Result<u32> {
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
        let actions = step.actions(vmid);
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
                res = r.map(|_| ());
            }
        }
        match res {
            Ok(()) => return Ok(vmid),
            Err(e) if fixed.is_none() && vmid_taken(&e) => {
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

/// A dry-run plan for one container.
#[derive(Serialize, Debug, Clone)]
pub struct PlanView {
    /// Hostname.
    pub hostname: String,
    /// VMID (proposed when auto).
    pub vmid: u32,
    /// VMID is chosen at create time.
    pub vmid_auto: bool,
    /// The container exists.
    pub exists: bool,
    /// Storage driver and reason.
    pub driver: Option<String>,
    /// Why.
    pub driver_reason: String,
    /// Steps with their commands.
    pub steps: Vec<StepView>,
    /// Checks with nothing to do.
    pub already: Vec<plan::Already>,
    /// Notes.
    pub notes: Vec<String>,
}

/// One step of a dry-run plan.
#[derive(Serialize, Debug, Clone)]
pub struct StepView {
    /// Name.
    pub name: String,
    /// Why.
    pub why: String,
    /// Every command, as argv.
    pub commands: Vec<Vec<String>>,
    /// Every file written: destination, mode, SHA-256.
    pub files: Vec<FileView>,
}

/// A file a plan writes.
#[derive(Serialize, Debug, Clone)]
pub struct FileView {
    /// Where: `ct:/path` inside the container or `node:/path`.
    pub dest: String,
    /// Octal mode.
    pub mode: String,
    /// SHA-256 of the content (null when it is not known before the run).
    pub sha256: Option<String>,
}

/// Renders steps for a dry run.
pub fn view_steps(steps: &[Step], vmid: u32, keep_env: bool) -> Vec<StepView> {
    steps
        .iter()
        .map(|s| {
            let acts = s.actions(vmid);
            let mut files = Vec::new();
            let mut commands = Vec::new();
            for a in &acts {
                match a {
                    Action::Put {
                        dest, mode, sha256, ..
                    } => files.push(FileView {
                        dest: format!("ct:{dest}"),
                        mode: format!("{mode:04o}"),
                        sha256: sha256.clone(),
                    }),
                    Action::PutNode { dest, bytes } => {
                        files.push(FileView {
                            dest: format!("node:{dest}"),
                            mode: "0600".into(),
                            sha256: Some(plan::sha256_hex(bytes)),
                        });
                        continue;
                    }
                    _ => {}
                }
                commands.push(plan::action_argv(a, vmid, keep_env));
            }
            StepView {
                name: s.name(),
                why: s.why(),
                commands,
                files,
            }
        })
        .collect()
}

/// Plans one container without changing anything: node facts, and inside facts when the
/// container runs (read-only), or a fresh container otherwise.
pub fn dry_plan(
    ctx: &Ctx,
    req: &Request,
    nf: &NodeFacts,
    password: Option<&str>,
    files: &ProfileFiles,
) -> Result<PlanView> {
    ctx.use_facts(nf);
    let (prep, existing) = prepare(ctx, req, nf, true)?;
    let np = &prep.node_plan;
    let mut notes = np.notes.clone();
    let inside: InsideFacts = match &existing {
        Some(g) if g.status == "running" => {
            let ct = ctx.inside(req, g.vmid, &g.node)?;
            let paths: Vec<String> = files.iter().map(|(d, _, _)| d.clone()).collect();
            facts::gather_inside(ct.as_ref(), &paths)?
        }
        Some(_) => {
            notes.push("the container is stopped: in-container steps assume what a fresh container needs; the real run reads it after start".into());
            InsideFacts::fresh()
        }
        None => {
            if nf.pve {
                notes.push("in-container steps assume a fresh container from the template".into());
            }
            InsideFacts::fresh()
        }
    };
    let ip: InsidePlan = plan::plan_inside(
        &req.profile,
        np.driver,
        &inside,
        &prep.src,
        files,
        password,
        &ctx.opts,
    )?;
    let mut steps = prep.src_steps.clone();
    steps.extend(np.steps.iter().cloned());
    let keep_env = nf.caps.exec_keep_env;
    let mut views = view_steps(&steps, np.vmid, keep_env);
    views.extend(view_steps(&ip.steps, np.vmid, keep_env));
    let mut already = np.already.clone();
    already.extend(ip.already);
    notes.extend(ip.notes);
    Ok(PlanView {
        hostname: req.hostname.clone(),
        vmid: np.vmid,
        vmid_auto: np.vmid_auto,
        exists: np.exists,
        driver: np.driver.map(|d| d.as_str().to_string()),
        driver_reason: np.driver_reason.clone(),
        steps: views,
        already,
        notes,
    })
}

/// Text rendering of a dry-run plan.
///
/// Multi-line scripts are shortened to their first line unless `full` (the JSON plan always
/// has them whole).
pub fn plan_text(v: &PlanView, full: bool) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let id = if v.vmid_auto {
        format!(
            "{} (next free ID; chosen under the node lock at create time)",
            v.vmid
        )
    } else {
        v.vmid.to_string()
    };
    let _ = writeln!(
        s,
        "container {} — VMID {id}, {}",
        v.hostname,
        if v.exists { "exists" } else { "to be created" }
    );
    if let Some(d) = &v.driver {
        let _ = writeln!(s, "  storage driver: {d} — {}", v.driver_reason);
    }
    for n in &v.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    if v.steps.iter().all(|st| st.name == "verify docker") {
        let _ = writeln!(s, "  nothing to change");
    }
    for (i, st) in v.steps.iter().enumerate() {
        let _ = writeln!(s, "  {}. {} — {}", i + 1, st.name, st.why);
        for c in &st.commands {
            let shown: Vec<String> = c
                .iter()
                .map(|w| match (full, w.lines().count()) {
                    (false, n) if n > 1 => {
                        let body = w.strip_prefix(plan::SH_PRELUDE).unwrap_or(w);
                        format!(
                            "<script, {n} lines: {} …>",
                            body.lines().next().unwrap_or("").trim()
                        )
                    }
                    _ => w.clone(),
                })
                .collect();
            let _ = writeln!(s, "       $ {}", crate::cmd::display_argv(&shown));
        }
        for f in &st.files {
            let _ = writeln!(
                s,
                "       > {} (mode {}, sha256 {})",
                f.dest,
                f.mode,
                f.sha256.as_deref().unwrap_or("known at run time")
            );
        }
    }
    for a in &v.already {
        let _ = writeln!(s, "  = {}: {}", a.step, a.why);
    }
    s
}
