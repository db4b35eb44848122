//! VPCs with real guests: two guests in one VPC ping and fetch each other's web page
//! over it; a guest of another account in a VPC with the same CIDR (and the same
//! addresses) reaches neither; a spoofed source on a VPC NIC is dropped; a security
//! group on a VPC NIC gates it as on a public one; a VPC-only guest (`skip_public_ip`)
//! is reached inside its VPC; a VPC with members is not deleted, and the last
//! member's delete takes it with it. Traffic stays in the test namespace.

mod common;
use common::vmhost::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const PREFIX: &str = "svg";

fn create(s: &Server, key: &str, project: &str, body: Value) -> String {
    let mut b = json!({"template_id": TEMPLATE_ID, "pricing_id": 1, "region": "us-east",
                       "ssh_keys": [ED25519]});
    b.as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    let r = s
        .call("POST", "/api/v1/vms")
        .key(key)
        .project(project)
        .json(b);
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["data"]["id"].as_str().unwrap().to_string()
}

/// The VM's NICs as the API lists them.
fn nics(s: &Server, key: &str, vm: &str) -> Vec<Value> {
    let r = s
        .call("GET", &format!("/api/v1/vms/{vm}/networks"))
        .key(key)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().unwrap().clone()
}

fn of_type<'a>(nics: &'a [Value], t: &str) -> Vec<&'a Value> {
    nics.iter().filter(|n| n["type"] == t).collect()
}

fn ok(out: &str) -> bool {
    out.lines().any(|l| l.trim() == "OK")
}

/// From the guest at `via` (its public address): does `target` answer a ping?
fn pings(via: &str, target: &str) -> bool {
    ok(&guest_sh(
        via,
        &format!("ping -c 2 -W 2 {target} >/dev/null 2>&1 && echo OK || echo NO"),
    ))
}

/// From the guest at `via`: the web page at `target` (a guest's name), or NONE.
fn fetch(via: &str, target: &str) -> String {
    let out = guest_sh(
        via,
        // busybox-static's wget crashes in this guest; nc does the same here.
        &format!(
            "x=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {target} 80 2>/dev/null | tail -n 1); echo PAGE=${{x:-NONE}}"
        ),
    );
    out.lines()
        .find_map(|l| l.trim().strip_prefix("PAGE="))
        .unwrap_or_else(|| panic!("no answer from the guest: {out:?}"))
        .trim()
        .to_string()
}

