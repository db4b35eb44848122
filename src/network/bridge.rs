//! Linux bridges, through `ip` (iproute2). Creation is idempotent.

use super::{run_ip, NetworkError};

pub fn exists(name: &str) -> bool {
    run_ip(&["link", "show", "dev", name]).is_ok()
}

/// Makes sure bridge `name` exists, is up and holds `gateway_cidr` (e.g. `10.0.0.1/24`).
pub fn ensure(name: &str, gateway_cidr: &str) -> Result<(), NetworkError> {
    if !exists(name) {
        run_ip(&["link", "add", name, "type", "bridge"])?;
    }
    let addrs = run_ip(&["-o", "addr", "show", "dev", name])?;
    // The address may be there with another prefix (an operator's own setup): keep it.
    let addr = gateway_cidr.split('/').next().unwrap_or(gateway_cidr);
    if !addrs.contains(&format!(" {addr}/")) {
        run_ip(&["addr", "add", gateway_cidr, "dev", name])?;
    }
    run_ip(&["link", "set", name, "up"]).map(drop)
}

/// Puts `cidr` (an IPv6 address with its length) on bridge `name` without duplicate
/// address detection (the host's own prefix), and turns IPv6 forwarding on.
pub fn ensure_v6(name: &str, cidr: &str) -> Result<(), NetworkError> {
    let addrs = run_ip(&["-o", "-6", "addr", "show", "dev", name])?;
    if !addrs.contains(&format!(" {cidr} ")) {
        run_ip(&["-6", "addr", "add", cidr, "dev", name, "nodad"])?;
    }
    std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1").map_err(|e| NetworkError::Host {
        what: "setting net.ipv6.conf.all.forwarding".into(),
        reason: e.to_string(),
    })
}
