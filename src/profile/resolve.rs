//! Resolving a chain of layers into a [`Profile`] with every field concrete, and loading one by
//! name with the command-line overrides on top.

use super::*;

/// Merges layers (bottom first) and resolves defaults; checks rules across fields.
pub fn resolve(
    name: &str,
    layers: &[(Layer, Index)],
    base_dir: Option<PathBuf>,
) -> Result<Profile, InputErrors> {
    let mut m = Layer::default();
    for (l, _) in layers {
        m.overlay(l);
    }
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let rootfs = m.rootfs.clone().unwrap_or_default();
    let net = m.network.clone().unwrap_or_default();
    let feat = m.features.clone().unwrap_or_default();
    let dock = m.docker.clone().unwrap_or_default();
    let fo = dock.fuse_overlayfs.clone().unwrap_or_default();
    let install = DockerInstall::parse(dock.install.as_deref().unwrap_or("none"));
    let driver = Driver::parse(dock.storage_driver.as_deref().unwrap_or("auto"));
    let unprivileged = m.unprivileged.unwrap_or(true);
    let mut features = Features {
        nesting: feat.nesting.unwrap_or(false),
        keyctl: feat.keyctl.unwrap_or(false),
        fuse: feat.fuse.unwrap_or(false),
        mknod: feat.mknod.unwrap_or(false),
    };
    let fuse_source = resolve_fuse_source(&fo, layers, &mut errors);
    cross_field_rules(
        &CrossFields {
            layers,
            install,
            driver,
            unprivileged,
            fuse_asked: feat.fuse,
            repository: dock.repository.as_deref(),
            network: &net,
        },
        &mut features,
        &mut errors,
        &mut warnings,
    );
    let (docker_data, mounts, devices) = data_and_devices(&m, layers, &mut errors);
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }
    // PVE stores tags lower-cased.
    let mut tags: Vec<String> = m
        .tags
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    tags.retain(|t| t != TOOL_TAG);
    tags.sort();
    tags.dedup();
    Ok(Profile {
        name: name.to_string(),
        description: m.description.clone().unwrap_or_default(),
        hostname: m.hostname.clone(),
        vmid: m.vmid.map(|v| v as u32),
        template: m.template.clone().unwrap_or_else(|| UBUNTU_LTS.into()),
        template_storage: m.template_storage.clone().unwrap_or_else(|| "local".into()),
        unprivileged,
        cores: m.cores.unwrap_or(1) as u32,
        memory: m.memory.unwrap_or(512) as u32,
        swap: m.swap.unwrap_or(512) as u32,
        onboot: m.onboot.unwrap_or(false),
        tags,
        timezone: m.timezone.clone(),
        nameserver: m.nameserver.clone().unwrap_or_default(),
        searchdomain: m.searchdomain.clone(),
        ssh_public_keys: m.ssh_public_keys.clone().unwrap_or_default(),
        root_password: m.root_password.clone(),
        rootfs: Rootfs {
            storage: rootfs.storage.unwrap_or_else(|| AUTO_STORAGE.into()),
            size: rootfs.size.unwrap_or(8.0),
        },
        network: network(net),
        features,
        access: access(m.access.clone().unwrap_or_default()),
        docker: Docker {
            install,
            storage_driver: driver,
            fuse_overlayfs: fuse_source,
            verify_image: dock.verify_image.unwrap_or_default(),
            repository: dock.repository.clone().unwrap_or_default(),
            data: docker_data.clone(),
        },
        files: normal_files(m.files.clone().unwrap_or_default()),
        commands: m.commands.clone().unwrap_or_default(),
        mounts,
        devices,
        gpu: m.gpu.clone(),
        image: match m.image.as_deref() {
            Some("auto") => ImageMode::Auto,
            _ => ImageMode::None,
        },
        from_image: None,
        warnings,
        base_dir,
        sources: String::new(),
    })
}

