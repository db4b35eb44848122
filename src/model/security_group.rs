use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

/// Which traffic a rule looks at, seen from the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SgDirection {
    Inbound,
    Outbound,
}

/// An address family a rule is limited to (Tavu's `ethertype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

/// What a rule's protocol matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SgProtocol {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// ESP and AH.
    Ipsec,
    All,
    /// Any other IP protocol number (GRE is 47, SCTP 132).
    Number(u8),
}

/// The other end of the traffic a rule allows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SgRemote {
    Any,
    /// A normalised network (`10.0.0.0/8`): no bits set beyond `len`.
    Cidr {
        addr: String,
        len: u8,
    },
    /// The current addresses of the NICs carrying this group.
    Group(Uuid),
}

/// One allow rule. The union of what the Raff and the Tavu (OpenStack) dialects can say.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SgRule {
    /// Stable across updates that keep the rule: its counters are kept by this id.
    pub id: u64,
    pub direction: SgDirection,
    /// None: both families (unless the protocol or the remote implies one).
    pub family: Option<Family>,
    pub protocol: SgProtocol,
    /// Destination ports, inclusive; TCP and UDP only. None: all.
    pub ports: Option<(u16, u16)>,
    /// ICMP or ICMPv6 type. None: all.
    pub icmp_type: Option<u8>,
    pub remote: SgRemote,
}

impl SgRule {
    /// The rule without its id, to tell whether an update keeps it.
    pub fn same_as(&self, other: &SgRule) -> bool {
        SgRule {
            id: 0,
            ..self.clone()
        } == SgRule {
            id: 0,
            ..other.clone()
        }
    }
}

/// A named set of allow rules, attached to VM NICs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: Uuid,
    pub account_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub description: String,
    pub rules: Vec<SgRule>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl SecurityGroup {
    pub const BY_PROJECT: &'static str = "project";
}

impl Record for SecurityGroup {
    const KIND: &'static str = "security_groups";
    const INDEXES: &'static [IndexDef] = &[IndexDef {
        name: SecurityGroup::BY_PROJECT,
        unique: false,
    }];
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![Some(uuid_key(&self.project_id))]
    }
}
