//! Many containers at once: the nodes of a run, a bounded pool of worker threads, Ctrl-C.
//!
//! A run reaches each node through one transport (the default node, or one per distinct `host`
//! of a lab file) and reads its facts once. Workers (`std::thread::scope`, no async) take the
//! next container from a fixed list until it is empty, so at most `--jobs` containers are
//! worked on at once; each one is [`apply::converge`]d on its node's shared [`Ctx`], which
//! serialises VMID choice (the node's `vmid` lock) and template downloads. One container
//! failing never stops the others. On SIGINT/SIGTERM no container is started any more and
//! the running ones stop once their current step has finished (`converge` checks the flag
//! between steps), each reported with the state it was left in; those never started (or
//! stopped before their first step) are reported `Skipped`.
//!
//! Nothing here decides what a container needs: that is the planner's, through `converge`.

use crate::apply::{self, Ctx, PlanView};
use crate::facts::{self, NodeFacts};
use crate::labfile::Entry;
use crate::plan::{self, ProfileFiles};
use crate::progress::{Line, Progress};
use crate::report::{ContainerReport, Failure, Outcome, RunReport, StepStatus};
use crate::transport::Transport;
use anyhow::Result;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Opens the node transport for an entry's `host` (None: the default node, local or --host).
pub type Opener<'a> = dyn Fn(Option<&str>) -> Result<Arc<dyn Transport>> + Sync + 'a;

/// A node reached through one transport, its facts read once for the whole run.
pub struct Target {
    /// The entries' `host` (None: the default node).
    pub host: Option<String>,
    /// Transport, plan switches, VMID and template locks, cancel flag.
    pub ctx: Ctx,
    /// Guests, storages, ZFS version, the node's name.
    pub facts: NodeFacts,
}

impl Target {
    /// Reads the node's facts through `ctx.node`.
    pub fn new(host: Option<String>, ctx: Ctx) -> Result<Target> {
        let facts = facts::gather_node(ctx.node.as_ref())?;
        Ok(Target { host, ctx, facts })
    }

    /// The transport.
    pub fn node(&self) -> &dyn Transport {
        self.ctx.node.as_ref()
    }

    /// The name of the PVE node the transport reaches (read with the node facts from
    /// `pvesh get /cluster/status`: the entry with `local = 1`); None when it cannot be told.
    pub fn node_name(&self) -> Option<&str> {
        self.facts.local_node.as_deref()
    }
}

/// The nodes of a run and which one each entry goes to.
pub struct Targets {
    /// One per distinct `host`, in first-use order; an Err says why the node could not be
    /// reached or read (its containers fail, the others go on).
    pub list: Vec<Result<Target, String>>,
    /// For each entry given to [`Targets::open`], in order, its index in `list`.
    pub of: Vec<usize>,
}

impl Targets {
    /// Opens one transport per distinct `host` of `entries` and reads each node's facts once.
    pub fn open(
        entries: &[&Entry],
        open: &Opener<'_>,
        make_ctx: &dyn Fn(Arc<dyn Transport>) -> Ctx,
    ) -> Targets {
        let mut hosts: Vec<Option<String>> = Vec::new();
        let mut of = Vec::with_capacity(entries.len());
        for e in entries {
            let i = match hosts.iter().position(|h| *h == e.host) {
                Some(i) => i,
                None => {
                    hosts.push(e.host.clone());
                    hosts.len() - 1
                }
            };
            of.push(i);
        }
        let list = hosts
            .into_iter()
            .map(|h| {
                let where_ = h.as_deref().unwrap_or("the node").to_string();
                open(h.as_deref())
                    .and_then(|t| Target::new(h, make_ctx(t)))
                    .map_err(|e| format!("{where_}: {e:#}"))
            })
            .collect();
        Targets { list, of }
    }

    /// Targets built by the caller (tests, library use): entry `i` goes to `of[i]`.
    pub fn from_parts(list: Vec<Result<Target, String>>, of: Vec<usize>) -> Targets {
        Targets { list, of }
    }

    /// The node of entry `i`.
    pub fn for_entry(&self, i: usize) -> Result<&Target, &str> {
        match &self.list[self.of[i]] {
            Ok(t) => Ok(t),
            Err(m) => Err(m.as_str()),
        }
    }

    /// Every node that could be read.
    pub fn ok(&self) -> impl Iterator<Item = &Target> {
        self.list.iter().filter_map(|t| t.as_ref().ok())
    }
}

/// Runs `f` on every item, at most `workers` at a time, on scoped threads that each take the
/// next item until none is left. Once `cancel` is set no item is started any more; items never
/// started are `None`. Results are in item order.
pub fn pool<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    cancel: &AtomicBool,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let n = workers.max(1).min(items.len());
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                loop {
                    if cancel.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let r = f(i, item);
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One container of an apply run.
pub struct Job<'a> {
    /// The lab file's entry.
    pub entry: &'a Entry,
    /// Its node, an index into [`Targets::list`].
    pub target: usize,
    /// Root password, read before the run.
    pub password: Option<String>,
    /// The profile's files, read before the run.
    pub files: ProfileFiles,
}

