//! Faults during a run, against the fake node: every changing command of a full provision is
//! made to fail in turn; the report must name the step and the state left, a re-run must reach
//! the same final state as a run without faults, and `--rollback` must remove only what that run
//! created. Also: in-container writes are atomic (temporary file + rename), the user's
//! daemon.json keys survive any number of runs, invalid JSON is never overwritten, an
//! interrupted run is continued by the next one, and the safety rails around existing
//! containers hold.
//!
//! A `provision` killed by SIGINT/SIGTERM is simulated here by a fault that stops the run at a
//! given command: the process-level signal test needs a real node and belongs to the LXC lab.

use crate::support::converge::converge_with;
use crate::support::fake::{FakeCt, FakeNode, fake_node};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use provision::apply::{self, Ctx};
use provision::facts;
use provision::plan::{self, ProfileFiles};
use provision::profile::{self, Driver, FeaturesLayer, FileSpec, Layer};
use provision::report::{ContainerReport, Outcome};
use provision::request::{Options, Request};
use provision::transport::Transport;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const PASSWORD: &str = "fault-test-pw";
const MOTD: &str = "/etc/motd";

/// A profile that exercises every kind of step: template download, create with SSH keys, start,
/// Docker install, fuse-overlayfs push, daemon.json, restart, a file, a password, a command.
fn full_request() -> (Request, ProfileFiles) {
    let o = Layer {
        files: Some(vec![FileSpec {
            dest: MOTD.into(),
            content: Some("hello from provision\n".into()),
            source: None,
            mode: "0644".into(),
        }]),
        commands: Some(vec![vec![
            "systemctl".into(),
            "enable".into(),
            "--now".into(),
            "docker".into(),
        ]]),
        ssh_public_keys: Some(vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPa/oTsJUg7XJyJvZNihU3R/KM5fBM9qNjI8poTTb80t faults@test".into()]),
        ..Layer::default()
    };
    request_with("docker", o)
}

fn request_with(profile_name: &str, o: Layer) -> (Request, ProfileFiles) {
    let p = profile::load(profile_name, &o).expect("profile loads");
    let files = apply::read_profile_files(&p).expect("files read");
    (
        Request {
            hostname: "web1".into(),
            vmid: None,
            profile: p,
        },
        files,
    )
}

/// One converge on `node`.
fn run(
    node: &Arc<FakeNode>,
    req: &Request,
    files: &ProfileFiles,
    opts: Options,
    rollback: bool,
) -> ContainerReport {
    let mut ctx = Ctx::new(node.clone(), opts);
    ctx.rollback = rollback;
    converge_with(&ctx, req, Some(PASSWORD), files)
}

/// The changing commands run through the node (the fake's `<put>` records are not commands and
/// cannot fail; they are counted apart).
fn changing_commands(node: &FakeNode) -> Vec<Vec<String>> {
    node.calls()
        .into_iter()
        .filter(|c| c.changing && c.argv[0] != "<put>")
        .map(|c| c.argv)
        .collect()
}

/// One container as the fake models it, without its VMID.
#[derive(Debug, PartialEq)]
struct CtModel {
    config: BTreeMap<String, String>,
    pending: BTreeMap<String, String>,
    running: bool,
    files: BTreeMap<String, (String, u32)>,
    links: BTreeMap<String, String>,
    docker: (bool, bool, Option<String>),
    packages: BTreeSet<String>,
    commands_run: BTreeSet<Vec<String>>,
    last_password: Option<Vec<u8>>,
}

/// The node as the fake models it, modulo VMIDs and the node's private staging directory.
#[derive(Debug, PartialEq)]
struct Model {
    containers: Vec<CtModel>,
    templates: BTreeSet<String>,
    node_files: BTreeMap<String, String>,
}

fn ct_model(id: u32, ct: &FakeCt) -> CtModel {
    let vm = format!("vm-{id}-");
    CtModel {
        config: ct
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.replace(&vm, "vm-ID-")))
            .collect(),
        pending: ct.pending.clone(),
        running: ct.running,
        files: ct
            .files
            .iter()
            .map(|(p, (b, m))| (p.clone(), (String::from_utf8_lossy(b).into_owned(), *m)))
            .collect(),
        links: ct.links.clone(),
        docker: (
            ct.docker_installed,
            ct.docker_active,
            ct.docker_driver.clone(),
        ),
        packages: ct.packages.clone(),
        // Commands run at least once; a run stopped between a command and its record repeats it.
        commands_run: ct.commands_run.iter().cloned().collect(),
        last_password: ct.passwords.last().cloned(),
    }
}

fn model(node: &FakeNode) -> Model {
    node.with(|s| Model {
        containers: s.cts.iter().map(|(id, ct)| ct_model(*id, ct)).collect(),
        templates: s.templates.clone(),
        node_files: s
            .node_files
            .iter()
            .filter(|(p, _)| !p.starts_with("/run/provision/"))
            .map(|(p, b)| (p.clone(), String::from_utf8_lossy(b).into_owned()))
            .collect(),
    })
}

/// Files left in the node's staging directory.
fn staging_left(node: &FakeNode) -> Vec<String> {
    node.with(|s| {
        s.node_files
            .keys()
            .filter(|p| p.starts_with("/run/provision/"))
            .cloned()
            .collect()
    })
}

fn contains(argv: &[String], w: &str) -> bool {
    argv.iter().any(|a| a.contains(w))
}

