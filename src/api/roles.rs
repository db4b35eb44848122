//! `/api/v1/roles`, read-only: the built-in roles (custom roles come with IAM).

use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{page, path_uuid, Caller};
use super::types::*;
use crate::service::authz::{SystemRole, PERMISSIONS, SYSTEM_ROLES};

fn dto(r: &SystemRole) -> Role {
    Role {
        id: r.id(),
        name: r.name.into(),
        slug: r.slug.into(),
        description: format!("Built-in {} role", r.scope.as_str()),
        scope: r.scope.as_str().into(),
        permissions: PERMISSIONS
            .iter()
            .filter(|p| r.grants(p.name))
            .map(|p| p.name.to_string())
            .collect(),
        is_system: true,
    }
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
pub async fn list(Caller(who): Caller, q: web::Query<RoleQuery>) -> Result<HttpResponse, ApiError> {
    who.require("account.roles.view")?;
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 50)?;
    let scope = q.scope.as_deref();
    if scope.is_some_and(|s| s != "account" && s != "project") {
        return Err(ApiError::bad_request("scope must be account or project"));
    }
    let data = SYSTEM_ROLES
        .iter()
        .filter(|r| scope.is_none_or(|s| r.scope.as_str() == s))
        .skip(page.offset)
        .take(page.limit)
        .map(dto)
        .collect();
    Ok(HttpResponse::Ok().json(RoleList {
        success: true,
        data,
    }))
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
pub async fn get(Caller(who): Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    who.require("account.roles.view")?;
    let id = path_uuid(&id, "role")?;
    let r = SystemRole::by_id(&id)
        .ok_or_else(|| ApiError::new(actix_web::http::StatusCode::NOT_FOUND, "role not found"))?;
    Ok(HttpResponse::Ok().json(RoleResponse {
        success: true,
        data: dto(r),
    }))
}
