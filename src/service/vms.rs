//! Virtual machines: validation, project scoping and the jobs that do the host work.

use std::sync::Arc;

use uuid::Uuid;

use super::vpcs::VpcJoin;
use super::{check_name, invalid, sshkey, Page, Paged, Principal, ServiceError, Services};
use crate::compute::Hypervisor;
use crate::jobs::NewJob;
use crate::model::{now, uuid_key, IpLease, Nic, SshKey, Vm, VmStatus};
use crate::network::Cidr;
use crate::store::StoreError;

/// A create request, as the API parsed it.
pub struct NewVm {
    pub name: String,
    pub template_id: Uuid,
    pub pricing_id: i64,
    pub region: String,
    pub ssh_keys: Vec<String>,
    pub password: Option<String>,
    pub extra_storage: i64,
    /// `ext4` (default), `xfs` or `btrfs`.
    pub extra_storage_type: Option<String>,
    pub backup_type: Option<String>,
    /// Time of day of the scheduled backup (`8am` when not given).
    pub backup_time: Option<String>,
    /// Weekday of a weekly backup.
    pub backup_date: Option<String>,
    pub tags: Vec<String>,
    pub vpc_id: Option<Uuid>,
    pub vpc_name: Option<String>,
    pub vpc_cidr: Option<String>,
    pub skip_public_ip: bool,
    pub skip_vpc: bool,
}

/// What a VM's delete does with its volumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeAction {
    /// They stay, detached (the contract's default).
    Detach,
    /// They go with the VM.
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    Start,
    Stop,
    Reboot,
    RebootHard,
}

/// The contract's rule: 12+ characters, 2+ uppercase, 2+ digits, 1+ of `@+-_.,!`, and
/// nothing but letters, digits and those.
fn check_password(p: &str) -> Result<(), ServiceError> {
    const SPECIAL: &str = "@+-_.,!";
    let ok_chars = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || SPECIAL.contains(c));
    let upper = p.chars().filter(|c| c.is_ascii_uppercase()).count();
    let digits = p.chars().filter(|c| c.is_ascii_digit()).count();
    let special = p.chars().filter(|c| SPECIAL.contains(*c)).count();
    if p.chars().count() < 12 || !ok_chars || upper < 2 || digits < 2 || special < 1 {
        return Err(invalid(
            "password must be at least 12 characters with 2+ uppercase letters, 2+ digits \
             and 1+ of @+-_.,! (only letters, digits and @+-_.,! are allowed)",
        ));
    }
    Ok(())
}

/// 16 characters that satisfy [`check_password`].
pub fn generate_password() -> String {
    use rand::seq::SliceRandom;
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let pick = |set: &[u8], rng: &mut rand::rngs::OsRng| set[rng.gen_range(0..set.len())] as char;
    let upper = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    let lower = b"abcdefghijkmnopqrstuvwxyz";
    let digit = b"23456789";
    let special = b"@+-_.,!";
    let mut chars: Vec<char> = Vec::new();
    chars.extend((0..3).map(|_| pick(upper, &mut rng)));
    chars.extend((0..3).map(|_| pick(digit, &mut rng)));
    chars.extend((0..2).map(|_| pick(special, &mut rng)));
    chars.extend((0..8).map(|_| pick(lower, &mut rng)));
    chars.shuffle(&mut rng);
    chars.into_iter().collect()
}

fn hash_password(p: &str) -> Result<String, ServiceError> {
    let params =
        sha_crypt::Sha512Params::new(5000).map_err(|_| invalid("cannot hash the password"))?;
    sha_crypt::sha512_simple(p, &params).map_err(|_| invalid("cannot hash the password"))
}

impl Services {
    pub(crate) fn hypervisor(&self) -> Result<&Arc<dyn Hypervisor>, ServiceError> {
        self.inner.hypervisor.as_ref().ok_or_else(|| {
            ServiceError::Unavailable(format!(
                "virtual machines are not available on this host: {}",
                self.inner
                    .compute_down
                    .as_deref()
                    .unwrap_or("compute is disabled")
            ))
        })
    }

