//! Steps rendered into the exact actions that run (commands, file pushes): what a dry run shows
//! and what the applier executes. The shell scripts are in src/scripts/.

use super::*;

/// In-container script (see its use in [`Step::actions`]).
pub const SH_PRELUDE: &str = "set -eu; export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive; ";

pub(super) fn sh(script: &str, args: &[&str]) -> Cmd {
    Cmd::new("sh")
        .arg("-c")
        .arg(format!("{SH_PRELUDE}{script}"))
        .arg("provision")
        .args(args.iter().map(ToString::to_string))
}

/// Raw `lxc.*` lines (see [`Step::RawLxc`]).
pub const RAW_LXC_SCRIPT: &str = include_str!("../scripts/node-raw-lxc.sh");

/// A bind mount's node directory (see [`Step::HostDir`]).
/// Node script (see its use in [`Step::actions`]).
pub const HOST_DIR_SCRIPT: &str = include_str!("../scripts/node-host-dir.sh");

/// Records `key=value` in the container's /var/lib/provision/state.
/// In-container script (see its use in [`Step::actions`]).
pub const STATE_SET: &str = include_str!("../scripts/state-set.sh");

/// Installs packages: distro Docker (with the CLI where the release splits it), docker-ce, or
/// only the helpers.
/// In-container script (see its use in [`Step::actions`]).
pub const INSTALL_SCRIPT: &str = include_str!("../scripts/install-packages.sh");

/// Checks a pushed fuse-overlayfs binary before it replaces the one Docker uses: its SHA-256,
/// that it is an ELF executable for this container's architecture, and that it runs here
/// (`--version`: a missing shared library such as libfuse3 shows now, not when dockerd starts).
/// A binary that fails is removed; the error says which check failed and how to fix it.
/// Args: staged file, destination, expected SHA-256 (may be empty).
pub const PUSH_CHECK_SCRIPT: &str = include_str!("../scripts/push-check-fuse-overlayfs.sh");

/// Makes the distribution package's fuse-overlayfs the one Docker uses, and proves it runs.
/// Args: destination (the link).
pub const LINK_PACKAGE_SCRIPT: &str = include_str!("../scripts/link-package-fuse-overlayfs.sh");

/// Node script: downloads fuse-overlayfs once into the node's cache and keeps it only when its
/// SHA-256 is the expected one. The cache directory is owner-only (0700), the binary 0755; the
/// download goes to a unique temporary name that is removed on every failure, so a cut or
/// wrong download never leaves a file that a later run could take for the real one, and two
/// runs fetching at once do not collide. Args: URL, destination, expected SHA-256.
pub const FETCH_SCRIPT: &str = include_str!("../scripts/node-fetch-fuse-overlayfs.sh");

/// Node script: checks a node file before it is pushed as fuse-overlayfs (a regular ELF file of
/// at most 64 MiB, not under /dev, /proc or /sys) and prints its SHA-256; exit 3 when it does
/// not exist, 65 with the reason when it is refused. Runs in a dry run too. Args: the path.
pub const NODE_FUSE_CHECK_SCRIPT: &str = include_str!("../scripts/node-check-fuse-overlayfs.sh");

/// The [`NODE_FUSE_CHECK_SCRIPT`] command for `path` (bounded: the script's own read is).
pub fn node_fuse_check(path: &str) -> Cmd {
    Cmd::new("sh")
        .args(["-c", NODE_FUSE_CHECK_SCRIPT, "provision-fuse-check", path])
        .with_timeout(std::time::Duration::from_secs(150))
}

/// Puts a pushed file in place, after checking that the push really wrote it: `pct push` exits
/// 0 when its task fails, so the staged file's presence, size and SHA-256 are the proof. With
/// `backup` = 1 the file it replaces is kept as `DEST.provision-backup`.
/// Args: staged file, destination, expected size in bytes, expected SHA-256, backup (0/1), and
/// optionally `UID:GID` and an octal mode given to the file before it is moved in place.
pub const PLACE_SCRIPT: &str = include_str!("../scripts/place-pushed-file.sh");

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
pub const RESTART_SCRIPT: &str = include_str!("../scripts/restart-docker.sh");

/// In-container script (see its use in [`Step::actions`]).
pub const VERIFY_SCRIPT: &str = include_str!("../scripts/verify-docker.sh");

