//! `provision doctor`: is this node ready for Docker-ready unprivileged containers?
//!
//! Three parts, like the rest of the tool. [`gather`] runs ONE read-only script on the node
//! through the node [`Transport`] (so it works over SSH as well as locally): it prints
//! `key=value` facts and never changes anything. [`parse_facts`] turns that text into
//! [`HostFacts`]. [`evaluate`] is pure: (facts, the containers asked for) -> one [`Check`] per
//! question, each OK / WARN / FAIL with what was found and how to fix it. Tests feed
//! [`evaluate`] recorded script output from real kinds of nodes.
//!
//! The rules, so that a result can be argued with:
//! - root: provision runs `pct` as root (root@pam is the only one allowed to set keyctl, fuse
//!   and mknod); not root is a FAIL.
//! - PVE tools: `pct`, `pveam`, `pvesm`, `pvesh` on PATH, else FAIL. Versions from
//!   `pveversion -v`; a node without `pveversion` (a lab node) is a WARN, PVE older than 8 a WARN.
//! - kernel (`uname -r`): 5.11 or later is OK (overlayfs in user namespaces); older WARNs, and
//!   FAILs below 5.3 when a profile wants mknod.
//! - cgroup (`stat -f -c %T /sys/fs/cgroup`): `cgroup2fs` is OK, anything else WARNs.
//! - /dev/fuse: a character device 10:229 that others may read and write (0666, what the
//!   kernel and PVE set: container root is uid 100000 on the node). Missing or not usable is a
//!   FAIL when a profile enables fuse, a WARN otherwise.
//! - subuid/subgid: root's ranges must cover 100000:65536 (what PVE installs and the default
//!   idmap uses); WARN otherwise.
//! - keyring: every unprivileged container maps its root to uid 100000, so all of them share
//!   one kernel key quota. With N = unprivileged containers on the node plus the new ones asked
//!   for, the quota must allow `200 + 50*N` keys and `100` bytes per key (`20000 + 5000*N`
//!   bytes); less is a WARN. A FAIL when `/proc/key-users` shows uid 100000 already at 90% or
//!   more of either limit (Docker fails then with `join session keyring: disk quota exceeded`).
//! - storages: each rootfs storage must be listed by `pvesm status --content rootdir` and be
//!   active (FAIL otherwise); less free space than the root disks asked for is a WARN (most
//!   storages are thin). Each template storage likewise with `--content vztmpl`.
//! - template: [`plan::resolve_template`] on `pveam list`/`pveam available`, as a real run would.
//! - storage driver: [`plan::decide_driver`] per profile and rootfs storage, with the host's
//!   ZFS version (`/sys/module/zfs/version`); overlay2 where it cannot work is a FAIL, fuse
//!   where the profile has fuse off is a FAIL, vfs a WARN.
//! - fuse-overlayfs source (where the driver is fuse-overlayfs): the node file exists, is an
//!   ELF binary for the node's architecture and matches its pinned SHA-256; a URL source's
//!   cached download matches its name, or curl is there to fetch it; a package source is OK.

use crate::cmd::Cmd;
use crate::facts::{
    Storage, TemplateFacts, parse_pveam_available, parse_pveam_list, parse_pvesm_status,
};
use crate::plan::{self, Request, Step};
use crate::profile::{Driver, FuseSource, Profile};
use crate::transport::Transport;
use anyhow::{Result, bail};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// How a check came out.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but something is likely to bite.
    Warn,
    /// Provisioning will fail (or cannot be checked because its prerequisite failed).
    Fail,
}

impl Level {
    /// The word shown.
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// One question about the node, answered.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Check {
    /// Stable identifier, e.g. `root`, `storage:local-lvm`, `template:local:ubuntu-24.04`.
    pub id: String,
    /// Outcome.
    pub level: Level,
    /// What was checked.
    pub title: String,
    /// What was found.
    pub detail: String,
    /// How to fix it (or, on an OK, a hint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(
    id: impl Into<String>,
    level: Level,
    title: impl Into<String>,
    detail: impl Into<String>,
) -> Check {
    Check {
        id: id.into(),
        level,
        title: title.into(),
        detail: detail.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, f: impl Into<String>) -> Check {
        self.fix = Some(f.into());
        self
    }
}

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
    /// Containers on this node.
    pub cts: Vec<ExistingCt>,
}

/// The node facts script. Read-only; prints `key=value` lines; always exits 0. It finds tools
/// on the caller's PATH first (as the rest of provision does), then in the system directories.
/// Arguments:
/// `tmpl=STORAGE` (list that template storage) and `file=PATH` (hash a node file).
pub const FACTS_SCRIPT: &str = r#"export PATH="${PATH:+$PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" LC_ALL=C
echo "uid=$(id -u 2>/dev/null)"
echo "arch=$(uname -m 2>/dev/null)"
echo "kernel=$(uname -r 2>/dev/null)"
for t in pct pveam pvesm pvesh pveversion curl; do
  if p=$(command -v "$t" 2>/dev/null); then echo "tool=$t $p"; fi
done
if command -v pveversion >/dev/null 2>&1; then
  pveversion -v 2>/dev/null | grep -E '^(proxmox-ve|pve-manager|pve-container|lxc-pve|lxcfs|zfsutils-linux):' | sed 's/^/pveversion=/'
fi
echo "cgroup_fs=$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)"
if [ -e /dev/fuse ]; then echo "dev_fuse=$(stat -L -c '%F|%t|%T|%a' /dev/fuse 2>/dev/null)"; fi
if [ -r /sys/module/zfs/version ]; then echo "zfs_version=$(cat /sys/module/zfs/version)"; fi
for k in maxkeys maxbytes; do
  if [ -r "/proc/sys/kernel/keys/$k" ]; then echo "keys_$k=$(cat "/proc/sys/kernel/keys/$k")"; fi
