//! The planner's unit tests.

use super::*;
use crate::profile::{EMBEDDED, parse_layer, resolve};

fn docker_profile() -> Profile {
    let (l, i) = parse_layer("docker.toml", EMBEDDED[0].1).unwrap();
    resolve("docker", &[(l, i)], None).unwrap()
}

#[test]
fn newest_template_wins_by_version_not_by_text() {
    let names = [
        "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        "ubuntu-24.04-standard_24.04-10_amd64.tar.zst",
        "ubuntu-22.04-standard_22.04-1_amd64.tar.zst",
        "debian-12-standard_12.7-1_amd64.tar.zst",
    ];
    assert_eq!(
        newest_match("ubuntu-24.04", names).unwrap(),
        "ubuntu-24.04-standard_24.04-10_amd64.tar.zst"
    );
    assert_eq!(
        newest_match("debian-12", names).unwrap(),
        "debian-12-standard_12.7-1_amd64.tar.zst"
    );
    assert!(newest_match("debian-13", names).is_none());
}

#[test]
fn driver_decision_cases() {
    let c = |t: Option<&str>, z: Option<&str>| decide_driver(t, z).0;
    assert_eq!(
        c(Some("zfspool"), Some("2.1.15-pve1")),
        Driver::FuseOverlayfs
    );
    assert_eq!(c(Some("zfspool"), Some("2.2.7-pve1")), Driver::Overlay2);
    assert_eq!(c(Some("zfspool"), Some("2.3.0")), Driver::Overlay2);
    assert_eq!(c(Some("zfspool"), None), Driver::FuseOverlayfs);
    assert_eq!(c(Some("dir"), None), Driver::Overlay2);
    assert_eq!(c(Some("lvmthin"), Some("2.1.0")), Driver::Overlay2);
    assert_eq!(c(None, None), Driver::Overlay2);
    assert!(
        decide_driver(Some("zfspool"), Some("2.1.15-pve1"))
            .1
            .contains("older than 2.2")
    );
}

#[test]
fn daemon_json_merge_keeps_user_keys_and_is_idempotent() {
    let user = r#"{"log-driver": "journald", "features": {"buildkit": true}}"#;
    let (text, why) = merge_daemon_json(Some(user), Driver::FuseOverlayfs, false)
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["log-driver"], "journald");
    assert_eq!(v["features"]["buildkit"], true);
    assert_eq!(v["features"]["containerd-snapshotter"], false);
    assert_eq!(v["storage-driver"], "fuse-overlayfs");
    assert_eq!(why.len(), 2);
    // User key order is kept.
    assert!(text.find("log-driver").unwrap() < text.find("storage-driver").unwrap());
    assert_eq!(
        merge_daemon_json(Some(&text), Driver::FuseOverlayfs, false).unwrap(),
        None
    );
}

