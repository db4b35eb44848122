//! The jobs that move VM disks in and out of the backup repository: create (through a
//! libvirt checkpoint and push-mode backup, incremental when the previous checkpoint's
//! dirty bitmap is still valid), restore, verify and garbage collection. Each job can
//! be run again from the start after a crash: it finds what the first attempt did.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::remove_if_present;
use super::vm_jobs::VmHost;
use crate::backup::{BackupStats, QemuIncrement, RawImage, Repo};
use crate::compute::{disk, BackupProgress, DiskBackup, PowerState};
use crate::jobs::{JobContext, JobHandler};
use crate::model::{
    now, uuid_key, Backup, BackupChain, BackupSchedule, BackupStatus, Vm, VmStatus,
};
use crate::store::{StoreError, Table};

/// What the backup jobs work with.
pub(crate) struct BackupHost {
    /// `None` when compute is off: verify and gc still run.
    pub vm: Option<Arc<VmHost>>,
    pub backups: Table<Backup>,
    pub chains: Table<BackupChain>,
    pub schedules: Table<BackupSchedule>,
    pub repo: Repo,
    /// Backups and restores read-lock, gc write-locks: a running backup may name a
    /// chunk that no finished point names yet.
    pub gc_lock: RwLock<()>,
    pub gc_safety: Duration,
}

pub(crate) const KINDS: &[&str] = &[
    "backup.create",
    "backup.restore",
    "backup.verify",
    "backup.gc",
];

pub(crate) struct BackupJob {
    pub kind: &'static str,
    pub host: Arc<BackupHost>,
}

impl JobHandler for BackupJob {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn resumable(&self) -> bool {
        true
    }

    fn run(&self, ctx: &JobContext) -> Result<(), String> {
        let backup_id = ctx.params()["backup_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok());
        let h = &self.host;
        match (self.kind, backup_id) {
            ("backup.create", Some(id)) => h.create(ctx, &id),
            ("backup.restore", Some(id)) => h.restore(ctx, &id),
            ("backup.verify", id) => h.verify(ctx, id.as_ref()),
            ("backup.gc", _) => h.gc().map(|_| ()),
            (kind, _) => Err(format!("job {kind} has no backup_id")),
        }
    }
}

/// How a backup got its data.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    Full,
    Incremental,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Full => "full",
            Method::Incremental => "incremental",
        }
    }
}

fn checkpoint_name() -> String {
    format!("skiff-{}", &Uuid::new_v4().simple().to_string()[..12])
}

impl BackupHost {
    fn vmh(&self) -> Result<&VmHost, String> {
        self.vm
            .as_deref()
            .ok_or_else(|| "virtual machines are not available on this host".to_string())
    }

    /// Disks of the domain a backup leaves out: every one but the OS disk (the seed and
    /// attached volumes; volumes are not part of VM backups, docs/api.md). Read from
    /// the running domain: a disk left unnamed would get libvirt's default target.
    fn other_disks(&self, name: &str) -> Result<Vec<String>, String> {
        let live = self
            .vmh()?
            .hv
            .live_disks(name)
            .map_err(|e| e.to_string())?
            .ok_or("the domain is not running")?;
        Ok(live.into_iter().filter(|d| d != "vda").collect())
    }

    fn load(&self, id: &Uuid) -> Result<Option<Backup>, String> {
        self.backups.get(&uuid_key(id)).map_err(|e| e.to_string())
    }

