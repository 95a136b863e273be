//! What exists now: on the node (guests, storages, templates) and inside a container.
//!
//! Gathering is a handful of read-only commands chosen so that a no-op re-run stays cheap: one
//! `pvesh get /cluster/resources`, `/cluster/status` and `/nodes/NODE/storage` per run (plus
//! `cat /sys/module/zfs/version` where a ZFS pool exists), one `pending` read and one
//! in-container facts script per container. Parsers are separate pure functions, tested on
//! recorded output. Nothing here changes anything.

use crate::cmd::Cmd;
use crate::transport::Transport;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde::Serialize;
use std::collections::BTreeMap;

/// A guest as `/cluster/resources` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Guest {
    /// VMID.
    pub vmid: u32,
    /// Name (hostname for containers).
    pub name: String,
    /// Node it lives on.
    pub node: String,
    /// running, stopped...
    pub status: String,
    /// Tags, split.
    pub tags: Vec<String>,
    /// lxc or qemu.
    pub kind: String,
}

/// A storage of the node, as `pvesh get /nodes/NODE/storage` (or `pvesm status`) shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Storage {
    /// Storage ID.
    pub name: String,
    /// Type: dir, zfspool, lvmthin...
    pub kind: String,
    /// active / inactive / disabled.
    pub status: String,
    /// Available KiB.
    pub avail_kib: u64,
    /// `rootdir` when it may hold container roots, `-rootdir` when not, empty when unknown.
    pub content: Vec<String>,
}

/// Facts about the node, read once per run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeFacts {
    /// False when no PVE tools answer here (the plan is for an empty node).
    pub pve: bool,
    /// Guests in the cluster.
    pub guests: Vec<Guest>,
    /// Storages on this node.
    pub storages: Vec<Storage>,
    /// Host ZFS version (`/sys/module/zfs/version`), when ZFS is loaded.
    pub zfs_version: Option<String>,
    /// The name of the node pct runs on (`pvesh get /cluster/status`), when it can be told.
    pub local_node: Option<String>,
    /// Package versions (`pveversion -v`); empty when they could not be read.
    pub versions: crate::release::PveVersions,
    /// What the node's release can do, derived from `versions`.
    pub caps: crate::release::Caps,
    /// MTU of the bridges profiles with `network.mtu` use (`/sys/class/net/BRIDGE/mtu`, as
    /// PVE reads it), read when such a profile is planned.
    pub bridge_mtu: BTreeMap<String, u32>,
    /// For devices on a node without devN: the device nodes and the container's raw `lxc.*`
    /// lines, read when such a profile is planned.
    pub raw_lxc: Option<RawLxcFacts>,
}

/// What the raw `lxc.*` way of passing devices reads on the node.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RawLxcFacts {
    /// Device path -> (kind, major hex, minor hex) as the node's `stat` printed them.
    pub nodes: BTreeMap<String, (String, String, String)>,
    /// The container's raw `lxc.*` lines as `pct config` prints them (empty for a new one).
    pub lines: Vec<(String, String)>,
}

/// The node script that reads device numbers.
pub const DEV_NUMBERS_SCRIPT: &str = include_str!("scripts/node-dev-numbers.sh");

/// Reads the numbers of `paths` on the node and the raw `lxc.*` lines of container `vmid`.
pub fn gather_raw_lxc(
    node: &dyn Transport,
    paths: &[&str],
    vmid: Option<u32>,
) -> Result<RawLxcFacts> {
    let mut f = RawLxcFacts::default();
    let out = crate::transport::run_ok(
        node,
        &Cmd::new("sh")
            .arg("-c")
            .arg(DEV_NUMBERS_SCRIPT)
            .arg("provision")
            .args(paths.iter().map(ToString::to_string)),
        None,
    )?;
    for l in out.stdout_text().lines() {
        let mut w = l.splitn(5, ' ');
        if let (Some("dev"), Some(k), Some(a), Some(b), Some(p)) =
            (w.next(), w.next(), w.next(), w.next(), w.next())
        {
            f.nodes
                .insert(p.to_string(), (k.to_string(), a.to_string(), b.to_string()));
        }
    }
    if let Some(id) = vmid {
        let out = crate::transport::run_ok(
            node,
            &Cmd::new("pct").args(["config".to_string(), id.to_string()]),
            None,
        )?;
        f.lines = crate::mounts::rawlxc::parse_pct_config(&out.stdout_text());
    }
    Ok(f)
}

