//! A DHCPv4 responder with static bindings only (RFC 2131 subset): it answers the
//! MACs it was given with their one address, and nothing else. It runs in a VPC's
//! router namespace, so a NIC hot-plugged into a running guest gets its address
//! without a change to the guest's seed. The packets are tenant input: the parser
//! bounds-checks every field and answers only well-formed requests.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::NetworkError;

/// What one MAC is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// Sent only to a NIC that should route through the VPC (a VPC-only VM): a
    /// second default route would hijack a dual-homed guest's traffic.
    pub router: Option<Ipv4Addr>,
    pub mtu: Option<u16>,
    pub dns: Vec<Ipv4Addr>,
}

/// MAC → binding, shared with the responder thread.
pub type Bindings = Arc<RwLock<HashMap<[u8; 6], Binding>>>;

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const HEADER: usize = 240;
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;
/// One day: a restart of skiff (which runs the responder) is far shorter.
pub const LEASE_SECS: u32 = 86_400;

/// A request's fields that matter here.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    kind: u8,
    xid: [u8; 4],
    flags: [u8; 2],
    ciaddr: Ipv4Addr,
    giaddr: [u8; 4],
    mac: [u8; 6],
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
}

fn ip_at(p: &[u8], at: usize) -> Option<Ipv4Addr> {
    let b: [u8; 4] = p.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

fn parse(p: &[u8]) -> Option<Request> {
    if p.len() < HEADER || p[0] != BOOTREQUEST || p[1] != 1 || p[2] != 6 {
        return None;
    }
    if p[236..240] != MAGIC {
        return None;
    }
    let mut kind = None;
    let mut requested = None;
    let mut server_id = None;
    let mut i = HEADER;
    while i < p.len() {
        let code = p[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        let len = *p.get(i + 1)? as usize;
        let data = p.get(i + 2..i + 2 + len)?;
        match (code, len) {
            (53, 1) => kind = Some(data[0]),
            (50, 4) => requested = ip_at(data, 0),
            (54, 4) => server_id = ip_at(data, 0),
            _ => {}
        }
        i += 2 + len;
    }
    Some(Request {
        kind: kind?,
        xid: p[4..8].try_into().ok()?,
        flags: p[10..12].try_into().ok()?,
        ciaddr: ip_at(p, 12)?,
        giaddr: p[24..28].try_into().ok()?,
        mac: p[28..34].try_into().ok()?,
        requested,
        server_id,
    })
}

fn mask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(
        u32::MAX
            .checked_shl(32 - u32::from(prefix.min(32)))
            .unwrap_or(0),
    )
}

fn reply(
    r: &Request,
    kind: u8,
    yiaddr: Ipv4Addr,
    server: Ipv4Addr,
    b: Option<&Binding>,
) -> Vec<u8> {
    let mut p = vec![0u8; HEADER];
    p[0] = BOOTREPLY;
    p[1] = 1;
    p[2] = 6;
    p[4..8].copy_from_slice(&r.xid);
    p[10..12].copy_from_slice(&r.flags);
    if kind == ACK {
        p[12..16].copy_from_slice(&r.ciaddr.octets());
    }
    p[16..20].copy_from_slice(&yiaddr.octets());
    p[24..28].copy_from_slice(&r.giaddr);
    p[28..34].copy_from_slice(&r.mac);
    p[236..240].copy_from_slice(&MAGIC);
    let mut opt = |code: u8, data: &[u8]| {
        p.push(code);
        p.push(data.len() as u8);
        p.extend_from_slice(data);
    };
    opt(53, &[kind]);
    opt(54, &server.octets());
    if let Some(b) = b {
        opt(51, &LEASE_SECS.to_be_bytes());
        opt(58, &(LEASE_SECS / 2).to_be_bytes());
        opt(59, &(LEASE_SECS / 8 * 7).to_be_bytes());
        opt(1, &mask(b.prefix).octets());
        if let Some(gw) = b.router {
            opt(3, &gw.octets());
        }
        if !b.dns.is_empty() {
            let d: Vec<u8> = b.dns.iter().take(8).flat_map(|a| a.octets()).collect();
            opt(6, &d);
        }
        if let Some(m) = b.mtu {
            opt(26, &m.to_be_bytes());
        }
    }
    p.push(255);
    // BOOTP's minimum message, which some clients insist on.
    if p.len() < 300 {
        p.resize(300, 0);
    }
    p
}

/// The answer to one packet from a guest, or none: a MAC without a binding, another
/// server's transaction, or anything that is not a well-formed DISCOVER or REQUEST.
pub fn answer(
    packet: &[u8],
    server: Ipv4Addr,
    lookup: impl Fn(&[u8; 6]) -> Option<Binding>,
) -> Option<Vec<u8>> {
    let r = parse(packet)?;
    let b = lookup(&r.mac)?;
    match r.kind {
        DISCOVER => Some(reply(&r, OFFER, b.ip, server, Some(&b))),
        REQUEST => {
            if r.server_id.is_some_and(|s| s != server) {
                return None;
            }
            let asked = r
                .requested
                .or((!r.ciaddr.is_unspecified()).then_some(r.ciaddr));
            if asked == Some(b.ip) {
                Some(reply(&r, ACK, b.ip, server, Some(&b)))
            } else {
                Some(reply(&r, NAK, Ipv4Addr::UNSPECIFIED, server, None))
            }
        }
        _ => None,
    }
}

/// A responder thread in one network namespace; stops when dropped.
pub struct Responder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn host_err(what: &str, e: impl std::fmt::Display) -> NetworkError {
    NetworkError::Host {
        what: what.into(),
        reason: e.to_string(),
    }
}

/// Starts answering on `dev` (port 67) inside the named namespace `netns` as
/// `server`; returns once the socket is bound, or why it could not be.
pub fn spawn(
    netns: &str,
    dev: &str,
    server: Ipv4Addr,
    bindings: Bindings,
) -> Result<Responder, NetworkError> {
    let ns = std::fs::File::open(format!("/run/netns/{netns}"))
        .map_err(|e| host_err(&format!("opening namespace {netns}"), e))?;
    let dev = dev.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let halt = stop.clone();
    let name = netns.to_string();
    let thread = std::thread::Builder::new()
        .name(format!("dhcp-{netns}"))
        .spawn(move || {
            let sock = match bind_in(&ns, &dev) {
                Ok(s) => {
                    let _ = tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            serve(&sock, server, &bindings, &halt, &name);
        })
        .map_err(|e| host_err("starting a DHCP thread", e))?;
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(Responder {
            stop,
            thread: Some(thread),
        }),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(host_err("starting a DHCP thread", e)),
    }
}

/// A UDP socket on port 67 of `dev` in namespace `ns` (this thread moves there for
/// good; the socket stays in it).
fn bind_in(ns: &std::fs::File, dev: &str) -> Result<UdpSocket, NetworkError> {
    // SAFETY: setns on a valid namespace fd changes only this thread's namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(host_err(
            "entering the router namespace",
            std::io::Error::last_os_error(),
        ));
    }
    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67))
        .map_err(|e| host_err("binding DHCP port 67", e))?;
    let name = std::ffi::CString::new(dev).map_err(|e| host_err("device name", e))?;
    // SAFETY: the fd is open for the call; the option value is a NUL-terminated
    // device name whose length is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.as_bytes_with_nul().len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(host_err(
            "binding to the router's device",
            std::io::Error::last_os_error(),
        ));
    }
    sock.set_broadcast(true)
        .map_err(|e| host_err("SO_BROADCAST", e))?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| host_err("read timeout", e))?;
    Ok(sock)
}

