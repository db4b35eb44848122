//! `/api/v1/vpcs`. Create and delete answer once the host has made or removed the
//! VPC's bridge and router (their jobs take a few tens of milliseconds), so the VPC in
//! the answer is `active`, or the delete is done.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{optional_uuid, path_uuid, vm_nic, Caller, ProjectHeader};
use super::security_groups::off_worker;
use super::types::{self, *};
use super::volumes::wait_for_job;
use super::AppState;
use crate::model;
use crate::network::Cidr;
use crate::service::{host_range, total_ips, NewVpc, Services};

pub(crate) fn dto(s: &Services, v: model::Vpc) -> Result<types::Vpc, ApiError> {
    let used = s.vpc_used_ips(&v)? as u64;
    let total = Cidr::parse(&v.cidr).map(|c| total_ips(&c)).unwrap_or(0);
    Ok(types::Vpc {
        id: v.id,
        account_id: v.account_id,
        project_id: v.project_id,
        name: v.name,
        description: v.description,
        cidr: v.cidr,
        gateway: v.gateway,
        status: v.status.as_str().into(),
        total_ips: total,
        used_ips: used,
        region: v.region,
        gateway_type: "none".into(),
        error: v.error,
        created_at: v.created_at,
        updated_at: v.updated_at,
    })
}

fn vpc_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw.trim())
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "VPC not found"))
}

