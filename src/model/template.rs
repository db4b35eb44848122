use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::Record;

/// A bootable image the operator imported (`skiff template import`) or a tenant saved
/// from a VM. Templates from the configuration file are listed beside the operator's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Template {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub description: String,
    pub os_type: String,
    pub is_windows: bool,
    pub category: String,
    pub region: String,
    /// Minimum vCPUs, RAM (GB) and disk (GB) a plan needs for this image.
    pub cpu: i64,
    pub ram: i64,
    pub storage: i64,
    /// The qcow2 base image under `<data_dir>/templates/`.
    pub image: std::path::PathBuf,
    pub created_at: Timestamp,
    /// A tenant's saved image: only its project lists and boots it. `None`: the
    /// operator's (`skiff template import`), in the public catalog.
    #[serde(default)]
    pub owner: Option<ImageOwner>,
    /// Set while job `image.save` writes `image`: where the bytes come from. A VM may
    /// boot the template only once this is `None` and `error` too.
    #[serde(default)]
    pub saving: Option<SaveSource>,
    /// Why saving failed; the record stays so that the tenant sees it, until deleted.
    #[serde(default)]
    pub error: Option<String>,
}

/// The disk a saved image is copied from: a VM's disk file, whole or as one of its
/// internal snapshots holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveSource {
    pub vm_id: Uuid,
    pub path: std::path::PathBuf,
    pub tag: Option<String>,
}

impl Template {
    /// `saving`, `error` or `available`, as the image API reports it.
    pub fn status(&self) -> &'static str {
        match (&self.saving, &self.error) {
            (Some(_), _) => "saving",
            (None, Some(_)) => "error",
            (None, None) => "available",
        }
    }
}

/// Whose saved image a template is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageOwner {
    pub account_id: Uuid,
    pub project_id: Uuid,
}

impl Record for Template {
    const KIND: &'static str = "templates";
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
}
