//! Floating IPs: the project's addresses (free or attached, and to which VM), reserve
//! one, attach a free one to a VM without a public address of its own, detach,
//! release.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::views::Layout;
use super::{render, uuid_of, Ctx, Posted, WebError};
use crate::service::{IpFilter, Page, ServiceError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ips", web::get().to(list))
        .route("/ips", web::post().to(reserve))
        .route("/ips/{id}/attach", web::post().to(attach))
        .route("/ips/{id}/detach", web::post().to(detach))
        .route("/ips/{id}/release", web::post().to(release));
}

const ALL: Page = Page {
    limit: 1000,
    offset: 0,
};

pub struct IpRow {
    pub id: String,
    pub address: String,
    pub reserved: bool,
    /// (VM id, VM name) while attached.
    pub vm: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "ips.html")]
struct ListPage {
    layout: Layout,
    ips: Vec<IpRow>,
    /// VMs a free address can go to: (id, name).
    targets: Vec<(String, String)>,
    price: String,
    available: bool,
}

pub async fn list(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let project = ctx.project.id;
    let (ips, vms, price, available) = ctx
        .call(move |s, who, _| {
            let ips = s.list_ips(who, Some(&project), IpFilter::default(), ALL)?;
            let vms = s.list_vms(who, Some(&project), None, None, ALL)?;
            Ok((ips.items, vms.items, s.ip_price(), s.floating_available()))
        })
        .await?;
    let name_of = |id: &uuid::Uuid| {
        vms.iter()
            .find(|v| v.id == *id)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    render(&ListPage {
        layout: ctx.layout("ips"),
        ips: ips
            .iter()
            .map(|f| IpRow {
                id: f.id.to_string(),
                address: f.address.clone(),
                reserved: f.reserved,
                vm: f
                    .attached
                    .as_ref()
                    .map(|t| (t.vm_id.to_string(), name_of(&t.vm_id))),
            })
            .collect(),
        targets: vms
            .iter()
            .filter(|v| {
                !v.nics.iter().any(|n| n.kind == "public")
                    && v.nics.iter().any(|n| n.vpc_id.is_some())
                    && !ips
                        .iter()
                        .any(|f| f.attached.as_ref().is_some_and(|t| t.vm_id == v.id))
            })
            .map(|v| (v.id.to_string(), v.name.clone()))
            .collect(),
        price,
        available,
    })
}

const BACK: &str = "/ui/ips";

pub async fn reserve(p: Posted) -> Result<HttpResponse, WebError> {
    let r = p
        .ctx
        .call(move |s, who, scope| s.reserve_ip(who, scope, None, None, None))
        .await
        .map(|f| format!("IP {} reserved", f.address));
    Ok(p.ctx.done(BACK, r))
}

pub async fn attach(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let vm = match p.form.get("vm_id").map(uuid_of) {
        Some(Ok(v)) => v,
        _ => {
            return Ok(p
                .ctx
                .done(BACK, Err(ServiceError::Invalid("choose a VM".into()))))
        }
    };
    let r = p
        .ctx
        .call(move |s, who, scope| s.attach_ip(who, scope, &vm, Some(id), None))
        .await
        .map(|a| format!("IP {} attached", a.ip.address));
    Ok(p.ctx.done(BACK, r))
}

pub async fn detach(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, scope| {
            let f = s.get_ip(who, &id)?;
            let t = f
                .attached
                .ok_or_else(|| ServiceError::Invalid("the IP is not attached".into()))?;
            s.detach_ip(who, scope, &t.vm_id, t.nic_id)
        })
        .await
        .map(|f| format!("IP {} detached", f.address));
    Ok(p.ctx.done(BACK, r))
}

pub async fn release(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, scope| s.release_ip(who, scope, &id))
        .await
        .map(|f| format!("IP {} released", f.address));
    Ok(p.ctx.done(BACK, r))
}
