//! Secrets: the root password comes from a prompt, a file or an environment variable, reaches the
//! container only on chpasswd's stdin, and never shows in an argv, a plan, a log line, progress,
//! JSON, a report or an error message. Files the tool writes on the node are owner-only.

use crate::support::converge::converge_with;
use crate::support::fake::{FakeNode, fake_node};
use assert_cmd::Command;
use provision::apply::{self, Ctx};
use provision::cmd::pct::NODE_TMP_DIR;
use provision::cmd::{Cmd, Output};
use provision::facts;
use provision::plan::ProfileFiles;
use provision::profile::{self, FileSpec, Layer};
use provision::report::{Outcome, RunReport};
use provision::request::{Options, Request};
use provision::transport::local::Local;
use provision::transport::pct::Pct;
use provision::transport::{LockGuard, Transport};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The password of every test here: distinctive, so that a leak anywhere is found.
const PW: &str = "Tr0ub4dor&3-zebra";

/// Wraps the fake node: records every put with its mode and, when asked, makes chpasswd fail
/// echoing what it read (as a careless tool might).
struct Recorder {
    inner: Arc<FakeNode>,
    puts: Mutex<Vec<(String, u32)>>,
    chpasswd_echoes: bool,
}

impl Recorder {
    fn new(inner: Arc<FakeNode>) -> Arc<Recorder> {
        Arc::new(Recorder {
            inner,
            puts: Mutex::new(Vec::new()),
            chpasswd_echoes: false,
        })
    }
}

impl Transport for Recorder {
    fn label(&self) -> String {
        self.inner.label()
    }
    fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> anyhow::Result<Output> {
        if self.chpasswd_echoes && cmd.argv_real().iter().any(|a| a == "chpasswd") {
            let got = String::from_utf8_lossy(stdin.unwrap_or_default());
            return Ok(Output::fail(
                1,
                format!("chpasswd: line 1: cannot parse {got:?}\n"),
            ));
        }
        self.inner.run(cmd, stdin)
    }
    fn put(&self, bytes: &[u8], dest: &str, mode: u32) -> anyhow::Result<()> {
        self.puts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((dest.to_string(), mode));
        self.inner.put(bytes, dest, mode)
    }
    fn lock(&self, name: &str, wait: Duration) -> anyhow::Result<LockGuard> {
        self.inner.lock(name, wait)
    }
}

/// The docker profile with a file and an SSH key (so that the node gets private files too).
fn request() -> (Request, ProfileFiles) {
    let o = Layer {
        files: Some(vec![FileSpec {
            dest: "/etc/motd".into(),
            content: Some("hi\n".into()),
            source: None,
            mode: "0644".into(),
        }]),
        ssh_public_keys: Some(vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPa/oTsJUg7XJyJvZNihU3R/KM5fBM9qNjI8poTTb80t s@x"
                .into(),
        ]),
        ..Layer::default()
    };
    let p = profile::load("docker", &o).expect("profile");
    let files = apply::read_profile_files(&p).expect("files");
    (
        Request {
            hostname: "web1".into(),
            vmid: None,
            profile: p,
        },
        files,
    )
}

fn converge(t: Arc<dyn Transport>, req: &Request, files: &ProfileFiles) -> RunReport {
    let r = converge_with(&Ctx::new(t, Options::default()), req, Some(PW), files);
    RunReport {
        containers: vec![r],
        notes: vec![],
    }
}

/// Everything a report shows: text, JSON and Debug.
fn report_views(r: &RunReport) -> String {
    format!(
        "{}\n{}\n{:?}",
        r.text(),
        serde_json::to_string(r).expect("json"),
        r
    )
}

