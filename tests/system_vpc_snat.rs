//! SNAT for VPC-only guests: with `[network.vpc] snat = true` a guest without a
//! public address reaches "the internet" (a namespace the test makes, on a link of the
//! host's) as the host's address; after a restart with SNAT off it does not. Traffic
//! stays in the test's namespaces.

mod common;
use common::netns::*;
use common::vmhost::*;
use common::*;
use serde_json::json;
use std::time::Duration;

const PREFIX: &str = "svn";

/// `cmd` in the guest at `guest_ip`, reached from inside its VPC's router namespace
/// (the guest has no public address).
fn in_guest(router: &str, guest_ip: &str, cmd: &str) -> String {
    let (ip, cmd) = (guest_ip.to_string(), cmd.to_string());
    in_netns(router, move || guest_sh(&ip, &cmd))
}

fn fetch(router: &str, guest_ip: &str) -> String {
    let out = in_guest(
        router,
        guest_ip,
        "x=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 198.51.100.2 8080 2>/dev/null | tail -n 1); echo PAGE=${x:-NONE}",
    );
    out.lines()
        .find_map(|l| l.trim().strip_prefix("PAGE="))
        .unwrap_or_else(|| panic!("no answer from the guest: {out:?}"))
        .trim()
        .to_string()
}

#[test]
fn a_vpc_only_guest_reaches_out_through_the_host_only_with_snat() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let _vg = VpcGuard(PREFIX);
    let base = config(&h, "10.231.0.144/28", "10.231.0.145", PREFIX);
    let mut s = Server::start(&format!(
        "{base}\n[network.vpc]\nsnat = true\ntransit_cidr = \"169.254.44.0/24\"\n"
    ));
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();

    // "The internet": a namespace behind a link of the host's, with a server that
    // says who connected.
    let inet = Peer::new("svn-inet", "svnx0", "198.51.100.1/24", "198.51.100.2/24");
    // A socket stays in the namespace it was made in.
    let l = in_netns(&inet.name, || {
        std::net::TcpListener::bind("198.51.100.2:8080").unwrap()
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            use std::io::{Read, Write};
            let _ = tx.send(c.peer_addr().unwrap().ip().to_string());
            let mut b = [0u8; 256];
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = c.read(&mut b);
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello-from-inet\n");
        }
    });

    let r = s.admin_call("POST", "/api/v1/vms").project(&p).json(json!({
        "name": "private-only", "template_id": TEMPLATE_ID, "pricing_id": 1,
        "region": "us-east", "ssh_keys": [ED25519], "skip_public_ip": true,
        "vpc_name": "out", "vpc_cidr": "10.64.0.0/24"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    wait_status(&s, &id, "active", Duration::from_secs(240));
    let nets = s
        .admin_call("GET", &format!("/api/v1/vms/{id}/networks"))
        .send();
    let list = nets.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", nets.text);
    assert_eq!(list[0]["type"], "vpc");
    let guest_ip = list[0]["ip"].as_str().unwrap().to_string();
    let routers = vpc_routers(PREFIX);
    assert_eq!(routers.len(), 1, "{routers:?}");
    let router = routers[0].clone();

    // The guest routes through its VPC's router (the seed's gateway).
    let routes = in_guest(&router, &guest_ip, "ip route");
    assert!(routes.contains("default via 10.64.0.1"), "{routes}");
    assert_eq!(fetch(&router, &guest_ip), "hello-from-inet");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        "198.51.100.1",
        "the server sees the host's address, not the guest's"
    );

    // SNAT off: after a restart the reconciler takes the router's way out away.
    s.kill();
    std::fs::write(s.config(), &base).unwrap();
    s.spawn();
    assert_eq!(
        fetch(&router, &guest_ip),
        "NONE",
        "the guest got out without SNAT"
    );
}
