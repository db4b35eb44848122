//! The content-addressed chunk store: `chunks/<2 hex>/<64 hex>`, one file per chunk,
//! written to a temporary file and renamed, so a running process never sees half a
//! chunk. Chunks are not synced one by one (that cost a full backup 5,000 fsyncs): the
//! writer syncs the whole file system once with [`ChunkStore::sync`] before it writes
//! the point that names them, and a dirty marker (see `repo.rs`) tells the next writer
//! to check what a crash may have left unsynced.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{io, BackupError};

/// A chunk's name: BLAKE3 of its plain bytes.
pub type Digest = [u8; 32];

/// Marks an all-zero chunk in an index; such chunks are never stored.
pub const ZERO: Digest = [0; 32];

const MAGIC: &[u8; 4] = b"SKC1";
const HEADER: usize = 16;
const RAW: u8 = 0;
const ZSTD: u8 = 1;

pub struct ChunkStore {
    root: PathBuf,
}

pub fn hex(d: &Digest) -> String {
    hex::encode(d)
}

impl ChunkStore {
    pub fn new(root: PathBuf) -> Self {
        ChunkStore { root }
    }

    fn path(&self, d: &Digest) -> PathBuf {
        let h = hex(d);
        self.root.join(&h[..2]).join(h)
    }

    #[cfg(test)]
    pub(crate) fn path_of(&self, d: &Digest) -> PathBuf {
        self.path(d)
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).exists()
    }

    /// Stores `data` under its digest unless it is there already. Returns the digest and
    /// the bytes added to the store (0 when it was present). Not durable until
    /// [`ChunkStore::sync`].
    pub fn put(&self, data: &[u8]) -> Result<(Digest, u64), BackupError> {
        self.put_hashed(*blake3::hash(data).as_bytes(), data)
    }

    /// [`ChunkStore::put`] for a caller that hashed `data` already.
    pub fn put_hashed(&self, digest: Digest, data: &[u8]) -> Result<(Digest, u64), BackupError> {
        if digest == ZERO || self.contains(&digest) {
            return Ok((digest, 0));
        }
        let packed = zstd::bulk::compress(data, 1).map_err(io("compressing a chunk"))?;
        let (encoding, payload) = if packed.len() < data.len() {
            (ZSTD, packed.as_slice())
        } else {
            (RAW, data)
        };
        let mut file = Vec::with_capacity(HEADER + payload.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&[encoding, 0, 0, 0]);
        file.extend_from_slice(&(data.len() as u32).to_le_bytes());
        file.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        file.extend_from_slice(payload);
        let path = self.path(&digest);
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        write_renamed(&path, &file, false)?;
        Ok((digest, file.len() as u64))
    }

    /// Makes every chunk written so far durable: one `syncfs` of the store's file system.
    pub fn sync(&self) -> Result<(), BackupError> {
        fs::create_dir_all(&self.root).map_err(io("creating the chunk store"))?;
        let dir = File::open(&self.root).map_err(io("opening the chunk store"))?;
        // SAFETY: `dir` is an open descriptor for the duration of the call; syncfs only
        // reads the descriptor number.
        let rc = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) };
        if rc != 0 {
            return Err(io("syncing the chunk store")(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Renames a damaged chunk to `<digest>.bad`: no longer found, kept for inspection
    /// until gc.
    pub fn quarantine(&self, d: &Digest) -> Result<(), BackupError> {
        let p = self.path(d);
        match fs::rename(&p, p.with_extension("bad")) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("quarantining chunk {}", hex(d)))(e)),
        }
    }

    /// Removes a chunk (a damaged one found after a crash).
    pub fn remove(&self, d: &Digest) -> Result<(), BackupError> {
        match fs::remove_file(self.path(d)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("removing chunk {}", hex(d)))(e)),
        }
    }

    /// Reads a chunk and checks it against its digest.
    pub fn get(&self, d: &Digest) -> Result<Vec<u8>, BackupError> {
        let damaged = |reason: &str| BackupError::Damaged {
            digest: hex(d),
            reason: reason.to_string(),
        };
        let mut raw = Vec::new();
        match File::open(self.path(d)) {
            Ok(mut f) => f
                .read_to_end(&mut raw)
                .map_err(io(format!("reading chunk {}", hex(d))))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(damaged("missing")),
            Err(e) => return Err(io(format!("reading chunk {}", hex(d)))(e)),
        };
        if raw.len() < HEADER || &raw[..4] != MAGIC {
            return Err(damaged("bad header"));
        }
        let len = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]) as usize;
        let crc = u32::from_le_bytes([raw[12], raw[13], raw[14], raw[15]]);
        let payload = &raw[HEADER..];
        if crc32fast::hash(payload) != crc {
            return Err(damaged("checksum mismatch"));
        }
        let data = match raw[4] {
            RAW => payload.to_vec(),
            ZSTD => {
                zstd::bulk::decompress(payload, len).map_err(|_| damaged("does not decompress"))?
            }
            _ => return Err(damaged("unknown encoding")),
        };
        if data.len() != len || *blake3::hash(&data).as_bytes() != *d {
            return Err(damaged("digest mismatch"));
        }
        Ok(data)
    }

    /// Every stored chunk (digest, modification time, path), and the temporary files
    /// an interrupted write left (modification time, path).
    #[allow(clippy::type_complexity)]
    pub fn list(
        &self,
    ) -> Result<
        (
            Vec<(Digest, SystemTime, PathBuf)>,
            Vec<(SystemTime, PathBuf)>,
        ),
        BackupError,
    > {
        let (mut chunks, mut temps) = (Vec::new(), Vec::new());
        let Ok(dirs) = fs::read_dir(&self.root) else {
            return Ok((chunks, temps));
        };
        for dir in dirs.flatten() {
            for f in fs::read_dir(dir.path())
                .map_err(io("listing chunks"))?
                .flatten()
            {
                let name = f.file_name().to_string_lossy().into_owned();
                let mtime = f
                    .metadata()
                    .and_then(|m| m.modified())
                    .map_err(io("reading chunk times"))?;
                let mut d = [0u8; 32];
                if hex::decode_to_slice(&name, &mut d).is_ok() {
                    chunks.push((d, mtime, f.path()));
                } else {
                    temps.push((mtime, f.path()));
                }
            }
        }
        Ok((chunks, temps))
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    write_renamed(path, bytes, true)
}