/// The step a changing command of the full flow belongs to (`prev`: the step of the command
/// before it). Explicit on purpose: when the flow changes, this says which command is new.
fn step_of(argv: &[String], prev: &str) -> String {
    let a: Vec<&str> = argv.iter().map(String::as_str).collect();
    let inner: &[&str] = match a.as_slice() {
        ["pct", "exec", _, "--keep-env", "0", "--", rest @ ..] => rest,
        _ => &[],
    };
    let step = match (a.as_slice(), inner) {
        (["pveam", "download", _, name], _) => format!("download template {name}"),
        (["pct", "create", ..], _) => "create".into(),
        (["rm", "-f", "--", p], _) if p.contains("/ssh-keys-") => "create".into(),
        (["rm", "-f", "--", p], _) if p.contains("/push-") => prev.to_string(),
        (["pct", "start", _], _) => "start".into(),
        (["pct", "push", _, _, dest, ..], _) => {
            return step_of_dest(dest.trim_end_matches(".provision-new"));
        }
        (_, ["mkdir", "-p", dir]) => match *dir {
            "/usr/local/bin" => "push fuse-overlayfs".into(),
            "/etc/docker" => "write daemon.json".into(),
            d => format!("write {d}/…"),
        },
        (_, ["mv", "-f", _, dest]) => step_of_dest(dest),
        (_, ["chpasswd"]) => "set root password".into(),
        (_, ["sh", "-c", script, "provision", "password", "set"]) if script.contains("state") => {
            "set root password".into()
        }
        (_, ["sh", "-c", _, "provision", "commands", _]) => "run commands".into(),
        (_, ["systemctl", "enable", ..]) => "run commands".into(),
        (_, ["sh", "-c", script, ..]) if script.ends_with(plan::INSTALL_SCRIPT) => {
            "install docker".into()
        }
        (_, ["sh", "-c", script, ..]) if script.ends_with(plan::PUSH_CHECK_SCRIPT) => {
            "push fuse-overlayfs".into()
        }
        (_, ["sh", "-c", script, "provision", _, dest, ..])
            if script.ends_with(plan::PLACE_SCRIPT) =>
        {
            step_of_dest(dest)
        }
        (_, ["sh", "-c", script, ..]) if script.ends_with(plan::RESTART_SCRIPT) => {
            "restart docker".into()
        }
        _ => panic!("a changing command the fault test does not know: {argv:?}"),
    };
    // `mkdir -p PARENT` of a profile file ends in `/…`: [`steps_of`] names it after the file
    // that the next command writes.
    step
}

fn step_of_dest(dest: &str) -> String {
    match dest {
        plan::FUSE_DEST => "push fuse-overlayfs".into(),
        plan::DAEMON_JSON => "write daemon.json".into(),
        d => format!("write {d}"),
    }
}

