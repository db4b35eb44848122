use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

/// How fast a key may call the API. The figures of each tier are operator configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitTier {
    Standard,
    High,
    /// Never limited; only the operator can grant it (`skiff admin api-key set-tier`).
    Unlimited,
}

impl RateLimitTier {
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitTier::Standard => "standard",
            RateLimitTier::High => "high",
            RateLimitTier::Unlimited => "unlimited",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard" => Some(RateLimitTier::Standard),
            "high" => Some(RateLimitTier::High),
            "unlimited" => Some(RateLimitTier::Unlimited),
            _ => None,
        }
    }
}

/// A grant of one project to a key that is not account-wide.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProjectAccess {
    pub project_id: Uuid,
    pub role_id: Uuid,
}

/// An API key. Only the SHA-256 of its 256-bit secret is stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    /// `raff_` plus the first 8 hex characters of the secret.
    pub key_prefix: String,
    /// Hex SHA-256 of the whole secret.
    pub secret_sha256: String,
    pub rate_limit_tier: RateLimitTier,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub is_active: bool,
    pub role_id: Uuid,
    pub project_accesses: Vec<ProjectAccess>,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
}

impl ApiKey {
    pub const BY_ACCOUNT: &'static str = "account";
    pub const BY_SECRET: &'static str = "secret";
}

impl Record for ApiKey {
    const KIND: &'static str = "api_keys";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef {
            name: ApiKey::BY_ACCOUNT,
            unique: false,
        },
        IndexDef {
            name: ApiKey::BY_SECRET,
            unique: true,
        },
    ];
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![
            Some(uuid_key(&self.account_id)),
            Some(self.secret_sha256.as_bytes().to_vec()),
        ]
    }
}
