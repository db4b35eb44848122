//! `/api/v1/roles`, read-only: the built-in roles (custom roles come with IAM).

use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{page, path_uuid, Caller};
use super::types::*;
use super::AppState;
use crate::service::authz::{SystemRole, PERMISSIONS};

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
    Ok(HttpResponse::Ok().json(RoleResponse {
        success: true,
        data: dto(state.services.get_role(&who, &id)?),
    }))
}
