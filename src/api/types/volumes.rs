//! Volumes (`/api/v1/volumes`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::present;

#[derive(Serialize, ToSchema)]
pub struct Volume {
    pub id: u64,
    pub account_id: Uuid,
    pub project_id: Uuid,
    /// The VM it is attached to; absent when detached (the contract says "empty", and
    /// its `format: uuid` allows no empty string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_vm: Option<Uuid>,
    pub name: String,
    #[schema(example = "nvme")]
    pub volume_type: String,
    /// GB.
    pub size: i64,
    /// `creating`, `available`, `attached`, `deleting` or `failed`.
    pub status: String,
    pub price_per_hour: String,
    pub region: String,
    /// skiff: the file system the volume was made with.
    pub filesystem_type: String,
    /// skiff: the disk's name in a Linux guest while attached (`/dev/vdc`: `/dev/vdb`
    /// is the NoCloud seed), and its stable name
    /// (`/dev/disk/by-id/virtio-skiff-vol-<id>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_by_id: Option<String>,
    /// skiff: the change under way (`create`, `attach`, `detach`, `resize`, `delete`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// skiff: why the last change failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

single!(VolumeResponse, Volume);
paged!(VolumeList, Volume);

#[derive(Deserialize, ToSchema)]
pub struct CreateVolumeRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// GB, 1 to 10000 (skiff's bound, the contract's `extra_storage` bound).
    #[schema(minimum = 1, maximum = 10000)]
    pub size: i64,
    /// `nvme`.
    pub volume_type: String,
    /// `ext4` (default), `xfs` or `btrfs`: the empty file system the volume holds
    /// from birth.
    #[serde(default, deserialize_with = "present")]
    pub filesystem_type: Option<String>,
    /// Attach to this VM (same project and region) once made.
    #[serde(default, deserialize_with = "present")]
    pub vm_id: Option<Uuid>,
    /// The project's default region when absent.
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ResizeVolumeRequest {
    /// GB; larger than the current size, at most 10000.
    #[schema(minimum = 1, maximum = 10000)]
    pub new_size: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct AttachVolumeRequest {
    pub vm_id: Uuid,
}

#[derive(Deserialize, IntoParams)]
pub struct VolumeQuery {
    /// Only volumes attached to this VM.
    #[param(value_type = Option<Uuid>)]
    pub vm_id: Option<String>,
    pub region: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    #[param(value_type = Option<i64>)]
    pub offset: Option<String>,
}
