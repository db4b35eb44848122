//! The loaded eBPF firewall moving real packets: network namespaces play a host (a
//! bridge and the VMs' taps) and its VMs (one veth end each, `eth0`), the programs are
//! attached to the taps and real ping, TCP and UDP traffic checks default deny, rules
//! added and removed, connections surviving rule changes, remote-group-like rules,
//! anti-spoofing, counters and connection-tracking expiry. Needs root.
//!
//! Traffic stays between the namespaces each test creates; every command runs under
//! `timeout`; every namespace, background process and bpffs directory a test makes is
//! removed when its fixture drops, panics included (and leftovers of killed earlier
//! runs are swept at the next start).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use skiff::network::firewall::packet::{Spec, ICMP, ICMPV6, TCP, UDP};
use skiff::network::firewall::{
    link_local, AttachMode, Dir, Firewall, FwRule, NicPolicy, Prefix, Timeouts,
};

/// How the programs attach: `SKIFF_TEST_FW_ATTACH=tc` or `tcx` (scripts/test.sh runs
/// this file in both modes); unset, what the kernel has.
fn attach_mode() -> AttachMode {
    match std::env::var("SKIFF_TEST_FW_ATTACH").as_deref() {
        Err(_) | Ok("") | Ok("auto") => AttachMode::detect(),
        Ok(m) => AttachMode::parse(m).unwrap_or_else(|| panic!("SKIFF_TEST_FW_ATTACH={m}?")),
    }
}

/// VM indexes in a fixture.
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// Root, or a loud skip (a failure under CI, which runs as root).
fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "eBPF network-namespace tests need root; CI runs as root"
        );
        eprintln!("\n!!!!!!!! SKIP: not root: the eBPF firewall netns tests need root !!!!!!!!\n");
        return false;
    }
    true
}

/// Runs `args` under `timeout 15`.
fn cmd(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("15")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", args.join(" ")))
}

fn must(args: &[&str]) {
    let o = cmd(args);
    assert!(
        o.status.success(),
        "`{}` failed ({}): {}{}",
        args.join(" "),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The real interpreter behind `python3` (a pyenv shim costs ~100 ms a start).
fn python() -> &'static str {
    static P: OnceLock<String> = OnceLock::new();
    P.get_or_init(|| {
        let o = cmd(&["python3", "-c", "import sys; print(sys.executable)"]);
        let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if o.status.success() && !p.is_empty() {
            p
        } else {
            "python3".into()
        }
    })
}

fn enter_netns(path: &str) {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    setns(&f);
}

fn setns(f: &File) {
    // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

fn pid_alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes namespaces and bpffs directories of earlier runs whose process is gone
/// (killed before its fixtures could drop). Only names this file makes are touched.
fn sweep_stale() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let Some(rest) = name.strip_prefix("skfw-") else {
                    continue;
                };
                let pid = rest.split('-').next().unwrap_or("");
                if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !pid_alive(pid) {
                    let _ = cmd(&["ip", "netns", "del", &name]);
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir("/sys/fs/bpf") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let Some(rest) = name.strip_prefix("skiff-test-netns-") else {
                    continue;
                };
                let pid = rest.split('-').next().unwrap_or("");
                if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !pid_alive(pid) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    });
}

fn rule(id: u64, dir: Dir, proto: Option<u8>, ports: (u16, u16), remotes: Vec<Prefix>) -> FwRule {
    FwRule {
        id,
        dir,
        proto,
        ports,
        remotes,
    }
}

fn any4() -> Vec<Prefix> {
    vec![Prefix::any(false)]
}

fn host(a: impl Into<IpAddr>) -> Prefix {
    Prefix::host(a.into())
}

struct Vm {
    ns: String,
    tap: String,
    mac: [u8; 6],
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    nic: u32,
}

