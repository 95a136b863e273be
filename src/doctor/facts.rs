//! What the doctor reads from the node, in one script run: versions, kernel, cgroups, /dev/fuse,
//! subordinate IDs, key quotas, storages, templates, files the profiles name.

use super::*;

/// `/dev/fuse` as `stat` sees it.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct DevFuse {
    /// `%F`: "character special file" for a device.
    pub kind: String,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Permission bits.
    pub mode: u32,
}

/// uid 100000's line of `/proc/key-users`.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct KeyUsage {
    /// Keys charged to the quota.
    pub keys: u64,
    /// The key limit.
    pub max_keys: u64,
    /// Bytes charged to the quota.
    pub bytes: u64,
    /// The byte limit.
    pub max_bytes: u64,
}

/// A file on the node asked about (a fuse-overlayfs binary).
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct NodeFile {
    /// Its SHA-256.
    pub sha256: String,
    /// Its first 20 bytes, hex.
    pub head: String,
}

/// An existing container as `/etc/pve/lxc/*.conf` shows it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ExistingCt {
    /// VMID.
    pub vmid: u32,
    /// `unprivileged: 1`.
    pub unprivileged: bool,
    /// Hostname.
    pub hostname: String,
}

/// What the facts script found on the node.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct HostFacts {
    /// `id -u`.
    pub uid: Option<u32>,
    /// `uname -m`.
    pub arch: String,
    /// `uname -r`.
    pub kernel: String,
    /// Tools found on PATH: name -> path.
    pub tools: BTreeMap<String, String>,
    /// Package versions from `pveversion -v` (package -> version text).
    pub pve_versions: BTreeMap<String, String>,
    /// Filesystem type of /sys/fs/cgroup.
    pub cgroup_fs: String,
    /// /dev/fuse, when it exists.
    pub dev_fuse: Option<DevFuse>,
    /// `/sys/module/zfs/version`.
    pub zfs_version: Option<String>,
    /// `/proc/sys/kernel/keys/maxkeys`.
    pub maxkeys: Option<u64>,
    /// `/proc/sys/kernel/keys/maxbytes`.
    pub maxbytes: Option<u64>,
    /// Keys used by uid 100000 now.
    pub key_usage: Option<KeyUsage>,
    /// /etc/subuid was readable.
    pub subuid_file: bool,
    /// root's /etc/subuid ranges (start, count).
    pub subuid: Vec<(u64, u64)>,
    /// /etc/subgid was readable.
    pub subgid_file: bool,
    /// root's /etc/subgid ranges.
    pub subgid: Vec<(u64, u64)>,
    /// `systemctl is-active pve-lxc-syscalld`.
    pub syscalld: Option<String>,
    /// Exit status of `pvesm status --content rootdir`.
    pub rootdir_rc: Option<i32>,
    /// Storages that allow container root disks.
    pub rootdir: Vec<Storage>,
    /// Raw output of that command (for error details).
    pub rootdir_text: String,
    /// Exit status of `pvesm status --content vztmpl`.
    pub vztmpl_rc: Option<i32>,
    /// Storages that allow templates.
    pub vztmpl: Vec<Storage>,
    /// Raw output of that command.
    pub vztmpl_text: String,
    /// `pveam available --section system` names.
    pub available: Vec<String>,
    /// `pveam list STORAGE`: storage -> (exit status, volume ids, raw text).
    pub template_lists: BTreeMap<String, (i32, Vec<String>, String)>,
    /// Files asked about that exist.
    pub files: BTreeMap<String, NodeFile>,
    /// Files asked about that do not exist.
    pub missing_files: BTreeSet<String>,
    /// Device paths asked about (`[[devices]]`): path -> `c`, `b`, `other` or `missing`.
    pub device_nodes: BTreeMap<String, String>,
    /// Containers on this node.
    pub cts: Vec<ExistingCt>,
}

/// The node facts script. Read-only; prints `key=value` lines; always exits 0. It finds tools
/// on the caller's PATH first (as the rest of provision does), then in the system directories.
/// Arguments:
/// `tmpl=STORAGE` (list that template storage), `file=PATH` (hash a node file) and `dev=PATH`
/// (what kind of node a `[[devices]]` path is).
pub const FACTS_SCRIPT: &str = include_str!("../scripts/node-doctor-facts.sh");

