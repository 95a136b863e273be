//! The planner: (profile, facts) -> the steps needed, and nothing else. Pure: no I/O.
//!
//! Planning happens in two stages because what is inside a container can only be read once it
//! runs: [`plan_node`] decides template, create/set/start; [`plan_inside`] decides Docker,
//! fuse-overlayfs, daemon.json, files, commands and verification from the facts read inside.
//! Every step renders to the exact commands that will run ([`Step::actions`]); a dry run prints
//! those. Each check that finds nothing to do says so in `already`, so a second run is visibly a
//! no-op.

use crate::cmd::{Cmd, Output};
use crate::error::InputError;
use crate::facts::{
    CtConfig, Guest, InsideFacts, NodeFacts, TemplateFacts, parse_property_string, split_tags,
};
use crate::profile::{Driver, FuseSource, Profile, TOOL_TAG};
use crate::release::{Caps, GuestOs, newest_accepted_ubuntu_lts};
use crate::transport::pct::{NODE_TMP_DIR, Pct};
use anyhow::{Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Where the fuse-overlayfs binary goes inside the container.
pub const FUSE_DEST: &str = "/usr/local/bin/fuse-overlayfs";
/// Docker's configuration file inside the container.
pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";
/// Name of the local probe image (built from busybox, no registry).
pub const PROBE_IMAGE: &str = "provision-probe:1";
/// Where a URL-sourced fuse-overlayfs is cached on the node.
pub const NODE_CACHE_DIR: &str = "/var/cache/provision";

/// The node cache file of a URL-sourced fuse-overlayfs: named after its SHA-256, so a second
/// run (or another container) reuses a download only when it is the very binary asked for.
pub fn fuse_cache_path(sha256: &str) -> String {
    format!("{NODE_CACHE_DIR}/fuse-overlayfs-{sha256}")
}
/// Start of the plan note that forecasts which keys PVE will keep pending (the run reports
/// what PVE really keeps instead).
pub const PENDING_FORECAST: &str =
    "expected to stay pending until a restart (PVE applies these only at start):";

/// Newest template per short form in the PVE index when this version was made (used only to
/// show a plan where no index can be read).
pub const KNOWN_TEMPLATES: &[(&str, &str)] = &[
    (
        "ubuntu-24.04",
        "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
    ),
    (
        "ubuntu-22.04",
        "ubuntu-22.04-standard_22.04-1_amd64.tar.zst",
    ),
    (
        "ubuntu-26.04",
        "ubuntu-26.04-standard_26.04-1_amd64.tar.zst",
    ),
    ("debian-12", "debian-12-standard_12.12-1_amd64.tar.zst"),
    ("debian-13", "debian-13-standard_13.6-1_amd64.tar.zst"),
];

/// Keys that a running container takes at once; others become pending (pve-reference.md).
pub const HOT_KEYS: &[&str] = &[
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
    // Network devices are hot-plugged (bridge, tag, firewall, ip, hwaddr...).
    "net0",
];

/// The line provision adds to the description of a container it adopted, whose own
/// description it keeps.
pub const ADOPTED_MARKER: &str = "(adopted and managed by provision)";

/// The description of an adopted container: `None` when the description is not the adopted
/// kind (the profile's applies), `Some(None)` when it already carries the marker, and
/// `Some(Some(text))` for the container's own text with the marker line added (when adopting
/// a container that has a description).
fn adopted_description(have: Option<&str>, adopting: bool) -> Option<Option<String>> {
    let have = have.filter(|h| !h.trim().is_empty())?;
    if have.lines().any(|l| l.trim() == ADOPTED_MARKER) {
        return Some(None);
    }
    adopting.then(|| Some(format!("{}\n{ADOPTED_MARKER}", have.trim_end())))
}

/// What the user asked for, for one container.
#[derive(Clone, Debug)]
pub struct Request {
    /// Hostname (the container's name).
    pub hostname: String,
    /// Fixed VMID, if asked.
    pub vmid: Option<u32>,
    /// The resolved profile.
    pub profile: Profile,
}

/// Switches that change what the plan may do.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Restart a running container when changes are pending.
    pub restart: bool,
    /// Take over a container the tool did not create.
    pub adopt: bool,
    /// Replace an invalid daemon.json (after a backup) instead of refusing.
    pub force: bool,
    /// Allow changing Docker's storage driver on a container that has one.
    pub allow_storage_switch: bool,
}

/// Facts about where files come from on the node.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SourceFacts {
    /// SHA-256 of the fuse-overlayfs binary that would be pushed (node file or cache), if known.
    pub fuse_sha256: Option<String>,
    /// The node file / cached download exists.
    pub fuse_present: bool,
}

/// Content of a file to be put somewhere.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// Bytes known now.
    Bytes(Arc<Vec<u8>>),
    /// A file already on the node (pct push reads it there).
    NodeFile(String),
}

/// One thing the applier does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Run on the node; a non-zero exit fails the step.
    Node(Cmd),
    /// Run inside the container, with optional stdin (never shown).
    Inside(Cmd, Option<Secret>),
    /// Put a file into the container (atomic callers put to a temp name and rename).
    Put {
        /// Destination inside the container.
        dest: String,
        /// Mode.
        mode: u32,
        /// What goes there.
        content: Content,
        /// Its SHA-256, when known.
        sha256: Option<String>,
    },
    /// Put a private file on the node.
    PutNode {
        /// Path on the node.
        dest: String,
        /// Bytes.
        bytes: Arc<Vec<u8>>,
    },
}

/// Bytes for stdin that must never be shown.
#[derive(Clone, PartialEq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A unit of work with a name, a reason and its actions.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `pveam update` (its exit status lies: the output is checked).
    UpdateTemplateIndex,
    /// `pveam download STORAGE NAME`.
    DownloadTemplate {
        /// Template storage.
        storage: String,
        /// Template file name.
        name: String,
    },
    /// Downloads fuse-overlayfs into the node's cache and checks its SHA-256.
    FetchFuseOverlayfs {
        /// URL.
        url: String,
        /// Expected SHA-256.
        sha256: String,
    },
    /// Choose a VMID (under the node lock) and `pct create`.
    Create {
        /// Fixed VMID, or None for the node's next free one.
        fixed_vmid: Option<u32>,
        /// Template volume id.
        template: String,
        /// `--option value` pairs, in order.
        options: Vec<(String, String)>,
        /// SSH public keys for root (sent through a node file).
        ssh_keys: Option<String>,
    },
    /// `pct set` the keys that differ.
    Set {
        /// key -> new value.
        set: Vec<(String, String)>,
        /// Why (the differences found).
        why: Vec<String>,
    },
    /// Grow the root disk.
    Resize {
        /// New size, e.g. "16G".
        size: String,
    },
    /// `pct start`.
    Start,
    /// `pct reboot` so that pending changes apply.
    Reboot {
        /// The pending keys.
        keys: Vec<String>,
    },
    /// Install Docker and helper packages.
    InstallPackages {
        /// Install Docker itself (distro or docker-ce).
        docker: Option<String>,
        /// Other packages.
        packages: Vec<String>,
    },
    /// Push the fuse-overlayfs binary (atomic, checksum checked, proven to run).
    PushFuseOverlayfs {
        /// Where it comes from.
        content: Content,
        /// Its SHA-256.
        sha256: Option<String>,
    },
    /// Make the package's binary available at /usr/local/bin.
    LinkPackageFuseOverlayfs,
    /// Write daemon.json (atomic, with a backup of the previous file).
    WriteDaemonJson {
        /// New content.
        content: String,
        /// Keys changed.
        why: Vec<String>,
    },
    /// Restart Docker and wait until it answers.
    RestartDocker {
        /// Why.
        why: String,
    },
    /// Write one of the profile's files.
    WriteFile {
        /// Destination.
        dest: String,
        /// Mode.
        mode: u32,
        /// Content.
        bytes: Arc<Vec<u8>>,
    },
    /// Run the profile's commands (once; recorded inside).
    RunCommands {
        /// argv list.
        commands: Vec<Vec<String>>,
        /// Hash recorded when they succeeded.
        marker: String,
    },
    /// Set root's password through chpasswd's stdin.
    SetPassword {
        /// "root:PASSWORD\n", never shown.
        line: Secret,
    },
    /// Prove Docker works: driver and a real container run.
    Verify {
        /// Expected storage driver.
        driver: Driver,
        /// Image to pull and run instead of the local probe.
        image: String,
    },
}

/// A check that found nothing to do.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Already {
    /// Step name.
    pub step: String,
    /// Why nothing is needed.
    pub why: String,
}

/// The node part of a container's plan.
#[derive(Clone, Debug, Default)]
pub struct NodePlan {
    /// Hostname.
    pub hostname: String,
    /// VMID: the existing one, the fixed one, or the proposal (final choice under the lock).
    pub vmid: u32,
    /// True when the VMID is chosen at create time.
    pub vmid_auto: bool,
    /// The container exists already.
    pub exists: bool,
    /// Node the container is on (for API paths).
    pub node: String,
    /// The container runs now.
    pub running: bool,
    /// Steps.
    pub steps: Vec<Step>,
    /// Checks that found nothing to do.
    pub already: Vec<Already>,
    /// Things to tell the user.
    pub notes: Vec<String>,
    /// Storage driver after `auto` was decided.
    pub driver: Option<Driver>,
    /// Why that driver.
    pub driver_reason: String,
    /// Keys that stay pending (restart not allowed).
    pub pending: Vec<String>,
}

