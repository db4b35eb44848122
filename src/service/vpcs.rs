//! VPCs: validation (ranges, sizes, overlap), project scoping, quotas, and the jobs
//! that make and remove their host objects (`vpc_jobs`). The rules are in
//! docs/decisions/0011-vpc-data-path.md.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use uuid::Uuid;

use super::{check_name, invalid, Principal, ServiceError, Services};
use crate::jobs::NewJob;
use crate::model::{now, uuid_key, IpLease, Vpc, VpcStatus};
use crate::network::Cidr;

/// Serialises the decisions that span records: whether a CIDR is free in the account,
/// whether a VPC is empty. Each request decides and records under it.
pub(crate) static VPC_LOCK: Mutex<()> = Mutex::new(());

/// The ranges a VPC may take: RFC 1918 and the shared space of RFC 6598.
const PRIVATE: &[(&str, [u8; 4], u8)] = &[
    ("10.0.0.0/8", [10, 0, 0, 0], 8),
    ("172.16.0.0/12", [172, 16, 0, 0], 12),
    ("192.168.0.0/16", [192, 168, 0, 0], 16),
    ("100.64.0.0/10", [100, 64, 0, 0], 10),
];
/// Prefix lengths a VPC may have (the contract's product notes: /16 to /28).
const MIN_PREFIX: u8 = 16;
const MAX_PREFIX: u8 = 28;

fn overlaps(a: &Cidr, b: &Cidr) -> bool {
    a.contains(b.network) || b.contains(a.network)
}

/// Addresses in the block, as the contract counts them (`total_ips`: 256 for a /24).
pub fn total_ips(c: &Cidr) -> u64 {
    1u64 << (32 - c.prefix)
}

/// The addresses skiff hands out: after the gateway (`.1`), before the broadcast.
pub fn host_range(c: &Cidr) -> (Ipv4Addr, Ipv4Addr) {
    let net = u32::from(c.network);
    let bcast = net | (u32::MAX >> c.prefix);
    (Ipv4Addr::from(net + 2), Ipv4Addr::from(bcast - 1))
}

/// A VPC block from the request: `a.b.c.d/len`, the network address itself, /16 to
/// /28, inside a private range.
pub fn parse_vpc_cidr(raw: &str) -> Result<Cidr, ServiceError> {
    let c = Cidr::parse(raw.trim()).map_err(|_| {
        invalid(format!(
            "cidr {raw:?} is not a block of the form a.b.c.d/len (len {MIN_PREFIX} to {MAX_PREFIX})"
        ))
    })?;
    if !(MIN_PREFIX..=MAX_PREFIX).contains(&c.prefix) {
        return Err(invalid(format!(
            "cidr prefix must be /{MIN_PREFIX} to /{MAX_PREFIX}, not /{}",
            c.prefix
        )));
    }
    if c.to_string() != raw.trim() {
        return Err(invalid(format!(
            "cidr {raw:?} has host bits set: the block is {c}"
        )));
    }
    let private = PRIVATE.iter().any(|(_, net, len)| {
        Cidr {
            network: Ipv4Addr::from(*net),
            prefix: *len,
        }
        .contains(c.network)
    });
    if !private {
        let ranges: Vec<&str> = PRIVATE.iter().map(|r| r.0).collect();
        return Err(invalid(format!(
            "cidr {c} is not in a private range ({})",
            ranges.join(", ")
        )));
    }
    Ok(c)
}

/// The first /`prefix` of 10.0.0.0/8 after 10.0.0.0/`prefix` that overlaps
/// nothing in `taken`.
fn free_block(taken: &[Cidr], prefix: u8) -> Option<Cidr> {
    let step = 1u32 << (32 - prefix);
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    (1..(1u32 << (prefix - 8)))
        .map(|i| Cidr {
            network: Ipv4Addr::from(base + i * step),
            prefix,
        })
        .find(|c| !taken.iter().any(|t| overlaps(t, c)))
}

/// How a new VM joins a VPC: the contract's `vpc_id`, `vpc_name` with `vpc_cidr`,
/// or neither (a VPC `vpc-<vm name>` of its own).
pub enum VpcJoin {
    Existing(Uuid),
    New { name: String, cidr: String },
    Auto,
}

