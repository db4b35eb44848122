//! Floating addresses: reserve, release, change, attach to a VM, detach
//! (docs/decisions/0012-floating-ips.md). An attached address is NATed 1:1 to the
//! VM's VPC NIC in that VPC's router; the host routes it there. The VM must have no
//! public address of its own (the contract: one public IPv4 per VM).

use std::net::Ipv4Addr;
use std::sync::Mutex;

use uuid::Uuid;

use super::{invalid, Page, Paged, Principal, ServiceError, Services};
use crate::model::{now, uuid_key, FloatingIp, FloatingTarget, IpLease, Vm};
use crate::network::Cidr;

/// Serialises the decisions over addresses and attachments.
static FLOATING_LOCK: Mutex<()> = Mutex::new(());

/// `GET /ips` filters.
#[derive(Default)]
pub struct IpFilter {
    pub reserved: Option<bool>,
    /// `free` or `in-use`.
    pub in_use: Option<bool>,
}

/// What an attach made.
pub struct Attached {
    pub ip: FloatingIp,
    pub nic_id: u64,
    pub mac: String,
}

impl Services {
    fn floating_pool(&self) -> Result<Cidr, ServiceError> {
        let raw = &self.inner.floating_cidr;
        if raw.is_empty() || self.inner.net_host.is_none() {
            return Err(ServiceError::Unavailable(
                "this host has no floating addresses ([network.vpc] floating_cidr) or no compute"
                    .into(),
            ));
        }
        Cidr::parse(raw).map_err(|e| ServiceError::Unavailable(e.to_string()))
    }

    /// A floating address the caller may see with `perm`; any other answer is 404.
    fn visible_ip(
        &self,
        who: &Principal,
        id: &Uuid,
        perm: &str,
    ) -> Result<FloatingIp, ServiceError> {
        who.require_somewhere(perm)?;
        match self.inner.floating.get(&uuid_key(id))? {
            Some(f)
                if f.account_id == who.account_id
                    && who.require_in(&f.project_id, perm).is_ok() =>
            {
                Ok(f)
            }
            _ => Err(ServiceError::NotFound { kind: "IP" }),
        }
    }

