//! Which node each entry of a lab file is for, and the transport that reaches it.
//!
//! Only a file that names a node (`node`, `node = "auto"`, `nodes`) makes the run read the
//! cluster; other files run as before on the default node. Then, per entry, in this order:
//! a container that already exists anywhere in the cluster (hostname + the tool's tag, as
//! everywhere) is for the node it is on now (placed ones stay, migrated ones are found where
//! they went); else `node = "auto"` is placed ([`super::place`]); else the entry's `node`.
//! An entry's `host` still wins for how the node is reached. A node other than the one the
//! run is on is reached over SSH at its cluster address ([`super::reach`]), one session per
//! node, opened when the run's targets are opened.

use super::place::{self, Want};
use super::{ClusterFacts, Member};
use crate::batch::Opener;
use crate::labfile::Entry;
use crate::plan;
use crate::request::Options;
use crate::transport::Transport;
use anyhow::{Result, anyhow};
use std::sync::{Arc, Mutex};

/// The `host` given to an entry routed to another member: not a valid SSH target, so it
/// never collides with a host the user wrote.
pub const MEMBER_HOST: &str = "node ";

/// Opens a member over SSH, reading the cluster's trust through the node the run is on.
pub type MemberOpener<'a> =
    dyn Fn(&Member, &dyn Transport) -> Result<Arc<dyn Transport>> + Sync + 'a;

/// Entries with their node decided, and the opener of their nodes.
pub struct Routed<'a> {
    /// The entries, `node` set to where each goes, `host` to how it is reached.
    pub entries: Vec<Entry>,
    /// What the plan shows: where `auto` put each container and why.
    pub notes: Vec<String>,
    /// The cluster, when it was read.
    pub facts: Option<ClusterFacts>,
    base: &'a Opener<'a>,
    member: &'a MemberOpener<'a>,
    default: Mutex<Option<Arc<dyn Transport>>>,
    unplaced: Vec<(String, String)>,
}

impl Routed<'_> {
    /// The entries as references, for [`crate::batch::Targets::open`].
    pub fn refs(&self) -> Vec<&Entry> {
        self.entries.iter().collect()
    }

    fn default_node(&self) -> Result<Arc<dyn Transport>> {
        let mut d = self
            .default
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = &*d {
            return Ok(t.clone());
        }
        let t = (self.base)(None)?;
        *d = Some(t.clone());
        Ok(t)
    }

    /// Opens the node of a routed `host` (the default node is opened once and shared).
    pub fn open(&self, host: Option<&str>) -> Result<Arc<dyn Transport>> {
        let Some(h) = host else {
            return self.default_node();
        };
        if let Some((_, why)) = self.unplaced.iter().find(|(k, _)| k == h) {
            return Err(anyhow!("{why}"));
        }
        let Some(name) = h.strip_prefix(MEMBER_HOST) else {
            return (self.base)(Some(h));
        };
        let facts = self
            .facts
            .as_ref()
            .ok_or_else(|| anyhow!("no cluster facts"))?;
        let m = facts
            .member(name)
            .ok_or_else(|| anyhow!("{name} is not a member of the cluster"))?;
        if !m.online {
            return Err(anyhow!(
                "node {name} is offline (pvesh get /cluster/status: online 0); its containers were not touched"
            ));
        }
        let via = self.default_node()?;
        (self.member)(m, via.as_ref())
    }
}

/// Whether the file asks for anything cluster-aware.
fn wants_cluster(entries: &[&Entry]) -> bool {
    entries
        .iter()
        .any(|e| e.node.is_some() || !e.nodes.is_empty())
}

fn is_auto(e: &Entry) -> bool {
    e.node.as_deref() == Some("auto") || (e.node.is_none() && !e.nodes.is_empty())
}

/// Decides the node of every entry (see the module's text).
pub fn route<'a>(
    entries: &[&Entry],
    base: &'a Opener<'a>,
    member: &'a MemberOpener<'a>,
    opts: &Options,
) -> Routed<'a> {
    let mut r = Routed {
        entries: entries.iter().map(|e| (*e).clone()).collect(),
        notes: Vec::new(),
        facts: None,
        base,
        member,
        default: Mutex::new(None),
        unplaced: Vec::new(),
    };
    if !wants_cluster(entries) {
        return r;
    }
    let facts = r
        .default_node()
        .and_then(|t| super::gather(t.as_ref()))
        .map_err(|e| format!("{e:#}"));
    match facts {
        Ok(f) => {
            decide(&mut r, &f, opts);
            r.facts = Some(f);
        }
        Err(why) => {
            for e in r.entries.iter_mut().filter(|e| is_auto(e)) {
                let key = format!("unplaced {}", e.name);
                r.unplaced.push((
                    key.clone(),
                    format!(
                        "node = \"auto\" needs the cluster's facts, which could not be read: {why}"
                    ),
                ));
                e.host = Some(key);
            }
        }
    }
    r
}

fn decide(r: &mut Routed<'_>, f: &ClusterFacts, opts: &Options) {
    let local = f.local().map(|m| m.name.clone());
    // 1. where each container already is
    let mut node_of: Vec<Option<String>> = r
        .entries
        .iter()
        .map(|e| match plan::find_existing(&e.request, &f.guests, opts) {
            Ok(Some(g)) if !g.node.is_empty() => Some(g.node.clone()),
            _ => None,
        })
        .collect();
    // 2. placement of the new `auto` ones, in file order
    let idx: Vec<usize> = (0..r.entries.len())
        .filter(|&i| node_of[i].is_none() && is_auto(&r.entries[i]))
        .collect();
    let wants: Vec<Want> = idx
        .iter()
        .map(|&i| {
            let e = &r.entries[i];
            let p = &e.request.profile;
            Want {
                name: e.name.clone(),
                nodes: e.nodes.clone(),
                memory_mib: u64::from(p.memory),
                storage: p.rootfs.storage.clone(),
                disk_gib: p.rootfs.size,
                template_storage: p.template_storage.clone(),
            }
        })
        .collect();
    for (&i, p) in idx.iter().zip(place::place(f, &wants)) {
        let name = r.entries[i].name.clone();
        match p {
            Ok(p) => {
                r.notes
                    .push(format!("placement: {name} -> {} ({})", p.node, p.reason));
                node_of[i] = Some(p.node);
            }
            Err(why) => {
                let key = format!("unplaced {name}");
                r.unplaced.push((key.clone(), why));
                r.entries[i].host = Some(key);
            }
        }
    }
    // 3. the entry's own node; then how each node is reached
    let notes = &mut r.notes;
    for (e, n) in r.entries.iter_mut().zip(node_of) {
        if e.host
            .as_deref()
            .is_some_and(|h| h.starts_with("unplaced "))
        {
            continue;
        }
        let wanted = e.node.clone().filter(|n| n != "auto");
        if let (Some(w), Some(at)) = (&wanted, &n)
            && w != at
        {
            notes.push(format!(
                "{}: the lab file says node {w}, but it is on {at} (migrated): converged where it is",
                e.name
            ));
        }
        let node = n.or(wanted);
        e.node.clone_from(&node);
        let Some(node) = node else { continue };
        if e.host.is_some() || Some(&node) == local.as_ref() {
            continue; // an explicit host wins; the run's own node is the default transport
        }
        if f.member(&node).is_some() && f.is_cluster() {
            e.host = Some(format!("{MEMBER_HOST}{node}"));
        }
    }
}
