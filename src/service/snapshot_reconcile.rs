//! The snapshot part of the reconciler. A change is recorded on the snapshot
//! (`pending`) before its job is submitted, so a crash in between leaves a snapshot
//! that names a job nobody runs: that job is submitted again (the jobs are
//! idempotent). Once per process, the disk files are read for tags `skiff-snap-<id>`
//! that no snapshot record names: a create that fails removes its own, and a delete
//! drops the record only once the tag is gone, so such a tag means a bug or a hand at
//! work. It is reported, not removed (as for volume files nothing claims), from a
//! thread of its own so the start-up pass does not wait on it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::compute::disk;
use crate::jobs::Reconcile;
use crate::model::Snapshot;

use super::Services;

pub struct SnapshotReconciler {
    services: Services,
    /// Whether this process has read the disk files for stray tags.
    scanned: AtomicBool,
}

impl SnapshotReconciler {
    pub fn new(services: Services) -> Self {
        SnapshotReconciler {
            services,
            scanned: AtomicBool::new(false),
        }
    }
}

/// Every disk file snapshots may live in: each VM's OS disk and each volume file.
fn disk_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(vms) = std::fs::read_dir(data_dir.join("vms")) {
        out.extend(vms.flatten().map(|d| d.path().join("disk.qcow2")));
    }
    if let Ok(vols) = std::fs::read_dir(data_dir.join("volumes")) {
        out.extend(
            vols.flatten()
                .map(|f| f.path())
                .filter(|p| p.extension().is_some_and(|e| e == "qcow2")),
        );
    }
    out.retain(|p| p.is_file());
    out.sort();
    out
}

impl Reconcile for SnapshotReconciler {
    fn name(&self) -> &'static str {
        "snapshots"
    }

    fn reconcile(&self) -> Result<Vec<String>, String> {
        let s = &self.services.inner;
        if s.hypervisor.is_none() {
            return Ok(vec![]);
        }
        let mut drift = Vec::new();
        // Records first, jobs second: a job submitted after the records were read is
        // seen as live.
        let snapshots = s.snapshots.all().map_err(|e| e.to_string())?;
        let live: HashSet<u64> = s
            .jobs
            .list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|j| !j.status.is_final() && j.kind.starts_with("snapshot."))
            .filter_map(|j| j.params["snapshot_id"].as_u64())
            .collect();
        for snap in &snapshots {
            let Some(kind) = snap.pending.clone() else {
                continue;
            };
            if live.contains(&snap.id) {
                continue;
            }
            self.services
                .submit_snapshot_job(snap, &kind)
                .map_err(|e| e.to_string())?;
            drift.push(format!(
                "snapshot {} was left with {kind} and no job; resubmitted it",
                snap.id
            ));
        }
        // Once, off the start-up pass: one `qemu-img` per disk file need not delay
        // the API. Reported as the reconciler reports drift.
        if !self.scanned.swap(true, Ordering::SeqCst) {
            let services = self.services.clone();
            let spawned = std::thread::Builder::new()
                .name("stray-tags".into())
                .spawn(move || match stray_tags(&services) {
                    Ok(found) => {
                        for d in found {
                            tracing::warn!(part = "snapshots", drift = %d, "reconciler");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not look for stray snapshot tags"),
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not look for stray snapshot tags");
            }
        }
        Ok(drift)
    }
}

/// Tags no record names. Files first, records second: a tag is made only after its
/// record is written, so a tag seen is found among the records read after it (unless
/// its delete ended meanwhile: a rare report, never a removal).
fn stray_tags(services: &Services) -> Result<Vec<String>, String> {
    let data_dir = &services.inner.data_dir;
    let mut tagged = Vec::new();
    for f in disk_files(data_dir) {
        match disk::snapshot_tags(&f) {
            Ok(tags) => tagged.extend(tags.into_iter().map(|t| (f.clone(), t))),
            Err(e) => {
                tracing::warn!(file = %f.display(), error = %e, "could not read snapshot tags")
            }
        }
    }
    let known: HashSet<String> = services
        .inner
        .snapshots
        .all()
        .map_err(|e| e.to_string())?
        .iter()
        .map(Snapshot::tag)
        .collect();
    Ok(tagged
        .into_iter()
        .filter(|(_, t)| t.starts_with(Snapshot::TAG_PREFIX) && !known.contains(t))
        .map(|(f, t)| {
            let shown = f.strip_prefix(data_dir).unwrap_or(&f).display().to_string();
            format!("snapshot tag {t} in {shown} belongs to no snapshot; left alone")
        })
        .collect())
}
