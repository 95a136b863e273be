//! A fake PVE node in memory, for unit and orchestration tests (test support, not product: the
//! benchmarks include this file with `#[path]`).
//!
//! It answers the node commands the tool uses (pvesh, pvesm, pveam, pct) from a small model of
//! a node: guests with config and pending changes, storages, templates, node files, and inside
//! each container a file map and Docker's state. In-container scripts are recognised by the
//! constants in `provision::plan`, so the fake moves when the tool's scripts move. Every call is
//! recorded (argv, stdin length, whether it changes anything), and faults can be injected: make
//! the k-th changing command fail, or any command whose argv contains a string.
//!
//! It is deliberately not a validator of PVE syntax: the LXC lab node (lab/) is the strict one.

#![allow(dead_code)]

use anyhow::{Result, bail};
use provision::cmd::{Cmd, Output};
use provision::plan;
use provision::transport::{LockGuard, Transport};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One recorded call.
#[derive(Clone, Debug)]
pub struct Call {
    /// The real argv (the fake sees what a node would see).
    pub argv: Vec<String>,
    /// Bytes given on stdin.
    pub stdin: Vec<u8>,
    /// Whether the call changes state.
    pub changing: bool,
    /// Exit status returned.
    pub status: i32,
}

/// A container in the model.
#[derive(Clone, Debug, Default)]
pub struct FakeCt {
    /// Current config.
    pub config: BTreeMap<String, String>,
    /// Pending config.
    pub pending: BTreeMap<String, String>,
    /// Running.
    pub running: bool,
    /// Files inside: path -> (bytes, mode).
    pub files: BTreeMap<String, (Vec<u8>, u32)>,
    /// Symlinks inside: path -> target.
    pub links: BTreeMap<String, String>,
    /// dockerd installed.
    pub docker_installed: bool,
    /// docker service active.
    pub docker_active: bool,
    /// Driver dockerd runs with (from daemon.json at its last start).
    pub docker_driver: Option<String>,
    /// Images and containers the running dockerd has (`docker info`).
    pub docker_objects: u64,
    /// Images stored per driver under /var/lib/docker/image.
    pub docker_stored: BTreeMap<String, u64>,
    /// Owner and group of files inside, when not root (path -> "UID:GID").
    pub owners: BTreeMap<String, String>,
    /// Installed packages.
    pub packages: BTreeSet<String>,
    /// Commands run inside (user commands).
    pub commands_run: Vec<Vec<String>>,
    /// chpasswd input received (the test inspects it; never logged).
    pub passwords: Vec<Vec<u8>>,
    /// /dev/fuse usable inside.
    pub fuse_usable: bool,
    /// The container has no `render` group (its facts report none).
    pub no_render_group: bool,
    /// The OS of the template.
    pub os: (String, String),
    /// Raw `lxc.*` lines of the config (written by the raw-lxc node script).
    pub raw: Vec<(String, String)>,
    /// The raw lines LXC got at the last start (PVE passes them only then).
    pub raw_started: Vec<(String, String)>,
}

/// The node model.
#[derive(Debug)]
pub struct FakeState {
    /// Node name.
    pub node: String,
    /// Containers by VMID.
    pub cts: BTreeMap<u32, FakeCt>,
    /// VMIDs used by VMs.
    pub vms: BTreeSet<u32>,
    /// Storages: (name, type, content).
    pub storages: Vec<(String, String, Vec<String>)>,
    /// Templates present (volids).
    pub templates: BTreeSet<String>,
    /// Template names in the index (after `pveam update`).
    pub index: Vec<String>,
    /// Index as it is before any update.
    pub index_updated: bool,
    /// Files on the node.
    pub node_files: BTreeMap<String, Vec<u8>>,
    /// Host ZFS version.
    pub zfs_version: Option<String>,
    /// Every call.
    pub calls: Vec<Call>,
    /// Fail the k-th changing command (1-based), once.
    pub fail_changing_at: Option<usize>,
    /// Fail every command whose joined argv contains this.
    pub fail_matching: Vec<String>,
    /// Count of changing commands so far.
    pub changing_count: usize,
    /// Locks held.
    pub locks: BTreeSet<String>,
    /// Pretend another creator takes this VMID right before our create (race test).
    pub steal_vmid_once: Option<u32>,
    /// Guests created in the model, in order (for concurrency assertions).
    pub created_order: Vec<u32>,
    /// Make `pveam update` fail the way it does on a node: this message, and exit status 0.
    pub pveam_update_fails: bool,
    /// What `pveam version -v` prints (a PVE 9.1 node by default); None: the command does not
    /// exist here (exit 127).
    pub pveversion: Option<String>,
    /// `pct push` to a destination containing this fails the way its task does on a node:
    /// nothing written, exit status 0, and the task's error on stderr when `push_task_error`
    /// is true (silent otherwise).
    pub push_task_fails: Option<String>,
    /// See `push_task_fails`.
    pub push_task_error: bool,
    /// `pct resize` fails in its task (exit 0, the storage's error on stderr, nothing changed).
    pub resize_task_fails: bool,
    /// Bridges and their MTU (`vmbr0` 1500).
    pub bridges: BTreeMap<String, u32>,
    /// Directories on the node (bind mount sources) and their owner "UID:GID".
    pub node_dirs: BTreeMap<String, String>,
    /// Device nodes on the node as `stat` prints them: path -> (kind, major hex, minor hex).
    pub dev_nodes: BTreeMap<String, (String, String, String)>,
}

/// `pveversion -v` of a PVE 9.1 node.
pub const PVE91_VERSIONS: &str = "proxmox-ve: 9.1.0 (running kernel: 6.17.2-1-pve)\npve-manager: 9.1.1 (running version: 9.1.1/42db4a6cf33dac83)\npve-container: 6.0.18\nlxc-pve: 6.0.5-3\nlibpve-storage-perl: 9.1.0\n";

