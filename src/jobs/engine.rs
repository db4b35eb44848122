use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::JobError;
use crate::model::{now, uuid_key, Job, JobStatus};
use crate::store::{Store, StoreError, Table};

/// Runs one kind of job. `run` is called on the blocking pool and may block.
pub trait JobHandler: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Whether a job of this kind that a crash interrupted may be run again from its
    /// checkpoint. A handler that says yes must make every step safe to repeat.
    fn resumable(&self) -> bool;
    fn run(&self, ctx: &JobContext) -> Result<(), String>;
}

/// What a handler sees of its job, and how it reports back.
pub struct JobContext {
    pub job: Job,
    table: Table<Job>,
}

impl JobContext {
    pub fn params(&self) -> &serde_json::Value {
        &self.job.params
    }

    /// The checkpoint saved by an earlier attempt (`null` on a first run).
    pub fn checkpoint(&self) -> &serde_json::Value {
        &self.job.checkpoint
    }

    /// Durably records progress (0–100) and a resume point.
    pub fn save(&self, progress: u8, checkpoint: serde_json::Value) -> Result<(), String> {
        self.table
            .update::<StoreError>(&uuid_key(&self.job.id), |j| {
                j.progress = progress.min(100);
                j.checkpoint = checkpoint.clone();
                Ok(())
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// A job to submit.
pub struct NewJob {
    pub kind: String,
    pub target: String,
    pub account_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub params: serde_json::Value,
}

struct Inner {
    store: Store,
    table: Table<Job>,
    handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
    workers: usize,
    /// Jobs of one account that may run at once: half the workers (at least one), so
    /// no tenant occupies the whole pool while others wait.
    per_account: usize,
    wake: Notify,
    /// Counts jobs that ended: callers waiting on a job wake at once, not on a poll.
    ended: watch::Sender<u64>,
    /// Targets with a running job, and whose account the job is.
    busy_targets: Mutex<HashMap<String, Option<Uuid>>>,
}

/// The job engine; cheap to clone.
#[derive(Clone)]
pub struct JobEngine {
    inner: Arc<Inner>,
}

impl JobEngine {
    pub fn new(
        store: Store,
        workers: usize,
        handlers: Vec<Arc<dyn JobHandler>>,
    ) -> Result<Self, JobError> {
        let table = store.table::<Job>()?;
        Ok(JobEngine {
            inner: Arc::new(Inner {
                store,
                table,
                handlers: handlers.into_iter().map(|h| (h.kind(), h)).collect(),
                workers: workers.max(1),
                per_account: (workers / 2).max(1),
                wake: Notify::new(),
                ended: watch::Sender::new(0),
                busy_targets: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Settles jobs that were running when the previous process died: resumable kinds go
    /// back to the queue with their checkpoint, the others are marked failed. Call once,
    /// before [`JobEngine::start`]. Returns how many were requeued and failed.
    pub fn recover(&self) -> Result<(usize, usize), JobError> {
        let (mut requeued, mut failed) = (0, 0);
        for job in self
            .inner
            .table
            .by_index(Job::BY_STATUS, JobStatus::Running.as_str().as_bytes())?
        {
            let resumable = self
                .inner
                .handlers
                .get(job.kind.as_str())
                .is_some_and(|h| h.resumable());
            self.inner
                .table
                .update::<StoreError>(&uuid_key(&job.id), |j| {
                    if resumable {
                        j.status = JobStatus::Queued;
                    } else {
                        j.status = JobStatus::Failed;
                        j.finished_at = Some(now());
                        j.error = Some(
                            "interrupted by a restart of skiff; this kind of job is not resumed"
                                .into(),
                        );
                    }
                    Ok(())
                })?;
            if resumable {
                tracing::warn!(job_id = %job.id, kind = %job.kind, "resuming interrupted job");
                requeued += 1;
            } else {
                tracing::warn!(job_id = %job.id, kind = %job.kind, "interrupted job marked failed");
                failed += 1;
            }
        }
        Ok((requeued, failed))
    }

    /// Writes a queued job and wakes the dispatcher.
    pub fn submit(&self, new: NewJob) -> Result<Job, JobError> {
        if !self.inner.handlers.contains_key(new.kind.as_str()) {
            return Err(JobError::UnknownKind(new.kind));
        }
        let job = Job {
            id: Uuid::new_v4(),
            seq: self.inner.store.next_id("job_seq")?,
            kind: new.kind,
            target: new.target,
            account_id: new.account_id,
            project_id: new.project_id,
            params: new.params,
            status: JobStatus::Queued,
            progress: 0,
            error: None,
            checkpoint: serde_json::Value::Null,
            attempts: 0,
            created_at: now(),
            started_at: None,
            finished_at: None,
        };
        self.inner.table.create(&job)?;
        self.inner.wake.notify_one();
        Ok(job)
    }

    /// Changes each time a job ends. Subscribe before reading a job's status, then
    /// await `changed()`: an end between the two is not missed.
    pub fn endings(&self) -> watch::Receiver<u64> {
        self.inner.ended.subscribe()
    }

    pub fn get(&self, id: &Uuid) -> Result<Option<Job>, JobError> {
        Ok(self.inner.table.get(&uuid_key(id))?)
    }

    pub fn list(&self) -> Result<Vec<Job>, JobError> {
        let mut jobs = self.inner.table.all()?;
        jobs.sort_by_key(|j| j.seq);
        Ok(jobs)
    }

    pub fn list_by_project(&self, project: &Uuid) -> Result<Vec<Job>, JobError> {
        let mut jobs = self
            .inner
            .table
            .by_index(Job::BY_PROJECT, &uuid_key(project))?;
        jobs.sort_by_key(|j| j.seq);
        Ok(jobs)
    }

    /// Counts of jobs by status, for metrics.
    pub fn counts(&self) -> Result<Vec<(JobStatus, usize)>, JobError> {
        [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Succeeded,
            JobStatus::Failed,
        ]
        .into_iter()
        .map(|s| {
            Ok((
                s,
                self.inner
                    .table
                    .count_by_index(Job::BY_STATUS, s.as_str().as_bytes())?,
            ))
        })
        .collect()
    }

    /// Starts the dispatcher on the current tokio runtime.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move { engine.dispatch_loop().await })
    }

    async fn dispatch_loop(self) {
        loop {
            if let Err(e) = self.dispatch_ready() {
                tracing::error!(error = %e, "job dispatcher");
            }
            // Wake on submit/finish; poll too so nothing waits on a lost wake-up.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.wake.notified()).await;
        }
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Uuid>>> {
        self.inner
            .busy_targets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn dispatch_ready(&self) -> Result<(), JobError> {
        let mut queued = self
            .inner
            .table
            .by_index(Job::BY_STATUS, JobStatus::Queued.as_str().as_bytes())?;
        queued.sort_by_key(|j| j.seq);
        // A target with an earlier job still queued must not start a later one first.
        let mut seen_targets = HashSet::new();
        for job in queued {
            if !seen_targets.insert(job.target.clone()) {
                continue;
            }
            {
                let mut busy = self.busy();
                if busy.len() >= self.inner.workers || busy.contains_key(&job.target) {
                    continue;
                }
                let account_running = job
                    .account_id
                    .map_or(0, |a| busy.values().filter(|b| **b == Some(a)).count());
                if account_running >= self.inner.per_account {
                    continue;
                }
                busy.insert(job.target.clone(), job.account_id);
            }
            if let Err(e) = self.launch(job.clone()) {
                self.busy().remove(&job.target);
                return Err(e);
            }
        }
        Ok(())
    }

    fn launch(&self, job: Job) -> Result<(), JobError> {
        let Some(handler) = self.inner.handlers.get(job.kind.as_str()).cloned() else {
            self.finish(&job, Err(format!("no handler for job kind {:?}", job.kind)))?;
            self.busy().remove(&job.target);
            return Ok(());
        };
        let started = self
            .inner
            .table
            .update::<StoreError>(&uuid_key(&job.id), |j| {
                j.status = JobStatus::Running;
                j.attempts += 1;
                j.started_at.get_or_insert_with(now);
                Ok(())
            })?
            .unwrap_or(job);
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let span = tracing::info_span!("job", job_id = %started.id, kind = %started.kind, target = %started.target);
            let _enter = span.enter();
            tracing::info!(attempt = started.attempts, "job started");
            let ctx = JobContext {
                job: started.clone(),
                table: engine.inner.table.clone(),
            };
            // Nothing changes on the host before the job and the records its submitter
            // wrote are durable: after a crash the job is found and resumed, never a
            // host change that no record remembers (a snapshot's tags dropped while
            // the record still lists it, say).
            let result = match engine.inner.store.flush() {
                Err(e) => Err(format!(
                    "the datastore could not be flushed before the job: {e}"
                )),
                Ok(()) => {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.run(&ctx)))
                        .unwrap_or_else(|_| Err("the job handler panicked".into()))
                }
            };
            if let Err(e) = engine.finish(&started, result) {
                tracing::error!(error = %e, "could not record the end of a job");
            }
            engine.busy().remove(&started.target);
            engine.inner.wake.notify_one();
        });
        Ok(())
    }

    fn finish(&self, job: &Job, result: Result<(), String>) -> Result<(), JobError> {
        match &result {
            Ok(()) => tracing::info!("job succeeded"),
            Err(e) => tracing::warn!(error = %e, "job failed"),
        }
        self.inner
            .table
            .update::<StoreError>(&uuid_key(&job.id), |j| {
                j.finished_at = Some(now());
                match &result {
                    Ok(()) => {
                        j.status = JobStatus::Succeeded;
                        j.progress = 100;
                        j.error = None;
                    }
                    Err(e) => {
                        j.status = JobStatus::Failed;
                        j.error = Some(e.clone());
                    }
                }
                Ok(())
            })?;
        self.inner.store.flush()?;
        self.inner.ended.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    /// Records (target, start, end) of every run and how many run at once.
    struct Probe {
        log: Mutex<Vec<(String, Instant, Instant)>>,
        now_running: AtomicUsize,
        max_running: AtomicUsize,
    }

    struct Sleepy(Arc<Probe>);

    impl JobHandler for Sleepy {
        fn kind(&self) -> &'static str {
            "sleepy"
        }
        fn resumable(&self) -> bool {
            false
        }
        fn run(&self, ctx: &JobContext) -> Result<(), String> {
            let n = self.0.now_running.fetch_add(1, Ordering::SeqCst) + 1;
            self.0.max_running.fetch_max(n, Ordering::SeqCst);
            let start = Instant::now();
            std::thread::sleep(Duration::from_millis(150));
            self.0.now_running.fetch_sub(1, Ordering::SeqCst);
            self.0
                .log
                .lock()
                .unwrap()
                .push((ctx.job.target.clone(), start, Instant::now()));
            if ctx.params()["fail"] == true {
                return Err("asked to fail".into());
            }
            Ok(())
        }
    }

    fn probe() -> Arc<Probe> {
        Arc::new(Probe {
            log: Mutex::new(vec![]),
            now_running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
        })
    }

    fn submit(e: &JobEngine, target: &str, fail: bool) -> Job {
        e.submit(NewJob {
            kind: "sleepy".into(),
            target: target.into(),
            account_id: None,
            project_id: None,
            params: serde_json::json!({ "fail": fail }),
        })
        .unwrap()
    }

    async fn wait_final(e: &JobEngine, id: &Uuid) -> Job {
        for _ in 0..200 {
            let j = e.get(id).unwrap().unwrap();
            if j.status.is_final() {
                return j;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("job {id} did not finish");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ending_is_signalled_once_the_job_reads_final() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let probe = probe();
        let e = JobEngine::new(store, 2, vec![Arc::new(Sleepy(probe))]).unwrap();
        let mut endings = e.endings();
        let j = submit(&e, "vm/a", true);
        e.start();
        tokio::time::timeout(Duration::from_secs(10), endings.changed())
            .await
            .expect("no ending signalled")
            .unwrap();
        let j = e.get(&j.id).unwrap().unwrap();
        assert_eq!(j.status, JobStatus::Failed);
        assert_eq!(*endings.borrow_and_update(), 1);
        assert!(!endings.has_changed().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_job_per_target_at_a_time_in_order_others_in_parallel() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let probe = probe();
        let e = JobEngine::new(store, 4, vec![Arc::new(Sleepy(probe.clone()))]).unwrap();
        let a: Vec<_> = (0..3).map(|i| submit(&e, "vm/a", i == 1)).collect();
        let b = submit(&e, "vm/b", false);
        e.start();
        let mut finals = vec![];
        for j in a.iter().chain([&b]) {
            finals.push(wait_final(&e, &j.id).await);
        }
        assert_eq!(finals[0].status, JobStatus::Succeeded);
        assert_eq!(finals[1].status, JobStatus::Failed);
        assert_eq!(finals[1].error.as_deref(), Some("asked to fail"));
        assert_eq!(finals[2].status, JobStatus::Succeeded);
        assert_eq!(finals[3].status, JobStatus::Succeeded);
        assert!(finals.iter().all(|j| j.attempts == 1));

        let log = probe.log.lock().unwrap();
        let runs_a: Vec<_> = log.iter().filter(|(t, ..)| t == "vm/a").collect();
        assert_eq!(runs_a.len(), 3);
        for w in runs_a.windows(2) {
            assert!(w[0].2 <= w[1].1, "jobs of one target overlapped");
        }
        // vm/b ran alongside vm/a's first job rather than after all of them.
        assert_eq!(probe.max_running.load(Ordering::SeqCst), 2);
        // Completion order of vm/a follows submission order.
        let mut by_seq: Vec<_> = finals[..3].iter().map(|j| (j.seq, j.finished_at)).collect();
        by_seq.sort();
        assert!(by_seq.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_account_never_holds_more_than_half_the_workers() {
        let dir = tempfile::tempdir().unwrap();
        let probe = probe();
        let e = JobEngine::new(
            Store::open(dir.path()).unwrap(),
            4,
            vec![Arc::new(Sleepy(probe.clone()))],
        )
        .unwrap();
        let (greedy, other) = (Uuid::new_v4(), Uuid::new_v4());
        let job = |account: Uuid, target: String| {
            e.submit(NewJob {
                kind: "sleepy".into(),
                target,
                account_id: Some(account),
                project_id: None,
                params: serde_json::json!({}),
            })
            .unwrap()
        };
        // Eight jobs of one tenant on eight VMs, then one of another tenant.
        let many: Vec<_> = (0..8).map(|i| job(greedy, format!("vm/g{i}"))).collect();
        let late = job(other, "vm/o".into());
        e.start();
        let late = wait_final(&e, &late.id).await;
        let mut greedy_ends = vec![];
        for j in &many {
            greedy_ends.push(wait_final(&e, &j.id).await.finished_at.unwrap());
        }
        let log = probe.log.lock().unwrap();
        // At no moment did the greedy tenant run more than 2 of the 4 workers' jobs.
        for (t, start, _) in log.iter().filter(|(t, ..)| t.starts_with("vm/g")) {
            let overlapping = log
                .iter()
                .filter(|(u, s2, e2)| u.starts_with("vm/g") && s2 <= start && start < e2)
                .count();
            assert!(
                overlapping <= 2,
                "{t}: {overlapping} of one account at once"
            );
        }
        // The other tenant did not wait for the greedy one's queue to drain.
        let last_greedy = greedy_ends.iter().max().unwrap();
        assert!(
            late.finished_at.unwrap() < *last_greedy,
            "the other account's job waited behind all of the greedy one's"
        );
    }

    #[tokio::test]
    async fn unknown_kinds_are_refused_at_submit() {
        let dir = tempfile::tempdir().unwrap();
        let e = JobEngine::new(Store::open(dir.path()).unwrap(), 1, vec![]).unwrap();
        let err = e
            .submit(NewJob {
                kind: "nope".into(),
                target: "x".into(),
                account_id: None,
                project_id: None,
                params: serde_json::Value::Null,
            })
            .unwrap_err();
        assert!(matches!(err, JobError::UnknownKind(k) if k == "nope"));
        assert!(e.list().unwrap().is_empty());
    }
}
