//! The applier against the fake node: the whole single-container flow, idempotence, failures,
//! rollback and the VMID lock.

use crate::support::converge::{converge_on, converge_with};
use crate::support::fake::{FakeNode, fake_node};
use provision::apply::Ctx;
use provision::profile::{self, Layer};
use provision::report::{ContainerReport, Outcome};
use provision::request::{Options, Request};
use provision::transport::Transport;
use std::sync::Arc;

pub fn request(name: &str, profile_name: &str, overrides: Layer) -> Request {
    let p = profile::load(profile_name, &overrides).expect("profile loads");
    Request {
        hostname: name.to_string(),
        vmid: None,
        profile: p,
    }
}

pub fn run_once(node: &Arc<FakeNode>, req: &Request, opts: Options) -> ContainerReport {
    converge_on(node.clone(), req, opts)
}

#[test]
fn first_run_performs_the_whole_flow_in_order() {
    let node = fake_node();
    let req = request("web1", "docker", Layer::default());
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    assert!(r.verified);
    let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            // The fake is a PVE 9.1 node: `ubuntu-lts` is the newest LTS its index offers.
            "download template ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
            "create",
            "start",
            "install docker",
            "push fuse-overlayfs",
            "write daemon.json",
            "restart docker",
            "verify docker"
        ]
    );
    node.with(|s| {
        let ct = &s.cts[&100];
        assert_eq!(ct.config["features"], "fuse=1,keyctl=1,mknod=1,nesting=1");
        assert_eq!(ct.config["unprivileged"], "1");
        assert_eq!(ct.config["tags"], "docker;provision");
        assert_eq!(ct.files["/usr/local/bin/fuse-overlayfs"].1, 0o755);
        assert_eq!(ct.docker_driver.as_deref(), Some("fuse-overlayfs"));
        let dj: serde_json::Value =
            serde_json::from_slice(&ct.files["/etc/docker/daemon.json"].0).unwrap();
        assert_eq!(dj["storage-driver"], "fuse-overlayfs");
        assert_eq!(dj["features"]["containerd-snapshotter"], false);
        // No staging file left on the node.
        assert!(
            !s.node_files
                .keys()
                .any(|k| k.starts_with("/run/provision/")),
            "{:?}",
            s.node_files.keys()
        );
    });
}

#[test]
fn second_run_performs_no_changing_command() {
    let node = fake_node();
    let req = request("web1", "docker", Layer::default());
    assert_eq!(
        run_once(&node, &req, Options::default()).outcome,
        Outcome::Created
    );
    node.clear_calls();
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Unchanged, "{}", r.text());
    assert!(r.verified);
    assert_eq!(node.changing_calls(), Vec::<String>::new());
    // A no-op re-run costs 3 node commands for the container (pending config, facts inside,
    // verification), plus what a run reads once whatever the number of containers.
    let calls = node.calls();
    let per_ct: Vec<String> = calls
        .iter()
        .map(|c| c.argv.join(" "))
        .filter(|a| a.contains(" 100 ") || a.contains("/lxc/100/"))
        .collect();
    assert_eq!(per_ct.len(), 3, "{per_ct:#?}");
    assert!(
        calls.len() <= 9,
        "{:#?}",
        calls
            .iter()
            .map(|c| c.argv[..2].join(" "))
            .collect::<Vec<_>>()
    );
    assert!(r.already.iter().any(|a| a.step == "daemon.json"));
}

#[test]
fn user_keys_in_daemon_json_survive_and_a_backup_is_kept() {
    let node = fake_node();
    let req = request("web1", "docker", Layer::default());
    run_once(&node, &req, Options::default());
    node.with(|s| {
        let ct = s.cts.get_mut(&100).unwrap();
        ct.files.insert(
            "/etc/docker/daemon.json".into(),
            (
                br#"{"log-driver":"journald","storage-driver":"fuse-overlayfs"}"#.to_vec(),
                0o644,
            ),
        );
    });
    for _ in 0..3 {
        let r = run_once(&node, &req, Options::default());
        assert!(!r.outcome.failed(), "{}", r.text());
    }
    node.with(|s| {
        let ct = &s.cts[&100];
        let dj: serde_json::Value =
            serde_json::from_slice(&ct.files["/etc/docker/daemon.json"].0).unwrap();
        assert_eq!(dj["log-driver"], "journald");
        assert_eq!(dj["features"]["containerd-snapshotter"], false);
        assert!(
            ct.files
                .contains_key("/etc/docker/daemon.json.provision-backup")
        );
    });
}

#[test]
fn invalid_daemon_json_is_refused_and_left_alone() {
    let node = fake_node();
    let req = request("web1", "docker", Layer::default());
    run_once(&node, &req, Options::default());
    node.with(|s| {
        s.cts.get_mut(&100).unwrap().files.insert(
            "/etc/docker/daemon.json".into(),
            (b"{not json".to_vec(), 0o644),
        );
    });
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Failed);
    let f = r.failure.unwrap();
    assert!(f.message.contains("not valid JSON"), "{}", f.message);
    node.with(|s| assert_eq!(s.cts[&100].files["/etc/docker/daemon.json"].0, b"{not json"));
    let r = run_once(
        &node,
        &req,
        Options {
            force: true,
            ..Options::default()
        },
    );
    assert!(!r.outcome.failed(), "{}", r.text());
    node.with(|s| {
        assert_eq!(
            s.cts[&100].files["/etc/docker/daemon.json.provision-backup"].0,
            b"{not json"
        );
    });
}