/// `pveversion -v` of a PVE node at pve-container `container`, with the pve-manager of the
/// release that shipped it (no ZFS line: the fake's `zfs_version` decides).
pub fn versions_with_container(container: &str) -> String {
    let c = provision::release::Version::parse(container);
    let at_least = |v: &str| {
        c.as_ref().is_some_and(|c| {
            *c >= provision::release::Version::parse(v).unwrap_or_else(|| unreachable!())
        })
    };
    let manager = if !at_least("5.0.0") {
        "7.4-3"
    } else if !at_least("5.0.8") {
        "8.0.3"
    } else if !at_least("5.0.11") {
        "8.1.3"
    } else if !at_least("5.2.2") {
        "8.2.2"
    } else if !at_least("6.0.0") {
        "8.4.0"
    } else {
        "9.1.1"
    };
    format!(
        "proxmox-ve: {manager} (running kernel: 6.5.11-4-pve)\npve-manager: {manager} (running version: {manager}/b46aac3b42da5d15)\npve-container: {container}\nlxc-pve: 5.0.2-4\nlibpve-storage-perl: 8.0.5\n"
    )
}

/// The fake node.
pub struct FakeNode {
    /// The model and the condition variable that lock waiters sleep on.
    shared: Arc<(Mutex<FakeState>, Condvar)>,
}

/// Template names the fake's index offers.
pub const FAKE_INDEX: &[&str] = &[
    "debian-12-standard_12.12-1_amd64.tar.zst",
    "ubuntu-22.04-standard_22.04-1_amd64.tar.zst",
    "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
];

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

impl Default for FakeNode {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeNode {
    /// A node with `local` (dir, vztmpl) and `local-lvm` (lvmthin, rootdir), an updated index,
    /// and the seed's fuse-overlayfs binary at /usr/local/bin/fuse-overlayfs.
    pub fn new() -> Self {
        let mut node_files = BTreeMap::new();
        node_files.insert(
            plan::FUSE_DEST.to_string(),
            b"\x7fELF fake fuse-overlayfs".to_vec(),
        );
        FakeNode {
            shared: Arc::new((
                Mutex::new(FakeState {
                    node: "pve1".into(),
                    cts: BTreeMap::new(),
                    vms: BTreeSet::new(),
                    storages: vec![
                        (
                            "local".into(),
                            "dir".into(),
                            vec!["vztmpl".into(), "iso".into(), "backup".into()],
                        ),
                        (
                            "local-lvm".into(),
                            "lvmthin".into(),
                            vec!["rootdir".into(), "images".into()],
                        ),
                        (
                            "local-zfs".into(),
                            "zfspool".into(),
                            vec!["rootdir".into(), "images".into()],
                        ),
                    ],
                    templates: BTreeSet::new(),
                    index: FAKE_INDEX.iter().map(ToString::to_string).collect(),
                    index_updated: true,
                    node_files,
                    zfs_version: None,
                    calls: Vec::new(),
                    fail_changing_at: None,
                    fail_matching: Vec::new(),
                    changing_count: 0,
                    locks: BTreeSet::new(),
                    steal_vmid_once: None,
                    created_order: Vec::new(),
                    pveam_update_fails: false,
                    pveversion: Some(PVE91_VERSIONS.to_string()),
                    push_task_fails: None,
                    push_task_error: true,
                    resize_task_fails: false,
                    bridges: BTreeMap::from([("vmbr0".to_string(), 1500)]),
                    node_dirs: BTreeMap::new(),
                    dev_nodes: BTreeMap::from([(
                        "/dev/dri/renderD128".to_string(),
                        ("c".to_string(), "e2".to_string(), "80".to_string()),
                    )]),
                }),
                Condvar::new(),
            )),
        }
    }

    /// Runs `f` on the model.
    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self
            .shared
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The recorded calls.
    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
    }

    /// The changing calls, as joined argv.
    pub fn changing_calls(&self) -> Vec<String> {
        self.calls()
            .iter()
            .filter(|c| c.changing)
            .map(|c| c.argv.join(" "))
            .collect()
    }

    /// Forgets recorded calls.
    pub fn clear_calls(&self) {
        self.with(|s| s.calls.clear());
    }
}

/// True when a call changes state on the node or in a container.
pub fn is_changing(argv: &[String]) -> bool {
    let a: Vec<&str> = argv.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["pvesh", ..] | ["pvesm", ..] | ["sha256sum", ..] | ["cat", ..] | ["pveversion", ..] => {
            false
        }
        ["pveam", "list" | "available", ..] => false,
        ["sh", "-c", script, ..] if *script == plan::NODE_FUSE_CHECK_SCRIPT => false,
        ["sh", "-c", script, ..] if *script == provision::facts::DEV_NUMBERS_SCRIPT => false,
        ["pct", "status" | "config" | "list" | "pending", ..] => false,
        ["pct", "exec", _, rest @ ..] => {
            let inner: Vec<&str> = rest
                .iter()
                .copied()
                .skip_while(|w| *w != "--")
                .skip(1)
                .collect();
            let inner = strip_env(&inner);
            match inner {
                ["sh", "-c", script, ..] => {
                    !(script.contains("os_id=") || script.contains(plan::VERIFY_SCRIPT))
                }
                _ => true,
            }
        }
        _ => true,
    }
}

impl Transport for FakeNode {
    fn label(&self) -> String {
        "node".into()
    }

    fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
        let argv = cmd.argv_real();
        let changing = is_changing(&argv);
        let mut st = self
            .shared
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let joined = argv.join(" ");
        let mut injected = st.fail_matching.iter().any(|m| joined.contains(m.as_str()));
        if changing {
            st.changing_count += 1;
            if st.fail_changing_at == Some(st.changing_count) {
                st.fail_changing_at = None;
                injected = true;
            }
        }
        let out = if injected {
            Output::fail(
                1,
                format!(
                    "injected fault in `{}`\n",
                    argv[..argv.len().min(3)].join(" ")
                ),
            )
        } else {
            st.answer(&argv, stdin)
        };
        st.calls.push(Call {
            argv,
            stdin: stdin.map(<[u8]>::to_vec).unwrap_or_default(),
            changing,
            status: out.status,
        });
        Ok(out)
    }

    fn put(&self, bytes: &[u8], dest: &str, _mode: u32) -> Result<()> {
        let mut st = self
            .shared
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.calls.push(Call {
            argv: vec!["<put>".into(), dest.into()],
            stdin: Vec::new(),
            changing: true,
            status: 0,
        });
        st.node_files.insert(dest.to_string(), bytes.to_vec());
        Ok(())
    }

    fn lock(&self, name: &str, wait: Duration) -> Result<LockGuard> {
        let deadline = Instant::now() + wait;
        let mut st = self
            .shared
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while st.locks.contains(name) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("waited {} s for the fake node lock {name}", wait.as_secs());
            }
            st = self
                .shared
                .1
                .wait_timeout(st, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        st.locks.insert(name.to_string());
        Ok(LockGuard::new(FakeLock {
            shared: self.shared.clone(),
            name: name.to_string(),
        }))
    }
}

