//! Where a backup reads a disk from: a raw image file (all of it, or the ranges a dirty
//! bitmap named), or the output of a QEMU incremental backup, a qcow2 whose own
//! clusters are exactly the blocks the bitmap recorded.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{io, BackupError};

/// A disk to back up. `read_at` takes `&self` (positioned reads), so several threads
/// read one source at once.
pub trait Source: Sync {
    /// The disk's size in bytes.
    fn size(&self) -> u64;
    /// Byte ranges (offset, length) that changed since the series' previous point, or
    /// `None` when anything may have changed and the whole disk must be read.
    fn changed(&self) -> Option<Vec<(u64, u64)>>;
    /// Fills `buf` with the disk's bytes from `offset`; short only at the disk's end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, BackupError>;
    /// Whether `len` bytes from `offset` are known to read as zero without reading
    /// them (a hole in a sparse file). `false` when unsure.
    fn is_hole(&self, _offset: u64, _len: u64) -> bool {
        false
    }
}

/// A raw disk image file.
pub struct RawImage {
    file: File,
    size: u64,
    changed: Option<Vec<(u64, u64)>>,
    name: String,
}

impl RawImage {
    /// The whole image.
    pub fn open(path: &Path) -> Result<RawImage, BackupError> {
        let file = File::open(path).map_err(io(format!("opening {}", path.display())))?;
        let size = file
            .metadata()
            .map_err(io(format!("reading the size of {}", path.display())))?
            .len();
        Ok(RawImage {
            file,
            size,
            changed: None,
            name: path.display().to_string(),
        })
    }

    /// Only `changed` ranges differ from the previous point (the caller vouches).
    pub fn with_changed(mut self, changed: Vec<(u64, u64)>) -> RawImage {
        self.changed = Some(changed);
        self
    }
}

impl Source for RawImage {
    fn size(&self) -> u64 {
        self.size
    }

    fn is_hole(&self, offset: u64, len: u64) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: lseek on a descriptor this value owns; SEEK_DATA only reports where
        // the next data is (the shared offset it moves is unused: reads are positioned).
        let next = unsafe {
            libc::lseek(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                libc::SEEK_DATA,
            )
        };
        if next < 0 {
            // ENXIO: no data after `offset` at all.
            return std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO);
        }
        next as u64 >= offset + len
    }

    fn changed(&self) -> Option<Vec<(u64, u64)>> {
        self.changed.clone()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, BackupError> {
        let want = buf.len().min(self.size.saturating_sub(offset) as usize);
        let mut n = 0;
        while n < want {
            match self.file.read_at(&mut buf[n..want], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(format!("reading {}", self.name))(e)),
            }
        }
        Ok(n)
    }
}

/// One line of `qemu-img map --output=json`.
#[derive(serde::Deserialize)]
pub(super) struct MapEntry {
    pub start: u64,
    pub length: u64,
    pub depth: u64,
    #[serde(default)]
    pub present: bool,
    #[serde(default)]
    pub zero: bool,
    #[serde(default)]
    pub data: bool,
    pub offset: Option<u64>,
}

pub(super) fn map_entries(json: &str) -> Result<Vec<MapEntry>, BackupError> {
    serde_json::from_str(json)
        .map_err(|e| BackupError::Invalid(format!("not qemu-img map JSON: {e}")))
}

/// One extent the top image of a QEMU incremental backup holds itself.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Extent {
    start: u64,
    length: u64,
    /// Where its bytes are in the qcow2 file; `None` for an extent that reads as zero.
    host: Option<u64>,
}

/// The output of a QEMU push-mode incremental backup (uncompressed qcow2, backed by
/// the live disk), read without QEMU: `qemu-img map --output=json` tells which guest
/// ranges the file holds (depth 0) and at which file offsets. Only those ranges are
/// read; asking for anything else is an error, never a silent read of the backing disk
/// (which has moved on since the backup).
pub struct QemuIncrement {
    file: File,
    size: u64,
    extents: Vec<Extent>,
    name: String,
}

