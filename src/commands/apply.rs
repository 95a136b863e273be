//! `provision apply FILE`: every container of a lab file brought to its entry, `--jobs` at a
//! time (see [`crate::batch`]). `--dry-run` prints every plan (the document of the single
//! form's dry run, one plan per container); `--only NAME...` restricts the run.
//!
//! The whole file, the passwords and the profiles' files are read and checked before any node
//! is contacted: an input error exits 2 with nothing run.

use super::single::{DryRun, options};
use super::{confirm, json, open_node, print_json, read_password};
use crate::apply::{self, Ctx};
use crate::batch::{self, Job, Opener, SignalWatch, Targets};
use crate::cli::{ApplyArgs, FileArgs, GlobalArgs};
use crate::error::{InputError, InputErrors};
use crate::labfile::{self, Entry, LabFile};
use crate::plan::{self, ProfileFiles};
use crate::profile::{Layer, PasswordSource};
use crate::progress::Progress;
use crate::transport::Transport;
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Runs `provision apply`.
pub fn run(a: &ApplyArgs, g: &GlobalArgs) -> Result<u8> {
    let cancel = Arc::new(AtomicBool::new(false));
    let _watch = SignalWatch::start(cancel.clone())?;
    run_with(a, g, &|h| open_host(g, h), cancel)
}

/// The node transport for an entry's `host`: the default node (local, or --host) for None,
/// else SSH to that host with the command line's SSH options.
pub fn open_host(g: &GlobalArgs, host: Option<&str>) -> Result<Arc<dyn Transport>> {
    match host {
        None => open_node(g),
        Some(h) => {
            let mut g2 = g.clone();
            g2.host = Some(h.to_string());
            open_node(&g2)
        }
    }
}

/// Reads and checks the lab file (every problem reported together, exit 2).
pub fn load_lab(f: &FileArgs) -> Result<LabFile> {
    Ok(labfile::load(&f.file, &Layer::default())?)
}

/// Refuses to change anything on a machine where no PVE tools answer (exit 2, nothing run).
pub fn require_pve(targets: &Targets) -> Result<()> {
    let errs: Vec<InputError> = targets
        .ok()
        .filter(|t| !t.facts.pve)
        .map(|t| {
            InputError::whole(
                t.host.as_deref().unwrap_or("node"),
                "",
                "no Proxmox VE tools (pct, pvesh) answer on this machine; run on a PVE node, use --host (or `host` in the lab file), or --dry-run to see the plan",
            )
        })
        .collect();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(InputErrors(errs).into())
    }
}

/// Notes about nodes that could not be read or are not PVE nodes.
pub fn node_notes(targets: &Targets) -> Vec<String> {
    let mut notes = Vec::new();
    for t in &targets.list {
        match t {
            Err(m) => notes.push(format!("cannot use the node: {m}")),
            Ok(t) if !t.facts.pve => notes.push(format!(
                "no Proxmox VE tools answer on {} (pct/pvesh not found): planned for an empty node",
                t.host.as_deref().unwrap_or("this machine")
            )),
            Ok(_) => {}
        }
    }
    notes
}

/// Passwords (each source read once) and profile files (each source file read once), for every
/// entry; all errors together.
fn read_inputs(lab: &LabFile, entries: &[&Entry]) -> Result<Vec<(Option<String>, ProfileFiles)>> {
    let mut passwords: Vec<(PasswordSource, Option<String>)> = Vec::new();
    let mut sources = apply::SourceCache::default();
    let mut errs = Vec::new();
    let mut out = Vec::new();
    for e in entries {
        let p = &e.request.profile;
        let pw = match &p.root_password {
            None => None,
            Some(src) => match passwords.iter().find(|(s, _)| s == src) {
                Some((_, pw)) => pw.clone(),
                None => {
                    let pw = match read_password(p) {
                        Ok(pw) => pw,
                        Err(err) => match err.downcast::<InputErrors>() {
                            Ok(InputErrors(list)) => {
                                errs.extend(list);
                                None
                            }
                            Err(err) => return Err(err),
                        },
                    };
                    passwords.push((src.clone(), pw.clone()));
                    pw
                }
            },
        };
        if let Err(m) = apply::check_access_identity(p) {
            errs.push(InputError::whole(
                format!("{} ({}, {})", lab.shown, e.field, e.name),
                "access.identity",
                m,
            ));
        }
        let files = apply::read_profile_files_with(p, &mut sources).unwrap_or_else(|err| {
            errs.push(InputError::whole(
                format!("{} ({}, {})", lab.shown, e.field, e.name),
                "files",
                format!("{err:#}"),
            ));
            Vec::new()
        });
        out.push((pw, files));
    }
    if errs.is_empty() {
        return Ok(out);
    }
    // Entries that share a bad source or password file each report it: bounded like the lab
    // file's own errors.
    if errs.len() > labfile::MAX_ERRORS {
        let more = errs.len() - labfile::MAX_ERRORS;
        errs.truncate(labfile::MAX_ERRORS);
        errs.push(InputError::whole(
            lab.shown.clone(),
            "",
            format!(
                "and {more} more errors (the first {} are shown)",
                labfile::MAX_ERRORS
            ),
        ));
    }
    Err(InputErrors(errs).into())
}

