//! Durable jobs survive SIGKILL: a resumable job finishes after restart with every
//! step done exactly once; a non-resumable one is marked failed; none is lost or rerun.

mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn submit(s: &Server, steps: u64, step_ms: u64, resumable: bool) -> String {
    let r = s
        .admin_call("POST", "/api/skiff/v1/jobs/diag")
        .project(&s.admin.project_id)
        .json(json!({"steps": steps, "step_ms": step_ms, "resumable": resumable}));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "queued");
    r.body["data"]["id"].as_str().unwrap().to_string()
}

fn log_lines(s: &Server, id: &str) -> Vec<String> {
    std::fs::read_to_string(s.data().join("diag").join(format!("{id}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until the job has done some but not all of its steps.
fn wait_midway(s: &Server, id: &str, steps: usize) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let n = log_lines(s, id).len();
        if n >= 2 && n < steps {
            return;
        }
        assert!(n < steps, "job finished before it could be interrupted");
        assert!(Instant::now() < until, "job never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_mid_job_then_restart_resumes_without_repeating_a_step() {
    let mut s = Server::start(RELAXED);
    let steps = 15;
    let id = submit(&s, steps, 150, true);
    wait_midway(&s, &id, steps as usize);
    s.restart(); // SIGKILL, then a new process on the same data directory
    let job = s.wait_job(&id, Duration::from_secs(60));
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "started once, resumed once");
    let expected: Vec<String> = (0..steps).map(|i| format!("step {i}")).collect();
    assert_eq!(log_lines(&s, &id), expected, "every step exactly once");

    // A finished job is never run again by a later restart.
    s.restart();
    std::thread::sleep(Duration::from_millis(500));
    let again = s
        .admin_call("GET", &format!("/api/skiff/v1/jobs/{id}"))
        .send();
    assert_eq!(again.body["data"]["attempts"], 2);
    assert_eq!(log_lines(&s, &id).len(), steps as usize);
}

#[test]
fn sigkill_mid_job_fails_a_job_that_cannot_resume_and_keeps_the_queue() {
    let mut s = Server::start(RELAXED);
    let steps = 15;
    let once = submit(&s, steps, 150, false);
    // Queued behind it on the same target: must survive the crash and run afterwards.
    let next = submit(&s, 2, 1, true);
    wait_midway(&s, &once, steps as usize);
    let done_before = log_lines(&s, &once).len();
    s.restart();
    let job = s.wait_job(&once, Duration::from_secs(30));
    assert_eq!(job["status"], "failed");
    assert!(
        job["error"].as_str().unwrap().contains("interrupted"),
        "{job}"
    );
    assert_eq!(job["attempts"], 1, "not run again");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        log_lines(&s, &once).len(),
        done_before,
        "no step ran after the crash"
    );
    let queued = s.wait_job(&next, Duration::from_secs(30));
    assert_eq!(queued["status"], "succeeded");
    assert_eq!(log_lines(&s, &next), ["step 0", "step 1"]);
    let m = s.call("GET", "/metrics").send().text;
    assert!(m.contains("skiff_jobs{status=\"failed\"} 1"), "{m}");
    assert!(m.contains("skiff_jobs{status=\"succeeded\"} 1"), "{m}");
}
