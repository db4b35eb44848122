//! Host networking: bridges and address management. A driver: it knows addresses and
//! links, not VMs or projects.

pub mod bridge;
pub mod dhcp;
pub mod firewall;
pub mod vpc;

use std::net::Ipv4Addr;

/// Errors of the network driver.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A CIDR that does not parse or makes no usable pool.
    #[error("invalid CIDR {0:?}: use a.b.c.d/len with len 8 to 30")]
    BadCidr(String),
    /// A host networking command failed.
    #[error("{what}: {reason}")]
    Host { what: String, reason: String },
}

/// Runs `ip` (iproute2) with `args`; its standard output, or why it failed.
pub(crate) fn run_ip(args: &[&str]) -> Result<String, NetworkError> {
    let host = |reason: String| NetworkError::Host {
        what: format!("ip {}", args.join(" ")),
        reason,
    };
    let o = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| host(e.to_string()))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(host(String::from_utf8_lossy(&o.stderr).trim().to_string()))
    }
}

/// An IPv4 network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, NetworkError> {
        let bad = || NetworkError::BadCidr(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// The first host address (the default gateway when none is configured).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Host addresses in order, without network and broadcast addresses.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let start = u32::from(self.network) + 1;
        let end = u32::from(self.network) | !self.mask();
        (start..end).map(Ipv4Addr::from)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An IPv6 /64 of the public network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix64(pub std::net::Ipv6Addr);

impl Prefix64 {
    /// `a:b:c:d::/64` (the host bits must be zero).
    pub fn parse(s: &str) -> Option<Prefix64> {
        let (addr, len) = s.trim().split_once('/')?;
        let addr: std::net::Ipv6Addr = addr.parse().ok()?;
        if len != "64" || u128::from(addr) & u128::from(u64::MAX) != 0 {
            return None;
        }
        Some(Prefix64(addr))
    }

    /// The address with `low` as its low 64 bits.
    pub fn host(&self, low: u64) -> std::net::Ipv6Addr {
        std::net::Ipv6Addr::from(u128::from(self.0) | u128::from(low))
    }
}

/// A locally administered MAC in QEMU's prefix, from 3 random bytes.
pub fn random_mac() -> String {
    let b: [u8; 3] = rand::random();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// The MAC of NIC `nic_id`: its low 24 bits through a bijection (an odd multiplier
/// modulo 2^24), so distinct NIC ids below 2^24 never share a MAC, whatever runs
/// concurrently, and the MAC does not show how many NICs came before.
pub fn nic_mac(nic_id: u64) -> String {
    let v = (nic_id.wrapping_mul(0x9e_3779) & 0xff_ffff) as u32;
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        v >> 16,
        (v >> 8) & 0xff,
        v & 0xff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nic_macs_are_distinct_per_nic_id() {
        let macs: std::collections::HashSet<String> = (1..200_000).map(nic_mac).collect();
        assert_eq!(macs.len(), 199_999);
        assert!(nic_mac(7).starts_with("52:54:00:"));
    }

    #[test]
    fn cidrs_parse_normalise_and_enumerate() {
        let c = Cidr::parse("10.1.2.77/29").unwrap();
        assert_eq!(c.to_string(), "10.1.2.72/29");
        let hosts: Vec<_> = c.hosts().map(|h| h.to_string()).collect();
        assert_eq!(hosts.first().unwrap(), "10.1.2.73");
        assert_eq!(hosts.last().unwrap(), "10.1.2.78");
        assert_eq!(hosts.len(), 6);
        assert!(c.contains("10.1.2.79".parse().unwrap()));
        assert!(!c.contains("10.1.2.80".parse().unwrap()));
        for bad in ["10.0.0.0", "10.0.0.0/31", "10.0.0/24", "x/24", "10.0.0.0/7"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(random_mac().starts_with("52:54:00:"));
        let p = Prefix64::parse("2001:db8:1::/64").unwrap();
        assert_eq!(p.host(1).to_string(), "2001:db8:1::1");
        assert_eq!(p.host(0x1234).to_string(), "2001:db8:1::1234");
        for bad in [
            "2001:db8:1::/48",
            "2001:db8:1::5/64",
            "nonsense/64",
            "2001:db8::",
        ] {
            assert!(Prefix64::parse(bad).is_none(), "{bad}");
        }
    }
}