done
if [ -r /proc/key-users ]; then sed -n 's/^ *100000: */key_users_100000=/p' /proc/key-users; fi
for f in subuid subgid; do
  if [ -r "/etc/$f" ]; then echo "${f}_file=1"; grep -E '^(root|0):' "/etc/$f" | sed "s/^/$f=/"; fi
done
if command -v systemctl >/dev/null 2>&1; then echo "syscalld=$(systemctl is-active pve-lxc-syscalld 2>/dev/null)"; fi
if command -v pvesm >/dev/null 2>&1; then
  for c in rootdir vztmpl; do
    out=$(pvesm status --content "$c" 2>&1); echo "pvesm_${c}_rc=$?"
    printf '%s\n' "$out" | sed "s/^/pvesm_$c=/"
  done
fi
if command -v pveam >/dev/null 2>&1; then
  pveam available --section system 2>/dev/null | sed 's/^/pveam_available=/'
fi
for a in "$@"; do
  case "$a" in
    tmpl=*) s=${a#tmpl=}
      if command -v pveam >/dev/null 2>&1; then
        out=$(pveam list "$s" 2>&1); echo "pveam_list_rc=$s $?"
        printf '%s\n' "$out" | while IFS= read -r l; do echo "pveam_list=$s $l"; done
      fi ;;
    file=*) f=${a#file=}
      if [ -f "$f" ]; then
        echo "file_sha256=$(sha256sum < "$f" | cut -d' ' -f1) $f"
        echo "file_head=$(od -An -tx1 -N20 "$f" | tr -d ' \n') $f"
      else
        echo "file_missing=$f"
      fi ;;
  esac
done
for f in /etc/pve/lxc/*.conf; do
  [ -f "$f" ] || continue
  id=${f##*/}; id=${id%.conf}
  u=$(sed -n 's/^unprivileged: *//p' "$f" | head -n 1)
  h=$(sed -n 's/^hostname: *//p' "$f" | head -n 1)
  echo "ct=$id ${u:-0} $h"
done
exit 0
"#;