/// Template facts for one template storage, read only when a container must be created.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TemplateFacts {
    /// Volume ids present on the storage (`pveam list`).
    pub present: Vec<String>,
    /// Names offered by `pveam available --section system`.
    pub available: Vec<String>,
}

/// One existing container's configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CtConfig {
    /// Current values.
    pub current: BTreeMap<String, String>,
    /// Pending new values (apply at next start).
    pub pending: BTreeMap<String, String>,
    /// Keys pending deletion.
    pub pending_delete: Vec<String>,
}

impl CtConfig {
    /// The value with pending changes applied (what PVE's `pct config` shows).
    pub fn effective(&self, key: &str) -> Option<&str> {
        if self.pending_delete.iter().any(|k| k == key) {
            return None;
        }
        self.pending
            .get(key)
            .or_else(|| self.current.get(key))
            .map(String::as_str)
    }
    /// True when changes wait for a restart.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.pending_delete.is_empty()
    }
}

/// What the in-container facts script reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InsideFacts {
    /// os-release ID.
    pub os_id: String,
    /// os-release VERSION_ID.
    pub os_version: String,
    /// dockerd is installed.
    pub docker_installed: bool,
    /// The docker service is active.
    pub docker_active: bool,
    /// The storage driver the running dockerd uses (`docker info`), when active.
    pub docker_driver: Option<String>,
    /// SHA-256 of /usr/local/bin/fuse-overlayfs, when present.
    pub fuse_overlayfs_sha256: Option<String>,
    /// /usr/local/bin/fuse-overlayfs is a symlink to the package's binary.
    pub fuse_overlayfs_link: Option<String>,
    /// Images and containers the running dockerd has (`docker info`), when it answered.
    pub docker_objects: Option<u64>,
    /// Images stored per storage driver under /var/lib/docker/image (read even when Docker is
    /// stopped): driver -> count.
    pub docker_stored: BTreeMap<String, u64>,
    /// Content of /etc/docker/daemon.json, when present (lossy when it is not UTF-8: see
    /// `daemon_json_not_utf8`; such a file is never merged).
    pub daemon_json: Option<String>,
    /// /etc/docker/daemon.json exists but is not UTF-8 text.
    pub daemon_json_not_utf8: bool,
    /// Mode, owner and group of /etc/docker/daemon.json, kept when it is rewritten.
    pub daemon_json_owner: Option<FileOwner>,
    /// State the tool recorded inside (`/var/lib/provision/state`).
    pub state: BTreeMap<String, String>,
    /// busybox-static is installed (its /bin/busybox runs alone in the local probe image; a
    /// dynamically linked busybox would not).
    pub busybox: bool,
    /// libfuse3 is installed (a node-built fuse-overlayfs needs it).
    pub libfuse3: bool,
    /// The `render` group's ID as the container numbers it (a GPU's render node needs it).
    pub render_gid: Option<u32>,
    /// SHA-256 of files asked about, by path.
    pub files: BTreeMap<String, String>,
    /// Permission bits of files asked about, by path.
    pub file_modes: BTreeMap<String, u32>,
    /// Global-scope addresses as `DEV ADDRESS/PREFIX` (untrusted; see
    /// [`crate::addresses::container_addresses`]).
    pub addresses: Vec<String>,
}

/// Permission bits, owner and group of a file inside a container (`stat -c %a:%u:%g`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FileOwner {
    /// Permission bits (at most 0o7777).
    pub mode: u32,
    /// Owner's uid.
    pub uid: u32,
    /// Group's gid.
    pub gid: u32,
}

