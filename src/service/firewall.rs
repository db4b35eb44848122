//! Security groups on the host: resolves every NIC's groups (remote groups included)
//! into a [`NicPolicy`] and hands the whole set to the eBPF driver, which changes only
//! what differs. Called after every change that can alter a policy (rules, attachments,
//! VM boot and delete) and by the reconciler, which also re-attaches after a restart.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use uuid::Uuid;

use crate::jobs::Reconcile;
use crate::model::{Family, SecurityGroup, SgDirection, SgProtocol, SgRemote, SgRule, Vm};
use crate::network::firewall::{
    link_local, parse_mac, Counter, Dir, Firewall, FwRule, NicPolicy, Prefix,
};
use crate::store::Table;

pub(crate) struct FirewallHost {
    pub fw: Firewall,
    pub vms: Table<Vm>,
    pub groups: Table<SecurityGroup>,
    /// One sync at a time, so that an older view never overwrites a newer one.
    pub lock: Mutex<()>,
}

fn families(rule: &SgRule) -> Vec<Family> {
    match (rule.family, rule.protocol) {
        (Some(f), _) => vec![f],
        (None, SgProtocol::Icmp) => vec![Family::V4],
        (None, SgProtocol::Icmpv6) => vec![Family::V6],
        (None, _) => vec![Family::V4, Family::V6],
    }
}

fn family_of(a: &IpAddr) -> Family {
    if a.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    }
}

/// The data plane's form of one rule: protocols expanded, remote groups resolved to
/// their members' addresses.
pub(crate) fn resolve(rule: &SgRule, members: &HashMap<Uuid, Vec<IpAddr>>) -> Vec<FwRule> {
    let fams = families(rule);
    let remotes: Vec<Prefix> = match &rule.remote {
        SgRemote::Any => fams.iter().map(|f| Prefix::any(*f == Family::V6)).collect(),
        SgRemote::Cidr { addr, len } => addr
            .parse::<IpAddr>()
            .ok()
            .filter(|a| fams.contains(&family_of(a)))
            .and_then(|a| Prefix::new(a, *len))
            .into_iter()
            .collect(),
        SgRemote::Group(g) => members
            .get(g)
            .into_iter()
            .flatten()
            .filter(|a| fams.contains(&family_of(a)))
            .map(|a| Prefix::host(*a))
            .collect(),
    };
    let protos: Vec<Option<u8>> = match rule.protocol {
        SgProtocol::Tcp => vec![Some(6)],
        SgProtocol::Udp => vec![Some(17)],
        SgProtocol::Icmp => vec![Some(1)],
        SgProtocol::Icmpv6 => vec![Some(58)],
        SgProtocol::Ipsec => vec![Some(50), Some(51)],
        SgProtocol::All => vec![None],
        SgProtocol::Number(n) => vec![Some(n)],
    };
    let ports = match rule.protocol {
        SgProtocol::Tcp | SgProtocol::Udp => rule.ports.unwrap_or((0, 65535)),
        SgProtocol::Icmp | SgProtocol::Icmpv6 => rule
            .icmp_type
            .map_or((0, 65535), |t| (u16::from(t), u16::from(t))),
        _ => (0, 65535),
    };
    let dir = match rule.direction {
        SgDirection::Inbound => Dir::In,
        SgDirection::Outbound => Dir::Out,
    };
    protos
        .into_iter()
        .map(|proto| FwRule {
            id: rule.id,
            dir,
            proto,
            ports,
            remotes: remotes.clone(),
        })
        .collect()
}

/// Every NIC's tap and policy, from the VMs and groups as stored.
pub(crate) fn policies(vms: &[Vm], groups: &[SecurityGroup]) -> Vec<(String, NicPolicy)> {
    let groups: HashMap<Uuid, &SecurityGroup> = groups.iter().map(|g| (g.id, g)).collect();
    // A VM being deleted is no member any more: its address may soon be someone else's.
    // Members are per network (the public pool, each VPC): a remote group on a NIC
    // means that group's addresses on the NIC's own network, since another VPC may
    // hold the same address.
    let mut members: HashMap<String, HashMap<Uuid, Vec<IpAddr>>> = HashMap::new();
    for vm in vms.iter().filter(|v| !v.deleting) {
        for nic in &vm.nics {
            let ips = nic
                .ip
                .parse::<IpAddr>()
                .ok()
                .into_iter()
                .chain(nic.ip6.as_deref().and_then(|a| a.parse().ok()));
            for ip in ips {
                for g in &nic.security_groups {
                    members
                        .entry(nic.pool())
                        .or_default()
                        .entry(*g)
                        .or_default()
                        .push(ip);
                }
            }
        }
    }
    let none = HashMap::new();
    let mut out = Vec::new();
    for vm in vms {
        for nic in &vm.nics {
            let Some(mac) = parse_mac(&nic.mac) else {
                continue;
            };
            let attached: Vec<&SecurityGroup> = nic
                .security_groups
                .iter()
                .filter_map(|g| groups.get(g).copied())
                .collect();
            let rules: Vec<&SgRule> = attached.iter().flat_map(|g| g.rules.iter()).collect();
            let mut addrs: Vec<IpAddr> = nic.ip.parse().into_iter().collect();
            addrs.extend(nic.ip6.as_deref().and_then(|a| a.parse::<IpAddr>().ok()));
            addrs.push(link_local(mac));
            out.push((
                nic.tap.clone(),
                NicPolicy {
                    nic: nic.id as u32,
                    mac,
                    addrs,
                    filtered: !nic.security_groups.is_empty(),
                    egress_restricted: rules.iter().any(|r| r.direction == SgDirection::Outbound),
                    rules: {
                        let members = members.get(&nic.pool()).unwrap_or(&none);
                        rules.iter().flat_map(|r| resolve(r, members)).collect()
                    },
                },
            ));
        }
    }
    out
}

