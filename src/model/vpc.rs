use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

/// A VPC's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VpcStatus {
    Creating,
    Active,
    Deleting,
    Failed,
}

impl VpcStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VpcStatus::Creating => "creating",
            VpcStatus::Active => "active",
            VpcStatus::Deleting => "deleting",
            VpcStatus::Failed => "failed",
        }
    }
}

/// A private layer-2 network of a project (docs/decisions/0011-vpc-data-path.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Vpc {
    pub id: Uuid,
    pub account_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The network, normalised (`10.0.1.0/24`); never changes.
    pub cidr: String,
    /// The first host address, held by the VPC's router.
    pub gateway: String,
    /// The host objects' number (device and namespace names; the VXLAN VNI once a
    /// second host joins). From a store counter, never reused, never shown.
    pub seq: u64,
    pub region: String,
    pub status: VpcStatus,
    /// The job under way on it (`create`, `delete`): no other change is taken until
    /// it ends.
    #[serde(default)]
    pub pending: Option<String>,
    /// Why the last job on it failed.
    #[serde(default)]
    pub error: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Vpc {
    pub const BY_PROJECT: &'static str = "project";
    pub const BY_ACCOUNT: &'static str = "account";

    /// The lease pool of its addresses.
    pub fn pool(&self) -> String {
        format!("vpc:{}", self.id)
    }
}

impl Record for Vpc {
    const KIND: &'static str = "vpcs";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef {
            name: Vpc::BY_PROJECT,
            unique: false,
        },
        IndexDef {
            name: Vpc::BY_ACCOUNT,
            unique: false,
        },
    ];
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![
            Some(uuid_key(&self.project_id)),
            Some(uuid_key(&self.account_id)),
        ]
    }
}