/// The step of every changing command of a run, in order.
fn steps_of(cmds: &[Vec<String>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in cmds {
        let prev = out.last().cloned().unwrap_or_default();
        out.push(step_of(c, &prev));
    }
    // `mkdir -p /etc` belongs to the file written next.
    for i in (0..out.len()).rev() {
        if out[i].ends_with("/…") {
            out[i] = out.get(i + 1).cloned().unwrap_or_default();
        }
    }
    out
}

/// The clean run: its changing commands, their steps and the final model.
struct Clean {
    commands: Vec<Vec<String>>,
    steps: Vec<String>,
    model: Model,
}

fn clean_run(req: &Request, files: &ProfileFiles) -> Clean {
    let node = fake_node();
    let r = run(&node, req, files, Options::default(), false);
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    assert!(r.verified);
    let commands = changing_commands(&node);
    let steps = steps_of(&commands);
    // Every step of the report is covered by the mapping, in the same order.
    let mut distinct: Vec<&String> = steps.iter().collect();
    distinct.dedup();
    let reported: Vec<&String> = r
        .steps
        .iter()
        .map(|s| &s.name)
        .filter(|n| n.as_str() != "verify docker")
        .collect();
    assert_eq!(
        distinct, reported,
        "the fault test's step map is out of date"
    );
    Clean {
        commands,
        steps,
        model: model(&node),
    }
}

/// True for the commands whose failure does not fail the run: removing a temporary file on the
/// node (a staging copy after a push, the SSH key file after create); it is logged and left.
fn best_effort(argv: &[String]) -> bool {
    matches!(argv, [rm, f, dd, p] if rm == "rm" && f == "-f" && dd == "--"
        && (p.contains("/run/provision/push-") || p.contains("/run/provision/ssh-keys-")))
}

#[test]
fn every_changing_command_failing_is_reported_and_a_rerun_converges() {
    let (req, files) = full_request();
    let clean = clean_run(&req, &files);
    let n = clean.commands.len();
    assert!(n >= 15, "a full provision runs {n} changing commands");
    let create_at = clean
        .commands
        .iter()
        .position(|c| c[..2] == ["pct", "create"])
        .expect("pct create")
        + 1;
    let mut problems = Vec::new();
    for k in 1..=n {
        let node = fake_node();
        node.with(|s| s.fail_changing_at = Some(k));
        let r = run(&node, &req, &files, Options::default(), false);
        let failed_cmd = &clean.commands[k - 1];
        let want_step = &clean.steps[k - 1];
        let shown = failed_cmd.join(" ");
        let shown = &shown[..shown.floor_char_boundary(90)];
        let exists = node.with(|s| s.cts.contains_key(&100));
        match &r.failure {
            Some(f) => {
                if &f.step != want_step {
                    problems.push(format!(
                        "k={k} ({shown}): failure.step {:?}, expected {want_step:?}",
                        f.step
                    ));
                }
                let last = r.steps.last().map(|s| (s.name.as_str(), s.status.as_str()));
                if last != Some((want_step.as_str(), "failed")) {
                    problems.push(format!("k={k}: last step in the report is {last:?}"));
                }
                if !(f.message.contains("injected fault")
                    || f.tail.iter().any(|l| l.contains("injected fault")))
                {
                    problems.push(format!(
                        "k={k}: the failure does not show the command's error: {}",
                        f.message
                    ));
                }
                let left_ok = match (exists, k > create_at) {
                    (true, _) => f.left.contains("created by this run"),
                    (false, false) => f.left == "nothing was changed",
                    (false, true) => false,
                };
                if !left_ok {
                    problems.push(format!(
                        "k={k} ({shown}): container exists={exists}, but failure.left says {:?}",
                        f.left
                    ));
                }
            }
            None if best_effort(failed_cmd) => {
                // The run succeeds (a warning is logged); the file stays behind, owner-only.
                let left = staging_left(&node);
                if left.is_empty() {
                    problems.push(format!(
                        "k={k}: a failed rm of a temporary file left nothing?"
                    ));
                }
            }
            None => problems.push(format!(
                "k={k} ({shown}): the run did not fail: {:?}",
                r.outcome
            )),
        }
        // The next run, without faults, continues and reaches the clean state.
        let r2 = run(&node, &req, &files, Options::default(), false);
        if r2.outcome.failed() || !r2.verified {
            problems.push(format!("k={k}: the re-run failed:\n{}", r2.text()));
            continue;
        }
        let m = model(&node);
        if m != clean.model {
            problems.push(format!(
                "k={k} ({shown}): after the re-run the node differs from a clean run:\n  got  {m:?}\n  want {:?}",
                clean.model
            ));
        }
    }
    eprintln!("faults: {n} injected, one per changing command of a full provision");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn rollback_after_any_fault_removes_exactly_what_the_run_created() {
    let (req, files) = full_request();
    let clean = clean_run(&req, &files);
    let n = clean.commands.len();
    let create_at = clean
        .commands
        .iter()
        .position(|c| c[..2] == ["pct", "create"])
        .expect("pct create")
        + 1;
    let mut problems = Vec::new();
    for k in 1..=n {
        let node = fake_node();
        node.with(|s| s.fail_changing_at = Some(k));
        let r = run(&node, &req, &files, Options::default(), true);
        let failed_cmd = &clean.commands[k - 1];
        let shown = failed_cmd.join(" ");
        let shown = &shown[..shown.floor_char_boundary(90)];
        let cts = node.with(|s| s.cts.len());
        if best_effort(failed_cmd) && !r.outcome.failed() {
            continue;
        }
        let left = r
            .failure
            .as_ref()
            .map(|f| f.left.clone())
            .unwrap_or_default();
        if k > create_at {
            if r.outcome != Outcome::RolledBack || cts != 0 {
                problems.push(format!(
                    "k={k} ({shown}): the container was created by this run; outcome {:?}, {cts} container(s) left, left: {left:?}",
                    r.outcome
                ));
            } else if !left.contains("destroyed (--rollback)") {
                problems.push(format!("k={k}: failure.left says {left:?}"));
            }
        } else if r.outcome != Outcome::Failed || cts != 0 {
            problems.push(format!(
                "k={k} ({shown}): nothing was created yet; outcome {:?}, {cts} container(s), left: {left:?}",
                r.outcome
            ));
        }
    }
    eprintln!("faults: {n} injected with --rollback");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// A node with web1 made by a clean run, then changed so that the next run has work to do:
/// more memory in the profile, another motd, daemon.json removed.
fn existing_then_changed() -> (Arc<FakeNode>, Request, ProfileFiles) {
    let (req, files) = full_request();
    let node = fake_node();
    let r = run(&node, &req, &files, Options::default(), false);
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    node.with(|s| {
        s.cts
            .get_mut(&100)
            .expect("ct 100")
            .files
            .remove(plan::DAEMON_JSON);
    });
    let (mut req2, _) = full_request();
    req2.profile.memory = 4096;
    req2.profile.files[0].content = Some("changed\n".into());
    let files2 = apply::read_profile_files(&req2.profile).expect("files");
    node.clear_calls();
    (node, req2, files2)
}

#[test]
fn rollback_never_destroys_a_container_that_existed_before_the_run() {
    let (node, req, files) = existing_then_changed();
    let r = run(&node, &req, &files, Options::default(), true);
    assert_eq!(r.outcome, Outcome::Changed, "{}", r.text());
    let m = changing_commands(&node).len();
    assert!(m >= 5, "the second run changes {m} things");
    let mut problems = Vec::new();
    for k in 1..=m {
        let (node, req, files) = existing_then_changed();
        node.with(|s| s.fail_changing_at = Some(k));
        let r = run(&node, &req, &files, Options::default(), true);
        let exists = node.with(|s| s.cts.contains_key(&100));
        let left = r
            .failure
            .as_ref()
            .map(|f| f.left.clone())
            .unwrap_or_default();
        if !exists || r.outcome == Outcome::RolledBack {
            problems.push(format!(
                "k={k}: outcome {:?}, container exists: {exists}, left: {left:?}",
                r.outcome
            ));
        }
        if r.outcome.failed() && !(left.contains("partly changed") || left.contains("is as it was"))
        {
            problems.push(format!("k={k}: failure.left says {left:?}"));
        }
        // Nothing to roll back: no destroy or stop was attempted.
        if node
            .calls()
            .iter()
            .any(|c| c.argv[..2] == ["pct", "destroy"] || c.argv[..2] == ["pct", "stop"])
        {
            problems.push(format!("k={k}: a destroy or stop was run"));
        }
    }
    eprintln!("faults: {m} injected on an existing container with --rollback");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Stops a full run at the first command matching `at` (as a kill would), checks the report,
/// then runs again without the fault: the container is continued, not re-created, and ends as a
/// clean run leaves it.
fn stop_and_continue(at: &str, step: &str) {
    let (req, files) = full_request();
    let clean = clean_run(&req, &files);
    let node = fake_node();
    node.with(|s| s.fail_matching.push(at.into()));
    let r = run(&node, &req, &files, Options::default(), false);
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let f = r.failure.as_ref().expect("failure");
    assert_eq!(f.step, step);
    assert!(
        f.left.contains("container 100") && f.left.contains("next run continues it"),
        "{}",
        f.left
    );
    assert!(r.text().contains("left: container 100"), "{}", r.text());
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["failure"]["step"], step);
    assert_eq!(json["vmid"], 100);
    node.with(|s| s.fail_matching.clear());
    node.clear_calls();
    let r2 = run(&node, &req, &files, Options::default(), false);
    assert_eq!(r2.outcome, Outcome::Changed, "{}", r2.text());
    assert_eq!(r2.vmid, Some(100));
    assert!(r2.verified);
    let names: Vec<&str> = r2.steps.iter().map(|s| s.name.as_str()).collect();
    assert!(!names.contains(&"create"), "{names:?}");
    assert_eq!(model(&node), clean.model);
}

#[test]
fn a_run_stopped_midway_is_reported_and_the_next_run_continues_it() {
    stop_and_continue("apt-get update", "install docker");
    stop_and_continue("chown 0:0", "push fuse-overlayfs");
    stop_and_continue("/etc/motd.provision-new /etc/motd ", "write /etc/motd");
}

/// A run stopped after daemon.json was written but before Docker restarted: the next run finds
/// daemon.json right, and must still restart Docker (it runs with the old driver).
#[test]
fn a_run_stopped_at_the_docker_restart_restarts_docker_next_time() {
    stop_and_continue("systemctl restart docker", "restart docker");
}

#[test]
fn an_interrupted_run_starts_no_new_container() {
    let (req, files) = full_request();
    let node = fake_node();
    let t: Arc<dyn Transport> = node.clone();
    let ctx = Ctx::new(t.clone(), Options::default());
    ctx.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = converge_with(&ctx, &req, None, &files);
    assert!(r.outcome.failed(), "{}", r.text());
    let f = r.failure.expect("failure");
    assert!(f.message.contains("interrupted"), "{}", f.message);
    assert_eq!(f.left, "nothing was changed");
    node.with(|s| assert!(s.cts.is_empty()));
    assert!(
        !changing_commands(&node)
            .iter()
            .any(|c| c[..2] == ["pct", "create"])
    );
}

// ---------------------------------------------------------------------------------------------
// Atomic writes.

#[test]
fn every_write_into_a_container_goes_to_a_temporary_file_renamed_by_a_separate_command() {
    let (req, files) = full_request();
    let node = fake_node();
    let r = run(&node, &req, &files, Options::default(), false);
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    let calls = node.calls();
    let mut pushes = 0;
    for (i, c) in calls.iter().enumerate() {
        if c.argv[..2] != ["pct", "push"] {
            continue;
        }
        pushes += 1;
        let tmp = &c.argv[4];
        assert!(tmp.ends_with(".provision-new"), "pushed straight to {tmp}");
        let dest = tmp.trim_end_matches(".provision-new");
        let renamed = calls[i + 1..].iter().any(|l| {
            l.argv[..2] == ["pct", "exec"]
                && l.argv.iter().any(|a| a == tmp)
                && l.argv.iter().any(|a| a == dest)
        });
        assert!(renamed, "no command renames {tmp} to {dest}");
    }
    // fuse-overlayfs, daemon.json and the profile's file.
    assert_eq!(pushes, 3);
    // Nothing else writes a destination: no `>` redirections into the managed files in argv.
    for c in &calls {
        let j = c.argv.join(" ");
        assert!(
            !j.contains("> /etc/docker/daemon.json") && !j.contains(">/etc/docker/daemon.json"),
            "{j}"
        );
    }
}

/// web1 exists with an old daemon.json (user keys, no storage-driver), an old fuse-overlayfs
/// binary and an old motd; the next run must replace all three.
fn existing_with_old_files() -> (Arc<FakeNode>, Request, ProfileFiles) {
    let (req, files) = full_request();
    let node = fake_node();
    assert!(
        !run(&node, &req, &files, Options::default(), false)
            .outcome
            .failed()
    );
    node.with(|s| {
        let ct = s.cts.get_mut(&100).expect("ct");
        ct.files.insert(
            plan::DAEMON_JSON.into(),
            (br#"{"log-driver": "journald"}"#.to_vec(), 0o644),
        );
        ct.files.insert(
            plan::FUSE_DEST.into(),
            (b"\x7fELF old fuse-overlayfs".to_vec(), 0o755),
        );
        ct.files
            .insert(MOTD.into(), (b"old motd\n".to_vec(), 0o644));
    });
    node.clear_calls();
    (node, req, files)
}

#[test]
fn a_failed_rename_leaves_the_old_file_whole_at_the_destination() {
    // (fault matched in the argv, destination, step)
    let cases = [
        ("provision-backup", plan::DAEMON_JSON, "write daemon.json"),
        ("chown 0:0", plan::FUSE_DEST, "push fuse-overlayfs"),
        (
            "/etc/motd.provision-new /etc/motd ",
            MOTD,
            "write /etc/motd",
        ),
        (
            "/etc/docker/daemon.json.provision-new --perms",
            plan::DAEMON_JSON,
            "write daemon.json",
        ),
        (
            "fuse-overlayfs.provision-new --perms",
            plan::FUSE_DEST,
            "push fuse-overlayfs",
        ),
        ("/etc/motd.provision-new --perms", MOTD, "write /etc/motd"),
    ];
    for (fault, dest, step) in cases {
        let (node, req, files) = existing_with_old_files();
        let before = node.with(|s| s.cts[&100].files[dest].clone());
        node.with(|s| s.fail_matching.push(fault.into()));
        let r = run(&node, &req, &files, Options::default(), false);
        assert_eq!(r.outcome, Outcome::Failed, "{fault}: {}", r.text());
        assert_eq!(r.failure.as_ref().map(|f| f.step.as_str()), Some(step));
        node.with(|s| {
            assert_eq!(
                s.cts[&100].files[dest], before,
                "{fault}: {dest} changed although its rename failed"
            );
        });
        // The next run completes the write.
        node.with(|s| s.fail_matching.clear());
        let r = run(&node, &req, &files, Options::default(), false);
        assert!(!r.outcome.failed(), "{fault}: {}", r.text());
        node.with(|s| {
            let ct = &s.cts[&100];
            assert_ne!(ct.files[dest], before, "{fault}: {dest} was never replaced");
            assert!(
                !ct.files.keys().any(|k| k.ends_with(".provision-new")),
                "{fault}: a temporary file stayed: {:?}",
                ct.files.keys()
            );
        });
    }
}

// ---------------------------------------------------------------------------------------------
// daemon.json: the user's keys.

/// The keys provision owns (and everything under them).
fn tool_path(path: &[String]) -> bool {
    match path {
        [a, ..] if a == "storage-driver" => true,
        [a, b, ..] => a == "features" && b == "containerd-snapshotter",
        _ => false,
    }
}

/// Every (path, value) of a JSON object's leaves (objects are descended into).
fn leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                path.push(k.clone());
                leaves(x, path, out);
                path.pop();
            }
        }
        other => out.push((path.clone(), other.clone())),
    }
}

fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "log-driver", "log-opts", "max-size", "registry-mirrors", "insecure-registries",
            "features", "buildkit", "containerd-snapshotter", "storage-driver", "dns",
            "default-address-pools", "exec-opts", "live-restore", "data-root",
        ])
        .prop_map(String::from),
        1 => "\\PC{0,10}",
        1 => ".{0,6}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Floats that serde_json's default parser reads back exactly (see
        // `user_floats_keep_their_exact_value`, which fails for the others).
        (-1e12f64..1e12)
            .prop_filter("reads back exactly", |f| {
                serde_json::from_str::<f64>(&Value::from(*f).to_string()).ok() == Some(*f)
            })
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((json_key(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A user's daemon.json: an object with nested keys; `features`, when present, is an object
/// (a non-object `features` is refused, tested apart).
fn user_daemon_json() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::collection::vec((json_key(), json_value()), 0..6),
        proptest::option::of(proptest::collection::vec((json_key(), json_value()), 0..3)),
    )
        .prop_map(|(kv, feats)| {
            let mut m: Map<String, Value> = kv.into_iter().collect();
            match feats {
                Some(f) => {
                    m.insert("features".into(), Value::Object(f.into_iter().collect()));
                }
                None => {
                    if !m.get("features").is_some_and(Value::is_object) {
                        m.remove("features");
                    }
                }
            }
            m
        })
}

fn runner(default_cases: u32) -> TestRunner {
    let cases = std::env::var("PROVISION_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x6461_656d_6f6e),
        ..Config::default()
    })
}

