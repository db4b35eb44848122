//! `/api/v1/vms`: the VM lifecycle.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{page, path_uuid, Caller, ProjectHeader};
use super::types::{self, *};
use super::AppState;
use crate::model::{self, VmStatus};
use crate::service::{NewVm, PowerAction, VolumeAction};

fn dto(v: model::Vm) -> types::VM {
    types::VM {
        id: v.id,
        name: v.name,
        status: v.status.as_str().into(),
        cpu: v.vcpus,
        ram: v.ram_gib,
        storage: v.storage_gib,
        added_storage: v.added_storage_gib,
        total_storage: v.storage_gib + v.added_storage_gib,
        template_id: v.template_id,
        template_name: v.template_name,
        template_version: v.template_version,
        price_per_hour: "0".into(),
        pricing_id: v.pricing_id,
        region: v.region,
        project_id: v.project_id,
        public_ipv4_address: v
            .nics
            .iter()
            .find(|n| n.kind == "public")
            .map(|n| n.ip.clone()),
        tags: tags(v.tags),
        active: v.status == VmStatus::Active,
        created_by: v.created_by.map(|u| u.to_string()),
        created_at: v.created_at,
        updated_at: v.updated_at,
    }
}

fn tags(list: Vec<model::VmTag>) -> Vec<VMTag> {
    list.into_iter()
        .map(|t| VMTag {
            id: t.id.to_string(),
            name: t.name,
            priority: t.priority,
            created_at: t.created_at,
        })
        .collect()
}

fn note(n: model::VmNote) -> VMNote {
    VMNote {
        id: n.id,
        vm_id: n.vm_id,
        kind: n.scope,
        content: n.content,
        user_id: n.user_id,
        created_at: n.created_at,
        updated_at: n.updated_at,
    }
}

/// `200 {success, message}`: the contract's answer to an action.
pub(super) fn done(message: String) -> HttpResponse {
    HttpResponse::Ok().json(SuccessResponse {
        success: true,
        message,
    })
}