/// The in-container part of a plan.
#[derive(Clone, Debug, Default)]
pub struct InsidePlan {
    /// Steps.
    pub steps: Vec<Step>,
    /// Checks that found nothing to do.
    pub already: Vec<Already>,
    /// Notes.
    pub notes: Vec<String>,
}

/// SHA-256 as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

// ---------------------------------------------------------------------------------------------
// Template resolution.

/// Splits a version-ish string into comparable chunks (numbers compare as numbers).
fn natural_key(s: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut num = String::new();
    let mut txt = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !txt.is_empty() {
                out.push((0, std::mem::take(&mut txt)));
            }
            num.push(c);
        } else {
            if !num.is_empty() {
                out.push((num.parse().unwrap_or(0), String::new()));
                num.clear();
            }
            txt.push(c);
        }
    }
    if !num.is_empty() {
        out.push((num.parse().unwrap_or(0), String::new()));
    }
    if !txt.is_empty() {
        out.push((0, txt));
    }
    out
}

/// The newest template name for a short form like `ubuntu-24.04` among `names`.
pub fn newest_match<'a>(short: &str, names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let prefix = format!("{short}-standard_");
    names
        .into_iter()
        .map(|n| n.rsplit('/').next().unwrap_or(n))
        .filter(|n| n.starts_with(&prefix) && n.contains("_amd64.tar."))
        .max_by_key(|n| natural_key(n))
        .map(String::from)
}

/// The short form that stands for the newest Ubuntu LTS the node's pve-container accepts.
pub const UBUNTU_LTS: &str = "ubuntu-lts";

/// Where the template comes from: the volume id to create from, and the steps to get it.
/// A template whose guest version the node's pve-container refuses at create is refused here,
/// before any change, with the reason and the fix.
pub fn resolve_template(
    p: &Profile,
    tf: &TemplateFacts,
    caps: &Caps,
    notes: &mut Vec<String>,
) -> Result<(String, Vec<Step>)> {
    let (volid, steps) = resolve_template_name(p, tf, caps, notes)?;
    if let Some(guest) = GuestOs::from_template(&volid)
        && let Some(refusal) = caps.guest_refusal(&guest)
    {
        let offered: Vec<String> = tf.available.iter().chain(&tf.present).cloned().collect();
        let alternative = newest_accepted_ubuntu_lts(caps, &offered)
            .map(|n| format!(" (here: {})", n.rsplit('/').next().unwrap_or(n)))
            .unwrap_or_default();
        return Err(InputError {
            file: format!("profile {}", p.name),
            line: 0,
            col: 0,
            field: "template".into(),
            message: format!(
                "{volid}: this node's {} refuses it at create (\"{refusal}\"); update pve-container on the node (apt update && apt full-upgrade), or use a template it accepts, e.g. template = \"{UBUNTU_LTS}\"{alternative}",
                caps.describe()
            ),
        }
        .into());
    }
    Ok((volid, steps))
}

fn resolve_template_name(
    p: &Profile,
    tf: &TemplateFacts,
    caps: &Caps,
    notes: &mut Vec<String>,
) -> Result<(String, Vec<Step>)> {
    if let Some((storage, rest)) = p.template.split_once(':') {
        let name = rest.trim_start_matches("vztmpl/").to_string();
        if tf.present.iter().any(|v| v == &p.template) {
            return Ok((p.template.clone(), vec![]));
        }
        return Ok((
            p.template.clone(),
            vec![Step::DownloadTemplate {
                storage: storage.to_string(),
                name,
            }],
        ));
    }
    let storage = &p.template_storage;
    let lts = p.template == UBUNTU_LTS;
    let newest = |names: &[String]| {
        if lts {
            newest_accepted_ubuntu_lts(caps, names)
                .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
        } else {
            newest_match(&p.template, names.iter().map(String::as_str))
        }
    };
    if let Some(name) = newest(&tf.available) {
        if lts {
            notes.push(format!(
                "{UBUNTU_LTS}: {name} is the newest Ubuntu LTS that this node's {} accepts",
                caps.describe()
            ));
        }
        let volid = format!("{storage}:vztmpl/{name}");
        if tf.present.iter().any(|v| v == &volid) {
            return Ok((volid, vec![]));
        }
        return Ok((
            volid,
            vec![Step::DownloadTemplate {
                storage: storage.clone(),
                name,
            }],
        ));
    }
    if let Some(name) = newest(&tf.present) {
        notes.push(format!(
            "the template index lists no {}; using the newest one already on {storage}: {name}",
            p.template
        ));
        return Ok((format!("{storage}:vztmpl/{name}"), vec![]));
    }
    if tf.available.is_empty() {
        // Never updated index (or no node at all): update it first; the real run resolves the
        // newest name after the update. The name shown is the newest one known when this
        // version of provision was released.
        let known = if lts {
            let names: Vec<String> = KNOWN_TEMPLATES.iter().map(|(_, n)| n.to_string()).collect();
            newest_accepted_ubuntu_lts(caps, &names).cloned()
        } else {
            KNOWN_TEMPLATES
                .iter()
                .find(|(short, _)| *short == p.template)
                .map(|(_, n)| n.to_string())
        };
        let Some(name) = known else {
            bail!(
                "the template index is empty and {:?} is not a short form provision knows; run `pveam update` on the node or give a volume id like local:vztmpl/NAME.tar.zst",
                p.template
            );
        };
        notes.push(format!(
            "the template index is empty: `pveam update` runs first; {name} is the newest {} known to this version, the run takes the newest the index offers",
            p.template
        ));
        return Ok((
            format!("{storage}:vztmpl/{name}"),
            vec![
                Step::UpdateTemplateIndex,
                Step::DownloadTemplate {
                    storage: storage.clone(),
                    name,
                },
            ],
        ));
    }
    let mut similar: Vec<&str> = tf
        .available
        .iter()
        .filter_map(|n| n.split("-standard_").next())
        .collect();
    similar.sort();
    similar.dedup();
    bail!(
        "no template matches {:?} in `pveam available`; short forms there: {}",
        p.template,
        similar.join(", ")
    )
}

// ---------------------------------------------------------------------------------------------
// Driver choice.

/// Parses "2.2.7-pve1" into (2, 2).
fn zfs_major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Decides the storage driver `auto` stands for, from the rootfs storage type and ZFS version.
///
/// Only a `zfspool` root disk is a ZFS dataset (a subvolume); on every other storage type that
/// allows container root disks, PVE makes an ext4 filesystem (on a volume, or a raw image file
/// on dir/nfs/cifs storages) or a btrfs subvolume, and those host overlayfs. So the choice is
/// fuse-overlayfs for a zfspool root disk on ZFS older than 2.2 (or of unknown version), and
/// overlay2 otherwise.
pub fn decide_driver(storage_type: Option<&str>, zfs_version: Option<&str>) -> (Driver, String) {
    match storage_type {
        Some("zfspool") => match zfs_version.and_then(zfs_major_minor) {
            Some(v) if v >= (2, 2) => (
                Driver::Overlay2,
                format!(
                    "the root disk is a ZFS dataset on ZFS {}, which hosts overlayfs (2.2 or later)",
                    zfs_version.unwrap_or("")
                ),
            ),
            Some(_) => (
                Driver::FuseOverlayfs,
                format!(
                    "the root disk is a ZFS dataset on ZFS {}, older than 2.2, which cannot host overlayfs",
                    zfs_version.unwrap_or("")
                ),
            ),
            None => (
                Driver::FuseOverlayfs,
                "the root disk is a ZFS dataset and the host's ZFS version is unknown (no /sys/module/zfs/version); fuse-overlayfs is the safe choice".to_string(),
            ),
        },
        Some("btrfs") => (
            Driver::Overlay2,
            "the root disk storage is of type btrfs (a btrfs subvolume), which hosts overlayfs"
                .to_string(),
        ),
        Some(t) => (
            Driver::Overlay2,
            format!(
                "the root disk storage is of type {t} (an ext4 filesystem on a volume or image file), which hosts overlayfs"
            ),
        ),
        None => (
            Driver::Overlay2,
            "the root disk storage is unknown here (no node); overlay2 unless it is ZFS older than 2.2".to_string(),
        ),
    }
}

/// The storage an existing container's root disk is on (from its `rootfs` volume id).
fn rootfs_storage(ct: Option<&CtConfig>) -> Option<String> {
    let rootfs = ct?.effective("rootfs")?;
    let m = parse_property_string(rootfs, "volume");
    let (storage, _) = m.get("volume")?.split_once(':')?;
    Some(storage.to_string())
}

// ---------------------------------------------------------------------------------------------
// Node plan.