/// Where the fuse-overlayfs binary of a profile is on the node, if it comes from the node.
fn fuse_node_path(p: &Profile) -> Option<String> {
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
        if p.docker.install != "none"
            && matches!(
                p.docker.storage_driver,
                Driver::FuseOverlayfs | Driver::Auto
            )
            && let Some(path) = fuse_node_path(p)
        {
            args.insert(format!("file={path}"));
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

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.trim().parse().ok()
}

/// Parses `a/b` into (a, b).
fn pair(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('/')?;
    Some((num(a)?, num(b)?))
}

/// Parses root's `root:100000:65536` (another user's line is None).
fn id_range(s: &str) -> Option<(u64, u64)> {
    let mut it = s.split(':');
    if !matches!(it.next()?, "root" | "0") {
        return None;
    }
    Some((num(it.next()?)?, num(it.next()?)?))
}

/// Storages from `pvesm status` text, without lines that are warnings rather than storages.
fn storages(text: &str) -> Vec<Storage> {
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
            "dev_fuse" => {
                let parts: Vec<&str> = v.split('|').collect();
                if let [kind, major, minor, mode] = parts.as_slice() {
                    f.dev_fuse = Some(DevFuse {
                        kind: kind.to_string(),
                        major: u32::from_str_radix(major.trim(), 16).unwrap_or(0),
                        minor: u32::from_str_radix(minor.trim(), 16).unwrap_or(0),
                        mode: u32::from_str_radix(mode.trim(), 8).unwrap_or(0),
                    });
                }
            }
            "zfs_version" if !v.trim().is_empty() => f.zfs_version = Some(v.trim().to_string()),
            "keys_maxkeys" => f.maxkeys = num(v),
            "keys_maxbytes" => f.maxbytes = num(v),
            "key_users_100000" => {
                let w: Vec<&str> = v.split_whitespace().collect();
                if let [_refs, _nkeys, keys, bytes, ..] = w.as_slice()
                    && let (Some((k, mk)), Some((b, mb))) = (pair(keys), pair(bytes))
                {
                    f.key_usage = Some(KeyUsage {
                        keys: k,
                        max_keys: mk,
                        bytes: b,
                        max_bytes: mb,
                    });
                }
            }
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
            "ct" => {
                let mut w = v.splitn(3, ' ');
                if let (Some(id), Some(u)) = (w.next().and_then(num), w.next()) {
                    f.cts.push(ExistingCt {
                        vmid: id,
                        unprivileged: u.trim() == "1",
                        hostname: w.next().unwrap_or("").trim().to_string(),
                    });
                }
            }
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

// ---------------------------------------------------------------------------------------------
// Evaluation (pure).

/// Keys each unprivileged container is budgeted in the shared quota of uid 100000.
pub const KEYS_PER_CONTAINER: u64 = 50;
/// Keys budgeted for everything else charged to uid 100000 (the kernel's default limit).
pub const KEYS_BASE: u64 = 200;
/// Bytes budgeted per key (the kernel's default ratio: 20000 bytes for 200 keys).
pub const BYTES_PER_KEY: u64 = 100;

/// The key quota `n` unprivileged containers need: (keys, bytes).
pub fn keys_needed(n: u64) -> (u64, u64) {
    let keys = KEYS_BASE + KEYS_PER_CONTAINER * n;
    (keys, keys * BYTES_PER_KEY)
}

/// Parses a kernel release like `6.8.12-4-pve` into (6, 8).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(['.', '-']);
    Some((num(it.next()?)?, num(it.next()?)?))
}

/// True when the ranges (start, count) together cover `[start, start + count)`.
pub fn covers(ranges: &[(u64, u64)], start: u64, count: u64) -> bool {
    let mut r: Vec<(u64, u64)> = ranges.iter().map(|&(s, c)| (s, s + c)).collect();
    r.sort();
    let mut reach = start;
    for (s, e) in r {
        if s > reach {
            break;
        }
        reach = reach.max(e);
    }
    reach >= start + count
}

fn template_storage(p: &Profile) -> String {
    match p.template.split_once(':') {
        Some((s, _)) => s.to_string(),
        None => p.template_storage.clone(),
    }
}

fn uses_docker(p: &Profile) -> bool {
    p.docker.install != "none"
}

fn gib(kib: u64) -> String {
    format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
}

/// What the facts make of one request's storage driver: (driver, reason) after `auto`.
fn effective_driver(f: &HostFacts, p: &Profile) -> (Driver, String, (Driver, String)) {
    let kind = f
        .rootdir
        .iter()
        .find(|s| s.name == p.rootfs.storage)
        .map(|s| s.kind.as_str());
    let auto = plan::decide_driver(kind, f.zfs().as_deref());
    match p.docker.storage_driver {
        Driver::Auto => (auto.0, format!("auto: {}", auto.1), auto),
        d => (d, format!("{} (set by the profile)", d.as_str()), auto),
    }
}

/// Decides every check from the facts and the containers asked for. Pure.
pub fn evaluate(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
    // `rootfs.storage = "auto"`: the storage a real run would choose on this node.
    let roots: Vec<Storage> = f
        .rootdir
        .iter()
        .map(|s| Storage {
            content: vec!["rootdir".into()],
            ..s.clone()
        })
        .collect();
    let mut pin_errors = Vec::new();
    let reqs: Vec<Request> = reqs
        .iter()
        .map(|r| match crate::rootdisk::pin_storage(&r.profile, &roots, None) {
            Ok(Some((p, _))) => Request {
                profile: p,
                ..r.clone()
            },
            Ok(None) => r.clone(),
            Err(e) => {
                pin_errors.push(
                    check(
                        format!("rootfs-auto:{}", r.profile.name),
                        Level::Fail,
                        "root disk storage (rootfs.storage = \"auto\")",
                        e.message,
                    )
                    .fix("allow root disks on a storage (pvesm set STORAGE --content rootdir,images) or set rootfs.storage"),
                );
                r.clone()
            }
        })
        .collect();
    let reqs = reqs.as_slice();
    let mut out = vec![
        check_root(f),
        check_tools(f),
        check_versions(f),
        check_kernel(f, reqs),
    ];
    out.push(check_cgroup(f));
    out.push(check_fuse(f, reqs));
    if reqs.iter().any(|r| r.profile.features.mknod) {
        out.push(check_syscalld(f));
    }
    out.push(check_ids("subuid", &f.subuid, f.subuid_file));
    out.push(check_ids("subgid", &f.subgid, f.subgid_file));
    out.push(check_keys(f, reqs));
    out.push(check_zfs(f));
    out.extend(check_storages(f, reqs));
    out.extend(check_templates(f, reqs));
    out.extend(check_drivers(f, reqs));
    out.extend(check_fuse_sources(f, reqs));
    out.extend(pin_errors);
    // Ids are unique: two entries that differ only in a setting the id does not show (say, a
    // pinned sha256) get `#2`, `#3`...
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in &mut out {
        let n = seen.entry(c.id.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            c.id = format!("{}#{n}", c.id);
        }
    }
    out
}

fn check_root(f: &HostFacts) -> Check {
    let title = "running as root";
    match f.uid {
        Some(0) => check("root", Level::Ok, title, "uid 0"),
        Some(u) => check("root", Level::Fail, title, format!("running as uid {u}"))
            .fix("run provision as root on the node (pct needs root@pam to set the keyctl, fuse and mknod features), or reach the node as root with --host root@NODE"),
        None => check("root", Level::Fail, title, "the user id could not be read")
            .fix("run provision as root on the node"),
    }
}

const PVE_TOOLS: &[&str] = &["pct", "pveam", "pvesm", "pvesh"];

fn pve_tools_missing(f: &HostFacts) -> Vec<&'static str> {
    PVE_TOOLS
        .iter()
        .copied()
        .filter(|t| !f.tools.contains_key(*t))
        .collect()
}

