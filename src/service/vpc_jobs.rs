//! The jobs that make and remove a VPC's host objects (`network::vpc`), and the
//! reconciler that keeps the kernel in line with the records. The record is written
//! before its objects and deleted after them, so a crash never leaves objects without
//! a record; every step is safe to repeat.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::jobs::{JobContext, JobHandler, Reconcile};
use crate::model::{now, uuid_key, Vm, Vpc, VpcStatus};
use crate::network::dhcp::{self, Binding, Bindings, Responder};
use crate::network::vpc::{self, VpcNet, VpcSpec};
use crate::network::Cidr;
use crate::store::{StoreError, Table};

use super::Services;

pub(crate) const KINDS: &[&str] = &["vpc.create", "vpc.delete"];

/// What the VPC jobs need of the host.
pub(crate) struct NetHost {
    pub vpcs: Table<Vpc>,
    pub vms: Table<Vm>,
    /// Names every host object (`network::vpc::VpcNet`).
    pub prefix: String,
    pub mtu: u32,
    /// The routers' uplinks come from here when SNAT or floating addresses are on;
    /// `None`: no uplinks.
    pub transit: Option<Cidr>,
    /// Masquerade VPC traffic on its way out (SNAT).
    pub snat: bool,
    pub floating: Table<crate::model::FloatingIp>,
    /// Told to guests that ask by DHCP.
    pub nameservers: Vec<Ipv4Addr>,
    /// The DHCP responder of each VPC (by number) and the bindings it answers with.
    pub dhcp: Mutex<HashMap<u64, (Responder, Bindings)>>,
}

impl NetHost {
    pub fn net(&self, v: &Vpc) -> VpcNet {
        VpcNet {
            prefix: self.prefix.clone(),
            seq: v.seq,
        }
    }

    fn spec(&self, v: &Vpc) -> Result<VpcSpec, String> {
        let c = Cidr::parse(&v.cidr).map_err(|e| e.to_string())?;
        Ok(VpcSpec {
            net: self.net(v),
            gateway: c.first_host(),
            prefix_len: c.prefix,
            mtu: self.mtu,
            uplink: match self
                .transit
                .as_ref()
                .and_then(|t| vpc::Uplink::of(t, v.seq))
            {
                Some(mut up) => {
                    up.masquerade = self.snat;
                    up.floating = self.floating_of(v)?;
                    Some(up)
                }
                None => None,
            },
        })
    }