/// Where the fuse-overlayfs binary of a profile is on the node, if it comes from the node.
pub(super) fn fuse_node_path(p: &Profile) -> Option<String> {
    match &p.docker.fuse_overlayfs {
        FuseSource::Node { path, .. } => Some(path.clone()),
        FuseSource::Url { sha256, .. } => Some(plan::fuse_cache_path(sha256)),
        FuseSource::Package => None,
    }
}

/// The command that runs [`FACTS_SCRIPT`] for these requests.
pub fn facts_cmd(reqs: &[Request]) -> Cmd {
    let mut args = BTreeSet::new();
    for r in reqs {
        let p = &r.profile;
        args.insert(format!("tmpl={}", template_storage(p)));
        if p.docker.install != crate::profile::DockerInstall::None
            && matches!(
                p.docker.storage_driver,
                Driver::FuseOverlayfs | Driver::Auto
            )
            && let Some(path) = fuse_node_path(p)
        {
            args.insert(format!("file={path}"));
        }
        for d in &p.devices {
            args.insert(format!("dev={}", d.path));
        }
        if p.gpu.is_some() {
            args.insert(format!("dev={}", crate::mounts::devices::GPU_RENDER_NODE));
        }
    }
    Cmd::new("sh")
        .args(["-c", FACTS_SCRIPT, "provision-doctor"])
        .args(args)
}

/// Reads the node's facts with one command.
pub fn gather(node: &dyn Transport, reqs: &[Request]) -> Result<HostFacts> {
    let out = node.run(&facts_cmd(reqs), None)?;
    if !out.success() {
        bail!(
            "{}: the doctor's facts script failed (status {}): {}",
            node.label(),
            out.status,
            out.tail(10).trim()
        );
    }
    Ok(parse_facts(&out.stdout_text()))
}

pub(super) fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.trim().parse().ok()
}

/// Parses `a/b` into (a, b).
pub(super) fn pair(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('/')?;
    Some((num(a)?, num(b)?))
}

/// Parses root's `root:100000:65536` (another user's line is None).
pub(super) fn id_range(s: &str) -> Option<(u64, u64)> {
    let mut it = s.split(':');
    if !matches!(it.next()?, "root" | "0") {
        return None;
    }
    Some((num(it.next()?)?, num(it.next()?)?))
}

/// Storages from `pvesm status` text, without lines that are warnings rather than storages.
pub(super) fn storages(text: &str) -> Vec<Storage> {
    parse_pvesm_status(text)
        .into_iter()
        .filter(|s| {
            matches!(
                s.status.as_str(),
                "active" | "inactive" | "disabled" | "unknown"
            )
        })
        .collect()
}

/// `/dev/fuse` as `stat` printed it: `kind|major(hex)|minor(hex)|mode(octal)`.
fn parse_dev_fuse(v: &str) -> Option<DevFuse> {
    let parts: Vec<&str> = v.split('|').collect();
    let [kind, major, minor, mode] = parts.as_slice() else {
        return None;
    };
    Some(DevFuse {
        kind: kind.to_string(),
        major: u32::from_str_radix(major.trim(), 16).unwrap_or(0),
        minor: u32::from_str_radix(minor.trim(), 16).unwrap_or(0),
        mode: u32::from_str_radix(mode.trim(), 8).unwrap_or(0),
    })
}

/// The kernel key quota use of uid 100000 (`/proc/key-users`: `keys/max bytes/max`).
fn parse_key_usage(v: &str) -> Option<KeyUsage> {
    let w: Vec<&str> = v.split_whitespace().collect();
    let [_refs, _nkeys, keys, bytes, ..] = w.as_slice() else {
        return None;
    };
    let ((k, mk), (b, mb)) = (pair(keys)?, pair(bytes)?);
    Some(KeyUsage {
        keys: k,
        max_keys: mk,
        bytes: b,
        max_bytes: mb,
    })
}

/// An existing container: `VMID UNPRIVILEGED HOSTNAME`.
fn parse_ct(v: &str) -> Option<ExistingCt> {
    let mut w = v.splitn(3, ' ');
    let (id, u) = (w.next().and_then(num)?, w.next()?);
    Some(ExistingCt {
        vmid: id,
        unprivileged: u.trim() == "1",
        hostname: w.next().unwrap_or("").trim().to_string(),
    })
}

