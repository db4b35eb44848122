//! Security groups in the kernel: an eBPF data plane (`ebpf/firewall.c`) on every VM
//! tap, and this control plane that compiles resolved rules into its maps. A driver: it
//! knows taps, addresses and rules, not projects or VMs; the service resolves groups
//! (remote groups included) into [`NicPolicy`] values.
//!
//! The semantics are written down in `docs/security-groups.md`; [`eval`] implements
//! them directly and is the oracle the BPF program is tested against.

pub mod compile;
pub mod eval;
pub mod loader;
pub mod maps;
pub mod packet;

use std::net::IpAddr;

pub use loader::Firewall;

/// Errors of the firewall driver.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// The BPF object could not be loaded (not root, no bpffs, old kernel).
    #[error("cannot load the eBPF firewall: {0}")]
    Load(String),
    /// A program could not be attached to an interface.
    #[error("cannot attach the firewall to {iface}: {reason}")]
    Attach { iface: String, reason: String },
    /// A BPF map operation failed.
    #[error("firewall map {map}: {reason}")]
    Map { map: &'static str, reason: String },
    /// BPF_PROG_TEST_RUN failed.
    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(String),
}

/// How the programs are attached to taps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// TCX links (Linux 6.6+), pinned under the bpffs directory.
    Tcx,
    /// Classic TC: a clsact qdisc and direct-action cls_bpf filters over netlink, for
    /// kernels without TCX (Debian 12's 6.1, RHEL 9). The filters live on the tap, not
    /// in a process, so they too outlive a restart of skiff.
    Tc,
}

impl AttachMode {
    /// TCX when the running kernel has it (6.6 or later), classic TC otherwise.
    pub fn detect() -> AttachMode {
        match crate::sysinfo::kernel_version() {
            Some(v) if v >= (6, 6) => AttachMode::Tcx,
            _ => AttachMode::Tc,
        }
    }

    /// `auto`, `tcx` or `tc` (configuration).
    pub fn parse(s: &str) -> Option<AttachMode> {
        match s {
            "auto" => Some(AttachMode::detect()),
            "tcx" => Some(AttachMode::Tcx),
            "tc" => Some(AttachMode::Tc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Tcx => "tcx",
            AttachMode::Tc => "tc",
        }
    }
}

/// Which way a rule looks: at what the VM receives or at what it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// To the VM (the contract's INBOUND).
    In = 0,
    /// From the VM (OUTBOUND).
    Out = 1,
}

/// An address block; `addr` has no bits set beyond `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// The block of `len` bits around `addr`, or None when `len` does not fit the family.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then(|| Prefix {
            addr: mask(addr, len),
            len,
        })
    }

    /// Every address of one family.
    pub fn any(v6: bool) -> Prefix {
        if v6 {
            Prefix {
                addr: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                len: 0,
            }
        } else {
            Prefix {
                addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                len: 0,
            }
        }
    }

    /// One address.
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        a.is_ipv4() == self.addr.is_ipv4() && mask(a, self.len) == self.addr
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// `a` with every bit beyond `len` cleared.
pub fn mask(a: IpAddr, len: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32))
            };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len.min(128))
            };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

/// The 16-byte form the maps use: IPv4 in the first four bytes.
pub fn addr16(a: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v) => out[..4].copy_from_slice(&v.octets()),
        IpAddr::V6(v) => out = v.octets(),
    }
    out
}

/// The L4 protocol number the data plane gives "any protocol".
pub const PROTO_ANY: u8 = 255;

/// One rule after the service resolved it: remote groups are now address lists, IPsec
/// is two rules (ESP and AH) with one id, an ICMP type is a one-port range.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FwRule {
    /// Counters are kept per id; never 0.
    pub id: u64,
    pub dir: Dir,
    /// None: every protocol (the contract's ALL).
    pub proto: Option<u8>,
    /// Destination ports (TCP, UDP) or ICMP types, inclusive; (0, 65535) for any.
    pub ports: (u16, u16),
    /// The remote side; a rule with none matches nothing (an empty remote group).
    pub remotes: Vec<Prefix>,
}

/// What the data plane enforces on one NIC.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NicPolicy {
    /// A number unique among the host's NICs (the contract's `nic_id`).
    pub nic: u32,
    pub mac: [u8; 6],
    /// The addresses the NIC may send from (anti-spoofing).
    pub addrs: Vec<IpAddr>,
    /// At least one group is attached: rules and connection tracking apply.
    pub filtered: bool,
    /// Some attached group has an OUTBOUND rule: egress is limited to those rules.
    pub egress_restricted: bool,
    /// In order: when several rules allow a packet, the first one counts it.
    pub rules: Vec<FwRule>,
}

/// Connection-tracking timeouts, per kind of flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_secs: u64,
    pub udp_secs: u64,
    pub icmp_secs: u64,
    pub other_secs: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_secs: 7200,
            udp_secs: 180,
            icmp_secs: 30,
            other_secs: 600,
        }
    }
}

/// Per-rule counters: packets and bytes of the flows a rule admitted, both ways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// Parses a MAC in `aa:bb:cc:dd:ee:ff` form.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The EUI-64 link-local address of a MAC: a guest's first IPv6 address.
pub fn link_local(mac: [u8; 6]) -> IpAddr {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 0x02;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    IpAddr::V6(a.into())
}
