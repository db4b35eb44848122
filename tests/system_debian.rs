//! A real Debian 12 cloud image (scripts/build-debian-image.sh: debootstrap, the cloud
//! kernel, cloud-init, OpenSSH, the QEMU guest agent), imported with `skiff template
//! import` and booted under skiff. Checked from inside the guest over SSH from the test
//! namespace: real cloud-init applied the hostname, the SSH key, the password and the
//! static network; the guest agent sets a reset password at once; a reinstall really
//! replaces the disk.

mod common;
use common::vmhost::*;
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn debian_image() -> Option<PathBuf> {
    match std::env::var("SKT_DEBIAN_IMAGE") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "the Debian image test needs SKT_DEBIAN_IMAGE (scripts/test.sh builds it)"
            );
            eprintln!("\n!!!!!!!! SKIP: SKT_DEBIAN_IMAGE not set; run scripts/test.sh !!!!!!!!\n");
            None
        }
    }
}

/// Runs `cmd` as root in the guest; `None` while SSH does not (yet) let us in.
fn ssh(key: &Path, ip: &str, cmd: &str) -> Option<String> {
    let o = Command::new("ssh")
        .args(["-i"])
        .arg(key)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            &format!("root@{ip}"),
            cmd,
        ])
        .output()
        .expect("ssh");
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Waits until SSH lets the key in and `cmd` succeeds.
fn wait_ssh(s: &Server, id: &str, key: &Path, ip: &str, cmd: &str) -> String {
    let until = Instant::now() + Duration::from_secs(420);
    loop {
        if let Some(out) = ssh(key, ip, cmd) {
            return out;
        }
        assert!(
            Instant::now() < until,
            "no SSH into {ip}; console:\n{}",
            console(s, id)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Whether `hash` (crypt(3), from the guest's /etc/shadow) is `password`'s.
fn hash_matches(password: &str, hash: &str) -> bool {
    let o = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; sys.exit(0 if crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2] else 1)",
            password,
            hash,
        ])
        .status()
        .expect("python3");
    o.success()
}

fn root_hash(key: &Path, ip: &str) -> String {
    let line = ssh(key, ip, "grep '^root:' /etc/shadow").expect("read /etc/shadow");
    line.split(':').nth(1).unwrap_or_default().to_string()
}

#[test]
fn a_real_debian_cloud_image_boots_and_cloud_init_applies_the_seed() {
    let Some(h) = host() else { return };
    let Some(image) = debian_image() else { return };
    enter_netns(&h.netns);
    let mut s = Server::start(
        &config(&h, "10.231.0.240/29", "10.231.0.241", "sdb")
            .replace("boot_timeout_secs = 180", "boot_timeout_secs = 600"),
    );
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();

    // The operator imports the image with the CLI, as the README says.
    s.kill();
    let out = s.admin(&[
        "template",
        "import",
        image.to_str().unwrap(),
        "--name",
        "debian-12",
        "--region",
        "us-east",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let template = t["id"].as_str().expect("template id").to_string();
    s.spawn();

    // A key pair of the test's own.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "debian-test", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let public = std::fs::read_to_string(dir.path().join("id.pub")).unwrap();

    let r = s.admin_call("POST", "/api/v1/vms").project(&p).json(json!({
        "name": "Deb Twelve", "template_id": template, "pricing_id": 1,
        "region": "us-east", "ssh_keys": [public.trim()], "password": PASSWORD}));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let vm = wait_status(&s, &id, "active", Duration::from_secs(600));
    let ip = vm["public_ipv4_address"].as_str().unwrap().to_string();

    // cloud-init has finished (its own record), from inside the guest.
    let status = wait_ssh(
        &s,
        &id,
        &key,
        &ip,
        "cloud-init status --wait >/dev/null; cloud-init status",
    );
    assert!(status.contains("done"), "{status}");
    // Hostname from the seed.
    let hostname = ssh(&key, &ip, "hostname").unwrap();
    assert_eq!(hostname.trim(), "deb-twelve");
    // The key let us in as root; the password is the one asked for.
    assert!(hash_matches(PASSWORD, &root_hash(&key, &ip)));
    // The static network: the address skiff assigned, its prefix, the gateway.
    let addr = ssh(&key, &ip, "ip -4 -o addr show scope global").unwrap();
    assert!(addr.contains(&format!("{ip}/29")), "{addr}");
    let route = ssh(&key, &ip, "ip -4 route show default").unwrap();
    assert!(route.contains("via 10.231.0.241"), "{route}");
    // The root file system grew to the plan's disk.
    let size = ssh(&key, &ip, "df -B1G --output=size / | tail -n 1").unwrap();
    assert!(
        size.trim().parse::<u64>().unwrap_or(0) >= 8,
        "root fs: {size}"
    );

    // The guest agent answers: a reset password applies at once.
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{id}/reset-password"))
        .project(&p)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let msg = r.body["message"].as_str().unwrap().to_string();
    assert!(msg.contains("the guest agent applies it now"), "{msg}");
    let new_password = msg
        .strip_prefix("new root password: ")
        .and_then(|m| m.split_whitespace().next())
        .expect("the password in the message")
        .to_string();
    wait_jobs_idle(&s, &p, Duration::from_secs(60));
    let hash = root_hash(&key, &ip);
    assert!(hash_matches(&new_password, &hash), "{hash}");
    assert!(!hash_matches(PASSWORD, &hash));

    // A reinstall replaces the disk: what was written before is gone.
    ssh(&key, &ip, "echo before > /root/marker && sync").expect("write the marker");
    let r = s
        .admin_call("POST", &format!("/api/v1/vms/{id}/reinstall"))
        .project(&p)
        .json(json!({"template_id": template, "ssh_keys": [public.trim()]}));
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&s, &id, "active", Duration::from_secs(600));
    let gone = wait_ssh(
        &s,
        &id,
        &key,
        &ip,
        "cloud-init status --wait >/dev/null; test ! -e /root/marker && echo gone",
    );
    assert_eq!(gone.trim(), "gone");
}
