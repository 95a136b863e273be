//! The shared, non-blocking libssh2 session: every libssh2 call under one mutex, waiting for the
//! socket without it, channels retired and reaped.

use super::*;

/// What an attempt at a non-blocking step achieved.
pub(super) enum Step<T> {
    Done(T),
    /// Something moved; try again at once.
    Progress,
    /// Nothing to do until the socket is ready.
    Again,
}

/// Why a step did not complete.
#[derive(Debug)]
pub(super) enum Fail {
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

pub(super) fn is_eagain(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(raw::LIBSSH2_ERROR_EAGAIN)
}

pub(super) fn is_disconnect(code: ErrorCode) -> bool {
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

pub(super) fn is_not_found(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::SFTP(raw::LIBSSH2_FX_NO_SUCH_FILE | raw::LIBSSH2_FX_NO_SUCH_PATH)
    )
}

/// Everything libssh2 touches, only ever used under [`Conn::state`].
pub(super) struct State {
    pub(super) sess: Session,
    pub(super) sftp: Option<Sftp>,
    /// Channels that were given up on and still wait for the server's close.
    pub(super) closing: Vec<Channel>,
}

impl State {
    /// Frees the channels whose close has completed meanwhile.
    pub(super) fn reap(&mut self) {
        self.closing
            .retain_mut(|ch| matches!(ch.close(), Err(e) if is_eagain(&e)));
    }
}

pub(super) struct Conn {
    pub(super) state: Mutex<State>,
    /// Held from a channel's open until its request (exec, subsystem) is answered. libssh2 reads
    /// whatever packet arrives: when two channels wait for their answers at once, the thread
    /// that reads the other channel's CHANNEL_SUCCESS gives up with "Failed waiting for channel
    /// success" although its own request may have been accepted (and its command started), so
    /// it cannot be retried safely. One start at a time avoids it; data keeps flowing on the
    /// channels already started.
    pub(super) starting: Mutex<()>,
    pub(super) fd: RawFd,
    pub(super) label: String,
}

impl Conn {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` under the session lock until it is done, waiting for the socket (without the
    /// lock) whenever it has to.
    pub(super) fn drive<T>(
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
    pub(super) fn call<T>(
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
    pub(super) fn sftp<T>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&Sftp) -> Result<T, ssh2::Error>,
    ) -> Result<T, Fail> {
        let _starting = (self.lock().sftp.is_none())
            .then(|| self.starting.lock().unwrap_or_else(PoisonError::into_inner));
        self.call(deadline, |st| {
            if st.sftp.is_none() {
                st.sftp = Some(st.sess.sftp()?);
            }
            f(st.sftp.as_ref().expect("just set"))
        })
    }

    pub(super) fn wait_socket(&self, dirs: BlockDirections, deadline: Option<Instant>) {
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
    pub(super) fn retire(&self, mut ch: Channel) {
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
    pub(super) fn finish(
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
pub(super) struct Chan {
    pub(super) conn: Arc<Conn>,
    pub(super) ch: Option<Channel>,
}

impl Chan {
    pub(super) fn get(&mut self) -> &mut Channel {
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
pub(super) fn drain(
    st: &State,
    ch: &mut Channel,
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> Result<bool, Fail> {
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
pub(super) fn io_fail(st: &State, e: io::Error) -> Fail {
    match ssh2::Error::last_session_error(&st.sess) {
        Some(last) if is_disconnect(last.code()) => Fail::Lost(last.to_string()),
        _ => Fail::Other(e.to_string()),
    }
}
