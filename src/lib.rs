//! provision: Docker-ready unprivileged LXC containers on Proxmox VE from TOML profiles.
//!
//! The shape: facts are read ([`facts`]), a pure planner decides the steps ([`plan`]), the
//! applier runs them through a [`transport::Transport`] ([`apply`]), and a report says what
//! happened ([`report`]). The binary's `main` only parses arguments and calls [`commands`].

pub mod apply;
pub mod batch;
pub mod cli;
pub mod cmd;
pub mod commands;
pub mod doctor;
pub mod error;
pub mod facts;
pub mod labfile;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod quote;
pub mod report;
pub mod transport;
pub mod validate;
