use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

/// What a snapshot is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// A VM: its OS disk and every volume attached when it was taken, at one instant.
    Vm,
    /// One volume.
    Volume,
}

impl SnapshotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Vm => "vm",
            SnapshotKind::Volume => "volume",
        }
    }
}

/// One disk a snapshot holds: an internal qcow2 snapshot (tag `Snapshot::tag`) in
/// the disk's own file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SnapshotDisk {
    /// `None`: the VM's OS disk; otherwise the volume.
    pub volume_id: Option<u64>,
    /// The guest's device name when it was taken (`vda`, `vdc`…).
    pub target: String,
    /// Virtual size (bytes) when it was taken.
    pub size_bytes: u64,
}

/// A point-in-time copy of a VM's disks or of a volume.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// The contract's integer id, from a store counter.
    pub id: u64,
    pub account_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub kind: SnapshotKind,
    /// The source VM (kind `vm`).
    pub vm_id: Option<Uuid>,
    /// The source volume (kind `volume`).
    pub volume_id: Option<u64>,
    /// Filled by the job that takes it; empty until then.
    pub disks: Vec<SnapshotDisk>,
    /// The source was last restored to this snapshot (the contract's `active`).
    pub active: bool,
    /// `application` when the guest agent froze the file systems, `crash` when it
    /// did not answer (or the VM was off: `offline`). `None` until taken.
    pub consistency: Option<String>,
    /// Bytes the source's files held on the host when it was taken: what the
    /// snapshot can keep from being freed.
    pub stored_bytes: u64,
    /// Provisioned size of the source (GB) when it was taken.
    pub target_gib: i64,
    /// The job that owns it (`create`, `restore`, `delete`); no other is taken
    /// until it ends.
    pub pending: Option<String>,
    /// Why the last job on it failed.
    pub error: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Snapshot {
    pub const BY_PROJECT: &'static str = "project";
    pub const BY_VM: &'static str = "vm";
    pub const BY_VOLUME: &'static str = "volume";

    pub fn key_of(id: u64) -> Vec<u8> {
        format!("{id:020}").into_bytes()
    }

    /// The internal snapshot's tag in each disk file.
    pub fn tag(&self) -> String {
        Snapshot::tag_of(self.id)
    }

    /// What every snapshot's tag starts with.
    pub const TAG_PREFIX: &'static str = "skiff-snap-";

    pub fn tag_of(id: u64) -> String {
        format!("{}{id}", Snapshot::TAG_PREFIX)
    }

    /// Whether the snapshot holds a copy of volume `id`.
    pub fn holds_volume(&self, id: u64) -> bool {
        self.volume_id == Some(id) || self.disks.iter().any(|d| d.volume_id == Some(id))
    }
}

impl Record for Snapshot {
    const KIND: &'static str = "snapshots";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef {
            name: Snapshot::BY_PROJECT,
            unique: false,
        },
        IndexDef {
            name: Snapshot::BY_VM,
            unique: false,
        },
        IndexDef {
            name: Snapshot::BY_VOLUME,
            unique: false,
        },
    ];
    fn key(&self) -> Vec<u8> {
        Snapshot::key_of(self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![
            Some(uuid_key(&self.project_id)),
            self.vm_id.as_ref().map(uuid_key),
            self.volume_id.map(Snapshot::key_of),
        ]
    }
}