/// Releases a fake lock on drop.
struct FakeLock {
    shared: Arc<(Mutex<FakeState>, Condvar)>,
    name: String,
}

impl Drop for FakeLock {
    fn drop(&mut self) {
        let mut st = self
            .shared
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.locks.remove(&self.name);
        self.shared.1.notify_all();
    }
}

/// The command under `env -i PATH=...` (how a node without `pct exec --keep-env` runs it).
fn strip_env<'a, 'b>(inner: &'b [&'a str]) -> &'b [&'a str] {
    match inner {
        ["env", "-i", path, rest @ ..] if path.starts_with("PATH=") => rest,
        _ => inner,
    }
}

fn ok(s: impl Into<String>) -> Output {
    Output::ok(s.into().into_bytes())
}

fn opt_pairs(args: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if let Some(k) = args[i].strip_prefix("--") {
            let v = args.get(i + 1).cloned().unwrap_or_default();
            out.push((k.to_string(), v));
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}

/// Keys a running container takes at once, as pve-reference.md lists them (the fake keeps its
/// own copy so that the tool's list is tested, not reused).
const HOT: &[&str] = &[
    "description",
    "onboot",
    "startup",
    "protection",
    "hostname",
    "hookscript",
    "cores",
    "tags",
    "lock",
    "memory",
    "swap",
    "cpulimit",
    "cpuunits",
    // PVE hot-plugs network devices (pve-releases.md section 4).
    "net0",
];

impl FakeState {
    fn next_id(&self) -> u32 {
        (100..)
            .find(|i| !self.cts.contains_key(i) && !self.vms.contains(i))
            .unwrap_or(100)
    }

    fn answer(&mut self, argv: &[String], stdin: Option<&[u8]>) -> Output {
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        match a.as_slice() {
            ["pvesh", "get", "/cluster/resources", ..] => {
                let mut v = Vec::new();
                for (id, ct) in &self.cts {
                    v.push(serde_json::json!({
                        "id": format!("lxc/{id}"), "vmid": id, "type": "lxc", "node": self.node,
                        "name": ct.config.get("hostname").cloned().unwrap_or_default(),
                        "status": if ct.running { "running" } else { "stopped" },
                        "tags": ct.config.get("tags").cloned().unwrap_or_default(),
                    }));
                }
                for id in &self.vms {
                    v.push(serde_json::json!({"id": format!("qemu/{id}"), "vmid": id, "type": "qemu", "node": self.node, "name": format!("vm{id}"), "status": "running"}));
                }
                ok(serde_json::to_string(&v).unwrap_or_default())
            }
            ["pvesh", "get", "/cluster/status", ..] => ok(format!(
                "[{{\"type\":\"cluster\",\"name\":\"fake\"}},{{\"type\":\"node\",\"name\":\"{}\",\"local\":1,\"online\":1}}]",
                self.node
            )),
            ["pvesh", "get", path, ..]
                if path.starts_with("/nodes/") && path.ends_with("/interfaces") =>
            {
                // A running container's addresses, as PVE reports them (eth0 from DHCP).
                let id: Option<u32> = path.split('/').nth(4).and_then(|v| v.parse().ok());
                match id.and_then(|id| self.cts.get(&id).map(|ct| (id, ct))) {
                    Some((id, ct)) if ct.running => ok(serde_json::json!([
                        {"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"},
                        {"name": "eth0", "hwaddr": "bc:24:11:00:00:01",
                         "inet": format!("10.0.{}.{}/24", id / 256 % 256, id % 256),
                         "inet6": format!("fd00::{id:x}/64")}
                    ]).to_string()),
                    Some((id, _)) => Output::fail(255, format!("CT {id} not running\n")),
                    None => Output::fail(2, format!("Configuration file '{path}' does not exist\n")),
                }
            }
            ["pvesh", "get", path, ..]
                if path.starts_with("/nodes/") && path.ends_with("/storage") =>
            {
                if path.split('/').nth(2) != Some(self.node.as_str()) {
                    return Output::fail(
                        255,
                        format!(
                            "hostname lookup '{}' failed - not a node of this cluster\n",
                            path.split('/').nth(2).unwrap_or("")
                        ),
                    );
                }
                let v: Vec<serde_json::Value> = self
                    .storages
                    .iter()
                    .map(|(n, t, c)| {
                        serde_json::json!({"storage": n, "type": t, "content": c.join(","),
                            "active": 1, "enabled": 1, "shared": 0,
                            "total": 102_400_000_000u64, "used": 10_240_000_000u64, "avail": 92_160_000_000u64})
                    })
                    .collect();
                ok(serde_json::to_string(&v).unwrap_or_default())
            }
            ["pvesh", "get", "/cluster/nextid", "--vmid", v, ..] => match v.parse::<u32>() {
                Ok(i) if self.cts.contains_key(&i) || self.vms.contains(&i) => Output::fail(
                    255,
                    format!("400 Parameter verification failed.\nvmid: VM {i} already exists\n"),
                ),
                Ok(i) => ok(format!("\"{i}\"\n")),
                Err(_) => Output::fail(
                    255,
                    format!(
                        "400 Parameter verification failed.\nvmid: type check ('integer') failed - got '{v}'\n"
                    ),
                ),
            },
            ["pvesh", "get", "/cluster/nextid", ..] => ok(format!("\"{}\"\n", self.next_id())),
            ["pvesh", "get", path, ..] if path.ends_with("/pending") => {
                let id: u32 = path
                    .split('/')
                    .nth(4)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let Some(ct) = self.cts.get(&id) else {
                    return Output::fail(
                        2,
                        format!(
                            "Configuration file 'nodes/{}/lxc/{id}.conf' does not exist\n",
                            self.node
                        ),
                    );
                };
                let mut keys: BTreeSet<&String> = ct.config.keys().collect();
                keys.extend(ct.pending.keys());
                let v: Vec<serde_json::Value> = keys
                    .into_iter()
                    .map(|k| {
                        let mut e = serde_json::json!({"key": k});
                        if let Some(v) = ct.config.get(k) {
                            e["value"] = v.clone().into();
                        }
                        if let Some(p) = ct.pending.get(k) {
                            e["pending"] = p.clone().into();
                        }
                        e
                    })
                    .collect();
                ok(serde_json::to_string(&v).unwrap_or_default())
            }
            ["pvesm", "status", rest @ ..] => {
                let want = match rest {
                    ["--content", c] => Some(c.to_string()),
                    _ => None,
                };
                let mut s = String::from(
                    "Name             Type     Status           Total            Used       Available        %\n",
                );
                for (n, t, _) in self
                    .storages
                    .iter()
                    .filter(|(_, _, c)| want.as_ref().is_none_or(|w| c.contains(w)))
                {
                    s.push_str(&format!("{n:<16} {t:<8} active       100000000        10000000        90000000   10.00%\n"));
                }
                ok(s)
            }
            ["cat", "/sys/module/zfs/version"] => match &self.zfs_version {
                Some(v) => ok(format!("{v}\n")),
                None => Output::fail(
                    1,
                    "cat: /sys/module/zfs/version: No such file or directory\n",
                ),
            },
            // The node-side check of a fuse-overlayfs file, as the script does it.
            ["sh", "-c", script, _, path] if *script == plan::NODE_FUSE_CHECK_SCRIPT => {
                match self.node_files.get(*path) {
                    None => Output::fail(3, ""),
                    Some(b) if !b.starts_with(b"\x7fELF") || b.len() > 64 << 20 => Output::fail(
                        65,
                        format!(
                            "{path} on the node cannot be pushed as fuse-overlayfs: it is not an ELF executable\n"
                        ),
                    ),
                    Some(b) => ok(format!("{}\n", sha(b))),
                }
            }
            ["sha256sum", path] => match self.node_files.get(*path) {
                Some(b) => ok(format!("{}  {path}\n", sha(b))),
                None => Output::fail(1, format!("sha256sum: {path}: No such file or directory\n")),
            },
            ["rm", "-f", "--", path] => {
                self.node_files.remove(*path);
                ok("")
            }
            ["pveam", "update"] => {
                if self.pveam_update_fails {
                    // What pveam prints when the download of the index fails: exit status 0.
                    return ok("update failed - see /var/log/pveam.log for details\n");
                }
                self.index_updated = true;
                ok("update successful\n")
            }
            ["pveam", "available", ..] => {
                if !self.index_updated {
                    return ok("");
                }
                ok(self
                    .index
                    .iter()
                    .map(|n| format!("system          {n}\n"))
                    .collect::<String>())
            }
            ["pveam", "list", storage] => {
                let mut s = String::from(
                    "NAME                                                         SIZE\n",
                );
                for t in self
                    .templates
                    .iter()
                    .filter(|t| t.starts_with(&format!("{storage}:")))
                {
                    s.push_str(&format!("{t:<60} 120.00MB\n"));
                }
                ok(s)
            }
            ["pveam", "download", storage, name] => {
                if !self.index.iter().any(|n| n == name) {
                    return Output::fail(
                        255,
                        "400 Parameter verification failed.\ntemplate: no such template\n"
                            .to_string(),
                    );
                }
                self.templates.insert(format!("{storage}:vztmpl/{name}"));
                ok(format!("downloading {name}\nTASK OK\n"))
            }
            ["sh", "-c", script, _, path, create, owner]
                if script.ends_with(plan::HOST_DIR_SCRIPT) =>
            {
                self.host_dir(path, create, owner)
            }
            ["pct", "create", id, template, rest @ ..] => self.create(id, template, rest),
            ["pct", "set", id, rest @ ..] => {
                let dirs = self.node_dirs.clone();
                let dev_hotplug = {
                    let v = provision::release::parse_pveversion(
                        self.pveversion.as_deref().unwrap_or(""),
                    );
                    provision::release::Caps::from_versions(&v).dev_hotplug
                };
                let Some(ct) = id.parse().ok().and_then(|i: u32| self.cts.get_mut(&i)) else {
                    return Output::fail(
                        2,
                        format!("Configuration file 'nodes/pve1/lxc/{id}.conf' does not exist\n"),
                    );
                };
                let owned: Vec<String> = rest.iter().map(ToString::to_string).collect();
                for (k, v) in opt_pairs(&owned) {
                    if k == "delete" {
                        for key in v.split(',') {
                            ct.config.remove(key);
                            ct.pending.remove(key);
                        }
                        continue;
                    }
                    if k == "unprivileged" {
                        return Output::fail(
                            255,
                            "unable to modify read-only option: 'unprivileged'\n",
                        );
                    }
                    let is_mp = k.starts_with("mp");
                    let new_mp =
                        is_mp && !ct.config.contains_key(&k) && !ct.pending.contains_key(&k);
                    let v = if is_mp {
                        match mount_value(vmid_of(id), &k, &v, &ct.config, &dirs) {
                            Ok(v) => v,
                            Err(e) => return Output::fail(255, e),
                        }
                    } else {
                        v
                    };
                    let new_dev = k.starts_with("dev")
                        && dev_hotplug
                        && !ct.config.contains_key(&k)
                        && !ct.pending.contains_key(&k);
                    // PVE hot-adds a new mount point (and a new device from 6.0.4); a changed
                    // one stays pending.
                    if ct.running && !HOT.contains(&k.as_str()) && !new_mp && !new_dev {
                        ct.pending.insert(k, v);
                    } else {
                        ct.config.insert(k, v);
                    }
                }
                ok("")
            }
            ["sh", "-c", script, _, paths @ ..]
                if *script == provision::facts::DEV_NUMBERS_SCRIPT =>
            {
                let mut out = String::new();
                for p in paths {
                    match self.dev_nodes.get(*p) {
                        Some((k, a, b)) => out.push_str(&format!("dev {k} {a} {b} {p}\n")),
                        None => out.push_str(&format!("dev missing - - {p}\n")),
                    }
                }
                ok(out)
            }
            ["sh", "-c", script, _, id, host, rest @ ..]
                if script.ends_with(plan::RAW_LXC_SCRIPT) =>
            {
                self.with_ct(id, |ct| {
                    if ct.config.get("hostname").map(String::as_str) != Some(*host) {
                        return Output::fail(
                            1,
                            format!("CT {id} is not named '{host}': refused\n"),
                        );
                    }
                    for kv in rest.chunks(2) {
                        let l = (kv[0].to_string(), kv[1].to_string());
                        if !ct.raw.contains(&l) {
                            ct.raw.push(l);
                        }
                    }
                    ok("")
                })
            }
            ["pct", "config", id] => self.with_ct(id, |ct| {
                let mut out: String = ct
                    .config
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}\n"))
                    .collect();
                for (k, v) in &ct.raw {
                    out.push_str(&format!("{k}: {v}\n"));
                }
                ok(out)
            }),
            ["pct", "start", id] => self.with_ct(id, |ct| {
                if ct.running {
                    return Output::fail(255, format!("CT {id} already running\n"));
                }
                ct.raw_started.clone_from(&ct.raw);
                let p = std::mem::take(&mut ct.pending);
                ct.config.extend(p);
                ct.running = true;
                ok("")
            }),
            ["pct", "stop", id] | ["pct", "shutdown", id] => self.with_ct(id, |ct| {
                ct.running = false;
                ct.docker_active = false;
                ok("")
            }),
            ["pct", "reboot", id] => self.with_ct(id, |ct| {
                ct.raw_started.clone_from(&ct.raw);
                let p = std::mem::take(&mut ct.pending);
                ct.config.extend(p);
                ok("")
            }),
            ["pct", "status", id] => self.with_ct(id, |ct| {
                ok(if ct.running {
                    "status: running\n"
                } else {
                    "status: stopped\n"
                })
            }),
            ["pct", "resize", id, "rootfs", size] => {
                // As pve-container: `+N` grows, else absolute; shrinking and the same size are
                // refused before the task (non-zero); the task's own failure exits 0.
                let (grow, num) = size.strip_prefix('+').map_or((false, *size), |n| (true, n));
                let Some(req) = provision::rootdisk::parse_size(num) else {
                    return Output::fail(255, format!("unable to parse size '{size}'\n"));
                };
                let task_fails = self.resize_task_fails;
                self.with_ct(id, move |ct| {
                    let Some(r) = ct.config.get_mut("rootfs") else {
                        return Output::fail(255, "no rootfs\n".to_string());
                    };
                    let vol = r.split(',').next().unwrap_or("").to_string();
                    let cur = r
                        .split(',')
                        .find_map(|p| p.strip_prefix("size="))
                        .and_then(provision::rootdisk::parse_size)
                        .unwrap_or(0);
                    let new = if grow { cur + req } else { req };
                    if new < cur {
                        return Output::fail(255, "unable to shrink disk size\n".to_string());
                    }
                    if new == cur {
                        return Output::fail(
                            255,
                            "disk is already at specified size\n".to_string(),
                        );
                    }
                    if task_fails {
                        return Output {
                            status: 0,
                            stdout: Vec::new(),
                            stderr: b"lvextend failed: insufficient free space\n".to_vec(),
                        };
                    }
                    *r = format!("{vol},size={}", provision::rootdisk::format_size(new));
                    ok("")
                })
            }
            [
                "pct",
                "move-volume",
                id,
                key,
                "--target-vmid",
                to,
                "--target-volume",
                tkey,
            ] => self.move_volume(id, key, to, tkey),
            ["pct", "destroy", id, ..] => {
                let Ok(i) = id.parse::<u32>() else {
                    return Output::fail(255, "bad vmid\n");
                };
                match self.cts.get(&i) {
                    None => Output::fail(
                        2,
                        format!("Configuration file 'nodes/pve1/lxc/{id}.conf' does not exist\n"),
                    ),
                    Some(ct) if ct.running => {
                        Output::fail(255, format!("CT {id} is running - destroy failed\n"))
                    }
                    Some(_) => {
                        self.cts.remove(&i);
                        ok("")
                    }
                }
            }
            ["pct", "push", _, _, dest, ..]
                if self
                    .push_task_fails
                    .as_deref()
                    .is_some_and(|m| dest.contains(m)) =>
            {
                // In a terminal PVE prints the task's error alone on stderr.
                let text = if self.push_task_error {
                    format!("failed to open {dest} for writing: No space left on device\n")
                } else {
                    String::new()
                };
                Output {
                    status: 0,
                    stdout: Vec::new(),
                    stderr: text.into_bytes(),
                }
            }
            ["pct", "push", id, src, dest, "--perms", mode] => {
                let Some(bytes) = self.node_files.get(*src).cloned() else {
                    return Output::fail(
                        2,
                        format!("can't open '{src}': No such file or directory\n"),
                    );
                };
                let m = u32::from_str_radix(mode, 8).unwrap_or(0o644);
                let dest = dest.to_string();
                self.with_ct(id, move |ct| {
                    if !ct.running {
                        return Output::fail(255, "CT is not running\n".to_string());
                    }
                    ct.files.insert(dest, (bytes, m));
                    ok("")
                })
            }
            ["cat", path] if path.starts_with("/sys/class/net/") && path.ends_with("/mtu") => {
                let bridge = path.split('/').nth(4).unwrap_or("");
                match self.bridges.get(bridge) {
                    Some(m) => ok(format!("{m}\n")),
                    None => Output::fail(1, format!("cat: {path}: No such file or directory\n")),
                }
            }
            ["pveversion", "-v"] => match &self.pveversion {
                Some(v) => ok(v.clone()),
                None => Output::fail(127, "pveversion: command not found\n".to_string()),
            },
            ["pct", "exec", id, rest @ ..] => {
                let before: Vec<&str> = rest.iter().copied().take_while(|w| *w != "--").collect();
                if before.contains(&"--keep-env") && !self.has_keep_env() {
                    return Output::fail(
                        255,
                        "Unknown option: keep-env\n400 unable to parse option\npct exec <vmid> [<extra-args>]\n".to_string(),
                    );
                }
                let all: Vec<&str> = rest
                    .iter()
                    .copied()
                    .skip_while(|w| *w != "--")
                    .skip(1)
                    .collect();
                let inner: Vec<String> = strip_env(&all).iter().map(ToString::to_string).collect();
                let stdin = stdin.map(<[u8]>::to_vec);
                self.with_ct(id, move |ct| {
                    if !ct.running {
                        return Output::fail(255, format!("CT {} not running\n", "?"));
                    }
                    exec_inside(ct, &inner, stdin.as_deref())
                })
            }
            _ => Output::fail(
                127,
                format!("fake node: unknown command {:?}\n", argv.join(" ")),
            ),
        }
    }

    /// The fake's pct knows `exec --keep-env` (pve-container 5.0.9 and later).
    fn has_keep_env(&self) -> bool {
        let v = provision::release::parse_pveversion(self.pveversion.as_deref().unwrap_or(""));
        provision::release::Caps::from_versions(&v).exec_keep_env
    }

    fn with_ct(&mut self, id: &str, f: impl FnOnce(&mut FakeCt) -> Output) -> Output {
        match id.parse::<u32>().ok().and_then(|i| self.cts.get_mut(&i)) {
            Some(ct) => f(ct),
            None => Output::fail(
                2,
                format!("Configuration file 'nodes/pve1/lxc/{id}.conf' does not exist\n"),
            ),
        }
    }

    fn host_dir(&mut self, path: &str, create: &str, owner: &str) -> Output {
        if !self.node_dirs.contains_key(path) {
            if create != "1" {
                return Output::fail(
                    1,
                    format!("bind mount source path '{path}' does not exist on the node\n"),
                );
            }
            self.node_dirs.insert(path.to_string(), "0:0".into());
        }
        if owner != "-" {
            self.node_dirs.insert(path.to_string(), owner.to_string());
        }
        ok("")
    }

    fn create(&mut self, id: &str, template: &str, rest: &[&str]) -> Output {
        let Ok(vmid) = id.parse::<u32>() else {
            return Output::fail(
                255,
                format!(
                    "400 Parameter verification failed.\nvmid: type check ('integer') failed - got '{id}'\n"
                ),
            );
        };
        if vmid < 100 {
            return Output::fail(255, "400 Parameter verification failed.\nvmid: value must have a minimum value of 100\n".to_string());
        }
        if let Some(stolen) = self.steal_vmid_once.take() {
            if stolen == vmid {
                let mut other = FakeCt::default();
                other
                    .config
                    .insert("hostname".into(), "someone-else".into());
                self.cts.insert(vmid, other);
            } else {
                self.steal_vmid_once = Some(stolen);
            }
        }
        if self.cts.contains_key(&vmid) || self.vms.contains(&vmid) {
            return Output::fail(
                255,
                format!("CT {vmid} already exists on node '{}'\n", self.node),
            );
        }
        if !self.templates.contains(template) {
            return Output::fail(255, format!("volume '{template}' does not exist\n"));
        }
        let owned: Vec<String> = rest.iter().map(ToString::to_string).collect();
        let mut ct = FakeCt {
            fuse_usable: true,
            os: ("ubuntu".into(), "24.04".into()),
            ..FakeCt::default()
        };
        if template.contains("debian-12") {
            ct.os = ("debian".into(), "12".into());
        }
        for (k, v) in opt_pairs(&owned) {
            match k.as_str() {
                "rootfs" => {
                    let (storage, size) = v.split_once(':').unwrap_or(("local-lvm", "8"));
                    if !self
                        .storages
                        .iter()
                        .any(|(n, _, c)| n == storage && c.iter().any(|c| c == "rootdir"))
                    {
                        return Output::fail(
                            255,
                            format!("storage '{storage}' does not support container directories\n"),
                        );
                    }
                    // PVE allocates int(GiB * 1024) MiB and writes the size as format_size.
                    let gib: f64 = size.parse().unwrap_or(0.0);
                    ct.config.insert(
                        "rootfs".into(),
                        format!(
                            "{storage}:vm-{vmid}-disk-0,size={}",
                            provision::rootdisk::format_size(provision::rootdisk::alloc_bytes(gib))
                        ),
                    );
                }
                "ssh-public-keys" => {
                    let Some(keys) = self.node_files.get(&v).cloned() else {
                        return Output::fail(255, format!("unable to open file '{v}'\n"));
                    };
                    ct.files
                        .insert("/root/.ssh/authorized_keys".into(), (keys, 0o600));
                }
                "password" => {}
                k if k.starts_with("mp") => {
                    match mount_value(vmid, k, &v, &ct.config, &self.node_dirs) {
                        Ok(v) => ct.config.insert(k.to_string(), v),
                        Err(e) => return Output::fail(255, e),
                    };
                }
                "net0" => {
                    let mut s = v.clone();
                    if !s.contains("hwaddr=") {
                        s.push_str(",hwaddr=BC:24:11:00:00:01");
                    }
                    ct.config.insert(k, s);
                }
                "tags" => {
                    let mut t: Vec<&str> =
                        v.split([';', ',', ' ']).filter(|t| !t.is_empty()).collect();
                    t.sort();
                    ct.config.insert(k, t.join(";"));
                }
                _ => {
                    ct.config.insert(k, v);
                }
            }
        }
        ct.config
            .entry("unprivileged".into())
            .or_insert_with(|| "1".into());
        // PVE writes `unprivileged: 1` only for unprivileged containers.
        if ct.config.get("unprivileged").map(String::as_str) == Some("0") {
            ct.config.remove("unprivileged");
        }
        ct.config.insert("arch".into(), "amd64".into());
        self.cts.insert(vmid, ct);
        self.created_order.push(vmid);
        ok(format!("  Logical volume \"vm-{vmid}-disk-0\" created.\n"))
    }
}

