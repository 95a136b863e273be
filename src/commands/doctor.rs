//! `provision doctor [FILE] [--profile P]`: checks nodes before anything is created.
//!
//! Builds the requests to check for (one profile, or every entry of a lab file), groups them
//! by the node they go to (the default node, or an entry's `host`), gathers each node's facts
//! through its node transport and evaluates them ([`crate::doctor::evaluate`]). Prints each
//! check; with `--output json` one document `{"ok", "nodes": [report...]}`. Exit 1 when a
//! check FAILs on any node; 2 for a bad profile or lab file (no node is contacted then).

use super::apply::open_host;
use super::{json, print_json};
use crate::cli::{DoctorArgs, GlobalArgs};
use crate::cluster::route;
use crate::doctor::{self, Report};
use crate::labfile;
use crate::profile::{self, Layer};
use crate::request::{Options, Request};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// The requests to check, grouped by node: `None` is the default node (local or --host), else
/// a lab file entry's `host`.
pub fn requests(a: &DoctorArgs) -> Result<BTreeMap<Option<String>, Vec<Request>>> {
    let mut by_host: BTreeMap<Option<String>, Vec<Request>> = BTreeMap::new();
    match &a.file {
        Some(file) => {
            let lab = labfile::load(file, &Layer::default())?;
            for e in lab.entries {
                by_host.entry(e.host).or_default().push(e.request);
            }
        }
        None => {
            let p = profile::load(&a.profile, &Layer::default())?;
            by_host.entry(None).or_default().push(Request {
                // No container name: the checks are about the node and the profile.
                hostname: String::new(),
                vmid: p.vmid,
                profile: p,
            });
        }
    }
    Ok(by_host)
}

/// A lab file: every node its entries go to (in a cluster: the members they are on or are
/// placed on, reached as `apply` reaches them), plus the cluster's quorum and members.
fn lab_file_reports(file: &std::path::Path, g: &GlobalArgs) -> Result<Vec<Report>> {
    let lab = labfile::load(file, &Layer::default())?;
    let entries: Vec<&labfile::Entry> = lab.entries.iter().collect();
    let member = super::member_opener(g);
    let open = |h: Option<&str>| open_host(g, h);
    let routed = route::route(&entries, &open, &member, &Options::default());
    let mut by_host: BTreeMap<Option<String>, Vec<Request>> = BTreeMap::new();
    for e in &routed.entries {
        by_host
            .entry(e.host.clone())
            .or_default()
            .push(e.request.clone());
    }
    let mut nodes = Vec::new();
    if let Some(f) = routed.facts.as_ref().filter(|f| f.is_cluster()) {
        let used: Vec<String> = routed
            .entries
            .iter()
            .filter_map(|e| e.node.clone())
            .collect();
        nodes.push(crate::cluster::checks::evaluate(f, &used));
    }
    for (host, reqs) in &by_host {
        match routed.open(host.as_deref()) {
            Ok(node) => nodes.push(doctor::run(node.as_ref(), reqs)?),
            Err(e) => nodes.push(Report::new(
                host.clone().unwrap_or_else(|| "the node".into()),
                vec![doctor::Check {
                    id: "reach".into(),
                    level: doctor::Level::Fail,
                    title: "reach the node".into(),
                    detail: format!("{e:#}"),
                    fix: None,
                }],
            )),
        }
    }
    Ok(nodes)
}

/// The `--output json` document.
#[derive(Serialize, Debug)]
pub struct Doc {
    /// True when no check failed on any node.
    pub ok: bool,
    /// One report per node.
    pub nodes: Vec<Report>,
}

/// Runs `provision doctor`.
pub fn run(a: &DoctorArgs, g: &GlobalArgs) -> Result<u8> {
    let nodes = match &a.file {
        Some(file) => lab_file_reports(file, g)?,
        None => {
            let mut nodes = Vec::new();
            for (host, reqs) in &requests(a)? {
                let node = open_host(g, host.as_deref())?;
                nodes.push(doctor::run(node.as_ref(), reqs)?);
            }
            nodes
        }
    };
    let doc = Doc {
        ok: nodes.iter().all(|r| r.ok),
        nodes,
    };
    if json(g) {
        print_json(&doc)?;
    } else {
        for r in &doc.nodes {
            crate::out!("{}", r.text());
        }
    }
    Ok(u8::from(!doc.ok))
}