/// Checks a merged daemon.json against the user's: every user leaf kept (but the tool's keys),
/// the tool's keys set, the user's top-level key order kept.
fn check_merged(
    user: &Map<String, Value>,
    merged_text: &str,
    driver: Driver,
) -> Result<(), TestCaseError> {
    let merged: Value = serde_json::from_str(merged_text)
        .map_err(|e| TestCaseError::fail(format!("merged daemon.json is not JSON: {e}")))?;
    let user_v = Value::Object(user.clone());
    let mut ls = Vec::new();
    leaves(&user_v, &mut Vec::new(), &mut ls);
    for (path, value) in ls {
        if path.is_empty() || tool_path(&path) {
            continue;
        }
        if value.as_object().is_some_and(Map::is_empty) {
            // An empty object may gain the tool's key (`features: {}`); it stays an object.
            prop_assert!(
                at(&merged, &path).is_some_and(Value::is_object),
                "user key {:?} lost",
                path
            );
            continue;
        }
        prop_assert_eq!(at(&merged, &path), Some(&value), "user key {:?} lost", path);
    }
    prop_assert_eq!(&merged["storage-driver"], driver.as_str());
    if driver == Driver::FuseOverlayfs {
        prop_assert_eq!(
            &merged["features"]["containerd-snapshotter"],
            &Value::Bool(false)
        );
    }
    let user_keys: Vec<&String> = user.keys().collect();
    let merged_keys: Vec<&String> = merged
        .as_object()
        .expect("object")
        .keys()
        .filter(|k| user.contains_key(*k))
        .collect();
    prop_assert_eq!(user_keys, merged_keys, "the user's key order changed");
    Ok(())
}

