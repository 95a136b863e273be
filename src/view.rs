//! The live view of a run on a terminal, as data and a pure rendering.
//!
//! [`ViewState`] is what is known about each container (its VMID, which step of how many, what
//! it is doing, when it started and how it ended); [`render`] turns it into the lines to show
//! for a given width, height and time. No clock and no terminal in here: `now` is passed in
//! (the time since the run started), so the rendering is tested with snapshots. The indicatif
//! plumbing that redraws it lives in [`crate::progress`].
//!
//! One line per container: `mark  name  VMID  step k/n  current step  elapsed`; a finished
//! container's line shows its outcome instead of the step and stays. Under them the total: a
//! bar (finished containers plus the finished steps of running ones), counts, elapsed time and,
//! once a container has finished, an estimate of the time left.

use crate::text::{clean, pad, pad_left, secs, shorten, width};
use std::time::Duration;

/// How a container's work ended, as the view shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    /// Brought to its entry (created, changed, unchanged).
    pub ok: bool,
    /// `created`, `changed`, `unchanged`, `failed at STEP`, `not started`.
    pub outcome: String,
    /// When, since the run started.
    pub at: Duration,
}

/// One container in the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Its name (escaped when shown).
    pub name: String,
    /// VMID, once known.
    pub vmid: Option<u32>,
    /// What it is doing now (a step's name, or a phase between steps).
    pub step: String,
    /// Steps started so far.
    pub k: usize,
    /// Steps in its plan (0: not known yet).
    pub n: usize,
    /// When work on it began, since the run started.
    pub started: Option<Duration>,
    /// How it ended.
    pub end: Option<End>,
}

/// What the live view knows about a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewState {
    /// One row per container, in the lab file's order.
    pub rows: Vec<Row>,
    /// How many containers are worked on at once (for the estimate).
    pub jobs: usize,
}

impl ViewState {
    /// Rows for `names`, all waiting.
    pub fn new(names: &[String], jobs: usize) -> ViewState {
        let mut v = ViewState {
            rows: Vec::new(),
            jobs: jobs.max(1),
        };
        for n in names {
            v.add(n);
        }
        v
    }

    /// The row of `name`, added at the end when it is not there.
    pub fn add(&mut self, name: &str) -> usize {
        if let Some(i) = self.rows.iter().position(|r| r.name == name) {
            return i;
        }
        self.rows.push(Row {
            name: name.to_string(),
            vmid: None,
            step: String::new(),
            k: 0,
            n: 0,
            started: None,
            end: None,
        });
        self.rows.len() - 1
    }

    /// Container `i` is doing `what` (work on it begins with its first call).
    pub fn step(&mut self, i: usize, what: &str, at: Duration) {
        if let Some(r) = self.rows.get_mut(i) {
            r.started.get_or_insert(at);
            r.step = what.to_string();
        }
    }

    /// Container `i` begins its next planned step.
    pub fn count_step(&mut self, i: usize) {
        if let Some(r) = self.rows.get_mut(i) {
            r.k += 1;
        }
    }

    /// Container `i`'s plan has `n` steps.
    pub fn planned(&mut self, i: usize, n: usize) {
        if let Some(r) = self.rows.get_mut(i) {
            r.n = n;
        }
    }

    /// Container `i` has `rest` steps left after those started (its plan, refined).
    pub fn plan_rest(&mut self, i: usize, rest: usize) {
        if let Some(r) = self.rows.get_mut(i) {
            r.n = r.k + rest;
        }
    }

    /// Container `i` has VMID `v`.
    pub fn vmid(&mut self, i: usize, v: u32) {
        if let Some(r) = self.rows.get_mut(i) {
            r.vmid = Some(v);
        }
    }

    /// Container `i` ended. `outcome` is the applier's word (`created`...) or `failed: STEP`.
    pub fn finish(&mut self, i: usize, ok: bool, outcome: &str, at: Duration) {
        if let Some(r) = self.rows.get_mut(i) {
            r.started.get_or_insert(at);
            let outcome = match outcome.strip_prefix("failed: ") {
                Some(step) => format!("failed at {step}"),
                None => outcome.to_string(),
            };
            r.end = Some(End { ok, outcome, at });
        }
    }

