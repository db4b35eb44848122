//! Members and invitations, and the public page that accepts an invitation. An
//! invitation's link is shown once to the inviter (skiff sends no mail); the
//! invitee sets a password there and is signed in.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::views::{when, Layout};
use super::{render, session_cookie, state, uuid_of, Ctx, Posted, WebError, COOKIE};
use crate::model::MemberStatus;
use crate::service::authz::Scope;
use crate::service::{MemberChange, MemberView, Page, ServiceError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/members", web::get().to(members))
        .route("/members/invite", web::post().to(invite))
        .route("/members/{id}/role", web::post().to(change_role))
        .route("/members/{id}/remove", web::post().to(remove))
        .route(
            "/project-members/{id}/remove",
            web::post().to(remove_project),
        )
        .route("/invitations/{id}/cancel", web::post().to(cancel))
        .route("/invite/{token}", web::get().to(accept_form))
        .route("/invite/{token}", web::post().to(accept));
}

pub struct MemberRow {
    pub id: String,
    pub email: String,
    pub role_id: String,
    pub role: String,
    pub status: &'static str,
    pub since: String,
    pub invitation_id: String,
    pub is_owner: bool,
}

pub struct RoleOpt {
    pub id: String,
    pub name: String,
    /// `account` or `project`.
    pub scope: &'static str,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    layout: Layout,
    members: Vec<MemberRow>,
    project_members: Vec<MemberRow>,
    /// Roles the user may give, by scope.
    roles: Vec<RoleOpt>,
    can_invite: bool,
    can_invite_project: bool,
    can_manage: bool,
    can_remove: bool,
    can_remove_project: bool,
    can_see_project: bool,
}

fn row(v: MemberView) -> MemberRow {
    let m = v.member;
    MemberRow {
        id: m.id.to_string(),
        email: m.email,
        role_id: m.role_id.to_string(),
        is_owner: v.owner,
        role: v.role_name,
        status: m.status.as_str(),
        since: when(&m.accepted_at.unwrap_or(m.created_at)),
        invitation_id: m.invitation.map(|i| i.id.to_string()).unwrap_or_default(),
    }
}

pub async fn members(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let all = Page {
        limit: 1000,
        offset: 0,
    };
    let project = ctx.project.id;
    let held = ctx.who.rights.perms;
    let in_project = ctx.who.in_project(&project);
    let account = ctx
        .call(move |s, who, _| s.list_members(who, None, all))
        .await?;
    let can_see_project = in_project.has("project.members.view");
    let project_members = if can_see_project {
        ctx.call(move |s, who, _| s.list_project_members(who, &project, None, all))
            .await?
            .items
    } else {
        vec![]
    };
    let roles = ctx
        .call(move |s, who, _| s.list_roles(who, None, all))
        .await?;
    let roles = roles
        .into_iter()
        .filter(|r| r.slug != "owner")
        .filter(|r| {
            let have = match r.scope {
                Scope::Account => held,
                Scope::Project => in_project,
            };
            r.permissions.iter().all(|p| have.has(p))
        })
        .map(|r| RoleOpt {
            id: r.id.to_string(),
            name: r.name,
            scope: r.scope.as_str(),
        })
        .collect();
    render(&MembersPage {
        layout: ctx.layout("members"),
        members: account.items.into_iter().map(row).collect(),
        project_members: project_members.into_iter().map(row).collect(),
        roles,
        can_invite: held.has("account.members.invite"),
        can_invite_project: in_project.has("project.members.invite"),
        can_manage: held.has("account.members.manage"),
        can_remove: held.has("account.members.remove"),
        can_remove_project: in_project.has("project.members.remove"),
        can_see_project,
    })
}

/// The accept link, on the address the inviter uses.
fn link(req: &HttpRequest, token: &str) -> String {
    let ci = req.connection_info();
    format!("{}://{}/ui/invite/{token}", ci.scheme(), ci.host())
}

pub async fn invite(req: HttpRequest, p: Posted) -> Result<HttpResponse, WebError> {
    let email = p.form.get("email").unwrap_or("").to_string();
    let role = uuid_of(p.form.get("role_id").unwrap_or(""))?;
    let project = (p.form.get("to") == Some("project")).then_some(p.ctx.project.id);
    let r = p
        .ctx
        .call(move |s, who, _| s.create_invitation(who, project.as_ref(), &email, &role))
        .await;
    match r {
        Ok((v, token)) => {
            p.ctx.show_secret_once(
                format!("Invitation link for {}", v.member.member.email),
                link(&req, &token),
            );
            Ok(super::see_other("/ui/members"))
        }
        Err(e) => Ok(p.ctx.done("/ui/members", Err(e))),
    }
}