#[test]
fn the_password_reaches_the_container_only_on_chpasswd_stdin() {
    let node = fake_node();
    let (req, files) = request();
    let run = converge(node.clone(), &req, &files);
    let r = &run.containers[0];
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    assert!(r.steps.iter().any(|s| s.name == "set root password"));
    let calls = node.calls();
    for c in &calls {
        assert!(
            !c.argv.iter().any(|a| a.contains(PW)),
            "the password is on a command line: {:?}",
            c.argv
        );
    }
    let with_pw: Vec<_> = calls
        .iter()
        .filter(|c| String::from_utf8_lossy(&c.stdin).contains(PW))
        .collect();
    assert_eq!(with_pw.len(), 1, "the password went to more than one stdin");
    assert_eq!(
        with_pw[0].argv,
        ["pct", "exec", "100", "--keep-env", "0", "--", "chpasswd"]
    );
    assert_eq!(with_pw[0].stdin, format!("root:{PW}\n").as_bytes());
    node.with(|s| {
        assert_eq!(s.cts[&100].passwords, [format!("root:{PW}\n").into_bytes()]);
        for (path, b) in &s.node_files {
            assert!(!String::from_utf8_lossy(b).contains(PW), "node file {path}");
        }
        for (path, (b, _)) in &s.cts[&100].files {
            assert!(
                !String::from_utf8_lossy(b).contains(PW),
                "container file {path}"
            );
        }
    });
    let shown = report_views(&run);
    assert!(
        !shown.contains(PW),
        "the report shows the password:\n{shown}"
    );
    // The next run does not send it again.
    node.clear_calls();
    let run = converge(node.clone(), &req, &files);
    assert_eq!(run.containers[0].outcome, Outcome::Unchanged);
    assert!(node.calls().iter().all(|c| c.stdin.is_empty()));
}

#[test]
fn the_dry_run_plan_shows_the_step_but_never_the_password() {
    let node = fake_node();
    let (req, files) = request();
    let t: Arc<dyn Transport> = node.clone();
    let ctx = Ctx::new(t.clone(), Options::default());
    let nf = facts::gather_node(t.as_ref()).unwrap();
    let view = apply::dry_plan(&ctx, &req, &nf, Some(PW), &files).expect("plan");
    let json = serde_json::to_string_pretty(&view).unwrap();
    assert!(json.contains("set root password"), "{json}");
    for shown in [
        apply::plan_text(&view, false),
        apply::plan_text(&view, true),
        json,
        format!("{view:?}"),
    ] {
        assert!(!shown.contains(PW), "the plan shows the password:\n{shown}");
    }
    // The same plan for a running container that already exists (facts read inside).
    converge(node.clone(), &req, &files);
    node.with(|s| {
        s.cts
            .get_mut(&100)
            .unwrap()
            .files
            .remove("/var/lib/provision/state");
    });
    let nf = facts::gather_node(t.as_ref()).unwrap();
    let view = apply::dry_plan(&ctx, &req, &nf, Some(PW), &files).expect("plan");
    let shown = format!(
        "{}{}{view:?}",
        apply::plan_text(&view, true),
        serde_json::to_string(&view).unwrap()
    );
    assert!(shown.contains("chpasswd"), "{shown}");
    assert!(!shown.contains(PW), "{shown}");
}

#[test]
fn a_failing_chpasswd_does_not_leak_the_password() {
    let node = fake_node();
    node.with(|s| s.fail_matching.push("chpasswd".into()));
    let (req, files) = request();
    let run = converge(node.clone(), &req, &files);
    let r = &run.containers[0];
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    assert_eq!(
        r.failure.as_ref().map(|f| f.step.as_str()),
        Some("set root password")
    );
    let shown = report_views(&run);
    assert!(!shown.contains(PW), "{shown}");
}

#[test]
fn a_chpasswd_that_echoes_its_input_does_not_put_the_password_in_the_report() {
    let fake = fake_node();
    let rec = Arc::new(Recorder {
        inner: fake,
        puts: Mutex::new(Vec::new()),
        chpasswd_echoes: true,
    });
    let (req, files) = request();
    let run = converge(rec, &req, &files);
    let r = &run.containers[0];
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let shown = report_views(&run);
    assert!(
        !shown.contains(PW),
        "the command's output carried the password into the report:\n{shown}"
    );
}

#[test]
fn every_file_put_on_the_node_is_owner_only() {
    let rec = Recorder::new(fake_node());
    let (req, files) = request();
    let run = converge(rec.clone(), &req, &files);
    assert!(!run.containers[0].outcome.failed());
    let puts = rec.puts.lock().unwrap().clone();
    // The SSH key file and the staging copies of daemon.json and /etc/motd.
    assert!(puts.len() >= 3, "{puts:?}");
    for (dest, mode) in &puts {
        assert!(dest.starts_with(NODE_TMP_DIR), "{dest}");
        assert_eq!(*mode, 0o600, "{dest} is written with mode {mode:o}");
    }
}

