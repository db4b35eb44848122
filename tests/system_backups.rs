//! System test of VM backups on a real guest: the guest writes to its disk (commands
//! typed on its serial console), skiff backs it up through a libvirt checkpoint and
//! the QEMU dirty bitmap, and every restore point is compared with the disk it came
//! from. Also: a stopped VM (started paused), offline writes, restore onto the VM,
//! delete, reset-chain, delete-chain and schedules.

mod common;
use common::vmhost::*;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn wait_backup(s: &Server, id: &str, want: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        let r = s
            .admin_call("GET", &format!("/api/v1/backups/{id}"))
            .project(&s.admin.project_id)
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
        let st = r.body["data"]["status"].as_str().unwrap().to_string();
        if st == want {
            return r.body["data"].clone();
        }
        assert!(st != "failed", "backup failed: {}", r.text);
        assert!(
            Instant::now() < until,
            "backup not {want} in time: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn backup(s: &Server, p: &str, vm: &str, name: &str) -> Value {
    let r = s
        .admin_call("POST", "/api/v1/backups")
        .project(p)
        .json(json!({"vm_id": vm, "name": name}));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "pending");
    assert_eq!(r.body["data"]["increment_id"], Value::Null);
    wait_backup(s, r.body["data"]["id"].as_str().unwrap(), "ready")
}