    /// A MAC no NIC on this host has (a frame to it must reach one VM only): the NIC
    /// id's own, or, where a NIC from before has it, a random one checked the same way.
    pub(super) fn unique_mac(&self, nic_id: u64) -> Result<String, ServiceError> {
        let taken: std::collections::HashSet<String> = self
            .inner
            .vms
            .all()?
            .into_iter()
            .flat_map(|v| v.nics.into_iter().map(|n| n.mac))
            .collect();
        std::iter::once(crate::network::nic_mac(nic_id))
            .chain(std::iter::repeat_with(crate::network::random_mac).take(64))
            .find(|m| !taken.contains(m))
            .ok_or_else(|| ServiceError::Unavailable("no free MAC address".into()))
    }

    /// What starting a guest needs: the hypervisor and, unless the operator turned it
    /// off, the firewall (fail closed: no guest runs unfiltered by accident).
    pub(crate) fn can_boot(&self) -> Result<(), ServiceError> {
        self.hypervisor()?;
        if self.inner.firewall.is_none() && !self.inner.firewall_disabled {
            return Err(ServiceError::Unavailable(format!(
                "security groups and anti-spoofing cannot be enforced on this host ({}): no VM may start until the operator fixes it (see skiff doctor)",
                self.inner
                    .firewall_down
                    .as_deref()
                    .unwrap_or("the firewall did not load")
            )));
        }
        Ok(())
    }

