//! Linux bridges, through `ip` (iproute2). Creation is idempotent.

use std::process::Command;

use super::NetworkError;

fn ip(args: &[&str]) -> Result<std::process::Output, NetworkError> {
    Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetworkError::Host {
            what: format!("ip {}", args.join(" ")),
            reason: e.to_string(),
        })
}

pub fn exists(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).is_ok_and(|o| o.status.success())
}

/// Makes sure bridge `name` exists, is up and holds `gateway_cidr` (e.g. `10.0.0.1/24`).
pub fn ensure(name: &str, gateway_cidr: &str) -> Result<(), NetworkError> {
    let run = |args: &[&str]| -> Result<(), NetworkError> {
        let o = ip(args)?;
        if o.status.success() {
            Ok(())
        } else {
            Err(NetworkError::Host {
                what: format!("ip {}", args.join(" ")),
                reason: String::from_utf8_lossy(&o.stderr).trim().to_string(),
            })
        }
    };
    if !exists(name) {
        run(&["link", "add", name, "type", "bridge"])?;
    }
    let addrs = ip(&["-o", "addr", "show", "dev", name])?;
    // The address may be there with another prefix (an operator's own setup): keep it.
    let addr = gateway_cidr.split('/').next().unwrap_or(gateway_cidr);
    if !String::from_utf8_lossy(&addrs.stdout).contains(&format!(" {addr}/")) {
        run(&["addr", "add", gateway_cidr, "dev", name])?;
    }
    run(&["link", "set", name, "up"])
}
