//! What QEMU may reach in skiff's private data directory. skiff writes everything with
//! umask 077; QEMU, which runs as its own user, gets exactly a path to the files of the
//! guests it runs: the directories on that path are `0710 root:<qemu group>` (enter,
//! never list), and libvirt hands each disk and seed to the QEMU user while the guest
//! runs (its dynamic ownership). Template bases are `0640 root:<qemu group>`: shared by
//! many guests, read-only to all of them. Decision 0008 says why not 0700 throughout.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::ComputeError;

/// The QEMU group's id, resolved once from its name.
#[derive(Clone, Copy, Debug)]
pub struct QemuAccess {
    gid: u32,
}

fn host_err(path: &Path, reason: String) -> ComputeError {
    ComputeError::Host {
        what: format!("setting access on {}", path.display()),
        reason,
    }
}

impl QemuAccess {
    /// Looks up `group` (Debian: `libvirt-qemu`, Fedora: `qemu`).
    pub fn resolve(group: &str) -> Result<QemuAccess, ComputeError> {
        let missing = || {
            ComputeError::Host {
            what: format!("QEMU group {group:?}"),
            reason: "no such group on this host (set [compute] qemu_group to the group libvirt runs QEMU with)".into(),
        }
        };
        let name = CString::new(group).map_err(|_| missing())?;
        // SAFETY: `name` is a valid NUL-terminated string; getgrnam returns NULL or a
        // pointer to static storage that we read at once, before any other call.
        let gr = unsafe { libc::getgrnam(name.as_ptr()) };
        if gr.is_null() {
            return Err(missing());
        }
        // SAFETY: `gr` is non-null and points at a valid `struct group`.
        Ok(QemuAccess {
            gid: unsafe { (*gr).gr_gid },
        })
    }

    fn set(&self, path: &Path, mode: u32) -> Result<(), ComputeError> {
        std::os::unix::fs::chown(path, Some(0), Some(self.gid))
            .map_err(|e| host_err(path, e.to_string()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| host_err(path, e.to_string()))
    }

    /// A directory on the way to a guest's files: QEMU may enter it, not list it.
    pub fn traverse(&self, dir: &Path) -> Result<(), ComputeError> {
        self.set(dir, 0o710)
    }

    /// A template base image: read by the QEMU of every guest built on it.
    pub fn shared_read(&self, file: &Path) -> Result<(), ComputeError> {
        self.set(file, 0o640)
    }
}

/// Makes `dir` private to skiff (0700), creating it when missing.
pub fn private_dir(dir: &Path) -> Result<(), ComputeError> {
    std::fs::create_dir_all(dir).map_err(|e| host_err(dir, e.to_string()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| host_err(dir, e.to_string()))
}

/// Everything this process creates from now on is private to it: files 0600,
/// directories 0700. Called first thing in `main`.
pub fn private_umask() {
    // SAFETY: umask only changes this process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn traverse_only_directories_and_shared_read_bases() {
        let d = tempfile::tempdir().unwrap();
        let a = QemuAccess::resolve("root").unwrap();
        let sub = d.path().join("vms");
        private_dir(&sub).unwrap();
        assert_eq!(std::fs::metadata(&sub).unwrap().mode() & 0o7777, 0o700);
        a.traverse(&sub).unwrap();
        assert_eq!(std::fs::metadata(&sub).unwrap().mode() & 0o7777, 0o710);
        let f = sub.join("base.qcow2");
        std::fs::write(&f, b"x").unwrap();
        a.shared_read(&f).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o7777, 0o640);
        assert!(QemuAccess::resolve("no-such-group-skiff").is_err());
    }
}
