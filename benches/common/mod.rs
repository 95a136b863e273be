//! Shared by the benchmarks: summary statistics, the settings every bench reads from the
//! environment, and the lines scripts/bench collects (markdown, `GOAL|` rows, one JSON line).
//!
//! Nothing here asserts a time: benchmarks report, they never fail on a number.

#![allow(dead_code)]

use std::time::Duration;

/// `BENCH_SHORT=1`: every measurement once, with tiny N (CI keeps the benches from rotting).
pub fn short() -> bool {
    std::env::var("BENCH_SHORT").is_ok_and(|v| v == "1")
}

/// `BENCH_REPEAT` (default `full` normally, 1 with `BENCH_SHORT=1`).
pub fn repeat(full: usize) -> usize {
    std::env::var("BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(if short() { 1 } else { full })
}

/// Median, spread and count of a sample.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// 10th percentile (nearest rank).
    pub p10: f64,
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// Largest.
    pub max: f64,
}

/// Summarises `xs` (all zeros when empty).
pub fn summary(xs: &[f64]) -> Summary {
    if xs.is_empty() {
        return Summary::default();
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let at = |p: f64| v[((p * (n - 1) as f64).round() as usize).min(n - 1)];
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Summary {
        n,
        min: v[0],
        p10: at(0.10),
        median,
        p90: at(0.90),
        max: v[n - 1],
    }
}

impl Summary {
    /// `median (min–max)` with `d` decimals; just the value for one sample.
    pub fn show(&self, d: usize) -> String {
        if self.n == 0 {
            "–".to_string()
        } else if self.n == 1 {
            format!("{:.d$}", self.median)
        } else {
            format!("{:.d$} ({:.d$}–{:.d$})", self.median, self.min, self.max)
        }
    }

    /// As JSON: n, min, median, max, p10, p90 (rounded to 4 decimals).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n, "min": r4(self.min), "p10": r4(self.p10), "median": r4(self.median),
            "p90": r4(self.p90), "max": r4(self.max),
        })
    }
}

/// Rounds to 4 decimals (for JSON).
pub fn r4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Seconds as f64.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Prints one row of the goals table that scripts/bench gathers from every bench:
/// `GOAL|goal|target|measured|met`.
pub fn goal(what: &str, target: &str, measured: &str, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    let mode = if short() { " (short mode)" } else { "" };
    println!("GOAL|{what}|{target}|{measured}{mode}|{verdict}");
}

/// Prints the bench's one JSON line (scripts/bench keeps them in target/bench/results.jsonl).
pub fn json_line(v: &serde_json::Value) {
    println!("{v}");
}

/// The OpenSSH client as the SSH benches spawn it per command: `true` on 127.0.0.1:`port` as
/// `user` with `key`, checking the host key against `known_hosts` only, never prompting.
pub fn ssh_client(
    key: &std::path::Path,
    port: u16,
    known_hosts: &std::path::Path,
    user: &str,
) -> std::process::Command {
    let mut c = std::process::Command::new("ssh");
    c.args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args(["-p", &port.to_string(), "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("{user}@127.0.0.1"))
        .arg("true")
        .stdin(std::process::Stdio::null());
    c
}