/// A VPC join that passed every check.
pub(super) enum PlannedVpc {
    Existing(Box<Vpc>),
    New { name: String, cidr: Cidr },
}

/// A create request, as the API parsed it.
pub struct NewVpc {
    pub name: String,
    pub cidr: String,
    pub region: Option<String>,
}

/// What `GET /vpcs/cidr-suggestions` proposes.
pub struct CidrSuggestions {
    pub suggested: Option<Cidr>,
    /// (block, size name).
    pub alternatives: Vec<(Cidr, &'static str)>,
    pub existing: usize,
}

/// A VPC with what its detail view shows.
pub struct VpcDetail {
    pub vpc: Vpc,
    pub leases: Vec<IpLease>,
}

impl Services {
    /// A VPC the caller may see with `perm`; any other answer is 404.
    pub(super) fn visible_vpc(
        &self,
        who: &Principal,
        id: &Uuid,
        perm: &str,
    ) -> Result<Vpc, ServiceError> {
        who.require_somewhere(perm)?;
        match self.inner.vpcs.get(&uuid_key(id))? {
            Some(v)
                if v.account_id == who.account_id
                    && v.status != VpcStatus::Deleting
                    && who.require_in(&v.project_id, perm).is_ok() =>
            {
                Ok(v)
            }
            _ => Err(ServiceError::NotFound { kind: "VPC" }),
        }
    }

    /// The host side of VPCs, or why there is none (503).
    fn vpc_host(&self) -> Result<(), ServiceError> {
        if self.inner.net_host.is_some() {
            Ok(())
        } else {
            Err(ServiceError::Unavailable(format!(
                "VPCs need compute on this host: {}",
                self.inner.compute_down.as_deref().unwrap_or("it is off")
            )))
        }
    }

    /// The account's VPC blocks, and the host's own ranges a VPC must not overlap
    /// (a guest in both would not know where to route).
    fn taken_blocks(&self, account: &Uuid) -> Result<Vec<Cidr>, ServiceError> {
        let mut taken: Vec<Cidr> = self
            .inner
            .vpcs
            .by_index(Vpc::BY_ACCOUNT, &uuid_key(account))?
            .iter()
            .filter_map(|v| Cidr::parse(&v.cidr).ok())
            .collect();
        if let Ok(public) = Cidr::parse(&self.inner.public_net.cidr) {
            taken.push(public);
        }
        Ok(taken)
    }

    /// Submits job `vpc.<kind>` for `v`.
    pub(super) fn submit_vpc_job(&self, v: &Vpc, kind: &str) -> Result<Uuid, ServiceError> {
        let job = self.inner.jobs.submit(NewJob {
            kind: format!("vpc.{kind}"),
            target: format!("vpc/{}", v.id),
            account_id: Some(v.account_id),
            project_id: Some(v.project_id),
            params: serde_json::json!({ "vpc_id": v.id }),
        })?;
        Ok(job.id)
    }

    /// Records a VPC and queues the job that makes its host objects; returns it with
    /// that job.
    pub fn create_vpc(
        &self,
        who: &Principal,
        header: Option<&str>,
        new: NewVpc,
    ) -> Result<(Vpc, Uuid), ServiceError> {
        let project = self.project_scope(who, header, "vpc.create")?;
        let name = check_name(new.name.trim(), 64)?;
        let cidr = parse_vpc_cidr(&new.cidr)?;
        let region = new.region.unwrap_or_else(|| project.default_region.clone());
        if !self.inner.catalog.regions.iter().any(|r| r.code == region) {
            return Err(invalid(format!("unknown region {region:?}")));
        }
        self.vpc_host()?;
        let _g = VPC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        self.check_block_free(&who.account_id, &cidr)?;
        self.record_vpc(who, &project.id, name, cidr, region)
    }

    /// Fails with 400 when `cidr` overlaps a block of the account or the host's.
    /// Callers hold `VPC_LOCK` until the VPC is recorded.
    fn check_block_free(&self, account: &Uuid, cidr: &Cidr) -> Result<(), ServiceError> {
        if let Some(other) = self
            .taken_blocks(account)?
            .into_iter()
            .find(|t| overlaps(t, cidr))
        {
            return Err(invalid(format!(
                "cidr {cidr} overlaps {other}, taken in this account or by the host's public network; see GET /api/v1/vpcs/cidr-suggestions"
            )));
        }
        Ok(())
    }

