//! A PVE cluster as one target: what the cluster says about itself, where each container of a
//! lab file goes, and how the other members are reached.
//!
//! Facts come from the one node the run starts on (local, or `--host`): `/cluster/status` (the
//! members, their cluster addresses, online state, quorum) and `/cluster/resources` (every
//! guest, every node's memory, every node's storages with their `shared` flag and free space).
//! [`place`] chooses a member for `node = "auto"` (pure); [`route`] decides, per entry, which
//! node it is for and how that node is reached; [`reach`] opens an SSH session to a member the
//! way PVE's own node-to-node SSH does.

pub mod checks;
pub mod place;
pub mod reach;
pub mod route;

use crate::cmd::Cmd;
use crate::facts::{self, Guest};
use crate::transport::{Transport, run_ok};
use anyhow::{Context, Result};
use serde::Serialize;

/// One member of the cluster, as `/cluster/status` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Node name.
    pub name: String,
    /// Its cluster address (what PVE's SSH between nodes connects to).
    pub ip: String,
    /// In the quorate partition (corosync membership).
    pub online: bool,
    /// The node this run reads the cluster from.
    pub local: bool,
}

/// A node's memory, from `/cluster/resources` (`type = node`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeLoad {
    /// Node name.
    pub node: String,
    /// Total memory, bytes.
    pub maxmem: u64,
    /// Used memory, bytes.
    pub mem: u64,
    /// `online`, `offline`, `unknown`.
    pub status: String,
}

/// A storage as one node sees it, from `/cluster/resources` (`type = storage`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeStorage {
    /// The node.
    pub node: String,
    /// Storage ID.
    pub storage: String,
    /// Shared storages are the same on every node that lists them.
    pub shared: bool,
    /// `available` (else not usable now).
    pub status: String,
    /// Content types, e.g. `rootdir`, `images`.
    pub content: Vec<String>,
    /// Free bytes (`maxdisk - disk`).
    pub avail: u64,
}

/// What the cluster says about itself.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClusterFacts {
    /// Cluster name; None on a node that is not in a cluster.
    pub name: Option<String>,
    /// Quorum (a node outside a cluster counts as quorate).
    pub quorate: bool,
    /// The members, in nodeid order as listed.
    pub members: Vec<Member>,
    /// Memory of each node that reported it.
    pub loads: Vec<NodeLoad>,
    /// Each node's storages.
    pub storages: Vec<NodeStorage>,
    /// Every guest of the cluster.
    pub guests: Vec<Guest>,
}

impl ClusterFacts {
    /// The node the run reads the cluster from.
    pub fn local(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.local)
    }

    /// A member by name.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// More than one member: other nodes exist to be reached.
    pub fn is_cluster(&self) -> bool {
        self.name.is_some() && self.members.len() > 1
    }
}

fn num(v: &serde_json::Value, k: &str) -> u64 {
    match &v[k] {
        serde_json::Value::Number(n) => n.as_u64().unwrap_or(0),
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn text(v: &serde_json::Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

/// `/cluster/status` as JSON: (cluster name, quorate, members).
pub fn parse_status(json: &str) -> Result<(Option<String>, bool, Vec<Member>)> {
    let v: serde_json::Value =
        serde_json::from_str(json).context("parsing /cluster/status JSON")?;
    let arr = v
        .as_array()
        .context("/cluster/status is not a JSON array")?;
    let mut name = None;
    let mut quorate = true;
    let mut members = Vec::new();
    for e in arr {
        match e["type"].as_str() {
            Some("cluster") => {
                name = Some(text(e, "name"));
                quorate = num(e, "quorate") == 1;
            }
            Some("node") => members.push(Member {
                name: text(e, "name"),
                ip: text(e, "ip"),
                online: num(e, "online") == 1,
                local: num(e, "local") == 1,
            }),
            _ => {}
        }
    }
    Ok((name, quorate, members))
}

/// The `node` and `storage` entries of `/cluster/resources` as JSON.
pub fn parse_resources(json: &str) -> Result<(Vec<NodeLoad>, Vec<NodeStorage>)> {
    let v: serde_json::Value =
        serde_json::from_str(json).context("parsing /cluster/resources JSON")?;
    let arr = v
        .as_array()
        .context("/cluster/resources is not a JSON array")?;
    let mut loads = Vec::new();
    let mut storages = Vec::new();
    for e in arr {
        match e["type"].as_str() {
            Some("node") => loads.push(NodeLoad {
                node: text(e, "node"),
                maxmem: num(e, "maxmem"),
                mem: num(e, "mem"),
                status: text(e, "status"),
            }),
            Some("storage") => storages.push(NodeStorage {
                node: text(e, "node"),
                storage: text(e, "storage"),
                shared: num(e, "shared") == 1,
                status: text(e, "status"),
                content: text(e, "content")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                avail: num(e, "maxdisk").saturating_sub(num(e, "disk")),
            }),
            _ => {}
        }
    }
    Ok((loads, storages))
}

fn pvesh_json(node: &dyn Transport, path: &str) -> Result<String> {
    let cmd = Cmd::new("pvesh").args(["get", path, "--output-format", "json"]);
    Ok(run_ok(node, &cmd, None)?.stdout_text())
}

/// Reads the cluster's facts through the node the run starts on (two `pvesh` calls).
pub fn gather(node: &dyn Transport) -> Result<ClusterFacts> {
    let (name, quorate, members) = parse_status(&pvesh_json(node, "/cluster/status")?)?;
    let res = pvesh_json(node, "/cluster/resources")?;
    let (loads, storages) = parse_resources(&res)?;
    let guests = facts::parse_resources(&res)?;
    Ok(ClusterFacts {
        name,
        quorate,
        members,
        loads,
        storages,
        guests,
    })
}

#[cfg(test)]
mod tests;
