//! Security groups through the API: CRUD, templates, rule validation (400, nothing
//! changes), stable rule ids. Attaching needs a VM: see system_security_groups.rs.

mod common;
use common::*;
use serde_json::{json, Value};

fn rules(r: &Reply) -> Vec<Value> {
    r.body["data"]["rules"].as_array().unwrap().clone()
}

#[test]
fn security_group_crud_templates_and_rule_validation() {
    let s = Server::start(RELAXED);
    let p = s.admin.project_id.clone();

    let t = s
        .admin_call("GET", "/api/v1/security-groups/templates")
        .send();
    assert_eq!(t.status, 200, "{}", t.text);
    let ids: Vec<&str> = t.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    for want in ["web-server", "ssh", "ping", "dns"] {
        assert!(ids.contains(&want), "template {want} in {ids:?}");
    }

    // From a template, merged with explicit rules.
    let r = s
        .admin_call("POST", "/api/v1/security-groups")
        .project(&p)
        .json(json!({
            "name": "web", "description": "front", "template_id": "web-server",
            "rules": [
                {"protocol": "TCP", "rule_type": "INBOUND", "range": "8000:9000", "ip": "10.0.0.7", "size": 8},
                {"protocol": "UDP", "rule_type": "OUTBOUND", "range": "53", "ip": "2001:db8::", "size": 32},
                {"protocol": "ICMP", "rule_type": "INBOUND", "icmp_type": 8},
                {"protocol": "IPSEC", "rule_type": "INBOUND", "ip": "0.0.0.0"},
                {"protocol": "47", "rule_type": "INBOUND"}
            ]
        }));
    assert_eq!(r.status, 201, "{}", r.text);
    let g = r.body["data"].clone();
    let id = g["id"].as_str().unwrap().to_string();
    assert_eq!(g["vm_count"], 0);
    let rs = rules(&r);
    assert!(
        rs.len() >= 2 + 5,
        "template rules plus explicit ones: {rs:?}"
    );
    assert!(rs
        .iter()
        .any(|x| x["range"] == "80" && x["protocol"] == "TCP"));
    let wide = rs.iter().find(|x| x["range"] == "8000:9000").unwrap();
    assert_eq!(
        (wide["ip"].clone(), wide["size"].clone()),
        (json!("10.0.0.0"), json!(8)),
        "normalised network"
    );
    let v6 = rs.iter().find(|x| x["protocol"] == "UDP").unwrap();
    assert_eq!(
        (v6["ip"].clone(), v6["rule_type"].clone()),
        (json!("2001:db8::"), json!("OUTBOUND"))
    );
    let ipsec = rs.iter().find(|x| x["protocol"] == "IPSEC").unwrap();
    assert_eq!(
        (ipsec["ip"].clone(), ipsec["size"].clone()),
        (json!("0.0.0.0"), json!(0))
    );
    assert!(
        rs.iter().all(|x| x["id"].as_u64().is_some_and(|i| i > 0)),
        "every rule has an id"
    );

    // Bad rules: 400, naming the rule, and nothing changes.
    let before = s
        .admin_call("GET", &format!("/api/v1/security-groups/{id}"))
        .project(&s.admin.project_id)
        .send();
    for (bad, why) in [
        (
            json!({"protocol": "TCP", "rule_type": "INBOUND", "ip": "10.0.0.300"}),
            "not an IPv4",
        ),
        (
            json!({"protocol": "TCP", "rule_type": "INBOUND", "ip": "10.0.0.0", "size": 33}),
            "does not fit",
        ),
        (
            json!({"protocol": "TCP", "rule_type": "INBOUND", "ip": "fd00::", "size": 129}),
            "does not fit",
        ),
        (
            json!({"protocol": "TCP", "rule_type": "INBOUND", "range": "90:80"}),
            "must not be above",
        ),
        (
            json!({"protocol": "TCP", "rule_type": "INBOUND", "range": "70000"}),
            "1 to 65535",
        ),
        (
            json!({"protocol": "TCP", "rule_type": "INBOUND", "range": "0"}),
            "1 to 65535",
        ),
        (
            json!({"protocol": "TCP", "rule_type": "INBOUND", "range": "80,443"}),
            "1 to 65535",
        ),
        (
            json!({"protocol": "SCTP", "rule_type": "INBOUND"}),
            "protocol",
        ),
        (
            json!({"protocol": "TCP", "rule_type": "SIDEWAYS"}),
            "rule_type",
        ),
        (
            json!({"protocol": "ICMP", "rule_type": "INBOUND", "range": "80"}),
            "TCP and UDP only",
        ),
        (
            json!({"protocol": "ALL", "rule_type": "INBOUND", "range": "1:2"}),
            "TCP and UDP only",
        ),
        (
            json!({"protocol": "TCP", "rule_type": "INBOUND", "icmp_type": 3}),
            "ICMP and ICMPV6 only",
        ),
        (
            json!({"protocol": "ICMP", "rule_type": "INBOUND", "icmp_type": 256}),
            "0 to 255",
        ),
        (
            json!({"protocol": "ICMP", "rule_type": "INBOUND", "ip": "fd00::1"}),
            "IPv4 addresses",
        ),
        (
            json!({"protocol": "TCP", "rule_type": "INBOUND", "size": 24}),
            "needs an ip",
        ),
        (
            json!({"protocol": "TCP", "rule_type": "INBOUND", "remote_group_id": "8d4f7c5e-0000-4000-8000-000000000000"}),
            "not a security group of this project",
        ),
    ] {
        let m = s
            .admin_call("PUT", &format!("/api/v1/security-groups/{id}"))
            .project(&s.admin.project_id)
            .json(
                json!({"rules": [{"protocol": "UDP", "rule_type": "INBOUND", "range": "53"}, bad]}),
            )
            .error(400);
        assert!(m.contains(why), "{bad}: {m}");
        assert!(
            m.contains("rules[1]") || why.contains("security group"),
            "names the rule: {m}"
        );
    }
    let after = s
        .admin_call("GET", &format!("/api/v1/security-groups/{id}"))
        .project(&s.admin.project_id)
        .send();
    assert_eq!(before.body, after.body, "refused updates change nothing");

    // Create refuses the same way and makes nothing.
    s.admin_call("POST", "/api/v1/security-groups")
        .project(&p)
        .json(json!({"name": "x", "rules": [{"protocol": "TCP", "rule_type": "INBOUND", "range": "90:80"}]}))
        .error(400);
    s.admin_call("POST", "/api/v1/security-groups")
        .project(&p)
        .json(json!({"name": "x", "template_id": "no-such"}))
        .error(400);
    s.admin_call("POST", "/api/v1/security-groups")
        .project(&p)
        .json(json!({"name": ""}))
        .error(400);
    let list = s.admin_call("GET", "/api/v1/security-groups").send();
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert!(
        list.body.get("total").is_none(),
        "the contract's list has no total"
    );

    // PUT replaces the rule set; a kept rule keeps its id, a new one gets a new id.
    let ssh_id = rs.iter().find(|x| x["range"] == "80").unwrap()["id"].clone();
    let r = s
        .admin_call("PUT", &format!("/api/v1/security-groups/{id}"))
        .project(&s.admin.project_id)
        .json(json!({"name": "web2", "rules": [
            {"protocol": "TCP", "rule_type": "INBOUND", "range": "80", "ip": ""},
            {"protocol": "TCP", "rule_type": "INBOUND", "range": "22", "ip": "192.168.1.0/24"}
        ]}));
    assert_eq!(r.status, 200, "{}", r.text);
    let rs2 = rules(&r);
    assert_eq!(r.body["data"]["name"], "web2");
    assert_eq!(rs2.len(), 2);
    assert_eq!(rs2[0]["id"], ssh_id, "an unchanged rule keeps its id");
    assert_ne!(rs2[1]["id"], ssh_id);
    assert_eq!(
        (rs2[1]["ip"].clone(), rs2[1]["size"].clone()),
        (json!("192.168.1.0"), json!(24))
    );
    s.admin_call("PUT", &format!("/api/v1/security-groups/{id}"))
        .project(&s.admin.project_id)
        .json(json!({}))
        .error(400);

    // A second group may name the first as its remote group; then the first cannot go.
    let r = s
        .admin_call("POST", "/api/v1/security-groups")
        .project(&p)
        .json(json!({"name": "db", "rules": [
            {"protocol": "TCP", "rule_type": "INBOUND", "range": "5432", "remote_group_id": id}
        ]}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(rules(&r)[0]["remote_group_id"], json!(id));
    let db = r.body["data"]["id"].as_str().unwrap().to_string();
    let m = s
        .admin_call("DELETE", &format!("/api/v1/security-groups/{id}"))
        .project(&s.admin.project_id)
        .send()
        .error(409);
    assert!(m.contains("remote group"), "{m}");
    assert_eq!(
        s.admin_call("DELETE", &format!("/api/v1/security-groups/{db}"))
            .project(&s.admin.project_id)
            .send()
            .status,
        200
    );
    assert_eq!(
        s.admin_call("DELETE", &format!("/api/v1/security-groups/{id}"))
            .project(&s.admin.project_id)
            .send()
            .status,
        200
    );
    s.admin_call("GET", &format!("/api/v1/security-groups/{id}"))
        .project(&s.admin.project_id)
        .send()
        .error(404);

    // Another account sees nothing.
    let mut s = s;
    s.kill();
    let other = s.create_account("other");
    s.spawn();
    let r = s
        .call("GET", "/api/v1/security-groups")
        .key(&other.api_key)
        .send();
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0);
}
