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

/// `skf_remote` key data (after the trie's prefix length): 64 bits, then the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RemoteData {
    pub slot: u32,
    pub dir: u8,
    pub family: u8,
    pub pad: u16,
    pub addr: [u8; 16],
}

/// `skf_ports` key data: 80 bits, then the big-endian port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortData {
    pub slot: u32,
    pub cls: u32,
    pub proto: u8,
    pub pad: u8,
    pub port_be: u16,
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
unsafe impl aya::Pod for RemoteData {}
// SAFETY: as above.
unsafe impl aya::Pod for PortData {}
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
        assert_eq!(
            std::mem::size_of::<aya::maps::lpm_trie::Key<RemoteData>>(),
            28
        );
        assert_eq!(
            std::mem::size_of::<aya::maps::lpm_trie::Key<PortData>>(),
            16
        );
        assert_eq!(std::mem::size_of::<CtKey>(), 44);
        assert_eq!(std::mem::size_of::<CtVal>(), 24);
        assert_eq!(std::mem::size_of::<Stat>(), 16);
        assert_eq!(std::mem::size_of::<Settings>(), 32);
    }
}
