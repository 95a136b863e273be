pub mod pve_path;
pub mod sshd;
