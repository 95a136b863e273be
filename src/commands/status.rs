//! `provision status FILE`: each entry of a lab file as it is now: VMID, node, state (missing,
//! running, stopped, differs: which keys, conflict: why provision would refuse it) and Docker.
//!
//! Read-only, always: node facts once per node, one `pending` read per existing container,
//! and in each running container the same read-only facts script the applier uses. The Docker
//! column comes from those facts (dockerd installed and active, the storage driver daemon.json
//! configures, compared with the driver the entry wants). It is not a proof that Docker runs
//! containers: that proof (`docker run` of a probe image) is `apply`'s verify step, which builds
//! an image and so is not read-only.

use super::apply::{load_lab, open_host, require_pve};
use super::{json, print_json};
use crate::batch::{self, Opener, Targets};
use crate::cli::{FileArgs, GlobalArgs};
use crate::facts;
use crate::labfile::Entry;
use crate::plan::{self, Step};
use crate::request::Options;
use crate::transport::Transport;
use crate::transport::pct::Pct;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;

/// How many containers are looked at once.
const WORKERS: usize = 4;

/// The state of one entry.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// No container matches the entry.
    Missing,
    /// Exists, matches, runs.
    Running,
    /// Exists, matches, stopped.
    Stopped,
    /// Exists; its configuration differs from the entry (or changes wait for a restart).
    Differs,
    /// Something is there that provision would refuse to touch (see `message`).
    Conflict,
    /// The node or the container could not be read (see `message`).
    Unknown,
}

impl State {
    /// The word shown.
    pub fn word(self) -> &'static str {
        match self {
            State::Missing => "missing",
            State::Running => "running",
            State::Stopped => "stopped",
            State::Differs => "differs",
            State::Conflict => "conflict",
            State::Unknown => "unknown",
        }
    }
}

/// Docker inside, as the container's facts show it.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DockerState {
    /// Installed, active, configured with the driver the entry wants.
    Ok,
    /// Installed and active, but daemon.json configures another driver (or none).
    WrongDriver,
    /// Installed, not active.
    Inactive,
    /// Not installed.
    NotInstalled,
    /// The entry's profile installs no Docker.
    NotWanted,
    /// Not looked at (missing or stopped container) or unreadable.
    Unknown,
}

/// One entry's status.
#[derive(Serialize, Clone, Debug)]
pub struct EntryStatus {
    /// Hostname.
    pub name: String,
    /// VMID of the container (or the entry's fixed VMID when missing).
    pub vmid: Option<u32>,
    /// Node it is on (or the entry's `node` when missing).
    pub node: Option<String>,
    /// State.
    pub state: State,
    /// PVE's status (running, stopped) when it exists.
    pub status: Option<String>,
    /// What differs: `key: why`, as `apply` would change it.
    pub differences: Vec<String>,
    /// Config keys that wait for a restart.
    pub pending: Vec<String>,
    /// Docker.
    pub docker: DockerState,
    /// The storage driver daemon.json configures.
    pub docker_driver: Option<String>,
    /// The storage driver the entry wants.
    pub expected_driver: Option<String>,
    /// IPv4 addresses of a running container, as the node reports them (eth0 first).
    pub ipv4: Vec<String>,
    /// IPv6 addresses (no link-local).
    pub ipv6: Vec<String>,
    /// Why a conflict / unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl EntryStatus {
    fn new(e: &Entry, state: State) -> EntryStatus {
        EntryStatus {
            name: e.name.clone(),
            vmid: e.vmid(),
            node: e.node.clone(),
            state,
            status: None,
            differences: Vec::new(),
            pending: Vec::new(),
            docker: DockerState::Unknown,
            docker_driver: None,
            expected_driver: None,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            message: None,
        }
    }

