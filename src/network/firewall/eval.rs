//! The semantics of `docs/security-groups.md`, written plainly: a linear scan over the
//! rules, a hash map for connection tracking. The test oracle for the BPF program,
//! which must decide every packet the same way (and count it on the same rule).

use std::collections::HashMap;

use super::maps::CtKey;
use super::packet::{self, IpPacket, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ICMPV6, TCP, UDP};
use super::{addr16, Counter, Dir, NicPolicy, Timeouts};

#[derive(Clone, Copy, Debug)]
struct Flow {
    seen: u64,
    rule: u64,
    version: u32,
    origin: Dir,
    lport: u16,
}

struct Nic {
    policy: NicPolicy,
    version: u32,
}

/// A host's NICs, their conntrack table and counters.
#[derive(Default)]
pub struct Evaluator {
    nics: HashMap<u32, Nic>,
    flows: HashMap<CtKey, Flow>,
    pub timeouts: Timeouts,
    pub counters: HashMap<u64, Counter>,
}

impl Evaluator {
    pub fn new(timeouts: Timeouts) -> Evaluator {
        Evaluator {
            timeouts,
            ..Default::default()
        }
    }

    /// Installs or replaces the policy of the NIC on `ifindex`. Like the driver, a
    /// policy equal to the current one changes nothing (not even the version).
    pub fn set_policy(&mut self, ifindex: u32, policy: NicPolicy) {
        if self.nics.get(&ifindex).is_some_and(|n| n.policy == policy) {
            return;
        }
        let version = self.nics.get(&ifindex).map_or(1, |n| n.version + 1);
        self.nics.insert(ifindex, Nic { policy, version });
    }

    pub fn remove(&mut self, ifindex: u32) {
        self.nics.remove(&ifindex);
    }

    /// Whether a frame the VM on `ifindex` sends (`Dir::Out`) or receives (`Dir::In`)
    /// passes, at time `now` (nanoseconds).
    pub fn packet(&mut self, ifindex: u32, dir: Dir, frame: &[u8], now: u64) -> bool {
        // A NIC with no policy (none written yet, or removed) passes nothing.
        let Some(nic) = self.nics.get(&ifindex) else {
            return false;
        };
        let policy = nic.policy.clone();
        let version = nic.version;
        match dir {
            Dir::Out => self.sent_by_vm(&policy, version, frame, now),
            Dir::In => self.sent_to_vm(&policy, version, frame, now),
        }
    }

    fn known(policy: &NicPolicy, family: u8, a: &[u8; 16]) -> bool {
        policy
            .addrs
            .iter()
            .any(|x| (if x.is_ipv4() { 4 } else { 6 }) == family && addr16(*x) == *a)
    }

    fn sent_by_vm(&mut self, policy: &NicPolicy, version: u32, frame: &[u8], now: u64) -> bool {
        let Some((proto, mac)) = packet::ethernet(frame) else {
            return false;
        };
        if mac != policy.mac || packet::is_vlan(proto) {
            return false;
        }
        if proto == ETH_P_ARP {
            let Some(a) = frame.get(14..42) else {
                return false;
            };
            if a[2..6] != [0x08, 0x00, 6, 4] || a[8..14] != policy.mac {
                return false;
            }
            if a[6] != 0 || (a[7] != 1 && a[7] != 2) {
                return false;
            }
            let mut spa = [0u8; 16];
            spa[..4].copy_from_slice(&a[14..18]);
            return spa == [0; 16] || Self::known(policy, 4, &spa);
        }
        if proto != ETH_P_IP && proto != ETH_P_IPV6 {
            return false;
        }
        let Some(p) = packet::parse_ip(frame, proto) else {
            return false;
        };
        let udp = |s: u16, d: Option<u16>| {
            p.proto == UDP && p.l4 && p.sport == s && d.is_none_or(|d| p.dport == d)
        };
        if p.family == 4 {
            if udp(67, None) {
                return false;
            }
            if !Self::known(policy, 4, &p.src) {
                return p.src == [0; 16] && udp(68, Some(67));
            }
        } else {
            if udp(547, None) {
                return false;
            }
            if p.proto == ICMPV6 && p.l4 && (p.icmp_type == 134 || p.icmp_type == 137) {
                return false;
            }
            if !nd_options_ok(frame, &p, &policy.mac) {
                return false;
            }
            if let Some(t) = p.nd_target {
                if !Self::known(policy, 6, &t) {
                    return false;
                }
            }
            if !Self::known(policy, 6, &p.src) {
                let local = (p.src[0] == 0xfe && p.src[1] & 0xc0 == 0x80) || p.src == [0; 16];
                return local && (nd_out(&p) || udp(546, Some(547)));
            }
            if nd_out(&p) {
                return true;
            }
        }
        if !policy.filtered {
            return true;
        }
        if (p.family == 4 && udp(68, Some(67))) || (p.family == 6 && udp(546, Some(547))) {
            return true;
        }
        self.filter(policy, version, &p, Dir::Out, frame, now)
    }

