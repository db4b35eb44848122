//! The one place for business rules, validation and permission checks. Every API
//! dialect and the dashboard call these functions; none of them touches the store.

mod api_keys;
pub mod authz;
mod backup_jobs;
mod backup_schedules;
mod backups;
pub mod catalog;
mod firewall;
mod floating;
mod host;
mod image_jobs;
mod init;
mod invitations;
mod jobs;
mod members;
mod nic_jobs;
mod nics;
mod projects;
mod quotas;
mod roles;
mod security_groups;
mod snapshot_jobs;
mod snapshot_reconcile;
mod snapshots;
mod ssh_keys;
pub mod sshkey;
mod templates;
mod users;
mod vm_jobs;
mod vm_meta;
mod vm_reconcile;
mod vms;
mod volume_jobs;
mod volume_reconcile;
mod volumes;
mod vpc_jobs;
mod vpcs;

pub use api_keys::{ApiKeyChange, NewApiKey, WithSecret};
pub use authz::Principal;
pub use backup_schedules::{runtime_text, BackupScheduler, ScheduleWrite};
pub use backups::storage_mb;
pub use firewall::FirewallReconciler;
pub use floating::{Attached, IpFilter};
pub use host::{HostCapacity, HostOverview};
pub use image_jobs::ImageReconciler;
pub use init::InitReport;
pub use invitations::{InvitationPreview, InvitationView, INVITATION_TTL};
pub use members::{MemberChange, MemberView, NewMember};
pub use projects::{NewProject, ProjectChange};
pub use roles::{NewRole, RoleChange, RoleView};
pub use security_groups::{raff_rule, sg_templates, GroupWrite, RaffRule, RuleCounter, SgTemplate};
pub use snapshot_reconcile::SnapshotReconciler;
pub use snapshots::{NewSnapshot, SnapshotFilter};
pub use templates::{ImportTemplate, SaveImage};
pub use users::generate_user_password;
pub use vm_meta::NoteWrite;
pub use vm_reconcile::VmReconciler;
pub use vms::{generate_password as new_vm_password, NewVm, PowerAction, VolumeAction};
pub use volume_reconcile::VolumeReconciler;
pub use volumes::NewVolume;
pub use vpc_jobs::VpcReconciler;
pub use vpcs::{host_range, total_ips, CidrSuggestions, NewVpc, VpcDetail};

use std::sync::Arc;

use crate::compute::Hypervisor;
use crate::config::{CatalogConfig, Config, PublicNetworkConfig};
use crate::jobs::{DiagSteps, JobEngine, JobError, JobHandler};
use crate::model::{
    Account, ApiKey, Backup, BackupChain, BackupSchedule, IpLease, Project, SecurityGroup,
    Snapshot, SshKey, Template, User, Vm, VmNote, Volume, Vpc,
};
use crate::store::{Store, StoreError, Table};

/// Errors of the service layer; the HTTP edge maps each to a status and error body.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// No such resource, or not one the caller can see.
    #[error("{kind} not found")]
    NotFound { kind: &'static str },
    /// No valid API key was presented.
    #[error("{0}")]
    Unauthorized(String),
    /// The key is valid but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// A per-account quota would be exceeded: the self-hosted stand-in for the
    /// contract's balance check (402).
    #[error("{0}")]
    QuotaExceeded(String),
    /// The resource is in a state that does not allow this.
    #[error("{0}")]
    Conflict(String),
    /// The operation needs an `X-Project-ID` header.
    #[error("X-Project-ID required")]
    ProjectRequired,
    /// The operation needs a part of skiff that is not running on this host.
    #[error("{0}")]
    Unavailable(String),
    /// The datastore failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job engine failed.
    #[error(transparent)]
    Jobs(#[from] JobError),
}

/// A job's parameters: `base` (an object) with `extra`'s fields added.
pub(crate) fn job_params(
    mut base: serde_json::Value,
    extra: serde_json::Value,
) -> serde_json::Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    base
}

/// Removes a file that may already be gone (a repeated job step).
pub(crate) fn remove_if_present(p: &std::path::Path) -> Result<(), String> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", p.display())),
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(msg.into())
}

