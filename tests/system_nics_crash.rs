//! SIGKILL skiff at a spread of moments during a NIC hot-plug, a NIC unplug and each
//! half of a floating-IP move, restart it, and check that the store, libvirt and the
//! kernel agree once the jobs are done: the guest runs (never left paused), its live
//! devices are the NICs the API lists, one tap per NIC, the VPC's leases are its
//! members' addresses, and a floating address is NATed by exactly its holder's router
//! (answering from that guest) or by none. Traffic stays in the test's namespaces.

mod common;
use common::netns::*;
use common::vmhost::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

const PREFIX: &str = "sxc";
/// When the kill lands after the request was sent: from before the job starts to
/// after it ended (a hot-plug takes about a second under TCG).
const DELAYS_MS: [u64; 5] = [0, 120, 350, 800, 1600];

/// Sends a request and SIGKILLs skiff `delay` later, whatever the request is doing;
/// then starts it again. Returns the status if an answer came before the kill.
fn kill_during(
    s: &mut Server,
    delay: Duration,
    method: &str,
    path: &str,
    body: Value,
) -> Option<u16> {
    let req = ureq::request(method, &format!("{}{path}", s.base))
        .set("X-API-Key", &s.admin.api_key)
        .set("X-Project-ID", &s.admin.project_id)
        .timeout(Duration::from_secs(60));
    let t = std::thread::spawn(move || {
        match if body.is_null() {
            req.call()
        } else {
            req.send_json(body)
        } {
            Ok(r) => Some(r.status()),
            Err(ureq::Error::Status(c, _)) => Some(c),
            Err(_) => None,
        }
    });
    std::thread::sleep(delay);
    s.kill();
    let answered = t.join().unwrap();
    s.spawn();
    answered
}

fn nics(s: &Server, vm: &str) -> Vec<Value> {
    let r = s
        .admin_call("GET", &format!("/api/v1/vms/{vm}/networks"))
        .project(&s.admin.project_id)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "vpc")
        .cloned()
        .collect()
}

/// The MACs of the devices the running domain has now.
fn live_macs(vm: &str) -> BTreeSet<String> {
    virsh(&["domiflist", &format!("skiff-vm-{vm}")])
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|m| m.len() == 17 && m.matches(':').count() == 5)
        .map(str::to_ascii_lowercase)
        .collect()
}

