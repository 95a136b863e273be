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
const LOCK_SCRIPT: &str = include_str!("../scripts/node-lock.sh");

static PUT_COUNTER: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------------------------
// Target and options
// ---------------------------------------------------------------------------------------------

/// Where to connect: `[user@]host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    /// Login name (default `root`).
    pub user: String,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (default 22).
    pub port: u16,
}

impl SshTarget {
    /// Parses `[user@]host[:port]`; IPv6 addresses go in brackets when a port follows
    /// (`root@[::1]:2222`). Default user `root`, default port 22.
    pub fn parse(s: &str) -> Result<SshTarget> {
        let bad = |why: &str| {
            anyhow!(
                "invalid SSH target {s:?}: {why} (expected [user@]host[:port], e.g. root@pve1, \
                 pve1:2222 or root@[fe80::1]:22)"
            )
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace or control characters"));
        }
        let (user, rest) = match s.split_once('@') {
            None => ("root", s),
            Some((_, r)) if r.contains('@') => return Err(bad("it contains more than one '@'")),
            Some(("", _)) => return Err(bad("the user name before '@' is empty")),
            Some((u, r)) => {
                let ok = !u.starts_with('-')
                    && u.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !ok {
                    return Err(bad(
                        "a user name may only contain letters, digits, '.', '_' and '-' and may \
                         not start with '-'",
                    ));
                }
                (u, r)
            }
        };
        let parse_port = |p: &str| -> Result<u16> {
            match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
                _ => Err(bad(&format!(
                    "the port {p:?} is not a number from 1 to 65535"
                ))),
            }
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, tail) = inner
                .split_once(']')
                .ok_or_else(|| bad("'[' has no closing ']'"))?;
            if h.parse::<Ipv6Addr>().is_err() {
                return Err(bad(&format!("{h:?} in brackets is not an IPv6 address")));
            }
            let port = match tail {
                "" => 22,
                t => match t.strip_prefix(':') {
                    Some(p) => parse_port(p)?,
                    None => return Err(bad("only ':PORT' may follow ']'")),
                },
            };
            (h, port)
        } else if rest.matches(':').count() > 1 {
            if rest.parse::<Ipv6Addr>().is_err() {
                return Err(bad("write an IPv6 address in brackets, e.g. [fe80::1]:22"));
            }
            (rest, 22)
        } else if let Some((h, p)) = rest.split_once(':') {
            (h, parse_port(p)?)
        } else {
            (rest, 22)
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if !host.contains(':') {
            let ok = host.len() <= 253
                && !host.starts_with(['-', '.'])
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
            if !ok {
                return Err(bad(&format!(
                    "{host:?} is not a host name or IP address (letters, digits, '.', '-', '_')"
                )));
            }
        }
        Ok(SshTarget {
            user: user.to_string(),
            host: host.to_string(),
            port,
        })
    }

    /// `host:port`, with an IPv6 address in brackets.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The name known_hosts files use: `host` for port 22, `[host]:port` otherwise.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for SshTarget {
    /// `user@host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.host_port())
    }
}

impl FromStr for SshTarget {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        SshTarget::parse(s)
    }
}

/// How to connect and authenticate.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// Private key files to offer (`--identity`); empty: ~/.ssh/id_ed25519, id_ecdsa, id_rsa
    /// (those that exist).
    pub identities: Vec<PathBuf>,
    /// Name of an environment variable holding the passphrase of encrypted keys. Without it an
    /// encrypted key is only usable when a terminal can be prompted.
    pub passphrase_env: Option<String>,
    /// Try password authentication with the password in `PROVISION_SSH_PASSWORD`.
    pub allow_password: bool,
    /// known_hosts files to check; the first one is where `accept_new_host_key` records keys.
    /// Default: ~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts.
    pub known_hosts: Vec<PathBuf>,
    /// Record the key of a host not yet known (never replaces a known, changed key).
    pub accept_new_host_key: bool,
    /// Try the keys of the ssh-agent at `SSH_AUTH_SOCK` first (default true).
    pub use_agent: bool,
    /// Limit for the TCP connect, the SSH handshake and authentication (default 10 s).
    pub connect_timeout: Duration,
    /// Limit for each command and upload (default none).
    pub command_timeout: Option<Duration>,
}

