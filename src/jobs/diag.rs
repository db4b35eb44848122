//! `diag.steps`: an operator's self-test of the job engine. It performs `steps` steps of
//! `step_ms` each, appending one line per step to `<data_dir>/diag/<job id>.log`. The
//! log is the "host state": on resume the handler trusts it over the checkpoint, which
//! is how every resumable handler must treat the host, so a step is never done twice.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::{JobContext, JobHandler};

/// Largest number of steps and step length accepted, so a self-test stays bounded.
pub const MAX_STEPS: u64 = 1000;
pub const MAX_STEP_MS: u64 = 10_000;

pub struct DiagSteps {
    pub dir: PathBuf,
    /// `diag.steps` resumes; `diag.once` is failed by a restart instead.
    pub resumable: bool,
}

impl DiagSteps {
    fn log_path(&self, ctx: &JobContext) -> PathBuf {
        self.dir.join(format!("{}.log", ctx.job.id))
    }
}

impl JobHandler for DiagSteps {
    fn kind(&self) -> &'static str {
        if self.resumable {
            "diag.steps"
        } else {
            "diag.once"
        }
    }

    fn resumable(&self) -> bool {
        self.resumable
    }

    fn run(&self, ctx: &JobContext) -> Result<(), String> {
        let steps = ctx.params()["steps"].as_u64().unwrap_or(5).min(MAX_STEPS);
        let step_ms = ctx.params()["step_ms"]
            .as_u64()
            .unwrap_or(100)
            .min(MAX_STEP_MS);
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let path = self.log_path(ctx);
        let on_host = match std::fs::read_to_string(&path) {
            Ok(s) => s.lines().count() as u64,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.to_string()),
        };
        let saved = ctx.checkpoint()["done"].as_u64().unwrap_or(0);
        if saved != on_host {
            tracing::info!(
                saved,
                on_host,
                "checkpoint behind the host; trusting the host"
            );
        }
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| e.to_string())?;
        for step in on_host..steps {
            std::thread::sleep(Duration::from_millis(step_ms));
            writeln!(log, "step {step}").map_err(|e| e.to_string())?;
            log.sync_data().map_err(|e| e.to_string())?;
            let progress = ((step + 1) * 100 / steps.max(1)) as u8;
            ctx.save(progress, serde_json::json!({ "done": step + 1 }))?;
        }
        Ok(())
    }
}
