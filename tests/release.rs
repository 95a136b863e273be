//! Release awareness against the fake node: what the node's pve-container accepts decides the
//! argv and the template, and what it refuses is refused before any change.

use crate::flow::{request, run_once};
use provision::plan::Options;
use provision::profile::{Layer, RootfsLayer};
use provision::report::Outcome;
use provision::transport::fake::{FakeNode, fake_node, versions_with_container};
use std::sync::Arc;

fn node_at(container: &str) -> Arc<FakeNode> {
    let node = fake_node();
    node.with(|s| s.pveversion = Some(versions_with_container(container)));
    node
}

fn exec_calls(node: &FakeNode) -> Vec<Vec<String>> {
    node.calls()
        .into_iter()
        .filter(|c| c.argv.len() > 1 && c.argv[0] == "pct" && c.argv[1] == "exec")
        .map(|c| c.argv)
        .collect()
}

#[test]
fn keep_env_is_passed_only_where_pct_knows_it() {
    // pve-container 5.0.8 (PVE 8.1 GA) refuses `--keep-env`; 5.0.9 has it.
    for (container, has) in [("5.0.8", false), ("5.0.9", true), ("4.4-3", false)] {
        let node = node_at(container);
        let req = request("web1", "docker", Layer::default());
        let r = run_once(&node, &req, Options::default());
        assert_eq!(r.outcome, Outcome::Created, "{container}: {}", r.text());
        let execs = exec_calls(&node);
        assert!(!execs.is_empty());
        for argv in &execs {
            let keep = argv.iter().any(|a| a == "--keep-env");
            assert_eq!(keep, has, "{container}: {argv:?}");
            if !has {
                // The same clean environment without the option: env -i inside.
                let dd = argv.iter().position(|a| a == "--").unwrap();
                assert_eq!(argv[dd + 1..dd + 3], ["env", "-i"], "{argv:?}");
            }
        }
    }
}

#[test]
fn the_docker_profile_takes_the_newest_ubuntu_lts_the_node_accepts() {
    for (container, want) in [
        ("5.0.3", "ubuntu-22.04-standard_22.04-1_amd64.tar.zst"),
        ("5.1.10", "ubuntu-24.04-standard_24.04-2_amd64.tar.zst"),
        ("4.4-7", "ubuntu-24.04-standard_24.04-2_amd64.tar.zst"),
    ] {
        let node = node_at(container);
        let req = request("web1", "docker", Layer::default());
        let r = run_once(&node, &req, Options::default());
        assert_eq!(r.outcome, Outcome::Created, "{container}: {}", r.text());
        assert_eq!(
            r.steps[0].name,
            format!("download template {want}"),
            "{container}"
        );
    }
}

#[test]
fn a_template_the_node_refuses_is_refused_before_any_change() {
    let node = node_at("5.0.8");
    let overrides = Layer {
        template: Some("ubuntu-24.04".into()),
        ..Layer::default()
    };
    let req = request("web1", "docker", overrides);
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let f = r.failure.as_ref().unwrap();
    assert!(f.usage, "an input error (exit 2): {f:?}");
    assert!(
        f.message.contains("unsupported Ubuntu version '24.04'")
            && f.message.contains("pve-container 5.0.8")
            && f.message
                .contains("ubuntu-22.04-standard_22.04-1_amd64.tar.zst"),
        "{}",
        f.message
    );
    assert!(
        node.changing_calls().is_empty(),
        "{:?}",
        node.changing_calls()
    );
}

