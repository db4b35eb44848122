//! VM pages: list with filter and search, the create form, the detail page with live
//! status, and the actions on a VM (power, delete, tags, notes, security groups).

use actix_web::{web, HttpResponse};
use askama::Template;
use uuid::Uuid;

use super::backups::BackupRow;
use super::views::{when, JobView, Layout};
use super::{render, see_other, uuid_of, Ctx, Posted, WebError};
use crate::model::{Job, SecurityGroup, Vm, VmStatus};
use crate::service::{NewVm, NoteWrite, Page, PowerAction, ServiceError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/vms", web::get().to(list))
        .route("/vms", web::post().to(create))
        .route("/vms/new", web::get().to(new_form))
        .route("/vms/{id}", web::get().to(detail))
        .route("/vms/{id}/status", web::get().to(status_fragment))
        .route("/vms/{id}/power", web::post().to(power))
        .route("/vms/{id}/delete", web::post().to(delete))
        .route("/vms/{id}/rename", web::post().to(rename))
        .route("/vms/{id}/resize", web::post().to(resize))
        .route("/vms/{id}/reinstall", web::post().to(reinstall))
        .route("/vms/{id}/reset-password", web::post().to(reset_password))
        .route("/vms/{id}/tags", web::post().to(add_tag))
        .route("/vms/{id}/tags/{tag}/delete", web::post().to(remove_tag))
        .route("/vms/{id}/notes", web::post().to(note))
        .route("/vms/{id}/security-groups", web::post().to(attachment))
        .route("/vms/{id}/console", web::get().to(super::console::page))
        .route("/vms/{id}/vnc", web::get().to(super::console::proxy))
        .configure(super::backups::routes)
        .configure(super::snapshots::routes);
}

/// A VM as a row of the list.
pub struct VmRow {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub ips: String,
    pub plan: String,
    pub template: String,
    pub region: String,
    pub tags: Vec<String>,
    pub created: String,
}

