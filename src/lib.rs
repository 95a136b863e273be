//! provision: Docker-ready unprivileged LXC containers on Proxmox VE from TOML profiles.
//!
//! The shape: facts are read ([`facts`]), a pure planner decides the steps ([`plan`]), the
//! applier runs them through a [`transport::Transport`] ([`apply`]), and a report says what
//! happened ([`report`]). The binary's `main` only parses arguments and calls [`commands`].

pub mod addresses;
pub mod apply;
pub mod batch;
pub mod cli;
pub mod cmd;
pub mod commands;
pub mod doctor;
pub mod error;
pub mod facts;
pub mod input;
pub mod known_issues;
pub mod labfile;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod quote;
pub mod release;
pub mod report;
pub mod request;
pub mod rootdirs;
pub mod rootdisk;
pub mod summary;
pub mod text;
pub mod transport;
pub mod validate;
pub mod view;

/// Writes to stdout; a closed stdout (`provision ... | head`) ends the process quietly with
/// status 0 instead of a panic. SIGPIPE stays ignored (Rust's default), so a child or an SSH
/// peer that goes away is an error to handle, never a silent death.
pub fn write_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
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
