//! Block volumes: standalone qcow2 files holding an empty file system from birth. The
//! file system is made on a sparse raw file with the distribution's `mkfs` (which
//! writes a regular file as readily as a device: nothing is mounted, no loop device),
//! then converted to qcow2 so volumes get the same bitmaps and snapshots as root disks.

use std::path::Path;
use std::process::Command;

use super::{disk, ComputeError};

/// The file systems a volume can be born with.
pub const FILESYSTEMS: &[&str] = &["ext4", "xfs", "btrfs"];

fn host(what: String, reason: impl Into<String>) -> ComputeError {
    ComputeError::Host {
        what,
        reason: reason.into(),
    }
}

/// `mkfs` of `fs` on the raw file `raw`, labelled `label` (cut to XFS's 12
/// characters). The flags make each tool write a file without asking and without
/// discarding (a file has nothing to trim).
fn mkfs(fs: &str, raw: &Path, label: &str) -> Result<(), ComputeError> {
    let label: String = label.chars().take(12).collect();
    let (tool, args): (&str, &[&str]) = match fs {
        // The file is new and sparse: it reads as zeros, so nothing need be zeroed.
        "ext4" => (
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-E",
                "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
                "-L",
            ],
        ),
        "xfs" => ("mkfs.xfs", &["-q", "-f", "-K", "-L"]),
        "btrfs" => ("mkfs.btrfs", &["-q", "-f", "-K", "-L"]),
        other => return Err(host(format!("file system {other:?}"), "not supported")),
    };
    let what = format!("making {fs} on {}", raw.display());
    let out = Command::new(tool)
        .args(args)
        .arg(&label)
        .arg(raw)
        .output()
        .map_err(|e| host(what.clone(), format!("cannot run {tool}: {e}")))?;
    if !out.status.success() {
        return Err(host(
            what,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Makes the volume file `out` (qcow2, `size_gib`, holding an empty `fs` labelled
/// `label`) through `out.raw` beside it, which is removed again. Repeatable: a
/// leftover of an interrupted attempt is overwritten (create truncates, qemu-img
/// writes its output anew).
pub fn create(out: &Path, size_gib: u64, fs: &str, label: &str) -> Result<(), ComputeError> {
    let raw = out.with_extension("raw");
    let tmp = out.with_extension("qcow2.tmp");
    let what = |p: &Path| format!("creating {}", p.display());
    let made = (|| {
        let f = std::fs::File::create(&raw).map_err(|e| host(what(&raw), e.to_string()))?;
        f.set_len(size_gib << 30)
            .map_err(|e| host(what(&raw), e.to_string()))?;
        drop(f);
        mkfs(fs, &raw, label)?;
        disk::convert_to_qcow2(&raw, disk::Format::Raw, &tmp)?;
        std::fs::rename(&tmp, out).map_err(|e| host(what(out), e.to_string()))
    })();
    let _ = std::fs::remove_file(&raw);
    let _ = std::fs::remove_file(&tmp);
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which file system `blkid` finds at the start of `raw`.
    fn probe_fs(raw: &Path) -> Option<String> {
        let out = Command::new("blkid")
            .args(["-p", "-o", "value", "-s", "TYPE"])
            .arg(raw)
            .output()
            .ok()?;
        let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!t.is_empty()).then_some(t)
    }

    fn have(tool: &str) -> bool {
        Command::new(tool).arg("-V").output().is_ok()
    }

    #[test]
    fn each_volume_is_born_with_its_file_system_and_nothing_else_remains() {
        let dir = tempfile::tempdir().unwrap();
        for fs in FILESYSTEMS {
            let tool = format!("mkfs.{fs}");
            if !have(&tool) {
                assert!(
                    std::env::var("CI").is_err(),
                    "{tool} is missing (scripts/lib.sh installs it)"
                );
                continue;
            }
            let out = dir.path().join(format!("{fs}.qcow2"));
            // A leftover of an interrupted attempt is replaced.
            std::fs::write(out.with_extension("raw"), b"junk").unwrap();
            create(&out, 2, fs, "skiff-vol-1").unwrap();
            assert_eq!(
                disk::virtual_size(&out, disk::Format::Qcow2).unwrap(),
                2 << 30
            );
            let back = dir.path().join(format!("{fs}.check"));
            let st = Command::new("qemu-img")
                .args(["convert", "-f", "qcow2", "-O", "raw"])
                .arg(&out)
                .arg(&back)
                .status()
                .unwrap();
            assert!(st.success());
            assert_eq!(probe_fs(&back).as_deref(), Some(*fs));
            std::fs::remove_file(&back).unwrap();
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".qcow2"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_unknown_file_system_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("v.qcow2");
        assert!(create(&out, 1, "ntfs", "x").is_err());
        assert!(!out.exists());
    }
}