    fn docker_text(&self) -> String {
        let d = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
        match self.docker {
            DockerState::Ok => format!("ok ({})", d(&self.docker_driver)),
            DockerState::WrongDriver => format!(
                "driver {} (wants {})",
                d(&self.docker_driver),
                d(&self.expected_driver)
            ),
            DockerState::Inactive => "inactive".into(),
            DockerState::NotInstalled => "not installed".into(),
            DockerState::NotWanted => "not wanted".into(),
            DockerState::Unknown => "-".into(),
        }
    }
}

/// The status of a lab file.
#[derive(Serialize, Clone, Debug)]
pub struct StatusReport {
    /// The lab file.
    pub file: String,
    /// One per selected entry, in file order.
    pub containers: Vec<EntryStatus>,
    /// Run-level notes.
    pub notes: Vec<String>,
}

impl StatusReport {
    /// A table for people.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let rows: Vec<[String; 6]> = self
            .containers
            .iter()
            .map(|c| {
                [
                    c.name.clone(),
                    c.vmid.map_or("-".into(), |v| v.to_string()),
                    opt(&c.node),
                    match (&c.state, &c.status) {
                        (State::Differs, Some(st)) => format!("differs ({st})"),
                        _ => c.state.word().to_string(),
                    },
                    c.docker_text(),
                    crate::addresses::Addresses {
                        ipv4: c.ipv4.clone(),
                        ipv6: c.ipv6.clone(),
                    }
                    .text(),
                ]
            })
            .collect();
        let head = ["NAME", "VMID", "NODE", "STATE", "DOCKER", "ADDRESSES"];
        let mut w = head.map(str::len);
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: [&str; 6]| {
            format!(
                "{:<w0$}  {:>w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                cells[5],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4]
            )
            .trim_end()
            .to_string()
        };
        let _ = writeln!(s, "{}", line(head));
        for (r, c) in rows.iter().zip(&self.containers) {
            let _ = writeln!(s, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
            for d in &c.differences {
                let _ = writeln!(s, "    differs: {d}");
            }
            if !c.pending.is_empty() {
                let _ = writeln!(
                    s,
                    "    pending until a restart: {} (`apply --restart` restarts it)",
                    c.pending.join(", ")
                );
            }
            if let Some(m) = &c.message {
                let _ = writeln!(s, "    {m}");
            }
        }
        s
    }
}

/// Runs `provision status`.
pub fn run(a: &FileArgs, g: &GlobalArgs) -> Result<u8> {
    let member = super::member_opener(g);
    let report = collect_with(a, &|h| open_host(g, h), &member)?;
    if json(g) {
        print_json(&report)?;
    } else {
        crate::out!("{}", report.text());
    }
    let unreadable = report.containers.iter().any(|c| c.state == State::Unknown);
    Ok(if unreadable { 1 } else { 0 })
}

/// Reads the status of every selected entry through the transports `open` gives (cluster
/// members with root's key, as on a node).
pub fn collect(a: &FileArgs, open: &Opener<'_>) -> Result<StatusReport> {
    let base = crate::transport::ssh::SshOptions::default();
    collect_with(a, open, &|m, via| {
        crate::cluster::reach::open_member(m, via, &base, true)
    })
}

/// [`collect`] with the opener of other cluster members.
pub fn collect_with(
    a: &FileArgs,
    open: &Opener<'_>,
    member: &crate::cluster::route::MemberOpener<'_>,
) -> Result<StatusReport> {
    let lab = load_lab(a)?;
    let entries = lab.select(&a.only)?;
    let routed = crate::cluster::route::route(&entries, open, member, &Options::default());
    let entries = routed.refs();
    let targets = Targets::open(&entries, &|h| routed.open(h), &|t| {
        crate::apply::Ctx::new(t, Options::default())
    });
    require_pve(&targets)?;
    let never = AtomicBool::new(false);
    let idx: Vec<usize> = (0..entries.len()).collect();
    let containers = batch::pool(&idx, WORKERS, &never, |_, &i| {
        entry_status(&targets, i, entries[i])
    })
    .into_iter()
    .zip(&entries)
    .map(|(s, e)| s.unwrap_or_else(|| EntryStatus::new(e, State::Unknown)))
    .collect();
    Ok(StatusReport {
        file: lab.shown.clone(),
        containers,
        notes: super::apply::node_notes(&targets),
    })
}

