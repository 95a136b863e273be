//! The in-container part of the plan, from the facts read inside: Docker, fuse-overlayfs,
//! daemon.json, files, commands, password and verification.

use super::*;
use crate::profile::DockerInstall;

/// Marker for the profile's commands: their SHA-256.
pub fn commands_marker(cmds: &[Vec<String>]) -> String {
    sha256_hex(serde_json::to_string(cmds).unwrap_or_default().as_bytes())[..16].to_string()
}

/// Files of the profile with their bytes, read from the machine running provision.
pub type ProfileFiles = Vec<(String, u32, Arc<Vec<u8>>)>;

/// What the in-container plan is made from.
#[derive(Clone, Copy)]
pub struct InsideInput<'a> {
    /// The resolved profile.
    pub profile: &'a Profile,
    /// Docker's storage driver from the node plan (None: no Docker).
    pub driver: Option<Driver>,
    /// What is inside the container now.
    pub facts: &'a InsideFacts,
    /// Where fuse-overlayfs comes from.
    pub sources: &'a SourceFacts,
    /// The profile's files with their bytes.
    pub files: &'a ProfileFiles,
    /// Root password, if the profile sets one.
    pub password: Option<&'a str>,
    /// Plan switches.
    pub opts: &'a Options,
}

/// The in-container plan, from the facts read inside.
pub fn plan_inside(i: &InsideInput<'_>) -> Result<InsidePlan> {
    let (p, f) = (i.profile, i.facts);
    let mut plan = InsidePlan::default();
    let docker = i.driver.filter(|_| p.docker.install != DockerInstall::None);
    if let Some(driver) = docker {
        plan_docker(i, driver, &mut plan)?;
    }
    plan_files(f, i.files, &mut plan);
    plan_password(f, i.password, &mut plan);
    plan_commands(p, f, &mut plan);
    if let Some(driver) = docker {
        plan.steps.push(Step::Verify {
            driver,
            image: p.docker.verify_image.clone(),
        });
    }
    Ok(plan)
}

/// Docker with its storage driver: packages, fuse-overlayfs, daemon.json, and a restart when
/// any of them changed.
fn plan_docker(i: &InsideInput<'_>, driver: Driver, plan: &mut InsidePlan) -> Result<()> {
    let mut restart_why: Vec<String> = Vec::new();
    plan_packages(i, driver, plan, &mut restart_why)?;
    check_storage_switch(i, driver, plan)?;
    if driver == Driver::FuseOverlayfs {
        plan_fuse_binary(i, plan, &mut restart_why);
    }
    plan_daemon_json(i, driver, plan, &mut restart_why)
}