fn check_tools(f: &HostFacts) -> Check {
    let title = "Proxmox VE tools (pct, pveam, pvesm, pvesh)";
    let missing = pve_tools_missing(f);
    if missing.is_empty() {
        let found: Vec<String> = PVE_TOOLS
            .iter()
            .map(|t| f.tools.get(*t).cloned().unwrap_or_default())
            .collect();
        check("pve-tools", Level::Ok, title, found.join(", "))
    } else {
        check(
            "pve-tools",
            Level::Fail,
            title,
            format!("not found: {}", missing.join(", ")),
        )
        .fix("run provision on a Proxmox VE node, or reach one with --host root@NODE (pct comes with pve-container, pveam/pvesh with pve-manager, pvesm with libpve-storage-perl)")
    }
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

fn check_versions(f: &HostFacts) -> Check {
    let title = "Proxmox VE version (pveversion -v)";
    if !f.tools.contains_key("pveversion") {
        return if f.tools.contains_key("pct") {
            check("pve-version", Level::Warn, title, "pveversion is not installed: package versions unknown (a lab node without pve-manager?)")
                .fix("on a real PVE node pveversion comes with pve-manager; on a lab node this is expected")
        } else {
            check(
                "pve-version",
                Level::Warn,
                title,
                "not checked: no Proxmox VE tools here",
            )
        };
    }
    let shown: Vec<String> = ["pve-manager", "pve-container", "lxc-pve"]
        .iter()
        .filter_map(|k| {
            let v = f.pve_versions.get(*k)?;
            Some(format!("{k} {}", v.split_whitespace().next().unwrap_or("")))
        })
        .collect();
    let major = f
        .pve_versions
        .get("pve-manager")
        .and_then(|v| v.split(['.', ' ']).next())
        .and_then(|m| m.parse::<u32>().ok());
    let release = f.caps().describe();
    match major {
        Some(m) if m >= 8 => check(
            "pve-version",
            Level::Ok,
            title,
            format!("{release}: {}", shown.join(", ")),
        ),
        Some(_) => check(
            "pve-version",
            Level::Warn,
            title,
            format!("{}: Proxmox VE before 8 is end of life, and an old pve-container refuses newer templates (`unsupported Ubuntu version`)", shown.join(", ")),
        )
        .fix("upgrade the node to Proxmox VE 8 or later, or use a template of its time"),
        None => check(
            "pve-version",
            Level::Warn,
            title,
            "pveversion -v did not show pve-manager's version",
        ),
    }
}

fn check_kernel(f: &HostFacts, reqs: &[Request]) -> Check {
    let title = "kernel (uname -r)";
    let mknod = reqs.iter().any(|r| r.profile.features.mknod);
    match kernel_version(&f.kernel) {
        Some(v) if v >= (5, 11) => check(
            "kernel",
            Level::Ok,
            title,
            format!("{}: overlayfs in user namespaces (5.11+) and mknod (5.3+) work", f.kernel),
        ),
        Some(v) if v >= (5, 3) => check(
            "kernel",
            Level::Warn,
            title,
            format!("{}: older than 5.11, overlayfs cannot be mounted in an unprivileged container, so overlay2 does not work there", f.kernel),
        )
        .fix("use storage_driver = \"fuse-overlayfs\", or upgrade the node's kernel"),
        Some(_) => check(
            "kernel",
            if mknod { Level::Fail } else { Level::Warn },
            title,
            format!("{}: older than 5.3, the mknod feature does not work and overlay2 cannot run in a container", f.kernel),
        )
        .fix("upgrade the node (Proxmox VE 8 ships 6.x kernels), or set features.mknod = false"),
        None => check("kernel", Level::Warn, title, format!("cannot read the kernel release {:?}", f.kernel)),
    }
}

fn check_cgroup(f: &HostFacts) -> Check {
    let title = "cgroup version (stat -f /sys/fs/cgroup)";
    match f.cgroup_fs.as_str() {
        "cgroup2fs" => check("cgroup", Level::Ok, title, "cgroup2fs: the unified cgroup v2 hierarchy"),
        "" => check("cgroup", Level::Warn, title, "the filesystem type of /sys/fs/cgroup could not be read"),
        other => check(
            "cgroup",
            Level::Warn,
            title,
            format!("{other}: a cgroup v1 or hybrid layout; Docker in unprivileged containers expects cgroup v2 (the default since Proxmox VE 7)"),
        )
        .fix("remove systemd.unified_cgroup_hierarchy=0 from the kernel command line and reboot the node"),
    }
}

fn check_fuse(f: &HostFacts, reqs: &[Request]) -> Check {
    let title = "/dev/fuse";
    let needed = reqs.iter().any(|r| r.profile.features.fuse);
    let bad = if needed { Level::Fail } else { Level::Warn };
    let why = if needed {
        "a profile enables the fuse feature (fuse-overlayfs needs it)"
    } else {
        "no profile here enables fuse"
    };
    match &f.dev_fuse {
        None => check("dev-fuse", bad, title, format!("/dev/fuse does not exist; {why}"))
            .fix("load the fuse module: `modprobe fuse` (and add `fuse` to /etc/modules-load.d/fuse.conf)"),
        Some(d) if d.kind != "character special file" || (d.major, d.minor) != (10, 229) => check(
            "dev-fuse",
            bad,
            title,
            format!("/dev/fuse is a {} {}:{}, not the fuse character device 10:229; {why}", d.kind, d.major, d.minor),
        )
        .fix("remove it and `modprobe fuse` (the kernel creates /dev/fuse as char 10:229)"),
        Some(d) if d.mode & 0o006 != 0o006 => check(
            "dev-fuse",
            bad,
            title,
            format!("/dev/fuse has mode {:04o}: a container's root (uid 100000 on the node) cannot open it; {why}", d.mode),
        )
        .fix("chmod 0666 /dev/fuse (the kernel's and PVE's default; look for a udev rule that changes it)"),
        Some(d) => check(
            "dev-fuse",
            Level::Ok,
            title,
            format!("character device 10:229, mode {:04o}", d.mode),
        ),
    }
}

fn check_syscalld(f: &HostFacts) -> Check {
    let title = "pve-lxc-syscalld (the mknod feature)";
    match f.syscalld.as_deref() {
        Some("active") => check("syscalld", Level::Ok, title, "active"),
        Some(s) => check(
            "syscalld",
            Level::Warn,
            title,
            format!("pve-lxc-syscalld is {:?}: containers with mknod=1 cannot create device nodes", if s.is_empty() { "not running" } else { s }),
        )
        .fix("systemctl enable --now pve-lxc-syscalld (part of pve-container), or set features.mknod = false"),
        None => check("syscalld", Level::Warn, title, "not checked: no systemctl here"),
    }
}

fn check_ids(which: &str, ranges: &[(u64, u64)], readable: bool) -> Check {
    let title = format!("/etc/{which} range of root for 100000:65536");
    let fix = format!(
        "add `root:100000:65536` to /etc/{which} (what Proxmox VE installs; the default unprivileged idmap uses it)"
    );
    if !readable {
        return check(
            which,
            Level::Warn,
            title,
            format!("/etc/{which} does not exist or cannot be read"),
        )
        .fix(fix);
    }
    if covers(ranges, 100_000, 65_536) {
        let shown: Vec<String> = ranges.iter().map(|(s, c)| format!("{s}:{c}")).collect();
        check(
            which,
            Level::Ok,
            title,
            format!("root has {}", shown.join(", ")),
        )
    } else if ranges.is_empty() {
        check(
            which,
            Level::Warn,
            title,
            format!("root has no range in /etc/{which}"),
        )
        .fix(fix)
    } else {
        let shown: Vec<String> = ranges.iter().map(|(s, c)| format!("{s}:{c}")).collect();
        check(
            which,
            Level::Warn,
            title,
            format!(
                "root's ranges {} do not cover 100000-165535",
                shown.join(", ")
            ),
        )
        .fix(fix)
    }
}

/// Unprivileged containers sharing uid 100000's key quota: those on the node, plus the ones
/// asked for that do not exist yet (by hostname; a request without a name counts as new).
fn unprivileged_count(f: &HostFacts, reqs: &[Request]) -> u64 {
    let existing: BTreeSet<String> = f
        .cts
        .iter()
        .filter(|c| c.unprivileged)
        .map(|c| c.hostname.to_lowercase())
        .collect();
    let mut new_names = BTreeSet::new();
    let mut unnamed = 0;
    for r in reqs.iter().filter(|r| r.profile.unprivileged) {
        let h = r.hostname.to_lowercase();
        if h.is_empty() {
            unnamed += 1;
        } else if !existing.contains(&h) {
            new_names.insert(h);
        }
    }
    let on_node = f.cts.iter().filter(|c| c.unprivileged).count();
    (on_node + new_names.len() + unnamed) as u64
}

fn check_keys(f: &HostFacts, reqs: &[Request]) -> Check {
    let title = "kernel key quota of uid 100000 (shared by all unprivileged containers)";
    let n = unprivileged_count(f, reqs);
    let (need_keys, need_bytes) = keys_needed(n);
    let (Some(mk), Some(mb)) = (f.maxkeys, f.maxbytes) else {
        return check(
            "keyring",
            Level::Warn,
            title,
            "/proc/sys/kernel/keys/maxkeys or maxbytes could not be read",
        );
    };
    let fix = format!(
        "raise the quota: `sysctl -w kernel.keys.maxkeys={} kernel.keys.maxbytes={}` and keep it in /etc/sysctl.d/90-provision-keys.conf (LXD's production setup uses 2000 and 2000000)",
        need_keys.max(2000),
        need_bytes.max(2_000_000)
    );
    if let Some(u) = &f.key_usage
        && (u.keys * 10 >= u.max_keys * 9 || u.bytes * 10 >= u.max_bytes * 9)
    {
        return check(
            "keyring",
            Level::Fail,
            title,
            format!(
                "uid 100000 already uses {}/{} keys and {}/{} bytes: new Docker containers fail with `join session keyring: disk quota exceeded`",
                u.keys, u.max_keys, u.bytes, u.max_bytes
            ),
        )
        .fix(fix);
    }
    let used = f
        .key_usage
        .as_ref()
        .map(|u| format!("; in use now: {} keys, {} bytes", u.keys, u.bytes))
        .unwrap_or_default();
    let found = format!(
        "maxkeys {mk}, maxbytes {mb}; {n} unprivileged container(s) need {need_keys} keys and {need_bytes} bytes (200 + 50 per container, 100 bytes a key){used}"
    );
    if mk < need_keys || mb < need_bytes {
        check("keyring", Level::Warn, title, found).fix(fix)
    } else {
        check("keyring", Level::Ok, title, found)
    }
}

fn check_zfs(f: &HostFacts) -> Check {
    let title = "host ZFS version (/sys/module/zfs/version)";
    match f.zfs().as_deref() {
        None => check(
            "zfs",
            Level::Ok,
            title,
            "ZFS is not loaded: no zfspool root disks here",
        ),
        Some(v) => {
            let (d, _) = plan::decide_driver(Some("zfspool"), Some(v));
            let what = if d == Driver::Overlay2 {
                "2.2 or later: overlay2 works on zfspool root disks"
            } else {
                "older than 2.2: zfspool root disks need fuse-overlayfs"
            };
            check("zfs", Level::Ok, title, format!("ZFS {v}, {what}"))
        }
    }
}

fn pvesm_unavailable(f: &HostFacts) -> Option<String> {
    (!f.tools.contains_key("pvesm")).then(|| "not checked: pvesm is not available here".to_string())
}

fn check_storages(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
    let mut out = Vec::new();
    // Root disks: storage -> (GiB asked for new containers, count).
    let mut roots: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for r in reqs {
        let e = roots.entry(r.profile.rootfs.storage.clone()).or_default();
        let exists = !r.hostname.is_empty()
            && f.cts
                .iter()
                .any(|c| c.hostname.eq_ignore_ascii_case(&r.hostname));
        if !exists {
            e.0 += r.profile.rootfs.size;
            e.1 += 1;
        }
    }
    for (name, (size, count)) in &roots {
        let id = format!("storage:{name}");
        let title = format!("root disk storage {name} (pvesm status --content rootdir)");
        if let Some(why) = pvesm_unavailable(f) {
            out.push(check(id, Level::Warn, title, why));
            continue;
        }
        let Some(s) = f.rootdir.iter().find(|s| &s.name == name) else {
            let others: Vec<&str> = f.rootdir.iter().map(|s| s.name.as_str()).collect();
            out.push(
                check(
                    id,
                    Level::Fail,
                    title,
                    format!(
                        "{name} does not exist or does not allow container root disks; storages that do: {}",
                        if others.is_empty() { "none".to_string() } else { others.join(", ") }
                    ),
                )
                .fix(format!("set rootfs.storage to one of them (or --storage), or allow root disks on it: pvesm set {name} --content rootdir,...")),
            );
            continue;
        };
        if s.status != "active" {
            out.push(
                check(id, Level::Fail, title, format!("{name} ({}) is {}", s.kind, s.status))
                    .fix(format!("enable or repair storage {name} (pvesm status shows why), or use another storage")),
            );
            continue;
        }
        let need_kib = (size * 1024.0 * 1024.0) as u64;
        let found = format!(
            "{name} ({}) is active, {} free; {count} new root disk(s) of {} GiB in all",
            s.kind,
            gib(s.avail_kib),
            plan::fmt_gib(*size)
        );
        if s.avail_kib < need_kib {
            out.push(
                check(
                    id,
                    Level::Warn,
                    title,
                    format!("{found}: not enough if they fill up (most storages are thin)"),
                )
                .fix("free space on it, use smaller root disks (rootfs.size), or another storage"),
            );
        } else {
            out.push(check(id, Level::Ok, title, found));
        }
    }
    // Template storages.
    let tstores: BTreeSet<String> = reqs.iter().map(|r| template_storage(&r.profile)).collect();
    for name in tstores {
        let id = format!("template-storage:{name}");
        let title = format!("template storage {name} (pvesm status --content vztmpl)");
        if let Some(why) = pvesm_unavailable(f) {
            out.push(check(id, Level::Warn, title, why));
            continue;
        }
        match f.vztmpl.iter().find(|s| s.name == name) {
            None => {
                let others: Vec<&str> = f.vztmpl.iter().map(|s| s.name.as_str()).collect();
                out.push(
                    check(
                        id,
                        Level::Fail,
                        title,
                        format!(
                            "{name} does not exist or does not allow templates; storages that do: {}",
                            if others.is_empty() { "none".to_string() } else { others.join(", ") }
                        ),
                    )
                    .fix("set template_storage to one of them, or allow templates on it: pvesm set NAME --content vztmpl,..."),
                )
            }
            Some(s) if s.status != "active" => out.push(
                check(
                    id,
                    Level::Fail,
                    title,
                    format!("{name} ({}) is {}", s.kind, s.status),
                )
                .fix(format!("enable or repair storage {name}")),
            ),
            Some(s) if s.avail_kib < 1024 * 1024 => out.push(
                check(
                    id,
                    Level::Warn,
                    title,
                    format!(
                        "{name} ({}) has only {} free; a template takes up to a few hundred MiB",
                        s.kind,
                        gib(s.avail_kib)
                    ),
                )
                .fix(format!("free space on {name}")),
            ),
            Some(s) => out.push(check(
                id,
                Level::Ok,
                title,
                format!("{name} ({}) is active, {} free", s.kind, gib(s.avail_kib)),
            )),
        }
    }
    out
}

fn check_templates(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for r in reqs {
        let p = &r.profile;
        let storage = template_storage(p);
        if !seen.insert((p.template.clone(), storage.clone())) {
            continue;
        }
        let id = format!("template:{storage}:{}", p.template);
        let title = format!("template {} on {storage} (pveam)", p.template);
        if !f.tools.contains_key("pveam") {
            out.push(check(
                id,
                Level::Warn,
                title,
                "not checked: pveam is not available here",
            ));
            continue;
        }
        let (rc, present, text) =
            f.template_lists
                .get(&storage)
                .cloned()
                .unwrap_or((-1, Vec::new(), String::new()));
        if rc != 0 {
            out.push(check(
                id,
                Level::Warn,
                title,
                format!(
                    "`pveam list {storage}` failed: {}",
                    text.trim().lines().last().unwrap_or("no output")
                ),
            ));
            continue;
        }
        let tf = TemplateFacts {
            present,
            available: f.available.clone(),
        };
        let mut notes = Vec::new();
        match plan::resolve_template(p, &tf, &f.caps(), &mut notes) {
            Err(e) => out.push(
                check(id, Level::Fail, title, format!("{e:#}"))
                    .fix("use a short form that `pveam available --section system` lists (e.g. ubuntu-24.04, debian-12) or a volume id like local:vztmpl/NAME.tar.zst"),
            ),
            Ok((volid, steps)) => {
                let c = if steps.iter().any(|s| matches!(s, Step::UpdateTemplateIndex)) {
                    check(id, Level::Warn, title, format!("the template index is empty (pveam update never ran); a run updates it first and then takes the newest {}", p.template))
                        .fix("pveam update")
                } else if let Some(Step::DownloadTemplate { name, .. }) = steps.first() {
                    if p.template.contains(':') && !tf.available.iter().any(|a| a == name) {
                        check(id, Level::Fail, title, format!("{volid} is not on the storage and the index does not offer {name}"))
                            .fix("download it (pveam download), or use a short form like ubuntu-24.04")
                    } else {
                        check(id, Level::Ok, title, format!("{volid}: downloaded on the first run"))
                    }
                } else {
                    check(id, Level::Ok, title, format!("{volid} is present"))
                };
                let c = match notes.first() {
                    Some(n) if c.level == Level::Ok => Check {
                        detail: format!("{}; {n}", c.detail),
                        ..c
                    },
                    _ => c,
                };
                out.push(c);
            }
        }
    }
    out
}

fn check_drivers(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let kernel = kernel_version(&f.kernel);
    for r in reqs.iter().filter(|r| uses_docker(&r.profile)) {
        let p = &r.profile;
        let key = (
            p.name.clone(),
            p.rootfs.storage.clone(),
            p.docker.storage_driver.as_str(),
            p.features.fuse,
        );
        if !seen.insert(key) {
            continue;
        }
        let id = format!("driver:{}@{}", p.name, p.rootfs.storage);
        let title = format!(
            "Docker storage driver for profile {} on {}",
            p.name, p.rootfs.storage
        );
        let (d, reason, (auto, auto_reason)) = effective_driver(f, p);
        let kind = f
            .rootdir
            .iter()
            .find(|s| s.name == p.rootfs.storage)
            .map(|s| s.kind.as_str());
        let zfspool = kind == Some("zfspool");
        let shown = match p.docker.storage_driver {
            Driver::Auto => format!("{}, {reason}", d.as_str()),
            _ => reason.clone(),
        };
        let c = if let Some(why) =
            pvesm_unavailable(f).filter(|_| p.docker.storage_driver == Driver::Auto)
        {
            check(id, Level::Warn, title, why)
        } else if kind.is_none() && p.docker.storage_driver == Driver::Auto {
            check(
                id,
                Level::Warn,
                title,
                format!(
                    "auto cannot decide: storage {} is not known as a root disk storage here",
                    p.rootfs.storage
                ),
            )
            .fix("set rootfs.storage to a storage that allows root disks (see its check)")
        } else if d == Driver::FuseOverlayfs && !p.features.fuse {
            check(id, Level::Fail, title, format!("{reason}, but the profile has features.fuse off"))
                .fix("set features.fuse = true, or storage_driver = \"vfs\", or put the root disk on a storage that hosts overlayfs")
        } else if d == Driver::Overlay2 && auto == Driver::FuseOverlayfs && f.zfs().is_some() {
            check(
                id,
                Level::Fail,
                title,
                format!("overlay2 (set by the profile), but {auto_reason}: Docker does not start"),
            )
            .fix("use storage_driver = \"auto\" (profile docker-auto) or \"fuse-overlayfs\"")
        } else if d == Driver::Overlay2 && kernel.is_some_and(|k| k < (5, 11)) {
            check(id, Level::Fail, title, format!("{reason}, but the kernel {} is older than 5.11 and cannot mount overlayfs in an unprivileged container", f.kernel))
                .fix("use storage_driver = \"fuse-overlayfs\", or upgrade the node's kernel")
        } else if d == Driver::Vfs {
            check(
                id,
                Level::Warn,
                title,
                "vfs (set by the profile): every image layer is a full copy, slow and large",
            )
            .fix("use storage_driver = \"auto\"")
        } else if zfspool && f.zfs().is_none() {
            check(id, Level::Warn, title, shown)
                .fix("check that the zfs module is loaded (/sys/module/zfs/version) so that auto can decide")
        } else if d == Driver::FuseOverlayfs
            && auto == Driver::Overlay2
            && p.docker.storage_driver != Driver::Auto
            && kind.is_some()
        {
            check(id, Level::Ok, title, format!("{reason}; auto would pick overlay2 here ({auto_reason})"))
                .fix("hint: storage_driver = \"auto\" (profile docker-auto) uses overlay2 here, much faster than fuse-overlayfs")
        } else {
            check(id, Level::Ok, title, shown)
        };
        out.push(c);
    }
    out
}

/// ELF `e_machine` (little-endian hex of bytes 18-19) of `uname -m`.
fn elf_machine(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "x86_64" => "3e00",
        "aarch64" | "arm64" => "b700",
        "i386" | "i486" | "i586" | "i686" => "0300",
        "riscv64" => "f300",
        "ppc64le" => "1500",
        _ => return None,
    })
}

