//! Security groups: the list, a group's rule editor with live per-rule counters, and
//! the changes (create from a template, add and remove rules, delete).

use actix_web::{web, HttpResponse};
use askama::Template;

use super::views::Layout;
use super::{render, uuid_of, Ctx, Posted, WebError};
use crate::model::{SgDirection, SgProtocol, SgRemote, SgRule};
use crate::service::{raff_rule, sg_templates, GroupWrite, RaffRule};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security-groups", web::get().to(list))
        .route("/security-groups", web::post().to(create))
        .route("/security-groups/{id}", web::get().to(detail))
        .route("/security-groups/{id}/rules", web::post().to(add_rule))
        .route(
            "/security-groups/{id}/rules/{rule}/delete",
            web::post().to(remove_rule),
        )
        .route("/security-groups/{id}/delete", web::post().to(delete));
}

pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub rules: usize,
    pub vms: usize,
}

#[derive(Template)]
#[template(path = "security_groups.html")]
struct ListPage {
    layout: Layout,
    groups: Vec<GroupRow>,
    templates: Vec<(&'static str, &'static str)>,
}

pub async fn list(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let project = ctx.project.id;
    let (groups, uses) = ctx
        .call(move |s, who, _| {
            let g = s.list_security_groups(who, Some(&project))?;
            let u = s.security_group_uses(&g)?;
            Ok((g, u))
        })
        .await?;
    render(&ListPage {
        layout: ctx.layout("security-groups"),
        groups: groups
            .iter()
            .map(|g| GroupRow {
                id: g.id.to_string(),
                name: g.name.clone(),
                description: g.description.clone(),
                rules: g.rules.len(),
                vms: uses.get(&g.id).copied().unwrap_or(0),
            })
            .collect(),
        templates: sg_templates().iter().map(|t| (t.id, t.name)).collect(),
    })
}

pub async fn create(p: Posted) -> Result<HttpResponse, WebError> {
    let w = GroupWrite {
        name: Some(p.form.get("name").unwrap_or("").to_string()),
        description: p.form.get("description").map(str::to_string),
        template_id: p.form.get("template_id").map(str::to_string),
        rules: None,
    };
    match p
        .ctx
        .call(move |s, who, scope| s.create_security_group(who, scope, w))
        .await
    {
        Ok(g) => Ok(p.ctx.done(
            &format!("/ui/security-groups/{}", g.id),
            Ok(format!("security group {} created", g.name)),
        )),
        Err(e) => Ok(p.ctx.done("/ui/security-groups", Err(e))),
    }
}

pub struct RuleRow {
    pub id: u64,
    pub direction: &'static str,
    pub protocol: String,
    pub ports: String,
    pub remote: String,
    pub packets: u64,
    pub bytes: String,
}

fn rule_row(
    r: &SgRule,
    names: &dyn Fn(&uuid::Uuid) -> String,
    c: Option<&crate::service::RuleCounter>,
) -> RuleRow {
    RuleRow {
        id: r.id,
        direction: match r.direction {
            SgDirection::Inbound => "inbound",
            SgDirection::Outbound => "outbound",
        },
        protocol: match r.protocol {
            SgProtocol::Tcp => "TCP".into(),
            SgProtocol::Udp => "UDP".into(),
            SgProtocol::Icmp => "ICMP".into(),
            SgProtocol::Icmpv6 => "ICMPv6".into(),
            SgProtocol::Ipsec => "IPsec".into(),
            SgProtocol::All => "all".into(),
            SgProtocol::Number(n) => format!("protocol {n}"),
        } + &r
            .icmp_type
            .map(|t| format!(" type {t}"))
            .unwrap_or_default(),
        ports: match r.ports {
            None => "all".into(),
            Some((a, b)) if a == b => a.to_string(),
            Some((a, b)) => format!("{a}–{b}"),
        },
        remote: match &r.remote {
            SgRemote::Any => "anywhere".into(),
            SgRemote::Cidr { addr, len } => format!("{addr}/{len}"),
            SgRemote::Group(g) => format!("group {}", names(g)),
        },
        packets: c.map_or(0, |c| c.packets),
        bytes: super::views::mib(c.map_or(0, |c| c.bytes)),
    }
}

#[derive(Template)]
#[template(path = "security_group.html")]
struct DetailPage {
    layout: Layout,
    id: String,
    name: String,
    description: String,
    rules: Vec<RuleRow>,
    others: Vec<(String, String)>,
    vms: usize,
    /// Why the rule just posted was refused, shown in the rule form with what was typed.
    rule_error: String,
    typed: Vec<(String, String)>,
}

impl DetailPage {
    fn typed(&self, field: &str) -> &str {
        self.typed
            .iter()
            .find(|(k, _)| k == field)
            .map_or("", |(_, v)| v.as_str())
    }
}

pub async fn detail(ctx: Ctx, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    detail_page(&ctx, id, String::new(), vec![]).await
}

