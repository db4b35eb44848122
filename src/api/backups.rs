//! `/api/v1/backups`, `/api/v1/backup-schedules`, `/api/v1/vms/{id}/backups/reset-chain`
//! and skiff's `/api/skiff/v1/backups/verify`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{optional_uuid, page, path_uuid, Caller, ProjectHeader};
use super::types::{self, *};
use super::vms::done;
use super::AppState;
use crate::model;
use crate::service::{storage_mb, ScheduleWrite, Services};

fn price(services: &Services, bytes: u64) -> String {
    let gb = bytes as f64 / (1u64 << 30) as f64;
    format!("{:.6}", gb * services.backup_price_per_gb_hour())
}

fn dto(s: &Services, b: model::Backup) -> types::Backup {
    types::Backup {
        id: b.id,
        account_id: b.account_id,
        project_id: b.project_id,
        created_by: b.created_by.map(|u| u.to_string()),
        region: b.region,
        product_vm: b.vm_id,
        name: b.name,
        storage_size: storage_mb(b.stored_bytes),
        status: b.status.as_str().into(),
        price_per_hour: price(s, b.stored_bytes),
        increment_id: b.increment,
        method: b.method,
        error: b.error,
        created_at: b.created_at,
    }
}

fn one(status: StatusCode, s: &Services, b: model::Backup) -> HttpResponse {
    HttpResponse::build(status).json(BackupResponse {
        success: true,
        data: dto(s, b),
    })
}

fn schedule_one(
    s: &Services,
    status: StatusCode,
    x: model::BackupSchedule,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::build(status).json(BackupScheduleResponse {
        success: true,
        data: schedule_dto(s, x)?,
    }))
}

fn schedule_dto(s: &Services, x: model::BackupSchedule) -> Result<types::BackupSchedule, ApiError> {
    let bytes = s.schedule_stored_bytes(&x)?;
    Ok(types::BackupSchedule {
        id: x.id,
        account_id: x.account_id,
        project_id: x.project_id,
        created_by: x.created_by.map(|u| u.to_string()),
        region: x.region.clone(),
        product_vm: x.vm_id,
        runtime: crate::service::runtime_text(&x),
        name: x.name,
        kind: x.kind,
        keep_count: x.keep_count,
        price_per_hour: price(s, bytes),
        size: storage_mb(bytes).to_string(),
        enabled: x.enabled,
        consecutive_failures: x.consecutive_failures,
        last_run_at: x.last_run_at,
        last_run_status: x.last_run_status,
        next_run_at: x.next_run_at,
        created_at: x.created_at,
    })
}