fn check_fuse_sources(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for r in reqs.iter().filter(|r| uses_docker(&r.profile)) {
        let p = &r.profile;
        if effective_driver(f, p).0 != Driver::FuseOverlayfs {
            continue;
        }
        let src = &p.docker.fuse_overlayfs;
        if !seen.insert(format!("{src:?}")) {
            continue;
        }
        out.push(match src {
            FuseSource::Package => check(
                "fuse-overlayfs:package",
                Level::Ok,
                "fuse-overlayfs from the container's package",
                "installed from the container's distribution (package fuse-overlayfs: Ubuntu 20.04+, Debian 11+), linked at /usr/local/bin/fuse-overlayfs",
            ),
            FuseSource::Node { path, sha256 } => check_node_binary(f, path, sha256.as_deref()),
            FuseSource::Url { url, sha256 } => check_url_binary(f, url, sha256),
        });
    }
    out
}

fn check_node_binary(f: &HostFacts, path: &str, pinned: Option<&str>) -> Check {
    let id = format!("fuse-overlayfs:node:{path}");
    let title = format!("fuse-overlayfs binary {path} on the node");
    let Some(file) = f.files.get(path) else {
        let detail = if f.missing_files.contains(path) {
            format!("{path} does not exist on the node")
        } else {
            format!("{path} was not checked")
        };
        return check(id, Level::Fail, title, detail).fix(
            "put the binary there, or set docker.fuse_overlayfs.source = \"package\" (the container's own package) or \"url\" with a sha256",
        );
    };
    if !file.head.starts_with("7f454c46") {
        return check(
            id,
            Level::Fail,
            title,
            format!("{path} is not an ELF executable (a script or a damaged file?)"),
        )
        .fix("replace it with the real fuse-overlayfs binary, or use source = \"package\"");
    }
    let mach = file.head.get(36..40).unwrap_or("");
    if let Some(want) = elf_machine(&f.arch)
        && mach != want
    {
        return check(id, Level::Fail, title, format!("{path} is not built for this node's architecture {} (ELF machine {mach}); containers have the node's architecture", f.arch))
            .fix("use a fuse-overlayfs built for this architecture, or source = \"package\"");
    }
    match pinned {
        Some(want) if want != file.sha256 => check(
            id,
            Level::Fail,
            title,
            format!("{path} has SHA-256 {}, but the profile pins {want}: provision refuses to push it", file.sha256),
        )
        .fix("put the pinned binary there, or pin the one that is there if you trust it"),
        Some(_) => check(id, Level::Ok, title, format!("ELF for {}, SHA-256 matches the pinned {}", f.arch, &file.sha256[..12.min(file.sha256.len())])),
        None => check(id, Level::Ok, title, format!("ELF for {}, SHA-256 {}, not pinned", f.arch, file.sha256))
            .fix(format!("hint: pin it with sha256 = \"{}\" in [docker.fuse_overlayfs] so that a changed binary is refused", file.sha256)),
    }
}

