//! Per-container outcome, summary, exit code, JSON.
//!
//! A report never holds a secret: step names, reasons and command output tails only. Command
//! argv shown here come from [`crate::cmd::Cmd`]'s masking Display.

use crate::plan::Already;
use serde::Serialize;
use std::fmt::Write as _;

/// What happened to one container.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Created by this run and brought to the profile.
    Created,
    /// Existed; something was changed.
    Changed,
    /// Existed and already matched: nothing changed.
    Unchanged,
    /// Could not be brought to the profile.
    Failed,
    /// Failed, and what this run created was destroyed (--rollback).
    RolledBack,
    /// Not started (interrupted before its turn).
    Skipped,
}

impl Outcome {
    /// The word shown.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Changed => "changed",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "FAILED",
            Outcome::RolledBack => "FAILED, rolled back",
            Outcome::Skipped => "skipped",
        }
    }
    /// True for failures.
    pub fn failed(self) -> bool {
        matches!(
            self,
            Outcome::Failed | Outcome::RolledBack | Outcome::Skipped
        )
    }
}

/// One step that ran.
#[derive(Serialize, Clone, Debug)]
pub struct StepReport {
    /// Step name.
    pub name: String,
    /// Why it ran.
    pub why: String,
    /// Whether it worked.
    pub status: StepStatus,
    /// How long it took.
    pub duration_ms: u64,
    /// A short result line, when the step has one (verification).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// How a step ended (`done` / `failed` in JSON).
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// It worked.
    Done,
    /// It failed (or did not start: interrupted).
    Failed,
}

impl StepStatus {
    /// `done` or `failed`, as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
        }
    }
}

/// Why a container failed.
#[derive(Serialize, Clone, Debug)]
pub struct Failure {
    /// The step that failed.
    pub step: String,
    /// The error.
    pub message: String,
    /// The last lines of the failing command's output.
    pub tail: Vec<String>,
    /// What state was left.
    pub left: String,
    /// The failure is a profile or configuration error found before any change (exit 2).
    #[serde(skip)]
    pub usage: bool,
    /// A known issue the failure's text shows (docs/known-issues.md): its cause and fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_issue: Option<crate::known_issues::Diagnosis>,
    /// The run was interrupted (SIGINT/SIGTERM) before the failing step started.
    #[serde(skip)]
    pub interrupted: bool,
}

/// The outcome of one container.
#[derive(Serialize, Clone, Debug)]
pub struct ContainerReport {
    /// Hostname.
    pub hostname: String,
    /// VMID, once known.
    pub vmid: Option<u32>,
    /// Outcome.
    pub outcome: Outcome,
    /// The PVE node it is on, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its addresses as seen inside once the network was up (IPv4 first).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Storage driver used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Why that driver.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver_reason: String,
    /// Docker was proven to run a container.
    pub verified: bool,
    /// Steps that ran.
    pub steps: Vec<StepReport>,
    /// Checks that found nothing to do.
    pub already: Vec<Already>,
    /// Notes.
    pub notes: Vec<String>,
    /// Config keys pending a restart.
    pub pending: Vec<String>,
    /// The failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Wall time.
    pub duration_ms: u64,
}

impl ContainerReport {
    /// An empty report for a container.
    pub fn new(hostname: &str) -> Self {
        ContainerReport {
            hostname: hostname.to_string(),
            vmid: None,
            outcome: Outcome::Unchanged,
            node: None,
            addresses: Vec::new(),
            driver: None,
            driver_reason: String::new(),
            verified: false,
            steps: Vec::new(),
            already: Vec::new(),
            notes: Vec::new(),
            pending: Vec::new(),
            failure: None,
            duration_ms: 0,
        }
    }

    /// Human summary.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let id = self.vmid.map_or("-".to_string(), |v| v.to_string());
        let _ = writeln!(
            s,
            "{} (VMID {id}): {} in {:.1} s",
            self.hostname,
            self.outcome.word(),
            self.duration_ms as f64 / 1000.0
        );
        if let Some(d) = &self.driver {
            let _ = writeln!(s, "  storage driver: {d} ({})", self.driver_reason);
        }
        for st in &self.steps {
            let mark = if st.status == StepStatus::Done {
                "✔"
            } else {
                "✘"
            };
            let _ = writeln!(
                s,
                "  {mark} {:<24} {:>6.1} s  {}",
                st.name,
                st.duration_ms as f64 / 1000.0,
                if st.detail.is_empty() {
                    &st.why
                } else {
                    &st.detail
                }
            );
        }
        for a in &self.already {
            let _ = writeln!(s, "  = {:<24}           {}", a.step, a.why);
        }
        for n in &self.notes {
            let _ = writeln!(s, "  ! {n}");
        }
        if let Some(f) = &self.failure {
            let _ = writeln!(s, "  failed at step {:?}: {}", f.step, f.message);
            for l in &f.tail {
                let _ = writeln!(s, "  | {l}");
            }
            if let Some(k) = &f.known_issue {
                let _ = writeln!(s, "  known issue {}: {}", k.id, k.title);
                let _ = writeln!(s, "    cause: {}", k.cause);
                let _ = writeln!(s, "    fix: {}", k.fix);
                let _ = writeln!(s, "    see: {}", k.see);
            }
            let _ = writeln!(s, "  left: {}", f.left);
        }
        s
    }
}

/// The report of a whole run.
#[derive(Serialize, Clone, Debug, Default)]
pub struct RunReport {
    /// One entry per container.
    pub containers: Vec<ContainerReport>,
    /// Run-level notes.
    pub notes: Vec<String>,
}

impl RunReport {
    /// 0 when every container is done or unchanged; 2 when the only failures are profile or
    /// configuration errors found before any change; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        let failed: Vec<&ContainerReport> = self
            .containers
            .iter()
            .filter(|c| c.outcome.failed())
            .collect();
        if failed.is_empty() {
            0
        } else if failed
            .iter()
            .all(|c| c.failure.as_ref().is_some_and(|f| f.usage))
        {
            2
        } else {
            1
        }
    }

    /// Human summary of all containers.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        for c in &self.containers {
            s.push_str(&c.text());
        }
        if self.containers.len() > 1 {
            let count = |o: Outcome| self.containers.iter().filter(|c| c.outcome == o).count();
            let _ = writeln!(
                s,
                "summary: {} created, {} changed, {} unchanged, {} failed",
                count(Outcome::Created),
                count(Outcome::Changed),
                count(Outcome::Unchanged),
                self.containers
                    .iter()
                    .filter(|c| c.outcome.failed())
                    .count()
            );
        }
        s
    }
}
