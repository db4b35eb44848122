//! Volumes: the list with each volume's state and the last jobs on volumes (live
//! progress), creating one, and the changes (attach, detach, grow, delete).

use actix_web::{web, HttpResponse};
use askama::Template;

use super::views::{JobView, Layout};
use super::{render, uuid_of, Ctx, Posted, WebError};
use crate::service::{NewVolume, Page, ServiceError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/volumes", web::get().to(list))
        .route("/volumes", web::post().to(create))
        .route("/volumes/{id}/attach", web::post().to(attach))
        .route("/volumes/{id}/detach", web::post().to(detach))
        .route("/volumes/{id}/resize", web::post().to(resize))
        .route("/volumes/{id}/delete", web::post().to(delete));
}

const ALL: Page = Page {
    limit: 1000,
    offset: 0,
};

pub struct VolumeRow {
    pub id: u64,
    pub name: String,
    pub size: i64,
    pub filesystem: String,
    pub status: &'static str,
    pub vm: Option<(String, String)>,
    pub device: String,
    pub pending: String,
    pub error: String,
    pub detached: bool,
    pub grow_to: i64,
}

#[derive(Template)]
#[template(path = "volumes.html")]
struct ListPage {
    layout: Layout,
    volumes: Vec<VolumeRow>,
    vms: Vec<(String, String)>,
    jobs: Vec<JobView>,
}

pub async fn list(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let project = ctx.project.id;
    let (volumes, vms, jobs) = ctx
        .call(move |s, who, _| {
            let v = s.list_volumes(who, Some(&project), None, None, ALL)?;
            let vms = s.list_vms(who, Some(&project), None, None, ALL)?;
            let jobs = s.list_jobs(who, &project).unwrap_or_default();
            Ok((v.items, vms.items, jobs))
        })
        .await?;
    let name_of = |id: &uuid::Uuid| {
        vms.iter()
            .find(|v| v.id == *id)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let mut jobs: Vec<_> = jobs
        .into_iter()
        .filter(|j| j.kind.starts_with("volume."))
        .collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.created_at));
    jobs.truncate(5);
    render(&ListPage {
        layout: ctx.layout("volumes"),
        volumes: volumes
            .iter()
            .map(|v| VolumeRow {
                id: v.id,
                name: v.name.clone(),
                size: v.size_gib,
                filesystem: v.filesystem.clone(),
                status: v.status.as_str(),
                vm: v.vm_id.map(|id| (id.to_string(), name_of(&id))),
                device: v
                    .device
                    .as_ref()
                    .map(|d| format!("/dev/{d}"))
                    .unwrap_or_default(),
                pending: v.pending.clone().unwrap_or_default(),
                error: v.error.clone().unwrap_or_default(),
                detached: v.vm_id.is_none(),
                grow_to: v.size_gib + 1,
            })
            .collect(),
        vms: vms
            .iter()
            .map(|v| (v.id.to_string(), v.name.clone()))
            .collect(),
        jobs: jobs.iter().map(JobView::of).collect(),
    })
}

fn int(p: &Posted, name: &str) -> Result<i64, ServiceError> {
    p.form
        .get(name)
        .unwrap_or("")
        .parse()
        .map_err(|_| ServiceError::Invalid(format!("{name} must be a whole number of GB")))
}

fn id_of(raw: &str) -> Result<u64, WebError> {
    raw.parse().map_err(|_| WebError::NotFound)
}

const BACK: &str = "/ui/volumes";

pub async fn create(p: Posted) -> Result<HttpResponse, WebError> {
    let size = match int(&p, "size") {
        Ok(s) => s,
        Err(e) => return Ok(p.ctx.done(BACK, Err(e))),
    };
    let vm_id = match p.form.get("vm_id").map(uuid_of).transpose() {
        Ok(v) => v,
        Err(_) => {
            return Ok(p
                .ctx
                .done(BACK, Err(ServiceError::Invalid("no such VM".into()))))
        }
    };
    let new = NewVolume {
        name: p.form.get("name").unwrap_or("").to_string(),
        size_gib: size,
        volume_type: "nvme".into(),
        filesystem: p.form.get("filesystem_type").map(str::to_string),
        vm_id,
        region: None,
    };
    let r = p
        .ctx
        .call(move |s, who, scope| s.create_volume(who, scope, new))
        .await
        .map(|c| format!("volume {} is being created", c.volume.name));
    Ok(p.ctx.done(BACK, r))
}

pub async fn attach(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = id_of(&id)?;
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
        .call(move |s, who, scope| s.attach_volume(who, scope, id, &vm))
        .await
        .map(|c| format!("volume {} is being attached", c.volume.name));
    Ok(p.ctx.done(BACK, r))
}

pub async fn detach(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = id_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, scope| s.detach_volume(who, scope, id))
        .await
        .map(|c| format!("volume {} is being detached", c.volume.name));
    Ok(p.ctx.done(BACK, r))
}

pub async fn resize(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = id_of(&id)?;
    let size = match int(&p, "new_size") {
        Ok(s) => s,
        Err(e) => return Ok(p.ctx.done(BACK, Err(e))),
    };
    let r = p
        .ctx
        .call(move |s, who, scope| s.resize_volume(who, scope, id, size))
        .await
        .map(|c| format!("volume {} is growing to {size} GB", c.volume.name));
    Ok(p.ctx.done(BACK, r))
}

pub async fn delete(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = id_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, scope| s.delete_volume(who, scope, id))
        .await
        .map(|v| format!("volume {} is being deleted", v.name));
    Ok(p.ctx.done(BACK, r))
}
