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
