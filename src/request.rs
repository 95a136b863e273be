//! What the user asked for: one container's request and the switches of a run.
//!
//! These are the planner's inputs, read by the commands, the lab file and the applier alike;
//! they live apart from the planner so that reading a request never depends on planning.

use crate::profile::Profile;
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the user asked for, for one container.
#[derive(Clone, Debug)]
pub struct Request {
    /// Hostname (the container's name).
    pub hostname: String,
    /// Fixed VMID, if asked.
    pub vmid: Option<u32>,
    /// The resolved profile.
    pub profile: Profile,
}

/// Switches that change what the plan may do.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Restart a running container when changes are pending.
    pub restart: bool,
    /// Take over a container the tool did not create.
    pub adopt: bool,
    /// Replace an invalid daemon.json (after a backup) instead of refusing.
    pub force: bool,
    /// Allow changing Docker's storage driver on a container that has one.
    pub allow_storage_switch: bool,
    /// How long each kind of step may run.
    pub step_timeouts: StepTimeouts,
}

/// The kinds of step, each with its own time bound, and the default bound.
pub const STEP_KINDS: &[(&str, u64)] = &[
    ("template", 1800),
    ("create", 600),
    ("config", 120),
    ("start", 300),
    ("install", 1800),
    ("fuse-overlayfs", 600),
    ("docker", 300),
    ("file", 120),
    ("commands", 1800),
    ("password", 60),
    ("verify", 600),
];

/// How long the commands of each kind of step may run before their process group is killed
/// (`--step-timeout [KIND=]SECONDS`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepTimeouts {
    /// One bound for every kind (`--step-timeout SECONDS`).
    pub all: Option<Duration>,
    /// Bounds per kind (`--step-timeout KIND=SECONDS`); they win over `all`.
    pub kinds: BTreeMap<String, Duration>,
}

impl StepTimeouts {
    /// The bound for steps of `kind` (one of [`STEP_KINDS`]).
    pub fn of(&self, kind: &str) -> Duration {
        if let Some(d) = self.kinds.get(kind) {
            return *d;
        }
        if let Some(d) = self.all {
            return d;
        }
        let secs = STEP_KINDS
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(600, |(_, s)| *s);
        Duration::from_secs(secs)
    }

    /// Adds one `--step-timeout` value: `SECONDS` or `KIND=SECONDS`.
    pub fn add(&mut self, arg: &str) -> Result<()> {
        let (kind, secs) = match arg.split_once('=') {
            Some((k, v)) => (Some(k.trim()), v.trim()),
            None => (None, arg.trim()),
        };
        let secs: u64 = match secs.parse() {
            Ok(n) if n > 0 => n,
            _ => bail!(
                "--step-timeout {arg:?}: expected SECONDS or KIND=SECONDS with a whole number of seconds above 0"
            ),
        };
        let d = Duration::from_secs(secs);
        match kind {
            None => self.all = Some(d),
            Some(k) if STEP_KINDS.iter().any(|(n, _)| *n == k) => {
                self.kinds.insert(k.to_string(), d);
            }
            Some(k) => bail!(
                "--step-timeout {arg:?}: no step kind {k:?}; kinds are {}",
                STEP_KINDS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_timeouts_take_a_kind_or_all_and_refuse_junk() {
        let mut t = StepTimeouts::default();
        assert_eq!(t.of("install"), Duration::from_secs(1800));
        t.add("30").unwrap();
        t.add("create=5").unwrap();
        assert_eq!(t.of("install"), Duration::from_secs(30));
        assert_eq!(t.of("create"), Duration::from_secs(5));
        for bad in ["0", "-1", "x", "nope=3", "create=", "=4"] {
            assert!(t.add(bad).is_err(), "{bad}");
        }
    }
}
