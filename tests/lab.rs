//! End-to-end on the LXC lab node (lab/): the real binary, real `pct`-compatible commands, real
//! unprivileged LXC containers and real Docker inside. Checks are made from outside, through
//! `lxc-attach`, never through the tool.
//!
//! These run wherever `./run-tests` runs (CI included): the lab must be up (`PROVISION_LAB=1`).
//! When it is not, they fail and say why, unless `PROVISION_SKIP_LAB=1` asks to skip them.

use crate::support::fake::is_changing;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What `lab/labctl up` exported.
#[derive(Clone, Debug)]
pub struct Lab {
    pub state: PathBuf,
    pub log: PathBuf,
    pub template: String,
    pub storage: String,
}

/// The lab, or None when skipping was asked for. Panics with the reason otherwise.
pub fn lab() -> Option<Lab> {
    if std::env::var("PROVISION_LAB").as_deref() != Ok("1") {
        if std::env::var("PROVISION_SKIP_LAB").as_deref() == Ok("1") {
            eprintln!("lab test skipped: PROVISION_SKIP_LAB=1");
            return None;
        }
        panic!(
            "the LXC lab is not up (PROVISION_LAB is not 1). Run the suite with ./run-tests (it brings the lab up), \
             or `eval \"$(lab/labctl up)\"` first as root; set PROVISION_SKIP_LAB=1 to skip lab tests explicitly"
        );
    }
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set although PROVISION_LAB=1"))
    };
    Some(Lab {
        state: PathBuf::from(var("PROVISION_LAB_STATE")),
        log: PathBuf::from(var("PROVISION_LAB_LOG")),
        template: var("PROVISION_LAB_TEMPLATE"),
        storage: std::env::var("PROVISION_LAB_STORAGE").unwrap_or_else(|_| "labct".into()),
    })
}

