//! Snapshots on the VM page: take one (all the VM's disks at one instant, the VM
//! running or not), restore (the VM stopped), rename, delete. Each change is a job of
//! well under a second: the answer waits for it (a few seconds at most), so the page
//! it returns to shows the result, or the job's error.

use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};

use super::views::when;
use super::{uuid_of, Posted, WebError};
use crate::model::{JobStatus, Snapshot};
use crate::service::{NewSnapshot, ServiceError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/vms/{id}/snapshots", web::post().to(take))
        .route("/snapshots/{id}/restore", web::post().to(restore))
        .route("/snapshots/{id}/rename", web::post().to(rename))
        .route("/snapshots/{id}/delete", web::post().to(delete));
}

/// How long an answer waits for its job before showing the page as it is.
const WAIT: Duration = Duration::from_secs(10);

pub struct SnapshotRow {
    pub id: u64,
    pub name: String,
    pub created: String,
    pub disks: String,
    pub size: String,
    pub consistency: String,
    pub active: bool,
    pub pending: String,
    pub error: String,
}

impl SnapshotRow {
    pub fn of(s: &Snapshot) -> SnapshotRow {
        SnapshotRow {
            id: s.id,
            name: s.name.clone(),
            created: when(&s.created_at),
            disks: s
                .disks
                .iter()
                .map(|d| d.target.clone())
                .collect::<Vec<_>>()
                .join(", "),
            size: super::views::mib(s.stored_bytes),
            consistency: s.consistency.clone().unwrap_or_default(),
            active: s.active,
            pending: s.pending.clone().unwrap_or_default(),
            error: s.error.clone().unwrap_or_default(),
        }
    }
}

fn id_of(raw: &str) -> Result<u64, WebError> {
    raw.parse().map_err(|_| WebError::NotFound)
}

/// The VM page to return to (the form names its VM).
fn back(p: &Posted) -> Result<String, WebError> {
    let vm = uuid_of(p.form.get("vm").unwrap_or(""))?;
    Ok(format!("/ui/vms/{vm}#snapshots"))
}

/// Waits (on the worker pool) for `job`; its failure is the answer.
fn settle(
    s: &crate::service::Services,
    who: &crate::service::Principal,
    job: uuid::Uuid,
) -> Result<(), ServiceError> {
    let until = Instant::now() + WAIT;
    while Instant::now() < until {
        let j = s.get_job(who, &job)?;
        if j.status.is_final() {
            return match (j.status, j.error) {
                (JobStatus::Failed, Some(e)) => Err(ServiceError::Conflict(e)),
                _ => Ok(()),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

pub async fn take(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let vm = uuid_of(&id)?;
    let to = format!("/ui/vms/{vm}#snapshots");
    let name = p.form.get("name").unwrap_or("").to_string();
    let r = p
        .ctx
        .call(move |s, who, scope| {
            let c = s.create_snapshot(
                who,
                scope,
                NewSnapshot {
                    resource_type: "vm".into(),
                    resource_id: Some(vm),
                    volume_id: None,
                    name,
                },
            )?;
            settle(s, who, c.job)?;
            Ok(format!("snapshot {} taken", c.snapshot.name))
        })
        .await;
    Ok(p.ctx.done(&to, r))
}

pub async fn restore(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = id_of(&id)?;
    let to = back(&p)?;
    let r = p
        .ctx
        .call(move |s, who, scope| {
            let c = s.restore_snapshot(who, scope, id)?;
            settle(s, who, c.job)?;
            Ok(format!("restored to snapshot {}", c.snapshot.name))
        })
        .await;
    Ok(p.ctx.done(&to, r))
}

pub async fn rename(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = id_of(&id)?;
    let to = back(&p)?;
    let name = p.form.get("name").unwrap_or("").to_string();
    let r = p
        .ctx
        .call(move |s, who, scope| s.rename_snapshot(who, scope, id, &name))
        .await
        .map(|x| format!("snapshot renamed to {}", x.name));
    Ok(p.ctx.done(&to, r))
}

pub async fn delete(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = id_of(&id)?;
    let to = back(&p)?;
    let r = p
        .ctx
        .call(move |s, who, scope| {
            let c = s.delete_snapshot(who, scope, id)?;
            settle(s, who, c.job)?;
            Ok(format!("snapshot {} deleted", c.snapshot.name))
        })
        .await;
    Ok(p.ctx.done(&to, r))
}
