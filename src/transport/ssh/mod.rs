//! SSH transport: one libssh2 session to a remote machine (a PVE node, or a container reached
//! directly), reused for every command, upload and lock.
//!
//! * Host keys are checked against OpenSSH known_hosts files before anything else is sent: an
//!   unknown key is refused (or recorded, with `accept_new_host_key`), a changed key is always
//!   refused.
//! * Authentication: ssh-agent, then key files (passphrase from a named environment variable or a
//!   terminal prompt), then a password from `PROVISION_SSH_PASSWORD` only when allowed.
//! * Commands: one channel per command; the command line is `quote_argv(argv_real)`, the only
//!   place real argument values go. Errors, logs and Debug output only ever show the masked
//!   Display of [`Cmd`].
//! * Concurrency: after authentication the session is non-blocking. Every libssh2 call happens
//!   under one mutex; waiting for the socket (`poll(2)`) happens without it. So a lock channel that
//!   stays open, or a command that waits a long time, never stalls other channels on the session.

use super::local::LOCK_DIR;
use super::{LockGuard, Transport, run_ok};
use crate::cmd::{Cmd, Output};
use crate::quote::quote_argv;
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, STANDARD_NO_PAD as B64_NO_PAD};
use libssh2_sys as raw;
use sha2::{Digest, Sha256};
use ssh2::{BlockDirections, Channel, ErrorCode, FileStat, OpenFlags, OpenType, Session, Sftp};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Environment variable holding the SSH password (read only when password auth is allowed).
pub const PASSWORD_ENV: &str = "PROVISION_SSH_PASSWORD";

/// Upload chunk size: libssh2 copies what it is handed into packets, so hand it slices.
const PUT_CHUNK: usize = 1 << 20;
/// Longest time one poll(2) sleeps before libssh2 is asked again (another thread may have read
/// the packets this one waits for).
const POLL_SLICE: Duration = Duration::from_millis(10);
/// How long cleanup (closing a channel, releasing a lock) may take at most.
const CLEANUP_WAIT: Duration = Duration::from_secs(5);
/// Extra time, beyond the requested wait, that taking a remote lock may take.
const LOCK_SLACK: Duration = Duration::from_secs(15);
/// flock's exit status when the wait expired (`-E`).
const LOCK_CONFLICT_STATUS: i32 = 75;
/// Takes the lock: $1 lock dir, $2 lock file, $3 seconds to wait. Prints `locked` once held,
/// then holds it until stdin reaches EOF (the guard is dropped or the connection dies).
const LOCK_SCRIPT: &str = include_str!("../../scripts/node-lock.sh");

static PUT_COUNTER: AtomicU64 = AtomicU64::new(0);

mod auth;
mod known_hosts;
mod session;
mod target;

use auth::*;
use known_hosts::*;
pub use known_hosts::{fingerprint, forget_host_key};
use session::*;
use target::home_dir;
pub use target::{SshOptions, SshTarget};

// ---------------------------------------------------------------------------------------------
// The transport
// ---------------------------------------------------------------------------------------------

/// Commands, uploads and locks on a remote machine over one SSH session.
pub struct Ssh {
    target: SshTarget,
    conn: Arc<Conn>,
    command_timeout: Option<Duration>,
}

