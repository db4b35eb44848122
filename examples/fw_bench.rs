//! Security-group data-plane benchmark (root). Prints markdown tables:
//!
//! 1. Per-packet cost through BPF_PROG_TEST_RUN for 1, 100 and 10,000 rules: a packet
//!    decided by the rules (TCP ACK, so no connection is opened: every run does the
//!    full lookup), a denied packet, and a packet of a tracked connection.
//! 2. Packets per second through veth pairs between three namespaces (sender → router
//!    → "VM"), every packet allowed by the last of N rules: no filter, skiff on the
//!    VM's tap, and nftables holding the same policy as linear rules and as a set.
//!
//! Run by scripts/bench/firewall.sh; traffic stays inside the namespaces it creates.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use skiff::network::firewall::packet::{Spec, TCP};
use skiff::network::firewall::{AttachMode, Dir, Firewall, FwRule, NicPolicy, Prefix, Timeouts};

const VM_MAC: [u8; 6] = [0x52, 0x54, 0, 0x0b, 0xe7, 0x01];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// N inbound TCP rules; the last one allows 10.99.0.1 → port 80.
fn rules(n: usize) -> Vec<FwRule> {
    let mut out: Vec<FwRule> = (1..n)
        .map(|i| FwRule {
            id: i as u64,
            dir: Dir::In,
            proto: Some(TCP),
            ports: (1000 + (i % 5000) as u16, 1000 + (i % 5000) as u16),
            remotes: vec![Prefix::host(ip(&format!(
                "10.{}.{}.{}",
                100 + i / 65536,
                (i / 256) % 256,
                i % 256
            )))],
        })
        .collect();
    out.push(FwRule {
        id: n as u64,
        dir: Dir::In,
        proto: Some(TCP),
        ports: (80, 80),
        remotes: vec![Prefix::host(ip("10.99.0.1"))],
    });
    out
}

fn policy(n: usize, vm: &str) -> NicPolicy {
    NicPolicy {
        nic: 1,
        mac: VM_MAC,
        addrs: vec![ip(vm)],
        filtered: true,
        egress_restricted: false,
        rules: rules(n),
    }
}

