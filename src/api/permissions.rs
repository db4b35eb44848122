//! `/api/v1/permissions`: the catalog of permission strings.

use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::Caller;
use super::types::*;
use super::AppState;

#[utoipa::path(
    get, path = "/api/v1/permissions", tag = "Permissions", operation_id = "listPermissions",
    params(ScopeQuery),
    responses(
        (status = 200, description = "List of permissions", body = PermissionList),
        (status = 400, description = "Unknown scope", body = Error),
        (status = 401, description = "Authentication required", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    _who: Caller,
    q: web::Query<ScopeQuery>,
) -> Result<HttpResponse, ApiError> {
    let data = state
        .services
        .list_permissions(q.scope.as_deref())?
        .into_iter()
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