    /// The first free address of the pool, leased.
    fn lease_floating(&self, id: &Uuid) -> Result<Ipv4Addr, ServiceError> {
        let pool = self.floating_pool()?;
        for ip in pool.hosts() {
            let lease = IpLease {
                ip: ip.to_string(),
                pool: FloatingIp::POOL.into(),
                vm_id: *id,
                nic_id: 0,
                created_at: now(),
            };
            match self.inner.leases.create(&lease) {
                Ok(()) => return Ok(ip),
                Err(crate::store::StoreError::Exists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(
            "the floating address pool is exhausted".into(),
        ))
    }

    fn release_lease(&self, address: &str) -> Result<(), ServiceError> {
        self.inner
            .leases
            .delete(&format!("{}/{address}", FloatingIp::POOL).into_bytes())?;
        Ok(())
    }

    /// Floating addresses count in the account's `public_ips` quota.
    fn admit_floating(&self, who: &Principal) -> Result<(), ServiceError> {
        let held = self
            .inner
            .floating
            .count_by_index(FloatingIp::BY_ACCOUNT, &uuid_key(&who.account_id))?;
        let own: u64 = self
            .inner
            .vms
            .all()?
            .iter()
            .filter(|v| v.account_id == who.account_id && !v.deleting)
            .map(|v| v.nics.iter().filter(|n| n.kind == "public").count() as u64)
            .sum();
        self.check_quota(&who.account_id, "public_ips", held as u64 + own, 1)
    }

    fn new_floating(
        &self,
        who: &Principal,
        project: &Uuid,
        region: String,
        reserved: bool,
    ) -> Result<FloatingIp, ServiceError> {
        self.admit_floating(who)?;
        let id = Uuid::new_v4();
        let address = self.lease_floating(&id)?;
        let t = now();
        let f = FloatingIp {
            id,
            account_id: who.account_id,
            project_id: *project,
            address: address.to_string(),
            reserved,
            region,
            attached: None,
            created_by: who.user_id,
            created_at: t,
            updated_at: t,
        };
        self.inner.floating.create(&f)?;
        Ok(f)
    }

    pub fn reserve_ip(
        &self,
        who: &Principal,
        header: Option<&str>,
        family: Option<&str>,
        region: Option<String>,
        billing_period: Option<&str>,
    ) -> Result<FloatingIp, ServiceError> {
        let project = self.project_scope(who, header, "ip.create")?;
        match family.unwrap_or("IPv4") {
            "IPv4" => {}
            "IPv6" => {
                return Err(invalid(
                    "type IPv6: floating IPv6 addresses are not available on this host",
                ))
            }
            other => return Err(invalid(format!("type must be IPv4 or IPv6, not {other:?}"))),
        }
        if let Some(b) = billing_period {
            if !["monthly", "yearly", "twenty_four_month"].contains(&b) {
                return Err(invalid(
                    "billing_period must be monthly, yearly or twenty_four_month",
                ));
            }
        }
        let region = region.unwrap_or_else(|| project.default_region.clone());
        if !self.inner.catalog.regions.iter().any(|r| r.code == region) {
            return Err(invalid(format!("unknown region {region:?}")));
        }
        self.floating_pool()?;
        let _g = FLOATING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        self.new_floating(who, &project.id, region, true)
    }

    pub fn list_ips(
        &self,
        who: &Principal,
        project: Option<&Uuid>,
        filter: IpFilter,
        page: Page,
    ) -> Result<Paged<FloatingIp>, ServiceError> {
        let mut all = Vec::new();
        for p in self.projects_for_list(who, project)? {
            if who.require_in(&p, "ip.view").is_err() {
                continue;
            }
            all.extend(
                self.inner
                    .floating
                    .by_index(FloatingIp::BY_PROJECT, &uuid_key(&p))?
                    .into_iter()
                    .filter(|f| filter.reserved.is_none_or(|r| f.reserved == r))
                    .filter(|f| filter.in_use.is_none_or(|u| f.attached.is_some() == u)),
            );
        }
        all.sort_by_key(|f| (f.created_at, f.id));
        Ok(Paged::of(all, page))
    }

    pub fn get_ip(&self, who: &Principal, id: &Uuid) -> Result<FloatingIp, ServiceError> {
        self.visible_ip(who, id, "ip.view")
    }

    /// Releases a reserved, detached address back to the pool.
    pub fn release_ip(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
    ) -> Result<FloatingIp, ServiceError> {
        let _g = FLOATING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let f = self.visible_ip(who, id, "ip.delete")?;
        self.header_names(who, header, &f.project_id, "ip.delete", "IP")?;
        if f.attached.is_some() {
            return Err(invalid(
                "the IP is attached to a VM: detach it first (DELETE /api/v1/vms/{id}/ip/{nic_id})",
            ));
        }
        self.inner.floating.delete(&uuid_key(id))?;
        self.release_lease(&f.address)?;
        Ok(f)
    }

    /// Swaps a reserved, detached address for another of the pool: (old, new).
    pub fn change_ip(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
    ) -> Result<(FloatingIp, FloatingIp), ServiceError> {
        let _g = FLOATING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.visible_ip(who, id, "ip.manage")?;
        self.header_names(who, header, &old.project_id, "ip.manage", "IP")?;
        if old.attached.is_some() {
            return Err(invalid(
                "the IP is attached to a VM: detach it before changing it",
            ));
        }
        if !old.reserved {
            return Err(invalid("only a reserved IP can be changed"));
        }
        let address = self.lease_floating(id)?;
        let new = self
            .inner
            .floating
            .update::<ServiceError>(&uuid_key(id), |f| {
                f.address = address.to_string();
                f.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "IP" })?;
        self.release_lease(&old.address)?;
        Ok((old, new))
    }

    /// Attaches reserved address `ip_id` (or a new one) to the VM's first VPC NIC.
    pub fn attach_ip(
        &self,
        who: &Principal,
        header: Option<&str>,
        vm_id: &Uuid,
        ip_id: Option<Uuid>,
        family: Option<&str>,
    ) -> Result<Attached, ServiceError> {
        let vm = self.vm_in_scope(who, header, vm_id, "vm.manage")?;
        who.require_in(&vm.project_id, "ip.manage")?;
        if ip_id.is_none() {
            match family.unwrap_or("IPv4") {
                "IPv4" => {}
                "IPv6" => {
                    return Err(invalid(
                        "type IPv6: floating IPv6 addresses are not available on this host",
                    ))
                }
                other => return Err(invalid(format!("type must be IPv4 or IPv6, not {other:?}"))),
            }
        }
        self.floating_pool()?;
        let _g = FLOATING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let vm = self.visible_vm(who, &vm.id, "vm.manage")?;
        let target = Self::floating_target(&vm)?;
        if self
            .inner
            .floating
            .by_index(FloatingIp::BY_PROJECT, &uuid_key(&vm.project_id))?
            .iter()
            .any(|f| f.attached.as_ref().is_some_and(|t| t.vm_id == vm.id))
        {
            return Err(invalid("the VM has a floating IP already: detach it first"));
        }
        let f = match ip_id {
            Some(id) => {
                let f = self
                    .visible_ip(who, &id, "ip.manage")
                    .ok()
                    .filter(|f| f.project_id == vm.project_id)
                    .ok_or_else(|| invalid(format!("ip_id: no IP {id} in this project")))?;
                if f.attached.is_some() {
                    return Err(invalid("ip_id: the IP is attached to a VM already"));
                }
                if f.region != vm.region {
                    return Err(invalid("ip_id: the IP is in another region than the VM"));
                }
                f
            }
            None => self.new_floating(who, &vm.project_id, vm.region.clone(), false)?,
        };
        let nic_id = self.inner.store.next_id("nic")?;
        let f = self
            .inner
            .floating
            .update::<ServiceError>(&uuid_key(&f.id), |f| {
                f.attached = Some(FloatingTarget {
                    vm_id: vm.id,
                    nic_id,
                    target_nic: target.0,
                });
                f.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "IP" })?;
        self.apply_floating(&target.1, &[])?;
        Ok(Attached {
            ip: f,
            nic_id,
            mac: target.2,
        })
    }

    /// The VPC NIC a floating address of `vm` goes to: (nic id, its VPC, its MAC).
    fn floating_target(vm: &Vm) -> Result<(u64, Uuid, String), ServiceError> {
        if vm.nics.iter().any(|n| n.kind == "public") {
            return Err(invalid(
                "the VM has a public IPv4 address of its own: detach it first (one public IPv4 per VM)",
            ));
        }
        let nic = vm
            .nics
            .iter()
            .find(|n| n.vpc_id.is_some() && n.pending.is_none())
            .ok_or_else(|| invalid("the VM has no VPC NIC for the IP to reach"))?;
        Ok((nic.id, nic.vpc_id.unwrap_or_default(), nic.mac.clone()))
    }

    /// Rewrites the NAT of VPC `vpc`'s router; `moved` lose their old flows there.
    fn apply_floating(&self, vpc: &Uuid, moved: &[Ipv4Addr]) -> Result<(), ServiceError> {
        let nh =
            self.inner.net_host.as_ref().ok_or_else(|| {
                ServiceError::Unavailable("VPCs need compute on this host".into())
            })?;
        nh.sync_floating(vpc, moved)
            .map_err(|e| ServiceError::Conflict(format!("the host could not apply it: {e}")))
    }

    /// Detaches the floating address attached as `nic_id`; an address that was not
    /// reserved goes back to the pool.
    pub fn detach_ip(
        &self,
        who: &Principal,
        header: Option<&str>,
        vm_id: &Uuid,
        nic_id: u64,
    ) -> Result<FloatingIp, ServiceError> {
        let vm = self.vm_in_scope(who, header, vm_id, "vm.manage")?;
        who.require_in(&vm.project_id, "ip.manage")?;
        let _g = FLOATING_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let f = self
            .inner
            .floating
            .by_index(FloatingIp::BY_PROJECT, &uuid_key(&vm.project_id))?
            .into_iter()
            .find(|f| {
                f.attached
                    .as_ref()
                    .is_some_and(|t| t.vm_id == vm.id && t.nic_id == nic_id)
            });
        let Some(f) = f else {
            if vm.nics.iter().any(|n| n.id == nic_id) {
                return Err(invalid(format!(
                    "NIC {nic_id} is not a floating IP's: a VM's own NIC stays"
                )));
            }
            return Err(ServiceError::NotFound { kind: "NIC" });
        };
        let vpc = f
            .attached
            .as_ref()
            .and_then(|t| vm.nics.iter().find(|n| n.id == t.target_nic))
            .and_then(|n| n.vpc_id);
        if f.reserved {
            self.inner
                .floating
                .update::<ServiceError>(&uuid_key(&f.id), |f| {
                    f.attached = None;
                    f.updated_at = now();
                    Ok(())
                })?;
        } else {
            self.inner.floating.delete(&uuid_key(&f.id))?;
            self.release_lease(&f.address)?;
        }
        if let (Some(vpc), Ok(addr)) = (vpc, f.address.parse::<Ipv4Addr>()) {
            self.apply_floating(&vpc, &[addr])?;
        }
        Ok(f)
    }

    /// The floating addresses attached to `vm` (its `/networks` rows).
    pub fn floating_of_vm(&self, vm: &Vm) -> Result<Vec<FloatingIp>, ServiceError> {
        Ok(self
            .inner
            .floating
            .by_index(FloatingIp::BY_PROJECT, &uuid_key(&vm.project_id))?
            .into_iter()
            .filter(|f| f.attached.as_ref().is_some_and(|t| t.vm_id == vm.id))
            .collect())
    }

    /// Whether this host hands out floating addresses.
    pub fn floating_available(&self) -> bool {
        self.floating_pool().is_ok()
    }

    /// The catalog's hourly price of a public IPv4 address.
    pub fn ip_price(&self) -> String {
        format!("{:.6}", self.inner.catalog.ipv4_pricing.price_per_hour)
    }
}
