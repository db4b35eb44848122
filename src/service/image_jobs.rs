//! Job `image.save`: copies a VM's disk (or one of its internal snapshots) into a
//! saved image, so that a large disk never holds an HTTP request. The record is
//! `saving` from the request on; the job makes it `available`, or keeps it with the
//! error. Every step is safe to repeat: the copy goes to a temporary file first.

use std::collections::HashSet;
use std::sync::Arc;

use uuid::Uuid;

use super::templates::{partial_image, write_image, ImageSource};
use super::vm_jobs::VmHost;
use super::Services;
use crate::compute::disk;
use crate::jobs::{JobContext, JobHandler, Reconcile};
use crate::model::{uuid_key, Template};
use crate::store::StoreError;

pub(crate) struct ImageJob {
    pub host: Arc<VmHost>,
}

impl JobHandler for ImageJob {
    fn kind(&self) -> &'static str {
        "image.save"
    }

    fn resumable(&self) -> bool {
        true
    }

    fn run(&self, ctx: &JobContext) -> Result<(), String> {
        let id = ctx.params()["template_id"]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok())
            .ok_or("job without a template_id")?;
        self.host.image_save(&id)
    }
}

impl VmHost {
    fn image_save(&self, id: &Uuid) -> Result<(), String> {
        let key = uuid_key(id);
        let Some(t) = self.imported.get(&key).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let Some(src) = t.saving.clone() else {
            return Ok(());
        };
        // The VM's overlay or volume: skiff wrote its header, the guest only what is
        // inside, so it is opened as qcow2 and never probed.
        let from = match &src.tag {
            Some(tag) => ImageSource::Snapshot(&src.path, tag),
            None => ImageSource::File(&src.path, disk::Format::Qcow2),
        };
        let outcome = write_image(&self.image_root, id, from, Some(&self.access));
        let error = outcome.as_ref().err().map(|e| e.to_string());
        self.imported
            .update::<StoreError>(&key, |t: &mut Template| {
                t.saving = None;
                match &outcome {
                    Ok((image, storage)) => {
                        t.image = image.clone();
                        t.storage = *storage;
                    }
                    Err(e) => t.error = Some(e.to_string()),
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        match error {
            None => Ok(()),
            Some(e) => {
                let _ = std::fs::remove_file(partial_image(&self.image_root, id));
                Err(e)
            }
        }
    }
}

/// A saved image recorded `saving` whose job a crash kept from being submitted gets
/// it submitted.
pub struct ImageReconciler(pub Services);

impl Reconcile for ImageReconciler {
    fn name(&self) -> &'static str {
        "images"
    }

    fn reconcile(&self) -> Result<Vec<String>, String> {
        let s = &self.0.inner;
        if s.hypervisor.is_none() {
            return Ok(vec![]);
        }
        // Records first, jobs second: a job submitted after the records were read is
        // seen as live.
        let saving: Vec<Template> = s
            .templates
            .all()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|t| t.saving.is_some())
            .collect();
        if saving.is_empty() {
            return Ok(vec![]);
        }
        let live: HashSet<String> = s
            .jobs
            .list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|j| !j.status.is_final() && j.kind == "image.save")
            .filter_map(|j| j.params["template_id"].as_str().map(str::to_string))
            .collect();
        let mut drift = Vec::new();
        for t in saving {
            if live.contains(&t.id.to_string()) {
                continue;
            }
            self.0.submit_image_job(&t).map_err(|e| e.to_string())?;
            drift.push(format!(
                "image {} was saving with no job; resubmitted it",
                t.id
            ));
        }
        Ok(drift)
    }
}
