//! System test of the VM lifecycle through the API: skiff, libvirtd and the guests all
//! live in the test network namespace; real QEMU guests boot from the test template.

mod common;
use common::vmhost::*;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

fn hash_line(console: &str) -> String {
    console
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("SKIFF-GUEST password-hash="))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn vm_lifecycle_against_a_real_guest() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    // A reconciler pass every second: a paused guest below must survive several.
    let mut s = Server::start(&format!(
        "reconcile_interval_secs = 1\n{}\n[quotas]\nsaved_images = 1\n",
        config(&h, "10.231.0.0/25", "10.231.0.1", "sva")
    ));
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();
    // A second tenant, a stranger to the first.
    s.kill();
    let other = s.create_account("tenant-b");
    s.spawn();

    // Bad input first: nothing may reach the host.
    let post = |b: Value| s.admin_call("POST", "/api/v1/vms").project(&p).json(b);
    let good = json!({"name": "web-1", "template_id": TEMPLATE_ID, "pricing_id": 1,
        "region": "us-east", "ssh_keys": [ED25519], "password": PASSWORD});
    let mut b = good.clone();
    b["template_id"] = json!("6f1c1c52-0000-4000-8000-000000000001");
    assert!(post(b).error(400).contains("template_id"));
    let mut b = good.clone();
    b["pricing_id"] = json!(99);
    post(b).error(400);
    let mut b = good.clone();
    b["password"] = json!("weak");
    b["ssh_keys"] = json!([]);
    post(b).error(400);
    let mut b = good.clone();
    b["ssh_keys"] = json!([]);
    b.as_object_mut().unwrap().remove("password");
    assert!(post(b).error(400).contains("ssh_keys"));
    let r = s.admin_call("POST", "/api/v1/vms").json(good.clone());
    assert_eq!(r.body["message"], "X-Project-ID required");
    assert_eq!(s.admin_call("GET", "/api/v1/vms").send().body["total"], 0);

    // Create: 201 at once, then the real boot.
    let r = post(good.clone());
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "initiating");
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let vm = wait_status(&s, &id, "active", Duration::from_secs(240));
    assert_eq!(vm["active"], true);
    assert_eq!((vm["cpu"].clone(), vm["ram"].clone()), (json!(1), json!(1)));
    let ip = vm["public_ipv4_address"].as_str().unwrap().to_string();
    assert_eq!(
        ip, "10.231.0.2",
        "first address of the pool after the gateway"
    );

    let nets = s
        .admin_call("GET", &format!("/api/v1/vms/{id}/networks?type=public"))
        .send();
    let nic = nets.body["data"][0].clone();
    assert_eq!(nic["ip"], ip.as_str());
    assert_eq!(nic["type"], "public");
    let mac = nic["mac"].as_str().unwrap().to_string();
    assert!(mac.starts_with("52:54:00:"));
    assert!(nic["nic_id"].is_u64());

    let text = console(&s, &id);
    assert!(text.contains("SKIFF-GUEST hostname=web-1"), "{text}");
    assert!(
        text.contains(&format!("SKIFF-GUEST ssh-key={ED25519_FP}")),
        "{text}"
    );
    assert!(text.contains("SKIFF-GUEST password-hash=$6$"), "{text}");
    assert!(!text.contains(PASSWORD), "only the hash reaches the guest");
    assert!(text.contains(&format!("{mac} {ip}/25")), "{text}");
    let ping = Command::new("ping")
        .args(["-c", "2", "-W", "5", &ip])
        .output()
        .unwrap();
    assert!(ping.status.success(), "the guest answers on its address");

    // Power: invalid transitions are refused; valid ones really happen.
    let act = |a: &str| {
        s.admin_call("POST", &format!("/api/v1/vms/{id}/{a}"))
            .project(&p)
            .send()
    };
    assert!(act("start").error(400).contains("active"));
    assert_eq!(act("stop").status, 200);
    wait_status(&s, &id, "passive", Duration::from_secs(120));
    let name = format!("skiff-vm-{id}");
    assert!(virsh(&["domstate", &name]).contains("shut off"));
    act("stop").error(400);
    assert_eq!(act("start").status, 200);
    wait_status(&s, &id, "active", Duration::from_secs(240));
    let boots = console(&s, &id).matches("SKIFF-GUEST ready").count();
    assert_eq!(act("reboot").status, 200);
    wait_status(&s, &id, "active", Duration::from_secs(240));
    assert_eq!(act("reboot-hard").status, 200);
    wait_status(&s, &id, "active", Duration::from_secs(240));
    let after = console(&s, &id).matches("SKIFF-GUEST ready").count();
    assert!(after >= boots + 2, "two more boots: {boots} → {after}");
    // Paused by libvirt (as while `virsh snapshot-create-as` saves its RAM), the guest
    // is alive: passes of the reconciler leave it `active`.
    virsh(&["suspend", &name]);
    assert!(virsh(&["domstate", &name]).contains("paused"));
    std::thread::sleep(Duration::from_secs(3));
    let st = s.admin_call("GET", &format!("/api/v1/vms/{id}")).send();
    virsh(&["resume", &name]);
    assert_eq!(st.body["data"]["status"], "active", "{}", st.text);

    let r = s
        .admin_call("PATCH", &format!("/api/v1/vms/{id}/rename"))
        .project(&p)
        .json(json!({"name": "web-renamed"}));
    assert_eq!(r.status, 200);
    assert_eq!(
        s.admin_call("GET", &format!("/api/v1/vms/{id}"))
            .send()
            .body["data"]["name"],
        "web-renamed"
    );

    // Reset the password: shown once, reaches the guest through the seed at next boot.
    let old_hash = hash_line(&console(&s, &id));
    let r = act("reset-password");
    assert_eq!(r.status, 200, "{}", r.text);
    let msg = r.body["message"].as_str().unwrap().to_string();
    assert!(msg.contains("next boot"), "{msg}");
    assert_eq!(act("stop").status, 200);
    wait_status(&s, &id, "passive", Duration::from_secs(120));
    assert_eq!(act("start").status, 200);
    wait_status(&s, &id, "active", Duration::from_secs(240));
    let new_hash = hash_line(&console(&s, &id));
    assert!(
        new_hash.starts_with("$6$") && new_hash != old_hash,
        "{old_hash} → {new_hash}"
    );

    // Resize: only when stopped, never shrinking the disk; the domain really changes.
    let resize = |pid: i64| {
        s.admin_call("POST", &format!("/api/v1/vms/{id}/resize"))
            .project(&p)
            .json(json!({"pricing_id": pid}))
    };
    assert!(resize(2).error(400).contains("stop the VM"));
    assert_eq!(act("stop").status, 200);
    wait_status(&s, &id, "passive", Duration::from_secs(120));
    let r = resize(2);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], id.as_str());
    let vm = wait_status(&s, &id, "passive", Duration::from_secs(60));
    assert_eq!(
        (vm["ram"].clone(), vm["storage"].clone()),
        (json!(2), json!(25))
    );
    let info = virsh(&["dominfo", &name]);
    assert!(info.contains("2097152 KiB"), "{info}");
    let disk = |n: i64| {
        s.admin_call("POST", &format!("/api/v1/vms/{id}/disk/resize"))
            .project(&p)
            .json(json!({"new_size": n}))
    };
    assert!(disk(20).error(400).contains("never shrink"));
    assert_eq!(disk(30).status, 200);
    let vm = wait_status(&s, &id, "passive", Duration::from_secs(60));
    assert_eq!(vm["storage"], 30);
    let img = s.data().join("vms").join(&id).join("disk.qcow2");
    let out = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(&img)
        .output()
        .unwrap();
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["virtual-size"], 30u64 << 30);
    assert!(resize(1).error(400).contains("never shrink"));

    // Save the stopped disk as an image: it joins the catalog as a template.
    let save = |b: Value| {
        s.admin_call("POST", &format!("/api/v1/vms/{id}/save-image"))
            .project(&p)
            .json(b)
    };
    save(json!({"name": "img", "disk_id": 1})).error(400);
    let r = save(json!({"name": "web-golden", "description": "after resize"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let image_id = r.body["data"]["id"].as_str().unwrap().to_string();
    // The copy is a job: the answer comes first, the image is `saving` until it ends.
    assert_eq!(r.body["data"]["status"], "saving", "{}", r.text);
    wait_image(&s, &p, &image_id, Duration::from_secs(120));
    // Private to the project: not in the public catalog, listed for its owner only.
    let cat = s.call("GET", "/api/v1/public/templates").send();
    assert!(
        !cat.text.contains(&image_id),
        "a saved image is not public: {}",
        cat.text
    );
    let mine = s.admin_call("GET", "/api/skiff/v1/images").send();
    assert_eq!(
        mine.body["data"][0]["id"],
        image_id.as_str(),
        "{}",
        mine.text
    );
    assert_eq!(mine.body["data"][0]["name"], "web-golden");
    // The account's quota is one saved image.
    let q = save(json!({"name": "second"})).error(402);
    assert!(q.contains("saved_images = 1"), "{q}");
    // The other tenant can neither list, boot nor delete it.
    let b = |m: &str, path: &str| {
        s.call(m, path)
            .key(&other.api_key)
            .project(&other.project_id)
    };
    let r = b("GET", "/api/skiff/v1/images").send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"], json!([]));
    let msg = b("POST", "/api/v1/vms")
        .json(
            json!({"name": "thief", "template_id": image_id, "pricing_id": 1,
            "region": "us-east", "ssh_keys": [ED25519]}),
        )
        .error(400);
    assert!(msg.contains("template_id"), "{msg}");
    b("DELETE", &format!("/api/skiff/v1/images/{image_id}"))
        .send()
        .error(404);
    assert_eq!(b("GET", "/api/v1/vms").send().body["total"], 0);
    // Reinstall keeps the address and boots a fresh disk.
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{id}/reinstall"))
        .project(&p)
        .json(json!({"template_id": TEMPLATE_ID, "auto_generate_password": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("new root password"));
    let vm = wait_status(&s, &id, "active", Duration::from_secs(240));
    assert_eq!(vm["public_ipv4_address"], ip.as_str());
    let r = act("factory-reset");
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&s, &id, "active", Duration::from_secs(240));

    // Tags and notes.
    let tag = |m: &str, path: &str, b: Option<Value>| {
        let c = s
            .admin_call(m, &format!("/api/v1/vms/{id}/tags{path}"))
            .project(&p);
        match b {
            Some(b) => c.json(b),
            None => c.send(),
        }
    };
    let r = tag("POST", "", Some(json!({"name": "prod", "priority": 5})));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = tag("POST", "", Some(json!({"name": "web", "priority": 1})));
    let names: Vec<_> = r.body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("web"), json!("prod")], "ordered by priority");
    tag("POST", "", Some(json!({"name": "web"}))).error(400);
    let prod = r.body["tags"][1]["id"].as_str().unwrap().to_string();
    let web = r.body["tags"][0]["id"].as_str().unwrap().to_string();
    let r = tag("PATCH", &format!("/{prod}"), Some(json!({"priority": 0})));
    assert_eq!(r.body["tags"][0]["name"], "prod");
    let r = tag("DELETE", &format!("/{web}"), None);
    assert_eq!(r.body["tags"].as_array().unwrap().len(), 1);
    tag("DELETE", &format!("/{web}"), None).error(404);
    let vm = s.admin_call("GET", &format!("/api/v1/vms/{id}")).send();
    assert_eq!(vm.body["data"]["tags"][0]["name"], "prod");

    let note = |m: &str, path: &str, content: &str| {
        s.admin_call(m, &format!("/api/v1/vms/{id}/notes/{path}"))
            .project(&p)
            .json(json!({ "content": content }))
    };
    let r = s
        .admin_call("GET", &format!("/api/v1/vms/{id}/notes"))
        .send();
    assert_eq!(r.body, json!({"success": true}));
    note("PATCH", "personal", "x").error(404);
    assert_eq!(note("PUT", "personal", "first").status, 200);
    let r = note("POST", "personal/append", "second");
    assert_eq!(r.body["note"]["content"], "first\nsecond");
    assert_eq!(r.body["note"]["type"], "personal");
    assert_eq!(note("PUT", "account", "").status, 200);
    note("PUT", "team", "x").error(404);
    let r = s
        .admin_call("GET", &format!("/api/v1/vms/{id}/notes"))
        .send();
    assert_eq!(r.body["personal_note"]["content"], "first\nsecond");
    assert_eq!(r.body["account_note"]["content"], "");
    let r = s
        .admin_call("GET", &format!("/api/v1/vms/{id}/notes?type=account"))
        .send();
    assert!(r.body.get("personal_note").is_none());

    // Another project's header does not reach the VM.
    let other = s
        .admin_call("POST", "/api/v1/projects")
        .json(json!({"name": "other"}));
    let other = other.body["data"]["id"].as_str().unwrap().to_string();
    s.admin_call("POST", &format!("/api/v1/vms/{id}/stop"))
        .project(&other)
        .send()
        .error(404);

    // Delete: nothing left behind.
    let r = s
        .admin_call("DELETE", &format!("/api/v1/vms/{id}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    wait_jobs_idle(&s, &p, Duration::from_secs(120));
    s.admin_call("GET", &format!("/api/v1/vms/{id}"))
        .send()
        .error(404);
    assert!(
        !virsh(&["list", "--all", "--name"]).contains(&name),
        "no domain left"
    );
    assert!(
        !s.data().join("vms").join(&id).exists(),
        "no disk, seed or log left"
    );
    let taps = Command::new("ip")
        .args(["-o", "link", "show", "master", &h.bridge])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&taps.stdout).contains(": sva"),
        "no tap left"
    );
    // The address went back to the pool: the next VM, booted from the saved image,
    // gets it again.
    let mut from_image = good.clone();
    from_image["template_id"] = json!(image_id);
    from_image["pricing_id"] = json!(3);
    let r = post(from_image);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["data"]["public_ipv4_address"], ip.as_str());
    let id2 = r.body["data"]["id"].as_str().unwrap().to_string();
    wait_status(&s, &id2, "active", Duration::from_secs(240));
    // While a VM's disk is built on the image, it cannot be deleted.
    let del_image = || {
        s.admin_call("DELETE", &format!("/api/skiff/v1/images/{image_id}"))
            .project(&p)
            .send()
    };
    let busy = del_image().error(409);
    assert!(busy.contains("base of VM disks"), "{busy}");
    let r = s
        .admin_call("DELETE", "/api/v1/vms/bulk")
        .project(&p)
        .json(json!({"ids": [id2, "6f1c1c52-0000-4000-8000-000000000001"]}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            r.body["success_count"].clone(),
            r.body["failed_count"].clone()
        ),
        (json!(1), json!(1))
    );
    assert_eq!(r.body["results"][1]["success"], false);
    wait_jobs_idle(&s, &p, Duration::from_secs(240));
    let left = virsh(&["list", "--all", "--name"]);
    assert!(!left.contains(&format!("skiff-vm-{id2}")), "{left}");

    // No VM is built on the saved image any more: its owner deletes it, file and all.
    assert_eq!(del_image().status, 200);
    del_image().error(404);
    let r = s.admin_call("GET", "/api/skiff/v1/images").send();
    assert_eq!(r.body["data"], json!([]));
    let base = s.data().join("templates").join(format!("{image_id}.qcow2"));
    assert!(!base.exists(), "{} stays", base.display());
}
