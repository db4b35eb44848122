use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

/// Where a floating address points: a VM's VPC NIC, NATed 1:1 in that VPC's router
/// (docs/decisions/0012-floating-ips.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingTarget {
    pub vm_id: Uuid,
    /// The attachment's own `nic_id` (the contract's: used to detach it).
    pub nic_id: u64,
    /// The VPC NIC the traffic goes to.
    pub target_nic: u64,
}

/// A public IPv4 address of the floating pool held by a project.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FloatingIp {
    pub id: Uuid,
    pub account_id: Uuid,
    pub project_id: Uuid,
    pub address: String,
    /// Held until released; an address given by an attach without `ip_id` is not,
    /// and goes back to the pool when detached.
    pub reserved: bool,
    pub region: String,
    pub attached: Option<FloatingTarget>,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl FloatingIp {
    pub const BY_PROJECT: &'static str = "project";
    pub const BY_ACCOUNT: &'static str = "account";
    /// The lease pool of floating addresses.
    pub const POOL: &'static str = "floating";
}

impl Record for FloatingIp {
    const KIND: &'static str = "floating_ips";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef {
            name: FloatingIp::BY_PROJECT,
            unique: false,
        },
        IndexDef {
            name: FloatingIp::BY_ACCOUNT,
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