/// Formats GiB like PVE accepts (`8`, `0.5`).
pub fn fmt_gib(g: f64) -> String {
    let s = format!("{g:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn bool01(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

/// The features property string for a profile (only enabled features, sorted).
pub fn features_string(p: &Profile) -> String {
    let f = &p.features;
    let mut v = Vec::new();
    for (k, on) in [
        ("fuse", f.fuse),
        ("keyctl", f.keyctl),
        ("mknod", f.mknod),
        ("nesting", f.nesting),
    ] {
        if on {
            v.push(format!("{k}=1"));
        }
    }
    v.join(",")
}

/// The net0 property string for a profile.
pub fn net0_string(p: &Profile, keep_hwaddr: Option<&str>) -> String {
    let n = &p.network;
    let mut v = vec!["name=eth0".to_string(), format!("bridge={}", n.bridge)];
    if n.firewall {
        v.push("firewall=1".into());
    }
    if let Some(g) = &n.gateway {
        v.push(format!("gw={g}"));
    }
    if let Some(g) = &n.gateway6 {
        v.push(format!("gw6={g}"));
    }
    if let Some(h) = n.hwaddr.as_deref().or(keep_hwaddr) {
        v.push(format!("hwaddr={h}"));
    }
    v.push(format!("ip={}", n.ip));
    if let Some(i) = &n.ip6 {
        v.push(format!("ip6={i}"));
    }
    if let Some(m) = n.mtu {
        v.push(format!("mtu={m}"));
    }
    if let Some(t) = n.vlan {
        v.push(format!("tag={t}"));
    }
    v.push("type=veth".into());
    v.join(",")
}

/// Tags as PVE stores them, with the tool's own.
pub fn tags_string(p: &Profile) -> String {
    let mut t = p.tags.clone();
    t.push(TOOL_TAG.to_string());
    t.sort();
    t.dedup();
    t.join(";")
}

/// The configuration keys the profile decides, as PVE stores them (no rootfs, no net0 hwaddr).
pub fn desired_config(p: &Profile) -> Vec<(String, String)> {
    let mut v = vec![
        ("cores".to_string(), p.cores.to_string()),
        ("memory".to_string(), p.memory.to_string()),
        ("swap".to_string(), p.swap.to_string()),
        ("onboot".to_string(), bool01(p.onboot)),
        ("tags".to_string(), tags_string(p)),
        ("features".to_string(), features_string(p)),
        ("net0".to_string(), net0_string(p, None)),
    ];
    if !p.nameserver.is_empty() {
        v.push(("nameserver".into(), p.nameserver.join(" ")));
    }
    if let Some(s) = &p.searchdomain {
        v.push(("searchdomain".into(), s.clone()));
    }
    if let Some(t) = &p.timezone {
        v.push(("timezone".into(), t.clone()));
    }
    if !p.description.is_empty() {
        v.push((
            "description".into(),
            format!("{}{}", p.description, crate::profile::DESCRIPTION_SUFFIX),
        ));
    }
    v
}

/// The `pct create` options for a profile, in a stable order.
pub fn create_options(p: &Profile, hostname: &str, has_keys: bool) -> Vec<(String, String)> {
    let mut o = vec![
        ("hostname".to_string(), hostname.to_string()),
        ("unprivileged".to_string(), bool01(p.unprivileged)),
    ];
    let feats = features_string(p);
    if !feats.is_empty() {
        o.push(("features".into(), feats));
    }
    o.push((
        "rootfs".into(),
        format!("{}:{}", p.rootfs.storage, fmt_gib(p.rootfs.size)),
    ));
    o.push(("net0".into(), net0_string(p, None)));
    o.push(("cores".into(), p.cores.to_string()));
    o.push(("memory".into(), p.memory.to_string()));
    o.push(("swap".into(), p.swap.to_string()));
    o.push(("onboot".into(), bool01(p.onboot)));
    o.push(("tags".into(), tags_string(p)));
    if !p.nameserver.is_empty() {
        o.push(("nameserver".into(), p.nameserver.join(" ")));
    }
    if let Some(s) = &p.searchdomain {
        o.push(("searchdomain".into(), s.clone()));
    }
    if let Some(t) = &p.timezone {
        o.push(("timezone".into(), t.clone()));
    }
    if !p.description.is_empty() {
        o.push((
            "description".into(),
            format!("{}{}", p.description, crate::profile::DESCRIPTION_SUFFIX),
        ));
    }
    if has_keys {
        o.push(("ssh-public-keys".into(), String::new()));
    }
    o
}

/// Compares one key; returns a description of the difference, if any.
fn differs(key: &str, want: &str, have: Option<&str>) -> Option<String> {
    let have_s = have.unwrap_or("");
    let same = match key {
        // Tags someone else added to the container stay; only missing ones count.
        "tags" => {
            let have = split_tags(have_s);
            split_tags(want).iter().all(|t| have.contains(t))
        }
        "features" => {
            let on = |s: &str| {
                let mut v: Vec<String> = parse_property_string(s, "")
                    .into_iter()
                    .filter(|(_, v)| v == "1")
                    .map(|(k, _)| k)
                    .collect();
                v.sort();
                v
            };
            on(want) == on(have_s)
        }
        "net0" => {
            let norm = |s: &str| {
                let mut m = parse_property_string(s, "name");
                m.remove("hwaddr");
                m.entry("type".into()).or_insert_with(|| "veth".into());
                if m.get("firewall").map(String::as_str) == Some("0") {
                    m.remove("firewall");
                }
                m
            };
            let w = parse_property_string(want, "name");
            let h = parse_property_string(have_s, "name");
            norm(want) == norm(have_s)
                && w.get("hwaddr")
                    .is_none_or(|x| h.get("hwaddr").is_some_and(|y| y.eq_ignore_ascii_case(x)))
        }
        "onboot" => (have_s == "1") == (want == "1"),
        // PVE keeps the description as comment lines: compare the text, not its line ends.
        "description" => have_s.trim() == want.trim(),
        "swap" => have.unwrap_or("512") == want,
        _ => have_s == want,
    };
    (!same).then(|| format!("{key}: {} -> {want}", have.unwrap_or("(unset)")))
}

/// Which existing guest, if any, the request means. Errors on ambiguity and on anything that
/// must not be touched.
pub fn find_existing<'a>(
    req: &Request,
    guests: &'a [Guest],
    opts: &Options,
) -> Result<Option<&'a Guest>> {
    let by_name: Vec<&Guest> = guests
        .iter()
        .filter(|g| g.kind == "lxc" && g.name.eq_ignore_ascii_case(&req.hostname))
        .collect();
    let tagged = |g: &Guest| g.tags.iter().any(|t| t == TOOL_TAG);
    if let Some(v) = req.vmid {
        if let Some(g) = guests.iter().find(|g| g.vmid == v) {
            if g.kind != "lxc" {
                bail!(
                    "VMID {v} is a virtual machine ({}), not a container",
                    g.name
                );
            }
            if !g.name.eq_ignore_ascii_case(&req.hostname) {
                bail!(
                    "VMID {v} exists with hostname {:?}, not {:?}; refusing to touch it (pick another --vmid or hostname)",
                    g.name,
                    req.hostname
                );
            }
            if !tagged(g) && !opts.adopt {
                bail!(
                    "container {v} ({}) was not created by provision (no `{TOOL_TAG}` tag); refusing to touch it. Use --adopt to take it over",
                    g.name
                );
            }
            return Ok(Some(g));
        }
        if let Some(g) = by_name.first() {
            bail!(
                "hostname {:?} is already container {} but --vmid {v} was asked; the tool never guesses which is meant",
                req.hostname,
                g.vmid
            );
        }
        return Ok(None);
    }
    match by_name.as_slice() {
        [] => Ok(None),
        [g] => {
            if !tagged(g) && !opts.adopt {
                bail!(
                    "a container named {:?} exists (VMID {}) that provision did not create (no `{TOOL_TAG}` tag); refusing to touch it. Use --adopt to take it over, or choose another name",
                    g.name,
                    g.vmid
                );
            }
            Ok(Some(g))
        }
        many => {
            let ids: Vec<String> = many.iter().map(|g| g.vmid.to_string()).collect();
            bail!(
                "{} containers are named {:?} (VMIDs {}); give --vmid to say which one",
                many.len(),
                req.hostname,
                ids.join(", ")
            )
        }
    }
}