#[utoipa::path(
    get, path = "/api/v1/vms", tag = "Virtual Machines", operation_id = "listVMs",
    params(VmQuery),
    responses(
        (status = 200, description = "List of VMs", body = VMList),
        (status = 400, description = "Invalid query", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "No such project", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    q: web::Query<VmQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 20)?;
    let project = match q.project_id.as_deref() {
        Some(p) => Some(
            uuid::Uuid::parse_str(p)
                .map_err(|_| ApiError::bad_request("project_id must be a UUID"))?,
        ),
        None => None,
    };
    let status = match q.status.as_deref() {
        Some(s) => Some(
            VmStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request(format!("unknown status {s:?}")))?,
        ),
        None => None,
    };
    let r = state
        .services
        .list_vms(&who, project.as_ref(), status, q.region.as_deref(), page)?;
    Ok(HttpResponse::Ok().json(VMList {
        success: true,
        total: r.total,
        data: r.items.into_iter().map(dto).collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/vms", tag = "Virtual Machines", operation_id = "createVM",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "Project of the new VM")),
    request_body = CreateVMRequest,
    responses(
        (status = 201, description = "VM accepted; it boots in the background", body = VMResponse),
        (status = 400, description = "Invalid request", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "No such project", body = Error),
        (status = 409, description = "The address pool is exhausted", body = Error),
        (status = 503, description = "VMs cannot run on this host now", body = Error),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    body: web::Json<CreateVMRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let vm = state.services.create_vm(
        &who,
        project.as_deref(),
        NewVm {
            name: b.name,
            template_id: b.template_id,
            pricing_id: b.pricing_id,
            region: b.region,
            ssh_keys: b.ssh_keys,
            password: b.password,
            extra_storage: b.extra_storage,
            extra_storage_type: b.extra_storage_type.clone(),
            backup_type: b.backup_type,
            backup_time: b.backup_time,
            backup_date: b.backup_date,
            tags: b.tags,
            vpc_id: b.vpc_id,
            vpc_name: b.vpc_name,
            vpc_cidr: b.vpc_cidr,
            skip_public_ip: b.skip_public_ip,
            skip_vpc: b.skip_vpc,
        },
    )?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(VMResponse {
        success: true,
        data: dto(vm),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/vms/{id}", tag = "Virtual Machines", operation_id = "getVM",
    params(("id" = uuid::Uuid, Path, description = "VM ID (UUID)")),
    responses(
        (status = 200, description = "VM details", body = VMResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    Ok(HttpResponse::Ok().json(VMResponse {
        success: true,
        data: dto(state.services.get_vm(&who, &id)?),
    }))
}

#[utoipa::path(
    delete, path = "/api/v1/vms/{id}", tag = "Virtual Machines", operation_id = "deleteVM",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    request_body(content = Option<DeleteVMRequest>, description = "Optional"),
    responses(
        (status = 200, description = "Deletion accepted", body = SuccessResponse),
        (status = 400, description = "X-Project-ID missing or invalid body", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 503, description = "VMs cannot run on this host now", body = Error),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: Option<web::Json<DeleteVMRequest>>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let (action, delete_vpc) = match &body {
        Some(b) => delete_options(b.volume_action.as_deref(), b.delete_vpc)?,
        None => (VolumeAction::Detach, true),
    };
    let vm = state
        .services
        .delete_vm(&who, project.as_deref(), &id, action, delete_vpc)?;
    Ok(done(format!("VM {} is being deleted", vm.name)))
}

/// What happens to the VM's volumes (`detach`, the default, keeps them) and to its
/// VPCs (`delete_vpc`, default true: each VPC the VM leaves empty goes with it).
fn delete_options(
    volume_action: Option<&str>,
    delete_vpc: Option<bool>,
) -> Result<(VolumeAction, bool), ApiError> {
    let action = match volume_action {
        None | Some("detach") => VolumeAction::Detach,
        Some("delete") => VolumeAction::Delete,
        Some(_) => {
            return Err(ApiError::bad_request(
                "volume_action must be detach or delete",
            ))
        }
    };
    Ok((action, delete_vpc.unwrap_or(true)))
}

async fn power(
    state: web::Data<AppState>,
    who: crate::service::Principal,
    project: Option<String>,
    id: &str,
    action: PowerAction,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(id, "VM")?;
    let vm = state
        .services
        .power_vm(&who, project.as_deref(), &id, action)?;
    let what = match action {
        PowerAction::Start => "starting",
        PowerAction::Stop => "stopping",
        PowerAction::Reboot => "rebooting",
        PowerAction::RebootHard => "resetting",
    };
    Ok(done(format!("VM {} is {what}", vm.name)))
}

macro_rules! power_route {
    ($fn:ident, $path:literal, $op:literal, $action:expr, $desc:literal) => {
        #[utoipa::path(
            post, path = $path, tag = "Virtual Machines", operation_id = $op,
            params(
                ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
                ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
            ),
            responses(
                (status = 200, description = $desc, body = SuccessResponse),
                (status = 400, description = "X-Project-ID missing, or not possible in the VM's state", body = Error),
                (status = 401, description = "Authentication required", body = Error),
                (status = 403, description = "No permission in the project", body = Error),
                (status = 404, description = "Resource not found", body = Error),
                (status = 503, description = "VMs cannot run on this host now", body = Error),
            )
        )]
        pub async fn $fn(
            state: web::Data<AppState>,
            Caller(who): Caller,
            ProjectHeader(project): ProjectHeader,
            id: web::Path<String>,
        ) -> Result<HttpResponse, ApiError> {
            power(state, who, project, &id, $action).await
        }
    };
}

power_route!(
    start,
    "/api/v1/vms/{id}/start",
    "startVM",
    PowerAction::Start,
    "Start accepted"
);
power_route!(
    stop,
    "/api/v1/vms/{id}/stop",
    "stopVM",
    PowerAction::Stop,
    "Stop accepted"
);
power_route!(
    reboot,
    "/api/v1/vms/{id}/reboot",
    "rebootVM",
    PowerAction::Reboot,
    "Reboot accepted"
);
power_route!(
    reboot_hard,
    "/api/v1/vms/{id}/reboot-hard",
    "hardRebootVM",
    PowerAction::RebootHard,
    "Reset accepted"
);

#[utoipa::path(
    patch, path = "/api/v1/vms/{id}/rename", tag = "Virtual Machines", operation_id = "renameVM",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    request_body = RenameVMRequest,
    responses(
        (status = 200, description = "Renamed", body = SuccessResponse),
        (status = 400, description = "Invalid name or X-Project-ID missing", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn rename(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<RenameVMRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let vm = state
        .services
        .rename_vm(&who, project.as_deref(), &id, &body.name)?;
    Ok(done(format!("VM renamed to {}", vm.name)))
}

#[utoipa::path(
    get, path = "/api/v1/vms/{id}/networks", tag = "Networking", operation_id = "listVMNetworks",
    params(("id" = uuid::Uuid, Path, description = "VM ID (UUID)"), NetworkQuery),
    responses(
        (status = 200, description = "The VM's network interfaces", body = VMNetworkList),
        (status = 400, description = "Unknown type", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn networks(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
    q: web::Query<NetworkQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let kind = q.kind.as_deref();
    if kind.is_some_and(|k| !["public", "vpc", "ipv6"].contains(&k)) {
        return Err(ApiError::bad_request("type must be public, vpc or ipv6"));
    }
    let s = &state.services;
    let vm = s.get_vm(&who, &id)?;
    let first_public = vm.nics.iter().find(|n| n.kind == "public").map(|n| n.id);
    // A floating address shows as a public row of its own, with the MAC of the VPC
    // NIC it reaches.
    let floating: Vec<VMNetwork> = s
        .floating_of_vm(&vm)?
        .into_iter()
        .filter_map(|f| {
            let t = f.attached?;
            let target = vm.nics.iter().find(|n| n.id == t.target_nic)?;
            Some(VMNetwork {
                is_primary: first_public.is_none(),
                nic_id: t.nic_id,
                network_name: "public".into(),
                vpc_id: None,
                ip: f.address,
                mac: target.mac.clone(),
                gateway: String::new(),
                kind: "public".into(),
                security_group_id: target.security_groups.first().copied(),
                security_group_ids: target.security_groups.clone(),
            })
        })
        .filter(|_| kind.is_none_or(|k| k == "public"))
        .collect();
    let vm6: Vec<(u64, String)> = vm
        .nics
        .iter()
        .filter_map(|n| n.ip6.clone().map(|a| (n.id, a)))
        .collect();
    let mut data: Vec<VMNetwork> = vm
        .nics
        .into_iter()
        .map(|n| VMNetwork {
            is_primary: Some(n.id) == first_public,
            nic_id: n.id,
            network_name: s.network_name(&n),
            vpc_id: n.vpc_id,
            ip: n.ip,
            mac: n.mac,
            gateway: n.gateway,
            kind: n.kind,
            security_group_id: n.security_groups.first().copied(),
            security_group_ids: n.security_groups,
        })
        .collect();
    // A public NIC's IPv6 address is a row of its own (the same NIC).
    let v6: Vec<VMNetwork> = data
        .iter()
        .filter(|n| n.kind == "public")
        .filter_map(|n| {
            let nic = vm6.iter().find(|(id, _)| *id == n.nic_id)?;
            Some(VMNetwork {
                ip: nic.1.clone(),
                kind: "ipv6".into(),
                gateway: s.gateway6().unwrap_or_default(),
                is_primary: false,
                ..n.clone()
            })
        })
        .collect();
    data.retain(|n| kind.is_none_or(|k| n.kind == k));
    data.extend(v6.into_iter().filter(|_| kind.is_none_or(|k| k == "ipv6")));
    data.extend(floating);
    Ok(HttpResponse::Ok().json(VMNetworkList {
        success: true,
        data,
    }))
}

/// The last 64 KiB of the serial console (skiff extension).
#[utoipa::path(
    get, path = "/api/skiff/v1/vms/{id}/console", tag = "Virtual Machines", operation_id = "skiffVMConsole",
    params(("id" = uuid::Uuid, Path, description = "VM ID (UUID)")),
    responses(
        (status = 200, description = "Serial console output", body = String, content_type = "text/plain"),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 503, description = "The log cannot be read", body = Error),
    )
)]
pub async fn console(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let text = state.services.vm_console(&who, &id, 64 * 1024)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}

fn resized(vm: &model::Vm, what: String) -> HttpResponse {
    HttpResponse::Ok().json(ResizeResponse {
        success: true,
        message: what,
        id: vm.id.to_string(),
    })
}

#[utoipa::path(
    post, path = "/api/v1/vms/{id}/resize", tag = "Virtual Machines", operation_id = "resizeVM",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    request_body = ResizeVMRequest,
    responses(
        (status = 200, description = "Resize accepted", body = ResizeResponse),
        (status = 400, description = "Unknown plan, VM running, or the disk would shrink", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 503, description = "VMs cannot run on this host now", body = Error),
    )
)]
pub async fn resize(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<ResizeVMRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let vm = state
        .services
        .resize_vm(&who, project.as_deref(), &id, body.pricing_id)?;
    let msg = format!(
        "VM {} resized to {} vCPU, {} GB RAM, {} GB disk",
        vm.name, vm.vcpus, vm.ram_gib, vm.storage_gib
    );
    Ok(resized(&vm, msg))
}

#[utoipa::path(
    post, path = "/api/v1/vms/{id}/disk/resize", tag = "Virtual Machines", operation_id = "resizeVMDisk",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    request_body = ResizeVMDiskRequest,
    responses(
        (status = 200, description = "Disk resize accepted", body = ResizeResponse),
        (status = 400, description = "Not larger than now, or the VM is running", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 503, description = "VMs cannot run on this host now", body = Error),
    )
)]
pub async fn resize_disk(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<ResizeVMDiskRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let vm = state
        .services
        .resize_vm_disk(&who, project.as_deref(), &id, body.new_size)?;
    let msg = format!("VM {} disk grows to {} GB", vm.name, vm.storage_gib);
    Ok(resized(&vm, msg))
}

#[utoipa::path(
    post, path = "/api/v1/vms/{id}/reset-password", tag = "Virtual Machines", operation_id = "resetVMPassword",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    responses(
        (status = 200, description = "The new password (shown once) and how it reaches the guest", body = SuccessResponse),
        (status = 400, description = "X-Project-ID missing, or the VM is being provisioned", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 503, description = "VMs cannot run on this host now", body = Error),
    )
)]
pub async fn reset_password(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let services = state.services.clone();
    // The guest-agent probe blocks for up to two seconds.
    let (password, now) =
        web::block(move || services.reset_vm_password(&who, project.as_deref(), &id))
            .await
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "worker pool gone"))??;
    let how = if now {
        "the guest agent applies it now"
    } else {
        "no guest agent answered, so it takes effect through the seed at the VM's next boot"
    };
    Ok(done(format!(
        "new root password: {password} (shown once; {how})"
    )))
}

