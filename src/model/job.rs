use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// A durable operation. Written before the host is touched, so a crash leaves a job to
/// resume or to fail, never an untracked change.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    /// Submission order; jobs of one target run in this order.
    pub seq: u64,
    pub kind: String,
    /// What the job works on (e.g. `vm/<uuid>`); one job per target runs at a time.
    pub target: String,
    pub account_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub params: serde_json::Value,
    pub status: JobStatus,
    pub progress: u8,
    pub error: Option<String>,
    /// Handler-defined resume point, saved as steps complete.
    pub checkpoint: serde_json::Value,
    /// How many times a worker has started this job (resumes included).
    pub attempts: u32,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

impl Job {
    pub const BY_STATUS: &'static str = "status";
    pub const BY_PROJECT: &'static str = "project";
}

impl Record for Job {
    const KIND: &'static str = "jobs";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef {
            name: Job::BY_STATUS,
            unique: false,
        },
        IndexDef {
            name: Job::BY_PROJECT,
            unique: false,
        },
    ];
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![
            Some(self.status.as_str().as_bytes().to_vec()),
            self.project_id.as_ref().map(uuid_key),
        ]
    }
}
