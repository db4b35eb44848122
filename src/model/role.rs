use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

/// An account's own role: a named set of catalog permissions of one scope. Keys and
/// project grants refer to it by id, so a change applies to every holder at once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CustomRole {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    /// Unique within the account and never one of a system role.
    pub slug: String,
    pub description: String,
    /// `account` or `project`; every permission is of this scope.
    pub scope: String,
    pub permissions: Vec<String>,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl CustomRole {
    pub const BY_ACCOUNT: &'static str = "account";
}

impl Record for CustomRole {
    const KIND: &'static str = "roles";
    const INDEXES: &'static [IndexDef] = &[IndexDef {
        name: CustomRole::BY_ACCOUNT,
        unique: false,
    }];
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![Some(uuid_key(&self.account_id))]
    }
}
