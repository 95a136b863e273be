//! `provision NAME --profile PROFILE`: one container.

use super::{confirm, json, open_node, overrides_layer, print_json, read_password};
use crate::apply::{self, Ctx};
use crate::cli::{ChangeArgs, GlobalArgs, SingleArgs};
use crate::error::{InputError, InputErrors};
use crate::facts;
use crate::profile;
use crate::progress::Progress;
use crate::report::RunReport;
use crate::request::{Options, Request};
use crate::validate;
use anyhow::Result;
use serde::Serialize;

/// Plan switches from the command line.
pub fn options(c: &ChangeArgs) -> Options {
    let mut step_timeouts = crate::request::StepTimeouts::default();
    for t in &c.step_timeout {
        // Checked by clap already (`cli::step_timeout`).
        let _ = step_timeouts.add(t);
    }
    Options {
        restart: c.restart,
        adopt: c.adopt,
        force: c.force,
        allow_storage_switch: c.allow_storage_switch,
        step_timeouts,
    }
}

/// The dry-run document.
#[derive(Serialize)]
pub struct DryRun<'a> {
    /// Always true.
    pub dry_run: bool,
    /// Whether a PVE node answered.
    pub pve: bool,
    /// Run-level notes.
    pub notes: Vec<String>,
    /// One plan per container.
    pub containers: Vec<&'a apply::PlanView>,
}

/// Builds the request from the command line; every input error before any command runs.
pub fn request(a: &SingleArgs) -> Result<Request> {
    let name = a.name.clone().unwrap_or_default();
    let profile_name = a.profile.clone().unwrap_or_default();
    let mut errs = Vec::new();
    if let Err(m) = validate::hostname(&name) {
        errs.push(InputError::whole("command line", "NAME", m));
    }
    if let Some(v) = a.vmid
        && let Err(m) = validate::vmid(v)
    {
        errs.push(InputError::whole("command line", "--vmid", m));
    }
    if !errs.is_empty() {
        return Err(InputErrors(errs).into());
    }
    let p = profile::load(&profile_name, &overrides_layer(&a.overrides))?;
    if let Some(h) = &p.hostname
        && !h.eq_ignore_ascii_case(&name)
    {
        return Err(InputErrors(vec![InputError::whole(
            "command line",
            "NAME",
            format!("the profile is for the container {h:?}, not {name:?}"),
        )])
        .into());
    }
    let vmid = a.vmid.map(|v| v as u32).or(p.vmid);
    Ok(Request {
        hostname: name,
        vmid,
        profile: p,
    })
}

/// Runs the single-container form.
pub fn run(a: &SingleArgs, g: &GlobalArgs) -> Result<u8> {
    let req = request(a)?;
    let password = read_password(&req.profile)?;
    apply::check_access_identity(&req.profile).map_err(|m| {
        InputErrors(vec![InputError::whole(
            format!("profile {}", req.profile.name),
            "access.identity",
            m,
        )])
    })?;
    let files = apply::read_profile_files(&req.profile).map_err(|e| {
        InputErrors(vec![InputError::whole(
            format!("profile {}", req.profile.name),
            "files",
            format!("{e:#}"),
        )])
    })?;
    let node = open_node(g)?;
    let nf = facts::gather_node(node.as_ref())?;
    let mut ctx = Ctx::new(node, options(&a.change));
    ctx.container_ssh = super::ssh_options(g);
    ctx.rollback = a.change.rollback;
    let mut notes = Vec::new();
    if !nf.pve {
        notes.push(
            "no Proxmox VE tools answer here (pct/pvesh not found): planned for an empty node"
                .to_string(),
        );
    }
    if g.dry_run {
        let req = crate::image::dry_request(&ctx, &req, &nf)?;
        let view = apply::dry_plan(&ctx, &req, &nf, password.as_deref(), &files)?;
        if json(g) {
            print_json(&DryRun {
                dry_run: true,
                pve: nf.pve,
                notes,
                containers: vec![&view],
            })?;
        } else {
            for n in &notes {
                crate::outln!("note: {n}");
            }
            crate::out!("{}", apply::plan_text(&view, g.verbose > 0));
            crate::outln!("dry run: nothing was changed");
        }
        return Ok(0);
    }
    if !nf.pve {
        return Err(InputErrors(vec![InputError::whole(
            "node",
            "",
            "no Proxmox VE tools (pct, pvesh) answer on this machine; run on a PVE node, use --host, or --dry-run to see the plan",
        )])
        .into());
    }
    if !g.yes && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let dry = crate::image::dry_request(&ctx, &req, &nf)?;
        let view = apply::dry_plan(&ctx, &dry, &nf, password.as_deref(), &files)?;
        crate::err!("{}", apply::plan_text(&view, g.verbose > 0));
        if !confirm(g, "Apply this plan?")? {
            crate::errln!("nothing was changed");
            return Ok(0);
        }
    }
    let _signals = crate::batch::SignalWatch::start(ctx.cancel.clone())?;
    let mut progress = Progress::auto(g.quiet || json(g));
    progress.prepare(std::slice::from_ref(&req.hostname));
    let line = progress.line(&req.hostname);
    let report = match crate::image::ensure(&ctx, &req, &nf, &line) {
        Ok((req, note)) => {
            let mut r = apply::converge(&ctx, &req, &nf, password.as_deref(), &files, &line);
            r.notes.extend(note);
            r
        }
        Err(e) => crate::batch::image_failure(
            &req.hostname,
            &e,
            ctx.cancel.load(std::sync::atomic::Ordering::SeqCst),
        ),
    };
    progress.finish();
    let run = RunReport {
        containers: vec![report],
        notes,
    };
    if json(g) {
        print_json(&run)?;
    } else {
        let w = crate::text::terminal_width(false);
        crate::out!("{}", crate::summary::full(&run, w));
    }
    Ok(run.exit_code())
}
