pub mod converge;
pub mod fake;
pub mod jobs;
pub mod pve_path;
pub mod sshd;
