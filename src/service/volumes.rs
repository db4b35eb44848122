//! Block volumes: validation, project scoping, quotas, and the jobs that do the host
//! work (`volume_jobs`). A volume takes one change at a time: the record's `pending`
//! names the job that owns it, and every other change is refused until it ends.

use std::sync::Mutex;

use uuid::Uuid;

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

/// Where a volume change stands when the API answers.
pub struct VolumeChange {
    pub volume: Volume,
    /// The job doing it, for callers that wait.
    pub job: Uuid,
}

impl Services {
    /// A volume the caller may see with `perm`; any other answer is 404.
    fn visible_volume(&self, who: &Principal, id: u64, perm: &str) -> Result<Volume, ServiceError> {
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

    fn submit_volume_job(
        &self,
        v: &Volume,
        kind: &str,
        target: String,
        extra: serde_json::Value,
    ) -> Result<Uuid, ServiceError> {
        let mut params = serde_json::json!({ "volume_id": v.id });
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        let job = self.inner.jobs.submit(NewJob {
            kind: kind.into(),
            target,
            account_id: Some(v.account_id),
            project_id: Some(v.project_id),
            params,
        })?;
        Ok(job.id)
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
        let filesystem = new.filesystem.unwrap_or_else(|| "ext4".into());
        if !FILESYSTEMS.contains(&filesystem.as_str()) {
            return Err(invalid("filesystem_type must be ext4, xfs or btrfs"));
        }
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
        self.record_volume(
            who,
            &project.id,
            name,
            new.size_gib,
            filesystem,
            region,
            vm.as_ref(),
            device,
        )
    }

    /// Records a new volume (admitted already) and queues the job that makes it and,
    /// given a VM and a target on it, plugs it in.
    #[allow(clippy::too_many_arguments)]
    fn record_volume(
        &self,
        who: &Principal,
        project: &Uuid,
        name: String,
        size_gib: i64,
        filesystem: String,
        region: String,
        vm: Option<&Vm>,
        device: Option<String>,
    ) -> Result<VolumeChange, ServiceError> {
        let t = now();
        let v = Volume {
            id: self.inner.store.next_id("volume")?,
            account_id: who.account_id,
            project_id: *project,
            name,
            size_gib,
            filesystem,
            region,
            status: VolumeStatus::Creating,
            vm_id: vm.map(|vm| vm.id),
            device,
            pending: Some("create".into()),
            error: None,
            created_by: who.user_id,
            created_at: t,
            updated_at: t,
        };
        self.inner.volumes.create(&v)?;
        let target = match vm {
            Some(vm) => format!("vm/{}", vm.id),
            None => format!("volume/{}", v.id),
        };
        let job = self.submit_volume_job(&v, "volume.create", target, serde_json::json!({}))?;
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

    /// The volumes attached to a VM (for its page and its networks' neighbours).
    pub fn vm_volumes(&self, who: &Principal, vm: &Uuid) -> Result<Vec<Volume>, ServiceError> {
        let vm = self.visible_vm(who, vm, "vm.view")?;
        let mut v = self
            .inner
            .volumes
            .by_index(Volume::BY_VM, &uuid_key(&vm.id))?;
        v.sort_by_key(|v| v.id);
        Ok(v)
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
        let v = self
            .inner
            .volumes
            .update::<ServiceError>(&Volume::key_of(id), |v| {
                v.status = VolumeStatus::Deleting;
                v.pending = Some("delete".into());
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "volume" })?;
        self.submit_volume_job(
            &v,
            "volume.delete",
            format!("volume/{id}"),
            serde_json::json!({}),
        )?;
        Ok(v)
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
        if v.status == VolumeStatus::Failed {
            return Err(invalid("the volume failed to be created; delete it"));
        }
        self.hypervisor()?;
        self.admit_storage(&who.account_id, (new_size - v.size_gib) as u64)?;
        let v = self.claim(id, "resize")?;
        let target = match v.vm_id {
            Some(vm) => format!("vm/{vm}"),
            None => format!("volume/{id}"),
        };
        let job = self.submit_volume_job(
            &v,
            "volume.resize",
            target,
            serde_json::json!({ "size_gib": new_size }),
        )?;
        Ok(VolumeChange { volume: v, job })
    }

    /// Marks the volume as owned by job `kind`.
    fn claim(&self, id: u64, kind: &str) -> Result<Volume, ServiceError> {
        self.inner
            .volumes
            .update::<ServiceError>(&Volume::key_of(id), |v| {
                v.pending = Some(kind.into());
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "volume" })
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
        if vm.deleting {
            return Err(invalid(format!("no VM {vm_id} in this project")));
        }
        self.hypervisor()?;
        let device = self.free_target(&vm.id)?;
        let v = self
            .inner
            .volumes
            .update::<ServiceError>(&Volume::key_of(id), |v| {
                v.vm_id = Some(vm.id);
                v.device = Some(device.clone());
                v.pending = Some("attach".into());
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "volume" })?;
        let job = self.submit_volume_job(
            &v,
            "volume.attach",
            format!("vm/{}", vm.id),
            serde_json::json!({ "vm_id": vm.id }),
        )?;
        Ok(VolumeChange { volume: v, job })
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
        let Some(vm) = v.vm_id else {
            return Err(invalid("the volume is not attached to a VM"));
        };
        self.hypervisor()?;
        let v = self.claim(id, "detach")?;
        let job = self.submit_volume_job(
            &v,
            "volume.detach",
            format!("vm/{vm}"),
            serde_json::json!({ "vm_id": vm }),
        )?;
        Ok(VolumeChange { volume: v, job })
    }

    /// The `extra_storage` of a new VM (admitted with it): a volume made and plugged
    /// in once the VM runs.
    pub(crate) fn extra_storage_for(
        &self,
        who: &Principal,
        vm: &Vm,
        size_gib: i64,
        filesystem: String,
    ) -> Result<Volume, ServiceError> {
        let _g = VOLUME_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let device = self.free_target(&vm.id)?;
        let mut name = format!("{}-storage", vm.name);
        if name.chars().count() > 64 {
            name = format!("storage-{}", vm.id);
        }
        Ok(self
            .record_volume(
                who,
                &vm.project_id,
                name,
                size_gib,
                filesystem,
                vm.region.clone(),
                Some(vm),
                Some(device),
            )?
            .volume)
    }

    /// Re-reads a volume after its job (for answers that wait for the host).
    pub fn volume_after(&self, id: u64) -> Result<Option<Volume>, ServiceError> {
        Ok(self.inner.volumes.get(&Volume::key_of(id))?)
    }
}
