//! SSH keys and API keys. A new API key's secret is shown once, on the page the
//! create redirects to, and never again.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::views::{when, Layout};
use super::{render, uuid_of, Ctx, Posted, WebError};
use crate::model::RateLimitTier;
use crate::service::authz::{PermSet, Scope, SYSTEM_ROLES};
use crate::service::{NewApiKey, NewMember, Page};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ssh-keys", web::get().to(ssh_keys))
        .route("/ssh-keys", web::post().to(add_ssh_key))
        .route("/ssh-keys/{id}/delete", web::post().to(delete_ssh_key))
        .route("/api-keys", web::get().to(api_keys))
        .route("/api-keys", web::post().to(create_api_key))
        .route("/api-keys/{id}/revoke", web::post().to(revoke_api_key))
        .route("/api-keys/{id}/grant", web::post().to(grant_project))
        .route(
            "/api-keys/{id}/projects/{project}/remove",
            web::post().to(remove_grant),
        );
}

pub struct SshRow {
    pub id: String,
    pub name: String,
    pub key_type: String,
    pub fingerprint: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "ssh_keys.html")]
struct SshPage {
    layout: Layout,
    keys: Vec<SshRow>,
}

pub async fn ssh_keys(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let keys = ctx.call(|s, who, _| s.list_ssh_keys(who)).await?;
    render(&SshPage {
        layout: ctx.layout("ssh-keys"),
        keys: keys
            .iter()
            .map(|k| SshRow {
                id: k.id.to_string(),
                name: k.name.clone(),
                key_type: k.key_type.clone(),
                fingerprint: k.fingerprint.clone(),
                created: when(&k.created_at),
            })
            .collect(),
    })
}

pub async fn add_ssh_key(p: Posted) -> Result<HttpResponse, WebError> {
    let name = p.form.get("name").unwrap_or("").to_string();
    let key = p.form.get("public_key").unwrap_or("").to_string();
    let r = p
        .ctx
        .call(move |s, who, _| s.create_ssh_key(who, &name, &key))
        .await
        .map(|k| format!("SSH key {} added ({})", k.name, k.fingerprint));
    Ok(p.ctx.done("/ui/ssh-keys", r))
}

pub async fn delete_ssh_key(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, _| s.delete_ssh_key(who, &id))
        .await
        .map(|k| format!("SSH key {} deleted", k.name));
    Ok(p.ctx.done("/ui/ssh-keys", r))
}

pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub tier: &'static str,
    pub last_used: String,
    pub expires: String,
    pub active: bool,
    /// (project id, project name, role name) of each project grant.
    pub grants: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ApiKeysPage {
    layout: Layout,
    keys: Vec<ApiKeyRow>,
    /// Account roles the user may give a key: none holding more than they do.
    roles: Vec<(String, String)>,
    own_role: String,
    /// Project roles the user may give in the current project, for a key's grant.
    project_roles: Vec<(String, String)>,
}