    /// Records a VPC (its block checked free already, under `VPC_LOCK`) and queues
    /// the job that makes its host objects.
    fn record_vpc(
        &self,
        who: &Principal,
        project: &Uuid,
        name: String,
        cidr: Cidr,
        region: String,
    ) -> Result<(Vpc, Uuid), ServiceError> {
        let used = self
            .inner
            .vpcs
            .count_by_index(Vpc::BY_ACCOUNT, &uuid_key(&who.account_id))?;
        self.check_quota(&who.account_id, "vpcs", used as u64, 1)?;
        let seq = self.inner.store.next_id("vpc")?;
        if seq > crate::network::vpc::MAX_SEQ {
            return Err(ServiceError::Unavailable(
                "this host has made all the VPCs it can number".into(),
            ));
        }
        let t = now();
        let v = Vpc {
            id: Uuid::new_v4(),
            account_id: who.account_id,
            project_id: *project,
            name,
            description: String::new(),
            cidr: cidr.to_string(),
            gateway: cidr.first_host().to_string(),
            seq,
            region,
            status: VpcStatus::Creating,
            pending: Some("create".into()),
            error: None,
            created_by: who.user_id,
            created_at: t,
            updated_at: t,
        };
        self.inner.vpcs.create(&v)?;
        let job = self.submit_vpc_job(&v, "create")?;
        Ok((v, job))
    }

    /// Decides which VPC a new VM joins; refuses (nothing recorded) what cannot be
    /// honoured. Callers hold `VPC_LOCK` through `join_vpc`.
    pub(super) fn plan_vpc_join(
        &self,
        who: &Principal,
        project: &Uuid,
        vm_name: &str,
        region: &str,
        join: VpcJoin,
    ) -> Result<PlannedVpc, ServiceError> {
        self.vpc_host()?;
        match join {
            VpcJoin::Existing(id) => {
                let v = self
                    .visible_vpc(who, &id, "vpc.view")
                    .ok()
                    .filter(|v| v.project_id == *project)
                    .ok_or_else(|| invalid(format!("vpc_id: no VPC {id} in this project")))?;
                who.require_in(project, "vpc.manage")?;
                if !matches!(v.status, VpcStatus::Active | VpcStatus::Creating) {
                    return Err(invalid(format!("vpc_id: the VPC is {}", v.status.as_str())));
                }
                if v.region != region {
                    return Err(invalid(format!(
                        "vpc_id: the VPC is in region {}, the VM in {region}",
                        v.region
                    )));
                }
                Ok(PlannedVpc::Existing(Box::new(v)))
            }
            VpcJoin::New { name, cidr } => {
                who.require_in(project, "vpc.create")?;
                let name = check_name(name.trim(), 64)
                    .map_err(|_| invalid("vpc_name must be 1 to 64 characters"))?;
                let cidr = parse_vpc_cidr(&cidr)?;
                self.check_block_free(&who.account_id, &cidr)?;
                Ok(PlannedVpc::New { name, cidr })
            }
            VpcJoin::Auto => {
                who.require_in(project, "vpc.create")?;
                let mut name = format!("vpc-{vm_name}");
                if name.chars().count() > 64 {
                    name = name.chars().take(64).collect();
                }
                let taken = self.taken_blocks(&who.account_id)?;
                let cidr = free_block(&taken, 24).ok_or_else(|| {
                    invalid("no free /24 in 10.0.0.0/8 for the VM's VPC: pass vpc_id, or vpc_name with vpc_cidr")
                })?;
                Ok(PlannedVpc::New { name, cidr })
            }
        }
    }

