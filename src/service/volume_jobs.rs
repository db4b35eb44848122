//! The jobs that change volumes on the host: make the file, plug it into a VM and out
//! again, grow it, remove it. Attach and detach run on the VM's job target, so they
//! never interleave with its power jobs. Each step is safe to repeat: a job a crash
//! interrupted runs again from the start and finds what the first attempt made. The
//! record's `pending` says which job owns the volume; a job that finds another (or
//! none) has nothing to do.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::remove_if_present;
use super::vm_jobs::VmHost;
use crate::compute::{disk, volume, VolumeDisk};
use crate::jobs::{JobContext, JobHandler};
use crate::model::{now, uuid_key, Vm, Volume, VolumeStatus};
use crate::store::StoreError;

pub(crate) const KINDS: &[&str] = &[
    "volume.create",
    "volume.attach",
    "volume.detach",
    "volume.resize",
    "volume.delete",
];

/// How long a guest may take to let go of an unplugged disk.
const DETACH_WAIT: Duration = Duration::from_secs(60);
/// A detach request is repeated this often while the guest has not acted on it.
const DETACH_RETRY: Duration = Duration::from_secs(10);

pub(crate) struct VolumeJob {
    pub kind: &'static str,
    pub host: std::sync::Arc<VmHost>,
}

impl JobHandler for VolumeJob {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn resumable(&self) -> bool {
        true
    }

    fn run(&self, ctx: &JobContext) -> Result<(), String> {
        let id = ctx.params()["volume_id"]
            .as_u64()
            .ok_or("job has no volume_id")?;
        let h = &self.host;
        match self.kind {
            "volume.create" => h.volume_create(id),
            "volume.attach" => h.volume_attach(id),
            "volume.detach" => h.volume_detach(id),
            "volume.resize" => {
                let size = ctx.params()["size_gib"]
                    .as_u64()
                    .ok_or("job has no size_gib")?;
                h.volume_resize(id, size)
            }
            "volume.delete" => h.volume_delete(id),
            other => Err(format!("unknown volume job {other}")),
        }
    }
}

/// The job target of a change of `v`: its VM's while it has one (attach, detach and
/// a resize of an attached volume never interleave with the VM's power jobs), else
/// its own.
pub(super) fn target_of(v: &Volume) -> String {
    match v.vm_id {
        Some(vm) => format!("vm/{vm}"),
        None => format!("volume/{}", v.id),
    }
}

impl VmHost {
    fn volume(&self, id: u64) -> Result<Option<Volume>, String> {
        self.volumes
            .get(&Volume::key_of(id))
            .map_err(|e| e.to_string())
    }

    /// The volume if job `kind` owns it now.
    fn owned(&self, id: u64, kind: &str) -> Result<Option<Volume>, String> {
        Ok(self
            .volume(id)?
            .filter(|v| v.pending.as_deref() == Some(kind)))
    }