    /// Brings every VPC's DHCP responder in line with the records: one per active
    /// VPC, answering each member NIC's MAC with its address (and the VPC's router
    /// only to a VM without a public NIC). Failures are logged: a guest with its
    /// address in the seed does not need DHCP.
    pub fn sync_dhcp(&self) {
        let (vpcs, vms) = match (self.vpcs.all(), self.vms.all()) {
            (Ok(v), Ok(m)) => (v, m),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "DHCP bindings: reading the store");
                return;
            }
        };
        let mut want: HashMap<u64, (Ipv4Addr, HashMap<[u8; 6], Binding>)> = HashMap::new();
        let by_id: HashMap<uuid::Uuid, &Vpc> = vpcs
            .iter()
            .filter(|v| v.status == VpcStatus::Active && v.pending.is_none())
            .map(|v| (v.id, v))
            .collect();
        for v in by_id.values() {
            if let Ok(gw) = v.gateway.parse() {
                want.insert(v.seq, (gw, HashMap::new()));
            }
        }
        for vm in vms.iter().filter(|v| !v.deleting) {
            let public = vm.nics.iter().any(|n| n.kind == "public");
            for n in &vm.nics {
                let Some(v) = n.vpc_id.and_then(|id| by_id.get(&id)) else {
                    continue;
                };
                let (Some(mac), Ok(ip)) = (
                    crate::network::firewall::parse_mac(&n.mac),
                    n.ip.parse::<Ipv4Addr>(),
                ) else {
                    continue;
                };
                if let Some((gw, map)) = want.get_mut(&v.seq) {
                    map.insert(
                        mac,
                        Binding {
                            ip,
                            prefix: n.prefix,
                            router: (!public).then_some(*gw),
                            mtu: n.mtu.and_then(|m| u16::try_from(m).ok()),
                            dns: self.nameservers.clone(),
                        },
                    );
                }
            }
        }
        let mut running = self.dhcp.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|seq, _| want.contains_key(seq));
        for (seq, (gw, map)) in want {
            if let Some((_, bindings)) = running.get(&seq) {
                *bindings.write().unwrap_or_else(|e| e.into_inner()) = map;
                continue;
            }
            let net = VpcNet {
                prefix: self.prefix.clone(),
                seq,
            };
            let bindings: Bindings = Arc::new(RwLock::new(map));
            match dhcp::spawn(&net.netns(), "gw0", gw, bindings.clone()) {
                Ok(r) => {
                    running.insert(seq, (r, bindings));
                }
                Err(e) => tracing::warn!(netns = %net.netns(), error = %e, "DHCP responder"),
            }
        }
    }

    /// The floating addresses attached to NICs of VPC `v`: (floating, NIC address).
    fn floating_of(&self, v: &Vpc) -> Result<Vec<(Ipv4Addr, Ipv4Addr)>, String> {
        let mut out = Vec::new();
        for f in self.floating.all().map_err(|e| e.to_string())? {
            let Some(t) = &f.attached else { continue };
            let Some(vm) = self
                .vms
                .get(&uuid_key(&t.vm_id))
                .map_err(|e| e.to_string())?
            else {
                continue;
            };
            let Some(nic) = vm.nics.iter().find(|n| n.id == t.target_nic) else {
                continue;
            };
            if nic.vpc_id != Some(v.id) || vm.deleting {
                continue;
            }
            if let (Ok(a), Ok(b)) = (f.address.parse(), nic.ip.parse()) {
                out.push((a, b));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Rewrites the floating-address NAT of VPC `id`'s router (and the host's routes
    /// to it); then forgets the router's flows of `moved` (addresses that left it).
    pub fn sync_floating(&self, id: &uuid::Uuid, moved: &[Ipv4Addr]) -> Result<(), String> {
        let Some(v) = self.vpc(id)? else {
            return Ok(());
        };
        if v.status != VpcStatus::Active {
            return Ok(());
        }
        let spec = self.spec(&v)?;
        vpc::create_step(&spec, vpc::Step::Uplink).map_err(|e| e.to_string())?;
        for f in moved {
            vpc::forget_flows(&spec.net, *f);
        }
        Ok(())
    }

    /// Detaches the floating addresses of VM `vm` (being deleted): a reserved one
    /// stays the project's, one that was not goes back to the pool; the routers
    /// forget them.
    pub fn drop_floating_of(
        &self,
        vm: &Vm,
        leases: &Table<crate::model::IpLease>,
    ) -> Result<(), String> {
        let e = |e: StoreError| e.to_string();
        for f in self.floating.all().map_err(e)? {
            let Some(t) = &f.attached else { continue };
            if t.vm_id != vm.id {
                continue;
            }
            if f.reserved {
                self.floating
                    .update::<StoreError>(&uuid_key(&f.id), |f| {
                        f.attached = None;
                        f.updated_at = now();
                        Ok(())
                    })
                    .map_err(e)?;
            } else {
                self.floating.delete(&uuid_key(&f.id)).map_err(e)?;
                leases
                    .delete(
                        &format!("{}/{}", crate::model::FloatingIp::POOL, f.address).into_bytes(),
                    )
                    .map_err(e)?;
            }
            let vpc = vm
                .nics
                .iter()
                .find(|n| n.id == t.target_nic)
                .and_then(|n| n.vpc_id);
            if let (Some(vpc), Ok(addr)) = (vpc, f.address.parse()) {
                self.sync_floating(&vpc, &[addr])?;
            }
        }
        Ok(())
    }

    /// The host's part of the routers' uplinks (when there are any): forwarding,
    /// no router to router, and masquerade with SNAT.
    fn ensure_host(&self) -> Result<(), String> {
        match &self.transit {
            Some(t) => {
                vpc::ensure_host_nat(&self.prefix, Some(t), self.snat).map_err(|e| e.to_string())
            }
            None => Ok(()),
        }
    }

    /// Whether VPC `seq`'s objects are all there as the configuration wants them.
    fn whole(&self, present: &vpc::Present, seq: u64) -> bool {
        present.complete(seq) && present.uplinks.contains(&seq) == self.transit.is_some()
    }

    /// Stops VPC `seq`'s responder (before its namespace goes).
    fn stop_dhcp(&self, seq: u64) {
        self.dhcp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&seq);
    }

    /// Makes sure VPC `id`'s objects exist before a guest's tap joins its bridge
    /// (the VPC's own create job may not have run yet, or the host rebooted).
    pub fn ensure_vpc(&self, id: &uuid::Uuid) -> Result<(), String> {
        match self.vpc(id)? {
            Some(v) if v.status != VpcStatus::Deleting => vpc::ensure(&self.spec(&v)?)
                .map_err(|e| format!("the VPC {}'s network: {e}", v.name)),
            _ => Err(format!("VPC {id} is gone or going")),
        }
    }

    /// Deletes VPC `id` when no address of it is leased and no job owns it (a VM's
    /// delete with `delete_vpc`): its objects first, then the record.
    pub fn delete_if_empty(
        &self,
        id: &uuid::Uuid,
        leases: &Table<crate::model::IpLease>,
    ) -> Result<(), String> {
        let _g = super::vpcs::VPC_LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(v) = self.vpc(id)? else {
            return Ok(());
        };
        let pool = v.pool();
        let members = leases
            .all()
            .map_err(|e| e.to_string())?
            .iter()
            .filter(|l| l.pool == pool)
            .count();
        if members > 0 || v.pending.is_some() {
            return Ok(());
        }
        self.vpcs
            .update::<StoreError>(&uuid_key(id), |v| {
                v.status = VpcStatus::Deleting;
                v.pending = Some("delete".into());
                v.updated_at = now();
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        self.delete(id)
    }

    fn vpc(&self, id: &uuid::Uuid) -> Result<Option<Vpc>, String> {
        self.vpcs.get(&uuid_key(id)).map_err(|e| e.to_string())
    }

    fn create(&self, id: &uuid::Uuid) -> Result<(), String> {
        let Some(v) = self.vpc(id)? else {
            return Ok(());
        };
        if v.pending.as_deref() != Some("create") {
            return Ok(());
        }
        let made = self
            .spec(&v)
            .and_then(|spec| vpc::ensure(&spec).map_err(|e| e.to_string()));
        if let Err(e) = &made {
            // Nothing half-made stays behind a failed VPC.
            if let Err(e2) = vpc::remove(&self.net(&v)) {
                tracing::error!(vpc = %v.id, error = %e2, "removing a failed VPC's objects");
            }
            tracing::error!(vpc = %v.id, error = %e, "VPC create failed");
        }
        self.vpcs
            .update::<StoreError>(&uuid_key(id), |v| {
                match &made {
                    Ok(()) => {
                        v.status = VpcStatus::Active;
                        v.error = None;
                    }
                    Err(e) => {
                        v.status = VpcStatus::Failed;
                        v.error = Some(e.clone());
                    }
                }
                v.pending = None;
                v.updated_at = now();
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        if made.is_ok() {
            self.sync_dhcp();
        }
        made
    }

    fn delete(&self, id: &uuid::Uuid) -> Result<(), String> {
        let Some(v) = self.vpc(id)? else {
            return Ok(());
        };
        if v.pending.as_deref() != Some("delete") {
            return Ok(());
        }
        self.stop_dhcp(v.seq);
        vpc::remove(&self.net(&v)).map_err(|e| e.to_string())?;
        self.vpcs.delete(&uuid_key(id)).map_err(|e| e.to_string())?;
        Ok(())
    }
}

pub(crate) struct VpcJob {
    pub kind: &'static str,
    pub host: std::sync::Arc<NetHost>,
}

impl JobHandler for VpcJob {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn resumable(&self) -> bool {
        true
    }

    fn run(&self, ctx: &JobContext) -> Result<(), String> {
        let id: uuid::Uuid = ctx.params()["vpc_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or("job has no vpc_id")?;
        match self.kind {
            "vpc.create" => self.host.create(&id),
            "vpc.delete" => self.host.delete(&id),
            other => Err(format!("unknown VPC job {other}")),
        }
    }
}

/// Resubmits the job a VPC names when none runs (a crash between record and job);
/// makes again what an active VPC lacks (all of it at the first pass: after a host
/// reboot nothing is there); removes objects under skiff's prefix that no record
/// names (they hold no tenant data: a bridge, a veth, an empty namespace).
pub struct VpcReconciler {
    services: Services,
    first: AtomicBool,
}

impl VpcReconciler {
    pub fn new(services: Services) -> Self {
        VpcReconciler {
            services,
            first: AtomicBool::new(true),
        }
    }
}

impl Reconcile for VpcReconciler {
    fn name(&self) -> &'static str {
        "vpcs"
    }

    fn reconcile(&self) -> Result<Vec<String>, String> {
        let s = &self.services.inner;
        let Some(host) = &s.net_host else {
            return Ok(vec![]);
        };
        let e = |e: StoreError| e.to_string();
        // The kernel first, the records second: a VPC recorded after the listing has
        // no objects in it, so nothing of a VPC being made is taken for a stray.
        let present = vpc::present(&host.prefix).map_err(|e| e.to_string())?;
        let vpcs = s.vpcs.all().map_err(e)?;
        let live: HashSet<String> = s
            .jobs
            .list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|j| !j.status.is_final() && j.kind.starts_with("vpc."))
            .filter_map(|j| j.params["vpc_id"].as_str().map(str::to_string))
            .collect();
        let first = self.first.swap(false, Ordering::SeqCst);
        let mut remade = false;
        let mut drift = Vec::new();
        if first {
            if let Err(e) = host.ensure_host() {
                drift.push(format!("SNAT for VPCs: {e}"));
            }
        }
        for v in &vpcs {
            if let Some(kind) = &v.pending {
                if !live.contains(&v.id.to_string()) {
                    self.services
                        .submit_vpc_job(v, kind)
                        .map_err(|e| e.to_string())?;
                    drift.push(format!(
                        "VPC {} was left with {kind} and no job; resubmitted it",
                        v.id
                    ));
                }
                continue;
            }
            if v.status == VpcStatus::Active && (first || !host.whole(&present, v.seq)) {
                let spec = host.spec(v)?;
                let whole = host.whole(&present, v.seq);
                match vpc::ensure(&spec) {
                    Ok(()) if !whole => {
                        remade = true;
                        drift.push(format!("VPC {} lacked host objects; made them", v.id))
                    }
                    Ok(()) => {}
                    Err(err) => drift.push(format!("VPC {}: {err}", v.id)),
                }
            }
        }
        // Every change syncs the responders itself; a pass does it only after a
        // start or when it had to remake a router (its responder went with it).
        if first || remade {
            host.sync_dhcp();
        }
        let known: HashSet<u64> = vpcs.iter().map(|v| v.seq).collect();
        for seq in present.any() {
            if known.contains(&seq) {
                continue;
            }
            let net = VpcNet {
                prefix: host.prefix.clone(),
                seq,
            };
            host.stop_dhcp(seq);
            match vpc::remove(&net) {
                Ok(()) => drift.push(format!(
                    "removed {}, {} and {}: no VPC names them",
                    net.bridge(),
                    net.veth(),
                    net.netns()
                )),
                Err(err) => drift.push(format!("stray VPC objects {seq}: {err}")),
            }
        }
        Ok(drift)
    }
}
