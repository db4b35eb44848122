//! Wire types of the Raff contract (`/api/v1`), in one place. Field names, optionality
//! and envelopes follow `shared/api/raff-openapi.yaml`; the served OpenAPI document is
//! generated from these definitions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// For an optional request field: absent is `None`, `null` is refused. No schema of
/// the contract is nullable, and a client sending `null` means something skiff would
/// otherwise silently take as "unset".
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)?
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("null is not allowed; leave the field out"))
}

/// `{error, message}`: the body of every 4xx and 5xx.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct Error {
    pub error: String,
    pub message: String,
    /// On 403 only: why, as in the contract's `BillingError`. skiff's permission
    /// denials say `forbidden` (there is no billing to fail).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

/// An action's outcome without a payload.
#[derive(Serialize, ToSchema)]
pub struct SuccessResponse {
    pub success: bool,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "healthy")]
    pub status: String,
}

/// `{success, data}` around one resource.
macro_rules! single {
    ($name:ident, $t:ty) => {
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            pub success: bool,
            pub data: $t,
        }
    };
}

/// `{success, data, total}` around a page of resources.
macro_rules! paged {
    ($name:ident, $t:ty) => {
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            pub success: bool,
            pub data: Vec<$t>,
            /// Number of all matching items, not just this page.
            pub total: usize,
        }
    };
}

/// `{success, data}` around a whole list (the contract gives these lists no `total`).
macro_rules! listed {
    ($name:ident, $t:ty) => {
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            pub success: bool,
            pub data: Vec<$t>,
        }
    };
}

// ---------------------------------------------------------------- catalog