/// A report for a container that failed before `converge` could run.
pub fn failed_report(name: &str, step: &str, message: String, left: &str) -> ContainerReport {
    let mut r = ContainerReport::new(name);
    r.outcome = Outcome::Failed;
    r.failure = Some(Failure {
        step: step.to_string(),
        message,
        tail: Vec::new(),
        left: left.to_string(),
        usage: false,
        known_issue: None,
        interrupted: false,
    });
    r
}

/// The report of a container whose image could not be made (its build's temporary container
/// and files are removed by then; `interrupted`: by Ctrl-C).
pub fn image_failure(name: &str, e: &anyhow::Error, interrupted: bool) -> ContainerReport {
    let mut r = failed_report(
        name,
        "image",
        format!("{e:#}"),
        "not created; the image build's temporary container and files were removed",
    );
    if let Some(f) = r.failure.as_mut() {
        f.interrupted = interrupted;
    }
    r
}

/// Why an entry with `node = "X"` cannot go where its transport reaches, if it cannot.
fn wrong_node(t: &Target, e: &Entry) -> Option<String> {
    let want = e.node.as_deref()?;
    match plan::find_existing(&e.request, &t.facts.guests, &t.ctx.opts) {
        Ok(Some(g)) if !g.node.is_empty() && g.node != want => Some(format!(
            "{} exists on node {} (VMID {}) but the lab file puts it on {want}; provision does not move containers",
            e.name, g.node, g.vmid
        )),
        Ok(None) => match t.node_name() {
            Some(n) if n != want => Some(format!(
                "the lab file puts {} on node {want}, but pct runs on node {n}; give this entry host = \"root@{want}\" (or the matching --host)",
                e.name
            )),
            _ => None,
        },
        _ => None,
    }
}

/// What a caught panic says, as the error of the one container it happened for.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("internal error (a bug in provision): {msg}")
}

/// Converges one job; never panics (a panic becomes a failed report).
fn converge_one(targets: &Targets, job: &Job<'_>, line: &Line) -> ContainerReport {
    let name = &job.entry.name;
    let t = match &targets.list[job.target] {
        Ok(t) => t,
        Err(m) => {
            line.finish(false, "failed: node");
            return failed_report(name, "node", m.clone(), "nothing was changed");
        }
    };
    if let Some(m) = wrong_node(t, job.entry) {
        line.finish(false, "failed: node");
        return failed_report(name, "node", m, "nothing was changed");
    }
    let run = || match crate::image::ensure(&t.ctx, &job.entry.request, &t.facts, line) {
        Ok((req, note)) => {
            let mut r = apply::converge(
                &t.ctx,
                &req,
                &t.facts,
                job.password.as_deref(),
                &job.files,
                line,
            );
            r.notes.extend(note);
            r
        }
        Err(e) => {
            line.finish(false, "failed: image");
            image_failure(name, &e, t.ctx.cancel.load(Ordering::SeqCst))
        }
    };
    let mut r = match std::panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(p) => {
            line.finish(false, "failed: internal error");
            failed_report(
                name,
                "internal",
                panic_message(p.as_ref()),
                "unknown: the container may be half-made; `provision status` shows it, the next run continues it",
            )
        }
    };
    if r.node.is_none() {
        r.node = t.node_name().map(String::from);
    }
    if job.entry.node.is_some() && t.node_name().is_none() && r.vmid.is_none() {
        r.notes.push(
            "could not read which node pct runs on (pvesh get /cluster/status); the entry's `node` was not checked".into(),
        );
    }
    r
}

/// A report for a container never started because the run was interrupted.
fn skipped_report(targets: &Targets, job: &Job<'_>) -> ContainerReport {
    let mut r = ContainerReport::new(&job.entry.name);
    r.outcome = Outcome::Skipped;
    let existing = targets.list[job.target].as_ref().ok().and_then(|t| {
        plan::find_existing(&job.entry.request, &t.facts.guests, &t.ctx.opts)
            .ok()
            .flatten()
    });
    r.notes.push(match existing {
        Some(g) => {
            r.vmid = Some(g.vmid);
            format!(
                "not started (interrupted): container {} is as it was",
                g.vmid
            )
        }
        None => "not started (interrupted): not created".to_string(),
    });
    r
}

