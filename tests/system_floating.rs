//! Floating IPs with real guests: a reserved address attached to guest A answers from
//! A (from a client namespace routed through the host), moved to B answers from B at
//! the first try, keeps answering while skiff is down and after it restarts, and
//! answers from nobody once released (no route, no NAT entry, no lease left). The
//! refusals change nothing. Traffic stays in the test's namespaces.

mod common;
use common::netns::*;
use common::vmhost::*;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PREFIX: &str = "svl";

fn create(s: &Server, p: &str, name: &str) -> String {
    let r = s.admin_call("POST", "/api/v1/vms").project(p).json(json!({
        "name": name, "template_id": TEMPLATE_ID, "pricing_id": 1, "region": "us-east",
        "ssh_keys": [ED25519], "skip_public_ip": true}));
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["data"]["id"].as_str().unwrap().to_string()
}

#[test]
fn a_floating_ip_follows_its_vm_and_leaves_nothing_behind() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let _vg = VpcGuard(PREFIX);
    let base = config(&h, "10.231.0.112/28", "10.231.0.113", PREFIX);
    let mut s = Server::start(&format!(
        "{base}\n[network.vpc]\nfloating_cidr = \"10.232.0.0/28\"\ntransit_cidr = \"169.254.32.0/24\"\n"
    ));
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();

    // The client: a namespace on a link of the host's, routing the pool to it.
    let client = Peer::new("svl-client", "svlx0", "203.0.113.1/24", "203.0.113.2/24");
    client.route("10.232.0.0/28", "203.0.113.1");

    // Two VPC-only guests, each in a VPC of its own (the contract's default).
    let a = create(&s, &p, "fip-a");
    let b = create(&s, &p, "fip-b");
    for id in [&a, &b] {
        wait_status(&s, id, "active", Duration::from_secs(240));
    }
    let r = s
        .admin_call("POST", "/api/v1/ips/reserve")
        .project(&p)
        .send();
    assert_eq!(r.status, 201, "{}", r.text);
    let f: Value = r.body["data"].clone();
    assert_eq!(
        (f["reserved"].clone(), f["status"].clone()),
        (json!(true), json!("free"))
    );
    assert!(f["price_per_hour"].is_string(), "{f}");
    let fid = f["id"].as_str().unwrap().to_string();
    let fip = f["ip_address"].as_str().unwrap().to_string();
    assert!(fip.starts_with("10.232.0."), "{fip}");
    assert_eq!(client.page(&fip), None, "a free address answers");

    let attach = |s: &Server, vm: &str, body: Value| {
        s.admin_call("POST", &format!("/api/v1/vms/{vm}/ip"))
            .project(&s.admin.project_id)
            .json(body)
    };
    let detach = |s: &Server, vm: &str, nic: &str| {
        s.admin_call("DELETE", &format!("/api/v1/vms/{vm}/ip/{nic}"))
            .project(&s.admin.project_id)
            .send()
    };
    let r = attach(&s, &a, json!({"ip_id": fid}));
    assert_eq!(r.status, 200, "{}", r.text);
    let nic_a = r.body["data"]["nic_id"].to_string();
    let nets = s
        .admin_call("GET", &format!("/api/v1/vms/{a}/networks"))
        .send();
    let vpc_nic = nets.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "vpc")
        .unwrap()
        .clone();
    assert_eq!(r.body["data"]["mac"], vpc_nic["mac"]);
    let row = nets.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "public")
        .unwrap_or_else(|| panic!("no public row: {}", nets.text))
        .clone();
    assert_eq!(row["ip"], fip.as_str());
    assert_eq!(row["nic_id"].to_string(), nic_a);
    assert_eq!(client.page(&fip).as_deref(), Some("fip-a"));
    let got = s.admin_call("GET", &format!("/api/v1/ips/{fid}")).send();
    assert_eq!(got.body["data"]["status"], "in-use");

    // Refusals: nothing changes.
    assert!(attach(&s, &b, json!({"ip_id": fid}))
        .error(400)
        .contains("attached"));
    assert!(attach(&s, &a, json!({"type": "IPv4"}))
        .error(400)
        .contains("already"));
    let r = s
        .admin_call("DELETE", &format!("/api/v1/ips/{fid}/reserve"))
        .project(&p)
        .send();
    assert!(r.error(400).contains("detach it first"));
    let r = s
        .admin_call("POST", &format!("/api/v1/ips/{fid}/change"))
        .project(&p)
        .send();
    assert!(r.error(400).contains("attached"));
    detach(&s, &a, "999999").error(404);
    let own = vpc_nic["nic_id"].to_string();
    assert!(detach(&s, &a, &own).error(400).contains("own NIC"));
    let other = {
        s.kill();
        let o = s.create_account("fip-other");
        s.spawn();
        o
    };
    let r = s
        .call("POST", &format!("/api/v1/vms/{b}/ip"))
        .key(&other.api_key)
        .project(&other.project_id)
        .json(json!({"ip_id": fid}));
    assert_eq!(r.status, 404, "another account's VM: {}", r.text);
    let r = s
        .call("GET", &format!("/api/v1/ips/{fid}"))
        .key(&other.api_key)
        .send();
    assert_eq!(r.status, 404);
    assert_eq!(
        client.page(&fip).as_deref(),
        Some("fip-a"),
        "a refusal moved it"
    );

    // The move: the first request after the API answered reaches B.
    assert_eq!(detach(&s, &a, &nic_a).status, 200);
    let t = Instant::now();
    let r = attach(&s, &b, json!({"ip_id": fid}));
    assert_eq!(r.status, 200, "{}", r.text);
    let nic_b = r.body["data"]["nic_id"].to_string();
    assert_eq!(client.page(&fip).as_deref(), Some("fip-b"));
    eprintln!("moved and answered from B within {:?}", t.elapsed());

    // Kernel state outlives skiff, and a restart keeps it.
    s.kill();
    assert_eq!(client.page(&fip).as_deref(), Some("fip-b"), "skiff down");
    s.spawn();
    assert_eq!(
        client.page(&fip).as_deref(),
        Some("fip-b"),
        "after the restart"
    );

    // An address given at attach (no ip_id) goes back to the pool at detach.
    let r = attach(&s, &a, json!({"type": "IPv4"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let auto = r.body["data"]["ip_address"].as_str().unwrap().to_string();
    assert_eq!(client.page(&auto).as_deref(), Some("fip-a"));
    assert_eq!(
        detach(&s, &a, &r.body["data"]["nic_id"].to_string()).status,
        200
    );
    assert_eq!(client.page(&auto), None);
    let list = s.admin_call("GET", "/api/v1/ips").project(&p).send();
    assert_eq!(list.body["total"], 1, "{}", list.text);

    // Change, then release: nothing answers, nothing is left.
    assert_eq!(detach(&s, &b, &nic_b).status, 200);
    assert_eq!(client.page(&fip), None, "a detached address answers");
    let r = s
        .admin_call("POST", &format!("/api/v1/ips/{fid}/change"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["old_ip"]["ip_address"], fip.as_str());
    let changed = r.body["new_ip"]["ip_address"].as_str().unwrap().to_string();
    assert_ne!(changed, fip);
    let r = s
        .admin_call("DELETE", &format!("/api/v1/ips/{fid}/reserve"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        s.admin_call("GET", &format!("/api/v1/ips/{fid}"))
            .send()
            .status,
        404
    );
    assert_eq!(
        s.admin_call("GET", "/api/v1/ips").project(&p).send().body["total"],
        0
    );
    for addr in [&fip, &changed, &auto] {
        let routes = out(&["ip", "-4", "route", "show", &format!("{addr}/32")]);
        assert!(
            routes.trim().is_empty(),
            "a route to {addr} is left: {routes}"
        );
    }
    for name in vpc_routers(PREFIX) {
        let t = out(&[
            "ip", "netns", "exec", &name, "nft", "list", "table", "ip", "skiff",
        ]);
        assert!(
            !t.contains("10.232.0."),
            "a NAT entry is left in {name}: {t}"
        );
    }
}
