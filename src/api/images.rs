//! `/api/skiff/v1/images`: the images a tenant saved from its VMs (`save-image`). The
//! contract creates them but has no call to list or delete them; these are skiff's.

use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{path_uuid, Caller, ProjectHeader};
use super::types::*;
use super::vms::done;
use super::AppState;
use crate::model;

pub(super) fn dto(t: model::Template) -> VMImage {
    let status = t.status();
    VMImage {
        id: t.id,
        name: t.name,
        version: t.version,
        description: t.description,
        os_type: t.os_type,
        is_windows: t.is_windows,
        region: t.region,
        created_at: t.created_at,
        status,
        error: t.error,
    }
}

#[utoipa::path(
    get, path = "/api/skiff/v1/images", tag = "Images", operation_id = "skiffListImages",
    params(("X-Project-ID" = Option<uuid::Uuid>, Header, description = "Only this project's images; omit for every project the caller sees")),
    responses(
        (status = 200, description = "Saved images, oldest first", body = VMImageList),
        (status = 400, description = "X-Project-ID malformed", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "No such project", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
) -> Result<HttpResponse, ApiError> {
    let list = state.services.list_saved_images(&who, project.as_deref())?;
    Ok(HttpResponse::Ok().json(VMImageList {
        success: true,
        data: list.into_iter().map(dto).collect(),
    }))
}

#[utoipa::path(
    delete, path = "/api/skiff/v1/images/{id}", tag = "Images", operation_id = "skiffDeleteImage",
    params(
        ("id" = uuid::Uuid, Path, description = "Image ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The image's project"),
    ),
    responses(
        (status = 200, description = "Deleted", body = SuccessResponse),
        (status = 400, description = "X-Project-ID missing or malformed", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "No such image in the project", body = Error),
        (status = 409, description = "A VM's disk is built on the image", body = Error),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "image")?;
    state
        .services
        .delete_saved_image(&who, project.as_deref(), &id)?;
    Ok(done("Image deleted".into()))
}
