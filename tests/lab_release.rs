//! End-to-end on the LXC lab answering as older and newer Proxmox VE releases
//! (`PROVISION_LAB_RELEASE` makes every lab command the tool runs answer as that release): the
//! seed recipe brings up Docker on fuse-overlayfs where the lab is a ZFS < 2.2 node, no command
//! is refused by the release, what the release cannot serve is refused up front, and pushes or
//! resizes whose task fails with exit 0 are caught. Checks are made from outside.

use crate::lab::{Cleanup, LAB_FUSE, Lab, lab, provision_with};
use std::path::Path;
use std::process::{Command, Output};

/// `provision ARGS` with the lab answering as `release`.
fn provision_at(release: &str, args: &[&str]) -> Output {
    provision_with(args, &[("PROVISION_LAB_RELEASE", release)])
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A profile that extends `base` with only the lab's template (and the lab's fuse-overlayfs
/// binary on the node): the root disk storage is left to the tool (`auto`).
fn profile(lab: &Lab, dir: &Path, name: &str, base: &str, extra: &str) -> String {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "extends = \"{base}\"\ntemplate = \"{}\"\nmemory = 1024\n{extra}\n",
            lab.template
        ),
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

/// Invocations since `mark` that the lab refused the way a node refuses an option or a value
/// (exit 255 with a usage or parameter error), with their argv.
fn refused_since(lab: &Lab, mark: u64) -> Vec<String> {
    let text = std::fs::read(&lab.log).unwrap_or_default();
    let tail = &text[(mark as usize).min(text.len())..];
    String::from_utf8_lossy(tail)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["exit"] == 255)
        .map(|v| v["argv"].to_string())
        .collect()
}

/// The seed recipe on a lab node of `release`: Docker on fuse-overlayfs, checked from
/// outside; `--keep-env` only where the release has it; nothing refused; a re-run changes
/// nothing.
fn seed_recipe_at(release: &str, name: &str, keep_env: bool) {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec![name.into()]);
    let p = profile(&lab, dir.path(), name, "docker", LAB_FUSE);
    let mark = lab.log_mark();
    let args = [name, "--profile", &p, "--yes", "--output", "json"];
    let out = provision_at(release, &args);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{release}: {r:#}");
    let c = &r["containers"][0];
    assert_eq!(c["outcome"], "created", "{release}: {c:#}");
    assert_eq!(c["driver"], "fuse-overlayfs", "{release}: {c:#}");
    let vmid = lab.vmid_of(name).expect("created");
    // The root disk went to the node's zfspool storage (auto), as on a ZFS install.
    let cfg = Command::new("pct")
        .args(["config", &vmid.to_string()])
        .output()
        .unwrap();
    let cfg = String::from_utf8_lossy(&cfg.stdout);
    assert!(cfg.contains("rootfs: local-zfs:"), "{release}: {cfg}");
    assert!(cfg.contains("unprivileged: 1"), "{release}: {cfg}");
    // From outside: Docker runs a container on fuse-overlayfs.
    assert_eq!(
        lab.attach_ok(vmid, &["docker", "info", "--format", "{{.Driver}}"])
            .trim(),
        "fuse-overlayfs",
        "{release}"
    );
    lab.assert_docker_runs_the_probe(vmid);
    // The release's own argv: keep-env only where pct has it, and nothing refused.
    let mine = lab.invocations_since(mark);
    let execs: Vec<&Vec<String>> = mine
        .iter()
        .filter(|a| a.len() > 2 && a[0] == "pct" && a[1] == "exec" && a[2] == vmid.to_string())
        .collect();
    assert!(!execs.is_empty(), "{release}: no pct exec logged");
    for a in &execs {
        assert_eq!(
            a.iter().any(|w| w == "--keep-env"),
            keep_env,
            "{release}: {a:?}"
        );
    }
    let refused = refused_since(&lab, mark);
    assert!(
        refused.is_empty(),
        "{release}: the node refused: {refused:#?}"
    );
    // The same command again changes nothing.
    let mark = lab.log_mark();
    let out = provision_at(release, &args);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{release}: {r:#}");
    assert_eq!(
        r["containers"][0]["outcome"], "unchanged",
        "{release}: {r:#}"
    );
    let changing = lab.changing_for(mark, vmid);
    assert!(changing.is_empty(), "{release}: {changing:#?}");
}

#[test]
fn the_seed_recipe_runs_docker_on_fuse_overlayfs_on_pve_8_0() {
    seed_recipe_at("8.0", "rel80", false);
}

#[test]
fn the_seed_recipe_runs_docker_on_fuse_overlayfs_on_pve_8_1() {
    seed_recipe_at("8.1", "rel81", false);
}

#[test]
fn the_seed_recipe_runs_docker_on_fuse_overlayfs_on_pve_7_4_with_its_updates() {
    // 7.4 as it ships (pve-container 4.4-3) refuses every Debian 12 point release, the lab's
    // template among them (see the next test); the fully updated 7.4 (4.4-7) takes it.
    seed_recipe_at("7.4-latest", "rel74", false);
}

#[test]
fn the_seed_recipe_runs_docker_on_fuse_overlayfs_on_pve_9_2() {
    seed_recipe_at("9.2", "rel92", true);
}

#[test]
fn docker_auto_on_pve_9_2_picks_overlay2_on_its_zfs_2_4() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["rel92a".into()]);
    let p = profile(&lab, dir.path(), "rel92a", "docker-auto", "");
    let out = provision_at(
        "9.2",
        &["rel92a", "--profile", &p, "--yes", "--output", "json"],
    );
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    let c = &r["containers"][0];
    assert_eq!(c["driver"], "overlay2", "{c:#}");
    assert!(
        c["driver_reason"].as_str().unwrap().contains("ZFS 2.4"),
        "{c:#}"
    );
    let vmid = lab.vmid_of("rel92a").unwrap();
    assert_eq!(
        lab.attach_ok(vmid, &["docker", "info", "--format", "{{.Driver}}"])
            .trim(),
        "overlay2"
    );
}

