//! Snapshots (`/api/v1/snapshots`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::present;

#[derive(Serialize, ToSchema)]
pub struct Snapshot {
    pub id: u64,
    pub account_id: Uuid,
    pub project_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// `vm` or `volume`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// What the source's files held on the host when it was taken (`"1.25 GB"`): the
    /// most the snapshot can keep from being freed.
    pub size: String,
    /// Provisioned size of the source's disks when it was taken (`"20 GB"`).
    pub target_size: String,
    /// `active` when the source was last restored to this snapshot, else `""`.
    #[schema(example = "active")]
    pub status: String,
    /// The source VM (type `vm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_vm: Option<Uuid>,
    /// skiff: the source volume (type `volume`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<u64>,
    pub price_per_hour: String,
    /// skiff: `application` (the guest agent froze the file systems), `crash` (no
    /// agent answered: as after a power cut) or `offline` (the VM was off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// skiff: the disks it holds, by the guest's device name when taken.
    pub disks: Vec<SnapshotDisk>,
    /// skiff: bytes, as `size`.
    pub stored_bytes: u64,
    /// skiff: the change under way (`create`, `restore`, `delete`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// skiff: why the last change failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct SnapshotDisk {
    /// `vda` (the OS disk), `vdc`…
    pub device: String,
    /// The volume; absent for the OS disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<u64>,
    /// GB, when taken.
    pub size: u64,
}

single!(SnapshotResponse, Snapshot);
paged!(SnapshotList, Snapshot);

#[derive(Deserialize, ToSchema)]
pub struct CreateSnapshotRequest {
    /// `vm` or `volume`.
    pub resource_type: String,
    /// The VM (type `vm`).
    #[serde(default, deserialize_with = "present")]
    pub resource_id: Option<Uuid>,
    /// The volume (type `volume`).
    #[serde(default, deserialize_with = "present")]
    pub volume_id: Option<u64>,
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RenameSnapshotRequest {
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
}

#[derive(Deserialize, IntoParams)]
pub struct SnapshotQuery {
    #[param(value_type = Option<Uuid>)]
    pub vm_id: Option<String>,
    #[param(value_type = Option<i64>)]
    pub volume_id: Option<String>,
    /// `vm` or `volume`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    #[param(value_type = Option<i64>)]
    pub offset: Option<String>,
}
