//! `/api/v1/ssh-keys`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{path_uuid, Caller};
use super::types::{self, *};
use super::AppState;
use crate::model;

fn dto(k: model::SshKey) -> types::SSHKey {
    types::SSHKey {
        id: k.id,
        name: k.name,
        public_key: k.public_key,
        key_type: k.key_type,
        fingerprint: k.fingerprint,
        created_at: k.created_at,
        updated_at: k.updated_at,
    }
}

fn one(status: StatusCode, k: model::SshKey) -> HttpResponse {
    HttpResponse::build(status).json(SSHKeyResponse {
        success: true,
        data: dto(k),
    })
}

#[utoipa::path(
    get, path = "/api/v1/ssh-keys", tag = "SSH Keys", operation_id = "listSSHKeys",
    responses(
        (status = 200, description = "List of SSH keys", body = SSHKeyList),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not list SSH keys", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
) -> Result<HttpResponse, ApiError> {
    let keys = state.services.list_ssh_keys(&who)?;
    Ok(HttpResponse::Ok().json(SSHKeyList {
        success: true,
        data: keys.into_iter().map(dto).collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/ssh-keys", tag = "SSH Keys", operation_id = "createSSHKey",
    request_body = CreateSSHKeyRequest,
    responses(
        (status = 201, description = "SSH key created", body = SSHKeyResponse),
        (status = 400, description = "Invalid name or public key", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not add SSH keys", body = Error),
        (status = 409, description = "The public key is on the account already", body = Error),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Caller(who): Caller,
    body: web::Json<CreateSSHKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let k = state
        .services
        .create_ssh_key(&who, &body.name, &body.public_key)?;
    Ok(one(StatusCode::CREATED, k))
}

#[utoipa::path(
    get, path = "/api/v1/ssh-keys/{id}", tag = "SSH Keys", operation_id = "getSSHKey",
    params(("id" = uuid::Uuid, Path, description = "SSH key ID (UUID)")),
    responses(
        (status = 200, description = "SSH key details", body = SSHKeyResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not view SSH keys", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "SSH key")?;
    Ok(one(StatusCode::OK, state.services.get_ssh_key(&who, &id)?))
}

#[utoipa::path(
    put, path = "/api/v1/ssh-keys/{id}", tag = "SSH Keys", operation_id = "updateSSHKey",
    params(("id" = uuid::Uuid, Path, description = "SSH key ID (UUID)")),
    request_body = UpdateSSHKeyRequest,
    responses(
        (status = 200, description = "SSH key updated", body = SSHKeyResponse),
        (status = 400, description = "Invalid name", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not rename SSH keys", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
    body: web::Json<UpdateSSHKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "SSH key")?;
    Ok(one(
        StatusCode::OK,
        state.services.rename_ssh_key(&who, &id, &body.name)?,
    ))
}

#[utoipa::path(
    delete, path = "/api/v1/ssh-keys/{id}", tag = "SSH Keys", operation_id = "deleteSSHKey",
    params(("id" = uuid::Uuid, Path, description = "SSH key ID (UUID)")),
    responses(
        (status = 200, description = "SSH key deleted", body = SSHKeyResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not delete SSH keys", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "SSH key")?;
    Ok(one(
        StatusCode::OK,
        state.services.delete_ssh_key(&who, &id)?,
    ))
}