    /// Records a planned new VPC, then leases the first free address of the VPC for
    /// NIC `nic_id` of VM `vm_id`: the VPC, the address and its prefix.
    pub(super) fn join_vpc(
        &self,
        who: &Principal,
        project: &Uuid,
        region: &str,
        plan: PlannedVpc,
        vm_id: Uuid,
        nic_id: u64,
    ) -> Result<(Vpc, Ipv4Addr, u8), ServiceError> {
        let v = match plan {
            PlannedVpc::Existing(v) => *v,
            PlannedVpc::New { name, cidr } => {
                self.record_vpc(who, project, name, cidr, region.to_string())?
                    .0
            }
        };
        let cidr = Cidr::parse(&v.cidr).map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let (first, last) = host_range(&cidr);
        for ip in u32::from(first)..=u32::from(last) {
            let ip = Ipv4Addr::from(ip);
            let lease = IpLease {
                ip: ip.to_string(),
                pool: v.pool(),
                vm_id,
                nic_id,
                created_at: now(),
            };
            match self.inner.leases.create(&lease) {
                Ok(()) => return Ok((v, ip, cidr.prefix)),
                Err(crate::store::StoreError::Exists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!(
            "the VPC {} has no free address",
            v.name
        )))
    }

    /// The MTU and bridge of VPC NICs on this host.
    pub(super) fn vpc_link(&self, v: &Vpc) -> Result<(String, u32), ServiceError> {
        let nh =
            self.inner.net_host.as_ref().ok_or_else(|| {
                ServiceError::Unavailable("VPCs need compute on this host".into())
            })?;
        Ok((nh.net(v).bridge(), nh.mtu))
    }

    pub fn list_vpcs(
        &self,
        who: &Principal,
        project: Option<&Uuid>,
    ) -> Result<Vec<Vpc>, ServiceError> {
        let mut all = Vec::new();
        for p in self.projects_for_list(who, project)? {
            if who.require_in(&p, "vpc.view").is_err() {
                continue;
            }
            all.extend(
                self.inner
                    .vpcs
                    .by_index(Vpc::BY_PROJECT, &uuid_key(&p))?
                    .into_iter()
                    .filter(|v| v.status != VpcStatus::Deleting),
            );
        }
        all.sort_by_key(|v| (v.created_at, v.id));
        Ok(all)
    }

    /// The addresses leased in `v`, in address order.
    fn vpc_leases(&self, v: &Vpc) -> Result<Vec<IpLease>, ServiceError> {
        let pool = v.pool();
        let mut leases: Vec<IpLease> = self
            .inner
            .leases
            .all()?
            .into_iter()
            .filter(|l| l.pool == pool)
            .collect();
        leases.sort_by_key(|l| l.ip.parse::<Ipv4Addr>().map(u32::from).unwrap_or(0));
        Ok(leases)
    }

    /// How many addresses of `v` are leased.
    pub fn vpc_used_ips(&self, v: &Vpc) -> Result<usize, ServiceError> {
        Ok(self.vpc_leases(v)?.len())
    }

    /// A VPC by id; the header must name its project (the contract marks it required).
    pub fn get_vpc(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
    ) -> Result<VpcDetail, ServiceError> {
        let v = self.visible_vpc(who, id, "vpc.view")?;
        self.header_names(who, header, &v.project_id, "vpc.view", "VPC")?;
        let leases = self.vpc_leases(&v)?;
        Ok(VpcDetail { vpc: v, leases })
    }

    /// Renames or describes a VPC; the CIDR never changes.
    pub fn update_vpc(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        name: Option<String>,
        description: Option<String>,
    ) -> Result<Vpc, ServiceError> {
        let v = self.visible_vpc(who, id, "vpc.manage")?;
        self.header_names(who, header, &v.project_id, "vpc.manage", "VPC")?;
        if name.is_none() && description.is_none() {
            return Err(invalid("give name or description"));
        }
        let name = name.map(|n| check_name(n.trim(), 64)).transpose()?;
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 255)
        {
            return Err(invalid("description must be at most 255 characters"));
        }
        self.inner
            .vpcs
            .update::<ServiceError>(&uuid_key(id), |v| {
                if let Some(n) = &name {
                    v.name = n.clone();
                }
                if let Some(d) = &description {
                    v.description = d.clone();
                }
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "VPC" })
    }

