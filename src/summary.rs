//! What a person reads after a run, fitted to the terminal's width.
//!
//! After a batch, [`table`]: one row per container (name, VMID, node, addresses, result, time),
//! a count line, the notes (each text once, with the containers it concerns), and then, only for
//! containers that failed, the step, the error and the last lines of output. [`full`] is the
//! per-step report (`-v`, and the single-container form). Both are pure functions of the report
//! and a width, so they are tested with snapshots. Explanations wrap at word boundaries (a word
//! is never cut); everything that came from input or from a node is escaped ([`clean`]).

use crate::report::{ContainerReport, Outcome, RunReport};
use crate::text::{clean, pad, secs_tenths, width, wrap_prefixed};
use std::fmt::Write as _;
use std::time::Duration;

/// The summary of a batch: the table, or with `verbose` every container's steps.
pub fn render(run: &RunReport, verbose: bool, w: usize) -> String {
    if verbose { full(run, w) } else { table(run, w) }
}

/// The result column: the outcome, and for a failure the step it failed at.
pub fn result(c: &ContainerReport) -> String {
    let step = c.failure.as_ref().map(|f| clean(&f.step));
    match (c.outcome, step) {
        (Outcome::Failed, Some(s)) => format!("failed at {s}"),
        (Outcome::RolledBack, Some(s)) => format!("failed at {s}, rolled back"),
        (Outcome::Failed, None) => "failed".into(),
        (Outcome::RolledBack, None) => "failed, rolled back".into(),
        (Outcome::Skipped, _) => "not started".into(),
        (o, _) => o.word().into(),
    }
}

fn push_wrapped(s: &mut String, text: &str, w: usize, first: &str, rest: &str) {
    for l in wrap_prefixed(text, w, first, rest) {
        let _ = writeln!(s, "{}", l.trim_end());
    }
}

