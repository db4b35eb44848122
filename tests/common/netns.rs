//! Namespaces a system test makes for its own traffic (a client, "the internet"),
//! linked to the test host by a veth, and a way to run code inside any namespace.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

/// `ip` with `args`; fails the test when it fails.
pub fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// What a command printed on stdout (failures print nothing).
pub fn out(args: &[&str]) -> String {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `f` on a thread that entered network namespace `ns` (the caller's thread
/// stays where it is).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// The VPC routers of the skiff with tap prefix `prefix`.
pub fn vpc_routers(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("skiff-vpc-{prefix}-")))
        .collect()
}

/// A namespace `name` whose `eth0` is linked to the host's `host_if`; deleted when
/// dropped.
pub struct Peer {
    pub name: String,
}

impl Peer {
    /// Addresses with their length; IPv6 ones go without duplicate detection.
    pub fn new(name: &str, host_if: &str, host_addr: &str, peer_addr: &str) -> Peer {
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        ip(&["netns", "add", name]);
        let p = Peer { name: name.into() };
        ip(&[
            "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name,
        ]);
        let add = |ns: Option<&str>, dev: &str, a: &str| {
            let mut args: Vec<&str> = ns.map(|n| vec!["-n", n]).unwrap_or_default();
            args.extend(["addr", "add", a, "dev", dev]);
            if a.contains(':') {
                args.push("nodad");
            }
            ip(&args);
        };
        add(None, host_if, host_addr);
        ip(&["link", "set", host_if, "up"]);
        add(Some(name), "eth0", peer_addr);
        ip(&["-n", name, "link", "set", "eth0", "up"]);
        p
    }

    /// Routes `dst` through `via` (the host's end) inside the namespace.
    pub fn route(&self, dst: &str, via: &str) {
        ip(&["-n", &self.name, "route", "add", dst, "via", via]);
    }

    /// The last line of the page at `addr` port 80 fetched from the namespace, or
    /// None when nothing answers.
    pub fn page(&self, addr: &str) -> Option<String> {
        let sa: std::net::SocketAddr = if addr.contains(':') {
            format!("[{addr}]:80")
        } else {
            format!("{addr}:80")
        }
        .parse()
        .unwrap();
        in_netns(&self.name, move || {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(2)).ok()?;
            c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
            c.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
            let mut s = String::new();
            c.read_to_string(&mut s).ok()?;
            s.lines().last().map(|l| l.trim().to_string())
        })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
