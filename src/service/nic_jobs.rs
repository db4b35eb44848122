//! The jobs that plug a VPC NIC into a VM and take it out again (`vm.nic_attach`,
//! `vm.nic_detach`, on the VM's job target). The record names the NIC with
//! `pending` before the job runs; each step is safe to repeat.
//!
//! A NIC plugged into a running guest never carries an unfiltered packet: the guest's
//! CPUs are paused, the device is added, its tap gets its policy and is checked, and
//! only then does the guest run again (undone, and the job failed, otherwise). The
//! guest learns the address by DHCP from the VPC's router (the seed holds it for
//! the next boots).

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::vm_jobs::VmHost;
use crate::compute::seed::write_seed;
use crate::compute::{NicSpec, PowerState};
use crate::model::{now, uuid_key, Nic, Vm};
use crate::store::StoreError;

/// How long a guest may take to let go of an unplugged NIC.
const DETACH_WAIT: Duration = Duration::from_secs(30);
/// The unplug request is repeated this often meanwhile.
const DETACH_RETRY: Duration = Duration::from_secs(10);

fn spec(n: &Nic) -> NicSpec {
    NicSpec {
        mac: n.mac.clone(),
        bridge: n.bridge.clone(),
        tap: n.tap.clone(),
        mtu: n.mtu,
    }
}

impl VmHost {
    /// The NIC `nic_id` of the VM when job `kind` owns it.
    fn owned_nic(&self, id: &Uuid, nic_id: u64, kind: &str) -> Result<Option<(Vm, Nic)>, String> {
        let Some(vm) = self.vms.get(&uuid_key(id)).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let nic = vm
            .nics
            .iter()
            .find(|n| n.id == nic_id && n.pending.as_deref() == Some(kind))
            .cloned();
        Ok(nic.map(|n| (vm, n)))
    }

    fn running(&self, vm: &Vm) -> Result<bool, String> {
        Ok(matches!(
            self.hv
                .state(&vm.domain_name())
                .map_err(|e| e.to_string())?,
            Some(PowerState::Running) | Some(PowerState::Paused)
        ))
    }

    /// The VM's record, its seed and its definition as `change` leaves its NICs.
    fn settle_nics(&self, id: &Uuid, change: impl Fn(&mut Vec<Nic>)) -> Result<Vm, String> {
        let vm = self
            .vms
            .update::<StoreError>(&uuid_key(id), |v| {
                change(&mut v.nics);
                v.updated_at = now();
                Ok(())
            })
            .map_err(|e| e.to_string())?
            .ok_or("the VM is gone")?;
        write_seed(&self.dir(id).join("seed.img"), &self.guest_config(&vm))
            .map_err(|e| e.to_string())?;
        self.define(&vm)?;
        Ok(vm)
    }

    pub(super) fn nic_attach(&self, id: &Uuid, nic_id: u64) -> Result<(), String> {
        let Some((vm, nic)) = self.owned_nic(id, nic_id, "attach")? else {
            return Ok(());
        };
        let done = (|| {
            if let Some(v) = &nic.vpc_id {
                self.net.ensure_vpc(v)?;
            }
            // The binding is there before the guest can ask for it.
            self.net.sync_dhcp();
            self.settle_nics(id, |_| {})?;
            if self.running(&vm)? {
                self.hot_plug(&vm, &nic)?;
            }
            Ok::<(), String>(())
        })();
        match done {
            Ok(()) => {
                self.settle_nics(id, |nics| {
                    if let Some(n) = nics.iter_mut().find(|n| n.id == nic_id) {
                        n.pending = None;
                    }
                })?;
                Ok(())
            }
            Err(e) => {
                // The VM goes back to the NICs it had; the address is free again.
                self.settle_nics(id, |nics| nics.retain(|n| n.id != nic_id))?;
                self.leases
                    .delete(&nic.lease_key())
                    .map_err(|e| e.to_string())?;
                self.net.sync_dhcp();
                Err(e)
            }
        }
    }

    /// Adds the NIC to the running guest with its CPUs paused until its tap is
    /// filtered (see the module's comment).
    fn hot_plug(&self, vm: &Vm, nic: &Nic) -> Result<(), String> {
        let name = vm.domain_name();
        let s = spec(nic);
        let Some(fw) = &self.firewall else {
            if self.firewall_disabled {
                return self.hv.attach_nic(&name, &s).map_err(|e| e.to_string());
            }
            return Err(
                "security groups and anti-spoofing cannot be enforced on this host (the firewall did not load): no NIC is added"
                    .into(),
            );
        };
        let already = self
            .hv
            .live_macs(&name)
            .map_err(|e| e.to_string())?
            .is_some_and(|m| m.contains(&nic.mac.to_ascii_lowercase()));
        self.hv.suspend(&name).map_err(|e| e.to_string())?;
        let plugged = (|| {
            if !already {
                self.hv.attach_nic(&name, &s).map_err(|e| e.to_string())?;
            }
            let failed: Vec<String> = fw
                .sync()?
                .into_iter()
                .filter(|(tap, _)| *tap == nic.tap)
                .map(|(tap, e)| format!("{tap}: {e}"))
                .collect();
            if !failed.is_empty() {
                return Err(failed.join("; "));
            }
            if !fw.enforces(&nic.tap) {
                return Err(format!("{}: no such tap, or no policy on it", nic.tap));
            }
            Ok(())
        })();
        if let Err(e) = &plugged {
            let _ = self.hv.detach_nic(&name, &s);
            tracing::error!(vm = %vm.id, tap = %nic.tap, error = %e, "NIC hot-plug undone");
        }
        self.hv.resume(&name).map_err(|e| e.to_string())?;
        plugged.map_err(|e| {
            format!("security groups could not be applied to the new NIC, so it was not added: {e}")
        })
    }

    pub(super) fn nic_detach(&self, id: &Uuid, nic_id: u64) -> Result<(), String> {
        let Some((vm, nic)) = self.owned_nic(id, nic_id, "detach")? else {
            return Ok(());
        };
        if let Err(e) = self.unplug_nic(&vm, &nic) {
            self.settle_nics(id, |nics| {
                if let Some(n) = nics.iter_mut().find(|n| n.id == nic_id) {
                    n.pending = None;
                }
            })?;
            return Err(e);
        }
        self.settle_nics(id, |nics| nics.retain(|n| n.id != nic_id))?;
        self.leases
            .delete(&nic.lease_key())
            .map_err(|e| e.to_string())?;
        if let Some(fw) = &self.firewall {
            fw.sync_logged();
        }
        self.net.sync_dhcp();
        Ok(())
    }

    /// Takes the NIC out of the running guest; waits until it is gone.
    fn unplug_nic(&self, vm: &Vm, nic: &Nic) -> Result<(), String> {
        let name = vm.domain_name();
        let mac = nic.mac.to_ascii_lowercase();
        let gone = || -> Result<bool, String> {
            Ok(self
                .hv
                .live_macs(&name)
                .map_err(|e| e.to_string())?
                .is_none_or(|l| !l.contains(&mac)))
        };
        if gone()? {
            return Ok(());
        }
        self.hv
            .detach_nic(&name, &spec(nic))
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut asked = start;
        loop {
            if gone()? {
                return Ok(());
            }
            if start.elapsed() >= DETACH_WAIT {
                return Err(format!(
                    "the guest did not release NIC {} within {} s; try again",
                    nic.id,
                    DETACH_WAIT.as_secs()
                ));
            }
            if asked.elapsed() >= DETACH_RETRY {
                let _ = self.hv.detach_nic(&name, &spec(nic));
                asked = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
