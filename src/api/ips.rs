//! `/api/v1/ips` and a VM's floating addresses (`/api/v1/vms/{id}/ip`). Every change
//! is in the kernel (the router's NAT, the host's route) before the answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{optional_uuid, page, path_uuid, vm_nic, Caller, ProjectHeader};
use super::security_groups::off_worker;
use super::types::{self, *};
use super::AppState;
use crate::model;
use crate::service::{IpFilter, Services};

pub(crate) fn dto(s: &Services, f: model::FloatingIp) -> types::FloatingIp {
    types::FloatingIp {
        id: f.id,
        account_id: f.account_id,
        project_id: f.project_id,
        created_by: f.created_by,
        ip_address: f.address,
        kind: "IPv4".into(),
        status: if f.attached.is_some() {
            "in-use"
        } else {
            "free"
        }
        .into(),
        reserved: f.reserved,
        region: f.region,
        price_per_hour: s.ip_price(),
        vm_id: f.attached.as_ref().map(|t| t.vm_id),
        nic_id: f.attached.as_ref().map(|t| t.nic_id),
        created_at: f.created_at,
        updated_at: f.updated_at,
    }
}

fn ip_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw.trim())
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "IP not found"))
}

#[utoipa::path(
    get, path = "/api/v1/ips", tag = "Networking", operation_id = "listIPs",
    params(
        ("X-Project-ID" = Option<uuid::Uuid>, Header, description = "Only this project's; every accessible project when omitted"),
        IpQuery,
    ),
    responses(
        (status = 200, description = "List of floating IPs", body = FloatingIpList),
        (status = 400, description = "Malformed filter", body = Error),
        (status = 401, description = "Authentication required", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    q: web::Query<IpQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 20)?;
    let project = optional_uuid(project.as_deref(), "X-Project-ID")?;
    let reserved = match q.reserved.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::bad_request("reserved must be true or false")),
    };
    let in_use = match q.status.as_deref() {
        None => None,
        Some("free") => Some(false),
        Some("in-use") => Some(true),
        Some(_) => return Err(ApiError::bad_request("status must be free or in-use")),
    };
    let s = &state.services;
    let r = s.list_ips(&who, project.as_ref(), IpFilter { reserved, in_use }, page)?;
    Ok(HttpResponse::Ok().json(FloatingIpList {
        success: true,
        total: r.total,
        data: r.items.into_iter().map(|f| dto(s, f)).collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/ips/reserve", tag = "Networking", operation_id = "reserveIP",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "The IP's project")),
    request_body(content = ReserveIpRequest, description = "Optional"),
    responses(
        (status = 201, description = "IP reserved", body = FloatingIpResponse),
        (status = 400, description = "IPv6, an unknown region or billing period", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 402, description = "The public_ips quota would be exceeded", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "No such project", body = Error),
        (status = 409, description = "The pool is exhausted", body = Error),
        (status = 503, description = "No floating addresses on this host", body = Error),
    )
)]
pub async fn reserve(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    body: Option<web::Json<ReserveIpRequest>>,
) -> Result<HttpResponse, ApiError> {
    let b = body.map(|b| b.into_inner()).unwrap_or_default();
    let s = state.services.clone();
    let f = off_worker(move || {
        s.reserve_ip(
            &who,
            project.as_deref(),
            b.kind.as_deref(),
            b.region,
            b.billing_period.as_deref(),
        )
    })
    .await?;
    Ok(HttpResponse::Created().json(FloatingIpResponse {
        success: true,
        data: dto(&state.services, f),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/ips/{id}", tag = "Networking", operation_id = "getIP",
    params(("id" = uuid::Uuid, Path, description = "IP ID")),
    responses(
        (status = 200, description = "IP details", body = FloatingIpResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.services;
    let f = s.get_ip(&who, &ip_id(&id)?)?;
    Ok(HttpResponse::Ok().json(FloatingIpResponse {
        success: true,
        data: dto(s, f),
    }))
}

#[utoipa::path(
    delete, path = "/api/v1/ips/{id}/reserve", tag = "Networking", operation_id = "releaseIP",
    params(
        ("id" = uuid::Uuid, Path, description = "IP ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The IP's project"),
    ),
    responses(
        (status = 200, description = "IP released", body = SuccessResponse),
        (status = 400, description = "Attached to a VM, or X-Project-ID missing", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn release(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ip_id(&id)?;
    let s = state.services.clone();
    let f = off_worker(move || s.release_ip(&who, project.as_deref(), &id)).await?;
    Ok(super::vms::done(format!("IP {} released", f.address)))
}

#[utoipa::path(
    post, path = "/api/v1/ips/{id}/change", tag = "Networking", operation_id = "changeIP",
    params(
        ("id" = uuid::Uuid, Path, description = "IP ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The IP's project"),
    ),
    responses(
        (status = 200, description = "IP changed", body = ChangeIpResponse),
        (status = 400, description = "Attached, not reserved, or X-Project-ID missing", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "The pool is exhausted", body = Error),
    )
)]
pub async fn change(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ip_id(&id)?;
    let s = state.services.clone();
    let (old, new) = off_worker(move || s.change_ip(&who, project.as_deref(), &id)).await?;
    let s = &state.services;
    Ok(HttpResponse::Ok().json(ChangeIpResponse {
        success: true,
        old_ip: dto(s, old),
        new_ip: dto(s, new),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/vms/{id}/ip", tag = "Networking", operation_id = "attachVMIP",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    request_body = AttachIpRequest,
    responses(
        (status = 200, description = "IP attached", body = AttachIpResponse),
        (status = 400, description = "The VM has a public IPv4 or no VPC NIC, or the IP is not free in this project", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 402, description = "The public_ips quota would be exceeded", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "The pool is exhausted, or the host could not apply it", body = Error),
        (status = 503, description = "No floating addresses on this host", body = Error),
    )
)]
pub async fn attach(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<AttachIpRequest>,
) -> Result<HttpResponse, ApiError> {
    let vm = path_uuid(&id, "VM")?;
    let b = body.into_inner();
    let s = state.services.clone();
    let a =
        off_worker(move || s.attach_ip(&who, project.as_deref(), &vm, b.ip_id, b.kind.as_deref()))
            .await?;
    Ok(HttpResponse::Ok().json(AttachIpResponse {
        success: true,
        message: format!("IP {} attached", a.ip.address),
        data: AttachIpData {
            vm_id: vm,
            ip_address: a.ip.address,
            nic_id: a.nic_id,
            mac: a.mac,
        },
    }))
}

#[utoipa::path(
    delete, path = "/api/v1/vms/{id}/ip/{nic_id}", tag = "Networking", operation_id = "detachVMIP",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("nic_id" = u64, Path, description = "The attachment's nic_id"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    responses(
        (status = 200, description = "IP detached", body = SuccessResponse),
        (status = 400, description = "X-Project-ID missing, or a NIC of the VM's own", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "The host could not apply it", body = Error),
    )
)]
pub async fn detach(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (vm, nic) = vm_nic(path.into_inner())?;
    let s = state.services.clone();
    let f = off_worker(move || s.detach_ip(&who, project.as_deref(), &vm, nic)).await?;
    Ok(super::vms::done(format!("IP {} detached", f.address)))
}
