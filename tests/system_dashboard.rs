//! The dashboard in a real browser (Debian's chromium, driven by playwright-core from
//! `tests/browser/`) against a skiff with real guests: sign in, create a VM through the
//! form (an invalid field first), watch it become active, open its VNC console, stop
//! it, take and restore a backup, add a security-group rule, create and revoke an API
//! key, refuse a forged post, sign out. Screenshots go to `docs/screenshots/`.
//! Everything runs inside the test network namespace (scripts/lib.sh start_test_host).

mod common;
use common::vmhost::*;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Whether the browser and the test driver are installed; in CI they must be.
fn browser_ready(root: &Path) -> bool {
    let ok = Path::new("/usr/bin/chromium").exists()
        && root
            .join("tests/browser/node_modules/playwright-core")
            .is_dir();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "browser tests need chromium and tests/browser/node_modules: run scripts/test.sh"
        );
        eprintln!("\n!!!!!!!! SKIP: no chromium or playwright-core (run scripts/test.sh as root) !!!!!!!!\n");
    }
    ok
}

#[test]
fn a_person_manages_a_vm_through_the_dashboard() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(h) = host() else { return };
    if !browser_ready(root) {
        return;
    }
    enter_netns(&h.netns);
    let s = Server::start(&format!(
        "{}\n[network.vpc]\nfloating_cidr = \"10.234.0.0/28\"\ntransit_cidr = \"169.254.34.0/24\"\n",
        config(&h, "10.231.0.224/27", "10.231.0.225", "svd")
    ));
    let _guard = DomainGuard(s.data());

    let out = Command::new("timeout")
        .arg("1500")
        .arg("node")
        .arg(root.join("tests/browser/dashboard.mjs"))
        .env("SKIFF_URL", &s.base)
        .env("SKIFF_USER", &s.admin.user)
        .env("SKIFF_PASSWORD", &s.admin.password)
        .env("SKIFF_VM_PASSWORD", PASSWORD)
        .env("SKIFF_SSH_KEY", ED25519)
        .env("SCREENSHOTS", root.join("docs/screenshots"))
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "browser steps failed (see above)");
    assert!(stdout.contains("all steps passed"));

    // What the browser did is what the API sees.
    let p = s.admin.project_id.clone();
    let vms = s.admin_call("GET", "/api/v1/vms").project(&p).send();
    let vm = &vms.body["data"][0];
    assert_eq!(vm["name"], "web-1b");
    assert_eq!(vm["status"], "passive");
    let id = vm["id"].as_str().unwrap();
    let backups = s
        .admin_call("GET", &format!("/api/v1/backups?vm_id={id}"))
        .project(&p)
        .send();
    assert_eq!(backups.status, 200, "{}", backups.text);
    assert_eq!(backups.body["data"].as_array().unwrap().len(), 1);
    let groups = s
        .admin_call("GET", "/api/v1/security-groups")
        .project(&p)
        .send();
    let web = groups.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "web")
        .cloned()
        .unwrap_or(Value::Null);
    assert!(web["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["range"] == "8080" && r["ip"] == "10.231.0.0"));
    assert_eq!(web["vm_count"], 1);
    let keys = s.admin_call("GET", "/api/v1/api-keys").send();
    assert!(!keys.text.contains("ci-key"), "the revoked key is gone");
    let ssh = s.admin_call("GET", "/api/v1/ssh-keys").send();
    assert!(ssh.text.contains("laptop") && !ssh.text.contains("forged"));
}
