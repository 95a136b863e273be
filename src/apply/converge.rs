//! Bringing one container to its profile: the steps of its plan run in order, each reported
//! with its outcome; a failure stops this container only and says what was left.

use super::vmid::create_locked;
use super::*;
use crate::release::Caps;

/// The run was interrupted (SIGINT/SIGTERM) before a step or the create started.
#[derive(Debug)]
pub enum Interrupted {
    /// Before this step.
    BeforeStep(String),
    /// Before the container was created.
    BeforeCreate,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interrupted::BeforeStep(s) => write!(
                f,
                "interrupted (SIGINT/SIGTERM) before step {s:?}; run again to continue"
            ),
            Interrupted::BeforeCreate => {
                f.write_str("interrupted before the container was created")
            }
        }
    }
}

impl std::error::Error for Interrupted {}

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
                status: StepStatus::Failed,
                duration_ms: 0,
                detail: String::new(),
            });
            return Err(Interrupted::BeforeStep(step.name()).into());
        }
        self.line.count_step();
        self.phase(&step.name());
        let t0 = Instant::now();
        let res = f(self);
        let ms = t0.elapsed().as_millis() as u64;
        self.report.steps.push(StepReport {
            name: step.name(),
            why: step.why(),
            status: if res.is_ok() {
                StepStatus::Done
            } else {
                StepStatus::Failed
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
        let _serial = ctx
            .template_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let done = |k: &str| {
            ctx.templates_done
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let limit = self.ctx.opts.step_timeouts.of(step.kind());
        for a in step.bounded_actions(vmid, limit) {
            outs.push(exec_action(node.as_ref(), ct, &a)?);
        }
        Ok(outs)
    }
}

/// Runs one action.
pub fn exec_action(node: &dyn Transport, ct: &dyn Transport, a: &Action) -> Result<Output> {
    match a {
        Action::Node(c) => run_ok(node, c, None),
        Action::Inside(c, None) => run_ok(ct, c, None),
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
        && e.chain()
            .any(<dyn std::error::Error + 'static>::is::<CreatedMeanwhile>)
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
            record_failure(ctx, &mut report, (r.created, r.changed, &r.phase), &e);
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
        .map(|r| facts::parse_property_string(r, "volume"))
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

/// The failure into the report: the step (or phase) it happened in, the command's output, what
/// state was left, and the rollback of a container this run created (`--rollback`).
fn record_failure(
    ctx: &Ctx,
    report: &mut ContainerReport,
    (created, changed, phase): (Option<u32>, bool, &str),
    e: &anyhow::Error,
) {
    let tail: Vec<String> = e
        .chain()
        .find_map(|c| c.downcast_ref::<CmdFailed>())
        .map(|c| c.tail.lines().map(String::from).collect())
        .unwrap_or_default();
    let step = report
        .steps
        .iter()
        .rev()
        .find(|s| s.status == StepStatus::Failed)
        .map_or_else(|| phase.to_string(), |s| s.name.clone());
    let mut left = match (created, report.vmid) {
        (Some(v), _) => format!(
            "container {v} was created by this run and is half-made; the next run continues it"
        ),
        (None, Some(v)) if changed => {
            format!("container {v} was partly changed; the next run continues it")
        }
        (None, Some(v)) => format!("container {v} is as it was"),
        (None, None) => "nothing was changed".to_string(),
    };
    report.outcome = Outcome::Failed;
    if let (Some(v), true) = (created, ctx.rollback) {
        match destroy(ctx.node.as_ref(), v) {
            Ok(()) => {
                left = format!("container {v}, created by this run, was destroyed (--rollback)");
                report.outcome = Outcome::RolledBack;
            }
            Err(de) => {
                left = format!("container {v} was created by this run; rollback failed: {de:#}");
            }
        }
    }
    let message = format!("{e:#}");
    report.failure = Some(Failure {
        step,
        known_issue: crate::known_issues::diagnose(&message, &tail),
        message,
        tail,
        usage: crate::error::is_input_error(e) && created.is_none() && !changed,
        interrupted: e
            .chain()
            .any(<dyn std::error::Error + 'static>::is::<Interrupted>),
        left,
    });
}

/// Stops (when running) and destroys a container with its disks.
pub fn destroy(node: &dyn Transport, vmid: u32) -> Result<()> {
    let id = vmid.to_string();
    let st = node.run(&Cmd::new("pct").args(["status", &id]), None)?;
    if st.stdout_text().contains("running") {
        run_ok(node, &Cmd::new("pct").args(["stop", &id]), None)?;
    }
    run_ok(
        node,
        &Cmd::new("pct").args(["destroy", &id, "--purge"]),
        None,
    )?;
    Ok(())
}

/// One container, from its node facts to a verified Docker: the node part of its plan, then the
/// inside part from the facts read inside.
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
    r.report_node_plan(&node_plan);
    r.plan_progress(req, &node_plan, &src, &src_steps, files, password);
    r.run_source_steps(&src_steps)?;
    let steps = std::mem::take(&mut node_plan.steps);
    let vmid = r.run_node_steps(req, &nf.caps, &node_plan, steps)?;
    let node_name = Some(node_plan.node.as_str())
        .filter(|n| !n.is_empty())
        .or(nf.local_node.as_deref());
    let ct = ctx.inside(req, vmid, node_name, r.created.is_some())?;
    r.phase("wait for init and network");
    let file_dests: Vec<String> = files.iter().map(|(d, _, _)| d.clone()).collect();
    let t0 = Instant::now();
    let inside = facts::gather_inside(ct.as_ref(), &file_dests)?;
    tracing::debug!("ct/{vmid}: ready and facts read in {:?}", t0.elapsed());
    r.report.addresses = crate::addresses::container_addresses(&inside.addresses);
    let node = node_name.unwrap_or_default();
    for step in gpu::gpu_steps(ctx, req, nf, node, vmid, &inside, &mut r.report)? {
        r.step(&step, |r| {
            r.run_actions(&step, vmid, ct.as_ref()).map(|_| ())
        })?;
    }
    let ip = plan::plan_inside(&plan::InsideInput {
        profile: &req.profile,
        driver: node_plan.driver,
        facts: &inside,
        sources: &src,
        files,
        password,
        opts: &ctx.opts,
    })?;
    plan::check_no_install(&req.profile, &ip)?;
    r.report.already.extend(ip.already.iter().cloned());
    r.report.notes.extend(ip.notes.iter().cloned());
    r.line.plan_rest(ip.steps.len());
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

impl Runner<'_> {
    /// What the node plan found, into the report.
    fn report_node_plan(&mut self, node_plan: &NodePlan) {
        self.report.driver = node_plan.driver.map(|d| d.as_str().to_string());
        self.report.driver_reason = node_plan.driver_reason.clone();
        self.report.notes.extend(node_plan.notes.iter().cloned());
        self.report
            .already
            .extend(node_plan.already.iter().cloned());
        self.report.pending = node_plan.pending.clone();
        if node_plan.exists {
            self.report.vmid = Some(node_plan.vmid);
            self.line.vmid(node_plan.vmid);
        }
        if !node_plan.node.is_empty() {
            self.report.node = Some(node_plan.node.clone());
        }
    }

    /// Steps in the plan, for the progress view: the in-container part of a new container as
    /// a fresh one needs it (refined once it is planned from what is inside).
    fn plan_progress(
        &mut self,
        req: &Request,
        node_plan: &NodePlan,
        src: &SourceFacts,
        src_steps: &[Step],
        files: &ProfileFiles,
        password: Option<&str>,
    ) {
        let inside_guess = match node_plan.exists {
            true => 0,
            false => plan::plan_inside(&plan::InsideInput {
                profile: &req.profile,
                driver: node_plan.driver,
                facts: &InsideFacts::fresh(),
                sources: src,
                files,
                password,
                opts: &self.ctx.opts,
            })
            .map_or(0, |p| p.steps.len()),
        };
        self.line
            .planned(src_steps.len() + node_plan.steps.len() + inside_guess);
    }

    /// Gets the fuse-overlayfs binary onto the node (one download per run).
    fn run_source_steps(&mut self, src_steps: &[Step]) -> Result<()> {
        let ct = (self.ctx.container)(0);
        for s in src_steps {
            if let Step::FetchFuseOverlayfs { sha256, .. } = s {
                // One download per run, whatever the number of containers.
                let key = format!("fuse-overlayfs:{sha256}");
                self.once(&key, s, "downloaded earlier in this run", |r| {
                    r.run_actions(s, 0, ct.as_ref()).map(|_| ())
                })?;
                continue;
            }
            self.step(s, |r| r.run_actions(s, 0, ct.as_ref()).map(|_| ()))?;
        }
        Ok(())
    }

    /// Runs the node steps; the planner re-plans the rest where the node's answer decides it.
    /// Returns the container's VMID (chosen at create time for a new one).
    fn run_node_steps(
        &mut self,
        req: &Request,
        caps: &Caps,
        node_plan: &NodePlan,
        mut steps: Vec<Step>,
    ) -> Result<u32> {
        let ctx = self.ctx;
        let mut vmid = node_plan.vmid;
        let mut i = 0;
        while i < steps.len() {
            let step = steps[i].clone();
            match &step {
                Step::UpdateTemplateIndex => {
                    self.update_template_index(&step)?;
                    let tf =
                        facts::gather_templates(ctx.node.as_ref(), &req.profile.template_storage)?;
                    ctx.template_facts
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(req.profile.template_storage.clone(), tf.clone());
                    // The download planned before the update named a guess; the index decides.
                    let rest = steps.split_off(i + 1);
                    steps.extend(plan::after_index_update(&req.profile, &tf, caps, rest)?);
                }
                Step::DownloadTemplate { storage, name } => {
                    self.download_template(&step, storage, name)?;
                }
                Step::BuildImage { name, .. } => bail!(
                    "image {name} is not on the node: it is built before the containers that need it (`provision image build`)"
                ),
                Step::Create { fixed_vmid, .. } => {
                    if ctx.cancel.load(Ordering::SeqCst) {
                        return Err(Interrupted::BeforeCreate.into());
                    }
                    let fixed = *fixed_vmid;
                    vmid = self.step(&step, |r| create_locked(r.ctx, &step, fixed))?;
                    self.created = Some(vmid);
                    self.report.vmid = Some(vmid);
                    self.line.vmid(vmid);
                }
                Step::Resize { size } => {
                    // `pct resize` exits 0 when its storage task fails: the config says what
                    // really happened.
                    let ct = (ctx.container)(vmid);
                    let node_name = node_plan.node.clone();
                    self.step(&step, |r| {
                        r.run_actions(&step, vmid, ct.as_ref())?;
                        check_resized(r.ctx.node.as_ref(), &node_name, vmid, size)
                    })?;
                }
                Step::RawLxc { lines, .. } => {
                    // Written by a script; `pct config` must show every line back, as written.
                    let ct = (ctx.container)(vmid);
                    self.step(&step, |r| {
                        let outs = r.run_actions(&step, vmid, ct.as_ref())?;
                        let shown = outs
                            .last()
                            .map(|o| crate::mounts::rawlxc::parse_pct_config(&o.stdout_text()))
                            .unwrap_or_default();
                        crate::mounts::rawlxc::check_round_trip(lines, &shown)
                    })?;
                }
                _ => {
                    let ct = (ctx.container)(vmid);
                    self.step(&step, |r| {
                        r.run_actions(&step, vmid, ct.as_ref()).map(|_| ())
                    })?;
                    if let Step::Set { .. } = step
                        && node_plan.running
                    {
                        let rest = steps.split_off(i + 1);
                        steps.extend(self.read_back_pending(node_plan, vmid, rest)?);
                    }
                }
            }
            i += 1;
        }
        Ok(vmid)
    }

    /// `pveam update`, once per run: parallel workers that all found the index empty update it
    /// once. Its exit status lies; its output says whether it worked.
    fn update_template_index(&mut self, step: &Step) -> Result<()> {
        self.once("pveam update", step, "updated earlier in this run", |r| {
            let limit = r.ctx.opts.step_timeouts.of(step.kind());
            let update = Cmd::new("pveam").arg("update").with_timeout(limit);
            let out = r.ctx.node.run(&update, None)?;
            if plan::pveam_update_failed(&out) {
                bail!(
                    "pveam update failed (it exits 0 even then): {}",
                    out.tail(5).trim()
                );
            }
            Ok(())
        })
    }

    /// `pveam download`, once per run per template, checked by listing the storage after.
    fn download_template(&mut self, step: &Step, storage: &str, name: &str) -> Result<()> {
        let key = format!("{storage}:vztmpl/{name}");
        let ct = (self.ctx.container)(0);
        self.once(&key, step, "downloaded earlier in this run", |r| {
            let outs = r.run_actions(step, 0, ct.as_ref())?;
            let listed = outs
                .last()
                .map(|o| facts::parse_pveam_list(&o.stdout_text()))
                .unwrap_or_default();
            if !listed.contains(&key) {
                bail!("pveam download reported success but {key} is not in `pveam list {storage}`");
            }
            Ok(())
        })
    }

    /// After `pct set` on a running container, what PVE kept pending is read back, not guessed;
    /// the planner decides the rest (reboot or report).
    fn read_back_pending(
        &mut self,
        node_plan: &NodePlan,
        vmid: u32,
        rest: Vec<Step>,
    ) -> Result<Vec<Step>> {
        let ctx = self.ctx;
        self.phase("read pending changes");
        let cfg = facts::gather_ct(ctx.node.as_ref(), &node_plan.node, vmid)?;
        let mut keys = plan::pending_keys(&cfg);
        // Raw lxc lines still to be written wait for a start too (PVE reads them only then).
        for s in &rest {
            if let Step::RawLxc { lines, .. } = s {
                keys.extend(lines.iter().map(|(k, _)| k.clone()));
            }
        }
        keys.sort();
        keys.dedup();
        let next = plan::after_pending(rest, keys, ctx.opts.restart);
        self.report.already.extend(next.already);
        if !ctx.opts.restart {
            self.report.pending = next.pending;
        }
        self.report.notes.extend(next.note);
        Ok(next.steps)
    }
}