impl fmt::Debug for Ssh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ssh")
            .field("target", &self.target.to_string())
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl Ssh {
    /// Connects, verifies the host key against known_hosts and authenticates.
    pub fn connect(target: SshTarget, opts: &SshOptions) -> Result<Ssh> {
        let hp = target.host_port();
        let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .with_context(|| format!("ssh:{target}: cannot resolve the host {:?}", target.host))?
            .collect();
        let tcp = connect_tcp(&addrs, opts.connect_timeout).map_err(|(why, kind)| {
            anyhow::Error::from(TcpConnectFailed {
                target: target.to_string(),
                host_port: hp.clone(),
                why,
                kind,
            })
        })?;
        let _ = tcp.set_nodelay(true);
        let fd = tcp.as_raw_fd();
        set_tcp_keepalive(&tcp);

        let mut sess = Session::new().context("ssh: cannot create a libssh2 session")?;
        sess.set_tcp_stream(tcp);
        sess.set_timeout(u32::try_from(opts.connect_timeout.as_millis()).unwrap_or(u32::MAX));

        let known = scan_known_hosts(&sess, &opts.known_hosts, &known_hosts_name(&target, opts));
        prefer_known_key_types(&sess, &known);

        sess.handshake().map_err(|e| {
            let why = if e.code() == ErrorCode::Session(raw::LIBSSH2_ERROR_TIMEOUT) {
                format!("no answer within {}", fmt_secs(opts.connect_timeout))
            } else {
                e.to_string()
            };
            anyhow!("ssh:{target}: SSH handshake with {hp} failed (step: handshake): {why}")
        })?;
        verify_host_key(&sess, &target, opts, &known)?;
        authenticate(&sess, &target, opts)?;
        tracing::debug!("ssh:{target}: connected and authenticated");

        sess.set_blocking(false);
        let label = format!("ssh:{target}");
        Ok(Ssh {
            target,
            conn: Arc::new(Conn {
                state: Mutex::new(State {
                    sess,
                    sftp: None,
                    closing: Vec::new(),
                }),
                starting: Mutex::new(()),
                fd,
                label,
            }),
            command_timeout: opts.command_timeout,
        })
    }

    /// Where this session goes.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    fn deadline(&self) -> Option<Instant> {
        self.command_timeout.map(|t| Instant::now() + t)
    }

    /// Opens a channel and starts `line` on it.
    fn start(&self, line: &str, deadline: Option<Instant>) -> Result<Chan, Fail> {
        let _starting = self
            .conn
            .starting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ch = self.conn.call(deadline, |st| {
            st.reap();
            st.sess.channel_session()
        })?;
        let mut chan = Chan {
            conn: self.conn.clone(),
            ch: Some(ch),
        };
        let ch = chan.get();
        self.conn.call(deadline, |_| ch.exec(line))?;
        Ok(chan)
    }

    /// Turns a failed step into an error naming the place and the step.
    fn fail(&self, f: Fail, step: impl fmt::Display) -> anyhow::Error {
        let label = &self.conn.label;
        match f {
            Fail::Timeout => anyhow!("{label}: timed out while {step}"),
            Fail::Lost(e) => anyhow!("{label}: connection lost while {step}: {e}"),
            Fail::Other(e) => anyhow!("{label}: {step} failed: {e}"),
        }
    }

    fn put_inner(
        &self,
        bytes: &[u8],
        dest: &str,
        tmp: &str,
        mode: u32,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let tmp_path = Path::new(tmp);
        let mut file = self
            .conn
            .sftp(deadline, |sftp| {
                sftp.open_mode(
                    tmp_path,
                    OpenFlags::WRITE | OpenFlags::EXCLUSIVE,
                    0o600,
                    OpenType::File,
                )
            })
            .map_err(|f| self.fail(f, format_args!("creating {tmp} (SFTP open)")))?;
        let written = (|| -> Result<(), Fail> {
            for chunk in bytes.chunks(PUT_CHUNK) {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let n = self.conn.drive(deadline, |st| match file.write(rest) {
                        Ok(n) => Ok(Step::Done(n)),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Step::Again),
                        Err(e) => Err(io_fail(st, e)),
                    })?;
                    rest = &rest[n..];
                }
            }
            self.conn.call(deadline, |_| file.close())
        })();
        // Dropped under the session lock whatever happened (a no-op once closed).
        {
            let _st = self.conn.lock();
            drop(file);
        }
        written.map_err(|f| self.fail(f, format_args!("writing {tmp} (SFTP)")))?;
        let stat = FileStat {
            size: None,
            uid: None,
            gid: None,
            perm: Some(mode & 0o7777),
            atime: None,
            mtime: None,
        };
        self.conn
            .sftp(deadline, |sftp| sftp.setstat(tmp_path, stat.clone()))
            .map_err(|f| self.fail(f, format_args!("chmod {mode:04o} {tmp} (SFTP)")))?;
        // An atomic replace: SFTP's rename refuses an existing target, mv -T does not.
        run_ok(
            self,
            &Cmd::new("mv").args(["-f", "-T", "--", tmp, dest]),
            None,
        )?;
        Ok(())
    }

    /// The node's staging directory must be a directory of its own (not a link) and owner-only,
    /// as [`crate::rootdirs`] requires on the local node (SFTP `lstat`).
    fn check_staging_dir(&self, dir: &str, deadline: Option<Instant>) -> Result<()> {
        let label = &self.conn.label;
        let st = self
            .conn
            .sftp(deadline, |sftp| sftp.lstat(Path::new(dir)))
            .map_err(|f| self.fail(f, format_args!("looking at {dir} (SFTP lstat)")))?;
        let perm = st.perm.unwrap_or(0);
        if st.file_type().is_symlink() || !st.is_dir() || perm & 0o077 != 0 {
            bail!(
                "{label}: {dir} is a symbolic link, not a directory, or open to others (mode {:04o}): refused; remove it (it is recreated owner-only), then run again",
                perm & 0o7777
            );
        }
        Ok(())
    }

    /// Creates `dir` and missing parents, owner-only.
    fn ensure_dir(&self, dir: &str, deadline: Option<Instant>) -> Result<()> {
        if dir.is_empty() || dir == "/" {
            return Ok(());
        }
        let path = Path::new(dir);
        match self.conn.sftp(deadline, |sftp| match sftp.stat(path) {
            Ok(st) => Ok(Some(st.is_dir())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }) {
            Ok(Some(true)) => return Ok(()),
            Ok(Some(false)) => bail!("{}: {dir} exists but is not a directory", self.conn.label),
            Ok(None) => {}
            Err(f) => return Err(self.fail(f, format_args!("looking at {dir} (SFTP stat)"))),
        }
        let parent = match dir.trim_end_matches('/').rsplit_once('/') {
            Some(("", _)) => "/",
            Some((p, _)) => p,
            None => "",
        };
        self.ensure_dir(parent, deadline)?;
        let made = self.conn.sftp(deadline, |sftp| sftp.mkdir(path, 0o700));
        if let Err(f) = made {
            // Someone else may have created it meanwhile.
            let exists = self
                .conn
                .sftp(deadline, |sftp| sftp.stat(path))
                .is_ok_and(|st| st.is_dir());
            if !exists {
                return Err(self.fail(f, format_args!("creating the directory {dir} (SFTP mkdir)")));
            }
        }
        Ok(())
    }
}

