//! Per-account quotas and host admission. A tenant holds at most its quotas of the
//! shared host (defaults in `[quotas]`, overrides per account by `skiff admin
//! set-quota`); on top, the host admits a guest only when all guests' memory and disk
//! fit its own, times the `[admission]` ratios. Refusals name what is short.

use uuid::Uuid;

use super::{ServiceError, Services};
use crate::model::{uuid_key, Vm};

/// What a VM takes of its account's quotas and of the host.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct VmSize {
    pub vms: u64,
    pub vcpus: u64,
    pub memory_gib: u64,
    pub disk_gib: u64,
    pub public_ips: u64,
}

impl VmSize {
    pub fn of(vm: &Vm) -> VmSize {
        VmSize {
            vms: 1,
            vcpus: vm.vcpus.max(0) as u64,
            memory_gib: vm.ram_gib.max(0) as u64,
            disk_gib: (vm.storage_gib + vm.added_storage_gib).max(0) as u64,
            public_ips: vm.nics.iter().filter(|n| n.kind == "public").count() as u64,
        }
    }

    fn add(&mut self, o: VmSize) {
        self.vms += o.vms;
        self.vcpus += o.vcpus;
        self.memory_gib += o.memory_gib;
        self.disk_gib += o.disk_gib;
        self.public_ips += o.public_ips;
    }
}

fn exceeded(name: &str, limit: u64, used: u64, asked: u64) -> ServiceError {
    ServiceError::QuotaExceeded(format!(
        "quota exceeded: {name} = {limit} per account ({used} in use, {asked} more asked)"
    ))
}

impl Services {
    /// The account's value of quota `name`.
    pub(crate) fn quota(&self, account: &Uuid, name: &str) -> Result<u64, ServiceError> {
        let set = self
            .inner
            .accounts
            .get(&uuid_key(account))?
            .and_then(|a| a.quotas.get(name).copied());
        Ok(set.or_else(|| self.inner.quotas.get(name)).unwrap_or(0))
    }

    /// Fails with 403 when `used + asked` passes the account's quota `name`.
    pub(crate) fn check_quota(
        &self,
        account: &Uuid,
        name: &str,
        used: u64,
        asked: u64,
    ) -> Result<(), ServiceError> {
        let limit = self.quota(account, name)?;
        if used + asked > limit {
            return Err(exceeded(name, limit, used, asked));
        }
        Ok(())
    }

    /// Admits `add` for `account` (a new VM, or the growth of one, `except` the VM
    /// being resized): its quotas first, then the host's capacity.
    pub(crate) fn admit_vm(
        &self,
        account: &Uuid,
        add: VmSize,
        except: Option<&Uuid>,
    ) -> Result<(), ServiceError> {
        let (mut mine, mut all) = (VmSize::default(), VmSize::default());
        for vm in self.inner.vms.all()? {
            if vm.deleting || Some(&vm.id) == except {
                continue;
            }
            let size = VmSize::of(&vm);
            all.add(size);
            if vm.account_id == *account {
                mine.add(size);
            }
        }
        for v in self.inner.volumes.all()? {
            let gib = v.size_gib.max(0) as u64;
            all.disk_gib += gib;
            if v.account_id == *account {
                mine.disk_gib += gib;
            }
        }
        for (name, used, asked) in [
            ("vms", mine.vms, add.vms),
            ("vcpus", mine.vcpus, add.vcpus),
            ("memory_gib", mine.memory_gib, add.memory_gib),
            ("disk_gib", mine.disk_gib, add.disk_gib),
            ("public_ips", mine.public_ips, add.public_ips),
        ] {
            if asked > 0 {
                self.check_quota(account, name, used, asked)?;
            }
        }
        self.admit_on_host(all, add)
    }

    /// Admits `gib` more of volume storage for `account` (the `disk_gib` quota and
    /// the host's disk, shared with VM disks).
    pub(crate) fn admit_storage(&self, account: &Uuid, gib: u64) -> Result<(), ServiceError> {
        self.admit_vm(
            account,
            VmSize {
                disk_gib: gib,
                ..VmSize::default()
            },
            None,
        )
    }

    fn admit_on_host(&self, all: VmSize, add: VmSize) -> Result<(), ServiceError> {
        let a = &self.inner.admission;
        let mem_gib = crate::sysinfo::meminfo_mib("MemTotal").unwrap_or(0) as f64 / 1024.0;
        let mem_cap = mem_gib * a.memory_overcommit;
        if add.memory_gib > 0 && (all.memory_gib + add.memory_gib) as f64 > mem_cap {
            return Err(ServiceError::Conflict(format!(
                "the host is short of memory: guests would take {} GB of {mem_cap:.0} GB ({mem_gib:.0} GB × memory_overcommit {})",
                all.memory_gib + add.memory_gib,
                a.memory_overcommit
            )));
        }
        let disk_gib = crate::sysinfo::fs_space(&self.inner.data_dir).map_or(0.0, |d| d.total_gib);
        let disk_cap = disk_gib * a.disk_overcommit;
        if add.disk_gib > 0 && (all.disk_gib + add.disk_gib) as f64 > disk_cap {
            return Err(ServiceError::Conflict(format!(
                "the host is short of disk: guests would take {} GB of {disk_cap:.0} GB ({disk_gib:.0} GB × disk_overcommit {})",
                all.disk_gib + add.disk_gib,
                a.disk_overcommit
            )));
        }
        Ok(())
    }

    /// Operator tool (`skiff admin set-quota`): sets quota `name` of an account (name
    /// or id); `None` returns it to the default.
    pub fn set_quota(
        &self,
        account: &str,
        name: &str,
        value: Option<u64>,
    ) -> Result<(), ServiceError> {
        if self.inner.quotas.get(name).is_none() {
            return Err(super::invalid(format!("unknown quota {name:?}")));
        }
        let found = self
            .inner
            .accounts
            .all()?
            .into_iter()
            .find(|a| a.name == account || a.id.to_string() == account)
            .ok_or(ServiceError::NotFound { kind: "Account" })?;
        self.inner
            .accounts
            .update::<ServiceError>(&uuid_key(&found.id), |a| {
                match value {
                    Some(v) => a.quotas.insert(name.to_string(), v),
                    None => a.quotas.remove(name),
                };
                Ok(())
            })?;
        Ok(())
    }
}
