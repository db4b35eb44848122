//! How the dashboard answers when a request cannot be served: a page with the status
//! and the service's message, or a redirect to sign in.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::api::error::service_status;
use crate::service::ServiceError;

/// Errors of dashboard requests.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not signed in (or the session ended); carries the page to return to.
    #[error("sign in first")]
    SignIn(String),
    /// A form post without the session's CSRF token.
    #[error(
        "this form has expired or did not come from this dashboard; reload the page and try again"
    )]
    Csrf,
    /// No such page.
    #[error("no such page")]
    NotFound,
    /// The request itself is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A service call refused or failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A template failed to render.
    #[error("page rendering failed: {0}")]
    Render(askama::Error),
    /// Something on this side broke.
    #[error("{0}")]
    Internal(String),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl WebError {
    /// The message a person sees for a service error (internal details go to the log).
    pub fn message_of(e: &ServiceError) -> String {
        let (status, message) = service_status(e);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "internal error");
        }
        message
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::SignIn(_) => StatusCode::SEE_OTHER,
            WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Invalid(_) => StatusCode::BAD_REQUEST,
            WebError::Service(e) => service_status(e).0,
            WebError::Render(_) | WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let WebError::SignIn(next) = self {
            let to = if next.starts_with("/ui/") && next != "/ui/" {
                format!("/ui/login?next={}", encode(next))
            } else {
                "/ui/login".to_string()
            };
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to))
                .finish();
        }
        let status = self.status_code();
        let message = match self {
            WebError::Service(e) => WebError::message_of(e),
            WebError::Render(e) => {
                tracing::error!(error = %e, "template");
                "the page could not be rendered; see the server log".to_string()
            }
            other => other.to_string(),
        };
        let page = ErrorPage {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message: &message,
        };
        let body = page
            .render()
            .unwrap_or_else(|_| format!("{} {}", status.as_u16(), message));
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body)
    }
}

/// Percent-encodes a path for a query string.
pub fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
