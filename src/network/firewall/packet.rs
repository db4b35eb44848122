//! Packets as the data plane sees them: a parser that mirrors `parse_ip` in
//! `ebpf/firewall.c` (same bounds, same extension-header limit), and a builder of
//! synthetic frames for BPF_PROG_TEST_RUN, tests and benchmarks (IPv4 header checksum
//! set; L4 checksums left zero).

use std::net::IpAddr;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;

/// An IP packet's fields that rules and conntrack use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpPacket {
    pub family: u8,
    pub proto: u8,
    /// A non-first fragment: no L4 header.
    pub frag: bool,
    /// The L4 header was parsed (TCP, UDP, ICMP, ICMPv6).
    pub l4: bool,
    pub icmp_type: u8,
    /// SYN without ACK.
    pub tcp_syn: bool,
    /// Ports; for an ICMP echo both are the echo id.
    pub sport: u16,
    pub dport: u16,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// The target of a neighbour advertisement.
    pub nd_target: Option<[u8; 16]>,
    /// Where the L4 header starts in the frame.
    pub l4_off: usize,
}

impl IpPacket {
    pub fn is_icmp(&self) -> bool {
        (self.family == 4 && self.proto == ICMP) || (self.family == 6 && self.proto == ICMPV6)
    }

    /// Destination unreachable, time exceeded, parameter problem (and ICMPv6 packet too
    /// big): errors that carry the packet they are about.
    pub fn icmp_error(&self) -> bool {
        if self.family == 4 {
            matches!(self.icmp_type, 3 | 11 | 12)
        } else {
            (1..=4).contains(&self.icmp_type)
        }
    }

    pub fn echo(&self, request: bool) -> bool {
        match (self.family, request) {
            (4, true) => self.icmp_type == 8,
            (4, false) => self.icmp_type == 0,
            (_, true) => self.icmp_type == 128,
            (_, false) => self.icmp_type == 129,
        }
    }
}

fn get(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

/// The EtherType and source MAC, or None when the frame is shorter than its header.
/// 802.1Q or 802.1ad: a tagged frame.
pub fn is_vlan(ethertype: u16) -> bool {
    ethertype == 0x8100 || ethertype == 0x88a8
}

pub fn ethernet(b: &[u8]) -> Option<(u16, [u8; 6])> {
    let h = get(b, 0, 14)?;
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&h[6..12]);
    Some((u16::from_be_bytes([h[12], h[13]]), mac))
}

fn parse_l4(b: &[u8], off: usize, p: &mut IpPacket) -> Option<()> {
    if p.frag {
        return Some(());
    }
    p.l4_off = off;
    if p.proto == TCP {
        let h = get(b, off, 14)?;
        p.sport = u16::from_be_bytes([h[0], h[1]]);
        p.dport = u16::from_be_bytes([h[2], h[3]]);
        p.tcp_syn = h[13] & 0x12 == 0x02;
        p.l4 = true;
    } else if p.proto == UDP {
        let h = get(b, off, 4)?;
        p.sport = u16::from_be_bytes([h[0], h[1]]);
        p.dport = u16::from_be_bytes([h[2], h[3]]);
        p.l4 = true;
    } else if p.is_icmp() {
        let h = get(b, off, 8)?;
        p.icmp_type = h[0];
        if p.echo(true) || p.echo(false) {
            p.sport = u16::from_be_bytes([h[4], h[5]]);
            p.dport = p.sport;
        }
        if p.family == 6 && p.icmp_type == 136 {
            let mut t = [0u8; 16];
            t.copy_from_slice(get(b, off + 8, 16)?);
            p.nd_target = Some(t);
        }
        p.l4 = true;
    }
    Some(())
}

/// Parses the IP packet after the Ethernet header; None when malformed or truncated.
pub fn parse_ip(b: &[u8], eth_proto: u16) -> Option<IpPacket> {
    let off = 14;
    let mut p = IpPacket::default();
    if eth_proto == ETH_P_IP {
        let h = get(b, off, 20)?;
        if h[0] >> 4 != 4 || h[0] & 0xf < 5 {
            return None;
        }
        p.family = 4;
        p.proto = h[9];
        p.frag = (u16::from(h[6] & 0x1f) << 8 | u16::from(h[7])) != 0;
        p.src[..4].copy_from_slice(&h[12..16]);
        p.dst[..4].copy_from_slice(&h[16..20]);
        let l4 = off + usize::from(h[0] & 0xf) * 4;
        parse_l4(b, l4, &mut p)?;
        return Some(p);
    }
    let h = get(b, off, 40)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    p.family = 6;
    p.src.copy_from_slice(&h[8..24]);
    p.dst.copy_from_slice(&h[24..40]);
    let mut next = h[6];
    let mut off = off + 40;
    for _ in 0..4 {
        if !matches!(next, 0 | 43 | 60 | 44) {
            break;
        }
        let e = get(b, off, 4)?;
        if next == 44 {
            if u16::from_be_bytes([e[2], e[3]]) >> 3 != 0 {
                p.proto = e[0];
                p.frag = true;
                return Some(p);
            }
            off += 8;
        } else {
            off += (usize::from(e[1]) + 1) * 8;
        }
        next = e[0];
    }
    p.proto = next;
    parse_l4(b, off, &mut p)?;
    Some(p)
}

