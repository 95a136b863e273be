//! Local processes: the tool running on the PVE node itself.

use super::{DEFAULT_TIMEOUT, LockGuard, TimedOut, Transport};
use crate::cmd::{Cmd, Output};
use anyhow::{Context, Result, bail};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Condvar, Mutex, MutexGuard};
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
        let t0 = Instant::now();
        let limit = cmd.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            // Its own process group: a Ctrl-C on the terminal reaches provision, which lets the
            // running command finish, instead of killing the command half-way. The group is
            // what a time bound or a second Ctrl-C kills (see [`interrupt_running`]).
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
        let pgid = child.id() as i32;
        let _running = Running::register(pgid, cmd.to_string());
        let watchdog = Watchdog::start(pgid, limit);
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
        let read = child
            .stdout
            .take()
            .expect("stdout piped")
            .read_to_end(&mut stdout);
        let stderr = err_reader.join().unwrap_or_default();
        if let Some(w) = writer {
            let _ = w.join();
        }
        // Exited but not reaped yet: the watchdog can never signal a reused process ID.
        wait_exited(pgid);
        let fired = watchdog.stop();
        let status = child
            .wait()
            .with_context(|| format!("node: waiting for `{cmd}`"))?;
        if fired {
            return Err(TimedOut {
                label: "node".into(),
                cmd: cmd.to_string(),
                after: limit,
            }
            .into());
        }
        read.with_context(|| format!("node: reading the output of `{cmd}`"))?;
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

    /// The parent directory (the staging directory) is created owner-only when missing and must
    /// pass [`crate::rootdirs::check_private_dir`]; the file is opened without following a link.
    fn put(&self, bytes: &[u8], dest: &str, mode: u32) -> Result<()> {
        let path = Path::new(dest);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("node: creating {}", parent.display()))?;
            crate::rootdirs::check_private_dir(parent).context("node")?;
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("node: opening {dest}"))?;
        f.write_all(bytes)
            .with_context(|| format!("node: writing {dest}"))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .with_context(|| format!("node: chmod {mode:o} {dest}"))?;
        Ok(())
    }

    fn lock(&self, name: &str, wait: Duration) -> Result<LockGuard> {
        file_lock(Path::new(LOCK_DIR), name, wait).map(LockGuard::new)
    }
}

/// How long a process group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// The process groups of the commands running now (group ID = the child's PID) with their
/// masked command line, so that a second Ctrl-C can stop them instead of orphaning them.
static RUNNING: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());
static RUNNING_CHANGED: Condvar = Condvar::new();

fn running() -> MutexGuard<'static, Vec<(i32, String)>> {
    RUNNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One entry of [`RUNNING`], removed when the command has been reaped.
struct Running(i32);

impl Running {
    fn register(pgid: i32, shown: String) -> Running {
        running().push((pgid, shown));
        Running(pgid)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        running().retain(|(g, _)| *g != self.0);
        RUNNING_CHANGED.notify_all();
    }
}

/// Sends `sig` to the process group `pgid`.
fn kill_group(pgid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) with a negative PID signals a process group; it touches no memory.
    unsafe { libc::kill(-pgid, sig) };
}

/// Waits until the child `pid` has exited, without reaping it (so its ID stays taken).
fn wait_exited(pid: i32) {
    loop {
        // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only into the siginfo_t we own.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Kills a command's process group when it outlives its time bound: SIGTERM, then SIGKILL
/// after [`KILL_GRACE`].
struct Watchdog {
    done: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn start(pgid: i32, limit: Duration) -> Watchdog {
        let (done, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if rx.recv_timeout(limit) != Err(RecvTimeoutError::Timeout) {
                return false;
            }
            tracing::warn!("node: a command ran longer than {limit:?}; killing its process group");
            kill_group(pgid, libc::SIGTERM);
            if rx.recv_timeout(KILL_GRACE) == Err(RecvTimeoutError::Timeout) {
                kill_group(pgid, libc::SIGKILL);
            }
            true
        });
        Watchdog { done, thread }
    }

    /// The command has exited: stops watching. True when the watchdog killed it.
    fn stop(self) -> bool {
        let _ = self.done.send(());
        self.thread.join().unwrap_or(false)
    }
}

/// Stops every command this process runs on the node (a second Ctrl-C): SIGTERM to each
/// process group, SIGKILL to those still there after `grace`. Returns the commands (masked)
/// that were running, for the message that says what was left.
pub fn interrupt_running(grace: Duration) -> Vec<String> {
    let mut list = running();
    let shown: Vec<String> = list.iter().map(|(_, c)| c.clone()).collect();
    for (g, _) in list.iter() {
        kill_group(*g, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while !list.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        list = RUNNING_CHANGED
            .wait_timeout(list, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    for (g, _) in list.iter() {
        kill_group(*g, libc::SIGKILL);
    }
    shown
}

/// Takes an exclusive `flock` on DIR/NAME.lock (owner-only), waiting at most `wait`, and not
/// after an interrupt ([`crate::interrupted`]). The directory is a private one ([`crate::rootdirs::private_dir`]); the
/// file is opened without following a link.
pub fn file_lock(dir: &Path, name: &str, wait: Duration) -> Result<File> {
    crate::rootdirs::private_dir(dir).context("lock directory")?;
    let path = dir.join(format!("{name}.lock"));
    let file = crate::rootdirs::open_private_file(&path, false, 0o600)?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) => {
                if crate::interrupted() {
                    bail!("interrupted while waiting for the lock {}", path.display());
                }
                if Instant::now() >= deadline {
                    bail!(
                        "waited {} s for the lock {} (another provision run holds it)",
                        wait.as_secs(),
                        path.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(fs::TryLockError::Error(e)) => {
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
    fn a_command_past_its_bound_is_killed_with_its_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let script = format!("sleep 300 & echo $! > '{}'; wait", pid_file.display());
        let cmd = Cmd::new("sh")
            .args(["-c", &script])
            .with_timeout(Duration::from_millis(300));
        let err = Local.run(&cmd, None).unwrap_err();
        let timed_out = err.downcast_ref::<TimedOut>().expect("a TimedOut error");
        assert_eq!(timed_out.after, Duration::from_millis(300));
        assert!(
            err.to_string().contains("did not finish within 0.3 s"),
            "{err}"
        );
        // The child the command started (same process group) is gone too.
        let child: i32 = fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        }) {
            assert!(
                Instant::now() < deadline,
                "the command's child {child} outlived it"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!running().iter().any(|(_, c)| c.contains(&script)));
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
        let locks = dir.path().join("locks");
        let _held = file_lock(&locks, "vmid", Duration::from_secs(1)).unwrap();
        let err = file_lock(&locks, "vmid", Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("another provision run holds it"));
    }

    #[test]
    fn a_lock_directory_that_is_a_link_or_open_to_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let link = dir.path().join("provision");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let err = file_lock(&link, "vmid", Duration::from_millis(10)).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        assert!(!elsewhere.join("vmid.lock").exists());
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let err = file_lock(&open, "vmid", Duration::from_millis(10)).unwrap_err();
        assert!(format!("{err:#}").contains("owner-only"), "{err:#}");
    }
}
