//! Loads the data plane, attaches it to taps and keeps its maps equal to the policies
//! it is given. Maps and TCX links are pinned under one bpffs directory (classic TC
//! filters live on the tap itself), so enforcement and connection tracking outlive a
//! restart of skiff; the next start replaces the programs in place (`bpf_link_update`,
//! or a netlink change of the same filter) and rewrites every NIC's rules.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aya::maps::{Array, HashMap as BpfHash, MapData, PerCpuHashMap};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::{
    qdisc_add_clsact, qdisc_detach_program, NlOptions, SchedClassifierLink, TcAttachOptions,
    TcAttachType, TcHandle,
};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};

use super::compile::{compile, Compiled};
use super::maps::*;
use super::{addr16, AttachMode, Counter, Dir, FirewallError, NicPolicy, Timeouts};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/firewall.o"));

const PROGRAMS: [(&str, TcAttachType, &str); 2] = [
    ("skiff_from_vm", TcAttachType::Ingress, "in"),
    ("skiff_to_vm", TcAttachType::Egress, "out"),
];

/// What was last written for one NIC.
struct Applied {
    policy: NicPolicy,
    cfg: NicCfg,
    compiled: Compiled,
    addrs: Vec<AddrKey>,
}

/// Where skiff's classic-TC filters sit on a tap's clsact hooks: one fixed priority and
/// handle, so a restarted skiff finds and replaces its own filter.
const TC_PRIORITY: u16 = 1;
const TC_HANDLE: TcHandle = TcHandle::new(0, 1);

struct Inner {
    bpf: Ebpf,
    dir: PathBuf,
    mode: AttachMode,
    /// Classic TC: the ifindexes this process attached to (a TCX link's pin says it).
    tc_attached: HashSet<u32>,
    applied: HashMap<u32, Applied>,
    /// NICs found in the pinned maps at start, written by an earlier process.
    orphans: HashMap<u32, NicCfg>,
    /// How many applied NICs carry each rule id (its counter lives while > 0).
    rule_refs: HashMap<u64, u32>,
}

/// The loaded data plane. All methods take `&self`; one lock serialises map updates.
pub struct Firewall {
    inner: Mutex<Inner>,
}

fn map_err(map: &'static str) -> impl Fn(String) -> FirewallError {
    move |reason| FirewallError::Map { map, reason }
}

fn map<'a>(bpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut aya::maps::Map, FirewallError> {
    bpf.map_mut(name)
        .ok_or_else(|| map_err(name)("missing from the object".into()))
}

macro_rules! typed {
    ($bpf:expr, $name:literal, $ty:ty) => {
        <$ty>::try_from(map($bpf, $name)?).map_err(|e| map_err($name)(e.to_string()))?
    };
}

fn ifindex(iface: &str) -> Option<u32> {
    let name = std::ffi::CString::new(iface).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (i != 0).then_some(i)
}

/// Mounts bpffs on /sys/fs/bpf when nothing is mounted there (hosts without systemd).
fn ensure_bpffs(dir: &Path) -> Result<(), FirewallError> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    if !dir.starts_with("/sys/fs/bpf") {
        return Ok(());
    }
    let path =
        std::ffi::CString::new("/sys/fs/bpf").map_err(|e| FirewallError::Load(e.to_string()))?;
    // SAFETY: statfs writes into `st`, a zeroed struct of the right type; `path` is valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } == 0 && st.f_type as i64 == BPF_FS_MAGIC {
        return Ok(());
    }
    let fstype = std::ffi::CString::new("bpf").map_err(|e| FirewallError::Load(e.to_string()))?;
    // SAFETY: all pointers are valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            path.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(FirewallError::Load(format!(
            "mount bpffs on /sys/fs/bpf: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn settings(t: Timeouts) -> Settings {
    let ns = |s: u64| s.saturating_mul(1_000_000_000);
    Settings {
        timeout_ns: [
            ns(t.tcp_secs),
            ns(t.udp_secs),
            ns(t.icmp_secs),
            ns(t.other_secs),
        ],
    }
}

impl Firewall {
    /// Loads the programs, reusing the maps pinned in `dir` (a bpffs directory), to be
    /// attached through TCX when the kernel has it, classic TC otherwise.
    pub fn open(dir: &Path, timeouts: Timeouts) -> Result<Firewall, FirewallError> {
        Self::open_mode(dir, timeouts, AttachMode::detect())
    }