#[test]
fn daemon_json_merge_keeps_every_user_key_over_many_runs_and_is_idempotent() {
    let counter = std::cell::Cell::new(0u64);
    let strategy = (
        user_daemon_json(),
        proptest::sample::select(vec![Driver::FuseOverlayfs, Driver::Overlay2, Driver::Vfs]),
    );
    runner(400)
        .run(&strategy, |(user, driver)| {
            counter.set(counter.get() + 1);
            let text = serde_json::to_string_pretty(&Value::Object(user.clone())).unwrap();
            let (first, _) = plan::merge_daemon_json(Some(&text), driver, false)
                .map_err(|e| TestCaseError::fail(format!("{e:#}")))?
                .unwrap_or((text.clone(), vec![]));
            check_merged(&user, &first, driver)?;
            // Idempotent after the first merge, however often it runs.
            let mut cur = first.clone();
            for _ in 0..3 {
                let again = plan::merge_daemon_json(Some(&cur), driver, false)
                    .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
                prop_assert_eq!(&again, &None, "a second merge changed {}", cur);
                cur = again.map(|(t, _)| t).unwrap_or(cur);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("daemon.json merge: {} executions", counter.get());
}

/// Found by the property above: serde_json is built without `float_roundtrip`, so its parser may
/// read a float one ULP off; the merge then writes back a different number than the user's.
#[test]
fn user_floats_keep_their_exact_value() {
    let user = r#"{"x-ratio": 40899782300.568924, "big": 123456789012345678901234567890}"#;
    let (text, _) = plan::merge_daemon_json(Some(user), Driver::Overlay2, false)
        .unwrap()
        .unwrap();
    assert!(
        text.contains("40899782300.568924"),
        "the user's float changed: {text}"
    );
}

#[test]
fn user_daemon_json_survives_repeated_runs_of_the_whole_flow() {
    let counter = std::cell::Cell::new(0u64);
    let (req, files) = request_with("docker", Layer::default());
    runner(24)
        .run(&user_daemon_json(), |mut user| {
            counter.set(counter.get() + 1);
            // The container's Docker runs fuse-overlayfs: a user driver would be a switch.
            user.remove("storage-driver");
            let node = fake_node();
            let r = run(&node, &req, &files, Options::default(), false);
            prop_assert!(!r.outcome.failed(), "{}", r.text());
            let text = serde_json::to_string(&Value::Object(user.clone())).unwrap();
            node.with(|s| {
                s.cts
                    .get_mut(&100)
                    .expect("ct")
                    .files
                    .insert(plan::DAEMON_JSON.into(), (text.clone().into_bytes(), 0o644))
            });
            let mut after_first = None;
            for i in 0..3 {
                node.clear_calls();
                let r = run(&node, &req, &files, Options::default(), false);
                prop_assert!(!r.outcome.failed(), "run {i}: {}", r.text());
                let now = node.with(|s| s.cts[&100].files[plan::DAEMON_JSON].0.clone());
                let now = String::from_utf8(now).expect("utf-8");
                check_merged(&user, &now, Driver::FuseOverlayfs)?;
                match &after_first {
                    None => after_first = Some(now),
                    Some(first) => {
                        prop_assert_eq!(first, &now);
                        prop_assert_eq!(r.outcome, Outcome::Unchanged, "{}", r.text());
                    }
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("daemon.json through the flow: {} executions", counter.get());
}

/// Texts that are not a JSON object: broken JSON, JSON of another type, an object followed by
/// a second one (what `echo >> daemon.json` makes).
fn invalid_daemon_json() -> impl Strategy<Value = String> {
    prop_oneof![
        user_daemon_json().prop_flat_map(|m| {
            let t = serde_json::to_string(&Value::Object(m)).unwrap();
            let len = t.len();
            (Just(t), 1..len.max(2))
                .prop_map(|(t, cut)| t[..t.floor_char_boundary(cut.min(t.len() - 1))].to_string())
        }),
        user_daemon_json().prop_map(|m| {
            let t = serde_json::to_string(&Value::Object(m)).unwrap();
            format!("{t}\n{{\"storage-driver\": \"fuse-overlayfs\"}}\n")
        }),
        json_value()
            .prop_filter("not an object", |v| !v.is_object())
            .prop_map(|v| v.to_string()),
        "[^{ \t\r\n][^\u{0}]{0,30}",
    ]
    .prop_filter("not a JSON object", |t| {
        !t.trim().is_empty() && !matches!(serde_json::from_str::<Value>(t), Ok(Value::Object(_)))
    })
}

#[test]
fn invalid_daemon_json_is_never_overwritten_without_force() {
    let counter = std::cell::Cell::new(0u64);
    runner(300)
        .run(&invalid_daemon_json(), |text| {
            counter.set(counter.get() + 1);
            let e = plan::merge_daemon_json(Some(&text), Driver::FuseOverlayfs, false)
                .err()
                .ok_or_else(|| TestCaseError::fail(format!("{text:?} was accepted")))?;
            prop_assert!(format!("{e:#}").contains("--force"), "{e:#}");
            let forced = plan::merge_daemon_json(Some(&text), Driver::FuseOverlayfs, true)
                .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
            let (t, _) = forced.ok_or_else(|| TestCaseError::fail("--force wrote nothing"))?;
            check_merged(&Map::new(), &t, Driver::FuseOverlayfs)?;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("invalid daemon.json: {} executions", counter.get());
    // Through the flow: refused and untouched; with force, replaced and the old bytes kept.
    let (req, files) = request_with("docker", Layer::default());
    for text in [
        "{\"log-driver\": \"journald\"}\n{\"storage-driver\": \"fuse-overlayfs\"}\n",
        "{\"features\": true}",
        "[\"storage-driver\"]",
        "{\"a\": 1,",
    ] {
        let node = fake_node();
        assert!(
            !run(&node, &req, &files, Options::default(), false)
                .outcome
                .failed()
        );
        node.with(|s| {
            s.cts
                .get_mut(&100)
                .expect("ct")
                .files
                .insert(plan::DAEMON_JSON.into(), (text.as_bytes().to_vec(), 0o644))
        });
        node.clear_calls();
        let r = run(&node, &req, &files, Options::default(), false);
        assert_eq!(r.outcome, Outcome::Failed, "{text}: {}", r.text());
        assert!(
            !changing_commands(&node)
                .iter()
                .any(|c| contains(c, "daemon.json")),
            "{text}: daemon.json was touched"
        );
        node.with(|s| assert_eq!(s.cts[&100].files[plan::DAEMON_JSON].0, text.as_bytes()));
        let forced = Options {
            force: true,
            ..Options::default()
        };
        let r = run(&node, &req, &files, forced, false);
        assert!(!r.outcome.failed(), "{text}: {}", r.text());
        node.with(|s| {
            let ct = &s.cts[&100];
            let backup = format!("{}.provision-backup", plan::DAEMON_JSON);
            assert_eq!(ct.files[&backup].0, text.as_bytes(), "{text}: no backup");
            let now: Value = serde_json::from_slice(&ct.files[plan::DAEMON_JSON].0).unwrap();
            assert_eq!(now["storage-driver"], "fuse-overlayfs");
        });
    }
}

/// A converged container (ct 100, Docker on fuse-overlayfs) changed by `change`, then run again
/// with `opts`: the report and whether daemon.json was written.
fn rerun_after(change: impl FnOnce(&mut FakeCt), opts: Options) -> (ContainerReport, bool) {
    let (req, files) = request_with("docker", Layer::default());
    let node = fake_node();
    let r = run(&node, &req, &files, Options::default(), false);
    assert!(!r.outcome.failed(), "{}", r.text());
    node.with(|s| change(s.cts.get_mut(&100).expect("ct 100")));
    node.clear_calls();
    let r = run(&node, &req, &files, opts, false);
    let wrote = changing_commands(&node)
        .iter()
        .any(|c| contains(c, "daemon.json"));
    (r, wrote)
}

#[test]
fn docker_is_never_switched_away_from_the_driver_it_really_runs_without_the_flag() {
    // dockerd runs overlay2 with images and containers, and there is no daemon.json: the
    // guard used to read daemon.json only, and switched it.
    let running_with_data = |ct: &mut FakeCt| {
        ct.files.remove(plan::DAEMON_JSON);
        ct.docker_driver = Some("overlay2".into());
        ct.docker_objects = 3;
    };
    let (r, wrote) = rerun_after(running_with_data, Options::default());
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let msg = &r.failure.as_ref().unwrap().message;
    assert!(msg.contains("uses storage-driver overlay2"), "{msg}");
    assert!(
        msg.contains("dockerd runs it with 3 images and containers"),
        "{msg}"
    );
    assert!(!wrote, "daemon.json was written");
    // Stopped, but with images stored for overlay2 under /var/lib/docker.
    let stored = |ct: &mut FakeCt| {
        ct.files.remove(plan::DAEMON_JSON);
        ct.docker_active = false;
        ct.docker_stored.insert("overlay2".into(), 2);
    };
    let (r, wrote) = rerun_after(stored, Options::default());
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    assert!(r.failure.unwrap().message.contains("2 images are stored"));
    assert!(!wrote);
    // With the flag it is done, and said.
    let allowed = Options {
        allow_storage_switch: true,
        ..Options::default()
    };
    let (r, wrote) = rerun_after(running_with_data, allowed);
    assert!(!r.outcome.failed(), "{}", r.text());
    assert!(
        wrote
            && r.notes
                .iter()
                .any(|n| n.contains("switching Docker's storage driver"))
    );
    // A Docker with nothing on the other driver (just installed) is configured without it.
    let empty = |ct: &mut FakeCt| {
        ct.files.remove(plan::DAEMON_JSON);
        ct.docker_driver = Some("overlay2".into());
        ct.docker_objects = 0;
    };
    let (r, wrote) = rerun_after(empty, Options::default());
    assert!(!r.outcome.failed() && wrote, "{}", r.text());
}

#[test]
fn a_daemon_json_that_is_not_utf8_is_never_rewritten_without_force() {
    let bytes: &[u8] = b"{\"log-opts\": {\"tag\": \"caf\xe9\"}}\n";
    let put = |ct: &mut FakeCt| {
        ct.files
            .insert(plan::DAEMON_JSON.into(), (bytes.to_vec(), 0o644));
    };
    let (r, wrote) = rerun_after(put, Options::default());
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    assert!(r.failure.unwrap().message.contains("not UTF-8"));
    assert!(!wrote);
    let forced = Options {
        force: true,
        ..Options::default()
    };
    let (req, files) = request_with("docker", Layer::default());
    let node = fake_node();
    run(&node, &req, &files, Options::default(), false);
    node.with(|s| put(s.cts.get_mut(&100).unwrap()));
    let r = run(&node, &req, &files, forced, false);
    assert!(!r.outcome.failed(), "{}", r.text());
    node.with(|s| {
        let ct = &s.cts[&100];
        let backup = format!("{}.provision-backup", plan::DAEMON_JSON);
        assert_eq!(ct.files[&backup].0, bytes, "the old bytes are kept exactly");
        let now = &ct.files[plan::DAEMON_JSON].0;
        assert!(std::str::from_utf8(now).is_ok_and(|t| !t.contains('\u{fffd}')));
    });
}

#[test]
fn daemon_json_keeps_its_mode_owner_and_group() {
    let (req, files) = request_with("docker", Layer::default());
    let node = fake_node();
    run(&node, &req, &files, Options::default(), false);
    node.with(|s| {
        let ct = s.cts.get_mut(&100).unwrap();
        ct.files.insert(
            plan::DAEMON_JSON.into(),
            (b"{\"log-driver\": \"journald\"}\n".to_vec(), 0o600),
        );
        ct.owners.insert(plan::DAEMON_JSON.into(), "0:998".into());
    });
    let r = run(&node, &req, &files, Options::default(), false);
    assert!(!r.outcome.failed(), "{}", r.text());
    node.with(|s| {
        let ct = &s.cts[&100];
        let (text, mode) = &ct.files[plan::DAEMON_JSON];
        assert!(String::from_utf8_lossy(text).contains("journald"));
        assert_eq!(*mode, 0o600, "a 0600 file became {mode:o}");
        assert_eq!(ct.owners[plan::DAEMON_JSON], "0:998");
    });
}

// ---------------------------------------------------------------------------------------------
// Safety rails.

fn foreign_ct(name: &str, tags: &str) -> FakeCt {
    let mut ct = FakeCt {
        running: true,
        fuse_usable: true,
        os: ("debian".into(), "12".into()),
        ..FakeCt::default()
    };
    ct.config.insert("hostname".into(), name.into());
    ct.config.insert("unprivileged".into(), "1".into());
    if !tags.is_empty() {
        ct.config.insert("tags".into(), tags.into());
    }
    ct
}

fn plain_request(vmid: Option<u32>) -> (Request, ProfileFiles) {
    let (mut req, files) = request_with("docker", Layer::default());
    req.vmid = vmid;
    (req, files)
}

#[test]
fn a_container_without_the_tag_is_refused_by_name_and_by_vmid_unless_adopted() {
    for vmid in [None, Some(120)] {
        let node = fake_node();
        node.with(|s| {
            s.cts.insert(120, foreign_ct("web1", "prod"));
        });
        let (req, files) = plain_request(vmid);
        let r = run(&node, &req, &files, Options::default(), false);
        assert_eq!(r.outcome, Outcome::Failed, "{vmid:?}: {}", r.text());
        let f = r.failure.expect("failure");
        assert!(
            f.message.contains("--adopt") && f.message.contains("120"),
            "{}",
            f.message
        );
        assert_eq!(f.left, "nothing was changed");
        assert_eq!(changing_commands(&node), Vec::<Vec<String>>::new());
        // With adopt, it is taken over: tagged, converged, not re-created.
        let adopt = Options {
            adopt: true,
            ..Options::default()
        };
        let r = run(&node, &req, &files, adopt, false);
        assert!(!r.outcome.failed(), "{}", r.text());
        assert_eq!(r.vmid, Some(120));
        node.with(|s| {
            assert_eq!(s.cts.len(), 1);
            let tags = facts::split_tags(&s.cts[&120].config["tags"]);
            assert!(tags.contains(&"provision".to_string()), "{tags:?}");
        });
    }
}

#[test]
fn a_name_match_is_never_enough_when_the_vmid_disagrees() {
    // web1 is container 100 (made by provision); the request says VMID 150.
    let node = fake_node();
    node.with(|s| {
        s.cts.insert(100, foreign_ct("web1", "provision"));
    });
    let (req, files) = plain_request(Some(150));
    let r = run(&node, &req, &files, Options::default(), false);
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let m = r.failure.expect("failure").message;
    assert!(m.contains("100") && m.contains("150"), "{m}");
    assert_eq!(changing_commands(&node), Vec::<Vec<String>>::new());
    // VMID 150 exists with another hostname: refused, whatever its tags.
    node.with(|s| {
        s.cts.insert(150, foreign_ct("db1", "provision"));
    });
    let (req, files) = plain_request(Some(150));
    let r = run(
        &node,
        &req,
        &files,
        Options {
            adopt: true,
            ..Options::default()
        },
        false,
    );
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let m = r.failure.expect("failure").message;
    assert!(m.contains("db1") && m.contains("refusing"), "{m}");
    // VMID 160 is a virtual machine.
    node.with(|s| {
        s.vms.insert(160);
    });
    let (req, files) = plain_request(Some(160));
    let r = run(&node, &req, &files, Options::default(), false);
    assert!(
        r.failure
            .expect("failure")
            .message
            .contains("virtual machine"),
        "VM not refused"
    );
    // Two containers named web2: the tool never guesses.
    node.with(|s| {
        s.cts.insert(170, foreign_ct("web2", "provision"));
        s.cts.insert(171, foreign_ct("web2", "provision"));
    });
    let (mut req, files) = plain_request(None);
    req.hostname = "web2".into();
    let r = run(&node, &req, &files, Options::default(), false);
    let m = r.failure.expect("failure").message;
    assert!(
        m.contains("170") && m.contains("171") && m.contains("--vmid"),
        "{m}"
    );
    assert_eq!(changing_commands(&node), Vec::<Vec<String>>::new());
}

#[test]
fn privileged_only_when_asked_and_then_with_a_warning() {
    // The default is unprivileged.
    let node = fake_node();
    let (req, files) = plain_request(None);
    let r = run(&node, &req, &files, Options::default(), false);
    assert!(!r.outcome.failed(), "{}", r.text());
    let create = changing_commands(&node)
        .into_iter()
        .find(|c| c[..2] == ["pct", "create"])
        .expect("create");
    let i = create
        .iter()
        .position(|a| a == "--unprivileged")
        .expect("flag");
    assert_eq!(create[i + 1], "1");
    assert!(!r.text().contains("PRIVILEGED"));
    // Asked for explicitly: created privileged, and the plan and the report say so.
    let o = Layer {
        unprivileged: Some(false),
        features: Some(FeaturesLayer {
            keyctl: Some(false),
            ..FeaturesLayer::default()
        }),
        ..Layer::default()
    };
    let (req, files) = request_with("docker", o);
    let node = fake_node();
    let t: Arc<dyn Transport> = node.clone();
    let ctx = Ctx::new(t.clone(), Options::default());
    let nf = facts::gather_node(t.as_ref()).unwrap();
    let view = apply::dry_plan(&ctx, &req, &nf, None, &files).expect("plan");
    let text = apply::plan_text(&view, false);
    assert!(text.contains("PRIVILEGED container"), "{text}");
    let r = run(&node, &req, &files, Options::default(), false);
    assert!(!r.outcome.failed(), "{}", r.text());
    assert!(
        r.notes.iter().any(|n| n.contains("PRIVILEGED")),
        "{:?}",
        r.notes
    );
    let create = changing_commands(&node)
        .into_iter()
        .find(|c| c[..2] == ["pct", "create"])
        .expect("create");
    let i = create
        .iter()
        .position(|a| a == "--unprivileged")
        .expect("flag");
    assert_eq!(create[i + 1], "0");
    // An unprivileged container is never turned into a privileged one (PVE cannot; the tool
    // refuses before changing anything).
    let node = fake_node();
    node.with(|s| {
        s.cts.insert(100, foreign_ct("web1", "provision"));
    });
    let r = run(&node, &req, &files, Options::default(), false);
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    assert!(
        r.failure
            .expect("failure")
            .message
            .contains("unprivileged is read-only"),
        "privilege change not refused"
    );
    assert_eq!(changing_commands(&node), Vec::<Vec<String>>::new());
}
