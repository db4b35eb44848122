//! Differential test of the eBPF data plane: on thousands of generated rule sets and
//! packets, the loaded programs (through BPF_PROG_TEST_RUN) and the Rust evaluator
//! decide identically and count the same packets on the same rules. Needs root.

use std::net::IpAddr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use skiff::network::firewall::eval::Evaluator;
use skiff::network::firewall::packet::{self, Spec, ICMP, ICMPV6, TCP, UDP};
use skiff::network::firewall::{Dir, Firewall, FwRule, NicPolicy, Prefix, Timeouts};

pub fn bpf_dir(tag: &str) -> Option<std::path::PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "eBPF tests need root; CI runs as root"
        );
        eprintln!("\n!!!!!!!! SKIP: not root: the eBPF firewall tests need root !!!!!!!!\n");
        return None;
    }
    Some(format!("/sys/fs/bpf/skiff-test-{tag}-{}", std::process::id()).into())
}

const VM_MAC: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 0x01];
const TIMEOUTS: Timeouts = Timeouts {
    tcp_secs: 3600,
    udp_secs: 3600,
    icmp_secs: 3600,
    other_secs: 3600,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Addresses the generated rules and packets draw from, so that they meet often.
const ADDRS: &[&str] = &[
    "10.1.2.3",
    "10.1.2.4",
    "10.1.9.9",
    "10.200.0.1",
    "192.168.1.1",
    "8.8.8.8",
    "0.0.0.0",
    "fd00::1",
    "fd00::2",
    "fd00:1::5",
    "2001:db8::1",
    "fe80::1",
    "::",
];
const VM_ADDRS: &[&str] = &["10.1.2.3", "fd00::1"];
const PORTS: &[u16] = &[
    0, 22, 53, 67, 68, 79, 80, 81, 443, 546, 547, 8000, 8080, 9000, 65535,
];

fn random_prefix(rng: &mut StdRng) -> Prefix {
    let a = ip(ADDRS[rng.gen_range(0..ADDRS.len())]);
    let max = if a.is_ipv4() { 32 } else { 128 };
    let len = match rng.gen_range(0..4) {
        0 => 0,
        1 => max,
        _ => rng.gen_range(0..=max),
    };
    Prefix::new(a, len).unwrap()
}

fn random_rule(rng: &mut StdRng, id: u64) -> FwRule {
    let proto = match rng.gen_range(0..9) {
        0 => None,
        1 | 2 => Some(TCP),
        3 | 4 => Some(UDP),
        5 => Some(ICMP),
        6 => Some(ICMPV6),
        7 => Some(50),
        _ => Some(47),
    };
    let ports = match proto {
        Some(TCP) | Some(UDP) if rng.gen_bool(0.8) => {
            let a = PORTS[rng.gen_range(0..PORTS.len())].max(1);
            let b = PORTS[rng.gen_range(0..PORTS.len())].max(1);
            if rng.gen_bool(0.5) {
                (a, a)
            } else {
                (a.min(b), a.max(b))
            }
        }
        Some(ICMP) | Some(ICMPV6) if rng.gen_bool(0.5) => {
            let t = [0u16, 8, 3, 128, 129, 11][rng.gen_range(0..6)];
            (t, t)
        }
        _ => (0, 65535),
    };
    let n = rng.gen_range(0..3);
    let remotes = (0..n).map(|_| random_prefix(rng)).collect();
    FwRule {
        id,
        dir: if rng.gen_bool(0.6) { Dir::In } else { Dir::Out },
        proto,
        ports,
        remotes,
    }
}

fn random_policy(rng: &mut StdRng, next_id: &mut u64) -> NicPolicy {
    let n = rng.gen_range(0..12);
    let rules: Vec<FwRule> = (0..n)
        .map(|_| {
            *next_id += 1;
            random_rule(rng, *next_id)
        })
        .collect();
    NicPolicy {
        nic: 7,
        mac: VM_MAC,
        addrs: VM_ADDRS.iter().map(|a| ip(a)).collect(),
        filtered: rng.gen_bool(0.9),
        egress_restricted: rules.iter().any(|r| r.dir == Dir::Out),
        rules,
    }
}

/// A frame the VM sends (`Dir::Out`) or receives, mostly well-formed, sometimes not.
fn random_frame(rng: &mut StdRng, dir: Dir) -> Vec<u8> {
    let family6 = rng.gen_bool(0.35);
    let pick = |rng: &mut StdRng, v6: bool| loop {
        let a = ip(ADDRS[rng.gen_range(0..ADDRS.len())]);
        if a.is_ipv6() == v6 {
            return a;
        }
    };
    let vm = if rng.gen_bool(0.85) {
        ip(VM_ADDRS[usize::from(family6)])
    } else {
        pick(rng, family6)
    };
    let remote = pick(rng, family6);
    if !family6 && rng.gen_bool(0.05) {
        let spa = if rng.gen_bool(0.7) {
            [10, 1, 2, 3]
        } else {
            [10, 1, 2, 4]
        };
        let mut f = packet::arp(
            if rng.gen_bool(0.9) {
                VM_MAC
            } else {
                [2, 0, 0, 0, 0, 9]
            },
            spa,
            [10, 1, 2, 1],
        );
        if rng.gen_bool(0.1) {
            f.truncate(30);
        }
        return f;
    }
    let proto = match rng.gen_range(0..10) {
        0..=3 => TCP,
        4..=6 => UDP,
        7 => {
            if family6 {
                ICMPV6
            } else {
                ICMP
            }
        }
        8 => 50,
        _ => [47u8, 51, 132, 255][rng.gen_range(0..4)],
    };
    let (src, dst) = match dir {
        Dir::Out => (vm, remote),
        Dir::In => (remote, vm),
    };
    let mut s = Spec::new(src, dst, proto);
    if dir == Dir::Out && rng.gen_bool(0.05) {
        s.src_mac = [2, 0, 0, 0, 0, 9];
    } else if dir == Dir::Out {
        s.src_mac = VM_MAC;
    }
    s.sport = PORTS[rng.gen_range(0..PORTS.len())];
    s.dport = PORTS[rng.gen_range(0..PORTS.len())];
    s.tcp_flags = [0x02, 0x12, 0x10, 0x11, 0x04][rng.gen_range(0..5)];
    s.icmp_type = if family6 {
        [128, 129, 1, 133, 134, 135, 136, 143][rng.gen_range(0..8)]
    } else {
        [8, 0, 3, 11][rng.gen_range(0..4)]
    };
    if rng.gen_bool(0.05) {
        s.frag_offset = rng.gen_range(1..100);
    }
    s.payload = rng.gen_range(0..64);
    if dir == Dir::In && rng.gen_bool(0.25) {
        // What the bridge may flood or send besides the VM's own unicast.
        s.dst_mac = [
            [0xff; 6],
            [0x33, 0x33, 0, 0, 0, 1],
            [0x01, 0x00, 0x5e, 0, 0, 0xfb],
            [0x01, 0x00, 0x5e, 0x80, 0, 1],
            [0x02, 0, 0, 0, 0x99, 1],
            [0x01, 0x80, 0xc2, 0, 0, 0x0e],
        ][rng.gen_range(0..6)];
    } else if dir == Dir::In {
        s.dst_mac = VM_MAC;
    }
    let mut f = s.build();
    if family6
        && proto == ICMPV6
        && dir == Dir::Out
        && s.frag_offset == 0
        && matches!(s.icmp_type, 133 | 135 | 136)
        && rng.gen_bool(0.7)
    {
        // Neighbour discovery with link-layer address options, right or wrong.
        let fixed = 14 + 40 + if s.icmp_type == 133 { 8 } else { 24 };
        f.resize(fixed, 0);
        if s.icmp_type != 133 {
            f[fixed - 16..fixed].copy_from_slice(&skiff::network::firewall::addr16(vm));
        }
        let mac = |rng: &mut StdRng| {
            if rng.gen_bool(0.7) {
                VM_MAC
            } else {
                [2, 0, 0, 0, 0, 9]
            }
        };
        for _ in 0..rng.gen_range(0..6) {
            match rng.gen_range(0..7) {
                0..=2 => {
                    f.extend_from_slice(&[rng.gen_range(1..3), 1]);
                    f.extend_from_slice(&mac(rng));
                }
                3 => f.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]),
                4 => f.extend_from_slice(&[1, 0]),
                5 => {
                    f.extend_from_slice(&[2, 2]);
                    f.extend_from_slice(&mac(rng));
                    f.extend_from_slice(&[0; 8]);
                }
                _ => f.extend_from_slice(&[1, 1, 0x52, 0x54]),
            }
        }
        let plen = (f.len() - 54) as u16;
        f[18..20].copy_from_slice(&plen.to_be_bytes());
    }
    if rng.gen_bool(0.03) {
        // 802.1Q or 802.1ad: a tag where the type was.
        let tag: u16 = if rng.gen_bool(0.5) { 0x8100 } else { 0x88a8 };
        f[12..14].copy_from_slice(&tag.to_be_bytes());
    }
    if rng.gen_bool(0.03) {
        // BPF_PROG_TEST_RUN refuses frames whose IP header is cut: cut what follows.
        let min = if family6 { 54 } else { 34 };
        if f.len() > min {
            let n = rng.gen_range(min..f.len());
            f.truncate(n);
        }
    }
    f
}

