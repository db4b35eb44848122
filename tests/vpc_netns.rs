//! The VPC data path (`skiff::network::vpc`) in the kernel: inside a host namespace
//! the test makes, two VPCs with one CIDR and namespaces playing their guests (a veth
//! end each on the VPC's bridge). Guests in one VPC reach each other and their own
//! gateway and nothing of the other VPC; the host has no address in either. Then the
//! crash matrix: every prefix of the create and remove steps is completed by running
//! `ensure` or `remove` again, leaving exactly the objects expected. Needs root.
//!
//! Traffic stays between the namespaces the test creates; every namespace it makes is
//! removed when its fixture drops (and leftovers of killed runs at the next start).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};

use skiff::network::vpc::{self, VpcNet, VpcSpec, CREATE_STEPS, REMOVE_STEPS};

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "VPC network-namespace tests need root; CI runs as root"
        );
        eprintln!("\n!!!!!!!! SKIP: not root: the VPC netns tests need root !!!!!!!!\n");
        return false;
    }
    true
}

fn cmd(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("15")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", args.join(" ")))
}

fn out(args: &[&str]) -> String {
    let o = cmd(args);
    assert!(
        o.status.success(),
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn setns(f: &File) {
    // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

fn pid_alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Namespaces of killed earlier runs: `skvpc-<pid>-…` (this file's host and guests)
/// and `skiff-vpc-t<pid>…` (routers made under this file's prefixes).
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let pid = if let Some(rest) = name.strip_prefix("skvpc-") {
            rest.split('-').next().unwrap_or("").to_string()
        } else if let Some(rest) = name.strip_prefix("skiff-vpc-t") {
            let b36 = rest.split('-').next().unwrap_or("");
            match u64::from_str_radix(b36, 36) {
                Ok(pid) => pid.to_string(),
                Err(_) => continue,
            }
        } else {
            continue;
        };
        if !pid.is_empty() && !pid_alive(&pid) {
            let _ = cmd(&["ip", "netns", "del", &name]);
        }
    }
}

fn base36(mut n: u32) -> String {
    let mut d = vec![];
    loop {
        d.push(char::from_digit(n % 36, 36).unwrap());
        n /= 36;
        if n == 0 {
            return d.into_iter().rev().collect();
        }
    }
}

/// A host namespace the test thread lives in, guest namespaces, and the VPC prefix.
struct Host {
    ns: String,
    prefix: String,
    guests: Vec<String>,
    home: File,
}

impl Host {
    fn new(tag: &str) -> Option<Host> {
        if !root() {
            return None;
        }
        sweep_stale();
        let pid = std::process::id();
        let ns = format!("skvpc-{pid}-{tag}");
        let _ = cmd(&["ip", "netns", "del", &ns]);
        out(&["ip", "netns", "add", &ns]);
        let home = File::open("/proc/thread-self/ns/net").unwrap();
        setns(&File::open(format!("/run/netns/{ns}")).unwrap());
        out(&["ip", "link", "set", "lo", "up"]);
        // The prefix holds the pid (for sweeps) in at most 6 characters: 't' and the
        // pid in base 36 (5 digits reach 60 million).
        let prefix = format!("t{}", base36(pid));
        Some(Host {
            ns,
            prefix,
            guests: vec![],
            home,
        })
    }

    fn net(&self, seq: u64) -> VpcNet {
        VpcNet {
            prefix: self.prefix.clone(),
            seq,
        }
    }

    fn spec(&self, seq: u64) -> VpcSpec {
        VpcSpec {
            net: self.net(seq),
            gateway: "10.50.0.1".parse().unwrap(),
            prefix_len: 24,
            mtu: 1450,
            uplink: None,
        }
    }

    /// A guest namespace `name` with `eth0` at `ip`/24 on VPC `seq`'s bridge.
    fn guest(&mut self, name: &str, seq: u64, ip: &str) -> String {
        let ns = format!("{}-{name}", self.ns);
        let _ = cmd(&["ip", "netns", "del", &ns]);
        out(&["ip", "netns", "add", &ns]);
        self.guests.push(ns.clone());
        let port = format!("{}p{name}", self.prefix);
        out(&[
            "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        out(&[
            "ip",
            "link",
            "set",
            &port,
            "master",
            &self.net(seq).bridge(),
            "up",
        ]);
        let n = |a: &[&str]| {
            let mut v = vec!["ip", "-n", ns.as_str()];
            v.extend_from_slice(a);
            out(&v);
        };
        n(&["link", "set", "lo", "up"]);
        n(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        n(&["link", "set", "eth0", "up"]);
        ns
    }

    fn mac_of(ns: &str, dev: &str) -> String {
        let o = out(&["ip", "-n", ns, "-o", "link", "show", "dev", dev]);
        o.split("link/ether ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no MAC in {o}"))
            .to_string()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for seq in vpc::present(&self.prefix)
            .map(|p| p.any())
            .unwrap_or_default()
        {
            let _ = vpc::remove(&self.net(seq));
        }
        for g in &self.guests {
            let _ = cmd(&["ip", "netns", "del", g]);
        }
        setns(&self.home);
        let _ = cmd(&["ip", "netns", "del", &self.ns]);
    }
}

/// A ping from namespace `ns` to `ip`: answered or not.
fn ping(ns: &str, ip: &str) -> bool {
    cmd(&["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", ip])
        .status
        .success()
}

/// The MAC `ns` learned for `ip` (after a ping).
fn neighbour(ns: &str, ip: &str) -> String {
    let o = out(&["ip", "-n", ns, "neigh", "show", ip]);
    o.split("lladdr ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{ns} has no neighbour entry for {ip}: {o:?}"))
        .to_string()
}

#[test]
fn two_vpcs_with_one_cidr_never_meet() {
    let Some(mut h) = Host::new("iso") else {
        return;
    };
    vpc::ensure(&h.spec(1)).unwrap();
    vpc::ensure(&h.spec(2)).unwrap();
    let a1 = h.guest("a1", 1, "10.50.0.10");
    let a2 = h.guest("a2", 1, "10.50.0.11");
    // The other VPC holds the same addresses.
    let b1 = h.guest("b1", 2, "10.50.0.11");
    let b2 = h.guest("b2", 2, "10.50.0.10");

    assert!(ping(&a1, "10.50.0.11"), "a1 reaches a2 in its VPC");
    assert_eq!(neighbour(&a1, "10.50.0.11"), Host::mac_of(&a2, "eth0"));
    assert!(ping(&b1, "10.50.0.10"), "b1 reaches b2 in its VPC");
    assert_eq!(neighbour(&b1, "10.50.0.10"), Host::mac_of(&b2, "eth0"));
    // Each VPC's gateway answers from its own router namespace.
    for (g, seq) in [(&a1, 1), (&b1, 2)] {
        assert!(ping(g, "10.50.0.1"), "{g} reaches its gateway");
        assert_eq!(
            neighbour(g, "10.50.0.1"),
            Host::mac_of(&h.net(seq).netns(), "gw0")
        );
    }
    // The host is in neither VPC: no address on the bridges, no route to them.
    for seq in [1, 2] {
        let addrs = out(&["ip", "-o", "addr", "show", "dev", &h.net(seq).bridge()]);
        assert!(addrs.trim().is_empty(), "the bridge holds {addrs}");
        let link = out(&[
            "ip",
            "-d",
            "-o",
            "link",
            "show",
            "dev",
            &h.net(seq).bridge(),
        ]);
        assert!(link.contains("mtu 1450"), "{link}");
        assert!(link.contains("nf_call_iptables 0"), "{link}");
    }
    assert!(!ping(&h.ns, "10.50.0.10"), "the host reaches into a VPC");
    // With b2 gone, nothing in VPC 2 holds .10: a1's twin in VPC 1 never answers b1.
    // Its port goes at once (a namespace's devices go only when the kernel gets to it).
    out(&["ip", "link", "del", "dev", &format!("{}pb2", h.prefix)]);
    let _ = cmd(&["ip", "-n", &b1, "neigh", "flush", "all"]);
    assert!(!ping(&b1, "10.50.0.10"), "b1 reached a1 across VPCs");
    assert!(ping(&a2, "10.50.0.10"), "a2 still reaches a1");

    vpc::remove(&h.net(1)).unwrap();
    assert!(!ping(&a1, "10.50.0.11"), "the removed VPC still switches");
    let left = vpc::present(&h.prefix).unwrap();
    assert_eq!(left.any().into_iter().collect::<Vec<_>>(), vec![2]);
    assert!(left.complete(2));
}

/// Every crash point of create and of remove: the steps done so far, then the next
/// `ensure` (create again, or the reconciler) or `remove` (a delete) finishes the job.
#[test]
fn every_crash_point_of_create_and_remove_converges() {
    let Some(mut h) = Host::new("crash") else {
        return;
    };
    let mut seq = 10;
    for done in 0..=CREATE_STEPS.len() {
        // Crash during create, then create runs again: a working VPC.
        seq += 1;
        let spec = h.spec(seq);
        for s in &CREATE_STEPS[..done] {
            vpc::create_step(&spec, *s).unwrap();
        }
        vpc::ensure(&spec).unwrap();
        assert!(
            vpc::present(&h.prefix).unwrap().complete(seq),
            "after {done} steps"
        );
        let g = h.guest(&format!("c{seq}"), seq, "10.50.0.20");
        assert!(
            ping(&g, "10.50.0.1"),
            "the gateway answers after {done} create steps"
        );
        // Crash during remove, then remove runs again: nothing of it is left.
        for gone in 0..=REMOVE_STEPS.len() {
            for s in &REMOVE_STEPS[..gone] {
                vpc::remove_step(&spec.net, *s).unwrap();
            }
            vpc::remove(&spec.net).unwrap();
            assert!(
                !vpc::present(&h.prefix).unwrap().any().contains(&seq),
                "VPC {seq} left objects after a remove interrupted after {gone} steps"
            );
            vpc::ensure(&spec).unwrap();
        }
        vpc::remove(&spec.net).unwrap();
        // Crash during create, then a delete: nothing is left either.
        seq += 1;
        let spec = h.spec(seq);
        for s in &CREATE_STEPS[..done] {
            vpc::create_step(&spec, *s).unwrap();
        }
        vpc::remove(&spec.net).unwrap();
        assert!(!vpc::present(&h.prefix).unwrap().any().contains(&seq));
    }
    // Only the guests' ports are left on the host.
    let links = out(&["ip", "-o", "link", "show"]);
    let prefix = h.prefix.clone();
    let ours: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .filter(|n| n.starts_with(&prefix) && !n.starts_with(&format!("{prefix}p")))
        .collect();
    assert!(ours.is_empty(), "left behind: {ours:?}");
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("skiff-vpc-{prefix}-")))
        .collect();
    assert!(netns.is_empty(), "router namespaces left: {netns:?}");
    let _ = &mut h;
}

