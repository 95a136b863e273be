//! The one way a file named by the user is read: profiles, `extends`, lab files, `--profile`,
//! `root_password.file`, `files[].source`, `--identity`, `--known-hosts`.
//!
//! An input file is a regular file on a real file system, of bounded size:
//! - it is looked at (`stat`) before it is opened, and a FIFO, socket, device or directory is
//!   refused without opening it (opening a FIFO waits for a writer; `/dev/zero` never ends);
//! - it is opened with `O_NONBLOCK | O_NOCTTY | O_CLOEXEC`, and the opened descriptor is checked
//!   again (`fstat`, not the path: a file swapped between the two looks is caught);
//! - files of the kernel's pseudo file systems (`/proc`, `/sys`, cgroup, debugfs, ...) look
//!   like regular files of size 0 but are generated on reading (`/proc/self/environ` is this
//!   process's environment, passwords included): they are refused, by file-system type;
//! - nothing under `/dev`, `/proc` or `/sys` (where the opened file really is, symbolic links
//!   resolved), whatever its type: those are the machine's, not the user's input;
//! - at most `limit` bytes are read, and a longer file is refused, whatever its `stat` size
//!   said (the limit is enforced while reading).
//!
//! Refusals are `io::Error`s of kind `InvalidInput` whose message says what the file is; the
//! caller names the file and the field it came from. A missing file stays `NotFound`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Profiles and lab files: small text files.
pub const TEXT_LIMIT: u64 = 1 << 20;
/// `root_password.file`.
pub const PASSWORD_LIMIT: u64 = 4096;
/// One `files[].source` (the bytes are held in memory and pushed into every container).
pub const SOURCE_LIMIT: u64 = 16 << 20;
/// An SSH private key.
pub const KEY_LIMIT: u64 = 1 << 20;
/// A known_hosts file.
pub const KNOWN_HOSTS_LIMIT: u64 = 16 << 20;

/// What a non-regular file is, for messages.
fn kind_of(ft: std::fs::FileType) -> Option<&'static str> {
    if ft.is_file() {
        None
    } else if ft.is_dir() {
        Some("a directory")
    } else if ft.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else {
        Some("not a regular file")
    }
}

fn refused(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Refuses anything but a regular file.
fn regular(meta: &std::fs::Metadata) -> io::Result<()> {
    match kind_of(meta.file_type()) {
        None => Ok(()),
        Some(k) => Err(refused(format!("it is {k}, not a regular file"))),
    }
}

/// The name of the kernel pseudo file system the open file `f` lives on, if it does.
fn pseudo_fs(f: &File) -> io::Result<Option<&'static str>> {
    use std::os::fd::AsRawFd;
    // SAFETY: fstatfs writes only into the zeroed struct we own; the descriptor is open.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs fills `st`, which lives for the call; the descriptor is open.
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Magic numbers from linux/magic.h.
    let name = match st.f_type as u64 {
        0x9fa0 => "proc",
        0x6265_6572 => "sysfs",
        0x0027_e0eb => "cgroup",
        0x6367_7270 => "cgroup2",
        0x6462_6720 => "debugfs",
        0x7472_6163 => "tracefs",
        0x7363_6673 => "securityfs",
        0x6265_6570 => "configfs",
        0xde5e_81e4 => "efivarfs",
        0xcafe_4a11 => "bpf",
        0x6165_676c => "pstore",
        _ => return Ok(None),
    };
    Ok(Some(name))
}

/// `/dev`, `/proc` or `/sys` when the open file `f` (opened from `path`) lies under one.
fn system_tree(f: &File, path: &Path) -> Option<&'static str> {
    use std::os::fd::AsRawFd;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(path))
        .ok()?;
    ["/dev", "/proc", "/sys"]
        .into_iter()
        .find(|top| real.starts_with(top))
}

/// Reads the input file `path`: a regular file on a real file system, at most `limit` bytes
/// (see the module's rules). Never blocks on a FIFO or a device.
pub fn read_input(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    // Look first: a FIFO or a device is never opened.
    regular(&std::fs::metadata(path)?)?;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let meta = f.metadata()?;
    regular(&meta)?;
    if let Some(top) = system_tree(&f, path) {
        return Err(refused(format!(
            "it lies under {top} (the machine's devices and kernel state), which is never read as input"
        )));
    }
    if let Some(fs) = pseudo_fs(&f)? {
        return Err(refused(format!(
            "it is a file of the kernel's {fs} file system (generated when read, it may hold \
             this process's environment or the host's state), not a regular file"
        )));
    }
    let too_big = || {
        refused(format!(
            "it is larger than {limit} bytes, the most this file may hold"
        ))
    };
    if meta.len() > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Why `path` is not something [`read_input`] could read, from `stat` alone (never opens it):
/// missing, or a directory, FIFO, socket or device; None for a regular file.
pub fn not_regular(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some("does not exist".into()),
        Err(e) => Some(format!("cannot be looked at ({e})")),
        Ok(m) => kind_of(m.file_type()).map(|k| format!("is {k}, not a regular file")),
    }
}

/// True for a path whose target is a regular file (`stat`, never opens it): what a directory
/// listing or a search keeps.
pub fn is_regular(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(path: &str, limit: u64) -> String {
        read_input(Path::new(path), limit).unwrap_err().to_string()
    }

    #[test]
    fn devices_fifos_directories_and_pseudo_files_are_refused_without_blocking() {
        assert!(msg("/dev/zero", 10).contains("a character device"));
        assert!(msg("/dev/urandom", 10).contains("a character device"));
        assert!(msg("/tmp", 10).contains("a directory"));
        assert!(msg("/proc/self/environ", 1 << 20).contains("under /proc"));
        assert!(msg("/sys/kernel/mm/transparent_hugepage/enabled", 1 << 20).contains("/sys"));
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_input(&fifo, 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("FIFO"), "{e}");
    }

    #[test]
    fn the_limit_is_enforced_and_a_missing_file_stays_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_input(&p, 5).unwrap(), b"12345");
        assert!(
            read_input(&p, 4)
                .unwrap_err()
                .to_string()
                .contains("larger than 4")
        );
        let missing = read_input(&dir.path().join("nope"), 5).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        // A link from elsewhere into /proc is followed to where it leads.
        let link = dir.path().join("env");
        std::os::unix::fs::symlink("/proc/self/environ", &link).unwrap();
        assert!(
            read_input(&link, 1 << 20)
                .unwrap_err()
                .to_string()
                .contains("under /proc")
        );
        assert!(is_regular(&p) && !is_regular(dir.path()) && !is_regular(Path::new("/dev/null")));
    }
}