/// A display name: 1 to `max` characters, taken as given. The contract allows any
/// string of that length, so nothing else is refused; pages escape what they show.
pub(crate) fn check_name(name: &str, max: usize) -> Result<String, ServiceError> {
    let n = name.chars().count();
    if n == 0 || n > max {
        return Err(invalid(format!("name must be 1 to {max} characters")));
    }
    Ok(name.to_string())
}

/// A window of a list; `limit` and `offset` are already clamped to sane values.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

/// A page of results and the number of all matching items.
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: usize,
}

impl<T> Paged<T> {
    fn of(all: Vec<T>, page: Page) -> Self {
        let total = all.len();
        let items = all.into_iter().skip(page.offset).take(page.limit).collect();
        Paged { items, total }
    }
}

/// Handles on everything the use cases need. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    accounts: Table<Account>,
    users: Table<User>,
    projects: Table<Project>,
    ssh_keys: Table<SshKey>,
    api_keys: Table<ApiKey>,
    roles: Table<crate::model::CustomRole>,
    members: Table<crate::model::Member>,
    vms: Table<Vm>,
    leases: Table<IpLease>,
    templates: Table<Template>,
    notes: Table<VmNote>,
    backups: Table<Backup>,
    backup_chains: Table<BackupChain>,
    schedules: Table<BackupSchedule>,
    groups: Table<SecurityGroup>,
    volumes: Table<Volume>,
    snapshots: Table<Snapshot>,
    vpcs: Table<Vpc>,
    floating: Table<crate::model::FloatingIp>,
    /// `[network.vpc] floating_cidr`; empty: no floating addresses.
    floating_cidr: String,
    /// VPCs' host objects; `None` when compute is off (VPC calls answer 503).
    net_host: Option<Arc<vpc_jobs::NetHost>>,
    /// The security-group data plane; `None` when compute is off or it cannot load
    /// (then `firewall_down` says why).
    firewall: Option<Arc<firewall::FirewallHost>>,
    firewall_down: Option<String>,
    /// `[network.firewall] enabled = false`: the operator runs guests unfiltered on
    /// purpose (single tenant). Otherwise a missing data plane keeps guests off.
    firewall_disabled: bool,
    /// How QEMU reaches its files; `None` when compute is off.
    qemu_access: Option<crate::compute::access::QemuAccess>,
    /// `None` when compute is off or the repository could not be opened.
    backup_host: Option<Arc<backup_jobs::BackupHost>>,
    data_dir: std::path::PathBuf,
    jobs: JobEngine,
    catalog: CatalogConfig,
    quotas: crate::config::QuotaConfig,
    admission: crate::config::AdmissionConfig,
    public_net: PublicNetworkConfig,
    tap_prefix: String,
    vm_root: std::path::PathBuf,
    /// `None` when compute is disabled or libvirt could not be reached.
    hypervisor: Option<Arc<dyn Hypervisor>>,
    compute_down: Option<String>,
}

