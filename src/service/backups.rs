//! Backups of VM disks: the contract's incremental series. A backup is a restore point
//! in the repository; every point's index is complete, so deleting one never breaks
//! another (the contract's series-wide delete on a single point is not needed here).

use uuid::Uuid;

use super::{check_name, invalid, Page, Paged, Principal, ServiceError, Services};
use crate::jobs::NewJob;
use crate::model::{now, uuid_key, Backup, BackupChain, BackupStatus, Job, Vm, VmStatus};

/// Bytes as the contract's `storage_size`: whole MB, rounded up, so a point that
/// stored anything never shows 0.
pub fn storage_mb(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

impl Services {
    /// Backups and restores need the hypervisor and the repository.
    fn backup_repo_ready(&self) -> Result<(), ServiceError> {
        self.hypervisor()?;
        self.backup_repo_open()
    }

    fn backup_repo_open(&self) -> Result<(), ServiceError> {
        if self.inner.backup_host.is_none() {
            return Err(ServiceError::Unavailable(
                "the backup repository is not open on this host".into(),
            ));
        }
        Ok(())
    }

    /// A backup the caller may see with `perm`; anything else is 404.
    fn visible_backup(
        &self,
        who: &Principal,
        id: &Uuid,
        perm: &str,
    ) -> Result<Backup, ServiceError> {
        who.require_somewhere(perm)?;
        match self.inner.backups.get(&uuid_key(id))? {
            Some(b)
                if b.account_id == who.account_id
                    && who.require_in(&b.project_id, perm).is_ok() =>
            {
                Ok(b)
            }
            _ => Err(ServiceError::NotFound { kind: "Backup" }),
        }
    }

    /// For a change: when `X-Project-ID` is given it must be the backup's project.
    fn backup_in_scope(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        perm: &str,
    ) -> Result<Backup, ServiceError> {
        let b = self.visible_backup(who, id, perm)?;
        self.header_names(who, header, &b.project_id, perm, "Backup")?;
        Ok(b)
    }

    pub fn list_backups(
        &self,
        who: &Principal,
        project: Option<&Uuid>,
        vm: Option<&Uuid>,
        page: Page,
    ) -> Result<Paged<Backup>, ServiceError> {
        let projects = self.projects_for_list(who, project)?;
        let mut all: Vec<Backup> = match vm {
            Some(v) => self.inner.backups.by_index(Backup::BY_VM, &uuid_key(v))?,
            None => self.inner.backups.all()?,
        };
        all.retain(|b| {
            b.account_id == who.account_id
                && projects.contains(&b.project_id)
                && who.require_in(&b.project_id, "backup.view").is_ok()
        });
        all.sort_by_key(|b| (b.created_at, b.id));
        Ok(Paged::of(all, page))
    }

    pub fn get_backup(&self, who: &Principal, id: &Uuid) -> Result<Backup, ServiceError> {
        self.visible_backup(who, id, "backup.view")
    }

    /// Queues an on-demand backup of a VM (202 with status `pending`).
    pub fn create_backup(
        &self,
        who: &Principal,
        header: Option<&str>,
        vm_id: &Uuid,
        name: Option<&str>,
    ) -> Result<Backup, ServiceError> {
        // vm_id is a field of the body: naming no VM is bad input (400), not a
        // missing resource at the URL.
        let vm = self
            .vm_in_scope(who, header, vm_id, "backup.create")
            .map_err(|e| match e {
                ServiceError::NotFound { kind: "VM" } => {
                    invalid(format!("vm_id {vm_id} names no VM in this project"))
                }
                e => e,
            })?;
        self.backup_repo_ready()?;
        let name = match name {
            Some(n) => check_name(n, 128)?,
            None => format!("{}-{}", vm.name, now().format("%Y%m%d-%H%M%S")),
        };
        self.start_backup(&vm, name, who.user_id, None)
    }

    /// A job on `vm`'s target (so it waits for the VM's other jobs) about backup `b`.
    fn submit_backup_job(&self, kind: &str, vm: &Vm, b: &Backup) -> Result<(), ServiceError> {
        self.inner.jobs.submit(NewJob {
            kind: kind.into(),
            target: format!("vm/{}", vm.id),
            account_id: Some(vm.account_id),
            project_id: Some(vm.project_id),
            params: serde_json::json!({ "backup_id": b.id, "vm_id": vm.id }),
        })?;
        Ok(())
    }

    /// Creates the record and its job. Shared by the API and the scheduler.
    pub(crate) fn start_backup(
        &self,
        vm: &Vm,
        name: String,
        created_by: Option<Uuid>,
        schedule_id: Option<u64>,
    ) -> Result<Backup, ServiceError> {
        if !matches!(vm.status, VmStatus::Active | VmStatus::Passive) {
            return Err(ServiceError::Conflict(format!(
                "the VM is {}; back it up when it is active or passive",
                vm.status.as_str()
            )));
        }
        let (mut count, mut bytes) = (0u64, 0u64);
        for b in self.inner.backups.all()? {
            if b.account_id == vm.account_id {
                count += 1;
                bytes += b.stored_bytes;
            }
        }
        self.check_quota(&vm.account_id, "backups", count, 1)?;
        let limit = self.quota(&vm.account_id, "backup_gib")?;
        if bytes >= limit << 30 {
            return Err(ServiceError::QuotaExceeded(format!(
                "quota exceeded: backup_gib = {limit} per account ({} GiB stored; delete backups first)",
                bytes >> 30
            )));
        }
        let chain = self.backup_chain(&vm.id)?;
        let b = Backup {
            id: Uuid::new_v4(),
            account_id: vm.account_id,
            project_id: vm.project_id,
            vm_id: vm.id,
            created_by,
            name,
            region: vm.region.clone(),
            status: BackupStatus::Pending,
            series: chain.series(),
            increment: None,
            stored_bytes: 0,
            read_bytes: 0,
            method: None,
            schedule_id,
            error: None,
            created_at: now(),
            updated_at: now(),
        };
        self.inner.backups.create(&b)?;
        self.submit_backup_job("backup.create", vm, &b)?;
        Ok(b)
    }

    fn backup_chain(&self, vm: &Uuid) -> Result<BackupChain, ServiceError> {
        Ok(self
            .inner
            .backup_chains
            .get(&uuid_key(vm))?
            .unwrap_or_else(|| BackupChain::fresh(*vm)))
    }

    fn refuse_busy(b: &Backup) -> Result<(), ServiceError> {
        match b.status {
            BackupStatus::Pending | BackupStatus::Creating | BackupStatus::Restoring => {
                Err(ServiceError::Conflict(format!(
                    "the backup is {}; try again when it is done",
                    b.status.as_str()
                )))
            }
            _ => Ok(()),
        }
    }

    /// Removes one restore point; the others stay restorable (each index is complete).
    pub fn delete_backup(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
    ) -> Result<Backup, ServiceError> {
        let b = self.backup_in_scope(who, header, id, "backup.delete")?;
        Self::refuse_busy(&b)?;
        self.remove_backups(std::slice::from_ref(&b))?;
        Ok(b)
    }

    /// Removes every point of the series `id` belongs to.
    pub fn delete_backup_chain(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
    ) -> Result<Vec<Backup>, ServiceError> {
        let b = self.backup_in_scope(who, header, id, "backup.delete")?;
        let series: Vec<Backup> = self
            .inner
            .backups
            .by_index(Backup::BY_VM, &uuid_key(&b.vm_id))?
            .into_iter()
            .filter(|x| x.series == b.series)
            .collect();
        for x in &series {
            Self::refuse_busy(x)?;
        }
        self.remove_backups(&series)?;
        Ok(series)
    }

    fn remove_backups(&self, list: &[Backup]) -> Result<(), ServiceError> {
        let host = self.inner.backup_host.as_ref();
        for b in list {
            if let Some(h) = host {
                match h.repo.delete(&b.id) {
                    Ok(_) | Err(crate::backup::BackupError::NotFound(_)) => {}
                    Err(e) => {
                        return Err(ServiceError::Unavailable(format!(
                            "cannot remove backup {}: {e}",
                            b.id
                        )))
                    }
                }
            }
            self.inner.backups.delete(&uuid_key(&b.id))?;
        }
        if host.is_some() {
            self.inner.jobs.submit(NewJob {
                kind: "backup.gc".into(),
                target: "backup-repo".into(),
                account_id: None,
                project_id: None,
                params: serde_json::json!({}),
            })?;
        }
        Ok(())
    }

    /// Queues a restore of the backup onto its VM's disk (202). A running VM is shut
    /// down first and started again after.
    pub fn restore_backup(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
    ) -> Result<Backup, ServiceError> {
        let b = self.backup_in_scope(who, header, id, "backup.manage")?;
        self.backup_repo_ready()?;
        if b.status != BackupStatus::Ready {
            return Err(invalid(format!(
                "the backup is {}; only a ready backup can be restored",
                b.status.as_str()
            )));
        }
        let vm = match self.inner.vms.get(&uuid_key(&b.vm_id))? {
            Some(v) if !v.deleting => v,
            _ => return Err(invalid("the backup's VM no longer exists")),
        };
        if !matches!(vm.status, VmStatus::Active | VmStatus::Passive) {
            return Err(ServiceError::Conflict(format!(
                "the VM is {}; restore when it is active or passive",
                vm.status.as_str()
            )));
        }
        self.no_snapshots_in_os_disk(&vm.id, "a backup restore")?;
        let b = self
            .inner
            .backups
            .update::<ServiceError>(&uuid_key(&b.id), |x| {
                x.status = BackupStatus::Restoring;
                x.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "Backup" })?;
        self.submit_backup_job("backup.restore", &vm, &b)?;
        Ok(b)
    }

    /// Closes the VM's series: the next backup is a new baseline in a new series.
    pub fn reset_backup_chain(
        &self,
        who: &Principal,
        header: Option<&str>,
        vm_id: &Uuid,
    ) -> Result<(), ServiceError> {
        let vm = self.vm_in_scope(who, header, vm_id, "backup.manage")?;
        let mut chain = self.backup_chain(&vm.id)?;
        chain.generation += 1;
        chain.checkpoint = None;
        self.inner.backup_chains.put(&chain)?;
        Ok(())
    }

    /// Queues a verify of one backup or of the whole repository; its job reports the
    /// damaged backups and marks them failed.
    pub fn verify_backups(
        &self,
        who: &Principal,
        backup: Option<&Uuid>,
    ) -> Result<Job, ServiceError> {
        let (params, project_id) = match backup {
            Some(id) => {
                let b = self.visible_backup(who, id, "backup.manage")?;
                (serde_json::json!({ "backup_id": b.id }), Some(b.project_id))
            }
            None => {
                who.require_operator("account.settings.manage")?;
                (serde_json::json!({}), None)
            }
        };
        // After the checks: whether a repository is there is not for every caller.
        self.backup_repo_open()?;
        Ok(self.inner.jobs.submit(NewJob {
            kind: "backup.verify".into(),
            target: "backup-repo".into(),
            account_id: Some(who.account_id),
            project_id,
            params,
        })?)
    }

    /// Backup pricing per GB-hour in the VM's region, for `price_per_hour`.
    pub fn backup_price_per_gb_hour(&self) -> f64 {
        self.inner.catalog.backup_pricing.price_per_gb_hour
    }
}