pub async fn change_role(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let role = uuid_of(p.form.get("role_id").unwrap_or(""))?;
    let r = p
        .ctx
        .call(move |s, who, _| {
            s.update_member(
                who,
                &id,
                MemberChange {
                    role_id: Some(role),
                    status: None,
                },
            )
        })
        .await
        .map(|m| format!("{} is now {}", m.member.email, m.role_name));
    Ok(p.ctx.done("/ui/members", r))
}

pub async fn remove(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, _| s.remove_member(who, &id))
        .await
        .map(|m| format!("{} removed", m.member.email));
    Ok(p.ctx.done("/ui/members", r))
}

pub async fn remove_project(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let project = p.ctx.project.id;
    let r = p
        .ctx
        .call(move |s, who, _| s.remove_project_member(who, &project, &id))
        .await
        .map(|m| format!("{} removed from the project", m.member.email));
    Ok(p.ctx.done("/ui/members", r))
}

pub async fn cancel(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, _| s.cancel_invitation(who, &id))
        .await
        .map(|_| "invitation cancelled".to_string());
    Ok(p.ctx.done("/ui/members", r))
}

#[derive(Template)]
#[template(path = "invite.html")]
struct AcceptPage {
    csrf: String,
    token: String,
    email: String,
    account: String,
    project: String,
    role: String,
    expires: String,
    existing_user: bool,
    error: String,
}

/// The accept page; `error` set when a try failed (the form is shown again).
fn accept_page(
    req: &HttpRequest,
    token: &str,
    status: StatusCode,
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
    let preview = match st.services.preview_invitation(token) {
        Ok(p) => p,
        Err(ServiceError::Invalid(m)) => {
            return Err(WebError::Service(ServiceError::Invalid(m)));
        }
        Err(e) => return Err(e.into()),
    };
    let page = AcceptPage {
        csrf: session.csrf,
        token: token.to_string(),
        email: preview.email,
        account: preview.account_name,
        project: preview.project_name.unwrap_or_default(),
        role: preview.role_name,
        expires: when(&preview.expires_at),
        existing_user: preview.existing_user,
        error,
    };
    let mut res = render(&page)?;
    *res.status_mut() = status;
    res.add_cookie(&session_cookie(req, &sid))
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(res)
}

pub async fn accept_form(
    req: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    accept_page(&req, &token, StatusCode::OK, String::new())
}

pub async fn accept(
    req: HttpRequest,
    token: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    let st = state(&req)?;
    let form = super::Form::parse(&body);
    let session = req.cookie(COOKIE).and_then(|c| {
        st.sessions
            .get(c.value())
            .map(|s| (c.value().to_string(), s))
    });
    if !session
        .as_ref()
        .is_some_and(|(_, s)| super::csrf_ok(&req, &form, s))
    {
        return Err(WebError::Csrf);
    }
    let password = form.raw("password").unwrap_or("").to_string();
    if let Some(again) = form.raw("password2") {
        if again != password {
            return accept_page(
                &req,
                &token,
                StatusCode::BAD_REQUEST,
                "the two passwords differ".into(),
            );
        }
    }
    // Throttled like sign-in: accepting as an existing user checks its password.
    let ip = st.client_ip(&req);
    let key: String = token.chars().take(40).collect();
    let attempt = match st.logins.begin(ip, &format!("invitation {key}")) {
        Ok(a) => a,
        Err(_) => {
            return accept_page(
                &req,
                &token,
                StatusCode::TOO_MANY_REQUESTS,
                "too many tries; wait a few minutes".into(),
            )
        }
    };
    let services = st.services.clone();
    let t = token.to_string();
    let result = web::block(move || services.accept_invitation(&t, &password))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    match result {
        Ok(u) => {
            attempt.succeeded();
            if let Some((old, _)) = session {
                st.sessions.remove(&old);
            }
            let (sid, _) = st.sessions.create(Some(u.id), None);
            tracing::info!(user = %u.name, "accepted an invitation");
            let mut res = super::see_other("/ui/");
            res.add_cookie(&session_cookie(&req, &sid))
                .map_err(|e| WebError::Internal(e.to_string()))?;
            Ok(res)
        }
        Err(ServiceError::Invalid(m)) | Err(ServiceError::Unauthorized(m)) => {
            drop(attempt);
            accept_page(&req, &token, StatusCode::BAD_REQUEST, m)
        }
        Err(e) => Err(e.into()),
    }
}

impl MemberRow {
    pub fn pending(&self) -> bool {
        self.status == MemberStatus::Pending.as_str()
    }
}