fn sh(args: &[&str]) {
    let o = Command::new("timeout")
        .arg("60")
        .args(args)
        .output()
        .expect("run");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn test_run_table(dir: &std::path::Path) {
    let fw = Firewall::open_mode(dir, Timeouts::default(), AttachMode::Tcx).expect("load");
    let vm = "10.200.0.2";
    let frame = |src: &str, flags: u8| {
        let mut s = Spec::new(ip(src), ip(vm), TCP);
        s.dst_mac = VM_MAC;
        s.tcp_flags = flags;
        s.build()
    };
    let repeat = 1_000_000;
    let cost = |f: &[u8]| {
        median(
            (0..5)
                .map(|_| f64::from(fw.test_run(Dir::In, f, repeat).unwrap().1))
                .collect(),
        )
    };
    let mut unfiltered = policy(1, vm);
    unfiltered.filtered = false;
    fw.set_policy(1, &unfiltered).unwrap();
    let base = cost(&frame("10.99.0.1", 0x10));
    println!("| rules | decided by the rules (ns) | denied (ns) | tracked connection (ns) |");
    println!("|---:|---:|---:|---:|");
    println!("| NIC without groups | {base:.0} | – | – |");
    let mut first = 0.0;
    for n in [1usize, 100, 10_000] {
        fw.clear_conntrack().unwrap();
        fw.set_policy(1, &policy(n, vm)).unwrap();
        let allowed = cost(&frame("10.99.0.1", 0x10));
        let denied = cost(&frame("10.98.0.1", 0x10));
        let (pass, _) = fw.test_run(Dir::In, &frame("10.99.0.1", 0x02), 1).unwrap();
        assert!(pass, "the SYN opens the connection");
        let tracked = cost(&frame("10.99.0.1", 0x10));
        if n == 1 {
            first = allowed;
        }
        println!(
            "| {n} | {allowed:.0} ({:+.0} % vs 1 rule) | {denied:.0} | {tracked:.0} |",
            (allowed / first - 1.0) * 100.0
        );
    }
}

/// Sender, router and VM namespaces joined by two veth pairs.
struct Net {
    tag: String,
}

impl Net {
    fn ns(&self, n: &str) -> String {
        format!("{}-{n}", self.tag)
    }

    fn up() -> Net {
        let net = Net {
            tag: format!("skfb{}", std::process::id()),
        };
        let (s, h, v) = (net.ns("s"), net.ns("h"), net.ns("v"));
        for n in [&s, &h, &v] {
            sh(&["ip", "netns", "add", n]);
            sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip", "-n", &s, "link", "add", "s0", "type", "veth", "peer", "name", "h0", "netns", &h,
        ]);
        sh(&[
            "ip", "-n", &h, "link", "add", "t0", "type", "veth", "peer", "name", "vm0", "netns", &v,
        ]);
        sh(&[
            "ip",
            "-n",
            &s,
            "link",
            "set",
            "s0",
            "address",
            "02:00:00:00:00:01",
        ]);
        sh(&[
            "ip",
            "-n",
            &h,
            "link",
            "set",
            "h0",
            "address",
            "02:00:00:00:00:02",
        ]);
        sh(&[
            "ip",
            "-n",
            &v,
            "link",
            "set",
            "vm0",
            "address",
            "52:54:00:0b:e7:01",
        ]);
        sh(&["ip", "-n", &s, "addr", "add", "10.99.0.1/16", "dev", "s0"]);
        sh(&[
            "ip",
            "-n",
            &h,
            "addr",
            "add",
            "10.99.255.254/16",
            "dev",
            "h0",
        ]);
        sh(&["ip", "-n", &h, "addr", "add", "10.200.0.1/24", "dev", "t0"]);
        sh(&["ip", "-n", &v, "addr", "add", "10.200.0.2/24", "dev", "vm0"]);
        for (n, d) in [(&s, "s0"), (&h, "h0"), (&h, "t0"), (&v, "vm0")] {
            sh(&["ip", "-n", n, "link", "set", d, "up"]);
        }
        sh(&[
            "ip",
            "-n",
            &v,
            "route",
            "add",
            "default",
            "via",
            "10.200.0.1",
        ]);
        sh(&[
            "ip",
            "-n",
            &s,
            "route",
            "add",
            "10.200.0.0/24",
            "via",
            "10.99.255.254",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &h,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        sh(&[
            "ip",
            "-n",
            &h,
            "neigh",
            "replace",
            "10.200.0.2",
            "lladdr",
            "52:54:00:0b:e7:01",
            "dev",
            "t0",
            "nud",
            "permanent",
        ]);
        sh(&[
            "ip",
            "-n",
            &h,
            "neigh",
            "replace",
            "10.99.0.1",
            "lladdr",
            "02:00:00:00:00:01",
            "dev",
            "h0",
            "nud",
            "permanent",
        ]);
        sh(&[
            "ip",
            "-n",
            &v,
            "neigh",
            "replace",
            "10.200.0.1",
            "lladdr",
            &mac_of(&h, "t0"),
            "dev",
            "vm0",
            "nud",
            "permanent",
        ]);
        net
    }

    fn rx_vm(&self) -> u64 {
        let o = Command::new("ip")
            .args([
                "-n",
                &self.ns("v"),
                "-s",
                "-j",
                "link",
                "show",
                "dev",
                "vm0",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["stats64"]["rx"]["packets"].as_u64().unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in ["s", "h", "v"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .status();
        }
    }
}

fn mac_of(ns: &str, dev: &str) -> String {
    let o = Command::new("ip")
        .args(["-n", ns, "-j", "link", "show", "dev", dev])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0]["address"].as_str().unwrap().to_string()
}

fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    // SAFETY: setns on a valid namespace fd changes only this thread's namespace.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
}

/// An AF_PACKET socket on the sender's s0.
fn raw_socket(net: &Net) -> i32 {
    let home = std::fs::File::open("/proc/self/ns/net").unwrap();
    enter(&net.ns("s"));
    // SAFETY: plain socket(2); the fd is checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        )
    };
    assert!(fd >= 0);
    let name = std::ffi::CString::new("s0").unwrap();
    // SAFETY: `name` is NUL-terminated.
    let ix = unsafe { libc::if_nametoindex(name.as_ptr()) };
    // SAFETY: a zeroed sockaddr_ll is valid; we set the fields bind needs.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sa.sll_ifindex = ix as i32;
    // SAFETY: `sa` is a valid sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            fd,
            &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(rc, 0);
    // SAFETY: setns back to the namespace we came from.
    assert_eq!(
        unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) },
        0
    );
    fd
}

/// 256 flows from 10.99.0.1 to the VM's port 80.
fn frames(flags: u8) -> Vec<Vec<u8>> {
    (0..256u16)
        .map(|i| {
            let mut s = Spec::new(ip("10.99.0.1"), ip("10.200.0.2"), TCP);
            s.src_mac = [2, 0, 0, 0, 0, 1];
            s.dst_mac = [2, 0, 0, 0, 0, 2];
            s.tcp_flags = flags;
            s.sport = 20000 + i;
            s.build()
        })
        .collect()
}

/// Opens the 256 flows (one SYN each), so that later packets are tracked.
fn open_flows(fd: i32) {
    for f in frames(0x02) {
        // SAFETY: `f` is a live buffer of the given length.
        unsafe { libc::send(fd, f.as_ptr() as *const libc::c_void, f.len(), 0) };
    }
    std::thread::sleep(Duration::from_millis(100));
}

/// Sends TCP ACKs of the 256 flows for `secs`; returns packets delivered to the VM per
/// second.
fn blast(net: &Net, fd: i32, secs: f64) -> f64 {
    let frames = frames(0x10);
    let mut iov: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: a zeroed msghdr is valid; we point it at one iovec.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = v as *mut libc::iovec;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    let before = net.rx_vm();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs_f64(secs) {
        // SAFETY: `msgs` points at live iovecs over live frames.
        unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as u32, 0) };
    }
    let t = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    (net.rx_vm() - before) as f64 / t
}

