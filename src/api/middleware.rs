//! Request plumbing around every handler: request ids, tracing spans and metrics for
//! all routes; API-key authentication and rate limiting for the private ones.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpResponse, ResponseError};
use tracing::Instrument;

use super::error::ApiError;
use super::ratelimit::Decision;
use super::{types, AppState};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const API_KEY: &str = "x-api-key";
const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Acknowledged means durable: a request that may have changed something (any method
/// but GET/HEAD/OPTIONS) gets its success answer only after the datastore is flushed,
/// so a crash right after a 201/202 loses nothing the client was told exists. A flush
/// that fails turns the answer into a 500: the change may not survive.
pub async fn durable(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let mutating = !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if !mutating || res.status().is_server_error() {
        return Ok(res.map_into_left_body());
    }
    let Some(state) = state else {
        return Ok(res.map_into_left_body());
    };
    match state.services.store().flush_async().await {
        Ok(()) => Ok(res.map_into_left_body()),
        Err(e) => {
            tracing::error!(error = %e, "datastore flush failed after a change");
            let (req, _) = res.into_parts();
            let resp = ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the change could not be made durable; see the server log",
            )
            .error_response();
            Ok(ServiceResponse::new(req, resp).map_into_right_body())
        }
    }
}

/// Outermost layer: a request id (taken from `X-Request-ID` or made), a span that
/// carries it, and a metrics sample labelled by route pattern.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let rid = request_id(&req);
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %rid,
        method = %method,
        path = %req.path(),
        key_id = tracing::field::Empty
    );
    let start = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let took = start.elapsed();
    let (status, route) = match &result {
        Ok(res) => (
            res.status(),
            res.request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".into()),
        ),
        Err(e) => (e.as_response_error().status_code(), "unmatched".into()),
    };
    if let Some(s) = &state {
        s.metrics.observe(&method, &route, status.as_u16(), took);
    }
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            micros = took.as_micros() as u64,
            "handled"
        )
    });
    let mut res = result?;
    if let Ok(v) = HeaderValue::from_str(&rid) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    Ok(res)
}

/// Resolves `X-API-Key` to a principal (stored in the request's extensions) and applies
/// the key's rate limit. Answers 401 or 429 itself.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        let e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application state missing",
        );
        return Ok(req.into_response(e.error_response()).map_into_right_body());
    };
    let secret = req
        .headers()
        .get(API_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_string();
    let principal = match state.services.authenticate(&secret) {
        Ok(p) => p,
        Err(e) => {
            let resp = ApiError::from(e).error_response();
            return Ok(req.into_response(resp).map_into_right_body());
        }
    };
    let decision = state.limiter.check(principal.key_id, principal.tier);
    if let Decision::Deny { limit, retry_after } = decision {
        let resp = HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", retry_after.to_string()))
            .insert_header((LIMIT, limit.to_string()))
            .insert_header((REMAINING, "0"))
            .json(types::Error {
                error: "Rate limit exceeded".into(),
                message: format!("Maximum {limit} requests per second allowed for your tier"),
                reason: None,
            });
        return Ok(req.into_response(resp).map_into_right_body());
    }
    tracing::Span::current().record("key_id", tracing::field::display(principal.key_id));
    req.extensions_mut().insert(principal);
    let mut res = next.call(req).await?.map_into_left_body();
    if let Decision::Allow { limit, remaining } = decision {
        let h = res.headers_mut();
        h.insert(LIMIT, HeaderValue::from(limit));
        h.insert(REMAINING, HeaderValue::from(remaining));
    }
    Ok(res)
}
