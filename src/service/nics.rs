//! A VM's VPC NICs after create: attach one (hot-plugged into a running guest) and
//! detach one. The record names the NIC's job (`pending`) before the job runs, so
//! one NIC change at a time per VM; the jobs are in `nic_jobs`.

use std::net::Ipv4Addr;

use uuid::Uuid;

use super::vpcs::{PlannedVpc, VPC_LOCK};
use super::{invalid, Principal, ServiceError, Services};
use crate::model::{now, uuid_key, IpLease, Nic, Vm, VmStatus, VpcStatus};
use crate::network::Cidr;

/// NICs one VM holds at most: each takes a PCIe port, and spare ports are few.
pub const MAX_NICS: usize = 6;

impl Services {
    fn nics_idle(vm: &Vm) -> Result<(), ServiceError> {
        match vm.nics.iter().find_map(|n| n.pending.as_ref()) {
            Some(job) => Err(ServiceError::Conflict(format!(
                "a NIC {job} is under way on the VM; retry when it ends"
            ))),
            None => Ok(()),
        }
    }

    fn settled(vm: &Vm) -> Result<(), ServiceError> {
        if matches!(vm.status, VmStatus::Active | VmStatus::Passive) {
            Ok(())
        } else {
            Err(invalid(format!(
                "the VM is {}: NICs change on running or stopped VMs",
                vm.status.as_str()
            )))
        }
    }

    /// Gives the VM a NIC in VPC `vpc_id` (at `ip`, or the first free address) and
    /// queues the job that plugs it in; returns the job.
    pub fn attach_vpc(
        &self,
        who: &Principal,
        header: Option<&str>,
        vm_id: &Uuid,
        vpc_id: &Uuid,
        ip: Option<&str>,
    ) -> Result<Uuid, ServiceError> {
        let vm = self.vm_in_scope(who, header, vm_id, "vm.manage")?;
        who.require_in(&vm.project_id, "vpc.manage")?;
        let _g = VPC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let vm = self.visible_vm(who, &vm.id, "vm.manage")?;
        Self::settled(&vm)?;
        Self::nics_idle(&vm)?;
        let vpc = self
            .visible_vpc(who, vpc_id, "vpc.view")
            .ok()
            .filter(|v| v.project_id == vm.project_id)
            .ok_or_else(|| invalid(format!("vpc_id: no VPC {vpc_id} in this project")))?;
        if vpc.status != VpcStatus::Active {
            return Err(invalid(format!(
                "vpc_id: the VPC is {}",
                vpc.status.as_str()
            )));
        }
        if vpc.region != vm.region {
            return Err(invalid(format!(
                "vpc_id: the VPC is in region {}, the VM in {}",
                vpc.region, vm.region
            )));
        }
        if vm.nics.iter().any(|n| n.vpc_id == Some(vpc.id)) {
            return Err(invalid(format!("the VM is in VPC {} already", vpc.name)));
        }
        if vm.nics.len() >= MAX_NICS {
            return Err(invalid(format!("a VM holds at most {MAX_NICS} NICs")));
        }
        self.hypervisor()?;
        let nic_id = self.inner.store.next_id("nic")?;
        let (vpc, addr, prefix) = match ip {
            None => self.join_vpc(
                who,
                &vm.project_id,
                &vm.region,
                PlannedVpc::Existing(Box::new(vpc)),
                vm.id,
                nic_id,
            )?,
            Some(raw) => {
                let addr = self.free_vpc_address(&vpc, raw)?;
                self.inner.leases.create(&IpLease {
                    ip: addr.to_string(),
                    pool: vpc.pool(),
                    vm_id: vm.id,
                    nic_id,
                    created_at: now(),
                })?;
                let prefix = Cidr::parse(&vpc.cidr).map(|c| c.prefix).unwrap_or(24);
                (vpc, addr, prefix)
            }
        };
        let (bridge, mtu) = self.vpc_link(&vpc)?;
        let nic = Nic {
            id: nic_id,
            kind: "vpc".into(),
            network_name: vpc.name.clone(),
            mac: self.unique_mac(nic_id)?,
            ip: addr.to_string(),
            prefix,
            gateway: vpc.gateway.clone(),
            bridge,
            tap: format!("{}{nic_id}", self.inner.tap_prefix),
            security_groups: Vec::new(),
            vpc_id: Some(vpc.id),
            mtu: Some(mtu),
            pending: Some("attach".into()),
            ip6: None,
        };
        let vm = self
            .inner
            .vms
            .update::<ServiceError>(&uuid_key(&vm.id), |v| {
                v.nics.push(nic.clone());
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "VM" })?;
        self.submit_vm_job_with(
            &vm,
            "vm.nic_attach",
            serde_json::json!({ "nic_id": nic_id }),
        )
    }

    /// `raw` as an address NICs of `vpc` may get, and free.
    fn free_vpc_address(
        &self,
        vpc: &crate::model::Vpc,
        raw: &str,
    ) -> Result<Ipv4Addr, ServiceError> {
        let addr: Ipv4Addr = raw
            .trim()
            .parse()
            .map_err(|_| invalid(format!("ip {raw:?} is not an IPv4 address")))?;
        let cidr = Cidr::parse(&vpc.cidr).map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let (first, last) = super::vpcs::host_range(&cidr);
        if !(u32::from(first)..=u32::from(last)).contains(&u32::from(addr)) {
            return Err(invalid(format!(
                "ip {addr} is not one NICs of the VPC can have ({first} to {last})"
            )));
        }
        let key = format!("{}/{addr}", vpc.pool()).into_bytes();
        if self.inner.leases.get(&key)?.is_some() {
            return Err(invalid(format!("ip {addr} is taken in the VPC")));
        }
        Ok(addr)
    }

    /// Queues the job that takes VPC NIC `nic_id` out of the VM; returns the job.
    pub fn detach_vpc(
        &self,
        who: &Principal,
        header: Option<&str>,
        vm_id: &Uuid,
        nic_id: u64,
    ) -> Result<Uuid, ServiceError> {
        let vm = self.vm_in_scope(who, header, vm_id, "vm.manage")?;
        who.require_in(&vm.project_id, "vpc.manage")?;
        let _g = VPC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let vm = self.visible_vm(who, &vm.id, "vm.manage")?;
        let Some(nic) = vm.nics.iter().find(|n| n.id == nic_id) else {
            return Err(ServiceError::NotFound { kind: "NIC" });
        };
        if nic.vpc_id.is_none() {
            return Err(invalid(format!(
                "NIC {nic_id} is the VM's public NIC, not a VPC one"
            )));
        }
        if vm.nics.len() == 1 {
            return Err(invalid("the NIC is the VM's last: a VM keeps at least one"));
        }
        if self
            .floating_of_vm(&vm)?
            .iter()
            .any(|f| f.attached.as_ref().is_some_and(|t| t.target_nic == nic_id))
        {
            return Err(invalid(
                "a floating IP reaches the VM through this NIC: detach it first (DELETE /api/v1/vms/{id}/ip/{nic_id})",
            ));
        }
        Self::settled(&vm)?;
        Self::nics_idle(&vm)?;
        self.hypervisor()?;
        let vm = self
            .inner
            .vms
            .update::<ServiceError>(&uuid_key(&vm.id), |v| {
                if let Some(n) = v.nics.iter_mut().find(|n| n.id == nic_id) {
                    n.pending = Some("detach".into());
                }
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "VM" })?;
        self.submit_vm_job_with(
            &vm,
            "vm.nic_detach",
            serde_json::json!({ "nic_id": nic_id }),
        )
    }
}