#[test]
fn the_root_disk_goes_to_the_zfspool_else_the_roomiest_rootdir_storage() {
    let node = fake_node();
    let r = run_once(
        &node,
        &request("web1", "docker", Layer::default()),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    node.with(|s| assert!(s.cts[&100].config["rootfs"].starts_with("local-zfs:")));
    assert!(r.notes.iter().any(|n| n.contains("root disk on local-zfs")));
    // An LVM install: no zfspool.
    let node = fake_node();
    node.with(|s| s.storages.retain(|(_, t, _)| t != "zfspool"));
    let r = run_once(
        &node,
        &request("web2", "docker", Layer::default()),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    node.with(|s| assert!(s.cts[&100].config["rootfs"].starts_with("local-lvm:")));
    // A storage named in the profile wins.
    let node = fake_node();
    let pinned = Layer {
        rootfs: Some(RootfsLayer {
            storage: Some("local-lvm".into()),
            size: None,
        }),
        ..Layer::default()
    };
    let r = run_once(
        &node,
        &request("web3", "docker", pinned),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    node.with(|s| assert!(s.cts[&100].config["rootfs"].starts_with("local-lvm:")));
}

#[test]
fn a_push_that_fails_with_exit_0_is_a_failure_of_its_step() {
    // With `TASK ERROR` in the output (as PVE prints it), and silently (the push wrote nothing
    // but said nothing): the output check and the in-container size/SHA-256 check catch each.
    for (task_error, dest, step) in [
        (true, "daemon.json", "write daemon.json"),
        (false, "daemon.json", "write daemon.json"),
        (true, "fuse-overlayfs", "push fuse-overlayfs"),
        (false, "fuse-overlayfs", "push fuse-overlayfs"),
    ] {
        let node = fake_node();
        node.with(|s| {
            s.push_task_fails = Some(dest.into());
            s.push_task_error = task_error;
        });
        let req = request("web1", "docker", Layer::default());
        let r = run_once(&node, &req, Options::default());
        assert_eq!(r.outcome, Outcome::Failed, "{dest}: {}", r.text());
        let f = r.failure.as_ref().unwrap();
        assert_eq!(f.step, step, "{dest} {task_error}: {}", r.text());
        let why = if task_error {
            "exited 0, but its task failed"
        } else {
            "the push did not write it"
        };
        assert!(
            f.message.contains(why),
            "{dest} {task_error}: {}",
            f.message
        );
        assert!(!r.steps.iter().any(|s| s.name == step && s.status == "done"));
        // The next run, with the push working again, completes the container.
        node.with(|s| s.push_task_fails = None);
        let r = run_once(&node, &req, Options::default());
        assert_eq!(r.outcome, Outcome::Changed, "{}", r.text());
    }
}

#[test]
fn a_fractional_disk_size_converges_in_one_run_and_stays() {
    let node = fake_node();
    let size = |gib: f64| Layer {
        rootfs: Some(RootfsLayer {
            storage: None,
            size: Some(gib),
        }),
        ..Layer::default()
    };
    let rootfs = |node: &FakeNode| node.with(|s| s.cts[&100].config["rootfs"].clone());
    let r = run_once(
        &node,
        &request("web1", "docker", size(0.3)),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    // PVE allocates int(0.3 * 1024) MiB and writes it as 307M.
    assert!(rootfs(&node).ends_with(",size=307M"), "{}", rootfs(&node));
    for _ in 0..2 {
        let r = run_once(
            &node,
            &request("web1", "docker", size(0.3)),
            Options::default(),
        );
        assert_eq!(r.outcome, Outcome::Unchanged, "{}", r.text());
    }
    // Growing to 1.5 GiB: one resize to exactly what a create would make, then no change.
    let r = run_once(
        &node,
        &request("web1", "docker", size(1.5)),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Changed, "{}", r.text());
    assert!(rootfs(&node).ends_with(",size=1536M"), "{}", rootfs(&node));
    let r = run_once(
        &node,
        &request("web1", "docker", size(1.5)),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Unchanged, "{}", r.text());
}

#[test]
fn a_resize_whose_task_fails_with_exit_0_is_a_failure() {
    let node = fake_node();
    let small = Layer {
        rootfs: Some(RootfsLayer {
            storage: None,
            size: Some(4.0),
        }),
        ..Layer::default()
    };
    let r = run_once(&node, &request("web1", "docker", small), Options::default());
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    node.with(|s| s.resize_task_fails = true);
    let r = run_once(
        &node,
        &request("web1", "docker", Layer::default()),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let f = r.failure.as_ref().unwrap();
    assert_eq!(f.step, "resize rootfs");
    assert!(f.message.contains("still 4G (wanted 8G)"), "{}", f.message);
}
