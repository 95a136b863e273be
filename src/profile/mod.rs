//! TOML profiles: serde types, lookup, layering (`extends`), validation, resolution.
//!
//! A profile is read as a [`Layer`] (every field optional, unknown keys refused). Layers stack:
//! `extends` names the layer below; later layers win field by field; command-line overrides are
//! the last layer. Every value is checked in the layer that wrote it, so an error names that
//! file, line, column and field, even when a later layer would override it. The result is a
//! [`Profile`] with every field concrete. Nothing here runs a command or touches a host.

use crate::error::{InputError, InputErrors, line_col};
use crate::validate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Profiles built into the binary: (name, TOML text).
pub const EMBEDDED: &[(&str, &str)] = &[
    ("docker", include_str!("../../profiles/docker.toml")),
    (
        "docker-auto",
        include_str!("../../profiles/docker-auto.toml"),
    ),
];

/// Largest profile or lab file read (a profile is a small text file).
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// The tag that marks containers made by this tool.
pub const TOOL_TAG: &str = "provision";

/// The template short form that stands for the newest Ubuntu LTS the node's pve-container
/// accepts (the default).
pub const UBUNTU_LTS: &str = "ubuntu-lts";

/// `rootfs.storage = "auto"` (the default): the node decides (see [`crate::rootdisk`]).
pub const AUTO_STORAGE: &str = "auto";

mod checks;
mod layers;
mod load;
mod resolve;

pub use checks::*;
pub use layers::*;
pub use load::*;
pub use resolve::*;

/// Where the fuse-overlayfs binary comes from.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum FuseSource {
    /// A file on the PVE node.
    Node {
        /// Its path on the node.
        path: String,
        /// Expected SHA-256, if pinned.
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// Downloaded on the node, verified against the SHA-256.
    Url {
        /// Where from.
        url: String,
        /// Required checksum.
        sha256: String,
    },
    /// The container's `fuse-overlayfs` package.
    Package,
}

/// Docker storage driver.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Driver {
    /// fuse-overlayfs (ZFS < 2.2 rootfs).
    FuseOverlayfs,
    /// Docker's native overlay2.
    Overlay2,
    /// vfs (copies every layer).
    Vfs,
    /// Decide from the node's facts.
    Auto,
}

impl Driver {
    /// The name Docker uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::FuseOverlayfs => "fuse-overlayfs",
            Driver::Overlay2 => "overlay2",
            Driver::Vfs => "vfs",
            Driver::Auto => "auto",
        }
    }
    fn parse(s: &str) -> Driver {
        match s {
            "fuse-overlayfs" => Driver::FuseOverlayfs,
            "overlay2" => Driver::Overlay2,
            "vfs" => Driver::Vfs,
            _ => Driver::Auto,
        }
    }
}

/// Access, resolved.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
pub struct Access {
    /// pct | ssh.
    pub method: AccessMethod,
    /// Address (ssh), when fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Port (ssh).
    pub port: u16,
    /// Key file (ssh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// Docker section, resolved.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Docker {
    /// How Docker gets into the container.
    pub install: DockerInstall,
    /// Storage driver to configure.
    pub storage_driver: Driver,
    /// Where fuse-overlayfs comes from (used when the driver is fuse-overlayfs).
    pub fuse_overlayfs: FuseSource,
    /// Image for verification; empty = local probe image.
    pub verify_image: String,
    /// Docker's apt repository URL (install = docker-ce).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub repository: String,
    /// Docker's data on its own volume (also one of the profile's `mounts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<DockerData>,
}

/// `docker.data`, resolved.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct DockerData {
    /// Storage ID.
    pub storage: String,
    /// GiB.
    pub size: f64,
}

/// Where Docker keeps its data.
pub const DOCKER_DATA_PATH: &str = "/var/lib/docker";

/// How Docker gets into the container (`docker.install`).
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DockerInstall {
    /// The distribution's docker.io (and docker-cli where the release splits it).
    Distro,
    /// docker-ce from Docker's apt repository (`docker.repository`).
    DockerCe,
    /// Already installed: refuse when it is not.
    Present,
    /// No Docker: the container only.
    None,
}

