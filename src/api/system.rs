//! Liveness, readiness, metrics and the served OpenAPI document.

use actix_web::{web, HttpResponse};

use super::types::HealthResponse;
use super::AppState;

#[utoipa::path(
    get, path = "/health", tag = "Health", operation_id = "healthCheck", security(()),
    responses((status = 200, description = "Service is healthy", body = HealthResponse))
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse {
        status: "healthy".into(),
    })
}

/// Ready once the store answers (the documented `/ready`, not in the contract's YAML).
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.services.is_initialized() {
        Ok(true) => HttpResponse::Ok().json(HealthResponse {
            status: "ready".into(),
        }),
        _ => HttpResponse::ServiceUnavailable().json(HealthResponse {
            status: "starting".into(),
        }),
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let jobs: Vec<(&str, usize)> = state
        .services
        .jobs()
        .counts()
        .map(|c| c.into_iter().map(|(s, n)| (s.as_str(), n)).collect())
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&jobs))
}

pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}
