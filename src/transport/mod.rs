//! The one small trait for "run a command / put a file somewhere", and its implementations.
//!
//! A transport reaches one place: the PVE node (local process or SSH) or one container (pct
//! exec/push through a node transport, or SSH straight into it). Implementations compose by
//! wrapping: [`pct::Pct`] runs `pct exec`/`pct push` *through* any node transport, so pct on a
//! remote node is `Pct { node: ssh }`. A non-zero exit status is data ([`Output`]); only a failure
//! to run at all is an error. Transports never log secrets: they only ever format [`Cmd`] with
//! its masking Display.

pub mod local;
pub mod pct;
pub mod ssh;
pub mod ssh_ct;

use crate::cmd::{Cmd, Output};
use anyhow::Result;
use std::time::Duration;

/// How long a command may run when nothing bounds it more tightly (facts, locks, clean-up): a
/// hung `pvesh` or `pct` must not block a worker forever. Steps set their own bound
/// ([`crate::plan::StepTimeouts`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A command that did not finish within its time bound; its process group was killed.
#[derive(Debug)]
pub struct TimedOut {
    /// Where it ran.
    pub label: String,
    /// The command (masked).
    pub cmd: String,
    /// The bound it exceeded.
    pub after: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: `{}` did not finish within {} s and was killed (a hung command; raise the bound with --step-timeout)",
            self.label,
            short(&self.cmd),
            self.after.as_secs_f64()
        )
    }
}

impl std::error::Error for TimedOut {}

/// Runs commands and receives files somewhere: the PVE node or one container.
pub trait Transport: Send + Sync {
    /// Where this transport reaches, for messages: "node", "ct/101", "ssh:root@pve1".
    fn label(&self) -> String;

    /// Runs `cmd` (argv, no shell) with optional stdin. Stdout and stderr are read to the end
    /// before the exit status is taken. A non-zero exit is returned as data.
    fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output>;

    /// Writes `bytes` to the file `dest` with permission bits `mode`.
    ///
    /// On a node transport the parent directory is created (owner-only) when missing; inside a
    /// container (pct push semantics) it is not, and the caller creates it first.
    fn put(&self, bytes: &[u8], dest: &str, mode: u32) -> Result<()>;

    /// Copies the file `src` that lives on the node `node` to `dest` here. The default reads it
    /// through the node and puts the bytes; `pct` pushes it straight from the node.
    fn put_from_node(&self, node: &dyn Transport, src: &str, dest: &str, mode: u32) -> Result<()> {
        let out = run_ok(node, &Cmd::new("cat").args(["--", src]), None)?;
        self.put(&out.stdout, dest, mode)
    }

    /// Takes the exclusive lock `name` on the machine this transport reaches, waiting at most
    /// `wait`. Held until the guard is dropped; it also holds against other processes.
    fn lock(&self, name: &str, wait: Duration) -> Result<LockGuard>;
}

/// Holds a lock taken with [`Transport::lock`] until dropped.
pub struct LockGuard {
    _inner: Box<dyn Send>,
}

impl LockGuard {
    /// Wraps whatever keeps the lock alive (a file handle, a channel, a mutex guard).
    pub fn new(inner: impl Send + 'static) -> Self {
        LockGuard {
            _inner: Box::new(inner),
        }
    }
}

/// A command that exited non-zero, with the tail of its output.
#[derive(Debug)]
pub struct CmdFailed {
    /// Where it ran.
    pub label: String,
    /// The command (masked).
    pub cmd: String,
    /// Exit status.
    pub status: i32,
    /// Last lines of output.
    pub tail: String,
}

/// True when `cmd` ran a worker task that failed although the command exited 0. `pct push`,
/// `pull`, `resize`, `template` and `pveam download` fork their task without waiting for its
/// result; in a terminal PVE prints the task's error message alone on stderr (the `TASK ERROR:`
/// line goes to the task log). A push or pull that worked prints nothing on stderr, so any
/// text there means its task failed. The others can print warnings there: their effect is
/// checked by the caller (the config read back, `pveam list`), and only an explicit
/// `TASK ERROR` line counts here.
pub fn task_failed(cmd: &Cmd, out: &Output) -> bool {
    if !out.success() {
        return false;
    }
    let sub = cmd.args.first().map(crate::cmd::Arg::shown);
    let copy = cmd.program == "pct" && matches!(sub, Some("push" | "pull"));
    let forks = copy
        || (cmd.program == "pct" && matches!(sub, Some("resize" | "template")))
        || (cmd.program == "pveam" && sub == Some("download"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    forks
        && ((copy && !text(&out.stderr).trim().is_empty())
            || [&out.stdout, &out.stderr].iter().any(|b| {
                text(b)
                    .lines()
                    .any(|l| l.trim_start().starts_with("TASK ERROR"))
            }))
}

impl std::fmt::Display for CmdFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first = self.tail.lines().last().unwrap_or("").trim();
        if self.status == 0 {
            write!(
                f,
                "{}: `{}` exited 0, but its task failed",
                self.label,
                short(&self.cmd)
            )?;
        } else {
            write!(
                f,
                "{}: `{}` exited with status {}",
                self.label,
                short(&self.cmd),
                self.status
            )?;
        }
        if !first.is_empty() {
            write!(f, ": {first}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CmdFailed {}

/// `s` on one line, cut at 160 characters.
pub fn short(s: &str) -> String {
    let one = s.replace('\n', " ");
    if one.chars().count() > 160 {
        format!("{}…", one.chars().take(160).collect::<String>())
    } else {
        one
    }
}

/// Runs `cmd` and turns a non-zero exit into [`CmdFailed`]: it names the place, the command,
/// the status and carries the tail of the output for reports.
pub fn run_ok(t: &dyn Transport, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
    let out = t.run(cmd, stdin)?;
    if !out.success() || task_failed(cmd, &out) {
        return Err(CmdFailed {
            label: t.label(),
            cmd: cmd.to_string(),
            status: out.status,
            tail: out.tail(20),
        }
        .into());
    }
    Ok(out)
}