    /// The hypervisor's acceleration, for the dashboard and logs.
    pub fn accel(&self) -> Option<&'static str> {
        self.inner.hypervisor.as_ref().map(|h| h.accel().as_str())
    }

    /// A VM the caller may see with `perm`; any other answer is 404.
    pub(crate) fn visible_vm(
        &self,
        who: &Principal,
        id: &Uuid,
        perm: &str,
    ) -> Result<Vm, ServiceError> {
        who.require_somewhere(perm)?;
        match self.inner.vms.get(&uuid_key(id))? {
            Some(v)
                if v.account_id == who.account_id
                    && !v.deleting
                    && who.require_in(&v.project_id, perm).is_ok() =>
            {
                Ok(v)
            }
            _ => Err(ServiceError::NotFound { kind: "VM" }),
        }
    }

    /// A VM for a mutation: `X-Project-ID` must name its project.
    pub(crate) fn vm_in_scope(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        perm: &str,
    ) -> Result<Vm, ServiceError> {
        let project = self.project_scope(who, header, perm)?;
        let vm = self.visible_vm(who, id, perm)?;
        if vm.project_id != project.id {
            return Err(ServiceError::NotFound { kind: "VM" });
        }
        Ok(vm)
    }

    fn submit_vm_job(&self, vm: &Vm, kind: &str) -> Result<(), ServiceError> {
        self.submit_vm_job_with(vm, kind, serde_json::json!({}))
            .map(drop)
    }

    /// `submit_vm_job` with `extra` parameters beside `vm_id`; the job's id.
    pub(super) fn submit_vm_job_with(
        &self,
        vm: &Vm,
        kind: &str,
        extra: serde_json::Value,
    ) -> Result<Uuid, ServiceError> {
        let job = self.inner.jobs.submit(NewJob {
            kind: kind.into(),
            target: format!("vm/{}", vm.id),
            account_id: Some(vm.account_id),
            project_id: Some(vm.project_id),
            params: super::job_params(serde_json::json!({ "vm_id": vm.id }), extra),
        })?;
        Ok(job.id)
    }

    fn resolve_ssh_keys(
        &self,
        who: &Principal,
        given: &[String],
    ) -> Result<Vec<String>, ServiceError> {
        let mut out = Vec::new();
        for k in given {
            if let Ok(id) = Uuid::parse_str(k.trim()) {
                let key: Option<SshKey> = self.inner.ssh_keys.get(&uuid_key(&id))?;
                match key {
                    Some(key) if key.account_id == who.account_id => out.push(key.public_key),
                    _ => return Err(invalid(format!("no SSH key with id {id}"))),
                }
            } else {
                let parsed = sshkey::parse(k).map_err(|e| invalid(format!("ssh_keys: {e}")))?;
                out.push(parsed.normalized);
            }
        }
        out.dedup();
        Ok(out)
    }

    /// Takes the first free address of the public pool for `vm_id`.
    fn lease_public_ip(
        &self,
        vm_id: Uuid,
        nic_id: u64,
    ) -> Result<(String, u8, String), ServiceError> {
        let net = &self.inner.public_net;
        let cidr = Cidr::parse(&net.cidr).map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let gateway = if net.gateway.is_empty() {
            cidr.first_host().to_string()
        } else {
            net.gateway.clone()
        };
        for ip in cidr.hosts() {
            let ip = ip.to_string();
            if ip == gateway {
                continue;
            }
            let lease = IpLease {
                ip: ip.clone(),
                pool: "public".into(),
                vm_id,
                nic_id,
                created_at: now(),
            };
            match self.inner.leases.create(&lease) {
                Ok(()) => return Ok((ip, cidr.prefix, gateway)),
                Err(StoreError::Exists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(
            "the public address pool is exhausted".into(),
        ))
    }

    pub fn create_vm(
        &self,
        who: &Principal,
        header: Option<&str>,
        new: NewVm,
    ) -> Result<Vm, ServiceError> {
        let project = self.project_scope(who, header, "vm.create")?;
        let name = check_name(&new.name, 64)?;
        if !self
            .inner
            .catalog
            .regions
            .iter()
            .any(|r| r.code == new.region)
        {
            return Err(invalid(format!("unknown region {:?}", new.region)));
        }
        let template = self
            .find_template(&new.template_id, &project.id)?
            .filter(|t| t.region == new.region)
            .ok_or_else(|| {
                invalid(format!(
                    "unknown template_id {} in region {}",
                    new.template_id, new.region
                ))
            })?;
        let plan = self
            .inner
            .catalog
            .vm_plans
            .iter()
            .find(|p| p.id == new.pricing_id && p.region == new.region)
            .ok_or_else(|| {
                invalid(format!(
                    "unknown pricing_id {} in region {}",
                    new.pricing_id, new.region
                ))
            })?
            .clone();
        if template.is_windows && plan.vm_type != "premium" {
            return Err(invalid("Windows templates need a premium plan"));
        }
        if plan.vcpu < template.cpu
            || plan.memory_gib < template.ram
            || plan.ssd_gib < template.storage
        {
            return Err(invalid(format!(
                "plan {} is too small for template {} (needs {} vCPU, {} GB RAM, {} GB disk)",
                plan.id, template.name, template.cpu, template.ram, template.storage
            )));
        }
        if new.skip_public_ip && new.skip_vpc {
            return Err(invalid(
                "skip_public_ip and skip_vpc together leave the VM without any network",
            ));
        }
        let join = match (
            new.skip_vpc,
            new.vpc_id,
            new.vpc_name.clone(),
            new.vpc_cidr.clone(),
        ) {
            (true, None, None, None) => None,
            (true, ..) => {
                return Err(invalid(
                    "skip_vpc goes without vpc_id, vpc_name and vpc_cidr",
                ))
            }
            (false, Some(id), None, None) => Some(VpcJoin::Existing(id)),
            (false, Some(_), ..) => {
                return Err(invalid("give vpc_id, or vpc_name with vpc_cidr, not both"))
            }
            (false, None, Some(name), Some(cidr)) => Some(VpcJoin::New { name, cidr }),
            (false, None, None, None) => Some(VpcJoin::Auto),
            (false, None, ..) => return Err(invalid("vpc_name and vpc_cidr go together")),
        };
        if new.extra_storage < 0 || new.extra_storage > 10_000 {
            return Err(invalid("extra_storage must be 0 to 10000 GB"));
        }
        // Checked only when a volume is asked for, as before volumes existed.
        let extra_fs = match new.extra_storage {
            0 => String::new(),
            _ => super::volumes::filesystem_or_default(
                new.extra_storage_type.clone(),
                "extra_storage_type",
            )?,
        };
        let schedule = Self::check_vm_backup(
            new.backup_type.as_deref(),
            new.backup_time.as_deref(),
            new.backup_date.as_deref(),
        )?;
        let mut tags: Vec<crate::model::VmTag> = Vec::new();
        for t in &new.tags {
            let name = check_name(t, 64).map_err(|_| invalid("tags must be 1 to 64 characters"))?;
            if !tags.iter().any(|x| x.name == name) {
                tags.push(crate::model::VmTag {
                    id: Uuid::new_v4(),
                    name,
                    priority: 0,
                    created_at: now(),
                });
            }
        }
        let ssh_keys = self.resolve_ssh_keys(who, &new.ssh_keys)?;
        let password_hash = match &new.password {
            Some(p) => {
                check_password(p)?;
                Some(hash_password(p)?)
            }
            None => None,
        };
        if template.is_windows && password_hash.is_none() {
            return Err(invalid("Windows VMs need a password"));
        }
        if ssh_keys.is_empty() && password_hash.is_none() {
            return Err(invalid("give ssh_keys, a password, or both"));
        }
        // Quotas and the host's room before anything is recorded.
        self.admit_vm(
            &who.account_id,
            super::quotas::VmSize {
                vms: 1,
                vcpus: plan.vcpu.max(0) as u64,
                memory_gib: plan.memory_gib.max(0) as u64,
                disk_gib: (plan.ssd_gib + new.extra_storage).max(0) as u64,
                public_ips: u64::from(!new.skip_public_ip),
            },
            None,
        )?;
        self.can_boot()?;
        if template.image.is_none() {
            return Err(ServiceError::Unavailable(format!(
                "template {} has no image on this host",
                template.name
            )));
        }
        let id = Uuid::new_v4();
        // The VPC decision and the leases are taken together: a VPC delete sees the
        // new member, and a refusal leaves nothing behind.
        let _g = super::vpcs::VPC_LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let planned = join
            .map(|j| self.plan_vpc_join(who, &project.id, &name, &new.region, j))
            .transpose()?;
        let mut nics = Vec::new();
        if !new.skip_public_ip {
            let nic_id = self.inner.store.next_id("nic")?;
            let (ip, prefix, gateway) = self.lease_public_ip(id, nic_id)?;
            nics.push(Nic {
                id: nic_id,
                kind: "public".into(),
                network_name: self.inner.public_net.bridge.clone(),
                mac: self.unique_mac(nic_id)?,
                ip,
                prefix,
                gateway,
                bridge: self.inner.public_net.bridge.clone(),
                tap: format!("{}{nic_id}", self.inner.tap_prefix),
                security_groups: Vec::new(),
                vpc_id: None,
                mtu: None,
                pending: None,
                // `::1:<nic id>`: never the host's `::1`, never another NIC's.
                ip6: crate::network::Prefix64::parse(&self.inner.public_net.ipv6_prefix)
                    .map(|p| p.host(0x1_0000 + nic_id).to_string()),
            });
        }
        if let Some(plan) = planned {
            let nic_id = self.inner.store.next_id("nic")?;
            let joined = self
                .join_vpc(who, &project.id, &new.region, plan, id, nic_id)
                .and_then(|(vpc, ip, prefix)| {
                    let (bridge, mtu) = self.vpc_link(&vpc)?;
                    Ok(Nic {
                        id: nic_id,
                        kind: "vpc".into(),
                        network_name: vpc.name.clone(),
                        mac: self.unique_mac(nic_id)?,
                        ip: ip.to_string(),
                        prefix,
                        gateway: vpc.gateway.clone(),
                        bridge,
                        tap: format!("{}{nic_id}", self.inner.tap_prefix),
                        security_groups: Vec::new(),
                        vpc_id: Some(vpc.id),
                        mtu: Some(mtu),
                        pending: None,
                        ip6: None,
                    })
                });
            match joined {
                Ok(nic) => nics.push(nic),
                Err(e) => {
                    for n in &nics {
                        self.inner.leases.delete(&n.lease_key())?;
                    }
                    return Err(e);
                }
            }
        }
        let t = now();
        let vm = Vm {
            id,
            account_id: who.account_id,
            project_id: project.id,
            name,
            status: VmStatus::Initiating,
            pricing_id: plan.id,
            vcpus: plan.vcpu,
            ram_gib: plan.memory_gib,
            storage_gib: plan.ssd_gib,
            added_storage_gib: 0,
            template_id: template.id,
            template_name: template.name.clone(),
            template_version: template.version.clone(),
            region: new.region,
            ssh_keys,
            password_hash,
            instance_id: Uuid::new_v4().to_string(),
            nics,
            tags,
            deleting: false,
            created_by: who.user_id,
            created_at: t,
            updated_at: t,
        };
        self.inner.vms.create(&vm)?;
        drop(_g);
        if let Some((kind, time, minute, day, keep)) = schedule {
            self.add_schedule(&vm, who.user_id, kind, time, minute, day, keep)?;
        }
        self.submit_vm_job(&vm, "vm.create")?;
        if new.extra_storage > 0 {
            self.extra_storage_for(who, &vm, new.extra_storage, extra_fs)?;
        }
        Ok(vm)
    }

    pub fn list_vms(
        &self,
        who: &Principal,
        project: Option<&Uuid>,
        status: Option<VmStatus>,
        region: Option<&str>,
        page: Page,
    ) -> Result<Paged<Vm>, ServiceError> {
        let projects = self.projects_for_list(who, project)?;
        let mut all = Vec::new();
        for p in projects {
            if who.require_in(&p, "vm.view").is_err() {
                continue;
            }
            all.extend(
                self.inner
                    .vms
                    .by_index(Vm::BY_PROJECT, &uuid_key(&p))?
                    .into_iter()
                    .filter(|v| !v.deleting)
                    .filter(|v| status.is_none_or(|s| v.status == s))
                    .filter(|v| region.is_none_or(|r| v.region == r)),
            );
        }
        all.sort_by_key(|v| (v.created_at, v.id));
        Ok(Paged::of(all, page))
    }

    pub fn get_vm(&self, who: &Principal, id: &Uuid) -> Result<Vm, ServiceError> {
        self.visible_vm(who, id, "vm.view")
    }

    pub fn delete_vm(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        volumes: VolumeAction,
        delete_vpc: bool,
    ) -> Result<Vm, ServiceError> {
        let vm = self.vm_in_scope(who, header, id, "vm.delete")?;
        if delete_vpc && vm.nics.iter().any(|n| n.vpc_id.is_some()) {
            who.require_in(&vm.project_id, "vpc.delete")?;
        }
        self.hypervisor()?;
        if volumes == VolumeAction::Delete
            && self
                .inner
                .volumes
                .count_by_index(crate::model::Volume::BY_VM, &uuid_key(&vm.id))?
                > 0
        {
            who.require_in(&vm.project_id, "volume.delete")?;
        }
        let vm = self
            .inner
            .vms
            .update::<ServiceError>(&uuid_key(&vm.id), |v| {
                v.deleting = true;
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "VM" })?;
        // Its schedules go with it; its backups stay until deleted.
        for s in self
            .inner
            .schedules
            .by_index(crate::model::BackupSchedule::BY_VM, &uuid_key(&vm.id))?
        {
            self.inner
                .schedules
                .delete(&crate::model::BackupSchedule::key_of(s.id))?;
        }
        let action = match volumes {
            VolumeAction::Detach => "detach",
            VolumeAction::Delete => "delete",
        };
        self.submit_vm_job_with(
            &vm,
            "vm.delete",
            serde_json::json!({ "volume_action": action, "delete_vpc": delete_vpc }),
        )?;
        Ok(vm)
    }

    /// Deletes each VM on its own; one failing does not stop the others. The rules
    /// (header required, 1 to 50 ids) are checked before anything is deleted.
    #[allow(clippy::type_complexity)]
    pub fn delete_vms(
        &self,
        who: &Principal,
        header: Option<&str>,
        ids: &[Uuid],
        volumes: VolumeAction,
        delete_vpc: bool,
    ) -> Result<Vec<(Uuid, Result<Vm, ServiceError>)>, ServiceError> {
        // The project and the permission first: a caller who may delete no VM there
        // learns nothing about the ids.
        self.project_scope(who, header, "vm.delete")?;
        if ids.is_empty() || ids.len() > 50 {
            return Err(invalid("ids must hold 1 to 50 VM ids"));
        }
        Ok(ids
            .iter()
            .map(|id| (*id, self.delete_vm(who, header, id, volumes, delete_vpc)))
            .collect())
    }

    pub fn power_vm(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        action: PowerAction,
    ) -> Result<Vm, ServiceError> {
        let vm = self.vm_in_scope(who, header, id, "vm.power")?;
        match action {
            PowerAction::Stop => self.hypervisor().map(|_| ())?,
            _ => self.can_boot()?,
        }
        let (allowed, kind): (&[VmStatus], &str) = match action {
            PowerAction::Start => (&[VmStatus::Passive, VmStatus::Failure], "vm.start"),
            PowerAction::Stop => (&[VmStatus::Active, VmStatus::Failure], "vm.stop"),
            PowerAction::Reboot => (&[VmStatus::Active], "vm.reboot"),
            PowerAction::RebootHard => (&[VmStatus::Active, VmStatus::Failure], "vm.reboot_hard"),
        };
        if !allowed.contains(&vm.status) {
            return Err(invalid(format!(
                "cannot {} a VM that is {}",
                match action {
                    PowerAction::Start => "start",
                    PowerAction::Stop => "stop",
                    PowerAction::Reboot => "reboot",
                    PowerAction::RebootHard => "hard-reboot",
                },
                vm.status.as_str()
            )));
        }
        // The transitional status shows at once, so a second action sent meanwhile is
        // refused instead of queued behind this one.
        let next = match action {
            PowerAction::Stop => VmStatus::Finalizing,
            _ => VmStatus::Booting,
        };
        self.busy_job(&vm, next, kind)?;
        Ok(vm)
    }

    /// The tail of the VM's serial console (at most `max` bytes; virtlogd rotates the
    /// file itself, so it stays bounded on disk).
    pub fn vm_console(&self, who: &Principal, id: &Uuid, max: u64) -> Result<String, ServiceError> {
        use std::io::{Read, Seek, SeekFrom};
        let vm = self.visible_vm(who, id, "vm.console")?;
        let path = self
            .inner
            .vm_root
            .join(vm.id.to_string())
            .join("console.log");
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
            Err(e) => return Err(ServiceError::Unavailable(format!("console log: {e}"))),
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let mut buf = Vec::new();
        f.seek(SeekFrom::Start(len.saturating_sub(max)))
            .and_then(|_| f.read_to_end(&mut buf))
            .map_err(|e| ServiceError::Unavailable(format!("console log: {e}")))?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Where the browser console's websocket proxy connects: the running VM's VNC
    /// listener on this host. Needs `vm.console`, like the serial log.
    pub fn vm_vnc_address(
        &self,
        who: &Principal,
        id: &Uuid,
    ) -> Result<crate::compute::VncListener, ServiceError> {
        let vm = self.visible_vm(who, id, "vm.console")?;
        let hv = self.hypervisor()?;
        match hv.vnc_address(&vm.domain_name()) {
            Ok(Some(addr)) => Ok(addr),
            Ok(None) => Err(ServiceError::Conflict(format!(
                "the VM has no console while it is {}; start it first",
                vm.status.as_str()
            ))),
            Err(e) => Err(ServiceError::Unavailable(format!("console: {e}"))),
        }
    }

    /// Shows `status` at once, then queues `kind`. The job cannot start before it is
    /// submitted, so this never overwrites the job's own status; a crash in between
    /// leaves a transitional status without a job, which the reconciler settles from
    /// the host's state.
    fn busy_job(&self, vm: &Vm, status: VmStatus, kind: &str) -> Result<(), ServiceError> {
        self.inner
            .vms
            .update::<ServiceError>(&uuid_key(&vm.id), |v| {
                v.status = status;
                v.updated_at = now();
                Ok(())
            })?;
        self.submit_vm_job(vm, kind)
    }

    fn require_stopped(vm: &Vm, what: &str) -> Result<(), ServiceError> {
        if vm.status != VmStatus::Passive {
            return Err(invalid(format!(
                "stop the VM before {what} (it is {})",
                vm.status.as_str()
            )));
        }
        Ok(())
    }

    /// New CPU/RAM (and disk, if the plan's is larger) from another plan; VM stopped.
    pub fn resize_vm(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        pricing_id: i64,
    ) -> Result<Vm, ServiceError> {
        let vm = self.vm_in_scope(who, header, id, "vm.manage")?;
        self.hypervisor()?;
        let plan = self
            .inner
            .catalog
            .vm_plans
            .iter()
            .find(|p| p.id == pricing_id && p.region == vm.region)
            .ok_or_else(|| {
                invalid(format!(
                    "unknown pricing_id {pricing_id} in region {}",
                    vm.region
                ))
            })?
            .clone();
        Self::require_stopped(&vm, "resizing it")?;
        if plan.ssd_gib < vm.storage_gib {
            return Err(invalid(format!(
                "plan {} has a {} GB disk, smaller than this VM's {} GB: disks never shrink",
                plan.id, plan.ssd_gib, vm.storage_gib
            )));
        }
        let mut after = vm.clone();
        after.vcpus = plan.vcpu;
        after.ram_gib = plan.memory_gib;
        after.storage_gib = vm.storage_gib.max(plan.ssd_gib);
        self.admit_vm(
            &vm.account_id,
            super::quotas::VmSize {
                vms: 0,
                public_ips: 0,
                ..super::quotas::VmSize::of(&after)
            },
            Some(&vm.id),
        )?;
        self.reconfigure(&vm, |v| {
            v.pricing_id = plan.id;
            v.vcpus = plan.vcpu;
            v.ram_gib = plan.memory_gib;
            v.storage_gib = v.storage_gib.max(plan.ssd_gib);
        })
    }

    /// Records new sizes of a stopped VM and queues the job that applies them.
    fn reconfigure(&self, vm: &Vm, change: impl Fn(&mut Vm)) -> Result<Vm, ServiceError> {
        let vm = self
            .inner
            .vms
            .update::<ServiceError>(&uuid_key(&vm.id), |v| {
                change(v);
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "VM" })?;
        self.busy_job(&vm, VmStatus::Provisioning, "vm.reconfigure")?;
        Ok(vm)
    }

    /// Grows the OS disk to `new_size` GB; VM stopped.
    pub fn resize_vm_disk(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        new_size: i64,
    ) -> Result<Vm, ServiceError> {
        let vm = self.vm_in_scope(who, header, id, "vm.manage")?;
        self.hypervisor()?;
        if new_size <= vm.storage_gib {
            return Err(invalid(format!(
                "new_size must be larger than the current {} GB: disks never shrink",
                vm.storage_gib
            )));
        }
        if new_size > 10_000 {
            return Err(invalid("new_size must be at most 10000 GB"));
        }
        Self::require_stopped(&vm, "resizing its disk")?;
        let mut after = vm.clone();
        after.storage_gib = new_size;
        self.admit_vm(
            &vm.account_id,
            super::quotas::VmSize {
                vms: 0,
                vcpus: 0,
                memory_gib: 0,
                public_ips: 0,
                ..super::quotas::VmSize::of(&after)
            },
            Some(&vm.id),
        )?;
        self.reconfigure(&vm, |v| v.storage_gib = new_size)
    }

    /// A new generated root password. Returns it (shown once: there is no mail on a
    /// self-hosted box) and whether the guest agent applies it now or the seed at the
    /// next boot.
    pub fn reset_vm_password(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
    ) -> Result<(String, bool), ServiceError> {
        let vm = self.vm_in_scope(who, header, id, "vm.manage")?;
        let hv = self.hypervisor()?;
        if matches!(vm.status, VmStatus::Initiating | VmStatus::Provisioning) {
            return Err(invalid("the VM is still being provisioned"));
        }
        let password = generate_password();
        let hash = hash_password(&password)?;
        let vm = self
            .inner
            .vms
            .update::<ServiceError>(&uuid_key(&vm.id), |v| {
                v.password_hash = Some(hash.clone());
                v.instance_id = Uuid::new_v4().to_string();
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "VM" })?;
        let now_applied = vm.status == VmStatus::Active && hv.agent_alive(&vm.domain_name());
        self.submit_vm_job(&vm, "vm.reset_password")?;
        Ok((password, now_applied))
    }

    /// A fresh OS disk from `template_id` (the VM's own for a factory reset), keeping
    /// addresses and MACs. New credentials replace the old ones when given.
    pub fn reinstall_vm(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        template_id: Option<Uuid>,
        password: Option<String>,
        ssh_keys: Option<Vec<String>>,
    ) -> Result<Vm, ServiceError> {
        let vm = self.vm_in_scope(who, header, id, "vm.manage")?;
        self.can_boot()?;
        if !matches!(
            vm.status,
            VmStatus::Active | VmStatus::Passive | VmStatus::Failure
        ) {
            return Err(invalid(format!("the VM is busy ({})", vm.status.as_str())));
        }
        self.no_snapshots_in_os_disk(&vm.id, "a reinstall")?;
        let template = self
            .find_template(&template_id.unwrap_or(vm.template_id), &vm.project_id)?
            .filter(|t| t.region == vm.region)
            .ok_or_else(|| invalid("unknown template_id in the VM's region"))?;
        if template.image.is_none() {
            return Err(ServiceError::Unavailable(format!(
                "template {} has no image on this host",
                template.name
            )));
        }
        if template.storage > vm.storage_gib || template.ram > vm.ram_gib || template.cpu > vm.vcpus
        {
            return Err(invalid(format!(
                "template {} needs a larger plan",
                template.name
            )));
        }
        let keys = match &ssh_keys {
            Some(k) => Some(self.resolve_ssh_keys(who, k)?),
            None => None,
        };
        let hash = match &password {
            Some(p) => {
                check_password(p)?;
                Some(hash_password(p)?)
            }
            None => None,
        };
        // Everything is checked before anything changes: a refused reinstall leaves
        // the VM exactly as it was.
        let keys_after = keys.as_ref().unwrap_or(&vm.ssh_keys);
        if keys_after.is_empty() && hash.is_none() && vm.password_hash.is_none() {
            return Err(invalid("give ssh_keys, a password, or both"));
        }
        let before = vm.clone();
        let vm = self
            .inner
            .vms
            .update::<ServiceError>(&uuid_key(&vm.id), |v| {
                v.template_id = template.id;
                v.template_name = template.name.clone();
                v.template_version = template.version.clone();
                if let Some(k) = &keys {
                    v.ssh_keys = k.clone();
                }
                if hash.is_some() {
                    v.password_hash = hash.clone();
                }
                v.instance_id = Uuid::new_v4().to_string();
                v.status = VmStatus::Provisioning;
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "VM" })?;
        if let Err(e) = self.submit_vm_job(&vm, "vm.reinstall") {
            self.inner.vms.put(&before)?;
            return Err(e);
        }
        Ok(vm)
    }

    pub fn rename_vm(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        name: &str,
    ) -> Result<Vm, ServiceError> {
        let vm = self.vm_in_scope(who, header, id, "vm.manage")?;
        let name = check_name(name, 64)?;
        self.inner
            .vms
            .update::<ServiceError>(&uuid_key(&vm.id), |v| {
                v.name = name.clone();
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "VM" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_follow_the_contract_rule() {
        assert!(check_password("ABcd12!efghij").is_ok());
        for bad in [
            "short1A!",
            "abcdefgh12!x",
            "ABcdefghij!x",
            "ABcd12efghij",
            "ABcd12!efgh#j",
        ] {
            assert!(check_password(bad).is_err(), "{bad}");
        }
        for _ in 0..50 {
            check_password(&generate_password()).unwrap();
        }
        assert_ne!(generate_password(), generate_password());
        let h = hash_password("ABcd12!efghij").unwrap();
        assert!(h.starts_with("$6$"));
        assert!(sha_crypt::sha512_check("ABcd12!efghij", &h).is_ok());
    }
}