#[test]
fn guests_in_a_vpc_reach_each_other_and_nothing_else() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let _vg = VpcGuard(PREFIX);
    let mut s = Server::start(&config(&h, "10.231.0.80/28", "10.231.0.81", PREFIX));
    let _guard = DomainGuard(s.data());
    s.kill();
    let other = s.create_account("tenant-b");
    s.spawn();
    let key = s.admin.api_key.clone();
    let p = s.admin.project_id.clone();

    // A makes VPC "x"; B and D join it (D with no public address); C is another
    // account's guest in a VPC with the very same block.
    let a = create(
        &s,
        &key,
        &p,
        json!({"name": "vpc-a", "vpc_name": "x", "vpc_cidr": "10.60.0.0/24"}),
    );
    let vpc = of_type(&nics(&s, &key, &a), "vpc")[0]["vpc_id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = create(&s, &key, &p, json!({"name": "vpc-b", "vpc_id": vpc}));
    let d = create(
        &s,
        &key,
        &p,
        json!({"name": "vpc-d", "vpc_id": vpc, "skip_public_ip": true}),
    );
    let c = create(
        &s,
        &other.api_key,
        &other.project_id,
        json!({"name": "vpc-c", "vpc_name": "x", "vpc_cidr": "10.60.0.0/24"}),
    );
    // Refusals change nothing: both ways of naming a VPC, half of a new one, no
    // network at all, a VPC of another account.
    let before = s.admin_call("GET", "/api/v1/vms").send().body["data"]
        .as_array()
        .unwrap()
        .len();
    for (body, why) in [
        (
            json!({"vpc_id": vpc, "vpc_name": "y", "vpc_cidr": "10.61.0.0/24"}),
            "not both",
        ),
        (json!({"vpc_name": "y"}), "go together"),
        (
            json!({"skip_vpc": true, "skip_public_ip": true}),
            "without any network",
        ),
        (
            json!({"skip_vpc": true, "vpc_id": vpc}),
            "skip_vpc goes without",
        ),
        (
            json!({"vpc_name": "y", "vpc_cidr": "10.60.0.0/25"}),
            "overlaps",
        ),
    ] {
        let mut full = json!({"name": "refused", "template_id": TEMPLATE_ID, "pricing_id": 1,
                              "region": "us-east", "ssh_keys": [ED25519]});
        full.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let r = s.admin_call("POST", "/api/v1/vms").project(&p).json(full);
        assert!(r.error(400).contains(why), "{body}: {}", r.text);
    }
    let r = s
        .call("POST", "/api/v1/vms")
        .key(&other.api_key)
        .project(&other.project_id)
        .json(
            json!({"name": "refused", "template_id": TEMPLATE_ID, "pricing_id": 1,
                     "region": "us-east", "ssh_keys": [ED25519], "vpc_id": vpc}),
        );
    assert!(r.error(400).contains("no VPC"), "{}", r.text);
    let after = s.admin_call("GET", "/api/v1/vms").send().body["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);

    let mut public = std::collections::HashMap::new();
    let mut private = std::collections::HashMap::new();
    for (id, k) in [(&a, &key), (&b, &key), (&c, &other.api_key), (&d, &key)] {
        let r = s.call("GET", &format!("/api/v1/vms/{id}")).key(k).send();
        assert_eq!(r.status, 200);
        let until = std::time::Instant::now() + Duration::from_secs(300);
        loop {
            let st = s
                .call("GET", &format!("/api/v1/vms/{id}"))
                .key(k)
                .send()
                .body["data"]["status"]
                .clone();
            if st == "active" {
                break;
            }
            assert!(st != "failure", "{id} failed");
            assert!(
                std::time::Instant::now() < until,
                "{id} never became active"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let list = nics(&s, k, id);
        let v = of_type(&list, "vpc");
        assert_eq!(v.len(), 1, "{list:?}");
        assert!(v[0]["mac"].as_str().unwrap().starts_with("52:54:00:"));
        assert_eq!(v[0]["network_name"], "x");
        assert_eq!(v[0]["gateway"], "10.60.0.1");
        assert_eq!(v[0]["is_primary"], false);
        private.insert(id.clone(), v[0]["ip"].as_str().unwrap().to_string());
        if let Some(p) = of_type(&list, "public").first() {
            assert_eq!(p["network_name"], "public");
            public.insert(id.clone(), p["ip"].as_str().unwrap().to_string());
        }
    }
    assert!(
        !public.contains_key(&d),
        "skip_public_ip: D has no public NIC"
    );
    let r = s.admin_call("GET", &format!("/api/v1/vms/{d}")).send();
    assert!(
        r.body["data"]["public_ipv4_address"].is_null(),
        "{}",
        r.text
    );
    // The other account's VPC hands out the same addresses.
    assert_eq!(private[&c], private[&a]);
    let (pa, pb, pc) = (&public[&a], &public[&b], &public[&c]);
    let (va, vb, vd) = (&private[&a], &private[&b], &private[&d]);

    // One VPC: ping and HTTP both ways; the VPC-only guest too.
    assert!(pings(pa, vb), "A cannot ping B over the VPC");
    assert!(pings(pb, va), "B cannot ping A over the VPC");
    assert_eq!(fetch(pa, vb), "vpc-b");
    assert_eq!(fetch(pb, vd), "vpc-d");
    assert!(pings(pa, "10.60.0.1"), "A cannot reach its VPC's gateway");
    // The other VPC: C reaches neither B's address nor D's; its own twin of A's
    // address is itself.
    assert!(!pings(pc, vb), "C reached B across accounts");
    assert_eq!(fetch(pc, vd), "NONE");

    // Anti-spoofing on the VPC NIC: another source is dropped, the NIC's own passes.
    let spoof = guest_sh(
        pa,
        &format!(
            "dev=$(ip -o -4 addr show | awk '$4 == \"{va}/24\" {{ print $2 }}'); \
             ip addr add 10.60.0.99/24 dev $dev; \
             ping -c 2 -W 2 -I 10.60.0.99 {vb} >/dev/null 2>&1 && echo SPOOF-OK || echo SPOOF-NO; \
             ip addr del 10.60.0.99/24 dev $dev; \
             ping -c 2 -W 2 -I {va} {vb} >/dev/null 2>&1 && echo REAL-OK || echo REAL-NO"
        ),
    );
    assert!(
        spoof.contains("SPOOF-NO"),
        "a spoofed source left the VPC NIC: {spoof}"
    );
    assert!(spoof.contains("REAL-OK"), "{spoof}");

    // A group on B's VPC NIC: ICMP only, then HTTP from the VPC as well.
    let r = s
        .admin_call("POST", "/api/v1/security-groups")
        .project(&p)
        .json(json!({"name": "vpc-in", "rules": [
            {"protocol": "ICMP", "rule_type": "INBOUND", "ip": "0.0.0.0"}]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let g = r.body["data"]["id"].as_str().unwrap().to_string();
    let nic_b = of_type(&nics(&s, &key, &b), "vpc")[0]["nic_id"]
        .as_u64()
        .unwrap();
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{b}/security-groups"))
        .project(&p)
        .json(json!({"security_group_id": g, "nic_id": nic_b}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(pings(pa, vb), "the group allows ICMP");
    assert_eq!(fetch(pa, vb), "NONE", "the group does not allow HTTP");
    assert_eq!(fetch(pc, pb), "vpc-b", "B's public NIC carries no group");
    let r = s
        .admin_call("PUT", &format!("/api/v1/security-groups/{g}"))
        .project(&p)
        .json(json!({"rules": [
            {"protocol": "ICMP", "rule_type": "INBOUND", "ip": "0.0.0.0"},
            {"protocol": "TCP", "rule_type": "INBOUND", "range": "80", "ip": "10.60.0.0", "size": 24}]}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(fetch(pa, vb), "vpc-b");

    // Hot-plug: A and B join a second VPC while they run; the guests get the
    // addresses by DHCP from the VPC's router (B the one asked for).
    let r = s
        .admin_call("POST", "/api/v1/vpcs")
        .project(&p)
        .json(json!({"name": "y", "cidr": "10.62.0.0/24"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let y = r.body["data"]["id"].as_str().unwrap().to_string();
    let taps = || {
        let o = std::process::Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .filter(|n| {
                n.strip_prefix(PREFIX)
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
            .count()
    };
    let taps_before = taps();
    let attach = |vm: &str, body: Value| {
        s.admin_call("POST", &format!("/api/v1/vms/{vm}/vpc"))
            .project(&p)
            .json(body)
    };
    let r = attach(&a, json!({"vpc_id": y}));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = attach(&b, json!({"vpc_id": y, "ip": "10.62.0.50"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(taps(), taps_before + 2, "one tap per new NIC");
    let in_y = |vm: &str| -> Value {
        nics(&s, &key, vm)
            .into_iter()
            .find(|n| n["vpc_id"] == y.as_str())
            .unwrap_or_else(|| panic!("{vm} has no NIC in y"))
    };
    let (ya, yb) = (in_y(&a), in_y(&b));
    assert_eq!(ya["network_name"], "y");
    assert_eq!(yb["ip"], "10.62.0.50");
    let ya_ip = ya["ip"].as_str().unwrap().to_string();
    for (via, want) in [(pa, &ya_ip), (pb, &"10.62.0.50".to_string())] {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let addrs = guest_sh(via, "ip -o -4 addr show");
            if addrs.contains(&format!("{want}/24")) {
                break;
            }
            assert!(
                std::time::Instant::now() < until,
                "the hot-plugged NIC never got {want} by DHCP: {addrs}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(
        pings(pa, "10.62.0.50"),
        "A cannot reach B over the hot-plugged NICs"
    );
    assert_eq!(fetch(pa, "10.62.0.50"), "vpc-b");
    // Refusals: nothing changes.
    let count = |vm: &str| nics(&s, &key, vm).len();
    let (na, nb) = (count(&a), count(&b));
    for (vm, body, why) in [
        (&a, json!({"vpc_id": y}), "already"),
        (&d, json!({"vpc_id": y, "ip": "10.62.0.50"}), "taken"),
        (&d, json!({"vpc_id": y, "ip": "10.62.0.255"}), "is not one"),
        (&d, json!({"vpc_id": y, "ip": "10.61.0.9"}), "is not one"),
        (&d, json!({"vpc_id": y, "ip": "nonsense"}), "not an IPv4"),
    ] {
        assert!(attach(vm, body.clone()).error(400).contains(why), "{body}");
    }
    let foreign = of_type(&nics(&s, &other.api_key, &c), "vpc")[0]["vpc_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(attach(&a, json!({"vpc_id": foreign}))
        .error(400)
        .contains("no VPC"));
    let detach = |vm: &str, nic: &str| {
        s.admin_call("DELETE", &format!("/api/v1/vms/{vm}/vpc/{nic}"))
            .project(&p)
            .send()
    };
    detach(&a, "999999").error(404);
    let public_a = of_type(&nics(&s, &key, &a), "public")[0]["nic_id"].to_string();
    assert!(detach(&a, &public_a).error(400).contains("public NIC"));
    let only_d = of_type(&nics(&s, &key, &d), "vpc")[0]["nic_id"].to_string();
    assert!(detach(&d, &only_d).error(400).contains("last"));
    assert_eq!((count(&a), count(&b)), (na, nb));
    // Detach: the guest's device, the tap and the lease go; the VPC can go then.
    for (vm, n, via) in [(&a, &ya, pa), (&b, &yb, pb)] {
        let r = detach(vm, &n["nic_id"].to_string());
        assert_eq!(r.status, 200, "{}", r.text);
        let ip = n["ip"].as_str().unwrap();
        assert!(!guest_sh(via, "ip -o -4 addr show").contains(&format!("{ip}/")));
    }
    assert_eq!(taps(), taps_before);
    let r = s
        .admin_call("GET", &format!("/api/v1/vpcs/{y}"))
        .project(&p)
        .send();
    assert_eq!(r.body["data"]["leases"], json!([]), "{}", r.text);
    let r = s
        .admin_call("DELETE", &format!("/api/v1/vpcs/{y}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);

    // The VPC lists its members; it is not deleted while they are there.
    let r = s
        .admin_call("GET", &format!("/api/v1/vpcs/{vpc}"))
        .project(&p)
        .send();
    let leases: Vec<&str> = r.body["data"]["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ip"].as_str().unwrap())
        .collect();
    assert_eq!(
        leases,
        [va.as_str(), vb.as_str(), vd.as_str()],
        "{}",
        r.text
    );
    assert_eq!(r.body["data"]["vpc"]["used_ips"], 3);
    let r = s
        .admin_call("DELETE", &format!("/api/v1/vpcs/{vpc}"))
        .project(&p)
        .send();
    assert!(r.error(400).contains("attached"), "{}", r.text);

    // Deleting the members: the VPC goes with the last one (delete_vpc defaults to
    // true), and its bridge and router with it.
    let r = s
        .admin_call("DELETE", &format!("/api/v1/vms/{b}"))
        .project(&p)
        .json(json!({"delete_vpc": false}));
    assert_eq!(r.status, 200, "{}", r.text);
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while s
        .admin_call("GET", &format!("/api/v1/vms/{b}"))
        .send()
        .status
        != 404
    {
        assert!(std::time::Instant::now() < until, "B was not deleted");
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = s
        .admin_call("GET", &format!("/api/v1/vpcs/{vpc}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "delete_vpc false keeps the VPC: {}", r.text);
    for id in [&a, &d] {
        let r = s
            .admin_call("DELETE", &format!("/api/v1/vms/{id}"))
            .project(&p)
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // Only C's VPC (the other account's) is left on the host, once the last
    // member's delete job has run.
    let routers = || -> Vec<String> {
        std::fs::read_dir("/run/netns")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("skiff-vpc-{PREFIX}-")))
            .collect()
    };
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = s
            .admin_call("GET", &format!("/api/v1/vpcs/{vpc}"))
            .project(&p)
            .send();
        if r.status == 404 && routers().len() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the VPC stayed: {} {:?}",
            r.text,
            routers()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = s.call("GET", "/api/v1/vpcs").key(&other.api_key).send();
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1, "{}", r.text);
}
