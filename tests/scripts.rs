//! The shell scripts the tool runs inside containers and on the node: they parse, and they
//! behave as their callers rely on, run here against stand-in programs on PATH.

use provision::plan;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    out.sort();
    out
}

#[test]
fn scripts_parse_with_sh_n() {
    let all = scripts();
    assert!(all.len() >= 11, "{all:?}");
    for path in &all {
        let out = Command::new("sh").arg("-n").arg(path).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // As they run in containers: after the prelude, through `sh -c`.
    for s in [
        plan::INSTALL_SCRIPT,
        plan::PUSH_CHECK_SCRIPT,
        plan::LINK_PACKAGE_SCRIPT,
        plan::FETCH_SCRIPT,
        plan::PLACE_SCRIPT,
        plan::RESTART_SCRIPT,
        plan::VERIFY_SCRIPT,
        plan::STATE_SET,
    ] {
        let script = format!("{}{s}", plan::SH_PRELUDE);
        let out = Command::new("sh")
            .args(["-n", "-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{s}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_script_is_used_by_the_tool() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut code = String::new();
    let mut stack = vec![src];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                code.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    for path in scripts() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            code.contains(&format!("scripts/{name}\")")),
            "src/scripts/{name} is not included by any include_str!"
        );
    }
}

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