    /// Deletes an empty VPC: its record says `deleting` until the job has removed its
    /// host objects, then goes.
    pub fn delete_vpc(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
    ) -> Result<(Vpc, Uuid), ServiceError> {
        let _g = VPC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let v = self.visible_vpc(who, id, "vpc.delete")?;
        self.header_names(who, header, &v.project_id, "vpc.delete", "VPC")?;
        if let Some(job) = &v.pending {
            return Err(ServiceError::Conflict(format!(
                "the VPC is busy ({job} under way); retry when it ends"
            )));
        }
        let members = self.vpc_leases(&v)?.len();
        if members > 0 {
            return Err(invalid(format!(
                "{members} NIC(s) are attached to the VPC: detach them first (DELETE /api/v1/vms/{{id}}/vpc/{{nic_id}})"
            )));
        }
        self.vpc_host()?;
        let v = self
            .inner
            .vpcs
            .update::<ServiceError>(&uuid_key(id), |v| {
                v.status = VpcStatus::Deleting;
                v.pending = Some("delete".into());
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "VPC" })?;
        let job = self.submit_vpc_job(&v, "delete")?;
        Ok((v, job))
    }

    /// Free blocks for a new VPC of the account: a /24 first, then a small, a
    /// medium and a large one, none overlapping each other or what is taken.
    pub fn vpc_cidr_suggestions(
        &self,
        who: &Principal,
        header: Option<&str>,
    ) -> Result<CidrSuggestions, ServiceError> {
        self.project_scope(who, header, "vpc.view")?;
        let mut taken = self.taken_blocks(&who.account_id)?;
        let existing = self
            .inner
            .vpcs
            .count_by_index(Vpc::BY_ACCOUNT, &uuid_key(&who.account_id))?;
        let mut pick = |prefix: u8| -> Option<Cidr> {
            let found = free_block(&taken, prefix)?;
            taken.push(found);
            Some(found)
        };
        let suggested = pick(24);
        let alternatives = [(26, "small"), (22, "medium"), (20, "large")]
            .into_iter()
            .filter_map(|(p, size)| pick(p).map(|c| (c, size)))
            .collect();
        Ok(CidrSuggestions {
            suggested,
            alternatives,
            existing,
        })
    }

    /// The name a NIC's network is shown with: `public`, or its VPC's name now (the
    /// host's bridge names are never shown).
    pub fn network_name(&self, n: &crate::model::Nic) -> String {
        match &n.vpc_id {
            None => "public".into(),
            Some(id) => match self.inner.vpcs.get(&uuid_key(id)) {
                Ok(Some(v)) => v.name,
                _ => n.network_name.clone(),
            },
        }
    }

    /// The guests' IPv6 gateway on the public network, when it has a prefix.
    pub fn gateway6(&self) -> Option<String> {
        crate::network::Prefix64::parse(&self.inner.public_net.ipv6_prefix)
            .map(|p| p.host(1).to_string())
    }

    /// Re-reads a VPC after its job.
    pub fn vpc_after(&self, id: &Uuid) -> Result<Option<Vpc>, ServiceError> {
        Ok(self.inner.vpcs.get(&uuid_key(id))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpc_blocks_are_private_networks_of_sane_size() {
        for ok in [
            "10.0.0.0/24",
            "172.16.4.0/22",
            "192.168.0.0/16",
            "100.64.0.0/28",
        ] {
            assert_eq!(parse_vpc_cidr(ok).unwrap().to_string(), ok);
        }
        for (bad, why) in [
            ("10.0.0.0/8", "/16 to /28"),
            ("10.0.0.0/29", "/16 to /28"),
            ("10.0.0.5/24", "host bits"),
            ("8.8.8.0/24", "private range"),
            ("172.32.0.0/24", "private range"),
            ("100.128.0.0/24", "private range"),
            ("10.0.0.0", "a.b.c.d/len"),
            ("10.0.0.0/33", "a.b.c.d/len"),
        ] {
            let e = parse_vpc_cidr(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let c = parse_vpc_cidr("10.0.1.0/24").unwrap();
        assert_eq!(total_ips(&c), 256);
        let (a, b) = host_range(&c);
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("10.0.1.2".into(), "10.0.1.254".into())
        );
        let big = parse_vpc_cidr("10.0.0.0/16").unwrap();
        assert!(overlaps(&big, &c) && overlaps(&c, &big));
        assert!(!overlaps(&c, &parse_vpc_cidr("10.0.2.0/24").unwrap()));
    }
}
