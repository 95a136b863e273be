//! A PVE node made of shell scripts on PATH, for running the real binary with its real local
//! transport (process groups, time bounds, signals) without a node: `pvesh`, `pvesm` and
//! `pveam` answer the facts of an empty node with one `dir` storage, and `pveam download`
//! hangs (as a stuck download does), recording the PIDs of itself and of a child it started
//! in the same process group.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A directory with the scripts; PATH for the binary is [`PvePath::path`].
pub struct PvePath {
    /// Holds the scripts and the PID files.
    pub dir: tempfile::TempDir,
}

fn script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl PvePath {
    /// The scripts of an empty node whose template download hangs.
    pub fn hanging_download() -> PvePath {
        PvePath::with_download(
            "echo $$ > '{dir}/hung.pid'\n            sleep 300 &\n            echo $! > '{dir}/hung-child.pid'\n            wait",
        )
    }

    /// The scripts of an empty node whose template download fails (exit 1): a run that fails.
    pub fn failing_download() -> PvePath {
        PvePath::with_download("echo 'download failed' >&2; exit 1")
    }

    /// An empty node whose `pveam download` runs `download` (`{dir}`: the scripts' directory).
    fn with_download(download: &str) -> PvePath {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        script(
            d,
            "pvesh",
            r#"case "$2" in
  /cluster/resources) echo '[]' ;;
  /cluster/nextid) echo '"100"' ;;
  *) echo "no such path: $2" >&2; exit 2 ;;
esac"#,
        );
        script(
            d,
            "pvesm",
            r#"echo "Name             Type     Status           Total            Used       Available        %"
echo "local             dir     active        98497780        10000000        88497780   10.15%""#,
        );
        script(
            d,
            "pveam",
            &format!(
                r#"case "$1" in
  list) echo "NAME                                                         SIZE" ;;
  available) echo "system          ubuntu-24.04-standard_24.04-2_amd64.tar.zst" ;;
  download) {download} ;;
  *) exit 2 ;;
esac"#,
                download = download.replace("{dir}", &d.display().to_string())
            ),
        );
        PvePath { dir }
    }

    /// PATH with the scripts first.
    pub fn path(&self) -> String {
        format!("{}:/usr/bin:/bin", self.dir.path().display())
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The PIDs of the hung download and its child, once both are written (bounded wait).
    pub fn wait_for_hang(&self, limit: Duration) -> (i32, i32) {
        let deadline = Instant::now() + limit;
        loop {
            let read = |n: &str| {
                std::fs::read_to_string(self.pid_file(n))
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
            };
            if let (Some(a), Some(b)) = (read("hung.pid"), read("hung-child.pid")) {
                return (a, b);
            }
            assert!(
                Instant::now() < deadline,
                "the fake `pveam download` did not start within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// True while process `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits (bounded) until `pid` is gone; false when it is still there after `limit`.
pub fn gone_within(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
