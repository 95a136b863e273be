//! Progress: a live view when stderr is a terminal, plain timestamped lines otherwise, nothing
//! when silenced (tests; JSON to a terminal is still fine: progress goes to stderr only).
//!
//! On a terminal, one indicatif bar draws the whole live view ([`crate::view`]): one line per
//! container (name, VMID, step k/n, current step, elapsed; its outcome once it ended) and the
//! total (bar, counts, estimate). What the workers report goes into a shared
//! [`ViewState`]; the bar re-renders it at each tick with the terminal's size and the time since
//! the run started, so the rendering itself stays a pure function. Log lines from tracing are
//! routed through [`suspend`] so that they do not tear the view. Nothing here ever receives a
//! secret: steps are named, never their arguments.

use crate::view::{self, ViewState};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The live view on stderr.
    Bars,
    /// One timestamped line per event on stderr.
    Plain,
    /// Nothing.
    Silent,
    /// The live view's state is kept, never drawn (tests read it with [`Progress::view`]).
    Record,
}

/// The shared state of a live view and the clock it is drawn against.
struct Live {
    start: Instant,
    state: Mutex<ViewState>,
}

impl Live {
    fn with<R>(&self, f: impl FnOnce(&mut ViewState, Duration) -> R) -> R {
        let now = self.start.elapsed();
        f(
            &mut self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            now,
        )
    }
}

/// The progress display of a run.
#[derive(Clone)]
pub struct Progress {
    mode: Mode,
    multi: Option<MultiProgress>,
    live: Option<Arc<Live>>,
    bar: Option<ProgressBar>,
    jobs: usize,
    width: usize,
}

static GLOBAL_MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// Runs `f` with the bars hidden (for log lines), when bars are shown.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match GLOBAL_MULTI.get() {
        Some(m) => m.suspend(f),
        None => f(),
    }
}

impl Progress {
    /// Chooses the live view on a terminal, plain lines otherwise; `quiet` silences both.
    pub fn auto(quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Silent
        } else if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
            Mode::Bars
        } else {
            Mode::Plain
        };
        Progress::new(mode)
    }

    /// A display in the given mode.
    pub fn new(mode: Mode) -> Progress {
        let multi = (mode == Mode::Bars).then(|| {
            GLOBAL_MULTI
                .get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
                .clone()
        });
        Progress {
            mode,
            multi,
            live: None,
            bar: None,
            jobs: 1,
            width: 8,
        }
    }

    /// How many containers are worked on at once (for the estimate); before [`Progress::prepare`].
    pub fn set_jobs(&mut self, jobs: usize) {
        self.jobs = jobs.max(1);
    }

    /// Sets the label width (the longest name) and, on a terminal, starts the live view with
    /// one waiting line per name.
    pub fn prepare(&mut self, names: &[String]) {
        self.width = names.iter().map(String::len).max().unwrap_or(8).max(4);
        if !matches!(self.mode, Mode::Bars | Mode::Record) {
            return;
        }
        let live = Arc::new(Live {
            start: Instant::now(),
            state: Mutex::new(ViewState::new(names, self.jobs.min(names.len().max(1)))),
        });
        self.live = Some(live.clone());
        let Some(m) = &self.multi else { return };
        let l2 = live.clone();
        let draw = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let (cols, rows) = crate::text::terminal_size(true).unwrap_or((80, 24));
            let lines = l2.with(|v, now| view::render(v, cols.saturating_sub(1), rows, now));
            let _ = w.write_str(&lines.join("\n"));
        };
        let bar = m.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{view}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .with_key("view", draw),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    /// The live view's state now (None unless the view is drawn or recorded).
    pub fn view(&self) -> Option<ViewState> {
        self.live.as_ref().map(|l| l.with(|v, _| v.clone()))
    }

    /// A line for one container.
    pub fn line(&self, name: &str) -> Line {
        let live = self
            .live
            .as_ref()
            .map(|l| (l.clone(), l.with(|v, _| v.add(name))));
        Line {
            inner: Arc::new(LineInner {
                name: name.to_string(),
                width: self.width,
                mode: self.mode,
                live,
                start: Instant::now(),
            }),
        }
    }

    /// Prints a message above the view (or as a plain line).
    pub fn message(&self, msg: &str) {
        match self.mode {
            Mode::Silent | Mode::Record => {}
            Mode::Bars => {
                if let Some(m) = &self.multi {
                    let _ = m.println(crate::error::for_stream(msg));
                }
            }
            Mode::Plain => plain(msg),
        }
    }

    /// The run is over: containers never started say so, and the view's last state stays on
    /// the screen.
    pub fn finish(&self) {
        if let Some(l) = &self.live {
            l.with(ViewState::close);
        }
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

fn plain(msg: &str) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    crate::errln!("{h:02}:{m:02}:{s:02}.{:03} {msg}", now.subsec_millis());
}

struct LineInner {
    name: String,
    width: usize,
    mode: Mode,
    /// The live view and this container's row in it.
    live: Option<(Arc<Live>, usize)>,
    start: Instant,
}

/// The progress line of one container.
#[derive(Clone)]
pub struct Line {
    inner: Arc<LineInner>,
}

impl Line {
    /// A line that shows nothing (tests, library use).
    pub fn silent(name: &str) -> Line {
        Progress::new(Mode::Silent).line(name)
    }

    fn live(&self, f: impl FnOnce(&mut ViewState, usize, Duration)) {
        if let Some((l, i)) = &self.inner.live {
            l.with(|v, now| f(v, *i, now));
        }
    }

    /// What the container is doing now (a step, or a phase between steps).
    pub fn step(&self, step: &str) {
        let i = &self.inner;
        match i.mode {
            Mode::Silent => {}
            Mode::Bars | Mode::Record => self.live(|v, row, now| v.step(row, step, now)),
            Mode::Plain => plain(&format!("{:<w$}  {step}", i.name, w = i.width)),
        }
    }

    /// The next planned step begins (the `k` of "step k/n").
    pub fn count_step(&self) {
        self.live(|v, row, _| v.count_step(row));
    }

    /// The container's plan has `n` steps.
    pub fn planned(&self, n: usize) {
        self.live(|v, row, _| v.planned(row, n));
    }

    /// `rest` steps are left after those begun (the plan, refined).
    pub fn plan_rest(&self, rest: usize) {
        self.live(|v, row, _| v.plan_rest(row, rest));
    }

    /// The container's VMID is known.
    pub fn vmid(&self, vmid: u32) {
        self.live(|v, row, _| v.vmid(row, vmid));
    }

    /// The end: done or not, and a word (created / unchanged / `failed: STEP`...).
    pub fn finish(&self, ok: bool, outcome: &str) {
        let i = &self.inner;
        let mark = if ok { "✔" } else { "✘" };
        let secs = i.start.elapsed().as_secs_f64();
        match i.mode {
            Mode::Silent => {}
            Mode::Bars | Mode::Record => self.live(|v, row, now| v.finish(row, ok, outcome, now)),
            Mode::Plain => plain(&format!(
                "{:<w$}  {mark} {outcome} ({secs:.1} s)",
                i.name,
                w = i.width
            )),
        }
    }
}

/// A tracing writer that prints to stderr without tearing the bars.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
