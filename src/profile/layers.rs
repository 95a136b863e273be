//! A profile as written: a [`Layer`] with every field optional (unknown keys refused), and how
//! layers stack field by field.

use super::*;

/// How the root password is supplied: never on a command line.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum PasswordSource {
    /// Name of an environment variable holding it.
    Env(String),
    /// Path of a file (on the machine running provision) holding it.
    File(String),
    /// Ask on the terminal.
    Prompt(bool),
}

/// `[rootfs]`.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RootfsLayer {
    /// Storage ID for the root disk (must allow container directories: `rootdir`).
    pub storage: Option<String>,
    /// Size in GiB (fractions allowed).
    pub size: Option<f64>,
}

/// `[network]`: the container's eth0.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkLayer {
    /// Bridge on the node, e.g. vmbr0.
    pub bridge: Option<String>,
    /// `dhcp`, `manual` or an IPv4/CIDR address.
    pub ip: Option<String>,
    /// IPv4 gateway (static addressing).
    pub gateway: Option<String>,
    /// `auto`, `dhcp`, `manual` or an IPv6/CIDR address.
    pub ip6: Option<String>,
    /// IPv6 gateway.
    pub gateway6: Option<String>,
    /// VLAN tag (1-4094).
    pub vlan: Option<i64>,
    /// PVE firewall on this interface.
    pub firewall: Option<bool>,
    /// MTU (64-65535).
    pub mtu: Option<i64>,
    /// Fixed MAC address.
    pub hwaddr: Option<String>,
}

/// `[features]`: LXC features.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeaturesLayer {
    /// Nested containers (Docker needs it).
    pub nesting: Option<bool>,
    /// keyctl() syscall (Docker/runc in unprivileged containers).
    pub keyctl: Option<bool>,
    /// /dev/fuse and fuse mounts (fuse-overlayfs).
    pub fuse: Option<bool>,
    /// mknod of safe device nodes (experimental, kernel >= 5.3).
    pub mknod: Option<bool>,
}

/// Where the fuse-overlayfs binary comes from.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FuseOverlayfsLayer {
    /// `node` (a file on the PVE node), `url` (downloaded on the node, SHA-256 required) or
    /// `package` (the container's distribution package).
    pub source: Option<String>,
    /// With `node`: the file's path on the node.
    pub path: Option<String>,
    /// With `url`: where to download it.
    pub url: Option<String>,
    /// Expected SHA-256 of the binary (required with `url`, optional with `node`).
    pub sha256: Option<String>,
}

/// `[docker] data`: Docker's data (/var/lib/docker) on its own volume.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerDataLayer {
    /// Storage of the volume (must allow `rootdir`).
    pub storage: Option<String>,
    /// Size in GiB.
    pub size: Option<f64>,
}

/// `[docker]`.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerLayer {
    /// `distro` (distribution packages), `docker-ce` (Docker's repository), `present` (already
    /// installed: only configure), or `none` (no Docker).
    pub install: Option<String>,
    /// `fuse-overlayfs`, `overlay2`, `vfs` or `auto`.
    pub storage_driver: Option<String>,
    /// fuse-overlayfs binary source.
    pub fuse_overlayfs: Option<FuseOverlayfsLayer>,
    /// Image to pull and run for verification; empty: build a tiny local image (no registry).
    pub verify_image: Option<String>,
    /// With install = "docker-ce": the URL of Docker's apt repository for this distribution
    /// (the directory that holds `gpg` and `dists/`).
    pub repository: Option<String>,
    /// Docker's data (/var/lib/docker) on its own mount point volume: the root disk stays
    /// small, and the storage driver is chosen for this volume's storage.
    pub data: Option<DockerDataLayer>,
}

/// `[access]`: how the inside of the container is reached.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLayer {
    /// `pct` (pct exec/push on the node, the default) or `ssh` (straight into the container
    /// with the keys installed at create time).
    pub method: Option<String>,
    /// With `ssh`: the container's address; default the static `network.ip`, else the address
    /// the node reports for eth0 once the container is up.
    pub address: Option<String>,
    /// With `ssh`: the port (default 22).
    pub port: Option<i64>,
    /// With `ssh`: private key file (default: ssh-agent, --identity, ~/.ssh/id_*).
    pub identity: Option<String>,
}

/// One file to write into the container.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute destination inside the container.
    pub dest: String,
    /// Inline content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A file on the machine running provision, to copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Octal permission bits as a string, e.g. "0644".
    #[serde(default = "default_mode")]
    pub mode: String,
}

pub(super) fn default_mode() -> String {
    "0644".to_string()
}