#[test]
fn what_a_release_cannot_serve_is_refused_up_front_with_no_change() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["rel80u".into(), "rel74g".into()]);
    // Ubuntu 24.04 on PVE 8.0 (pve-container 5.0.3), and the lab's Debian 12 on 7.4 GA.
    let ubuntu = dir.path().join("u.toml");
    std::fs::write(
        &ubuntu,
        "extends = \"docker\"\ntemplate = \"ubuntu-24.04\"\n",
    )
    .unwrap();
    let debian = profile(&lab, dir.path(), "d", "docker", LAB_FUSE);
    for (release, name, p, says) in [
        (
            "8.0",
            "rel80u",
            ubuntu.to_str().unwrap(),
            "unsupported Ubuntu version '24.04'",
        ),
        (
            "7.4",
            "rel74g",
            debian.as_str(),
            "unsupported debian version",
        ),
    ] {
        let mark = lab.log_mark();
        let out = provision_at(release, &[name, "--profile", p, "--yes"]);
        // The report wraps long lines at word boundaries: compare with whitespace folded.
        let err = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
        assert_eq!(out.status.code(), Some(2), "{release}: {err}");
        assert!(err.contains(says), "{release}: {err}");
        assert!(err.contains("update pve-container"), "{release}: {err}");
        // Other tests run on the node meanwhile: what this run could have changed is a create
        // (it carries the hostname) or a template download or index update.
        let changing: Vec<Vec<String>> = lab
            .invocations_since(mark)
            .into_iter()
            .filter(|a| crate::support::fake::is_changing(a))
            .filter(|a| a.iter().any(|w| w == name) || a[0] == "pveam")
            .collect();
        assert!(changing.is_empty(), "{release}: {changing:#?}");
        assert!(lab.vmid_of(name).is_none());
    }
}

