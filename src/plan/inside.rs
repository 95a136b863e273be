//! The in-container part of the plan, from the facts read inside: Docker, fuse-overlayfs,
//! daemon.json, files, commands, password and verification.

use super::*;

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