/// From namespace `ns`: a TCP connection to `to` that the peer answers, in a thread
/// of its own (the namespace is the thread's).
fn connects(ns: &str, to: std::net::SocketAddr) -> bool {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        setns(&File::open(path).unwrap());
        match std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(2)) {
            Ok(mut c) => {
                use std::io::Read;
                let mut b = [0u8; 5];
                c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                    .unwrap();
                c.read_exact(&mut b).is_ok() && &b == b"hello"
            }
            Err(_) => false,
        }
    })
    .join()
    .unwrap()
}

/// SNAT: a guest of a VPC with an uplink reaches "the internet" (a namespace routed
/// through the host) as the host's address; a VPC without one does not; no VPC
/// reaches another's router through the host.
#[test]
fn snat_lets_a_vpc_out_as_the_host_and_nowhere_else() {
    let Some(mut h) = Host::new("snat") else {
        return;
    };
    let transit = skiff::network::Cidr::parse("169.254.0.0/16").unwrap();
    let with_uplink = |seq: u64| VpcSpec {
        uplink: vpc::Uplink::of(&transit, seq),
        ..h.spec(seq)
    };
    vpc::ensure(&with_uplink(1)).unwrap();
    vpc::ensure(&h.spec(2)).unwrap();
    let mut other = with_uplink(3);
    other.gateway = "10.70.0.1".parse().unwrap();
    vpc::ensure(&other).unwrap();
    vpc::ensure_host_nat(&h.prefix, Some(&transit), true).unwrap();
    let g1 = h.guest("s1", 1, "10.50.0.10");
    let g2 = h.guest("s2", 2, "10.50.0.10");
    let g3 = h.guest("s3", 3, "10.70.0.10");
    for (g, gw) in [(&g1, "10.50.0.1"), (&g2, "10.50.0.1"), (&g3, "10.70.0.1")] {
        out(&["ip", "-n", g, "route", "add", "default", "via", gw]);
    }
    // "The internet": a namespace on a link of the host's.
    let inet = format!("{}-inet", h.ns);
    let _ = cmd(&["ip", "netns", "del", &inet]);
    out(&["ip", "netns", "add", &inet]);
    h.guests.push(inet.clone());
    let link = format!("{}x0", h.prefix);
    out(&[
        "ip", "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &inet,
    ]);
    out(&["ip", "addr", "add", "198.51.100.1/24", "dev", &link]);
    out(&["ip", "link", "set", &link, "up"]);
    out(&[
        "ip",
        "-n",
        &inet,
        "addr",
        "add",
        "198.51.100.2/24",
        "dev",
        "eth0",
    ]);
    out(&["ip", "-n", &inet, "link", "set", "eth0", "up"]);
    out(&["ip", "-n", &inet, "link", "set", "lo", "up"]);
    // Its server records who connects.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = format!("/run/netns/{inet}");
    std::thread::spawn(move || {
        setns(&File::open(path).unwrap());
        let l = std::net::TcpListener::bind("198.51.100.2:8080").unwrap();
        for c in l.incoming().flatten() {
            use std::io::Write;
            let _ = tx.send(c.peer_addr().unwrap().ip().to_string());
            let mut c = c;
            let _ = c.write_all(b"hello");
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let server: std::net::SocketAddr = "198.51.100.2:8080".parse().unwrap();
    assert!(connects(&g1, server), "a VPC with an uplink gets out");
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap(),
        "198.51.100.1",
        "the peer sees the host's address"
    );
    assert!(!connects(&g2, server), "a VPC without an uplink got out");
    // VPC 1 to VPC 3's router through the host: dropped.
    let router3 = vpc::Uplink::of(&transit, 3).unwrap().router;
    assert!(
        !ping(&g1, &router3.to_string()),
        "one VPC reached another's router"
    );
    assert!(ping(&g3, "10.70.0.1"));
    // Turning SNAT off for a VPC (an ensure without uplink) takes its way out away.
    vpc::ensure(&h.spec(1)).unwrap();
    assert!(!connects(&g1, server), "the uplink outlived SNAT");
    assert!(!vpc::present(&h.prefix).unwrap().uplinks.contains(&1));
    vpc::ensure_host_nat(&h.prefix, None, false).unwrap();
}
