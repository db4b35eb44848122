//! Roles: the built-in and custom roles with the permission matrix, and the forms to
//! make and delete custom roles. Only what the user may do is offered: the create
//! form lists only permissions the user holds (the service refuses the rest anyway).

use actix_web::{web, HttpResponse};
use askama::Template;

use super::views::Layout;
use super::{render, uuid_of, Ctx, Posted, WebError};
use crate::service::authz::PERMISSIONS;
use crate::service::{NewRole, Page};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/roles", web::get().to(roles))
        .route("/roles", web::post().to(create_role))
        .route("/roles/{id}/delete", web::post().to(delete_role));
}

pub struct RoleCol {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub scope: &'static str,
    pub system: bool,
    pub count: usize,
}

/// One permission and, per role column, whether the role grants it.
pub struct MatrixRow {
    pub name: &'static str,
    pub description: &'static str,
    pub scope: &'static str,
    pub grants: Vec<bool>,
    /// The user holds it, so it may go into a new role.
    pub offer: bool,
}

#[derive(Template)]
#[template(path = "roles.html")]
struct RolesPage {
    layout: Layout,
    roles: Vec<RoleCol>,
    matrix: Vec<MatrixRow>,
    can_create: bool,
    can_delete: bool,
}

pub async fn roles(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let list = ctx
        .call(|s, who, _| {
            s.list_roles(
                who,
                None,
                Page {
                    limit: 1000,
                    offset: 0,
                },
            )
        })
        .await?;
    let held = ctx.who.rights.perms;
    render(&RolesPage {
        layout: ctx.layout("roles"),
        matrix: PERMISSIONS
            .iter()
            .map(|p| MatrixRow {
                name: p.name,
                description: p.description,
                scope: p.scope.as_str(),
                grants: list
                    .iter()
                    .map(|r| r.permissions.iter().any(|x| x == p.name))
                    .collect(),
                offer: held.has(p.name),
            })
            .collect(),
        roles: list
            .into_iter()
            .map(|r| RoleCol {
                id: r.id.to_string(),
                count: r.permissions.len(),
                name: r.name,
                slug: r.slug,
                scope: r.scope.as_str(),
                system: r.is_system,
            })
            .collect(),
        can_create: held.has("account.roles.create"),
        can_delete: held.has("account.roles.delete"),
    })
}

pub async fn create_role(p: Posted) -> Result<HttpResponse, WebError> {
    let new = NewRole {
        name: p.form.get("name").unwrap_or("").to_string(),
        slug: p.form.get("slug").unwrap_or("").to_string(),
        description: p.form.get("description").map(str::to_string),
        scope: p.form.get("scope").unwrap_or("").to_string(),
        permissions: p.form.all("permission"),
    };
    let r = p
        .ctx
        .call(move |s, who, _| s.create_role(who, new))
        .await
        .map(|r| format!("role {} created", r.name));
    Ok(p.ctx.done("/ui/roles", r))
}

pub async fn delete_role(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, _| s.delete_role(who, &id))
        .await
        .map(|r| format!("role {} deleted", r.name));
    Ok(p.ctx.done("/ui/roles", r))
}
