//! `/api/v1/volumes`. Attach, detach and resize answer once the host has done them
//! (their jobs take about a second; a guest that is slow to let go of a disk, up to a
//! minute), so the volume in the answer is the volume as it now is.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{optional_uuid, page, Caller, ProjectHeader};
use super::security_groups::off_worker;
use super::types::{self, *};
use super::AppState;
use crate::model;
use crate::service::{NewVolume, Principal, Services};

/// How long an attach, detach or resize answer waits for its job.
const WAIT: Duration = Duration::from_secs(90);

pub(crate) fn dto(s: &Services, v: model::Volume) -> types::Volume {
    let attached = v.vm_id.is_some() && v.status == model::VolumeStatus::Attached;
    types::Volume {
        price_per_hour: s.volume_price(&v),
        product_vm: v.vm_id,
        device: v
            .device
            .as_ref()
            .filter(|_| attached)
            .map(|d| format!("/dev/{d}")),
        device_by_id: attached.then(|| format!("/dev/disk/by-id/virtio-{}", v.serial())),
        id: v.id,
        account_id: v.account_id,
        project_id: v.project_id,
        name: v.name,
        volume_type: "nvme".into(),
        size: v.size_gib,
        status: v.status.as_str().into(),
        region: v.region,
        filesystem_type: v.filesystem,
        pending: v.pending,
        error: v.error,
        created_at: v.created_at,
        updated_at: v.updated_at,
    }
}

fn volume_id(raw: &str) -> Result<u64, ApiError> {
    raw.trim()
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "volume not found"))
}

/// Waits up to `WAIT` for `job`; its failure is the answer (409). A job still
/// running then is left to finish; the caller answers with the state as it is.
pub(super) async fn wait_for_job(
    s: &Services,
    who: &Principal,
    job: uuid::Uuid,
) -> Result<(), ApiError> {
    let Ok(j) = s.wait_job(who, &job, WAIT).await else {
        return Ok(());
    };
    match j.error.filter(|_| j.status == model::JobStatus::Failed) {
        Some(e) => Err(ApiError::new(StatusCode::CONFLICT, e)),
        None => Ok(()),
    }
}

/// Waits for `job`; its failure is the answer (409, the volume as it was), else the
/// volume as it now is.
async fn settle(
    s: &Services,
    who: &Principal,
    id: u64,
    job: uuid::Uuid,
) -> Result<model::Volume, ApiError> {
    wait_for_job(s, who, job).await?;
    s.volume_after(id)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "volume not found"))
}

fn one(s: &Services, status: StatusCode, v: model::Volume) -> HttpResponse {
    HttpResponse::build(status).json(VolumeResponse {
        success: true,
        data: dto(s, v),
    })
}

