//! The snapshot part of the reconciler. A change is recorded on the snapshot
//! (`pending`) before its job is submitted, so a crash in between leaves a snapshot
//! that names a job nobody runs: that job is submitted again (the jobs are
//! idempotent). Tags `skiff-snap-<id>` in disk files are not scanned here: a create
//! that fails removes its own, and the tags of a deleted VM's snapshots go with it.

use std::collections::HashSet;

use crate::jobs::Reconcile;

use super::Services;

pub struct SnapshotReconciler(pub Services);

impl Reconcile for SnapshotReconciler {
    fn name(&self) -> &'static str {
        "snapshots"
    }

    fn reconcile(&self) -> Result<Vec<String>, String> {
        let s = &self.0.inner;
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
            self.0
                .submit_snapshot_job(snap, &kind)
                .map_err(|e| e.to_string())?;
            drift.push(format!(
                "snapshot {} was left with {kind} and no job; resubmitted it",
                snap.id
            ));
        }
        Ok(drift)
    }
}
