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

/// Runs `src/scripts/NAME` with `args` (stdin empty), bounded; returns (status, stdout, stderr).
fn run_script(name: &str, args: &[&str]) -> (i32, String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/scripts")
        .join(name);
    let out = Command::new("timeout")
        .args(["60", "sh"])
        .arg(&path)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn a_node_file_is_checked_before_it_is_read_or_pushed_as_fuse_overlayfs() {
    let check = "node-check-fuse-overlayfs.sh";
    let t = tempfile::tempdir().unwrap();
    let d = |n: &str| t.path().join(n).to_str().unwrap().to_string();
    // Never read: devices (sha256sum /dev/zero never ends), kernel files, FIFOs, directories.
    for (path, why) in [
        ("/dev/zero".to_string(), "under /dev"),
        ("/dev/urandom".to_string(), "under /dev"),
        ("/proc/self/environ".to_string(), "under /proc"),
        ("/sys/kernel/uevent_seqnum".to_string(), "under /sys"),
        (t.path().to_str().unwrap().to_string(), "not a regular file"),
    ] {
        let (st, out, err) = run_script(check, &[&path]);
        assert_eq!(st, 65, "{path}: {err}");
        assert!(out.is_empty() && err.contains(why), "{path}: {err}");
    }
    let fifo = d("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (st, _, err) = run_script(check, &[&fifo]);
    assert_eq!(st, 65, "{err}");
    // A link to a device is followed to it.
    std::os::unix::fs::symlink("/dev/zero", d("zero")).unwrap();
    let (st, _, err) = run_script(check, &[&d("zero")]);
    assert!(st == 65 && err.contains("under /dev"), "{err}");
    // Not an ELF file (a key, a script): refused before it leaves the node.
    std::fs::write(d("key"), "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let (st, _, err) = run_script(check, &[&d("key")]);
    assert!(st == 65 && err.contains("not an ELF"), "{err}");
    // Too big (sparse: no disk used).
    let big = std::fs::File::create(d("big")).unwrap();
    big.set_len((64 << 20) + 1).unwrap();
    let (st, _, err) = run_script(check, &[&d("big")]);
    assert!(st == 65 && err.contains("67108865 bytes"), "{err}");
    // Missing: 3. A real ELF binary: its SHA-256.
    assert_eq!(run_script(check, &[&d("nope")]).0, 3);
    let (st, out, err) = run_script(check, &["/bin/sh"]);
    assert_eq!(st, 0, "{err}");
    let real = std::fs::canonicalize("/bin/sh").unwrap();
    assert_eq!(out.trim(), plan::sha256_hex(&std::fs::read(real).unwrap()));
}

#[test]
fn the_node_lock_directory_is_owner_only_or_refused() {
    let lock = "node-lock.sh";
    let t = tempfile::tempdir().unwrap();
    let d = |n: &str| t.path().join(n).to_str().unwrap().to_string();
    let (st, out, err) = run_script(lock, &[&d("p"), &d("p/x.lock"), "1"]);
    assert_eq!((st, out.as_str()), (0, "locked\n"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d("p")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // A link planted in its place, a directory open to others, a link as the lock file.
    let elsewhere = d("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, d("q")).unwrap();
    let (st, _, err) = run_script(lock, &[&d("q"), &d("q/x.lock"), "1"]);
    assert!(st == 77 && err.contains("symbolic link"), "{err}");
    assert!(!Path::new(&elsewhere).join("x.lock").exists());
    std::fs::create_dir(d("r")).unwrap();
    std::fs::set_permissions(d("r"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (st, _, err) = run_script(lock, &[&d("r"), &d("r/x.lock"), "1"]);
    assert!(st == 77 && err.contains("owner-only"), "{err}");
    let victim = d("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, d("p/y.lock")).unwrap();
    let (st, _, err) = run_script(lock, &[&d("p"), &d("p/y.lock"), "1"]);
    assert!(st == 77 && err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
}

#[test]
fn a_cache_directory_that_is_a_link_is_refused_and_its_target_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = t.path().join("cache");
    std::os::unix::fs::symlink(&target, &cache).unwrap();
    let dest = cache.join("fuse-overlayfs-x");
    let (st, _, err) = run_script(
        "node-fetch-fuse-overlayfs.sh",
        &["http://127.0.0.1:9/x", dest.to_str().unwrap(), "00"],
    );
    assert!(st == 77 && err.contains("symbolic link"), "{err}");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o755,
        "chmod must not reach the link's target"
    );
}