impl Transport for Ssh {
    fn label(&self) -> String {
        self.conn.label.clone()
    }

    fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
        let label = &self.conn.label;
        let line = quote_argv(&cmd.argv_real())
            .with_context(|| format!("{label}: cannot send `{cmd}`"))?;
        tracing::debug!(target: "provision::cmd", "{label}: run: {cmd}");
        // Every command is bounded: its own bound (a step's), the session's, or the default.
        // On expiry the channel is given up; the remote process gets no signal over SSH.
        let limit = cmd
            .timeout
            .or(self.command_timeout)
            .unwrap_or(super::DEFAULT_TIMEOUT);
        let deadline = Some(Instant::now() + limit);
        let timed_out = || {
            anyhow::Error::from(super::TimedOut {
                label: label.clone(),
                cmd: cmd.to_string(),
                after: limit,
            })
        };
        let mut chan = self.start(&line, deadline).map_err(|f| match f {
            Fail::Timeout => timed_out(),
            f => self.fail(f, format_args!("starting `{cmd}`")),
        })?;

        let mut input = stdin.unwrap_or_default();
        let mut eof_sent = false;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ch = chan.get();
        let pumped = self.conn.drive(deadline, |st| {
            let mut progress = false;
            if !eof_sent {
                if !input.is_empty() {
                    let n = input.len().min(32 * 1024);
                    match ch.write(&input[..n]) {
                        Ok(w) => {
                            input = &input[w..];
                            progress = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        // The command stopped reading its stdin; that is its business.
                        Err(_) => input = &[],
                    }
                }
                if input.is_empty() {
                    match ch.send_eof() {
                        Err(e) if is_eagain(&e) => {}
                        _ => {
                            eof_sent = true;
                            progress = true;
                        }
                    }
                }
            }
            progress |= drain(st, ch, &mut out, &mut err)?;
            if ch.eof() {
                Ok(Step::Done(()))
            } else if progress {
                Ok(Step::Progress)
            } else {
                Ok(Step::Again)
            }
        });
        let finished = pumped.and_then(|()| self.conn.finish(ch, deadline, &mut out, &mut err));
        match finished {
            Ok(()) => {}
            // The channel is given up (see `Conn::retire`); the server may let the process run
            // on until it exits or writes to its closed output.
            Err(Fail::Timeout) => return Err(timed_out()),
            Err(f) => return Err(self.fail(f, format_args!("running `{cmd}`"))),
        }
        let status = {
            let _st = self.conn.lock();
            let signal = ch.exit_signal().ok().and_then(|s| s.exit_signal);
            match signal {
                Some(sig) => {
                    tracing::debug!("{label}: `{cmd}` was killed by SIG{sig}");
                    -1
                }
                None => ch.exit_status().map_err(|e| {
                    self.fail(e.into(), format_args!("reading the exit status of `{cmd}`"))
                })?,
            }
        };
        Ok(Output {
            status,
            stdout: out,
            stderr: err,
        })
    }

