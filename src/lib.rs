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
pub mod cmd;
pub mod commands;
pub mod doctor;
pub mod error;
pub mod facts;
pub mod known_issues;
pub mod labfile;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod quote;
pub mod release;
pub mod report;
pub mod request;
pub mod rootdisk;
pub mod schema;
pub mod summary;
pub mod text;
pub mod transport;
pub mod validate;
pub mod view;

/// Writes to stdout; a closed stdout (`provision ... | head`) ends the process quietly with
/// status 0 instead of a panic. SIGPIPE stays ignored (Rust's default), so a child or an SSH
/// peer that goes away is an error to handle, never a silent death.
///
/// This is the edge where text reaches the terminal: whatever it holds (names and values from
/// input, answers from a node, output from a container), characters that could drive the
/// terminal or hide text are shown escaped ([`error::for_stream`]).
pub fn write_stdout(text: &str) {
    use std::io::Write;
    let text = error::for_stream(text);
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Writes to stderr, escaped like [`write_stdout`] (messages, questions, errors). A failed
/// write to stderr is ignored: there is nowhere left to say it.
pub fn write_stderr(text: &str) {
    use std::io::Write;
    let text = error::for_stream(text);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// `eprint!` through [`write_stderr`].
#[macro_export]
macro_rules! err_out {
    ($($t:tt)*) => { $crate::write_stderr(&format!($($t)*)) };
}

/// `eprintln!` through [`write_stderr`].
#[macro_export]
macro_rules! err_outln {
    () => { $crate::write_stderr("\n") };
    ($($t:tt)*) => { $crate::write_stderr(&format!("{}\n", format_args!($($t)*))) };
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