/// Count line: `8 containers: 6 created, 1 unchanged, 1 failed` (zero counts left out).
fn counts(run: &RunReport) -> String {
    let n = |f: &dyn Fn(Outcome) -> bool| run.containers.iter().filter(|c| f(c.outcome)).count();
    let mut parts = Vec::new();
    for (o, word) in [
        (Outcome::Created, "created"),
        (Outcome::Changed, "changed"),
        (Outcome::Unchanged, "unchanged"),
    ] {
        let k = n(&|x| x == o);
        if k > 0 {
            parts.push(format!("{k} {word}"));
        }
    }
    let failed = n(&|x| matches!(x, Outcome::Failed | Outcome::RolledBack));
    if failed > 0 {
        parts.push(format!("{failed} failed"));
    }
    let skipped = n(&|x| x == Outcome::Skipped);
    if skipped > 0 {
        parts.push(format!("{skipped} not started"));
    }
    format!(
        "{} container{}: {}",
        run.containers.len(),
        if run.containers.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// Names, shortened: `a, b, c (+5 more)`; `all N` when every container shares it.
fn who(names: &[String], total: usize) -> String {
    if names.len() == total && total > 1 {
        return format!("all {total}");
    }
    let shown: Vec<String> = names.iter().take(3).map(|n| clean(n)).collect();
    let mut s = shown.join(", ");
    if names.len() > 3 {
        let _ = write!(s, " (+{} more)", names.len() - 3);
    }
    s
}

/// The compact summary of a batch.
pub fn table(run: &RunReport, w: usize) -> String {
    let mut s = String::new();
    for n in &run.notes {
        push_wrapped(&mut s, &clean(n), w, "note: ", "      ");
    }
    let mut rows: Vec<[String; 6]> = vec![[
        "NAME".into(),
        "VMID".into(),
        "NODE".into(),
        "ADDRESS".into(),
        "RESULT".into(),
        "TIME".into(),
    ]];
    for c in &run.containers {
        let addr = if c.addresses.is_empty() {
            "-".to_string()
        } else {
            c.addresses
                .iter()
                .map(|a| clean(a))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let time = match c.outcome {
            Outcome::Skipped => "-".to_string(),
            _ => secs_tenths(Duration::from_millis(c.duration_ms)),
        };
        rows.push([
            clean(&c.hostname),
            c.vmid.map_or("-".into(), |v| v.to_string()),
            c.node.as_deref().map_or("-".into(), clean),
            addr,
            result(c),
            time,
        ]);
    }
    let widths = |rows: &[[String; 6]]| -> [usize; 6] {
        let mut ws = [0; 6];
        for r in rows {
            for (i, cell) in r.iter().enumerate() {
                ws[i] = ws[i].max(width(cell));
            }
        }
        ws
    };
    let mut ws = widths(&rows);
    if ws.iter().sum::<usize>() + 2 * 5 > w {
        // Too wide: one address per row, the others counted.
        for (r, c) in rows.iter_mut().skip(1).zip(&run.containers) {
            if c.addresses.len() > 1 {
                r[3] = format!("{} +{}", clean(&c.addresses[0]), c.addresses.len() - 1);
            }
        }
        ws = widths(&rows);
    }
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i == 5 {
                // Time, right-aligned.
                let _ = write!(line, "{}{cell}", " ".repeat(ws[i] - width(cell)));
            } else {
                let _ = write!(line, "{}  ", pad(cell, ws[i]));
            }
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
    let _ = writeln!(s, "{}", counts(run));
    // Notes of the containers, each text once.
    let mut notes: Vec<(String, Vec<String>)> = Vec::new();
    for c in &run.containers {
        for n in &c.notes {
            match notes.iter_mut().find(|(t, _)| t == n) {
                Some((_, names)) => names.push(c.hostname.clone()),
                None => notes.push((n.clone(), vec![c.hostname.clone()])),
            }
        }
    }
    for (text, names) in &notes {
        let first = format!("note ({}): ", who(names, run.containers.len()));
        push_wrapped(&mut s, &clean(text), w, &first, "  ");
    }
    for c in run.containers.iter().filter(|c| c.failure.is_some()) {
        failure_block(&mut s, c, w);
    }
    s
}

/// Step, error, output tail and what was left, of a failed container.
fn failure_block(s: &mut String, c: &ContainerReport, w: usize) {
    let Some(f) = &c.failure else { return };
    let id = c.vmid.map_or(String::new(), |v| format!(" (VMID {v})"));
    let _ = writeln!(s);
    push_wrapped(
        s,
        &format!(
            "{}{id} failed at step \"{}\":",
            clean(&c.hostname),
            clean(&f.step)
        ),
        w,
        "",
        "  ",
    );
    push_wrapped(s, &clean(&f.message), w, "  ", "  ");
    for l in &f.tail {
        push_wrapped(s, &clean(l), w, "  | ", "  | ");
    }
    known_issue(s, f, w);
    push_wrapped(s, &clean(&f.left), w, "  left: ", "        ");
}

/// A failure recognised as a known issue: its cause, fix and where it is written up.
fn known_issue(s: &mut String, f: &crate::report::Failure, w: usize) {
    if let Some(k) = &f.known_issue {
        push_wrapped(
            s,
            &clean(&format!("known issue {}: {}", k.id, k.title)),
            w,
            "  ",
            "    ",
        );
        push_wrapped(s, &clean(&k.cause), w, "    cause: ", "      ");
        push_wrapped(s, &clean(&k.fix), w, "    fix: ", "      ");
        push_wrapped(s, &clean(&k.see), w, "    see: ", "      ");
    }
}

/// The per-step report of every container (`-v`; the single-container form).
pub fn full(run: &RunReport, w: usize) -> String {
    let mut s = String::new();
    for n in &run.notes {
        push_wrapped(&mut s, &clean(n), w, "note: ", "      ");
    }
    for c in &run.containers {
        container_full(&mut s, c, w);
    }
    if run.containers.len() > 1 {
        let _ = writeln!(s, "summary: {}", counts(run));
    }
    s
}

fn container_full(s: &mut String, c: &ContainerReport, w: usize) {
    let id = c.vmid.map_or("-".to_string(), |v| v.to_string());
    let mut head = format!(
        "{} (VMID {id}): {} in {}",
        clean(&c.hostname),
        c.outcome.word(),
        secs_tenths(Duration::from_millis(c.duration_ms))
    );
    if !c.addresses.is_empty() {
        let a: Vec<String> = c.addresses.iter().map(|a| clean(a)).collect();
        let _ = write!(head, ", address {}", a.join(" "));
    }
    push_wrapped(s, &head, w, "", "  ");
    if let Some(d) = &c.driver {
        push_wrapped(
            s,
            &format!("storage driver: {} ({})", clean(d), clean(&c.driver_reason)),
            w,
            "  ",
            "    ",
        );
    }
    // "  ✔ NAME(24) 000.0 s  " then the explanation, wrapped under itself.
    let hang = " ".repeat(2 + 2 + 24 + 1 + 8 + 2);
    for st in &c.steps {
        let mark = if st.status == crate::report::StepStatus::Done {
            "✔"
        } else {
            "✘"
        };
        let first = format!(
            "  {mark} {} {:>6.1} s  ",
            pad(&clean(&st.name), 24),
            st.duration_ms as f64 / 1000.0
        );
        let text = if st.detail.is_empty() {
            &st.why
        } else {
            &st.detail
        };
        if text.is_empty() {
            let _ = writeln!(s, "{}", first.trim_end());
        } else {
            push_wrapped(s, &clean(text), w, &first, &hang);
        }
    }
    for a in &c.already {
        let first = format!("  = {}           ", pad(&clean(&a.step), 24));
        push_wrapped(s, &clean(&a.why), w, &first, &hang);
    }
    for n in &c.notes {
        push_wrapped(s, &clean(n), w, "  ! ", "    ");
    }
    if let Some(f) = &c.failure {
        push_wrapped(
            s,
            &format!(
                "failed at step \"{}\": {}",
                clean(&f.step),
                clean(&f.message)
            ),
            w,
            "  ",
            "    ",
        );
        for l in &f.tail {
            push_wrapped(s, &clean(l), w, "  | ", "  | ");
        }
        known_issue(s, f, w);
        push_wrapped(s, &clean(&f.left), w, "  left: ", "        ");
    }
}