#[utoipa::path(
    post, path = "/api/v1/vms/{id}/reinstall", tag = "Virtual Machines", operation_id = "reinstallVM",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    request_body = ReinstallVMRequest,
    responses(
        (status = 200, description = "Reinstall accepted; addresses are kept", body = SuccessResponse),
        (status = 400, description = "Invalid request", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 503, description = "VMs cannot run on this host now", body = Error),
    )
)]
pub async fn reinstall(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<ReinstallVMRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let b = body.into_inner();
    if b.auto_generate_password == Some(true) && b.password.is_some() {
        return Err(ApiError::bad_request(
            "give password or auto_generate_password, not both",
        ));
    }
    let generated = (b.auto_generate_password == Some(true)).then(crate::service::new_vm_password);
    let vm = state.services.reinstall_vm(
        &who,
        project.as_deref(),
        &id,
        Some(b.template_id),
        b.password.or(generated.clone()),
        b.ssh_keys,
    )?;
    let mut msg = format!(
        "VM {} is being reinstalled with {} {}",
        vm.name, vm.template_name, vm.template_version
    );
    if let Some(p) = generated {
        msg.push_str(&format!("; new root password: {p} (shown once)"));
    }
    Ok(done(msg))
}

#[utoipa::path(
    post, path = "/api/v1/vms/{id}/factory-reset", tag = "Virtual Machines", operation_id = "factoryResetVM",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    responses(
        (status = 200, description = "Factory reset accepted; addresses and credentials are kept", body = SuccessResponse),
        (status = 400, description = "X-Project-ID missing, or the VM is busy", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 503, description = "VMs cannot run on this host now", body = Error),
    )
)]
pub async fn factory_reset(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let vm = state
        .services
        .reinstall_vm(&who, project.as_deref(), &id, None, None, None)?;
    Ok(done(format!(
        "VM {} is being reset to {}",
        vm.name, vm.template_name
    )))
}

