use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Invited, not yet accepted: grants nothing.
    Pending,
    Active,
    /// Disabled by an admin: grants nothing until made active again.
    Suspended,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Pending => "pending",
            MemberStatus::Active => "active",
            MemberStatus::Suspended => "suspended",
        }
    }
}

/// The open invitation of a pending member. Only the SHA-256 of its token is kept:
/// the token itself is shown once, to the inviter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Invitation {
    pub id: Uuid,
    pub token_sha256: String,
    pub expires_at: Timestamp,
}

/// A person's grant in an account (`project_id` is `None`) or in one project of it,
/// with the role it gives. The owner is not a member: the owner user is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    pub id: Uuid,
    pub account_id: Uuid,
    pub project_id: Option<Uuid>,
    /// `None` until the invitation is accepted.
    pub user_id: Option<Uuid>,
    pub email: String,
    pub role_id: Uuid,
    pub status: MemberStatus,
    pub invited_by: Option<Uuid>,
    pub invited_at: Option<Timestamp>,
    pub accepted_at: Option<Timestamp>,
    pub invitation: Option<Invitation>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Member {
    pub const BY_ACCOUNT: &'static str = "account";
    pub const BY_USER: &'static str = "user";
    pub const BY_TOKEN: &'static str = "token";
}

impl Record for Member {
    const KIND: &'static str = "members";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef {
            name: Member::BY_ACCOUNT,
            unique: false,
        },
        IndexDef {
            name: Member::BY_USER,
            unique: false,
        },
        IndexDef {
            name: Member::BY_TOKEN,
            unique: true,
        },
    ];
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![
            Some(uuid_key(&self.account_id)),
            self.user_id.as_ref().map(uuid_key),
            self.invitation
                .as_ref()
                .map(|i| i.token_sha256.as_bytes().to_vec()),
        ]
    }
}
