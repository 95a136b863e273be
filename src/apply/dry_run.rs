//! The dry run: the plan of one container as data (JSON) and as text, with every command.

use super::*;

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
            let ct = ctx.inside(req, g.vmid, Some(&g.node), false)?;
            let paths: Vec<String> = files.iter().map(|(d, _, _)| d.clone()).collect();
            facts::gather_inside(ct.as_ref(), &paths)?
        }
        Some(_) => {
            notes.push("the container is stopped: in-container steps assume what a fresh container needs; the real run reads it after start".into());
            InsideFacts::fresh()
        }
        None => match &req.profile.from_image {
            Some(image) => {
                notes.push(format!(
                    "in-container steps assume a fresh container from image {image}"
                ));
                plan::image_inside_facts(
                    &req.profile,
                    np.driver.unwrap_or(Driver::Overlay2),
                    &prep.src,
                )
            }
            None => {
                if nf.pve {
                    notes.push(
                        "in-container steps assume a fresh container from the template".into(),
                    );
                }
                InsideFacts::fresh()
            }
        },
    };
    let ip: InsidePlan = plan::plan_inside(&plan::InsideInput {
        profile: &req.profile,
        driver: np.driver,
        facts: &inside,
        sources: &prep.src,
        files,
        password,
        opts: &ctx.opts,
    })?;
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
