//! Durable operations: persisted job records, a worker pool that runs them on the
//! blocking pool, one job at a time per target, and recovery of jobs a crash interrupted.

mod diag;
mod engine;
mod reconciler;

pub use diag::DiagSteps;
/// Bounds of the self-test job.
pub mod diag_limits {
    pub use super::diag::{MAX_STEPS, MAX_STEP_MS};
}
pub use engine::{JobContext, JobEngine, JobHandler, NewJob};
pub use reconciler::{Reconcile, Reconciler};

use crate::store::StoreError;

/// Errors of the job engine.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No handler is registered for this kind of job.
    #[error("no handler for job kind {0:?}")]
    UnknownKind(String),
}