    fn sent_to_vm(&mut self, policy: &NicPolicy, version: u32, frame: &[u8], now: u64) -> bool {
        let Some((proto, _)) = packet::ethernet(frame) else {
            return false;
        };
        let dst: [u8; 6] = frame[..6].try_into().unwrap_or_default();
        if packet::is_vlan(proto) || !dst_mac_ok(&dst, &policy.mac) {
            return false;
        }
        if !policy.filtered {
            return true;
        }
        if proto == ETH_P_ARP {
            return true;
        }
        if proto != ETH_P_IP && proto != ETH_P_IPV6 {
            return false;
        }
        let Some(p) = packet::parse_ip(frame, proto) else {
            return false;
        };
        let udp = |s: u16, d: u16| p.proto == UDP && p.l4 && p.sport == s && p.dport == d;
        if (p.family == 4 && udp(67, 68)) || (p.family == 6 && udp(547, 546)) || nd_in(&p) {
            return true;
        }
        self.filter(policy, version, &p, Dir::In, frame, now)
    }

    fn timeout_ns(&self, proto: u8) -> u64 {
        let s = match proto {
            TCP => self.timeouts.tcp_secs,
            UDP => self.timeouts.udp_secs,
            packet::ICMP | ICMPV6 => self.timeouts.icmp_secs,
            _ => self.timeouts.other_secs,
        };
        s.saturating_mul(1_000_000_000)
    }

    fn filter(
        &mut self,
        policy: &NicPolicy,
        version: u32,
        p: &IpPacket,
        dir: Dir,
        frame: &[u8],
        now: u64,
    ) -> bool {
        let len = frame.len() as u64;
        if p.is_icmp() && p.l4 && p.icmp_error() {
            if let Some(rule) = self.related(policy, version, p, dir, frame, now) {
                self.count(rule, len);
                return true;
            }
        }
        let (vm, remote) = match dir {
            Dir::Out => (p.src, p.dst),
            Dir::In => (p.dst, p.src),
        };
        let lport = lookup_port(p);
        let echo = p.is_icmp() && (p.echo(true) || p.echo(false));
        let tracked = !p.frag && (!p.is_icmp() || echo);
        let mut key = CtKey::default();
        if tracked {
            key.nic = policy.nic;
            key.family = p.family;
            key.proto = p.proto;
            if echo {
                key.vm_port = p.sport;
            } else if p.proto == TCP || p.proto == UDP {
                (key.vm_port, key.remote_port) = match dir {
                    Dir::Out => (p.sport, p.dport),
                    Dir::In => (p.dport, p.sport),
                };
            }
            key.vm_addr = vm;
            key.remote_addr = remote;
            // An echo request sent the other way, or a reply the same way, with the
            // same id is not part of this flow: the rules decide it.
            let same_flow = |f: &Flow| !echo || (p.echo(true) == (f.origin == dir));
            if let Some(mut f) = self.flows.get(&key).copied().filter(same_flow) {
                let mut alive = now.wrapping_sub(f.seen) <= self.timeout_ns(p.proto);
                if alive && f.version != version {
                    match decide(policy, f.origin, p.family, &remote, p.proto, f.lport, false) {
                        Some(rule) => {
                            f.rule = rule;
                            f.version = version;
                        }
                        None => alive = false,
                    }
                }
                if alive {
                    f.seen = now;
                    self.flows.insert(key, f);
                    self.count(f.rule, len);
                    return true;
                }
                self.flows.remove(&key);
            }
        }
        let Some(rule) = decide(policy, dir, p.family, &remote, p.proto, lport, p.frag) else {
            return false;
        };
        let opens = tracked && (p.proto != TCP || p.tcp_syn) && (!echo || p.echo(true));
        if opens {
            self.flows.insert(
                key,
                Flow {
                    seen: now,
                    rule,
                    version,
                    origin: dir,
                    lport,
                },
            );
        }
        self.count(rule, len);
        true
    }

