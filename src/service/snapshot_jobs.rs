//! The jobs that take, restore and delete snapshots on the host. A snapshot is an
//! internal qcow2 snapshot with the same tag in each of its disks' files (decision
//! 0010). A VM snapshot's job runs on the VM's job target, so it never interleaves
//! with its power jobs or volume changes. Each step is safe to repeat: a job a crash
//! interrupted runs again and finds what the first attempt did.

use std::path::PathBuf;

use uuid::Uuid;

use super::vm_jobs::VmHost;
use crate::compute::disk;
use crate::jobs::{JobContext, JobHandler};
use crate::model::{now, uuid_key, Snapshot, SnapshotDisk, SnapshotKind, Vm, Volume, VolumeStatus};
use crate::store::StoreError;

pub(crate) const KINDS: &[&str] = &["snapshot.create", "snapshot.restore", "snapshot.delete"];

pub(crate) struct SnapshotJob {
    pub kind: &'static str,
    pub host: std::sync::Arc<VmHost>,
}

impl JobHandler for SnapshotJob {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn resumable(&self) -> bool {
        true
    }

    fn run(&self, ctx: &JobContext) -> Result<(), String> {
        let id = ctx.params()["snapshot_id"]
            .as_u64()
            .ok_or("job has no snapshot_id")?;
        let h = &self.host;
        match self.kind {
            "snapshot.create" => h.snapshot_create(id),
            "snapshot.restore" => h.snapshot_restore(id),
            "snapshot.delete" => h.snapshot_delete(id),
            other => Err(format!("unknown snapshot job {other}")),
        }
    }
}

/// The job target of a change of `s`: its VM's for a VM snapshot, else its volume's
/// (`volume_jobs::target_of`).
pub(super) fn snapshot_target(s: &Snapshot, volume: Option<&Volume>) -> String {
    match (s.kind, s.vm_id, volume) {
        (SnapshotKind::Vm, Some(vm), _) => format!("vm/{vm}"),
        (_, _, Some(v)) => super::volume_jobs::target_of(v),
        _ => format!("snapshot/{}", s.id),
    }
}

/// Where one disk of a snapshot is now: its file and, when a running guest has it
/// plugged in, that domain and the disk's target there.
struct DiskHome {
    path: PathBuf,
    live: Option<(String, String)>,
}

impl VmHost {
    fn snapshot(&self, id: u64) -> Result<Option<Snapshot>, String> {
        self.snapshots
            .get(&Snapshot::key_of(id))
            .map_err(|e| e.to_string())
    }

    fn owned_snapshot(&self, id: u64, kind: &str) -> Result<Option<Snapshot>, String> {
        Ok(self
            .snapshot(id)?
            .filter(|s| s.pending.as_deref() == Some(kind)))
    }

