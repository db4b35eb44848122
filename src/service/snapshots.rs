//! Snapshots of VMs (all their disks at one instant) and of volumes: validation,
//! project scoping, quotas; the host work is `snapshot_jobs`. A snapshot takes one
//! change at a time (`pending`), and while a change runs on it, the volumes it
//! involves take none (and the other way round), decided under `VOLUME_LOCK`.

use uuid::Uuid;

use super::snapshot_jobs::snapshot_target;
use super::volumes::VOLUME_LOCK;
use super::{check_name, invalid, Page, Paged, Principal, ServiceError, Services};
use crate::jobs::NewJob;
use crate::model::{now, uuid_key, Snapshot, SnapshotKind, Vm, VmStatus, Volume, VolumeStatus};

/// A create request, as the API parsed it.
pub struct NewSnapshot {
    pub resource_type: String,
    pub resource_id: Option<Uuid>,
    pub volume_id: Option<u64>,
    pub name: String,
}

/// Where a snapshot change stands when the API answers.
pub struct SnapshotChange {
    pub snapshot: Snapshot,
    /// The job doing it, for callers that wait.
    pub job: Uuid,
}

/// List filters.
#[derive(Default)]
pub struct SnapshotFilter {
    pub vm: Option<Uuid>,
    /// Any integer the contract allows; one below 1 names no volume.
    pub volume: Option<i64>,
    pub kind: Option<SnapshotKind>,
}

impl Services {
    fn visible_snapshot(
        &self,
        who: &Principal,
        id: u64,
        perm: &str,
    ) -> Result<Snapshot, ServiceError> {
        who.require_somewhere(perm)?;
        match self.inner.snapshots.get(&Snapshot::key_of(id))? {
            Some(s)
                if s.account_id == who.account_id
                    && s.pending.as_deref() != Some("delete")
                    && who.require_in(&s.project_id, perm).is_ok() =>
            {
                Ok(s)
            }
            _ => Err(ServiceError::NotFound { kind: "snapshot" }),
        }
    }

    /// A snapshot by id; the contract marks `X-Project-ID` required on these calls.
    fn snapshot_in_scope(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
        perm: &str,
    ) -> Result<Snapshot, ServiceError> {
        let s = self.visible_snapshot(who, id, perm)?;
        self.header_names(who, header, &s.project_id, perm, "snapshot")?;
        Ok(s)
    }