fn check_url_binary(f: &HostFacts, url: &str, sha256: &str) -> Check {
    let path = plan::fuse_cache_path(sha256);
    let id = format!("fuse-overlayfs:url:{url}");
    let title = format!("fuse-overlayfs from {url}");
    match f.files.get(&path) {
        Some(file) if file.sha256 == sha256 => check(id, Level::Ok, title, format!("downloaded before: {path}")),
        Some(file) => check(
            id,
            Level::Fail,
            title,
            format!("the cached {path} has SHA-256 {}: it was changed after the download, provision refuses it", file.sha256),
        )
        .fix(format!("rm {path}; the next run downloads it again")),
        None if f.tools.contains_key("curl") => check(id, Level::Ok, title, format!("downloaded once on the first run into {path} (checked against the sha256)")),
        None => check(id, Level::Fail, title, "not downloaded yet, and curl is not on the node")
            .fix("apt-get install curl on the node, or use source = \"node\" or \"package\""),
    }
}

// ---------------------------------------------------------------------------------------------
// Report.

/// Counts per level.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// OK checks.
    pub ok: usize,
    /// Warnings.
    pub warn: usize,
    /// Failures.
    pub fail: usize,
}

/// The doctor's answer: JSON with `--output json`.
#[derive(Serialize, Clone, Debug)]
pub struct Report {
    /// Where the checks ran ("local", "ssh:root@pve1").
    pub node: String,
    /// True when no check failed.
    pub ok: bool,
    /// Counts.
    pub summary: Summary,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// A report from checks.
    pub fn new(node: impl Into<String>, checks: Vec<Check>) -> Report {
        let count = |l: Level| checks.iter().filter(|c| c.level == l).count();
        let summary = Summary {
            ok: count(Level::Ok),
            warn: count(Level::Warn),
            fail: count(Level::Fail),
        };
        Report {
            node: node.into(),
            ok: summary.fail == 0,
            summary,
            checks,
        }
    }

