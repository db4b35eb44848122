//! Block volumes: validation, project scoping, quotas, and the jobs that do the host
//! work (`volume_jobs`). A volume takes one change at a time: the record's `pending`
//! names the job that owns it, and every other change is refused until it ends.

use std::sync::Mutex;

use uuid::Uuid;

use super::volume_jobs::target_of;
use super::{check_name, invalid, Page, Paged, Principal, ServiceError, Services};
use crate::compute::volume::FILESYSTEMS;
use crate::jobs::NewJob;
use crate::model::{now, uuid_key, Vm, Volume, VolumeStatus};

/// Largest volume, as the contract's `extra_storage` bound (GB).
pub const MAX_VOLUME_GIB: i64 = 10_000;
/// Volumes one VM holds at most: targets `vdc` to `vdr`.
pub const MAX_VOLUMES_PER_VM: usize = 16;

/// Serialises the decisions that span records (which target a VM's next volume gets;
/// whether a volume is free): each request decides and records under it.
pub(crate) static VOLUME_LOCK: Mutex<()> = Mutex::new(());

/// A create request, as the API parsed it.
pub struct NewVolume {
    pub name: String,
    pub size_gib: i64,
    pub volume_type: String,
    pub filesystem: Option<String>,
    pub vm_id: Option<Uuid>,
    pub region: Option<String>,
}

/// A validated new volume, before it has an id.
struct Draft {
    name: String,
    size_gib: i64,
    filesystem: String,
    region: String,
}

/// The file system a volume is made with: `field`'s value, `ext4` when absent.
pub(crate) fn filesystem_or_default(
    given: Option<String>,
    field: &str,
) -> Result<String, ServiceError> {
    let fs = given.unwrap_or_else(|| "ext4".into());
    if !FILESYSTEMS.contains(&fs.as_str()) {
        return Err(invalid(format!("{field} must be ext4, xfs or btrfs")));
    }
    Ok(fs)
}

/// Where a volume change stands when the API answers.
pub struct VolumeChange {
    pub volume: Volume,
    /// The job doing it, for callers that wait.
    pub job: Uuid,
}

impl Services {
    /// A volume the caller may see with `perm`; any other answer is 404.
    pub(super) fn visible_volume(
        &self,
        who: &Principal,
        id: u64,
        perm: &str,
    ) -> Result<Volume, ServiceError> {
        who.require_somewhere(perm)?;
        match self.inner.volumes.get(&Volume::key_of(id))? {
            Some(v)
                if v.account_id == who.account_id
                    && v.status != VolumeStatus::Deleting
                    && who.require_in(&v.project_id, perm).is_ok() =>
            {
                Ok(v)
            }
            _ => Err(ServiceError::NotFound { kind: "volume" }),
        }
    }

    /// A volume for a change: the contract requires `X-Project-ID` naming its project.
    fn volume_in_scope(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
        perm: &str,
    ) -> Result<Volume, ServiceError> {
        let v = self.visible_volume(who, id, perm)?;
        self.header_names(who, header, &v.project_id, perm, "volume")?;
        Ok(v)
    }

    fn idle(v: &Volume) -> Result<(), ServiceError> {
        match &v.pending {
            Some(job) => Err(ServiceError::Conflict(format!(
                "the volume is busy ({job} under way); retry when it ends"
            ))),
            None => Ok(()),
        }
    }

    /// The volume's hourly price: its size times the catalog's per-GB price.
    pub fn volume_price(&self, v: &Volume) -> String {
        let p = self.inner.catalog.volume_pricing.price_per_gb_hour * v.size_gib as f64;
        format!("{p:.6}")
    }

    /// Submits job `volume.<kind>` for `v` on its target (`volume_jobs::target_of`).
    pub(super) fn submit_volume_job(
        &self,
        v: &Volume,
        kind: &str,
        extra: serde_json::Value,
    ) -> Result<Uuid, ServiceError> {
        let job = self.inner.jobs.submit(NewJob {
            kind: format!("volume.{kind}"),
            target: target_of(v),
            account_id: Some(v.account_id),
            project_id: Some(v.project_id),
            params: super::job_params(serde_json::json!({ "volume_id": v.id }), extra),
        })?;
        Ok(job.id)
    }

    /// Records that job `volume.<kind>` owns the volume (`change` applied with it),
    /// then submits that job. A crash in between leaves a record naming a job nobody
    /// runs, which the volume reconciler submits again.
    fn start_change(
        &self,
        id: u64,
        kind: &str,
        extra: serde_json::Value,
        change: impl Fn(&mut Volume),
    ) -> Result<VolumeChange, ServiceError> {
        let v = self
            .inner
            .volumes
            .update::<ServiceError>(&Volume::key_of(id), |v| {
                change(v);
                v.pending = Some(kind.into());
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "volume" })?;
        let job = self.submit_volume_job(&v, kind, extra)?;
        Ok(VolumeChange { volume: v, job })
    }

