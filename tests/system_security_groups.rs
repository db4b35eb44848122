//! Security groups on a real guest: attaching a group, changing its rules and
//! detaching it make the guest's HTTP port reachable or not (the time each took is
//! printed; the bound is a correctness bound, loose enough for a loaded TCG host, since
//! speed belongs to benchmarks, not tests); rules
//! stay in force across a restart of skiff; counters move. Everything runs inside the
//! test network namespace (scripts/lib.sh start_test_host).

mod common;
use common::vmhost::*;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Whether the guest's web server answers right now.
fn http_ok(ip: &str) -> bool {
    let addr: SocketAddr = format!("{ip}:80").parse().unwrap();
    let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_millis(250)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
    if c.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).is_ok() && &buf == b"HTTP/"
}

/// How long a rule change may take to show on the guest: a rule lands in the kernel
/// before the API answers, but a guest under TCG on a busy host answers slowly.
const SETTLE: Duration = Duration::from_secs(10);

/// How long until the guest's reachability is `want`; fails after `within`.
fn until_reachable(ip: &str, want: bool, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if http_ok(ip) == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "the guest's port 80 did not become {} within {within:?}",
            if want { "reachable" } else { "unreachable" }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the data plane looks like, for a failure message.
fn diag() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("timeout")
            .arg("10")
            .args(args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_default()
    };
    let mut out = run(&["bpftool", "net", "show"]);
    for m in ["skf_nics", "skf_remote", "skf_ports", "skf_addrs"] {
        out += &run(&[
            "bpftool",
            "map",
            "dump",
            "pinned",
            &format!("/sys/fs/bpf/skiff-test-svf/{m}"),
        ]);
    }
    out += &run(&["ls", "-l", "/sys/fs/bpf/skiff-test-svf/links"]);
    out += &run(&["ip", "-d", "link"]);
    out
}

fn put(s: &Server, g: &str, rules: Value) {
    let r = s
        .admin_call("PUT", &format!("/api/v1/security-groups/{g}"))
        .project(&s.admin.project_id)
        .json(json!({ "rules": rules }));
    assert_eq!(r.status, 200, "{}", r.text);
}

fn rule_80() -> Value {
    json!({"protocol": "TCP", "rule_type": "INBOUND", "range": "80", "ip": "10.231.0.0", "size": 24})
}

