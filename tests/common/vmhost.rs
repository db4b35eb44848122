//! The test host for system tests with real guests (see scripts/lib.sh start_test_host).

use super::*;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

pub const TEMPLATE_ID: &str = "5ac21891-32e6-41ce-8a93-b5d6ab708b0d";
pub const PASSWORD: &str = "ABcd12!efghij";

pub struct Host {
    pub netns: String,
    pub bridge: String,
    pub template: String,
}

pub fn host() -> Option<Host> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (get("SKT_NETNS"), get("SKT_BRIDGE"), get("SKT_TEMPLATE")) {
        (Some(netns), Some(bridge), Some(template)) => Some(Host {
            netns,
            bridge,
            template,
        }),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "system tests need the test host: run them through scripts/test.sh"
            );
            eprintln!("\n!!!!!!!! SKIP: no test host (SKT_NETNS/SKT_BRIDGE/SKT_TEMPLATE); run scripts/test.sh as root !!!!!!!!\n");
            None
        }
    }
}

/// Moves this thread (and the processes it spawns) into the test namespace, so the
/// server, its sockets and every packet stay there.
pub fn enter_netns(name: &str) {
    let f = std::fs::File::open(format!("/run/netns/{name}")).expect("open netns");
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// The tests' own libvirtd (scripts/lib.sh start_test_host), never the machine's.
pub fn libvirt_uri() -> String {
    std::env::var("SKT_LIBVIRT_URI")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "qemu:///system".into())
}

/// A skiff on the shared test bridge. System tests run two at a time in one
/// namespace, so each picks its own public range and tap prefix, and one that turns
/// VPC uplinks on (SNAT or floating IPs) its own `transit_cidr`: uplink /31s are
/// numbered per store, and two skiffs on one range would route each other's replies.
pub fn config(h: &Host, cidr: &str, gateway: &str, tap_prefix: &str) -> String {
    format!(
        r#"{RELAXED}
[compute]
enabled = true
libvirt_uri = "{uri}"
boot_timeout_secs = 180
stop_timeout_secs = 20

[network]
tap_prefix = "{tap_prefix}"

[network.firewall]
bpf_dir = "/sys/fs/bpf/skiff-test-{tap_prefix}"

[network.public]
bridge = "{bridge}"
cidr = "{cidr}"
gateway = "{gateway}"

[[catalog.templates]]
id = "{TEMPLATE_ID}"
name = "skiff-test"
version = "1"
cpu = 1
ram = 1
storage = 1
region = "us-east"
image = "{image}"
"#,
        bridge = h.bridge,
        image = h.template,
        uri = libvirt_uri(),
    )
}

pub fn wait_status(s: &Server, id: &str, want: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    let mut seen = vec![];
    loop {
        let r = s.admin_call("GET", &format!("/api/v1/vms/{id}")).send();
        assert_eq!(r.status, 200, "{}", r.text);
        let st = r.body["data"]["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&st) {
            seen.push(st.clone());
        }
        if st == want {
            return r.body["data"].clone();
        }
        assert!(st != "failure", "VM failed; statuses {seen:?}");
        assert!(
            Instant::now() < until,
            "VM not {want} in time; statuses {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the saved image `id` of `project` is no longer `saving`; it must be
/// `available`.
pub fn wait_image(s: &Server, project: &str, id: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        let r = s
            .admin_call("GET", "/api/skiff/v1/images")
            .project(project)
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
        let image = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("image {id} not listed: {}", r.text))
            .clone();
        if image["status"] != "saving" {
            assert_eq!(image["status"], "available", "{image}");
            return image;
        }
        assert!(Instant::now() < until, "image {id} still saving");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until no job of the project is queued or running.
pub fn wait_jobs_idle(s: &Server, project: &str, within: Duration) {
    let until = Instant::now() + within;
    loop {
        let r = s
            .admin_call("GET", "/api/skiff/v1/jobs")
            .project(project)
            .send();
        let busy = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["status"] == "queued" || j["status"] == "running");
        if !busy {
            return;
        }
        assert!(Instant::now() < until, "jobs still running");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn console(s: &Server, id: &str) -> String {
    let r = s
        .admin_call("GET", &format!("/api/skiff/v1/vms/{id}/console"))
        .send();
    assert_eq!(r.status, 200);
    r.text
}

pub fn virsh(args: &[&str]) -> String {
    let o = Command::new("virsh")
        .arg("-c")
        .arg(libvirt_uri())
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Removes the domains of every VM under a data directory when dropped, so a failed
/// test does not leave guests (and their taps) behind for the next one.
pub struct DomainGuard(pub std::path::PathBuf);

impl Drop for DomainGuard {
    fn drop(&mut self) {
        let Ok(dirs) = std::fs::read_dir(self.0.join("vms")) else {
            return;
        };
        for d in dirs.filter_map(|e| e.ok()) {
            let name = format!("skiff-vm-{}", d.file_name().to_string_lossy());
            virsh(&["destroy", &name]);
            virsh(&["undefine", &name]);
        }
    }
}

/// Runs `cmd` in the test guest's root shell (busybox telnetd on port 23, test images
/// only) and returns what it printed. Telnet option bytes are dropped; the end is found
/// by a marker the command's own echo cannot contain.
#[allow(dead_code)]
pub fn guest_sh(ip: &str, cmd: &str) -> String {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("{ip}:23").parse().unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let mut c = loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(c) => break c,
            Err(e) if Instant::now() < until => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("guest shell at {addr}: {e}"),
        }
    };
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(format!("echo __SKIFF\"\"_BEGIN__; {cmd}; echo __SKIFF\"\"_END__\n").as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        let text = strip_telnet(&raw);
        // The echoed command line (which the shell may wrap) holds the markers only
        // with their quotes; the output holds them whole.
        if let Some(b) = text.find("__SKIFF_BEGIN__") {
            let rest = &text[b + "__SKIFF_BEGIN__".len()..];
            if let Some(e) = rest.find("__SKIFF_END__") {
                return rest[..e].replace('\r', "").trim().to_string();
            }
        }
        assert!(
            Instant::now() < until,
            "guest command did not finish: {cmd}\n{text}"
        );
    }
    panic!("guest shell closed: {}", strip_telnet(&raw));
}

fn strip_telnet(raw: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == 0xff && i + 1 < raw.len() {
            match raw[i + 1] {
                0xfb..=0xfe => i += 3,
                0xff => {
                    out.push(0xff);
                    i += 2
                }
                _ => i += 2,
            }
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the VPC router namespaces a server with tap prefix `.0` made (netns names
/// are host-wide; the bridges and veths go with the test namespace).
#[allow(dead_code)]
pub struct VpcGuard(pub &'static str);

impl Drop for VpcGuard {
    fn drop(&mut self) {
        let prefix = format!("skiff-vpc-{}-", self.0);
        for n in std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = n.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
        }
    }
}