    fn update(&self, id: &Uuid, f: impl Fn(&mut Backup)) -> Result<(), String> {
        self.backups
            .update::<StoreError>(&uuid_key(id), |b| {
                f(b);
                b.updated_at = now();
                Ok(())
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn chain(&self, vm: &Uuid) -> Result<BackupChain, String> {
        Ok(self
            .chains
            .get(&uuid_key(vm))
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| BackupChain::fresh(*vm)))
    }

    /// Records the checkpoint the next incremental counts from, unless reset-chain
    /// started a new series meanwhile.
    fn set_checkpoint(&self, vm: &Uuid, generation: u32, cp: Option<String>) -> Result<(), String> {
        let mut chain = self.chain(vm)?;
        if chain.generation != generation {
            return Ok(());
        }
        chain.checkpoint = cp;
        self.chains.put(&chain).map_err(|e| e.to_string())
    }

    fn create(&self, ctx: &JobContext, id: &Uuid) -> Result<(), String> {
        let Some(b) = self.load(id)? else {
            return Ok(()); // deleted while queued
        };
        if b.status == BackupStatus::Ready {
            return Ok(());
        }
        // A crash after the point was written but before the record said so.
        if let Ok(p) = self.repo.point(id) {
            return self.finish(&b, Ok((p.increment, p.stored_bytes, p.read_bytes, None)));
        }
        if let Err(e) = self.vmh() {
            return self.finish(&b, Err(e));
        }
        self.update(id, |b| b.status = BackupStatus::Creating)?;
        let vmh = self.vmh()?;
        let vm = vmh.load(&b.vm_id)?;
        // The contract: a VM shows `provisioning` while a backup of it runs.
        vmh.set_status(&vm.id, VmStatus::Provisioning)?;
        let result = self.capture(ctx, &b, &vm);
        // Back to what the host shows (a start queued before the backup ran first).
        let running = matches!(
            vmh.hv.state(&vm.domain_name()),
            Ok(Some(PowerState::Running))
        );
        vmh.set_status(
            &vm.id,
            if running {
                VmStatus::Active
            } else {
                VmStatus::Passive
            },
        )?;
        let result = result.map(|(s, m)| {
            (
                s.point.increment,
                s.point.stored_bytes,
                s.point.read_bytes,
                Some(m),
            )
        });
        self.finish(&b, result)
    }

    /// Writes the outcome to the record and the schedule, and applies retention.
    #[allow(clippy::type_complexity)]
    fn finish(
        &self,
        b: &Backup,
        result: Result<(u64, u64, u64, Option<Method>), String>,
    ) -> Result<(), String> {
        let ok = result.is_ok();
        match &result {
            Ok((inc, stored, read, method)) => self.update(&b.id, |r| {
                r.status = BackupStatus::Ready;
                r.increment = Some(*inc);
                r.stored_bytes = *stored;
                r.read_bytes = *read;
                if let Some(m) = method {
                    r.method = Some(m.as_str().into());
                }
                r.error = None;
            })?,
            Err(e) => {
                tracing::warn!(backup_id = %b.id, error = %e, "backup failed");
                self.update(&b.id, |r| {
                    r.status = BackupStatus::Failed;
                    r.error = Some(e.clone());
                })?
            }
        }
        if let Some(sid) = b.schedule_id {
            let _ = self
                .schedules
                .update::<StoreError>(&BackupSchedule::key_of(sid), |s| {
                    s.last_run_status = Some(if ok { "succeeded" } else { "failed" }.into());
                    s.consecutive_failures = if ok { 0 } else { s.consecutive_failures + 1 };
                    Ok(())
                });
            if ok {
                self.retain(sid)?;
            }
        }
        result.map(|_| ())
    }

    /// Keeps the newest `keep_count` ready backups of a schedule; older ones go.
    fn retain(&self, schedule: u64) -> Result<(), String> {
        let Some(s) = self
            .schedules
            .get(&BackupSchedule::key_of(schedule))
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let mut mine: Vec<Backup> = self
            .backups
            .by_index(Backup::BY_VM, &uuid_key(&s.vm_id))
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|b| b.schedule_id == Some(schedule) && b.status == BackupStatus::Ready)
            .collect();
        if mine.len() <= s.keep_count as usize {
            return Ok(());
        }
        mine.sort_by_key(|b| (b.created_at, b.id));
        let excess = mine.len() - s.keep_count as usize;
        for old in &mine[..excess] {
            match self.repo.delete(&old.id) {
                Ok(_) | Err(crate::backup::BackupError::NotFound(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
            self.backups
                .delete(&uuid_key(&old.id))
                .map_err(|e| e.to_string())?;
            tracing::info!(backup_id = %old.id, schedule, "retention removed a backup");
        }
        self.gc().map(|_| ())
    }

    /// Gets the disk into the repository: through the hypervisor's backup job when the
    /// domain runs (or can be started paused), incremental when possible.
    fn capture(
        &self,
        ctx: &JobContext,
        b: &Backup,
        vm: &Vm,
    ) -> Result<(BackupStats, Method), String> {
        let hv = &self.vmh()?.hv;
        let name = vm.domain_name();
        let mut state = ctx.checkpoint().clone();
        let state_now = hv.state(&name).map_err(|e| e.to_string())?;
        let mut paused_by_us = state["started_paused"].as_bool() == Some(true)
            && state_now == Some(PowerState::Paused);
        match state_now {
            Some(PowerState::Running) | Some(PowerState::Paused) => {}
            Some(PowerState::ShutOff) | Some(PowerState::Crashed) => {
                // libvirt backs up running domains only: start it with its CPUs
                // paused, so the disk is exactly as the VM left it.
                state["started_paused"] = json!(true);
                ctx.save(1, state.clone())?;
                hv.start_paused(&name).map_err(|e| e.to_string())?;
                paused_by_us = true;
            }
            None => return Err("the VM has no domain on this host".into()),
            Some(PowerState::Other) => {
                return Err("the VM is between states; try again in a moment".into())
            }
        }
        let result = self.capture_running(ctx, b, vm);
        if paused_by_us {
            // QEMU exits cleanly on destroy (SIGTERM), so the bitmaps are saved.
            hv.destroy(&name).map_err(|e| e.to_string())?;
            let vmh = self.vmh()?;
            let _ = vmh.wait_off(&name, Duration::from_secs(vmh.cfg.stop_timeout_secs));
        }
        result
    }

    fn capture_running(
        &self,
        ctx: &JobContext,
        b: &Backup,
        vm: &Vm,
    ) -> Result<(BackupStats, Method), String> {
        let hv = &self.vmh()?.hv;
        let name = vm.domain_name();
        // A backup job an earlier attempt left running.
        if let Ok(BackupProgress::Running { .. }) = hv.backup_progress(&name) {
            hv.abort_job(&name).map_err(|e| e.to_string())?;
            let until = Instant::now() + Duration::from_secs(30);
            while matches!(
                hv.backup_progress(&name),
                Ok(BackupProgress::Running { .. })
            ) && Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let chain = self.chain(&vm.id)?;
        let series = b.series.clone();
        let has_previous = !self
            .repo
            .series_points(&series)
            .map_err(|e| e.to_string())?
            .is_empty();
        let existing = hv.checkpoints(&name).map_err(|e| e.to_string())?;
        if let (Some(since), true) = (&chain.checkpoint, has_previous) {
            if existing.contains(since) {
                let cp = checkpoint_name();
                match self.incremental(ctx, b, vm, since, &cp) {
                    Ok(stats) => {
                        self.keep_only_checkpoint(&name, &cp);
                        self.set_checkpoint(&vm.id, chain.generation, Some(cp))?;
                        return Ok((stats, Method::Incremental));
                    }
                    Err(e) => tracing::warn!(
                        vm_id = %vm.id, error = %e,
                        "incremental backup not possible; reading the whole disk"
                    ),
                }
            } else {
                tracing::info!(vm_id = %vm.id, "the dirty bitmap is gone; reading the whole disk");
            }
        }
        // No valid bitmap: a full read (chunks the store holds are not stored again).
        for c in hv.checkpoints(&name).map_err(|e| e.to_string())? {
            if let Err(e) = hv.delete_checkpoint(&name, &c) {
                tracing::warn!(checkpoint = %c, error = %e, "cannot delete an old checkpoint");
            }
        }
        let cp = checkpoint_name();
        let target = self.vmh()?.dir(&vm.id).join(format!("backup-{}.raw", b.id));
        let req = DiskBackup {
            disk: "vda".into(),
            skip: self.other_disks(&name)?,
            target: target.clone(),
            since: None,
            checkpoint: cp.clone(),
        };
        let result = self.run_hypervisor_backup(ctx, &name, &req).and_then(|_| {
            let src = RawImage::open(&target).map_err(|e| e.to_string())?;
            self.store(ctx, b, &src)
        });
        remove_if_present(&target)?;
        let stats = result?;
        self.keep_only_checkpoint(&name, &cp);
        self.set_checkpoint(&vm.id, chain.generation, Some(cp))?;
        Ok((stats, Method::Full))
    }

    fn incremental(
        &self,
        ctx: &JobContext,
        b: &Backup,
        vm: &Vm,
        since: &str,
        cp: &str,
    ) -> Result<BackupStats, String> {
        let name = vm.domain_name();
        let target = self
            .vmh()?
            .dir(&vm.id)
            .join(format!("backup-{}.qcow2", b.id));
        let req = DiskBackup {
            disk: "vda".into(),
            skip: self.other_disks(&name)?,
            target: target.clone(),
            since: Some(since.to_string()),
            checkpoint: cp.to_string(),
        };
        let result = self.run_hypervisor_backup(ctx, &name, &req).and_then(|_| {
            let map = disk::map_json(&target).map_err(|e| e.to_string())?;
            let src = QemuIncrement::open(&target, &map).map_err(|e| e.to_string())?;
            self.store(ctx, b, &src)
        });
        remove_if_present(&target)?;
        result
    }

    fn store(
        &self,
        ctx: &JobContext,
        b: &Backup,
        src: &dyn crate::backup::Source,
    ) -> Result<BackupStats, String> {
        let _shared = self.gc_lock.read().map_err(|_| "backup lock poisoned")?;
        let last = std::sync::Mutex::new(Instant::now());
        let progress = |done: u64, total: u64| {
            let Ok(mut t) = last.lock() else { return };
            if t.elapsed() >= Duration::from_millis(500) && total > 0 {
                *t = Instant::now();
                let pct = 50 + (done * 49 / total) as u8;
                let _ = ctx.save(pct, ctx.checkpoint().clone());
            }
        };
        self.repo
            .backup_from(src, &b.series, None, Some(b.id), &progress)
            .map_err(|e| e.to_string())
    }

    /// Runs libvirt's backup job to `req.target` and waits for it (progress 1–50 %).
    fn run_hypervisor_backup(
        &self,
        ctx: &JobContext,
        name: &str,
        req: &DiskBackup,
    ) -> Result<(), String> {
        let hv = &self.vmh()?.hv;
        remove_if_present(&req.target)?;
        hv.backup_begin(name, req).map_err(|e| e.to_string())?;
        let mut last = Instant::now();
        loop {
            match hv.backup_progress(name).map_err(|e| e.to_string())? {
                BackupProgress::Completed => return Ok(()),
                BackupProgress::Failed(m) => {
                    return Err(format!("the hypervisor's backup failed: {m}"))
                }
                BackupProgress::Running { done, total } => {
                    if total > 0 && last.elapsed() >= Duration::from_millis(500) {
                        last = Instant::now();
                        let _ = ctx.save(1 + (done * 49 / total) as u8, ctx.checkpoint().clone());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Deletes every checkpoint but `keep`: each one is a bitmap every guest write
    /// updates, and only the newest is ever counted from.
    fn keep_only_checkpoint(&self, name: &str, keep: &str) {
        let Ok(vmh) = self.vmh() else { return };
        let hv = &vmh.hv;
        for c in hv.checkpoints(name).unwrap_or_default() {
            if c != keep {
                if let Err(e) = hv.delete_checkpoint(name, &c) {
                    tracing::warn!(checkpoint = %c, error = %e, "cannot delete an old checkpoint");
                }
            }
        }
    }

    /// Puts the point's disk in place of the VM's, stopping the VM first and starting
    /// it again after when it was running.
    fn restore(&self, ctx: &JobContext, id: &Uuid) -> Result<(), String> {
        let Some(b) = self.load(id)? else {
            return Err("the backup was deleted".into());
        };
        let result = self.restore_inner(ctx, &b);
        let status = BackupStatus::Ready;
        if let Err(e) = &result {
            tracing::warn!(backup_id = %b.id, error = %e, "restore failed");
        }
        self.update(id, |r| {
            r.status = status;
            r.error = result
                .as_ref()
                .err()
                .map(|e| format!("restore failed: {e}"));
        })?;
        result
    }

    fn restore_inner(&self, ctx: &JobContext, b: &Backup) -> Result<(), String> {
        let vm = self.vmh()?.load(&b.vm_id)?;
        let name = vm.domain_name();
        let hv = &self.vmh()?.hv;
        let mut state = ctx.checkpoint().clone();
        if state["was_running"].is_null() {
            let running = matches!(
                hv.state(&name).map_err(|e| e.to_string())?,
                Some(PowerState::Running) | Some(PowerState::Paused)
            );
            state["was_running"] = json!(running);
            ctx.save(1, state.clone())?;
        }
        let was_running = state["was_running"].as_bool() == Some(true);
        self.vmh()?.stop(&vm.id)?;
        self.vmh()?.set_status(&vm.id, VmStatus::Provisioning)?;
        let dir = self.vmh()?.dir(&vm.id);
        let raw = dir.join(format!("restore-{}.raw", b.id));
        let staged = dir.join("disk.qcow2.restoring");
        let result = (|| {
            {
                let _shared = self.gc_lock.read().map_err(|_| "backup lock poisoned")?;
                self.repo.restore(&b.id, &raw).map_err(|e| e.to_string())?;
            }
            ctx.save(60, state.clone())?;
            remove_if_present(&staged)?;
            // Raw, stated: the guest wrote every byte of it, a qcow2 header included.
            disk::convert_to_qcow2(&raw, disk::Format::Raw, &staged).map_err(|e| e.to_string())?;
            let want = vm.storage_gib as u64;
            if disk::virtual_size(&staged, disk::Format::Qcow2).map_err(|e| e.to_string())?
                < want << 30
            {
                disk::grow(&staged, want).map_err(|e| e.to_string())?;
            }
            std::fs::rename(&staged, dir.join("disk.qcow2"))
                .map_err(|e| format!("replacing the disk: {e}"))
        })();
        remove_if_present(&raw)?;
        remove_if_present(&staged)?;
        result?;
        // The restored disk stands alone (no base under it): the domain must say so.
        self.vmh()?.define(&vm)?;
        // The new disk has no bitmaps: the next backup reads it whole.
        for c in hv.checkpoints(&name).map_err(|e| e.to_string())? {
            let _ = hv.delete_checkpoint(&name, &c);
        }
        let chain = self.chain(&vm.id)?;
        self.set_checkpoint(&vm.id, chain.generation, None)?;
        ctx.save(90, state)?;
        if was_running {
            self.vmh()?.boot(&vm, false)
        } else {
            self.vmh()?.set_status(&vm.id, VmStatus::Passive)
        }
    }

    /// Re-hashes every chunk (of one backup, or all); damaged chunks are moved aside and
    /// the backups that name them are marked failed.
    fn verify(&self, ctx: &JobContext, only: Option<&Uuid>) -> Result<(), String> {
        let report = {
            let _shared = self.gc_lock.read().map_err(|_| "backup lock poisoned")?;
            self.repo
                .verify_and_quarantine(only)
                .map_err(|e| e.to_string())?
        };
        for id in &report.damaged_points {
            let _ = self.update(id, |b| {
                b.status = BackupStatus::Failed;
                b.error = Some("verify found damaged chunks: restore refuses it".into());
            });
        }
        ctx.save(
            100,
            json!({
                "checked_points": report.checked_points,
                "checked_chunks": report.checked_chunks,
                "damaged_points": report.damaged_points,
                "damaged_chunks": report.damaged_chunks,
            }),
        )?;
        if report.damaged_points.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} damaged chunk(s) in {} backup(s): {}",
                report.damaged_chunks.len(),
                report.damaged_points.len(),
                report
                    .damaged_points
                    .iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    pub(super) fn gc(&self) -> Result<(u64, u64), String> {
        let _only = self.gc_lock.write().map_err(|_| "backup lock poisoned")?;
        let (n, bytes) = self.repo.gc(self.gc_safety).map_err(|e| e.to_string())?;
        if n > 0 {
            tracing::info!(files = n, bytes, "backup gc freed space");
        }
        Ok((n, bytes))
    }
}