/// `files` with every `dest` in its normal spelling ([`validate::normal_container_path`]; the
/// layers' checks refused any that has none), so that the plan, the facts read inside and the
/// staging names all see one path.
fn normal_files(mut files: Vec<FileSpec>) -> Vec<FileSpec> {
    for f in &mut files {
        if let Ok(n) = validate::normal_container_path(&f.dest) {
            f.dest = n;
        }
    }
    files
}

/// Docker's data volume, the mounts (with it) and the devices, paths in their normal
/// spelling; a `[[devices]]` entry on the render node next to `gpu` is refused.
type DataAndDevices = (
    Option<DockerData>,
    Vec<crate::mounts::MountSpec>,
    Vec<crate::mounts::devices::DeviceSpec>,
);

fn data_and_devices(
    m: &Layer,
    layers: &[(Layer, Index)],
    errors: &mut Vec<InputError>,
) -> DataAndDevices {
    use crate::mounts::devices::{GPU_RENDER_NODE, device_path};
    let dock = m.docker.clone().unwrap_or_default();
    let docker_data = dock.data.as_ref().map(|d| DockerData {
        storage: d.storage.clone().unwrap_or_default(),
        size: d.size.unwrap_or(0.0),
    });
    if m.gpu.is_some()
        && let Some(i) = m
            .devices
            .iter()
            .flatten()
            .position(|d| device_path(&d.path).as_deref() == Ok(GPU_RENDER_NODE))
    {
        let idx = last_setter(layers, &|l| l.devices.is_some());
        errors.push(idx.error(
            &format!("devices[{i}].path"),
            "the render node is what `gpu` passes (with the container's render group): give one of them, not both",
        ));
    }
    let mounts = with_docker_data(
        normal_mounts(m.mounts.clone().unwrap_or_default()),
        docker_data.as_ref(),
        layers,
        errors,
    );
    let devices = m
        .devices
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|mut d| {
            if let Ok(n) = device_path(&d.path) {
                d.path = n;
            }
            d
        })
        .collect();
    (docker_data, mounts, devices)
}

/// The profile's mounts plus Docker's data volume (`docker.data`), which is one more mount
/// point at /var/lib/docker; a `[[mounts]]` entry there too is refused.
fn with_docker_data(
    mut mounts: Vec<crate::mounts::MountSpec>,
    data: Option<&DockerData>,
    layers: &[(Layer, Index)],
    errors: &mut Vec<InputError>,
) -> Vec<crate::mounts::MountSpec> {
    let Some(d) = data else {
        return mounts;
    };
    if let Some(i) = mounts.iter().position(|m| m.path == DOCKER_DATA_PATH) {
        let idx = last_setter(layers, &|l| l.mounts.is_some());
        errors.push(idx.error(
            &format!("mounts[{i}].path"),
            format!("{DOCKER_DATA_PATH} is Docker's data volume, set by docker.data: give it there, not in [[mounts]]"),
        ));
        return mounts;
    }
    mounts.push(crate::mounts::MountSpec {
        path: DOCKER_DATA_PATH.into(),
        storage: Some(d.storage.clone()),
        size: Some(d.size),
        from_docker_data: true,
        ..crate::mounts::MountSpec::bare()
    });
    mounts
}

/// `mounts` with every path in its normal spelling (the layers' checks refused any that has
/// none), so that matching a mount to the container's `mpN` compares one spelling.
fn normal_mounts(mut mounts: Vec<crate::mounts::MountSpec>) -> Vec<crate::mounts::MountSpec> {
    for m in &mut mounts {
        if let Ok(n) = crate::mounts::container_mount_path(&m.path) {
            m.path = n;
        }
        if let Some(h) = m.host.as_mut()
            && let Ok(n) = crate::mounts::host_path(h)
        {
            *h = n;
        }
    }
    mounts
}

