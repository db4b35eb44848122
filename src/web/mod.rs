//! The dashboard: server-rendered pages under `/ui` for people who manage their cloud
//! by hand. Handlers call the same service functions as the API, with the principal of
//! the signed-in user, so a page can do exactly what the user's role allows.
//!
//! Every page is readable without JavaScript; htmx (embedded, see `assets`) adds live
//! status and progress, noVNC the console. Every form carries the session's CSRF
//! token, checked by the [`Posted`] extractor before a handler runs.

mod assets;
mod auth;
mod backups;
mod console;
mod error;
mod ips;
mod keys;
mod members;
mod overview;
mod roles;
mod security_groups;
mod session;
mod snapshots;
mod views;
mod vms;
mod volumes;
mod vpcs;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use askama::Template;
use uuid::Uuid;

pub use error::WebError;
use session::{Flash, LoginLimiter, Refused, Session, Sessions};

use crate::model::{Project, User};
use crate::service::{Page, Principal, ServiceError, Services};

const COOKIE: &str = "skiff_session";

/// What the dashboard keeps besides the services: sessions and sign-in throttling.
pub struct WebState {
    services: Services,
    sessions: Sessions,
    logins: LoginLimiter,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    trusted_proxies: Vec<std::net::IpAddr>,
}

impl WebState {
    pub fn new(services: Services, trusted_proxies: Vec<std::net::IpAddr>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        WebState {
            services,
            sessions: Sessions::new(Duration::from_secs(12 * 3600)),
            logins: LoginLimiter::new(5, 20, Duration::from_secs(300), 2 * cores),
            trusted_proxies,
        }
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the
    /// last address it put in `X-Forwarded-For` (the one it saw; earlier entries are
    /// the client's to forge).
    fn client_ip(&self, req: &HttpRequest) -> Option<std::net::IpAddr> {
        let peer = req.peer_addr().map(|a| a.ip());
        match peer {
            Some(p) if self.trusted_proxies.contains(&p) => req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok())
                .or(peer),
            _ => peer,
        }
    }
}

/// Registers the dashboard's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(|| async { see_other("/ui/") })))
        .service(web::resource("/ui").route(web::get().to(|| async { see_other("/ui/") })))
        .service(
            web::scope("/ui")
                .wrap(security_headers())
                .app_data(web::PayloadConfig::new(MAX_FORM))
                .route("/", web::get().to(overview::page))
                .route("/static/{path:.*}", web::get().to(assets::serve))
                .route("/login", web::get().to(auth::login_form))
                .route("/login", web::post().to(auth::login))
                .route("/logout", web::post().to(auth::logout))
                .route("/project", web::post().to(overview::switch_project))
                .route("/jobs/{id}", web::get().to(vms::job_fragment))
                .configure(vms::routes)
                .configure(security_groups::routes)
                .configure(volumes::routes)
                .configure(vpcs::routes)
                .configure(ips::routes)
                .configure(keys::routes)
                .configure(roles::routes)
                .configure(members::routes)
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(WebError::NotFound)
                })),
        );
}

/// The dashboard's content security policy: our own scripts and styles only (no inline
/// script or style, so injected markup cannot run), never framed (clickjacking), forms
/// and websockets to this origin alone.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Headers on every dashboard response (pages, fragments, assets, errors).
fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "same-origin"))
}

/// `303 See Other` to `to`: the answer to every successful form post.
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

fn render(t: &impl Template) -> Result<HttpResponse, WebError> {
    let body = t.render().map_err(WebError::Render)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

fn state(req: &HttpRequest) -> Result<web::Data<WebState>, WebError> {
    req.app_data::<web::Data<WebState>>()
        .cloned()
        .ok_or(WebError::Internal("dashboard state missing".into()))
}

fn session_cookie(req: &HttpRequest, id: &str) -> Cookie<'static> {
    let mut c = Cookie::build(COOKIE, id.to_string())
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    if req.connection_info().scheme() == "https" {
        c.set_secure(true);
    }
    c
}

/// A signed-in request: the user, the principal the service checks, and the project
/// the pages work in.
pub struct Ctx {
    state: web::Data<WebState>,
    sid: String,
    session: Session,
    pub user: User,
    pub who: Principal,
    pub project: Project,
    pub projects: Vec<Project>,
    path: String,
}

/// The project a user who can see none is shown as being in: the nil id names no
/// project, so every project page refuses it.
fn no_project(user: &User) -> Project {
    Project {
        id: Uuid::nil(),
        account_id: user.account_id,
        name: "(no project)".into(),
        slug: String::new(),
        description: None,
        default_region: String::new(),
        is_default: false,
        is_active: false,
        created_by: None,
        created_at: user.created_at,
        updated_at: user.created_at,
    }
}