impl Vm {
    fn mac_str(&self) -> String {
        self.mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// A host namespace with a bridge, VM namespaces on veth pairs, and the firewall loaded
/// on the taps. The test thread lives in the host namespace until the fixture drops.
struct Net {
    x: u8,
    host: String,
    vms: Vec<Vm>,
    pin: PathBuf,
    fw: Option<Firewall>,
    procs: Mutex<Vec<Child>>,
    home: Option<File>,
    made: Vec<String>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Net {
    /// `n` VMs (A, B, C ...), each attached with an unfiltered policy; None when skipping.
    fn new(n: usize) -> Option<Net> {
        if !root() {
            return None;
        }
        sweep_stale();
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let x = (pid.wrapping_mul(7).wrapping_add(k) % 200 + 20) as u8;
        let base = format!("skfw-{pid}-{k}");
        let mut net = Net {
            x,
            host: format!("{base}-h"),
            vms: Vec::new(),
            pin: format!("/sys/fs/bpf/skiff-test-netns-{pid}-{k}").into(),
            fw: None,
            procs: Mutex::new(Vec::new()),
            home: None,
            made: Vec::new(),
        };
        let h = net.host.clone();
        must(&["ip", "netns", "add", &h]);
        net.made.push(h.clone());
        must(&["ip", "-n", &h, "link", "set", "lo", "up"]);
        net.no_dad(&h);
        must(&[
            "ip",
            "-n",
            &h,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        must(&[
            "ip",
            "-n",
            &h,
            "addr",
            "add",
            &format!("10.77.{x}.1/24"),
            "dev",
            "br0",
        ]);
        must(&[
            "ip",
            "-n",
            &h,
            "addr",
            "add",
            &format!("fd77:{x}::1/64"),
            "dev",
            "br0",
            "nodad",
        ]);
        must(&["ip", "-n", &h, "link", "set", "br0", "up"]);
        for i in 0..n {
            let num = i as u8 + 1;
            let ns = format!("{base}-{}", (b'a' + i as u8) as char);
            must(&["ip", "netns", "add", &ns]);
            net.made.push(ns.clone());
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            net.no_dad(&ns);
            let vm = Vm {
                tap: format!("tap{num}-{k}"),
                mac: [0x52, 0x54, 0x00, 0x77, x, num],
                v4: format!("10.77.{x}.{}", 10 + num).parse().unwrap(),
                v6: format!("fd77:{x}::{}", 10 + num).parse().unwrap(),
                nic: u32::from(num),
                ns,
            };
            assert!(vm.tap.len() <= 15, "tap name {} too long", vm.tap);
            let ns = vm.ns.as_str();
            must(&[
                "ip", "-n", &h, "link", "add", &vm.tap, "type", "veth", "peer", "name", "eth0",
                "netns", ns,
            ]);
            must(&[
                "ip",
                "-n",
                ns,
                "link",
                "set",
                "eth0",
                "address",
                &vm.mac_str(),
            ]);
            must(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", vm.v4),
                "dev",
                "eth0",
            ]);
            must(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/64", vm.v6),
                "dev",
                "eth0",
                "nodad",
            ]);
            must(&["ip", "-n", &h, "link", "set", &vm.tap, "master", "br0"]);
            must(&["ip", "-n", &h, "link", "set", &vm.tap, "up"]);
            must(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
            net.vms.push(vm);
        }
        net.home = Some(File::open("/proc/thread-self/ns/net").expect("open own netns"));
        enter_netns(&format!("/run/netns/{h}"));
        let fw = Firewall::open_mode(&net.pin, Timeouts::default(), attach_mode())
            .expect("load the firewall");
        net.fw = Some(fw);
        let all: Vec<NicPolicy> = (0..n).map(|i| net.policy(i, false, vec![])).collect();
        net.sync(&all);
        net.assert_attached_as_configured();
        Some(net)
    }

    /// Classic TC: ids of the programs in skiff's filters on each tap's hooks, in
    /// order (`tc` shows no TCX links; in TCX mode the list is empty).
    fn attached_programs(&self) -> Vec<String> {
        if attach_mode() != AttachMode::Tc {
            return Vec::new();
        }
        let mut ids = Vec::new();
        for vm in &self.vms {
            for hook in ["ingress", "egress"] {
                let o = cmd(&[
                    "tc", "-n", &self.host, "filter", "show", "dev", &vm.tap, hook,
                ]);
                let text = String::from_utf8_lossy(&o.stdout).to_string();
                let mut found: Vec<String> = text
                    .lines()
                    .filter(|l| l.contains("skiff_"))
                    .filter_map(|l| l.split(" id ").nth(1))
                    .map(|r| r.split_whitespace().next().unwrap_or("").to_string())
                    .collect();
                assert_eq!(found.len(), 1, "{} {hook}: {text}", vm.tap);
                ids.append(&mut found);
            }
        }
        ids
    }

    /// In classic-TC mode the taps carry skiff's direct-action filters on both hooks;
    /// in TCX mode they carry none (the programs sit in pinned TCX links).
    fn assert_attached_as_configured(&self) {
        for vm in &self.vms {
            for hook in ["ingress", "egress"] {
                let o = cmd(&[
                    "tc", "-n", &self.host, "filter", "show", "dev", &vm.tap, hook,
                ]);
                let text = String::from_utf8_lossy(&o.stdout).to_string();
                match attach_mode() {
                    AttachMode::Tc => assert!(
                        text.contains("skiff_") && text.contains("direct-action"),
                        "{} {hook}: no classic filter: {text}",
                        vm.tap
                    ),
                    AttachMode::Tcx => assert!(
                        !text.contains("skiff_"),
                        "{} {hook}: a classic filter in TCX mode: {text}",
                        vm.tap
                    ),
                }
            }
        }
    }

    fn no_dad(&self, ns: &str) {
        must(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ]);
    }

    /// Drops the loaded firewall as a stopping skiff would (pinned maps and links stay).
    fn stop_firewall(&mut self) {
        drop(self.fw.take());
    }

    /// Loads the firewall again from the same pin directory, as a restarted skiff does.
    fn start_firewall(&mut self) {
        assert!(self.fw.is_none(), "stop the firewall first");
        self.fw = Some(
            Firewall::open_mode(&self.pin, Timeouts::default(), attach_mode())
                .expect("reload the firewall"),
        );
    }

    fn fw(&self) -> &Firewall {
        self.fw.as_ref().expect("firewall loaded")
    }

    fn vm(&self, i: usize) -> &Vm {
        &self.vms[i]
    }

    fn v4(&self, i: usize) -> IpAddr {
        self.vms[i].v4.into()
    }

    fn v6(&self, i: usize) -> IpAddr {
        self.vms[i].v6.into()
    }

    /// An address of the VMs' subnet that no VM has.
    fn unused_v4(&self) -> Ipv4Addr {
        format!("10.77.{}.99", self.x).parse().unwrap()
    }

    /// The policy of VM `i`: its MAC, IPv4, IPv6 and link-local address.
    fn policy(&self, i: usize, filtered: bool, rules: Vec<FwRule>) -> NicPolicy {
        let vm = self.vm(i);
        NicPolicy {
            nic: vm.nic,
            mac: vm.mac,
            addrs: vec![vm.v4.into(), vm.v6.into(), link_local(vm.mac)],
            filtered,
            egress_restricted: rules.iter().any(|r| r.dir == Dir::Out),
            rules,
        }
    }

    fn tap_of(&self, p: &NicPolicy) -> &str {
        &self
            .vms
            .iter()
            .find(|v| v.nic == p.nic)
            .expect("a policy of one of the fixture's VMs")
            .tap
    }

    /// `Firewall::sync` with these policies (one per VM: the others are removed).
    fn sync(&self, policies: &[NicPolicy]) {
        let targets: Vec<(String, NicPolicy)> = policies
            .iter()
            .map(|p| (self.tap_of(p).to_string(), p.clone()))
            .collect();
        let failed = self.fw().sync(&targets);
        assert!(
            failed.is_empty(),
            "sync must succeed on every tap: {failed:?}"
        );
    }

    /// `attach` + `set_policy` for one VM.
    fn set(&self, p: &NicPolicy) {
        let ix = self.fw().attach(self.tap_of(p)).expect("attach");
        self.fw().set_policy(ix, p).expect("set_policy");
    }

    fn counter(&self, id: u64) -> (u64, u64) {
        let c = self.fw().counters().expect("read counters");
        c.get(&id).map_or((0, 0), |c| (c.packets, c.bytes))
    }

    /// Runs a command in VM `i`'s namespace.
    fn exec(&self, i: usize, args: &[&str]) -> Output {
        let mut all = vec!["ip", "netns", "exec", self.vm(i).ns.as_str()];
        all.extend_from_slice(args);
        cmd(&all)
    }

    /// One echo request (1 s wait) from VM `from` to `to`, optionally from `src`.
    fn ping(&self, from: usize, to: IpAddr, src: Option<IpAddr>) -> bool {
        let to = to.to_string();
        let src = src.map(|s| s.to_string());
        let mut args = vec!["ping", "-n", "-q", "-c1", "-W1"];
        if to.contains(':') {
            args.push("-6");
        }
        if let Some(s) = &src {
            args.extend(["-I", s.as_str()]);
        }
        args.push(&to);
        self.exec(from, &args).status.success()
    }

    /// `n` echo requests 0.2 s apart; returns how many were answered.
    fn ping_n(&self, from: usize, to: IpAddr, n: u32) -> u32 {
        let to = to.to_string();
        let n = n.to_string();
        let o = self.exec(
            from,
            &["ping", "-n", "-q", "-c", &n, "-i", "0.2", "-W1", &to],
        );
        let text = String::from_utf8_lossy(&o.stdout);
        text.split(',')
            .find(|s| s.contains(" received"))
            .and_then(|s| s.trim().split(' ').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Whether a new TCP connection from VM `from` to `to:port` gets its data echoed
    /// (1 s connect and read timeout).
    fn tcp(&self, from: usize, to: IpAddr, port: u16) -> bool {
        let to = to.to_string();
        let port = port.to_string();
        let o = self.exec(from, &[python(), "-c", TCP_ONCE, &to, &port]);
        o.status.success()
    }

    /// Starts a background python script in VM `i`'s namespace, killed when the fixture
    /// drops (or when its `timeout` of 100 s ends).
    fn spawn(&self, i: usize, script: &str, args: &[&str]) -> Proc {
        let what = format!("{} {}", self.vm(i).ns, args.join(" "));
        let mut child = Command::new("timeout")
            .args([
                "100",
                "ip",
                "netns",
                "exec",
                &self.vm(i).ns,
                python(),
                "-u",
                "-c",
            ])
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.procs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        Proc {
            stdin,
            lines: rx,
            what,
        }
    }

    /// A TCP echo server on every address of VM `i` (IPv4 and IPv6), port `port`.
    fn echo_server(&self, i: usize, port: u16) -> Proc {
        let p = self.spawn(i, ECHO_SERVER, &[&port.to_string()]);
        p.expect("listening", Duration::from_secs(10));
        p
    }

    /// Whether VM `i`, sending an ARP request for `tpa` from its own MAC and sender
    /// address `spa`, gets an answer.
    fn arp(&self, i: usize, spa: Ipv4Addr, tpa: Ipv4Addr) -> bool {
        let mac = self.vm(i).mac_str();
        let (spa, tpa) = (spa.to_string(), tpa.to_string());
        let o = self.exec(i, &[python(), "-c", ARP_PROBE, "eth0", &mac, &spa, &tpa]);
        o.status.success()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let mut procs = std::mem::take(&mut *self.procs.lock().unwrap_or_else(|e| e.into_inner()));
        for c in &procs {
            // SAFETY: kill on the process group our child leads (not yet reaped).
            unsafe { libc::killpg(c.id() as i32, libc::SIGTERM) };
        }
        for c in procs.iter_mut() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(c.try_wait(), Ok(None)) {
                // SAFETY: as above; the leader is still not reaped.
                unsafe { libc::killpg(c.id() as i32, libc::SIGKILL) };
                let _ = c.wait();
            }
        }
        drop(self.fw.take());
        if let Some(home) = self.home.take() {
            setns(&home);
        }
        for ns in self.made.iter().rev() {
            let o = cmd(&["ip", "netns", "del", ns]);
            if !o.status.success() {
                eprintln!(
                    "cleanup: ip netns del {ns}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.pin);
    }
}

/// A background python process spoken to line by line.
struct Proc {
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    what: String,
}

impl Proc {
    fn line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|_| "<no answer>".into())
    }

    fn expect(&self, prefix: &str, timeout: Duration) {
        let l = self.line(timeout);
        assert!(
            l.starts_with(prefix),
            "{}: expected a line starting with {prefix:?}, got {l:?}",
            self.what
        );
    }

    /// Sends one command line and returns the answer line.
    fn ask(&mut self, line: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write to the agent");
        stdin.flush().expect("flush");
        self.line(Duration::from_secs(5))
    }
}

/// TCP echo server on `::` (IPv4 too), port argv[1].
const ECHO_SERVER: &str = r#"
import socket, sys, threading
srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
srv.bind(("::", int(sys.argv[1])))
srv.listen(64)
print("listening", flush=True)
def serve(c):
    with c:
        while True:
            try:
                d = c.recv(4096)
            except OSError:
                return
            if not d:
                return
            c.sendall(d)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// One TCP connection to argv[1]:argv[2]: exits 0 when its data comes back.
const TCP_ONCE: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    s = socket.create_connection((host, port), timeout=1.0)
    s.sendall(b"hello")
    d = s.recv(16)
    sys.exit(0 if d == b"hello" else 3)
except OSError as e:
    print("tcp %s:%d: %r" % (host, port, e))
    sys.exit(1)
"#;

/// A TCP connection kept open: prints "connected", then per stdin line sends it and
/// prints "ok <echo>" or "fail <why>" (1.5 s to answer).
const TCP_AGENT: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    s = socket.create_connection((host, port), timeout=2.0)
except OSError as e:
    print("error %r" % (e,), flush=True)
    sys.exit(1)
print("connected", flush=True)
s.settimeout(1.5)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    d = line.strip().encode()
    try:
        s.sendall(d)
        got = s.recv(4096)
        print("ok " + got.decode(errors="replace"), flush=True)
    except OSError as e:
        print("fail %r" % (e,), flush=True)
"#;

/// A UDP socket bound to argv[1]:argv[2]: prints "bound", then obeys stdin lines
/// "send HOST PORT DATA" (prints "sent") and "recv SECS" (prints "got DATA from A:P"
/// or "timeout").
const UDP_AGENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("bound", flush=True)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    w = line.split()
    try:
        if w[0] == "send":
            s.sendto(w[3].encode(), (w[1], int(w[2])))
            print("sent", flush=True)
        elif w[0] == "recv":
            s.settimeout(float(w[1]))
            d, a = s.recvfrom(4096)
            print("got %s from %s:%d" % (d.decode(errors="replace"), a[0], a[1]), flush=True)
    except socket.timeout:
        print("timeout", flush=True)
    except OSError as e:
        print("error %r" % (e,), flush=True)
"#;

/// Sends an ARP request on argv[1] from MAC argv[2], sender address argv[3], for
/// argv[4]; exits 0 when a reply for it to argv[3] arrives within 1.5 s.
const ARP_PROBE: &str = r#"
import socket, struct, sys, time
ifname, mac, spa, tpa = sys.argv[1:5]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0))
m = bytes.fromhex(mac.replace(":", ""))
sp, tp = socket.inet_aton(spa), socket.inet_aton(tpa)
s.send(b"\xff" * 6 + m + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
       + m + sp + b"\x00" * 6 + tp)
s.settimeout(0.2)
end = time.time() + 1.5
while time.time() < end:
    try:
        f = s.recv(128)
    except socket.timeout:
        continue
    if len(f) >= 42 and f[20:22] == b"\x00\x02" and f[28:32] == tp and f[38:42] == sp:
        sys.exit(0)
sys.exit(1)
"#;

/// Sends one raw frame (hex) on an interface.
const RAW_SEND: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
s.send(bytes.fromhex(sys.argv[2]))
"#;

/// Watches an interface (promiscuous) for `secs` seconds and prints the markers
/// (`SKM-` and four characters) of the frames it saw.
const L2_WATCH: &str = r#"
import socket, sys, time
ifname, secs = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 0))
s.settimeout(0.1)
print("ready", flush=True)
seen = set()
end = time.time() + secs
while time.time() < end:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    i = f.find(b"SKM-")
    if i >= 0:
        seen.add(f[i + 4:i + 8].decode(errors="replace"))
print("seen " + " ".join(sorted(seen)), flush=True)
"#;

const PORT: u16 = 8080;

#[test]
fn default_deny_inbound_open_egress_and_neighbour_discovery() {
    let Some(net) = Net::new(2) else { return };
    net.sync(&[net.policy(A, true, vec![]), net.policy(B, false, vec![])]);
    let _srv = net.echo_server(A, PORT);
    assert!(
        net.tcp(A, net.v4(A), PORT),
        "A reaches its own TCP server over loopback (the server is up)"
    );
    assert!(
        !net.ping(B, net.v4(A), None),
        "B -> A ping must be dropped: A is filtered with no rules"
    );
    assert!(
        !net.tcp(B, net.v4(A), PORT),
        "B -> A TCP connect must fail: A is filtered with no rules"
    );
    assert!(
        !net.ping(B, net.v6(A), None),
        "B -> A IPv6 ping must be dropped: A is filtered with no rules"
    );
    assert!(
        net.ping(A, net.v4(B), None),
        "A -> B ping must work: egress is open and the reply passes through conntrack"
    );
    let _srv_b = net.echo_server(B, PORT);
    assert!(
        net.tcp(A, net.v4(B), PORT),
        "A -> B TCP must work: egress is open and B's answers pass through conntrack"
    );
    assert!(
        net.ping(A, net.v6(B), None),
        "A -> B IPv6 ping must work: neighbour discovery passes and the reply is tracked"
    );
    assert!(
        !net.ping(B, net.v4(A), None),
        "B -> A ping must still be dropped after A pinged B (a different echo flow)"
    );
}

/// The programs on a tap whose policy is missing (not written yet, or removed) pass
/// nothing: the data plane fails closed, it never lets a NIC it cannot match through.
#[test]
fn a_tap_without_its_policy_passes_nothing() {
    let Some(net) = Net::new(2) else { return };
    let (pa, pb) = (net.policy(A, false, vec![]), net.policy(B, false, vec![]));
    net.sync(&[pa.clone(), pb.clone()]);
    assert!(net.ping(B, net.v4(A), None), "B -> A: A is unfiltered");
    assert!(net.fw().enforces(net.tap_of(&pa)));
    assert!(!net.fw().enforces("skfw-no-such"));
    let ix = net.fw().attach(net.tap_of(&pa)).expect("attach");
    net.fw().remove(ix).expect("remove");
    assert!(!net.fw().enforces(net.tap_of(&pa)));
    assert!(
        !net.ping(B, net.v4(A), None),
        "B -> A must be dropped: A's tap has the programs and no policy"
    );
    assert!(
        !net.ping(A, net.v4(B), None),
        "A -> B must be dropped: A's tap has the programs and no policy"
    );
    net.set(&pa);
    assert!(net.fw().enforces(net.tap_of(&pa)));
    assert!(
        net.ping(B, net.v4(A), None),
        "B -> A passes again once A's policy is back"
    );
}

#[test]
fn rule_added_allows_and_removed_denies_again() {
    let Some(net) = Net::new(2) else { return };
    let other = PORT + 1;
    let _srv = net.echo_server(A, PORT);
    let _srv2 = net.echo_server(A, other);
    net.sync(&[net.policy(A, true, vec![]), net.policy(B, false, vec![])]);
    assert!(
        !net.tcp(B, net.v4(A), PORT),
        "B -> A:{PORT} must fail before any rule"
    );
    let allow = rule(21, Dir::In, Some(TCP), (PORT, PORT), any4());
    net.set(&net.policy(A, true, vec![allow]));
    assert!(
        net.tcp(B, net.v4(A), PORT),
        "B -> A:{PORT} must connect once an INBOUND TCP {PORT} rule from 0.0.0.0/0 exists"
    );
    assert!(
        !net.tcp(B, net.v4(A), other),
        "B -> A:{other} must still fail: the rule is for port {PORT} only"
    );
    assert!(
        !net.ping(B, net.v4(A), None),
        "B -> A ping must still fail: the rule is for TCP only"
    );
    assert!(
        !net.tcp(B, net.v6(A), PORT),
        "B -> A:{PORT} over IPv6 must fail: the rule's remote is 0.0.0.0/0 (IPv4)"
    );
    net.set(&net.policy(A, true, vec![]));
    assert!(
        !net.tcp(B, net.v4(A), PORT),
        "B -> A:{PORT} must fail again after the rule was removed"
    );
}

#[test]
fn established_connection_survives_unrelated_rule_changes() {
    let Some(net) = Net::new(2) else { return };
    let _srv = net.echo_server(A, PORT);
    let allow = rule(31, Dir::In, Some(TCP), (PORT, PORT), any4());
    net.sync(&[
        net.policy(A, true, vec![allow.clone()]),
        net.policy(B, false, vec![]),
    ]);
    let (a, port) = (net.v4(A).to_string(), PORT.to_string());
    let mut conn = net.spawn(B, TCP_AGENT, &[&a, &port]);
    conn.expect("connected", Duration::from_secs(5));
    assert_eq!(
        conn.ask("one"),
        "ok one",
        "the allowed connection exchanges data"
    );

    let udp = rule(32, Dir::In, Some(UDP), (5353, 5353), any4());
    net.set(&net.policy(A, true, vec![allow.clone(), udp.clone()]));
    assert_eq!(
        conn.ask("two"),
        "ok two",
        "the established connection must keep working after an unrelated INBOUND UDP rule was added"
    );

    // Through sync as well, and with egress now restricted by an OUTBOUND rule: the
    // connection was admitted INBOUND, so its replies still pass.
    let dns = rule(33, Dir::Out, Some(UDP), (53, 53), any4());
    net.sync(&[
        net.policy(A, true, vec![allow.clone(), udp.clone(), dns.clone()]),
        net.policy(B, false, vec![]),
    ]);
    assert_eq!(
        conn.ask("three"),
        "ok three",
        "the established connection must keep working after an OUTBOUND rule restricted egress"
    );
    let (p, _) = net.counter(31);
    assert!(p > 0, "the allowing rule counted the connection's packets");

    net.set(&net.policy(A, true, vec![udp, dns]));
    let r = conn.ask("four");
    assert!(
        r.starts_with("fail"),
        "after the allowing rule was removed the connection must stop working; got {r:?}"
    );
}

#[test]
fn remote_rule_follows_membership() {
    let Some(net) = Net::new(3) else { return };
    let _srv = net.echo_server(A, PORT);
    let from = |i: usize| {
        rule(
            41,
            Dir::In,
            Some(TCP),
            (PORT, PORT),
            vec![host(net.vm(i).v4), host(net.vm(i).v6)],
        )
    };
    let others = [net.policy(B, false, vec![]), net.policy(C, false, vec![])];
    net.sync(&[
        net.policy(A, true, vec![from(B)]),
        others[0].clone(),
        others[1].clone(),
    ]);
    assert!(
        net.tcp(B, net.v4(A), PORT),
        "B (the group's member) must reach A"
    );
    assert!(net.tcp(B, net.v6(A), PORT), "B must reach A over IPv6 too");
    assert!(
        !net.tcp(C, net.v4(A), PORT),
        "C (not a member) must not reach A"
    );
    assert!(!net.tcp(C, net.v6(A), PORT), "C must not reach A over IPv6");

    net.sync(&[
        net.policy(A, true, vec![from(C)]),
        others[0].clone(),
        others[1].clone(),
    ]);
    assert!(
        net.tcp(C, net.v4(A), PORT),
        "C must reach A once the group's member is C"
    );
    assert!(net.tcp(C, net.v6(A), PORT), "C must reach A over IPv6 too");
    assert!(
        !net.tcp(B, net.v4(A), PORT),
        "B must not reach A any more once it left the group"
    );
    assert!(!net.tcp(B, net.v6(A), PORT), "nor over IPv6");
}

#[test]
fn spoofed_addresses_and_macs_are_dropped() {
    let Some(net) = Net::new(3) else { return };
    let icmp = rule(51, Dir::In, Some(ICMP), (0, 65535), any4());
    let icmp6 = rule(52, Dir::In, Some(ICMPV6), (0, 255), vec![Prefix::any(true)]);
    net.sync(&[
        net.policy(A, true, vec![icmp, icmp6]),
        net.policy(B, false, vec![]),
        net.policy(C, false, vec![]),
    ]);
    assert!(
        net.ping(B, net.v4(A), None),
        "B -> A ping must work: A allows ICMP from anywhere"
    );

    let spoof = net.unused_v4();
    let spoof_cidr = format!("{spoof}/24");
    let b_ns = net.vm(B).ns.clone();
    must(&["ip", "-n", &b_ns, "addr", "add", &spoof_cidr, "dev", "eth0"]);
    let before = net.counter(51);
    assert!(
        !net.ping(B, net.v4(A), Some(spoof.into())),
        "B pinging A from {spoof} (not B's address) must be dropped"
    );
    assert_eq!(
        net.counter(51),
        before,
        "the spoofed echo request must not reach A (its ICMP rule counted nothing)"
    );
    must(&["ip", "-n", &b_ns, "addr", "del", &spoof_cidr, "dev", "eth0"]);
    assert!(
        net.ping(B, net.v4(A), None),
        "B -> A ping from B's own address works again"
    );

    assert!(
        net.ping(B, net.v6(A), None),
        "B -> A IPv6 ping must work: A allows ICMPv6 from anywhere"
    );
    let spoof6 = format!("fd77:{}::99", net.x);
    let spoof6_cidr = format!("{spoof6}/64");
    must(&[
        "ip",
        "-n",
        &b_ns,
        "addr",
        "add",
        &spoof6_cidr,
        "dev",
        "eth0",
        "nodad",
    ]);
    let before = net.counter(52);
    assert!(
        !net.ping(B, net.v6(A), Some(spoof6.parse().unwrap())),
        "B pinging A from {spoof6} (not B's address) must be dropped"
    );
    assert_eq!(
        net.counter(52),
        before,
        "the spoofed IPv6 echo request must not reach A (its ICMPv6 rule counted nothing)"
    );
    must(&[
        "ip",
        "-n",
        &b_ns,
        "addr",
        "del",
        &spoof6_cidr,
        "dev",
        "eth0",
    ]);

    assert!(
        net.arp(B, net.vm(B).v4, net.vm(A).v4),
        "B's ARP request for A from its own address is answered"
    );
    assert!(
        !net.arp(B, spoof, net.vm(A).v4),
        "B's ARP request claiming {spoof} must be dropped"
    );
    assert!(
        !net.arp(B, net.vm(C).v4, net.vm(A).v4),
        "B's ARP request claiming C's address must be dropped"
    );

    let mac = net.vm(B).mac_str();
    let fake = format!("52:54:00:77:{:02x}:ee", net.x);
    must(&["ip", "-n", &b_ns, "link", "set", "eth0", "address", &fake]);
    assert!(
        !net.ping(B, net.v4(A), None),
        "B's traffic from MAC {fake} (not its own) must be dropped"
    );
    assert!(
        !net.ping(B, net.v4(C), None),
        "B's traffic from MAC {fake} must be dropped towards an unfiltered VM too"
    );
    must(&["ip", "-n", &b_ns, "link", "set", "eth0", "address", &mac]);
    assert!(
        net.ping(B, net.v4(A), None),
        "B -> A ping works again with B's own MAC"
    );
}

#[test]
fn counters_count_admitted_flows() {
    let Some(net) = Net::new(2) else { return };
    let _srv = net.echo_server(A, PORT);
    net.sync(&[
        net.policy(
            A,
            true,
            vec![
                rule(61, Dir::In, Some(ICMP), (0, 65535), any4()),
                rule(62, Dir::In, Some(TCP), (PORT, PORT), any4()),
            ],
        ),
        net.policy(B, false, vec![]),
    ]);
    assert_eq!(net.counter(61), (0, 0), "a new rule starts at zero");
    assert_eq!(net.counter(62), (0, 0), "a new rule starts at zero");

    assert_eq!(
        net.ping_n(B, net.v4(A), 3),
        3,
        "B's 3 pings to A are answered"
    );
    let (p1, b1) = net.counter(61);
    eprintln!("rule 61 after 3 pings: {p1} packets, {b1} bytes");
    assert_eq!(
        p1, 6,
        "3 echo requests and 3 replies are counted on the ICMP rule (both ways)"
    );
    assert!(b1 >= p1 * 84, "bytes count whole packets ({b1} for {p1})");

    assert_eq!(net.ping_n(B, net.v4(A), 2), 2, "2 more pings are answered");
    let (p2, b2) = net.counter(61);
    assert_eq!(p2, p1 + 4, "the counter grows by 2 packets per ping");
    assert!(b2 > b1, "bytes grow too ({b1} -> {b2})");
    assert_eq!(net.counter(62), (0, 0), "the TCP rule counted no ICMP");

    assert!(net.tcp(B, net.v4(A), PORT), "B -> A TCP is allowed");
    let (p3, b3) = net.counter(62);
    assert!(
        p3 >= 4 && b3 > 0,
        "the TCP rule counts the connection's packets ({p3} packets, {b3} bytes)"
    );
    assert_eq!(net.counter(61), (p2, b2), "the ICMP rule counted no TCP");
}

#[test]
fn expired_udp_flow_no_longer_admits_replies() {
    let Some(net) = Net::new(2) else { return };
    net.sync(&[
        net.policy(
            A,
            true,
            vec![rule(71, Dir::In, Some(TCP), (22, 22), any4())],
        ),
        net.policy(B, false, vec![]),
    ]);
    net.fw()
        .set_timeouts(Timeouts {
            udp_secs: 1,
            ..Timeouts::default()
        })
        .expect("set timeouts");
    let (a, b) = (net.v4(A).to_string(), net.v4(B).to_string());
    let mut ua = net.spawn(A, UDP_AGENT, &[&a, "40000"]);
    let mut ub = net.spawn(B, UDP_AGENT, &[&b, "40001"]);
    ua.expect("bound", Duration::from_secs(10));
    ub.expect("bound", Duration::from_secs(10));
    let to_a = format!("send {a} 40000");
    let to_b = format!("send {b} 40001");

    assert_eq!(ub.ask(&format!("{to_a} early")), "sent");
    assert_eq!(
        ua.ask("recv 1"),
        "timeout",
        "B -> A:40000 must be dropped before A sent anything (default deny)"
    );

    assert_eq!(ua.ask(&format!("{to_b} hello")), "sent");
    assert_eq!(
        ub.ask("recv 2"),
        format!("got hello from {a}:40000"),
        "A's datagram to B passes (egress open)"
    );
    assert_eq!(ub.ask(&format!("{to_a} reply1")), "sent");
    assert_eq!(
        ua.ask("recv 2"),
        format!("got reply1 from {b}:40001"),
        "B's reply to A passes (tracked flow)"
    );
    assert_eq!(ub.ask(&format!("{to_a} reply2")), "sent");
    assert_eq!(
        ua.ask("recv 2"),
        format!("got reply2 from {b}:40001"),
        "a second reply within the 1 s timeout passes too"
    );

    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(ub.ask(&format!("{to_a} late")), "sent");
    assert_eq!(
        ua.ask("recv 1.5"),
        "timeout",
        "2.5 s after the flow's last packet (UDP timeout 1 s) B's datagram must be dropped"
    );

    assert_eq!(ua.ask(&format!("{to_b} again")), "sent");
    assert_eq!(
        ub.ask("recv 2"),
        format!("got again from {a}:40000"),
        "A can open the flow again"
    );
    assert_eq!(ub.ask(&format!("{to_a} reply3")), "sent");
    assert_eq!(
        ua.ask("recv 2"),
        format!("got reply3 from {b}:40001"),
        "and B's reply to the new flow passes"
    );
}

#[test]
fn enforcement_and_connections_survive_a_restart() {
    let Some(mut net) = Net::new(2) else { return };
    let _srv = net.echo_server(A, PORT);
    let allow = rule(81, Dir::In, Some(TCP), (PORT, PORT), any4());
    let policies = [
        net.policy(A, true, vec![allow.clone()]),
        net.policy(B, false, vec![]),
    ];
    net.sync(&policies);
    let (a, port) = (net.v4(A).to_string(), PORT.to_string());
    let mut conn = net.spawn(B, TCP_AGENT, &[&a, &port]);
    conn.expect("connected", Duration::from_secs(5));
    assert_eq!(
        conn.ask("one"),
        "ok one",
        "the allowed connection exchanges data"
    );

    net.stop_firewall();
    assert!(
        !net.ping(B, net.v4(A), None),
        "with skiff stopped, the pinned programs and maps must keep denying B -> A ping"
    );
    assert_eq!(
        conn.ask("two"),
        "ok two",
        "with skiff stopped, the established connection must keep working"
    );
    assert!(
        net.tcp(B, net.v4(A), PORT),
        "with skiff stopped, the rule must still admit new connections"
    );

    let before = net.attached_programs();
    net.start_firewall();
    net.sync(&policies);
    let after = net.attached_programs();
    assert_eq!(
        before.len(),
        after.len(),
        "one program per hook: {before:?} {after:?}"
    );
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(
            b, a,
            "the restarted firewall's own programs enforce: {before:?} {after:?}"
        );
    }
    net.assert_attached_as_configured();
    assert_eq!(
        conn.ask("three"),
        "ok three",
        "after a restart (programs replaced in place) the connection must keep working"
    );
    assert!(
        net.tcp(B, net.v4(A), PORT),
        "after a restart the rule must still admit new connections"
    );
    assert!(
        !net.ping(B, net.v4(A), None),
        "after a restart B -> A ping must still be dropped"
    );
    let (p, _) = net.counter(81);
    assert!(
        p > 0,
        "after a restart the rule's counter counts again ({p} packets)"
    );

