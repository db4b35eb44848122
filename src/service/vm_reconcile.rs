//! The VM part of the reconciler: store and libvirt brought back into agreement after a
//! crash or a host reboot. It finishes what a dead process left half-done by submitting
//! the job that does it (jobs are idempotent), corrects statuses the host contradicts,
//! releases addresses nothing holds, and reports domains it cannot account for without
//! touching them.

use std::collections::HashSet;

use crate::compute::PowerState;
use crate::jobs::{NewJob, Reconcile};
use crate::model::{now, uuid_key, VmStatus};
use crate::store::StoreError;

use super::Services;

pub struct VmReconciler(pub Services);

impl Reconcile for VmReconciler {
    fn name(&self) -> &'static str {
        "vms"
    }

    fn reconcile(&self) -> Result<Vec<String>, String> {
        let s = &self.0.inner;
        let Some(hv) = s.hypervisor.as_ref() else {
            return Ok(vec![]);
        };
        let e = |e: StoreError| e.to_string();
        let mut drift = Vec::new();
        // Records first, jobs second: a status set just before its job was submitted
        // then finds that job live.
        let vms = s.vms.all().map_err(e)?;
        let live: HashSet<String> = s
            .jobs
            .list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|j| !j.status.is_final())
            .map(|j| j.target)
            .collect();
        for vm in &vms {
            if live.contains(&format!("vm/{}", vm.id)) {
                continue;
            }
            let name = vm.domain_name();
            let state = hv.state(&name).map_err(|e| e.to_string())?;
            // A transitional status with no job: a create that never got its job is
            // redone; anything else is settled from what the host shows.
            let job = if vm.deleting {
                Some("vm.delete")
            } else {
                match (vm.status, state) {
                    (VmStatus::Initiating, _) => Some("vm.create"),
                    (VmStatus::Provisioning | VmStatus::Booting, None) => Some("vm.create"),
                    _ => None,
                }
            };
            // A NIC change recorded whose job never got submitted (a crash between).
            let nic_job = vm
                .nics
                .iter()
                .find_map(|n| n.pending.as_deref().map(|p| (format!("vm.nic_{p}"), n.id)));
            if let (None, Some((kind, nic))) = (job, &nic_job) {
                s.jobs
                    .submit(NewJob {
                        kind: kind.clone(),
                        target: format!("vm/{}", vm.id),
                        account_id: Some(vm.account_id),
                        project_id: Some(vm.project_id),
                        params: serde_json::json!({ "vm_id": vm.id, "nic_id": nic }),
                    })
                    .map_err(|e| e.to_string())?;
                drift.push(format!(
                    "VM {} was left with NIC {nic} under {kind} and no job; resubmitted it",
                    vm.id
                ));
                continue;
            }
            if let Some(kind) = job {
                s.jobs
                    .submit(NewJob {
                        kind: kind.into(),
                        target: format!("vm/{}", vm.id),
                        account_id: Some(vm.account_id),
                        project_id: Some(vm.project_id),
                        params: serde_json::json!({ "vm_id": vm.id }),
                    })
                    .map_err(|e| e.to_string())?;
                drift.push(format!(
                    "VM {} was left {}; resubmitted {kind}",
                    vm.id,
                    vm.status.as_str()
                ));
                continue;
            }
            let seen = seen_status(vm.status, state);
            if let Some(st) = seen {
                s.vms
                    .update::<StoreError>(&uuid_key(&vm.id), |v| {
                        v.status = st;
                        v.updated_at = now();
                        Ok(())
                    })
                    .map_err(e)?;
                drift.push(format!(
                    "VM {} was {} but its domain is {:?}; now {}",
                    vm.id,
                    vm.status.as_str(),
                    state,
                    st.as_str()
                ));
            }
        }
        let known: HashSet<String> = vms.iter().map(|v| v.domain_name()).collect();
        for d in hv.list("skiff-vm-").map_err(|e| e.to_string())? {
            if !known.contains(&d) {
                drift.push(format!("domain {d} has no VM record; left alone"));
            }
        }
        // Leases first, holders second: a VM (or floating address) records its
        // lease before itself, so one made meanwhile is never taken for an orphan.
        let leases = s.leases.all().map_err(e)?;
        let mut ids: HashSet<uuid::Uuid> = s.vms.all().map_err(e)?.iter().map(|v| v.id).collect();
        ids.extend(s.floating.all().map_err(e)?.iter().map(|f| f.id));
        for lease in leases {
            if !ids.contains(&lease.vm_id) {
                s.leases
                    .delete(&format!("{}/{}", lease.pool, lease.ip).into_bytes())
                    .map_err(e)?;
                drift.push(format!("address {} was held by no VM; released", lease.ip));
            }
        }
        Ok(drift)
    }
}

/// The status the host shows for a VM no job is changing, where it differs from the
/// record's. A paused domain still holds a live guest (libvirt pauses it while it saves
/// RAM for `virsh snapshot-create-as`, say), so it neither ends `active` nor starts a
/// `passive` VM (a backup of a stopped VM runs it paused); nor does a passing state
/// (shutting down: the next pass sees it off).
fn seen_status(status: VmStatus, state: Option<PowerState>) -> Option<VmStatus> {
    let running = state == Some(PowerState::Running);
    let alive = matches!(
        state,
        Some(PowerState::Running | PowerState::Paused | PowerState::Other)
    );
    match status {
        VmStatus::Active if !alive => Some(VmStatus::Passive),
        VmStatus::Passive if running => Some(VmStatus::Active),
        VmStatus::Provisioning | VmStatus::Booting | VmStatus::Finalizing => Some(if running {
            VmStatus::Active
        } else {
            VmStatus::Passive
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_domain_changes_no_status_and_a_gone_one_ends_active() {
        use PowerState::*;
        assert_eq!(seen_status(VmStatus::Active, Some(Paused)), None);
        assert_eq!(seen_status(VmStatus::Passive, Some(Paused)), None);
        assert_eq!(seen_status(VmStatus::Active, Some(Other)), None);
        assert_eq!(seen_status(VmStatus::Active, Some(Running)), None);
        assert_eq!(
            seen_status(VmStatus::Active, Some(ShutOff)),
            Some(VmStatus::Passive)
        );
        assert_eq!(
            seen_status(VmStatus::Active, Some(Crashed)),
            Some(VmStatus::Passive)
        );
        assert_eq!(seen_status(VmStatus::Active, None), Some(VmStatus::Passive));
        assert_eq!(
            seen_status(VmStatus::Passive, Some(Running)),
            Some(VmStatus::Active)
        );
        assert_eq!(
            seen_status(VmStatus::Booting, Some(Running)),
            Some(VmStatus::Active)
        );
        assert_eq!(
            seen_status(VmStatus::Finalizing, Some(ShutOff)),
            Some(VmStatus::Passive)
        );
        assert_eq!(seen_status(VmStatus::Failure, Some(ShutOff)), None);
    }
}