/// A node transport that records puts and runs, and fails `pct push` when asked.
struct PushRecorder {
    log: Mutex<Vec<String>>,
    fail_push: bool,
}

impl Transport for PushRecorder {
    fn label(&self) -> String {
        "node".into()
    }
    fn run(&self, cmd: &Cmd, _stdin: Option<&[u8]>) -> anyhow::Result<Output> {
        let argv = cmd.argv_real();
        self.log.lock().unwrap().push(argv.join(" "));
        if self.fail_push && argv[..2] == ["pct", "push"] {
            return Ok(Output::fail(255, "push failed\n"));
        }
        Ok(Output::ok(""))
    }
    fn put(&self, _bytes: &[u8], dest: &str, mode: u32) -> anyhow::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("put {dest} {mode:o}"));
        Ok(())
    }
    fn lock(&self, _name: &str, _wait: Duration) -> anyhow::Result<LockGuard> {
        Ok(LockGuard::new(()))
    }
}

#[test]
fn pct_put_stages_owner_only_and_always_removes_the_staging_file() {
    for fail_push in [false, true] {
        let node = Arc::new(PushRecorder {
            log: Mutex::new(Vec::new()),
            fail_push,
        });
        let ct = Pct {
            node: node.clone(),
            vmid: 105,
            keep_env: true,
        };
        let res = ct.put(b"{}", "/etc/docker/daemon.json.provision-new", 0o644);
        assert_eq!(res.is_err(), fail_push);
        let log = node.log.lock().unwrap().clone();
        assert_eq!(log.len(), 3, "{log:?}");
        let staged = log[0]
            .strip_prefix("put ")
            .and_then(|s| s.strip_suffix(" 600"))
            .unwrap_or_else(|| panic!("staging is not owner-only: {log:?}"));
        assert!(
            staged.starts_with(&format!("{NODE_TMP_DIR}/push-105-")),
            "{staged}"
        );
        assert_eq!(
            log[1],
            format!("pct push 105 {staged} /etc/docker/daemon.json.provision-new --perms 0644")
        );
        assert_eq!(log[2], format!("rm -f -- {staged}"));
    }
    // Two puts never share a staging name.
    let node = Arc::new(PushRecorder {
        log: Mutex::new(Vec::new()),
        fail_push: false,
    });
    let ct = Pct {
        node: node.clone(),
        vmid: 105,
        keep_env: true,
    };
    ct.put(b"a", "/a", 0o644).unwrap();
    ct.put(b"b", "/b", 0o644).unwrap();
    let log = node.log.lock().unwrap().clone();
    assert_ne!(log[0], log[3]);
}

#[test]
fn local_put_makes_owner_only_files_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    // As the staging and SSH key files are written: a new private directory, a 0600 file.
    let staging = dir.path().join("run/provision/ssh-keys-101");
    Local
        .put(b"ssh-ed25519 AAAA k\n", staging.to_str().unwrap(), 0o600)
        .unwrap();
    assert_eq!(mode(&staging), 0o600);
    assert_eq!(mode(staging.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join("run")), 0o700);
    // A file left world-readable by someone else becomes owner-only when rewritten.
    let old = dir.path().join("run/provision/push-101-1-0");
    std::fs::write(&old, "old").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    Local.put(b"new", old.to_str().unwrap(), 0o600).unwrap();
    assert_eq!(mode(&old), 0o600);
    assert_eq!(std::fs::read(&old).unwrap(), b"new");
}

// ---------------------------------------------------------------------------------------------
// The binary.