/// `apply` with the node transports opened by `open` and Ctrl-C observed through `cancel`.
pub fn run_with(
    a: &ApplyArgs,
    g: &GlobalArgs,
    open: &Opener<'_>,
    cancel: Arc<AtomicBool>,
) -> Result<u8> {
    if a.jobs == 0 {
        return Err(InputErrors(vec![InputError::whole(
            "command line",
            "--jobs",
            "must be at least 1",
        )])
        .into());
    }
    let lab = load_lab(&a.file)?;
    let entries = lab.select(&a.file.only)?;
    let inputs = read_inputs(&lab, &entries)?;
    let opts = options(&a.change);
    let member = super::member_opener(g);
    let routed = crate::cluster::route::route(&entries, open, &member, &opts);
    let entries = routed.refs();
    let make_ctx = |t: Arc<dyn Transport>| {
        let mut c = Ctx::new(t, opts.clone());
        c.container_ssh = super::ssh_options(g);
        c.rollback = a.change.rollback;
        c.cancel = cancel.clone();
        c
    };
    let targets = Targets::open(&entries, &|h| routed.open(h), &make_ctx);
    let jobs: Vec<Job<'_>> = entries
        .iter()
        .zip(inputs)
        .enumerate()
        .map(|(i, (e, (password, files)))| Job {
            entry: e,
            target: targets.of[i],
            password,
            files,
        })
        .collect();
    let mut notes = node_notes(&targets);
    notes.extend(routed.notes.iter().cloned());
    if g.dry_run {
        return dry_run(g, a.jobs, &targets, &jobs, &cancel, notes);
    }
    require_pve(&targets)?;
    if !g.yes && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        crate::err!("{}", intent(&lab, &targets, &jobs));
        if !confirm(g, "Apply?")? {
            crate::errln!("nothing was changed");
            return Ok(0);
        }
    }
    let mut progress = Progress::auto(g.quiet || json(g));
    let names: Vec<String> = jobs.iter().map(|j| j.entry.name.clone()).collect();
    progress.set_jobs(a.jobs);
    progress.prepare(&names);
    let mut run = batch::converge_all(&targets, &jobs, a.jobs, &cancel, &progress);
    progress.finish();
    notes.append(&mut run.notes);
    run.notes = notes;
    if json(g) {
        print_json(&run)?;
    } else {
        let w = crate::text::terminal_width(false);
        crate::out!("{}", crate::summary::render(&run, g.verbose > 0, w));
    }
    Ok(run.exit_code())
}

/// What a run is about to do, for the question on a terminal.
fn intent(lab: &LabFile, targets: &Targets, jobs: &[Job<'_>]) -> String {
    use std::fmt::Write as _;
    let mut s = format!("{}: {} container(s)\n", lab.shown, jobs.len());
    for j in jobs {
        let what = match &targets.list[j.target] {
            Err(m) => format!("cannot be reached: {m}"),
            Ok(t) => match plan::find_existing(&j.entry.request, &t.facts.guests, &t.ctx.opts) {
                Ok(Some(g)) => format!("converge container {} ({})", g.vmid, g.status),
                Ok(None) => match j.entry.vmid() {
                    Some(v) => format!("create with VMID {v}"),
                    None => "create (next free VMID)".to_string(),
                },
                Err(e) => format!("refused: {e:#}"),
            },
        };
        let _ = writeln!(s, "  {:<24} {what}", j.entry.name);
    }
    s
}

fn dry_run(
    g: &GlobalArgs,
    workers: usize,
    targets: &Targets,
    jobs: &[Job<'_>],
    cancel: &AtomicBool,
    mut notes: Vec<String>,
) -> Result<u8> {
    let plans = batch::dry_all(targets, jobs, workers, cancel);
    let auto = plans
        .iter()
        .filter(|p| p.as_ref().is_ok_and(|v| v.vmid_auto))
        .count();
    if auto > 1 {
        notes.push(format!(
            "{auto} containers get the node's next free VMID: each is chosen under the node's lock when it is created, so the proposals shown may repeat"
        ));
    }
    let mut failed = 0;
    for (p, j) in plans.iter().zip(jobs) {
        if let Err(m) = p {
            failed += 1;
            notes.push(format!("{}: cannot be planned: {m}", j.entry.name));
        }
    }
    let views: Vec<&apply::PlanView> = plans.iter().filter_map(|p| p.as_ref().ok()).collect();
    let pve = targets
        .list
        .iter()
        .all(|t| t.as_ref().is_ok_and(|t| t.facts.pve));
    if json(g) {
        print_json(&DryRun {
            dry_run: true,
            pve,
            notes,
            containers: views,
        })?;
    } else {
        for n in &notes {
            crate::outln!("note: {n}");
        }
        for v in views {
            crate::out!("{}", apply::plan_text(v, g.verbose > 0));
        }
        crate::outln!("dry run: nothing was changed");
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