impl Step {
    /// Short name for progress and reports.
    pub fn name(&self) -> String {
        match self {
            Step::UpdateTemplateIndex => "update template index".into(),
            Step::DownloadTemplate { name, .. } => format!("download template {name}"),
            Step::FetchFuseOverlayfs { .. } => "download fuse-overlayfs".into(),
            Step::BuildImage { name, .. } => {
                format!("build image {name} (once), then create from it")
            }
            Step::Create { .. } => "create".into(),
            Step::Set { .. } => "set config".into(),
            Step::HostDir { path, .. } => format!("bind mount source {path}"),
            Step::RawLxc { .. } => "raw lxc lines".into(),
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
            Step::BuildImage { storage, .. } => format!(
                "not on storage {storage} yet: built once per node from the base template (a temporary container with the install steps, cleaned, archived with vzdump), under the node lock"
            ),
            Step::Create { template, .. } => match image_of(template) {
                Some(image) => format!("no such container yet; create from image {image}"),
                None => "no such container yet".into(),
            },
            Step::Set { why, .. } => why.join("; "),
            Step::HostDir { create, owner, .. } => match (create, owner) {
                (true, Some((u, g))) => {
                    format!("create it when missing, owned by {u}:{g} on the node")
                }
                (true, None) => "create it when missing".into(),
                (false, Some((u, g))) => format!("owned by {u}:{g} on the node"),
                (false, None) => "it must exist".into(),
            },
            Step::RawLxc { lines, .. } => format!(
                "passes devices the classic way (no devN on this node; applies at start): {}",
                lines
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
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

    /// The kind of step, for its time bound ([`crate::request::STEP_KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::UpdateTemplateIndex | Step::DownloadTemplate { .. } => "template",
            Step::FetchFuseOverlayfs { .. }
            | Step::PushFuseOverlayfs { .. }
            | Step::LinkPackageFuseOverlayfs => "fuse-overlayfs",
            Step::Create { .. } => "create",
            Step::BuildImage { .. } => "install",
            Step::Set { .. } | Step::Resize { .. } | Step::HostDir { .. } | Step::RawLxc { .. } => {
                "config"
            }
            Step::Start | Step::Reboot { .. } => "start",
            Step::InstallPackages { .. } => "install",
            Step::WriteDaemonJson { .. } | Step::RestartDocker { .. } => "docker",
            Step::WriteFile { .. } => "file",
            Step::RunCommands { .. } => "commands",
            Step::SetPassword { .. } => "password",
            Step::Verify { .. } => "verify",
        }
    }

    /// The actions of this step for container `vmid`, each command bounded by `limit`.
    pub fn bounded_actions(&self, vmid: u32, limit: std::time::Duration) -> Vec<Action> {
        let mut acts = self.actions(vmid);
        for a in &mut acts {
            if let Action::Node(c) | Action::Inside(c, _) = a {
                c.timeout = Some(limit);
            }
        }
        acts
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
            // Built by `crate::image` before the container's steps: no actions of its own.
            Step::BuildImage { .. } => vec![],
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
            } => create_actions(&id, template, options, ssh_keys),
            Step::Set { set, .. } => set_actions(&id, set),
            Step::HostDir {
                path,
                create,
                owner,
            } => {
                let owner = owner.map_or("-".to_string(), |(u, g)| format!("{u}:{g}"));
                vec![Action::Node(sh(
                    HOST_DIR_SCRIPT,
                    &[path, if *create { "1" } else { "0" }, &owner],
                ))]
            }
            Step::RawLxc { hostname, lines } => {
                let mut args: Vec<&str> = vec![&id, hostname];
                for (k, v) in lines {
                    args.push(k);
                    args.push(v);
                }
                vec![
                    Action::Node(sh(RAW_LXC_SCRIPT, &args)),
                    Action::Node(Cmd::new("pct").args(["config", &id])),
                ]
            }
            Step::Resize { size } => vec![Action::Node(
                Cmd::new("pct").args(["resize", &id, "rootfs", size]),
            )],
            Step::Start => vec![Action::Node(Cmd::new("pct").args(["start", &id]))],
            Step::Reboot { .. } => vec![Action::Node(Cmd::new("pct").args(["reboot", &id]))],
            Step::InstallPackages { docker, packages } => install_actions(docker, packages),
            Step::PushFuseOverlayfs { content, sha256 } => push_fuse_actions(content, sha256),
            Step::LinkPackageFuseOverlayfs => {
                vec![Action::Inside(sh(LINK_PACKAGE_SCRIPT, &[FUSE_DEST]), None)]
            }
            Step::WriteDaemonJson { content, keep, .. } => daemon_json_actions(content, keep),
            Step::RestartDocker { .. } => vec![Action::Inside(sh(RESTART_SCRIPT, &[]), None)],
            Step::WriteFile { dest, mode, bytes } => write_file_actions(dest, mode, bytes),
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

/// `pct create` with the SSH keys passed through a node file that is removed again.
fn create_actions(
    id: &str,
    template: &str,
    options: &[(String, String)],
    ssh_keys: &Option<String>,
) -> Vec<Action> {
    let mut acts = Vec::new();
    let keyfile = format!("{NODE_TMP_DIR}/ssh-keys-{id}");
    if let Some(k) = ssh_keys {
        acts.push(Action::PutNode {
            dest: keyfile.clone(),
            bytes: Arc::new(k.clone().into_bytes()),
        });
    }
    let mut c = Cmd::new("pct").args(["create", id, template]);
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

/// `pct set`; an empty value removes the key (`--delete`).
fn set_actions(id: &str, set: &[(String, String)]) -> Vec<Action> {
    let mut c = Cmd::new("pct").args(["set", id]);
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

/// The install script with the Docker method (and docker-ce repository) and the packages.
fn install_actions(docker: &Option<DockerSource>, packages: &[String]) -> Vec<Action> {
    let mut args: Vec<&str> = match docker {
        Some(DockerSource::Distro) => vec!["distro"],
        Some(DockerSource::DockerCe { repository }) => vec!["docker-ce", repository],
        None => vec!["none"],
    };
    args.extend(packages.iter().map(String::as_str));
    vec![Action::Inside(sh(INSTALL_SCRIPT, &args), None)]
}

/// Push the binary to a temporary name, check it there, then move it in place.
fn push_fuse_actions(content: &Content, sha256: &Option<String>) -> Vec<Action> {
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

/// Write daemon.json to a temporary name, check it arrived whole, keep a backup of the old one,
/// move it in place with the old one's mode, owner and group.
fn daemon_json_actions(content: &str, keep: &Option<crate::facts::FileOwner>) -> Vec<Action> {
    let tmp = format!("{DAEMON_JSON}.provision-new");
    let bytes = content.as_bytes().to_vec();
    let mode = keep.map_or(0o644, |k| k.mode);
    let mut place_it = place(&tmp, DAEMON_JSON, &bytes, true);
    if let Some(k) = keep {
        place_it = place_it.args([format!("{}:{}", k.uid, k.gid), format!("{:o}", k.mode)]);
    }
    let sha = sha256_hex(&bytes);
    vec![
        Action::Inside(Cmd::new("mkdir").args(["-p", "/etc/docker"]), None),
        Action::Put {
            dest: tmp.clone(),
            mode,
            content: Content::Bytes(Arc::new(bytes)),
            sha256: Some(sha),
        },
        Action::Inside(place_it, None),
    ]
}

/// Write a file to a temporary name, check it arrived whole and rename it (a failed write
/// leaves the old file whole).
fn write_file_actions(dest: &str, mode: &u32, bytes: &Arc<Vec<u8>>) -> Vec<Action> {
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

/// How an action shows in a plan: the node-level argv that runs (pct exec / pct push form).
pub fn action_argv(a: &Action, vmid: u32, keep_env: bool) -> Vec<String> {
    match a {
        Action::Node(c) => c.argv(),
        Action::Inside(c, _) => pct::exec(vmid, keep_env, c).argv(),
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
            pct::push(vmid, &src, dest, *mode).argv()
        }
        Action::PutNode { dest, .. } => vec!["<write file on node>".into(), dest.clone()],
    }
}

/// True when an output of `pveam update` says it failed (it exits 0 anyway).
pub fn pveam_update_failed(out: &Output) -> bool {
    let text = format!("{}{}", out.stdout_text(), out.stderr_text());
    !out.success() || text.contains("update failed")
}
