//! Volumes on real guests: a volume made with its file system, hot-plugged into a
//! running guest, written from inside it, unplugged, plugged into a second guest and
//! read back there; grown while attached (the guest sees the new size); a VM created
//! with `extra_storage`; deletes that keep or take the volumes. Bad requests change
//! nothing. Runs in the test network namespace (scripts/lib.sh start_test_host).

mod common;
use common::vmhost::*;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn vol(s: &Server, p: &str, id: u64) -> Value {
    let r = s
        .admin_call("GET", &format!("/api/v1/volumes/{id}"))
        .project(p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].clone()
}

fn wait_volume(s: &Server, p: &str, id: u64, want: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(240);
    loop {
        let v = vol(s, p, id);
        if v["status"] == want && v.get("pending").is_none() {
            return v;
        }
        assert!(v["status"] != "failed", "volume failed: {v}");
        assert!(Instant::now() < until, "volume not {want}: {v}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn create_vm(s: &Server, p: &str, name: &str, extra: Value) -> String {
    let mut body = json!({
        "name": name, "template_id": TEMPLATE_ID, "pricing_id": 1,
        "region": "us-east", "ssh_keys": [ED25519]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = s.admin_call("POST", "/api/v1/vms").project(p).json(body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["data"]["id"].as_str().unwrap().to_string()
}

/// The guest's name of the disk whose serial is `serial` (empty when it has none).
fn guest_disk(ip: &str, serial: &str) -> String {
    guest_sh(
        ip,
        &format!("for d in /sys/block/vd*; do [ \"$(cat $d/serial 2>/dev/null)\" = {serial} ] && basename $d; done; true"),
    )
}

fn until_guest_disk(ip: &str, serial: &str, present: bool) -> String {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let d = guest_disk(ip, serial);
        if d.is_empty() != present {
            return d;
        }
        assert!(
            Instant::now() < until,
            "the guest does not {} disk {serial}",
            if present { "see" } else { "let go of" }
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_volume_moves_between_running_guests_and_keeps_its_bytes() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let mut s = Server::start(&config(&h, "10.231.0.16/28", "10.231.0.17", "svv"));
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();

    // Bad requests first: nothing is made.
    let bad = |body: Value| {
        s.admin_call("POST", "/api/v1/volumes")
            .project(&p)
            .json(body)
    };
    bad(json!({"name": "x", "size": 1, "volume_type": "nvme", "filesystem_type": "ntfs"}))
        .error(400);
    bad(json!({"name": "x", "size": 0, "volume_type": "nvme"})).error(400);
    bad(json!({"name": "x", "size": 10001, "volume_type": "nvme"})).error(400);
    bad(json!({"name": "x", "size": 1, "volume_type": "hdd"})).error(400);
    s.admin_call("POST", "/api/v1/volumes")
        .json(json!({"name": "x", "size": 1, "volume_type": "nvme"}))
        .error(400);
    let r = s.admin_call("GET", "/api/v1/volumes").send();
    assert_eq!(r.body["total"], 0, "{}", r.text);

    // Two guests; the second is born with a 1 GB xfs volume (extra_storage).
    let a = create_vm(&s, &p, "vol-a", json!({}));
    let b = create_vm(
        &s,
        &p,
        "vol-b",
        json!({"extra_storage": 1, "extra_storage_type": "xfs"}),
    );
    let va = wait_status(&s, &a, "active", Duration::from_secs(300));
    let vb = wait_status(&s, &b, "active", Duration::from_secs(300));
    let ip_a = va["public_ipv4_address"].as_str().unwrap().to_string();
    let ip_b = vb["public_ipv4_address"].as_str().unwrap().to_string();

    let r = s
        .admin_call("GET", &format!("/api/v1/volumes?vm_id={b}"))
        .send();
    assert_eq!(r.body["total"], 1, "{}", r.text);
    let extra = r.body["data"][0]["id"].as_u64().unwrap();
    let ev = wait_volume(&s, &p, extra, "attached");
    assert_eq!(ev["product_vm"], b.as_str());
    assert_eq!(ev["filesystem_type"], "xfs");
    assert_eq!(ev["device"], "/dev/vdc", "{ev}");
    let d = until_guest_disk(&ip_b, &format!("skiff-vol-{extra}"), true);
    assert_eq!(d, "vdc", "the guest names the disk as reported");

    // A volume of its own, then attached to the running first guest.
    let r = s
        .admin_call("POST", "/api/v1/volumes")
        .project(&p)
        .json(json!({"name": "data", "size": 1, "volume_type": "nvme", "filesystem_type": "ext4"}));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "creating");
    let v = r.body["data"]["id"].as_u64().unwrap();
    let serial = format!("skiff-vol-{v}");
    let got = wait_volume(&s, &p, v, "available");
    assert_eq!(got["size"], 1);
    assert!(got.get("product_vm").is_none(), "{got}");
    let file = s.data().join(format!("volumes/{v}.qcow2"));
    assert!(file.exists());

    let attach = |vm: &str| {
        s.admin_call("POST", &format!("/api/v1/volumes/{v}/attach"))
            .project(&p)
            .json(json!({ "vm_id": vm }))
    };
    let r = attach(&a);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "attached", "{}", r.text);
    assert_eq!(r.body["data"]["product_vm"], a.as_str());
    assert_eq!(r.body["data"]["device"], "/dev/vdc");
    // No such VM in this project: 400, and the volume stays where it is.
    attach(&uuid::Uuid::new_v4().to_string()).error(400);
    assert_eq!(vol(&s, &p, v)["product_vm"], a.as_str());
    // Attached: not to a second VM, not deleted.
    assert!(attach(&b).error(400).contains("detach"));
    s.admin_call("DELETE", &format!("/api/v1/volumes/{v}"))
        .project(&p)
        .send()
        .error(400);
    let dev = until_guest_disk(&ip_a, &serial, true);
    assert_eq!(dev, "vdc");
    // The guest sees the ext4 file system skiff made, and writes a pattern past it.
    let magic = guest_sh(
        &ip_a,
        "dd if=/dev/vdc bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1",
    );
    assert_eq!(
        magic.split_whitespace().collect::<Vec<_>>(),
        ["53", "ef"],
        "ext4 magic: {magic}"
    );
    let pattern = format!("skiff-volume-{v}-{}", std::process::id());
    guest_sh(
        &ip_a,
        &format!(
            "printf %s {pattern} | dd of=/dev/{dev} bs=512 seek=8192 conv=fsync 2>/dev/null; sync"
        ),
    );

    // Detach from the running guest: it lets go.
    let r = s
        .admin_call("POST", &format!("/api/v1/volumes/{v}/detach"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "available", "{}", r.text);
    assert!(r.body["data"].get("product_vm").is_none(), "{}", r.text);
    until_guest_disk(&ip_a, &serial, false);
    assert!(!virsh(&["dumpxml", &format!("skiff-vm-{a}")]).contains(&serial));
    assert!(!virsh(&["dumpxml", "--inactive", &format!("skiff-vm-{a}")]).contains(&serial));

    // Into the second guest, next to its extra volume; the bytes are there.
    let r = attach(&b);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["device"], "/dev/vdd", "{}", r.text);
    let dev_b = until_guest_disk(&ip_b, &serial, true);
    let back = guest_sh(
        &ip_b,
        &format!(
            "dd if=/dev/{dev_b} bs=512 skip=8192 count=1 2>/dev/null | head -c {}",
            pattern.len()
        ),
    );
    assert_eq!(back, pattern);

    // Grown while attached: the guest sees 2 GiB at once; never shrunk.
    let resize = |n: i64| {
        s.admin_call("PATCH", &format!("/api/v1/volumes/{v}"))
            .project(&p)
            .json(json!({ "new_size": n }))
    };
    resize(1).error(400);
    let r = resize(2);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(vol(&s, &p, v)["size"], 2);
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let sectors = guest_sh(&ip_b, &format!("cat /sys/block/{dev_b}/size"));
        if sectors == (2u64 << 30 >> 9).to_string() {
            break;
        }
        assert!(Instant::now() < until, "guest still sees {sectors} sectors");
        std::thread::sleep(Duration::from_millis(500));
    }
    resize(1).error(400);

    // Another project's VM is not a target: 400, nothing changes.
    let other = s
        .admin_call("POST", "/api/v1/projects")
        .json(json!({"name": "elsewhere"}));
    let other = other.body["data"]["id"].as_str().unwrap().to_string();
    let r = s
        .admin_call("POST", &format!("/api/v1/volumes/{v}/detach"))
        .project(&other)
        .send();
    assert_eq!(r.status, 404, "another project's header: {}", r.text);
    assert_eq!(vol(&s, &p, v)["product_vm"], b.as_str());

    // skiff killed at any point of an attach or a detach: after the restart the change
    // is finished or undone, and the API says which, as the domain shows it.
    let r = s
        .admin_call("POST", "/api/v1/volumes")
        .project(&p)
        .json(json!({"name": "crash", "size": 1, "volume_type": "nvme"}));
    assert_eq!(r.status, 202, "{}", r.text);
    let c = r.body["data"]["id"].as_u64().unwrap();
    let c_serial = format!("skiff-vol-{c}");
    wait_volume(&s, &p, c, "available");
    let domain = format!("skiff-vm-{a}");
    for (round, delay_ms) in [0u64, 120, 350, 700, 1500, 60].into_iter().enumerate() {
        let attached = vol(&s, &p, c).get("product_vm").is_some();
        let (url, body) = if attached {
            (format!("{}/api/v1/volumes/{c}/detach", s.base), json!({}))
        } else {
            (
                format!("{}/api/v1/volumes/{c}/attach", s.base),
                json!({ "vm_id": a }),
            )
        };
        let key = s.admin.api_key.clone();
        let project = p.clone();
        let call = std::thread::spawn(move || {
            let _ = ureq::post(&url)
                .set("X-API-Key", &key)
                .set("X-Project-ID", &project)
                .send_json(body);
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        s.kill();
        let _ = call.join();
        s.spawn();
        let until = Instant::now() + Duration::from_secs(180);
        let v = loop {
            let v = vol(&s, &p, c);
            if v.get("pending").is_none() {
                break v;
            }
            assert!(Instant::now() < until, "round {round}: still pending: {v}");
            std::thread::sleep(Duration::from_millis(250));
        };
        let live = virsh(&["dumpxml", &domain]).contains(&c_serial);
        let defined = virsh(&["dumpxml", "--inactive", &domain]).contains(&c_serial);
        let says = v["status"] == "attached";
        assert!(
            says == live && says == defined,
            "round {round} ({}): the API says {v}, the running domain has it: {live}, its definition: {defined}",
            if attached { "detach" } else { "attach" }
        );
        assert_eq!(says, v.get("product_vm").is_some(), "{v}");
        eprintln!(
            "round {round}: killed after {delay_ms} ms, volume {}",
            v["status"]
        );
    }
    // Whatever the rounds left, it still works: detached and deleted cleanly.
    if vol(&s, &p, c).get("product_vm").is_some() {
        let r = s
            .admin_call("POST", &format!("/api/v1/volumes/{c}/detach"))
            .project(&p)
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    until_guest_disk(&ip_a, &c_serial, false);
    let r = s
        .admin_call("DELETE", &format!("/api/v1/volumes/{c}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);

    // Deleting the first VM (default: detach) keeps nothing of it attached; deleting
    // the second with volume_action delete takes its volumes, files too.
    let r = s
        .admin_call("DELETE", &format!("/api/v1/vms/{b}"))
        .project(&p)
        .json(json!({"volume_action": "delete"}));
    assert_eq!(r.status, 200, "{}", r.text);
    wait_jobs_idle(&s, &p, Duration::from_secs(120));
    for id in [v, extra] {
        let r = s
            .admin_call("GET", &format!("/api/v1/volumes/{id}"))
            .project(&p)
            .send();
        assert_eq!(r.status, 404, "{}", r.text);
        assert!(!s.data().join(format!("volumes/{id}.qcow2")).exists());
    }

    let r = s
        .admin_call("POST", "/api/v1/volumes")
        .project(&p)
        .json(json!({"name": "keep", "size": 1, "volume_type": "nvme", "filesystem_type": "btrfs", "vm_id": a}));
    assert_eq!(r.status, 202, "{}", r.text);
    let k = r.body["data"]["id"].as_u64().unwrap();
    wait_volume(&s, &p, k, "attached");
    until_guest_disk(&ip_a, &format!("skiff-vol-{k}"), true);
    let r = s
        .admin_call("DELETE", &format!("/api/v1/vms/{a}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    wait_jobs_idle(&s, &p, Duration::from_secs(120));
    let kept = wait_volume(&s, &p, k, "available");
    assert!(kept.get("product_vm").is_none(), "{kept}");
    assert!(s.data().join(format!("volumes/{k}.qcow2")).exists());
    let r = s
        .admin_call("DELETE", &format!("/api/v1/volumes/{k}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    wait_jobs_idle(&s, &p, Duration::from_secs(60));
    assert!(!s.data().join(format!("volumes/{k}.qcow2")).exists());
    let left: Vec<_> = std::fs::read_dir(s.data().join("volumes"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "files left: {left:?}");
}