#[test]
fn a_failing_step_stops_the_container_with_a_report_naming_it() {
    let node = fake_node();
    node.with(|s| s.fail_matching.push("apt-get update".into()));
    let req = request("web1", "docker", Layer::default());
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Failed);
    let f = r.failure.as_ref().unwrap();
    assert_eq!(f.step, "install docker");
    assert!(f.tail.iter().any(|l| l.contains("injected fault")), "{f:?}");
    assert!(f.left.contains("created by this run"), "{}", f.left);
    // Nothing after the failed step ran.
    assert!(!r.steps.iter().any(|s| s.name == "write daemon.json"));
    // The next run continues the half-made container.
    node.with(|s| s.fail_matching.clear());
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Changed, "{}", r.text());
    assert_eq!(r.vmid, Some(100));
    assert!(r.verified);
}

#[test]
fn rollback_destroys_only_what_this_run_created() {
    let node = fake_node();
    let req = request("web1", "docker", Layer::default());
    node.with(|s| s.fail_matching.push("systemctl restart docker".into()));
    let t: Arc<dyn Transport> = node.clone();
    let mut ctx = Ctx::new(t.clone(), Options::default());
    ctx.rollback = true;
    let r = converge_with(&ctx, &req, None, &vec![]);
    assert_eq!(r.outcome, Outcome::RolledBack, "{}", r.text());
    node.with(|s| assert!(s.cts.is_empty()));
    // A container that existed before is never destroyed by rollback.
    node.with(|s| s.fail_matching.clear());
    run_once(&node, &req, Options::default());
    node.with(|s| {
        s.fail_matching.push("systemctl restart docker".into());
        s.cts
            .get_mut(&100)
            .unwrap()
            .files
            .remove("/etc/docker/daemon.json");
    });
    let r = converge_with(&ctx, &req, None, &vec![]);
    assert_eq!(r.outcome, Outcome::Failed);
    node.with(|s| assert!(s.cts.contains_key(&100)));
}

#[test]
fn vmid_taken_meanwhile_is_retried_with_the_next_free_one() {
    let node = fake_node();
    node.with(|s| s.steal_vmid_once = Some(100));
    let req = request("web1", "docker", Layer::default());
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    assert_eq!(r.vmid, Some(101));
}

#[test]
fn foreign_container_with_the_same_name_is_not_touched_without_adopt() {
    let node = fake_node();
    node.with(|s| {
        let mut ct = crate::support::fake::FakeCt::default();
        ct.config.insert("hostname".into(), "web1".into());
        s.cts.insert(120, ct);
    });
    let req = request("web1", "docker", Layer::default());
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.failure.unwrap().message.contains("--adopt"));
    assert_eq!(node.changing_calls(), Vec::<String>::new());
}

#[test]
fn profile_change_on_running_container_is_set_and_reported_pending() {
    let node = fake_node();
    run_once(
        &node,
        &request("web1", "docker", Layer::default()),
        Options::default(),
    );
    let mut o = Layer {
        memory: Some(4096),
        ..Layer::default()
    };
    o.features = Some(profile::FeaturesLayer {
        mknod: Some(false),
        ..Default::default()
    });
    let req = request("web1", "docker", o);
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Changed, "{}", r.text());
    assert_eq!(r.pending, ["features"]);
    node.with(|s| {
        assert_eq!(s.cts[&100].config["memory"], "4096");
        assert_eq!(s.cts[&100].pending["features"], "fuse=1,keyctl=1,nesting=1");
    });
    // With --restart the pending change is applied by a reboot.
    let r = run_once(
        &node,
        &req,
        Options {
            restart: true,
            ..Options::default()
        },
    );
    assert!(r.steps.iter().any(|s| s.name == "reboot"), "{}", r.text());
    node.with(|s| assert!(s.cts[&100].pending.is_empty()));
}

#[test]
fn tampered_node_binary_is_refused_before_any_change() {
    let node = fake_node();
    let pin = "0".repeat(64);
    let o = Layer {
        docker: Some(profile::DockerLayer {
            fuse_overlayfs: Some(profile::FuseOverlayfsLayer {
                sha256: Some(pin),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Layer::default()
    };
    let r = run_once(&node, &request("web1", "docker", o), Options::default());
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.failure.unwrap().message.contains("refusing to push"));
    assert_eq!(node.changing_calls(), Vec::<String>::new());
}

#[test]
fn a_failed_pveam_update_is_caught_although_it_exits_0() {
    let node = fake_node();
    node.with(|s| {
        s.index_updated = false;
        s.pveam_update_fails = true;
    });
    let r = run_once(
        &node,
        &request("web1", "docker", Layer::default()),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let f = r.failure.unwrap();
    assert_eq!(f.step, "update template index");
    assert!(f.message.contains("pveam update failed"), "{}", f.message);
    node.with(|s| assert!(s.cts.is_empty()));
}
