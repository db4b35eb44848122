//! VPCs through the API on the test host: create makes a bridge and a router
//! namespace holding the gateway, refusals change nothing (records or kernel), another
//! account may reuse a CIDR, the quota holds, delete removes every host object, and
//! the reconciler repairs what went missing and removes strays after a restart.

mod common;
use common::vmhost::*;
use common::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::process::Command;

const PREFIX: &str = "svp";

fn out(args: &[&str]) -> String {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The kernel's VPC objects under this test's prefix: link names and router
/// namespaces.
fn kernel() -> BTreeSet<String> {
    let mut all: BTreeSet<String> = out(&["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(&format!("{PREFIX}b")) || n.starts_with(&format!("{PREFIX}g")))
        .collect();
    for e in std::fs::read_dir("/run/netns").unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!("skiff-vpc-{PREFIX}-")) {
            all.insert(n);
        }
    }
    all
}

fn gateway_of(netns: &str) -> String {
    out(&["ip", "-n", netns, "-o", "-4", "addr", "show", "dev", "gw0"])
}

#[test]
fn vpcs_make_and_remove_their_host_objects_and_refuse_bad_input() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let _vg = VpcGuard(PREFIX);
    let mut s = Server::start(&config(&h, "10.231.0.224/28", "10.231.0.225", PREFIX));
    let p = s.admin.project_id.clone();
    assert!(
        kernel().is_empty(),
        "left from an earlier run: {:?}",
        kernel()
    );

    let r = s
        .admin_call("POST", "/api/v1/vpcs")
        .project(&p)
        .json(json!({"name": "prod", "cidr": "10.10.0.0/24"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let a = r.body["data"].clone();
    assert_eq!(a["status"], "active", "{a}");
    assert_eq!(a["gateway"], "10.10.0.1");
    assert_eq!(a["total_ips"], 256);
    assert_eq!(a["used_ips"], 0);
    assert_eq!(a["region"], "us-east");
    let a_id = a["id"].as_str().unwrap().to_string();
    let objs = kernel();
    assert_eq!(
        objs.len(),
        3,
        "one bridge, one veth, one namespace: {objs:?}"
    );
    let ns = objs
        .iter()
        .find(|n| n.starts_with("skiff-vpc-"))
        .unwrap()
        .clone();
    assert!(
        gateway_of(&ns).contains("10.10.0.1/24"),
        "{}",
        gateway_of(&ns)
    );
    let bridge = objs.iter().find(|n| n.starts_with("svpb")).unwrap().clone();
    let link = out(&["ip", "-d", "-o", "link", "show", "dev", &bridge]);
    assert!(
        link.contains("mtu 1450") && link.contains("nf_call_iptables 0"),
        "{link}"
    );
    assert!(out(&["ip", "-o", "addr", "show", "dev", &bridge])
        .trim()
        .is_empty());

    // Refusals: 400 with the reason, and nothing changes anywhere.
    for (body, why) in [
        (
            json!({"name": "x", "cidr": "10.10.0.0/16"}),
            "overlaps 10.10.0.0/24",
        ),
        (json!({"name": "x", "cidr": "10.10.0.128/25"}), "overlaps"),
        (json!({"name": "x", "cidr": "10.20.0.0/29"}), "/16 to /28"),
        (json!({"name": "x", "cidr": "10.20.0.0/12"}), "/16 to /28"),
        (json!({"name": "x", "cidr": "8.8.8.0/24"}), "private range"),
        (json!({"name": "x", "cidr": "10.20.0.7/24"}), "host bits"),
        (
            json!({"name": "x", "cidr": "10.231.0.0/24"}),
            "public network",
        ),
        (json!({"name": "", "cidr": "10.20.0.0/24"}), "name must be"),
        (
            json!({"name": "x", "cidr": "10.20.0.0/24", "region": "mars"}),
            "unknown region",
        ),
        (json!({"name": "x"}), "cidr"),
    ] {
        let r = s
            .admin_call("POST", "/api/v1/vpcs")
            .project(&p)
            .json(body.clone());
        let msg = r.error(400);
        assert!(msg.contains(why), "{body}: {msg}");
    }
    let r = s
        .admin_call("POST", "/api/v1/vpcs")
        .json(json!({"name": "x", "cidr": "10.20.0.0/24"}));
    assert_eq!(r.status, 400, "no X-Project-ID: {}", r.text);
    let list = s.admin_call("GET", "/api/v1/vpcs").send();
    assert_eq!(
        list.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
    assert!(
        list.body.get("total").is_none(),
        "the contract's VPC list has no total"
    );
    assert_eq!(kernel(), objs, "a refusal changed the kernel");

    // Detail, rename, suggestions.
    let r = s.admin_call("GET", &format!("/api/v1/vpcs/{a_id}")).send();
    assert_eq!(r.status, 400, "X-Project-ID is required: {}", r.text);
    let r = s.admin_call("GET", "/api/v1/vpcs/cidr-suggestions").send();
    assert_eq!(r.status, 400, "X-Project-ID is required: {}", r.text);
    let d = s
        .admin_call("GET", &format!("/api/v1/vpcs/{a_id}"))
        .project(&p)
        .send();
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body["data"]["vpc"]["id"], a_id.as_str());
    assert_eq!(d.body["data"]["ip_range_start"], "10.10.0.2");
    assert_eq!(d.body["data"]["ip_range_end"], "10.10.0.254");
    assert_eq!(d.body["data"]["leases"], json!([]));
    let r = s
        .admin_call("PUT", &format!("/api/v1/vpcs/{a_id}"))
        .project(&p)
        .json(json!({"name": "production", "description": "web tier"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["name"], "production");
    assert_eq!(r.body["data"]["description"], "web tier");
    assert_eq!(r.body["data"]["cidr"], "10.10.0.0/24");
    let r = s
        .admin_call("PUT", &format!("/api/v1/vpcs/{a_id}"))
        .project(&p)
        .json(json!({}));
    assert!(r.error(400).contains("name or description"));
    let sg = s
        .admin_call("GET", "/api/v1/vpcs/cidr-suggestions")
        .project(&p)
        .send();
    assert_eq!(sg.status, 200, "{}", sg.text);
    assert_eq!(sg.body["existing_count"], 1);
    assert_eq!(sg.body["suggested"], "10.0.1.0/24", "{}", sg.text);
    assert_eq!(sg.body["suggested_ips"], 253);
    let alts: Vec<&str> = sg.body["alternatives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["cidr"].as_str().unwrap())
        .collect();
    assert_eq!(alts.len(), 3, "{}", sg.text);
    for c in alts.iter().chain([&"10.0.1.0/24"]) {
        // Every suggestion is accepted as it is (then removed again).
        let r = s
            .admin_call("POST", "/api/v1/vpcs")
            .project(&p)
            .json(json!({"name": "s", "cidr": c}));
        assert_eq!(r.status, 201, "{c}: {}", r.text);
        let id = r.body["data"]["id"].as_str().unwrap().to_string();
        let r = s
            .admin_call("DELETE", &format!("/api/v1/vpcs/{id}"))
            .project(&p)
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(kernel(), objs);

    // Another account: the same CIDR is its own; A's VPC is not there for it.
    s.kill();
    let other = s.create_account("other");
    let o = s.admin(&["admin", "set-quota", "admin", "vpcs", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s.spawn();
    let r = s
        .call("POST", "/api/v1/vpcs")
        .key(&other.api_key)
        .project(&other.project_id)
        .json(json!({"name": "prod", "cidr": "10.10.0.0/24"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let b_id = r.body["data"]["id"].as_str().unwrap().to_string();
    for (m, path) in [
        ("GET", format!("/api/v1/vpcs/{a_id}")),
        ("DELETE", format!("/api/v1/vpcs/{a_id}")),
    ] {
        let r = s
            .call(m, &path)
            .key(&other.api_key)
            .project(&other.project_id)
            .send();
        assert_eq!(r.status, 404, "{m} {path}: {}", r.text);
    }
    let r = s.call("GET", "/api/v1/vpcs").key(&other.api_key).send();
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(kernel().len(), 6);

    // The quota (2 for the admin account): the second is made, the third refused.
    let r = s
        .admin_call("POST", "/api/v1/vpcs")
        .project(&p)
        .json(json!({"name": "two", "cidr": "192.168.0.0/24"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let two = r.body["data"]["id"].as_str().unwrap().to_string();
    let before = kernel();
    let r = s
        .admin_call("POST", "/api/v1/vpcs")
        .project(&p)
        .json(json!({"name": "three", "cidr": "192.168.1.0/24"}));
    assert!(r.error(402).contains("vpcs"), "{}", r.text);
    assert_eq!(kernel(), before);

    // The reconciler after a restart: A's objects deleted behind skiff's back come
    // back; objects no record names go.
    s.kill();
    let a_bridge = bridge.clone();
    out(&["ip", "link", "del", "dev", &a_bridge]);
    out(&["ip", "netns", "del", &ns]);
    out(&["ip", "link", "add", "svpb999", "type", "bridge"]);
    out(&["ip", "netns", "add", "skiff-vpc-svp-999"]);
    s.spawn();
    assert!(
        kernel().contains(&a_bridge) && kernel().contains(&ns),
        "{:?}",
        kernel()
    );
    assert!(gateway_of(&ns).contains("10.10.0.1/24"));
    assert!(
        !kernel().contains("svpb999") && !kernel().contains("skiff-vpc-svp-999"),
        "{:?}",
        kernel()
    );
    assert_eq!(kernel(), before);

    // Delete: every object goes, the record too.
    for (key, proj, id) in [
        (s.admin.api_key.clone(), p.clone(), a_id.clone()),
        (s.admin.api_key.clone(), p.clone(), two),
        (other.api_key.clone(), other.project_id.clone(), b_id),
    ] {
        let r = s
            .call("DELETE", &format!("/api/v1/vpcs/{id}"))
            .key(&key)
            .send();
        assert_eq!(r.status, 400, "X-Project-ID is required: {}", r.text);
        let r = s
            .call("DELETE", &format!("/api/v1/vpcs/{id}"))
            .key(&key)
            .project(&proj)
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
        let r = s
            .call("GET", &format!("/api/v1/vpcs/{id}"))
            .key(&key)
            .send();
        assert_eq!(r.status, 404, "{}", r.text);
    }
    assert!(kernel().is_empty(), "{:?}", kernel());
}