    /// An ICMP error about a tracked connection admitted under the current rules: its
    /// embedded packet is one of the connection's, sent the other way.
    fn related(
        &self,
        policy: &NicPolicy,
        version: u32,
        p: &IpPacket,
        dir: Dir,
        frame: &[u8],
        now: u64,
    ) -> Option<u64> {
        let mut off = p.l4_off + 8;
        let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
        let proto;
        if p.family == 4 {
            let h = frame.get(off..off + 20)?;
            let frag = (u16::from(h[6] & 0x1f) << 8) | u16::from(h[7]);
            if h[0] >> 4 != 4 || h[0] & 0xf < 5 || frag != 0 {
                return None;
            }
            proto = h[9];
            src[..4].copy_from_slice(&h[12..16]);
            dst[..4].copy_from_slice(&h[16..20]);
            off += usize::from(h[0] & 0xf) * 4;
        } else {
            let h = frame.get(off..off + 40)?;
            if h[0] >> 4 != 6 {
                return None;
            }
            proto = h[6];
            src.copy_from_slice(&h[8..24]);
            dst.copy_from_slice(&h[24..40]);
            off += 40;
        }
        let mut key = CtKey {
            nic: policy.nic,
            family: p.family,
            proto,
            ..Default::default()
        };
        let icmp = if p.family == 4 { packet::ICMP } else { ICMPV6 };
        if proto == TCP || proto == UDP {
            let l = frame.get(off..off + 4)?;
            let (sp, dp) = (
                u16::from_be_bytes([l[0], l[1]]),
                u16::from_be_bytes([l[2], l[3]]),
            );
            // Arriving at the VM, the error is about a packet the VM sent.
            (key.vm_port, key.remote_port) = match dir {
                Dir::In => (sp, dp),
                Dir::Out => (dp, sp),
            };
        } else if proto == icmp {
            let l = frame.get(off..off + 8)?;
            if l[0] != if p.family == 4 { 8 } else { 128 } {
                return None;
            }
            key.vm_port = u16::from_be_bytes([l[4], l[5]]);
        }
        (key.vm_addr, key.remote_addr) = match dir {
            Dir::In => (src, dst),
            Dir::Out => (dst, src),
        };
        let f = self.flows.get(&key)?;
        (f.version == version && now.wrapping_sub(f.seen) <= self.timeout_ns(proto))
            .then_some(f.rule)
    }

    fn count(&mut self, rule: u64, len: u64) {
        if rule != 0 {
            let c = self.counters.entry(rule).or_default();
            c.packets += 1;
            c.bytes += len;
        }
    }
}

fn nd_in(p: &IpPacket) -> bool {
    p.family == 6
        && p.proto == ICMPV6
        && p.l4
        && ((130..=137).contains(&p.icmp_type) || p.icmp_type == 143)
}

fn nd_out(p: &IpPacket) -> bool {
    nd_in(p) && p.icmp_type != 134 && p.icmp_type != 137
}

fn lookup_port(p: &IpPacket) -> u16 {
    if p.frag || !p.l4 {
        0
    } else if p.is_icmp() {
        u16::from(p.icmp_type)
    } else if p.proto == TCP || p.proto == UDP {
        p.dport
    } else {
        0
    }
}

/// The rules' verdict for a new flow: the id of the rule that allows it (0 for the open
/// egress default), or None. The first rule of the packet's own protocol wins, then the
/// first rule for every protocol; a fragment is matched by the latter only.
/// Unicast to the NIC's own MAC, broadcast, IPv6 multicast (33:33) and IPv4 multicast
/// (01:00:5e, lower half): what a VM receives (as `dst_mac_ok` in the C).
pub fn dst_mac_ok(d: &[u8; 6], own: &[u8; 6]) -> bool {
    d == own
        || d == &[0xff; 6]
        || (d[0] == 0x33 && d[1] == 0x33)
        || (d[0] == 0x01 && d[1] == 0x00 && d[2] == 0x5e && d[3] & 0x80 == 0)
}

/// Neighbour discovery a VM sends names only its own MAC in link-layer address
/// options (as `nd_options_ok` in the C: at most four options, none of length zero).
pub fn nd_options_ok(frame: &[u8], p: &IpPacket, own: &[u8; 6]) -> bool {
    if p.family != 6 || p.proto != ICMPV6 || !p.l4 || p.frag {
        return true;
    }
    let mut off = match p.icmp_type {
        133 => p.l4_off + 8,
        135 | 136 => p.l4_off + 24,
        _ => return true,
    };
    let len = frame.len();
    for _ in 0..4 {
        if off + 2 > len {
            return true;
        }
        let (t, l) = (frame[off], frame[off + 1]);
        if l == 0 {
            return false;
        }
        if (t == 1 || t == 2) && (l != 1 || off + 8 > len || frame[off + 2..off + 8] != own[..]) {
            return false;
        }
        off += usize::from(l) * 8;
    }
    off + 2 > len
}

pub fn decide(
    policy: &NicPolicy,
    dir: Dir,
    family: u8,
    remote: &[u8; 16],
    proto: u8,
    lport: u16,
    frag: bool,
) -> Option<u64> {
    if dir == Dir::Out && !policy.egress_restricted {
        return Some(0);
    }
    let addr = if family == 4 {
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(
            remote[0], remote[1], remote[2], remote[3],
        ))
    } else {
        std::net::IpAddr::V6((*remote).into())
    };
    let matching = || {
        policy
            .rules
            .iter()
            .filter(move |r| r.dir == dir && r.remotes.iter().any(|p| p.contains(addr)))
    };
    if !frag {
        if let Some(r) =
            matching().find(|r| r.proto == Some(proto) && (r.ports.0..=r.ports.1).contains(&lport))
        {
            return Some(r.id);
        }
    }
    matching().find(|r| r.proto.is_none()).map(|r| r.id)
}
