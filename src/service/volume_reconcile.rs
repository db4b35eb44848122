//! The volume part of the reconciler. A change is recorded on the volume (`pending`)
//! before its job is submitted, so a crash in between leaves a volume that names a job
//! nobody runs: that job is submitted again (jobs are idempotent). A resize whose job
//! never ran is dropped instead (its size was not recorded; the volume keeps the size
//! it has). Files under `volumes/` that no record names are reported, not removed.

use std::collections::HashSet;

use crate::jobs::Reconcile;
use crate::model::{now, Volume};
use crate::store::StoreError;

use super::Services;

pub struct VolumeReconciler(pub Services);

impl Reconcile for VolumeReconciler {
    fn name(&self) -> &'static str {
        "volumes"
    }

    fn reconcile(&self) -> Result<Vec<String>, String> {
        let s = &self.0.inner;
        if s.hypervisor.is_none() {
            return Ok(vec![]);
        }
        let e = |e: StoreError| e.to_string();
        let mut drift = Vec::new();
        // Records first, jobs second (as for VMs).
        let volumes = s.volumes.all().map_err(e)?;
        let live: HashSet<u64> = s
            .jobs
            .list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|j| !j.status.is_final() && j.kind.starts_with("volume."))
            .filter_map(|j| j.params["volume_id"].as_u64())
            .collect();
        for v in &volumes {
            let Some(kind) = v.pending.clone() else {
                continue;
            };
            if live.contains(&v.id) {
                continue;
            }
            if kind == "resize" {
                s.volumes
                    .update::<StoreError>(&Volume::key_of(v.id), |v| {
                        v.pending = None;
                        v.updated_at = now();
                        Ok(())
                    })
                    .map_err(e)?;
                drift.push(format!(
                    "volume {} was left resizing without a job; it keeps {} GB",
                    v.id, v.size_gib
                ));
                continue;
            }
            self.0
                .submit_volume_job(v, &kind, serde_json::json!({}))
                .map_err(|e| e.to_string())?;
            drift.push(format!(
                "volume {} was left with {kind} and no job; resubmitted it",
                v.id
            ));
        }
        let known: HashSet<u64> = volumes.iter().map(|v| v.id).collect();
        if let Ok(entries) = std::fs::read_dir(s.data_dir.join("volumes")) {
            for f in entries.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let id = name.split('.').next().and_then(|n| n.parse::<u64>().ok());
                if id.is_none_or(|id| !known.contains(&id)) {
                    drift.push(format!("volumes/{name} belongs to no volume; left alone"));
                }
            }
        }
        Ok(drift)
    }
}