impl DockerInstall {
    /// The profile's spelling (checked before: anything else is refused with its place).
    pub fn parse(s: &str) -> DockerInstall {
        match s {
            "distro" => DockerInstall::Distro,
            "docker-ce" => DockerInstall::DockerCe,
            "present" => DockerInstall::Present,
            _ => DockerInstall::None,
        }
    }

    /// The profile's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DockerInstall::Distro => "distro",
            DockerInstall::DockerCe => "docker-ce",
            DockerInstall::Present => "present",
            DockerInstall::None => "none",
        }
    }
}

/// Whether containers of a profile are made from an image (`image`).
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageMode {
    /// Build the image once per node when missing, then create every container from it.
    Auto,
    /// Install into every container from the base template (the default).
    #[default]
    None,
}

/// How the inside of the container is reached (`access.method`).
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccessMethod {
    /// `pct exec` / `pct push` through the node.
    #[default]
    Pct,
    /// SSH straight into the container.
    Ssh,
}

/// Network, resolved.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Network {
    /// Bridge.
    pub bridge: String,
    /// dhcp | manual | IPv4/CIDR.
    pub ip: String,
    /// IPv4 gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// IPv6 config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip6: Option<String>,
    /// IPv6 gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    /// VLAN tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// PVE firewall.
    pub firewall: bool,
    /// MTU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwaddr: Option<String>,
}

/// Features, resolved.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
pub struct Features {
    /// nesting=1
    pub nesting: bool,
    /// keyctl=1
    pub keyctl: bool,
    /// fuse=1
    pub fuse: bool,
    /// mknod=1
    pub mknod: bool,
}

/// Root disk, resolved.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Rootfs {
    /// Storage ID.
    pub storage: String,
    /// GiB.
    pub size: f64,
}

/// A profile with every field concrete.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Profile {
    /// The name it was asked by.
    #[serde(skip)]
    pub name: String,
    /// Description.
    pub description: String,
    /// Hostname, when the profile fixes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// VMID, when fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// Template short form or volume id.
    pub template: String,
    /// Template storage.
    pub template_storage: String,
    /// Unprivileged.
    pub unprivileged: bool,
    /// Cores.
    pub cores: u32,
    /// MiB.
    pub memory: u32,
    /// MiB.
    pub swap: u32,
    /// Start at boot.
    pub onboot: bool,
    /// Tags (without the tool's own).
    pub tags: Vec<String>,
    /// Timezone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// DNS servers.
    pub nameserver: Vec<String>,
    /// Search domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub searchdomain: Option<String>,
    /// SSH keys for root.
    pub ssh_public_keys: Vec<String>,
    /// Root password source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_password: Option<PasswordSource>,
    /// Root disk.
    pub rootfs: Rootfs,
    /// eth0.
    pub network: Network,
    /// Features.
    pub features: Features,
    /// Docker.
    pub docker: Docker,
    /// How the inside is reached.
    pub access: Access,
    /// Files to write.
    pub files: Vec<FileSpec>,
    /// Commands to run.
    pub commands: Vec<Vec<String>>,
    /// Mount points (paths in their normal spelling), in the profile's order.
    #[serde(
        skip_serializing_if = "no_written_mounts",
        serialize_with = "crate::mounts::serialize_written"
    )]
    pub mounts: Vec<crate::mounts::MountSpec>,
    /// Devices (paths in their normal spelling), in the profile's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<crate::mounts::devices::DeviceSpec>,
    /// `intel` or `amd`: the GPU's render node with the container's `render` group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// Whether containers are created from a node-local image (`image = "auto"`).
    pub image: ImageMode,
    /// Set by the applier when this container is created from that image: the image's file
    /// name (never read from a profile file).
    #[serde(skip)]
    pub from_image: Option<String>,
    /// Warnings found while resolving (shown in the plan).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Directory of the profile file that set `files` (for relative `files.source`).
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
    /// The files the profile was built from, base first ([`provenance`]), shown in plans and
    /// reports: which file (a local one that shadows a shipped profile, too) was used.
    #[serde(skip)]
    pub sources: String,
}

fn no_written_mounts(m: &[crate::mounts::MountSpec]) -> bool {
    m.iter().all(|x| x.from_docker_data)
}

impl Profile {
    /// The profile as TOML (for `profiles show`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
