//! `/api/v1/members`, `/api/v1/projects/{id}/members` and `/api/v1/invitations`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{page, path_uuid, Caller};
use super::types::*;
use super::AppState;
use crate::model::MemberStatus;
use crate::service::{InvitationView, MemberChange, MemberView, NewMember};

/// The accept link for `token`, on the address the inviter called.
fn accept_url(req: &HttpRequest, token: &str) -> String {
    let ci = req.connection_info();
    format!("{}://{}/ui/invite/{token}", ci.scheme(), ci.host())
}

fn member_dto(v: MemberView, url: Option<String>) -> Member {
    let m = v.member;
    Member {
        id: m.id,
        account_id: m.account_id,
        user_id: m.user_id,
        email: m.email,
        role: v.role_slug,
        role_id: m.role_id,
        role_name: v.role_name,
        status: m.status.as_str().into(),
        invited_by: m.invited_by,
        invited_at: m.invited_at,
        accepted_at: m.accepted_at,
        invitation_id: m.invitation.as_ref().map(|i| i.id),
        invitation_expires_at: m.invitation.as_ref().map(|i| i.expires_at),
        created_at: m.created_at,
        updated_at: m.updated_at,
        invitation_url: url,
    }
}

fn project_member_dto(v: MemberView) -> ProjectMember {
    let m = v.member;
    ProjectMember {
        id: m.id,
        project_id: m.project_id.unwrap_or_default(),
        user_id: m.user_id,
        email: m.email,
        role: v.role_slug,
        role_id: m.role_id,
        role_name: v.role_name,
        status: m.status.as_str().into(),
        invited_by: m.invited_by,
        invited_at: m.invited_at,
        accepted_at: m.accepted_at,
        invitation_id: m.invitation.as_ref().map(|i| i.id),
        invitation_expires_at: m.invitation.as_ref().map(|i| i.expires_at),
        created_at: m.created_at,
        api_key_id: v.api_key_id,
    }
}

fn invitation_dto(v: InvitationView, url: String) -> Invitation {
    let m = &v.member.member;
    Invitation {
        id: m.invitation.as_ref().map(|i| i.id).unwrap_or_default(),
        kind: if m.project_id.is_some() {
            "project"
        } else {
            "account"
        }
        .into(),
        account_id: m.account_id,
        account_name: v.account_name,
        project_id: m.project_id,
        project_name: v.project_name,
        email: m.email.clone(),
        role_id: m.role_id,
        role_name: v.member.role_name.clone(),
        invited_by_id: m.invited_by,
        // A user name that is no address (`admin`) is not shown as one.
        invited_by_email: v.invited_by_email.filter(|e| e.contains('@')),
        expires_at: m.invitation.as_ref().map_or(m.created_at, |i| i.expires_at),
        created_at: m.created_at,
        invitation_url: url,
    }
}

fn status_param(raw: Option<&str>) -> Result<Option<MemberStatus>, ApiError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some("pending") => Ok(Some(MemberStatus::Pending)),
        Some("active") => Ok(Some(MemberStatus::Active)),
        Some("suspended") => Ok(Some(MemberStatus::Suspended)),
        Some(_) => Err(ApiError::bad_request(
            "status must be pending, active or suspended",
        )),
    }
}

fn change(b: UpdateMemberRequest) -> Result<MemberChange, ApiError> {
    let status = match b.status.as_deref() {
        None => None,
        Some("active") => Some(MemberStatus::Active),
        Some("suspended") => Some(MemberStatus::Suspended),
        Some(_) => return Err(ApiError::bad_request("status must be active or suspended")),
    };
    Ok(MemberChange {
        role_id: b.role_id,
        status,
    })
}

fn removed(email: &str) -> HttpResponse {
    HttpResponse::Ok().json(SuccessResponse {
        success: true,
        message: format!("member {email} removed"),
    })
}

#[utoipa::path(
    get, path = "/api/v1/members", tag = "Members", operation_id = "listMembers",
    params(MemberQuery),
    responses(
        (status = 200, description = "List of account members", body = MemberList),
        (status = 400, description = "Invalid query", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not list members", body = Error),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(who): Caller,
    q: web::Query<MemberQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 50)?;
    let status = status_param(q.status.as_deref())?;
    let p = state.services.list_members(&who, status, page)?;
    Ok(HttpResponse::Ok().json(MemberList {
        success: true,
        data: p.items.into_iter().map(|v| member_dto(v, None)).collect(),
        total: p.total,
    }))
}

