//! What the dashboard's overview shows: this host's capacity and what the account's
//! VMs take of it. Read from procfs and statvfs on each call (cheap, always current).

use super::{Principal, ServiceError, Services};
use crate::model::VmStatus;

/// Host capacity (operators only) and the caller's VMs by status.
pub struct HostOverview {
    /// `None` unless the caller may see operator diagnostics.
    pub host: Option<HostCapacity>,
    pub accel: Option<&'static str>,
    /// Why VMs cannot run, when they cannot.
    pub compute_down: Option<String>,
    /// Why security groups are not enforced, when they are not.
    pub firewall_down: Option<String>,
    pub vms_by_status: Vec<(&'static str, usize)>,
    pub vms_total: usize,
    pub vcpus_allocated: i64,
    pub ram_allocated_gib: i64,
    pub storage_allocated_gib: i64,
}

pub struct HostCapacity {
    pub cpus: usize,
    pub mem_total_mib: u64,
    pub mem_available_mib: u64,
    pub disk_total_gib: f64,
    pub disk_free_gib: f64,
}

fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
}

fn disk(path: &std::path::Path) -> Option<(f64, f64)> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory of
    // the right type; statvfs initialises it when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    let gib = |blocks: u64| (blocks as f64) * (st.f_frsize as f64) / (1u64 << 30) as f64;
    Some((gib(st.f_blocks), gib(st.f_bavail)))
}

impl Services {
    pub fn host_overview(&self, who: &Principal) -> Result<HostOverview, ServiceError> {
        let host = who.require("account.settings.view").is_ok().then(|| {
            let (disk_total_gib, disk_free_gib) = disk(&self.inner.data_dir).unwrap_or((0.0, 0.0));
            HostCapacity {
                cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
                mem_total_mib: meminfo("MemTotal").unwrap_or(0),
                mem_available_mib: meminfo("MemAvailable").unwrap_or(0),
                disk_total_gib,
                disk_free_gib,
            }
        });
        let mut counts = [
            VmStatus::Active,
            VmStatus::Passive,
            VmStatus::Initiating,
            VmStatus::Provisioning,
            VmStatus::Booting,
            VmStatus::Finalizing,
            VmStatus::Failure,
        ]
        .map(|s| (s, 0usize));
        let (mut vcpus, mut ram, mut storage, mut total) = (0, 0, 0, 0);
        for vm in self.inner.vms.all()? {
            if vm.account_id != who.account_id
                || vm.deleting
                || !who.can_see_project(&vm.project_id)
            {
                continue;
            }
            total += 1;
            vcpus += vm.vcpus;
            ram += vm.ram_gib;
            storage += vm.storage_gib + vm.added_storage_gib;
            if let Some(c) = counts.iter_mut().find(|(s, _)| *s == vm.status) {
                c.1 += 1;
            }
        }
        Ok(HostOverview {
            host,
            accel: self.accel(),
            compute_down: self.inner.compute_down.clone(),
            firewall_down: self.inner.firewall_down.clone(),
            vms_by_status: counts.iter().map(|(s, n)| (s.as_str(), *n)).collect(),
            vms_total: total,
            vcpus_allocated: vcpus,
            ram_allocated_gib: ram,
            storage_allocated_gib: storage,
        })
    }
}
