//! `provision doctor` on a cluster: quorum and the members a lab file uses (pure).

use super::ClusterFacts;
use crate::doctor::{Check, Level, Report};

fn check(id: String, level: Level, title: &str, detail: String, fix: Option<&str>) -> Check {
    Check {
        id,
        level,
        title: title.to_string(),
        detail,
        fix: fix.map(String::from),
    }
}

/// The cluster's own checks: quorum, and each member online (a member the file's containers
/// are on or placed on fails when it is offline; another one only warns).
pub fn evaluate(f: &ClusterFacts, used: &[String]) -> Report {
    let mut checks = vec![if f.quorate {
        check(
            "cluster:quorum".into(),
            Level::Ok,
            "quorum",
            format!("{} members, quorate", f.members.len()),
            None,
        )
    } else {
        check(
            "cluster:quorum".into(),
            Level::Fail,
            "quorum",
            format!(
                "{} of {} members online: no quorum, the cluster file system is read-only and every create or change fails",
                f.members.iter().filter(|m| m.online).count(),
                f.members.len()
            ),
            Some("bring members back online (pvecm status shows the votes)"),
        )
    }];
    for m in &f.members {
        let is_used = used.contains(&m.name);
        let (level, detail, fix) = match (m.online, is_used) {
            (true, _) => (Level::Ok, format!("online at {}", m.ip), None),
            (false, true) => (
                Level::Fail,
                "offline; containers of this file are on it or placed on it".to_string(),
                Some("bring the node back, or move its entries to another node"),
            ),
            (false, false) => (
                Level::Warn,
                "offline (no container of this file is on it)".to_string(),
                None,
            ),
        };
        checks.push(check(
            format!("cluster:node:{}", m.name),
            level,
            &format!("node {}", m.name),
            detail,
            fix,
        ));
    }
    let via = f
        .local()
        .map_or(String::new(), |m| format!(" (read on {})", m.name));
    Report::new(
        format!("cluster {}{via}", f.name.as_deref().unwrap_or("?")),
        checks,
    )
}
