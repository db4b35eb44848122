//! `/api/v1/snapshots`. Taking, restoring and deleting a snapshot are metadata
//! operations on the disks' files (well under a second), so these answers wait for
//! their jobs and report the snapshot as it now is; a job's failure is a 409.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{optional_uuid, page, Caller, ProjectHeader};
use super::security_groups::off_worker;
use super::types::{self, *};
use super::volumes::wait_for_job;
use super::AppState;
use crate::model::{self, SnapshotKind};
use crate::service::{NewSnapshot, Services, SnapshotFilter};

pub(crate) fn dto(s: &Services, snap: model::Snapshot) -> types::Snapshot {
    types::Snapshot {
        price_per_hour: s.snapshot_price(&snap),
        id: snap.id,
        account_id: snap.account_id,
        project_id: snap.project_id,
        created_by: snap.created_by.map(|u| u.to_string()),
        kind: snap.kind.as_str().into(),
        name: snap.name,
        size: format!("{:.2} GB", snap.stored_bytes as f64 / (1u64 << 30) as f64),
        target_size: format!("{} GB", snap.target_gib),
        status: if snap.active { "active" } else { "" }.into(),
        product_vm: snap.vm_id,
        volume_id: snap.volume_id,
        consistency: snap.consistency,
        disks: snap
            .disks
            .into_iter()
            .map(|d| types::SnapshotDisk {
                device: d.target,
                volume_id: d.volume_id,
                size: d.size_bytes.div_ceil(1 << 30),
            })
            .collect(),
        stored_bytes: snap.stored_bytes,
        pending: snap.pending,
        error: snap.error,
        created_at: snap.created_at,
    }
}

fn snapshot_id(raw: &str) -> Result<u64, ApiError> {
    raw.trim()
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "snapshot not found"))
}

fn one(s: &Services, status: StatusCode, snap: model::Snapshot) -> HttpResponse {
    HttpResponse::build(status).json(SnapshotResponse {
        success: true,
        data: dto(s, snap),
    })
}