fn entry_status(targets: &Targets, i: usize, e: &Entry) -> EntryStatus {
    let t = match targets.for_entry(i) {
        Ok(t) => t,
        Err(m) => {
            let mut s = EntryStatus::new(e, State::Unknown);
            s.message = Some(m.to_string());
            return s;
        }
    };
    let opts = Options::default();
    let g = match plan::find_existing(&e.request, &t.facts.guests, &opts) {
        Ok(Some(g)) => g,
        Ok(None) => return EntryStatus::new(e, State::Missing),
        Err(err) => {
            let mut s = EntryStatus::new(e, State::Conflict);
            s.message = Some(format!("{err:#}"));
            return s;
        }
    };
    let mut s = EntryStatus::new(e, State::Stopped);
    s.vmid = Some(g.vmid);
    s.node = Some(g.node.clone());
    s.status = Some(g.status.clone());
    if let Some(want) = &e.node
        && &g.node != want
    {
        s.state = State::Conflict;
        s.message = Some(format!(
            "it is on node {} but the lab file puts it on {want}",
            g.node
        ));
        return s;
    }
    let node: &dyn Transport = t.node();
    let cfg = match facts::gather_ct(node, &g.node, g.vmid) {
        Ok(c) => c,
        Err(err) => {
            s.state = State::Unknown;
            s.message = Some(format!("{err:#}"));
            return s;
        }
    };
    let np = match plan::plan_node(&plan::NodeInput {
        req: &e.request,
        facts: &t.facts,
        existing: Some(g),
        ct: Some(&cfg),
        templates: None,
        proposed_vmid: g.vmid,
        opts: &opts,
    }) {
        Ok(np) => np,
        Err(err) => {
            s.state = State::Conflict;
            s.message = Some(format!("{err:#}"));
            return s;
        }
    };
    for step in &np.steps {
        match step {
            Step::Set { why, .. } => s.differences.extend(why.iter().cloned()),
            Step::Resize { size } => s.differences.push(format!("rootfs: grows to {size}")),
            _ => {}
        }
    }
    s.pending = np.pending.clone();
    let running = g.status == "running";
    s.state = match (s.differences.is_empty() && s.pending.is_empty(), running) {
        (false, _) => State::Differs,
        (true, true) => State::Running,
        (true, false) => State::Stopped,
    };
    s.expected_driver = np.driver.map(|d| d.as_str().to_string());
    if running {
        // The container's addresses, the way the node reports them (status and inventory).
        match crate::addresses::gather(node, &g.node, g.vmid) {
            Ok(a) => (s.ipv4, s.ipv6) = (a.ipv4, a.ipv6),
            Err(err) => s.message = Some(format!("cannot read its addresses: {err:#}")),
        }
    }
    if e.request.profile.docker.install == crate::profile::DockerInstall::None {
        s.docker = DockerState::NotWanted;
    } else if running {
        let ct = Pct {
            node: t.ctx.node.clone(),
            vmid: g.vmid,
            keep_env: t.facts.caps.exec_keep_env,
        };
        match facts::gather_inside(&ct as &dyn Transport, &[]) {
            Ok(f) => {
                s.docker_driver = plan::current_driver(f.daemon_json.as_deref());
                s.docker = if !f.docker_installed {
                    DockerState::NotInstalled
                } else if !f.docker_active {
                    DockerState::Inactive
                } else if s.docker_driver.is_some() && s.docker_driver == s.expected_driver {
                    DockerState::Ok
                } else {
                    DockerState::WrongDriver
                };
            }
            Err(err) => {
                s.message = Some(format!("cannot read inside: {err:#}"));
            }
        }
    }
    s
}
