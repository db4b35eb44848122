//! Fail closed: when the security-group data plane cannot load, no guest starts (it
//! would run with no groups and no anti-spoofing). Real libvirt in the test namespace;
//! the data plane is made unloadable by pointing its pin directory off bpffs.

mod common;
use common::vmhost::*;
use common::*;
use serde_json::json;

#[test]
fn no_vm_starts_while_the_firewall_cannot_be_enforced() {
    let Some(h) = host() else { return };
    enter_netns(&h.netns);
    let not_bpffs = tempfile::tempdir().unwrap();
    let cfg = config(&h, "10.231.0.32/27", "10.231.0.33", "svz");
    let pin = "bpf_dir = \"/sys/fs/bpf/skiff-test-svz\"";
    assert!(cfg.contains(pin));
    let cfg = cfg.replace(
        pin,
        &format!("bpf_dir = \"{}\"", not_bpffs.path().display()),
    );
    let s = Server::start(&cfg);
    let _guard = DomainGuard(s.data());
    let p = s.admin.project_id.clone();

    let msg = s
        .admin_call("POST", "/api/v1/vms")
        .project(&p)
        .json(
            json!({"name": "open-1", "template_id": TEMPLATE_ID, "pricing_id": 1,
            "region": "us-east", "ssh_keys": [ED25519]}),
        )
        .error(503);
    assert!(
        msg.contains("security groups and anti-spoofing cannot be enforced"),
        "{msg}"
    );
    // Nothing was recorded, nothing defined on the host.
    assert_eq!(s.admin_call("GET", "/api/v1/vms").send().body["total"], 0);
    assert!(!s.data().join("vms").read_dir().unwrap().any(|_| true));
}
