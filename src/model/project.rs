use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{uuid_key, Timestamp};
use crate::store::{IndexDef, Record};

/// A project groups the resources of an account; every resource lives in one project.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Project {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub default_region: String,
    pub is_default: bool,
    pub is_active: bool,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Project {
    pub const BY_ACCOUNT: &'static str = "account";
    pub const BY_SLUG: &'static str = "slug";
}

impl Record for Project {
    const KIND: &'static str = "projects";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef {
            name: Project::BY_ACCOUNT,
            unique: false,
        },
        IndexDef {
            name: Project::BY_SLUG,
            unique: true,
        },
    ];
    fn key(&self) -> Vec<u8> {
        uuid_key(&self.id)
    }
    fn index_values(&self) -> Vec<Option<Vec<u8>>> {
        vec![
            Some(uuid_key(&self.account_id)),
            Some(format!("{}/{}", self.account_id, self.slug).into_bytes()),
        ]
    }
}