/// Types a line on the guest's serial console (its shell), through the pty's slave.
/// Returns the open slave: QEMU reads the pty only while a slave is open (it polls for
/// that about once a second), so the caller keeps it open until the command is done.
fn type_in_guest(domain: &str, line: &str) -> std::fs::File {
    let xml = virsh(&["dumpxml", domain]);
    let pty = xml
        .split("<source path='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("the serial console's pty");
    let mut f = std::fs::OpenOptions::new().write(true).open(pty).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
    f
}

/// Runs a command in the guest and waits for its end marker on the console.
fn guest_run(s: &Server, id: &str, domain: &str, cmd: &str, tag: &str) {
    let marker = format!("DONE-{tag}");
    let _tty = type_in_guest(domain, &format!("{cmd}; echo DONE-{tag}-$?"));
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let text = console(s, id);
        if text.contains(&format!("{marker}-0")) {
            return;
        }
        assert!(
            !text.contains(&format!("{marker}-1")),
            "guest command failed: {text}"
        );
        assert!(
            Instant::now() < until,
            "guest command did not finish: {text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn repo_restore(s: &Server, point: &str, out: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["repo", "restore", "--repo"])
        .arg(s.data().join("backups"))
        .args(["--point", point, "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Byte-for-byte comparison of a restored raw image with the VM's qcow2 disk.
fn assert_same(raw: &Path, disk: &Path) {
    let o = Command::new("qemu-img")
        .args(["compare", "-U", "-f", "raw", "-F", "qcow2"])
        .arg(raw)
        .arg(disk)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "restored image differs from the disk: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn backups_of_a_real_guest_through_dirty_bitmaps() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let s = Server::start(&format!(
        "reconcile_interval_secs = 2\n{}\n[backup]\nschedule_interval_secs = 2\n",
        config(&h, "10.231.0.96/27", "10.231.0.97", "svk")
    ));
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();
    let scratch = tempfile::tempdir().unwrap();
    let out = |n: &str| -> PathBuf { scratch.path().join(n) };

    // Bad input changes nothing.
    let r = s
        .admin_call("POST", "/api/v1/backups")
        .project(&p)
        .json(json!({"vm_id": "6f1c1c52-0000-4000-8000-000000000001"}));
    // A body field naming nothing is bad input (the contract lists no 404 here).
    assert!(r.error(400).contains("names no VM"), "{}", r.text);
    s.admin_call("POST", "/api/v1/backups")
        .project(&p)
        .json(json!({"name": "x"}))
        .error(400);

    let r = s.admin_call("POST", "/api/v1/vms").project(&p).json(json!({
        "name": "bk-1", "template_id": TEMPLATE_ID, "pricing_id": 1,
        "region": "us-east", "ssh_keys": [ED25519], "backup_type": "weekly",
        "backup_time": "9:30pm", "backup_date": "Saturday"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let domain = format!("skiff-vm-{id}");
    let disk = s.data().join("vms").join(&id).join("disk.qcow2");
    wait_status(&s, &id, "active", Duration::from_secs(240));

    // The VM create's backup_type made a schedule.
    let r = s
        .admin_call("GET", &format!("/api/v1/backup-schedules?vm_id={id}"))
        .send();
    assert_eq!(r.body["total"], 1, "{}", r.text);
    let sch = r.body["data"][0].clone();
    assert_eq!(sch["type"], "weekly");
    assert_eq!(sch["runtime"], "Saturday 9:30pm");
    assert_eq!(sch["keep_count"], 4);

    // 1. Baseline of the running guest: a full read.
    let b0 = backup(&s, &p, &id, "base");
    assert_eq!(b0["increment_id"], 0);
    assert_eq!(b0["method"], "full");
    assert_eq!(b0["product_vm"], id.as_str());

    // 2. The guest writes 256 KiB of random data and one byte elsewhere; the next
    //    backup reads only what the dirty bitmap names.
    guest_run(
        &s,
        &id,
        &domain,
        "dd if=/dev/urandom of=/dev/vda bs=65536 seek=1600 count=4 2>/dev/null && printf x | dd of=/dev/vda bs=1 seek=314572800 2>/dev/null && sync",
        "w1",
    );
    let b1 = backup(&s, &p, &id, "inc-1");
    assert_eq!(b1["increment_id"], 1);
    assert_eq!(b1["method"], "incremental", "{b1}");
    assert!(
        b1["storage_size"].as_u64().unwrap() <= 2,
        "an incremental of ~320 KiB of changes stores at most 2 MB: {b1}"
    );

    // 3. Stop the VM; compare both points with what they were taken from.
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{id}/stop"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&s, &id, "passive", Duration::from_secs(120));
    let p1 = out("p1.raw");
    repo_restore(&s, b1["id"].as_str().unwrap(), &p1);
    assert_same(&p1, &disk);
    let p0 = out("p0.raw");
    repo_restore(&s, b0["id"].as_str().unwrap(), &p0);
    let differs = Command::new("qemu-img")
        .args(["compare", "-q", "-U", "-f", "raw", "-F", "qcow2"])
        .arg(&p0)
        .arg(&disk)
        .status()
        .unwrap();
    assert!(
        !differs.success(),
        "the baseline must not hold the later writes"
    );

    // 4. Offline writes to the stopped VM's disk (QEMU's block layer records them in
    //    the persistent bitmap), then a backup of the stopped VM: started paused,
    //    incremental, and stopped again.
    let o = Command::new("qemu-io")
        .args(["-f", "qcow2"])
        .arg(&disk)
        .args(["-c", "write -P 0x5a 400M 128k"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b2 = backup(&s, &p, &id, "offline");
    assert_eq!(b2["increment_id"], 2);
    assert_eq!(b2["method"], "incremental", "{b2}");
    let vm = wait_status(&s, &id, "passive", Duration::from_secs(60));
    assert_eq!(vm["status"], "passive");
    assert!(virsh(&["domstate", &domain]).contains("shut off"));
    let p2 = out("p2.raw");
    repo_restore(&s, b2["id"].as_str().unwrap(), &p2);
    assert_same(&p2, &disk);

    // 5. Restore point 1 onto the VM: the disk is point 1 again, and it boots.
    let r = s
        .admin_call(
            "POST",
            &format!("/api/v1/backups/{}/restore", b1["id"].as_str().unwrap()),
        )
        .project(&p)
        .send();
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "restoring");
    wait_backup(&s, b1["id"].as_str().unwrap(), "ready");
    wait_jobs_idle(&s, &p, Duration::from_secs(120));
    assert_same(&p1, &disk);
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{id}/start"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&s, &id, "active", Duration::from_secs(240));

    // 6. After a restore the bitmap is gone: a full read, which stores next to nothing
    //    (every chunk is in the store already).
    let b3 = backup(&s, &p, &id, "after-restore");
    assert_eq!(b3["increment_id"], 3);
    assert_eq!(b3["method"], "full");
    assert!(b3["storage_size"].as_u64().unwrap() <= 2, "{b3}");

    // 6b. An unclean stop (QEMU killed) leaves the persistent bitmap inconsistent: the
    //     next backup falls back to a full read, and it is still exact.
    let pids = Command::new("pgrep")
        .args(["-f", &format!("guest={domain},")])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pids.stdout)
        .lines()
        .next()
        .expect("the guest's QEMU process")
        .trim()
        .to_string();
    assert!(Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success());
    wait_status(&s, &id, "passive", Duration::from_secs(60));
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{id}/start"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&s, &id, "active", Duration::from_secs(240));
    let b3b = backup(&s, &p, &id, "after-crash");
    assert_eq!(b3b["increment_id"], 4);
    assert_eq!(b3b["method"], "full", "{b3b}");
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{id}/stop"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&s, &id, "passive", Duration::from_secs(120));
    let p3b = out("p3b.raw");
    repo_restore(&s, b3b["id"].as_str().unwrap(), &p3b);
    assert_same(&p3b, &disk);
    std::fs::remove_file(&p3b).unwrap();
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{id}/start"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&s, &id, "active", Duration::from_secs(240));

    // 7. Deleting the baseline breaks no other point.
    let r = s
        .admin_call(
            "DELETE",
            &format!("/api/v1/backups/{}", b0["id"].as_str().unwrap()),
        )
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    s.admin_call(
        "GET",
        &format!("/api/v1/backups/{}", b0["id"].as_str().unwrap()),
    )
    .project(&p)
    .send()
    .error(404);
    wait_jobs_idle(&s, &p, Duration::from_secs(60));
    let again = out("p2-again.raw");
    repo_restore(&s, b2["id"].as_str().unwrap(), &again);
    // qemu-img compares the two raw images in pieces (reading both whole took 13 GB
    // and the OOM killer took the test on a loaded CI host).
    let o = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "raw"])
        .arg(&again)
        .arg(&p2)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "point 2 restores the same after the baseline is gone: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["backup", "verify", "--data-dir"])
        .arg(s.data())
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));

    // 8. Reset the chain: the next backup is a new baseline.
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{id}/backups/reset-chain"))
        .project(&p)
        .send();
    assert_eq!(r.status, 202, "{}", r.text);
    let b4 = backup(&s, &p, &id, "new-base");
    assert_eq!(b4["increment_id"], 0);
    assert_eq!(b4["method"], "full");

    // 9. The list, then delete the first series as a chain: the new one stays.
    let r = s
        .admin_call("GET", &format!("/api/v1/backups?vm_id={id}"))
        .send();
    assert_eq!(r.body["total"], 5, "{}", r.text);
    let r = s
        .admin_call(
            "DELETE",
            &format!("/api/v1/backups/{}/chain", b1["id"].as_str().unwrap()),
        )
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s
        .admin_call("GET", &format!("/api/v1/backups?vm_id={id}"))
        .send();
    assert_eq!(r.body["total"], 1, "{}", r.text);
    assert_eq!(r.body["data"][0]["id"], b4["id"]);

    // 10. A verify job over one backup succeeds.
    let r = s
        .admin_call("POST", "/api/skiff/v1/backups/verify")
        .json(json!({"backup_id": b4["id"]}));
    assert_eq!(r.status, 202, "{}", r.text);
    let j = s.wait_job(
        r.body["data"]["id"].as_str().unwrap(),
        Duration::from_secs(120),
    );
    assert_eq!(j["status"], "succeeded", "{j}");

    // 11. Schedules: bad input, update, delete (backups stay).
    let sp = |b: Value| {
        s.admin_call("POST", "/api/v1/backup-schedules")
            .project(&p)
            .json(b)
    };
    sp(json!({"vm_id": id, "type": "weekly", "time": "8am", "keep_count": 3})).error(400);
    sp(json!({"vm_id": id, "type": "daily", "time": "25:00", "keep_count": 3})).error(400);
    sp(json!({"vm_id": id, "type": "daily", "time": "8am", "keep_count": 0})).error(400);
    sp(json!({"vm_id": id, "type": "hourly", "time": "8am", "keep_count": 3})).error(400);
    let r = sp(json!({"vm_id": id, "type": "daily", "time": "13:00", "keep_count": 3}));
    assert_eq!(r.status, 201, "{}", r.text);
    let sid = r.body["data"]["id"].as_u64().unwrap();
    assert_eq!(r.body["data"]["runtime"], "Daily at 1pm");
    let r = s
        .admin_call("PATCH", &format!("/api/v1/backup-schedules/{sid}"))
        .project(&p)
        .json(json!({"type": "weekly", "day_of_week": "Monday", "keep_count": 5}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["runtime"], "Monday 1pm");
    assert_eq!(r.body["data"]["keep_count"], 5);
    s.admin_call("PATCH", &format!("/api/v1/backup-schedules/{sid}"))
        .project(&p)
        .json(json!({"time": "noon"}))
        .error(400);
    let r = s
        .admin_call("DELETE", &format!("/api/v1/backup-schedules/{sid}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    s.admin_call("GET", &format!("/api/v1/backup-schedules/{sid}"))
        .project(&s.admin.project_id)
        .send()
        .error(404);
    let r = s.admin_call("GET", "/api/v1/backups").send();
    assert_eq!(r.body["total"], 1);

    // 12. The scheduler runs a schedule when it is due, and retention keeps
    //     `keep_count` of its backups. Times are UTC, to the minute.
    let soon = || {
        (chrono::Utc::now() + chrono::Duration::seconds(60))
            .format("%H:%M")
            .to_string()
    };
    let r = sp(json!({"vm_id": id, "type": "daily", "time": soon(), "keep_count": 1}));
    assert_eq!(r.status, 201, "{}", r.text);
    let sid = r.body["data"]["id"].as_u64().unwrap();
    let ran = |after: Option<&str>| -> Value {
        let until = Instant::now() + Duration::from_secs(200);
        loop {
            let r = s
                .admin_call("GET", &format!("/api/v1/backup-schedules/{sid}"))
                .project(&s.admin.project_id)
                .send();
            let d = r.body["data"].clone();
            let new_run = d["last_run_at"].as_str().is_some_and(|t| Some(t) != after);
            if new_run && d["last_run_status"] == "succeeded" {
                return d;
            }
            assert!(d["last_run_status"] != "failed", "{d}");
            assert!(Instant::now() < until, "the schedule did not run: {d}");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let first = ran(None);
    assert_eq!(first["consecutive_failures"], 0);
    let scheduled = |s: &Server| -> Vec<Value> {
        s.admin_call("GET", &format!("/api/v1/backups?vm_id={id}"))
            .send()
            .body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["id"] != b4["id"])
            .cloned()
            .collect()
    };
    let one = scheduled(&s);
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0]["status"], "ready");
    // Due again: a second run, and retention (keep 1) removes the first.
    let r = s
        .admin_call("PATCH", &format!("/api/v1/backup-schedules/{sid}"))
        .project(&p)
        .json(json!({"time": soon()}));
    assert_eq!(r.status, 200, "{}", r.text);
    ran(first["last_run_at"].as_str());
    // The second backup finishes, then retention prunes the first.
    let until = Instant::now() + Duration::from_secs(200);
    loop {
        let kept = scheduled(&s);
        if kept.len() == 1 && kept[0]["id"] != one[0]["id"] && kept[0]["status"] == "ready" {
            break;
        }
        assert!(Instant::now() < until, "retention did not prune: {kept:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    s.admin_call(
        "GET",
        &format!("/api/v1/backups/{}", one[0]["id"].as_str().unwrap()),
    )
    .project(&p)
    .send()
    .error(404);

    // Deleting the VM removes its schedules; its backups stay.
    let r = s
        .admin_call("DELETE", &format!("/api/v1/vms/{id}"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    wait_jobs_idle(&s, &p, Duration::from_secs(120));
    let r = s.admin_call("GET", "/api/v1/backup-schedules").send();
    assert_eq!(r.body["total"], 0, "{}", r.text);
    let r = s.admin_call("GET", "/api/v1/backups").send();
    assert_eq!(r.body["total"], 2);
}

/// A guest writes a qcow2 header naming a host file as its backing file into its own
/// disk. Backup and restore must give back the guest's bytes, never the host file's.
#[test]
fn a_qcow2_header_written_by_the_guest_reads_no_host_file() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let s = Server::start(&config(&h, "10.231.0.64/27", "10.231.0.65", "svq"));
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();
    let scratch = tempfile::tempdir().unwrap();

    // The host file the guest is after, and the header that names it (qcow2 v2: the
    // header and the name fit in a short line typed on the serial console).
    let needle = "HOST-SECRET-7d1c4e";
    let secret = scratch.path().join("secret");
    std::fs::write(&secret, needle.repeat(8192)).unwrap();
    let hdr = scratch.path().join("hdr.qcow2");
    let o = Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "compat=0.10",
            "-F",
            "raw",
            "-b",
        ])
        .arg(&secret)
        .arg(&hdr)
        .arg("1M")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut head = std::fs::read(&hdr).unwrap();
    head.truncate(4096);
    while head.last() == Some(&0) {
        head.pop();
    }
    assert!(head.len() < 1024, "the header is {} bytes", head.len());
    let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();

    let r = s.admin_call("POST", "/api/v1/vms").project(&p).json(json!({
        "name": "hostile-1", "template_id": TEMPLATE_ID, "pricing_id": 1,
        "region": "us-east", "ssh_keys": [ED25519]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let domain = format!("skiff-vm-{id}");
    let disk = s.data().join("vms").join(&id).join("disk.qcow2");
    wait_status(&s, &id, "active", Duration::from_secs(240));
    assert_private_data_dir(&s.data(), &id);

    // The first MiB zeroed (the header's tables then say "all in the backing file"),
    // the header on top.
    guest_run(
        &s,
        &id,
        &domain,
        &format!(
            "dd if=/dev/zero of=/dev/vda bs=65536 count=16 2>/dev/null && echo {hex} | xxd -r -p | dd of=/dev/vda conv=notrunc 2>/dev/null && sync"
        ),
        "hdr",
    );
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{id}/stop"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&s, &id, "passive", Duration::from_secs(120));
    let b = backup(&s, &p, &id, "hostile");
    let r = s
        .admin_call(
            "POST",
            &format!("/api/v1/backups/{}/restore", b["id"].as_str().unwrap()),
        )
        .project(&p)
        .send();
    assert_eq!(r.status, 202, "{}", r.text);
    wait_backup(&s, b["id"].as_str().unwrap(), "ready");
    wait_jobs_idle(&s, &p, Duration::from_secs(120));

    // The restored disk stands alone and holds the guest's header as data.
    let info = Command::new("qemu-img")
        .args(["info", "-U", "--output=json", "-f", "qcow2"])
        .arg(&disk)
        .output()
        .unwrap();
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert!(info["backing-filename"].is_null(), "{info}");
    let raw = scratch.path().join("restored.raw");
    let o = Command::new("qemu-img")
        .args(["convert", "-U", "-f", "qcow2", "-O", "raw"])
        .arg(&disk)
        .arg(&raw)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut first = vec![0u8; head.len()];
    use std::io::Read;
    std::fs::File::open(&raw)
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert_eq!(first, head, "the guest's header is the disk's data");
    // grep reads the (sparse, several GiB) image far faster than a debug-built scan.
    let found = Command::new("grep")
        .args(["-q", "-a", "-F", needle])
        .arg(&raw)
        .status()
        .unwrap();
    assert_eq!(
        found.code(),
        Some(1),
        "the host file leaked into the restored disk (grep: {found})"
    );
    // The domain names the disk's format and says it has no backing file.
    let xml = virsh(&["dumpxml", "--inactive", &domain]);
    let vda = xml.split("<target dev='vda'").next().unwrap();
    let vda = &vda[vda.rfind("<disk").unwrap()..];
    assert!(
        vda.contains("type='qcow2'") && vda.contains("<backingStore/>"),
        "{vda}"
    );
}

/// The data directory (0700 after `skiff init`) is private to skiff while a guest runs
/// from it: QEMU's group may only enter the directories on the way to the guest's files,
/// other users reach nothing, and nothing skiff wrote is readable by others.
fn assert_private_data_dir(data: &Path, vm: &str) {
    use std::os::unix::fs::MetadataExt;
    let group = |name: &str| -> u32 {
        let o = Command::new("getent")
            .args(["group", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split(':')
            .nth(2)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let qemu = group("libvirt-qemu");
    let vm_dir = data.join("vms").join(vm);
    for d in [data.to_path_buf(), data.join("vms"), vm_dir.clone()] {
        let m = std::fs::metadata(&d).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o710, "{}", d.display());
        assert_eq!((m.uid(), m.gid()), (0, qemu), "{}", d.display());
    }
    for d in ["db", "backups"] {
        let m = std::fs::metadata(data.join(d)).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o700, "{d}");
    }
    // Nothing under the data directory is open to other users.
    let o = Command::new("find")
        .arg(data)
        .args(["-perm", "/o=rwx", "-print"])
        .output()
        .unwrap();
    assert!(
        o.stdout.is_empty(),
        "open to others: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Another local user can neither list nor read it.
    for (cmd, path) in [
        ("ls", data.to_path_buf()),
        ("cat", vm_dir.join("console.log")),
    ] {
        let o = Command::new("runuser")
            .args(["-u", "nobody", "--", cmd])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!o.status.success(), "nobody ran {cmd} {}", path.display());
        assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"));
    }
}