impl FileOwner {
    /// Parses `MODE:UID:GID` (octal mode, decimal ids), checked: None for anything else.
    pub fn parse(s: &str) -> Option<FileOwner> {
        let mut it = s.trim().split(':');
        let (m, u, g) = (it.next()?, it.next()?, it.next()?);
        let digits = |x: &str, radix: u32| {
            (!x.is_empty() && x.len() <= 10 && x.chars().all(|c| c.is_digit(radix)))
                .then(|| u32::from_str_radix(x, radix).ok())
                .flatten()
        };
        let mode = digits(m, 8).filter(|m| *m <= 0o7777)?;
        (it.next().is_none()).then_some(FileOwner {
            mode,
            uid: digits(u, 10)?,
            gid: digits(g, 10)?,
        })
    }
}

impl InsideFacts {
    /// What a freshly created container from a standard template looks like (for dry runs).
    pub fn fresh() -> Self {
        InsideFacts::default()
    }
}

/// Splits a PVE tag list (`a;b`, `a,b`, `a b`).
pub fn split_tags(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .split([';', ',', ' '])
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A VMID as a node printed it (a JSON number or string, or a line of text), checked: only
/// decimal digits, within PVE's range 100..=999999999. Never wraps (`4294967396` is not
/// `100`), never defaults (a missing or odd VMID is an error, not 0). The one conversion for
/// every VMID read from a node.
pub fn node_vmid(v: &serde_json::Value) -> Result<u32, String> {
    match v {
        serde_json::Value::Number(n) => vmid_digits(&n.to_string()),
        serde_json::Value::String(s) => vmid_digits(s.trim()),
        other => Err(format!("{} is not a VMID", shown_json(other))),
    }
}

/// [`node_vmid`] for text (`pvesh get /cluster/nextid` prints `"123"` or `123`).
pub fn node_vmid_text(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let t = t
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(t);
    vmid_digits(t)
}

fn vmid_digits(t: &str) -> Result<u32, String> {
    let shown =
        || crate::error::escape_unsafe(&t.chars().take(40).collect::<String>()).into_owned();
    if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{:?} is not a VMID", shown()));
    }
    let n: u64 = t
        .parse()
        .map_err(|_| format!("{:?} is not a VMID", shown()))?;
    let n = i64::try_from(n).map_err(|_| format!("{:?} is not a VMID", shown()))?;
    crate::validate::vmid(n)?;
    u32::try_from(n).map_err(|_| format!("VMID {n} does not fit"))
}

fn shown_json(v: &serde_json::Value) -> String {
    let t = v.to_string();
    let t: String = t.chars().take(40).collect();
    crate::error::escape_unsafe(&t).into_owned()
}

/// Parses `pvesh get /cluster/resources --type vm --output-format json`.
pub fn parse_resources(json: &str) -> Result<Vec<Guest>> {
    let v: serde_json::Value =
        serde_json::from_str(json).context("parsing /cluster/resources JSON")?;
    let arr = v
        .as_array()
        .context("/cluster/resources is not a JSON array")?;
    let mut out = Vec::new();
    for g in arr {
        let kind = g["type"].as_str().unwrap_or("").to_string();
        if kind != "lxc" && kind != "qemu" {
            continue;
        }
        // A guest whose VMID cannot be read is not skipped (something would then be created
        // or destroyed next to what it really is): the whole list is refused.
        let vmid = node_vmid(&g["vmid"]).map_err(|m| {
            anyhow::anyhow!("/cluster/resources lists a {kind} guest whose VMID is wrong: {m}")
        })?;
        out.push(Guest {
            vmid,
            name: g["name"].as_str().unwrap_or("").to_string(),
            node: g["node"].as_str().unwrap_or("").to_string(),
            status: g["status"].as_str().unwrap_or("").to_string(),
            tags: split_tags(g["tags"].as_str().unwrap_or("")),
            kind,
        });
    }
    out.sort_by_key(|g| g.vmid);
    Ok(out)
}

