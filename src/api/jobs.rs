//! `/api/skiff/v1/jobs`: skiff's own view of durable operations (not in the contract).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{path_uuid, Caller, ProjectHeader};
use super::types::{self, *};
use super::AppState;
use crate::model;

pub(super) fn dto(j: model::Job) -> types::Job {
    types::Job {
        id: j.id,
        kind: j.kind,
        target: j.target,
        project_id: j.project_id,
        status: j.status.as_str().into(),
        progress: j.progress,
        error: j.error,
        attempts: j.attempts,
        created_at: j.created_at,
        started_at: j.started_at,
        finished_at: j.finished_at,
    }
}

#[utoipa::path(
    get, path = "/api/skiff/v1/jobs", tag = "Jobs", operation_id = "skiffListJobs",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "Project whose jobs to list")),
    responses(
        (status = 200, description = "Jobs of the project, oldest first", body = JobList),
        (status = 400, description = "X-Project-ID missing or malformed", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No access to the project's jobs", body = Error),
        (status = 404, description = "No such project", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
) -> Result<HttpResponse, ApiError> {
    let p = state
        .services
        .project_scope(&who, project.as_deref(), "project.settings.view")?;
    let jobs = state.services.list_jobs(&who, &p.id)?;
    Ok(HttpResponse::Ok().json(JobList {
        success: true,
        data: jobs.into_iter().map(dto).collect(),
    }))
}

#[utoipa::path(
    get, path = "/api/skiff/v1/jobs/{id}", tag = "Jobs", operation_id = "skiffGetJob",
    params(("id" = uuid::Uuid, Path, description = "Job ID (UUID)")),
    responses(
        (status = 200, description = "The job", body = JobResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "job")?;
    Ok(HttpResponse::Ok().json(JobResponse {
        success: true,
        data: dto(state.services.get_job(&who, &id)?),
    }))
}

#[utoipa::path(
    post, path = "/api/skiff/v1/jobs/diag", tag = "Jobs", operation_id = "skiffCreateDiagJob",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "Project the job belongs to")),
    request_body = CreateDiagJobRequest,
    responses(
        (status = 202, description = "Self-test queued", body = JobResponse),
        (status = 400, description = "Invalid request or X-Project-ID missing", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "Only the operator may run diagnostics", body = Error),
        (status = 404, description = "No such project", body = Error),
    )
)]
pub async fn create_diag(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    body: web::Json<CreateDiagJobRequest>,
) -> Result<HttpResponse, ApiError> {
    let j = state.services.submit_diag_job(
        &who,
        project.as_deref(),
        body.steps,
        body.step_ms,
        body.resumable,
    )?;
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(JobResponse {
        success: true,
        data: dto(j),
    }))
}
