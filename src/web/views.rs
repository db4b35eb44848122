//! What every page shares: the layout's data and small formatting helpers.

use super::session::Flash;
use crate::model::{Job, JobStatus, Timestamp};

/// The frame around every page: who is signed in, the project switcher, one-time
/// messages and the CSRF token for the forms.
pub struct Layout {
    pub user: String,
    pub csrf: String,
    pub project_id: String,
    pub project_name: String,
    /// (id, name) of every project the user can see.
    pub projects: Vec<(String, String)>,
    pub flash: Vec<Flash>,
    /// (what it is, the secret): a new API key, shown on this page only.
    pub secret: Option<(String, String)>,
    /// Which navigation entry is current.
    pub nav: &'static str,
    pub path: String,
    /// The user's account permissions: pages and actions they lack are not offered.
    pub held: crate::service::authz::PermSet,
}

impl Layout {
    pub fn may(&self, perm: &str) -> bool {
        self.held.has(perm)
    }
}

/// `2026-11-23 14:05 UTC`
pub fn when(t: &Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn mib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// A job as the pages show it: what, how far, and how it ended.
pub struct JobView {
    pub id: String,
    pub kind: String,
    pub status: &'static str,
    pub progress: u8,
    pub running: bool,
    pub ok: bool,
    pub error: String,
    pub when: String,
}

impl JobView {
    pub fn of(j: &Job) -> JobView {
        JobView {
            id: j.id.to_string(),
            kind: j.kind.replace(['_', '.'], " "),
            status: j.status.as_str(),
            progress: if j.status == JobStatus::Succeeded {
                100
            } else {
                j.progress
            },
            running: !j.status.is_final(),
            ok: j.status == JobStatus::Succeeded,
            error: j.error.clone().unwrap_or_default(),
            when: when(j.finished_at.as_ref().unwrap_or(&j.created_at)),
        }
    }
}