/// Parses `pvesm status` (columns `Name Type Status Total Used Available %`).
pub fn parse_pvesm_status(text: &str) -> Vec<Storage> {
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("Name"))
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6).then(|| Storage {
                name: f[0].to_string(),
                kind: f[1].to_string(),
                status: f[2].to_string(),
                avail_kib: f[5].parse().unwrap_or(0),
                content: Vec::new(),
            })
        })
        .collect()
}

/// Parses `pveam list STORAGE` (`NAME SIZE`, NAME is the volume id).
pub fn parse_pveam_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.contains(":vztmpl/"))
        .map(String::from)
        .collect()
}

/// Parses `pveam available` (`SECTION NAME [ARCH]`): field 2.
pub fn parse_pveam_available(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|n| n.contains(".tar."))
        .map(String::from)
        .collect()
}

/// Parses `pvesh get /nodes/N/lxc/V/pending --output-format json`.
pub fn parse_pending(json: &str) -> Result<CtConfig> {
    let v: serde_json::Value = serde_json::from_str(json).context("parsing pending JSON")?;
    let arr = v.as_array().context("pending is not a JSON array")?;
    let mut c = CtConfig::default();
    let text = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    };
    for e in arr {
        let Some(key) = e["key"].as_str() else {
            continue;
        };
        if key == "digest" {
            continue;
        }
        if let Some(v) = text(&e["value"]) {
            c.current.insert(key.to_string(), v);
        }
        if let Some(p) = text(&e["pending"]) {
            c.pending.insert(key.to_string(), p);
        }
        if e["delete"].as_i64().unwrap_or(0) > 0 || e["delete"].as_bool() == Some(true) {
            c.pending_delete.push(key.to_string());
        }
    }
    Ok(c)
}

/// Parses `pct config` output (`key: value` lines; stops at the first section).
pub fn parse_pct_config(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        if l.starts_with('[') {
            break;
        }
        if let Some((k, v)) = l.split_once(": ") {
            m.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    m
}

/// Parses a PVE property string (`a=1,b=2`, a bare first value under `default_key`).
pub fn parse_property_string(s: &str, default_key: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((k, v)) => m.insert(k.to_string(), v.to_string()),
            None => m.insert(default_key.to_string(), part.to_string()),
        };
    }
    m
}

/// The in-container facts script. It first waits (bounded) until init is up and the network
/// has a default route, then prints `key=value` lines. One `pct exec` per container.
pub const INSIDE_FACTS_SCRIPT: &str = include_str!("scripts/inside-facts.sh");

/// The command that runs [`INSIDE_FACTS_SCRIPT`], reporting the SHA-256 of `files` too.
pub fn inside_facts_cmd(files: &[String]) -> Cmd {
    Cmd::new("sh")
        .args(["-c", INSIDE_FACTS_SCRIPT, "provision-facts"])
        .args(files.iter().cloned())
}

/// Parses what [`INSIDE_FACTS_SCRIPT`] prints.
pub fn parse_inside_facts(text: &str) -> Result<InsideFacts> {
    let mut f = InsideFacts::default();
    for l in text.lines() {
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        match k {
            "os_id" => f.os_id = v.to_string(),
            "os_version" => f.os_version = v.to_string(),
            "docker_installed" => f.docker_installed = v == "1",
            "docker_active" => f.docker_active = v == "1",
            "docker_driver" => f.docker_driver = Some(v.to_string()),
            "docker_objects" => f.docker_objects = count_sum(v),
            "docker_stored" => {
                if let Some((d, n)) = v.split_once(' ')
                    && let Some(n) = count_sum(n)
                {
                    f.docker_stored.insert(d.to_string(), n);
                }
            }
            "daemon_json_stat" => f.daemon_json_owner = FileOwner::parse(v),
            "fuse_overlayfs_sha256" => f.fuse_overlayfs_sha256 = Some(v.to_string()),
            "fuse_overlayfs_link" => f.fuse_overlayfs_link = Some(v.to_string()),
            "busybox" => f.busybox = v == "1",
            "libfuse3" => f.libfuse3 = v == "1",
            "group_render" => f.render_gid = v.parse().ok(),
            "addr" => f.addresses.push(v.to_string()),
            "file" => {
                let mut it = v.splitn(3, ' ');
                if let (Some(sha), Some(mode), Some(path)) = (it.next(), it.next(), it.next()) {
                    f.files.insert(path.to_string(), sha.to_string());
                    if let Ok(m) = u32::from_str_radix(mode, 8) {
                        f.file_modes.insert(path.to_string(), m);
                    }
                }
            }
            "daemon_json_b64" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .context("daemon.json facts are not base64")?;
                f.daemon_json_not_utf8 = std::str::from_utf8(&bytes).is_err();
                f.daemon_json = Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            _ => {
                if let Some(s) = k.strip_prefix("state_") {
                    f.state.insert(s.to_string(), v.to_string());
                }
            }
        }
    }
    if f.os_id.is_empty() {
        bail!("the container's facts script printed nothing usable: {text:?}");
    }
    Ok(f)
}