/// Parses what [`FACTS_SCRIPT`] prints. Unknown lines are ignored, missing ones stay unknown.
pub fn parse_facts(text: &str) -> HostFacts {
    let mut f = HostFacts::default();
    let mut lists: BTreeMap<String, (i32, String)> = BTreeMap::new();
    let mut available = String::new();
    for l in text.lines() {
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        match k {
            "uid" => f.uid = num(v),
            "arch" => f.arch = v.trim().to_string(),
            "kernel" => f.kernel = v.trim().to_string(),
            "tool" => {
                if let Some((name, path)) = v.split_once(' ') {
                    f.tools.insert(name.to_string(), path.to_string());
                }
            }
            "pveversion" => {
                if let Some((pkg, ver)) = v.split_once(':') {
                    f.pve_versions
                        .insert(pkg.trim().to_string(), ver.trim().to_string());
                }
            }
            "cgroup_fs" => f.cgroup_fs = v.trim().to_string(),
            "dev_fuse" => f.dev_fuse = parse_dev_fuse(v).or(f.dev_fuse.take()),
            "zfs_version" if !v.trim().is_empty() => f.zfs_version = Some(v.trim().to_string()),
            "keys_maxkeys" => f.maxkeys = num(v),
            "keys_maxbytes" => f.maxbytes = num(v),
            "key_users_100000" => f.key_usage = parse_key_usage(v).or(f.key_usage.take()),
            "subuid_file" => f.subuid_file = true,
            "subgid_file" => f.subgid_file = true,
            "subuid" => f.subuid.extend(id_range(v)),
            "subgid" => f.subgid.extend(id_range(v)),
            "syscalld" => f.syscalld = Some(v.trim().to_string()),
            "pvesm_rootdir_rc" => f.rootdir_rc = num(v),
            "pvesm_vztmpl_rc" => f.vztmpl_rc = num(v),
            "pvesm_rootdir" => {
                f.rootdir_text.push_str(v);
                f.rootdir_text.push('\n');
            }
            "pvesm_vztmpl" => {
                f.vztmpl_text.push_str(v);
                f.vztmpl_text.push('\n');
            }
            "pveam_available" => {
                available.push_str(v);
                available.push('\n');
            }
            "pveam_list_rc" => {
                if let Some((s, rc)) = v.split_once(' ') {
                    lists.entry(s.to_string()).or_default().0 = num(rc).unwrap_or(-1);
                }
            }
            "pveam_list" => {
                let (s, line) = v.split_once(' ').unwrap_or((v, ""));
                let e = lists.entry(s.to_string()).or_default();
                e.1.push_str(line);
                e.1.push('\n');
            }
            "file_sha256" | "file_head" => {
                if let Some((val, path)) = v.split_once(' ') {
                    let e = f.files.entry(path.to_string()).or_default();
                    if k == "file_sha256" {
                        e.sha256 = val.to_string();
                    } else {
                        e.head = val.to_string();
                    }
                }
            }
            "file_missing" => {
                f.missing_files.insert(v.to_string());
            }
            "dev_node" => {
                if let Some((kind, path)) = v.split_once(' ') {
                    f.device_nodes.insert(path.to_string(), kind.to_string());
                }
            }
            "ct" => f.cts.extend(parse_ct(v)),
            _ => {}
        }
    }
    f.rootdir = storages(&f.rootdir_text);
    f.vztmpl = storages(&f.vztmpl_text);
    f.available = parse_pveam_available(&available);
    f.template_lists = lists
        .into_iter()
        .map(|(s, (rc, text))| {
            let vols = parse_pveam_list(&text);
            (s, (rc, vols, text))
        })
        .collect();
    f
}

impl HostFacts {
    /// What the node's release can do, from `pveversion -v` ([`crate::release`]).
    pub fn caps(&self) -> crate::release::Caps {
        let text: String = self
            .pve_versions
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        crate::release::Caps::from_versions(&crate::release::parse_pveversion(&text))
    }

    /// The ZFS version: the loaded module's, else the installed package's.
    pub fn zfs(&self) -> Option<String> {
        self.zfs_version.clone().or_else(|| {
            let text = format!(
                "zfsutils-linux: {}",
                self.pve_versions.get("zfsutils-linux")?
            );
            crate::release::parse_pveversion(&text)
                .zfs
                .map(|v| v.to_string())
        })
    }
}
