use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

/// Where a backup is in its life. `Ready` is the only state a restore starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    Pending,
    Creating,
    Ready,
    Restoring,
    Failed,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Pending => "pending",
            BackupStatus::Creating => "creating",
            BackupStatus::Ready => "ready",
            BackupStatus::Restoring => "restoring",
            BackupStatus::Failed => "failed",
        }
    }
}

/// One restore point of a VM's disk. Its id is also the point's id in the repository,
/// so `skiff repo` and `skiff backup verify` name the same thing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Backup {
    pub id: Uuid,
    pub account_id: Uuid,
    pub project_id: Uuid,
    pub vm_id: Uuid,
    pub created_by: Option<Uuid>,
    pub name: String,
    pub region: String,
    pub status: BackupStatus,
    /// The repository series (one per VM and baseline).
    pub series: String,
    /// Position in the series, known once the point is written.
    pub increment: Option<u64>,
    /// Bytes the point added to the store, and bytes read from the disk for it.
    pub stored_bytes: u64,
    pub read_bytes: u64,
    /// `full` or `incremental` (from a dirty bitmap), once done.
    pub method: Option<String>,
    pub schedule_id: Option<u64>,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Backup {
    pub const BY_VM: &'static str = "vm";
}

impl Record for Backup {
    const KIND: &'static str = "backups";
    const INDEXES: &'static [IndexDef] = &[IndexDef {
        name: Backup::BY_VM,
        unique: false,
    }];
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![Some(uuid_key(&self.vm_id))]
    }
}

/// A VM's backup series state: which series new points join and which libvirt
/// checkpoint the next incremental counts changes from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupChain {
    pub vm_id: Uuid,
    /// Bumped by reset-chain; names the series.
    pub generation: u32,
    /// The checkpoint taken with the series' latest point, if it is still valid.
    pub checkpoint: Option<String>,
}

impl BackupChain {
    /// A VM's state before its first backup: series 0, no checkpoint.
    pub fn fresh(vm_id: Uuid) -> Self {
        BackupChain {
            vm_id,
            generation: 0,
            checkpoint: None,
        }
    }

    pub fn series(&self) -> String {
        format!("vm-{}-{}", self.vm_id, self.generation)
    }
}

impl Record for BackupChain {
    const KIND: &'static str = "backup_chains";
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.vm_id)
    }
}

/// A recurring backup of a VM, run by the scheduler.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupSchedule {
    pub id: u64,
    pub account_id: Uuid,
    pub project_id: Uuid,
    pub vm_id: Uuid,
    pub created_by: Option<Uuid>,
    pub name: String,
    pub region: String,
    /// `daily` or `weekly`.
    pub kind: String,
    /// Time of day as given (`8am`, `13:00`), and as minutes after midnight UTC.
    pub time: String,
    pub minute_of_day: u32,
    /// For weekly schedules: `Monday` … `Sunday`.
    pub day_of_week: Option<String>,
    pub keep_count: u32,
    pub enabled: bool,
    pub consecutive_failures: u32,
    pub last_run_at: Option<Timestamp>,
    /// `succeeded`, `failed` or `skipped`.
    pub last_run_status: Option<String>,
    pub next_run_at: Timestamp,
    pub created_at: Timestamp,
}

impl BackupSchedule {
    pub const BY_VM: &'static str = "vm";

    pub fn key_of(id: u64) -> Vec<u8> {
        format!("{id:020}").into_bytes()
    }
}

impl Record for BackupSchedule {
    const KIND: &'static str = "backup_schedules";
    const INDEXES: &'static [IndexDef] = &[IndexDef {
        name: BackupSchedule::BY_VM,
        unique: false,
    }];
    fn key(&self) -> Vec<u8> {
        BackupSchedule::key_of(self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![Some(uuid_key(&self.vm_id))]
    }
}