#[utoipa::path(
    get, path = "/api/v1/backups", tag = "Backups", operation_id = "listBackups",
    params(
        ("X-Project-ID" = Option<uuid::Uuid>, Header, description = "Only this project's; every accessible project when omitted"),
        BackupQuery,
    ),
    responses(
        (status = 403, description = "No permission in the project", body = Error),
        (status = 200, description = "List of backups", body = BackupList),
        (status = 400, description = "Malformed filter", body = Error),
        (status = 401, description = "Authentication required", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    q: web::Query<BackupQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 50)?;
    let project = optional_uuid(project.as_deref(), "X-Project-ID")?;
    let vm = optional_uuid(q.vm_id.as_deref(), "vm_id")?;
    let s = &state.services;
    let r = s.list_backups(&who, project.as_ref(), vm.as_ref(), page)?;
    Ok(HttpResponse::Ok().json(BackupList {
        success: true,
        total: r.total,
        data: r.items.into_iter().map(|b| dto(s, b)).collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/backups", tag = "Backups", operation_id = "createBackup",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project")),
    request_body = CreateBackupRequest,
    responses(
        (status = 202, description = "Backup creation accepted", body = BackupResponse),
        (status = 400, description = "Invalid request", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "No such VM", body = Error),
        (status = 409, description = "The VM is busy", body = Error),
        (status = 503, description = "Backups are not available on this host", body = Error),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    body: web::Json<CreateBackupRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = state.services.create_backup(
        &who,
        project.as_deref(),
        &body.vm_id,
        body.name.as_deref(),
    )?;
    Ok(one(StatusCode::ACCEPTED, &state.services, b))
}

#[utoipa::path(
    get, path = "/api/v1/backups/{id}", tag = "Backups", operation_id = "getBackup",
    params(
        ("id" = uuid::Uuid, Path, description = "Backup ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The backup's project"),
    ),
    responses(
        (status = 400, description = "Missing or malformed X-Project-ID", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 200, description = "Backup details", body = BackupResponse),
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
    let id = path_uuid(&id, "Backup")?;
    let s = &state.services;
    let b = s.get_backup(&who, &id)?;
    s.header_names(
        &who,
        project.as_deref(),
        &b.project_id,
        "backup.view",
        "Backup",
    )?;
    Ok(one(StatusCode::OK, &state.services, b))
}

#[utoipa::path(
    delete, path = "/api/v1/backups/{id}", tag = "Backups", operation_id = "deleteBackup",
    params(
        ("id" = uuid::Uuid, Path, description = "Backup ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The backup's project"),
    ),
    responses(
        (status = 400, description = "Missing or malformed X-Project-ID", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 200, description = "Backup deleted; the series' other points stay restorable", body = SuccessResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "The backup is being created or restored", body = Error),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "Backup")?;
    let b = state
        .services
        .delete_backup(&who, project.as_deref(), &id)?;
    Ok(done(format!("backup {} deleted", b.name)))
}

#[utoipa::path(
    delete, path = "/api/v1/backups/{id}/chain", tag = "Backups", operation_id = "deleteBackupChain",
    params(
        ("id" = uuid::Uuid, Path, description = "UUID of any backup in the series"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The backup's project"),
    ),
    responses(
        (status = 400, description = "Missing or malformed X-Project-ID", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 200, description = "Backup series deleted", body = SuccessResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "A point of the series is being created or restored", body = Error),
    )
)]
pub async fn delete_chain(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "Backup")?;
    let gone = state
        .services
        .delete_backup_chain(&who, project.as_deref(), &id)?;
    Ok(done(format!("{} restore point(s) deleted", gone.len())))
}

#[utoipa::path(
    post, path = "/api/v1/backups/{id}/restore", tag = "Backups", operation_id = "restoreBackup",
    params(
        ("id" = uuid::Uuid, Path, description = "Backup ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The backup's project"),
    ),
    responses(
        (status = 403, description = "No permission in the project", body = Error),
        (status = 202, description = "Restore accepted: the VM's disk is replaced; a running VM is shut down and started again", body = BackupResponse),
        (status = 400, description = "The backup is not ready, or its VM is gone", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "The VM is busy", body = Error),
        (status = 503, description = "Backups are not available on this host", body = Error),
    )
)]
pub async fn restore(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "Backup")?;
    let b = state
        .services
        .restore_backup(&who, project.as_deref(), &id)?;
    Ok(one(StatusCode::ACCEPTED, &state.services, b))
}

#[utoipa::path(
    post, path = "/api/v1/vms/{id}/backups/reset-chain", tag = "Backups", operation_id = "resetBackupChain",
    params(
        ("id" = uuid::Uuid, Path, description = "VM UUID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    responses(
        (status = 403, description = "No permission in the project", body = Error),
        (status = 202, description = "The next backup starts a new series", body = SuccessResponse),
        (status = 400, description = "X-Project-ID missing", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn reset_chain(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    state
        .services
        .reset_backup_chain(&who, project.as_deref(), &id)?;
    Ok(HttpResponse::Accepted().json(SuccessResponse {
        success: true,
        message: "the next backup starts a new series".into(),
    }))
}

#[utoipa::path(
    post, path = "/api/skiff/v1/backups/verify", tag = "Backups", operation_id = "skiffVerifyBackups",
    request_body(content = Option<VerifyBackupsRequest>),
    responses(
        (status = 400, description = "Missing or malformed X-Project-ID", body = Error),
        (status = 202, description = "Verify queued; the job fails naming the damaged backups", body = JobResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "Verifying the whole repository needs account settings rights", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 503, description = "Backups are not available on this host", body = Error),
    )
)]
pub async fn verify(
    state: web::Data<AppState>,
    Caller(who): Caller,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // The body is optional, but a body that is there must be right.
    let id = if body.iter().all(|b| b.is_ascii_whitespace()) {
        None
    } else {
        serde_json::from_slice::<VerifyBackupsRequest>(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
            .backup_id
    };
    let j = state.services.verify_backups(&who, id.as_ref())?;
    Ok(HttpResponse::Accepted().json(JobResponse {
        success: true,
        data: super::jobs::dto(j),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/backup-schedules", tag = "Backup Schedules", operation_id = "listBackupSchedules",
    params(
        ("X-Project-ID" = Option<uuid::Uuid>, Header, description = "Only this project's; every accessible project when omitted"),
        BackupQuery,
    ),
    responses(
        (status = 403, description = "No permission in the project", body = Error),
        (status = 200, description = "List of backup schedules", body = BackupScheduleList),
        (status = 400, description = "Malformed filter", body = Error),
        (status = 401, description = "Authentication required", body = Error),
    )
)]
pub async fn list_schedules(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    q: web::Query<BackupQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 50)?;
    let project = optional_uuid(project.as_deref(), "X-Project-ID")?;
    let vm = optional_uuid(q.vm_id.as_deref(), "vm_id")?;
    let s = &state.services;
    let r = s.list_backup_schedules(&who, project.as_ref(), vm.as_ref(), page)?;
    let data = r
        .items
        .into_iter()
        .map(|x| schedule_dto(s, x))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(BackupScheduleList {
        success: true,
        total: r.total,
        data,
    }))
}

fn schedule_id(raw: &str) -> Result<u64, ApiError> {
    raw.trim()
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "Backup schedule not found"))
}