    net.sync(&[net.policy(A, true, vec![]), policies[1].clone()]);
    assert!(
        !net.tcp(B, net.v4(A), PORT),
        "after a restart, removing the rule must deny new connections"
    );
    let r = conn.ask("four");
    assert!(
        r.starts_with("fail"),
        "after a restart, removing the rule must stop the connection; got {r:?}"
    );
}

/// After A pings B with id N, B's own echo *requests* with id N are a new flow that
/// A's rules decide (found by this file: the echo flow once matched either way).
#[test]
fn reverse_echo_request_with_the_same_id_is_a_new_flow() {
    let Some(net) = Net::new(2) else { return };
    net.sync(&[net.policy(A, true, vec![]), net.policy(B, false, vec![])]);
    let ping = |from: usize, to: IpAddr, id: &str| {
        let to = to.to_string();
        net.exec(from, &["ping", "-n", "-q", "-c1", "-W1", "-e", id, &to])
            .status
            .success()
    };
    assert!(ping(A, net.v4(B), "4242"), "A -> B ping (id 4242) works");
    assert!(
        !ping(B, net.v4(A), "4242"),
        "B's echo request to A with A's echo id must be dropped: A admits no inbound ICMP"
    );
    assert!(
        ping(A, net.v6(B), "4242"),
        "A -> B IPv6 ping (id 4242) works"
    );
    assert!(
        !ping(B, net.v6(A), "4242"),
        "B's IPv6 echo request to A with A's echo id must be dropped"
    );
}

