//! Jobs as the API shows them: a caller sees the jobs of its own account, and only
//! the operator (owner or admin) may start the engine's self-test.

use uuid::Uuid;

use super::{Principal, ServiceError, Services};
use crate::jobs::NewJob;
use crate::model::Job;

impl Services {
    pub fn get_job(&self, who: &Principal, id: &Uuid) -> Result<Job, ServiceError> {
        match self.inner.jobs.get(id)? {
            Some(j)
                if j.account_id == Some(who.account_id)
                    && j.project_id.is_none_or(|p| who.can_see_project(&p)) =>
            {
                Ok(j)
            }
            _ => Err(ServiceError::NotFound { kind: "job" }),
        }
    }

    /// `id` once it has ended, or as it is when `timeout` passes first.
    pub async fn wait_job(
        &self,
        who: &Principal,
        id: &Uuid,
        timeout: std::time::Duration,
    ) -> Result<Job, ServiceError> {
        let until = tokio::time::Instant::now() + timeout;
        let mut endings = self.inner.jobs.endings();
        loop {
            let job = self.get_job(who, id)?;
            if job.status.is_final() {
                return Ok(job);
            }
            match tokio::time::timeout_at(until, endings.changed()).await {
                Ok(Ok(())) => {}
                // The engine is gone (shutdown) or the time is up: the job as it is.
                Ok(Err(_)) | Err(_) => return self.get_job(who, id),
            }
        }
    }

    pub fn list_jobs(&self, who: &Principal, project: &Uuid) -> Result<Vec<Job>, ServiceError> {
        who.require_in(project, "project.settings.view")?;
        Ok(self.inner.jobs.list_by_project(project)?)
    }

    /// Queues the engine's self-test (`diag.steps`, or `diag.once` when not resumable)
    /// in the `X-Project-ID` project. Operator first: the project is not a tenant's
    /// question to answer.
    pub fn submit_diag_job(
        &self,
        who: &Principal,
        header: Option<&str>,
        steps: u64,
        step_ms: u64,
        resumable: bool,
    ) -> Result<Job, ServiceError> {
        who.require_operator("account.settings.manage")?;
        let project = &self
            .project_scope(who, header, "project.settings.manage")?
            .id;
        use crate::jobs::diag_limits::{MAX_STEPS, MAX_STEP_MS};
        if steps == 0 || steps > MAX_STEPS || step_ms > MAX_STEP_MS {
            return Err(super::invalid(format!(
                "steps must be 1 to {MAX_STEPS} and step_ms at most {MAX_STEP_MS}"
            )));
        }
        Ok(self.inner.jobs.submit(NewJob {
            kind: if resumable { "diag.steps" } else { "diag.once" }.into(),
            target: format!("diag/{project}"),
            account_id: Some(who.account_id),
            project_id: Some(*project),
            params: serde_json::json!({ "steps": steps, "step_ms": step_ms }),
        })?)
    }
}
