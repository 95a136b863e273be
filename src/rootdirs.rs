//! The directories the tool keeps for itself on a machine (run as root on a node): the lock
//! directory under the world-writable /run/lock, the staging directory /run/provision, and the
//! files in them.
//!
//! One rule, kept here: such a directory is created mode 0700 by this user, or, when it is
//! already there, it must be a real directory (not a symbolic link) owned by this user and not
//! open to group or others. Anything else is refused with a message naming the directory: a
//! local user who pre-created /run/lock/provision, or planted a link there, would otherwise
//! make root create files where that user chose, or hold every run's lock. Files in it are
//! opened with `O_NOFOLLOW`. The node scripts (node-lock.sh, node-fetch-fuse-overlayfs.sh) apply
//! the same rule in shell for nodes reached over SSH.

use anyhow::{Result, bail};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// This process's effective user ID.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (0700) when missing, then checks it as the module says. Its parent must exist.
pub fn private_dir(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => bail!("cannot create the directory {}: {e}", dir.display()),
    }
    check_private_dir(dir)
}

/// Checks an existing directory as the module says (`lstat`: a link is not followed).
pub fn check_private_dir(dir: &Path) -> Result<()> {
    let shown = dir.display();
    let m = fs::symlink_metadata(dir).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let fix = "remove it (it is recreated owner-only), then run again";
    if m.file_type().is_symlink() {
        bail!("{shown} is a symbolic link, not a directory of its own: refused; {fix}");
    }
    if !m.is_dir() {
        bail!("{shown} is not a directory: refused; {fix}");
    }
    if m.uid() != euid() {
        bail!(
            "{shown} is owned by user ID {}, not by this user ({}): refused (another user could plant files in it or hold its locks); {fix}",
            m.uid(),
            euid()
        );
    }
    if m.mode() & 0o077 != 0 {
        bail!(
            "{shown} has mode {:04o}; it must be owner-only (0700): refused; {fix}",
            m.mode() & 0o7777
        );
    }
    Ok(())
}

/// Opens (creating it 0600 when missing) the file `path` in a private directory for reading
/// and writing, without following a link, and checks it is a regular file of this user.
pub fn open_private_file(path: &Path, truncate: bool, mode: u32) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    let m = f.metadata()?;
    if !m.is_file() || m.uid() != euid() {
        bail!(
            "{} is not a regular file of this user: refused",
            path.display()
        );
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_directory_is_owner_only_and_links_or_open_directories_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("locks");
        private_dir(&d).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o700);
        private_dir(&d).unwrap();

        let link = t.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let e = private_dir(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");

        let open = t.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        let e = private_dir(&open).unwrap_err().to_string();
        assert!(e.contains("mode 1777"), "{e}");

        let file = t.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(private_dir(&file).is_err());
    }

    #[test]
    fn a_link_in_place_of_a_file_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        fs::write(&target, "keep").unwrap();
        let link = t.path().join("x.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_private_file(&link, true, 0o600).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        let f = t.path().join("y.lock");
        open_private_file(&f, false, 0o600).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
    }
}