fn nft(net: &Net, script: &str) {
    let path = std::env::temp_dir().join(format!("skfb-{}.nft", std::process::id()));
    std::fs::write(&path, script).unwrap();
    sh(&[
        "ip",
        "netns",
        "exec",
        &net.ns("h"),
        "nft",
        "-f",
        path.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(path);
}

fn nft_rules(n: usize, set: bool) -> String {
    let rs = rules(n);
    let mut out = String::from("flush ruleset\ntable netdev skfb {\n");
    if set {
        out += "  set allow { type ipv4_addr . inet_service; elements = {";
        let el: Vec<String> = rs
            .iter()
            .map(|r| format!("{} . {}", r.remotes[0].addr, r.ports.0))
            .collect();
        out += &el.join(", ");
        out += "} }\n";
    }
    out += "  chain c { type filter hook ingress device h0 priority 0; policy drop;\n";
    if set {
        out += "    ip saddr . tcp dport @allow accept\n";
    } else {
        for r in &rs {
            out += &format!(
                "    ip saddr {} tcp dport {} accept\n",
                r.remotes[0].addr, r.ports.0
            );
        }
    }
    out += "  }\n}\n";
    out
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("fw_bench needs root");
        std::process::exit(2);
    }
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/skiff-bench-{}", std::process::id()));
    println!("### Per-packet cost (BPF_PROG_TEST_RUN, median of 5 × 1,000,000 runs)\n");
    test_run_table(&dir);
    let _ = std::fs::remove_dir_all(&dir);

    const ROUNDS: usize = 5;
    // One core for the sender: on veth the whole receive path runs in its context, and
    // moving between cores only adds noise.
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(1, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    println!("\n### Packets per second through veth (TCP ACKs of 256 flows, allowed by the last of N rules; median of {ROUNDS} interleaved rounds of {secs} s)\n");
    let net = Net::up();
    let fd = raw_socket(&net);
    blast(&net, fd, 1.0); // warm-up
    let configs: [(&str, usize); 9] = [
        ("none", 0),
        ("skiff, NIC without groups (anti-spoofing only)", 0),
        ("skiff, every packet decided by the rules", 1),
        ("skiff, every packet decided by the rules", 10_000),
        ("skiff, packets of tracked connections", 10_000),
        (
            "skiff (classic TC), every packet decided by the rules",
            10_000,
        ),
        ("nftables, linear rules (netdev ingress)", 100),
        ("nftables, linear rules (netdev ingress)", 10_000),
        ("nftables, one set (netdev ingress)", 10_000),
    ];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for _ in 0..ROUNDS {
        for (i, (name, n)) in configs.iter().enumerate() {
            let pps = if name.starts_with("skiff") {
                // A fresh load per row; removing the pins detaches everything after.
                let home = std::fs::File::open("/proc/self/ns/net").unwrap();
                enter(&net.ns("h"));
                let mode = if name.contains("classic TC") {
                    AttachMode::Tc
                } else {
                    AttachMode::Tcx
                };
                let fw = Firewall::open_mode(&dir, Timeouts::default(), mode).expect("load");
                let ix = fw.attach("t0").unwrap();
                // SAFETY: back to where this thread came from.
                assert_eq!(
                    unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) },
                    0
                );
                let mut p = policy((*n).max(1), "10.200.0.2");
                p.filtered = *n > 0;
                fw.set_policy(ix, &p).unwrap();
                if name.contains("tracked") {
                    open_flows(fd);
                }
                let pps = blast(&net, fd, secs);
                drop(fw);
                let _ = std::fs::remove_dir_all(&dir);
                if mode == AttachMode::Tc {
                    // Classic filters belong to the tap, not to the pins.
                    sh(&[
                        "ip",
                        "netns",
                        "exec",
                        &net.ns("h"),
                        "tc",
                        "qdisc",
                        "del",
                        "dev",
                        "t0",
                        "clsact",
                    ]);
                }
                pps
            } else if name.starts_with("nftables") {
                nft(&net, &nft_rules(*n, name.contains("set")));
                let pps = blast(&net, fd, secs);
                nft(&net, "flush ruleset\n");
                pps
            } else {
                blast(&net, fd, secs)
            };
            results[i].push(pps);
        }
    }
    let base = median(results[0].clone());
    println!("| filter | rules | delivered packets/s (median) | of unfiltered | rounds |");
    println!("|---|---:|---:|---:|---|");
    for ((name, n), r) in configs.iter().zip(&results) {
        let m = median(r.clone());
        let rounds: Vec<String> = r.iter().map(|x| format!("{:.0}k", x / 1000.0)).collect();
        let n = if *n == 0 {
            "–".to_string()
        } else {
            n.to_string()
        };
        println!(
            "| {name} | {n} | {m:.0} | {:.0} % | {} |",
            m / base * 100.0,
            rounds.join(" ")
        );
    }
    // SAFETY: closing our own socket.
    unsafe { libc::close(fd) };
}