/// Docker itself (unless installed) and the helpers the driver and the verification need.
fn plan_packages(
    i: &InsideInput<'_>,
    driver: Driver,
    plan: &mut InsidePlan,
    restart_why: &mut Vec<String>,
) -> Result<()> {
    let (p, f) = (i.profile, i.facts);
    let mut pkgs = Vec::new();
    let docker = if f.docker_installed {
        plan.already.push(Already {
            step: "docker".into(),
            why: match &p.from_image {
                Some(image) => format!("installed (from image {image})"),
                None => "dockerd is installed".into(),
            },
        });
        None
    } else {
        match p.docker.install {
            DockerInstall::Present => {
                bail!("docker.install = \"present\" but dockerd is not installed in the container")
            }
            DockerInstall::DockerCe => Some(DockerSource::DockerCe {
                repository: p.docker.repository.clone(),
            }),
            DockerInstall::Distro | DockerInstall::None => Some(DockerSource::Distro),
        }
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
    Ok(())
}

/// Refuses to switch the storage driver of a Docker that has data on another one, unless
/// allowed. What Docker has is read from three places: the driver daemon.json names, the driver
/// the running dockerd uses with its images and containers (`docker info`), and the images
/// stored per driver under /var/lib/docker; a missing daemon.json says nothing.
fn check_storage_switch(i: &InsideInput<'_>, driver: Driver, plan: &mut InsidePlan) -> Result<()> {
    let (f, opts) = (i.facts, i.opts);
    if !f.docker_installed {
        return Ok(());
    }
    let want = driver.as_str();
    // Docker with the containerd image store names overlay2 `overlayfs`.
    let other = |d: &str| d != want && !(driver == Driver::Overlay2 && d == "overlayfs");
    let mut held: Vec<(String, String)> = Vec::new();
    if let Some(cur) = current_driver(f.daemon_json.as_deref())
        && other(&cur)
    {
        held.push((cur, "daemon.json names it".into()));
    }
    if f.docker_active
        && let Some(run) = &f.docker_driver
        && other(run)
        && f.docker_objects.is_none_or(|n| n > 0)
    {
        let what = f.docker_objects.map_or("dockerd runs it".into(), |n| {
            format!("dockerd runs it with {n} images and containers")
        });
        held.push((run.clone(), what));
    }
    for (d, n) in &f.docker_stored {
        if other(d) && *n > 0 {
            held.push((d.clone(), format!("{n} images are stored for it")));
        }
    }
    let Some((cur, _)) = held.first().cloned() else {
        return Ok(());
    };
    let evidence: Vec<String> = held
        .iter()
        .map(|(d, why)| format!("{}: {why}", crate::error::escape_unsafe(d)))
        .collect();
    let cur = crate::error::escape_unsafe(&cur).into_owned();
    if !opts.allow_storage_switch {
        bail!(
            "Docker in this container uses storage-driver {cur}; switching to {want} loses its images and containers. Refusing; run with --allow-storage-switch to do it anyway ({})",
            evidence.join("; ")
        );
    }
    plan.notes.push(format!(
        "switching Docker's storage driver from {cur} to {want} (--allow-storage-switch): the images and containers stored with {cur} are no longer visible to Docker (their data stays under /var/lib/docker until removed)"
    ));
    Ok(())
}

/// The fuse-overlayfs binary Docker uses: the package's (linked) or one pushed from the node.
fn plan_fuse_binary(i: &InsideInput<'_>, plan: &mut InsidePlan, restart_why: &mut Vec<String>) {
    let (p, f, src) = (i.profile, i.facts, i.sources);
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
                (Some(want), Some(have)) if want == have && f.fuse_overlayfs_link.is_none() => {
                    plan.already.push(Already {
                        step: "fuse-overlayfs".into(),
                        why: format!("{FUSE_DEST} has SHA-256 {}", want.get(..12).unwrap_or(want)),
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

/// daemon.json with the driver merged in, and the restart that applies what changed.
fn plan_daemon_json(
    i: &InsideInput<'_>,
    driver: Driver,
    plan: &mut InsidePlan,
    restart_why: &mut Vec<String>,
) -> Result<()> {
    let (f, opts) = (i.facts, i.opts);
    // A file that is not UTF-8 cannot be merged exactly (its bytes would come back changed);
    // --force backs it up and writes a new one.
    if f.daemon_json_not_utf8 && !opts.force {
        bail!(
            "{DAEMON_JSON} is not UTF-8 text; refusing to change it (fix it, or run with --force to back it up and replace it)"
        );
    }
    let existing = f.daemon_json.as_deref().filter(|_| !f.daemon_json_not_utf8);
    match merge_daemon_json(existing, driver, opts.force)? {
        Some((content, why)) => {
            restart_why.push(format!("daemon.json changed ({})", why.join(", ")));
            plan.steps.push(Step::WriteDaemonJson {
                content,
                why,
                keep: f.daemon_json_owner,
            });
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
    Ok(())
}

/// The profile's files whose content or mode differs.
fn plan_files(f: &InsideFacts, files: &ProfileFiles, plan: &mut InsidePlan) {
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
}

/// Root's password, once.
fn plan_password(f: &InsideFacts, password: Option<&str>, plan: &mut InsidePlan) {
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
}

/// The profile's commands, until they have run successfully.
fn plan_commands(p: &Profile, f: &InsideFacts, plan: &mut InsidePlan) {
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
}