#[utoipa::path(
    delete, path = "/api/v1/vms/bulk", tag = "Virtual Machines", operation_id = "deleteVMsBulk",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "The VMs' project")),
    request_body = DeleteVMsBulkRequest,
    responses(
        (status = 200, description = "Per-VM results", body = BulkDeleteVMsResult),
        (status = 400, description = "X-Project-ID missing or 0 / more than 50 ids", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may delete no VM in this project", body = Error),
        (status = 404, description = "No such project", body = Error),
    )
)]
pub async fn delete_bulk(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    body: web::Json<DeleteVMsBulkRequest>,
) -> Result<HttpResponse, ApiError> {
    let (action, delete_vpc) = delete_options(body.volume_action.as_deref(), body.delete_vpc)?;
    let results: Vec<BulkDeleteVMItemResult> = state
        .services
        .delete_vms(&who, project.as_deref(), &body.ids, action, delete_vpc)?
        .into_iter()
        .map(|(id, r)| match r {
            Ok(vm) => BulkDeleteVMItemResult {
                id,
                success: true,
                message: format!("VM {} is being deleted", vm.name),
                error: None,
            },
            Err(e) => BulkDeleteVMItemResult {
                id,
                success: false,
                message: "not deleted".into(),
                error: Some(e.to_string()),
            },
        })
        .collect();
    let ok = results.iter().filter(|r| r.success).count();
    Ok(HttpResponse::Ok().json(BulkDeleteVMsResult {
        success: ok > 0,
        message: format!("{ok} of {} VMs are being deleted", results.len()),
        total_count: results.len(),
        success_count: ok,
        failed_count: results.len() - ok,
        results,
    }))
}