#[test]
fn pushes_whose_task_fails_with_exit_0_are_reported_with_their_step() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["relpush".into()]);
    let plain = profile(
        &lab,
        dir.path(),
        "plain",
        "docker",
        "[docker]\ninstall = \"none\"",
    );
    let out = provision_at("9.2", &["relpush", "--profile", &plain, "--yes"]);
    assert_eq!(out.status.code(), Some(0));
    let vmid = lab.vmid_of("relpush").unwrap();
    // Inside: a read-only directory and a full one (pct push exits 0 on both).
    lab.attach_ok(
        vmid,
        &[
            "sh",
            "-c",
            "mkdir -p /mnt/ro /mnt/full && mount -t tmpfs -o ro tmpfs /mnt/ro && mount -t tmpfs -o size=16k tmpfs /mnt/full",
        ],
    );
    let big = "x".repeat(64 * 1024);
    for (dest, says) in [
        ("/mnt/ro/motd", "exited 0, but its task failed"),
        ("/mnt/full/big", "expected 65536: the push did not complete"),
    ] {
        let p = profile(
            &lab,
            dir.path(),
            "files",
            "docker",
            &format!(
                "[docker]\ninstall = \"none\"\n[[files]]\ndest = \"{dest}\"\ncontent = \"{big}\"\n"
            ),
        );
        let out = provision_at(
            "9.2",
            &["relpush", "--profile", &p, "--yes", "--output", "json"],
        );
        let r = report(&out);
        assert_eq!(out.status.code(), Some(1), "{dest}: {r:#}");
        let f = &r["containers"][0]["failure"];
        assert_eq!(f["step"], format!("write {dest}"), "{f:#}");
        assert!(
            f["message"].as_str().unwrap().contains(says),
            "{dest}: {f:#}"
        );
        // Nothing half-written is left at the destination.
        let o = lab.attach(vmid, &["test", "-e", dest]);
        assert!(!o.status.success(), "{dest} exists after a failed push");
    }
}

#[test]
fn a_fractional_root_disk_converges_in_one_run_on_the_lab() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(lab.clone(), vec!["relsize".into()]);
    let p = dir.path().join("s.toml");
    std::fs::write(
        &p,
        format!(
            "extends = \"docker\"\ntemplate = \"{}\"\n[docker]\ninstall = \"none\"\n[rootfs]\nsize = 0.3\n",
            lab.template
        ),
    )
    .unwrap();
    let p = p.to_str().unwrap();
    let out = provision_at("9.2", &["relsize", "--profile", p, "--yes"]);
    assert_eq!(out.status.code(), Some(0));
    let vmid = lab.vmid_of("relsize").unwrap();
    let cfg = Command::new("pct")
        .args(["config", &vmid.to_string()])
        .output()
        .unwrap();
    let cfg = String::from_utf8_lossy(&cfg.stdout);
    assert!(cfg.contains(",size=307M"), "{cfg}");
    for _ in 0..2 {
        let mark = lab.log_mark();
        let out = provision_at(
            "9.2",
            &["relsize", "--profile", p, "--yes", "--output", "json"],
        );
        let r = report(&out);
        assert_eq!(r["containers"][0]["outcome"], "unchanged", "{r:#}");
        assert!(lab.changing_for(mark, vmid).is_empty());
    }
}

#[test]
fn doctor_reports_the_release_and_fails_what_it_cannot_do_for_the_profile() {
    let Some(_lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("u.toml");
    std::fs::write(&p, "extends = \"docker\"\ntemplate = \"ubuntu-24.04\"\n").unwrap();
    let out = provision_at(
        "8.0",
        &[
            "doctor",
            "--profile",
            p.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let checks = v["nodes"][0]["checks"].as_array().unwrap().clone();
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        checks
            .iter()
            .find(|c| pred(c))
            .unwrap_or_else(|| panic!("{checks:#?}"))
            .clone()
    };
    let pv = find(&|c| c["id"] == "pve-version");
    assert!(
        pv["detail"]
            .as_str()
            .unwrap()
            .starts_with("PVE 8.0 (pve-container 5.0.3)"),
        "{pv}"
    );
    let t = find(&|c| c["id"].as_str().unwrap_or("").starts_with("template:"));
    assert_eq!(t["level"], "fail", "{t}");
    assert!(
        t["detail"]
            .as_str()
            .unwrap()
            .contains("unsupported Ubuntu version '24.04'"),
        "{t}"
    );
    assert_eq!(out.status.code(), Some(1));
}
