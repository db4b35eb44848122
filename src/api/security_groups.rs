//! `/api/v1/security-groups` and attaching groups to VM NICs.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::extract::{optional_uuid, path_uuid, Caller, ProjectHeader};
use super::types::{self, *};
use super::vms::done;
use super::AppState;
use crate::model::{self, SgDirection, SgProtocol, SgRemote};
use crate::service::{
    raff_rule, sg_templates, GroupWrite, RaffRule, RuleCounter, ServiceError, Services,
};

/// Runs a service call that blocks (writes BPF maps, waits on a lock) on the blocking
/// pool, not on an HTTP worker.
pub(super) async fn off_worker<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// A rule in the contract's shape.
fn rule_dto(r: &model::SgRule, counters: Option<&HashMap<u64, RuleCounter>>) -> SecurityGroupRule {
    let protocol = match r.protocol {
        SgProtocol::Tcp => "TCP".to_string(),
        SgProtocol::Udp => "UDP".into(),
        SgProtocol::Icmp => "ICMP".into(),
        SgProtocol::Icmpv6 => "ICMPV6".into(),
        SgProtocol::Ipsec => "IPSEC".into(),
        SgProtocol::All => "ALL".into(),
        SgProtocol::Number(n) => n.to_string(),
    };
    let range = match r.ports {
        None => String::new(),
        Some((a, b)) if a == b => a.to_string(),
        Some((a, b)) => format!("{a}:{b}"),
    };
    let (ip, size, remote_group_id) = match &r.remote {
        SgRemote::Any => (String::new(), None, None),
        SgRemote::Cidr { addr, len } => (addr.clone(), Some(i64::from(*len)), None),
        SgRemote::Group(g) => (String::new(), None, Some(*g)),
    };
    let c = counters.map(|c| c.get(&r.id).copied().unwrap_or_default());
    SecurityGroupRule {
        protocol,
        rule_type: match r.direction {
            SgDirection::Inbound => "INBOUND".into(),
            SgDirection::Outbound => "OUTBOUND".into(),
        },
        range: Some(range),
        ip: Some(ip),
        size,
        icmp_type: r.icmp_type.map(i64::from),
        remote_group_id,
        id: (r.id != 0).then_some(r.id),
        packets: c.map(|c| c.packets),
        bytes: c.map(|c| c.bytes),
    }
}

fn dto(
    g: model::SecurityGroup,
    vm_count: usize,
    counters: &HashMap<u64, RuleCounter>,
) -> types::SecurityGroup {
    types::SecurityGroup {
        vm_count,
        id: g.id,
        name: g.name,
        description: g.description,
        rules: g
            .rules
            .iter()
            .map(|r| rule_dto(r, Some(counters)))
            .collect(),
        project_id: g.project_id,
        created_at: g.created_at,
        updated_at: g.updated_at,
    }
}