/// The node part of the plan. `proposed_vmid` is the node's next free VMID (for display; the
/// real choice happens under the lock at create time). `ct` is the existing container's config.
#[allow(clippy::too_many_arguments)]
pub fn plan_node(
    req: &Request,
    nf: &NodeFacts,
    existing: Option<&Guest>,
    ct: Option<&CtConfig>,
    tf: Option<&TemplateFacts>,
    proposed_vmid: u32,
    opts: &Options,
) -> Result<NodePlan> {
    let mut plan = NodePlan {
        hostname: req.hostname.clone(),
        ..NodePlan::default()
    };
    let pinned =
        crate::rootdisk::pin_storage(&req.profile, &nf.storages, rootfs_storage(ct).as_deref())?;
    let p = match &pinned {
        Some((q, why)) => {
            plan.notes.push(why.clone());
            q
        }
        None => &req.profile,
    };
    if nf.pve {
        plan.notes.push(format!("node: {}", nf.caps.describe()));
    }
    plan.notes.extend(p.warnings.iter().cloned());
    if let (Some(want), Some(bridge)) = (p.network.mtu, nf.bridge_mtu.get(&p.network.bridge))
        && u32::from(want) > *bridge
    {
        return Err(InputError {
            file: format!("profile {}", p.name),
            line: 0,
            col: 0,
            field: "network.mtu".into(),
            message: format!(
                "{want} is above the MTU of bridge {} ({bridge}); PVE refuses to start such a container (\"net0: MTU size '{want}' is bigger than bridge MTU '{bridge}'\"). Use at most {bridge}, or raise the bridge's MTU on the node",
                p.network.bridge
            ),
        }
        .into());
    }
    // Driver. An existing container's root disk decides, wherever the profile now points.
    let storage = nf.storages.iter().find(|s| s.name == p.rootfs.storage);
    let disk_storage = rootfs_storage(ct).unwrap_or_else(|| p.rootfs.storage.clone());
    let disk_kind = nf
        .storages
        .iter()
        .find(|s| s.name == disk_storage)
        .map(|s| s.kind.as_str());
    let (auto_driver, auto_reason) = decide_driver(disk_kind, nf.zfs_version.as_deref());
    if p.docker.install != "none" {
        match p.docker.storage_driver {
            Driver::Auto => {
                plan.driver = Some(auto_driver);
                plan.driver_reason = format!("auto: {auto_reason}");
            }
            d => {
                plan.driver = Some(d);
                plan.driver_reason = format!("{} (set by the profile)", d.as_str());
                if d == Driver::FuseOverlayfs && auto_driver == Driver::Overlay2 && nf.pve {
                    plan.notes.push(format!(
                        "hint: storage_driver = \"auto\" would pick overlay2 here ({auto_reason}); overlay2 is much faster than fuse-overlayfs"
                    ));
                }
                if d == Driver::Overlay2
                    && auto_driver == Driver::FuseOverlayfs
                    && nf.zfs_version.is_some()
                {
                    plan.notes.push(format!(
                        "warning: the profile sets overlay2, but {auto_reason}: Docker will not start with overlay2 here; use storage_driver = \"auto\" or \"fuse-overlayfs\""
                    ));
                }
            }
        }
        if plan.driver == Some(Driver::FuseOverlayfs) && !p.features.fuse {
            let why = match p.docker.storage_driver {
                Driver::Auto => {
                    format!("storage_driver = \"auto\" picks fuse-overlayfs here ({auto_reason})")
                }
                _ => "the profile sets storage_driver = \"fuse-overlayfs\"".to_string(),
            };
            return Err(crate::error::InputErrors(vec![crate::error::InputError::whole(
                format!("profile {}", p.name),
                "features.fuse",
                format!(
                    "{why}, which needs the container's fuse feature, but the profile has fuse off; set features.fuse = true, or storage_driver = \"vfs\" (slow, copies every layer), or put the root disk on a storage that hosts overlayfs (ZFS 2.2 or later, lvmthin, dir) so that overlay2 works"
                ),
            )])
            .into());
        }
    }
    if nf.pve {
        match storage {
            None => {
                let known: Vec<&str> = nf.storages.iter().map(|s| s.name.as_str()).collect();
                if existing.is_none() {
                    bail!(
                        "rootfs storage {:?} does not exist on this node; storages here: {}",
                        p.rootfs.storage,
                        known.join(", ")
                    );
                }
            }
            Some(s) if existing.is_none() && s.content.iter().any(|c| c == "-rootdir") => {
                let ok: Vec<&str> = nf
                    .storages
                    .iter()
                    .filter(|s| s.content.iter().any(|c| c == "rootdir"))
                    .map(|s| s.name.as_str())
                    .collect();
                bail!(
                    "storage {:?} does not allow container root disks (its content lacks rootdir); storages that do: {}",
                    s.name,
                    ok.join(", ")
                );
            }
            _ => {}
        }
    }
    let Some(g) = existing else {
        plan.vmid = req.vmid.unwrap_or(proposed_vmid);
        plan.vmid_auto = req.vmid.is_none();
        let tf_empty = TemplateFacts::default();
        let (template, tsteps) =
            resolve_template(p, tf.unwrap_or(&tf_empty), &nf.caps, &mut plan.notes)?;
        plan.steps.extend(tsteps);
        let keys = (!p.ssh_public_keys.is_empty()).then(|| {
            let mut k = p.ssh_public_keys.join("\n");
            k.push('\n');
            k
        });
        plan.steps.push(Step::Create {
            fixed_vmid: req.vmid,
            template,
            options: create_options(p, &req.hostname, keys.is_some()),
            ssh_keys: keys,
        });
        plan.steps.push(Step::Start);
        return Ok(plan);
    };
    plan.exists = true;
    plan.vmid = g.vmid;
    plan.node = g.node.clone();
    plan.running = g.status == "running";
    let cfg = ct.cloned().unwrap_or_default();
    // PVE writes `unprivileged: 1` only for unprivileged containers: a config read without the
    // key is a privileged container.
    if !cfg.current.is_empty() {
        let have = cfg.effective("unprivileged") == Some("1");
        if have != p.unprivileged {
            bail!(
                "container {} is {} but the profile wants it {}; PVE cannot change this (unprivileged is read-only): destroy and re-create it",
                g.vmid,
                if have { "unprivileged" } else { "privileged" },
                if p.unprivileged {
                    "unprivileged"
                } else {
                    "privileged"
                }
            );
        }
    }
    let mut set = Vec::new();
    let mut why = Vec::new();
    let adopting = !g.tags.iter().any(|t| t == TOOL_TAG);
    for (k, want) in desired_config(p) {
        if k == "description"
            && let Some(kept) = adopted_description(cfg.effective("description"), adopting)
        {
            match kept {
                Some(text) => {
                    why.push("description: the container's own text stays; provision adds its marker line".into());
                    set.push((k, text));
                }
                None => plan.already.push(Already {
                    step: "config".into(),
                    why: "description: the container's own text (adopted) stays".into(),
                }),
            }
            continue;
        }
        if k == "tags" && adopting {
            // Adopting: the container's own tags stay, the profile's and the tool's are added.
            let mut all: Vec<String> = g.tags.clone();
            all.extend(split_tags(&want));
            all.sort();
            all.dedup();
            why.push(format!("tags: adopting (adds `{TOOL_TAG}`)"));
            set.push((k, all.join(";")));
            continue;
        }
        if let Some(d) = differs(&k, &want, cfg.effective(&k)) {
            let value = if k == "tags" {
                let mut all = split_tags(cfg.effective("tags").unwrap_or(""));
                all.extend(split_tags(&want));
                all.sort();
                all.dedup();
                all.join(";")
            } else if k == "net0" {
                let keep = cfg
                    .effective("net0")
                    .map(|n| parse_property_string(n, "name"))
                    .and_then(|m| m.get("hwaddr").cloned());
                net0_string(p, keep.as_deref())
            } else {
                want
            };
            why.push(d);
            set.push((k, value));
        } else {
            plan.already.push(Already {
                step: "config".into(),
                why: format!("{k} is {}", if want.is_empty() { "(unset)" } else { &want }),
            });
        }
    }
    let mut will_pend: Vec<String> = cfg
        .pending
        .keys()
        .chain(cfg.pending_delete.iter())
        .filter(|k| !set.iter().any(|(s, _)| s == *k))
        .cloned()
        .collect();
    if plan.running {
        will_pend.extend(
            set.iter()
                .filter(|(k, _)| !HOT_KEYS.contains(&k.as_str()))
                .map(|(k, _)| k.clone()),
        );
    }
    will_pend.sort();
    will_pend.dedup();
    if plan.running && set.iter().any(|(k, _)| k.starts_with("net")) {
        plan.notes.push("net0 changes apply at once on a running container (PVE hot-plugs the interface): its network restarts, and a new address or VLAN cuts current connections".into());
    }
    let setting = !set.is_empty();
    if setting {
        plan.steps.push(Step::Set { set, why });
    }
    if let Some(rootfs) = cfg.effective("rootfs") {
        let m = parse_property_string(rootfs, "volume");
        if let Some(have) = m.get("size").and_then(|s| crate::rootdisk::parse_size(s)) {
            // What a create of this size allocates, so that a fractional size converges in one
            // run and stays converged.
            let want = crate::rootdisk::alloc_bytes(p.rootfs.size);
            if want > have {
                plan.steps.push(Step::Resize {
                    size: crate::rootdisk::resize_arg(p.rootfs.size),
                });
            } else if want < have {
                plan.notes.push(format!(
                    "the root disk is {}, larger than the profile's {}G; PVE cannot shrink it, left as is",
                    crate::rootdisk::human(have),
                    fmt_gib(p.rootfs.size)
                ));
            } else {
                plan.already.push(Already {
                    step: "rootfs".into(),
                    why: format!("root disk is {}", crate::rootdisk::human(have)),
                });
            }
        }
        if !m
            .get("volume")
            .is_some_and(|v| v.starts_with(&format!("{}:", p.rootfs.storage)))
        {
            plan.notes.push(format!(
                "the root disk is on another storage than the profile's {:?}; provision does not move disks",
                p.rootfs.storage
            ));
        }
    }
    if !plan.running {
        plan.steps.push(Step::Start);
    } else if !will_pend.is_empty() {
        if opts.restart {
            plan.steps.push(Step::Reboot { keys: will_pend });
        } else if setting {
            // What PVE really keeps pending is read back after `pct set`; this is the forecast.
            plan.notes.push(format!(
                "{PENDING_FORECAST} {} (--restart restarts the container so that they apply)",
                will_pend.join(", ")
            ));
        } else {
            plan.notes.push(format!(
                "pending until the container restarts: {} (run again with --restart to restart it now)",
                will_pend.join(", ")
            ));
            plan.pending = will_pend;
        }
    } else {
        plan.already.push(Already {
            step: "start".into(),
            why: "the container is running".into(),
        });
    }
    Ok(plan)
}

// ---------------------------------------------------------------------------------------------
// Inside plan.