impl Lab {
    /// Writes a profile for the lab (its template and storage) that extends `base`.
    pub fn profile(&self, dir: &Path, name: &str, base: &str, extra: &str) -> PathBuf {
        let p = dir.join(format!("{name}.toml"));
        let text = format!(
            "extends = \"{base}\"\ntemplate = \"{}\"\nmemory = 1024\n{extra}\n[rootfs]\nstorage = \"{}\"\nsize = 4\n",
            self.template, self.storage
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs a command inside container `vmid` from outside (lxc-attach), returning stdout.
    pub fn attach(&self, vmid: u32, args: &[&str]) -> Output {
        Command::new("lxc-attach")
            .arg("-P")
            .arg(self.state.join("lxc"))
            .args([
                "-n",
                &vmid.to_string(),
                "--clear-env",
                "--set-var",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--",
            ])
            .args(args)
            .output()
            .expect("lxc-attach runs")
    }

    /// From outside: Docker in container `vmid` runs the probe image provision built there.
    pub fn assert_docker_runs_the_probe(&self, vmid: u32) {
        let ran = self.attach_ok(
            vmid,
            &[
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "provision-probe:1",
                "/bin/busybox",
                "echo",
                "outside-check",
            ],
        );
        assert_eq!(ran.trim(), "outside-check", "ct {vmid}");
    }

    /// stdout of a successful attach.
    pub fn attach_ok(&self, vmid: u32, args: &[&str]) -> String {
        let o = self.attach(vmid, args);
        assert!(
            o.status.success(),
            "inside ct {vmid}: {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Size of the invocation log now (a mark to read what comes after).
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// Invocations after `mark` (argv lists).
    pub fn invocations_since(&self, mark: u64) -> Vec<Vec<String>> {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let tail = &text[(mark as usize).min(text.len())..];
        String::from_utf8_lossy(tail)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                v["argv"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| x.as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Changing invocations after `mark` that concern container `vmid` (other tests run in
    /// parallel on the same node, so the log holds their commands too), plus template
    /// downloads and index updates, which concern every container.
    pub fn changing_for(&self, mark: u64, vmid: u32) -> Vec<Vec<String>> {
        let id = vmid.to_string();
        let path = format!("/lxc/{id}/");
        self.invocations_since(mark)
            .into_iter()
            .filter(|a| is_changing(a))
            .filter(|a| {
                a.get(2) == Some(&id) || a.iter().any(|w| w.contains(&path)) || a[0] == "pveam"
            })
            .collect()
    }

    /// The VMID of the container named `name`, if any.
    pub fn vmid_of(&self, name: &str) -> Option<u32> {
        let out = Command::new("pvesh")
            .args([
                "get",
                "/cluster/resources",
                "--type",
                "vm",
                "--output-format",
                "json",
            ])
            .output()
            .expect("pvesh runs");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("pvesh json");
        v.as_array()?
            .iter()
            .find(|g| g["name"] == name)
            .and_then(|g| g["vmid"].as_u64())
            .map(|x| x as u32)
    }
}

/// The lab host's fuse-overlayfs (Debian 12's package) as the node-file source: it matches the
/// Debian 12 template's libfuse3.
pub const LAB_FUSE: &str =
    "[docker.fuse_overlayfs]\nsource = \"node\"\npath = \"/usr/bin/fuse-overlayfs\"";

/// Destroys the named container when dropped (test cleanup, also on panic).
pub struct Cleanup(pub Lab, pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.1 {
            if let Some(id) = self.0.vmid_of(name) {
                let id = id.to_string();
                let _ = Command::new("pct").args(["stop", &id]).output();
                let _ = Command::new("pct")
                    .args(["destroy", &id, "--purge"])
                    .output();
            }
        }
    }
}

pub fn provision(args: &[&str]) -> Output {
    provision_with(args, &[])
}

/// `provision ARGS` with these environment variables (e.g. `PROVISION_LAB_RELEASE`, which makes
/// every lab command it runs answer as that release).
pub fn provision_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(args)
        .env("CI", "1")
        .envs(env.iter().copied())
        .output()
        .expect("provision runs");
    let _ = std::io::stderr().write_all(&out.stderr);
    out
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn docker_on_fuse_overlayfs_in_a_real_unprivileged_container_and_second_run_changes_nothing() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["e2e1".into()]);
    // The container first without Docker, so that the test can put a user key into daemon.json
    // before provision configures Docker.
    let plain = lab.profile(
        dir.path(),
        "plain",
        "docker",
        "[docker]\ninstall = \"none\"",
    );
    let out = provision(&[
        "e2e1",
        "--profile",
        plain.to_str().unwrap(),
        "--yes",
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let vmid = lab.vmid_of("e2e1").expect("e2e1 exists");
    lab.attach_ok(vmid, &["sh", "-c", "mkdir -p /etc/docker && printf '{\"log-level\": \"warn\"}\\n' > /etc/docker/daemon.json"]);

    let full = lab.profile(dir.path(), "lab-docker", "docker", LAB_FUSE);
    let args = [
        "e2e1",
        "--profile",
        full.to_str().unwrap(),
        "--yes",
        "--output",
        "json",
    ];
    let out = provision(&args);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    let c = &r["containers"][0];
    assert_eq!(c["outcome"], "changed", "{c:#}");
    assert_eq!(c["verified"], true);
    assert_eq!(c["driver"], "fuse-overlayfs");

    // From outside: unprivileged with the features.
    let uid_map = lab.attach_ok(vmid, &["cat", "/proc/self/uid_map"]);
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{uid_map}"
    );
    let cfg = Command::new("pct")
        .args(["config", &vmid.to_string()])
        .output()
        .unwrap();
    let cfg = String::from_utf8_lossy(&cfg.stdout);
    assert!(
        cfg.contains("features: fuse=1,keyctl=1,mknod=1,nesting=1"),
        "{cfg}"
    );
    assert!(cfg.contains("unprivileged: 1"), "{cfg}");
    // The binary: in place, 0755, root-owned inside.
    assert_eq!(
        lab.attach_ok(
            vmid,
            &["stat", "-c", "%a %U", "/usr/local/bin/fuse-overlayfs"]
        )
        .trim(),
        "755 root"
    );
    // daemon.json: fuse-overlayfs and the user's key.
    let dj: serde_json::Value =
        serde_json::from_str(&lab.attach_ok(vmid, &["cat", "/etc/docker/daemon.json"])).unwrap();
    assert_eq!(dj["storage-driver"], "fuse-overlayfs");
    assert_eq!(dj["log-level"], "warn");
    assert_eq!(dj["features"]["containerd-snapshotter"], false);
    // Docker really runs a container on fuse-overlayfs.
    assert_eq!(
        lab.attach_ok(vmid, &["docker", "info", "--format", "{{.Driver}}"])
            .trim(),
        "fuse-overlayfs"
    );
    lab.assert_docker_runs_the_probe(vmid);

    // The same command again: nothing that changes anything runs.
    let mark = lab.log_mark();
    let out = provision(&args);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["containers"][0]["outcome"], "unchanged", "{r:#}");
    let calls = lab.invocations_since(mark);
    let changing = lab.changing_for(mark, vmid);
    assert!(
        changing.is_empty(),
        "second run ran changing commands: {changing:#?}"
    );
    assert!(
        !calls.is_empty(),
        "the invocation log recorded nothing: is PROVISION_LAB_LOG right?"
    );
}

#[test]
fn docker_auto_picks_overlay2_on_a_dir_storage_and_it_works() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["e2e2".into()]);
    let p = lab.profile(dir.path(), "lab-auto", "docker-auto", "");
    let out = provision(&[
        "e2e2",
        "--profile",
        p.to_str().unwrap(),
        "--yes",
        "--output",
        "json",
    ]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    let c = &r["containers"][0];
    assert_eq!(c["outcome"], "created");
    assert_eq!(c["driver"], "overlay2");
    assert!(
        c["driver_reason"].as_str().unwrap().contains("type dir"),
        "{c:#}"
    );
    let vmid = c["vmid"].as_u64().unwrap() as u32;
    assert_eq!(
        lab.attach_ok(vmid, &["docker", "info", "--format", "{{.Driver}}"])
            .trim(),
        "overlay2"
    );
    lab.assert_docker_runs_the_probe(vmid);
}

#[test]
fn a_template_the_node_does_not_have_is_reported_with_the_nodes_message_and_leaves_nothing() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["e2e-refused".into()]);
    let p = lab.profile(dir.path(), "bad", "docker", LAB_FUSE);
    let out = provision(&[
        "e2e-refused",
        "--profile",
        p.to_str().unwrap(),
        "--template",
        "local:vztmpl/nosuch-standard_1.0-1_amd64.tar.zst",
        "--yes",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    let f = &r["containers"][0]["failure"];
    assert!(
        f["step"].as_str().unwrap().starts_with("download template"),
        "{r:#}"
    );
    let text = format!("{} {}", f["message"], f["tail"]);
    assert!(text.contains("no such template"), "{text}");
    assert_eq!(
        lab.vmid_of("e2e-refused"),
        None,
        "a refused run left a container"
    );
}

#[test]
fn a_storage_without_container_roots_is_refused_before_any_change() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["e2e-nostore".into()]);
    let p = lab.profile(dir.path(), "bad2", "docker", "");
    let mark = lab.log_mark();
    let out = provision(&[
        "e2e-nostore",
        "--profile",
        p.to_str().unwrap(),
        "--storage",
        "local",
        "--yes",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    let msg = r["containers"][0]["failure"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("does not allow container root disks") && msg.contains("labct"),
        "{msg}"
    );
    let changing: Vec<Vec<String>> = lab
        .invocations_since(mark)
        .into_iter()
        .filter(|a| is_changing(a))
        .collect();
    assert!(
        changing
            .iter()
            .all(|a| !a.join(" ").contains("e2e-nostore")),
        "{changing:?}"
    );
    assert_eq!(lab.vmid_of("e2e-nostore"), None);
}

#[test]
fn two_provision_processes_at_once_never_share_a_vmid() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let names = ["e2e-race1", "e2e-race2", "e2e-race3"];
    let _cleanup = Cleanup(lab.clone(), names.iter().map(ToString::to_string).collect());
    let p = lab.profile(
        dir.path(),
        "plain",
        "docker",
        "[docker]\ninstall = \"none\"",
    );
    let mark = lab.log_mark();
    let children: Vec<std::process::Child> = names
        .iter()
        .map(|n| {
            Command::new(env!("CARGO_BIN_EXE_provision"))
                .args([
                    n,
                    "--profile",
                    p.to_str().unwrap(),
                    "--yes",
                    "--output",
                    "json",
                    "-q",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut vmids = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let r = report(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{r:#}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        vmids.push(r["containers"][0]["vmid"].as_u64().unwrap());
    }
    let mut unique = vmids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "VMIDs collided: {vmids:?}");
    // Every create in the log succeeded at its first VMID or was retried; none reused an ID.
    let creates: Vec<String> = lab
        .invocations_since(mark)
        .into_iter()
        .filter(|a| a.len() > 2 && a[0] == "pct" && a[1] == "create")
        .map(|a| a[2].clone())
        .collect();
    assert!(creates.len() >= names.len(), "{creates:?}");
}

#[test]
fn a_root_password_never_appears_in_output_or_in_the_nodes_invocation_log() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["e2e-secret".into()]);
    let secret = "Sup3r-s3cret-pw-4711";
    let p = lab.profile(
        dir.path(),
        "pw",
        "docker",
        "root_password = { env = \"E2E_ROOT_PW\" }\n[docker]\ninstall = \"none\"",
    );
    let mark = lab.log_mark();
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args([
            "e2e-secret",
            "--profile",
            p.to_str().unwrap(),
            "--yes",
            "-vvv",
            "--output",
            "json",
        ])
        .env("E2E_ROOT_PW", secret)
        .env("CI", "1")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dry = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args([
            "e2e-secret",
            "--profile",
            p.to_str().unwrap(),
            "--dry-run",
            "-vvv",
        ])
        .env("E2E_ROOT_PW", secret)
        .output()
        .unwrap();
    let log = std::fs::read_to_string(&lab.log).unwrap();
    for (what, text) in [
        ("stdout", String::from_utf8_lossy(&out.stdout).into_owned()),
        ("stderr", String::from_utf8_lossy(&out.stderr).into_owned()),
        (
            "dry-run stdout",
            String::from_utf8_lossy(&dry.stdout).into_owned(),
        ),
        (
            "dry-run stderr",
            String::from_utf8_lossy(&dry.stderr).into_owned(),
        ),
        ("invocation log", log),
    ] {
        assert!(!text.contains(secret), "the password appears in {what}");
    }
    assert!(!lab.invocations_since(mark).is_empty());
    // It was set: root has a password hash now.
    let vmid = lab.vmid_of("e2e-secret").unwrap();
    let shadow = lab.attach_ok(
        vmid,
        &["sh", "-c", "grep '^root:' /etc/shadow | cut -d: -f2"],
    );
    assert!(
        shadow.trim().starts_with('$'),
        "root has no password hash: {shadow:?}"
    );
}

/// Waits (bounded) until the invocation log, after `mark`, has an entry for which `pred` holds.
fn wait_for_invocation(lab: &Lab, mark: u64, what: &str, pred: impl Fn(&[String]) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        if lab.invocations_since(mark).iter().any(|a| pred(a)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited 180 s for {what} in the invocation log"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn an_interrupted_provision_reports_its_state_and_the_next_run_continues() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["e2e-int".into()]);
    let p = lab.profile(dir.path(), "int", "docker", LAB_FUSE);
    let args = [
        "e2e-int",
        "--profile",
        p.to_str().unwrap(),
        "--yes",
        "--output",
        "json",
    ];
    let mark = lab.log_mark();
    let child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(args)
        .env("CI", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the container has started (Docker's installation comes next).
    wait_for_invocation(&lab, mark, "`pct start`", |a| {
        a.len() >= 2 && a[0] == "pct" && a[1] == "start"
    });
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    // 130: interrupted (README: exit codes), whatever the steps that were let finish did.
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&out);
    let c = &r["containers"][0];
    let f = &c["failure"];
    assert!(
        f["message"].as_str().unwrap().contains("interrupted"),
        "{r:#}"
    );
    assert!(
        f["left"].as_str().unwrap().contains("next run continues"),
        "{r:#}"
    );
    assert!(c["vmid"].is_u64(), "{r:#}");
    // The next run continues and finishes.
    let out = provision(&args);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["containers"][0]["verified"], true);
    assert_eq!(r["containers"][0]["vmid"], c["vmid"]);
}

#[test]
fn a_lab_file_of_three_comes_up_in_parallel_reapplies_as_a_no_op_and_is_destroyed() {
    let Some(lab) = lab() else { return };
    let names: Vec<String> = (1..=3).map(|n| format!("lab-{n}")).collect();
    let _cleanup = Cleanup(lab.clone(), names.clone());
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lab-three.toml");
    let out = provision(&["apply", file, "--jobs", "3", "--yes", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    let cs = r["containers"].as_array().unwrap();
    assert_eq!(cs.len(), 3);
    assert!(
        cs.iter()
            .all(|c| c["outcome"] == "created" && c["verified"] == true),
        "{r:#}"
    );

    let st = provision(&["status", file, "--output", "json"]);
    assert_eq!(st.status.code(), Some(0));
    let text = String::from_utf8_lossy(&st.stdout);
    for n in &names {
        assert!(text.contains(n.as_str()), "{text}");
    }
    assert!(!text.contains("\"missing\""), "{text}");

    let mark = lab.log_mark();
    let out = provision(&["apply", file, "--jobs", "3", "--yes", "--output", "json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert!(
        r["containers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["outcome"] == "unchanged"),
        "{r:#}"
    );
    let changing: Vec<Vec<String>> = cs
        .iter()
        .flat_map(|c| lab.changing_for(mark, c["vmid"].as_u64().unwrap() as u32))
        .collect();
    assert!(
        changing.is_empty(),
        "re-apply ran changing commands: {changing:#?}"
    );

    let out = provision(&["destroy", file, "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in &names {
        assert_eq!(lab.vmid_of(n), None, "{n} is still there");
    }
}

#[test]
fn a_full_provision_through_ssh_to_the_node_and_ssh_into_the_container() {
    use provision::cmd::Cmd;
    use provision::transport::Transport;
    use provision::transport::ssh::{Ssh, SshOptions, SshTarget};
    let Some(lab) = lab() else { return };
    // The node's sshd gives its sessions the lab's PATH, as a PVE node has pct on its PATH.
    let path = std::env::var("PATH").unwrap();
    let Some(sshd) = crate::support::sshd::Sshd::start_with(&format!("SetEnv \"PATH={path}\""))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, sshd.known_hosts_line()).unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["e2e-ssh".into()]);
    let pubkey = std::fs::read_to_string(sshd.client_key.with_extension("pub")).unwrap();
    let p = lab.profile(
        dir.path(),
        "ssh",
        "docker",
        &format!("ssh_public_keys = [\"{}\"]\n{LAB_FUSE}", pubkey.trim()),
    );
    let host = format!("{}@127.0.0.1:{}", sshd.user, sshd.port);
    let mark = lab.log_mark();
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args([
            "e2e-ssh",
            "--profile",
            p.to_str().unwrap(),
            "--yes",
            "--output",
            "json",
        ])
        .args([
            "--host",
            &host,
            "--identity",
            sshd.client_key.to_str().unwrap(),
            "--known-hosts",
            kh.to_str().unwrap(),
        ])
        .env_remove("SSH_AUTH_SOCK")
        .env("CI", "1")
        .output()
        .unwrap();
    let r = report(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{r:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r["containers"][0]["verified"], true, "{r:#}");
    // The node commands really went through sshd (the invocation log records them).
    let calls = lab.invocations_since(mark);
    assert!(
        calls
            .iter()
            .any(|a| a.len() > 1 && a[0] == "pct" && a[1] == "create"),
        "{calls:?}"
    );
    assert!(
        sshd.logs().contains("Accepted publickey"),
        "{}",
        sshd.logs()
    );

    // SSH straight into the container with the key installed at create time.
    let vmid = r["containers"][0]["vmid"].as_u64().unwrap();
    let node = lab_node();
    let ifaces = Command::new("pvesh")
        .args([
            "get",
            &format!("/nodes/{node}/lxc/{vmid}/interfaces"),
            "--output-format",
            "json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&ifaces.stdout).unwrap();
    let ip = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .and_then(|i| i["inet"].as_str())
        .and_then(|s| s.split('/').next())
        .expect("eth0 has an address")
        .to_string();
    let ct_kh = dir.path().join("ct_known_hosts");
    let opts = SshOptions {
        identities: vec![sshd.client_key.clone()],
        known_hosts: vec![ct_kh],
        accept_new_host_key: true,
        use_agent: false,
        ..SshOptions::default()
    };
    let ct = Ssh::connect(
        SshTarget {
            user: "root".into(),
            host: ip,
            port: 22,
        },
        &opts,
    )
    .expect("ssh into the container");
    let o = ct
        .run(
            &Cmd::new("docker").args(["info", "--format", "{{.Driver}}"]),
            None,
        )
        .unwrap();
    assert_eq!(
        o.stdout_text().trim(),
        "fuse-overlayfs",
        "{}",
        o.stderr_text()
    );
}

fn lab_node() -> String {
    std::env::var("PROVISION_LAB_NODE").unwrap_or_else(|_| "localhost".into())
}

#[test]
fn a_container_can_be_worked_on_over_ssh_instead_of_pct_exec() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    crate::support::sshd::keygen(&key);
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["e2e-sshct".into()]);
    let p = lab.profile(
        dir.path(),
        "sshct",
        "docker",
        &format!(
            "ssh_public_keys = [\"{}\"]\n[access]\nmethod = \"ssh\"\n{LAB_FUSE}",
            pubkey.trim()
        ),
    );
    let mark = lab.log_mark();
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args([
            "e2e-sshct",
            "--profile",
            p.to_str().unwrap(),
            "--yes",
            "--output",
            "json",
        ])
        .args(["--identity", key.to_str().unwrap()])
        .env_remove("SSH_AUTH_SOCK")
        .env("XDG_STATE_HOME", dir.path())
        .env("CI", "1")
        .output()
        .unwrap();
    let r = report(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{r:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r["containers"][0]["verified"], true, "{r:#}");
    let vmid = r["containers"][0]["vmid"].as_u64().unwrap().to_string();
    // Nothing inside went through pct: every in-container step used SSH.
    let through_pct: Vec<Vec<String>> = lab
        .invocations_since(mark)
        .into_iter()
        .filter(|a| {
            a.len() > 2 && a[0] == "pct" && (a[1] == "exec" || a[1] == "push") && a[2] == vmid
        })
        .collect();
    assert!(through_pct.is_empty(), "{through_pct:#?}");
    assert_eq!(
        lab.attach_ok(
            vmid.parse().unwrap(),
            &["docker", "info", "--format", "{{.Driver}}"]
        )
        .trim(),
        "fuse-overlayfs"
    );
}

/// A tmux server of its own (its socket named after this process), killed when dropped.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]).env("TERM", "xterm-256color");
        c
    }

    /// The visible text of the pane.
    fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the pane until `pred` holds on it (bounded), returning that capture.
    fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let pane = self.capture();
            if pred(&pane) {
                return pane;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waited {secs} s for {what}; the pane shows:\n{pane}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

/// The part of a live-view line after the container's name: VMID, step k/n, step, elapsed.
fn view_line(pane: &str, name: &str) -> Option<String> {
    pane.lines()
        .find(|l| l.contains(&format!(" {name} ")) && l.contains("step "))
        .map(|l| l.split_once(name).map_or("", |(_, r)| r).trim().to_string())
}

#[test]
fn the_live_view_updates_in_a_terminal_and_the_summary_table_follows() {
    let Some(lab) = lab() else { return };
    let v = Command::new("tmux").arg("-V").output();
    assert!(
        v.is_ok_and(|o| o.status.success()),
        "tmux is not installed (./run-tests installs it)"
    );
    let names: Vec<String> = (1..=2).map(|n| format!("e2e-view-{n}")).collect();
    let _cleanup = Cleanup(lab.clone(), names.clone());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("view.toml");
    std::fs::write(
        &file,
        format!(
            "[defaults]\nprofile = \"docker-auto\"\ntemplate = \"{}\"\nmemory = 1024\n\n[defaults.rootfs]\nstorage = \"{}\"\nsize = 4\n\n[[container]]\nname = \"e2e-view-{{n}}\"\ncount = 2\n",
            lab.template, lab.storage
        ),
    )
    .unwrap();
    let tmux = Tmux {
        socket: format!("provision-view-{}", std::process::id()),
        session: "view".into(),
    };
    // CI=1 would turn the live view off: the pane is the terminal a person would use. The pane
    // stays open after the run (the shell sleeps) so that the summary can be read.
    let run = format!(
        "env -u CI {} apply {} --yes --jobs 2; echo PROVISION-EXIT=$?; exec sleep 3600",
        env!("CARGO_BIN_EXE_provision"),
        file.display()
    );
    let started = tmux
        .cmd()
        .args([
            "new-session",
            "-d",
            "-s",
            &tmux.session,
            "-x",
            "140",
            "-y",
            "30",
            &run,
        ])
        .status()
        .expect("tmux runs");
    assert!(started.success(), "tmux new-session failed");

    // 1. The live view shows a step line for a container.
    let first = tmux.wait_for("a live-view line with `step k/n`", 300, |p| {
        names.iter().any(|n| view_line(p, n).is_some())
    });
    let name = names
        .iter()
        .find(|n| view_line(&first, n).is_some())
        .unwrap()
        .clone();
    let before = view_line(&first, &name).unwrap();
    // 2. The same line changes (step or elapsed) while the run goes on.
    let second = tmux.wait_for(
        &format!("the line of {name} to change from {before:?}"),
        120,
        |p| view_line(p, &name).is_some_and(|l| l != before) || p.contains("PROVISION-EXIT="),
    );
    let after = view_line(&second, &name).unwrap_or_default();
    assert_ne!(before, after, "the live view did not update:\n{second}");
    assert!(
        first.contains("total [") && second.contains("total ["),
        "no total bar:\n{second}"
    );
    // 3. The run ends with the summary table.
    let end = tmux.wait_for("the run to end", 900, |p| p.contains("PROVISION-EXIT="));
    assert!(end.contains("PROVISION-EXIT=0"), "the apply failed:\n{end}");
    let header = end
        .lines()
        .find(|l| l.starts_with("NAME "))
        .unwrap_or_else(|| panic!("no summary table:\n{end}"));
    for col in ["VMID", "NODE", "ADDRESS", "RESULT", "TIME"] {
        assert!(header.contains(col), "{header}");
    }
    for n in &names {
        let row = end
            .lines()
            .find(|l| l.starts_with(&format!("{n} ")))
            .unwrap_or_else(|| panic!("no row for {n}:\n{end}"));
        assert!(row.contains(" created "), "{row}");
        let has_ipv4 = row
            .split_whitespace()
            .any(|w| w.parse::<std::net::Ipv4Addr>().is_ok());
        assert!(has_ipv4, "no address in the row: {row}");
    }
    assert!(end.contains("2 containers: 2 created"), "{end}");
    // The step list is not printed by default.
    assert!(!end.contains("✔ install docker"), "{end}");
}
