//! The planner: (profile, facts) -> the steps needed, and nothing else. Pure: no I/O.
//!
//! Planning happens in two stages because what is inside a container can only be read once it
//! runs: [`plan_node`] decides template, create/set/start; [`plan_inside`] decides Docker,
//! fuse-overlayfs, daemon.json, files, commands and verification from the facts read inside.
//! Every step renders to the exact commands that will run ([`Step::actions`]); a dry run prints
//! those. Each check that finds nothing to do says so in `already`, so a second run is visibly a
//! no-op.

use crate::cmd::pct::{self, NODE_TMP_DIR};
use crate::cmd::{Cmd, Output};
use crate::error::InputError;
use crate::facts::{
    CtConfig, Guest, InsideFacts, NodeFacts, TemplateFacts, parse_property_string, split_tags,
};
use crate::profile::{Driver, FuseSource, Profile, TOOL_TAG};
use crate::release::{Caps, GuestOs, newest_accepted_ubuntu_lts};
use crate::request::{Options, Request};
use anyhow::{Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

mod actions;
mod daemon_json;
mod devices;
mod driver;
mod image;
mod inside;
mod keep;
mod mounts;
mod node;
mod pve_config;
mod rawlxc;
mod replan;
mod template;

pub use actions::*;
pub use daemon_json::*;
pub use devices::*;
pub use driver::*;
pub use image::*;
pub use inside::*;
pub use keep::*;
pub use mounts::*;
pub use node::*;
pub use pve_config::*;
pub use replan::*;
pub use template::*;

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

impl Drop for Secret {
    /// A password line does not outlive its step in memory.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Where Docker is installed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerSource {
    /// The distribution's packages.
    Distro,
    /// docker-ce from Docker's apt repository at this URL.
    DockerCe {
        /// The repository URL.
        repository: String,
    },
}

impl std::fmt::Display for DockerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DockerSource::Distro => f.write_str("distro"),
            DockerSource::DockerCe { repository } => write!(f, "docker-ce {repository}"),
        }
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
    /// Build the profile's image on this node (done before the container's own steps, under
    /// the node lock; see [`crate::plan::image`]).
    BuildImage {
        /// Image file name.
        name: String,
        /// Template storage it goes to.
        storage: String,
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
    /// A bind mount's node directory: created when asked, owned as the profile says (before
    /// the mount point is added).
    HostDir {
        /// The node directory.
        path: String,
        /// Create it when missing.
        create: bool,
        /// Owner (uid, gid) on the node.
        owner: Option<(u32, u32)>,
    },
    /// Raw `lxc.*` lines added to the config's main section by a node script under PVE's
    /// config lock (`pct set` refuses them), read back through `pct config`.
    RawLxc {
        /// The container's hostname (the script refuses another container).
        hostname: String,
        /// key, value.
        lines: Vec<(String, String)>,
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
        /// Install Docker itself, and from where.
        docker: Option<DockerSource>,
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
        /// Mode, owner and group of the file it replaces, kept (None: a new file, 0644 root).
        keep: Option<crate::facts::FileOwner>,
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

#[cfg(test)]
mod tests;