/// Merges the keys the tool owns into the user's daemon.json. Returns the new text and the
/// keys that changed, or None when nothing changes. Refuses invalid JSON unless `force`.
pub fn merge_daemon_json(
    existing: Option<&str>,
    driver: Driver,
    force: bool,
) -> Result<Option<(String, Vec<String>)>> {
    use serde_json::{Map, Value};
    let mut root: Map<String, Value> = match existing.map(str::trim) {
        None | Some("") => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) | Err(_) if force => Map::new(),
            Ok(_) => bail!(
                "{DAEMON_JSON} is JSON but not an object; refusing to change it (fix it, or run with --force to back it up and replace it)"
            ),
            Err(e) => bail!(
                "{DAEMON_JSON} is not valid JSON ({e}); refusing to overwrite it (fix it, or run with --force to back it up and replace it)"
            ),
        },
    };
    let before = root.clone();
    let mut why = Vec::new();
    let want = Value::String(driver.as_str().to_string());
    if root.get("storage-driver") != Some(&want) {
        why.push(format!("storage-driver={}", driver.as_str()));
        root.insert("storage-driver".into(), want);
    }
    if driver == Driver::FuseOverlayfs || driver == Driver::Vfs {
        let feats = root
            .entry("features")
            .or_insert_with(|| Value::Object(Map::new()));
        if !feats.is_object() {
            if !force {
                bail!(
                    "{DAEMON_JSON}: \"features\" is not an object; refusing to change it (use --force)"
                );
            }
            *feats = Value::Object(Map::new());
        }
        let f = feats.as_object_mut().expect("object");
        if f.get("containerd-snapshotter") != Some(&Value::Bool(false)) {
            why.push("features.containerd-snapshotter=false".into());
            f.insert("containerd-snapshotter".into(), Value::Bool(false));
        }
    }
    if root == before && existing.is_some() {
        return Ok(None);
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(root))?;
    text.push('\n');
    Ok(Some((text, why)))
}

/// The storage driver daemon.json names now, if any.
pub fn current_driver(daemon_json: Option<&str>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(daemon_json?).ok()?;
    v.get("storage-driver")?.as_str().map(String::from)
}

/// Marker for the profile's commands: their SHA-256.
pub fn commands_marker(cmds: &[Vec<String>]) -> String {
    sha256_hex(serde_json::to_string(cmds).unwrap_or_default().as_bytes())[..16].to_string()
}

/// Files of the profile with their bytes, read from the machine running provision.
pub type ProfileFiles = Vec<(String, u32, Arc<Vec<u8>>)>;

/// The in-container plan, from the facts read inside.
#[allow(clippy::too_many_arguments)]
pub fn plan_inside(
    p: &Profile,
    driver: Option<Driver>,
    f: &InsideFacts,
    src: &SourceFacts,
    files: &ProfileFiles,
    password: Option<&str>,
    opts: &Options,
) -> Result<InsidePlan> {
    let mut plan = InsidePlan::default();
    let mut restart_why: Vec<String> = Vec::new();
    if let Some(driver) = driver.filter(|_| p.docker.install != "none") {
        // Packages.
        let mut pkgs = Vec::new();
        let docker = if f.docker_installed {
            plan.already.push(Already {
                step: "docker".into(),
                why: "dockerd is installed".into(),
            });
            None
        } else if p.docker.install == "present" {
            bail!("docker.install = \"present\" but dockerd is not installed in the container");
        } else if p.docker.install == "docker-ce" {
            Some(format!("docker-ce {}", p.docker.repository))
        } else {
            Some(p.docker.install.clone())
        };
        if p.docker.verify_image.is_empty() && !f.busybox {
            pkgs.push("busybox-static".to_string());
        }
        if driver == Driver::FuseOverlayfs {
            match &p.docker.fuse_overlayfs {
                FuseSource::Package => {
                    if f.fuse_overlayfs_link.as_deref() != Some("/usr/bin/fuse-overlayfs") {
                        pkgs.push("fuse-overlayfs".into());
                    }
                }
                _ => {
                    if !f.libfuse3 {
                        pkgs.push("fuse3".into());
                    }
                }
            }
        }
        if docker.is_some() || !pkgs.is_empty() {
            if docker.is_some() {
                restart_why.push("Docker was just installed".into());
            }
            plan.steps.push(Step::InstallPackages {
                docker,
                packages: pkgs,
            });
        }
        // Storage switch.
        if let Some(cur) = current_driver(f.daemon_json.as_deref())
            && cur != driver.as_str()
            && f.docker_installed
        {
            if !opts.allow_storage_switch {
                bail!(
                    "Docker in this container uses storage-driver {cur}; switching to {} loses its images and containers. Refusing; run with --allow-storage-switch to do it anyway",
                    driver.as_str()
                );
            }
            plan.notes.push(format!(
                "switching Docker's storage driver from {cur} to {} (--allow-storage-switch): the images and containers stored with {cur} are no longer visible to Docker (their data stays under /var/lib/docker until removed)",
                driver.as_str()
            ));
        }
        // fuse-overlayfs binary.
        if driver == Driver::FuseOverlayfs {
            match &p.docker.fuse_overlayfs {
                FuseSource::Package => {
                    if f.fuse_overlayfs_link.as_deref() == Some("/usr/bin/fuse-overlayfs") {
                        plan.already.push(Already {
                            step: "fuse-overlayfs".into(),
                            why: format!("{FUSE_DEST} links to the package's binary"),
                        });
                    } else {
                        plan.steps.push(Step::LinkPackageFuseOverlayfs);
                        restart_why.push("fuse-overlayfs changed".into());
                    }
                }
                FuseSource::Node { path, .. } | FuseSource::Url { url: path, .. } => {
                    let node_path = match &p.docker.fuse_overlayfs {
                        FuseSource::Url { sha256, .. } => fuse_cache_path(sha256),
                        _ => path.clone(),
                    };
                    match (&src.fuse_sha256, &f.fuse_overlayfs_sha256) {
                        (Some(want), Some(have))
                            if want == have && f.fuse_overlayfs_link.is_none() =>
                        {
                            plan.already.push(Already {
                                step: "fuse-overlayfs".into(),
                                why: format!("{FUSE_DEST} has SHA-256 {}", &want[..12]),
                            });
                        }
                        _ => {
                            plan.steps.push(Step::PushFuseOverlayfs {
                                content: Content::NodeFile(node_path),
                                sha256: src.fuse_sha256.clone(),
                            });
                            restart_why.push("fuse-overlayfs changed".into());
                        }
                    }
                }
            }
        }
        // daemon.json.
        match merge_daemon_json(f.daemon_json.as_deref(), driver, opts.force)? {
            Some((content, why)) => {
                restart_why.push(format!("daemon.json changed ({})", why.join(", ")));
                plan.steps.push(Step::WriteDaemonJson { content, why });
            }
            None => plan.already.push(Already {
                step: "daemon.json".into(),
                why: format!("already has storage-driver={}", driver.as_str()),
            }),
        }
        if f.docker_active
            && restart_why.is_empty()
            && let Some(running) = &f.docker_driver
            && running != driver.as_str()
            && !(driver == Driver::Overlay2 && running == "overlayfs")
        {
            // A run that stopped between writing the configuration and the restart.
            restart_why.push(format!(
                "dockerd runs with {running}, its configuration says {}",
                driver.as_str()
            ));
        }
        if !f.docker_active && f.docker_installed && restart_why.is_empty() {
            restart_why.push("the docker service is not active".into());
        }
        if restart_why.is_empty() {
            plan.already.push(Already {
                step: "restart docker".into(),
                why: "its configuration did not change".into(),
            });
        } else {
            plan.steps.push(Step::RestartDocker {
                why: restart_why.join("; "),
            });
        }
    }
    // Files.
    for (dest, mode, bytes) in files {
        let sha = sha256_hex(bytes);
        if f.files.get(dest) == Some(&sha) && f.file_modes.get(dest).is_none_or(|m| m == mode) {
            plan.already.push(Already {
                step: format!("file {dest}"),
                why: "content matches".into(),
            });
        } else {
            plan.steps.push(Step::WriteFile {
                dest: dest.clone(),
                mode: *mode,
                bytes: bytes.clone(),
            });
        }
    }
    // Password.
    if let Some(pw) = password {
        if f.state.get("password").map(String::as_str) == Some("set") {
            plan.already.push(Already {
                step: "password".into(),
                why: "root's password was set by an earlier run".into(),
            });
        } else {
            plan.steps.push(Step::SetPassword {
                line: Secret(format!("root:{pw}\n").into_bytes()),
            });
        }
    }
    // Commands.
    if !p.commands.is_empty() {
        let marker = commands_marker(&p.commands);
        if f.state.get("commands") == Some(&marker) {
            plan.already.push(Already {
                step: "commands".into(),
                why: "these commands ran successfully before".into(),
            });
        } else {
            plan.steps.push(Step::RunCommands {
                commands: p.commands.clone(),
                marker,
            });
        }
    }
    if let Some(driver) = driver.filter(|_| p.docker.install != "none") {
        plan.steps.push(Step::Verify {
            driver,
            image: p.docker.verify_image.clone(),
        });
    }
    Ok(plan)
}

// ---------------------------------------------------------------------------------------------
// Rendering steps into actions.

/// In-container script (see its use in [`Step::actions`]).
pub const SH_PRELUDE: &str = "set -eu; export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive; ";

