//! `/api/v1/vms`: the VM lifecycle.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{page, path_uuid, Caller, ProjectHeader};
use super::types::{self, *};
use super::AppState;
use crate::model::{self, VmStatus};
use crate::service::{NewVm, PowerAction};

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
        tags: v
            .tags
            .into_iter()
            .map(|t| VMTag {
                id: t.clone(),
                name: t,
                priority: 0,
            })
            .collect(),
        active: v.status == VmStatus::Active,
        created_by: v.created_by.map(|u| u.to_string()),
        created_at: v.created_at,
        updated_at: v.updated_at,
    }
}

fn done(message: String) -> HttpResponse {
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
    let wants_vpc = b.vpc_id.is_some() || b.vpc_name.is_some() || b.vpc_cidr.is_some();
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
            backup_type: b.backup_type,
            tags: b.tags,
            wants_vpc,
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
    if let Some(a) = body.as_ref().and_then(|b| b.volume_action.as_deref()) {
        if a != "detach" && a != "delete" {
            return Err(ApiError::bad_request(
                "volume_action must be detach or delete",
            ));
        }
    }
    let vm = state.services.delete_vm(&who, project.as_deref(), &id)?;
    Ok(done(format!("VM {} is being deleted", vm.name)))
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
    let vm = state.services.get_vm(&who, &id)?;
    let first_public = vm.nics.iter().find(|n| n.kind == "public").map(|n| n.id);
    let data = vm
        .nics
        .into_iter()
        .filter(|n| kind.is_none_or(|k| n.kind == k))
        .map(|n| VMNetwork {
            is_primary: Some(n.id) == first_public,
            nic_id: n.id,
            network_name: n.network_name,
            ip: n.ip,
            mac: n.mac,
            gateway: n.gateway,
            kind: n.kind,
        })
        .collect();
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
