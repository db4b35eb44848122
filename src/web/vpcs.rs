//! VPCs: the project's private networks (block, gateway, members), making one (the
//! form suggests a free block), renaming and deleting, and one VPC's members.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::views::Layout;
use super::{render, uuid_of, Ctx, Posted, WebError};
use crate::service::{NewVpc, Page, ServiceError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/vpcs", web::get().to(list))
        .route("/vpcs", web::post().to(create))
        .route("/vpcs/{id}", web::get().to(detail))
        .route("/vpcs/{id}/rename", web::post().to(rename))
        .route("/vpcs/{id}/delete", web::post().to(delete));
}

pub struct VpcRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub cidr: String,
    pub gateway: String,
    pub status: &'static str,
    pub used: usize,
    pub total: u64,
    pub error: String,
}

#[derive(Template)]
#[template(path = "vpcs.html")]
struct ListPage {
    layout: Layout,
    vpcs: Vec<VpcRow>,
    /// A free block for the form.
    suggested: String,
}

fn row(s: &crate::service::Services, v: crate::model::Vpc) -> VpcRow {
    let used = s.vpc_used_ips(&v).unwrap_or(0);
    let total = crate::network::Cidr::parse(&v.cidr)
        .map(|c| crate::service::total_ips(&c))
        .unwrap_or(0);
    VpcRow {
        id: v.id.to_string(),
        name: v.name,
        description: v.description,
        cidr: v.cidr,
        gateway: v.gateway,
        status: v.status.as_str(),
        used,
        total,
        error: v.error.unwrap_or_default(),
    }
}

pub async fn list(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let project = ctx.project.id;
    let (vpcs, suggested) = ctx
        .call(move |s, who, scope| {
            let rows = s
                .list_vpcs(who, Some(&project))?
                .into_iter()
                .map(|v| row(s, v))
                .collect::<Vec<_>>();
            let suggested = s
                .vpc_cidr_suggestions(who, scope)
                .ok()
                .and_then(|r| r.suggested)
                .map(|c| c.to_string())
                .unwrap_or_default();
            Ok((rows, suggested))
        })
        .await?;
    render(&ListPage {
        layout: ctx.layout("vpcs"),
        vpcs,
        suggested,
    })
}

pub struct Member {
    pub vm_id: String,
    pub vm: String,
    pub nic_id: u64,
    pub ip: String,
    pub mac: String,
}

#[derive(Template)]
#[template(path = "vpc_detail.html")]
struct DetailPage {
    layout: Layout,
    vpc: VpcRow,
    range: String,
    members: Vec<Member>,
}

pub async fn detail(ctx: Ctx, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let project = ctx.project.id;
    let (vpc, range, members) = ctx
        .call(move |s, who, scope| {
            let d = s.get_vpc(who, scope, &id)?;
            let range = crate::network::Cidr::parse(&d.vpc.cidr)
                .map(|c| {
                    let (a, b) = crate::service::host_range(&c);
                    format!("{a} – {b}")
                })
                .unwrap_or_default();
            let vms = s
                .list_vms(
                    who,
                    Some(&project),
                    None,
                    None,
                    Page {
                        limit: 1000,
                        offset: 0,
                    },
                )?
                .items;
            let members = d
                .leases
                .iter()
                .map(|l| {
                    let vm = vms.iter().find(|v| v.id == l.vm_id);
                    Member {
                        vm_id: l.vm_id.to_string(),
                        vm: vm.map(|v| v.name.clone()).unwrap_or_default(),
                        nic_id: l.nic_id,
                        ip: l.ip.clone(),
                        mac: vm
                            .and_then(|v| v.nics.iter().find(|n| n.id == l.nic_id))
                            .map(|n| n.mac.clone())
                            .unwrap_or_default(),
                    }
                })
                .collect::<Vec<_>>();
            Ok((row(s, d.vpc), range, members))
        })
        .await?;
    render(&DetailPage {
        layout: ctx.layout("vpcs"),
        vpc,
        range,
        members,
    })
}

const BACK: &str = "/ui/vpcs";

pub async fn create(p: Posted) -> Result<HttpResponse, WebError> {
    let new = NewVpc {
        name: p.form.get("name").unwrap_or("").to_string(),
        cidr: p.form.get("cidr").unwrap_or("").to_string(),
        region: None,
    };
    let made = p
        .ctx
        .call(move |s, who, scope| s.create_vpc(who, scope, new))
        .await;
    let r = match made {
        Ok((v, job)) => {
            p.ctx.wait_job(job).await;
            Ok(format!("VPC {} ({}) is made", v.name, v.cidr))
        }
        Err(e) => Err(e),
    };
    Ok(p.ctx.done(BACK, r))
}

pub async fn rename(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let name = p.form.get("name").map(str::to_string);
    let description = p.form.get("description").map(str::to_string);
    let r = p
        .ctx
        .call(move |s, who, scope| s.update_vpc(who, scope, &id, name, description))
        .await
        .map(|v| format!("VPC {} saved", v.name));
    Ok(p.ctx.done(&format!("{BACK}/{id}"), r))
}

pub async fn delete(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let gone = p
        .ctx
        .call(move |s, who, scope| s.delete_vpc(who, scope, &id))
        .await;
    let r: Result<String, ServiceError> = match gone {
        Ok((v, job)) => {
            p.ctx.wait_job(job).await;
            Ok(format!("VPC {} deleted", v.name))
        }
        Err(e) => Err(e),
    };
    Ok(p.ctx.done(BACK, r))
}