/// Sends one UDP datagram on a connected socket; exit 0 when the kernel reports the
/// ICMP "port unreachable" that came back (ECONNREFUSED), 1 when nothing came.
const UDP_REFUSED: &str = r#"
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(1.5)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b'x')
try:
    s.recv(100)
    sys.exit(2)
except ConnectionRefusedError:
    sys.exit(0)
except socket.timeout:
    sys.exit(1)
"#;

#[test]
fn icmp_errors_about_tracked_flows_reach_a_vm_that_denies_inbound() {
    let Some(net) = Net::new(2) else { return };
    net.sync(&[net.policy(A, true, vec![]), net.policy(B, false, vec![])]);
    for to in [net.v4(B), net.v6(B)] {
        let o = net.exec(A, &[python(), "-c", UDP_REFUSED, &to.to_string(), "9"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "A's datagram to {to}:9 (closed) must come back refused: the ICMP error is \
             related to A's tracked flow although A admits no inbound ICMP"
        );
    }
    // Unrelated ICMP stays out: B's echo requests to A are still dropped.
    assert!(!net.ping(B, net.v4(A), None), "B -> A ping must be dropped");
}

/// A frame from `src` to `dst` whose last eight bytes are `SKM-<tag>`.
fn marked(mut s: Spec, tag: &str) -> Vec<u8> {
    s.payload = s.payload.max(8);
    let mut f = s.build();
    let n = f.len();
    f[n - 8..].copy_from_slice(format!("SKM-{tag}").as_bytes());
    f
}

fn hex(f: &[u8]) -> String {
    f.iter().map(|b| format!("{b:02x}")).collect()
}

/// Layer 2 cannot be abused: a VM sends no VLAN-tagged frames (802.1Q or 802.1ad,
/// whether the kernel moved the tag into metadata or not), no router advertisements,
/// no neighbour discovery naming another MAC; and it receives no unicast meant for
/// another MAC that the bridge floods. Each refused frame has a twin that passes.
#[test]
fn layer2_abuse_is_dropped() {
    let Some(net) = Net::new(2) else { return };
    net.sync(&[net.policy(A, false, vec![]), net.policy(B, false, vec![])]);
    let (a, b) = (net.vm(A), net.vm(B));
    must(&["ip", "-n", &b.ns, "link", "set", "eth0", "promisc", "on"]);
    let udp = |dst_mac: [u8; 6]| {
        let mut s = Spec::new(IpAddr::V4(a.v4), IpAddr::V4(b.v4), UDP);
        s.src_mac = a.mac;
        s.dst_mac = dst_mac;
        s.dport = 9;
        s
    };
    let icmp6 = |ty: u8, dst_mac: [u8; 6], payload: usize| {
        let mut s = Spec::new(IpAddr::V6(a.v6), "ff02::1".parse().unwrap(), ICMPV6);
        s.src_mac = a.mac;
        s.dst_mac = dst_mac;
        s.icmp_type = ty;
        s.payload = payload;
        s
    };
    let all_nodes = [0x33, 0x33, 0, 0, 0, 1];
    // Neighbour solicitations: a target, a source link-layer option, the marker.
    let ns = |sll: [u8; 6], tag: &str| {
        let mut f = marked(icmp6(135, all_nodes, 32), tag);
        let opt = 14 + 40 + 24;
        f[opt..opt + 2].copy_from_slice(&[1, 1]);
        f[opt + 2..opt + 8].copy_from_slice(&sll);
        f
    };
    let tagged = |tpid: [u8; 2], tag: &str| {
        let f = marked(udp(b.mac), tag);
        [&f[..12], &tpid[..], &[0, 100], &f[12..]].concat()
    };
    let flood_mac = [0x02, 0, 0, 0, 0x99, net.x];
    let frames: Vec<(&str, Vec<u8>)> = vec![
        ("ucst", marked(udp(b.mac), "ucst")),
        ("flod", marked(udp(flood_mac), "flod")),
        ("vlan", tagged([0x81, 0x00], "vlan")),
        ("qinq", tagged([0x88, 0xa8], "qinq")),
        ("nsok", ns(a.mac, "nsok")),
        ("nsbd", ns([2, 0, 0, 0, 0, 9], "nsbd")),
        ("rtad", marked(icmp6(134, all_nodes, 8), "rtad")),
        ("redr", marked(icmp6(137, b.mac, 40), "redr")),
    ];
    let watch = net.spawn(B, L2_WATCH, &["eth0", "3"]);
    watch.expect("ready", Duration::from_secs(5));
    for (_, f) in &frames {
        let o = net.exec(A, &[python(), "-c", RAW_SEND, "eth0", &hex(f)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let seen = watch.line(Duration::from_secs(10));
    let seen: Vec<&str> = seen
        .strip_prefix("seen")
        .unwrap_or_else(|| panic!("watcher: {seen}"))
        .split_whitespace()
        .collect();
    for (tag, want) in [
        ("ucst", true),
        ("nsok", true),
        ("flod", false),
        ("vlan", false),
        ("qinq", false),
        ("nsbd", false),
        ("rtad", false),
        ("redr", false),
    ] {
        assert_eq!(
            seen.contains(&tag),
            want,
            "frame {tag}: B {} it (saw {seen:?})",
            if want { "must see" } else { "must not see" }
        );
    }
}
