//! SIGKILL skiff during a VM create and during a delete, restart it, and check that
//! store and libvirt agree: no domain without a record, no record pointing at nothing,
//! no leaked disk file, tap or address.

mod common;
use common::vmhost::*;
use common::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

/// Domains whose name says skiff made them.
fn domains() -> BTreeSet<String> {
    virsh(&["list", "--all", "--name"])
        .lines()
        .filter(|l| l.starts_with("skiff-vm-"))
        .map(str::to_string)
        .collect()
}

/// Checks the invariants for the VMs this test made (`created`): every record has its
/// domain and directory and nothing else of them is left; one tap per running VM.
fn consistent(s: &Server, bridge: &str, created: &[String]) {
    let r = s.admin_call("GET", "/api/v1/vms?limit=1000").send();
    let vms: Vec<serde_json::Value> = r.body["data"].as_array().unwrap().clone();
    let ids: BTreeSet<String> = vms
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    let all = domains();
    let doms: BTreeSet<String> = created
        .iter()
        .filter(|i| all.contains(&format!("skiff-vm-{i}")))
        .cloned()
        .collect();
    assert_eq!(doms, ids, "domains and records agree");
    let dirs: BTreeSet<String> = std::fs::read_dir(s.data().join("vms"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(dirs, ids, "VM directories and records agree");
    let taps = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .unwrap();
    let taps = String::from_utf8_lossy(&taps.stdout);
    let running = vms.iter().filter(|v| v["status"] == "active").count();
    assert_eq!(
        taps.matches(": svc").count(),
        running,
        "one tap per running VM: {taps}"
    );
}

#[test]
fn sigkill_during_create_and_delete_leaves_nothing_inconsistent() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let mut s = Server::start(&config(&h, "10.231.0.128/25", "10.231.0.129", "svc"));
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();
    let create = |s: &Server, name: &str| {
        let r = s.admin_call("POST", "/api/v1/vms").project(&p).json(json!({
            "name": name, "template_id": TEMPLATE_ID, "pricing_id": 1, "region": "us-east",
            "ssh_keys": [ED25519]}));
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["data"]["id"].as_str().unwrap().to_string()
    };

    // Kill while the create job is between "provisioning" and "active".
    let mut created = vec![];
    let a = create(&s, "crash-a");
    created.push(a.clone());
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let st =
            s.admin_call("GET", &format!("/api/v1/vms/{a}")).send().body["data"]["status"].clone();
        if st == "provisioning" || st == "booting" {
            break;
        }
        assert!(
            st == "initiating" && Instant::now() < until,
            "missed the window: {st}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.restart();
    let vm = wait_status(&s, &a, "active", Duration::from_secs(240));
    assert_eq!(vm["public_ipv4_address"], "10.231.0.130");
    wait_jobs_idle(&s, &p, Duration::from_secs(60));
    consistent(&s, &h.bridge, &created);

    // Acknowledged means durable: a schedule (201) and a backup (202) survive a kill
    // sent the moment their answer arrives.
    let r = s
        .admin_call("POST", "/api/v1/backup-schedules")
        .project(&p)
        .json(json!({"vm_id": a, "type": "daily", "time": "8am", "keep_count": 1}));
    assert_eq!(r.status, 201, "{}", r.text);
    let sid = r.body["data"]["id"].as_u64().unwrap();
    s.restart();
    let r = s
        .admin_call("GET", &format!("/api/v1/backup-schedules/{sid}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "schedule lost: {}", r.text);
    let r = s
        .admin_call("POST", "/api/v1/backups")
        .project(&p)
        .json(json!({"vm_id": a, "name": "acked"}));
    assert_eq!(r.status, 202, "{}", r.text);
    let bid = r.body["data"]["id"].as_str().unwrap().to_string();
    s.restart();
    let r = s
        .admin_call("GET", &format!("/api/v1/backups/{bid}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "backup lost: {}", r.text);
    wait_jobs_idle(&s, &p, Duration::from_secs(120));
    wait_status(&s, &a, "active", Duration::from_secs(120));
    consistent(&s, &h.bridge, &created);

    // Kill right after a delete was accepted.
    let b = create(&s, "crash-b");
    created.push(b.clone());
    wait_status(&s, &b, "active", Duration::from_secs(240));
    let r = s
        .admin_call("DELETE", &format!("/api/v1/vms/{b}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200);
    s.restart();
    wait_jobs_idle(&s, &p, Duration::from_secs(120));
    s.admin_call("GET", &format!("/api/v1/vms/{b}"))
        .send()
        .error(404);
    consistent(&s, &h.bridge, &created);

    // Kill in the middle of a stop, then clean up everything.
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{a}/stop"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(300));
    s.restart();
    wait_status(&s, &a, "passive", Duration::from_secs(120));
    consistent(&s, &h.bridge, &created);
    let r = s
        .admin_call("DELETE", &format!("/api/v1/vms/{a}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200);
    wait_jobs_idle(&s, &p, Duration::from_secs(120));
    consistent(&s, &h.bridge, &created);
    assert!(!domains().contains(&format!("skiff-vm-{a}")));
    // Both addresses are free again: the next VM gets the first one.
    let c = create(&s, "crash-c");
    created.push(c.clone());
    // The moment the 201 arrives: the VM it acknowledged survives the kill.
    s.restart();
    let r = s.admin_call("GET", &format!("/api/v1/vms/{c}")).send();
    assert_eq!(r.body["data"]["public_ipv4_address"], "10.231.0.130");
    let r = s
        .admin_call("DELETE", &format!("/api/v1/vms/{c}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200);
    wait_jobs_idle(&s, &p, Duration::from_secs(240));
    consistent(&s, &h.bridge, &created);
}