/// Parses the contract's rules; an error names the rule.
fn parse_rules(
    rules: Option<Vec<SecurityGroupRule>>,
) -> Result<Option<Vec<model::SgRule>>, ApiError> {
    let Some(rules) = rules else { return Ok(None) };
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            raff_rule(&RaffRule {
                protocol: r.protocol.clone(),
                rule_type: r.rule_type.clone(),
                range: r.range.clone(),
                ip: r.ip.clone(),
                size: r.size,
                icmp_type: r.icmp_type,
                remote_group_id: r.remote_group_id,
            })
            .map_err(|e| match e {
                ServiceError::Invalid(m) => ApiError::bad_request(format!("rules[{i}]: {m}")),
                other => other.into(),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn one(
    s: &Services,
    status: StatusCode,
    g: model::SecurityGroup,
) -> Result<HttpResponse, ApiError> {
    let uses = s.security_group_uses(std::slice::from_ref(&g))?;
    let vm_count = uses.get(&g.id).copied().unwrap_or_default();
    Ok(HttpResponse::build(status).json(SecurityGroupResponse {
        success: true,
        data: dto(g, vm_count, &s.security_group_counters()),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/security-groups", tag = "Networking", operation_id = "listSecurityGroups",
    params(("X-Project-ID" = Option<uuid::Uuid>, Header, description = "Limit to one project")),
    responses(
        (status = 200, description = "List of security groups", body = SecurityGroupList),
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
    let groups = s.list_security_groups(&who, project.as_ref())?;
    // Use counts and counters are read once for the whole list.
    let uses = s.security_group_uses(&groups)?;
    let counters = s.security_group_counters();
    let data = groups
        .into_iter()
        .map(|g| {
            let n = uses.get(&g.id).copied().unwrap_or_default();
            dto(g, n, &counters)
        })
        .collect();
    Ok(HttpResponse::Ok().json(SecurityGroupList {
        success: true,
        data,
    }))
}

#[utoipa::path(
    post, path = "/api/v1/security-groups", tag = "Networking", operation_id = "createSecurityGroup",
    params(("X-Project-ID" = uuid::Uuid, Header, description = "The group's project")),
    request_body = CreateSecurityGroupRequest,
    responses(
        (status = 201, description = "Security group created", body = SecurityGroupResponse),
        (status = 400, description = "Invalid name, template or rule", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "No such project", body = Error),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    body: web::Json<CreateSecurityGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let s = &state.services;
    let g = s.create_security_group(
        &who,
        project.as_deref(),
        GroupWrite {
            name: Some(b.name),
            description: b.description,
            template_id: b.template_id,
            rules: parse_rules(b.rules)?,
        },
    )?;
    one(s, StatusCode::CREATED, g)
}

#[utoipa::path(
    get, path = "/api/v1/security-groups/templates", tag = "Networking",
    operation_id = "listSecurityGroupTemplates",
    responses(
        (status = 200, description = "List of templates", body = SecurityGroupTemplateList),
        (status = 401, description = "Authentication required", body = Error),
    )
)]
pub async fn templates(Caller(_who): Caller) -> Result<HttpResponse, ApiError> {
    let data = sg_templates()
        .into_iter()
        .map(|t| SecurityGroupTemplate {
            id: t.id.into(),
            name: t.name.into(),
            description: t.description.into(),
            rules: t.rules.iter().map(|r| rule_dto(r, None)).collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(SecurityGroupTemplateList {
        success: true,
        data,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/security-groups/{id}", tag = "Networking", operation_id = "getSecurityGroup",
    params(
        ("id" = uuid::Uuid, Path, description = "Security group ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The group's project"),
    ),
    responses(
        (status = 200, description = "Security group details", body = SecurityGroupResponse),
        (status = 400, description = "Missing or malformed X-Project-ID", body = Error),
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
    let id = path_uuid(&id, "Security group")?;
    let s = &state.services;
    let g = s.get_security_group(&who, &id)?;
    s.header_names(
        &who,
        project.as_deref(),
        &g.project_id,
        "security_group.view",
        "Security group",
    )?;
    one(s, StatusCode::OK, g)
}

#[utoipa::path(
    put, path = "/api/v1/security-groups/{id}", tag = "Networking", operation_id = "updateSecurityGroup",
    params(
        ("id" = uuid::Uuid, Path, description = "Security group ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The group's project"),
    ),
    request_body = UpdateSecurityGroupRequest,
    responses(
        (status = 200, description = "Security group updated", body = SecurityGroupResponse),
        (status = 400, description = "Invalid name or rule, or X-Project-ID not a UUID", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<UpdateSecurityGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "Security group")?;
    let b = body.into_inner();
    let s = state.services.clone();
    let rules = parse_rules(b.rules)?;
    let g = off_worker(move || {
        s.update_security_group(
            &who,
            project.as_deref(),
            &id,
            GroupWrite {
                name: b.name,
                description: b.description,
                template_id: None,
                rules,
            },
        )
    })
    .await?;
    one(&state.services, StatusCode::OK, g)
}

#[utoipa::path(
    delete, path = "/api/v1/security-groups/{id}", tag = "Networking", operation_id = "deleteSecurityGroup",
    params(
        ("id" = uuid::Uuid, Path, description = "Security group ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The group's project"),
    ),
    responses(
        (status = 200, description = "Security group deleted", body = SuccessResponse),
        (status = 400, description = "X-Project-ID is not a UUID", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "Resource not found", body = Error),
        (status = 409, description = "Still attached to a NIC, or named by another group's rules", body = Error),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "Security group")?;
    let g = state
        .services
        .delete_security_group(&who, project.as_deref(), &id)?;
    Ok(done(format!("Security group {} deleted", g.id)))
}

#[utoipa::path(
    post, path = "/api/v1/vms/{id}/security-groups", tag = "Networking",
    operation_id = "attachVMSecurityGroup",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    request_body = AttachSecurityGroupRequest,
    responses(
        (status = 200, description = "Security group attached", body = SuccessResponse),
        (status = 400, description = "Invalid request", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "No such VM, NIC or group", body = Error),
        (status = 503, description = "The firewall does not run on this host", body = Error),
    )
)]
pub async fn attach(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    id: web::Path<String>,
    body: web::Json<AttachSecurityGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let vm = path_uuid(&id, "VM")?;
    let b = body.into_inner();
    let s = state.services.clone();
    // No NIC has a negative id, nor u64::MAX: both end as "NIC not found".
    let nic = u64::try_from(b.nic_id).unwrap_or(u64::MAX);
    off_worker(move || {
        s.set_security_group_attachment(
            &who,
            project.as_deref(),
            &vm,
            &b.security_group_id,
            nic,
            true,
        )
    })
    .await?;
    Ok(done(format!(
        "Security group {} attached to NIC {}",
        b.security_group_id, b.nic_id
    )))
}

#[utoipa::path(
    delete, path = "/api/v1/vms/{id}/security-groups/{sg_id}/{nic_id}", tag = "Networking",
    operation_id = "detachVMSecurityGroup",
    params(
        ("id" = uuid::Uuid, Path, description = "VM ID (UUID)"),
        ("sg_id" = uuid::Uuid, Path, description = "Security group ID (UUID)"),
        ("nic_id" = u64, Path, description = "NIC ID"),
        ("X-Project-ID" = uuid::Uuid, Header, description = "The VM's project"),
    ),
    responses(
        (status = 200, description = "Security group detached", body = SuccessResponse),
        (status = 400, description = "X-Project-ID missing", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "No permission in the project", body = Error),
        (status = 404, description = "No such VM, NIC or attachment", body = Error),
    )
)]
pub async fn detach(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ProjectHeader(project): ProjectHeader,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, sg, nic) = path.into_inner();
    let vm = path_uuid(&id, "VM")?;
    let sg = path_uuid(&sg, "Security group")?;
    let nic: u64 = nic
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "NIC not found"))?;
    let s = state.services.clone();
    off_worker(move || {
        s.set_security_group_attachment(&who, project.as_deref(), &vm, &sg, nic, false)
    })
    .await?;
    Ok(done(format!("Security group {sg} detached from NIC {nic}")))
}