fn serve(sock: &UdpSocket, server: Ipv4Addr, bindings: &Bindings, stop: &AtomicBool, ns: &str) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::SeqCst) {
        let n = match sock.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::warn!(netns = ns, error = %e, "DHCP receive");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let lookup = |mac: &[u8; 6]| {
            bindings
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(mac)
                .cloned()
        };
        if let Some(out) = answer(&buf[..n], server, lookup) {
            // The client has no address yet: every reply is a broadcast on the segment,
            // matched by the client through xid and chaddr.
            let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);
            if let Err(e) = sock.send_to(&out, to) {
                tracing::warn!(netns = ns, error = %e, "DHCP send");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 1, 2, 3];

    fn request(kind: u8, mac: [u8; 6], extra: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; HEADER];
        p[0] = BOOTREQUEST;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&[1, 2, 3, 4]);
        p[28..34].copy_from_slice(&mac);
        p[236..240].copy_from_slice(&MAGIC);
        p.extend_from_slice(&[53, 1, kind]);
        p.extend_from_slice(extra);
        p.push(255);
        p
    }

    fn binding() -> Binding {
        Binding {
            ip: Ipv4Addr::new(10, 0, 1, 2),
            prefix: 24,
            router: None,
            mtu: Some(1450),
            dns: vec![],
        }
    }

    fn lookup(mac: &[u8; 6]) -> Option<Binding> {
        (*mac == MAC).then(binding)
    }

    /// The options of a reply, by code.
    fn options(p: &[u8]) -> HashMap<u8, Vec<u8>> {
        let mut out = HashMap::new();
        let mut i = HEADER;
        while i < p.len() && p[i] != 255 {
            if p[i] == 0 {
                i += 1;
                continue;
            }
            let len = p[i + 1] as usize;
            out.insert(p[i], p[i + 2..i + 2 + len].to_vec());
            i += 2 + len;
        }
        out
    }

    #[test]
    fn discover_and_request_get_the_binding_and_nothing_else() {
        let gw = Ipv4Addr::new(10, 0, 1, 1);
        let offer = answer(&request(DISCOVER, MAC, &[]), gw, lookup).unwrap();
        assert_eq!(offer[0], BOOTREPLY);
        assert_eq!(&offer[4..8], &[1, 2, 3, 4]);
        assert_eq!(&offer[16..20], &[10, 0, 1, 2]);
        assert_eq!(&offer[28..34], &MAC);
        let o = options(&offer);
        assert_eq!(o[&53], [OFFER]);
        assert_eq!(o[&54], [10, 0, 1, 1]);
        assert_eq!(o[&1], [255, 255, 255, 0]);
        assert_eq!(o[&26], 1450u16.to_be_bytes());
        assert!(!o.contains_key(&3), "no router for a dual-homed NIC");
        assert!(offer.len() >= 300);

        let ack = answer(
            &request(REQUEST, MAC, &[50, 4, 10, 0, 1, 2, 54, 4, 10, 0, 1, 1]),
            gw,
            lookup,
        )
        .unwrap();
        assert_eq!(options(&ack)[&53], [ACK]);
        assert_eq!(&ack[16..20], &[10, 0, 1, 2]);
        // Another address: NAK. Another server's transaction: silence.
        let nak = answer(&request(REQUEST, MAC, &[50, 4, 10, 0, 1, 9]), gw, lookup).unwrap();
        assert_eq!(options(&nak)[&53], [NAK]);
        assert_eq!(&nak[16..20], &[0, 0, 0, 0]);
        let other = request(REQUEST, MAC, &[50, 4, 10, 0, 1, 2, 54, 4, 10, 0, 1, 7]);
        assert!(answer(&other, gw, lookup).is_none());
        // Unknown MACs and other message types get nothing.
        assert!(answer(&request(DISCOVER, [2; 6], &[]), gw, lookup).is_none());
        assert!(answer(&request(7, MAC, &[]), gw, lookup).is_none());
        // A VPC-only VM's NIC is told its router.
        let routed = |_: &[u8; 6]| {
            Some(Binding {
                router: Some(gw),
                ..binding()
            })
        };
        let o = options(&answer(&request(DISCOVER, MAC, &[]), gw, routed).unwrap());
        assert_eq!(o[&3], [10, 0, 1, 1]);
    }

    #[test]
    fn malformed_packets_get_no_answer_and_no_panic() {
        let gw = Ipv4Addr::new(10, 0, 1, 1);
        let good = request(DISCOVER, MAC, &[]);
        // Every truncation, and every single byte changed to each of a few values.
        for n in 0..good.len() {
            let _ = answer(&good[..n], gw, lookup);
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 2, 6, 53, 99, 255] {
                let mut p = good.clone();
                p[i] = v;
                let _ = answer(&p, gw, lookup);
            }
        }
        // An option whose length runs past the end.
        let mut p = request(DISCOVER, MAC, &[]);
        p.pop();
        p.extend_from_slice(&[50, 200, 1]);
        assert!(
            answer(&p, gw, lookup).is_none(),
            "a truncated option spoils the packet"
        );
        let mut p = good.clone();
        p.truncate(HEADER);
        p.extend_from_slice(&[53, 5, 1]);
        assert!(answer(&p, gw, lookup).is_none());
        assert!(answer(&good[..HEADER - 1], gw, lookup).is_none());
        let mut bad_magic = good.clone();
        bad_magic[236] = 0;
        assert!(answer(&bad_magic, gw, lookup).is_none());
        assert!(answer(&[0u8; 1500], gw, lookup).is_none());
    }
}
