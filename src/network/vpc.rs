//! The VPC data path (docs/decisions/0011-vpc-data-path.md): per VPC, a Linux bridge
//! with no address of the host's (the layer-2 segment the guests' taps join) and a
//! router network namespace holding the VPC's gateway on `gw0`, the peer of a veth
//! whose host end is a port of the bridge. The host has no layer-3 presence in any
//! VPC, so no host route can join two of them, and two VPCs with the same CIDR never
//! meet: their gateways live in different namespaces.
//!
//! Every step is idempotent and the steps are public, so a crash after any prefix of
//! them is repaired by running `ensure` or `remove` again (the crash-matrix test runs
//! each prefix).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use super::{run_ip, NetworkError};

/// Where named network namespaces live (`ip netns`).
const NETNS_DIR: &str = "/run/netns";

/// The host objects of VPC number `seq` under `prefix` (the tap prefix: two skiff
/// instances on one host use different ones). Device names stay within IFNAMSIZ:
/// prefix ≤ 6, one letter, `seq` < 2^24 (≤ 8 digits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcNet {
    pub prefix: String,
    pub seq: u64,
}

/// Largest VPC number: it doubles as the VXLAN VNI when a second host joins.
pub const MAX_SEQ: u64 = (1 << 24) - 1;

impl VpcNet {
    pub fn bridge(&self) -> String {
        format!("{}b{}", self.prefix, self.seq)
    }

    /// The host end of the router's way out (SNAT).
    pub fn uplink(&self) -> String {
        format!("{}u{}", self.prefix, self.seq)
    }

    /// The host end of the router's veth (a bridge port).
    pub fn veth(&self) -> String {
        format!("{}g{}", self.prefix, self.seq)
    }

    pub fn netns(&self) -> String {
        format!("skiff-vpc-{}-{}", self.prefix, self.seq)
    }
}

/// What a VPC's router needs.
#[derive(Clone, Debug)]
pub struct VpcSpec {
    pub net: VpcNet,
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
    /// The router's way out (SNAT on): a /31 between the host and the router.
    pub uplink: Option<Uplink>,
}

/// A /31 between the host (`host`, on `<prefix>u<seq>`) and the router (`router`, on
/// its `up0`), and what the router translates on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uplink {
    pub host: Ipv4Addr,
    pub router: Ipv4Addr,
    /// Masquerade the VPC's other traffic on its way out (SNAT on).
    pub masquerade: bool,
    /// Floating address → the VPC NIC's address, translated both ways (1:1); the
    /// host routes each floating address to this router.
    pub floating: Vec<(Ipv4Addr, Ipv4Addr)>,
}

impl Uplink {
    /// VPC `seq`'s /31 in `transit`, or none when the range is too small for it.
    pub fn of(transit: &super::Cidr, seq: u64) -> Option<Uplink> {
        let size = 1u64 << (32 - transit.prefix);
        let at = seq.checked_mul(2)?;
        if at + 1 >= size {
            return None;
        }
        let base = u64::from(u32::from(transit.network)) + at;
        Some(Uplink {
            host: Ipv4Addr::from(u32::try_from(base).ok()?),
            router: Ipv4Addr::from(u32::try_from(base + 1).ok()?),
            masquerade: true,
            floating: Vec::new(),
        })
    }
}

