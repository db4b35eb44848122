//! System test of the libvirt driver: a real QEMU guest from the test template, booted
//! through libvirt with a NoCloud seed written by skiff, on a bridge inside the test
//! network namespace. Needs root and the test host that `scripts/test.sh` prepares
//! (libvirtd inside netns `$SKT_NETNS`, bridge `$SKT_BRIDGE`, image `$SKT_TEMPLATE`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use skiff::compute::seed::{write_seed, GuestConfig, GuestNic};
use skiff::compute::{disk, Accel, DomainSpec, Hypervisor, Libvirt, NicSpec, PowerState};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICijR1pe98gwtbzironx3xoU8+TTiNIwvuC/XlQchoeT user@host";
const KEY_FP: &str = "SHA256:giS2wX5XwZTg4bH/Zl3B/xHHBNqHfh9nyfgLYEF2P1A";

struct Host {
    netns: String,
    bridge: String,
    template: PathBuf,
}

/// The prepared test host, or a loud SKIP (a failure under CI, which must run these).
fn host() -> Option<Host> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (get("SKT_NETNS"), get("SKT_BRIDGE"), get("SKT_TEMPLATE")) {
        (Some(netns), Some(bridge), Some(t)) => Some(Host {
            netns,
            bridge,
            template: PathBuf::from(t),
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

/// A 0755 work directory qemu (running as libvirt-qemu) can reach.
fn workdir(tag: &str) -> PathBuf {
    let d = PathBuf::from("/var/lib/skiff-test").join(format!("{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    Command::new("chmod")
        .args(["0755", "/var/lib/skiff-test"])
        .status()
        .unwrap();
    Command::new("chmod").arg("0755").arg(&d).status().unwrap();
    d
}

fn wait_for(log: &Path, needle: &str, count: usize, within: Duration) -> String {
    let until = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return text;
        }
        assert!(
            Instant::now() < until,
            "{needle:?} x{count} not seen on the serial console within {within:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn link_exists(netns: &str, dev: &str) -> bool {
    Command::new("ip")
        .args(["-n", netns, "link", "show", dev])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Destroys and undefines the domain even when an assertion fails half-way.
struct Cleanup<'a>(&'a Libvirt, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.destroy(&self.1);
        let _ = self.0.undefine(&self.1);
    }
}

#[test]
fn a_guest_boots_from_the_template_reads_its_seed_and_goes_away_cleanly() {
    let Some(h) = host() else { return };
    // The tests' own libvirtd (scripts/lib.sh start_test_host).
    let uri = std::env::var("SKT_LIBVIRT_URI").unwrap_or_else(|_| "qemu:///system".into());
    let virt = Libvirt::connect(&uri, Accel::detect()).expect("connect to libvirtd");
    let dir = workdir("compute");
    let id = uuid::Uuid::new_v4();
    let name = format!("skiff-test-{id}");
    let tap = format!("skt{}", &id.simple().to_string()[..8]);
    let disk_path = dir.join("disk.qcow2");
    disk::create_overlay(&h.template, &disk_path, 1).unwrap();
    assert!(disk::virtual_size(&disk_path, disk::Format::Qcow2).unwrap() >= 1 << 30);
    let seed = dir.join("seed.img");
    write_seed(
        &seed,
        &GuestConfig {
            instance_id: id.to_string(),
            hostname: "web-1".into(),
            ssh_keys: vec![KEY.into()],
            password_hash: Some("$6$rounds=4096$salt$hash".into()),
            nics: vec![GuestNic {
                mac: "52:54:00:aa:bb:01".into(),
                addresses: vec!["10.231.0.50/24".into()],
                gateway: Some("10.231.0.1".into()),
                gateway6: None,
                mtu: None,
            }],
            nameservers: vec![],
        },
    )
    .unwrap();
    let log = dir.join("console.log");
    let spec = DomainSpec {
        name: name.clone(),
        uuid: id,
        vcpus: 1,
        memory_mib: 256,
        disk: disk_path.clone(),
        disk_base: Some(h.template.clone()),
        seed: Some(seed),
        nics: vec![NicSpec {
            mac: "52:54:00:aa:bb:01".into(),
            bridge: h.bridge.clone(),
            tap: tap.clone(),
            mtu: None,
        }],
        volumes: vec![],
        serial_log: log.clone(),
        accel: virt.accel(),
    };
    virt.define(&spec).unwrap();
    let _cleanup = Cleanup(&virt, name.clone());
    assert_eq!(virt.state(&name).unwrap(), Some(PowerState::ShutOff));
    assert!(virt.list("skiff-test-").unwrap().contains(&name));
    virt.start(&name).unwrap();
    assert_eq!(virt.state(&name).unwrap(), Some(PowerState::Running));
    assert!(
        link_exists(&h.netns, &tap),
        "tap {tap} is in the test namespace"
    );

    // The console is a UNIX socket in libvirt's private per-domain directory: no TCP
    // port, and another local user can neither enter that directory nor connect.
    let sock = match virt.vnc_address(&name).unwrap() {
        Some(skiff::compute::VncListener::Unix(p)) => p,
        other => panic!("VNC must listen on a UNIX socket, not {other:?}"),
    };
    assert!(sock.exists(), "{}", sock.display());
    let o = Command::new("runuser")
        .args(["-u", "nobody", "--", "python3", "-c"])
        .arg("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])")
        .arg(&sock)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "nobody connected to {}",
        sock.display()
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::os::unix::net::UnixStream::connect(&sock).expect("root (skiff) reaches the console");

    let text = wait_for(&log, "SKIFF-GUEST ready", 1, Duration::from_secs(180));
    assert!(text.contains("SKIFF-GUEST hostname=web-1"), "{text}");
    assert!(
        text.contains(&format!("SKIFF-GUEST ssh-key={KEY_FP}")),
        "{text}"
    );
    assert!(
        text.contains("SKIFF-GUEST password-hash=$6$rounds=4096$salt$hash"),
        "{text}"
    );
    assert!(text.contains("52:54:00:aa:bb:01 10.231.0.50/24"), "{text}");

    // The guest answers on the bridge, inside the namespace only.
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &h.netns,
            "ping",
            "-c",
            "3",
            "-W",
            "5",
            "10.231.0.50",
        ])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // Reboots: the guest boots again (soft may be ignored by a tiny guest; hard never is).
    virt.reboot(&name, true).unwrap();
    wait_for(&log, "SKIFF-GUEST ready", 2, Duration::from_secs(180));

    virt.destroy(&name).unwrap();
    assert_eq!(virt.state(&name).unwrap(), Some(PowerState::ShutOff));
    virt.destroy(&name).unwrap(); // already off: not an error
    assert!(
        !link_exists(&h.netns, &tap),
        "libvirt removes the tap when the guest stops"
    );
    virt.start(&name).unwrap();
    wait_for(&log, "SKIFF-GUEST ready", 3, Duration::from_secs(180));
    virt.destroy(&name).unwrap();
    virt.undefine(&name).unwrap();
    assert_eq!(virt.state(&name).unwrap(), None);
    virt.undefine(&name).unwrap(); // gone already: not an error
    assert!(!virt.list("skiff-test-").unwrap().contains(&name));
    std::fs::remove_dir_all(&dir).unwrap();
}
