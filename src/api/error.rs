//! The HTTP edge of errors: every service error, extractor failure and unmatched
//! route becomes a status and a `{error, message}` body here, and nowhere else.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::types;
use crate::service::ServiceError;

/// An error on its way out as an HTTP response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

/// The body of an error response with this status.
pub fn error_body(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(types::Error {
        error: status.canonical_reason().unwrap_or("Error").to_string(),
        message: message.to_string(),
        reason: (status == StatusCode::FORBIDDEN).then(|| "forbidden".to_string()),
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        error_body(self.status, &self.message)
    }
}

/// The status and message a client sees for a service error. Internal errors (store,
/// jobs) show a generic message; their detail belongs in the log.
pub fn service_status(e: &ServiceError) -> (StatusCode, String) {
    let status = match e {
        ServiceError::Invalid(_) | ServiceError::ProjectRequired => StatusCode::BAD_REQUEST,
        ServiceError::NotFound { .. } => StatusCode::NOT_FOUND,
        ServiceError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServiceError::QuotaExceeded(_) => StatusCode::PAYMENT_REQUIRED,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ServiceError::Store(_) | ServiceError::Jobs(_) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log".into(),
            )
        }
    };
    (status, e.to_string())
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let (status, message) = service_status(&e);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "internal error");
        }
        ApiError::new(status, message)
    }
}

/// Bodies that are not JSON of the expected shape, or too large.
pub fn json_error(err: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let e = match &err {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, err.to_string())
        }
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON with Content-Type: application/json",
        ),
        J::Deserialize(d) if d.is_data() => {
            ApiError::bad_request(format!("invalid request body: {d}"))
        }
        _ => ApiError::bad_request(format!("malformed JSON body: {err}")),
    };
    e.into()
}

/// Query strings that do not parse.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid query string: {err}")).into()
}

/// Path segments that do not parse.
pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such resource: {err}")).into()
}

/// The app's fallback: an unknown path.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    error_body(
        StatusCode::NOT_FOUND,
        &format!("no route for {} {}", req.method(), req.path()),
    )
}

/// The fallback of a known path: a method it does not serve.
pub fn method_not_allowed(allowed: &'static str) -> actix_web::Route {
    actix_web::web::route().to(move |req: HttpRequest| async move {
        let mut resp = error_body(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!(
                "{} is not allowed on {}; use {allowed}",
                req.method(),
                req.path()
            ),
        );
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allowed));
        resp
    })
}
