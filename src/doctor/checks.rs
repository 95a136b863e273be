//! The checks: pure judgements of the node facts against the profiles, each with a level, what
//! was found and how to fix it.

use super::*;

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

pub(super) fn template_storage(p: &Profile) -> String {
    match p.template.split_once(':') {
        Some((s, _)) => s.to_string(),
        None => p.template_storage.clone(),
    }
}

pub(super) fn uses_docker(p: &Profile) -> bool {
    p.docker.install != crate::profile::DockerInstall::None
}

pub(super) fn gib(kib: u64) -> String {
    format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
}

/// What the facts make of one request's storage driver: (driver, reason) after `auto`.
pub(super) fn effective_driver(f: &HostFacts, p: &Profile) -> (Driver, String, (Driver, String)) {
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
    out.extend(check_devices(f, reqs));
    out.extend(known::checks(f, reqs));
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

pub(super) fn check_root(f: &HostFacts) -> Check {
    let title = "running as root";
    match f.uid {
        Some(0) => check("root", Level::Ok, title, "uid 0"),
        Some(u) => check("root", Level::Fail, title, format!("running as uid {u}"))
            .fix("run provision as root on the node (pct needs root@pam to set the keyctl, fuse and mknod features), or reach the node as root with --host root@NODE"),
        None => check("root", Level::Fail, title, "the user id could not be read")
            .fix("run provision as root on the node"),
    }
}

pub(super) const PVE_TOOLS: &[&str] = &["pct", "pveam", "pvesm", "pvesh"];

pub(super) fn pve_tools_missing(f: &HostFacts) -> Vec<&'static str> {
    PVE_TOOLS
        .iter()
        .copied()
        .filter(|t| !f.tools.contains_key(*t))
        .collect()
}

pub(super) fn check_tools(f: &HostFacts) -> Check {
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

pub(super) fn check_versions(f: &HostFacts) -> Check {
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

pub(super) fn check_kernel(f: &HostFacts, reqs: &[Request]) -> Check {
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

pub(super) fn check_cgroup(f: &HostFacts) -> Check {
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

pub(super) fn check_fuse(f: &HostFacts, reqs: &[Request]) -> Check {
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

pub(super) fn check_syscalld(f: &HostFacts) -> Check {
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

pub(super) fn check_ids(which: &str, ranges: &[(u64, u64)], readable: bool) -> Check {
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
pub(super) fn unprivileged_count(f: &HostFacts, reqs: &[Request]) -> u64 {
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

pub(super) fn check_keys(f: &HostFacts, reqs: &[Request]) -> Check {
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

pub(super) fn check_zfs(f: &HostFacts) -> Check {
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

pub(super) fn pvesm_unavailable(f: &HostFacts) -> Option<String> {
    (!f.tools.contains_key("pvesm")).then(|| "not checked: pvesm is not available here".to_string())
}

/// The root disk storages the profiles name (present, active, room for the new disks), then the
/// template storages.
pub(super) fn check_storages(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
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
    out.extend(check_template_storages(f, reqs));
    out
}

/// The template storages the profiles name: present, active, with room for a template.
fn check_template_storages(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
    let mut out = Vec::new();
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
                );
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

pub(super) fn check_templates(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
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

pub(super) fn check_drivers(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
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
pub(super) fn elf_machine(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "x86_64" => "3e00",
        "aarch64" | "arm64" => "b700",
        "i386" | "i486" | "i586" | "i686" => "0300",
        "riscv64" => "f300",
        "ppc64le" => "1500",
        _ => return None,
    })
}

pub(super) fn check_fuse_sources(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
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

/// Every `[[devices]]` path must be a device node on the node (PVE refuses devN otherwise:
/// "Device PATH does not exist", "PATH is not a device"), and the node must have devN.
pub(super) fn check_devices(f: &HostFacts, reqs: &[Request]) -> Vec<Check> {
    let mut paths: Vec<&str> = reqs
        .iter()
        .flat_map(|r| {
            let gpu = r
                .profile
                .gpu
                .as_ref()
                .map(|_| crate::mounts::devices::GPU_RENDER_NODE);
            r.profile.devices.iter().map(|d| d.path.as_str()).chain(gpu)
        })
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let caps = f.caps();
    paths
        .into_iter()
        .map(|path| {
            let id = format!("device:{path}");
            let title = format!("device {path} on the node");
            let way = if caps.dev_passthrough {
                String::new()
            } else {
                format!(
                    " (pve-container {} has no devN: passed with raw lxc.cgroup2.devices.allow and lxc.mount.entry lines)",
                    caps.container
                )
            };
            match f.device_nodes.get(path).map(String::as_str) {
                Some("c") | Some("b") => check(id, Level::Ok, title, format!("{path} is a device node{way}")),
                Some("other") => check(id, Level::Fail, title, format!("{path} is not a device node (PVE: \"{path} is not a device\")"))
                    .fix("give the device node itself, e.g. /dev/dri/renderD128"),
                Some(_) => check(id, Level::Fail, title, format!("{path} does not exist on the node (PVE: \"Device {path} does not exist\")"))
                    .fix("load its driver on the node (for a GPU: i915/xe for Intel, amdgpu for AMD; `ls -l /dev/dri`), or remove the device from the profile"),
                None => check(id, Level::Warn, title, format!("{path} was not checked")),
            }
        })
        .collect()
}

pub(super) fn check_node_binary(f: &HostFacts, path: &str, pinned: Option<&str>) -> Check {
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

pub(super) fn check_url_binary(f: &HostFacts, url: &str, sha256: &str) -> Check {
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