fn vmid_of(id: &str) -> u32 {
    id.parse().unwrap_or(0)
}

/// An `mpN` value as PVE stores it: `STORAGE:SIZE` allocated as the next `vm-ID-disk-K` with
/// its size; a bind source must exist on the node.
impl FakeState {
    /// `pct move-volume ID KEY --target-vmid TO --target-volume TKEY`, with pve-container's
    /// refusals: the volume is renamed for its new owner and leaves the source's configuration.
    fn move_volume(&mut self, id: &str, key: &str, to: &str, tkey: &str) -> Output {
        let (Ok(a), Ok(b)) = (id.parse::<u32>(), to.parse::<u32>()) else {
            return Output::fail(255, "bad vmid\n");
        };
        if key == "rootfs" || tkey == "rootfs" {
            return Output::fail(255, "Cannot move to/from 'rootfs'\n");
        }
        if key.starts_with("unused") && !tkey.starts_with("unused") {
            return Output::fail(
                255,
                "Moving an unused volume to a used one is not possible\n",
            );
        }
        for v in [a, b] {
            if !self.cts.contains_key(&v) {
                return Output::fail(255, format!("could not find CT {v}\n"));
            }
        }
        let src = &self.cts[&a];
        let Some(value) = src.config.get(key).cloned() else {
            return Output::fail(
                255,
                format!("volume '{key}' for container '{a}' does not exist\n"),
            );
        };
        if self.cts[&b].config.contains_key(tkey) {
            return Output::fail(
                255,
                format!("Target volume key '{tkey}' is already in use for container '{b}'\n"),
            );
        }
        let (vol, rest) = value.split_once(',').unwrap_or((&value, ""));
        if vol.starts_with('/') {
            return Output::fail(
                255,
                "Cannot move a bindmount or device mount to another container\n",
            );
        }
        if src.running && !key.starts_with("unused") {
            return Output::fail(
                255,
                "Cannot move in-use volume while the source CT is running - detach or shutdown first\n",
            );
        }
        let storage = vol.split(':').next().unwrap_or("");
        let n = (0..)
            .find(|n| {
                !self.cts[&b]
                    .config
                    .values()
                    .any(|c| c.contains(&format!("vm-{b}-disk-{n}")))
            })
            .unwrap_or(0);
        let new = format!("{storage}:vm-{b}-disk-{n}");
        self.cts.get_mut(&a).unwrap().config.remove(key);
        let moved = if tkey.starts_with("unused") || rest.is_empty() {
            new
        } else {
            format!("{new},{rest}")
        };
        self.cts
            .get_mut(&b)
            .unwrap()
            .config
            .insert(tkey.into(), moved);
        ok("")
    }
}