/// The sum of whitespace-separated counts (`3 1`), checked; None when any is not a count.
fn count_sum(s: &str) -> Option<u64> {
    s.split_whitespace().try_fold(0u64, |acc, w| {
        (w.len() <= 12 && w.bytes().all(|b| b.is_ascii_digit()))
            .then(|| w.parse::<u64>().ok())
            .flatten()
            .and_then(|n| acc.checked_add(n))
    })
}

/// True when an output means "this program does not exist here".
fn not_found(res: &Result<crate::cmd::Output>) -> bool {
    match res {
        Err(e) => e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
        }),
        Ok(o) => o.status == 127,
    }
}

/// `pvesh get /cluster/resources --type vm --output-format json`: every guest of the cluster.
fn resources_cmd() -> Cmd {
    Cmd::new("pvesh").args([
        "get",
        "/cluster/resources",
        "--type",
        "vm",
        "--output-format",
        "json",
    ])
}

/// Reads the guest list only.
pub fn gather_guests(node: &dyn Transport) -> Result<Vec<Guest>> {
    let out = crate::transport::run_ok(node, &resources_cmd(), None)?;
    parse_resources(&out.stdout_text())
}

/// The local node's name in `pvesh get /cluster/status` JSON.
pub fn local_node_name(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.as_array()?
        .iter()
        .find(|n| n["type"] == "node" && (n["local"] == 1 || n["local"] == true))
        .and_then(|n| n["name"].as_str())
        .map(String::from)
}

/// Reads the node facts: guests, storages, ZFS version. On a machine without PVE tools,
/// returns an empty node with `pve = false`.
pub fn gather_node(node: &dyn Transport) -> Result<NodeFacts> {
    let res = node.run(&resources_cmd(), None);
    if not_found(&res) {
        return Ok(NodeFacts::default());
    }
    let out = res?;
    if !out.success() {
        bail!(
            "{}: reading the guest list failed (pvesh get /cluster/resources, status {}): {}",
            node.label(),
            out.status,
            out.tail(5).trim()
        );
    }
    let guests = parse_resources(&out.stdout_text())?;
    let local_node = node
        .run(
            &Cmd::new("pvesh").args(["get", "/cluster/status", "--output-format", "json"]),
            None,
        )
        .ok()
        .filter(super::cmd::Output::success)
        .and_then(|o| local_node_name(&o.stdout_text()));
    let storages = match &local_node {
        // One call gives type, state, free space and content of every storage of this node.
        Some(name) => {
            let out = crate::transport::run_ok(
                node,
                &Cmd::new("pvesh").args([
                    "get",
                    &format!("/nodes/{name}/storage"),
                    "--output-format",
                    "json",
                ]),
                None,
            )?;
            parse_node_storage(&out.stdout_text())?
        }
        // No cluster status: `pvesm status` has no content column, so it is asked twice.
        None => gather_storages_pvesm(node)?,
    };
    let versions = gather_versions(node)?;
    let zfs_version = if storages.iter().any(|s| s.kind == "zfspool") {
        // The loaded module is what the datasets run on; the package version (pveversion)
        // only where the module does not say (a module not loaded yet, or no /sys here).
        let o = node.run(&Cmd::new("cat").arg("/sys/module/zfs/version"), None)?;
        o.success()
            .then(|| o.stdout_text().trim().to_string())
            .filter(|v| !v.is_empty())
            .or_else(|| versions.zfs.as_ref().map(ToString::to_string))
    } else {
        None
    };
    let caps = crate::release::Caps::from_versions(&versions);
    Ok(NodeFacts {
        pve: true,
        guests,
        storages,
        zfs_version,
        local_node,
        versions,
        caps,
        bridge_mtu: BTreeMap::new(),
        raw_lxc: None,
    })
}

