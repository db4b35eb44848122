//! Backup pages: every backup and schedule of the project (or of one VM), running
//! backup jobs with their progress, and the actions on backups and series.

use actix_web::{web, HttpResponse};
use askama::Template;
use uuid::Uuid;

use super::views::{when, JobView, Layout};
use super::{render, uuid_of, Ctx, Posted, WebError};
use crate::service::{runtime_text, Page, ScheduleWrite};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/vms/{id}/backups", web::post().to(create))
        .route("/vms/{id}/backups/reset-chain", web::post().to(reset_chain))
        .route("/backups", web::get().to(page))
        .route("/backups/{id}/restore", web::post().to(restore))
        .route("/backups/{id}/delete", web::post().to(delete))
        .route("/backups/{id}/delete-chain", web::post().to(delete_chain))
        .route("/backup-schedules", web::post().to(create_schedule))
        .route(
            "/backup-schedules/{id}/delete",
            web::post().to(delete_schedule),
        )
        .route(
            "/backup-schedules/{id}/toggle",
            web::post().to(toggle_schedule),
        );
}

const ALL: Page = Page {
    limit: 10_000,
    offset: 0,
};

pub struct BackupRow {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub method: String,
    pub increment: String,
    pub stored: String,
    pub created: String,
    pub error: String,
}

impl BackupRow {
    pub fn of(b: &crate::model::Backup) -> BackupRow {
        BackupRow {
            id: b.id.to_string(),
            name: b.name.clone(),
            status: b.status.as_str(),
            method: b.method.clone().unwrap_or_default(),
            increment: b.increment.map(|i| i.to_string()).unwrap_or_default(),
            stored: super::views::mib(b.stored_bytes),
            created: when(&b.created_at),
            error: b.error.clone().unwrap_or_default(),
        }
    }
}

pub struct ScheduleRow {
    pub id: u64,
    pub vm: String,
    pub when: String,
    pub keep: u32,
    pub enabled: bool,
    pub next: String,
    pub last: String,
}

#[derive(Template)]
#[template(path = "backups.html")]
struct BackupsPage {
    layout: Layout,
    /// (vm id, vm name, its backups)
    series: Vec<(String, String, Vec<BackupRow>)>,
    schedules: Vec<ScheduleRow>,
    running: Vec<JobView>,
    vms: Vec<(String, String)>,
    vm_filter: String,
}

#[derive(serde::Deserialize)]
pub struct Filter {
    vm: Option<String>,
}

pub async fn page(ctx: Ctx, q: web::Query<Filter>) -> Result<HttpResponse, WebError> {
    let project = ctx.project.id;
    let vm_filter = q.vm.as_deref().and_then(|v| Uuid::parse_str(v).ok());
    let (vms, backups, schedules, jobs) = ctx
        .call(move |s, who, _| {
            let vms = s.list_vms(who, Some(&project), None, None, ALL)?.items;
            let backups = s
                .list_backups(who, Some(&project), vm_filter.as_ref(), ALL)?
                .items;
            let schedules = s
                .list_backup_schedules(who, Some(&project), vm_filter.as_ref(), ALL)?
                .items;
            let jobs = s.list_jobs(who, &project)?;
            Ok((vms, backups, schedules, jobs))
        })
        .await?;
    let name_of = |id: &Uuid| {
        vms.iter()
            .find(|v| v.id == *id)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| format!("deleted VM {id}"))
    };
    let mut series: Vec<(String, String, Vec<BackupRow>)> = Vec::new();
    for b in &backups {
        let key = b.vm_id.to_string();
        match series.iter_mut().find(|(k, _, _)| *k == key) {
            Some(s) => s.2.push(BackupRow::of(b)),
            None => series.push((key, name_of(&b.vm_id), vec![BackupRow::of(b)])),
        }
    }
    let running = jobs
        .iter()
        .filter(|j| j.kind.starts_with("backup") && !j.status.is_final())
        .map(JobView::of)
        .collect();
    render(&BackupsPage {
        layout: ctx.layout("backups"),
        series,
        schedules: schedules
            .iter()
            .map(|s| ScheduleRow {
                id: s.id,
                vm: name_of(&s.vm_id),
                when: runtime_text(s),
                keep: s.keep_count,
                enabled: s.enabled,
                next: when(&s.next_run_at),
                last: match (&s.last_run_at, &s.last_run_status) {
                    (Some(t), Some(st)) => format!("{st} at {}", when(t)),
                    _ => "never".into(),
                },
            })
            .collect(),
        running,
        vms: vms
            .iter()
            .map(|v| (v.id.to_string(), v.name.clone()))
            .collect(),
        vm_filter: vm_filter.map(|v| v.to_string()).unwrap_or_default(),
    })
}

