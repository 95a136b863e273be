//! The shell scripts the tool runs inside containers and on the node: they parse, and they
//! behave as their callers rely on, run here against stand-in programs on PATH.

use provision::plan;
use std::path::Path;
use std::process::Command;

/// Writes an executable stand-in for `name` into `dir` that appends its arguments (one line per
/// call) to `dir/calls` and then runs `body`.
fn stand_in(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let log = dir.join("calls");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"{name} $*\" >> '{}'\n{body}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn every_apt_get_of_the_install_script_waits_for_the_dpkg_lock() {
    // A fresh container runs apt-daily / unattended-upgrades at first boot: an apt-get that does
    // not wait for the lock fails with "Could not get lock". The stand-in fails like apt-get
    // does when the lock is held and the caller does not wait for it.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path();
    stand_in(
        bin,
        "apt-get",
        r#"case "$*" in *"DPkg::Lock::Timeout="*) exit 0 ;; esac
echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1 (unattended-upgr)" >&2; exit 100"#,
    );
    stand_in(bin, "apt-cache", "exit 1");
    let out = Command::new("sh")
        .arg("-c")
        .arg(plan::INSTALL_SCRIPT)
        .args(["provision", "distro", "fuse-overlayfs"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(bin.join("calls")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the install script failed on a held lock: {}\ncalls:\n{calls}",
        String::from_utf8_lossy(&out.stderr)
    );
    let apt: Vec<&str> = calls
        .lines()
        .filter(|l| l.starts_with("apt-get "))
        .collect();
    assert_eq!(apt.len(), 2, "{calls}");
}
