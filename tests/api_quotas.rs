//! Per-account quotas and host admission through the API: over-quota and over-capacity
//! requests get the contract's error body naming what is short, and nothing is created.
//! (Compute is off here: a request that passes quotas and admission then answers 503.)

mod common;
use common::*;
use serde_json::{json, Value};

const TEMPLATE: &str = "5ac21891-32e6-41ce-8a93-b5d6ab708b0d";

fn config(extra: &str) -> String {
    format!(
        r#"{RELAXED}
[[catalog.templates]]
id = "{TEMPLATE}"
name = "t"
version = "1"
cpu = 1
ram = 1
storage = 1
region = "us-east"
image = "/nonexistent/t.qcow2"

{extra}
"#
    )
}

fn vm(plan: i64) -> Value {
    json!({"name": "q", "template_id": TEMPLATE, "pricing_id": plan, "region": "us-east",
        "ssh_keys": [ED25519]})
}

#[test]
fn over_quota_requests_are_refused_and_change_nothing() {
    let mut s = Server::start(&config(
        "[quotas]\nvcpus = 1\nsecurity_groups = 1\nrules_per_group = 2\n",
    ));
    let p = s.admin.project_id.clone();
    let post_vm = |s: &Server, plan: i64| {
        s.admin_call("POST", "/api/v1/vms")
            .project(&p)
            .json(vm(plan))
    };

    // Plan 3 has 2 vCPUs: over the quota of 1.
    let msg = post_vm(&s, 3).error(402);
    assert!(msg.contains("quota exceeded: vcpus = 1"), "{msg}");
    // Plan 1 (1 vCPU) passes quotas and admission; compute is off here.
    post_vm(&s, 1).error(503);
    assert_eq!(s.admin_call("GET", "/api/v1/vms").send().body["total"], 0);

    // Security groups: one per account, two rules per group.
    let group = |name: &str, rules: usize| {
        let rules: Vec<Value> = (0..rules)
            .map(|i| json!({"rule_type": "INBOUND", "protocol": "TCP", "range": format!("{}", 100 + i), "ip": "0.0.0.0/0"}))
            .collect();
        s.admin_call("POST", "/api/v1/security-groups")
            .project(&p)
            .json(json!({"name": name, "rules": rules}))
    };
    let msg = group("big", 3).error(402);
    assert!(msg.contains("rules_per_group = 2"), "{msg}");
    let r = group("one", 2);
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let msg = group("two", 0).error(402);
    assert!(msg.contains("security_groups = 1"), "{msg}");
    let rules: Vec<Value> = (0..3)
        .map(|i| json!({"rule_type": "INBOUND", "protocol": "TCP", "range": format!("{}", 200 + i), "ip": "0.0.0.0/0"}))
        .collect();
    let msg = s
        .admin_call("PUT", &format!("/api/v1/security-groups/{id}"))
        .project(&p)
        .json(json!({"rules": rules}))
        .error(402);
    assert!(msg.contains("rules_per_group = 2"), "{msg}");
    let g = s
        .admin_call("GET", &format!("/api/v1/security-groups/{id}"))
        .project(&p)
        .send();
    assert_eq!(
        g.body["data"]["rules"].as_array().unwrap().len(),
        2,
        "{}",
        g.text
    );
    let all = s.admin_call("GET", "/api/v1/security-groups").send();
    assert_eq!(
        all.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        all.text
    );

    // The operator raises this account's vCPU quota: plan 3 now passes the quota.
    s.kill();
    let o = s.admin(&["admin", "set-quota", "admin", "vcpus", "4"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = s.admin(&["admin", "set-quota", "admin", "no_such_quota", "4"]);
    assert!(!o.status.success());
    s.spawn();
    post_vm(&s, 3).error(503);
}

#[test]
fn the_host_admits_no_more_than_it_holds() {
    let s = Server::start(&config("[admission]\nmemory_overcommit = 0.00001\n"));
    let msg = s
        .admin_call("POST", "/api/v1/vms")
        .project(&s.admin.project_id)
        .json(vm(1))
        .error(409);
    assert!(msg.contains("the host is short of memory"), "{msg}");
    let t = Server::start(&config("[admission]\ndisk_overcommit = 0.00001\n"));
    let msg = t
        .admin_call("POST", "/api/v1/vms")
        .project(&t.admin.project_id)
        .json(vm(1))
        .error(409);
    assert!(msg.contains("the host is short of disk"), "{msg}");
    assert_eq!(t.admin_call("GET", "/api/v1/vms").send().body["total"], 0);
}