#[test]
fn invalid_daemon_json_is_refused_unless_forced() {
    let e = merge_daemon_json(Some("{\"a\": 1,"), Driver::Overlay2, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not valid JSON") && e.contains("--force"), "{e}");
    assert!(merge_daemon_json(Some("[1]"), Driver::Overlay2, false).is_err());
    let (t, _) = merge_daemon_json(Some("{\"a\": 1,"), Driver::Overlay2, true)
        .unwrap()
        .unwrap();
    assert!(t.contains("overlay2"));
    // No file: written.
    assert!(
        merge_daemon_json(None, Driver::Overlay2, false)
            .unwrap()
            .is_some()
    );
}

#[test]
fn create_command_is_what_pve_accepts() {
    let mut p = docker_profile();
    // plan_node pins `rootfs.storage = "auto"` before the create options are made.
    p.rootfs.storage = "local-zfs".into();
    let step = Step::Create {
        fixed_vmid: None,
        template: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst".into(),
        options: create_options(&p, "web1", false),
        ssh_keys: None,
    };
    let acts = step.actions(105);
    let Action::Node(c) = &acts[0] else { panic!() };
    assert_eq!(
        c.argv(),
        [
            "pct",
            "create",
            "105",
            "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
            "--hostname",
            "web1",
            "--unprivileged",
            "1",
            "--features",
            "fuse=1,keyctl=1,mknod=1,nesting=1",
            "--rootfs",
            "local-zfs:8",
            "--net0",
            "name=eth0,bridge=vmbr0,ip=dhcp,type=veth",
            "--cores",
            "2",
            "--memory",
            "2048",
            "--swap",
            "512",
            "--onboot",
            "0",
            "--tags",
            "docker;provision",
            "--description",
            "Docker-ready unprivileged Ubuntu LTS container (the newest the node accepts), Docker on fuse-overlayfs (seed recipe, ZFS < 2.2 nodes) (managed by provision)",
        ]
    );
}

#[test]
fn ssh_keys_go_through_a_node_file_that_is_removed() {
    let mut p = docker_profile();
    p.ssh_public_keys = vec!["ssh-ed25519 AAAA me".into()];
    let keys = Some("ssh-ed25519 AAAA me\n".to_string());
    let step = Step::Create {
        fixed_vmid: None,
        template: "t".into(),
        options: create_options(&p, "h", true),
        ssh_keys: keys,
    };
    let acts = step.actions(101);
    assert!(
        matches!(&acts[0], Action::PutNode { dest, .. } if dest == "/run/provision/ssh-keys-101")
    );
    let Action::Node(c) = &acts[1] else { panic!() };
    let argv = c.argv();
    let i = argv.iter().position(|a| a == "--ssh-public-keys").unwrap();
    assert_eq!(argv[i + 1], "/run/provision/ssh-keys-101");
    assert!(matches!(&acts[2], Action::Node(c) if c.argv()[0] == "rm"));
}

#[test]
fn net0_with_static_vlan_firewall() {
    let mut p = docker_profile();
    p.network.ip = "10.1.2.3/24".into();
    p.network.gateway = Some("10.1.2.1".into());
    p.network.vlan = Some(20);
    p.network.firewall = true;
    assert_eq!(
        net0_string(&p, Some("BC:24:11:00:00:01")),
        "name=eth0,bridge=vmbr0,firewall=1,gw=10.1.2.1,hwaddr=BC:24:11:00:00:01,ip=10.1.2.3/24,tag=20,type=veth"
    );
}

#[test]
fn config_comparison_ignores_pve_normalisation() {
    assert!(differs("tags", "docker;provision", Some("provision;docker")).is_none());
    assert!(differs("features", "fuse=1,nesting=1", Some("nesting=1,fuse=1")).is_none());
    assert!(
        differs(
            "net0",
            "name=eth0,bridge=vmbr0,ip=dhcp,type=veth",
            Some("name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth")
        )
        .is_none()
    );
    assert!(
        differs(
            "net0",
            "name=eth0,bridge=vmbr1,ip=dhcp,type=veth",
            Some("name=eth0,bridge=vmbr0,ip=dhcp,type=veth")
        )
        .is_some()
    );
    assert!(differs("onboot", "0", None).is_none());
    assert!(
        differs("memory", "2048", Some("1024"))
            .unwrap()
            .contains("1024 -> 2048")
    );
}

#[test]
fn after_index_update_the_index_names_the_template_and_the_guess_is_dropped() {
    let p = docker_profile();
    let guess = Step::DownloadTemplate {
        storage: "local".into(),
        name: "ubuntu-22.04-guess.tar.zst".into(),
    };
    let create = Step::Create {
        fixed_vmid: None,
        template: "local:vztmpl/ubuntu-22.04-guess.tar.zst".into(),
        options: vec![],
        ssh_keys: None,
    };
    let tf = TemplateFacts {
        present: vec![],
        available: vec![
            "ubuntu-22.04-standard_22.04-1_amd64.tar.zst".into(),
            "ubuntu-24.04-standard_24.04-2_amd64.tar.zst".into(),
        ],
    };
    // A PVE 8.0 node (pve-container 5.0.3): `ubuntu-lts` is 22.04 there.
    let caps = Caps::from_versions(&crate::release::PveVersions {
        container: crate::release::Version::parse("5.0.3"),
        ..Default::default()
    });
    let steps = after_index_update(&p, &tf, &caps, vec![guess, create, Step::Start]).unwrap();
    assert_eq!(
        steps,
        vec![
            Step::DownloadTemplate {
                storage: "local".into(),
                name: "ubuntu-22.04-standard_22.04-1_amd64.tar.zst".into(),
            },
            Step::Create {
                fixed_vmid: None,
                template: "local:vztmpl/ubuntu-22.04-standard_22.04-1_amd64.tar.zst".into(),
                options: vec![],
                ssh_keys: None,
            },
            Step::Start,
        ]
    );
    let empty = TemplateFacts::default();
    let err = after_index_update(&p, &empty, &Caps::newest(), vec![]).unwrap_err();
    assert!(err.to_string().contains("still empty after `pveam update`"));
}

#[test]
fn after_pending_the_reboot_applies_exactly_what_pve_kept_pending() {
    let cfg = CtConfig {
        current: Default::default(),
        pending: [("memory".to_string(), "4096".to_string())].into(),
        pending_delete: vec!["mp0".into(), "memory".into()],
    };
    let keys = pending_keys(&cfg);
    assert_eq!(keys, ["memory", "mp0"]);
    let reboot = |k: &[&str]| Step::Reboot {
        keys: k.iter().map(ToString::to_string).collect(),
    };
    // --restart: the planned reboot gets the real keys, or one is added.
    let r = after_pending(vec![reboot(&["features"])], keys.clone(), true);
    assert_eq!(r.steps, vec![reboot(&["memory", "mp0"])]);
    assert_eq!((r.already, r.pending, r.note), (None, vec![], None));
    let r = after_pending(vec![], keys.clone(), true);
    assert_eq!(r.steps, vec![reboot(&["memory", "mp0"])]);
    // --restart with nothing pending: no reboot, and the report says why.
    let r = after_pending(vec![reboot(&["features"]), Step::Start], vec![], true);
    assert_eq!(r.steps, vec![Step::Start]);
    assert_eq!(r.already.unwrap().step, "reboot");
    // Without --restart: reported as pending, nothing added.
    let r = after_pending(vec![], keys, false);
    assert_eq!(r.steps, vec![]);
    assert_eq!(r.pending, ["memory", "mp0"]);
    assert!(r.note.unwrap().contains("--restart"));
}