fn taps() -> usize {
    out(&["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .filter(|n| {
            n.split('@')
                .next()
                .unwrap_or("")
                .strip_prefix(PREFIX)
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .count()
}

/// Runs `check` until it holds (the reconciler's first pass after a restart may still
/// be resubmitting a change), at most a minute; then fails with its last complaint.
fn eventually<T>(when: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= until => panic!("{when}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// Store, libvirt and kernel agree on the NICs of `vms` and on VPC `y`'s leases.
fn nics_consistent(s: &Server, vms: &[&str], y: &str, when: &str) {
    eventually(when, || {
        let mut total = 0;
        let mut in_y = BTreeSet::new();
        for vm in vms {
            let state = virsh(&["domstate", &format!("skiff-vm-{vm}")]);
            if state.trim() != "running" {
                return Err(format!("{vm} is {state}"));
            }
            let listed = nics(s, vm);
            let macs: BTreeSet<String> = listed
                .iter()
                .map(|n| n["mac"].as_str().unwrap().to_ascii_lowercase())
                .collect();
            let live = live_macs(vm);
            if macs != live {
                return Err(format!("{vm}'s NICs {macs:?} and devices {live:?} differ"));
            }
            total += listed.len();
            for n in listed.iter().filter(|n| n["vpc_id"] == y) {
                in_y.insert((
                    n["ip"].as_str().unwrap().to_string(),
                    n["nic_id"].as_u64().unwrap(),
                ));
            }
        }
        if taps() != total {
            return Err(format!("{} taps for {total} NICs", taps()));
        }
        let r = s
            .admin_call("GET", &format!("/api/v1/vpcs/{y}"))
            .project(&s.admin.project_id)
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
        let leases: BTreeSet<(String, u64)> = r.body["data"]["leases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["ip"].as_str().unwrap().to_string(),
                    l["nic_id"].as_u64().unwrap(),
                )
            })
            .collect();
        if leases != in_y {
            return Err(format!("leases {leases:?}, members {in_y:?}"));
        }
        let busy = s
            .admin_call("GET", "/api/skiff/v1/jobs")
            .project(&s.admin.project_id)
            .send()
            .body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["status"] == "queued" || j["status"] == "running");
        if busy {
            return Err("jobs still running".into());
        }
        Ok(())
    })
}

/// The address's holder as the store says (a VM's name) and the kernel agree: one
/// router NATs it and a host route leads there when held, none and no route when
/// free, and the page at the address is the holder's.
fn floating_consistent(
    s: &Server,
    client: &Peer,
    fid: &str,
    fip: &str,
    names: &[(&str, &str)],
    when: &str,
) -> Option<String> {
    eventually(when, || {
        let r = s
            .admin_call("GET", &format!("/api/v1/ips/{fid}"))
            .project(&s.admin.project_id)
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
        let holder = r.body["data"]["vm_id"].as_str().map(|vm| {
            names
                .iter()
                .find(|(id, _)| *id == vm)
                .map(|(_, n)| n.to_string())
                .unwrap_or_else(|| panic!("{when}: held by an unknown VM {vm}"))
        });
        let want = if holder.is_some() { "in-use" } else { "free" };
        if r.body["data"]["status"] != want {
            return Err(format!("status is not {want}: {}", r.text));
        }
        let natting: Vec<String> = vpc_routers(PREFIX)
            .into_iter()
            .filter(|ns| {
                out(&[
                    "ip", "netns", "exec", ns, "nft", "list", "table", "ip", "skiff",
                ])
                .contains(&format!("{fip} "))
            })
            .collect();
        if natting.len() != usize::from(holder.is_some()) {
            return Err(format!("held by {holder:?}, NATed by {natting:?}"));
        }
        let route = out(&["ip", "-4", "route", "show", &format!("{fip}/32")]);
        if route.trim().is_empty() == holder.is_some() {
            return Err(format!("held by {holder:?}, route {route:?}"));
        }
        let got = client.page(fip);
        if got != holder {
            return Err(format!("held by {holder:?}, {fip} answers {got:?}"));
        }
        Ok(holder)
    })
}

#[test]
fn sigkill_during_nic_changes_and_ip_moves_leaves_store_and_kernel_agreeing() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let _vg = VpcGuard(PREFIX);
    let base = config(&h, "10.231.1.0/28", "10.231.1.1", PREFIX);
    let mut s = Server::start(&format!(
        "{base}\n[network.vpc]\nfloating_cidr = \"10.235.0.0/28\"\ntransit_cidr = \"169.254.35.0/24\"\n"
    ));
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();

    let client = Peer::new("sxc-client", "sxcx0", "192.0.2.1/24", "192.0.2.2/24");
    client.route("10.235.0.0/28", "192.0.2.1");

    // Two VPC-only guests, each in a VPC of its own, and a VPC to plug into.
    let create = |name: &str| {
        let r = s.admin_call("POST", "/api/v1/vms").project(&p).json(json!({
            "name": name, "template_id": TEMPLATE_ID, "pricing_id": 1, "region": "us-east",
            "ssh_keys": [ED25519], "skip_public_ip": true}));
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["data"]["id"].as_str().unwrap().to_string()
    };
    let a = create("crash-a");
    let b = create("crash-b");
    for id in [&a, &b] {
        wait_status(&s, id, "active", Duration::from_secs(240));
    }
    let r = s
        .admin_call("POST", "/api/v1/vpcs")
        .project(&p)
        .json(json!({"name": "y", "cidr": "10.71.0.0/24"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let y = r.body["data"]["id"].as_str().unwrap().to_string();
    let vms = [a.as_str(), b.as_str()];
    nics_consistent(&s, &vms, &y, "before");

    // Hot-plug and unplug, each killed at every delay.
    let mut plugged_ever = 0;
    for d in DELAYS_MS {
        let when = format!("attach killed after {d} ms");
        let answered = kill_during(
            &mut s,
            Duration::from_millis(d),
            "POST",
            &format!("/api/v1/vms/{a}/vpc"),
            json!({"vpc_id": y}),
        );
        nics_consistent(&s, &vms, &y, &when);
        let Some(nic) = nics(&s, &a).into_iter().find(|n| n["vpc_id"] == y.as_str()) else {
            assert_ne!(answered, Some(200), "{when}: acknowledged, then lost");
            continue;
        };
        plugged_ever += 1;
        let nic_id = nic["nic_id"].to_string();
        let when = format!("detach killed after {d} ms");
        kill_during(
            &mut s,
            Duration::from_millis(d),
            "DELETE",
            &format!("/api/v1/vms/{a}/vpc/{nic_id}"),
            Value::Null,
        );
        nics_consistent(&s, &vms, &y, &when);
        if nics(&s, &a).iter().any(|n| n["vpc_id"] == y.as_str()) {
            let r = s
                .admin_call("DELETE", &format!("/api/v1/vms/{a}/vpc/{nic_id}"))
                .project(&p)
                .send();
            assert_eq!(r.status, 200, "{when}: {}", r.text);
            nics_consistent(&s, &vms, &y, &format!("{when}, then detached"));
        }
    }
    assert!(plugged_ever > 0, "no attach survived even the latest kill");

    // After all that, a plug works end to end: the guest gets its address by DHCP
    // and answers on it from the VPC's router.
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{a}/vpc"))
        .project(&p)
        .json(json!({"vpc_id": y}));
    assert_eq!(r.status, 200, "{}", r.text);
    nics_consistent(&s, &vms, &y, "a clean attach");
    let addr = nics(&s, &a)
        .into_iter()
        .find(|n| n["vpc_id"] == y.as_str())
        .unwrap()["ip"]
        .as_str()
        .unwrap()
        .to_string();
    let router_y = vpc_routers(PREFIX)
        .into_iter()
        .find(|ns| out(&["ip", "-n", ns, "-4", "addr", "show", "gw0"]).contains("10.71.0.1/"))
        .expect("y's router");
    let until = Instant::now() + Duration::from_secs(60);
    while !Command::new("ip")
        .args([
            "netns", "exec", &router_y, "ping", "-c", "1", "-W", "1", &addr,
        ])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(Instant::now() < until, "{addr} never answered in y");
    }

    // A floating address moved between the guests, each half killed at every delay.
    let r = s
        .admin_call("POST", "/api/v1/ips/reserve")
        .project(&p)
        .send();
    assert_eq!(r.status, 201, "{}", r.text);
    let fid = r.body["data"]["id"].as_str().unwrap().to_string();
    let fip = r.body["data"]["ip_address"].as_str().unwrap().to_string();
    let names = [(a.as_str(), "crash-a"), (b.as_str(), "crash-b")];
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{a}/ip"))
        .project(&p)
        .json(json!({"ip_id": fid}));
    assert_eq!(r.status, 200, "{}", r.text);
    let mut holder = floating_consistent(&s, &client, &fid, &fip, &names, "attached to A");
    assert_eq!(holder.as_deref(), Some("crash-a"));
    for d in DELAYS_MS {
        // Detach from whoever holds it, then attach to the other.
        let (from, to) = if holder.as_deref() == Some("crash-a") {
            (&a, &b)
        } else {
            (&b, &a)
        };
        let held = s
            .admin_call("GET", &format!("/api/v1/ips/{fid}"))
            .project(&s.admin.project_id)
            .send();
        let nic = held.body["data"]["nic_id"].to_string();
        let when = format!("detach killed after {d} ms");
        let answered = kill_during(
            &mut s,
            Duration::from_millis(d),
            "DELETE",
            &format!("/api/v1/vms/{from}/ip/{nic}"),
            Value::Null,
        );
        holder = floating_consistent(&s, &client, &fid, &fip, &names, &when);
        if answered == Some(200) {
            assert_eq!(holder, None, "{when}: acknowledged, then undone");
        }
        if holder.is_some() {
            let r = s
                .admin_call("DELETE", &format!("/api/v1/vms/{from}/ip/{nic}"))
                .project(&p)
                .send();
            assert_eq!(r.status, 200, "{when}: {}", r.text);
            let after = floating_consistent(
                &s,
                &client,
                &fid,
                &fip,
                &names,
                &format!("{when}, then detached"),
            );
            assert_eq!(after, None, "{when}: still held after a detach");
        }
        let when = format!("attach killed after {d} ms");
        let answered = kill_during(
            &mut s,
            Duration::from_millis(d),
            "POST",
            &format!("/api/v1/vms/{to}/ip"),
            json!({"ip_id": fid}),
        );
        holder = floating_consistent(&s, &client, &fid, &fip, &names, &when);
        if answered == Some(200) {
            assert!(holder.is_some(), "{when}: acknowledged, then lost");
        }
        if holder.is_none() {
            let r = s
                .admin_call("POST", &format!("/api/v1/vms/{to}/ip"))
                .project(&p)
                .json(json!({"ip_id": fid}));
            assert_eq!(r.status, 200, "{when}: {}", r.text);
            holder = floating_consistent(
                &s,
                &client,
                &fid,
                &fip,
                &names,
                &format!("{when}, then attached"),
            );
        }
    }
    nics_consistent(&s, &vms, &y, "the end");
}