/// Writes `bytes` to a temporary file and renames it to `path`; with `durable`, syncs
/// the file before and the directory after the rename.
fn write_renamed(path: &Path, bytes: &[u8], durable: bool) -> Result<(), BackupError> {
    let tmp = path.with_extension(format!("tmp{}", rand::random::<u32>()));
    {
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&tmp)
            .map_err(io(format!("creating {}", tmp.display())))?;
        f.write_all(bytes)
            .map_err(io(format!("writing {}", tmp.display())))?;
        if durable {
            f.sync_all()
                .map_err(io(format!("syncing {}", tmp.display())))?;
        }
    }
    fs::rename(&tmp, path).map_err(io(format!("renaming {}", tmp.display())))?;
    if !durable {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_dedupe_and_detect_damage() {
        let dir = tempfile::tempdir().unwrap();
        let s = ChunkStore::new(dir.path().join("chunks"));
        let text = b"hello world ".repeat(5000);
        let (d, added) = s.put(&text).unwrap();
        assert!(
            added > 0 && added < text.len() as u64,
            "compressible data is compressed"
        );
        assert_eq!(s.put(&text).unwrap(), (d, 0), "stored once");
        assert_eq!(s.get(&d).unwrap(), text);
        let noise: Vec<u8> = (0..65536).map(|_| rand::random::<u8>()).collect();
        let (n, added) = s.put(&noise).unwrap();
        assert_eq!(
            added,
            65536 + HEADER as u64,
            "incompressible data is kept raw"
        );
        assert_eq!(s.get(&n).unwrap(), noise);
        // Flip one payload bit: the checksum catches it.
        let p = s.path(&n);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[HEADER + 100] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(matches!(s.get(&n), Err(BackupError::Damaged { .. })));
        std::fs::remove_file(s.path(&d)).unwrap();
        assert!(
            matches!(s.get(&d), Err(BackupError::Damaged { reason, .. }) if reason == "missing")
        );
        assert_eq!(s.list().unwrap().0.len(), 1);
    }
}