    /// The first free target on `vm` for one more volume.
    fn free_target(&self, vm: &Uuid) -> Result<String, ServiceError> {
        let used: Vec<String> = self
            .inner
            .volumes
            .by_index(Volume::BY_VM, &uuid_key(vm))?
            .into_iter()
            .filter_map(|v| v.device)
            .collect();
        if used.len() >= MAX_VOLUMES_PER_VM {
            return Err(ServiceError::Conflict(format!(
                "the VM holds {MAX_VOLUMES_PER_VM} volumes already"
            )));
        }
        (b'c'..=b'z')
            .map(|c| format!("vd{}", c as char))
            .find(|t| !used.contains(t))
            .ok_or_else(|| ServiceError::Conflict("no free device on the VM".into()))
    }

    /// The VM a volume is to be attached to: same project and region, not going away.
    fn attach_target(
        &self,
        who: &Principal,
        vm_id: &Uuid,
        project: &Uuid,
        region: &str,
    ) -> Result<Vm, ServiceError> {
        let vm = self
            .visible_vm(who, vm_id, "vm.view")
            .ok()
            .filter(|vm| vm.project_id == *project)
            .ok_or_else(|| invalid(format!("no VM {vm_id} in this project")))?;
        if vm.region != region {
            return Err(invalid(format!(
                "the VM is in region {}, the volume in {region}",
                vm.region
            )));
        }
        Ok(vm)
    }

    pub fn create_volume(
        &self,
        who: &Principal,
        header: Option<&str>,
        new: NewVolume,
    ) -> Result<VolumeChange, ServiceError> {
        let project = self.project_scope(who, header, "volume.create")?;
        let name = check_name(&new.name, 64)?;
        if new.volume_type != "nvme" {
            return Err(invalid("volume_type must be nvme"));
        }
        if new.size_gib < 1 || new.size_gib > MAX_VOLUME_GIB {
            return Err(invalid(format!("size must be 1 to {MAX_VOLUME_GIB} GB")));
        }
        let filesystem = filesystem_or_default(new.filesystem, "filesystem_type")?;
        let region = new.region.unwrap_or_else(|| project.default_region.clone());
        if !self.inner.catalog.regions.iter().any(|r| r.code == region) {
            return Err(invalid(format!("unknown region {region:?}")));
        }
        self.hypervisor()?;
        let _g = VOLUME_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let (vm, device) = match &new.vm_id {
            Some(vm_id) => {
                let vm = self.attach_target(who, vm_id, &project.id, &region)?;
                who.require_in(&project.id, "volume.manage")?;
                let t = self.free_target(&vm.id)?;
                (Some(vm), Some(t))
            }
            None => (None, None),
        };
        self.admit_storage(&who.account_id, new.size_gib as u64)?;
        let draft = Draft {
            name,
            size_gib: new.size_gib,
            filesystem,
            region,
        };
        let attach = vm.map(|vm| vm.id).zip(device);
        self.record_volume(who, &project.id, draft, attach)
    }

    /// Records a new volume (admitted already) and queues the job that makes it and,
    /// given a VM and a target on it, plugs it in.
    fn record_volume(
        &self,
        who: &Principal,
        project: &Uuid,
        d: Draft,
        attach: Option<(Uuid, String)>,
    ) -> Result<VolumeChange, ServiceError> {
        let t = now();
        let (vm_id, device) = attach.unzip();
        let v = Volume {
            id: self.inner.store.next_id("volume")?,
            account_id: who.account_id,
            project_id: *project,
            name: d.name,
            size_gib: d.size_gib,
            filesystem: d.filesystem,
            region: d.region,
            status: VolumeStatus::Creating,
            vm_id,
            device,
            pending: Some("create".into()),
            error: None,
            created_by: who.user_id,
            created_at: t,
            updated_at: t,
        };
        self.inner.volumes.create(&v)?;
        let job = self.submit_volume_job(&v, "create", serde_json::json!({}))?;
        Ok(VolumeChange { volume: v, job })
    }

    pub fn list_volumes(
        &self,
        who: &Principal,
        project: Option<&Uuid>,
        vm: Option<&Uuid>,
        region: Option<&str>,
        page: Page,
    ) -> Result<Paged<Volume>, ServiceError> {
        if let Some(r) = region {
            if !self.inner.catalog.regions.iter().any(|x| x.code == r) {
                return Err(invalid(format!("unknown region {r:?}")));
            }
        }
        let mut all = Vec::new();
        for p in self.projects_for_list(who, project)? {
            if who.require_in(&p, "volume.view").is_err() {
                continue;
            }
            all.extend(
                self.inner
                    .volumes
                    .by_index(Volume::BY_PROJECT, &uuid_key(&p))?
                    .into_iter()
                    .filter(|v| v.status != VolumeStatus::Deleting)
                    .filter(|v| vm.is_none_or(|m| v.vm_id.as_ref() == Some(m)))
                    .filter(|v| region.is_none_or(|r| v.region == r)),
            );
        }
        all.sort_by_key(|v| v.id);
        Ok(Paged::of(all, page))
    }