impl QemuIncrement {
    /// `map_json` is `qemu-img map --output=json` of `qcow2`.
    pub fn open(qcow2: &Path, map_json: &str) -> Result<QemuIncrement, BackupError> {
        let entries = map_entries(map_json)?;
        let size = entries
            .iter()
            .map(|e| e.start + e.length)
            .max()
            .unwrap_or(0);
        let mut extents = Vec::new();
        for e in entries.iter().filter(|e| e.depth == 0 && e.present) {
            let host = match (e.data, e.offset) {
                (true, Some(off)) => Some(off),
                (false, _) if e.zero => None,
                _ => {
                    return Err(BackupError::Invalid(format!(
                        "extent at {} of {} has data but no file offset (compressed?)",
                        e.start,
                        qcow2.display()
                    )))
                }
            };
            extents.push(Extent {
                start: e.start,
                length: e.length,
                host,
            });
        }
        let file = File::open(qcow2).map_err(io(format!("opening {}", qcow2.display())))?;
        Ok(QemuIncrement {
            file,
            size,
            extents,
            name: qcow2.display().to_string(),
        })
    }
}

impl Source for QemuIncrement {
    fn size(&self) -> u64 {
        self.size
    }

    fn changed(&self) -> Option<Vec<(u64, u64)>> {
        Some(self.extents.iter().map(|e| (e.start, e.length)).collect())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, BackupError> {
        let want = buf.len().min(self.size.saturating_sub(offset) as usize);
        let end = offset + want as u64;
        let mut pos = offset;
        // Extents are sorted and disjoint (qemu-img prints them in order).
        let first = self
            .extents
            .partition_point(|e| e.start + e.length <= offset);
        for e in &self.extents[first..] {
            if pos >= end {
                break;
            }
            if e.start > pos {
                break; // a hole: not in the increment
            }
            let upto = end.min(e.start + e.length);
            let dst = &mut buf[(pos - offset) as usize..(upto - offset) as usize];
            match e.host {
                None => dst.fill(0),
                Some(host) => self
                    .file
                    .read_exact_at(dst, host + (pos - e.start))
                    .map_err(io(format!("reading {}", self.name)))?,
            }
            pos = upto;
        }
        if pos < end {
            return Err(BackupError::Invalid(format!(
                "bytes {pos}..{end} are not in the incremental image {}: its clusters do not \
                 cover whole chunks; take a full backup",
                self.name
            )));
        }
        Ok(want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_increment_reads_its_own_extents_and_refuses_holes() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("inc.qcow2");
        let mut bytes = vec![0u8; 3 * 65536];
        bytes[65536..131072].fill(7);
        bytes[131072..].fill(9);
        std::fs::write(&q, &bytes).unwrap();
        let map = r#"[{"start": 0, "length": 65536, "depth": 1, "present": true, "zero": false, "data": true},
            {"start": 65536, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true, "offset": 131072},
            {"start": 131072, "length": 65536, "depth": 0, "present": true, "zero": true, "data": false},
            {"start": 196608, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true, "offset": 65536}]"#;
        let inc = QemuIncrement::open(&q, map).unwrap();
        assert_eq!(inc.size(), 4 * 65536);
        assert_eq!(
            inc.changed().unwrap(),
            vec![(65536, 65536), (131072, 65536), (196608, 65536)]
        );
        let mut buf = vec![1u8; 3 * 65536];
        assert_eq!(inc.read_at(65536, &mut buf).unwrap(), 3 * 65536);
        assert!(buf[..65536].iter().all(|b| *b == 9));
        assert!(buf[65536..131072].iter().all(|b| *b == 0));
        assert!(buf[131072..].iter().all(|b| *b == 7));
        let mut one = vec![0u8; 65536];
        assert!(
            inc.read_at(0, &mut one).is_err(),
            "the backing part is not read"
        );
        assert!(QemuIncrement::open(
            &q,
            r#"[{"start":0,"length":65536,"depth":0,"present":true,"data":true}]"#
        )
        .is_err());
    }
}