impl VmRow {
    pub fn of(vm: &Vm) -> VmRow {
        VmRow {
            id: vm.id.to_string(),
            name: vm.name.clone(),
            status: vm.status.as_str(),
            ips: vm
                .nics
                .iter()
                .map(|n| n.ip.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            plan: format!(
                "{} vCPU · {} GiB · {} GiB",
                vm.vcpus,
                vm.ram_gib,
                vm.storage_gib + vm.added_storage_gib
            ),
            template: format!("{} {}", vm.template_name, vm.template_version),
            region: vm.region.clone(),
            tags: vm.tags.iter().map(|t| t.name.clone()).collect(),
            created: when(&vm.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "vms.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<VmRow>,
    total: usize,
    q: String,
    status: String,
    statuses: &'static [&'static str],
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    status: Option<String>,
}

const STATUSES: &[&str] = &[
    "active",
    "passive",
    "initiating",
    "provisioning",
    "booting",
    "finalizing",
    "failure",
];

fn matches(vm: &Vm, q: &str) -> bool {
    let q = q.to_lowercase();
    vm.name.to_lowercase().contains(&q)
        || vm.id.to_string().starts_with(&q)
        || vm.nics.iter().any(|n| n.ip.starts_with(&q))
        || vm.tags.iter().any(|t| t.name.to_lowercase().contains(&q))
        || vm.template_name.to_lowercase().contains(&q)
}

pub async fn list(ctx: Ctx, q: web::Query<ListQuery>) -> Result<HttpResponse, WebError> {
    let status = q.status.as_deref().and_then(VmStatus::parse);
    let project = ctx.project.id;
    let all = ctx
        .call(move |s, who, _| {
            s.list_vms(
                who,
                Some(&project),
                status,
                None,
                Page {
                    limit: 10_000,
                    offset: 0,
                },
            )
        })
        .await?;
    let search = q.q.clone().unwrap_or_default();
    let rows: Vec<VmRow> = all
        .items
        .iter()
        .filter(|vm| search.trim().is_empty() || matches(vm, search.trim()))
        .map(VmRow::of)
        .collect();
    render(&ListPage {
        layout: ctx.layout("vms"),
        total: all.total,
        rows,
        q: search,
        status: status.map(|s| s.as_str().to_string()).unwrap_or_default(),
        statuses: STATUSES,
    })
}

/// The create form's choices and, after a refused post, what was typed and why.
#[derive(Template)]
#[template(path = "vm_new.html")]
struct NewPage {
    layout: Layout,
    templates: Vec<(String, String)>,
    plans: Vec<(String, String)>,
    regions: Vec<(String, String)>,
    ssh_keys: Vec<(String, String)>,
    /// The project's VPCs a new VM may join: (id, "name (cidr)").
    vpcs: Vec<(String, String)>,
    v: NewValues,
    /// (field, message) of a refused post.
    errors: Vec<(&'static str, String)>,
}

impl NewPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }
}

#[derive(Default)]
struct NewValues {
    name: String,
    template: String,
    plan: String,
    region: String,
    ssh_keys: Vec<String>,
    password_mode: String,
    backup: String,
    backup_time: String,
    backup_day: String,
    public_ip: bool,
    /// `auto` (a VPC of its own), `none`, or a VPC's id.
    vpc: String,
}

async fn new_page(
    ctx: &Ctx,
    v: NewValues,
    errors: Vec<(&'static str, String)>,
) -> Result<HttpResponse, WebError> {
    let project = ctx.project.id;
    let (templates, plans, regions, keys, vpcs) = ctx
        .call(move |s, who, _| {
            Ok((
                s.templates_for_project(&project)?,
                s.vm_plans(None, None)?,
                s.regions(),
                // A project member without the account's SSH-key list still creates
                // VMs (with a password, or keys pasted through the API).
                s.list_ssh_keys(who).unwrap_or_default(),
                s.list_vpcs(who, Some(&project)).unwrap_or_default(),
            ))
        })
        .await?;
    let mut res = render(&NewPage {
        layout: ctx.layout("vms"),
        templates: templates
            .iter()
            .map(|t| (t.id.to_string(), format!("{} {}", t.name, t.version)))
            .collect(),
        plans: plans
            .iter()
            .map(|p| {
                (
                    p.id.to_string(),
                    format!(
                        "{} vCPU · {} GiB memory · {} GiB disk",
                        p.vcpu, p.memory_gib, p.ssd_gib
                    ),
                )
            })
            .collect(),
        regions: regions
            .iter()
            .map(|r| (r.code.clone(), r.name.clone()))
            .collect(),
        ssh_keys: keys
            .iter()
            .map(|k| (k.id.to_string(), format!("{} ({})", k.name, k.fingerprint)))
            .collect(),
        vpcs: vpcs
            .iter()
            .filter(|x| x.status == crate::model::VpcStatus::Active)
            .map(|x| (x.id.to_string(), format!("{} ({})", x.name, x.cidr)))
            .collect(),
        v,
        errors: errors.clone(),
    })?;
    if !errors.is_empty() {
        *res.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(res)
}

pub async fn new_form(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let v = NewValues {
        password_mode: "generate".into(),
        backup: "none".into(),
        backup_time: "8am".into(),
        public_ip: true,
        vpc: "auto".into(),
        ..Default::default()
    };
    new_page(&ctx, v, vec![]).await
}

/// Which form field a service message is about: the field it names first.
fn field_of(message: &str) -> &'static str {
    let m = message.to_lowercase();
    const FIELDS: &[(&str, &str)] = &[
        ("name", "name"),
        ("password", "password"),
        ("ssh", "ssh_keys"),
        ("template", "template"),
        ("pricing", "plan"),
        ("plan", "plan"),
        ("region", "region"),
        ("backup", "backup"),
        ("time", "backup"),
        ("public", "public_ip"),
        ("vpc", "vpc"),
    ];
    FIELDS
        .iter()
        .filter_map(|(word, field)| m.find(word).map(|at| (at, *field)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, f)| f)
        .unwrap_or("form")
}

pub async fn create(p: Posted) -> Result<HttpResponse, WebError> {
    let f = &p.form;
    let v = NewValues {
        name: f.get("name").unwrap_or("").to_string(),
        template: f.get("template").unwrap_or("").to_string(),
        plan: f.get("plan").unwrap_or("").to_string(),
        region: f.get("region").unwrap_or("").to_string(),
        ssh_keys: f.all("ssh_keys"),
        password_mode: f.get("password_mode").unwrap_or("generate").to_string(),
        backup: f.get("backup").unwrap_or("none").to_string(),
        backup_time: f.get("backup_time").unwrap_or("8am").to_string(),
        backup_day: f.get("backup_day").unwrap_or("").to_string(),
        public_ip: f.has("public_ip"),
        vpc: f.get("vpc").unwrap_or("auto").to_string(),
    };
    // Fields the form itself can check; the rest is the service's to judge.
    let mut errors = Vec::new();
    let template_id = Uuid::parse_str(&v.template).ok();
    if template_id.is_none() {
        errors.push(("template", "choose a template".to_string()));
    }
    let pricing_id = v.plan.parse::<i64>().ok();
    if pricing_id.is_none() {
        errors.push(("plan", "choose a plan".to_string()));
    }
    let generated = (v.password_mode == "generate").then(crate::service::new_vm_password);
    let password = match v.password_mode.as_str() {
        "set" => match f.raw("password") {
            Some(pw) => Some(pw.to_string()),
            None => {
                errors.push((
                    "password",
                    "type a password, or let skiff generate one".into(),
                ));
                None
            }
        },
        "generate" => generated.clone(),
        _ => None,
    };
    if v.password_mode == "none" && v.ssh_keys.is_empty() {
        errors.push((
            "ssh_keys",
            "choose an SSH key, or give the VM a password".into(),
        ));
    }
    if !errors.is_empty() {
        return new_page(&p.ctx, v, errors).await;
    }
    let new = NewVm {
        name: v.name.clone(),
        template_id: template_id.unwrap_or_default(),
        pricing_id: pricing_id.unwrap_or_default(),
        region: v.region.clone(),
        ssh_keys: v.ssh_keys.clone(),
        password,
        extra_storage: 0,
        extra_storage_type: None,
        backup_type: (v.backup != "none").then(|| v.backup.clone()),
        backup_time: (v.backup != "none").then(|| v.backup_time.clone()),
        backup_date: (v.backup == "weekly").then(|| v.backup_day.clone()),
        tags: vec![],
        vpc_id: Uuid::parse_str(&v.vpc).ok(),
        vpc_name: None,
        vpc_cidr: None,
        skip_public_ip: !v.public_ip,
        skip_vpc: v.vpc == "none",
    };
    match p
        .ctx
        .call(move |s, who, scope| s.create_vm(who, scope, new))
        .await
    {
        Ok(vm) => {
            let mut msg = format!("VM {} is being created", vm.name);
            if let Some(pw) = generated {
                p.ctx
                    .show_secret_once(format!("Root password of {}", vm.name), pw);
                msg.push_str("; its root password is below");
            }
            p.ctx.flash(true, msg);
            Ok(see_other(&format!("/ui/vms/{}", vm.id)))
        }
        Err(ServiceError::Invalid(m)) => {
            let field = field_of(&m);
            new_page(&p.ctx, v, vec![(field, m)]).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The status badge and the VM's latest job; refreshes itself while anything moves.
pub struct StatusView {
    pub vm_id: String,
    pub status: &'static str,
    pub busy: bool,
    pub job: Option<JobView>,
}

fn transitional(s: VmStatus) -> bool {
    !matches!(s, VmStatus::Active | VmStatus::Passive | VmStatus::Failure)
}

fn latest_job(jobs: &[Job], vm: &Uuid) -> Option<JobView> {
    let target = format!("vm/{vm}");
    jobs.iter()
        .filter(|j| j.target == target)
        .max_by_key(|j| j.seq)
        .map(JobView::of)
}

fn status_view(vm: &Vm, jobs: &[Job]) -> StatusView {
    let job = latest_job(jobs, &vm.id);
    StatusView {
        vm_id: vm.id.to_string(),
        status: vm.status.as_str(),
        busy: transitional(vm.status) || job.as_ref().is_some_and(|j| j.running),
        job,
    }
}

#[derive(Template)]
#[template(path = "vm_status.html")]
struct StatusFragment {
    st: StatusView,
}

pub async fn status_fragment(ctx: Ctx, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let (vm, jobs) = ctx
        .call(move |s, who, _| {
            let vm = s.get_vm(who, &id)?;
            let jobs = s.list_jobs(who, &vm.project_id)?;
            Ok((vm, jobs))
        })
        .await?;
    render(&StatusFragment {
        st: status_view(&vm, &jobs),
    })
}

pub async fn job_fragment(ctx: Ctx, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let job = ctx.call(move |s, who, _| s.get_job(who, &id)).await?;
    render(&JobFragment {
        job: JobView::of(&job),
    })
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobFragment {
    job: JobView,
}

pub struct NicView {
    pub id: u64,
    pub mac: String,
    pub ip: String,
    pub network: String,
    /// The VPC of a VPC NIC (its page).
    pub vpc: Option<String>,
    pub groups: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "vm_detail.html")]
struct DetailPage {
    layout: Layout,
    vm: VmRow,
    st: StatusView,
    running: bool,
    stopped: bool,
    nics: Vec<NicView>,
    disks: Vec<(String, String)>,
    tags: Vec<(String, String)>,
    note: String,
    groups: Vec<(String, String)>,
    backups: Vec<BackupRow>,
    snapshots: Vec<super::snapshots::SnapshotRow>,
    console: String,
    plans: Vec<(String, String)>,
    templates: Vec<(String, String)>,
    pricing_id: String,
}

pub async fn detail(ctx: Ctx, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let project = ctx.project.id;
    let (vm, jobs, groups, backups, snapshots, notes, console, plans, templates, nets) = ctx
        .call(move |s, who, _| {
            let vm = s.get_vm(who, &id)?;
            let jobs = s.list_jobs(who, &vm.project_id)?;
            let groups: Vec<SecurityGroup> = s
                .list_security_groups(who, Some(&vm.project_id))
                .unwrap_or_default();
            let backups = s
                .list_backups(
                    who,
                    Some(&project),
                    Some(&id),
                    Page {
                        limit: 1000,
                        offset: 0,
                    },
                )
                .map(|p| p.items)
                .unwrap_or_default();
            let snapshots = s
                .list_snapshots(
                    who,
                    Some(&project),
                    crate::service::SnapshotFilter {
                        vm: Some(id),
                        ..Default::default()
                    },
                    Page {
                        limit: 1000,
                        offset: 0,
                    },
                )
                .map(|p| p.items)
                .unwrap_or_default();
            let notes = s.vm_notes(who, &id).ok();
            let console = s.vm_console(who, &id, 16 * 1024).unwrap_or_default();
            let plans = s.vm_plans(None, Some(&vm.region)).unwrap_or_default();
            let templates = s.templates_for_project(&vm.project_id).unwrap_or_default();
            let nets: Vec<String> = vm.nics.iter().map(|n| s.network_name(n)).collect();
            Ok((
                vm, jobs, groups, backups, snapshots, notes, console, plans, templates, nets,
            ))
        })
        .await?;
    let name_of = |g: &Uuid| {
        groups
            .iter()
            .find(|x| x.id == *g)
            .map(|x| x.name.clone())
            .unwrap_or_else(|| g.to_string())
    };
    let nics = vm
        .nics
        .iter()
        .zip(nets)
        .map(|(n, network)| NicView {
            id: n.id,
            mac: n.mac.clone(),
            ip: format!("{}/{}", n.ip, n.prefix),
            network,
            vpc: n.vpc_id.map(|v| v.to_string()),
            groups: n
                .security_groups
                .iter()
                .map(|g| (g.to_string(), name_of(g)))
                .collect(),
        })
        .collect();
    let mut disks = vec![(
        "root (virtio, qcow2)".to_string(),
        format!("{} GiB", vm.storage_gib + vm.added_storage_gib),
    )];
    disks.push(("cloud-init seed (read-only)".into(), "NoCloud".into()));
    let note = notes
        .and_then(|(_, account)| account.map(|n| n.content))
        .unwrap_or_default();
    render(&DetailPage {
        layout: ctx.layout("vms"),
        st: status_view(&vm, &jobs),
        running: vm.status == VmStatus::Active,
        stopped: vm.status == VmStatus::Passive,
        nics,
        disks,
        tags: vm
            .tags
            .iter()
            .map(|t| (t.id.to_string(), t.name.clone()))
            .collect(),
        note,
        groups: groups
            .iter()
            .map(|g| (g.id.to_string(), g.name.clone()))
            .collect(),
        backups: backups.iter().map(BackupRow::of).collect(),
        snapshots: snapshots
            .iter()
            .map(super::snapshots::SnapshotRow::of)
            .collect(),
        console,
        plans: plans
            .iter()
            .map(|p| {
                (
                    p.id.to_string(),
                    format!("{} vCPU · {} GiB · {} GiB", p.vcpu, p.memory_gib, p.ssd_gib),
                )
            })
            .collect(),
        templates: templates
            .iter()
            .map(|t| (t.id.to_string(), format!("{} {}", t.name, t.version)))
            .collect(),
        pricing_id: vm.pricing_id.to_string(),
        vm: VmRow::of(&vm),
    })
}

fn back_to(id: &Uuid) -> String {
    format!("/ui/vms/{id}")
}

pub async fn power(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let action = match p.form.get("action") {
        Some("start") => PowerAction::Start,
        Some("stop") => PowerAction::Stop,
        Some("reboot") => PowerAction::Reboot,
        Some("reboot-hard") => PowerAction::RebootHard,
        _ => return Err(WebError::Invalid("unknown power action".into())),
    };
    let word = p.form.get("action").unwrap_or("").to_string();
    let r = p
        .ctx
        .call(move |s, who, scope| s.power_vm(who, scope, &id, action))
        .await
        .map(|vm| format!("{word}: {} accepted", vm.name));
    Ok(p.ctx.done(&back_to(&id), r))
}

pub async fn delete(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let vm = p.ctx.call(move |s, who, _| s.get_vm(who, &id)).await?;
    if p.form.get("confirm") != Some(vm.name.as_str()) {
        p.ctx.flash(
            false,
            format!("type the VM's name ({}) to confirm the delete", vm.name),
        );
        return Ok(see_other(&back_to(&id)));
    }
    let r = p
        .ctx
        .call(move |s, who, scope| {
            s.delete_vm(who, scope, &id, crate::service::VolumeAction::Detach, true)
        })
        .await
        .map(|vm| format!("VM {} is being deleted", vm.name));
    let to = if r.is_ok() {
        "/ui/vms".to_string()
    } else {
        back_to(&id)
    };
    Ok(p.ctx.done(&to, r))
}

pub async fn rename(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let name = p.form.get("name").unwrap_or("").to_string();
    let r = p
        .ctx
        .call(move |s, who, scope| s.rename_vm(who, scope, &id, &name))
        .await
        .map(|vm| format!("renamed to {}", vm.name));
    Ok(p.ctx.done(&back_to(&id), r))
}

pub async fn resize(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let Some(plan) = p.form.get("plan").and_then(|x| x.parse::<i64>().ok()) else {
        p.ctx.flash(false, "choose a plan");
        return Ok(see_other(&back_to(&id)));
    };
    let r = p
        .ctx
        .call(move |s, who, scope| s.resize_vm(who, scope, &id, plan))
        .await
        .map(|vm| format!("{} is being resized", vm.name));
    Ok(p.ctx.done(&back_to(&id), r))
}

pub async fn reinstall(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let template = match p.form.get("template") {
        Some(t) => Some(uuid_of(t).map_err(|_| WebError::Invalid("unknown template".into()))?),
        None => None,
    };
    let password = crate::service::new_vm_password();
    let pw = password.clone();
    let r = p
        .ctx
        .call(move |s, who, scope| s.reinstall_vm(who, scope, &id, template, Some(pw), None))
        .await;
    if let Ok(vm) = &r {
        p.ctx
            .show_secret_once(format!("New root password of {}", vm.name), password);
    }
    let r = r.map(|vm| format!("{} is being reinstalled; its disk starts over", vm.name));
    Ok(p.ctx.done(&back_to(&id), r))
}

pub async fn reset_password(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let r = p
        .ctx
        .call(move |s, who, scope| s.reset_vm_password(who, scope, &id))
        .await;
    let r = r.map(|(password, now)| {
        p.ctx
            .show_secret_once("New root password".to_string(), password);
        if now {
            "root password changed; the guest agent applied it".to_string()
        } else {
            "root password changed; no guest agent answered, so it applies at the next boot"
                .to_string()
        }
    });
    Ok(p.ctx.done(&back_to(&id), r))
}

pub async fn add_tag(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let name = p.form.get("tag").unwrap_or("").to_string();
    let r = p
        .ctx
        .call(move |s, who, scope| s.add_vm_tag(who, scope, &id, &name, 0))
        .await
        .map(|_| "tag added".to_string());
    Ok(p.ctx.done(&back_to(&id), r))
}

pub async fn remove_tag(
    p: Posted,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (id, tag) = (uuid_of(&path.0)?, uuid_of(&path.1)?);
    let r = p
        .ctx
        .call(move |s, who, scope| s.remove_vm_tag(who, scope, &id, &tag))
        .await
        .map(|_| "tag removed".to_string());
    Ok(p.ctx.done(&back_to(&id), r))
}

pub async fn note(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let content = p.form.raw("content").unwrap_or("").to_string();
    let r = p
        .ctx
        .call(move |s, who, scope| {
            s.write_vm_note(who, scope, &id, "account", &content, NoteWrite::Put)
        })
        .await
        .map(|_| "note saved".to_string());
    Ok(p.ctx.done(&back_to(&id), r))
}

pub async fn attachment(p: Posted, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let group = uuid_of(p.form.get("group_id").unwrap_or(""))
        .map_err(|_| WebError::Invalid("choose a security group".into()))?;
    let nic: u64 = p
        .form
        .get("nic_id")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| WebError::Invalid("choose a network interface".into()))?;
    let attach = p.form.get("action") != Some("detach");
    let r = p
        .ctx
        .call(move |s, who, scope| {
            s.set_security_group_attachment(who, scope, &id, &group, nic, attach)
        })
        .await
        .map(|_| {
            if attach {
                "security group attached".to_string()
            } else {
                "security group detached".to_string()
            }
        });
    Ok(p.ctx.done(&back_to(&id), r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_messages_land_next_to_the_field_they_name() {
        assert_eq!(field_of("name must be 1 to 64 characters"), "name");
        assert_eq!(
            field_of("password must be at least 12 characters with 2+ uppercase"),
            "password"
        );
        assert_eq!(field_of("ssh_keys: not an OpenSSH public key"), "ssh_keys");
        assert_eq!(field_of("no template with id 1"), "template");
        assert_eq!(field_of("unknown pricing_id 9"), "plan");
        assert_eq!(field_of("something else"), "form");
    }
}