    /// The run is over: containers never started say so.
    pub fn close(&mut self, at: Duration) {
        for r in &mut self.rows {
            if r.end.is_none() && r.started.is_none() {
                r.end = Some(End {
                    ok: false,
                    outcome: "not started".into(),
                    at,
                });
            } else if r.end.is_none() {
                // Work began but no end was reported (a panic caught elsewhere).
                r.end = Some(End {
                    ok: false,
                    outcome: "stopped".into(),
                    at,
                });
            }
        }
    }

    /// Estimated time left, once a container has finished: the mean time of the finished ones
    /// for each container still to do, spread over `jobs` workers (each running container
    /// needs what is left of the mean, at least a second). None before the first finish or
    /// when nothing is left.
    pub fn eta(&self, now: Duration) -> Option<Duration> {
        let took: Vec<Duration> = self
            .rows
            .iter()
            .filter_map(|r| Some(r.end.as_ref()?.at.saturating_sub(r.started?)))
            .collect();
        let left = self.rows.iter().filter(|r| r.end.is_none()).count();
        if took.is_empty() || left == 0 {
            return None;
        }
        let mean = took.iter().sum::<Duration>() / took.len() as u32;
        let mut free: Vec<Duration> = self
            .rows
            .iter()
            .filter(|r| r.end.is_none())
            .filter_map(|r| r.started)
            .map(|s| {
                mean.saturating_sub(now.saturating_sub(s))
                    .max(Duration::from_secs(1))
            })
            .collect();
        let waiting = self
            .rows
            .iter()
            .filter(|r| r.end.is_none() && r.started.is_none())
            .count();
        while free.len() < self.jobs.max(1) {
            free.push(Duration::ZERO);
        }
        for _ in 0..waiting {
            if let Some(m) = free.iter_mut().min() {
                *m += mean;
            }
        }
        free.into_iter().max()
    }
}

/// Spinner frames, chosen from the time (so that a rendering is a function of its inputs).
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Running,
    Failed,
    Waiting,
    Done,
    NotStarted,
}

fn class(r: &Row) -> Class {
    match (&r.end, r.started) {
        (Some(e), _) if e.ok => Class::Done,
        (Some(_), None) => Class::NotStarted,
        (Some(_), _) => Class::Failed,
        (None, Some(_)) => Class::Running,
        (None, None) => Class::Waiting,
    }
}

