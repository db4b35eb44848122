//! The backup engine: fixed-size chunks named by their BLAKE3 digest, stored once in a
//! content-addressed store (zstd, or raw when that is smaller), complete indexes per
//! restore point, restore, verify and garbage collection. Storage code only: no HTTP,
//! no libvirt. The on-disk format is `docs/backup-format.md`, version 1.

mod chunk;
mod repo;
mod source;

pub use chunk::{ChunkStore, Digest, ZERO};
pub use repo::{BackupStats, Point, Repo, VerifyReport};
pub use source::{QemuIncrement, RawImage, Source};

/// Errors of the backup engine.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing the repository or an image failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The directory is not a skiff backup repository of a version this build reads.
    #[error("{0}")]
    Format(String),
    /// A stored chunk is missing or does not match its digest.
    #[error("chunk {digest} is damaged: {reason}")]
    Damaged { digest: String, reason: String },
    /// No such restore point or series.
    #[error("{0} not found")]
    NotFound(String),
    /// The request makes no sense (a bad name, a chunk size out of range).
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// The changed byte ranges of an incremental QEMU backup, from
/// `qemu-img map --output=json` of its output image: the extents allocated in the top
/// image itself (depth 0), which are exactly the blocks the dirty bitmap recorded.
pub fn changed_from_qemu_map(json: &str) -> Result<Vec<(u64, u64)>, BackupError> {
    Ok(source::map_entries(json)?
        .into_iter()
        .filter(|e| e.depth == 0 && e.present)
        .map(|e| (e.start, e.length))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn qemu_maps_give_the_top_image_extents() {
        let map = r#"[{"start": 0, "length": 65536, "depth": 1, "present": true, "zero": false, "data": true},
            {"start": 65536, "length": 131072, "depth": 0, "present": true, "zero": false, "data": true},
            {"start": 196608, "length": 65536, "depth": 0, "present": true, "zero": true, "data": false},
            {"start": 262144, "length": 1000, "depth": 1, "present": false, "zero": true, "data": false}]"#;
        assert_eq!(
            super::changed_from_qemu_map(map).unwrap(),
            vec![(65536, 131072), (196608, 65536)]
        );
        assert!(super::changed_from_qemu_map("nope").is_err());
    }
}
