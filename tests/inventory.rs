//! `provision status` addresses and `provision inventory` (JSON, Ansible, ssh_config): on the LXC
//! lab, the generated files are used by the real consumers — `ssh -F FILE NAME docker info` and
//! `ansible-inventory -i FILE --list` (Debian's ansible-core; run-tests installs it with the
//! lab). The unit tests of the writers (quoting of hostile names, groups, jumps) are in
//! src/commands/inventory.rs and src/addresses.rs.

use crate::lab::{Cleanup, lab, provision};
use serde_json::Value;
use std::process::Command;

#[test]
fn inventory_refuses_a_machine_without_pve_before_writing_anything() {
    // The lab puts its pct/pvesh first on PATH; without them this machine is no PVE node.
    let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let pve_here = path
        .split(':')
        .any(|d| std::path::Path::new(d).join("pvesh").exists());
    assert!(
        !pve_here,
        "this test expects a machine that is not a PVE node"
    );
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("inv.yml");
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lab-three.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["inventory", file, "--format", "ansible", "-o"])
        .arg(&out_file)
        .env("PATH", path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Proxmox VE tools"));
    assert!(!out_file.exists());
}

#[test]
fn lab_status_shows_addresses_and_inventory_feeds_real_ssh_and_ansible_inventory() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    crate::support::sshd::keygen(&key);
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let names: Vec<String> = (1..=2).map(|n| format!("invr-{n}")).collect();
    let _cleanup = Cleanup(lab.clone(), names.clone());
    let file = dir.path().join("ci.toml");
    std::fs::write(
        &file,
        format!(
            "[defaults]\nprofile = \"docker-auto\"\ntemplate = \"{}\"\nmemory = 1024\ntags = [\"ci\"]\n\
             ssh_public_keys = [\"{}\"]\n[defaults.rootfs]\nstorage = \"{}\"\nsize = 4\n\
             [defaults.access]\nidentity = \"{}\"\n\n[[container]]\nname = \"invr-{{n}}\"\ncount = 2\n",
            lab.template,
            pubkey.trim(),
            lab.storage,
            key.display()
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = provision(&["apply", f, "--jobs", "2", "--yes", "--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // status: addresses in JSON and in the table.
    let st = provision(&["status", f, "--output", "json"]);
    assert_eq!(st.status.code(), Some(0), "{st:?}");
    let doc: Value = serde_json::from_slice(&st.stdout).unwrap();
    let mut addrs = Vec::new();
    for c in doc["containers"].as_array().unwrap() {
        let v4 = c["ipv4"].as_array().expect("ipv4 array");
        assert!(c["ipv6"].is_array(), "{c:#}");
        let a = v4
            .first()
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{}: no IPv4 address in status: {c:#}", c["name"]));
        a.parse::<std::net::Ipv4Addr>().unwrap();
        addrs.push((c["name"].as_str().unwrap().to_string(), a.to_string()));
    }
    let table = provision(&["status", f]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.lines().next().unwrap().contains("ADDRESSES"), "{text}");
    for (n, a) in &addrs {
        assert!(
            text.lines()
                .any(|l| l.starts_with(n.as_str()) && l.contains(a.as_str())),
            "{n} {a} not in\n{text}"
        );
    }

    // ssh_config: real ssh with it runs docker in each container.
    let cfg = dir.path().join("ssh_config");
    let out = provision(&[
        "inventory",
        f,
        "--format",
        "ssh-config",
        "-o",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let cfg_text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        cfg_text.contains(&format!("IdentityFile {}", key.display())),
        "{cfg_text}"
    );
    for (n, a) in &addrs {
        assert!(
            cfg_text.contains(&format!("Host {n}\n    HostName {a}\n    User root\n")),
            "{cfg_text}"
        );
        let o = Command::new("ssh")
            .arg("-F")
            .arg(&cfg)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                dir.path().join("known_hosts").display()
            ))
            .args([n.as_str(), "docker", "info", "--format", "{{.Driver}}"])
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .expect("ssh runs");
        assert!(
            o.status.success(),
            "ssh -F {} {n} docker info: {}",
            cfg.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "overlay2");
    }

    // Ansible: Debian's ansible-inventory parses it, with the groups and ansible_host.
    let inv = dir.path().join("inventory.yml");
    let out = provision(&[
        "inventory",
        f,
        "--format",
        "ansible",
        "-o",
        inv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let o = Command::new("ansible-inventory")
        .arg("-i")
        .arg(&inv)
        .arg("--list")
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .env("ANSIBLE_LOCAL_TEMP", dir.path())
        .env("HOME", dir.path())
        .output()
        .expect("ansible-inventory runs (run-tests installs ansible-core with the lab)");
    assert!(
        o.status.success(),
        "ansible-inventory: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(&inv).unwrap()
    );
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    for group in ["ci", "invr"] {
        let hosts: Vec<&str> = list[group]["hosts"]
            .as_array()
            .unwrap_or_else(|| panic!("group {group} missing: {list:#}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(hosts, ["invr-1", "invr-2"], "{group}: {list:#}");
    }
    for (n, a) in &addrs {
        let hv = &list["_meta"]["hostvars"][n];
        assert_eq!(hv["ansible_host"], a.as_str(), "{list:#}");
        assert_eq!(hv["ansible_user"], "root");
        assert_eq!(hv["provision_state"], "running");
    }

    let out = provision(&["destroy", f, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}