#[utoipa::path(
    post, path = "/api/v1/backup-schedules", tag = "Backup Schedules", operation_id = "createBackupSchedule",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project")),
    request_body = CreateBackupScheduleRequest,
    responses(
        (status = 201, description = "Backup schedule created", body = BackupScheduleResponse),
        (status = 400, description = "Invalid request", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "No such VM", body = Error),
    )
)]
pub async fn create_schedule(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    body: web::Json<CreateBackupScheduleRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let s = &state.services;
    let x = s.create_backup_schedule(
        &who,
        project.as_deref(),
        &b.vm_id,
        &ScheduleWrite {
            kind: Some(b.kind),
            time: Some(b.time),
            day_of_week: b.day_of_week,
            keep_count: Some(b.keep_count),
            enabled: None,
        },
    )?;
    schedule_one(s, StatusCode::CREATED, x)
}

#[utoipa::path(
    get, path = "/api/v1/backup-schedules/{id}", tag = "Backup Schedules", operation_id = "getBackupSchedule",
    params(
        ("id" = u64, Path, description = "Backup schedule ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The schedule's project"),
    ),
    responses(
        (status = 400, description = "Missing or malformed X-Project-ID", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 200, description = "Backup schedule details", body = BackupScheduleResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get_schedule(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.services;
    let x = s.get_backup_schedule(&who, schedule_id(&id)?)?;
    s.header_names(
        &who,
        project.as_deref(),
        &x.project_id,
        "backup.view",
        "Backup schedule",
    )?;
    schedule_one(s, StatusCode::OK, x)
}

#[utoipa::path(
    patch, path = "/api/v1/backup-schedules/{id}", tag = "Backup Schedules", operation_id = "updateBackupSchedule",
    params(
        ("id" = u64, Path, description = "Backup schedule ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The schedule's project"),
    ),
    request_body = UpdateBackupScheduleRequest,
    responses(
        (status = 403, description = "No permission in the project", body = Error),
        (status = 200, description = "Backup schedule updated", body = BackupScheduleResponse),
        (status = 400, description = "Invalid request", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn update_schedule(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<UpdateBackupScheduleRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let s = &state.services;
    let x = s.update_backup_schedule(
        &who,
        project.as_deref(),
        schedule_id(&id)?,
        &ScheduleWrite {
            kind: b.kind,
            time: b.time,
            day_of_week: b.day_of_week,
            keep_count: b.keep_count,
            enabled: b.enabled,
        },
    )?;
    schedule_one(s, StatusCode::OK, x)
}

#[utoipa::path(
    delete, path = "/api/v1/backup-schedules/{id}", tag = "Backup Schedules", operation_id = "deleteBackupSchedule",
    params(
        ("id" = u64, Path, description = "Backup schedule ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The schedule's project"),
    ),
    responses(
        (status = 400, description = "Missing or malformed X-Project-ID", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 200, description = "Backup schedule deleted; its backups stay", body = SuccessResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn delete_schedule(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let x = state
        .services
        .delete_backup_schedule(&who, project.as_deref(), schedule_id(&id)?)?;
    Ok(done(format!("backup schedule {} deleted", x.id)))
}
