//! Images (`image = "auto"`): which part of a profile goes into a node-local container template,
//! its content hash and name, and what a container made from it has inside. Pure: no I/O.
//!
//! Image-level (in the image, covered by the hash): the base template, the Docker install
//! method and repository, the storage driver as decided for the node, the fuse-overlayfs
//! source and the SHA-256 of the binary pushed, whether the local probe needs busybox
//! (`docker.verify_image` empty), privileged or not, the tool-managed daemon.json keys (they
//! follow from the driver) and the scripts that install, clean and verify. Per-container (never
//! in the image): hostname, VMID, resources, network, tags, SSH keys, password, `files`,
//! `commands`, and daemon.json keys the user adds to a container.

use super::*;

/// Start of every image file name this tool builds (and the only ones `image prune` removes).
pub const IMAGE_PREFIX: &str = "provision-docker-";
/// Tag of the temporary container an image is built in.
pub const BUILD_TAG: &str = "provision-image-build";
/// The script that cleans a build container for templating.
pub const CLEAN_SCRIPT: &str = include_str!("../scripts/image-clean.sh");
/// Where a container made from an image finds the image's name.
pub const IMAGE_MARK: &str = "/etc/provision-image";

/// One image: what it is built from and what it is called.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageSpec {
    /// SHA-256 (hex) of everything that goes into it.
    pub hash: String,
    /// File name in the template storage, e.g. `provision-docker-0123456789ab_amd64.tar.zst`.
    pub name: String,
    /// Volume id, e.g. `local:vztmpl/provision-docker-0123456789ab_amd64.tar.zst`.
    pub volid: String,
    /// The base template's volume id.
    pub base: String,
    /// The storage driver the image is configured for.
    pub driver: Driver,
}

/// The image of profile `p` on a node where its base template is `base` (a volume id) and its
/// storage driver is `driver`; `fuse_sha256` is the binary that would be pushed, when known.
pub fn image_spec(p: &Profile, base: &str, driver: Driver, fuse_sha256: Option<&str>) -> ImageSpec {
    let d = &p.docker;
    let fuse = match driver {
        Driver::FuseOverlayfs => serde_json::json!({
            "source": d.fuse_overlayfs,
            "binary_sha256": fuse_sha256,
        }),
        _ => serde_json::Value::Null,
    };
    let base_name = base.rsplit('/').next().unwrap_or(base);
    let content = serde_json::json!({
        "format": 1,
        "base": base_name,
        "install": d.install.as_str(),
        "repository": d.repository,
        "driver": driver.as_str(),
        "fuse_overlayfs": fuse,
        "probe_busybox": d.verify_image.is_empty(),
        "unprivileged": p.unprivileged,
        "daemon_json": merge_daemon_json(None, driver, false).ok().flatten().map(|(t, _)| t),
        "scripts": [
            sha256_hex(INSTALL_SCRIPT.as_bytes()),
            sha256_hex(CLEAN_SCRIPT.as_bytes()),
            sha256_hex(VERIFY_SCRIPT.as_bytes()),
        ],
    });
    let hash = sha256_hex(content.to_string().as_bytes());
    let name = format!("{IMAGE_PREFIX}{}_amd64.tar.zst", &hash[..12]);
    ImageSpec {
        volid: format!("{}:vztmpl/{name}", p.template_storage),
        hash,
        name,
        base: base.to_string(),
        driver,
    }
}

/// The image name in a template volume id or file name, when it is one this tool builds
/// (`provision-docker-<12 hex>_amd64.tar.zst`); anything else is not ours.
pub fn image_of(volid: &str) -> Option<&str> {
    let name = volid.rsplit(['/', ':']).next()?;
    let hex = name
        .strip_prefix(IMAGE_PREFIX)?
        .strip_suffix("_amd64.tar.zst")?;
    (hex.len() == 12
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(name)
}

/// The in-container command that cleans a build container for templating.
pub fn clean_cmd(image: &str) -> Cmd {
    sh(CLEAN_SCRIPT, &[image])
}

/// The request of a container made from `spec`: its template is the image.
pub fn from_image(req: &Request, spec: &ImageSpec) -> Request {
    let mut r = req.clone();
    r.profile.template = spec.volid.clone();
    r.profile.from_image = Some(spec.name.clone());
    r
}

/// The request of the temporary container an image is built in: the profile's image-level
/// part only (no files, commands, password or keys), a name that says what it is, and the
/// build tag.
pub fn build_request(req: &Request, spec: &ImageSpec) -> Request {
    let mut p = req.profile.clone();
    p.template = spec.base.clone();
    p.image = crate::profile::ImageMode::None;
    p.from_image = None;
    p.hostname = None;
    p.vmid = None;
    p.files.clear();
    p.commands.clear();
    p.root_password = None;
    p.ssh_public_keys.clear();
    // Mount points and devices are per-container, except Docker's own data volume: the build
    // container keeps it so that its storage driver is the one the image is made for (vzdump
    // leaves mount point volumes out of the archive).
    p.mounts.retain(|m| m.from_docker_data);
    p.devices.clear();
    p.gpu = None;
    p.onboot = false;
    p.tags = vec![BUILD_TAG.to_string()];
    p.access = crate::profile::Access {
        method: crate::profile::AccessMethod::Pct,
        port: 22,
        ..Default::default()
    };
    Request {
        hostname: format!("provision-build-{}", &spec.hash[..12]),
        vmid: None,
        profile: p,
    }
}

/// What a fresh container made from an image of `p` has inside (for plans made before it
/// exists): Docker installed and running with the image's driver and daemon.json, the probe's
/// busybox, fuse-overlayfs in place; none of the per-container parts.
pub fn image_inside_facts(p: &Profile, driver: Driver, src: &SourceFacts) -> InsideFacts {
    let mut f = InsideFacts::fresh();
    f.docker_installed = true;
    f.docker_active = true;
    f.docker_driver = Some(driver.as_str().to_string());
    f.busybox = true;
    f.libfuse3 = true;
    f.daemon_json = merge_daemon_json(None, driver, false)
        .ok()
        .flatten()
        .map(|(t, _)| t);
    if driver == Driver::FuseOverlayfs {
        match p.docker.fuse_overlayfs {
            FuseSource::Package => f.fuse_overlayfs_link = Some("/usr/bin/fuse-overlayfs".into()),
            _ => f.fuse_overlayfs_sha256 = src.fuse_sha256.clone(),
        }
    }
    f
}

/// The steps of a container plan made from an image must not install anything: a container
/// from an image never reaches a package mirror. Names what is missing otherwise.
pub fn check_no_install(p: &Profile, plan: &InsidePlan) -> Result<()> {
    let Some(image) = &p.from_image else {
        return Ok(());
    };
    if let Some(s) = plan
        .steps
        .iter()
        .find(|s| matches!(s, Step::InstallPackages { .. }))
    {
        bail!(
            "the container was created from image {image} but lacks what the profile needs ({}); a container from an image installs nothing: remove the image (`provision image prune`) and build it again",
            s.why()
        );
    }
    Ok(())
}
