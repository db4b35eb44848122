use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

/// The contract's VM status enum; transitional states are real (a job is running).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmStatus {
    Initiating,
    Provisioning,
    Booting,
    Active,
    Finalizing,
    Passive,
    Failure,
}

impl VmStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VmStatus::Initiating => "initiating",
            VmStatus::Provisioning => "provisioning",
            VmStatus::Booting => "booting",
            VmStatus::Active => "active",
            VmStatus::Finalizing => "finalizing",
            VmStatus::Passive => "passive",
            VmStatus::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            VmStatus::Initiating,
            VmStatus::Provisioning,
            VmStatus::Booting,
            VmStatus::Active,
            VmStatus::Finalizing,
            VmStatus::Passive,
            VmStatus::Failure,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// A label on a VM; `priority` orders them (lower first).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VmTag {
    pub id: Uuid,
    pub name: String,
    pub priority: i64,
    pub created_at: Timestamp,
}

/// A free-form note on a VM: `personal` (one per user) or `account` (one per account).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VmNote {
    pub id: Uuid,
    pub vm_id: Uuid,
    /// `personal` or `account`.
    pub scope: String,
    /// The writer (for `account` notes, the last writer).
    pub user_id: Uuid,
    pub content: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl VmNote {
    /// Key of the note of `scope` on `vm` (for `personal`, of `owner`).
    pub fn key_for(vm: &Uuid, scope: &str, owner: &Uuid) -> Vec<u8> {
        match scope {
            "personal" => format!("{vm}/personal/{owner}").into_bytes(),
            _ => format!("{vm}/account").into_bytes(),
        }
    }
}

impl Record for VmNote {
    const KIND: &'static str = "vm_notes";
    fn key(&self) -> Vec<u8> {
        VmNote::key_for(&self.vm_id, &self.scope, &self.user_id)
    }
}

/// A network interface of a VM.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Nic {
    /// The contract's integer `nic_id`, from a store counter.
    pub id: u64,
    /// `public` or `vpc`.
    pub kind: String,
    pub network_name: String,
    pub mac: String,
    pub ip: String,
    pub prefix: u8,
    pub gateway: String,
    pub bridge: String,
    pub tap: String,
    /// Attached security groups; their rules' union applies to the NIC.
    #[serde(default)]
    pub security_groups: Vec<Uuid>,
    /// The VPC of a `vpc` NIC.
    #[serde(default)]
    pub vpc_id: Option<Uuid>,
    /// The link MTU the guest is told (VPC NICs); `None` leaves the default.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The job under way on it (`attach`, `detach`): no other change of the VM's
    /// NICs is taken until it ends.
    #[serde(default)]
    pub pending: Option<String>,
    /// A public NIC's IPv6 address (`[network.public] ipv6_prefix`; /64).
    #[serde(default)]
    pub ip6: Option<String>,
}

impl Nic {
    /// The lease pool its address comes from.
    pub fn pool(&self) -> String {
        match &self.vpc_id {
            Some(v) => format!("vpc:{v}"),
            None => "public".into(),
        }
    }

    /// The key of its address lease.
    pub fn lease_key(&self) -> Vec<u8> {
        format!("{}/{}", self.pool(), self.ip).into_bytes()
    }
}

/// A virtual machine.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Vm {
    pub id: Uuid,
    pub account_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub status: VmStatus,
    pub pricing_id: i64,
    pub vcpus: i64,
    pub ram_gib: i64,
    pub storage_gib: i64,
    pub added_storage_gib: i64,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_version: String,
    pub region: String,
    pub ssh_keys: Vec<String>,
    pub password_hash: Option<String>,
    /// cloud-init's instance id; a new one makes the guest apply the seed again.
    pub instance_id: String,
    pub nics: Vec<Nic>,
    pub tags: Vec<VmTag>,
    /// Set when a delete was accepted; the record goes when the host objects are gone.
    pub deleting: bool,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Vm {
    pub const BY_PROJECT: &'static str = "project";

    /// The libvirt domain name.
    pub fn domain_name(&self) -> String {
        Vm::domain_name_of(&self.id)
    }

    /// The libvirt domain name of VM `id`.
    pub fn domain_name_of(id: &Uuid) -> String {
        format!("skiff-vm-{id}")
    }
}

impl Record for Vm {
    const KIND: &'static str = "vms";
    const INDEXES: &'static [IndexDef] = &[IndexDef {
        name: Vm::BY_PROJECT,
        unique: false,
    }];
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![Some(uuid_key(&self.project_id))]
    }
}

/// One address of a pool held by a VM. The key is the address, so the store itself
/// refuses to hand it out twice.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IpLease {
    pub ip: String,
    pub pool: String,
    pub vm_id: Uuid,
    pub nic_id: u64,
    pub created_at: Timestamp,
}

impl Record for IpLease {
    const KIND: &'static str = "ip_leases";
    fn key(&self) -> Vec<u8> {
        format!("{}/{}", self.pool, self.ip).into_bytes()
    }
}
