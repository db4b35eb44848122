//! `active` means booted: a VM whose template cannot boot (a blank disk: the BIOS finds
//! nothing to start) ends as `failure`, its job's error says so with the console's
//! tail, and the domain is not left running.

mod common;
use common::vmhost::*;
use common::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const BLANK_ID: &str = "6f1c1c52-0000-4000-8000-0000000b1a4c";

#[test]
fn a_guest_that_never_boots_ends_in_failure_with_the_reason() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.qcow2");
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&blank)
        .arg("64M")
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = config(&h, "10.231.0.248/29", "10.231.0.249", "sbf")
        .replace("boot_timeout_secs = 180", "boot_timeout_secs = 20")
        + &format!(
            r#"
[[catalog.templates]]
id = "{BLANK_ID}"
name = "blank"
version = "1"
cpu = 1
ram = 1
storage = 1
region = "us-east"
image = "{}"
"#,
            blank.display()
        );
    let s = Server::start(&cfg);
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();
    let r = s.admin_call("POST", "/api/v1/vms").project(&p).json(json!({
        "name": "no-boot", "template_id": BLANK_ID, "pricing_id": 1,
        "region": "us-east", "ssh_keys": [ED25519]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let vm = wait_status(&s, &id, "failure", Duration::from_secs(120));
    assert_eq!(vm["status"], "failure");
    let jobs = s.admin_call("GET", "/api/skiff/v1/jobs").project(&p).send();
    let job = jobs.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "vm.create")
        .cloned()
        .expect("the create job");
    assert_eq!(job["status"], "failed", "{job}");
    let err = job["error"].as_str().unwrap_or_default();
    assert!(err.contains("did not boot within 20 s"), "{err}");
    assert!(err.contains("Console tail"), "{err}");
    // Not left running: the domain is off.
    let state = virsh(&["domstate", &format!("skiff-vm-{id}")]);
    assert!(state.contains("shut off"), "{state}");
}
