//! Mount points against the fake node: create with volumes and bind mounts, stable `mpN`
//! numbering, hot-add of a new mount point, pending changes, nothing detached or deleted when
//! the profile drops one, and refusals before any change.

use crate::flow::{request, run_once};
use crate::support::fake::{fake_node, versions_with_container};
use provision::profile::Layer;
use provision::report::Outcome;
use provision::request::Options;

fn layer(toml_text: &str) -> Layer {
    toml::from_str(toml_text).expect("layer parses")
}

const DATA: &str = r#"
[[mounts]]
path = "/data"
storage = "local-lvm"
size = 8
backup = true

[[mounts]]
path = "/media"
host = "/tank/media"
create = true
owner = { uid = 1000, gid = 1000 }
ro = true
"#;

#[test]
fn create_adds_volumes_and_bind_mounts_and_owns_the_node_directory() {
    let node = fake_node();
    let req = request("jelly", "docker", layer(DATA));
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
    let dir = names
        .iter()
        .position(|n| *n == "bind mount source /tank/media");
    let create = names.iter().position(|n| *n == "create");
    assert!(dir.is_some() && dir < create, "{names:?}");
    assert!(r.text().contains("ownership shifted"), "{}", r.text());
    node.with(|s| {
        let ct = &s.cts[&100];
        assert_eq!(
            ct.config["mp0"],
            "local-lvm:vm-100-disk-1,mp=/data,backup=1,size=8G"
        );
        assert_eq!(ct.config["mp1"], "/tank/media,mp=/media,ro=1");
        assert_eq!(s.node_dirs["/tank/media"], "101000:101000");
    });
    node.clear_calls();
    let again = run_once(&node, &req, Options::default());
    assert_eq!(again.outcome, Outcome::Unchanged, "{}", again.text());
    assert!(
        node.changing_calls().is_empty(),
        "{:?}",
        node.changing_calls()
    );
}

#[test]
fn a_new_mount_is_hot_added_with_the_next_free_number_and_a_change_stays_pending() {
    let node = fake_node();
    let req = request("jelly", "docker", layer(DATA));
    assert_eq!(
        run_once(&node, &req, Options::default()).outcome,
        Outcome::Created
    );
    // An admin's own mount point takes mp2: the tool must skip it and never renumber.
    node.with(|s| {
        let ct = s.cts.get_mut(&100).unwrap();
        ct.config
            .insert("mp2".into(), "/srv/admin,mp=/admin".into());
    });
    let more = DATA.replace("ro = true", "ro = false")
        + "\n[[mounts]]\npath = \"/cache\"\nstorage = \"local-zfs\"\nsize = 2\n";
    let req = request("jelly", "docker", layer(&more));
    node.clear_calls();
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Changed, "{}", r.text());
    node.with(|s| {
        let ct = &s.cts[&100];
        // Hot-added at once (the container runs), with the lowest free number.
        assert!(
            ct.config["mp3"].starts_with("local-zfs:vm-100-disk-"),
            "{:?}",
            ct.config
        );
        assert!(!ct.pending.contains_key("mp3"));
        // The changed bind mount waits for a restart, as PVE keeps it.
        assert_eq!(ct.pending["mp1"], "/tank/media,mp=/media,ro=0");
        assert_eq!(ct.config["mp2"], "/srv/admin,mp=/admin");
    });
    assert!(r.pending.contains(&"mp1".to_string()), "{:?}", r.pending);
    let text = r.text();
    assert!(
        text.contains("mp2 (/srv/admin at /admin) is not in the profile: it stays"),
        "{text}"
    );
    assert!(
        !node.changing_calls().iter().any(|c| c.contains("--delete")),
        "{:?}",
        node.changing_calls()
    );
}

#[test]
fn a_dropped_mount_stays_with_its_volume() {
    let node = fake_node();
    assert_eq!(
        run_once(
            &node,
            &request("jelly", "docker", layer(DATA)),
            Options::default()
        )
        .outcome,
        Outcome::Created
    );
    node.clear_calls();
    let r = run_once(
        &node,
        &request("jelly", "docker", Layer::default()),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Unchanged, "{}", r.text());
    assert!(
        node.changing_calls().is_empty(),
        "{:?}",
        node.changing_calls()
    );
    assert!(
        r.text()
            .contains("mp0 (local-lvm:vm-100-disk-1 at /data) is not in the profile: it stays"),
        "{}",
        r.text()
    );
    node.with(|s| assert!(s.cts[&100].config.contains_key("mp0")));
}