impl Services {
    /// Opens the tables and the job engine over `store`. `hypervisor` is the compute
    /// backend, or why there is none (the VM API then answers 503).
    pub fn new(
        store: Store,
        cfg: &Config,
        hypervisor: Result<Arc<dyn Hypervisor>, String>,
    ) -> Result<Self, ServiceError> {
        let mut handlers: Vec<Arc<dyn JobHandler>> = Vec::new();
        for resumable in [true, false] {
            handlers.push(Arc::new(DiagSteps {
                dir: cfg.data_dir.join("diag"),
                resumable,
            }));
        }
        let (hypervisor, compute_down, qemu_access) = match hypervisor {
            Ok(h) => match open_data_dir_to_qemu(cfg) {
                Ok(a) => (Some(h), None, Some(a)),
                Err(e) => (None, Some(e.to_string()), None),
            },
            Err(why) => (None, Some(why), None),
        };
        let mut backup_host = None;
        let mut vm_host = None;
        let mut net_host = None;
        let (firewall, firewall_down) = match (&hypervisor, cfg.network.firewall.enabled) {
            (None, _) => (None, Some("compute is off".to_string())),
            (Some(_), false) => (None, Some("[network.firewall] enabled = false".to_string())),
            (Some(_), true) => {
                let fc = &cfg.network.firewall;
                let mode = crate::network::firewall::AttachMode::parse(&fc.attach)
                    .unwrap_or_else(crate::network::firewall::AttachMode::detect);
                match crate::network::firewall::Firewall::open_mode(
                    &fc.bpf_dir,
                    fc.timeouts(),
                    mode,
                ) {
                    Ok(fw) => (
                        Some(Arc::new(firewall::FirewallHost {
                            fw: {
                                tracing::info!(attach = mode.as_str(), "security groups enforced");
                                fw
                            },
                            vms: store.table()?,
                            groups: store.table()?,
                            lock: std::sync::Mutex::new(()),
                        })),
                        None,
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "security groups and anti-spoofing cannot be enforced: no VM will start until this is fixed");
                        (None, Some(e.to_string()))
                    }
                }
            }
        };
        if let (Some(hv), Some(access)) = (&hypervisor, qemu_access) {
            let nh = Arc::new(vpc_jobs::NetHost {
                vpcs: store.table()?,
                vms: store.table()?,
                prefix: cfg.network.tap_prefix.clone(),
                mtu: cfg.network.vpc.mtu,
                transit: (cfg.network.vpc.snat || !cfg.network.vpc.floating_cidr.is_empty())
                    .then(|| crate::network::Cidr::parse(&cfg.network.vpc.transit_cidr).ok())
                    .flatten(),
                snat: cfg.network.vpc.snat,
                floating: store.table()?,
                nameservers: cfg
                    .network
                    .public
                    .nameservers
                    .iter()
                    .filter_map(|n| n.parse().ok())
                    .collect(),
                dhcp: std::sync::Mutex::new(std::collections::HashMap::new()),
            });
            let host = Arc::new(vm_jobs::VmHost {
                net: nh.clone(),
                gateway6: crate::network::Prefix64::parse(&cfg.network.public.ipv6_prefix)
                    .map(|p| p.host(1).to_string()),
                vms: store.table()?,
                leases: store.table()?,
                volumes: store.table()?,
                snapshots: store.table()?,
                volume_root: cfg.data_dir.join("volumes"),
                image_root: cfg.data_dir.join("templates"),
                hv: hv.clone(),
                cfg: cfg.compute.clone(),
                vm_root: cfg.data_dir.join("vms"),
                templates: cfg.catalog.templates.clone(),
                imported: store.table()?,
                nameservers: cfg.network.public.nameservers.clone(),
                firewall: firewall.clone(),
                firewall_disabled: !cfg.network.firewall.enabled,
                access,
            });
            for kind in vm_jobs::KINDS {
                handlers.push(Arc::new(vm_jobs::VmJob {
                    kind,
                    host: host.clone(),
                }));
            }
            for kind in volume_jobs::KINDS {
                handlers.push(Arc::new(volume_jobs::VolumeJob {
                    kind,
                    host: host.clone(),
                }));
            }
            for kind in snapshot_jobs::KINDS {
                handlers.push(Arc::new(snapshot_jobs::SnapshotJob {
                    kind,
                    host: host.clone(),
                }));
            }
            handlers.push(Arc::new(image_jobs::ImageJob { host: host.clone() }));
            vm_host = Some(host);
            for kind in vpc_jobs::KINDS {
                handlers.push(Arc::new(vpc_jobs::VpcJob {
                    kind,
                    host: nh.clone(),
                }));
            }
            net_host = Some(nh);
        }
        match crate::backup::Repo::open(&cfg.backup_dir()) {
            Ok(repo) => {
                let bh = Arc::new(backup_jobs::BackupHost {
                    vm: vm_host,
                    backups: store.table()?,
                    chains: store.table()?,
                    schedules: store.table()?,
                    repo,
                    gc_lock: std::sync::RwLock::new(()),
                    gc_safety: std::time::Duration::from_secs(cfg.backup.gc_safety_secs),
                });
                for kind in backup_jobs::KINDS {
                    handlers.push(Arc::new(backup_jobs::BackupJob {
                        kind,
                        host: bh.clone(),
                    }));
                }
                backup_host = Some(bh);
            }
            Err(e) => tracing::error!(
                dir = %cfg.backup_dir().display(), error = %e,
                "cannot open the backup repository; backups are unavailable"
            ),
        }
        mark_first_operator(&store.table()?)?;
        let jobs = JobEngine::new(store.clone(), cfg.job_workers, handlers)?;
        Ok(Services {
            inner: Arc::new(Inner {
                accounts: store.table()?,
                users: store.table()?,
                projects: store.table()?,
                ssh_keys: store.table()?,
                api_keys: store.table()?,
                roles: store.table()?,
                members: store.table()?,
                vms: store.table()?,
                leases: store.table()?,
                templates: store.table()?,
                notes: store.table()?,
                backups: store.table()?,
                backup_chains: store.table()?,
                schedules: store.table()?,
                groups: store.table()?,
                volumes: store.table()?,
                snapshots: store.table()?,
                vpcs: store.table()?,
                floating: store.table()?,
                floating_cidr: cfg.network.vpc.floating_cidr.clone(),
                net_host,
                firewall,
                firewall_down,
                firewall_disabled: !cfg.network.firewall.enabled,
                qemu_access,
                backup_host,
                data_dir: cfg.data_dir.clone(),
                store,
                jobs,
                catalog: cfg.catalog.clone(),
                quotas: cfg.quotas.clone(),
                admission: cfg.admission.clone(),
                public_net: cfg.network.public.clone(),
                tap_prefix: cfg.network.tap_prefix.clone(),
                vm_root: cfg.data_dir.join("vms"),
                hypervisor,
                compute_down,
            }),
        })
    }

    pub fn jobs(&self) -> &JobEngine {
        &self.inner.jobs
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// Lets QEMU reach the guests' files and nothing else of the data directory (see
/// `compute::access`): the directories on the way are enter-only for its group, the
/// template bases readable by it; the store and backups stay 0700.
fn open_data_dir_to_qemu(
    cfg: &Config,
) -> Result<crate::compute::access::QemuAccess, crate::compute::ComputeError> {
    use crate::compute::access::{private_dir, QemuAccess};
    let access = QemuAccess::resolve(&cfg.compute.qemu_group)?;
    access.traverse(&cfg.data_dir)?;
    for d in ["db", "diag"] {
        let p = cfg.data_dir.join(d);
        if p.exists() {
            private_dir(&p)?;
        }
    }
    private_dir(&cfg.backup_dir())?;
    for (dir, base_images) in [("vms", false), ("templates", true), ("volumes", false)] {
        let dir = cfg.data_dir.join(dir);
        private_dir(&dir)?;
        access.traverse(&dir)?;
        let entries = std::fs::read_dir(&dir).map_err(|e| crate::compute::ComputeError::Host {
            what: format!("listing {}", dir.display()),
            reason: e.to_string(),
        })?;
        for e in entries.flatten() {
            let p = e.path();
            match (base_images, p.is_dir()) {
                (false, true) => access.traverse(&p)?,
                (true, false) if p.extension().is_some_and(|x| x == "qcow2") => {
                    access.shared_read(&p)?
                }
                _ => {}
            }
        }
    }
    Ok(access)
}

/// Stores from before the operator flag: the account `skiff init` made (the oldest)
/// becomes the operator, as it would be now.
fn mark_first_operator(accounts: &Table<crate::model::Account>) -> Result<(), ServiceError> {
    let all = accounts.all()?;
    if all.iter().any(|a| a.operator) {
        return Ok(());
    }
    if let Some(first) = all.iter().min_by_key(|a| (a.created_at, a.id)) {
        tracing::info!(account = %first.name, "marking the first account as the host operator");
        accounts.update::<ServiceError>(&crate::model::uuid_key(&first.id), |a| {
            a.operator = true;
            Ok(())
        })?;
    }
    Ok(())
}