fn vm_page(id: &Uuid) -> String {
    format!("/ui/vms/{id}#backups")
}

pub async fn create(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, scope| s.create_backup(who, scope, &id, None))
        .await
        .map(|b| format!("backup {} started", b.name));
    Ok(p.ctx.done(&vm_page(&id), r))
}

pub async fn reset_chain(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, scope| s.reset_backup_chain(who, scope, &id))
        .await
        .map(|_| "the next backup starts a new series (full)".to_string());
    Ok(p.ctx.done(&format!("/ui/backups?vm={id}"), r))
}

/// Runs an action on a backup and returns to its VM's page.
async fn on_backup(
    p: Posted,
    id: &str,
    act: impl FnOnce(
            &crate::service::Services,
            &crate::service::Principal,
            Option<&str>,
            &Uuid,
        ) -> Result<String, crate::service::ServiceError>
        + Send
        + 'static,
) -> Result<HttpResponse, WebError> {
    let id = uuid_of(id)?;
    let b = p.ctx.call(move |s, who, _| s.get_backup(who, &id)).await?;
    let r = p
        .ctx
        .call(move |s, who, scope| act(s, who, scope, &id))
        .await;
    Ok(p.ctx.done(&vm_page(&b.vm_id), r))
}

pub async fn restore(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    on_backup(p, &id, |s, who, scope, id| {
        s.restore_backup(who, scope, id)
            .map(|b| format!("restoring {} onto the VM", b.name))
    })
    .await
}

pub async fn delete(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    on_backup(p, &id, |s, who, scope, id| {
        s.delete_backup(who, scope, id)
            .map(|b| format!("backup {} deleted", b.name))
    })
    .await
}

pub async fn delete_chain(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    on_backup(p, &id, |s, who, scope, id| {
        s.delete_backup_chain(who, scope, id)
            .map(|v| format!("{} backups of the series deleted", v.len()))
    })
    .await
}

pub async fn create_schedule(p: Posted) -> Result<HttpResponse, WebError> {
    let vm = uuid_of(p.form.get("vm_id").unwrap_or(""))
        .map_err(|_| WebError::Invalid("choose a VM".into()))?;
    let w = ScheduleWrite {
        kind: p.form.get("kind").map(str::to_string),
        time: p.form.get("time").map(str::to_string),
        day_of_week: p.form.get("day_of_week").map(str::to_string),
        keep_count: p.form.get("keep_count").and_then(|k| k.parse().ok()),
        enabled: Some(true),
    };
    let r = p
        .ctx
        .call(move |s, who, scope| s.create_backup_schedule(who, scope, &vm, &w))
        .await
        .map(|s| format!("schedule {} created: {}", s.id, runtime_text(&s)));
    Ok(p.ctx.done("/ui/backups", r))
}

fn schedule_id(s: &str) -> Result<u64, WebError> {
    s.parse().map_err(|_| WebError::NotFound)
}

pub async fn delete_schedule(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = schedule_id(&id)?;
    let r = p
        .ctx
        .call(move |s, who, scope| s.delete_backup_schedule(who, scope, id))
        .await
        .map(|_| "schedule deleted; its backups are kept".to_string());
    Ok(p.ctx.done("/ui/backups", r))
}

pub async fn toggle_schedule(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = schedule_id(&id)?;
    let r = p
        .ctx
        .call(move |s, who, scope| {
            let cur = s.get_backup_schedule(who, id)?;
            let w = ScheduleWrite {
                kind: None,
                time: None,
                day_of_week: None,
                keep_count: None,
                enabled: Some(!cur.enabled),
            };
            s.update_backup_schedule(who, scope, id, &w)
        })
        .await
        .map(|s| {
            format!(
                "schedule {} {}",
                s.id,
                if s.enabled { "enabled" } else { "paused" }
            )
        });
    Ok(p.ctx.done("/ui/backups", r))
}
