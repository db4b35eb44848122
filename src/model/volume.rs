use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

/// The contract's volume status enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeStatus {
    Creating,
    Available,
    Attached,
    Deleting,
    Failed,
}

impl VolumeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeStatus::Creating => "creating",
            VolumeStatus::Available => "available",
            VolumeStatus::Attached => "attached",
            VolumeStatus::Deleting => "deleting",
            VolumeStatus::Failed => "failed",
        }
    }
}

/// A block volume: one qcow2 file under `<data>/volumes/`, attached to at most one VM.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Volume {
    /// The contract's integer id, from a store counter.
    pub id: u64,
    pub account_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub size_gib: i64,
    /// `ext4`, `xfs` or `btrfs`: made when the volume is created.
    pub filesystem: String,
    pub region: String,
    pub status: VolumeStatus,
    /// The VM it is attached to (or, while an attach job runs, being attached to).
    pub vm_id: Option<Uuid>,
    /// The disk's target on that VM (`vdc`…); kept while attached.
    pub device: Option<String>,
    /// The job under way on it (`create`, `attach`, `detach`, `resize`, `delete`):
    /// no other change is taken until it ends.
    #[serde(default)]
    pub pending: Option<String>,
    /// Why the last job on it failed, shown until the next one succeeds.
    #[serde(default)]
    pub error: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Volume {
    pub const BY_PROJECT: &'static str = "project";
    pub const BY_VM: &'static str = "vm";

    pub fn key_of(id: u64) -> Vec<u8> {
        format!("{id:020}").into_bytes()
    }

    /// The serial the guest sees (`/dev/disk/by-id/virtio-<serial>`, sysfs `serial`).
    pub fn serial(&self) -> String {
        format!("skiff-vol-{}", self.id)
    }
}

impl Record for Volume {
    const KIND: &'static str = "volumes";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef {
            name: Volume::BY_PROJECT,
            unique: false,
        },
        IndexDef {
            name: Volume::BY_VM,
            unique: false,
        },
    ];
    fn key(&self) -> Vec<u8> {
        Volume::key_of(self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![
            Some(uuid_key(&self.project_id)),
            self.vm_id.as_ref().map(uuid_key),
        ]
    }
}
