//! Extractors shared by the handlers.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use uuid::Uuid;

use super::error::ApiError;
use crate::service::{Page, Principal};

/// The principal the authentication middleware resolved.
pub struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .map(Caller)
                .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing API key")),
        )
    }
}

/// The raw `X-Project-ID` header, resolved by the service (which knows who may use it).
pub struct ProjectHeader(pub Option<String>);

impl FromRequest for ProjectHeader {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let v = req
            .headers()
            .get("x-project-id")
            .map(|v| v.to_str().map(str::to_string));
        ready(match v {
            None => Ok(ProjectHeader(None)),
            Some(Ok(s)) if !s.trim().is_empty() => Ok(ProjectHeader(Some(s))),
            // Sent but empty or not text: malformed, not absent.
            Some(_) => Err(ApiError::bad_request("X-Project-ID must be a project UUID")),
        })
    }
}

/// Parses an optional id given in a header or query parameter named `what`.
pub fn optional_uuid(v: Option<&str>, what: &str) -> Result<Option<Uuid>, ApiError> {
    v.map(|s| {
        Uuid::parse_str(s.trim())
            .map_err(|_| ApiError::bad_request(format!("{what} must be a UUID")))
    })
    .transpose()
}

/// Parses a path id; anything that is not a UUID cannot name a resource.
pub fn path_uuid(raw: &str, kind: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("{kind} not found")))
}

/// Clamps one integer query parameter; refuses only what is not an integer.
fn int_param(name: &str, raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    let (neg, digits) = match raw.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!("{name} must be an integer")));
    }
    if neg {
        return Ok(0);
    }
    Ok(digits.parse::<usize>().unwrap_or(usize::MAX).min(max))
}

/// `limit`/`offset` with the contract's defaults. A limit below 1 means the default.
pub fn page(
    limit: Option<&str>,
    offset: Option<&str>,
    default_limit: usize,
) -> Result<Page, ApiError> {
    let limit = match int_param("limit", limit, default_limit, 1000)? {
        0 => default_limit,
        n => n,
    };
    Ok(Page {
        limit,
        offset: int_param("offset", offset, 0, usize::MAX)?,
    })
}

/// `/vms/{id}/…/{nic_id}`: the VM's id and the NIC's (a NIC id that is no number
/// names nothing: 404).
pub fn vm_nic((vm, nic): (String, String)) -> Result<(Uuid, u64), ApiError> {
    let vm = path_uuid(&vm, "VM")?;
    let nic = nic
        .trim()
        .parse()
        .map_err(|_| ApiError::new(actix_web::http::StatusCode::NOT_FOUND, "NIC not found"))?;
    Ok((vm, nic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_params_clamp_instead_of_failing() {
        let p = page(None, None, 20).unwrap();
        assert_eq!((p.limit, p.offset), (20, 0));
        let p = page(Some("-5"), Some("-1"), 20).unwrap();
        assert_eq!((p.limit, p.offset), (20, 0));
        let p = page(Some("99999999999999999999999999"), Some("7"), 50).unwrap();
        assert_eq!((p.limit, p.offset), (1000, 7));
        assert!(page(Some("ten"), None, 20).is_err());
        assert!(page(None, Some("1.5"), 20).is_err());
    }
}
