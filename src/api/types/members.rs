//! Members, project members and invitations (`/api/v1/members`, `/projects/{id}/members`,
//! `/invitations`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::present;

#[derive(Serialize, ToSchema)]
pub struct Member {
    pub id: Uuid,
    pub account_id: Uuid,
    /// `null` for pending invitations until the invitee accepts.
    pub user_id: Option<Uuid>,
    pub email: String,
    pub role: String,
    pub role_id: Uuid,
    pub role_name: String,
    /// `pending`, `active` or `suspended`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_by: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// skiff: the link that accepts the invitation, returned once by the call that
    /// made it (skiff sends no mail: the inviter passes it on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectMember {
    pub id: Uuid,
    pub project_id: Uuid,
    pub user_id: Option<Uuid>,
    /// skiff: an API key's grant shows as `<key prefix>@api-keys.invalid`.
    pub email: String,
    pub role: String,
    pub role_id: Uuid,
    pub role_name: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_by: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// skiff: set when the grant is an API key's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    /// `account` or `project`.
    #[serde(rename = "type")]
    pub kind: String,
    pub account_id: Uuid,
    pub account_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    pub email: String,
    pub role_id: Uuid,
    pub role_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_by_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_by_email: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// skiff: the accept link, returned only here (see `Member.invitation_url`).
    pub invitation_url: String,
}

#[derive(Serialize, ToSchema)]
pub struct MemberResponse {
    pub success: bool,
    pub data: Member,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub success: bool,
    pub data: Vec<Member>,
    pub total: usize,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectMemberResponse {
    pub success: bool,
    pub data: ProjectMember,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectMemberList {
    pub success: bool,
    pub data: Vec<ProjectMember>,
    pub total: usize,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationResponse {
    pub success: bool,
    pub data: Invitation,
}

#[derive(Deserialize, ToSchema)]
pub struct AddMemberRequest {
    #[serde(default, deserialize_with = "present")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub target_user_id: Option<Uuid>,
    /// skiff: refused (400); an API key's account role is set when it is created.
    #[serde(default, deserialize_with = "present")]
    pub api_key_id: Option<Uuid>,
    pub role_id: Uuid,
}

#[derive(Deserialize, ToSchema)]
pub struct AddProjectMemberRequest {
    #[serde(default, deserialize_with = "present")]
    pub target_user_id: Option<Uuid>,
    #[serde(default, deserialize_with = "present")]
    pub api_key_id: Option<Uuid>,
    pub role_id: Uuid,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateMemberRequest {
    #[serde(default, deserialize_with = "present")]
    pub role_id: Option<Uuid>,
    /// `active` or `suspended`.
    #[serde(default, deserialize_with = "present")]
    pub status: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateInvitationRequest {
    pub email: String,
    pub role_id: Uuid,
}

#[derive(Deserialize, IntoParams)]
pub struct MemberQuery {
    /// `pending`, `active` or `suspended`.
    pub status: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    #[param(value_type = Option<i64>)]
    pub offset: Option<String>,
}