fn sh(script: &str, args: &[&str]) -> Cmd {
    Cmd::new("sh")
        .arg("-c")
        .arg(format!("{SH_PRELUDE}{script}"))
        .arg("provision")
        .args(args.iter().map(|s| s.to_string()))
}

/// Records `key=value` in the container's /var/lib/provision/state.
/// In-container script (see its use in [`Step::actions`]).
pub const STATE_SET: &str = r#"mkdir -p /var/lib/provision; f=/var/lib/provision/state; touch "$f"; { grep -v "^$1=" "$f" || true; echo "$1=$2"; } > "$f.new"; mv -f "$f.new" "$f""#;

/// Installs packages: distro Docker (with the CLI where the release splits it), docker-ce, or
/// only the helpers.
/// In-container script (see its use in [`Step::actions`]).
pub const INSTALL_SCRIPT: &str = r#"method=$1; shift
apt-get update -q >/dev/null
pkgs="$*"
case "$method" in
  distro) pkgs="docker.io $pkgs"
          if apt-cache show docker-cli >/dev/null 2>&1; then pkgs="$pkgs docker-cli"; fi ;;
  docker-ce) repo=$1; shift; pkgs="$*"
          apt-get install -y -q --no-install-recommends ca-certificates curl >/dev/null
          . /etc/os-release
          install -m 0755 -d /etc/apt/keyrings
          curl -fsSL "$repo/gpg" -o /etc/apt/keyrings/docker.asc
          echo "deb [signed-by=/etc/apt/keyrings/docker.asc] $repo ${VERSION_CODENAME} stable" > /etc/apt/sources.list.d/docker.list
          apt-get update -q >/dev/null
          pkgs="docker-ce docker-ce-cli containerd.io $pkgs" ;;
esac
apt-get install -y -q --no-install-recommends $pkgs"#;

/// Checks a pushed fuse-overlayfs binary before it replaces the one Docker uses: its SHA-256,
/// that it is an ELF executable for this container's architecture, and that it runs here
/// (`--version`: a missing shared library such as libfuse3 shows now, not when dockerd starts).
/// A binary that fails is removed; the error says which check failed and how to fix it.
/// Args: staged file, destination, expected SHA-256 (may be empty).
pub const PUSH_CHECK_SCRIPT: &str = r#"new=$1; dest=$2; want=$3
refuse() { rm -f "$new"; echo "fuse-overlayfs cannot run in this container: $*" >&2; exit 66; }
if [ ! -f "$new" ]; then echo "$new is not there: the push did not write it (pct push exits 0 even when its task fails)" >&2; exit 70; fi
if [ -n "$want" ]; then
  have=$(sha256sum "$new" | cut -d' ' -f1)
  if [ "$have" != "$want" ]; then rm -f "$new"; echo "checksum mismatch after push: got $have, expected $want" >&2; exit 65; fi
fi
magic=$(od -An -tx1 -N4 "$new" | tr -d ' \n')
if [ "$magic" != 7f454c46 ]; then
  refuse "it is not an ELF executable (a script or a damaged file?). Put the real fuse-overlayfs binary there, or use docker.fuse_overlayfs.source = \"package\""
fi
here=$(uname -m)
mach=$(od -An -tx1 -j18 -N2 "$new" | tr -d ' \n')
case "$here" in
  x86_64) ok=3e00 ;; aarch64|arm64) ok=b700 ;; i?86) ok=0300 ;; armv*) ok=2800 ;;
  riscv64) ok=f300 ;; ppc64le) ok=1500 ;; s390x) ok=0016 ;; *) ok=$mach ;;
esac
if [ "$mach" != "$ok" ]; then
  case "$mach" in
    3e00) built=x86_64 ;; b700) built=aarch64 ;; 0300) built=i386 ;; 2800) built=arm ;;
    f300) built=riscv64 ;; 1500) built=ppc64le ;; 0016) built=s390x ;; *) built="ELF machine 0x$mach" ;;
  esac
  refuse "wrong architecture: the binary is built for $built, this container is $here. Use a fuse-overlayfs built for $here, or docker.fuse_overlayfs.source = \"package\""
fi
chown 0:0 "$new"; chmod 0755 "$new"
if ! out=$("$new" --version 2>&1); then
  case "$out" in
    *"error while loading shared libraries"*|*"cannot open shared object"*)
      lib=$(printf '%s\n' "$out" | sed -n 's/.*error while loading shared libraries: \([^:]*\):.*/\1/p' | head -n 1)
      refuse "missing shared library ${lib:-(see below)}: the binary was built against other libraries than this container has. Install the package that provides ${lib:-it} (libfuse3.so.* comes with the distribution's libfuse3 package), use a build for this distribution or a static build, or use docker.fuse_overlayfs.source = \"package\". The loader said: $out" ;;
    *) refuse "\`fuse-overlayfs --version\` failed: $out" ;;
  esac
fi
mv -f "$new" "$dest""#;

/// Makes the distribution package's fuse-overlayfs the one Docker uses, and proves it runs.
/// Args: destination (the link).
pub const LINK_PACKAGE_SCRIPT: &str = r#"if [ ! -x /usr/bin/fuse-overlayfs ]; then echo "the fuse-overlayfs package did not install /usr/bin/fuse-overlayfs; is it installed (apt-get install fuse-overlayfs)?" >&2; exit 66; fi
mkdir -p /usr/local/bin; ln -sfn /usr/bin/fuse-overlayfs "$1"
if ! out=$("$1" --version 2>&1); then echo "fuse-overlayfs from the package does not run in this container: $out" >&2; exit 66; fi"#;

/// Node script: downloads fuse-overlayfs once into the node's cache and keeps it only when its
/// SHA-256 is the expected one. The cache directory is owner-only (0700), the binary 0755; the
/// download goes to a unique temporary name that is removed on every failure, so a cut or
/// wrong download never leaves a file that a later run could take for the real one, and two
/// runs fetching at once do not collide. Args: URL, destination, expected SHA-256.
pub const FETCH_SCRIPT: &str = r#"set -eu; umask 077
url=$1; dest=$2; want=$3; dir=$(dirname "$dest")
mkdir -p "$dir"; chmod 0700 "$dir"
t=$(mktemp "$dest.part.XXXXXX")
trap 'rm -f "$t"' EXIT
trap 'rm -f "$t"; exit 130' INT TERM
if ! curl -fsSL --proto '=https,http' --retry 2 -o "$t" "$url"; then echo "downloading $url failed; nothing was kept" >&2; exit 1; fi
have=$(sha256sum "$t" | cut -d' ' -f1)
if [ "$have" != "$want" ]; then echo "downloaded fuse-overlayfs has sha256 $have, expected $want: refused, nothing was kept" >&2; exit 65; fi
chmod 0755 "$t"; mv -f "$t" "$dest""#;

/// Puts a pushed file in place, after checking that the push really wrote it: `pct push` exits
/// 0 when its task fails, so the staged file's presence, size and SHA-256 are the proof. With
/// `backup` = 1 the file it replaces is kept as `DEST.provision-backup`.
/// Args: staged file, destination, expected size in bytes, expected SHA-256, backup (0/1).
pub const PLACE_SCRIPT: &str = r#"new=$1; dest=$2; size=$3; want=$4; backup=$5
if [ ! -f "$new" ]; then echo "$new is not there: the push did not write it (pct push exits 0 even when its task fails)" >&2; exit 70; fi
have_size=$(wc -c < "$new" | tr -d ' ')
if [ "$have_size" != "$size" ]; then rm -f "$new"; echo "$new has $have_size bytes after the push, expected $size: the push did not complete" >&2; exit 70; fi
have=$(sha256sum "$new" | cut -d' ' -f1)
if [ "$have" != "$want" ]; then rm -f "$new"; echo "checksum mismatch after push: got $have, expected $want" >&2; exit 65; fi
if [ "$backup" = 1 ] && [ -f "$dest" ]; then cp -p "$dest" "$dest.provision-backup"; fi
mv -f "$new" "$dest""#;

/// The [`PLACE_SCRIPT`] command for `bytes` staged at `tmp`.
fn place(tmp: &str, dest: &str, bytes: &[u8], backup: bool) -> Cmd {
    sh(
        PLACE_SCRIPT,
        &[
            tmp,
            dest,
            &bytes.len().to_string(),
            &sha256_hex(bytes),
            if backup { "1" } else { "0" },
        ],
    )
}

/// In-container script (see its use in [`Step::actions`]).
pub const RESTART_SCRIPT: &str = r#"systemctl restart docker
i=0
while ! docker info >/dev/null 2>&1; do
  i=$((i+1)); if [ "$i" -gt 120 ]; then echo "docker did not answer within 60 s after restart:" >&2; systemctl status docker --no-pager -l >&2 || true; exit 1; fi
  sleep 0.5
done"#;

/// In-container script (see its use in [`Step::actions`]).
pub const VERIFY_SCRIPT: &str = r#"want=$1; image=$2
have=$(docker info --format '{{.Driver}}')
case "$want:$have" in
  "$want:$want"|overlay2:overlayfs) ;;
  *) echo "docker reports storage driver '$have', expected '$want'" >&2; exit 67 ;;