impl Default for SshOptions {
    fn default() -> Self {
        let mut known_hosts = Vec::new();
        if let Some(home) = home_dir() {
            known_hosts.push(home.join(".ssh/known_hosts"));
        }
        known_hosts.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
        SshOptions {
            identities: Vec::new(),
            passphrase_env: None,
            allow_password: false,
            known_hosts,
            accept_new_host_key: false,
            use_agent: true,
            connect_timeout: Duration::from_secs(10),
            command_timeout: None,
        }
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

// ---------------------------------------------------------------------------------------------
// The shared, non-blocking session
// ---------------------------------------------------------------------------------------------

/// What an attempt at a non-blocking step achieved.
enum Step<T> {
    Done(T),
    /// Something moved; try again at once.
    Progress,
    /// Nothing to do until the socket is ready.
    Again,
}

/// Why a step did not complete.
#[derive(Debug)]
enum Fail {
    /// The deadline passed.
    Timeout,
    /// The connection is gone.
    Lost(String),
    /// Any other SSH or SFTP error.
    Other(String),
}

impl From<ssh2::Error> for Fail {
    fn from(e: ssh2::Error) -> Fail {
        if is_disconnect(e.code()) {
            Fail::Lost(e.to_string())
        } else {
            Fail::Other(e.to_string())
        }
    }
}

fn is_eagain(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(raw::LIBSSH2_ERROR_EAGAIN)
}

fn is_disconnect(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Session(
            raw::LIBSSH2_ERROR_SOCKET_SEND
                | raw::LIBSSH2_ERROR_SOCKET_DISCONNECT
                | raw::LIBSSH2_ERROR_SOCKET_RECV
                | raw::LIBSSH2_ERROR_BAD_SOCKET
        )
    )
}

fn is_not_found(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::SFTP(raw::LIBSSH2_FX_NO_SUCH_FILE | raw::LIBSSH2_FX_NO_SUCH_PATH)
    )
}

/// Everything libssh2 touches, only ever used under [`Conn::state`].
struct State {
    sess: Session,
    sftp: Option<Sftp>,
    /// Channels that were given up on and still wait for the server's close.
    closing: Vec<Channel>,
}

impl State {
    /// Frees the channels whose close has completed meanwhile.
    fn reap(&mut self) {
        self.closing
            .retain_mut(|ch| matches!(ch.close(), Err(e) if is_eagain(&e)));
    }
}

struct Conn {
    state: Mutex<State>,
    fd: RawFd,
    label: String,
}