/// The layer that set a field last (`get` says whether a layer sets it): errors on rules that
/// span fields go there.
fn last_setter<'a>(layers: &'a [(Layer, Index)], get: &dyn Fn(&Layer) -> bool) -> &'a Index {
    layers
        .iter()
        .rev()
        .find(|(l, _)| get(l))
        .map_or(&layers[layers.len() - 1].1, |(_, i)| i)
}

/// Where fuse-overlayfs comes from; `url` without its checksum is an error.
fn resolve_fuse_source(
    fo: &FuseOverlayfsLayer,
    layers: &[(Layer, Index)],
    errors: &mut Vec<InputError>,
) -> FuseSource {
    match fo.source.as_deref().unwrap_or("node") {
        "package" => FuseSource::Package,
        "url" => match (&fo.url, &fo.sha256) {
            (Some(u), Some(s)) => FuseSource::Url {
                url: u.clone(),
                sha256: s.to_lowercase(),
            },
            _ => {
                let i = last_setter(layers, &|l| {
                    l.docker
                        .as_ref()
                        .and_then(|d| d.fuse_overlayfs.as_ref())
                        .is_some_and(|f| f.source.is_some())
                });
                errors.push(i.error("docker.fuse_overlayfs", "source = \"url\" needs both `url` and `sha256` (a download is never trusted without its checksum)"));
                FuseSource::Package
            }
        },
        _ => FuseSource::Node {
            path: fo
                .path
                .clone()
                .unwrap_or_else(|| "/usr/local/bin/fuse-overlayfs".into()),
            sha256: fo.sha256.clone().map(|s| s.to_lowercase()),
        },
    }
}

/// The merged values that rules across fields look at.
struct CrossFields<'a> {
    layers: &'a [(Layer, Index)],
    install: DockerInstall,
    driver: Driver,
    unprivileged: bool,
    /// `features.fuse` as the layers set it (None: not set).
    fuse_asked: Option<bool>,
    repository: Option<&'a str>,
    network: &'a NetworkLayer,
}

/// Rules that span fields: Docker's needs (fuse, nesting, keyctl, a docker-ce repository),
/// privileged containers, a gateway without a static address.
fn cross_field_rules(
    c: &CrossFields<'_>,
    features: &mut Features,
    errors: &mut Vec<InputError>,
    warnings: &mut Vec<String>,
) {
    let (layers, install, driver, unprivileged) = (c.layers, c.install, c.driver, c.unprivileged);
    let net = c.network;
    if install != DockerInstall::None {
        if driver == Driver::FuseOverlayfs || driver == Driver::Auto {
            if c.fuse_asked == Some(false) && driver == Driver::FuseOverlayfs {
                let i = last_setter(layers, &|l| {
                    l.features.as_ref().is_some_and(|f| f.fuse.is_some())
                });
                errors.push(i.error("features.fuse", "fuse-overlayfs needs the container's fuse feature; remove `fuse = false` or choose storage_driver = \"overlay2\""));
            } else if !features.fuse && driver == Driver::FuseOverlayfs {
                features.fuse = true;
                warnings.push(
                    "features.fuse was not set: enabled it, fuse-overlayfs needs /dev/fuse"
                        .to_string(),
                );
            }
        }
        if !features.nesting {
            warnings.push(
                "Docker in LXC needs features.nesting = true; without it dockerd usually fails"
                    .to_string(),
            );
        }
        if unprivileged && !features.keyctl {
            warnings.push("Docker in an unprivileged container needs features.keyctl = true (runc uses keyctl)".to_string());
        }
    }
    if install == DockerInstall::DockerCe && c.repository.is_none() {
        let i = last_setter(layers, &|l| {
            l.docker.as_ref().is_some_and(|d| d.install.is_some())
        });
        errors.push(i.error("docker.install", "install = \"docker-ce\" needs docker.repository: the URL of Docker's apt repository for the container's distribution"));
    }
    if !unprivileged {
        warnings.push("this is a PRIVILEGED container (unprivileged = false): root inside is root on the node".to_string());
        if features.keyctl {
            // PVE accepts it and leaves a privileged container's seccomp profile as it is
            // (keyctl is allowed there anyway).
            warnings.push("features.keyctl has no effect on a privileged container (PVE accepts it; keyctl() is not filtered there)".to_string());
        }
    }
    if net.gateway.is_some() && matches!(net.ip.as_deref(), None | Some("dhcp") | Some("manual")) {
        let i = last_setter(layers, &|l| {
            l.network.as_ref().is_some_and(|n| n.gateway.is_some())
        });
        errors.push(i.error(
            "network.gateway",
            "a gateway goes with a static `ip` (address/prefix), not with dhcp or manual",
        ));
    }
}