fn tags_response(list: Vec<model::VmTag>) -> HttpResponse {
    HttpResponse::Ok().json(VMTagsResponse {
        success: true,
        tags: tags(list),
    })
}

#[utoipa::path(
    post, path = "/api/v1/vms/{id}/tags", tag = "Virtual Machines", operation_id = "addVMTag",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    request_body = AddVMTagRequest,
    responses(
        (status = 200, description = "All tags of the VM", body = VMTagsResponse),
        (status = 400, description = "Invalid or duplicate tag", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn add_tag(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<AddVMTagRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let list =
        state
            .services
            .add_vm_tag(&who, project.as_deref(), &id, &body.name, body.priority)?;
    Ok(tags_response(list))
}

#[utoipa::path(
    patch, path = "/api/v1/vms/{id}/tags/{tagId}", tag = "Virtual Machines", operation_id = "updateVMTag",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("tagId" = uuid::Uuid, Path, description = "Tag ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    request_body = UpdateVMTagRequest,
    responses(
        (status = 200, description = "All tags of the VM", body = VMTagsResponse),
        (status = 400, description = "Invalid change", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn update_tag(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    path: web::Path<(String, String)>,
    body: web::Json<UpdateVMTagRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&path.0, "VM")?;
    let tag = path_uuid(&path.1, "tag")?;
    let list = state.services.update_vm_tag(
        &who,
        project.as_deref(),
        &id,
        &tag,
        body.name.as_deref(),
        body.priority,
    )?;
    Ok(tags_response(list))
}

#[utoipa::path(
    delete, path = "/api/v1/vms/{id}/tags/{tagId}", tag = "Virtual Machines", operation_id = "removeVMTag",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("tagId" = uuid::Uuid, Path, description = "Tag ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    responses(
        (status = 200, description = "The remaining tags", body = VMTagsResponse),
        (status = 400, description = "X-Project-ID missing", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn remove_tag(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&path.0, "VM")?;
    let tag = path_uuid(&path.1, "tag")?;
    let list = state
        .services
        .remove_vm_tag(&who, project.as_deref(), &id, &tag)?;
    Ok(tags_response(list))
}

#[utoipa::path(
    get, path = "/api/v1/vms/{id}/notes", tag = "Virtual Machines", operation_id = "getVMNotes",
    params(("id" = uuid::Uuid, Path, description = "VM ID (UUID)"), NoteQuery),
    responses(
        (status = 200, description = "The caller's personal note and the account note", body = VMNotesResponse),
        (status = 400, description = "Unknown type", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn notes(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
    q: web::Query<NoteQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let kind = q.kind.as_deref();
    if kind.is_some_and(|k| k != "personal" && k != "account") {
        return Err(ApiError::bad_request("type must be personal or account"));
    }
    let (personal, account) = state.services.vm_notes(&who, &id)?;
    Ok(HttpResponse::Ok().json(VMNotesResponse {
        success: true,
        personal_note: personal.filter(|_| kind != Some("account")).map(note),
        account_note: account.filter(|_| kind != Some("personal")).map(note),
    }))
}

async fn write_note(
    state: web::Data<AppState>,
    who: crate::service::Principal,
    project: Option<String>,
    path: &(String, String),
    content: &str,
    how: crate::service::NoteWrite,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&path.0, "VM")?;
    let n = state
        .services
        .write_vm_note(&who, project.as_deref(), &id, &path.1, content, how)?;
    Ok(HttpResponse::Ok().json(VMNoteResponse {
        success: true,
        note: note(n),
    }))
}

macro_rules! note_route {
    ($fn:ident, $method:ident, $path:literal, $op:literal, $how:expr, $desc:literal) => {
        #[utoipa::path(
                    $method, path = $path, tag = "Virtual Machines", operation_id = $op,
                    params(
                        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
                        ("type" = String, Path, description = "`personal` or `account`"),
                        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
                    ),
                    request_body = UpsertVMNoteRequest,
                    responses(
                        (status = 200, description = $desc, body = VMNoteResponse),
                        (status = 400, description = "Invalid request", body = Error),
                        (status = 401, description = "Authentication required", body = Error),
                        (status = 403, description = "No permission in the project", body = Error),
                        (status = 404, description = "Resource not found", body = Error),
                    )
                )]
        pub async fn $fn(
            state: web::Data<AppState>,
            Caller(who): Caller,
            ProjectHeader(project): ProjectHeader,
            path: web::Path<(String, String)>,
            body: web::Json<UpsertVMNoteRequest>,
        ) -> Result<HttpResponse, ApiError> {
            write_note(state, who, project, &path, &body.content, $how).await
        }
    };
}

note_route!(
    put_note,
    put,
    "/api/v1/vms/{id}/notes/{type}",
    "upsertVMNote",
    crate::service::NoteWrite::Put,
    "The note, created or replaced"
);
note_route!(
    patch_note,
    patch,
    "/api/v1/vms/{id}/notes/{type}",
    "updateVMNote",
    crate::service::NoteWrite::Patch,
    "The note, replaced"
);
note_route!(
    append_note,
    post,
    "/api/v1/vms/{id}/notes/{type}/append",
    "appendVMNote",
    crate::service::NoteWrite::Append,
    "The note with a line added"
);

#[utoipa::path(
    post, path = "/api/v1/vms/{id}/save-image", tag = "Virtual Machines", operation_id = "saveVMDiskAsImage",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    request_body = SaveImageRequest,
    responses(
        (status = 201, description = "The new image, `saving` until job `image.save` has copied the disk; its id is then a template_id", body = VMImageResponse),
        (status = 400, description = "Invalid request, or the VM is running", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn save_image(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<SaveImageRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "VM")?;
    let b = body.into_inner();
    let t = state.services.save_vm_image(
        &who,
        project.as_deref(),
        &id,
        crate::service::SaveImage {
            name: b.name,
            description: b.description,
            disk_id: b.disk_id,
            snapshot_id: b.snapshot_id,
        },
    )?;
    Ok(
        HttpResponse::build(StatusCode::CREATED).json(VMImageResponse {
            success: true,
            data: super::images::dto(t),
        }),
    )
}
