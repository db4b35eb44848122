//! VPCs (`/api/v1/vpcs`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::present;

#[derive(Serialize, ToSchema)]
pub struct Vpc {
    pub id: Uuid,
    pub account_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    /// skiff: set by `PUT`; empty until then.
    pub description: String,
    #[schema(example = "10.0.0.0/24")]
    pub cidr: String,
    /// The VPC's router, the first host address.
    #[schema(example = "10.0.0.1")]
    pub gateway: String,
    /// `creating`, `active`, `deleting` or `failed`.
    pub status: String,
    /// Addresses in the block (256 for a /24).
    pub total_ips: u64,
    /// Addresses leased to NICs.
    pub used_ips: u64,
    pub region: String,
    /// `none`: the router routes inside the VPC only.
    pub gateway_type: String,
    /// skiff: why creating the VPC failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

single!(VpcResponse, Vpc);
listed!(VpcList, Vpc);

#[derive(Serialize, ToSchema)]
pub struct VpcLease {
    pub ip: String,
    pub nic_id: u64,
}

#[derive(Serialize, ToSchema)]
pub struct VpcDetail {
    pub vpc: Vpc,
    /// The first address handed to a NIC (after the gateway).
    pub ip_range_start: String,
    /// The last (before the broadcast address).
    pub ip_range_end: String,
    pub leases: Vec<VpcLease>,
}

single!(VpcDetailResponse, VpcDetail);

#[derive(Deserialize, ToSchema)]
pub struct CreateVpcRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// A network address in 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or
    /// 100.64.0.0/10, /16 to /28, overlapping no other VPC of the account.
    #[schema(example = "10.0.0.0/24")]
    pub cidr: String,
    /// The project's default region when absent.
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateVpcRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(min_length = 1, max_length = 64)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(max_length = 255)]
    pub description: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CidrSuggestion {
    pub cidr: String,
    pub available_ips: u64,
    /// `small` (/26), `medium` (/22) or `large` (/20).
    pub size: String,
}

/// Flat, as the contract has it (no `data`).
#[derive(Serialize, ToSchema)]
pub struct CidrSuggestionsResponse {
    pub success: bool,
    /// A free /24; absent when the account's VPCs leave none in 10.0.0.0/8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_ips: Option<u64>,
    pub alternatives: Vec<CidrSuggestion>,
    pub existing_count: usize,
}

#[derive(Deserialize, ToSchema)]
pub struct AttachVpcRequest {
    pub vpc_id: Uuid,
    /// An address of the VPC's range; the first free one when absent.
    #[serde(default, deserialize_with = "present")]
    #[schema(example = "10.0.1.42")]
    pub ip: Option<String>,
}

// ---------------------------------------------------------------- floating IPs

#[derive(Serialize, ToSchema)]
pub struct FloatingIp {
    pub id: Uuid,
    pub account_id: Uuid,
    pub project_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Uuid>,
    #[schema(example = "203.0.113.42")]
    pub ip_address: String,
    /// `IPv4`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `free` or `in-use`.
    pub status: String,
    pub reserved: bool,
    pub region: String,
    /// skiff: the catalog's hourly price of an IPv4 address (`/public/pricing/ip`).
    pub price_per_hour: String,
    /// skiff: the VM it is attached to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<Uuid>,
    /// skiff: the attachment's NIC id (for `DELETE /vms/{id}/ip/{nic_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nic_id: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

single!(FloatingIpResponse, FloatingIp);
paged!(FloatingIpList, FloatingIp);

#[derive(Serialize, ToSchema)]
pub struct ChangeIpResponse {
    pub success: bool,
    pub old_ip: FloatingIp,
    pub new_ip: FloatingIp,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct ReserveIpRequest {
    /// `IPv4` (default); `IPv6` is 400 on this host.
    #[serde(default, rename = "type", deserialize_with = "present")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub region: Option<String>,
    /// Accepted and ignored (no billing on a self-hosted box).
    #[serde(default, deserialize_with = "present")]
    pub billing_period: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct AttachIpRequest {
    /// A reserved IP of the VM's project; `type` is ignored when given.
    #[serde(default, deserialize_with = "present")]
    pub ip_id: Option<Uuid>,
    /// A new address from the pool (`IPv4`), released again on detach.
    #[serde(default, rename = "type", deserialize_with = "present")]
    pub kind: Option<String>,
    /// Accepted; security groups apply to the VPC NIC the address reaches.
    #[serde(default)]
    pub security_groups: Vec<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct AttachIpData {
    pub vm_id: Uuid,
    pub ip_address: String,
    pub nic_id: u64,
    pub mac: String,
}

#[derive(Serialize, ToSchema)]
pub struct AttachIpResponse {
    pub success: bool,
    pub message: String,
    pub data: AttachIpData,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IpQuery {
    #[param(value_type = Option<bool>)]
    pub reserved: Option<String>,
    /// `free` or `in-use`.
    pub status: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    #[param(value_type = Option<i64>)]
    pub offset: Option<String>,
}