/// `[network]` with its defaults.
fn network(net: NetworkLayer) -> Network {
    Network {
        bridge: net.bridge.unwrap_or_else(|| "vmbr0".into()),
        ip: net.ip.unwrap_or_else(|| "dhcp".into()),
        gateway: net.gateway,
        ip6: net.ip6,
        gateway6: net.gateway6,
        vlan: net.vlan.map(|v| v as u16),
        firewall: net.firewall.unwrap_or(false),
        mtu: net.mtu.map(|v| v as u16),
        hwaddr: net.hwaddr,
    }
}

/// `[access]` with its defaults.
fn access(a: AccessLayer) -> Access {
    Access {
        method: match a.method.as_deref() {
            Some("ssh") => AccessMethod::Ssh,
            _ => AccessMethod::Pct,
        },
        address: a.address,
        port: a.port.unwrap_or(22) as u16,
        identity: a.identity,
    }
}

/// Loads a profile by name or path, applies command-line overrides (already checked), and
/// resolves it.
pub fn load(name: &str, overrides: &Layer) -> Result<Profile, InputErrors> {
    load_as(name, "--profile", overrides)
}

/// [`load`] for a name given as the command-line argument `arg` (errors about the name blame
/// it).
pub fn load_as(name: &str, arg: &str, overrides: &Layer) -> Result<Profile, InputErrors> {
    let chain = load_chain_from(name, arg)?;
    let sources = provenance(&chain);
    let cli_idx = Index::command_line();
    let errs = check_layer(overrides, &cli_idx);
    if !errs.is_empty() {
        return Err(InputErrors(errs));
    }
    // `files` is replaced as a whole by the layer that sets it last: its relative sources are
    // read from that layer's directory.
    let files_layer = chain
        .iter()
        .rev()
        .find(|l| l.layer.files.is_some())
        .or(chain.last());
    let base_dir = files_layer.and_then(|l| l.dir.clone());
    if let Some(l) = files_layer {
        let errs = check_sources(l);
        if !errs.is_empty() {
            return Err(InputErrors(errs));
        }
    }
    let mut layers: Vec<(Layer, Index)> = chain.into_iter().map(|l| (l.layer, l.index)).collect();
    layers.push((overrides.clone(), cli_idx));
    let mut p = resolve(name, &layers, base_dir)?;
    p.sources = sources;
    Ok(p)
}

/// Checks that every `files.source` of a layer names a readable file.
pub(super) fn check_sources(l: &LoadedLayer) -> Vec<InputError> {
    let mut errs = Vec::new();
    for (i, f) in l.layer.files.iter().flatten().enumerate() {
        let Some(src) = &f.source else { continue };
        let path = match &l.dir {
            Some(d) if Path::new(src).is_relative() => d.join(src),
            _ => PathBuf::from(src),
        };
        if let Some(why) = crate::input::not_regular(&path) {
            errs.push(l.index.error(
                &format!("files[{i}].source"),
                format!(
                    "{} {why} (a relative source is read from the profile's directory)",
                    path.display()
                ),
            ));
        }
    }
    errs
}