    fn set_volume(&self, id: u64, f: impl Fn(&mut Volume)) -> Result<(), String> {
        self.volumes
            .update::<StoreError>(&Volume::key_of(id), |v| {
                f(v);
                v.updated_at = now();
                Ok(())
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn disk_of(&self, v: &Volume) -> Option<VolumeDisk> {
        Some(VolumeDisk {
            path: self.volume_path(v.id),
            target: v.device.clone()?,
            serial: v.serial(),
        })
    }

    pub(super) fn volume_create(&self, id: u64) -> Result<(), String> {
        let Some(v) = self.owned(id, "create")? else {
            return Ok(());
        };
        let path = self.volume_path(id);
        if !path.exists() {
            let made = std::fs::create_dir_all(&self.volume_root)
                .map_err(|e| format!("creating {}: {e}", self.volume_root.display()))
                .and_then(|_| {
                    volume::create(&path, v.size_gib as u64, &v.filesystem, &format!("vol{id}"))
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = made {
                self.set_volume(id, |v| {
                    v.status = VolumeStatus::Failed;
                    v.pending = None;
                    v.vm_id = None;
                    v.device = None;
                    v.error = Some(e.clone());
                })?;
                return Err(e);
            }
        }
        if v.vm_id.is_some() {
            // Created for a VM: the same job plugs it in.
            self.set_volume(id, |v| v.pending = Some("attach".into()))?;
            return self.volume_attach(id);
        }
        self.set_volume(id, |v| {
            v.status = VolumeStatus::Available;
            v.pending = None;
            v.error = None;
        })
    }

    pub(super) fn volume_attach(&self, id: u64) -> Result<(), String> {
        let Some(v) = self.owned(id, "attach")? else {
            return Ok(());
        };
        let attached = (|| {
            let vm_id = v.vm_id.ok_or("no VM to attach to")?;
            let vm = self.load(&vm_id)?;
            if vm.deleting {
                return Err("the VM is being deleted".to_string());
            }
            let disk = self.disk_of(&v).ok_or("no device assigned")?;
            self.define(&vm)?;
            let name = vm.domain_name();
            if let Some(live) = self.hv.live_disks(&name).map_err(|e| e.to_string())? {
                if !live.contains(&disk.target) {
                    self.hv
                        .attach_disk(&name, &disk)
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        })();
        match attached {
            Ok(()) => self.set_volume(id, |v| {
                v.status = VolumeStatus::Attached;
                v.pending = None;
                v.error = None;
            }),
            Err(e) => {
                let vm = v.vm_id;
                self.set_volume(id, |v| {
                    v.status = VolumeStatus::Available;
                    v.pending = None;
                    v.vm_id = None;
                    v.device = None;
                    v.error = Some(format!("attach failed: {e}"));
                })?;
                // The VM's definition goes back to what it was.
                if let Some(vm) = vm.and_then(|id| self.load(&id).ok()) {
                    if !vm.deleting {
                        let _ = self.define(&vm);
                    }
                }
                Err(e)
            }
        }
    }

    pub(super) fn volume_detach(&self, id: u64) -> Result<(), String> {
        let Some(v) = self.owned(id, "detach")? else {
            return Ok(());
        };
        let detached = (|| {
            let Some(vm_id) = v.vm_id else {
                return Ok(());
            };
            let Some(vm) = self.vms.get(&uuid_key(&vm_id)).map_err(|e| e.to_string())? else {
                return Ok(());
            };
            let Some(disk) = self.disk_of(&v) else {
                return Ok(());
            };
            self.define(&vm)?;
            self.unplug(&vm.domain_name(), &disk)
        })();
        match detached {
            Ok(()) => self.set_volume(id, |v| {
                v.status = VolumeStatus::Available;
                v.pending = None;
                v.vm_id = None;
                v.device = None;
                v.error = None;
            }),
            Err(e) => {
                self.set_volume(id, |v| {
                    v.pending = None;
                    v.error = Some(format!("detach failed: {e}"));
                })?;
                // Still attached: the definition keeps it too.
                if let Some(vm) = v.vm_id.and_then(|id| self.load(&id).ok()) {
                    let _ = self.define(&vm);
                }
                Err(e)
            }
        }
    }

    /// Unplugs `disk` from the running domain and waits until the guest let go.
    fn unplug(&self, name: &str, disk: &VolumeDisk) -> Result<(), String> {
        let gone = |hv: &dyn crate::compute::Hypervisor| -> Result<bool, String> {
            Ok(hv
                .live_disks(name)
                .map_err(|e| e.to_string())?
                .is_none_or(|l| !l.contains(&disk.target)))
        };
        if gone(self.hv.as_ref())? {
            return Ok(());
        }
        self.hv.detach_disk(name, disk).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut asked = start;
        loop {
            if gone(self.hv.as_ref())? {
                return Ok(());
            }
            if start.elapsed() >= DETACH_WAIT {
                return Err(format!(
                    "the guest did not release {} within {} s; unmount it inside the guest and detach again",
                    disk.target,
                    DETACH_WAIT.as_secs()
                ));
            }
            if asked.elapsed() >= DETACH_RETRY {
                // A guest that missed the request (still booting) gets it again.
                let _ = self.hv.detach_disk(name, disk);
                asked = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub(super) fn volume_resize(&self, id: u64, size_gib: u64) -> Result<(), String> {
        let Some(v) = self.owned(id, "resize")? else {
            return Ok(());
        };
        let path = self.volume_path(id);
        let grown = (|| {
            let live = match (v.vm_id, &v.device) {
                (Some(vm), Some(target)) => {
                    let name = Vm::domain_name_of(&vm);
                    let disks = self.hv.live_disks(&name).map_err(|e| e.to_string())?;
                    disks
                        .is_some_and(|d| d.contains(target))
                        .then(|| (name, target.clone()))
                }
                _ => None,
            };
            let want = size_gib << 30;
            match live {
                // QEMU grows the image and tells the guest.
                Some((name, target)) => self
                    .hv
                    .block_resize(&name, &target, want)
                    .map_err(|e| e.to_string()),
                None => {
                    if disk::virtual_size(&path, disk::Format::Qcow2).map_err(|e| e.to_string())?
                        < want
                    {
                        disk::grow(&path, size_gib).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                }
            }
        })();
        match grown {
            Ok(()) => self.set_volume(id, |v| {
                v.size_gib = size_gib as i64;
                v.pending = None;
                v.error = None;
            }),
            Err(e) => {
                self.set_volume(id, |v| {
                    v.pending = None;
                    v.error = Some(format!("resize failed: {e}"));
                })?;
                Err(e)
            }
        }
    }

    pub(super) fn volume_delete(&self, id: u64) -> Result<(), String> {
        let Some(v) = self.owned(id, "delete")? else {
            return Ok(());
        };
        self.remove_volume(&v)
    }

    fn remove_volume(&self, v: &Volume) -> Result<(), String> {
        let path = self.volume_path(v.id);
        for p in [
            path.clone(),
            path.with_extension("raw"),
            path.with_extension("qcow2.tmp"),
        ] {
            remove_if_present(&p)?;
        }
        self.volumes
            .delete(&Volume::key_of(v.id))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// After a VM's domain is gone: its volumes are detached, or deleted with it.
    pub(super) fn release_volumes(&self, vm: &Uuid, delete: bool) -> Result<(), String> {
        let held = self
            .volumes
            .by_index(Volume::BY_VM, &uuid_key(vm))
            .map_err(|e| e.to_string())?;
        for v in held {
            if delete {
                self.remove_volume(&v)?;
            } else {
                self.set_volume(v.id, |v| {
                    v.status = VolumeStatus::Available;
                    v.vm_id = None;
                    v.device = None;
                    v.pending = None;
                })?;
            }
        }
        Ok(())
    }
}