    fn put(&self, bytes: &[u8], dest: &str, mode: u32) -> Result<()> {
        let label = &self.conn.label;
        let (dir, base) = match dest.rsplit_once('/') {
            Some((d, b)) => (if d.is_empty() { "/" } else { d }, b),
            None => ("", dest),
        };
        if base.is_empty() || base == "." || base == ".." {
            bail!("{label}: cannot put a file at {dest:?}: it names a directory");
        }
        if dest.contains('\0') {
            bail!("{label}: cannot put a file at {dest:?}: the path contains a NUL byte");
        }
        let deadline = self.deadline();
        tracing::debug!(
            "{label}: put {dest} ({} bytes, mode {mode:04o})",
            bytes.len()
        );
        self.ensure_dir(dir, deadline)
            .with_context(|| format!("{label}: uploading {dest}"))?;
        if dir == crate::cmd::pct::NODE_TMP_DIR {
            self.check_staging_dir(dir, deadline)?;
        }
        let n = PUT_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp_name = format!(".{base}.provision-{}-{n}.tmp", std::process::id());
        let tmp = match dir {
            "" => tmp_name,
            "/" => format!("/{tmp_name}"),
            d => format!("{d}/{tmp_name}"),
        };
        let result = self.put_inner(bytes, dest, &tmp, mode, deadline);
        if result.is_err() {
            // Never leave the partial upload behind (best effort; it has a temporary name).
            let until = Some(Instant::now() + CLEANUP_WAIT);
            let _ = self
                .conn
                .sftp(until, |sftp| match sftp.unlink(Path::new(&tmp)) {
                    Err(e) if is_not_found(&e) => Ok(()),
                    r => r,
                });
        }
        result.with_context(|| format!("{label}: uploading {dest}"))
    }

