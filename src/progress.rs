//! Progress: bars when stderr is a terminal, plain timestamped lines otherwise, nothing when
//! silenced (tests, JSON to a terminal is still fine: progress goes to stderr only).
//!
//! One [`Line`] per container: a spinner, the padded name, elapsed time and the current step.
//! Log lines from tracing are routed through [`Progress::suspend`] so that they do not tear the
//! bars. Nothing here ever receives a secret: steps are named, never their arguments.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// indicatif bars on stderr.
    Bars,
    /// One timestamped line per event on stderr.
    Plain,
    /// Nothing.
    Silent,
}

/// The progress display of a run.
#[derive(Clone)]
pub struct Progress {
    mode: Mode,
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
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
    /// Chooses bars on a terminal, plain lines otherwise; `quiet` silences both.
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
            total: None,
            width: 8,
        }
    }

    /// Sets the label width (the longest name) and, for several containers, a total bar.
    pub fn prepare(&mut self, names: &[String]) {
        self.width = names.iter().map(String::len).max().unwrap_or(8).max(4);
        if let (Some(m), true) = (&self.multi, names.len() > 1) {
            let bar = m.add(ProgressBar::new(names.len() as u64));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>w$} [{bar:30}] {pos}/{len} containers  {elapsed}"
                        .replace("w$", &format!("{}$", self.width + 2))
                        .as_str(),
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix("total");
            self.total = Some(bar);
        }
    }

    /// A line for one container.
    pub fn line(&self, name: &str) -> Line {
        let bar = self.multi.as_ref().map(|m| {
            let b = match &self.total {
                Some(t) => m.insert_before(t, ProgressBar::new_spinner()),
                None => m.add(ProgressBar::new_spinner()),
            };
            b.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} {{prefix:<{}}} {{elapsed:>4}}  {{msg}}",
                    self.width
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(name.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Line {
            inner: Arc::new(LineInner {
                name: name.to_string(),
                width: self.width,
                mode: self.mode,
                bar,
                total: self.total.clone(),
                start: Instant::now(),
            }),
        }
    }

    /// Prints a message above the bars (or as a plain line).
    pub fn message(&self, msg: &str) {
        match self.mode {
            Mode::Silent => {}
            Mode::Bars => {
                if let Some(m) = &self.multi {
                    let _ = m.println(msg);
                }
            }
            Mode::Plain => plain(msg),
        }
    }

    /// Removes the total bar.
    pub fn finish(&self) {
        if let Some(t) = &self.total {
            t.finish_and_clear();
        }
    }
}

fn plain(msg: &str) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let _ = writeln!(
        std::io::stderr(),
        "{h:02}:{m:02}:{s:02}.{:03} {msg}",
        now.subsec_millis()
    );
}

struct LineInner {
    name: String,
    width: usize,
    mode: Mode,
    bar: Option<ProgressBar>,
    total: Option<ProgressBar>,
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

    /// The current step.
    pub fn step(&self, step: &str) {
        let i = &self.inner;
        match i.mode {
            Mode::Silent => {}
            Mode::Bars => {
                if let Some(b) = &i.bar {
                    b.set_message(step.to_string());
                }
            }
            Mode::Plain => plain(&format!("{:<w$}  {step}", i.name, w = i.width)),
        }
    }

    /// The end: a mark and a word (done / unchanged / failed...).
    pub fn finish(&self, ok: bool, outcome: &str) {
        let i = &self.inner;
        let mark = if ok { "✔" } else { "✘" };
        let secs = i.start.elapsed().as_secs_f64();
        match i.mode {
            Mode::Silent => {}
            Mode::Bars => {
                if let Some(b) = &i.bar {
                    b.set_style(
                        ProgressStyle::with_template("{msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    b.finish_with_message(format!(
                        "{mark} {:<w$} {secs:>5.1}s  {outcome}",
                        i.name,
                        w = i.width
                    ));
                }
                if let Some(t) = &i.total {
                    t.inc(1);
                }
            }
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