/// A synthetic frame.
#[derive(Clone, Debug)]
pub struct Spec {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// ICMP type (the echo id is `sport`).
    pub icmp_type: u8,
    /// TCP flags byte.
    pub tcp_flags: u8,
    /// Fragment offset in 8-byte units; non-zero makes a non-first fragment.
    pub frag_offset: u16,
    pub payload: usize,
}

impl Spec {
    pub fn new(src: IpAddr, dst: IpAddr, proto: u8) -> Spec {
        Spec {
            src_mac: [0x52, 0x54, 0, 0, 0, 1],
            dst_mac: [0x52, 0x54, 0, 0, 0, 2],
            src,
            dst,
            proto,
            sport: 40000,
            dport: 80,
            icmp_type: 8,
            tcp_flags: 0x02,
            frag_offset: 0,
            payload: 0,
        }
    }

    /// The frame's bytes. Checksums are left zero: the classifier does not read them.
    pub fn build(&self) -> Vec<u8> {
        let mut l4 = Vec::new();
        if self.frag_offset == 0 {
            match self.proto {
                TCP => {
                    l4.extend_from_slice(&self.sport.to_be_bytes());
                    l4.extend_from_slice(&self.dport.to_be_bytes());
                    l4.extend_from_slice(&[0; 8]);
                    l4.extend_from_slice(&[0x50, self.tcp_flags, 0xff, 0xff, 0, 0, 0, 0]);
                }
                UDP => {
                    l4.extend_from_slice(&self.sport.to_be_bytes());
                    l4.extend_from_slice(&self.dport.to_be_bytes());
                    l4.extend_from_slice(&((8 + self.payload) as u16).to_be_bytes());
                    l4.extend_from_slice(&[0, 0]);
                }
                ICMP | ICMPV6 => {
                    l4.extend_from_slice(&[self.icmp_type, 0, 0, 0]);
                    l4.extend_from_slice(&self.sport.to_be_bytes());
                    l4.extend_from_slice(&[0, 1]);
                    if self.proto == ICMPV6 && self.icmp_type == 136 {
                        l4.extend_from_slice(&super::addr16(self.src));
                    }
                }
                _ => l4.extend_from_slice(&[0; 8]),
            }
        }
        l4.extend(std::iter::repeat_n(0xab, self.payload));
        let mut f = Vec::with_capacity(14 + 48 + l4.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&ETH_P_IP.to_be_bytes());
                let total = (20 + l4.len()) as u16;
                f.extend_from_slice(&[0x45, 0]);
                f.extend_from_slice(&total.to_be_bytes());
                f.extend_from_slice(&[0, 1]);
                f.extend_from_slice(&(self.frag_offset & 0x1fff).to_be_bytes());
                f.extend_from_slice(&[64, self.proto, 0, 0]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                // Routers check it (the classifier does not): fill it in.
                let sum = ipv4_checksum(&f[14..34]);
                f[24..26].copy_from_slice(&sum.to_be_bytes());
            }
            (s, d) => {
                let v6 = |a: IpAddr| match a {
                    IpAddr::V6(v) => v.octets(),
                    IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
                };
                f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
                let frag = self.frag_offset != 0;
                let plen = (l4.len() + if frag { 8 } else { 0 }) as u16;
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&plen.to_be_bytes());
                f.push(if frag { 44 } else { self.proto });
                f.push(64);
                f.extend_from_slice(&v6(s));
                f.extend_from_slice(&v6(d));
                if frag {
                    f.extend_from_slice(&[self.proto, 0]);
                    f.extend_from_slice(&(self.frag_offset << 3).to_be_bytes());
                    f.extend_from_slice(&[0, 0, 0, 1]);
                }
            }
        }
        f.extend_from_slice(&l4);
        f
    }
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ARP request from `sha`/`spa` for `tpa`.
pub fn arp(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&sha);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f
}
