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

/// Request counts by route reveal what a host runs: loopback scrapers, or anyone with
/// the configured bearer token.
fn may_scrape(req: &actix_web::HttpRequest, token: Option<&str>) -> bool {
    match token {
        Some(t) => req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            // Digests compared, so the time taken says nothing about the token.
            .is_some_and(|given| {
                use sha2::{Digest, Sha256};
                Sha256::digest(given.as_bytes()) == Sha256::digest(t.as_bytes())
            }),
        None => req.peer_addr().is_some_and(|a| a.ip().is_loopback()),
    }
}

pub async fn metrics(req: actix_web::HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if !may_scrape(&req, state.metrics_token.as_deref()) {
        return HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body("metrics are for loopback or the configured metrics_token\n");
    }
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