    /// [`Firewall::open`] with the attach mode chosen.
    pub fn open_mode(
        dir: &Path,
        timeouts: Timeouts,
        mode: AttachMode,
    ) -> Result<Firewall, FirewallError> {
        ensure_bpffs(dir)?;
        let load = |e: String| FirewallError::Load(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir.join("links")).map_err(|e| load(e.to_string()))?;
        let mut bpf = EbpfLoader::new()
            .default_map_pin_directory(dir)
            .load(OBJECT)
            .map_err(|e| load(e.to_string()))?;
        for (name, _, _) in PROGRAMS {
            let prog: &mut SchedClassifier = bpf
                .program_mut(name)
                .ok_or_else(|| load(format!("program {name} missing")))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| load(e.to_string()))?;
            prog.load().map_err(|e| load(format!("{name}: {e}")))?;
        }
        let mut inner = Inner {
            bpf,
            dir: dir.to_path_buf(),
            mode,
            tc_attached: HashSet::new(),
            applied: HashMap::new(),
            orphans: HashMap::new(),
            rule_refs: HashMap::new(),
        };
        {
            let nics: BpfHash<&mut MapData, u32, NicCfg> =
                typed!(&mut inner.bpf, "skf_nics", BpfHash<_, u32, NicCfg>);
            for item in nics.iter() {
                let (ifindex, cfg) = item.map_err(|e| map_err("skf_nics")(e.to_string()))?;
                inner.orphans.insert(ifindex, cfg);
            }
        }
        inner.set_timeouts(timeouts)?;
        Ok(Firewall {
            inner: Mutex::new(inner),
        })
    }

    pub fn mode(&self) -> AttachMode {
        self.lock().mode
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_timeouts(&self, t: Timeouts) -> Result<(), FirewallError> {
        self.lock().set_timeouts(t)
    }

    /// Attaches both programs to `iface` (idempotent) and returns its ifindex.
    pub fn attach(&self, iface: &str) -> Result<u32, FirewallError> {
        self.lock().attach(iface)
    }

    /// Makes the maps enforce `policy` on `ifindex`; a no-op when it is unchanged.
    pub fn set_policy(&self, ifindex: u32, policy: &NicPolicy) -> Result<(), FirewallError> {
        self.lock().set_policy(ifindex, policy)
    }

    /// Whether `iface` exists and the maps hold a policy for it: what a guest's NIC
    /// needs before the guest may run.
    pub fn enforces(&self, iface: &str) -> bool {
        ifindex(iface).is_some_and(|ix| self.lock().applied.contains_key(&ix))
    }

    /// Stops enforcing anything on `ifindex` and forgets its entries.
    pub fn remove(&self, ifindex: u32) -> Result<(), FirewallError> {
        self.lock().remove(ifindex)
    }

    /// Makes the host match `targets` (tap name, policy): attaches to taps that exist,
    /// writes their policies, drops NICs and links that are gone. Returns the taps that
    /// failed, with why; the others are done regardless.
    pub fn sync(&self, targets: &[(String, NicPolicy)]) -> Vec<(String, FirewallError)> {
        let mut inner = self.lock();
        let mut failed = Vec::new();
        // The taps that exist now; the others (stopped VMs) have nothing to filter.
        let present: Vec<(&String, u32, &NicPolicy)> = targets
            .iter()
            .filter_map(|(iface, p)| Some((iface, ifindex(iface)?, p)))
            .collect();
        let keep: HashSet<u32> = present.iter().map(|(_, ix, _)| *ix).collect();
        let stale: Vec<u32> = inner
            .applied
            .keys()
            .chain(inner.orphans.keys())
            .copied()
            .filter(|ix| !keep.contains(ix))
            .collect();
        for ix in stale {
            if let Err(e) = inner.remove(ix) {
                failed.push((format!("ifindex {ix}"), e));
            }
        }
        let ifaces: HashSet<String> = present
            .iter()
            .map(|(iface, ix, _)| format!("{iface}-{ix}-"))
            .collect();
        inner.unpin_stale_links(&ifaces, &keep);
        for (iface, ix, policy) in present {
            let r = inner
                .attach_at(iface, ix)
                .and_then(|()| inner.set_policy(ix, policy));
            if let Err(e) = r {
                failed.push((iface.clone(), e));
            }
        }
        failed
    }

    /// Packets and bytes per rule id, summed over CPUs and NICs.
    pub fn counters(&self) -> Result<HashMap<u64, Counter>, FirewallError> {
        let mut inner = self.lock();
        let stats: PerCpuHashMap<&mut MapData, u64, Stat> =
            typed!(&mut inner.bpf, "skf_stats", PerCpuHashMap<_, u64, Stat>);
        let mut out = HashMap::new();
        for item in stats.iter() {
            let (id, per_cpu) = item.map_err(|e| map_err("skf_stats")(e.to_string()))?;
            let c: &mut Counter = out.entry(id).or_default();
            for s in per_cpu.iter() {
                c.packets += s.packets;
                c.bytes += s.bytes;
            }
        }
        Ok(out)
    }

    /// Forgets every tracked connection (tests).
    pub fn clear_conntrack(&self) -> Result<(), FirewallError> {
        let mut inner = self.lock();
        let mut ct: BpfHash<&mut MapData, CtKey, CtVal> =
            typed!(&mut inner.bpf, "skf_ct", BpfHash<_, CtKey, CtVal>);
        let keys: Vec<CtKey> = ct.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = ct.remove(&k);
        }
        Ok(())
    }

    /// Runs the program for `dir` on `frame` `repeat` times with BPF_PROG_TEST_RUN, as if
    /// it came through the interface `ifindex` (it must exist: 1, loopback, always does).
    /// Returns whether it passed and the mean run time in nanoseconds.
    pub fn test_run(
        &self,
        dir: Dir,
        frame: &[u8],
        repeat: u32,
    ) -> Result<(bool, u32), FirewallError> {
        let inner = self.lock();
        let name = match dir {
            Dir::Out => PROGRAMS[0].0,
            Dir::In => PROGRAMS[1].0,
        };
        let prog: &SchedClassifier = inner
            .bpf
            .program(name)
            .ok_or_else(|| FirewallError::TestRun(format!("{name} missing")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| FirewallError::TestRun(e.to_string()))?;
        let fd = prog
            .fd()
            .map_err(|e| FirewallError::TestRun(e.to_string()))?
            .as_fd()
            .as_raw_fd();
        test_run(fd, frame, repeat)
    }
}