esac
if [ -z "$image" ]; then
  image=provision-probe:1
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    [ -x /bin/busybox ] || { echo "/bin/busybox is missing: cannot build the local probe image" >&2; exit 68; }
    d=$(mktemp -d); mkdir "$d/bin"; cp /bin/busybox "$d/bin/busybox"
    tar -C "$d" -cf - . | docker import - "$image" >/dev/null; rm -rf "$d"
  fi
  cmd="/bin/busybox echo provision-probe-ok"
else
  docker image inspect "$image" >/dev/null 2>&1 || docker pull -q "$image" >/dev/null
  cmd="echo provision-probe-ok"
fi
out=$(docker run --rm --network none "$image" $cmd 2>&1) || { echo "docker run failed: $out" >&2; exit 69; }
case "$out" in *provision-probe-ok*) echo "docker runs containers on $have" ;; *) echo "unexpected probe output: $out" >&2; exit 69 ;; esac"#;

impl Step {
    /// Short name for progress and reports.
    pub fn name(&self) -> String {
        match self {
            Step::UpdateTemplateIndex => "update template index".into(),
            Step::DownloadTemplate { name, .. } => format!("download template {name}"),
            Step::FetchFuseOverlayfs { .. } => "download fuse-overlayfs".into(),
            Step::Create { .. } => "create".into(),
            Step::Set { .. } => "set config".into(),
            Step::Resize { .. } => "resize rootfs".into(),
            Step::Start => "start".into(),
            Step::Reboot { .. } => "reboot".into(),
            Step::InstallPackages {
                docker: Some(_), ..
            } => "install docker".into(),
            Step::InstallPackages { .. } => "install packages".into(),
            Step::PushFuseOverlayfs { .. } => "push fuse-overlayfs".into(),
            Step::LinkPackageFuseOverlayfs => "link fuse-overlayfs".into(),
            Step::WriteDaemonJson { .. } => "write daemon.json".into(),
            Step::RestartDocker { .. } => "restart docker".into(),
            Step::WriteFile { dest, .. } => format!("write {dest}"),
            Step::RunCommands { .. } => "run commands".into(),
            Step::SetPassword { .. } => "set root password".into(),
            Step::Verify { .. } => "verify docker".into(),
        }
    }

    /// Why the step is there, in words.
    pub fn why(&self) -> String {
        match self {
            Step::UpdateTemplateIndex => "the template index has no match yet".into(),
            Step::DownloadTemplate { storage, .. } => {
                format!("the template is not on storage {storage}")
            }
            Step::FetchFuseOverlayfs { sha256, .. } => format!(
                "not in the node cache yet (sha256 {})",
                &sha256[..12.min(sha256.len())]
            ),
            Step::Create { .. } => "no such container yet".into(),
            Step::Set { why, .. } => why.join("; "),
            Step::Resize { size } => format!("the profile wants a {size} root disk"),
            Step::Start => "the container is stopped".into(),
            Step::Reboot { keys } => {
                format!("pending changes apply at restart: {}", keys.join(", "))
            }
            Step::InstallPackages { docker, packages } => match docker {
                Some(m) => format!(
                    "dockerd is not installed ({m}); with {}",
                    if packages.is_empty() {
                        "no extras".into()
                    } else {
                        packages.join(" ")
                    }
                ),
                None => format!("missing: {}", packages.join(" ")),
            },
            Step::PushFuseOverlayfs { sha256, .. } => match sha256 {
                Some(s) => format!(
                    "{FUSE_DEST} is missing or differs from sha256 {}",
                    &s[..12.min(s.len())]
                ),
                None => format!("{FUSE_DEST} is missing"),
            },
            Step::LinkPackageFuseOverlayfs => {
                format!("{FUSE_DEST} should point to the package's binary")
            }
            Step::WriteDaemonJson { why, .. } => format!("sets {}", why.join(", ")),
            Step::RestartDocker { why } => why.clone(),
            Step::WriteFile { .. } => "missing or content differs".into(),
            Step::RunCommands { .. } => "not run successfully yet".into(),
            Step::SetPassword { .. } => "root_password is set in the profile".into(),
            Step::Verify { driver, .. } => {
                format!("prove that Docker runs a container on {}", driver.as_str())
            }
        }
    }

    /// True when the step changes something (verification does not).
    pub fn changes(&self) -> bool {
        !matches!(self, Step::Verify { .. })
    }

    /// The exact actions of this step for container `vmid`.
    pub fn actions(&self, vmid: u32) -> Vec<Action> {
        let id = vmid.to_string();
        match self {
            Step::UpdateTemplateIndex => vec![Action::Node(Cmd::new("pveam").arg("update"))],
            Step::DownloadTemplate { storage, name } => vec![
                Action::Node(Cmd::new("pveam").args(["download", storage, name])),
                Action::Node(Cmd::new("pveam").args(["list", storage])),
            ],
            Step::FetchFuseOverlayfs { url, sha256 } => {
                let dest = fuse_cache_path(sha256);
                vec![Action::Node(
                    Cmd::new("sh").arg("-c").arg(FETCH_SCRIPT).args([
                        "provision",
                        url,
                        &dest,
                        sha256,
                    ]),
                )]
            }
            Step::Create {
                fixed_vmid: _,
                template,
                options,
                ssh_keys,
            } => {
                let mut acts = Vec::new();
                let keyfile = format!("{NODE_TMP_DIR}/ssh-keys-{id}");
                if let Some(k) = ssh_keys {
                    acts.push(Action::PutNode {
                        dest: keyfile.clone(),
                        bytes: Arc::new(k.clone().into_bytes()),
                    });
                }
                let mut c = Cmd::new("pct").args(["create", &id, template]);
                for (k, v) in options {
                    c = c.arg(format!("--{k}"));
                    c = c.arg(if k == "ssh-public-keys" {
                        keyfile.clone()
                    } else {
                        v.clone()
                    });
                }
                acts.push(Action::Node(c));
                if ssh_keys.is_some() {
                    acts.push(Action::Node(Cmd::new("rm").args(["-f", "--", &keyfile])));
                }
                acts
            }
            Step::Set { set, .. } => {
                let mut c = Cmd::new("pct").args(["set", &id]);
                let mut delete = Vec::new();
                for (k, v) in set {
                    // An empty value means "none": PVE removes a key with --delete.
                    if v.is_empty() {
                        delete.push(k.clone());
                    } else {
                        c = c.arg(format!("--{k}")).arg(v.clone());
                    }
                }
                if !delete.is_empty() {
                    c = c.arg("--delete").arg(delete.join(","));
                }
                vec![Action::Node(c)]
            }
            Step::Resize { size } => vec![Action::Node(
                Cmd::new("pct").args(["resize", &id, "rootfs", size]),
            )],
            Step::Start => vec![Action::Node(Cmd::new("pct").args(["start", &id]))],
            Step::Reboot { .. } => vec![Action::Node(Cmd::new("pct").args(["reboot", &id]))],
            Step::InstallPackages { docker, packages } => {
                let (method, repo) = match docker.as_deref() {
                    Some(m) if m.starts_with("docker-ce ") => (
                        "docker-ce".to_string(),
                        Some(m["docker-ce ".len()..].to_string()),
                    ),
                    Some(m) => (m.to_string(), None),
                    None => ("none".to_string(), None),
                };
                let mut args: Vec<&str> = vec![&method];
                if let Some(r) = &repo {
                    args.push(r);
                }
                args.extend(packages.iter().map(String::as_str));
                vec![Action::Inside(sh(INSTALL_SCRIPT, &args), None)]
            }
            Step::PushFuseOverlayfs { content, sha256 } => {
                let tmp = format!("{FUSE_DEST}.provision-new");
                vec![
                    Action::Inside(Cmd::new("mkdir").args(["-p", "/usr/local/bin"]), None),
                    Action::Put {
                        dest: tmp.clone(),
                        mode: 0o755,
                        content: content.clone(),
                        sha256: sha256.clone(),
                    },
                    Action::Inside(
                        sh(
                            PUSH_CHECK_SCRIPT,
                            &[&tmp, FUSE_DEST, sha256.as_deref().unwrap_or("")],
                        ),
                        None,
                    ),
                ]
            }
            Step::LinkPackageFuseOverlayfs => {
                vec![Action::Inside(sh(LINK_PACKAGE_SCRIPT, &[FUSE_DEST]), None)]
            }
            Step::WriteDaemonJson { content, .. } => {
                let tmp = format!("{DAEMON_JSON}.provision-new");
                let bytes = content.as_bytes().to_vec();
                let sha = sha256_hex(&bytes);
                vec![
                    Action::Inside(Cmd::new("mkdir").args(["-p", "/etc/docker"]), None),
                    Action::Put {
                        dest: tmp.clone(),
                        mode: 0o644,
                        content: Content::Bytes(Arc::new(bytes)),
                        sha256: Some(sha),
                    },
                    Action::Inside(place(&tmp, DAEMON_JSON, content.as_bytes(), true), None),
                ]
            }
            Step::RestartDocker { .. } => vec![Action::Inside(sh(RESTART_SCRIPT, &[]), None)],
            Step::WriteFile { dest, mode, bytes } => {
                let tmp = format!("{dest}.provision-new");
                let parent = dest
                    .rsplit_once('/')
                    .map(|(p, _)| if p.is_empty() { "/" } else { p })
                    .unwrap_or("/");
                vec![
                    Action::Inside(Cmd::new("mkdir").args(["-p", parent]), None),
                    Action::Put {
                        dest: tmp.clone(),
                        mode: *mode,
                        content: Content::Bytes(bytes.clone()),
                        sha256: Some(sha256_hex(bytes)),
                    },
                    Action::Inside(place(&tmp, dest, bytes, false), None),
                ]
            }
            Step::RunCommands { commands, marker } => {
                let mut acts: Vec<Action> = commands
                    .iter()
                    .map(|c| {
                        Action::Inside(Cmd::new(c[0].clone()).args(c[1..].iter().cloned()), None)
                    })
                    .collect();
                acts.push(Action::Inside(sh(STATE_SET, &["commands", marker]), None));
                acts
            }
            Step::SetPassword { line } => vec![
                Action::Inside(Cmd::new("chpasswd"), Some(line.clone())),
                Action::Inside(sh(STATE_SET, &["password", "set"]), None),
            ],
            Step::Verify { driver, image } => vec![Action::Inside(
                sh(VERIFY_SCRIPT, &[driver.as_str(), image]),
                None,
            )],
        }
    }
}