/// Converges every job, at most `workers` at once; the report lists every job in order.
pub fn converge_all(
    targets: &Targets,
    jobs: &[Job<'_>],
    workers: usize,
    cancel: &AtomicBool,
    progress: &Progress,
) -> RunReport {
    let results = pool(jobs, workers, cancel, |_, job| {
        converge_one(targets, job, &progress.line(&job.entry.name))
    });
    let interrupted = cancel.load(Ordering::SeqCst);
    let mut not_started = 0;
    let containers = results
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| match r {
            Some(mut r) => {
                // Interrupted before any of its steps ran: nothing was changed, so it is as
                // good as not started.
                let nothing_ran = !r.steps.iter().any(|s| s.status == StepStatus::Done);
                let by_interrupt = r.failure.as_ref().is_some_and(|f| f.interrupted);
                if interrupted && nothing_ran && by_interrupt && r.outcome == Outcome::Failed {
                    r.outcome = Outcome::Skipped;
                    let left = r.failure.take().map(|f| f.left).unwrap_or_default();
                    r.notes
                        .push(format!("interrupted before any change: {left}"));
                }
                r
            }
            None => {
                not_started += 1;
                skipped_report(targets, job)
            }
        })
        .collect();
    let mut notes = Vec::new();
    if interrupted {
        notes.push(format!(
            "interrupted (SIGINT/SIGTERM): {not_started} container(s) were not started; run again to continue"
        ));
    }
    RunReport { containers, notes }
}

/// Plans every job without changing anything (`--dry-run`), at most `workers` at once; a
/// panic while planning one container is that container's error.
pub fn dry_all(
    targets: &Targets,
    jobs: &[Job<'_>],
    workers: usize,
    cancel: &AtomicBool,
) -> Vec<Result<PlanView, String>> {
    pool(jobs, workers, cancel, |_, job| {
        let t = targets.list[job.target].as_ref().map_err(Clone::clone)?;
        if let Some(m) = wrong_node(t, job.entry) {
            return Err(m);
        }
        let plan = || {
            let req = crate::image::dry_request(&t.ctx, &job.entry.request, &t.facts)?;
            apply::dry_plan(&t.ctx, &req, &t.facts, job.password.as_deref(), &job.files)
        };
        // A panic (a bug) fails the plan of this one container, never the others'.
        match std::panic::catch_unwind(AssertUnwindSafe(plan)) {
            Ok(plan) => plan.map_err(|e| format!("{e:#}")),
            Err(p) => Err(panic_message(p.as_ref())),
        }
    })
    .into_iter()
    .map(|r| r.unwrap_or_else(|| Err("not planned: interrupted".to_string())))
    .collect()
}

/// Watches SIGINT and SIGTERM while alive: the first one sets `cancel` (no new container is
/// started, running steps finish); a second one stops the commands running on the node (their
/// process groups), says which were cut short, and ends the process (exit 130).
pub struct SignalWatch {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SignalWatch {
    /// Starts watching.
    pub fn start(cancel: Arc<AtomicBool>) -> Result<SignalWatch> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for _ in signals.forever() {
                crate::note_interrupt();
                if cancel.swap(true, Ordering::SeqCst) {
                    crate::progress::suspend(|| {
                        crate::errln!("interrupted again: stopping the running commands now");
                    });
                    stop_now();
                }
                crate::progress::suspend(|| {
                    crate::errln!(
                        "interrupt: no new container is started; running steps finish, then the summary (interrupt again to stop at once)"
                    );
                });
            }
        });
        Ok(SignalWatch {
            handle,
            thread: Some(thread),
        })
    }
}

/// The second interrupt: the commands running on the node run in their own process groups
/// (so that the first Ctrl-C lets them finish); they are stopped here instead of being
/// orphaned, and the message says what was cut short. Exits with 130.
fn stop_now() -> ! {
    let stopped = crate::transport::local::interrupt_running(crate::transport::local::KILL_GRACE);
    crate::progress::suspend(|| {
        if stopped.is_empty() {
            crate::errln!("no command was running on the node");
        }
        for c in &stopped {
            crate::errln!(
                "stopped: `{}` (its container may be half-made; the next run continues it)",
                crate::transport::short(c)
            );
        }
    });
    std::process::exit(130);
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_runs_every_item_once_in_order() {
        let items: Vec<u32> = (0..50).collect();
        let cancel = AtomicBool::new(false);
        let out = pool(&items, 7, &cancel, |i, x| (i, x * 2));
        assert_eq!(out.len(), 50);
        for (i, r) in out.into_iter().enumerate() {
            assert_eq!(r, Some((i, i as u32 * 2)));
        }
        let none: Vec<Option<()>> = pool(&Vec::<u8>::new(), 4, &cancel, |_, _| ());
        assert!(none.is_empty());
    }

    #[test]
    fn pool_starts_nothing_new_after_cancel() {
        let items: Vec<u32> = (0..10).collect();
        let cancel = AtomicBool::new(false);
        let out = pool(&items, 1, &cancel, |i, _| {
            if i == 2 {
                cancel.store(true, Ordering::SeqCst);
            }
        });
        let started: Vec<bool> = out.iter().map(Option::is_some).collect();
        assert_eq!(
            started,
            [
                true, true, true, false, false, false, false, false, false, false
            ]
        );
    }
}