/// The MTU of `bridge` on the node, as PVE's `read_bridge_mtu` reads it; None when the node
/// has no such bridge (pct refuses the container then with its own message).
pub fn gather_bridge_mtu(node: &dyn Transport, bridge: &str) -> Result<Option<u32>> {
    crate::validate::bridge(bridge).map_err(anyhow::Error::msg)?;
    let out = node.run(
        &Cmd::new("cat").arg(format!("/sys/class/net/{bridge}/mtu")),
        None,
    )?;
    Ok(out
        .success()
        .then(|| out.stdout_text().trim().parse::<u32>().ok())
        .flatten())
}

/// `pveversion -v`, once per run: the release and the package versions that decide what the
/// node's pct accepts. A node where it does not answer is taken for the newest known release
/// (the plan says so).
fn gather_versions(node: &dyn Transport) -> Result<crate::release::PveVersions> {
    let res = node.run(&Cmd::new("pveversion").arg("-v"), None);
    if not_found(&res) {
        return Ok(crate::release::PveVersions::default());
    }
    let out = res?;
    if !out.success() {
        tracing::warn!(
            "{}: pveversion -v failed (status {}); assuming the newest known release",
            node.label(),
            out.status
        );
        return Ok(crate::release::PveVersions::default());
    }
    Ok(crate::release::parse_pveversion(&out.stdout_text()))
}

/// The storages through `pvesm status`, twice (the second time only those that may hold
/// container root disks, as `pvesm status` shows no content column).
fn gather_storages_pvesm(node: &dyn Transport) -> Result<Vec<Storage>> {
    let st = crate::transport::run_ok(
        node,
        &Cmd::new("pvesm").args(["status", "--content", "rootdir"]),
        None,
    )?;
    let rootdir: Vec<String> = parse_pvesm_status(&st.stdout_text())
        .into_iter()
        .map(|s| s.name)
        .collect();
    let st = crate::transport::run_ok(node, &Cmd::new("pvesm").arg("status"), None)?;
    let mut storages = parse_pvesm_status(&st.stdout_text());
    for s in &mut storages {
        s.content = if rootdir.contains(&s.name) {
            vec!["rootdir".to_string()]
        } else {
            vec!["-rootdir".to_string()]
        };
    }
    Ok(storages)
}

/// Parses `pvesh get /nodes/NODE/storage --output-format json`: `storage`, `type`, `content`
/// (comma list), `enabled`, `active`, `avail` (bytes).
pub fn parse_node_storage(json: &str) -> Result<Vec<Storage>> {
    let v: serde_json::Value = serde_json::from_str(json)
        .with_context(|| format!("the node's storage list is not JSON: {}", json.trim()))?;
    let list = v
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("the node's storage list is not a JSON array"))?;
    let flag = |x: &serde_json::Value| x == 1 || x == true;
    Ok(list
        .iter()
        .filter_map(|s| {
            let name = s["storage"].as_str()?.to_string();
            let status = if s.get("enabled").is_some_and(|e| !flag(e)) {
                "disabled"
            } else if flag(&s["active"]) {
                "active"
            } else {
                "inactive"
            };
            let content = s["content"].as_str().unwrap_or("");
            let rootdir = content.split(',').any(|c| c.trim() == "rootdir");
            Some(Storage {
                name,
                kind: s["type"].as_str().unwrap_or("").to_string(),
                status: status.to_string(),
                avail_kib: s["avail"].as_u64().unwrap_or(0) / 1024,
                content: vec![if rootdir { "rootdir" } else { "-rootdir" }.to_string()],
            })
        })
        .collect())
}