#[utoipa::path(
    get, path = "/api/v1/snapshots", tag = "Snapshots", operation_id = "listSnapshots",
    params(
        ("X-Project-ID" = Option<uuid::Uuid>, Header, description = "Only this project's; every accessible project when omitted"),
        SnapshotQuery,
    ),
    responses(
        (status = 200, description = "List of snapshots", body = SnapshotList),
        (status = 400, description = "Malformed filter", body = Error),
        (status = 401, description = "Authentication required", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    q: web::Query<SnapshotQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 50)?;
    let project = optional_uuid(project.as_deref(), "X-Project-ID")?;
    let vm = optional_uuid(q.vm_id.as_deref(), "vm_id")?;
    let volume = q
        .volume_id
        .as_deref()
        .map(|v| {
            let v = v.trim();
            let digits = v.strip_prefix('-').unwrap_or(v);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::bad_request("volume_id must be an integer"));
            }
            // Any integer is valid; one past i64 names no volume, as a negative one.
            Ok(v.parse::<i64>().unwrap_or(-1))
        })
        .transpose()?;
    let kind = match q.kind.as_deref() {
        None => None,
        Some("vm") => Some(SnapshotKind::Vm),
        Some("volume") => Some(SnapshotKind::Volume),
        Some(_) => return Err(ApiError::bad_request("type must be vm or volume")),
    };
    let s = &state.services;
    let r = s.list_snapshots(
        &who,
        project.as_ref(),
        SnapshotFilter { vm, volume, kind },
        page,
    )?;
    Ok(HttpResponse::Ok().json(SnapshotList {
        success: true,
        total: r.total,
        data: r.items.into_iter().map(|x| dto(s, x)).collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/snapshots", tag = "Snapshots", operation_id = "createSnapshot",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "The snapshot's project")),
    request_body = CreateSnapshotRequest,
    responses(
        (status = 201, description = "Snapshot taken (or, on a slow host, being taken: `pending` says)", body = SnapshotResponse),
        (status = 400, description = "Invalid request, or no such VM or volume in the project", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 402, description = "The snapshots quota would be exceeded", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "No such project", body = Error),
        (status = 409, description = "The source is changing, or the host could not take it", body = Error),
        (status = 503, description = "Snapshots cannot be taken on this host now", body = Error),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    body: web::Json<CreateSnapshotRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let s = state.services.clone();
    let caller = who.clone();
    let change = off_worker(move || {
        s.create_snapshot(
            &who,
            project.as_deref(),
            NewSnapshot {
                resource_type: b.resource_type,
                resource_id: b.resource_id,
                volume_id: b.volume_id,
                name: b.name,
            },
        )
    })
    .await?;
    let s = &state.services;
    wait_for_job(s, &caller, change.job).await?;
    let snap = s
        .snapshot_after(change.snapshot.id)?
        .unwrap_or(change.snapshot);
    Ok(one(s, StatusCode::CREATED, snap))
}

#[utoipa::path(
    get, path = "/api/v1/snapshots/{id}", tag = "Snapshots", operation_id = "getSnapshot",
    params(
        ("id" = u64, Path, description = "Snapshot ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The snapshot's project"),
    ),
    responses(
        (status = 200, description = "Snapshot details", body = SnapshotResponse),
        (status = 400, description = "Missing or malformed X-Project-ID", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.services;
    let snap = s.get_snapshot(&who, project.as_deref(), snapshot_id(&id)?)?;
    Ok(one(s, StatusCode::OK, snap))
}

#[utoipa::path(
    delete, path = "/api/v1/snapshots/{id}", tag = "Snapshots", operation_id = "deleteSnapshot",
    params(
        ("id" = u64, Path, description = "Snapshot ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The snapshot's project"),
    ),
    responses(
        (status = 200, description = "Snapshot deleted", body = SuccessResponse),
        (status = 400, description = "Missing or malformed X-Project-ID", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "The snapshot is active or busy, or the host could not delete it", body = Error),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = snapshot_id(&id)?;
    let s = state.services.clone();
    let caller = who.clone();
    let change = off_worker(move || s.delete_snapshot(&who, project.as_deref(), id)).await?;
    wait_for_job(&state.services, &caller, change.job).await?;
    Ok(super::vms::done(format!(
        "snapshot {} deleted",
        change.snapshot.name
    )))
}

#[utoipa::path(
    post, path = "/api/v1/snapshots/{id}/restore", tag = "Snapshots", operation_id = "restoreSnapshot",
    params(
        ("id" = u64, Path, description = "Snapshot ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The snapshot's project"),
    ),
    responses(
        (status = 200, description = "Restored: the snapshot is now `active`", body = SuccessResponse),
        (status = 400, description = "The VM is not stopped, or holds other volumes than when it was taken", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "The snapshot or a volume is busy, or the host could not restore it", body = Error),
    )
)]
pub async fn restore(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = snapshot_id(&id)?;
    let s = state.services.clone();
    let caller = who.clone();
    let change = off_worker(move || s.restore_snapshot(&who, project.as_deref(), id)).await?;
    wait_for_job(&state.services, &caller, change.job).await?;
    Ok(super::vms::done(format!(
        "restored to snapshot {}",
        change.snapshot.name
    )))
}

#[utoipa::path(
    patch, path = "/api/v1/snapshots/{id}/rename", tag = "Snapshots", operation_id = "renameSnapshot",
    params(
        ("id" = u64, Path, description = "Snapshot ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The snapshot's project"),
    ),
    request_body = RenameSnapshotRequest,
    responses(
        (status = 200, description = "Snapshot renamed", body = SnapshotResponse),
        (status = 400, description = "Invalid name", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn rename(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<RenameSnapshotRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = snapshot_id(&id)?;
    let s = state.services.clone();
    let name = body.into_inner().name;
    let snap = off_worker(move || s.rename_snapshot(&who, project.as_deref(), id, &name)).await?;
    Ok(one(&state.services, StatusCode::OK, snap))
}