/// Runs `nft -f -` with `rules` inside namespace `netns` (the caller's own with
/// `None`).
pub(crate) fn nft(netns: Option<&str>, rules: &str) -> Result<(), NetworkError> {
    use std::io::Write;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns, "nft", "-f", "-"]);
            c
        }
        None => {
            let mut c = std::process::Command::new("nft");
            c.args(["-f", "-"]);
            c
        }
    };
    let host = |reason: String| NetworkError::Host {
        what: format!("nft in {}", netns.unwrap_or("the host")),
        reason,
    };
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| host(e.to_string()))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(rules.as_bytes())
            .map_err(|e| host(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| host(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(host(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Sets IPv4 forwarding in namespace `netns` (the caller's own with `None`).
pub(crate) fn forwarding(netns: Option<&str>, on: bool) -> Result<(), NetworkError> {
    let v = if on { "1" } else { "0" };
    match netns {
        None => {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", v).map_err(|e| NetworkError::Host {
                what: "setting net.ipv4.ip_forward".into(),
                reason: e.to_string(),
            })
        }
        Some(ns) => run_ip(&[
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            &format!("echo {v} > /proc/sys/net/ipv4/ip_forward"),
        ])
        .map(drop),
    }
}

/// The host's part for every VPC router's uplink under `prefix`: forwarding on,
/// forwarding from one router's uplink to another's dropped (no VPC reaches another
/// through the host), and with `masquerade` the routers' transit range masqueraded
/// on its way out (SNAT). With `transit` `None` the table goes (forwarding stays as
/// it is: other guests may route through the host).
pub fn ensure_host_nat(
    prefix: &str,
    transit: Option<&super::Cidr>,
    masquerade: bool,
) -> Result<(), NetworkError> {
    let table = format!("skiff_{prefix}");
    match transit {
        Some(t) => {
            forwarding(None, true)?;
            let masq = if masquerade {
                format!("ip saddr {t} oifname != \"{prefix}u*\" masquerade;")
            } else {
                String::new()
            };
            nft(
                None,
                &format!(
                    "table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n\
                     chain skfwd {{ type filter hook forward priority filter; policy accept; iifname \"{prefix}u*\" oifname \"{prefix}u*\" drop; }}\n\
                     chain sknat {{ type nat hook postrouting priority srcnat; policy accept; {masq} }}\n}}\n"
                ),
            )
        }
        None => nft(
            None,
            &format!("table ip {table}\ndelete table ip {table}\n"),
        ),
    }
}

/// The router's nftables table for `up`: 1:1 NAT of its floating addresses and,
/// with SNAT, masquerade of the rest. Replaced whole in one transaction.
fn router_table(up: &Uplink) -> String {
    let pairs = |rev: bool| -> String {
        let e: Vec<String> = up
            .floating
            .iter()
            .map(|(f, p)| {
                if rev {
                    format!("{p} : {f}")
                } else {
                    format!("{f} : {p}")
                }
            })
            .collect();
        if e.is_empty() {
            String::new()
        } else {
            format!(" elements = {{ {} }};", e.join(", "))
        }
    };
    let masq = if up.masquerade {
        "oifname \"up0\" masquerade;"
    } else {
        ""
    };
    format!(
        "table ip skiff\ndelete table ip skiff\ntable ip skiff {{\n\
         map fip {{ type ipv4_addr : ipv4_addr;{} }}\n\
         map rev {{ type ipv4_addr : ipv4_addr;{} }}\n\
         chain skpre {{ type nat hook prerouting priority dstnat; policy accept; iifname \"up0\" dnat to ip daddr map @fip; }}\n\
         chain sknat {{ type nat hook postrouting priority srcnat; policy accept; oifname \"up0\" snat to ip saddr map @rev; {masq} }}\n}}\n",
        pairs(false),
        pairs(true)
    )
}

/// Forgets the router's tracked connections to and from floating address `fip`, so
/// a moved address reaches its new VM at once, running flows too. Needs the
/// `conntrack` tool; without it the old flows run out by themselves (logged).
pub fn forget_flows(n: &VpcNet, fip: Ipv4Addr) {
    let ns = n.netns();
    let f = fip.to_string();
    for dir in ["-d", "-q"] {
        let r = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "conntrack", "-D", dir, &f])
            .output();
        if let Err(e) = r {
            tracing::warn!(netns = %ns, error = %e, "conntrack: flows of a moved address run out by themselves");
            return;
        }
    }
}

/// `r`, with "it is there already" taken as done: a guest's start and the VPC's own
/// job may make the same object at once.
fn made(r: Result<String, NetworkError>) -> Result<(), NetworkError> {
    match r {
        Err(NetworkError::Host { reason, .. }) if reason.contains("File exists") => Ok(()),
        r => r.map(drop),
    }
}

fn link_exists(name: &str) -> bool {
    run_ip(&["link", "show", "dev", name]).is_ok()
}

fn netns_exists(name: &str) -> bool {
    Path::new(NETNS_DIR).join(name).exists()
}

/// One step of making or removing a VPC's host objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Bridge,
    Netns,
    Veth,
    Port,
    Router,
    Uplink,
}

/// The steps of `ensure`, in order.
pub const CREATE_STEPS: &[Step] = &[
    Step::Bridge,
    Step::Netns,
    Step::Veth,
    Step::Port,
    Step::Router,
    Step::Uplink,
];

/// One change of VPC host objects at a time. Each step checks, then acts (`addr show`,
/// then `addr add`), and a VM's job and the reconciler may ensure the same VPC at once:
/// seen in CI as "Address already assigned" on a router's uplink.
static HOST_OBJECTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    HOST_OBJECTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one step of making `spec`'s objects; each finds what an earlier attempt made.
pub fn create_step(spec: &VpcSpec, step: Step) -> Result<(), NetworkError> {
    let _one = one_at_a_time();
    make_step(spec, step)
}

fn make_step(spec: &VpcSpec, step: Step) -> Result<(), NetworkError> {
    let n = &spec.net;
    let mtu = spec.mtu.to_string();
    match step {
        Step::Bridge => {
            let br = n.bridge();
            if !link_exists(&br) {
                // Bridged frames must not pass the host's netfilter (bridge-nf-call is
                // on by default): VPCs with one CIDR would share conntrack tuples.
                made(run_ip(&[
                    "link",
                    "add",
                    &br,
                    "type",
                    "bridge",
                    "stp_state",
                    "0",
                    "nf_call_iptables",
                    "0",
                    "nf_call_ip6tables",
                    "0",
                    "nf_call_arptables",
                    "0",
                ]))?;
            }
            // No address of the host's, not even a link-local one.
            run_ip(&[
                "link",
                "set",
                "dev",
                &br,
                "mtu",
                &mtu,
                "addrgenmode",
                "none",
            ])?;
            run_ip(&["link", "set", "dev", &br, "up"]).map(drop)
        }
        Step::Netns => {
            if !netns_exists(&n.netns()) {
                made(run_ip(&["netns", "add", &n.netns()]))?;
            }
            run_ip(&["-n", &n.netns(), "link", "set", "lo", "up"]).map(drop)
        }
        Step::Veth => {
            let v = n.veth();
            if !link_exists(&v) {
                made(run_ip(&[
                    "link",
                    "add",
                    &v,
                    "mtu",
                    &mtu,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "gw0",
                    "mtu",
                    &mtu,
                    "netns",
                    &n.netns(),
                ]))?;
            }
            run_ip(&["link", "set", "dev", &v, "addrgenmode", "none"]).map(drop)
        }
        Step::Port => {
            run_ip(&["link", "set", "dev", &n.veth(), "master", &n.bridge(), "up"]).map(drop)
        }
        Step::Router => {
            let ns = n.netns();
            let gw = format!("{}/{}", spec.gateway, spec.prefix_len);
            let have = run_ip(&["-n", &ns, "-o", "-4", "addr", "show", "dev", "gw0"])?;
            if !have.contains(&format!(" {gw} ")) {
                run_ip(&["-n", &ns, "addr", "flush", "dev", "gw0"])?;
                run_ip(&["-n", &ns, "addr", "add", &gw, "dev", "gw0"])?;
            }
            run_ip(&["-n", &ns, "link", "set", "dev", "gw0", "mtu", &mtu, "up"]).map(drop)
        }
        Step::Uplink => {
            let ns = n.netns();
            let u = n.uplink();
            let Some(up) = &spec.uplink else {
                // SNAT off: no way out of the VPC (the masquerade rule names up0,
                // which goes with the veth).
                if link_exists(&u) {
                    run_ip(&["link", "del", "dev", &u])?;
                }
                return Ok(());
            };
            if !link_exists(&u) {
                made(run_ip(&[
                    "link", "add", &u, "type", "veth", "peer", "name", "up0", "netns", &ns,
                ]))?;
            }
            let host = format!("{}/31", up.host);
            let router = format!("{}/31", up.router);
            if !run_ip(&["-o", "-4", "addr", "show", "dev", &u])?.contains(&format!(" {host} ")) {
                run_ip(&["addr", "flush", "dev", &u])?;
                run_ip(&["addr", "add", &host, "dev", &u])?;
            }
            run_ip(&["link", "set", "dev", &u, "addrgenmode", "none", "up"])?;
            if !run_ip(&["-n", &ns, "-o", "-4", "addr", "show", "dev", "up0"])?
                .contains(&format!(" {router} "))
            {
                run_ip(&["-n", &ns, "addr", "flush", "dev", "up0"])?;
                run_ip(&["-n", &ns, "addr", "add", &router, "dev", "up0"])?;
            }
            run_ip(&["-n", &ns, "link", "set", "dev", "up0", "up"])?;
            run_ip(&[
                "-n",
                &ns,
                "route",
                "replace",
                "default",
                "via",
                &up.host.to_string(),
                "dev",
                "up0",
            ])?;
            forwarding(Some(&ns), true)?;
            nft(Some(&ns), &router_table(up))?;
            // The host routes each floating address to this router, and no other.
            let routes = run_ip(&["-4", "route", "show", "dev", &u])?;
            for line in routes.lines().filter(|l| l.contains(" via ")) {
                let dst = line.split_whitespace().next().unwrap_or("");
                let dst_ip = dst.split('/').next().unwrap_or(dst);
                if !up.floating.iter().any(|(f, _)| f.to_string() == dst_ip) {
                    run_ip(&["route", "del", dst, "dev", &u])?;
                }
            }
            for (f, _) in &up.floating {
                run_ip(&[
                    "route",
                    "replace",
                    &format!("{f}/32"),
                    "via",
                    &up.router.to_string(),
                    "dev",
                    &u,
                ])?;
            }
            Ok(())
        }
    }
}

/// Makes (or completes) `spec`'s host objects.
pub fn ensure(spec: &VpcSpec) -> Result<(), NetworkError> {
    let _one = one_at_a_time();
    for s in CREATE_STEPS {
        make_step(spec, *s)?;
    }
    Ok(())
}

/// The steps of `remove`, in order: the veth first (deleting one end deletes its
/// peer at once, while a namespace's devices go only when the kernel gets to it),
/// then the namespace, the bridge last.
pub const REMOVE_STEPS: &[Step] = &[Step::Uplink, Step::Veth, Step::Netns, Step::Bridge];

/// Runs one step of removing `n`'s objects; what is gone already is no error.
pub fn remove_step(n: &VpcNet, step: Step) -> Result<(), NetworkError> {
    let _one = one_at_a_time();
    unmake_step(n, step)
}

fn unmake_step(n: &VpcNet, step: Step) -> Result<(), NetworkError> {
    let gone = |r: Result<String, NetworkError>| match r {
        Err(NetworkError::Host { reason, .. }) if reason.contains("Cannot find device") => Ok(()),
        r => r.map(drop),
    };
    match step {
        Step::Veth if link_exists(&n.veth()) => gone(run_ip(&["link", "del", "dev", &n.veth()])),
        Step::Uplink if link_exists(&n.uplink()) => {
            gone(run_ip(&["link", "del", "dev", &n.uplink()]))
        }
        Step::Netns if netns_exists(&n.netns()) => run_ip(&["netns", "del", &n.netns()]).map(drop),
        Step::Bridge if link_exists(&n.bridge()) => {
            gone(run_ip(&["link", "del", "dev", &n.bridge()]))
        }
        _ => Ok(()),
    }
}

/// Removes `n`'s host objects, whatever part of them exists.
pub fn remove(n: &VpcNet) -> Result<(), NetworkError> {
    let _one = one_at_a_time();
    for s in REMOVE_STEPS {
        unmake_step(n, *s)?;
    }
    Ok(())
}

/// The host objects under a prefix, by kind, from one listing of links and one of
/// namespaces.
#[derive(Debug, Default)]
pub struct Present {
    pub bridges: BTreeSet<u64>,
    pub veths: BTreeSet<u64>,
    pub netns: BTreeSet<u64>,
    pub uplinks: BTreeSet<u64>,
}

impl Present {
    /// Every VPC number with any object.
    pub fn any(&self) -> BTreeSet<u64> {
        let mut all = self.bridges.clone();
        all.extend(&self.veths);
        all.extend(&self.netns);
        all.extend(&self.uplinks);
        all
    }

    /// True when VPC `seq` has all three objects.
    pub fn complete(&self, seq: u64) -> bool {
        self.bridges.contains(&seq) && self.veths.contains(&seq) && self.netns.contains(&seq)
    }
}

/// The objects under `prefix`: bridges, veths and router namespaces named as
/// `VpcNet` names them.
pub fn present(prefix: &str) -> Result<Present, NetworkError> {
    let mut p = Present::default();
    let links = run_ip(&["-o", "link", "show"])?;
    for line in links.lines() {
        // "12: skvb3: <...>" or "13: skvg3@if2: <...>"
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        if let Some(seq) = rest.strip_prefix('b').and_then(parse_seq) {
            p.bridges.insert(seq);
        } else if let Some(seq) = rest.strip_prefix('g').and_then(parse_seq) {
            p.veths.insert(seq);
        } else if let Some(seq) = rest.strip_prefix('u').and_then(parse_seq) {
            p.uplinks.insert(seq);
        }
    }
    let ns_prefix = format!("skiff-vpc-{prefix}-");
    if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(seq) = name.strip_prefix(&ns_prefix).and_then(parse_seq) {
                p.netns.insert(seq);
            }
        }
    }
    Ok(p)
}

fn parse_seq(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_and_never_look_like_taps() {
        let n = VpcNet {
            prefix: "abcdef".into(),
            seq: MAX_SEQ,
        };
        assert!(
            n.bridge().len() <= 15 && n.veth().len() <= 15,
            "{}",
            n.bridge()
        );
        assert_eq!(n.netns(), "skiff-vpc-abcdef-16777215");
        assert_eq!(parse_seq("16777215"), Some(MAX_SEQ));
        for bad in ["", "123456789", "1a", "r0"] {
            assert_eq!(parse_seq(bad), None, "{bad}");
        }
    }
}
