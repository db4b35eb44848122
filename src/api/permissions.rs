//! `/api/v1/permissions`: the catalog of permission strings.

use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::Caller;
use super::types::*;
use crate::service::authz::PERMISSIONS;

#[utoipa::path(
    get, path = "/api/v1/permissions", tag = "Permissions", operation_id = "listPermissions",
    params(ScopeQuery),
    responses(
        (status = 200, description = "List of permissions", body = PermissionList),
        (status = 400, description = "Unknown scope", body = Error),
        (status = 401, description = "Authentication required", body = Error),
    )
)]
pub async fn list(_who: Caller, q: web::Query<ScopeQuery>) -> Result<HttpResponse, ApiError> {
    let scope = q.scope.as_deref();
    if scope.is_some_and(|s| s != "account" && s != "project") {
        return Err(ApiError::bad_request("scope must be account or project"));
    }
    let data = PERMISSIONS
        .iter()
        .filter(|p| scope.is_none_or(|s| p.scope.as_str() == s))
        .map(|p| Permission {
            name: p.name.into(),
            description: p.description.into(),
            scope: p.scope.as_str().into(),
            category: p.category().into(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(PermissionList {
        success: true,
        data,
    }))
}