impl Conn {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` under the session lock until it is done, waiting for the socket (without the
    /// lock) whenever it has to.
    fn drive<T>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&mut State) -> Result<Step<T>, Fail>,
    ) -> Result<T, Fail> {
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Fail::Timeout);
            }
            let dirs = {
                let mut st = self.lock();
                match f(&mut st)? {
                    Step::Done(t) => return Ok(t),
                    Step::Progress => continue,
                    Step::Again => st.sess.block_directions(),
                }
            };
            self.wait_socket(dirs, deadline);
        }
    }

    /// [`Conn::drive`] for one libssh2 call that may say "would block".
    fn call<T>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&mut State) -> Result<T, ssh2::Error>,
    ) -> Result<T, Fail> {
        self.drive(deadline, |st| match f(st) {
            Ok(t) => Ok(Step::Done(t)),
            Err(e) if is_eagain(&e) => Ok(Step::Again),
            Err(e) => Err(e.into()),
        })
    }

    /// [`Conn::call`] on the (lazily started) SFTP subsystem.
    fn sftp<T>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&Sftp) -> Result<T, ssh2::Error>,
    ) -> Result<T, Fail> {
        self.call(deadline, |st| {
            if st.sftp.is_none() {
                st.sftp = Some(st.sess.sftp()?);
            }
            f(st.sftp.as_ref().expect("just set"))
        })
    }

    fn wait_socket(&self, dirs: BlockDirections, deadline: Option<Instant>) {
        let events = match dirs {
            BlockDirections::Outbound => libc::POLLOUT,
            BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
            BlockDirections::Inbound | BlockDirections::None => libc::POLLIN,
        };
        let mut slice = POLL_SLICE;
        if let Some(d) = deadline {
            slice = slice.min(d.saturating_duration_since(Instant::now()));
        }
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the socket stays open as long as the session (self) lives.
        // A failed or interrupted poll just means libssh2 is asked again.
        unsafe { libc::poll(&mut pfd, 1, slice.as_millis() as libc::c_int) };
    }

    /// Hands a channel back: freed now if its close completes at once, else later.
    fn retire(&self, mut ch: Channel) {
        let mut st = self.lock();
        st.reap();
        match ch.close() {
            Err(e) if is_eagain(&e) => st.closing.push(ch),
            _ => drop(ch),
        }
    }
}

impl Conn {
    /// Reads the rest of the output, waits for the server to close the channel (so that the
    /// exit status has arrived) and closes our side.
    fn finish(
        &self,
        ch: &mut Channel,
        deadline: Option<Instant>,
        out: &mut Vec<u8>,
        err: &mut Vec<u8>,
    ) -> Result<(), Fail> {
        self.drive(deadline, |st| {
            let progress = drain(st, ch, out, err)?;
            if !ch.eof() {
                return Ok(if progress {
                    Step::Progress
                } else {
                    Step::Again
                });
            }
            match ch.wait_close().and_then(|()| ch.close()) {
                Ok(()) => Ok(Step::Done(())),
                Err(e) if is_eagain(&e) => Ok(Step::Again),
                Err(e) => Err(e.into()),
            }
        })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        st.reap();
        st.closing.clear();
        // Orderly goodbyes, bounded by the session timeout set at connect.
        st.sess.set_blocking(true);
        st.sftp = None;
        let _ = st.sess.disconnect(None, "provision: done", None);
        // Channels still waiting for the server's close must not wait any longer when the
        // session is freed: with the socket shut down, libssh2 sees the connection gone.
        // SAFETY: the fd belongs to the session, which is still alive here.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }
}

/// A channel that goes back to its [`Conn`] when dropped, on every path.
struct Chan {
    conn: Arc<Conn>,
    ch: Option<Channel>,
}

impl Chan {
    fn get(&mut self) -> &mut Channel {
        self.ch.as_mut().expect("channel present until drop")
    }
}

impl Drop for Chan {
    fn drop(&mut self) {
        if let Some(ch) = self.ch.take() {
            self.conn.retire(ch);
        }
    }
}

/// Reads what is available on stdout and stderr into the buffers; `Ok(true)` if anything came.
fn drain(st: &State, ch: &mut Channel, out: &mut Vec<u8>, err: &mut Vec<u8>) -> Result<bool, Fail> {
    let mut buf = [0u8; 32 * 1024];
    let mut progress = false;
    for (stream, sink) in [(0, out), (1, err)] {
        loop {
            match ch.stream(stream).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    sink.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(io_fail(st, e)),
            }
        }
    }
    Ok(progress)
}

/// Classifies an I/O error from an ssh2 stream by the session's last error code.
fn io_fail(st: &State, e: io::Error) -> Fail {
    match ssh2::Error::last_session_error(&st.sess) {
        Some(last) if is_disconnect(last.code()) => Fail::Lost(last.to_string()),
        _ => Fail::Other(e.to_string()),
    }
}

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
        let tcp = connect_tcp(&addrs, opts.connect_timeout).map_err(|e| {
            anyhow!("ssh:{target}: cannot connect to {hp} (step: TCP connect): {e}")
        })?;
        let _ = tcp.set_nodelay(true);
        let fd = tcp.as_raw_fd();
        set_tcp_keepalive(&tcp);

        let mut sess = Session::new().context("ssh: cannot create a libssh2 session")?;
        sess.set_tcp_stream(tcp);
        sess.set_timeout(u32::try_from(opts.connect_timeout.as_millis()).unwrap_or(u32::MAX));

        let known = scan_known_hosts(&sess, &opts.known_hosts, &target.known_hosts_name());
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

fn connect_tcp(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, String> {
    let mut last = String::from("the host name resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => {
                last = match e.kind() {
                    io::ErrorKind::ConnectionRefused => {
                        "connection refused (nothing listens there, or a firewall rejects it)"
                            .to_string()
                    }
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                        format!("no answer within {}", fmt_secs(timeout))
                    }
                    _ => e.to_string(),
                };
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

// ---------------------------------------------------------------------------------------------
// Host keys
// ---------------------------------------------------------------------------------------------

/// The OpenSSH fingerprint of a public key blob: `SHA256:` and unpadded base64.
pub fn fingerprint(key_blob: &[u8]) -> String {
    format!("SHA256:{}", B64_NO_PAD.encode(Sha256::digest(key_blob)))
}

/// The key type name at the start of a public key blob (`ssh-ed25519`).
fn key_type(blob: &[u8]) -> &str {
    blob.get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n))
        .and_then(|t| std::str::from_utf8(t).ok())
        .unwrap_or("unknown")
}

/// How OpenSSH names a key type to humans: ED25519, ECDSA, RSA.
fn key_type_label(name: &str) -> String {
    match name {
        "ssh-ed25519" => "ED25519".into(),
        "ssh-rsa" => "RSA".into(),
        "ssh-dss" => "DSA".into(),
        n if n.starts_with("ecdsa-sha2-") => "ECDSA".into(),
        n => n.to_string(),
    }
}

/// The file on a Debian/PVE node that holds the host key of this type.
fn host_key_file(name: &str) -> &'static str {
    match name {
        "ssh-rsa" => "/etc/ssh/ssh_host_rsa_key.pub",
        n if n.starts_with("ecdsa-sha2-") => "/etc/ssh/ssh_host_ecdsa_key.pub",
        _ => "/etc/ssh/ssh_host_ed25519_key.pub",
    }
}

/// One known_hosts line about the host being connected to.
struct KnownEntry {
    file: PathBuf,
    line: usize,
    blob: Vec<u8>,
}

impl KnownEntry {
    fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

#[derive(Default)]
struct KnownKeys {
    /// Keys recorded for this host.
    entries: Vec<KnownEntry>,
    /// Keys marked `@revoked` (for any host).
    revoked: Vec<KnownEntry>,
}

/// Reads the known_hosts files line by line. Host names (plain, lists or hashed) are matched by
/// libssh2; the key itself is compared here, so that a changed key can be shown with the line
/// that recorded the old one. Lines libssh2 cannot read are skipped.
fn scan_known_hosts(sess: &Session, files: &[PathBuf], name: &str) -> KnownKeys {
    let mut known = KnownKeys::default();
    for file in files {
        let text = match fs::read(file) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!("ssh: cannot read known_hosts file {}: {e}", file.display());
                continue;
            }
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let entry = |b64: &str| {
                B64.decode(b64).ok().map(|blob| KnownEntry {
                    file: file.clone(),
                    line: i + 1,
                    blob,
                })
            };
            if let Some(marker) = fields.first().filter(|f| f.starts_with('@')) {
                if *marker == "@revoked"
                    && let Some(e) = fields.get(3).and_then(|b| entry(b))
                {
                    known.revoked.push(e);
                }
                continue; // @cert-authority: certificates are not supported
            }
            let Some(e) = fields.get(2).and_then(|b| entry(b)) else {
                continue;
            };
            let Ok(mut kh) = sess.known_hosts() else {
                continue;
            };
            if kh.read_str(line, ssh2::KnownHostFileKind::OpenSSH).is_err() {
                tracing::debug!("ssh: skipping unreadable line {}", e.place());
                continue;
            }
            if matches!(kh.check(name, &e.blob), ssh2::CheckResult::Match) {
                known.entries.push(e);
            }
        }
    }
    known
}

/// Asks for the host key types already known for this host first (as OpenSSH does), so that a
/// server with several host keys presents one that can be checked.
fn prefer_known_key_types(sess: &Session, known: &KnownKeys) {
    if known.entries.is_empty() {
        return;
    }
    let Ok(supported) = sess.supported_algs(ssh2::MethodType::HostKey) else {
        return;
    };
    let mut prefs: Vec<&str> = Vec::new();
    for e in &known.entries {
        let algs: &[&str] = match key_type(&e.blob) {
            "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            t => &[t][..],
        };
        for alg in algs {
            if let Some(s) = supported.iter().find(|s| *s == alg)
                && !prefs.contains(s)
            {
                prefs.push(s);
            }
        }
    }
    for s in &supported {
        if !prefs.contains(s) {
            prefs.push(s);
        }
    }
    let _ = sess.method_pref(ssh2::MethodType::HostKey, &prefs.join(","));
}

fn verify_host_key(
    sess: &Session,
    t: &SshTarget,
    opts: &SshOptions,
    known: &KnownKeys,
) -> Result<()> {
    let (blob, _) = sess
        .host_key()
        .ok_or_else(|| anyhow!("ssh:{t}: the server presented no host key"))?;
    let name = t.known_hosts_name();
    let ty = key_type(blob);
    let label = key_type_label(ty);
    let fp = fingerprint(blob);
    if let Some(r) = known.revoked.iter().find(|r| r.blob == blob) {
        bail!(
            "ssh:{t}: the {label} host key {fp} of {name} is marked @revoked in {}; refusing \
             to connect",
            r.place()
        );
    }
    if known.entries.iter().any(|e| e.blob == blob) {
        tracing::debug!("ssh:{t}: host key {label} {fp} matches known_hosts");
        return Ok(());
    }
    let same_type = known.entries.iter().find(|e| key_type(&e.blob) == ty);
    if let Some(old) = same_type.or(known.entries.first()) {
        let old_label = key_type_label(key_type(&old.blob));
        bail!(
            "ssh:{t}: WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!\n\
             The server at {name} now presents the {label} host key {fp},\n\
             but {} records the {old_label} key {} for it.\n\
             Someone could be eavesdropping on you right now (man-in-the-middle attack), or the \
             host key has just been changed (e.g. the node was reinstalled).\n\
             Refusing to connect; --accept-new-host-key never replaces a known key. If the change \
             is expected, check the new fingerprint on the node (ssh-keygen -lf {}), then remove \
             the old entry with: ssh-keygen -R '{name}' -f {}",
            old.place(),
            fingerprint(&old.blob),
            host_key_file(ty),
            old.file.display()
        );
    }
    let Some(record_in) = opts.known_hosts.first() else {
        bail!(
            "ssh:{t}: the host key of {name} ({label} key fingerprint {fp}) cannot be checked: no \
             known_hosts file is configured"
        );
    };
    if !opts.accept_new_host_key {
        let port = if t.port == 22 {
            String::new()
        } else {
            format!("-p {} ", t.port)
        };
        bail!(
            "ssh:{t}: the host key of {name} is not known ({label} key fingerprint {fp}); \
             refusing to connect.\n\
             Check that fingerprint on the node (ssh-keygen -lf {}), then either run again with \
             --accept-new-host-key to record it in {}, or add it yourself: \
             ssh-keyscan {port}{} >> {}",
            host_key_file(ty),
            record_in.display(),
            t.host,
            record_in.display()
        );
    }
    record_host_key(record_in, &name, blob).with_context(|| {
        format!(
            "ssh:{t}: recording the host key of {name} in {}",
            record_in.display()
        )
    })?;
    tracing::warn!(
        "ssh:{t}: permanently added the {label} host key {fp} of {name} to {}",
        record_in.display()
    );
    Ok(())
}

/// Removes every line of the known_hosts file `file` that names `name` (plain host fields,
/// as [`record_host_key`] writes them), keeping the others; the file is replaced atomically.
/// Returns how many lines were removed (0 when the file does not exist).
pub fn forget_host_key(file: &Path, name: &str) -> io::Result<usize> {
    let text = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let names = |line: &str| {
        let first = line.split_whitespace().next().unwrap_or("");
        !first.starts_with('@') && first.split(',').any(|h| h == name)
    };
    let kept: Vec<&str> = text.lines().filter(|l| !names(l)).collect();
    let removed = text.lines().count() - kept.len();
    if removed == 0 {
        return Ok(0);
    }
    let tmp = file.with_extension("provision-new");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut body = kept.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    f.write_all(body.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, file)?;
    Ok(removed)
}

/// Appends `name type base64` to a known_hosts file (created 0600, parent 0700).
fn record_host_key(file: &Path, name: &str, blob: &[u8]) -> io::Result<()> {
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(file)?;
    let len = f.metadata()?.len();
    let mut line = String::new();
    if len > 0 {
        let mut last = [0u8];
        f.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            line.push('\n');
        }
    }
    line.push_str(&format!("{name} {} {}\n", key_type(blob), B64.encode(blob)));
    f.write_all(line.as_bytes())?;
    f.sync_all()
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

/// A passphrase or password: never printed, wiped when dropped.
struct Secret(zeroize::Zeroizing<String>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

fn authenticate(sess: &Session, t: &SshTarget, opts: &SshOptions) -> Result<()> {
    let user = t.user.as_str();
    let offered = match sess.auth_methods(user) {
        Ok(m) => m.to_string(),
        Err(_) if sess.authenticated() => return Ok(()),
        Err(e) => bail!("ssh:{t}: connection lost during authentication (step: auth): {e}"),
    };
    let mut tried: Vec<String> = Vec::new();

    let agent_sock = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty());
    if opts.use_agent && agent_sock.is_some() {
        match try_agent(sess, user) {
            Ok(true) => return Ok(()),
            Ok(false) => tried.push("agent".into()),
            Err(e) => tried.push(format!("agent (unusable: {})", e.message())),
        }
    }

    let keys = if opts.identities.is_empty() {
        home_dir()
            .map(|h| {
                ["id_ed25519", "id_ecdsa", "id_rsa"]
                    .iter()
                    .map(|k| h.join(".ssh").join(k))
                    .filter(|p| p.exists())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        opts.identities.clone()
    };
    for key in &keys {
        if try_key(sess, user, key, opts, &mut tried) {
            return Ok(());
        }
    }

    if opts.allow_password {
        match std::env::var(PASSWORD_ENV) {
            Ok(p) => {
                let p = Secret(p.into());
                if sess.userauth_password(user, &p.0).is_ok() && sess.authenticated() {
                    return Ok(());
                }
                tried.push("password".into());
            }
            Err(_) => tried.push(format!("password ({PASSWORD_ENV} is not set)")),
        }
    }

    let tried = if tried.is_empty() {
        "nothing: no ssh-agent and no key file in ~/.ssh; pass --identity".to_string()
    } else {
        tried.join(", ")
    };
    bail!(
        "authentication failed for {t} (tried: {tried}); the server accepts: {}",
        if offered.is_empty() { "?" } else { &offered }
    )
}

fn try_agent(sess: &Session, user: &str) -> Result<bool, ssh2::Error> {
    let mut agent = sess.agent()?;
    agent.connect()?;
    agent.list_identities()?;
    let mut ok = false;
    for id in agent.identities()? {
        if agent.userauth(user, &id).is_ok() && sess.authenticated() {
            ok = true;
            break;
        }
    }
    let _ = agent.disconnect();
    Ok(ok)
}

/// Offers one key file; notes what happened in `tried`.
fn try_key(
    sess: &Session,
    user: &str,
    key: &Path,
    opts: &SshOptions,
    tried: &mut Vec<String>,
) -> bool {
    let name = format!("key {}", key.display());
    let text = match fs::read(key) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tried.push(format!("{name} (no such file)"));
            return false;
        }
        Err(e) => {
            tried.push(format!("{name} (unreadable: {e})"));
            return false;
        }
    };
    let passphrase = if key_is_encrypted(&text) {
        match passphrase_for(key, opts) {
            Ok(p) => Some(p),
            Err(why) => {
                tried.push(format!("{name} ({why})"));
                return false;
            }
        }
    } else {
        None
    };
    let pass = passphrase.as_ref().map(|p| p.0.as_str());
    match sess.userauth_pubkey_file(user, None, key, pass) {
        Ok(()) if sess.authenticated() => true,
        Ok(()) => {
            tried.push(name);
            false
        }
        // The server said no.
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::Session(
                    raw::LIBSSH2_ERROR_AUTHENTICATION_FAILED
                        | raw::LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED
                )
            ) =>
        {
            tried.push(name);
            false
        }
        // The key could not be read or decrypted.
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::Session(
                    raw::LIBSSH2_ERROR_FILE | raw::LIBSSH2_ERROR_KEYFILE_AUTH_FAILED
                )
            ) =>
        {
            let why = if pass.is_some() {
                "wrong passphrase, or a key format libssh2 cannot read"
            } else {
                "a key format libssh2 cannot read"
            };
            tried.push(format!("{name} ({why})"));
            false
        }
        Err(e) => {
            tried.push(format!("{name} ({})", e.message()));
            false
        }
    }
}

/// True for an OpenSSH or PEM private key that is protected by a passphrase.
fn key_is_encrypted(text: &str) -> bool {
    const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    if let Some(start) = text.find(BEGIN) {
        let body: String = text[start + BEGIN.len()..]
            .lines()
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let Ok(raw) = B64.decode(body.trim()) else {
            return false;
        };
        let Some(rest) = raw.strip_prefix(b"openssh-key-v1\0") else {
            return false;
        };
        return key_type(rest) != "none";
    }
    text.contains("ENCRYPTED")
}

fn passphrase_for(key: &Path, opts: &SshOptions) -> Result<Secret, String> {
    if let Some(var) = &opts.passphrase_env {
        return match std::env::var(var) {
            Ok(p) => Ok(Secret(p.into())),
            Err(std::env::VarError::NotPresent) => Err(format!(
                "encrypted, and the passphrase variable ${var} is not set"
            )),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("encrypted, and ${var} is not valid UTF-8"))
            }
        };
    }
    if io::stdin().is_terminal() {
        return prompt_passphrase(key).map_err(|e| format!("encrypted; prompting failed: {e}"));
    }
    Err(
        "encrypted; name an environment variable holding the passphrase, or run on a terminal to \
         be asked"
            .to_string(),
    )
}

/// Asks on the terminal (/dev/tty), without echo.
fn prompt_passphrase(key: &Path) -> io::Result<Secret> {
    rpassword::prompt_password(format!("Enter passphrase for key {}: ", key.display()))
        .map(|p| Secret(p.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(user: &str, host: &str, port: u16) -> SshTarget {
        SshTarget {
            user: user.into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn targets_parse_with_defaults() {
        assert_eq!(SshTarget::parse("pve1").unwrap(), t("root", "pve1", 22));
        assert_eq!(
            SshTarget::parse("admin@pve1").unwrap(),
            t("admin", "pve1", 22)
        );
        assert_eq!(
            SshTarget::parse("admin@10.0.0.5:2222").unwrap(),
            t("admin", "10.0.0.5", 2222)
        );
        assert_eq!(
            SshTarget::parse("pve1.lan:22").unwrap(),
            t("root", "pve1.lan", 22)
        );
        assert_eq!("pve1:7".parse::<SshTarget>().unwrap(), t("root", "pve1", 7));
    }

    #[test]
    fn ipv6_targets_use_brackets_for_ports() {
        assert_eq!(
            SshTarget::parse("[::1]:2222").unwrap(),
            t("root", "::1", 2222)
        );
        assert_eq!(
            SshTarget::parse("u@[fe80::1]").unwrap(),
            t("u", "fe80::1", 22)
        );
        assert_eq!(
            SshTarget::parse("fe80::1").unwrap(),
            t("root", "fe80::1", 22)
        );
        let v6 = SshTarget::parse("[::1]:2222").unwrap();
        assert_eq!(v6.to_string(), "root@[::1]:2222");
        assert_eq!(v6.known_hosts_name(), "[::1]:2222");
        assert_eq!(t("root", "pve1", 22).known_hosts_name(), "pve1");
        assert_eq!(t("root", "pve1", 2200).known_hosts_name(), "[pve1]:2200");
    }

    #[test]
    fn junk_targets_are_refused_with_a_reason() {
        for (input, why) in [
            ("", "empty"),
            ("root@", "host is empty"),
            ("@pve1", "user name before '@' is empty"),
            ("a@b@c", "more than one '@'"),
            ("pve1:", "port \"\""),
            ("pve1:0", "port \"0\""),
            ("pve1:65536", "port \"65536\""),
            ("pve1:+22", "port \"+22\""),
            ("pve1:ssh", "port \"ssh\""),
            ("pve 1", "whitespace"),
            ("[::1", "no closing"),
            ("[pve1]:22", "not an IPv6 address"),
            ("[::1]x", "only ':PORT'"),
            ("fe80::1:22:zz", "in brackets"),
            ("-oProxyCommand=x", "not a host name"),
            ("ro;ot@pve1", "user name may only"),
            ("pve1/x", "not a host name"),
        ] {
            let err = SshTarget::parse(input).unwrap_err().to_string();
            assert!(err.contains(why), "{input:?}: {err}");
            assert!(err.contains("[user@]host[:port]"), "{input:?}: {err}");
        }
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        // `ssh-keygen -lf` output for these public keys.
        let ed = "AAAAC3NzaC1lZDI1NTE5AAAAIEV9jrlnUCJHVKIWZMwUDG0wKoknpSSgAgvl8N0krTUX";
        let blob = B64.decode(ed).unwrap();
        assert_eq!(
            fingerprint(&blob),
            "SHA256:ubm68nEYhsfrGw3iLG2CRv5azXi8uJr43DKO4/+hXH8"
        );
        assert_eq!(key_type(&blob), "ssh-ed25519");
        assert_eq!(key_type_label(key_type(&blob)), "ED25519");
        let ec = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFAbx6IpUUjIJNNxqOZ1VUi8CJ27ik\
                  476tFRMLTzYLQtL/sseGsBhwiJi39iJkh4h2rsgtcn1KTZrPIYsiFwtz8=";
        let blob = B64.decode(ec).unwrap();
        assert_eq!(
            fingerprint(&blob),
            "SHA256:hMD3Y/qu3CGzUpEwZI2UEybJyFKYgOm3VCFp/npHLBM"
        );
        assert_eq!(key_type_label(key_type(&blob)), "ECDSA");
        assert_eq!(B64.encode(&blob), ec);
        assert_eq!(key_type(b"\0\0"), "unknown");
    }

    #[test]
    fn encrypted_keys_are_recognised() {
        let openssh = |cipher: &str| {
            let mut raw = b"openssh-key-v1\0".to_vec();
            raw.extend((cipher.len() as u32).to_be_bytes());
            raw.extend(cipher.as_bytes());
            raw.extend([0u8; 20]);
            format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
                B64.encode(&raw)
            )
        };
        assert!(key_is_encrypted(&openssh("aes256-ctr")));
        assert!(!key_is_encrypted(&openssh("none")));
        assert!(key_is_encrypted(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        ));
        assert!(!key_is_encrypted("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"));
    }

    #[test]
    fn seconds_print_briefly() {
        assert_eq!(fmt_secs(Duration::from_secs(5)), "5 s");
        assert_eq!(fmt_secs(Duration::from_millis(300)), "0.3 s");
        assert_eq!(fmt_secs(Duration::from_millis(1250)), "1.25 s");
    }

    #[test]
    fn secrets_do_not_debug_print() {
        assert_eq!(
            format!("{:?}", Secret(String::from("hunter2").into())),
            "***"
        );
    }
}
