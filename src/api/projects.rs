//! `/api/v1/projects`.

use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{page, path_uuid, Caller};
use super::types::{self, *};
use super::AppState;
use crate::model;
use crate::service::{NewProject, ProjectChange};

fn dto(p: model::Project) -> types::Project {
    types::Project {
        id: p.id,
        account_id: p.account_id,
        name: p.name,
        slug: p.slug,
        description: p.description,
        default_region: p.default_region,
        is_default: p.is_default,
        is_active: p.is_active,
        created_by: p.created_by,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

fn one(status: actix_web::http::StatusCode, p: model::Project) -> HttpResponse {
    HttpResponse::build(status).json(ProjectResponse {
        success: true,
        data: dto(p),
    })
}

#[utoipa::path(
    get, path = "/api/v1/projects", tag = "Projects", operation_id = "listProjects",
    params(PageQuery),
    responses(
        (status = 200, description = "List of projects", body = ProjectList),
        (status = 400, description = "limit or offset is not an integer", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not list projects", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 20)?;
    let r = state.services.list_projects(&who, page)?;
    Ok(HttpResponse::Ok().json(ProjectList {
        success: true,
        total: r.total,
        data: r.items.into_iter().map(dto).collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/projects", tag = "Projects", operation_id = "createProject",
    request_body = CreateProjectRequest,
    responses(
        (status = 201, description = "Project created", body = ProjectResponse),
        (status = 400, description = "Invalid request", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not create projects", body = Error),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Caller(who): Caller,
    body: web::Json<CreateProjectRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let p = state.services.create_project(
        &who,
        NewProject {
            name: b.name,
            description: b.description,
            default_region: b.default_region,
        },
    )?;
    Ok(one(actix_web::http::StatusCode::CREATED, p))
}

#[utoipa::path(
    get, path = "/api/v1/projects/{id}", tag = "Projects", operation_id = "getProject",
    params(("id" = uuid::Uuid, Path, description = "Project ID (UUID)")),
    responses(
        (status = 200, description = "Project details", body = ProjectResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not view projects", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "project")?;
    Ok(one(
        actix_web::http::StatusCode::OK,
        state.services.get_project(&who, &id)?,
    ))
}

#[utoipa::path(
    put, path = "/api/v1/projects/{id}", tag = "Projects", operation_id = "updateProject",
    params(("id" = uuid::Uuid, Path, description = "Project ID (UUID)")),
    request_body = UpdateProjectRequest,
    responses(
        (status = 200, description = "Project updated", body = ProjectResponse),
        (status = 400, description = "Invalid request", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not change projects", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
    body: web::Json<UpdateProjectRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "project")?;
    let b = body.into_inner();
    let p = state.services.update_project(
        &who,
        &id,
        ProjectChange {
            name: b.name,
            description: b.description,
            default_region: b.default_region,
        },
    )?;
    Ok(one(actix_web::http::StatusCode::OK, p))
}

#[utoipa::path(
    delete, path = "/api/v1/projects/{id}", tag = "Projects", operation_id = "deleteProject",
    params(("id" = uuid::Uuid, Path, description = "Project ID (UUID)")),
    responses(
        (status = 200, description = "Project deleted", body = SuccessResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not delete projects", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "The default project, or one with work in progress", body = Error),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "project")?;
    let p = state.services.delete_project(&who, &id)?;
    Ok(HttpResponse::Ok().json(SuccessResponse {
        success: true,
        message: format!("project {} deleted", p.name),
    }))
}