#[derive(Serialize, ToSchema)]
pub struct Region {
    pub id: i64,
    #[schema(example = "us-east")]
    pub code: String,
    pub name: String,
    pub country_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i64>,
    pub is_default: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RegionsResponse {
    pub success: bool,
    pub regions: Vec<Region>,
}

#[derive(Serialize, ToSchema)]
pub struct Template {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub cpu: i64,
    pub ram: i64,
    pub storage: i64,
    pub is_windows: bool,
    pub os_type: String,
    #[schema(example = "os")]
    pub category: String,
    pub description: String,
    pub region: String,
}

paged!(TemplatesResponse, Template);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateQuery {
    /// `os` or `marketplace`.
    pub category: Option<String>,
    /// `standard` or `premium`; `standard` excludes Windows templates.
    pub vm_type: Option<String>,
    pub region: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(clippy::upper_case_acronyms)]
pub struct VMPricingPlan {
    pub id: i64,
    pub vcpu: i64,
    pub memory_gib: i64,
    pub ssd_gib: i64,
    pub transfer_gib: i64,
    pub price_per_hour: f64,
    pub monthly_price: f64,
    pub yearly_price: f64,
    pub twenty_four_month_price: f64,
    #[schema(example = "standard")]
    pub vm_type: String,
    pub region: String,
}

#[derive(Serialize, ToSchema)]
pub struct VmPlansResponse {
    pub success: bool,
    pub plans: Vec<VMPricingPlan>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// `standard` or `premium`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub vm_type: Option<String>,
    pub region: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegionQuery {
    pub region: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StoragePricing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub price_per_gb_hour: f64,
    pub price_per_gb_month: f64,
    pub yearly_price_per_gb: f64,
    pub twenty_four_month_price_per_gb: f64,
    pub region: String,
}

#[derive(Serialize, ToSchema)]
pub struct StoragePricingResponse {
    pub success: bool,
    pub pricing: StoragePricing,
}

#[derive(Serialize, ToSchema)]
pub struct IPPricingTier {
    pub price_per_hour: f64,
    pub monthly_price: f64,
    pub yearly_price: f64,
    pub twenty_four_month_price: f64,
}

#[derive(Serialize, ToSchema)]
pub struct IPPricing {
    pub ipv4: IPPricingTier,
    pub ipv6: IPPricingTier,
}

#[derive(Serialize, ToSchema)]
pub struct IpPricingResponse {
    pub success: bool,
    pub pricing: IPPricing,
}

// ---------------------------------------------------------------- lists

/// `limit`/`offset` as sent. Out-of-range numbers are clamped, not refused, so that any
/// integer the contract allows gets an answer.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    #[param(value_type = Option<i64>)]
    pub offset: Option<String>,
}

// ---------------------------------------------------------------- projects

#[derive(Serialize, ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub slug: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub default_region: String,
    pub is_default: bool,
    pub is_active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

single!(ProjectResponse, Project);
paged!(ProjectList, Project);

#[derive(Deserialize, ToSchema)]
pub struct CreateProjectRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub default_region: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateProjectRequest {
    #[schema(min_length = 1, max_length = 64)]
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub default_region: Option<String>,
}

// ---------------------------------------------------------------- SSH keys

#[derive(Serialize, ToSchema)]
#[allow(clippy::upper_case_acronyms)]
pub struct SSHKey {
    pub id: Uuid,
    pub name: String,
    pub public_key: String,
    #[schema(example = "ssh-ed25519")]
    pub key_type: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

single!(SSHKeyResponse, SSHKey);
listed!(SSHKeyList, SSHKey);

#[derive(Deserialize, ToSchema)]
pub struct CreateSSHKeyRequest {
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    /// skiff: an OpenSSH public key line (`ssh-ed25519 AAAA… comment`: RSA ≥ 2048
    /// bits, ECDSA, Ed25519); any other string is 400.
    pub public_key: String,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateSSHKeyRequest {
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
}

// ---------------------------------------------------------------- permissions

#[derive(Serialize, ToSchema)]
pub struct Permission {
    pub name: String,
    pub description: String,
    /// `account` or `project`.
    pub scope: String,
    pub category: String,
}

listed!(PermissionList, Permission);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScopeQuery {
    /// `account` or `project`.
    pub scope: Option<String>,
}

// ---------------------------------------------------------------- API keys

#[derive(Serialize, ToSchema)]
pub struct APIKeyProjectAccess {
    pub project_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    pub role_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_slug: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(clippy::upper_case_acronyms)]
pub struct APIKey {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    #[schema(example = "raff_17d70fcf")]
    pub key_prefix: String,
    #[schema(example = "public")]
    pub scope: String,
    #[schema(example = "standard")]
    pub rate_limit_tier: String,
    /// skiff: `true` on a key the operator exempted from rate limiting
    /// (`skiff admin set-tier KEY unlimited`); it shows `rate_limit_tier: high`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_unlimited: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub role_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_slug: Option<String>,
    pub project_accesses: Vec<APIKeyProjectAccess>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[allow(clippy::upper_case_acronyms)]
pub struct APIKeyWithSecret {
    #[serde(flatten)]
    pub key: APIKey,
    /// The full key, returned only at create and regenerate.
    pub secret: String,
}

single!(APIKeyResponse, APIKey);
single!(APIKeyWithSecretResponse, APIKeyWithSecret);
paged!(APIKeyList, APIKey);

/// The tiers a caller may choose; `unlimited` is the operator's to give.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum TierParam {
    Standard,
    High,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateAPIKeyRequest {
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    #[serde(default, deserialize_with = "present")]
    pub rate_limit_tier: Option<TierParam>,
    /// skiff: in the future (a past time is 400).
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<DateTime<Utc>>,
    /// skiff: a role of the account scope that the calling key may grant (else 400).
    #[serde(default, deserialize_with = "present")]
    pub role_id: Option<Uuid>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateAPIKeyRequest {
    #[schema(min_length = 1, max_length = 128)]
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub rate_limit_tier: Option<TierParam>,
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "present")]
    pub is_active: Option<bool>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApiKeyQuery {
    /// Always `public` for keys made through the API.
    pub scope: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    #[param(value_type = Option<i64>)]
    pub offset: Option<String>,
}

// ---------------------------------------------------------------- jobs (skiff's own)

/// A durable operation (skiff extension: `/api/skiff/v1/jobs`).
#[derive(Serialize, ToSchema)]
pub struct Job {
    pub id: Uuid,
    pub kind: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    pub progress: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

single!(JobResponse, Job);
listed!(JobList, Job);

/// Starts the job engine's self-test in the project of `X-Project-ID`.
#[derive(Deserialize, ToSchema)]
pub struct CreateDiagJobRequest {
    /// Number of steps (1–1000).
    pub steps: u64,
    /// Milliseconds per step (at most 10000).
    #[serde(default)]
    pub step_ms: u64,
    /// `false` makes a job that a restart fails instead of resuming.
    #[serde(default = "yes")]
    pub resumable: bool,
}

fn yes() -> bool {
    true
}

// ---------------------------------------------------------------- roles

#[derive(Serialize, ToSchema)]
pub struct Role {
    pub id: Uuid,
    /// Absent for built-in roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Uuid>,
    pub name: String,
    pub slug: String,
    pub description: String,
    /// `account` or `project`.
    pub scope: String,
    pub permissions: Vec<String>,
    pub is_system: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateRoleRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// skiff: unique in the account, never a built-in role's.
    #[schema(pattern = "^[a-z0-9-]+$", max_length = 64)]
    pub slug: String,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
    /// `account` or `project`; every permission must be of this scope.
    pub scope: String,
    /// skiff: only permissions the calling key holds (else 403).
    #[schema(min_items = 1)]
    pub permissions: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateRoleRequest {
    #[schema(min_length = 1, max_length = 64)]
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub permissions: Option<Vec<String>>,
}

single!(RoleResponse, Role);
listed!(RoleList, Role);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoleQuery {
    /// `account` or `project`.
    pub scope: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    #[param(value_type = Option<i64>)]
    pub offset: Option<String>,
}

// ---------------------------------------------------------------- VMs

#[derive(Serialize, ToSchema)]
pub struct VMTag {
    pub id: String,
    pub name: String,
    pub priority: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct VMTagsResponse {
    pub success: bool,
    pub tags: Vec<VMTag>,
}

#[derive(Deserialize, ToSchema)]
pub struct AddVMTagRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    #[serde(default)]
    pub priority: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateVMTagRequest {
    #[schema(min_length = 1, max_length = 64)]
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub priority: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct VMNote {
    pub id: Uuid,
    pub vm_id: Uuid,
    /// `personal` or `account`.
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct VMNoteResponse {
    pub success: bool,
    pub note: VMNote,
}

#[derive(Serialize, ToSchema)]
pub struct VMNotesResponse {
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personal_note: Option<VMNote>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_note: Option<VMNote>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpsertVMNoteRequest {
    /// The text; an empty string clears the note but keeps it.
    pub content: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NoteQuery {
    /// `personal` or `account`: only that one.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct VM {
    pub id: Uuid,
    pub name: String,
    /// `initiating`, `provisioning`, `booting`, `active`, `finalizing`, `passive`, `failure`.
    pub status: String,
    pub cpu: i64,
    pub ram: i64,
    pub storage: i64,
    pub added_storage: i64,
    pub total_storage: i64,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_version: String,
    pub price_per_hour: String,
    pub pricing_id: i64,
    pub region: String,
    pub project_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ipv4_address: Option<String>,
    pub tags: Vec<VMTag>,
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

single!(VMResponse, VM);
paged!(VMList, VM);

#[derive(Deserialize, ToSchema)]
pub struct CreateVMRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    pub template_id: Uuid,
    pub pricing_id: i64,
    pub region: String,
    /// Public keys (`ssh-ed25519 AAAA…`) or ids of the account's SSH keys.
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    pub password: Option<String>,
    /// GB of a block volume made and attached with the VM (0 to 10000; 0: none).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10000)]
    pub extra_storage: i64,
    /// The volume's file system: `ext4` (default), `xfs` or `btrfs`. skiff has no NTFS:
    /// a Windows guest formats the volume itself.
    #[serde(default, deserialize_with = "present")]
    pub extra_storage_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub backup_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub backup_time: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub backup_date: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Join this VPC of the project. Without `vpc_id`, `vpc_name` and `vpc_cidr`
    /// (and without `skip_vpc`) the VM gets a VPC `vpc-<name>` of its own.
    #[serde(default, deserialize_with = "present")]
    pub vpc_id: Option<Uuid>,
    #[serde(default, deserialize_with = "present")]
    pub vpc_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub vpc_cidr: Option<String>,
    #[serde(default)]
    pub skip_public_ip: bool,
    #[serde(default)]
    pub skip_vpc: bool,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VmQuery {
    #[param(value_type = Option<Uuid>)]
    pub project_id: Option<String>,
    pub region: Option<String>,
    pub status: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    #[param(value_type = Option<i64>)]
    pub offset: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct DeleteVMRequest {
    /// `detach` (default: the volumes stay) or `delete` (they go with the VM).
    #[serde(default, deserialize_with = "present")]
    pub volume_action: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub delete_vpc: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
pub struct RenameVMRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
}

#[derive(Serialize, ToSchema, Clone)]
pub struct VMNetwork {
    pub nic_id: u64,
    pub network_name: String,
    pub ip: String,
    pub mac: String,
    pub gateway: String,
    /// `public`, `vpc` or `ipv6`.
    #[serde(rename = "type")]
    pub kind: String,
    pub is_primary: bool,
    /// The first security group attached to this NIC, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_group_id: Option<Uuid>,
    /// Every security group attached to this NIC (skiff: a NIC may carry several).
    pub security_group_ids: Vec<Uuid>,
    /// skiff: the VPC of a `vpc` NIC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<Uuid>,
}

listed!(VMNetworkList, VMNetwork);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NetworkQuery {
    /// `public`, `vpc` or `ipv6`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ResizeResponse {
    pub success: bool,
    pub message: String,
    pub id: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResizeVMRequest {
    pub pricing_id: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct ResizeVMDiskRequest {
    /// New size in GB; larger than the current one.
    pub new_size: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct ReinstallVMRequest {
    pub template_id: Uuid,
    /// skiff: `password` or `auto_generate_password`, not both (400).
    #[serde(default, deserialize_with = "present")]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub ssh_keys: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub auto_generate_password: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
pub struct DeleteVMsBulkRequest {
    /// 1 to 50 VM ids.
    pub ids: Vec<Uuid>,
    /// `detach` (default: the volumes stay) or `delete` (they go with the VM).
    #[serde(default, deserialize_with = "present")]
    pub volume_action: Option<String>,
    /// `false`; `true` is 400 until VPCs exist.
    #[serde(default, deserialize_with = "present")]
    pub delete_vpc: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct BulkDeleteVMItemResult {
    pub id: Uuid,
    pub success: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BulkDeleteVMsResult {
    pub success: bool,
    pub message: String,
    pub total_count: usize,
    pub success_count: usize,
    pub failed_count: usize,
    pub results: Vec<BulkDeleteVMItemResult>,
}

#[derive(Deserialize, ToSchema)]
pub struct SaveImageRequest {
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
    /// 0: the OS disk; 1+: the VM's attached volumes, in device order (`vdc` is 1).
    #[serde(default)]
    pub disk_id: i64,
    /// -1: the disk as it is (the VM stopped); otherwise a snapshot of the VM, or of
    /// the volume `disk_id` names (the VM may run).
    #[serde(default = "minus_one")]
    pub snapshot_id: i64,
}

fn minus_one() -> i64 {
    -1
}

#[derive(Serialize, ToSchema)]
pub struct VMImage {
    /// Use as `template_id` when creating a VM.
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub description: String,
    pub os_type: String,
    pub is_windows: bool,
    pub region: String,
    pub created_at: DateTime<Utc>,
    /// skiff's: `saving` while job `image.save` copies the disk, then `available` (a
    /// VM may boot it) or `error`.
    #[schema(example = "saving")]
    pub status: &'static str,
    /// Why saving failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

single!(VMImageResponse, VMImage);
listed!(VMImageList, VMImage);

// ---------------------------------------------------------------- backups

#[derive(Serialize, ToSchema)]
pub struct Backup {
    pub id: Uuid,
    pub account_id: Uuid,
    pub project_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[schema(example = "us-east")]
    pub region: String,
    /// Source VM UUID.
    pub product_vm: Uuid,
    pub name: String,
    /// What this restore point added to the store, in MB (rounded up).
    pub storage_size: u64,
    /// `pending`, `creating`, `ready`, `restoring` or `failed`.
    pub status: String,
    pub price_per_hour: String,
    /// Position in the series: 0 is the baseline; `null` until the point is written.
    pub increment_id: Option<u64>,
    /// skiff: `full` (whole disk read) or `incremental` (dirty bitmap), once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// skiff: why the backup (or its last restore) failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

single!(BackupResponse, Backup);
paged!(BackupList, Backup);

#[derive(Deserialize, ToSchema)]
pub struct CreateBackupRequest {
    /// Source VM UUID.
    pub vm_id: Uuid,
    /// Display name; a timestamped one when omitted.
    #[schema(max_length = 128)]
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct BackupQuery {
    /// Only this VM's.
    #[param(value_type = Option<Uuid>)]
    pub vm_id: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    #[param(value_type = Option<i64>)]
    pub offset: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BackupSchedule {
    pub id: u64,
    pub account_id: Uuid,
    pub project_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[schema(example = "us-east")]
    pub region: String,
    pub product_vm: Uuid,
    pub name: String,
    /// `daily` or `weekly`.
    #[serde(rename = "type")]
    pub kind: String,
    /// e.g. `Daily at 8am`, `Saturday 8am` (UTC).
    pub runtime: String,
    pub keep_count: u32,
    pub price_per_hour: String,
    /// MB the schedule's retained backups hold.
    pub size: String,
    pub enabled: bool,
    pub consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run_status: Option<String>,
    pub next_run_at: chrono::DateTime<chrono::Utc>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

single!(BackupScheduleResponse, BackupSchedule);
paged!(BackupScheduleList, BackupSchedule);

#[derive(Deserialize, ToSchema)]
pub struct CreateBackupScheduleRequest {
    pub vm_id: Uuid,
    /// `daily` or `weekly`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Time of day, UTC (`8am`, `13:00`).
    #[schema(example = "8am")]
    pub time: String,
    /// `Monday` … `Sunday`; required for weekly.
    #[serde(default, deserialize_with = "present")]
    pub day_of_week: Option<String>,
    /// Backups kept before the oldest is pruned (1–100).
    #[schema(minimum = 1, maximum = 100)]
    pub keep_count: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateBackupScheduleRequest {
    #[serde(rename = "type")]
    #[serde(default, deserialize_with = "present")]
    pub kind: Option<String>,
    #[schema(example = "8am")]
    #[serde(default, deserialize_with = "present")]
    pub time: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub day_of_week: Option<String>,
    #[schema(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "present")]
    pub keep_count: Option<i64>,
    /// Disabled schedules never run.
    #[serde(default, deserialize_with = "present")]
    pub enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct VerifyBackupsRequest {
    /// One backup; the whole repository when omitted (needs account settings rights).
    #[serde(default, deserialize_with = "present")]
    pub backup_id: Option<Uuid>,
}

// ---------------------------------------------------------------- security groups

/// One allow rule in the contract's shape, plus skiff's read-only `id`, `packets`,
/// `bytes` and the optional `remote_group_id`.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug)]
pub struct SecurityGroupRule {
    /// `TCP`, `UDP`, `ICMP`, `ICMPV6`, `IPSEC`, `ALL`, or an IP protocol number.
    pub protocol: String,
    /// `INBOUND` or `OUTBOUND`.
    pub rule_type: String,
    /// `80` or `8000:9000`; empty for all ports. skiff: TCP and UDP only; a range on
    /// `ALL`, ICMP or another protocol is 400.
    #[serde(default, deserialize_with = "present")]
    pub range: Option<String>,
    /// Remote address; empty for any. A CIDR (`10.0.0.0/8`) is accepted too.
    #[serde(default, deserialize_with = "present")]
    pub ip: Option<String>,
    /// Prefix length for `ip`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub size: Option<i64>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub icmp_type: Option<i64>,
    /// skiff: allow the current addresses of this group's NICs (the Tavu dialect's
    /// remote group). Exclusive with `ip`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub remote_group_id: Option<Uuid>,
    /// skiff, read-only: the rule's id; its counters follow it across updates.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// skiff, read-only: packets of the flows this rule admitted, both ways.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// skiff, read-only: bytes of those packets.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct SecurityGroup {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub rules: Vec<SecurityGroupRule>,
    /// NICs currently carrying this group.
    pub vm_count: usize,
    pub project_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

single!(SecurityGroupResponse, SecurityGroup);
listed!(SecurityGroupList, SecurityGroup);

#[derive(Serialize, ToSchema)]
pub struct SecurityGroupTemplate {
    pub id: String,
    pub name: String,
    pub description: String,
    pub rules: Vec<SecurityGroupRule>,
}

listed!(SecurityGroupTemplateList, SecurityGroupTemplate);

#[derive(Deserialize, ToSchema)]
pub struct CreateSecurityGroupRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub template_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub rules: Option<Vec<SecurityGroupRule>>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateSecurityGroupRequest {
    #[schema(min_length = 1, max_length = 64)]
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub rules: Option<Vec<SecurityGroupRule>>,
}

#[derive(Deserialize, ToSchema)]
pub struct AttachSecurityGroupRequest {
    pub security_group_id: Uuid,
    /// The contract's integer; a negative one names no NIC (404).
    pub nic_id: i64,
}

mod members;
mod snapshots;
mod volumes;
mod vpcs;
pub use members::*;
pub use snapshots::*;
pub use volumes::*;
pub use vpcs::*;
