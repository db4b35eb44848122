//! `/api/v1/api-keys`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{page, path_uuid, Caller};
use super::types::{self, *};
use super::AppState;
use crate::model::{self, RateLimitTier};
use crate::service::{ApiKeyChange, NewApiKey, Services, WithSecret};

fn tier(t: TierParam) -> RateLimitTier {
    match t {
        TierParam::Standard => RateLimitTier::Standard,
        TierParam::High => RateLimitTier::High,
    }
}

fn dto(services: &Services, k: model::ApiKey) -> types::APIKey {
    let label = |id: &uuid::Uuid| {
        services
            .role_label(&k.account_id, id)
            .ok()
            .flatten()
            .unzip()
    };
    let (role_name, role_slug) = label(&k.role_id);
    types::APIKey {
        id: k.id,
        account_id: k.account_id,
        name: k.name,
        key_prefix: k.key_prefix,
        scope: "public".into(),
        // The contract's enum has two tiers; an operator-granted unlimited key shows as
        // the higher one, with skiff's own flag saying it is not limited at all.
        rate_limit_tier: match k.rate_limit_tier {
            RateLimitTier::Unlimited => RateLimitTier::High.as_str().into(),
            t => t.as_str().into(),
        },
        rate_limit_unlimited: (k.rate_limit_tier == RateLimitTier::Unlimited).then_some(true),
        expires_at: k.expires_at,
        last_used_at: k.last_used_at,
        is_active: k.is_active,
        role_id: k.role_id,
        role_name,
        role_slug,
        project_accesses: k
            .project_accesses
            .into_iter()
            .map(|a| {
                let (role_name, role_slug) = label(&a.role_id);
                APIKeyProjectAccess {
                    project_id: a.project_id,
                    project_name: services.project_name(&a.project_id),
                    role_id: a.role_id,
                    role_name,
                    role_slug,
                }
            })
            .collect(),
        created_by: k.created_by,
        created_at: k.created_at,
    }
}

fn with_secret(services: &Services, status: StatusCode, w: WithSecret) -> HttpResponse {
    HttpResponse::build(status).json(APIKeyWithSecretResponse {
        success: true,
        data: APIKeyWithSecret {
            key: dto(services, w.key),
            secret: w.secret,
        },
    })
}

#[utoipa::path(
    get, path = "/api/v1/api-keys", tag = "API Keys", operation_id = "listApiKeys",
    params(ApiKeyQuery),
    responses(
        (status = 200, description = "List of API keys", body = APIKeyList),
        (status = 400, description = "Invalid query", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not list API keys", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    q: web::Query<ApiKeyQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 50)?;
    if q.scope.as_deref().is_some_and(|s| s != "public") {
        return Err(ApiError::bad_request("scope must be public"));
    }
    let r = state.services.list_api_keys(&who, page)?;
    Ok(HttpResponse::Ok().json(APIKeyList {
        success: true,
        total: r.total,
        data: r
            .items
            .into_iter()
            .map(|k| dto(&state.services, k))
            .collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/api-keys", tag = "API Keys", operation_id = "createApiKey",
    request_body = CreateAPIKeyRequest,
    responses(
        (status = 201, description = "API key created (full secret returned once)", body = APIKeyWithSecretResponse),
        (status = 400, description = "Invalid request", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The role asked for exceeds the caller's", body = Error),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Caller(who): Caller,
    body: web::Json<CreateAPIKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let w = state.services.create_api_key(
        &who,
        NewApiKey {
            name: b.name,
            rate_limit_tier: b.rate_limit_tier.map(tier),
            expires_at: b.expires_at,
            role_id: b.role_id,
        },
    )?;
    Ok(with_secret(&state.services, StatusCode::CREATED, w))
}

#[utoipa::path(
    get, path = "/api/v1/api-keys/{id}", tag = "API Keys", operation_id = "getApiKey",
    params(("id" = uuid::Uuid, Path, description = "API key ID (UUID)")),
    responses(
        (status = 200, description = "API key details", body = APIKeyResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not view API keys", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "API key")?;
    let k = state.services.get_api_key(&who, &id)?;
    Ok(HttpResponse::Ok().json(APIKeyResponse {
        success: true,
        data: dto(&state.services, k),
    }))
}

#[utoipa::path(
    patch, path = "/api/v1/api-keys/{id}", tag = "API Keys", operation_id = "updateApiKey",
    params(("id" = uuid::Uuid, Path, description = "API key ID (UUID)")),
    request_body = UpdateAPIKeyRequest,
    responses(
        (status = 200, description = "API key updated", body = APIKeyResponse),
        (status = 400, description = "No field given, or an invalid one", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not change API keys", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
    body: web::Json<UpdateAPIKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "API key")?;
    let b = body.into_inner();
    let k = state.services.update_api_key(
        &who,
        &id,
        ApiKeyChange {
            name: b.name,
            rate_limit_tier: b.rate_limit_tier.map(tier),
            expires_at: b.expires_at,
            is_active: b.is_active,
        },
    )?;
    Ok(HttpResponse::Ok().json(APIKeyResponse {
        success: true,
        data: dto(&state.services, k),
    }))
}

#[utoipa::path(
    delete, path = "/api/v1/api-keys/{id}", tag = "API Keys", operation_id = "revokeApiKey",
    params(("id" = uuid::Uuid, Path, description = "API key ID (UUID)")),
    responses(
        (status = 200, description = "API key revoked", body = SuccessResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not revoke API keys", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn revoke(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "API key")?;
    let k = state.services.revoke_api_key(&who, &id)?;
    Ok(HttpResponse::Ok().json(SuccessResponse {
        success: true,
        message: format!("API key {} revoked", k.key_prefix),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/api-keys/{id}/regenerate", tag = "API Keys", operation_id = "regenerateApiKey",
    params(("id" = uuid::Uuid, Path, description = "API key ID (UUID)")),
    responses(
        (status = 200, description = "API key regenerated (full secret returned once)", body = APIKeyWithSecretResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key's role may not regenerate API keys", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn regenerate(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "API key")?;
    let w = state.services.regenerate_api_key(&who, &id)?;
    Ok(with_secret(&state.services, StatusCode::OK, w))
}