fn mount_value(
    vmid: u32,
    key: &str,
    v: &str,
    config: &BTreeMap<String, String>,
    dirs: &BTreeMap<String, String>,
) -> Result<String, String> {
    let (vol, rest) = v.split_once(',').unwrap_or((v, ""));
    if !rest.split(',').any(|p| p.starts_with("mp=")) {
        return Err(format!(
            "400 Parameter verification failed.\n{key}: missing property - 'mp'\n"
        ));
    }
    if vol.starts_with('/') {
        if !dirs.contains_key(vol) {
            return Err(format!(
                "{key}: bind mount source path '{vol}' does not exist\n"
            ));
        }
        return Ok(v.to_string());
    }
    let (storage, size) = vol.split_once(':').unwrap_or(("", ""));
    let Ok(gib) = size.parse::<f64>() else {
        return Ok(v.to_string()); // an existing volume id
    };
    let k = (1..)
        .find(|k| {
            !config
                .values()
                .any(|c| c.contains(&format!("vm-{vmid}-disk-{k}")))
        })
        .unwrap_or(1);
    Ok(format!(
        "{storage}:vm-{vmid}-disk-{k},{rest},size={}",
        provision::rootdisk::format_size(provision::rootdisk::alloc_bytes(gib))
    ))
}

fn exec_inside(ct: &mut FakeCt, inner: &[String], stdin: Option<&[u8]>) -> Output {
    let w: Vec<&str> = inner.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["sh", "-c", script, _, args @ ..] if script.contains("os_id=") => {
            let mut s = format!("os_id={}\nos_version={}\n", ct.os.0, ct.os.1);
            if !ct.no_render_group {
                s.push_str("group_render=993\n");
            }
            if ct.docker_installed {
                s.push_str("docker_installed=1\n");
            }
            if ct.docker_active {
                s.push_str("docker_active=1\n");
                if let Some(d) = &ct.docker_driver {
                    s.push_str(&format!("docker_driver={d}\n"));
                    s.push_str(&format!("docker_objects={} 0\n", ct.docker_objects));
                }
            }
            for (d, n) in &ct.docker_stored {
                s.push_str(&format!("docker_stored={d} {n}\n"));
            }
            if let Some(t) = ct.links.get(plan::FUSE_DEST) {
                s.push_str(&format!(
                    "fuse_overlayfs_link={t}\nfuse_overlayfs_sha256=pkg\n"
                ));
            } else if let Some((b, _)) = ct.files.get(plan::FUSE_DEST) {
                s.push_str(&format!("fuse_overlayfs_sha256={}\n", sha(b)));
            }
            if let Some((b, m)) = ct.files.get(plan::DAEMON_JSON) {
                s.push_str(&format!("daemon_json_b64={}\n", b64(b)));
                let owner = ct
                    .owners
                    .get(plan::DAEMON_JSON)
                    .map_or("0:0", String::as_str);
                s.push_str(&format!("daemon_json_stat={m:o}:{owner}\n"));
            }
            if let Some((b, _)) = ct.files.get("/var/lib/provision/state") {
                for l in String::from_utf8_lossy(b).lines() {
                    s.push_str(&format!("state_{l}\n"));
                }
            }
            if ct.packages.contains("busybox-static") {
                s.push_str("busybox=1\n");
            }
            if ct.packages.contains("fuse3") || ct.packages.contains("fuse-overlayfs") {
                s.push_str("libfuse3=1\n");
            }
            // Global addresses as `ip -o addr show scope global` lists them: a static one from
            // net0, and Docker's bridge once Docker runs (the report must leave it out).
            if let Some(ip) = ct.config.get("net0").and_then(|n| {
                n.split(',')
                    .find_map(|kv| kv.strip_prefix("ip="))
                    .filter(|ip| ip.contains('/'))
            }) {
                s.push_str(&format!("addr=eth0 {ip}\n"));
            }
            if ct.docker_active {
                s.push_str("addr=docker0 172.17.0.1/16\n");
            }
            for f in args {
                if let Some((b, _)) = ct.files.get(*f) {
                    let mode = ct.files[*f].1;
                    s.push_str(&format!("file={} {mode:o} {f}\n", sha(b)));
                }
            }
            ok(s)
        }
        ["sh", "-c", script, _, args @ ..] => {
            let body = script.strip_prefix(plan::SH_PRELUDE).unwrap_or(script);
            match body {
                b if b == plan::INSTALL_SCRIPT => {
                    let (method, pkgs) = args
                        .split_first()
                        .map(|(m, p)| (*m, p))
                        .unwrap_or(("none", &[]));
                    if method == "distro" || method == "docker-ce" {
                        ct.docker_installed = true;
                        ct.docker_active = true;
                        ct.docker_driver = Some("overlay2".into());
                    }
                    for p in pkgs.iter().skip(if method == "docker-ce" { 1 } else { 0 }) {
                        ct.packages.insert(p.to_string());
                    }
                    ok("")
                }
                b if b == plan::PUSH_CHECK_SCRIPT => {
                    let (new, dest, want) = (args[0], args[1], args.get(2).copied().unwrap_or(""));
                    let Some((bytes, mode)) = ct.files.remove(new) else {
                        return Output::fail(
                            70,
                            format!("{new} is not there: the push did not write it\n"),
                        );
                    };
                    if !want.is_empty() && sha(&bytes) != want {
                        return Output::fail(65, "checksum mismatch after push\n");
                    }
                    if !bytes.starts_with(b"\x7fELF") {
                        return Output::fail(
                            66,
                            "fuse-overlayfs cannot run in this container: Exec format error\n",
                        );
                    }
                    ct.links.remove(dest);
                    ct.files.insert(dest.to_string(), (bytes, mode));
                    ok("")
                }
                b if b == plan::PLACE_SCRIPT => {
                    let (new, dest, size, want, backup) =
                        (args[0], args[1], args[2], args[3], args[4]);
                    let Some((bytes, mut mode)) = ct.files.get(new).cloned() else {
                        return Output::fail(
                            70,
                            format!("{new} is not there: the push did not write it\n"),
                        );
                    };
                    if bytes.len().to_string() != size || sha(&bytes) != want {
                        ct.files.remove(new);
                        return Output::fail(65, "checksum mismatch after push\n");
                    }
                    if backup == "1"
                        && let Some(old) = ct.files.get(dest).cloned()
                    {
                        ct.files.insert(format!("{dest}.provision-backup"), old);
                    }
                    ct.files.remove(new);
                    if let Some(owner) = args.get(5) {
                        ct.owners.insert(dest.to_string(), owner.to_string());
                    }
                    if let Some(m) = args.get(6) {
                        mode = u32::from_str_radix(m, 8).unwrap_or(mode);
                    }
                    ct.files.insert(dest.to_string(), (bytes, mode));
                    ok("")
                }
                b if b == plan::RESTART_SCRIPT => {
                    if !ct.docker_installed {
                        return Output::fail(
                            5,
                            "Failed to restart docker.service: Unit docker.service not found.\n",
                        );
                    }
                    let driver = ct
                        .files
                        .get(plan::DAEMON_JSON)
                        .and_then(|(b, _)| plan::current_driver(Some(&String::from_utf8_lossy(b))))
                        .unwrap_or_else(|| "overlay2".into());
                    if driver == "fuse-overlayfs"
                        && !ct.files.contains_key(plan::FUSE_DEST)
                        && !ct.links.contains_key(plan::FUSE_DEST)
                    {
                        return Output::fail(
                            1,
                            "docker did not answer within 60 s after restart\n",
                        );
                    }
                    ct.docker_driver = Some(driver);
                    ct.docker_active = true;
                    ok("")
                }
                b if b == plan::VERIFY_SCRIPT => {
                    let want = args[0];
                    let have = ct.docker_driver.clone().unwrap_or_default();
                    if !ct.docker_active || have != want {
                        return Output::fail(
                            67,
                            format!("docker reports storage driver '{have}', expected '{want}'\n"),
                        );
                    }
                    if have == "fuse-overlayfs" && !ct.fuse_usable {
                        return Output::fail(
                            69,
                            "docker run failed: fuse: failed to open /dev/fuse: Permission denied\n",
                        );
                    }
                    ok(format!("docker runs containers on {have}\n"))
                }
                b if b == plan::STATE_SET => {
                    let path = "/var/lib/provision/state".to_string();
                    let old = ct
                        .files
                        .get(&path)
                        .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default();
                    let mut lines: Vec<String> = old
                        .lines()
                        .filter(|l| !l.starts_with(&format!("{}=", args[0])))
                        .map(String::from)
                        .collect();
                    lines.push(format!("{}={}", args[0], args[1]));
                    ct.files
                        .insert(path, ((lines.join("\n") + "\n").into_bytes(), 0o644));
                    ok("")
                }
                b if b.contains("ln -sfn /usr/bin/fuse-overlayfs") => {
                    if !ct.packages.contains("fuse-overlayfs") {
                        return Output::fail(1, "");
                    }
                    ct.files.remove(plan::FUSE_DEST);
                    ct.links
                        .insert(plan::FUSE_DEST.into(), "/usr/bin/fuse-overlayfs".into());
                    ok("")
                }
                _ => {
                    ct.commands_run.push(inner.to_vec());
                    ok("")
                }
            }
        }
        ["mkdir", "-p", ..] => ok(""),
        ["mv", "-f", from, to] => match ct.files.remove(*from) {
            Some(f) => {
                ct.files.insert(to.to_string(), f);
                ok("")
            }
            None => Output::fail(1, format!("mv: cannot stat '{from}'\n")),
        },
        ["chpasswd"] => {
            ct.passwords.push(stdin.unwrap_or_default().to_vec());
            ok("")
        }
        _ => {
            ct.commands_run.push(inner.to_vec());
            ok("")
        }
    }
}

fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A fake node in an Arc, ready to be a node transport.
pub fn fake_node() -> Arc<FakeNode> {
    Arc::new(FakeNode::new())
}