impl Ctx {
    fn from_req(req: &HttpRequest) -> Result<Ctx, WebError> {
        let state = state(req)?;
        let sign_in = || WebError::SignIn(req.uri().path().to_string());
        let sid = req
            .cookie(COOKIE)
            .map(|c| c.value().to_string())
            .ok_or_else(sign_in)?;
        let session = state.sessions.get(&sid).ok_or_else(sign_in)?;
        let user_id = session.user_id.ok_or_else(sign_in)?;
        let (user, who) = match state.services.user_principal(&user_id) {
            Ok(x) => x,
            Err(ServiceError::Unauthorized(_)) => {
                state.sessions.remove(&sid);
                return Err(sign_in());
            }
            Err(e) => return Err(e.into()),
        };
        let projects = state
            .services
            .list_projects(
                &who,
                Page {
                    limit: 1000,
                    offset: 0,
                },
            )?
            .items;
        let project = session
            .project
            .and_then(|p| projects.iter().find(|x| x.id == p))
            .or_else(|| projects.iter().find(|x| x.is_default))
            .or_else(|| projects.first())
            .cloned();
        let project = match project {
            Some(p) => p,
            // A member with account rights but no project still has account pages;
            // project pages answer "project not found" for this stand-in.
            None if !who.rights.perms.is_empty() => no_project(&user),
            None => {
                return Err(WebError::Service(ServiceError::Forbidden(
                    "you can see no project; ask the account's owner for access".into(),
                )))
            }
        };
        Ok(Ctx {
            state,
            sid,
            session,
            user,
            who,
            project,
            projects,
            path: req.uri().path().to_string(),
        })
    }

    pub fn services(&self) -> &Services {
        &self.state.services
    }

    /// The project id as the services' `X-Project-ID` scope.
    pub fn scope(&self) -> Option<String> {
        Some(self.project.id.to_string())
    }

    /// Runs a service call on the blocking pool (it may touch the hypervisor).
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Services, &Principal, Option<&str>) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let services = self.state.services.clone();
        let who = self.who.clone();
        let scope = self.scope();
        web::block(move || f(&services, &who, scope.as_deref()))
            .await
            .map_err(|e| ServiceError::Unavailable(format!("worker pool: {e}")))?
    }

    /// The layout of a full page; takes the session's one-time messages.
    pub fn layout(&self, nav: &'static str) -> views::Layout {
        let (flash, secret) = self.state.sessions.take_once(&self.sid);
        views::Layout {
            user: self.user.name.clone(),
            csrf: self.session.csrf.clone(),
            project_id: self.project.id.to_string(),
            project_name: self.project.name.clone(),
            projects: self
                .projects
                .iter()
                .map(|p| (p.id.to_string(), p.name.clone()))
                .collect(),
            flash,
            secret,
            nav,
            path: self.path.clone(),
            held: self.who.rights.perms,
        }
    }

    pub fn flash(&self, ok: bool, text: impl Into<String>) {
        let text = text.into();
        self.state.sessions.update(&self.sid, |s| {
            s.flash.push(Flash { ok, text });
        });
    }

    /// Redirects after a form post, with the outcome as a message on the next page.
    /// Waits (up to 30 s) for a job the page's change submitted, so the page it
    /// leads to shows the result rather than the work under way.
    pub async fn wait_job(&self, job: Uuid) {
        let _ = self
            .state
            .services
            .wait_job(&self.who, &job, std::time::Duration::from_secs(30))
            .await;
    }

    pub fn done(&self, to: &str, result: Result<String, ServiceError>) -> HttpResponse {
        match result {
            Ok(msg) => self.flash(true, msg),
            Err(e) => self.flash(false, WebError::message_of(&e)),
        }
        see_other(to)
    }

    pub fn set_project(&self, project: Uuid) {
        self.state
            .sessions
            .update(&self.sid, |s| s.project = Some(project));
    }

    pub fn show_secret_once(&self, what: String, secret: String) {
        self.state
            .sessions
            .update(&self.sid, |s| s.secret = Some((what, secret)));
    }
}

impl FromRequest for Ctx {
    type Error = WebError;
    type Future = std::future::Ready<Result<Ctx, WebError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ctx::from_req(req))
    }
}

/// A posted form's fields, in order; repeated names (checkboxes) are kept.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The field's value, trimmed; empty counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value exactly as typed (passwords).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Largest form body the dashboard accepts.
const MAX_FORM: usize = 256 * 1024;

async fn read_body(req: &HttpRequest, payload: &mut Payload) -> Result<Form, WebError> {
    let bytes = web::Bytes::from_request(req, payload)
        .await
        .map_err(|_| WebError::Invalid(format!("the form is larger than {MAX_FORM} bytes")))?;
    Ok(Form::parse(&bytes))
}

/// A signed-in form post whose CSRF token (field `csrf` or header `X-CSRF-Token`)
/// matches the session's. Handlers that change anything take this, so none can
/// forget the check.
pub struct Posted {
    pub ctx: Ctx,
    pub form: Form,
}

fn csrf_ok(req: &HttpRequest, form: &Form, session: &Session) -> bool {
    let given = form.get("csrf").map(str::to_string).or_else(|| {
        req.headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    given.is_some_and(|g| session::same_token(&g, &session.csrf))
}

impl FromRequest for Posted {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Posted, WebError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let ctx = Ctx::from_req(&req)?;
            let form = read_body(&req, &mut payload).await?;
            if !csrf_ok(&req, &form, &ctx.session) {
                tracing::warn!(path = %req.path(), "form post without a valid CSRF token refused");
                return Err(WebError::Csrf);
            }
            Ok(Posted { ctx, form })
        })
    }
}

/// Parses a path segment as a UUID; a bad one is a missing page.
pub fn uuid_of(s: &str) -> Result<Uuid, WebError> {
    Uuid::parse_str(s).map_err(|_| WebError::NotFound)
}
