use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::Record;

/// A tenant: everything (projects, keys, SSH keys) belongs to exactly one account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    pub created_at: Timestamp,
    /// The host operator's account (`skiff init` makes it; `skiff admin set-operator`
    /// grants it): host capacity, diagnostics and repository-wide jobs are its alone.
    #[serde(default)]
    pub operator: bool,
    /// Quotas set for this account (`skiff admin set-quota`), by name; the others are
    /// the configuration's defaults.
    #[serde(default)]
    pub quotas: std::collections::BTreeMap<String, u64>,
}

impl Record for Account {
    const KIND: &'static str = "accounts";
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
}

/// A person who signs in to the dashboard; the account's owner is created by `skiff init`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    /// Argon2 PHC string; `None` until a password is set.
    pub password_hash: Option<String>,
    pub is_owner: bool,
    pub created_at: Timestamp,
}

impl Record for User {
    const KIND: &'static str = "users";
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
}
