//! The data plane's map layouts: `#[repr(C)]` twins of the structs in `ebpf/firewall.c`.

/// `skf_nics` value, keyed by the tap's ifindex.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicCfg {
    pub nic: u32,
    pub gen: u32,
    pub version: u32,
    pub flags: u32,
    pub mac: [u8; 6],
    pub pad: [u8; 2],
}

pub const F_FILTERED: u32 = 1;
pub const F_EGRESS_RESTRICTED: u32 = 2;

/// `skf_addrs` key: an address a NIC may send from.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    pub ifindex: u32,
    pub family: u32,
    pub addr: [u8; 16],
}

/// `skf_remote` key: a remote prefix, its address masked to `len`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RemoteKey {
    pub slot: u32,
    pub dir: u8,
    pub family: u8,
    pub len: u8,
    pub pad: u8,
    pub addr: [u8; 16],
}

/// `skf_ports` key: an aligned block of ports (or ICMP types) of one protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortKey {
    pub slot: u32,
    pub cls: u32,
    pub proto: u8,
    pub len: u8,
    pub port_be: u16,
}

/// `skf_masks` value: the prefix lengths a slot uses, longest first, so that a search
/// tries only those.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Masks {
    pub v4_n: [u8; 2],
    pub v6_n: [u8; 2],
    pub ports_n: u8,
    pub pad: [u8; 3],
    pub v4: [[u8; 33]; 2],
    pub v6: [[u8; 129]; 2],
    pub ports: [u8; 17],
    pub pad2: [u8; 5],
}

impl Default for Masks {
    fn default() -> Self {
        Masks {
            v4_n: [0; 2],
            v6_n: [0; 2],
            ports_n: 0,
            pad: [0; 3],
            v4: [[0; 33]; 2],
            v6: [[0; 129]; 2],
            ports: [0; 17],
            pad2: [0; 5],
        }
    }
}

impl Masks {
    /// From the sets of lengths in use: per direction for IPv4 and IPv6, and ports.
    pub fn from_lengths(
        v4: [&std::collections::BTreeSet<u8>; 2],
        v6: [&std::collections::BTreeSet<u8>; 2],
        ports: &std::collections::BTreeSet<u8>,
    ) -> Masks {
        let mut m = Masks::default();
        for d in 0..2 {
            for (i, l) in v4[d].iter().rev().enumerate() {
                m.v4[d][i] = *l;
            }
            m.v4_n[d] = v4[d].len() as u8;
            for (i, l) in v6[d].iter().rev().enumerate() {
                m.v6[d][i] = *l;
            }
            m.v6_n[d] = v6[d].len() as u8;
        }
        for (i, l) in ports.iter().rev().enumerate() {
            m.ports[i] = *l;
        }
        m.ports_n = ports.len() as u8;
        m
    }
}

/// `skf_ct` key: a flow seen from the VM.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub nic: u32,
    pub family: u8,
    pub proto: u8,
    pub vm_port: u16,
    pub remote_port: u16,
    pub pad: u16,
    pub vm_addr: [u8; 16],
    pub remote_addr: [u8; 16],
}

/// `skf_ct` value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtVal {
    pub seen: u64,
    pub rule: u64,
    pub version: u32,
    pub origin: u8,
    pub pad: u8,
    pub lport: u16,
}

/// `skf_stats` value (per CPU), keyed by rule id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub packets: u64,
    pub bytes: u64,
}

/// `skf_settings[0]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub timeout_ns: [u64; 4],
}

// SAFETY: each type is #[repr(C)], made of integers and byte arrays with explicit padding
// fields, so every bit pattern is valid and no byte is uninitialised.
unsafe impl aya::Pod for NicCfg {}
// SAFETY: as above.
unsafe impl aya::Pod for AddrKey {}
// SAFETY: as above.
unsafe impl aya::Pod for RemoteKey {}
// SAFETY: as above.
unsafe impl aya::Pod for PortKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Masks {}
// SAFETY: as above.
unsafe impl aya::Pod for CtKey {}
// SAFETY: as above.
unsafe impl aya::Pod for CtVal {}
// SAFETY: as above.
unsafe impl aya::Pod for Stat {}
// SAFETY: as above.
unsafe impl aya::Pod for Settings {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_c_structs() {
        assert_eq!(std::mem::size_of::<NicCfg>(), 24);
        assert_eq!(std::mem::size_of::<AddrKey>(), 24);
        assert_eq!(std::mem::size_of::<RemoteKey>(), 24);
        assert_eq!(std::mem::size_of::<PortKey>(), 12);
        assert_eq!(std::mem::size_of::<Masks>(), 354);
        assert_eq!(std::mem::size_of::<CtKey>(), 44);
        assert_eq!(std::mem::size_of::<CtVal>(), 24);
        assert_eq!(std::mem::size_of::<Stat>(), 16);
        assert_eq!(std::mem::size_of::<Settings>(), 32);
    }
}