#[test]
fn bpf_program_and_evaluator_decide_identically() {
    let Some(dir) = bpf_dir("diff") else { return };
    let _cleanup = RemoveOnDrop(dir.clone());
    let fw = Firewall::open(&dir, TIMEOUTS).expect("load the firewall");
    let seed: u64 = std::env::var("SKIFF_FW_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (SKIFF_FW_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next_id = 0u64;
    let (mut packets, mut passed) = (0u64, 0u64);
    for set in 0..2000 {
        let mut ev = Evaluator::new(TIMEOUTS);
        fw.clear_conntrack().unwrap();
        let mut policy = random_policy(&mut rng, &mut next_id);
        fw.set_policy(1, &policy).unwrap();
        ev.set_policy(1, policy.clone());
        let mut sent: Vec<(Dir, Vec<u8>)> = Vec::new();
        for n in 0..60 {
            if n == 30 {
                // Change the rules mid-stream: keep some, add some; flows are re-checked.
                policy.rules.retain(|_| rng.gen_bool(0.7));
                for _ in 0..rng.gen_range(0..4) {
                    next_id += 1;
                    let r = random_rule(&mut rng, next_id);
                    policy.rules.push(r);
                }
                policy.egress_restricted = policy.rules.iter().any(|r| r.dir == Dir::Out);
                fw.set_policy(1, &policy).unwrap();
                ev.set_policy(1, policy.clone());
            }
            // Often answer an earlier packet, so that tracked flows are exercised.
            let answer = match sent.len() {
                0 => None,
                n if rng.gen_bool(0.4) => {
                    let (pd, f) = &sent[rng.gen_range(n.saturating_sub(5)..n)];
                    let answer = if rng.gen_bool(0.25) {
                        icmp_error_about(&mut rng, f)
                    } else {
                        reply(f)
                    };
                    answer.map(|r| (opposite(*pd), r))
                }
                _ => None,
            };
            let (d, frame) = answer.unwrap_or_else(|| {
                let d = if rng.gen_bool(0.5) { Dir::In } else { Dir::Out };
                (d, random_frame(&mut rng, d))
            });
            let (bpf, _) = fw.test_run(d, &frame, 1).unwrap();
            let want = ev.packet(1, d, &frame, 0);
            assert_eq!(
                bpf, want,
                "seed {seed} set {set} packet {n} dir {d:?}: bpf {bpf} evaluator {want}\npolicy {policy:#?}\nframe {frame:02x?}"
            );
            packets += 1;
            passed += u64::from(bpf);
            sent.push((d, frame));
        }
        let counters = fw.counters().unwrap();
        for r in &policy.rules {
            let got = counters.get(&r.id).copied().unwrap_or_default();
            let want = ev.counters.get(&r.id).copied().unwrap_or_default();
            assert_eq!(
                got, want,
                "seed {seed} set {set}: counters of rule {}",
                r.id
            );
        }
    }
    eprintln!("{packets} packets, {passed} passed");
    assert!(
        passed > packets / 5 && passed < packets * 4 / 5,
        "a test that exercises both verdicts"
    );
}

/// Removes a test's bpffs directory (its pinned maps and links) however the test ends.
pub struct RemoveOnDrop(pub std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn opposite(d: Dir) -> Dir {
    match d {
        Dir::In => Dir::Out,
        Dir::Out => Dir::In,
    }
}

/// An ICMP error about `f`, from its destination (or a router on the way) to its
/// source, carrying f's IP header and the first 8 bytes after it.
fn icmp_error_about(rng: &mut StdRng, f: &[u8]) -> Option<Vec<u8>> {
    let (proto, _) = packet::ethernet(f)?;
    let (src, dst, inner) = if proto == packet::ETH_P_IP && f.len() >= 34 {
        let ihl = usize::from(f[14] & 0xf) * 4;
        let s: [u8; 4] = f[26..30].try_into().ok()?;
        let d: [u8; 4] = f[30..34].try_into().ok()?;
        (
            IpAddr::from(s),
            IpAddr::from(d),
            &f[14..f.len().min(14 + ihl + 8)],
        )
    } else if proto == packet::ETH_P_IPV6 && f.len() >= 54 {
        let s: [u8; 16] = f[22..38].try_into().ok()?;
        let d: [u8; 16] = f[38..54].try_into().ok()?;
        (IpAddr::from(s), IpAddr::from(d), &f[14..f.len().min(62)])
    } else {
        return None;
    };
    let from = if rng.gen_bool(0.7) {
        dst
    } else if src.is_ipv4() {
        ip("192.168.1.1")
    } else {
        ip("2001:db8::1")
    };
    let mut s = Spec::new(from, src, if src.is_ipv4() { ICMP } else { ICMPV6 });
    s.src_mac = f[..6].try_into().ok()?;
    s.dst_mac = f[6..12].try_into().ok()?;
    s.icmp_type = if src.is_ipv4() {
        [3, 11, 12][rng.gen_range(0..3)]
    } else {
        [1, 2, 3, 4][rng.gen_range(0..4)]
    };
    let mut out = s.build();
    out.extend_from_slice(inner);
    Some(out)
}

/// The answer to `f`: addresses, ports and MACs swapped, echo requests answered.
fn reply(f: &[u8]) -> Option<Vec<u8>> {
    let mut r = f.to_vec();
    r[..6].copy_from_slice(&f[6..12]);
    r[6..12].copy_from_slice(&f[..6]);
    let (proto, _) = packet::ethernet(f)?;
    let (l4, proto_byte) = if proto == packet::ETH_P_IP && f.len() >= 34 {
        let ihl = usize::from(f[14] & 0xf) * 4;
        r[26..30].copy_from_slice(&f[30..34]);
        r[30..34].copy_from_slice(&f[26..30]);
        (14 + ihl, f[23])
    } else if proto == packet::ETH_P_IPV6 && f.len() >= 54 {
        r[22..38].copy_from_slice(&f[38..54]);
        r[38..54].copy_from_slice(&f[22..38]);
        (54, f[20])
    } else {
        return None;
    };
    if f.len() >= l4 + 4 && (proto_byte == TCP || proto_byte == UDP) {
        r[l4..l4 + 2].copy_from_slice(&f[l4 + 2..l4 + 4]);
        r[l4 + 2..l4 + 4].copy_from_slice(&f[l4..l4 + 2]);
        if proto_byte == TCP && f.len() >= l4 + 14 {
            r[l4 + 13] = if f[l4 + 13] == 0x02 { 0x12 } else { 0x10 };
        }
    } else if f.len() > l4 && (proto_byte == ICMP || proto_byte == ICMPV6) {
        r[l4] = match f[l4] {
            8 => 0,
            128 => 129,
            t => t,
        };
    }
    Some(r)
}

/// A second process (here: a second load) takes over the pinned maps: the rules stay
/// in force in between, and it rewrites them without losing or doubling anything.
#[test]
fn a_restart_takes_over_the_pinned_maps() {
    let Some(dir) = bpf_dir("restart") else {
        return;
    };
    let _cleanup = RemoveOnDrop(dir.clone());
    let policy = NicPolicy {
        nic: 3,
        mac: VM_MAC,
        addrs: vec![ip("10.1.2.3")],
        filtered: true,
        egress_restricted: false,
        rules: vec![FwRule {
            id: 77,
            dir: Dir::In,
            proto: Some(TCP),
            ports: (80, 80),
            remotes: vec![Prefix::new(ip("10.0.0.0"), 8).unwrap()],
        }],
    };
    let syn = |port: u16| {
        let mut s = Spec::new(ip("10.9.9.9"), ip("10.1.2.3"), TCP);
        s.dst_mac = VM_MAC;
        s.dport = port;
        s.sport = 40000 + port;
        s.build()
    };
    let fw = Firewall::open(&dir, TIMEOUTS).unwrap();
    fw.set_policy(1, &policy).unwrap();
    assert!(fw.test_run(Dir::In, &syn(80), 1).unwrap().0);
    assert!(!fw.test_run(Dir::In, &syn(81), 1).unwrap().0);
    drop(fw);

    let fw = Firewall::open(&dir, TIMEOUTS).unwrap();
    assert!(
        fw.test_run(Dir::In, &syn(80), 1).unwrap().0,
        "pinned rules before any sync"
    );
    fw.set_policy(1, &policy).unwrap();
    assert!(
        fw.test_run(Dir::In, &syn(80), 1).unwrap().0,
        "rewritten after the restart"
    );
    assert!(!fw.test_run(Dir::In, &syn(81), 1).unwrap().0);
    let mut p2 = policy.clone();
    p2.rules[0].ports = (81, 81);
    fw.set_policy(1, &p2).unwrap();
    assert!(
        !fw.test_run(Dir::In, &syn(80), 1).unwrap().0,
        "the old slot is gone"
    );
    assert!(fw.test_run(Dir::In, &syn(81), 1).unwrap().0);
    assert!(
        fw.counters().unwrap()[&77].packets >= 3,
        "counters survive the restart"
    );
}