/// `union bpf_attr` as BPF_PROG_TEST_RUN reads it.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

fn test_run(fd: i32, frame: &[u8], repeat: u32) -> Result<(bool, u32), FirewallError> {
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    let mut attr = TestRunAttr {
        prog_fd: fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: `attr` is a correctly laid out bpf_attr for this command; `data_in` points
    // at `frame`, alive for the call; no output buffers are given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>() as u32,
        )
    };
    if rc != 0 {
        return Err(FirewallError::TestRun(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    // TC_ACT_OK is 0, TC_ACT_SHOT 2.
    Ok((attr.retval == 0, attr.duration))
}

impl Inner {
    fn set_timeouts(&mut self, t: Timeouts) -> Result<(), FirewallError> {
        let mut arr: Array<&mut MapData, Settings> =
            typed!(&mut self.bpf, "skf_settings", Array<_, Settings>);
        arr.set(0, settings(t), 0)
            .map_err(|e| map_err("skf_settings")(e.to_string()))
    }

    fn link_path(&self, iface: &str, ix: u32, suffix: &str) -> PathBuf {
        self.dir
            .join("links")
            .join(format!("{iface}-{ix}-{suffix}"))
    }

    fn attach(&mut self, iface: &str) -> Result<u32, FirewallError> {
        let ix = ifindex(iface).ok_or_else(|| FirewallError::Attach {
            iface: iface.to_string(),
            reason: "no such interface".into(),
        })?;
        self.attach_at(iface, ix)?;
        Ok(ix)
    }

    /// Attaches both programs to `iface`, whose index is `ix` (idempotent).
    fn attach_at(&mut self, iface: &str, ix: u32) -> Result<(), FirewallError> {
        match self.mode {
            AttachMode::Tcx => self.attach_tcx(iface, ix)?,
            AttachMode::Tc => self.attach_tc(iface, ix)?,
        }
        Ok(())
    }

    /// Classic TC: a clsact qdisc and one direct-action filter per hook, at a fixed
    /// priority and handle. An earlier process's filter there gets this program in its
    /// place in one netlink change, so the tap is never without a filter.
    fn attach_tc(&mut self, iface: &str, ix: u32) -> Result<(), FirewallError> {
        if self.tc_attached.contains(&ix) {
            return Ok(());
        }
        let fail = |reason: String| FirewallError::Attach {
            iface: iface.to_string(),
            reason,
        };
        // Already there from an earlier process or another filter user: fine.
        let _ = qdisc_add_clsact(iface);
        for (name, kind, suffix) in PROGRAMS {
            let prog: &mut SchedClassifier = self
                .bpf
                .program_mut(name)
                .ok_or_else(|| fail(format!("{name} missing")))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| fail(e.to_string()))?;
            let opts = || {
                TcAttachOptions::Netlink(NlOptions {
                    priority: TC_PRIORITY,
                    handle: TC_HANDLE,
                    classid: None,
                })
            };
            let id = match prog.attach_with_options(iface, kind, opts()) {
                Ok(id) => id,
                Err(first) => {
                    let old =
                        SchedClassifierLink::attached(iface, kind, TC_PRIORITY, TC_HANDLE, None)
                            .map_err(|e| fail(e.to_string()))?;
                    prog.attach_to_link(old)
                        .map_err(|e| fail(format!("{first}; replacing: {e}")))?
                }
            };
            let link = prog.take_link(id).map_err(|e| fail(e.to_string()))?;
            // The filter belongs to the tap, not to this process: dropping the link
            // would detach it, so it is let go (a later start finds it by its handle).
            std::mem::forget(link);
            // A TCX link from an earlier run in the other mode: the filter replaces it.
            let _ = std::fs::remove_file(self.link_path(iface, ix, suffix));
        }
        self.tc_attached.insert(ix);
        Ok(())
    }

    fn attach_tcx(&mut self, iface: &str, ix: u32) -> Result<(), FirewallError> {
        let fail = |reason: String| FirewallError::Attach {
            iface: iface.to_string(),
            reason,
        };
        for (name, kind, suffix) in PROGRAMS {
            let path = self.link_path(iface, ix, suffix);
            let prog: &mut SchedClassifier = self
                .bpf
                .program_mut(name)
                .ok_or_else(|| fail(format!("{name} missing")))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| fail(e.to_string()))?;
            let prog_id = prog.info().map(|i| i.id()).ok();
            match PinnedLink::from_pin(&path) {
                Ok(pinned) => {
                    let fd: FdLink = pinned.into();
                    let same = fd
                        .info()
                        .ok()
                        .and_then(|i| Some(i.program_id() == prog_id?));
                    if same == Some(true) {
                        continue;
                    }
                    // An earlier process's link: put this program in its place.
                    let link =
                        SchedClassifierLink::try_from(fd).map_err(|e| fail(e.to_string()))?;
                    let id = prog.attach_to_link(link).map_err(|e| fail(e.to_string()))?;
                    let link = prog.take_link(id).map_err(|e| fail(e.to_string()))?;
                    drop(FdLink::try_from(link).map_err(|e| fail(e.to_string()))?);
                }
                Err(_) => {
                    let id = prog
                        .attach_with_options(
                            iface,
                            kind,
                            TcAttachOptions::TcxOrder(Default::default()),
                        )
                        .map_err(|e| fail(e.to_string()))?;
                    let link = prog.take_link(id).map_err(|e| fail(e.to_string()))?;
                    let fd = FdLink::try_from(link).map_err(|e| fail(e.to_string()))?;
                    fd.pin(&path).map_err(|e| fail(e.to_string()))?;
                    // A classic filter from an earlier run in the other mode goes, now
                    // that the TCX link enforces.
                    let _ = qdisc_detach_program(iface, kind, name);
                }
            }
        }
        Ok(())
    }

    /// Removes link pins whose `<iface>-<ifindex>-` is not in `keep`: their tap is gone
    /// (the kernel detached the link with it) or is not a VM's any more.
    fn unpin_stale_links(&mut self, keep: &HashSet<String>, present: &HashSet<u32>) {
        self.tc_attached.retain(|ix| present.contains(ix));
        let Ok(entries) = std::fs::read_dir(self.dir.join("links")) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(base) = name.rsplit_once('-').map(|(b, _)| format!("{b}-")) else {
                continue;
            };
            if !keep.contains(&base) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Deletes every entry of `slot` (after a restart, when what the earlier process
    /// wrote is not known).
    fn sweep_slot(&mut self, slot: u32) -> Result<(), FirewallError> {
        let mut remote: BpfHash<&mut MapData, RemoteKey, u32> =
            typed!(&mut self.bpf, "skf_remote", BpfHash<_, RemoteKey, u32>);
        let keys: Vec<RemoteKey> = remote
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.slot == slot)
            .collect();
        for k in keys {
            let _ = remote.remove(&k);
        }
        let mut ports: BpfHash<&mut MapData, PortKey, u64> =
            typed!(&mut self.bpf, "skf_ports", BpfHash<_, PortKey, u64>);
        let keys: Vec<PortKey> = ports
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.slot == slot)
            .collect();
        for k in keys {
            let _ = ports.remove(&k);
        }
        let mut masks: BpfHash<&mut MapData, u32, Masks> =
            typed!(&mut self.bpf, "skf_masks", BpfHash<_, u32, Masks>);
        let _ = masks.remove(&slot);
        Ok(())
    }

    fn write(&mut self, slot: u32, c: &Compiled) -> Result<(), FirewallError> {
        let mut remote: BpfHash<&mut MapData, RemoteKey, u32> =
            typed!(&mut self.bpf, "skf_remote", BpfHash<_, RemoteKey, u32>);
        for (k, cls) in &c.remote {
            remote
                .insert(k, cls, 0)
                .map_err(|e| map_err("skf_remote")(e.to_string()))?;
        }
        let mut ports: BpfHash<&mut MapData, PortKey, u64> =
            typed!(&mut self.bpf, "skf_ports", BpfHash<_, PortKey, u64>);
        for (k, rule) in &c.ports {
            ports
                .insert(k, rule, 0)
                .map_err(|e| map_err("skf_ports")(e.to_string()))?;
        }
        let mut masks: BpfHash<&mut MapData, u32, Masks> =
            typed!(&mut self.bpf, "skf_masks", BpfHash<_, u32, Masks>);
        masks
            .insert(slot, c.masks, 0)
            .map_err(|e| map_err("skf_masks")(e.to_string()))
    }

    fn erase(&mut self, slot: u32, c: &Compiled) -> Result<(), FirewallError> {
        let mut masks: BpfHash<&mut MapData, u32, Masks> =
            typed!(&mut self.bpf, "skf_masks", BpfHash<_, u32, Masks>);
        let _ = masks.remove(&slot);
        let mut remote: BpfHash<&mut MapData, RemoteKey, u32> =
            typed!(&mut self.bpf, "skf_remote", BpfHash<_, RemoteKey, u32>);
        for (k, _) in &c.remote {
            let _ = remote.remove(k);
        }
        let mut ports: BpfHash<&mut MapData, PortKey, u64> =
            typed!(&mut self.bpf, "skf_ports", BpfHash<_, PortKey, u64>);
        for (k, _) in &c.ports {
            let _ = ports.remove(k);
        }
        Ok(())
    }

    /// Moves one NIC's rules from `old` to `new` in the per-rule reference counts:
    /// creates the counters of rules no NIC had, drops those no NIC has any more.
    fn swap_rule_refs(
        &mut self,
        old: Option<&NicPolicy>,
        new: Option<&NicPolicy>,
    ) -> Result<(), FirewallError> {
        let ids = |p: Option<&NicPolicy>| -> HashSet<u64> {
            p.map(|p| p.rules.iter().map(|r| r.id).collect())
                .unwrap_or_default()
        };
        let (old, new) = (ids(old), ids(new));
        let mut created = Vec::new();
        for id in new.difference(&old) {
            let c = self.rule_refs.entry(*id).or_default();
            *c += 1;
            if *c == 1 {
                created.push(*id);
            }
        }
        let mut gone = Vec::new();
        for id in old.difference(&new) {
            if let Some(c) = self.rule_refs.get_mut(id) {
                *c -= 1;
                if *c == 0 {
                    self.rule_refs.remove(id);
                    gone.push(*id);
                }
            }
        }
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| map_err("skf_stats")(e.to_string()))?;
        let mut stats: PerCpuHashMap<&mut MapData, u64, Stat> =
            typed!(&mut self.bpf, "skf_stats", PerCpuHashMap<_, u64, Stat>);
        for id in created {
            // Kept when an earlier process left it: counters survive restarts.
            if stats.get(&id, 0).is_err() {
                let zero = aya::maps::PerCpuValues::try_from(vec![Stat::default(); ncpus])
                    .map_err(|e| map_err("skf_stats")(e.to_string()))?;
                stats
                    .insert(id, zero, 0)
                    .map_err(|e| map_err("skf_stats")(e.to_string()))?;
            }
        }
        for id in gone {
            let _ = stats.remove(&id);
        }
        Ok(())
    }

    fn set_policy(&mut self, ix: u32, policy: &NicPolicy) -> Result<(), FirewallError> {
        if let Some(a) = self.applied.get(&ix) {
            if a.policy == *policy {
                return Ok(());
            }
            if a.policy.nic != policy.nic {
                self.remove(ix)?;
            }
        }
        let orphan = self.orphans.remove(&ix);
        let prev_cfg = self.applied.get(&ix).map(|a| a.cfg).or(orphan);
        let gen = prev_cfg.map_or(0, |c| c.gen ^ 1);
        let slot = policy.nic * 2 + gen;
        if orphan.is_some() || prev_cfg.is_none() {
            // What an earlier process left in the slot about to be written.
            self.sweep_slot(slot)?;
        }
        let compiled = compile(policy, slot);
        self.write(slot, &compiled)?;

        let mut addrs: Vec<AddrKey> = policy
            .addrs
            .iter()
            .map(|a| AddrKey {
                ifindex: ix,
                family: if a.is_ipv4() { 4 } else { 6 },
                addr: addr16(*a),
            })
            .collect();
        addrs.sort_by_key(|k| (k.family, k.addr));
        addrs.dedup();
        {
            let mut m: BpfHash<&mut MapData, AddrKey, u8> =
                typed!(&mut self.bpf, "skf_addrs", BpfHash<_, AddrKey, u8>);
            for k in &addrs {
                m.insert(k, 1, 0)
                    .map_err(|e| map_err("skf_addrs")(e.to_string()))?;
            }
        }
        let mut flags = 0;
        if policy.filtered {
            flags |= F_FILTERED;
        }
        if policy.egress_restricted {
            flags |= F_EGRESS_RESTRICTED;
        }
        let cfg = NicCfg {
            nic: policy.nic,
            gen,
            version: prev_cfg.map_or(1, |c| c.version.wrapping_add(1)),
            flags,
            mac: policy.mac,
            pad: [0; 2],
        };
        {
            let mut nics: BpfHash<&mut MapData, u32, NicCfg> =
                typed!(&mut self.bpf, "skf_nics", BpfHash<_, u32, NicCfg>);
            nics.insert(ix, cfg, 0)
                .map_err(|e| map_err("skf_nics")(e.to_string()))?;
        }
        // The flip is done: the old slot and addresses can go.
        let old = self.applied.remove(&ix);
        match &old {
            Some(a) => self.erase(a.cfg.nic * 2 + a.cfg.gen, &a.compiled)?,
            None => {
                if let Some(c) = prev_cfg {
                    self.sweep_slot(c.nic * 2 + c.gen)?;
                }
            }
        }
        if let Some(a) = &old {
            let mut m: BpfHash<&mut MapData, AddrKey, u8> =
                typed!(&mut self.bpf, "skf_addrs", BpfHash<_, AddrKey, u8>);
            for k in a.addrs.iter().filter(|k| !addrs.contains(k)) {
                let _ = m.remove(k);
            }
        }
        self.applied.insert(
            ix,
            Applied {
                policy: policy.clone(),
                cfg,
                compiled,
                addrs,
            },
        );
        self.swap_rule_refs(old.as_ref().map(|a| &a.policy), Some(policy))
    }

    fn remove(&mut self, ix: u32) -> Result<(), FirewallError> {
        {
            let mut nics: BpfHash<&mut MapData, u32, NicCfg> =
                typed!(&mut self.bpf, "skf_nics", BpfHash<_, u32, NicCfg>);
            let _ = nics.remove(&ix);
        }
        let removed = self.applied.remove(&ix);
        if let Some(a) = &removed {
            self.erase(a.cfg.nic * 2 + a.cfg.gen, &a.compiled)?;
            let mut m: BpfHash<&mut MapData, AddrKey, u8> =
                typed!(&mut self.bpf, "skf_addrs", BpfHash<_, AddrKey, u8>);
            for k in &a.addrs {
                let _ = m.remove(k);
            }
        }
        if let Some(c) = self.orphans.remove(&ix) {
            self.sweep_slot(c.nic * 2)?;
            self.sweep_slot(c.nic * 2 + 1)?;
            let mut m: BpfHash<&mut MapData, AddrKey, u8> =
                typed!(&mut self.bpf, "skf_addrs", BpfHash<_, AddrKey, u8>);
            let keys: Vec<AddrKey> = m
                .keys()
                .filter_map(Result::ok)
                .filter(|k| k.ifindex == ix)
                .collect();
            for k in keys {
                let _ = m.remove(&k);
            }
        }
        self.swap_rule_refs(removed.as_ref().map(|a| &a.policy), None)
    }
}