#[test]
fn idmap_on_a_release_without_it_is_refused_before_any_change() {
    let node = fake_node();
    node.with(|s| s.pveversion = Some(versions_with_container("5.2.6")));
    let t = DATA.replace("ro = true", "ro = true\nownership = \"idmap\"");
    let r = run_once(
        &node,
        &request("jelly", "docker", layer(&t)),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    assert!(r.text().contains("mounts[1].ownership"), "{}", r.text());
    assert!(r.text().contains("6.1.6"), "{}", r.text());
    assert!(
        node.changing_calls().is_empty(),
        "{:?}",
        node.changing_calls()
    );
}

#[test]
fn idmap_where_the_release_has_it_keeps_node_ids() {
    let node = fake_node();
    node.with(|s| s.pveversion = Some(versions_with_container("6.1.6")));
    let t = DATA.replace("ro = true", "ro = true\nownership = \"idmap\"");
    let r = run_once(
        &node,
        &request("jelly", "docker", layer(&t)),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    node.with(|s| {
        assert_eq!(
            s.cts[&100].config["mp1"],
            "/tank/media,mp=/media,idmap=u:1000:1000:1;g:1000:1000:1,ro=1"
        );
        assert_eq!(s.node_dirs["/tank/media"], "1000:1000");
    });
}

#[test]
fn a_missing_storage_is_refused_before_any_change() {
    let node = fake_node();
    let t = DATA.replace("\"local-lvm\"", "\"tank-nvme\"");
    let r = run_once(
        &node,
        &request("jelly", "docker", layer(&t)),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    assert!(r.text().contains("mounts[0].storage"), "{}", r.text());
    assert!(
        node.changing_calls().is_empty(),
        "{:?}",
        node.changing_calls()
    );
}

fn destroy(node: &std::sync::Arc<crate::support::fake::FakeNode>, delete_volumes: bool) -> u8 {
    destroy_moving(node, delete_volumes, None)
}

fn destroy_moving(
    node: &std::sync::Arc<crate::support::fake::FakeNode>,
    delete_volumes: bool,
    move_volumes_to: Option<u32>,
) -> u8 {
    use provision::cli::{DestroyArgs, FileArgs, GlobalArgs, OutputFormat};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.toml");
    std::fs::write(
        &path,
        "[[container]]\nname = \"jelly\"\nprofile = \"docker\"\n",
    )
    .unwrap();
    let t: std::sync::Arc<dyn provision::transport::Transport> = node.clone();
    let a = DestroyArgs {
        file: FileArgs {
            file: path,
            only: Vec::new(),
        },
        force: false,
        delete_volumes,
        move_volumes_to,
    };
    let g = GlobalArgs {
        quiet: true,
        yes: true,
        output: OutputFormat::Json,
        ..GlobalArgs::default()
    };
    provision::commands::destroy::run_with(
        &a,
        &g,
        &|_| Ok(t.clone()),
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap()
}

#[test]
fn destroy_refuses_a_container_with_data_volumes_unless_asked() {
    let node = fake_node();
    let req = request("jelly", "docker", layer(DATA));
    assert_eq!(
        run_once(&node, &req, Options::default()).outcome,
        Outcome::Created
    );
    node.clear_calls();
    assert_eq!(destroy(&node, false), 1);
    assert!(
        node.changing_calls().is_empty(),
        "{:?}",
        node.changing_calls()
    );
    node.with(|s| assert!(s.cts.contains_key(&100)));
    assert_eq!(destroy(&node, true), 0);
    node.with(|s| {
        assert!(!s.cts.contains_key(&100));
        // The bind-mounted node directory is untouched.
        assert_eq!(s.node_dirs["/tank/media"], "101000:101000");
    });
}

#[test]
fn destroy_lists_what_goes_with_sizes_and_what_stays() {
    use provision::facts::CtConfig;
    use provision::plan::{ct_volumes, destroy_volumes_verdict};
    let mut cfg = CtConfig::default();
    cfg.current
        .insert("rootfs".into(), "local-lvm:vm-100-disk-0,size=8G".into());
    cfg.current.insert(
        "mp0".into(),
        "local-lvm:vm-100-disk-1,mp=/data,size=16G".into(),
    );
    cfg.current
        .insert("mp1".into(), "/tank/media,mp=/media".into());
    cfg.current
        .insert("unused0".into(), "local-zfs:subvol-100-disk-2".into());
    let vols = ct_volumes(&cfg);
    let keys: Vec<&str> = vols.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["rootfs", "mp0", "mp1", "unused0"]);
    let refused = destroy_volumes_verdict(&vols, false).unwrap_err();
    assert!(
        refused.contains("mp0 local-lvm:vm-100-disk-1 (16G), unused0 local-zfs:subvol-100-disk-2"),
        "{refused}"
    );
    assert!(
        refused.contains("never touched: /tank/media (mp1)"),
        "{refused}"
    );
    let ok = destroy_volumes_verdict(&vols, true).unwrap();
    assert!(
        ok.starts_with("deletes rootfs local-lvm:vm-100-disk-0 (8G), mp0"),
        "{ok}"
    );
    // Only a root disk: nothing to ask.
    let root_only = &vols[..1];
    assert!(destroy_volumes_verdict(root_only, false).is_ok());
}

#[test]
fn docker_data_on_its_own_volume_decides_the_storage_driver() {
    // Root disk on lvmthin (overlay2 would do), Docker's data on ZFS 2.1: fuse-overlayfs.
    let node = fake_node();
    node.with(|s| s.zfs_version = Some("2.1.15-pve1".into()));
    let t = "[rootfs]\nstorage = \"local-lvm\"\n[docker]\nstorage_driver = \"auto\"\ndata = { storage = \"local-zfs\", size = 32 }\n";
    let r = run_once(
        &node,
        &request("dock", "docker", layer(t)),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    assert_eq!(r.driver.as_deref(), Some("fuse-overlayfs"), "{}", r.text());
    assert!(
        r.driver_reason.contains("own volume on local-zfs"),
        "{}",
        r.driver_reason
    );
    node.with(|s| {
        assert_eq!(
            s.cts[&100].config["mp0"],
            "local-zfs:vm-100-disk-1,mp=/var/lib/docker,size=32G"
        );
    });
    // The other way round: root disk on ZFS 2.1, Docker's data on lvmthin: overlay2.
    let node = fake_node();
    node.with(|s| s.zfs_version = Some("2.1.15-pve1".into()));
    let t = "[rootfs]\nstorage = \"local-zfs\"\n[docker]\nstorage_driver = \"auto\"\ndata = { storage = \"local-lvm\", size = 32 }\n";
    let r = run_once(
        &node,
        &request("dock", "docker", layer(t)),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    assert_eq!(r.driver.as_deref(), Some("overlay2"), "{}", r.text());
}

#[test]
fn docker_data_is_never_mounted_over_an_existing_containers_docker() {
    let node = fake_node();
    assert_eq!(
        run_once(
            &node,
            &request("dock", "docker", Layer::default()),
            Options::default()
        )
        .outcome,
        Outcome::Created
    );
    node.clear_calls();
    let t = "[docker]\ndata = { storage = \"local-lvm\", size = 32 }\n";
    let r = run_once(
        &node,
        &request("dock", "docker", layer(t)),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    assert!(
        r.text().contains("would hide the Docker data"),
        "{}",
        r.text()
    );
    assert!(
        node.changing_calls().is_empty(),
        "{:?}",
        node.changing_calls()
    );
}

const GPU: &str = r#"
[[devices]]
path = "/dev/dri/renderD128"
gid = 104
mode = "0660"
"#;

#[test]
fn a_device_is_created_with_the_container_and_re_runs_change_nothing() {
    let node = fake_node();
    let req = request("gpu", "docker", layer(GPU));
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    node.with(|s| {
        assert_eq!(
            s.cts[&100].config["dev0"],
            "/dev/dri/renderD128,gid=104,mode=0660"
        );
    });
    node.clear_calls();
    assert_eq!(
        run_once(&node, &req, Options::default()).outcome,
        Outcome::Unchanged
    );
    assert!(
        node.changing_calls().is_empty(),
        "{:?}",
        node.changing_calls()
    );
}

#[test]
fn a_new_device_is_hot_added_from_6_0_4_and_pending_before() {
    for (container, hot) in [("6.0.4", true), ("5.2.6", false)] {
        let node = fake_node();
        node.with(|s| s.pveversion = Some(versions_with_container(container)));
        let plain = request("gpu", "docker", Layer::default());
        assert_eq!(
            run_once(&node, &plain, Options::default()).outcome,
            Outcome::Created
        );
        let r = run_once(
            &node,
            &request("gpu", "docker", layer(GPU)),
            Options::default(),
        );
        assert_eq!(r.outcome, Outcome::Changed, "{}", r.text());
        node.with(|s| {
            let ct = &s.cts[&100];
            assert_eq!(
                ct.config.contains_key("dev0"),
                hot,
                "{container}: {:?}",
                ct.config
            );
            assert_eq!(ct.pending.contains_key("dev0"), !hot, "{container}");
        });
        assert_eq!(
            r.pending.contains(&"dev0".to_string()),
            !hot,
            "{container}: {}",
            r.text()
        );
    }
}

const RAW_DEV: &str = r#"
[[devices]]
path = "/dev/dri/renderD128"
"#;

fn raw_lines() -> Vec<(String, String)> {
    vec![
        (
            "lxc.cgroup2.devices.allow".to_string(),
            "c 226:128 rwm".to_string(),
        ),
        (
            "lxc.mount.entry".to_string(),
            "/dev/dri/renderD128 dev/dri/renderD128 none bind,optional,create=file".to_string(),
        ),
    ]
}

#[test]
fn devices_without_dev_n_are_written_as_raw_lxc_lines_before_the_first_start() {
    let node = fake_node();
    node.with(|s| s.pveversion = Some(versions_with_container("5.0.6")));
    let req = request("gpu", "docker", layer(RAW_DEV));
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    node.with(|s| {
        let ct = &s.cts[&100];
        assert_eq!(ct.raw, raw_lines());
        assert_eq!(
            ct.raw_started,
            raw_lines(),
            "written before the first start"
        );
        assert!(!ct.config.keys().any(|k| k.starts_with("dev")));
    });
    node.clear_calls();
    let again = run_once(&node, &req, Options::default());
    assert_eq!(again.outcome, Outcome::Unchanged, "{}", again.text());
    assert!(
        node.changing_calls().is_empty(),
        "{:?}",
        node.changing_calls()
    );
}

#[test]
fn raw_lxc_lines_on_a_running_container_are_pending_and_restart_applies_them() {
    for restart in [false, true] {
        let node = fake_node();
        node.with(|s| s.pveversion = Some(versions_with_container("5.0.6")));
        let plain = request("gpu", "docker", Layer::default());
        assert_eq!(
            run_once(&node, &plain, Options::default()).outcome,
            Outcome::Created
        );
        let req = request("gpu", "docker", layer(RAW_DEV));
        let opts = Options {
            restart,
            ..Options::default()
        };
        let r = run_once(&node, &req, opts);
        assert_eq!(r.outcome, Outcome::Changed, "{}", r.text());
        assert_eq!(
            r.pending.contains(&"lxc.cgroup2.devices.allow".to_string()),
            !restart,
            "{}",
            r.text()
        );
        node.with(|s| {
            assert_eq!(s.cts[&100].raw, raw_lines());
            let started = if restart { raw_lines() } else { Vec::new() };
            assert_eq!(s.cts[&100].raw_started, started, "restart {restart}");
        });
    }
}

#[test]
fn hostile_or_unusable_devices_without_dev_n_are_refused_before_any_change() {
    let cases: [(&str, (&str, &str, &str), &str); 7] = [
        (RAW_DEV, ("c", "zz", "80"), "major"),
        (RAW_DEV, ("c", "1000", "0"), "out of"),
        (
            RAW_DEV,
            ("c", "e2", "80 rwm\nlxc.apparmor.profile: unconfined"),
            "not read",
        ),
        (RAW_DEV, ("other", "-", "-"), "not a device node"),
        (RAW_DEV, ("missing", "-", "-"), "not a device node"),
        (GPU, ("c", "e2", "80"), "cannot set uid, gid, mode"),
        (
            "gpu = \"intel\"\n",
            ("c", "e2", "80"),
            "gpu shortcut needs devN",
        ),
    ];
    for (profile, printed, want) in cases {
        let node = fake_node();
        node.with(|s| {
            s.pveversion = Some(versions_with_container("5.0.6"));
            s.dev_nodes.insert(
                "/dev/dri/renderD128".into(),
                (printed.0.into(), printed.1.into(), printed.2.into()),
            );
        });
        let r = run_once(
            &node,
            &request("gpu", "docker", layer(profile)),
            Options::default(),
        );
        assert_eq!(r.outcome, Outcome::Failed, "{printed:?}: {}", r.text());
        assert!(r.text().contains(want), "{printed:?}: {}", r.text());
        assert!(
            node.changing_calls().is_empty(),
            "{printed:?}: {:?}",
            node.changing_calls()
        );
    }
}

#[test]
fn gpu_passes_the_render_node_with_the_containers_own_render_group() {
    let node = fake_node();
    let req = request("jelly", "docker", layer("gpu = \"intel\"\n"));
    let r = run_once(&node, &req, Options::default());
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    node.with(|s| {
        assert_eq!(
            s.cts[&100].config["dev0"],
            "/dev/dri/renderD128,gid=993,mode=0660"
        );
    });
    node.clear_calls();
    let again = run_once(&node, &req, Options::default());
    assert_eq!(again.outcome, Outcome::Unchanged, "{}", again.text());
    assert!(
        node.changing_calls().is_empty(),
        "{:?}",
        node.changing_calls()
    );
}

#[test]
fn gpu_before_device_hotplug_is_pending_and_without_a_render_group_is_refused() {
    let node = fake_node();
    node.with(|s| s.pveversion = Some(versions_with_container("5.2.6")));
    let r = run_once(
        &node,
        &request("jelly", "docker", layer("gpu = \"amd\"\n")),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Created, "{}", r.text());
    assert_eq!(r.pending, ["dev0"], "{}", r.text());
    node.with(|s| assert!(s.cts[&100].pending.contains_key("dev0")));

    let node = fake_node();
    let plain = request("bare", "docker", Layer::default());
    assert_eq!(
        run_once(&node, &plain, Options::default()).outcome,
        Outcome::Created
    );
    node.with(|s| s.cts.get_mut(&100).unwrap().no_render_group = true);
    node.clear_calls();
    let r = run_once(
        &node,
        &request("bare", "docker", layer("gpu = \"intel\"\n")),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text());
    assert!(r.text().contains("no `render` group"), "{}", r.text());
    assert!(
        !node.changing_calls().iter().any(|c| c.contains("--dev")),
        "{:?}",
        node.changing_calls()
    );
}

#[test]
fn profiles_show_leaves_out_the_mount_docker_data_makes() {
    let p = provision::profile::load(
        "docker",
        &layer("[docker]\ndata = { storage = \"local-lvm\", size = 8 }\n"),
    )
    .unwrap();
    assert_eq!(p.mounts.len(), 1);
    let shown = p.to_toml();
    assert!(!shown.contains("[[mounts]]"), "{shown}");
    let again: Layer = toml::from_str(&shown).unwrap();
    assert!(provision::profile::load("docker", &again).is_ok());
}

/// The rebuild that keeps data: `destroy --move-volumes-to NEW` hands the data volume to the
/// new container with `pct move-volume` (stopped first, as PVE requires), leaves the bind
/// mount's node directory alone, and destroys the old container with its root disk only.
#[test]
fn destroy_hands_the_data_volume_to_the_new_container_then_destroys_the_old_one() {
    let node = fake_node();
    let old = request("jelly", "docker", layer(DATA));
    assert_eq!(
        run_once(&node, &old, Options::default()).outcome,
        Outcome::Created
    );
    let new = request("jelly2", "docker", layer(""));
    assert_eq!(
        run_once(&node, &new, Options::default()).outcome,
        Outcome::Created
    );
    node.clear_calls();
    assert_eq!(destroy_moving(&node, false, Some(101)), 0);
    let calls: Vec<String> = node.changing_calls();
    let stop = calls.iter().position(|c| c == "pct stop 100");
    let mv = calls
        .iter()
        .position(|c| c == "pct move-volume 100 mp0 --target-vmid 101 --target-volume mp0");
    assert!(stop.is_some() && stop < mv, "{calls:#?}");
    assert_eq!(
        calls.iter().filter(|c| c.contains("move-volume")).count(),
        1,
        "the bind mount is never moved: {calls:#?}"
    );
    node.with(|s| {
        assert!(!s.cts.contains_key(&100));
        assert_eq!(
            s.cts[&101].config["mp0"],
            "local-lvm:vm-101-disk-1,mp=/data,backup=1,size=8G"
        );
        assert_eq!(s.node_dirs["/tank/media"], "101000:101000");
    });
}

#[test]
fn moving_volumes_is_refused_before_any_change_when_it_cannot_keep_them_all() {
    let node = fake_node();
    let old = request("jelly", "docker", layer(DATA));
    assert_eq!(
        run_once(&node, &old, Options::default()).outcome,
        Outcome::Created
    );
    // The new container already mounts /data: the old /data volume cannot go there.
    let clash = "[[mounts]]\npath = \"/data\"\nstorage = \"local-lvm\"\nsize = 1\n";
    let new = request("jelly2", "docker", layer(clash));
    assert_eq!(
        run_once(&node, &new, Options::default()).outcome,
        Outcome::Created
    );
    node.clear_calls();
    for to in [Some(100), Some(555), Some(101)] {
        assert_eq!(
            destroy_moving(&node, false, to),
            1,
            "--move-volumes-to {to:?}"
        );
        assert!(
            node.changing_calls().is_empty(),
            "{to:?}: {:?}",
            node.changing_calls()
        );
    }
    node.with(|s| assert!(s.cts.contains_key(&100)));
}

/// `pct move-volume --target-vmid` came with pve-container 4.1-2 (PVE 7.1): on an older node
/// the tool refuses before it stops the old container, instead of stopping it and then
/// learning from the node's refusal.
#[test]
fn moving_volumes_needs_a_node_with_move_volume_to_another_container() {
    let node = fake_node();
    let old = request("jelly", "docker", layer(DATA));
    assert_eq!(
        run_once(&node, &old, Options::default()).outcome,
        Outcome::Created
    );
    let new = request("jelly2", "docker", layer(""));
    assert_eq!(
        run_once(&node, &new, Options::default()).outcome,
        Outcome::Created
    );
    node.with(|s| {
        s.pveversion = Some(versions_with_container("4.0-9"));
    });
    node.clear_calls();
    assert_eq!(destroy_moving(&node, false, Some(101)), 1);
    assert!(
        node.changing_calls().is_empty(),
        "{:?}",
        node.changing_calls()
    );
    node.with(|s| assert!(s.cts.contains_key(&100)));
    node.with(|s| {
        s.pveversion = Some(versions_with_container("4.1-2"));
    });
    assert_eq!(destroy_moving(&node, false, Some(101)), 0);
    node.with(|s| assert!(!s.cts.contains_key(&100)));
}

#[test]
fn plan_moves_keeps_numbers_paths_and_unused_slots() {
    use provision::facts::CtConfig;
    use provision::plan::plan_moves;
    let cfg = |pairs: &[(&str, &str)]| CtConfig {
        current: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..CtConfig::default()
    };
    let src = cfg(&[
        ("rootfs", "local-lvm:vm-100-disk-0,size=8G"),
        ("mp0", "local-lvm:vm-100-disk-1,mp=/data,size=16G"),
        ("mp1", "local-lvm:vm-100-disk-2,mp=/var/lib/docker,size=32G"),
        ("mp2", "/tank/media,mp=/media"),
        ("unused0", "local-lvm:vm-100-disk-3"),
    ]);
    let dst = cfg(&[
        ("rootfs", "local-lvm:vm-101-disk-0,size=8G"),
        ("mp0", "local-lvm:vm-101-disk-1,mp=/var/lib/docker,size=32G"),
        ("unused0", "local-lvm:vm-101-disk-2"),
    ]);
    let (moves, stay) = plan_moves(&src, 100, 101, &dst).unwrap();
    let got: Vec<(&str, &str)> = moves
        .iter()
        .map(|m| (m.key.as_str(), m.target_key.as_str()))
        .collect();
    // mp0 is taken there: the lowest free number; unusedN stays unused.
    assert_eq!(got, [("mp0", "mp1"), ("unused0", "unused1")]);
    let kept: Vec<&str> = stay.iter().map(|v| v.key.as_str()).collect();
    // The root disk goes with the container; /var/lib/docker is already mounted there; the
    // bind mount is never moved.
    assert_eq!(kept, ["rootfs", "mp1", "mp2"]);
    assert!(plan_moves(&src, 100, 100, &dst).is_err());
}
