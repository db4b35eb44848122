//! The backup engine: fixed-size chunks named by their BLAKE3 digest, stored once in a
//! content-addressed store (zstd, or raw when that is smaller), complete indexes per
//! restore point, restore, verify and garbage collection. Storage code only: no HTTP,
//! no libvirt. The on-disk format is `docs/backup-format.md`, version 1.

mod chunk;
mod repo;

pub use chunk::{ChunkStore, Digest, ZERO};
pub use repo::{BackupStats, Point, Repo, VerifyReport};

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
