//! The doctor's checks for the known issues of [`crate::known_issues`] that can be seen coming
//! from the node's facts and the profiles (`known:ID`).

use super::{Check, HostFacts, Level};
use crate::known_issues::{Doctor, ISSUES, LXC_PVE_FIXED, issue, version_lt};
use crate::request::Request;

/// Every known issue with a check of its own, decided on these facts (none where it does not
/// apply, e.g. no Docker asked for).
pub fn checks(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
    ISSUES
        .iter()
        .filter(|i| matches!(i.doctor, Doctor::Check))
        .filter_map(|i| match i.id {
            "runc-apparmor-sysctl" => check_lxc_pve(f, reqs),
            "keyctl-disabled" => check_keyctl(f, reqs),
            "nesting-disabled" => check_nesting(f, reqs),
            _ => None,
        })
        .collect()
}

fn known_check(id: &str, level: Level, detail: String) -> Check {
    let i = issue(id);
    Check {
        id: format!("known:{id}"),
        level,
        title: format!("known issue: {}", i.title),
        detail,
        fix: (level != Level::Ok).then(|| i.fix.to_string()),
    }
}

fn check_lxc_pve(f: &HostFacts, reqs: &[Request]) -> Option<Check> {
    if !reqs
        .iter()
        .any(|r| r.profile.docker.install != crate::profile::DockerInstall::None)
    {
        return None;
    }
    let v = f.pve_versions.get("lxc-pve")?.split_whitespace().next()?;
    Some(if version_lt(v, LXC_PVE_FIXED) {
        known_check(
            "runc-apparmor-sysctl",
            Level::Warn,
            format!(
                "lxc-pve {v} is older than {LXC_PVE_FIXED}: containers that get runc 1.2.8 / 1.3.3 or later (Docker's packages since November 2025) cannot start any Docker container"
            ),
        )
    } else {
        known_check(
            "runc-apparmor-sysctl",
            Level::Ok,
            format!("lxc-pve {v}: its AppArmor profile allows runc's re-opened /proc/sys files"),
        )
    })
}

fn docker_reqs(reqs: &[Request]) -> impl Iterator<Item = &Request> {
    reqs.iter()
        .filter(|r| r.profile.docker.install != crate::profile::DockerInstall::None)
}

fn names(reqs: &[&Request]) -> String {
    let mut n: Vec<String> = reqs
        .iter()
        .map(|r| {
            if r.hostname.is_empty() {
                format!("profile {}", r.profile.name)
            } else {
                r.hostname.clone()
            }
        })
        .collect();
    n.dedup();
    n.join(", ")
}

fn check_keyctl(_f: &HostFacts, reqs: &[Request]) -> Option<Check> {
    let want: Vec<&Request> = docker_reqs(reqs)
        .filter(|r| r.profile.unprivileged)
        .collect();
    if want.is_empty() {
        return None;
    }
    let off: Vec<&Request> = want
        .iter()
        .copied()
        .filter(|r| !r.profile.features.keyctl)
        .collect();
    Some(if off.is_empty() {
        known_check(
            "keyctl-disabled",
            Level::Ok,
            "every unprivileged Docker container asked for has keyctl=1".into(),
        )
    } else {
        known_check(
            "keyctl-disabled",
            Level::Fail,
            format!(
                "{}: unprivileged with Docker but features.keyctl is off; runc fails with `join session keyring: ... operation not permitted`",
                names(&off)
            ),
        )
    })
}

fn check_nesting(_f: &HostFacts, reqs: &[Request]) -> Option<Check> {
    let want: Vec<&Request> = docker_reqs(reqs).collect();
    if want.is_empty() {
        return None;
    }
    let off: Vec<&Request> = want
        .iter()
        .copied()
        .filter(|r| !r.profile.features.nesting)
        .collect();
    Some(if off.is_empty() {
        known_check(
            "nesting-disabled",
            Level::Ok,
            "every Docker container asked for has nesting=1".into(),
        )
    } else {
        known_check(
            "nesting-disabled",
            Level::Fail,
            format!(
                "{}: Docker but features.nesting is off; runc cannot mount /proc (`error mounting \"proc\" to rootfs ... permission denied`)",
                names(&off)
            ),
        )
    })
}
