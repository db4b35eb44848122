//! `/api/v1/roles`: the built-in roles and the account's custom roles.

use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{page, path_uuid, Caller};
use super::types::*;
use super::AppState;
use crate::service::{NewRole, RoleChange, RoleView};

fn dto(r: RoleView) -> Role {
    let c = r.custom.as_ref();
    Role {
        id: r.id,
        account_id: r.account_id,
        name: r.name,
        slug: r.slug,
        description: r.description,
        scope: r.scope.as_str().into(),
        permissions: r.permissions,
        is_system: r.is_system,
        created_by: c.and_then(|c| c.created_by),
        created_at: c.map(|c| c.created_at),
        updated_at: c.map(|c| c.updated_at),
    }
}

fn one(status: actix_web::http::StatusCode, r: RoleView) -> HttpResponse {
    HttpResponse::build(status).json(RoleResponse {
        success: true,
        data: dto(r),
    })
}

#[utoipa::path(
    get, path = "/api/v1/roles", tag = "Roles", operation_id = "listRoles",
    params(RoleQuery),
    responses(
        (status = 200, description = "List of roles", body = RoleList),
        (status = 400, description = "Invalid query", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not list roles", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    q: web::Query<RoleQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 50)?;
    let roles = state.services.list_roles(&who, q.scope.as_deref(), page)?;
    Ok(HttpResponse::Ok().json(RoleList {
        success: true,
        data: roles.into_iter().map(dto).collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/roles", tag = "Roles", operation_id = "createRole",
    request_body = CreateRoleRequest,
    responses(
        (status = 201, description = "Role created", body = RoleResponse),
        (status = 400, description = "Invalid name, slug, scope or permissions", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not create roles, or not with these permissions", body = Error),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Caller(who): Caller,
    body: web::Json<CreateRoleRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let r = state.services.create_role(
        &who,
        NewRole {
            name: b.name,
            slug: b.slug,
            description: b.description,
            scope: b.scope,
            permissions: b.permissions,
        },
    )?;
    Ok(one(actix_web::http::StatusCode::CREATED, r))
}

#[utoipa::path(
    get, path = "/api/v1/roles/{id}", tag = "Roles", operation_id = "getRole",
    params(("id" = uuid::Uuid, Path, description = "Role ID (UUID)")),
    responses(
        (status = 200, description = "Role details", body = RoleResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not view roles", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "role")?;
    Ok(one(
        actix_web::http::StatusCode::OK,
        state.services.get_role(&who, &id)?,
    ))
}

#[utoipa::path(
    patch, path = "/api/v1/roles/{id}", tag = "Roles", operation_id = "updateRole",
    params(("id" = uuid::Uuid, Path, description = "Role ID (UUID)")),
    request_body = UpdateRoleRequest,
    responses(
        (status = 200, description = "Role updated", body = RoleResponse),
        (status = 400, description = "A system role, no field, or invalid fields", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not change roles, or not this one", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
    body: web::Json<UpdateRoleRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "role")?;
    let b = body.into_inner();
    let r = state.services.update_role(
        &who,
        &id,
        RoleChange {
            name: b.name,
            description: b.description,
            permissions: b.permissions,
        },
    )?;
    Ok(one(actix_web::http::StatusCode::OK, r))
}

#[utoipa::path(
    delete, path = "/api/v1/roles/{id}", tag = "Roles", operation_id = "deleteRole",
    params(("id" = uuid::Uuid, Path, description = "Role ID (UUID)")),
    responses(
        (status = 200, description = "Role deleted", body = SuccessResponse),
        (status = 400, description = "A system role, or a role in use", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not delete roles", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "role")?;
    let r = state.services.delete_role(&who, &id)?;
    Ok(HttpResponse::Ok().json(SuccessResponse {
        success: true,
        message: format!("role {} deleted", r.name),
    }))
}