    /// A volume by id; the header must name its project (the contract marks it
    /// required on this read too, as on a security group's).
    pub fn get_volume(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
    ) -> Result<Volume, ServiceError> {
        self.volume_in_scope(who, header, id, "volume.view")
    }

    pub fn delete_volume(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
    ) -> Result<Volume, ServiceError> {
        let _g = VOLUME_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let v = self.volume_in_scope(who, header, id, "volume.delete")?;
        Self::idle(&v)?;
        if v.vm_id.is_some() {
            return Err(invalid(
                "the volume is attached to a VM: detach it before deleting it",
            ));
        }
        let held = self.snapshots_of_volume(id)?;
        if held > 0 {
            return Err(invalid(format!(
                "{held} snapshot(s) hold a copy of the volume inside its file: delete them before the volume"
            )));
        }
        let change = self.start_change(id, "delete", serde_json::json!({}), |v| {
            v.status = VolumeStatus::Deleting;
        })?;
        Ok(change.volume)
    }

    /// Grows a volume, attached (the guest sees the new size at once) or not.
    pub fn resize_volume(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
        new_size: i64,
    ) -> Result<VolumeChange, ServiceError> {
        let _g = VOLUME_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let v = self.volume_in_scope(who, header, id, "volume.manage")?;
        if new_size <= v.size_gib {
            return Err(invalid(format!(
                "new_size must be larger than the current {} GB: volumes never shrink",
                v.size_gib
            )));
        }
        if new_size > MAX_VOLUME_GIB {
            return Err(invalid(format!(
                "new_size must be at most {MAX_VOLUME_GIB} GB"
            )));
        }
        Self::idle(&v)?;
        self.no_snapshot_job_on_volume(id)?;
        if v.status == VolumeStatus::Failed {
            return Err(invalid("the volume failed to be created; delete it"));
        }
        self.hypervisor()?;
        self.admit_storage(&who.account_id, (new_size - v.size_gib) as u64)?;
        self.start_change(
            id,
            "resize",
            serde_json::json!({ "size_gib": new_size }),
            |_| {},
        )
    }

    pub fn attach_volume(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
        vm_id: &Uuid,
    ) -> Result<VolumeChange, ServiceError> {
        let _g = VOLUME_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let v = self.volume_in_scope(who, header, id, "volume.manage")?;
        let vm = self.attach_target(who, vm_id, &v.project_id, &v.region)?;
        Self::idle(&v)?;
        self.no_snapshot_job_on_volume(id)?;
        match v.status {
            VolumeStatus::Available => {}
            VolumeStatus::Attached => {
                return Err(invalid(
                    "the volume is attached to a VM already: detach it first",
                ))
            }
            other => {
                return Err(invalid(format!(
                    "the volume is {} and cannot be attached",
                    other.as_str()
                )))
            }
        }
        self.hypervisor()?;
        let device = self.free_target(&vm.id)?;
        self.start_change(id, "attach", serde_json::json!({}), |v| {
            v.vm_id = Some(vm.id);
            v.device = Some(device.clone());
        })
    }

    pub fn detach_volume(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
    ) -> Result<VolumeChange, ServiceError> {
        let _g = VOLUME_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let v = self.volume_in_scope(who, header, id, "volume.manage")?;
        Self::idle(&v)?;
        self.no_snapshot_job_on_volume(id)?;
        if v.vm_id.is_none() {
            return Err(invalid("the volume is not attached to a VM"));
        }
        self.hypervisor()?;
        self.start_change(id, "detach", serde_json::json!({}), |_| {})
    }

    /// The `extra_storage` of a new VM (admitted with it): a volume made and plugged
    /// in once the VM runs.
    pub(crate) fn extra_storage_for(
        &self,
        who: &Principal,
        vm: &Vm,
        size_gib: i64,
        filesystem: String,
    ) -> Result<(), ServiceError> {
        let _g = VOLUME_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let device = self.free_target(&vm.id)?;
        let mut name = format!("{}-storage", vm.name);
        if name.chars().count() > 64 {
            name = format!("storage-{}", vm.id);
        }
        let draft = Draft {
            name,
            size_gib,
            filesystem,
            region: vm.region.clone(),
        };
        self.record_volume(who, &vm.project_id, draft, Some((vm.id, device)))
            .map(|_| ())
    }

    /// Re-reads a volume after its job (for answers that wait for the host).
    pub fn volume_after(&self, id: u64) -> Result<Option<Volume>, ServiceError> {
        Ok(self.inner.volumes.get(&Volume::key_of(id))?)
    }
}
