//! Placement of `node = "auto"` containers: pure, deterministic for the same facts.
//!
//! A container goes to the online member (among `nodes`, when the entry lists them) with the
//! most free memory after what this run has already placed there, and whose root disk storage
//! is there (shared, or that node's own), active, able to hold container roots and with room
//! for the disk after this run's earlier placements on it, and whose template storage is
//! there and holds templates (the template is downloaded there when missing). Ties go to the node name that sorts
//! first. Because every placement lowers its node's headroom, a counted entry spreads.

use super::ClusterFacts;
use serde::Serialize;
use std::collections::BTreeMap;

/// What one container needs.
#[derive(Clone, Debug)]
pub struct Want {
    /// Hostname (for messages).
    pub name: String,
    /// The members it may go to; empty: all.
    pub nodes: Vec<String>,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Root disk storage.
    pub storage: String,
    /// Root disk size, GiB.
    pub disk_gib: f64,
    /// Where the template is (or is downloaded to) on the node; empty: not checked.
    pub template_storage: String,
}

/// Where a container goes and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Placement {
    /// The node.
    pub node: String,
    /// Why that node, in words (shown in the plan).
    pub reason: String,
}

const MIB: u64 = 1 << 20;

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
}

/// Why `node` cannot take `w`, or its free memory (bytes) after this run's placements.
fn headroom(
    f: &ClusterFacts,
    w: &Want,
    node: &str,
    placed_mem: &BTreeMap<String, u64>,
    placed_disk: &BTreeMap<(String, String), u64>,
) -> Result<u64, String> {
    let m = f
        .member(node)
        .ok_or_else(|| "not a member of the cluster".to_string())?;
    if !m.online {
        return Err("offline".into());
    }
    let st = f
        .storages
        .iter()
        .find(|s| s.node == node && s.storage == w.storage)
        .ok_or_else(|| format!("storage {} is not on this node", w.storage))?;
    if st.status != "available" {
        return Err(format!("storage {} is {}", w.storage, st.status));
    }
    if !st.content.iter().any(|c| c == "rootdir") {
        return Err(format!("storage {} cannot hold container roots", w.storage));
    }
    if !w.template_storage.is_empty() {
        let tpl = f
            .storages
            .iter()
            .find(|s| s.node == node && s.storage == w.template_storage);
        match tpl {
            Some(t) if t.status == "available" && t.content.iter().any(|c| c == "vztmpl") => {}
            Some(t) if t.status != "available" => {
                return Err(format!(
                    "template storage {} is {}",
                    w.template_storage, t.status
                ));
            }
            Some(_) => {
                return Err(format!(
                    "template storage {} cannot hold templates",
                    w.template_storage
                ));
            }
            None => {
                return Err(format!(
                    "template storage {} is not on this node",
                    w.template_storage
                ));
            }
        }
    }
    // a shared storage is one pool whichever node writes to it
    let key_node = if st.shared { "" } else { node };
    let used = placed_disk
        .get(&(key_node.to_string(), w.storage.clone()))
        .copied()
        .unwrap_or(0);
    let need = (w.disk_gib * (1u64 << 30) as f64) as u64;
    if st.avail.saturating_sub(used) < need {
        return Err(format!(
            "storage {} has {} free, {} needed",
            w.storage,
            gib(st.avail.saturating_sub(used)),
            gib(need)
        ));
    }
    let load = f.loads.iter().find(|l| l.node == node);
    let (max, mem) = load.map_or((0, 0), |l| (l.maxmem, l.mem));
    let placed = placed_mem.get(node).copied().unwrap_or(0);
    Ok(max.saturating_sub(mem).saturating_sub(placed))
}

/// Places every want in order; each gets a node or the reason no node fits.
pub fn place(f: &ClusterFacts, wants: &[Want]) -> Vec<Result<Placement, String>> {
    let mut placed_mem: BTreeMap<String, u64> = BTreeMap::new();
    let mut placed_disk: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut out = Vec::with_capacity(wants.len());
    for w in wants {
        let mut names: Vec<&str> = if w.nodes.is_empty() {
            f.members.iter().map(|m| m.name.as_str()).collect()
        } else {
            w.nodes.iter().map(String::as_str).collect()
        };
        names.sort_unstable();
        names.dedup();
        let judged: Vec<(&str, Result<u64, String>)> = names
            .iter()
            .map(|n| (*n, headroom(f, w, n, &placed_mem, &placed_disk)))
            .collect();
        // most headroom first; equal headroom: the name that sorts first (names are sorted)
        let best = judged
            .iter()
            .filter_map(|(n, h)| h.as_ref().ok().map(|h| (*n, *h)))
            .fold(None::<(&str, u64)>, |acc, (n, h)| match acc {
                Some((_, bh)) if bh >= h => acc,
                _ => Some((n, h)),
            });
        let Some((node, free)) = best else {
            let why: Vec<String> = judged
                .iter()
                .map(|(n, h)| format!("{n}: {}", h.as_ref().err().cloned().unwrap_or_default()))
                .collect();
            out.push(Err(format!(
                "no node can take {}: {}",
                w.name,
                why.join("; ")
            )));
            continue;
        };
        let others: Vec<String> = judged
            .iter()
            .filter(|(n, _)| *n != node)
            .map(|(n, h)| match h {
                Ok(h) => format!("{n} {}", gib(*h)),
                Err(e) => format!("{n} {e}"),
            })
            .collect();
        let mut reason = format!("most free memory: {} on {node}", gib(free));
        if !others.is_empty() {
            reason.push_str(&format!(" (else {})", others.join(", ")));
        }
        reason.push_str(&format!("; storage {} there", w.storage));
        *placed_mem.entry(node.to_string()).or_default() += w.memory_mib * MIB;
        let shared = f
            .storages
            .iter()
            .any(|s| s.node == node && s.storage == w.storage && s.shared);
        let key = (
            if shared {
                String::new()
            } else {
                node.to_string()
            },
            w.storage.clone(),
        );
        *placed_disk.entry(key).or_default() += (w.disk_gib * (1u64 << 30) as f64) as u64;
        out.push(Ok(Placement {
            node: node.to_string(),
            reason,
        }));
    }
    out
}
