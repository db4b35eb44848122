//! Sign-in and sign-out. The sign-in form has a CSRF token of its own (from an
//! anonymous session), failures are throttled per address and per user name, and a
//! successful sign-in gets a new session id.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{render, session_cookie, state, Posted, Refused, WebError, COOKIE};
use crate::service::ServiceError;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    user: String,
    error: String,
}

#[derive(serde::Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Only our own pages are places to return to after sign-in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("/ui//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/ui/".to_string(),
    }
}

fn login_page(
    req: &HttpRequest,
    status: StatusCode,
    next: String,
    user: String,
    error: String,
) -> Result<HttpResponse, WebError> {
    let st = state(req)?;
    let existing = req.cookie(COOKIE).and_then(|c| {
        st.sessions
            .get(c.value())
            .map(|s| (c.value().to_string(), s))
    });
    let (sid, session) = match existing {
        Some(x) => x,
        None => st.sessions.create(None, None),
    };
    let page = LoginPage {
        csrf: session.csrf,
        next,
        user,
        error,
    };
    let mut res = render(&page)?;
    *res.status_mut() = status;
    res.add_cookie(&session_cookie(req, &sid))
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(res)
}

pub async fn login_form(req: HttpRequest, q: web::Query<Next>) -> Result<HttpResponse, WebError> {
    let st = state(&req)?;
    let signed_in = req
        .cookie(COOKIE)
        .and_then(|c| st.sessions.get(c.value()))
        .is_some_and(|s| s.user_id.is_some());
    let next = safe_next(q.next.as_deref());
    if signed_in {
        return Ok(super::see_other(&next));
    }
    login_page(&req, StatusCode::OK, next, String::new(), String::new())
}

pub async fn login(req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, WebError> {
    let st = state(&req)?;
    let form = super::Form::parse(&body);
    let session = req.cookie(COOKIE).and_then(|c| {
        st.sessions
            .get(c.value())
            .map(|s| (c.value().to_string(), s))
    });
    let token_ok = session
        .as_ref()
        .is_some_and(|(_, s)| super::csrf_ok(&req, &form, s));
    if !token_ok {
        return Err(WebError::Csrf);
    }
    let next = safe_next(form.get("next"));
    let user = form.get("user").unwrap_or("").to_string();
    let password = form.raw("password").unwrap_or("").to_string();
    let ip = st.client_ip(&req);
    let attempt = match st.logins.begin(ip, &user) {
        Ok(a) => a,
        Err(why) => {
            let message = match why {
                Refused::Throttled(wait) => {
                    format!("Too many failed sign-ins; try again in {wait} s.")
                }
                Refused::Busy => "Too many sign-ins at once; try again in a moment.".into(),
            };
            return login_page(&req, StatusCode::TOO_MANY_REQUESTS, next, user, message);
        }
    };
    let services = st.services.clone();
    let (u, p) = (user.clone(), password);
    let result = web::block(move || services.login(&u, &p))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    match result {
        Ok(u) => {
            attempt.succeeded();
            if let Some((old, _)) = session {
                st.sessions.remove(&old);
            }
            let (sid, _) = st.sessions.create(Some(u.id), None);
            tracing::info!(user = %u.name, "signed in to the dashboard");
            let mut res = super::see_other(&next);
            res.add_cookie(&session_cookie(&req, &sid))
                .map_err(|e| WebError::Internal(e.to_string()))?;
            Ok(res)
        }
        Err(ServiceError::Unauthorized(m)) => {
            drop(attempt);
            tracing::warn!(user = %user, "failed dashboard sign-in");
            login_page(&req, StatusCode::UNAUTHORIZED, next, user, m)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn logout(p: Posted) -> Result<HttpResponse, WebError> {
    p.ctx.state.sessions.remove(&p.ctx.sid);
    let mut res = super::see_other("/ui/login");
    let mut gone = actix_web::cookie::Cookie::build(COOKIE, "")
        .path("/ui")
        .finish();
    gone.make_removal();
    res.add_cookie(&gone)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_own_pages_are_return_targets() {
        assert_eq!(safe_next(Some("/ui/vms")), "/ui/vms");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("//evil.example/ui/")), "/ui/");
        assert_eq!(safe_next(Some("/ui//evil.example")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }
}