    fn set_snapshot(&self, id: u64, f: impl Fn(&mut Snapshot)) -> Result<(), String> {
        self.snapshots
            .update::<StoreError>(&Snapshot::key_of(id), |s| {
                f(s);
                s.updated_at = now();
                Ok(())
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The targets a running domain has plugged in; `None` when it does not run.
    fn live_targets(&self, domain: &str) -> Result<Option<Vec<String>>, String> {
        self.hv.live_disks(domain).map_err(|e| e.to_string())
    }

    /// Where `d` (a disk of `s`) is now; `None` when its file is gone with its VM
    /// or volume.
    fn home(&self, s: &Snapshot, d: &SnapshotDisk) -> Result<Option<DiskHome>, String> {
        let (path, plugged) = match d.volume_id {
            None => {
                let Some(vm) = s.vm_id else {
                    return Ok(None);
                };
                (
                    self.dir(&vm).join("disk.qcow2"),
                    Some((Vm::domain_name_of(&vm), "vda".to_string())),
                )
            }
            Some(v) => {
                let Some(vol) = self
                    .volumes
                    .get(&Volume::key_of(v))
                    .map_err(|e| e.to_string())?
                else {
                    return Ok(None);
                };
                let plugged = vol
                    .vm_id
                    .zip(vol.device)
                    .map(|(vm, t)| (Vm::domain_name_of(&vm), t));
                (self.volume_path(v), plugged)
            }
        };
        if !path.exists() {
            return Ok(None);
        }
        let live = match plugged {
            Some((domain, target)) => self
                .live_targets(&domain)?
                .filter(|l| l.contains(&target))
                .map(|_| (domain, target)),
            None => None,
        };
        Ok(Some(DiskHome { path, live }))
    }

    /// The disks a new snapshot of `s`'s source takes now, each with its file, and
    /// the domain running them (if it runs).
    #[allow(clippy::type_complexity)]
    fn source_disks(
        &self,
        s: &Snapshot,
    ) -> Result<(Vec<(SnapshotDisk, PathBuf)>, Option<String>), String> {
        let size =
            |p: &PathBuf| disk::virtual_size(p, disk::Format::Qcow2).map_err(|e| e.to_string());
        let mut out = Vec::new();
        let domain = match s.kind {
            SnapshotKind::Vm => {
                let vm = self.load(&s.vm_id.ok_or("the snapshot names no VM")?)?;
                let root = self.dir(&vm.id).join("disk.qcow2");
                out.push((
                    SnapshotDisk {
                        volume_id: None,
                        target: "vda".into(),
                        size_bytes: size(&root)?,
                    },
                    root,
                ));
                let mut vols = self
                    .volumes
                    .by_index(Volume::BY_VM, &uuid_key(&vm.id))
                    .map_err(|e| e.to_string())?;
                vols.sort_by_key(|v| v.device.clone().map(|d| (d.len(), d)));
                for v in vols {
                    if v.status != VolumeStatus::Attached {
                        continue;
                    }
                    let (Some(target), None) = (v.device.clone(), v.pending.as_ref()) else {
                        return Err(format!(
                            "volume {} is changing; retry when it is done",
                            v.id
                        ));
                    };
                    let p = self.volume_path(v.id);
                    out.push((
                        SnapshotDisk {
                            volume_id: Some(v.id),
                            target,
                            size_bytes: size(&p)?,
                        },
                        p,
                    ));
                }
                vm.domain_name()
            }
            SnapshotKind::Volume => {
                let id = s.volume_id.ok_or("the snapshot names no volume")?;
                let v = self
                    .volumes
                    .get(&Volume::key_of(id))
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("volume {id} no longer exists"))?;
                let p = self.volume_path(id);
                out.push((
                    SnapshotDisk {
                        volume_id: Some(id),
                        target: v.device.clone().unwrap_or_default(),
                        size_bytes: size(&p)?,
                    },
                    p,
                ));
                match v.vm_id.filter(|_| v.status == VolumeStatus::Attached) {
                    Some(vm) => Vm::domain_name_of(&vm),
                    None => return Ok((out, None)),
                }
            }
        };
        let Some(live) = self.live_targets(&domain)? else {
            return Ok((out, None));
        };
        if let Some((d, _)) = out.iter().find(|(d, _)| !live.contains(&d.target)) {
            return Err(format!(
                "disk {} is not plugged into the running VM; retry when it is",
                d.target
            ));
        }
        Ok((out, Some(domain)))
    }

    /// Deletes tag `tag` from a disk wherever it is now (live or at rest); a disk
    /// without it (an earlier attempt removed it) is left alone. The file is read
    /// again after: a tag still there is an error, never a record dropped over it.
    fn drop_tag(&self, home: &DiskHome, tag: &str) -> Result<(), String> {
        let held = || -> Result<bool, String> {
            Ok(disk::snapshot_tags(&home.path)
                .map_err(|e| e.to_string())?
                .iter()
                .any(|t| t == tag))
        };
        if !held()? {
            return Ok(());
        }
        match &home.live {
            Some((domain, target)) => self.hv.delete_snapshot_running(domain, target, tag),
            None => disk::snapshot_delete(&home.path, tag),
        }
        .map_err(|e| e.to_string())?;
        if held()? {
            return Err(format!(
                "snapshot {tag} is still in {} after it was deleted",
                home.path.display()
            ));
        }
        Ok(())
    }

    pub(super) fn snapshot_create(&self, id: u64) -> Result<(), String> {
        let Some(s) = self.owned_snapshot(id, "create")? else {
            return Ok(());
        };
        let tag = s.tag();
        let taken = (|| {
            let (disks, domain) = self.source_disks(&s)?;
            let has = |p: &PathBuf| -> Result<bool, String> {
                Ok(disk::snapshot_tags(p)
                    .map_err(|e| e.to_string())?
                    .contains(&tag))
            };
            let consistency = match domain {
                Some(domain) => {
                    // One instant for all disks: a part an earlier attempt took goes first.
                    for (d, p) in &disks {
                        if has(p)? {
                            self.hv
                                .delete_snapshot_running(&domain, &d.target, &tag)
                                .map_err(|e| e.to_string())?;
                        }
                    }
                    let targets: Vec<String> =
                        disks.iter().map(|(d, _)| d.target.clone()).collect();
                    let frozen = self
                        .hv
                        .snapshot_running(&domain, &targets, &tag)
                        .map_err(|e| e.to_string())?;
                    if frozen {
                        "application"
                    } else {
                        "crash"
                    }
                }
                None => {
                    for (_, p) in &disks {
                        if !has(p)? {
                            disk::snapshot_create(p, &tag).map_err(|e| e.to_string())?;
                        }
                    }
                    "offline"
                }
            };
            let mut stored = 0;
            for (_, p) in &disks {
                stored += disk::allocated_bytes(p).map_err(|e| e.to_string())?;
            }
            let total: u64 = disks.iter().map(|(d, _)| d.size_bytes).sum();
            let disks: Vec<SnapshotDisk> = disks.into_iter().map(|(d, _)| d).collect();
            // The source now runs on from the fresh snapshot, not the one restored.
            for other in self.sibling_snapshots(&s)? {
                if other.active {
                    self.set_snapshot(other.id, |o| o.active = false)?;
                }
            }
            self.set_snapshot(id, |s| {
                s.disks = disks.clone();
                s.consistency = Some(consistency.into());
                s.stored_bytes = stored;
                s.target_gib = total.div_ceil(1 << 30) as i64;
                s.pending = None;
                s.error = None;
            })
        })();
        if let Err(e) = &taken {
            // Nothing half-taken stays: the tag goes from every disk that got it, and
            // the record with it.
            tracing::warn!(snapshot = id, error = %e, "snapshot failed");
            if let Ok((disks, _)) = self.source_disks(&s) {
                for (d, _) in disks {
                    if let Ok(Some(home)) = self.home(&s, &d) {
                        if let Err(e) = self.drop_tag(&home, &tag) {
                            tracing::warn!(snapshot = id, error = %e, "cannot remove a partial snapshot");
                        }
                    }
                }
            }
            self.snapshots
                .delete(&Snapshot::key_of(id))
                .map_err(|e| e.to_string())?;
        }
        taken
    }

    pub(super) fn snapshot_restore(&self, id: u64) -> Result<(), String> {
        let Some(s) = self.owned_snapshot(id, "restore")? else {
            return Ok(());
        };
        let tag = s.tag();
        let restored = (|| {
            // Every disk is checked before any is touched: a restore never leaves a VM
            // with disks from two points in time.
            let mut homes = Vec::new();
            for d in &s.disks {
                let home = self
                    .home(&s, d)?
                    .ok_or_else(|| format!("disk {} is gone", d.target))?;
                if home.live.is_some() {
                    return Err(format!(
                        "disk {} is in use by a running VM: stop it first",
                        d.target
                    ));
                }
                if !disk::snapshot_tags(&home.path)
                    .map_err(|e| e.to_string())?
                    .contains(&tag)
                {
                    return Err(format!("disk {} no longer holds the snapshot", d.target));
                }
                homes.push((d, home));
            }
            if s.kind == SnapshotKind::Vm {
                let vm = self.load(&s.vm_id.ok_or("the snapshot names no VM")?)?;
                if self.live_targets(&vm.domain_name())?.is_some() {
                    return Err("the VM is running: stop it first".into());
                }
            }
            for (d, home) in &homes {
                // Bitmaps say what changed since a backup; after a revert they lie.
                disk::remove_bitmaps(&home.path).map_err(|e| e.to_string())?;
                disk::snapshot_apply(&home.path, &tag).map_err(|e| e.to_string())?;
                // A disk grown since keeps its size: the snapshot's bytes, zeros after.
                let want = self.current_gib(&s, d)?;
                if disk::virtual_size(&home.path, disk::Format::Qcow2).map_err(|e| e.to_string())?
                    < want << 30
                {
                    disk::grow(&home.path, want).map_err(|e| e.to_string())?;
                }
            }
            if let Some(vm) = s
                .vm_id
                .filter(|_| s.disks.iter().any(|d| d.volume_id.is_none()))
            {
                // The next backup reads the whole disk: its checkpoints' bitmaps are gone.
                let name = Vm::domain_name_of(&vm);
                if self.hv.state(&name).map_err(|e| e.to_string())?.is_some() {
                    for c in self.hv.checkpoints(&name).map_err(|e| e.to_string())? {
                        self.hv
                            .delete_checkpoint(&name, &c)
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
            Ok(())
        })();
        match restored {
            Ok(()) => {
                for other in self.sibling_snapshots(&s)? {
                    if other.active && other.id != id {
                        self.set_snapshot(other.id, |o| o.active = false)?;
                    }
                }
                self.set_snapshot(id, |s| {
                    s.active = true;
                    s.pending = None;
                    s.error = None;
                })
            }
            Err(e) => {
                self.set_snapshot(id, |s| {
                    s.pending = None;
                    s.error = Some(format!("restore failed: {e}"));
                })?;
                Err(e)
            }
        }
    }

    /// The provisioned size (GB) of a snapshot's disk now.
    fn current_gib(&self, s: &Snapshot, d: &SnapshotDisk) -> Result<u64, String> {
        Ok(match d.volume_id {
            None => self
                .load(&s.vm_id.ok_or("the snapshot names no VM")?)?
                .storage_gib
                .max(0) as u64,
            Some(v) => self
                .volumes
                .get(&Volume::key_of(v))
                .map_err(|e| e.to_string())?
                .map_or(0, |v| v.size_gib.max(0) as u64),
        })
    }

    /// The snapshots of the same source as `s` (its VM's, or its volume's).
    fn sibling_snapshots(&self, s: &Snapshot) -> Result<Vec<Snapshot>, String> {
        let (index, key) = match (s.kind, s.vm_id, s.volume_id) {
            (SnapshotKind::Vm, Some(vm), _) => (Snapshot::BY_VM, uuid_key(&vm)),
            (_, _, Some(v)) => (Snapshot::BY_VOLUME, Snapshot::key_of(v)),
            _ => return Ok(vec![]),
        };
        Ok(self
            .snapshots
            .by_index(index, &key)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|o| o.kind == s.kind)
            .collect())
    }

    pub(super) fn snapshot_delete(&self, id: u64) -> Result<(), String> {
        let Some(s) = self.owned_snapshot(id, "delete")? else {
            return Ok(());
        };
        let tag = s.tag();
        let removed = (|| {
            for d in &s.disks {
                if let Some(home) = self.home(&s, d)? {
                    self.drop_tag(&home, &tag)?;
                }
            }
            Ok(())
        })();
        match removed {
            Ok(()) => self
                .snapshots
                .delete(&Snapshot::key_of(id))
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => {
                self.set_snapshot(id, |s| {
                    s.pending = None;
                    s.error = Some(format!("delete failed: {e}"));
                })?;
                Err(e)
            }
        }
    }

    /// After a VM's domain and volumes are released: its VM snapshots go with it
    /// (their tags from the volumes it leaves behind; the OS disk goes whole), and so
    /// do the snapshots of volumes deleted with it.
    pub(super) fn release_snapshots(&self, vm: &Uuid) -> Result<(), String> {
        let e = |e: StoreError| e.to_string();
        for s in self.snapshots.all().map_err(e)? {
            let of_vm = s.kind == SnapshotKind::Vm && s.vm_id.as_ref() == Some(vm);
            let of_gone_volume = match (s.kind, s.volume_id) {
                (SnapshotKind::Volume, Some(v)) => {
                    self.volumes.get(&Volume::key_of(v)).map_err(e)?.is_none()
                }
                _ => false,
            };
            if !(of_vm || of_gone_volume) {
                continue;
            }
            if of_vm {
                for d in s.disks.iter().filter(|d| d.volume_id.is_some()) {
                    if let Some(home) = self.home(&s, d)? {
                        self.drop_tag(&home, &s.tag())?;
                    }
                }
            }
            self.snapshots.delete(&Snapshot::key_of(s.id)).map_err(e)?;
        }
        Ok(())
    }
}