impl FirewallHost {
    /// Brings the data plane in line with the store. Returns what failed: (tap, why).
    pub fn sync(&self) -> Result<Vec<(String, String)>, String> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let vms = self.vms.all().map_err(|e| e.to_string())?;
        let groups = self.groups.all().map_err(|e| e.to_string())?;
        let failed = self.fw.sync(&policies(&vms, &groups));
        Ok(failed
            .into_iter()
            .map(|(tap, e)| (tap, e.to_string()))
            .collect())
    }

    /// Syncs and logs what failed; for callers that go on regardless.
    pub fn sync_logged(&self) {
        match self.sync() {
            Ok(failed) => {
                for (tap, e) in failed {
                    tracing::error!(tap, error = %e, "security groups not applied");
                }
            }
            Err(e) => tracing::error!(error = %e, "security groups not applied"),
        }
    }

    /// Whether the tap exists and carries its policy.
    pub fn enforces(&self, tap: &str) -> bool {
        self.fw.enforces(tap)
    }

    pub fn counters(&self) -> HashMap<u64, Counter> {
        self.fw.counters().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read security-group counters");
            HashMap::new()
        })
    }
}

/// The reconciler part: re-attaches to taps libvirt recreated, and after a restart.
pub struct FirewallReconciler(pub super::Services);

impl Reconcile for FirewallReconciler {
    fn name(&self) -> &'static str {
        "firewall"
    }

    fn reconcile(&self) -> Result<Vec<String>, String> {
        match &self.0.inner.firewall {
            Some(f) => Ok(f
                .sync()?
                .into_iter()
                .map(|(tap, e)| format!("{tap}: {e}"))
                .collect()),
            None => Ok(vec![]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{now, Nic, SgProtocol, VmStatus};

    fn vm(nics: Vec<Nic>) -> Vm {
        Vm {
            id: Uuid::new_v4(),
            account_id: Uuid::nil(),
            project_id: Uuid::nil(),
            name: "v".into(),
            status: VmStatus::Active,
            pricing_id: 1,
            vcpus: 1,
            ram_gib: 1,
            storage_gib: 1,
            added_storage_gib: 0,
            template_id: Uuid::nil(),
            template_name: String::new(),
            template_version: String::new(),
            region: "us-east".into(),
            ssh_keys: vec![],
            password_hash: None,
            instance_id: String::new(),
            nics,
            tags: vec![],
            deleting: false,
            created_by: None,
            created_at: now(),
            updated_at: now(),
        }
    }

    fn nic(id: u64, ip: &str, vpc: Option<Uuid>, groups: Vec<Uuid>) -> Nic {
        Nic {
            id,
            kind: if vpc.is_some() { "vpc" } else { "public" }.into(),
            network_name: String::new(),
            mac: crate::network::nic_mac(id),
            ip: ip.into(),
            prefix: 24,
            gateway: String::new(),
            bridge: String::new(),
            tap: format!("t{id}"),
            security_groups: groups,
            vpc_id: vpc,
            mtu: None,
            pending: None,
            ip6: None,
        }
    }

    #[test]
    fn remote_groups_resolve_within_the_nics_own_network() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let member = Uuid::new_v4();
        let guarded = SecurityGroup {
            id: Uuid::new_v4(),
            account_id: Uuid::nil(),
            project_id: Uuid::nil(),
            name: "g".into(),
            description: String::new(),
            rules: vec![SgRule {
                id: 1,
                direction: SgDirection::Inbound,
                family: None,
                protocol: SgProtocol::Tcp,
                ports: Some((80, 80)),
                icmp_type: None,
                remote: SgRemote::Group(member),
            }],
            created_at: now(),
            updated_at: now(),
        };
        let vms = vec![
            vm(vec![nic(1, "10.0.0.5", Some(a), vec![member])]),
            // Same group, another VPC: its address means nothing in VPC a.
            vm(vec![nic(2, "10.0.0.6", Some(b), vec![member])]),
            vm(vec![nic(3, "203.0.113.7", None, vec![member])]),
            vm(vec![nic(4, "10.0.0.9", Some(a), vec![guarded.id])]),
        ];
        let member_group = SecurityGroup {
            id: member,
            rules: vec![],
            ..guarded.clone()
        };
        let p = policies(&vms, &[guarded, member_group]);
        let (_, pol) = p.iter().find(|(tap, _)| tap == "t4").unwrap();
        let remotes: Vec<String> = pol
            .rules
            .iter()
            .flat_map(|r| r.remotes.iter().map(|x| format!("{x:?}")))
            .collect();
        assert_eq!(remotes.len(), 1, "{remotes:?}");
        assert!(remotes[0].contains("10.0.0.5"), "{remotes:?}");
    }
}
