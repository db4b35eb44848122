use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

/// An SSH public key of an account, validated and fingerprinted on the way in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SshKey {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    /// Normalised `type base64 [comment]`.
    pub public_key: String,
    pub key_type: String,
    /// `SHA256:…` as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl SshKey {
    pub const BY_ACCOUNT: &'static str = "account";
    pub const BY_FINGERPRINT: &'static str = "fingerprint";
}

impl Record for SshKey {
    const KIND: &'static str = "ssh_keys";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef {
            name: SshKey::BY_ACCOUNT,
            unique: false,
        },
        IndexDef {
            name: SshKey::BY_FINGERPRINT,
            unique: true,
        },
    ];
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![
            Some(uuid_key(&self.account_id)),
            Some(format!("{}/{}", self.account_id, self.fingerprint).into_bytes()),
        ]
    }
}