    fn lock(&self, name: &str, wait: Duration) -> Result<LockGuard> {
        let label = &self.conn.label;
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            bail!(
                "{label}: invalid lock name {name:?} (letters, digits, '.', '_', '-'; not \
                 starting with '.')"
            );
        }
        let path = format!("{LOCK_DIR}/{name}.lock");
        let secs = format!("{:.3}", wait.as_secs_f64());
        let cmd =
            Cmd::new("sh").args(["-c", LOCK_SCRIPT, "provision-lock", LOCK_DIR, &path, &secs]);
        let line = quote_argv(&cmd.argv_real())?;
        let deadline = Some(Instant::now() + wait + LOCK_SLACK);
        let no_answer = || {
            anyhow!(
                "{label}: no answer within {} while taking the lock {path}",
                fmt_secs(wait + LOCK_SLACK)
            )
        };
        let mut chan = self.start(&line, deadline).map_err(|f| match f {
            Fail::Timeout => no_answer(),
            f => self.fail(f, format_args!("taking the lock {path}")),
        })?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ch = chan.get();
        let locked = self.conn.drive(deadline, |st| {
            let progress = drain(st, ch, &mut out, &mut err)?;
            // (A chatty login shell may print before it.)
            if out.starts_with(b"locked\n") || out.ends_with(b"\nlocked\n") {
                Ok(Step::Done(true))
            } else if ch.eof() {
                Ok(Step::Done(false))
            } else if progress {
                Ok(Step::Progress)
            } else {
                Ok(Step::Again)
            }
        });
        match locked {
            Ok(true) => {
                tracing::debug!("{label}: took the lock {path}");
                Ok(LockGuard::new(SshLock { chan, path }))
            }
            Ok(false) => {
                let until = Some(Instant::now() + CLEANUP_WAIT);
                let _ = self.conn.finish(ch, until, &mut out, &mut err);
                let status = {
                    let _st = self.conn.lock();
                    ch.exit_status().unwrap_or(-1)
                };
                if status == LOCK_CONFLICT_STATUS {
                    bail!(
                        "{label}: waited {} for the lock {path} (another provision run holds it)",
                        fmt_secs(wait)
                    );
                }
                let text = String::from_utf8_lossy(&err);
                bail!(
                    "{label}: taking the lock {path} failed (status {status}): {}",
                    text.trim()
                );
            }
            Err(Fail::Timeout) => Err(no_answer()),
            Err(f) => Err(self.fail(f, format_args!("waiting for the lock {path}"))),
        }
    }
}

/// A held remote lock: the `flock` process keeps it while its stdin stays open.
struct SshLock {
    chan: Chan,
    path: String,
}

impl Drop for SshLock {
    fn drop(&mut self) {
        let conn = self.chan.conn.clone();
        let ch = self.chan.get();
        let until = Some(Instant::now() + CLEANUP_WAIT);
        // EOF ends `cat`, flock exits and the lock is free; wait for that (bounded).
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let released = conn
            .call(until, |_| ch.send_eof())
            .and_then(|()| conn.finish(ch, until, &mut out, &mut err));
        match released {
            Ok(()) => tracing::debug!("{}: released the lock {}", conn.label, self.path),
            Err(e) => tracing::warn!(
                "{}: releasing the lock {} did not complete ({e:?}); it is released when the \
                 connection closes",
                conn.label,
                self.path
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------

/// The TCP connection to an SSH server could not be made.
#[derive(Debug)]
pub struct TcpConnectFailed {
    /// `ssh:user@host:port` and `host:port`, for the message.
    pub target: String,
    /// Where it tried to connect.
    pub host_port: String,
    /// Why, in words.
    pub why: String,
    /// The kind of the last error (None: the name resolved to no address).
    pub kind: Option<io::ErrorKind>,
}

impl TcpConnectFailed {
    /// True when a server that is still starting (a container just created) may answer soon:
    /// refused, no answer, unreachable.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            Some(
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
            )
        )
    }
}

impl fmt::Display for TcpConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ssh:{}: cannot connect to {} (step: TCP connect): {}",
            self.target, self.host_port, self.why
        )
    }
}

impl std::error::Error for TcpConnectFailed {}

/// Connects to the first address that answers; the error says why the last one did not.
fn connect_tcp(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, (String, Option<io::ErrorKind>)> {
    let mut last = (String::from("the host name resolves to no address"), None);
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => {
                let why = match e.kind() {
                    io::ErrorKind::ConnectionRefused => {
                        "connection refused (nothing listens there, or a firewall rejects it)"
                            .to_string()
                    }
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                        format!("no answer within {}", fmt_secs(timeout))
                    }
                    _ => e.to_string(),
                };
                last = (why, Some(e.kind()));
            }
        }
    }
    Err(last)
}

/// Lets the kernel notice a vanished peer (~1 min) so that no wait hangs forever.
fn set_tcp_keepalive(tcp: &TcpStream) {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive) {
        tracing::debug!("ssh: cannot set TCP keepalive: {e}");
    }
}

fn fmt_secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
}

#[cfg(test)]
mod tests;
