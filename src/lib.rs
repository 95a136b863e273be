//! provision: Docker-ready unprivileged LXC containers on Proxmox VE from TOML profiles.
//!
//! The shape: facts are read ([`facts`]), a pure planner decides the steps ([`plan`]), the
//! applier runs them through a [`transport::Transport`] ([`apply`]), and a report says what
//! happened ([`report`]). The binary's `main` only parses arguments and calls [`commands`].
//! What the user asked for is a [`request`]; commands are values ([`cmd`]). Modules import one
//! another in that direction only (tests/structure.rs checks it); docs/layout.md maps the files.

pub mod addresses;
pub mod apply;
pub mod batch;
pub mod cli;
pub mod cluster;
pub mod cmd;
pub mod commands;
pub mod doctor;
pub mod error;
pub mod facts;
pub mod image;
pub mod input;
pub mod known_issues;
pub mod labfile;
pub mod mounts;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod quote;
pub mod release;
pub mod report;
pub mod request;
pub mod rootdirs;
pub mod rootdisk;
pub mod schema;
pub mod summary;
pub mod text;
pub mod transport;
pub mod validate;
pub mod view;

use std::sync::atomic::{AtomicBool, Ordering};

/// Set on SIGINT/SIGTERM by the signal watch ([`batch::SignalWatch`]): lock waits give up, and
/// the process exits with 130 whatever the outcome of the steps that were let finish.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Records an interrupt (SIGINT/SIGTERM).
pub fn note_interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// True once an interrupt was received.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Makes sure file descriptors 0, 1 and 2 are open (on /dev/null when the caller closed them:
/// `provision ... >&-`): otherwise the first file the tool opens would become its stdout or
/// stderr, and its output would be written into a profile or a lock file.
pub fn guard_stdio() {
    for fd in 0..3 {
        // SAFETY: fcntl(F_GETFD) only queries the descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        // SAFETY: open with a NUL-terminated constant path; dup2 onto the free descriptor.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 && null != fd {
                libc::dup2(null, fd);
                libc::close(null);
            }
        }
    }
}

/// Set once stdout could not be written (a closed pipe: `provision ... | head -c1`).
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Writes to stdout. When stdout is gone (a reader that went away, a full disk) the rest of
/// the output is dropped and the run goes on: the exit status still says how the run went
/// (0 done, 1 failed, 2 bad input, 130 interrupted), never a panic and never a false 0.
/// SIGPIPE stays ignored (Rust's default), so a child or an SSH peer that goes away is an
/// error to handle, never a silent death.
///
/// This is the edge where text reaches the terminal: whatever it holds (names and values from
/// input, answers from a node, output from a container), characters that could drive the
/// terminal or hide text are shown escaped ([`error::for_stream`]).
pub fn write_stdout(text: &str) {
    use std::io::Write;
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let text = error::for_stream(text);
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
}

/// Writes to stderr, escaped like [`write_stdout`], never failing: a closed or broken stderr
/// loses the message, and the exit status still tells the outcome (`eprintln!` would panic,
/// exit 101).
pub fn write_stderr(text: &str) {
    use std::io::Write;
    let text = error::for_stream(text);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// `print!` through [`write_stdout`].
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::write_stdout(&format!($($t)*)) };
}

/// `println!` through [`write_stdout`].
#[macro_export]
macro_rules! outln {
    () => { $crate::write_stdout("\n") };
    ($($t:tt)*) => { $crate::write_stdout(&format!("{}\n", format_args!($($t)*))) };
}

/// `eprint!` through [`write_stderr`].
#[macro_export]
macro_rules! err {
    ($($t:tt)*) => { $crate::write_stderr(&format!($($t)*)) };
}

/// `eprintln!` through [`write_stderr`].
#[macro_export]
macro_rules! errln {
    () => { $crate::write_stderr("\n") };
    ($($t:tt)*) => { $crate::write_stderr(&format!("{}\n", format_args!($($t)*))) };
}
