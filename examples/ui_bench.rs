//! Dashboard page times with 500 VMs in the store (issue 6: no page above 50 ms of
//! server time). Seeds a fresh data directory with 500 VMs, 1,000 finished jobs, 500
//! backups and 20 security groups, starts `skiff serve` (the binary given), signs in,
//! then requests every page many times. Server time is what skiff itself logs for each
//! request (from the first byte in to the last byte out, rendering included); the
//! client column adds loopback. Peers in the same run: the JSON API's VM list over the
//! same 500 VMs (the same service call, serialised by serde) and `/health` (the floor).
//!
//! Usage: ui_bench SKIFF_BINARY [ROUNDS]   (prints a Markdown table)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use skiff::model::{
    Backup, BackupStatus, Job, JobStatus, Nic, SecurityGroup, SgDirection, SgProtocol, SgRemote,
    SgRule, Vm, VmStatus, VmTag,
};
use skiff::store::Store;
use uuid::Uuid;

const VMS: usize = 500;

fn seed(db: &std::path::Path, account: Uuid, project: Uuid) -> (Uuid, Uuid) {
    let store = Store::open(db).expect("open store");
    let vms = store.table::<Vm>().expect("vms");
    let jobs = store.table::<Job>().expect("jobs");
    let backups = store.table::<Backup>().expect("backups");
    let groups = store.table::<SecurityGroup>().expect("groups");
    let t = Utc::now();
    let mut group_ids = Vec::new();
    for g in 0..20 {
        let id = Uuid::new_v4();
        group_ids.push(id);
        groups
            .create(&SecurityGroup {
                id,
                account_id: account,
                project_id: project,
                name: format!("group-{g}"),
                description: "bench".into(),
                rules: (0..10)
                    .map(|r| SgRule {
                        id: (g * 100 + r + 1) as u64,
                        direction: SgDirection::Inbound,
                        family: None,
                        protocol: SgProtocol::Tcp,
                        ports: Some((8000 + r as u16, 8000 + r as u16)),
                        icmp_type: None,
                        remote: SgRemote::Cidr {
                            addr: format!("10.{g}.0.0"),
                            len: 16,
                        },
                    })
                    .collect(),
                created_at: t,
                updated_at: t,
            })
            .expect("group");
    }
    let statuses = [VmStatus::Active, VmStatus::Active, VmStatus::Passive];
    let mut first = Uuid::nil();
    for i in 0..VMS {
        let id = Uuid::new_v4();
        if i == 0 {
            first = id;
        }
        vms.create(&Vm {
            id,
            account_id: account,
            project_id: project,
            name: format!("vm-{i:03}"),
            status: statuses[i % 3],
            pricing_id: 1,
            vcpus: 1,
            ram_gib: 1,
            storage_gib: 10,
            added_storage_gib: 0,
            template_id: Uuid::new_v4(),
            template_name: "Debian".into(),
            template_version: "12".into(),
            region: "us-east".into(),
            ssh_keys: vec![],
            password_hash: None,
            instance_id: id.to_string(),
            nics: vec![Nic {
                id: i as u64 + 1,
                kind: "public".into(),
                network_name: "public".into(),
                mac: format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256),
                ip: format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256),
                prefix: 16,
                gateway: "10.100.0.1".into(),
                bridge: "skbr0".into(),
                tap: format!("skt{i}"),
                security_groups: vec![group_ids[i % 20]],
                vpc_id: None,
                mtu: None,
                pending: None,
                ip6: None,
            }],
            tags: vec![VmTag {
                id: Uuid::new_v4(),
                name: if i % 2 == 0 { "web" } else { "db" }.into(),
                priority: 0,
                created_at: t,
            }],
            deleting: false,
            created_by: None,
            created_at: t,
            updated_at: t,
        })
        .expect("vm");
        for (k, kind) in ["vm.create", "vm.start"].iter().enumerate() {
            jobs.create(&Job {
                id: Uuid::new_v4(),
                seq: (i * 2 + k) as u64 + 1,
                kind: kind.to_string(),
                target: format!("vm/{id}"),
                account_id: Some(account),
                project_id: Some(project),
                params: serde_json::json!({ "vm_id": id }),
                status: JobStatus::Succeeded,
                progress: 100,
                error: None,
                checkpoint: serde_json::Value::Null,
                attempts: 1,
                created_at: t,
                started_at: Some(t),
                finished_at: Some(t),
            })
            .expect("job");
        }
        backups
            .create(&Backup {
                id: Uuid::new_v4(),
                account_id: account,
                project_id: project,
                vm_id: id,
                created_by: None,
                name: format!("vm-{i:03}-nightly"),
                region: "us-east".into(),
                status: BackupStatus::Ready,
                series: format!("{id}-1"),
                increment: Some(0),
                stored_bytes: 1 << 30,
                read_bytes: 10 << 30,
                method: Some("full".into()),
                schedule_id: None,
                error: None,
                created_at: t,
                updated_at: t,
            })
            .expect("backup");
    }
    store.flush().expect("flush");
    (first, group_ids[0])
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn p95(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args.next().expect("usage: ui_bench SKIFF_BINARY [ROUNDS]");
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(30);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cfg = dir.path().join("skiff.toml");
    std::fs::write(&cfg, "[compute]\nenabled = false\n").expect("config");
    let out = Command::new(&bin)
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&cfg)
        .args(["init", "--json"])
        .output()
        .expect("skiff init");
    let init: serde_json::Value = serde_json::from_slice(&out.stdout).expect("init json");
    let s = |k: &str| init[k].as_str().expect(k).to_string();
    let account = Uuid::parse_str(&s("account_id")).expect("uuid");
    let project = Uuid::parse_str(&s("project_id")).expect("uuid");
    let (vm, group) = seed(&data.join("db"), account, project);

    let mut child = Command::new(&bin)
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&cfg)
        .args(["--listen", "127.0.0.1:0", "serve"])
        .env("SKIFF_LOG", "skiff=info,actix_web=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(u) = l.strip_prefix("skiff listening on ") {
                let _ = tx.send(u.to_string());
            }
        }
    });
    // Server-side times, by request id, from skiff's own "handled" log lines.
    let times: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
    let t2 = times.clone();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let l = String::from_utf8(strip_ansi(l.as_bytes())).unwrap_or_default();
            let (Some(rid), Some(us)) = (field(&l, "request_id="), field(&l, "micros=")) else {
                continue;
            };
            if let Ok(us) = us.parse::<f64>() {
                t2.lock()
                    .expect("lock")
                    .push((rid.to_string(), us / 1000.0));
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("skiff did not start");
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    // Sign in like a browser.
    let login = agent
        .get(&format!("{base}/ui/login"))
        .call()
        .expect("login page");
    let cookie = login
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("cookie")
        .to_string();
    let body = login.into_string().expect("body");
    let at = body.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = body[at..at + 64].to_string();
    let r = agent
        .post(&format!("{base}/ui/login"))
        .set("Cookie", &cookie)
        .send_form(&[
            ("csrf", &csrf),
            ("user", &s("user")),
            ("password", &s("password")),
        ]);
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("login: {e}"),
    };
    assert_eq!(r.status(), 303, "sign-in failed");
    let cookie = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("session")
        .to_string();

    let key = s("api_key");
    let pages: Vec<(String, String, bool)> = vec![
        ("overview".into(), "/ui/".into(), true),
        ("VM list (500 rows)".into(), "/ui/vms".into(), true),
        (
            "VM list, search".into(),
            "/ui/vms?q=vm-42&status=active".into(),
            true,
        ),
        ("VM detail".into(), format!("/ui/vms/{vm}"), true),
        (
            "VM status fragment (polled)".into(),
            format!("/ui/vms/{vm}/status"),
            true,
        ),
        ("create-VM form".into(), "/ui/vms/new".into(), true),
        ("backups (500 rows)".into(), "/ui/backups".into(), true),
        ("security groups".into(), "/ui/security-groups".into(), true),
        (
            "security group rules".into(),
            format!("/ui/security-groups/{group}"),
            true,
        ),
        ("SSH keys".into(), "/ui/ssh-keys".into(), true),
        ("API keys".into(), "/ui/api-keys".into(), true),
        (
            "peer: JSON API VM list (500)".into(),
            "/api/v1/vms?limit=500".into(),
            false,
        ),
        ("floor: /health".into(), "/health".into(), false),
    ];
    println!("| page | server median (ms) | server p95 (ms) | server max (ms) | client median (ms) | bytes |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, path, ui) in &pages {
        let mut client = Vec::new();
        let mut ids = Vec::new();
        let mut bytes = 0;
        for i in 0..rounds + 3 {
            let rid = Uuid::new_v4().to_string();
            let mut req = agent
                .get(&format!("{base}{path}"))
                .set("X-Request-ID", &rid);
            req = if *ui {
                req.set("Cookie", &cookie)
            } else {
                req.set("X-API-Key", &key)
                    .set("X-Project-ID", &project.to_string())
            };
            let t = Instant::now();
            let resp = req.call().expect("page");
            assert_eq!(resp.status(), 200, "{path}");
            bytes = resp.into_string().expect("body").len();
            if i >= 3 {
                client.push(t.elapsed().as_secs_f64() * 1000.0);
                ids.push(rid);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        let logged = times.lock().expect("lock").clone();
        let mut server: Vec<f64> = ids
            .iter()
            .filter_map(|id| logged.iter().find(|(r, _)| r == id).map(|(_, ms)| *ms))
            .collect();
        assert_eq!(server.len(), ids.len(), "every request logged its time");
        let max = server.iter().cloned().fold(0.0, f64::max);
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {bytes} |",
            median(&mut server),
            p95(&mut server),
            max,
            median(&mut client)
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    line[at..].split([' ', '}', ',']).next()
}

fn strip_ansi(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0x1b {
            while i < b.len() && b[i] != b'm' {
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}