#[utoipa::path(
    get, path = "/api/v1/vpcs", tag = "Networking", operation_id = "listVPCs",
    params(("X-Project-ID" = Option<uuid::Uuid>, Header, description = "Only this project's; every accessible project when omitted")),
    responses(
        (status = 200, description = "List of VPCs", body = VpcList),
        (status = 400, description = "X-Project-ID is not a UUID", body = Error),
        (status = 401, description = "Authentication required", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
) -> Result<HttpResponse, ApiError> {
    let s = &state.services;
    let project = optional_uuid(project.as_deref(), "X-Project-ID")?;
    let data = s
        .list_vpcs(&who, project.as_ref())?
        .into_iter()
        .map(|v| dto(s, v))
        .collect::<Result<_, _>>()?;
    Ok(HttpResponse::Ok().json(VpcList {
        success: true,
        data,
    }))
}

#[utoipa::path(
    post, path = "/api/v1/vpcs", tag = "Networking", operation_id = "createVPC",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "The VPC's project")),
    request_body = CreateVpcRequest,
    responses(
        (status = 201, description = "VPC created", body = VpcResponse),
        (status = 400, description = "Invalid name, CIDR or region; the CIDR overlaps another VPC of the account", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 402, description = "The vpcs quota would be exceeded", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "No such project", body = Error),
        (status = 409, description = "The host could not make the VPC", body = Error),
        (status = 503, description = "VPCs cannot be made on this host now", body = Error),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    body: web::Json<CreateVpcRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let s = state.services.clone();
    let caller = who.clone();
    let (v, job) = off_worker(move || {
        s.create_vpc(
            &who,
            project.as_deref(),
            NewVpc {
                name: b.name,
                cidr: b.cidr,
                region: b.region,
            },
        )
    })
    .await?;
    let s = &state.services;
    wait_for_job(s, &caller, job).await?;
    let v = s.vpc_after(&v.id)?.unwrap_or(v);
    Ok(HttpResponse::Created().json(VpcResponse {
        success: true,
        data: dto(s, v)?,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/vpcs/cidr-suggestions", tag = "Networking",
    operation_id = "listVPCCIDRSuggestions",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "A project of the caller's; the suggestions cover the whole account")),
    responses(
        (status = 200, description = "CIDR suggestions", body = CidrSuggestionsResponse),
        (status = 400, description = "X-Project-ID missing or not a UUID", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission to view VPCs", body = Error),
        (status = 404, description = "No such project", body = Error),
    )
)]
pub async fn cidr_suggestions(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
) -> Result<HttpResponse, ApiError> {
    let r = state
        .services
        .vpc_cidr_suggestions(&who, project.as_deref())?;
    let usable = |c: &Cidr| {
        let (a, b) = host_range(c);
        u64::from(u32::from(b) - u32::from(a) + 1)
    };
    Ok(HttpResponse::Ok().json(CidrSuggestionsResponse {
        success: true,
        suggested: r.suggested.map(|c| c.to_string()),
        suggested_ips: r.suggested.as_ref().map(usable),
        alternatives: r
            .alternatives
            .iter()
            .map(|(c, size)| CidrSuggestion {
                cidr: c.to_string(),
                available_ips: usable(c),
                size: (*size).into(),
            })
            .collect(),
        existing_count: r.existing,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/vpcs/{id}", tag = "Networking", operation_id = "getVPC",
    params(
        ("id" = uuid::Uuid, Path, description = "VPC ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VPC's project"),
    ),
    responses(
        (status = 200, description = "VPC details", body = VpcDetailResponse),
        (status = 400, description = "X-Project-ID missing or not a UUID", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.services;
    let d = s.get_vpc(&who, project.as_deref(), &vpc_id(&id)?)?;
    let (start, end) = Cidr::parse(&d.vpc.cidr)
        .map(|c| host_range(&c))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(VpcDetailResponse {
        success: true,
        data: types::VpcDetail {
            vpc: dto(s, d.vpc)?,
            ip_range_start: start,
            ip_range_end: end,
            leases: d
                .leases
                .into_iter()
                .map(|l| VpcLease {
                    ip: l.ip,
                    nic_id: l.nic_id,
                })
                .collect(),
        },
    }))
}

#[utoipa::path(
    put, path = "/api/v1/vpcs/{id}", tag = "Networking", operation_id = "updateVPC",
    params(
        ("id" = uuid::Uuid, Path, description = "VPC ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VPC's project"),
    ),
    request_body = UpdateVpcRequest,
    responses(
        (status = 200, description = "VPC updated", body = VpcResponse),
        (status = 400, description = "Nothing to change, an invalid name, or X-Project-ID missing", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<UpdateVpcRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = vpc_id(&id)?;
    let b = body.into_inner();
    let s = state.services.clone();
    let v = off_worker(move || s.update_vpc(&who, project.as_deref(), &id, b.name, b.description))
        .await?;
    Ok(HttpResponse::Ok().json(VpcResponse {
        success: true,
        data: dto(&state.services, v)?,
    }))
}

#[utoipa::path(
    delete, path = "/api/v1/vpcs/{id}", tag = "Networking", operation_id = "deleteVPC",
    params(
        ("id" = uuid::Uuid, Path, description = "VPC ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VPC's project"),
    ),
    responses(
        (status = 200, description = "VPC deleted", body = SuccessResponse),
        (status = 400, description = "NICs are attached to it, or X-Project-ID missing", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "Another change of the VPC is under way, or the host could not remove it", body = Error),
        (status = 503, description = "VPCs cannot be changed on this host now", body = Error),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = vpc_id(&id)?;
    let s = state.services.clone();
    let caller = who.clone();
    let (v, job) = off_worker(move || s.delete_vpc(&who, project.as_deref(), &id)).await?;
    wait_for_job(&state.services, &caller, job).await?;
    Ok(super::vms::done(format!("VPC {} deleted", v.name)))
}

#[utoipa::path(
    post, path = "/api/v1/vms/{id}/vpc", tag = "Networking", operation_id = "attachVMToVPC",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    request_body = AttachVpcRequest,
    responses(
        (status = 200, description = "The VM has a NIC in the VPC (a running guest gets its address by DHCP)", body = SuccessResponse),
        (status = 400, description = "No such VPC in the project, in it already, an address not free, too many NICs, or the VM is busy", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "Another NIC change is under way, or the host could not plug the NIC in", body = Error),
        (status = 503, description = "VMs cannot run on this host now", body = Error),
    )
)]
pub async fn attach_vm(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<AttachVpcRequest>,
) -> Result<HttpResponse, ApiError> {
    let vm = path_uuid(&id, "VM")?;
    let b = body.into_inner();
    let s = state.services.clone();
    let caller = who.clone();
    let job =
        off_worker(move || s.attach_vpc(&who, project.as_deref(), &vm, &b.vpc_id, b.ip.as_deref()))
            .await?;
    wait_for_job(&state.services, &caller, job).await?;
    Ok(super::vms::done("the VM is attached to the VPC".into()))
}

#[utoipa::path(
    delete, path = "/api/v1/vms/{id}/vpc/{nic_id}", tag = "Networking", operation_id = "detachVMFromVPC",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("nic_id" = u64, Path, description = "The NIC, from GET /api/v1/vms/{id}/networks"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    responses(
        (status = 200, description = "The NIC is gone", body = SuccessResponse),
        (status = 400, description = "X-Project-ID missing, a public NIC, the VM's last NIC, or the VM is busy", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "Another NIC change is under way, or the guest did not let go", body = Error),
        (status = 503, description = "VMs cannot run on this host now", body = Error),
    )
)]
pub async fn detach_vm(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (vm, nic) = vm_nic(path.into_inner())?;
    let s = state.services.clone();
    let caller = who.clone();
    let job = off_worker(move || s.detach_vpc(&who, project.as_deref(), &vm, nic)).await?;
    wait_for_job(&state.services, &caller, job).await?;
    Ok(super::vms::done(format!("NIC {nic} is detached")))
}