/// Reads what templates a storage has and which the index offers.
pub fn gather_templates(node: &dyn Transport, storage: &str) -> Result<TemplateFacts> {
    let list = crate::transport::run_ok(node, &Cmd::new("pveam").args(["list", storage]), None)?;
    let avail = crate::transport::run_ok(
        node,
        &Cmd::new("pveam").args(["available", "--section", "system"]),
        None,
    )?;
    Ok(TemplateFacts {
        present: parse_pveam_list(&list.stdout_text()),
        available: parse_pveam_available(&avail.stdout_text()),
    })
}

/// Reads one container's configuration with pending changes.
pub fn gather_ct(node: &dyn Transport, node_name: &str, vmid: u32) -> Result<CtConfig> {
    let path = format!("/nodes/{node_name}/lxc/{vmid}/pending");
    let out = crate::transport::run_ok(
        node,
        &Cmd::new("pvesh").args(["get", &path, "--output-format", "json"]),
        None,
    )?;
    parse_pending(&out.stdout_text())
}

/// Waits for the container to be ready and reads the facts inside it.
pub fn gather_inside(ct: &dyn Transport, files: &[String]) -> Result<InsideFacts> {
    let out = ct.run(&inside_facts_cmd(files), None)?;
    if out.status == 75 {
        bail!("{}: {}", ct.label(), out.tail(3).trim());
    }
    if !out.success() {
        bail!(
            "{}: reading facts inside the container failed (status {}): {}",
            ct.label(),
            out.status,
            out.tail(10).trim()
        );
    }
    parse_inside_facts(&out.stdout_text())
}

#[cfg(test)]
mod tests {