async fn detail_page(
    ctx: &Ctx,
    id: uuid::Uuid,
    rule_error: String,
    typed: Vec<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let refused = !rule_error.is_empty();
    let (g, all, uses, counters) = ctx
        .call(move |s, who, _| {
            let g = s.get_security_group(who, &id)?;
            let all = s.list_security_groups(who, Some(&g.project_id))?;
            let uses = s.security_group_uses(std::slice::from_ref(&g))?;
            Ok((g, all, uses, s.security_group_counters()))
        })
        .await?;
    let names = |x: &uuid::Uuid| {
        all.iter()
            .find(|o| o.id == *x)
            .map(|o| o.name.clone())
            .unwrap_or_else(|| x.to_string())
    };
    render(&DetailPage {
        layout: ctx.layout("security-groups"),
        id: g.id.to_string(),
        name: g.name.clone(),
        description: g.description.clone(),
        rules: g
            .rules
            .iter()
            .map(|r| rule_row(r, &names, counters.get(&r.id)))
            .collect(),
        others: all
            .iter()
            .map(|o| (o.id.to_string(), o.name.clone()))
            .collect(),
        vms: uses.get(&g.id).copied().unwrap_or(0),
        rule_error,
        typed,
    })
    .map(|mut r| {
        if refused {
            *r.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
        }
        r
    })
}

fn back(id: &uuid::Uuid) -> String {
    format!("/ui/security-groups/{id}")
}

/// The form's rule in the contract's shape, so the service parses it like the API's.
fn form_rule(f: &super::Form) -> Result<RaffRule, WebError> {
    let (ip, size, group) = match f.get("remote").unwrap_or("any") {
        "group" => (
            None,
            None,
            Some(
                uuid_of(f.get("remote_group_id").unwrap_or(""))
                    .map_err(|_| WebError::Invalid("choose the remote group".into()))?,
            ),
        ),
        "cidr" => {
            let text = f.get("cidr").unwrap_or("");
            let (addr, len) = match text.split_once('/') {
                Some((a, l)) => (
                    a.to_string(),
                    Some(l.parse::<i64>().map_err(|_| {
                        WebError::Invalid(format!("{text:?} is not an address/prefix"))
                    })?),
                ),
                None => (text.to_string(), None),
            };
            (Some(addr), len, None)
        }
        _ => (None, None, None),
    };
    Ok(RaffRule {
        protocol: f.get("protocol").unwrap_or("").to_string(),
        rule_type: f.get("direction").unwrap_or("").to_string(),
        range: f.get("ports").map(|p| p.replace('-', ":")),
        ip,
        size,
        icmp_type: f.get("icmp_type").and_then(|t| t.parse().ok()),
        remote_group_id: group,
    })
}

pub async fn add_rule(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let typed: Vec<(String, String)> = [
        "direction",
        "protocol",
        "ports",
        "remote",
        "cidr",
        "remote_group_id",
    ]
    .iter()
    .map(|f| (f.to_string(), p.form.get(f).unwrap_or("").to_string()))
    .collect();
    let rule = match form_rule(&p.form) {
        Ok(r) => r,
        Err(e) => return detail_page(&p.ctx, id, e.to_string(), typed).await,
    };
    let r = p
        .ctx
        .call(move |s, who, scope| {
            let new = raff_rule(&rule)?;
            let mut rules = s.get_security_group(who, &id)?.rules;
            rules.push(new);
            let w = GroupWrite {
                rules: Some(rules),
                ..Default::default()
            };
            s.update_security_group(who, scope, &id, w)
        })
        .await;
    match r {
        Ok(g) => Ok(p
            .ctx
            .done(&back(&id), Ok(format!("rule added to {}", g.name)))),
        Err(crate::service::ServiceError::Invalid(m)) => detail_page(&p.ctx, id, m, typed).await,
        Err(e) => Ok(p.ctx.done(&back(&id), Err(e))),
    }
}

pub async fn remove_rule(
    p: Posted,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&path.0)?;
    let rule: u64 = path.1.parse().map_err(|_| WebError::NotFound)?;
    let r = p
        .ctx
        .call(move |s, who, scope| {
            let mut rules = s.get_security_group(who, &id)?.rules;
            rules.retain(|r| r.id != rule);
            let w = GroupWrite {
                rules: Some(rules),
                ..Default::default()
            };
            s.update_security_group(who, scope, &id, w)
        })
        .await
        .map(|g| format!("rule removed from {}", g.name));
    Ok(p.ctx.done(&back(&id), r))
}

pub async fn delete(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, scope| s.delete_security_group(who, scope, &id))
        .await;
    match r {
        Ok(g) => Ok(p.ctx.done(
            "/ui/security-groups",
            Ok(format!("security group {} deleted", g.name)),
        )),
        Err(e) => Ok(p.ctx.done(&back(&id), Err(e))),
    }
}
