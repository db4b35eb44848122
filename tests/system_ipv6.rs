//! Public IPv6: with `[network.public] ipv6_prefix`, a guest's public NIC gets an
//! address of the prefix; a client namespace routed through the host reaches the
//! guest's web server over IPv6 when the guest's group allows it and not otherwise;
//! a spoofed IPv6 source from the guest is dropped. Traffic stays in the test's
//! namespaces.

mod common;
use common::netns::*;
use common::vmhost::*;
use common::*;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

/// Waits until the page's reachability is `want` (a rule change is in the kernel
/// before the API answers; a TCG guest beside other tests' guests may answer slowly).
/// On failure it prints what the host and the client see, to tell a slow guest from
/// a lost route or neighbour.
fn until(client: &Peer, addr: &str, want: bool) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if client.page(addr).is_some() == want {
            return;
        }
        if Instant::now() >= end {
            let sh = |c: &str| {
                let o = Command::new("sh").args(["-c", c]).output().unwrap();
                format!(
                    "$ {c}\n{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            };
            panic!(
                "{addr} never became {}\n{}\n{}\n{}\n{}",
                if want { "reachable" } else { "unreachable" },
                sh("ip -6 neigh; ip -6 route"),
                sh(&format!(
                    "ip netns exec {} ping -6 -c 2 -W 2 {addr}",
                    client.name
                )),
                sh("sysctl net.ipv6.conf.all.forwarding"),
                sh("nft list ruleset | head -60")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn public_ipv6_reaches_a_guest_as_its_group_allows() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let base = config(&h, "10.231.0.48/28", "10.231.0.49", "sv6");
    let cfg = base.replace(
        "[network.public]\n",
        "[network.public]\nipv6_prefix = \"fd00:231::/64\"\n",
    );
    assert_ne!(cfg, base);
    let s = Server::start(&cfg);
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();

    let client = Peer::new("sv6-client", "sv6x0", "fd00:99::1/64", "fd00:99::2/64");
    client.route("fd00:231::/64", "fd00:99::1");

    let r = s.admin_call("POST", "/api/v1/vms").project(&p).json(json!({
        "name": "six", "template_id": TEMPLATE_ID, "pricing_id": 1, "region": "us-east",
        "ssh_keys": [ED25519], "skip_vpc": true}));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let vm = wait_status(&s, &id, "active", Duration::from_secs(240));
    let v4 = vm["public_ipv4_address"].as_str().unwrap().to_string();
    let nets = s
        .admin_call("GET", &format!("/api/v1/vms/{id}/networks?type=ipv6"))
        .send();
    let rows = nets.body["data"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "{}", nets.text);
    let v6 = rows[0]["ip"].as_str().unwrap().to_string();
    assert!(v6.starts_with("fd00:231::"), "{v6}");
    assert_eq!(rows[0]["gateway"], "fd00:231::1");
    let nic = rows[0]["nic_id"].as_u64().unwrap();
    let inside = guest_sh(&v4, "ip -o -6 addr show");
    assert!(inside.contains(&format!("{v6}/64")), "{inside}");
    until(&client, &v6, true);
    assert_eq!(client.page(&v6).as_deref(), Some("six"));

    // A group allowing HTTP over IPv4 only: IPv6 is refused; then IPv6 too.
    let r = s
        .admin_call("POST", "/api/v1/security-groups")
        .project(&p)
        .json(json!({
        "name": "web4", "rules": [
            {"protocol": "TCP", "rule_type": "INBOUND", "range": "80", "ip": "0.0.0.0"},
            {"protocol": "TCP", "rule_type": "INBOUND", "range": "23", "ip": "0.0.0.0"}]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let g = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{id}/security-groups"))
        .project(&p)
        .json(json!({"security_group_id": g, "nic_id": nic}));
    assert_eq!(r.status, 200, "{}", r.text);
    until(&client, &v6, false);
    let r = s
        .admin_call("PUT", &format!("/api/v1/security-groups/{g}"))
        .project(&p)
        .json(json!({
        "rules": [
            {"protocol": "TCP", "rule_type": "INBOUND", "range": "80", "ip": "0.0.0.0"},
            {"protocol": "TCP", "rule_type": "INBOUND", "range": "23", "ip": "0.0.0.0"},
            {"protocol": "TCP", "rule_type": "INBOUND", "range": "80", "ip": "::"}]}));
    assert_eq!(r.status, 200, "{}", r.text);
    until(&client, &v6, true);

    // Anti-spoofing: another source of the prefix does not leave the guest.
    let out = guest_sh(
        &v4,
        "ip -6 addr add fd00:231::bad/64 dev eth0 nodad; \
         ping -6 -c 2 -W 2 -I fd00:231::bad fd00:99::2 >/dev/null 2>&1 && echo SPOOF-OK || echo SPOOF-NO; \
         ip -6 addr del fd00:231::bad/64 dev eth0",
    );
    assert!(
        out.contains("SPOOF-NO"),
        "a spoofed IPv6 source left the guest: {out}"
    );
}