    /// 1 when a check failed, 0 otherwise (warnings do not fail).
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.ok)
    }

    /// Text for people.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "provision doctor on {}", self.node);
        for c in &self.checks {
            let _ = writeln!(s, "  {:<4}  {}: {}", c.level.word(), c.title, c.detail);
            if let Some(fix) = &c.fix {
                if c.level == Level::Ok {
                    let _ = writeln!(s, "        {fix}");
                } else {
                    let _ = writeln!(s, "        fix: {fix}");
                }
            }
        }
        let _ = writeln!(
            s,
            "{} ok, {} warning(s), {} failure(s)",
            self.summary.ok, self.summary.warn, self.summary.fail
        );
        s
    }
}

/// Gathers the facts through `node` and evaluates them for `reqs`.
pub fn run(node: &dyn Transport, reqs: &[Request]) -> Result<Report> {
    let f = gather(node, reqs)?;
    Ok(Report::new(node.label(), evaluate(&f, reqs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_script_is_valid_sh() {
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", FACTS_SCRIPT])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn id_ranges_cover_across_lines() {
        assert!(covers(&[(100_000, 65_536)], 100_000, 65_536));
        assert!(covers(
            &[(100_000, 30_000), (130_000, 40_000)],
            100_000,
            65_536
        ));
        assert!(!covers(
            &[(100_000, 30_000), (130_001, 40_000)],
            100_000,
            65_536
        ));
        assert!(!covers(&[(165_536, 65_536)], 100_000, 65_536));
        assert!(covers(&[(0, 1_000_000)], 100_000, 65_536));
    }

    #[test]
    fn kernel_releases_parse() {
        assert_eq!(kernel_version("6.8.12-4-pve"), Some((6, 8)));
        assert_eq!(kernel_version("5.4.0"), Some((5, 4)));
        assert_eq!(kernel_version("weird"), None);
    }

    #[test]
    fn key_budget_rule() {
        assert_eq!(keys_needed(0), (200, 20_000));
        assert_eq!(keys_needed(4), (400, 40_000));
    }
}