#[test]
fn rule_changes_reach_a_real_guest() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let mut s = Server::start(&config(&h, "10.231.0.160/27", "10.231.0.161", "svf"));
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();

    let r = s.admin_call("POST", "/api/v1/vms").project(&p).json(json!({
        "name": "fw-1", "template_id": TEMPLATE_ID, "pricing_id": 1,
        "region": "us-east", "ssh_keys": [ED25519]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let vm = wait_status(&s, &id, "active", Duration::from_secs(240));
    let ip = vm["public_ipv4_address"].as_str().unwrap().to_string();
    let nets = s
        .admin_call("GET", &format!("/api/v1/vms/{id}/networks"))
        .send();
    let nic = nets.body["data"][0]["nic_id"].as_u64().unwrap();
    assert!(nets.body["data"][0].get("security_group_id").is_none());
    until_reachable(&ip, true, Duration::from_secs(30));

    // A group with no rules: ingress denied.
    let r = s
        .admin_call("POST", "/api/v1/security-groups")
        .project(&p)
        .json(json!({"name": "locked", "rules": []}));
    assert_eq!(r.status, 201, "{}", r.text);
    let g = r.body["data"]["id"].as_str().unwrap().to_string();
    let attach = |sg: &str, nic: u64| {
        s.admin_call("POST", &format!("/api/v1/vms/{id}/security-groups"))
            .project(&p)
            .json(json!({"security_group_id": sg, "nic_id": nic}))
    };
    attach(&g, 999).error(404);
    let r = attach(&g, nic);
    assert_eq!(r.status, 200, "{}", r.text);
    let t = until_reachable(&ip, false, SETTLE);
    eprintln!("attach -> unreachable after {t:?}");
    let nets = s
        .admin_call("GET", &format!("/api/v1/vms/{id}/networks"))
        .send();
    assert_eq!(nets.body["data"][0]["security_group_id"], json!(g));
    let got = s
        .admin_call("GET", &format!("/api/v1/security-groups/{g}"))
        .project(&s.admin.project_id)
        .send();
    assert_eq!(got.body["data"]["vm_count"], 1);

    // Allow port 80: reachable; remove it: unreachable again.
    put(&s, &g, json!([rule_80()]));
    let t = until_reachable(&ip, true, SETTLE);
    eprintln!("allow -> reachable after {t:?}");
    for _ in 0..3 {
        assert!(http_ok(&ip));
    }
    let r = s
        .admin_call("GET", &format!("/api/v1/security-groups/{g}"))
        .project(&s.admin.project_id)
        .send();
    let rule = &r.body["data"]["rules"][0];
    assert!(
        rule["packets"].as_u64().unwrap() >= 4 * 3,
        "counters: {rule}"
    );
    assert!(rule["bytes"].as_u64().unwrap() > rule["packets"].as_u64().unwrap() * 40);

    put(
        &s,
        &g,
        json!([{"protocol": "UDP", "rule_type": "INBOUND", "range": "53"}]),
    );
    let t = until_reachable(&ip, false, SETTLE);
    eprintln!("remove -> unreachable after {t:?}");

    // A rule for another address block does not open the port.
    put(
        &s,
        &g,
        json!([{"protocol": "TCP", "rule_type": "INBOUND", "range": "80", "ip": "10.9.0.0", "size": 16}]),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !http_ok(&ip),
        "a rule for 10.9.0.0/16 does not admit 10.231.0.1"
    );

    // Attached: cannot be deleted.
    let m = s
        .admin_call("DELETE", &format!("/api/v1/security-groups/{g}"))
        .project(&s.admin.project_id)
        .send()
        .error(409);
    assert!(m.contains("attached"), "{m}");

    // The rules outlive a restart of skiff (pinned maps and links), and the restarted
    // skiff still changes them.
    put(&s, &g, json!([rule_80()]));
    until_reachable(&ip, true, SETTLE);
    s.kill();
    assert!(http_ok(&ip), "allowed while skiff is down");
    s.spawn();
    assert!(http_ok(&ip), "allowed after the restart\n{}", diag());
    put(&s, &g, json!([]));
    until_reachable(&ip, false, SETTLE);

    // Stop and start: libvirt makes a new tap; the group is on it before the guest runs.
    let act = |a: &str| {
        let r = s
            .admin_call("POST", &format!("/api/v1/vms/{id}/{a}"))
            .project(&p)
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
    };
    act("stop");
    wait_status(&s, &id, "passive", Duration::from_secs(120));
    act("start");
    wait_status(&s, &id, "active", Duration::from_secs(240));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!http_ok(&ip), "still denied on the new tap");
    put(&s, &g, json!([rule_80()]));
    until_reachable(&ip, true, SETTLE);

    // Detach: unfiltered again; then the group can go.
    let r = s
        .admin_call(
            "DELETE",
            &format!("/api/v1/vms/{id}/security-groups/{g}/{nic}"),
        )
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    s.admin_call(
        "DELETE",
        &format!("/api/v1/vms/{id}/security-groups/{g}/{nic}"),
    )
    .project(&p)
    .send()
    .error(404);
    put(&s, &g, json!([]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(http_ok(&ip), "a NIC without groups is not filtered");
    let r = s
        .admin_call("DELETE", &format!("/api/v1/security-groups/{g}"))
        .project(&s.admin.project_id)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);

    let r = s
        .admin_call("DELETE", &format!("/api/v1/vms/{id}"))
        .project(&p)
        .json(json!({}));
    assert!(r.status == 200 || r.status == 202, "{}", r.text);
}