    /// Refuses a change of volume `id` while a snapshot job involves it.
    pub(crate) fn no_snapshot_job_on_volume(&self, id: u64) -> Result<(), ServiceError> {
        if self.snapshot_busy_on_volume(id)? {
            return Err(ServiceError::Conflict(
                "a snapshot of the volume is being taken, restored or deleted; retry when it ends"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether a snapshot job runs that involves volume `id`.
    fn snapshot_busy_on_volume(&self, id: u64) -> Result<bool, ServiceError> {
        Ok(self.inner.snapshots.all()?.iter().any(|s| {
            s.pending.is_some()
                && (s.holds_volume(id) || (s.disks.is_empty() && self.vm_holds(s, id)))
        }))
    }

    /// Whether VM snapshot `s` (not yet taken) will take volume `id`.
    fn vm_holds(&self, s: &Snapshot, id: u64) -> bool {
        s.kind == SnapshotKind::Vm
            && self
                .inner
                .volumes
                .get(&Volume::key_of(id))
                .ok()
                .flatten()
                .is_some_and(|v| v.vm_id.is_some() && v.vm_id == s.vm_id)
    }

    /// Snapshots that hold volume `id` (a volume with any cannot be deleted).
    pub(crate) fn snapshots_of_volume(&self, id: u64) -> Result<usize, ServiceError> {
        Ok(self
            .inner
            .snapshots
            .all()?
            .iter()
            .filter(|s| s.holds_volume(id))
            .count())
    }

    /// Refuses to replace VM `vm`'s OS disk (reinstall, backup restore) while
    /// snapshots live inside it.
    pub(crate) fn no_snapshots_in_os_disk(
        &self,
        vm: &Uuid,
        action: &str,
    ) -> Result<(), ServiceError> {
        let n = self
            .inner
            .snapshots
            .by_index(Snapshot::BY_VM, &uuid_key(vm))?
            .len();
        if n > 0 {
            return Err(ServiceError::Conflict(format!(
                "the VM has {n} snapshot(s) inside its OS disk, which {action} replaces: delete them first"
            )));
        }
        Ok(())
    }

    fn idle_snapshot(s: &Snapshot) -> Result<(), ServiceError> {
        match &s.pending {
            Some(job) => Err(ServiceError::Conflict(format!(
                "the snapshot is busy ({job} under way); retry when it ends"
            ))),
            None => Ok(()),
        }
    }

    pub(super) fn submit_snapshot_job(
        &self,
        s: &Snapshot,
        kind: &str,
    ) -> Result<Uuid, ServiceError> {
        let volume = match s.volume_id {
            Some(v) => self.inner.volumes.get(&Volume::key_of(v))?,
            None => None,
        };
        let job = self.inner.jobs.submit(NewJob {
            kind: format!("snapshot.{kind}"),
            target: snapshot_target(s, volume.as_ref()),
            account_id: Some(s.account_id),
            project_id: Some(s.project_id),
            params: serde_json::json!({ "snapshot_id": s.id }),
        })?;
        Ok(job.id)
    }

    /// Records that job `snapshot.<kind>` owns the snapshot, then submits it (the
    /// snapshot reconciler submits again a job a crash kept from being submitted).
    fn start_snapshot_change(&self, id: u64, kind: &str) -> Result<SnapshotChange, ServiceError> {
        let s = self
            .inner
            .snapshots
            .update::<ServiceError>(&Snapshot::key_of(id), |s| {
                s.pending = Some(kind.into());
                s.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "snapshot" })?;
        let job = self.submit_snapshot_job(&s, kind)?;
        Ok(SnapshotChange { snapshot: s, job })
    }

    /// The VM a snapshot is of: in the project, settled (running or stopped).
    fn snapshot_source_vm(
        &self,
        who: &Principal,
        id: &Uuid,
        project: &Uuid,
    ) -> Result<Vm, ServiceError> {
        let vm = self
            .visible_vm(who, id, "vm.view")
            .ok()
            .filter(|vm| vm.project_id == *project && !vm.deleting)
            .ok_or_else(|| invalid(format!("no VM {id} in this project")))?;
        if !matches!(vm.status, VmStatus::Active | VmStatus::Passive) {
            return Err(ServiceError::Conflict(format!(
                "the VM is {}: snapshots are taken of running or stopped VMs",
                vm.status.as_str()
            )));
        }
        let vols = self
            .inner
            .volumes
            .by_index(Volume::BY_VM, &uuid_key(&vm.id))?;
        if let Some(v) = vols.iter().find(|v| v.pending.is_some()) {
            return Err(ServiceError::Conflict(format!(
                "volume {} of the VM is changing ({}); retry when it is done",
                v.id,
                v.pending.as_deref().unwrap_or_default()
            )));
        }
        Ok(vm)
    }

    /// The volume a snapshot is of: in the project, made, not changing.
    fn snapshot_source_volume(
        &self,
        who: &Principal,
        id: u64,
        project: &Uuid,
    ) -> Result<Volume, ServiceError> {
        let v = self
            .visible_volume(who, id, "volume.view")
            .ok()
            .filter(|v| v.project_id == *project)
            .ok_or_else(|| invalid(format!("no volume {id} in this project")))?;
        if let Some(p) = &v.pending {
            return Err(ServiceError::Conflict(format!(
                "the volume is changing ({p}); retry when it is done"
            )));
        }
        if !matches!(v.status, VolumeStatus::Available | VolumeStatus::Attached) {
            return Err(invalid(format!("the volume is {}", v.status.as_str())));
        }
        Ok(v)
    }

    pub fn create_snapshot(
        &self,
        who: &Principal,
        header: Option<&str>,
        new: NewSnapshot,
    ) -> Result<SnapshotChange, ServiceError> {
        let project = self.project_scope(who, header, "snapshot.create")?;
        let name = check_name(&new.name, 128)?;
        let kind = match new.resource_type.as_str() {
            "vm" => SnapshotKind::Vm,
            "volume" => SnapshotKind::Volume,
            _ => return Err(invalid("resource_type must be vm or volume")),
        };
        self.hypervisor()?;
        let _g = VOLUME_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let (vm_id, volume_id) = match kind {
            SnapshotKind::Vm => {
                let id = new.resource_id.ok_or_else(|| {
                    invalid("resource_id (the VM's id) is required for a vm snapshot")
                })?;
                let vm = self.snapshot_source_vm(who, &id, &project.id)?;
                if let Some(busy) = self
                    .inner
                    .snapshots
                    .by_index(Snapshot::BY_VM, &uuid_key(&vm.id))?
                    .iter()
                    .find(|s| s.pending.is_some())
                {
                    return Err(ServiceError::Conflict(format!(
                        "snapshot {} of the VM is busy ({}); retry when it ends",
                        busy.id,
                        busy.pending.as_deref().unwrap_or_default()
                    )));
                }
                (Some(vm.id), None)
            }
            SnapshotKind::Volume => {
                let id = new
                    .volume_id
                    .ok_or_else(|| invalid("volume_id is required for a volume snapshot"))?;
                let v = self.snapshot_source_volume(who, id, &project.id)?;
                self.no_snapshot_job_on_volume(v.id)?;
                (None, Some(v.id))
            }
        };
        let held = self
            .inner
            .snapshots
            .all()?
            .iter()
            .filter(|s| s.account_id == who.account_id)
            .count();
        self.check_quota(&who.account_id, "snapshots", held as u64, 1)?;
        let t = now();
        let s = Snapshot {
            id: self.inner.store.next_id("snapshot")?,
            account_id: who.account_id,
            project_id: project.id,
            name,
            kind,
            vm_id,
            volume_id,
            disks: vec![],
            active: false,
            consistency: None,
            stored_bytes: 0,
            target_gib: 0,
            pending: Some("create".into()),
            error: None,
            created_by: who.user_id,
            created_at: t,
            updated_at: t,
        };
        self.inner.snapshots.create(&s)?;
        let job = self.submit_snapshot_job(&s, "create")?;
        Ok(SnapshotChange { snapshot: s, job })
    }

    pub fn list_snapshots(
        &self,
        who: &Principal,
        project: Option<&Uuid>,
        filter: SnapshotFilter,
        page: Page,
    ) -> Result<Paged<Snapshot>, ServiceError> {
        let mut all = Vec::new();
        for p in self.projects_for_list(who, project)? {
            if who.require_in(&p, "snapshot.view").is_err() {
                continue;
            }
            all.extend(
                self.inner
                    .snapshots
                    .by_index(Snapshot::BY_PROJECT, &uuid_key(&p))?
                    .into_iter()
                    .filter(|s| s.pending.as_deref() != Some("delete"))
                    .filter(|s| filter.vm.is_none_or(|m| s.vm_id == Some(m)))
                    .filter(|s| {
                        filter
                            .volume
                            .is_none_or(|v| u64::try_from(v).is_ok_and(|v| s.holds_volume(v)))
                    })
                    .filter(|s| filter.kind.is_none_or(|k| s.kind == k)),
            );
        }
        all.sort_by_key(|s| s.id);
        Ok(Paged::of(all, page))
    }

    pub fn get_snapshot(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
    ) -> Result<Snapshot, ServiceError> {
        self.snapshot_in_scope(who, header, id, "snapshot.view")
    }

    /// Renames; the disks are not touched, so a busy snapshot may be renamed too.
    pub fn rename_snapshot(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
        name: &str,
    ) -> Result<Snapshot, ServiceError> {
        self.snapshot_in_scope(who, header, id, "snapshot.manage")?;
        let name = check_name(name, 128)?;
        self.inner
            .snapshots
            .update::<ServiceError>(&Snapshot::key_of(id), |s| {
                s.name = name.clone();
                s.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "snapshot" })
    }

    pub fn delete_snapshot(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
    ) -> Result<SnapshotChange, ServiceError> {
        let _g = VOLUME_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let s = self.snapshot_in_scope(who, header, id, "snapshot.delete")?;
        Self::idle_snapshot(&s)?;
        if s.active {
            return Err(ServiceError::Conflict(
                "the snapshot is active (its source was restored to it): restore another snapshot first, or take a new one".into(),
            ));
        }
        self.hypervisor()?;
        self.start_snapshot_change(id, "delete")
    }

    /// Puts the source back to the snapshot. A VM must be stopped (`passive`) and
    /// hold the same volumes as when it was taken; a volume must not be in use by a
    /// running VM.
    pub fn restore_snapshot(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
    ) -> Result<SnapshotChange, ServiceError> {
        let _g = VOLUME_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let s = self.snapshot_in_scope(who, header, id, "snapshot.manage")?;
        Self::idle_snapshot(&s)?;
        self.hypervisor()?;
        let stopped = |vm: &Uuid| -> Result<(), ServiceError> {
            let vm = self.inner.vms.get(&uuid_key(vm))?.filter(|v| !v.deleting);
            match vm {
                Some(vm) if vm.status == VmStatus::Passive => Ok(()),
                Some(vm) => Err(invalid(format!(
                    "the VM must be stopped (passive) to restore a snapshot; it is {}",
                    vm.status.as_str()
                ))),
                None => Err(invalid("the snapshot's VM no longer exists")),
            }
        };
        match s.kind {
            SnapshotKind::Vm => {
                let vm = s.vm_id.ok_or_else(|| invalid("the snapshot names no VM"))?;
                stopped(&vm)?;
                let mut now_attached: Vec<u64> = self
                    .inner
                    .volumes
                    .by_index(Volume::BY_VM, &uuid_key(&vm))?
                    .iter()
                    .map(|v| v.id)
                    .collect();
                let mut then: Vec<u64> = s.disks.iter().filter_map(|d| d.volume_id).collect();
                now_attached.sort_unstable();
                then.sort_unstable();
                if now_attached != then {
                    return Err(invalid(format!(
                        "the VM held volumes {then:?} when the snapshot was taken and holds {now_attached:?} now: attach or detach volumes to match, so that no disk is left at another point in time"
                    )));
                }
                for v in &then {
                    let vol = self.inner.volumes.get(&Volume::key_of(*v))?;
                    if vol.is_some_and(|v| v.pending.is_some()) {
                        return Err(ServiceError::Conflict(format!(
                            "volume {v} is changing; retry when it is done"
                        )));
                    }
                }
            }
            SnapshotKind::Volume => {
                let v = s
                    .volume_id
                    .and_then(|v| self.inner.volumes.get(&Volume::key_of(v)).ok().flatten())
                    .ok_or_else(|| invalid("the snapshot's volume no longer exists"))?;
                if let Some(p) = &v.pending {
                    return Err(ServiceError::Conflict(format!(
                        "the volume is changing ({p}); retry when it is done"
                    )));
                }
                if let Some(vm) = v.vm_id {
                    stopped(&vm)?;
                }
            }
        }
        self.start_snapshot_change(id, "restore")
    }

    /// Re-reads a snapshot after its job (for answers that wait for the host).
    pub fn snapshot_after(&self, id: u64) -> Result<Option<Snapshot>, ServiceError> {
        Ok(self.inner.snapshots.get(&Snapshot::key_of(id))?)
    }

    /// The snapshot's hourly price: its source's provisioned size times the
    /// catalog's per-GB snapshot price.
    pub fn snapshot_price(&self, s: &Snapshot) -> String {
        let p = self.inner.catalog.snapshot_pricing.price_per_gb_hour * s.target_gib as f64;
        format!("{p:.6}")
    }
}