/// The lines of the live view: at most `w` columns each and, when there are many containers,
/// at most `h` lines (running and failed containers first; the others are counted on one
/// line). `now` is the time since the run started.
pub fn render(v: &ViewState, w: usize, h: usize, now: Duration) -> Vec<String> {
    let total = v.rows.len();
    // Which rows fit: one line stays for the total, one for "… N more".
    let room = h.saturating_sub(2).max(3);
    let mut shown: Vec<usize> = (0..total).collect();
    let mut hidden = Vec::new();
    if total > room + 1 {
        let mut order: Vec<usize> = (0..total).collect();
        order.sort_by_key(|&i| (class(&v.rows[i]), i));
        let keep = room - 1;
        hidden = order.split_off(keep);
        order.sort_unstable();
        shown = order;
    }
    let names: Vec<String> = v.rows.iter().map(|r| clean(&r.name)).collect();
    let name_w = shown
        .iter()
        .map(|&i| width(&names[i]))
        .max()
        .unwrap_or(4)
        .max(4);
    let id_w = shown
        .iter()
        .filter_map(|&i| v.rows[i].vmid)
        .map(|x| x.to_string().len())
        .max()
        .unwrap_or(1)
        .max(3);
    let kn = |r: &Row| -> String {
        match (r.n.max(r.k), class(r)) {
            (_, Class::Waiting | Class::NotStarted) => String::new(),
            (0, _) => "step -".to_string(),
            (n, _) => format!("step {}/{n}", r.k),
        }
    };
    let kn_w = shown
        .iter()
        .map(|&i| kn(&v.rows[i]).len())
        .max()
        .unwrap_or(0);
    let what = |r: &Row| -> String {
        match (&r.end, class(r)) {
            (Some(e), _) => clean(&e.outcome),
            (None, Class::Waiting) => "waiting".to_string(),
            (None, _) if r.step.is_empty() => "starting".to_string(),
            (None, _) => clean(&r.step),
        }
    };
    // mark, name, VMID, step k/n: then the text, then elapsed (6 columns).
    let fixed = 2 + name_w + 2 + id_w + 2 + kn_w + 2;
    let el_w = 6;
    let text_room = w.saturating_sub(fixed + 2 + el_w).max(8);
    let text_w = shown
        .iter()
        .map(|&i| width(&what(&v.rows[i])))
        .max()
        .unwrap_or(0)
        .min(text_room);
    let frame = SPINNER[(now.as_millis() / 100) as usize % SPINNER.len()];
    let mut out = Vec::new();
    for &i in &shown {
        let r = &v.rows[i];
        let mark = match class(r) {
            Class::Running => frame,
            Class::Waiting => "·",
            Class::Done => "✔",
            Class::Failed => "✘",
            Class::NotStarted => "-",
        };
        let elapsed = match (r.started, &r.end) {
            (Some(s), Some(e)) => secs(e.at.saturating_sub(s)),
            (Some(s), None) => secs(now.saturating_sub(s)),
            (None, _) => String::new(),
        };
        let id = r.vmid.map_or("-".to_string(), |x| x.to_string());
        let line = format!(
            "{mark} {}  {}  {}  {}  {}",
            pad(&names[i], name_w),
            pad(&id, id_w),
            pad(&kn(r), kn_w),
            pad(&shorten(&what(r), text_w), text_w),
            pad_left(&elapsed, el_w)
        );
        out.push(fit(line.trim_end(), w));
    }
    if !hidden.is_empty() {
        let count = |c: Class| hidden.iter().filter(|&&i| class(&v.rows[i]) == c).count();
        let mut parts = Vec::new();
        for (c, word) in [
            (Class::Done, "done"),
            (Class::Waiting, "waiting"),
            (Class::Running, "running"),
            (Class::Failed, "failed"),
            (Class::NotStarted, "not started"),
        ] {
            let n = count(c);
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        out.push(fit(
            &format!("  … {} more: {}", hidden.len(), parts.join(", ")),
            w,
        ));
    }
    out.push(total_line(v, w, now));
    out
}

/// The total line: bar, counts, elapsed, estimate.
fn total_line(v: &ViewState, w: usize, now: Duration) -> String {
    let total = v.rows.len();
    let ok = v.rows.iter().filter(|r| class(r) == Class::Done).count();
    let failed = v.rows.iter().filter(|r| class(r) == Class::Failed).count();
    let not_started = v
        .rows
        .iter()
        .filter(|r| class(r) == Class::NotStarted)
        .count();
    let finished = ok + failed;
    let mut tail = format!("{finished}/{total}  {ok} ok");
    if failed > 0 {
        tail.push_str(&format!(", {failed} failed"));
    }
    if not_started > 0 {
        tail.push_str(&format!(", {not_started} not started"));
    }
    tail.push_str(&format!("  {}", secs(now)));
    if let Some(eta) = v.eta(now) {
        tail.push_str(&format!("  ETA {}", secs(eta)));
    }
    // Finished containers count whole, running ones by their finished steps.
    let progress: f64 = v
        .rows
        .iter()
        .map(|r| match class(r) {
            Class::Done | Class::Failed | Class::NotStarted => 1.0,
            Class::Running if r.n > 0 => r.k.saturating_sub(1) as f64 / r.n.max(r.k) as f64,
            _ => 0.0,
        })
        .sum::<f64>()
        / total.max(1) as f64;
    let head = "total ";
    let bar_w = w.saturating_sub(width(head) + 4 + width(&tail)).min(40);
    if bar_w < 5 {
        return fit(&format!("{head}{tail}"), w);
    }
    let filled = ((progress * bar_w as f64).floor() as usize).min(bar_w);
    let bar = if filled == bar_w {
        "=".repeat(bar_w)
    } else if filled == 0 {
        " ".repeat(bar_w)
    } else {
        format!("{}>{}", "=".repeat(filled - 1), " ".repeat(bar_w - filled))
    };
    format!("{head}[{bar}]  {tail}")
}

/// A layout line in at most `w` columns: cut after the last whole word that fits, then `…`
/// (its spacing kept, a word never cut).
fn fit(s: &str, w: usize) -> String {
    if width(s) <= w {
        return s.to_string();
    }
    let mut used = 0;
    let mut cut = 0;
    for (i, c) in s.char_indices() {
        let cw = width(c.encode_utf8(&mut [0; 4]));
        if used + cw + 1 > w {
            break;
        }
        if c == ' ' {
            cut = i;
        }
        used += cw;
    }
    format!("{}…", s[..cut].trim_end())
}