/// One profile file as written: every field optional.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// The profile this one builds on.
    pub extends: Option<String>,
    /// What the profile is for (shown by `provision profiles`).
    pub description: Option<String>,
    /// Hostname (the command line's NAME wins).
    pub hostname: Option<String>,
    /// Fixed VMID.
    pub vmid: Option<i64>,
    /// Template: a short form like `ubuntu-24.04` or a volume id `local:vztmpl/...`.
    pub template: Option<String>,
    /// Storage holding templates (vztmpl content).
    pub template_storage: Option<String>,
    /// Unprivileged container (default true).
    pub unprivileged: Option<bool>,
    /// CPU cores.
    pub cores: Option<i64>,
    /// Memory in MiB (at least 16).
    pub memory: Option<i64>,
    /// Swap in MiB.
    pub swap: Option<i64>,
    /// Start at node boot.
    pub onboot: Option<bool>,
    /// PVE tags (the tool adds its own).
    pub tags: Option<Vec<String>>,
    /// `host` or a zoneinfo name.
    pub timezone: Option<String>,
    /// DNS servers.
    pub nameserver: Option<Vec<String>>,
    /// DNS search domain.
    pub searchdomain: Option<String>,
    /// Public keys installed for root.
    pub ssh_public_keys: Option<Vec<String>>,
    /// Root password source (never on a command line).
    pub root_password: Option<PasswordSource>,
    /// Root disk.
    pub rootfs: Option<RootfsLayer>,
    /// eth0.
    pub network: Option<NetworkLayer>,
    /// LXC features.
    pub features: Option<FeaturesLayer>,
    /// Docker inside.
    pub docker: Option<DockerLayer>,
    /// How provision reaches the inside of the container.
    pub access: Option<AccessLayer>,
    /// Files to write inside.
    pub files: Option<Vec<FileSpec>>,
    /// Commands (argv arrays) to run inside after creation.
    pub commands: Option<Vec<Vec<String>>>,
    /// Mount points: new volumes, existing volumes, bind mounts of node directories. The
    /// layer that sets the list last gives the whole list.
    pub mounts: Option<Vec<crate::mounts::MountSpec>>,
    /// Devices passed through (PVE's devN). The layer that sets the list last gives the
    /// whole list.
    pub devices: Option<Vec<crate::mounts::devices::DeviceSpec>>,
    /// `intel` or `amd`: pass the GPU's render node (/dev/dri/renderD128) owned by the
    /// container's own `render` group (its ID read inside), mode 0660.
    pub gpu: Option<String>,
    /// `auto`: build the profile's image-level part once per node into the template storage
    /// and create every container from it; `none` (the default): install into each container.
    pub image: Option<String>,
}

macro_rules! overlay {
    ($base:expr, $top:expr; $($f:ident),* $(,)?) => {
        { $( if $top.$f.is_some() { $base.$f = $top.$f.clone(); } )* }
    };
}

pub(super) fn overlay_sub<T: Clone + Default>(
    base: &mut Option<T>,
    top: &Option<T>,
    f: impl FnOnce(&mut T, &T),
) {
    if let Some(t) = top {
        let b = base.get_or_insert_with(T::default);
        f(b, t);
    }
}

impl Layer {
    /// Lays `top` over `self`: every field `top` sets wins.
    pub fn overlay(&mut self, top: &Layer) {
        overlay!(self, top; extends, description, hostname, vmid, template, template_storage,
            unprivileged, cores, memory, swap, onboot, tags, timezone, nameserver, searchdomain,
            ssh_public_keys, root_password, files, commands, mounts, devices, gpu, image);
        overlay_sub(
            &mut self.rootfs,
            &top.rootfs,
            |b, t| overlay!(b, t; storage, size),
        );
        overlay_sub(
            &mut self.network,
            &top.network,
            |b, t| overlay!(b, t; bridge, ip, gateway, ip6, gateway6, vlan, firewall, mtu, hwaddr),
        );
        overlay_sub(
            &mut self.features,
            &top.features,
            |b, t| overlay!(b, t; nesting, keyctl, fuse, mknod),
        );
        overlay_sub(
            &mut self.access,
            &top.access,
            |b, t| overlay!(b, t; method, address, port, identity),
        );
        overlay_sub(&mut self.docker, &top.docker, |b, t| {
            overlay!(b, t; install, storage_driver, verify_image, repository);
            overlay_sub(&mut b.data, &t.data, |b, t| overlay!(b, t; storage, size));
            overlay_sub(
                &mut b.fuse_overlayfs,
                &t.fuse_overlayfs,
                |b, t| overlay!(b, t; source, path, url, sha256),
            );
        });
    }
}