pub async fn api_keys(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let (keys, labels) = ctx
        .call(|s, who, _| {
            let keys = s
                .list_api_keys(
                    who,
                    Page {
                        limit: 1000,
                        offset: 0,
                    },
                )?
                .items;
            let name_of = |role: &uuid::Uuid| -> Result<String, crate::service::ServiceError> {
                Ok(s.role_label(&who.account_id, role)?
                    .map(|(name, _)| name)
                    .unwrap_or_else(|| role.to_string()))
            };
            let mut labels = vec![];
            for k in &keys {
                let mut grants = vec![];
                for a in &k.project_accesses {
                    let project = s
                        .visible_project(who, &a.project_id)
                        .map(|p| p.name)
                        .unwrap_or_else(|_| a.project_id.to_string());
                    grants.push((a.project_id.to_string(), project, name_of(&a.role_id)?));
                }
                labels.push((name_of(&k.role_id)?, grants));
            }
            Ok((keys, labels))
        })
        .await?;
    let held = ctx.who.rights;
    let here = ctx.who.in_project(&ctx.project.id);
    let project_roles = SYSTEM_ROLES
        .iter()
        .filter(|r| r.scope == Scope::Project && here.covers(PermSet::of_role(r)))
        .map(|r| (r.id().to_string(), r.name.to_string()))
        .collect();
    let custom = ctx
        .call(move |s, who, _| {
            let all = Page {
                limit: 1000,
                offset: 0,
            };
            Ok(s.list_roles(who, Some("account"), all).unwrap_or_default())
        })
        .await?;
    let mut roles: Vec<(String, String)> = SYSTEM_ROLES
        .iter()
        .filter(|r| r.scope == Scope::Account)
        .filter(|r| {
            held.perms.covers(PermSet::of_role(r)) && (held.all_projects || !r.all_projects)
        })
        .map(|r| (r.id().to_string(), r.name.to_string()))
        .collect();
    roles.extend(
        custom
            .into_iter()
            .filter(|r| !r.is_system && r.permissions.iter().all(|p| held.perms.has(p)))
            .map(|r| (r.id.to_string(), r.name)),
    );
    render(&ApiKeysPage {
        layout: ctx.layout("api-keys"),
        keys: keys
            .iter()
            .zip(labels)
            .map(|(k, (role, grants))| ApiKeyRow {
                id: k.id.to_string(),
                name: k.name.clone(),
                prefix: k.key_prefix.clone(),
                role,
                tier: k.rate_limit_tier.as_str(),
                last_used: k.last_used_at.as_ref().map(when).unwrap_or("never".into()),
                expires: k.expires_at.as_ref().map(when).unwrap_or("never".into()),
                active: k.is_active,
                grants,
            })
            .collect(),
        roles,
        own_role: ctx.who.role_id.to_string(),
        project_roles,
    })
}

pub async fn create_api_key(p: Posted) -> Result<HttpResponse, WebError> {
    let role_id = match p.form.get("role_id") {
        Some(r) => Some(uuid_of(r).map_err(|_| WebError::Invalid("unknown role".into()))?),
        None => None,
    };
    let new = NewApiKey {
        name: p.form.get("name").unwrap_or("").to_string(),
        rate_limit_tier: p.form.get("tier").and_then(RateLimitTier::parse),
        expires_at: None,
        role_id,
    };
    let r = p
        .ctx
        .call(move |s, who, _| s.create_api_key(who, new))
        .await;
    match r {
        Ok(k) => {
            p.ctx
                .show_secret_once(format!("API key {}", k.key.name), k.secret);
            Ok(p.ctx.done(
                "/ui/api-keys",
                Ok(format!("API key {} created", k.key.name)),
            ))
        }
        Err(e) => Ok(p.ctx.done("/ui/api-keys", Err(e))),
    }
}

pub async fn revoke_api_key(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, _| s.revoke_api_key(who, &id))
        .await
        .map(|k| format!("API key {} revoked", k.name));
    Ok(p.ctx.done("/ui/api-keys", r))
}

pub async fn grant_project(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let role = uuid_of(p.form.get("role_id").unwrap_or(""))?;
    let project = p.ctx.project.id;
    let r = p
        .ctx
        .call(move |s, who, _| {
            s.add_project_member(
                who,
                &project,
                NewMember {
                    email: None,
                    target_user_id: None,
                    api_key_id: Some(id),
                    role_id: role,
                },
            )
        })
        .await
        .map(|m| format!("the key now holds {} in this project", m.role_name));
    Ok(p.ctx.done("/ui/api-keys", r))
}

pub async fn remove_grant(
    p: Posted,
    ids: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (id, project) = (uuid_of(&ids.0)?, uuid_of(&ids.1)?);
    let r = p
        .ctx
        .call(move |s, who, _| s.remove_key_grant(who, &project, &id))
        .await
        .map(|_| "project access taken back".to_string());
    Ok(p.ctx.done("/ui/api-keys", r))
}
