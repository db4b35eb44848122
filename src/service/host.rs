//! What the dashboard's overview shows: this host's capacity and what the account's
//! VMs take of it. Read from procfs and statvfs on each call (cheap, always current).

use super::{Principal, ServiceError, Services};
use crate::model::VmStatus;
use crate::sysinfo;

/// Host capacity (operators only) and the caller's VMs by status.
pub struct HostOverview {
    /// `None` unless the caller may see operator diagnostics.
    pub host: Option<HostCapacity>,
    pub accel: Option<&'static str>,
    /// Why VMs cannot run, when they cannot.
    pub compute_down: Option<String>,
    /// Why security groups are not enforced, when they are not.
    pub firewall_down: Option<String>,
    /// The operator turned the firewall off on purpose (guests run unfiltered).
    pub firewall_disabled: bool,
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

impl Services {
    pub fn host_overview(&self, who: &Principal) -> Result<HostOverview, ServiceError> {
        let host = who
            .require_operator("account.settings.view")
            .is_ok()
            .then(|| {
                let (disk_total_gib, disk_free_gib) = sysinfo::fs_space(&self.inner.data_dir)
                    .map_or((0.0, 0.0), |d| (d.total_gib, d.free_gib));
                HostCapacity {
                    cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
                    mem_total_mib: sysinfo::meminfo_mib("MemTotal").unwrap_or(0),
                    mem_available_mib: sysinfo::meminfo_mib("MemAvailable").unwrap_or(0),
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
            firewall_disabled: self.inner.firewall_disabled,
            vms_by_status: counts.iter().map(|(s, n)| (s.as_str(), *n)).collect(),
            vms_total: total,
            vcpus_allocated: vcpus,
            ram_allocated_gib: ram,
            storage_allocated_gib: storage,
        })
    }
}
