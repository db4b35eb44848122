//! Rules → map entries. Two searches decide any packet, however many rules there are:
//!
//! 1. `skf_remote` gives a *class*: one per distinct remote prefix; a class holds every
//!    rule whose prefix covers its own, so the longest matching prefix carries all
//!    rules that match the address. The data plane tries the prefix lengths in use,
//!    longest first, one hash lookup each.
//! 2. `skf_ports` gives the rule: a class's port space is cut where the first matching
//!    rule changes, and each piece becomes aligned blocks (one hash entry each), so a
//!    port falls in at most one block.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::maps::{Masks, PortKey, RemoteKey};
use super::{addr16, mask, Dir, NicPolicy, Prefix, PROTO_ANY};

/// The entries of one NIC in one slot.
#[derive(Debug, Default, PartialEq)]
pub struct Compiled {
    /// Remote prefix → class.
    pub remote: Vec<(RemoteKey, u32)>,
    /// Port block → rule id.
    pub ports: Vec<(PortKey, u64)>,
    pub masks: Masks,
}

fn family(p: &Prefix) -> u8 {
    if p.addr.is_ipv4() {
        4
    } else {
        6
    }
}

/// Compiles `policy` into the entries of `slot`.
pub fn compile(policy: &NicPolicy, slot: u32) -> Compiled {
    // Which rules name each (direction, prefix).
    let mut own: BTreeMap<(Dir, Prefix), Vec<usize>> = BTreeMap::new();
    for (i, r) in policy.rules.iter().enumerate() {
        for p in &r.remotes {
            own.entry((r.dir, *p)).or_default().push(i);
        }
    }
    let mut out = Compiled::default();
    let mut v4_lens: [BTreeSet<u8>; 2] = Default::default();
    let mut v6_lens: [BTreeSet<u8>; 2] = Default::default();
    let mut port_lens: BTreeSet<u8> = BTreeSet::new();
    for (cls, (dir, prefix)) in own.keys().enumerate() {
        let cls = cls as u32;
        // Every rule whose prefix covers this one: walk the shorter prefixes.
        let mut rules = BTreeSet::new();
        for len in 0..=prefix.len {
            let up = Prefix {
                addr: mask(prefix.addr, len),
                len,
            };
            if let Some(v) = own.get(&(*dir, up)) {
                rules.extend(v.iter().copied());
            }
        }
        let d = *dir as usize;
        match prefix.addr {
            std::net::IpAddr::V4(_) => v4_lens[d].insert(prefix.len),
            std::net::IpAddr::V6(_) => v6_lens[d].insert(prefix.len),
        };
        out.remote.push((
            RemoteKey {
                slot,
                dir: *dir as u8,
                family: family(prefix),
                len: prefix.len,
                pad: 0,
                addr: addr16(prefix.addr),
            },
            cls,
        ));
        let mut by_proto: HashMap<u8, Vec<(u16, u16, usize)>> = HashMap::new();
        let mut any: Option<usize> = None;
        for &i in &rules {
            let r = &policy.rules[i];
            match r.proto {
                None => any = Some(any.map_or(i, |a| a.min(i))),
                Some(p) => by_proto
                    .entry(p)
                    .or_default()
                    .push((r.ports.0, r.ports.1, i)),
            }
        }
        let key = |proto: u8, len: u32, port: u16| PortKey {
            slot,
            cls,
            proto,
            len: len as u8,
            port_be: port.to_be(),
        };
        if let Some(i) = any {
            out.ports.push((key(PROTO_ANY, 0, 0), policy.rules[i].id));
        }
        for (proto, ranges) in by_proto {
            for (lo, hi, i) in first_match_segments(&ranges) {
                for (start, bits) in aligned_blocks(lo, hi) {
                    port_lens.insert(bits as u8);
                    out.ports
                        .push((key(proto, bits, start), policy.rules[i].id));
                }
            }
        }
    }
    out.masks = Masks::from_lengths(
        [&v4_lens[0], &v4_lens[1]],
        [&v6_lens[0], &v6_lens[1]],
        &port_lens,
    );
    out
}

/// Cuts the port space into maximal pieces where the lowest-index covering rule is the
/// same. Input: inclusive ranges with their rule index.
fn first_match_segments(ranges: &[(u16, u16, usize)]) -> Vec<(u16, u16, usize)> {
    // Events at u32 so that 65535 + 1 is representable.
    let mut events: BTreeMap<u32, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for &(lo, hi, i) in ranges {
        events.entry(u32::from(lo)).or_default().0.push(i);
        events.entry(u32::from(hi) + 1).or_default().1.push(i);
    }
    let mut active: BTreeMap<usize, usize> = BTreeMap::new();
    let mut out: Vec<(u16, u16, usize)> = Vec::new();
    let points: Vec<u32> = events.keys().copied().collect();
    for (n, at) in points.iter().enumerate() {
        let (adds, removes) = &events[at];
        for i in removes {
            if let Some(c) = active.get_mut(i) {
                *c -= 1;
                if *c == 0 {
                    active.remove(i);
                }
            }
        }
        for i in adds {
            *active.entry(*i).or_default() += 1;
        }
        let Some((&first, _)) = active.iter().next() else {
            continue;
        };
        let end = points.get(n + 1).copied().unwrap_or(65536) - 1;
        let (lo, hi) = (*at as u16, end as u16);
        match out.last_mut() {
            Some(last) if last.2 == first && u32::from(last.1) + 1 == *at => last.1 = hi,
            _ => out.push((lo, hi, first)),
        }
    }
    out
}

/// An inclusive port range as aligned blocks: (first port, prefix bits of 16).
pub fn aligned_blocks(lo: u16, hi: u16) -> Vec<(u16, u32)> {
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    let mut out = Vec::new();
    while lo <= hi {
        let mut size = if lo == 0 {
            1 << 16
        } else {
            lo & lo.wrapping_neg()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((lo as u16, 16 - size.trailing_zeros()));
        lo += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_few_aligned_blocks() {
        assert_eq!(aligned_blocks(0, 65535), vec![(0, 0)]);
        assert_eq!(aligned_blocks(80, 80), vec![(80, 16)]);
        assert_eq!(aligned_blocks(8000, 8003), vec![(8000, 14)]);
        let b = aligned_blocks(1, 65535);
        assert_eq!(b.len(), 16);
        let covered: u32 = b.iter().map(|(_, bits)| 1u32 << (16 - bits)).sum();
        assert_eq!(covered, 65535);
    }

    #[test]
    fn overlapping_ranges_go_to_the_first_rule() {
        let segs = first_match_segments(&[(100, 200, 1), (150, 300, 0), (400, 400, 2)]);
        assert_eq!(segs, vec![(100, 149, 1), (150, 300, 0), (400, 400, 2)]);
        let segs = first_match_segments(&[(0, 65535, 3), (22, 22, 1)]);
        assert_eq!(segs, vec![(0, 21, 3), (22, 22, 1), (23, 65535, 3)]);
    }
}