    #[test]
    fn node_storage_json_gives_type_state_space_and_rootdir() {
        let j = r#"[{"storage":"local","type":"dir","content":"iso,vztmpl,backup","active":1,"enabled":1,"avail":2048000},
                    {"storage":"local-zfs","type":"zfspool","content":"images,rootdir","active":1,"enabled":1,"avail":10240},
                    {"storage":"nas","type":"nfs","content":"rootdir","active":0,"enabled":1},
                    {"storage":"old","type":"dir","content":"rootdir","active":0,"enabled":0}]"#;
        let s = parse_node_storage(j).unwrap();
        let view: Vec<(&str, &str, &str, u64, &str)> = s
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.kind.as_str(),
                    s.status.as_str(),
                    s.avail_kib,
                    s.content[0].as_str(),
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("local", "dir", "active", 2000, "-rootdir"),
                ("local-zfs", "zfspool", "active", 10, "rootdir"),
                ("nas", "nfs", "inactive", 0, "rootdir"),
                ("old", "dir", "disabled", 0, "rootdir"),
            ]
        );
        assert!(parse_node_storage("not json").is_err());
    }
    use super::*;

    #[test]
    fn vmids_from_a_node_are_checked_never_wrapped() {
        use serde_json::json;
        assert_eq!(node_vmid(&json!(100)), Ok(100));
        assert_eq!(node_vmid(&json!("999999999")), Ok(999_999_999));
        assert_eq!(node_vmid_text("\"123\"\n"), Ok(123));
        for bad in [
            json!(4_294_967_396_u64),
            json!(0),
            json!(99),
            json!(4_294_967_295_u64),
            json!(-1),
            json!("100abc"),
            json!(100.5),
            json!("1e3"),
            json!(" "),
            json!(null),
            json!([100]),
            json!("\u{1b}]0;x\u{7}"),
        ] {
            let r = node_vmid(&bad);
            assert!(r.is_err(), "{bad} gave {r:?}");
            assert!(!r.unwrap_err().contains('\u{1b}'));
        }
        for bad in [
            "0",
            "99",
            "4294967295",
            "4294967396",
            "-1",
            "100abc",
            "",
            "\"\"",
        ] {
            assert!(node_vmid_text(bad).is_err(), "{bad:?}");
        }
        let wrapped =
            r#"[{"type":"lxc","vmid":4294967396,"name":"web","node":"pve","status":"running"}]"#;
        let e = parse_resources(wrapped).unwrap_err().to_string();
        assert!(e.contains("VMID"), "{e}");
    }

    #[test]
    fn resources_parse_lxc_and_qemu_with_tags() {
        let j = r#"[{"id":"lxc/101","vmid":101,"name":"web","node":"pve1","status":"running","type":"lxc","tags":"provision;docker"},
                    {"id":"qemu/100","vmid":"100","name":"vm","node":"pve1","status":"stopped","type":"qemu"},
                    {"id":"storage/pve1/local","type":"storage"}]"#;
        let g = parse_resources(j).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].vmid, 100);
        assert_eq!(g[1].tags, ["docker", "provision"]);
    }

    #[test]
    fn pvesm_status_columns() {
        let t = "Name             Type     Status           Total            Used       Available        %\n\
                 local             dir     active        98497780        12345678        81122334   12.53%\n\
                 local-zfs     zfspool     active       400000000         1000000       399000000    0.25%\n";
        let s = parse_pvesm_status(t);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].kind, "zfspool");
        assert_eq!(s[0].avail_kib, 81122334);
    }

    #[test]
    fn pveam_outputs() {
        let list = "NAME                                                         SIZE\nlocal:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst        120.27MB\n";
        assert_eq!(
            parse_pveam_list(list),
            ["local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst"]
        );
        let av = "system          debian-12-standard_12.12-1_amd64.tar.zst\nsystem          ubuntu-24.04-standard_24.04-2_amd64.tar.zst   amd64\nturnkeylinux    x.tar.gz\n";
        assert_eq!(parse_pveam_available(av).len(), 3);
    }

    #[test]
    fn pending_keeps_current_and_pending_apart() {
        let j = r#"[{"key":"features","value":"nesting=1","pending":"fuse=1,nesting=1"},
                    {"key":"memory","value":2048},{"key":"swap","value":512,"delete":1},{"key":"digest","value":"x"}]"#;
        let c = parse_pending(j).unwrap();
        assert_eq!(c.effective("features"), Some("fuse=1,nesting=1"));
        assert_eq!(c.current["features"], "nesting=1");
        assert_eq!(c.effective("memory"), Some("2048"));
        assert_eq!(c.effective("swap"), None);
        assert!(c.has_pending());
    }

    #[test]
    fn property_strings_and_config() {
        let p = parse_property_string("local-lvm:vm-100-disk-0,size=8G", "volume");
        assert_eq!(p["volume"], "local-lvm:vm-100-disk-0");
        assert_eq!(p["size"], "8G");
        let c = parse_pct_config("arch: amd64\nhostname: web\n\n[pve:pending]\nmemory: 1\n");
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn inside_facts_parse() {
        let t = "os_id=debian\nos_version=12\ndocker_installed=1\nfuse_overlayfs_sha256=ab\ndaemon_json_b64=eyJhIjoxfQ==\nstate_commands=123\n";
        let f = parse_inside_facts(t).unwrap();
        assert!(f.docker_installed && !f.docker_active);
        assert_eq!(f.daemon_json.as_deref(), Some("{\"a\":1}"));
        assert_eq!(f.state["commands"], "123");
        assert!(parse_inside_facts("").is_err());
    }

    #[test]
    fn local_node_name_is_read_from_cluster_status() {
        let j = r#"[{"id":"cluster","name":"lab","type":"cluster","nodes":2},
                    {"id":"node/pve1","name":"pve1","type":"node","local":0,"online":1},
                    {"id":"node/pve2","name":"pve2","type":"node","local":1,"online":1}]"#;
        assert_eq!(local_node_name(j).as_deref(), Some("pve2"));
        assert_eq!(local_node_name("[]"), None);
        assert_eq!(local_node_name("not json"), None);
    }
}