/// How an action shows in a plan: the node-level argv that runs (pct exec / pct push form).
pub fn action_argv(a: &Action, vmid: u32, keep_env: bool) -> Vec<String> {
    match a {
        Action::Node(c) => c.argv(),
        Action::Inside(c, _) => Pct::exec_cmd(vmid, keep_env, c).argv(),
        Action::Put {
            dest,
            mode,
            content,
            ..
        } => {
            let src = match content {
                Content::NodeFile(p) => p.clone(),
                Content::Bytes(_) => format!("{NODE_TMP_DIR}/push-{vmid}-<tmp>"),
            };
            Pct::push_cmd(vmid, &src, dest, *mode).argv()
        }
        Action::PutNode { dest, .. } => vec!["<write file on node>".into(), dest.clone()],
    }
}

/// True when an output of `pveam update` says it failed (it exits 0 anyway).
pub fn pveam_update_failed(out: &Output) -> bool {
    let text = format!("{}{}", out.stdout_text(), out.stderr_text());
    !out.success() || text.contains("update failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{EMBEDDED, parse_layer, resolve};

    fn docker_profile() -> Profile {
        let (l, i) = parse_layer("docker.toml", EMBEDDED[0].1).unwrap();
        resolve("docker", &[(l, i)], None).unwrap()
    }

    #[test]
    fn newest_template_wins_by_version_not_by_text() {
        let names = [
            "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
            "ubuntu-24.04-standard_24.04-10_amd64.tar.zst",
            "ubuntu-22.04-standard_22.04-1_amd64.tar.zst",
            "debian-12-standard_12.7-1_amd64.tar.zst",
        ];
        assert_eq!(
            newest_match("ubuntu-24.04", names).unwrap(),
            "ubuntu-24.04-standard_24.04-10_amd64.tar.zst"
        );
        assert_eq!(
            newest_match("debian-12", names).unwrap(),
            "debian-12-standard_12.7-1_amd64.tar.zst"
        );
        assert!(newest_match("debian-13", names).is_none());
    }

    #[test]
    fn driver_decision_cases() {
        let c = |t: Option<&str>, z: Option<&str>| decide_driver(t, z).0;
        assert_eq!(
            c(Some("zfspool"), Some("2.1.15-pve1")),
            Driver::FuseOverlayfs
        );
        assert_eq!(c(Some("zfspool"), Some("2.2.7-pve1")), Driver::Overlay2);
        assert_eq!(c(Some("zfspool"), Some("2.3.0")), Driver::Overlay2);
        assert_eq!(c(Some("zfspool"), None), Driver::FuseOverlayfs);
        assert_eq!(c(Some("dir"), None), Driver::Overlay2);
        assert_eq!(c(Some("lvmthin"), Some("2.1.0")), Driver::Overlay2);
        assert_eq!(c(None, None), Driver::Overlay2);
        assert!(
            decide_driver(Some("zfspool"), Some("2.1.15-pve1"))
                .1
                .contains("older than 2.2")
        );
    }

    #[test]
    fn daemon_json_merge_keeps_user_keys_and_is_idempotent() {
        let user = r#"{"log-driver": "journald", "features": {"buildkit": true}}"#;
        let (text, why) = merge_daemon_json(Some(user), Driver::FuseOverlayfs, false)
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["log-driver"], "journald");
        assert_eq!(v["features"]["buildkit"], true);
        assert_eq!(v["features"]["containerd-snapshotter"], false);
        assert_eq!(v["storage-driver"], "fuse-overlayfs");
        assert_eq!(why.len(), 2);
        // User key order is kept.
        assert!(text.find("log-driver").unwrap() < text.find("storage-driver").unwrap());
        assert_eq!(
            merge_daemon_json(Some(&text), Driver::FuseOverlayfs, false).unwrap(),
            None
        );
    }

    #[test]
    fn invalid_daemon_json_is_refused_unless_forced() {
        let e = merge_daemon_json(Some("{\"a\": 1,"), Driver::Overlay2, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid JSON") && e.contains("--force"), "{e}");
        assert!(merge_daemon_json(Some("[1]"), Driver::Overlay2, false).is_err());
        let (t, _) = merge_daemon_json(Some("{\"a\": 1,"), Driver::Overlay2, true)
            .unwrap()
            .unwrap();
        assert!(t.contains("overlay2"));
        // No file: written.
        assert!(
            merge_daemon_json(None, Driver::Overlay2, false)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn create_command_is_what_pve_accepts() {
        let mut p = docker_profile();
        // plan_node pins `rootfs.storage = "auto"` before the create options are made.
        p.rootfs.storage = "local-zfs".into();
        let step = Step::Create {
            fixed_vmid: None,
            template: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst".into(),
            options: create_options(&p, "web1", false),
            ssh_keys: None,
        };
        let acts = step.actions(105);
        let Action::Node(c) = &acts[0] else { panic!() };
        assert_eq!(
            c.argv(),
            [
                "pct",
                "create",
                "105",
                "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
                "--hostname",
                "web1",
                "--unprivileged",
                "1",
                "--features",
                "fuse=1,keyctl=1,mknod=1,nesting=1",
                "--rootfs",
                "local-zfs:8",
                "--net0",
                "name=eth0,bridge=vmbr0,ip=dhcp,type=veth",
                "--cores",
                "2",
                "--memory",
                "2048",
                "--swap",
                "512",
                "--onboot",
                "0",
                "--tags",
                "docker;provision",
                "--description",
                "Docker-ready unprivileged Ubuntu LTS container (the newest the node accepts), Docker on fuse-overlayfs (seed recipe, ZFS < 2.2 nodes) (managed by provision)",
            ]
        );
    }

    #[test]
    fn ssh_keys_go_through_a_node_file_that_is_removed() {
        let mut p = docker_profile();
        p.ssh_public_keys = vec!["ssh-ed25519 AAAA me".into()];
        let keys = Some("ssh-ed25519 AAAA me\n".to_string());
        let step = Step::Create {
            fixed_vmid: None,
            template: "t".into(),
            options: create_options(&p, "h", true),
            ssh_keys: keys,
        };
        let acts = step.actions(101);
        assert!(
            matches!(&acts[0], Action::PutNode { dest, .. } if dest == "/run/provision/ssh-keys-101")
        );
        let Action::Node(c) = &acts[1] else { panic!() };
        let argv = c.argv();
        let i = argv.iter().position(|a| a == "--ssh-public-keys").unwrap();
        assert_eq!(argv[i + 1], "/run/provision/ssh-keys-101");
        assert!(matches!(&acts[2], Action::Node(c) if c.argv()[0] == "rm"));
    }

    #[test]
    fn net0_with_static_vlan_firewall() {
        let mut p = docker_profile();
        p.network.ip = "10.1.2.3/24".into();
        p.network.gateway = Some("10.1.2.1".into());
        p.network.vlan = Some(20);
        p.network.firewall = true;
        assert_eq!(
            net0_string(&p, Some("BC:24:11:00:00:01")),
            "name=eth0,bridge=vmbr0,firewall=1,gw=10.1.2.1,hwaddr=BC:24:11:00:00:01,ip=10.1.2.3/24,tag=20,type=veth"
        );
    }

    #[test]
    fn config_comparison_ignores_pve_normalisation() {
        assert!(differs("tags", "docker;provision", Some("provision;docker")).is_none());
        assert!(differs("features", "fuse=1,nesting=1", Some("nesting=1,fuse=1")).is_none());
        assert!(
            differs(
                "net0",
                "name=eth0,bridge=vmbr0,ip=dhcp,type=veth",
                Some("name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth")
            )
            .is_none()
        );
        assert!(
            differs(
                "net0",
                "name=eth0,bridge=vmbr1,ip=dhcp,type=veth",
                Some("name=eth0,bridge=vmbr0,ip=dhcp,type=veth")
            )
            .is_some()
        );
        assert!(differs("onboot", "0", None).is_none());
        assert!(
            differs("memory", "2048", Some("1024"))
                .unwrap()
                .contains("1024 -> 2048")
        );
    }

    #[test]
    fn all_scripts_are_valid_sh() {
        for s in [
            INSTALL_SCRIPT,
            PUSH_CHECK_SCRIPT,
            LINK_PACKAGE_SCRIPT,
            FETCH_SCRIPT,
            PLACE_SCRIPT,
            RESTART_SCRIPT,
            VERIFY_SCRIPT,
            STATE_SET,
        ] {
            let script = format!("{SH_PRELUDE}{s}");
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{s}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
