//! Local processes: the tool running on the PVE node itself.

use super::{LockGuard, Transport};
use crate::cmd::{Cmd, Output};
use anyhow::{Context, Result, bail};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where node-side locks live.
pub const LOCK_DIR: &str = "/run/lock/provision";

/// Runs commands as child processes of this one.
#[derive(Debug, Default, Clone)]
pub struct Local;

impl Transport for Local {
    fn label(&self) -> String {
        "node".to_string()
    }

    fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
        let argv = cmd.argv_real();
        tracing::debug!(target: "provision::cmd", "run: {cmd}");
        let t0 = std::time::Instant::now();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            // Its own process group: a Ctrl-C on the terminal reaches provision, which lets the
            // running command finish, instead of killing the command half-way.
            .process_group(0)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("node: cannot start `{}`", cmd.program))?;
        // Feed stdin and drain stderr on threads so that no pipe can fill up and deadlock.
        let writer = stdin.map(|data| {
            let mut pipe = child.stdin.take().expect("stdin piped");
            let data = data.to_vec();
            std::thread::spawn(move || {
                // The child may exit without reading everything; that is its business.
                let _ = pipe.write_all(&data);
            })
        });
        let mut err_pipe = child.stderr.take().expect("stderr piped");
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err_pipe.read_to_end(&mut buf);
            buf
        });
        let mut stdout = Vec::new();
        child
            .stdout
            .take()
            .expect("stdout piped")
            .read_to_end(&mut stdout)
            .with_context(|| format!("node: reading the output of `{cmd}`"))?;
        let stderr = err_reader.join().unwrap_or_default();
        if let Some(w) = writer {
            let _ = w.join();
        }
        let status = child
            .wait()
            .with_context(|| format!("node: waiting for `{cmd}`"))?;
        // Only the program's name: the arguments were logged (masked) above. The benchmarks sum
        // these to tell the tool's own time from the time it waits for the node.
        tracing::debug!(
            target: "provision::cmd",
            "node command done in {:.3} ms (status {}): {}",
            t0.elapsed().as_secs_f64() * 1000.0,
            status.code().unwrap_or(-1),
            cmd.program
        );
        Ok(Output {
            status: status.code().unwrap_or(-1),
            stdout,
            stderr,
        })
    }

    fn put(&self, bytes: &[u8], dest: &str, mode: u32) -> Result<()> {
        let path = Path::new(dest);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("node: creating {}", parent.display()))?;
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("node: opening {dest}"))?;
        f.write_all(bytes)
            .with_context(|| format!("node: writing {dest}"))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("node: chmod {mode:o} {dest}"))?;
        Ok(())
    }

    fn lock(&self, name: &str, wait: Duration) -> Result<LockGuard> {
        file_lock(Path::new(LOCK_DIR), name, wait).map(LockGuard::new)
    }
}

/// Takes an exclusive `flock` on DIR/NAME.lock (owner-only), waiting at most `wait`.
pub fn file_lock(dir: &Path, name: &str, wait: Duration) -> Result<File> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating lock directory {}", dir.display()))?;
    let path = dir.join(format!("{name}.lock"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    bail!(
                        "waited {} s for the lock {} (another provision run holds it)",
                        wait.as_secs(),
                        path.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_stdout_and_stderr_are_kept_apart() {
        let out = Local
            .run(
                &Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
                None,
            )
            .unwrap();
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout_text(), "out\n");
        assert_eq!(out.stderr_text(), "err\n");
    }

    #[test]
    fn stdin_reaches_the_command_and_large_output_does_not_deadlock() {
        let data = vec![b'x'; 1 << 20];
        let out = Local
            .run(
                &Cmd::new("sh").args(["-c", "cat; cat >&2 </dev/null"]),
                Some(&data),
            )
            .unwrap();
        assert_eq!(out.stdout.len(), data.len());
    }

    #[test]
    fn missing_program_is_an_error_naming_it() {
        let err = Local
            .run(&Cmd::new("no-such-program-provision"), None)
            .unwrap_err();
        assert!(format!("{err:#}").contains("no-such-program-provision"));
    }

    #[test]
    fn put_writes_with_mode_and_private_parents() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b/file");
        Local.put(b"hi", dest.to_str().unwrap(), 0o640).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hi");
        let meta = fs::metadata(&dest).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        let pmeta = fs::metadata(dest.parent().unwrap()).unwrap();
        assert_eq!(pmeta.permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_held_lock_makes_the_second_taker_give_up_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let _held = file_lock(dir.path(), "vmid", Duration::from_secs(1)).unwrap();
        let err = file_lock(dir.path(), "vmid", Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("another provision run holds it"));
    }
}