#[utoipa::path(
    post, path = "/api/v1/members", tag = "Members", operation_id = "addMember",
    request_body = AddMemberRequest,
    responses(
        (status = 201, description = "Member added (or invited)", body = MemberResponse),
        (status = 400, description = "Invalid fields, or already a member", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not add members, or not with this role", body = Error),
    )
)]
pub async fn add(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(who): Caller,
    body: web::Json<AddMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let (m, token) = state.services.add_member(
        &who,
        NewMember {
            email: b.email,
            target_user_id: b.target_user_id,
            api_key_id: b.api_key_id,
            role_id: b.role_id,
        },
    )?;
    let url = token.map(|t| accept_url(&req, &t));
    Ok(HttpResponse::Created().json(MemberResponse {
        success: true,
        data: member_dto(m, url),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/members/{id}", tag = "Members", operation_id = "getMember",
    params(("id" = uuid::Uuid, Path, description = "Member ID (UUID)")),
    responses(
        (status = 200, description = "Member details", body = MemberResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not view members", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "member")?;
    Ok(HttpResponse::Ok().json(MemberResponse {
        success: true,
        data: member_dto(state.services.get_member(&who, &id)?, None),
    }))
}

#[utoipa::path(
    patch, path = "/api/v1/members/{id}", tag = "Members", operation_id = "updateMember",
    params(("id" = uuid::Uuid, Path, description = "Member ID (UUID)")),
    request_body = UpdateMemberRequest,
    responses(
        (status = 200, description = "Member updated", body = MemberResponse),
        (status = 400, description = "No field, invalid fields, or the owner", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not change this member, or not to this role", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
    body: web::Json<UpdateMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "member")?;
    let m = state
        .services
        .update_member(&who, &id, change(body.into_inner())?)?;
    Ok(HttpResponse::Ok().json(MemberResponse {
        success: true,
        data: member_dto(m, None),
    }))
}

#[utoipa::path(
    delete, path = "/api/v1/members/{id}", tag = "Members", operation_id = "removeMember",
    params(("id" = uuid::Uuid, Path, description = "Member ID (UUID)")),
    responses(
        (status = 200, description = "Member removed", body = SuccessResponse),
        (status = 400, description = "The owner, or oneself", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not remove this member", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn remove(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "member")?;
    let m = state.services.remove_member(&who, &id)?;
    Ok(removed(&m.member.email))
}

fn project_ids(raw: &(String, String)) -> Result<(Uuid, Uuid), ApiError> {
    Ok((
        path_uuid(&raw.0, "project")?,
        path_uuid(&raw.1, "project member")?,
    ))
}

#[utoipa::path(
    get, path = "/api/v1/projects/{id}/members", tag = "Project Members", operation_id = "listProjectMembers",
    params(("id" = uuid::Uuid, Path, description = "Project ID (UUID)"), MemberQuery),
    responses(
        (status = 200, description = "List of project members", body = ProjectMemberList),
        (status = 400, description = "Invalid query", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not list this project's members", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn list_project(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
    q: web::Query<MemberQuery>,
) -> Result<HttpResponse, ApiError> {
    let project = path_uuid(&id, "project")?;
    let page = page(q.limit.as_deref(), q.offset.as_deref(), 50)?;
    let status = status_param(q.status.as_deref())?;
    let p = state
        .services
        .list_project_members(&who, &project, status, page)?;
    Ok(HttpResponse::Ok().json(ProjectMemberList {
        success: true,
        data: p.items.into_iter().map(project_member_dto).collect(),
        total: p.total,
    }))
}

#[utoipa::path(
    post, path = "/api/v1/projects/{id}/members", tag = "Project Members", operation_id = "addProjectMember",
    params(("id" = uuid::Uuid, Path, description = "Project ID (UUID)")),
    request_body = AddProjectMemberRequest,
    responses(
        (status = 201, description = "Project member added", body = ProjectMemberResponse),
        (status = 400, description = "Invalid fields, or already a member", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not add members here, or not with this role", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn add_project(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
    body: web::Json<AddProjectMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let project = path_uuid(&id, "project")?;
    let b = body.into_inner();
    let m = state.services.add_project_member(
        &who,
        &project,
        NewMember {
            email: None,
            target_user_id: b.target_user_id,
            api_key_id: b.api_key_id,
            role_id: b.role_id,
        },
    )?;
    Ok(HttpResponse::Created().json(ProjectMemberResponse {
        success: true,
        data: project_member_dto(m),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/projects/{id}/members/{member_id}", tag = "Project Members", operation_id = "getProjectMember",
    params(
        ("id" = uuid::Uuid, Path, description = "Project ID (UUID)"),
        ("member_id" = uuid::Uuid, Path, description = "Project member ID (UUID)"),
    ),
    responses(
        (status = 200, description = "Project member details", body = ProjectMemberResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not view this project's members", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn get_project(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ids: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = project_ids(&ids)?;
    Ok(HttpResponse::Ok().json(ProjectMemberResponse {
        success: true,
        data: project_member_dto(state.services.get_project_member(&who, &project, &id)?),
    }))
}

#[utoipa::path(
    patch, path = "/api/v1/projects/{id}/members/{member_id}", tag = "Project Members", operation_id = "updateProjectMember",
    params(
        ("id" = uuid::Uuid, Path, description = "Project ID (UUID)"),
        ("member_id" = uuid::Uuid, Path, description = "Project member ID (UUID)"),
    ),
    request_body = UpdateMemberRequest,
    responses(
        (status = 200, description = "Project member updated", body = ProjectMemberResponse),
        (status = 400, description = "No field or invalid fields", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not change this member, or not to this role", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn update_project(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ids: web::Path<(String, String)>,
    body: web::Json<UpdateMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = project_ids(&ids)?;
    let m =
        state
            .services
            .update_project_member(&who, &project, &id, change(body.into_inner())?)?;
    Ok(HttpResponse::Ok().json(ProjectMemberResponse {
        success: true,
        data: project_member_dto(m),
    }))
}

#[utoipa::path(
    delete, path = "/api/v1/projects/{id}/members/{member_id}", tag = "Project Members", operation_id = "removeProjectMember",
    params(
        ("id" = uuid::Uuid, Path, description = "Project ID (UUID)"),
        ("member_id" = uuid::Uuid, Path, description = "Project member ID (UUID)"),
    ),
    responses(
        (status = 200, description = "Project member removed", body = SuccessResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not remove this member", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn remove_project(
    state: web::Data<AppState>,
    Caller(who): Caller,
    ids: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = project_ids(&ids)?;
    let m = state.services.remove_project_member(&who, &project, &id)?;
    Ok(removed(&m.member.email))
}

fn invitation_created(req: &HttpRequest, v: InvitationView, token: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::CREATED).json(InvitationResponse {
        success: true,
        data: invitation_dto(v, accept_url(req, token)),
    })
}

#[utoipa::path(
    post, path = "/api/v1/invitations", tag = "Invitations", operation_id = "createAccountInvitation",
    request_body = CreateInvitationRequest,
    responses(
        (status = 201, description = "Invitation made; its link is returned this once", body = InvitationResponse),
        (status = 400, description = "Invalid email or role, or already a member", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not invite, or not with this role", body = Error),
    )
)]
pub async fn invite_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(who): Caller,
    body: web::Json<CreateInvitationRequest>,
) -> Result<HttpResponse, ApiError> {
    let (v, token) = state
        .services
        .create_invitation(&who, None, &body.email, &body.role_id)?;
    Ok(invitation_created(&req, v, &token))
}

#[utoipa::path(
    post, path = "/api/v1/projects/{id}/invitations", tag = "Invitations", operation_id = "createProjectInvitation",
    params(("id" = uuid::Uuid, Path, description = "Project ID (UUID)")),
    request_body = CreateInvitationRequest,
    responses(
        (status = 201, description = "Invitation made; its link is returned this once", body = InvitationResponse),
        (status = 400, description = "Invalid email or role, or already a member", body = Error),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not invite here, or not with this role", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn invite_project(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
    body: web::Json<CreateInvitationRequest>,
) -> Result<HttpResponse, ApiError> {
    let project = path_uuid(&id, "project")?;
    let (v, token) =
        state
            .services
            .create_invitation(&who, Some(&project), &body.email, &body.role_id)?;
    Ok(invitation_created(&req, v, &token))
}

#[utoipa::path(
    delete, path = "/api/v1/invitations/{id}", tag = "Invitations", operation_id = "cancelInvitation",
    params(("id" = uuid::Uuid, Path, description = "Invitation ID (UUID)")),
    responses(
        (status = 200, description = "Invitation cancelled", body = SuccessResponse),
        (status = 401, description = "Authentication required", body = Error),
        (status = 403, description = "The key may not cancel it", body = Error),
        (status = 404, description = "Resource not found", body = Error),
    )
)]
pub async fn cancel(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid(&id, "invitation")?;
    state.services.cancel_invitation(&who, &id)?;
    Ok(HttpResponse::Ok().json(SuccessResponse {
        success: true,
        message: "invitation cancelled".into(),
    }))
}