/// Shims that make PATH look like a PVE node with one template and no guests; every call is
/// logged to DIR/calls.log, chpasswd's stdin to DIR/chpasswd.stdin.
fn pve_shims(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let d = dir.display();
    let log = format!(
        "printf '%s' \"$0\" >> '{d}/calls.log'; for a in \"$@\"; do printf ' %s' \"$a\" >> '{d}/calls.log'; done; echo >> '{d}/calls.log'\n"
    );
    let tmpl = "ubuntu-24.04-standard_24.04-2_amd64.tar.zst";
    let scripts = [
        (
            "pvesh",
            "case \"$2\" in\n  /cluster/resources) echo '[]';;\n  /cluster/nextid) echo '\"100\"';;\n  *) echo '[]';;\nesac\n"
                .to_string(),
        ),
        (
            "pvesm",
            "echo 'Name Type Status Total Used Available %'\necho 'local dir active 100 10 90 10%'\necho 'local-lvm lvmthin active 100 10 90 10%'\n".to_string(),
        ),
        (
            "pveam",
            format!(
                "case \"$1\" in\n  list) echo 'NAME SIZE'; echo 'local:vztmpl/{tmpl} 120MB';;\n  available) echo 'system {tmpl}';;\nesac\n"
            ),
        ),
        (
            "pct",
            format!(
                "if [ \"$1\" = exec ]; then\n  for a in \"$@\"; do\n    case \"$a\" in\n      chpasswd) cat > '{d}/chpasswd.stdin'; exit 0;;\n      *os_id=*) printf 'os_id=ubuntu\\nos_version=24.04\\n'; exit 0;;\n    esac\n  done\nfi\nexit 0\n"
            ),
        ),
    ];
    for (name, body) in scripts {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{log}{body}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// A profile whose password comes from PROVISION_TEST_ROOT_PW; no Docker, so that a full run on
/// the shims has only create, start and the password to do.
const PROFILE: &str = "template = \"ubuntu-24.04\"\nroot_password = { env = \"PROVISION_TEST_ROOT_PW\" }\n[docker]\ninstall = \"none\"\n";

fn provision(dir: &Path, path: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("provision")
        .unwrap()
        .env_clear()
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .env("PROVISION_TEST_ROOT_PW", PW)
        .env("RUST_LOG", "trace")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_binary_never_prints_the_password_in_a_dry_run_at_any_verbosity() {
    let dir = tempfile::tempdir().unwrap();
    let bin = pve_shims(dir.path());
    std::fs::write(dir.path().join("p.toml"), PROFILE).unwrap();
    let with_pve = format!("{}:/usr/bin:/bin", bin.display());
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let without_pve = format!("{}:/usr/bin:/bin", empty.display());
    for path in [&with_pve, &without_pve] {
        for output in ["json", "text"] {
            let (code, stdout, stderr) = provision(
                dir.path(),
                path,
                &[
                    "web",
                    "--profile",
                    "./p.toml",
                    "--dry-run",
                    "--output",
                    output,
                    "-vvv",
                ],
            );
            assert_eq!(code, 0, "{stderr}");
            assert!(stdout.contains("set root password"), "{stdout}");
            assert!(
                !stdout.contains(PW) && !stderr.contains(PW),
                "the password shows ({output}):\n{stdout}\n{stderr}"
            );
        }
    }
}

#[test]
fn the_binary_sends_the_password_only_on_stdin_and_never_prints_it() {
    // JSON (no progress) and text (progress lines on stderr, which is not a terminal here).
    for output in ["json", "text"] {
        let dir = tempfile::tempdir().unwrap();
        let bin = pve_shims(dir.path());
        std::fs::write(dir.path().join("p.toml"), PROFILE).unwrap();
        let path = format!("{}:/usr/bin:/bin", bin.display());
        let (code, stdout, stderr) = provision(
            dir.path(),
            &path,
            &[
                "web",
                "--profile",
                "./p.toml",
                "--output",
                output,
                "-vvv",
                "--yes",
            ],
        );
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        let calls = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
        assert!(calls.contains("pct create 100"), "{calls}");
        assert!(calls.contains("-- chpasswd"), "{calls}");
        assert!(
            !calls.contains(PW),
            "the password is on a command line:\n{calls}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("chpasswd.stdin")).unwrap(),
            format!("root:{PW}\n")
        );
        assert!(
            stdout.contains("set root password") || stderr.contains("set root password"),
            "{stdout}\n{stderr}"
        );
        assert!(
            !stdout.contains(PW) && !stderr.contains(PW),
            "the password shows ({output}):\n{stdout}\n{stderr}"
        );
    }
}