#[utoipa::path(
    get, path = "/api/v1/volumes", tag = "Volumes", operation_id = "listVolumes",
    params(
        ("X-Project-ID" = Option<uuid::Uuid>, Header, description = "Only this project's; every accessible project when omitted"),
        VolumeQuery,
    ),
    responses(
        (status = 200, description = "List of volumes", body = VolumeList),
        (status = 400, description = "Malformed filter", body = Error),
        (status = 401, description = "Authentication required", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    q: web::Query<VolumeQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 50)?;
    let project = optional_uuid(project.as_deref(), "X-Project-ID")?;
    let vm = optional_uuid(q.vm_id.as_deref(), "vm_id")?;
    let s = &state.services;
    let r = s.list_volumes(
        &who,
        project.as_ref(),
        vm.as_ref(),
        q.region.as_deref(),
        page,
    )?;
    Ok(HttpResponse::Ok().json(VolumeList {
        success: true,
        total: r.total,
        data: r.items.into_iter().map(|v| dto(s, v)).collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/volumes", tag = "Volumes", operation_id = "createVolume",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "The volume's project")),
    request_body = CreateVolumeRequest,
    responses(
        (status = 202, description = "Accepted: the volume is `creating`", body = VolumeResponse),
        (status = 400, description = "Invalid request", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 402, description = "A quota would be exceeded", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "No such project", body = Error),
        (status = 409, description = "The VM holds 16 volumes, or the host is short of disk", body = Error),
        (status = 503, description = "Volumes cannot be made on this host now", body = Error),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    body: web::Json<CreateVolumeRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let s = state.services.clone();
    let change = off_worker(move || {
        s.create_volume(
            &who,
            project.as_deref(),
            NewVolume {
                name: b.name,
                size_gib: b.size,
                volume_type: b.volume_type,
                filesystem: b.filesystem_type,
                vm_id: b.vm_id,
                region: b.region,
            },
        )
    })
    .await?;
    Ok(one(&state.services, StatusCode::ACCEPTED, change.volume))
}

#[utoipa::path(
    get, path = "/api/v1/volumes/{id}", tag = "Volumes", operation_id = "getVolume",
    params(
        ("id" = u64, Path, description = "Volume ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The volume's project"),
    ),
    responses(
        (status = 200, description = "Volume details", body = VolumeResponse),
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
    let v = s.get_volume(&who, project.as_deref(), volume_id(&id)?)?;
    Ok(one(s, StatusCode::OK, v))
}

#[utoipa::path(
    delete, path = "/api/v1/volumes/{id}", tag = "Volumes", operation_id = "deleteVolume",
    params(
        ("id" = u64, Path, description = "Volume ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The volume's project"),
    ),
    responses(
        (status = 200, description = "Deletion accepted", body = SuccessResponse),
        (status = 400, description = "Attached to a VM, or X-Project-ID missing", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "Another change of the volume is under way", body = Error),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = volume_id(&id)?;
    let s = state.services.clone();
    let v = off_worker(move || s.delete_volume(&who, project.as_deref(), id)).await?;
    Ok(super::vms::done(format!(
        "volume {} is being deleted",
        v.name
    )))
}

#[utoipa::path(
    patch, path = "/api/v1/volumes/{id}", tag = "Volumes", operation_id = "resizeVolume",
    params(
        ("id" = u64, Path, description = "Volume ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The volume's project"),
    ),
    request_body = ResizeVolumeRequest,
    responses(
        (status = 200, description = "Volume resized", body = ResizeResponse),
        (status = 400, description = "Not larger than now, or too large", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 402, description = "A quota would be exceeded", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "Another change is under way, or the resize failed", body = Error),
    )
)]
pub async fn resize(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<ResizeVolumeRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = volume_id(&id)?;
    let size = body.new_size;
    let s = state.services.clone();
    let caller = who.clone();
    let change = off_worker(move || s.resize_volume(&who, project.as_deref(), id, size)).await?;
    let v = settle(&state.services, &caller, id, change.job).await?;
    Ok(HttpResponse::Ok().json(ResizeResponse {
        success: true,
        message: format!("volume {} is {} GB", v.name, v.size_gib),
        id: v.id.to_string(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/volumes/{id}/attach", tag = "Volumes", operation_id = "attachVolume",
    params(
        ("id" = u64, Path, description = "Volume ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The volume's project"),
    ),
    request_body = AttachVolumeRequest,
    responses(
        (status = 200, description = "Volume attached", body = VolumeResponse),
        (status = 400, description = "Attached already, no such VM in the project, another region", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "Another change is under way, or the host could not attach it", body = Error),
    )
)]
pub async fn attach(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<AttachVolumeRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = volume_id(&id)?;
    let vm = body.vm_id;
    let s = state.services.clone();
    let caller = who.clone();
    let change = off_worker(move || s.attach_volume(&who, project.as_deref(), id, &vm)).await?;
    let v = settle(&state.services, &caller, id, change.job).await?;
    Ok(one(&state.services, StatusCode::OK, v))
}

#[utoipa::path(
    post, path = "/api/v1/volumes/{id}/detach", tag = "Volumes", operation_id = "detachVolume",
    params(
        ("id" = u64, Path, description = "Volume ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The volume's project"),
    ),
    responses(
        (status = 200, description = "Volume detached", body = VolumeResponse),
        (status = 400, description = "Not attached", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "Another change is under way, or the guest did not let go", body = Error),
    )
)]
pub async fn detach(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = volume_id(&id)?;
    let s = state.services.clone();
    let caller = who.clone();
    let change = off_worker(move || s.detach_volume(&who, project.as_deref(), id)).await?;
    let v = settle(&state.services, &caller, id, change.job).await?;
    Ok(one(&state.services, StatusCode::OK, v))
}
