//! Release awareness against the fake node: what the node's pve-container accepts decides the
//! argv and the template, and what it refuses is refused before any change.

use crate::flow::{request, run_once};
use crate::support::fake::{FakeNode, fake_node, versions_with_container};
use provision::profile::{Layer, RootfsLayer};
use provision::report::Outcome;
use provision::request::Options;
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
        assert!(
            !r.steps
                .iter()
                .any(|s| s.name == step && s.status == provision::report::StepStatus::Done)
        );
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

#[test]
fn values_pct_accepts_are_accepted_as_pct_stores_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    let key = "from=\"10.0.0.0/8\",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPa/oTsJUg7XJyJvZNihU3R/KM5fBM9qNjI8poTTb80t me@laptop";
    std::fs::write(
        &path,
        format!(
            "extends = \"docker\"\nunprivileged = false\ntags = [\"Docker\", \"CI\"]\n\
             description = \"line one\\nline two\"\nsearchdomain = \"lab.example corp.example\"\n\
             timezone = \"UTC\"\nssh_public_keys = [{key:?}]\n[features]\nkeyctl = true\n"
        ),
    )
    .unwrap();
    let p = provision::profile::load(path.to_str().unwrap(), &Layer::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.tags, ["ci", "docker"]);
    assert_eq!(p.description, "line one\nline two");
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("keyctl has no effect"))
    );
    // And the create takes them as PVE would.
    let node = fake_node();
    let r = run_once(
        &node,
        &provision::request::Request {
            hostname: "web1".into(),
            vmid: None,
            profile: p,
        },
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    node.with(|s| assert_eq!(s.cts[&100].config["tags"], "ci;docker;provision"));
}

#[test]
fn a_privileged_container_is_never_converged_under_an_unprivileged_profile() {
    let node = fake_node();
    let privileged = Layer {
        unprivileged: Some(false),
        ..Layer::default()
    };
    let r = run_once(
        &node,
        &request("web1", "docker", privileged),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    // PVE writes no `unprivileged` key for it.
    node.with(|s| assert!(!s.cts[&100].config.contains_key("unprivileged")));
    node.clear_calls();
    let r = run_once(
        &node,
        &request("web1", "docker", Layer::default()),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let msg = &r.failure.as_ref().unwrap().message;
    assert!(
        msg.contains("is privileged but the profile wants it unprivileged"),
        "{msg}"
    );
    assert!(node.changing_calls().is_empty());
}

#[test]
fn adopting_keeps_the_containers_own_description() {
    let node = fake_node();
    node.with(|s| {
        let mut ct = crate::support::fake::FakeCt {
            os: ("debian".into(), "12".into()),
            fuse_usable: true,
            ..Default::default()
        };
        for (k, v) in [
            ("hostname", "legacy"),
            ("unprivileged", "1"),
            ("rootfs", "local-zfs:vm-100-disk-0,size=8G"),
            ("description", "Owned by the web team\nticket 42"),
            ("features", "fuse=1,keyctl=1,mknod=1,nesting=1"),
        ] {
            ct.config.insert(k.into(), v.into());
        }
        s.cts.insert(100, ct);
    });
    let opts = || Options {
        adopt: true,
        ..Options::default()
    };
    let r = run_once(
        &node,
        &request("legacy", "docker", Layer::default()),
        opts(),
    );
    assert!(!r.outcome.failed(), "{}", r.text());
    let desc = node.with(|s| s.cts[&100].config["description"].clone());
    assert_eq!(
        desc,
        format!(
            "Owned by the web team\nticket 42\n{}",
            provision::plan::ADOPTED_MARKER
        )
    );
    // Later runs keep it.
    let r = run_once(
        &node,
        &request("legacy", "docker", Layer::default()),
        opts(),
    );
    assert!(!r.outcome.failed(), "{}", r.text());
    assert_eq!(
        node.with(|s| s.cts[&100].config["description"].clone()),
        desc
    );
}

#[test]
fn an_mtu_above_the_bridges_is_refused_before_any_change() {
    use provision::profile::NetworkLayer;
    let net = |mtu: i64| Layer {
        network: Some(NetworkLayer {
            mtu: Some(mtu),
            ..NetworkLayer::default()
        }),
        ..Layer::default()
    };
    let node = fake_node();
    node.with(|s| {
        s.bridges.insert("vmbr0".into(), 1500);
    });
    let r = run_once(
        &node,
        &request("web1", "docker", net(9000)),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    let f = r.failure.as_ref().unwrap();
    assert!(f.usage, "{f:?}");
    assert!(
        f.message
            .contains("MTU size '9000' is bigger than bridge MTU '1500'"),
        "{}",
        f.message
    );
    assert!(node.changing_calls().is_empty());
    // At the bridge's MTU it is fine, and the bridge is read once per run.
    let r = run_once(
        &node,
        &request("web1", "docker", net(1500)),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    let reads = node
        .calls()
        .iter()
        .filter(|c| c.argv.join(" ") == "cat /sys/class/net/vmbr0/mtu")
        .count();
    assert_eq!(reads, 2, "one read per run (two runs)");
}
