//! `provision doctor`: is this node ready for Docker-ready unprivileged containers?
//!
//! Three parts, like the rest of the tool. [`gather`] runs ONE read-only script on the node
//! through the node [`Transport`] (so it works over SSH as well as locally): it prints
//! `key=value` facts and never changes anything. [`parse_facts`] turns that text into
//! [`HostFacts`]. [`evaluate`] is pure: (facts, the containers asked for) -> one [`Check`] per
//! question, each OK / WARN / FAIL with what was found and how to fix it. Tests feed
//! [`evaluate`] recorded script output from real kinds of nodes.
//!
//! The rules, so that a result can be argued with:
//! - root: provision runs `pct` as root (root@pam is the only one allowed to set keyctl, fuse
//!   and mknod); not root is a FAIL.
//! - PVE tools: `pct`, `pveam`, `pvesm`, `pvesh` on PATH, else FAIL. Versions from
//!   `pveversion -v`; a node without `pveversion` (a lab node) is a WARN, PVE older than 8 a WARN.
//! - kernel (`uname -r`): 5.11 or later is OK (overlayfs in user namespaces); older WARNs, and
//!   FAILs below 5.3 when a profile wants mknod.
//! - cgroup (`stat -f -c %T /sys/fs/cgroup`): `cgroup2fs` is OK, anything else WARNs.
//! - /dev/fuse: a character device 10:229 that others may read and write (0666, what the
//!   kernel and PVE set: container root is uid 100000 on the node). Missing or not usable is a
//!   FAIL when a profile enables fuse, a WARN otherwise.
//! - subuid/subgid: root's ranges must cover 100000:65536 (what PVE installs and the default
//!   idmap uses); WARN otherwise.
//! - keyring: every unprivileged container maps its root to uid 100000, so all of them share
//!   one kernel key quota. With N = unprivileged containers on the node plus the new ones asked
//!   for, the quota must allow `200 + 50*N` keys and `100` bytes per key (`20000 + 5000*N`
//!   bytes); less is a WARN. A FAIL when `/proc/key-users` shows uid 100000 already at 90% or
//!   more of either limit (Docker fails then with `join session keyring: disk quota exceeded`).
//! - storages: each rootfs storage must be listed by `pvesm status --content rootdir` and be
//!   active (FAIL otherwise); less free space than the root disks asked for is a WARN (most
//!   storages are thin). Each template storage likewise with `--content vztmpl`.
//! - template: [`plan::resolve_template`] on `pveam list`/`pveam available`, as a real run would.
//! - storage driver: [`plan::decide_driver`] per profile and rootfs storage, with the host's
//!   ZFS version (`/sys/module/zfs/version`); overlay2 where it cannot work is a FAIL, fuse
//!   where the profile has fuse off is a FAIL, vfs a WARN.
//! - fuse-overlayfs source (where the driver is fuse-overlayfs): the node file exists, is an
//!   ELF binary for the node's architecture and matches its pinned SHA-256; a URL source's
//!   cached download matches its name, or curl is there to fetch it; a package source is OK.

use crate::cmd::Cmd;
use crate::facts::{
    Storage, TemplateFacts, parse_pveam_available, parse_pveam_list, parse_pvesm_status,
};
use crate::plan::{self, Step};
use crate::profile::{Driver, FuseSource, Profile};
use crate::request::Request;
use crate::transport::Transport;
use anyhow::{Result, bail};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

mod checks;
mod facts;
mod known;

pub use checks::*;
pub use facts::*;

/// How a check came out.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but something is likely to bite.
    Warn,
    /// Provisioning will fail (or cannot be checked because its prerequisite failed).
    Fail,
}

impl Level {
    /// The word shown.
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// One question about the node, answered.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Check {
    /// Stable identifier, e.g. `root`, `storage:local-lvm`, `template:local:ubuntu-24.04`.
    pub id: String,
    /// Outcome.
    pub level: Level,
    /// What was checked.
    pub title: String,
    /// What was found.
    pub detail: String,
    /// How to fix it (or, on an OK, a hint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(
    id: impl Into<String>,
    level: Level,
    title: impl Into<String>,
    detail: impl Into<String>,
) -> Check {
    Check {
        id: id.into(),
        level,
        title: title.into(),
        detail: detail.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, f: impl Into<String>) -> Check {
        self.fix = Some(f.into());
        self
    }
}

/// Counts per level.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// OK checks.
    pub ok: usize,
    /// Warnings.
    pub warn: usize,
    /// Failures.
    pub fail: usize,
}

/// The doctor's answer: JSON with `--output json`.
#[derive(Serialize, Clone, Debug)]
pub struct Report {
    /// Where the checks ran ("local", "ssh:root@pve1").
    pub node: String,
    /// True when no check failed.
    pub ok: bool,
    /// Counts.
    pub summary: Summary,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// A report from checks.
    pub fn new(node: impl Into<String>, checks: Vec<Check>) -> Report {
        let count = |l: Level| checks.iter().filter(|c| c.level == l).count();
        let summary = Summary {
            ok: count(Level::Ok),
            warn: count(Level::Warn),
            fail: count(Level::Fail),
        };
        Report {
            node: node.into(),
            ok: summary.fail == 0,
            summary,
            checks,
        }
    }

    /// 1 when a check failed, 0 otherwise (warnings do not fail).
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.ok)
    }

    /// Text for people.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "provision doctor on {}", self.node);
        for c in &self.checks {
            let _ = writeln!(s, "  {:<4}  {}: {}", c.level.word(), c.title, c.detail);
            if let Some(fix) = &c.fix {
                if c.level == Level::Ok {
                    let _ = writeln!(s, "        {fix}");
                } else {
                    let _ = writeln!(s, "        fix: {fix}");
                }
            }
        }
        let _ = writeln!(
            s,
            "{} ok, {} warning(s), {} failure(s)",
            self.summary.ok, self.summary.warn, self.summary.fail
        );
        s
    }
}

/// Gathers the facts through `node` and evaluates them for `reqs`.
pub fn run(node: &dyn Transport, reqs: &[Request]) -> Result<Report> {
    let f = gather(node, reqs)?;
    Ok(Report::new(node.label(), evaluate(&f, reqs)))
}

#[cfg(test)]
mod tests;
