//! Security groups: named sets of allow rules, attached to VM NICs. Rules are kept in
//! the dialect-neutral [`SgRule`]; each API dialect parses its own shape into it.

use std::net::IpAddr;

use uuid::Uuid;

use super::projects::check_description;
use super::{check_name, invalid, Principal, ServiceError, Services};
use crate::model::{
    now, uuid_key, Family, SecurityGroup, SgDirection, SgProtocol, SgRemote, SgRule, Vm,
};
pub use crate::network::firewall::Counter as RuleCounter;

/// The longest group description accepted.
const MAX_DESCRIPTION: usize = 255;

/// A rule in the Raff contract's shape, as received.
#[derive(Clone, Debug, Default)]
pub struct RaffRule {
    pub protocol: String,
    pub rule_type: String,
    pub range: Option<String>,
    pub ip: Option<String>,
    pub size: Option<i64>,
    pub icmp_type: Option<i64>,
    /// skiff's extension: the Tavu dialect's remote group, in the Raff shape.
    pub remote_group_id: Option<Uuid>,
}

/// A group as asked for; on update, `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct GroupWrite {
    pub name: Option<String>,
    pub description: Option<String>,
    pub template_id: Option<String>,
    pub rules: Option<Vec<SgRule>>,
}

/// A pre-built rule set a new group can start from.
pub struct SgTemplate {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub rules: Vec<SgRule>,
}

fn port(s: &str, what: &str) -> Result<u16, ServiceError> {
    match s.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(invalid(format!(
            "range {what:?}: ports are whole numbers from 1 to 65535"
        ))),
    }
}

/// Parses one rule of the Raff shape. The id is left 0 for the caller to assign.
pub fn raff_rule(r: &RaffRule) -> Result<SgRule, ServiceError> {
    let protocol = match r.protocol.trim().to_ascii_uppercase().as_str() {
        "TCP" => SgProtocol::Tcp,
        "UDP" => SgProtocol::Udp,
        "ICMP" => SgProtocol::Icmp,
        "ICMPV6" => SgProtocol::Icmpv6,
        "IPSEC" => SgProtocol::Ipsec,
        "ALL" => SgProtocol::All,
        other => match other.parse::<u8>() {
            Ok(n) if n < 255 => SgProtocol::Number(n),
            _ => {
                return Err(invalid(format!(
                    "protocol {:?}: use TCP, UDP, ICMP, ICMPV6, IPSEC, ALL or an IP protocol number 0-254",
                    r.protocol
                )))
            }
        },
    };
    let direction = match r.rule_type.trim().to_ascii_uppercase().as_str() {
        "INBOUND" => SgDirection::Inbound,
        "OUTBOUND" => SgDirection::Outbound,
        _ => {
            return Err(invalid(format!(
                "rule_type {:?}: use INBOUND or OUTBOUND",
                r.rule_type
            )))
        }
    };
    let range = r.range.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let ports = match (range, protocol) {
        (None, _) => None,
        (Some(s), SgProtocol::Tcp | SgProtocol::Udp) => {
            let (lo, hi) = match s.split_once(':') {
                Some((a, b)) => (port(a, s)?, port(b, s)?),
                None => {
                    let p = port(s, s)?;
                    (p, p)
                }
            };
            if lo > hi {
                return Err(invalid(format!(
                    "range {s:?}: the first port must not be above the second"
                )));
            }
            Some((lo, hi))
        }
        (Some(s), _) => {
            return Err(invalid(format!(
                "range {s:?}: ports apply to TCP and UDP only; leave range empty for {}",
                r.protocol.trim().to_ascii_uppercase()
            )))
        }
    };
    let icmp_type = match (r.icmp_type, protocol) {
        (None, _) => None,
        (Some(t), SgProtocol::Icmp | SgProtocol::Icmpv6) if (0..=255).contains(&t) => Some(t as u8),
        (Some(t), SgProtocol::Icmp | SgProtocol::Icmpv6) => {
            return Err(invalid(format!("icmp_type {t}: must be 0 to 255")))
        }
        (Some(_), _) => return Err(invalid("icmp_type applies to ICMP and ICMPV6 only")),
    };
    let ip = r.ip.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let remote = match (ip, r.remote_group_id) {
        (Some(_), Some(_)) => {
            return Err(invalid("give ip or remote_group_id, not both"));
        }
        (None, Some(g)) => {
            if r.size.is_some() {
                return Err(invalid("size goes with ip, not with remote_group_id"));
            }
            SgRemote::Group(g)
        }
        (None, None) => {
            if r.size.is_some() {
                return Err(invalid("size needs an ip"));
            }
            SgRemote::Any
        }
        (Some(text), None) => {
            let (addr_text, inline) = match text.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (text, None),
            };
            let addr: IpAddr = addr_text
                .parse()
                .map_err(|_| invalid(format!("ip {text:?} is not an IPv4 or IPv6 address")))?;
            let max: i64 = if addr.is_ipv4() { 32 } else { 128 };
            let inline = match inline {
                Some(l) => Some(l.parse::<i64>().map_err(|_| {
                    invalid(format!("ip {text:?}: the prefix length must be a number"))
                })?),
                None => None,
            };
            let len = match (inline, r.size) {
                (Some(a), Some(b)) if a != b => {
                    return Err(invalid(format!(
                        "ip {text:?} and size {b} give two prefix lengths"
                    )))
                }
                (Some(l), _) | (None, Some(l)) => l,
                // A bare unspecified address means "any" of its family, as in the
                // contract's example `0.0.0.0`.
                (None, None) if addr.is_unspecified() => 0,
                (None, None) => max,
            };
            if !(0..=max).contains(&len) {
                return Err(invalid(format!(
                    "size {len} does not fit an {} address (0 to {max})",
                    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
                )));
            }
            match (protocol, addr.is_ipv4()) {
                (SgProtocol::Icmp, false) => {
                    return Err(invalid(
                        "ICMP rules take IPv4 addresses; use ICMPV6 for IPv6",
                    ))
                }
                (SgProtocol::Icmpv6, true) => {
                    return Err(invalid(
                        "ICMPV6 rules take IPv6 addresses; use ICMP for IPv4",
                    ))
                }
                _ => {}
            }
            let norm = crate::network::firewall::mask(addr, len as u8);
            SgRemote::Cidr {
                addr: norm.to_string(),
                len: len as u8,
            }
        }
    };
    let family = match &remote {
        SgRemote::Cidr { addr, .. } => Some(if addr.contains(':') {
            Family::V6
        } else {
            Family::V4
        }),
        _ => None,
    };
    Ok(SgRule {
        id: 0,
        direction,
        family,
        protocol,
        ports,
        icmp_type,
        remote,
    })
}

fn rule(dir: SgDirection, protocol: SgProtocol, ports: Option<(u16, u16)>) -> SgRule {
    SgRule {
        id: 0,
        direction: dir,
        family: None,
        protocol,
        ports,
        icmp_type: None,
        remote: SgRemote::Any,
    }
}

fn ping_rules() -> Vec<SgRule> {
    vec![
        SgRule {
            icmp_type: Some(8),
            ..rule(SgDirection::Inbound, SgProtocol::Icmp, None)
        },
        SgRule {
            icmp_type: Some(128),
            ..rule(SgDirection::Inbound, SgProtocol::Icmpv6, None)
        },
    ]
}

/// The templates `GET /security-groups/templates` lists.
pub fn sg_templates() -> Vec<SgTemplate> {
    use SgDirection::Inbound as In;
    use SgProtocol::{Tcp, Udp};
    let mut web = vec![
        rule(In, Tcp, Some((80, 80))),
        rule(In, Tcp, Some((443, 443))),
    ];
    web.extend(ping_rules());
    vec![
        SgTemplate {
            id: "web-server",
            name: "Web Server",
            description: "HTTP and HTTPS from anywhere, and ping",
            rules: web,
        },
        SgTemplate {
            id: "ssh",
            name: "SSH only",
            description: "SSH (TCP 22) from anywhere",
            rules: vec![rule(In, Tcp, Some((22, 22)))],
        },
        SgTemplate {
            id: "ping",
            name: "Ping",
            description: "ICMP and ICMPv6 echo requests from anywhere",
            rules: ping_rules(),
        },
        SgTemplate {
            id: "dns",
            name: "DNS server",
            description: "DNS over UDP and TCP (port 53) from anywhere",
            rules: vec![rule(In, Udp, Some((53, 53))), rule(In, Tcp, Some((53, 53)))],
        },
        SgTemplate {
            id: "database",
            name: "Database",
            description: "PostgreSQL (5432) and MySQL (3306) from private networks only",
            rules: ["10.0.0.0", "172.16.0.0", "192.168.0.0"]
                .iter()
                .zip([8u8, 12, 16])
                .flat_map(|(a, len)| {
                    [(5432u16, 5432u16), (3306, 3306)].map(|p| SgRule {
                        family: Some(Family::V4),
                        remote: SgRemote::Cidr {
                            addr: (*a).into(),
                            len,
                        },
                        ..rule(In, Tcp, Some(p))
                    })
                })
                .collect(),
        },
    ]
}

impl Services {
    fn visible_group(
        &self,
        who: &Principal,
        id: &Uuid,
        perm: &str,
    ) -> Result<SecurityGroup, ServiceError> {
        who.require_somewhere(perm)?;
        match self.inner.groups.get(&uuid_key(id))? {
            Some(g)
                if g.account_id == who.account_id
                    && who.require_in(&g.project_id, perm).is_ok() =>
            {
                Ok(g)
            }
            _ => Err(ServiceError::NotFound {
                kind: "Security group",
            }),
        }
    }

    /// Gives new rules ids; a rule equal to one of `old` keeps that one's id (and
    /// counters). Checks remote groups: same project.
    fn number_rules(
        &self,
        project: &Uuid,
        rules: Vec<SgRule>,
        old: &[SgRule],
    ) -> Result<Vec<SgRule>, ServiceError> {
        let mut out: Vec<SgRule> = Vec::with_capacity(rules.len());
        for (i, mut r) in rules.into_iter().enumerate() {
            if out.iter().any(|o| o.same_as(&r)) {
                continue;
            }
            if let SgRemote::Group(g) = &r.remote {
                match self.inner.groups.get(&uuid_key(g))? {
                    Some(rg) if rg.project_id == *project => {}
                    _ => {
                        return Err(invalid(format!(
                        "rules[{i}]: remote_group_id {g} is not a security group of this project"
                    )))
                    }
                }
            }
            r.id = match old.iter().find(|o| o.same_as(&r)) {
                Some(o) => o.id,
                None => self.inner.store.next_id("sg_rule")?,
            };
            out.push(r);
        }
        if out.len() > 1000 {
            return Err(invalid("a security group holds at most 1000 rules"));
        }
        Ok(out)
    }

    pub fn list_security_groups(
        &self,
        who: &Principal,
        project: Option<&Uuid>,
    ) -> Result<Vec<SecurityGroup>, ServiceError> {
        let projects = self.projects_for_list(who, project)?;
        let mut all = Vec::new();
        for p in projects {
            if who.require_in(&p, "security_group.view").is_err() {
                continue;
            }
            all.extend(
                self.inner
                    .groups
                    .by_index(SecurityGroup::BY_PROJECT, &uuid_key(&p))?
                    .into_iter()
                    .filter(|g| g.account_id == who.account_id),
            );
        }
        all.sort_by_key(|g| (g.created_at, g.id));
        Ok(all)
    }

    pub fn get_security_group(
        &self,
        who: &Principal,
        id: &Uuid,
    ) -> Result<SecurityGroup, ServiceError> {
        self.visible_group(who, id, "security_group.view")
    }

    pub fn create_security_group(
        &self,
        who: &Principal,
        header: Option<&str>,
        w: GroupWrite,
    ) -> Result<SecurityGroup, ServiceError> {
        let project = self.project_scope(who, header, "security_group.create")?;
        let name = check_name(w.name.as_deref().unwrap_or_default(), 64)?;
        let mut rules = match w.template_id.as_deref() {
            None => Vec::new(),
            Some(t) => {
                sg_templates()
                    .into_iter()
                    .find(|x| x.id == t)
                    .ok_or_else(|| {
                        invalid(format!(
                            "template_id {t:?}: see GET /api/v1/security-groups/templates"
                        ))
                    })?
                    .rules
            }
        };
        rules.extend(w.rules.unwrap_or_default());
        let rules = self.number_rules(&project.id, rules, &[])?;
        let held = self
            .inner
            .groups
            .all()?
            .iter()
            .filter(|g| g.account_id == who.account_id)
            .count() as u64;
        self.check_quota(&who.account_id, "security_groups", held, 1)?;
        self.check_quota(&who.account_id, "rules_per_group", 0, rules.len() as u64)?;
        let t = now();
        let g = SecurityGroup {
            id: Uuid::new_v4(),
            account_id: who.account_id,
            project_id: project.id,
            name,
            description: check_description(
                w.description.as_deref().unwrap_or_default(),
                MAX_DESCRIPTION,
            )?,
            rules,
            created_at: t,
            updated_at: t,
        };
        self.inner.groups.create(&g)?;
        Ok(g)
    }

    pub fn update_security_group(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        w: GroupWrite,
    ) -> Result<SecurityGroup, ServiceError> {
        let g = self.visible_group(who, id, "security_group.manage")?;
        self.header_names(
            who,
            header,
            &g.project_id,
            "security_group.manage",
            "Security group",
        )?;
        if w.name.is_none() && w.description.is_none() && w.rules.is_none() {
            return Err(invalid("give name, description or rules"));
        }
        let name = w.name.as_deref().map(|n| check_name(n, 64)).transpose()?;
        let description = w
            .description
            .as_deref()
            .map(|d| check_description(d, MAX_DESCRIPTION))
            .transpose()?;
        let rules = match w.rules {
            Some(r) => Some(self.number_rules(&g.project_id, r, &g.rules)?),
            None => None,
        };
        if let Some(r) = &rules {
            self.check_quota(&g.account_id, "rules_per_group", 0, r.len() as u64)?;
        }
        let g = self
            .inner
            .groups
            .update::<ServiceError>(&uuid_key(id), |g| {
                if let Some(n) = &name {
                    g.name = n.clone();
                }
                if let Some(d) = &description {
                    g.description = d.clone();
                }
                if let Some(r) = &rules {
                    g.rules = r.clone();
                }
                g.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound {
                kind: "Security group",
            })?;
        self.sync_firewall()?;
        Ok(g)
    }

    pub fn delete_security_group(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
    ) -> Result<SecurityGroup, ServiceError> {
        let g = self.visible_group(who, id, "security_group.delete")?;
        self.header_names(
            who,
            header,
            &g.project_id,
            "security_group.delete",
            "Security group",
        )?;
        let nics = self.group_nics(&g)?;
        if !nics.is_empty() {
            let list: Vec<String> = nics
                .iter()
                .take(5)
                .map(|(vm, nic)| format!("VM {vm} NIC {nic}"))
                .collect();
            return Err(ServiceError::Conflict(format!(
                "security group {} is attached to {} NIC(s) ({}); detach it first",
                g.id,
                nics.len(),
                list.join(", ")
            )));
        }
        for other in self
            .inner
            .groups
            .by_index(SecurityGroup::BY_PROJECT, &uuid_key(&g.project_id))?
        {
            if other.id != g.id
                && other
                    .rules
                    .iter()
                    .any(|r| r.remote == SgRemote::Group(g.id))
            {
                return Err(ServiceError::Conflict(format!(
                    "rules of security group {} ({}) name this group as their remote group",
                    other.id, other.name
                )));
            }
        }
        self.inner
            .groups
            .delete(&uuid_key(id))?
            .ok_or(ServiceError::NotFound {
                kind: "Security group",
            })
    }

    /// The (VM, NIC) pairs carrying `g`.
    fn group_nics(&self, g: &SecurityGroup) -> Result<Vec<(Uuid, u64)>, ServiceError> {
        Ok(self
            .inner
            .vms
            .by_index(Vm::BY_PROJECT, &uuid_key(&g.project_id))?
            .into_iter()
            .flat_map(|v| {
                v.nics
                    .iter()
                    .filter(|n| n.security_groups.contains(&g.id))
                    .map(|n| (v.id, n.id))
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    /// How many NICs carry each of `groups` (the contract's `vm_count`), reading each
    /// project's VMs once.
    pub fn security_group_uses(
        &self,
        groups: &[SecurityGroup],
    ) -> Result<std::collections::HashMap<Uuid, usize>, ServiceError> {
        let mut uses: std::collections::HashMap<Uuid, usize> =
            groups.iter().map(|g| (g.id, 0)).collect();
        let mut projects: Vec<Uuid> = groups.iter().map(|g| g.project_id).collect();
        projects.sort();
        projects.dedup();
        for p in projects {
            for vm in self.inner.vms.by_index(Vm::BY_PROJECT, &uuid_key(&p))? {
                for g in vm.nics.iter().flat_map(|n| &n.security_groups) {
                    if let Some(c) = uses.get_mut(g) {
                        *c += 1;
                    }
                }
            }
        }
        Ok(uses)
    }

    /// Per-rule counters from the data plane; empty when it is not running.
    pub fn security_group_counters(&self) -> std::collections::HashMap<u64, RuleCounter> {
        self.inner
            .firewall
            .as_ref()
            .map(|f| f.counters())
            .unwrap_or_default()
    }

    /// Attaches (`attach`) or detaches a group on one NIC of a VM.
    pub fn set_security_group_attachment(
        &self,
        who: &Principal,
        header: Option<&str>,
        vm_id: &Uuid,
        group_id: &Uuid,
        nic_id: u64,
        attach: bool,
    ) -> Result<(), ServiceError> {
        let vm = self.vm_in_scope(who, header, vm_id, "security_group.manage")?;
        let g = self.visible_group(who, group_id, "security_group.view")?;
        if attach && g.project_id != vm.project_id {
            return Err(invalid(format!(
                "security group {} belongs to another project than VM {}",
                g.id, vm.id
            )));
        }
        let Some(nic) = vm.nics.iter().find(|n| n.id == nic_id) else {
            return Err(ServiceError::NotFound { kind: "NIC" });
        };
        if !attach && !nic.security_groups.contains(group_id) {
            return Err(ServiceError::NotFound {
                kind: "Security group attachment",
            });
        }
        if attach && nic.security_groups.contains(group_id) {
            return Ok(());
        }
        if attach {
            let on_nic = nic.security_groups.len() as u64;
            self.check_quota(&vm.account_id, "groups_per_nic", on_nic, 1)?;
        }
        if attach && self.inner.firewall.is_none() {
            return Err(ServiceError::Unavailable(format!(
                "security groups are not enforced on this host ({}); not attaching",
                self.inner
                    .firewall_down
                    .as_deref()
                    .unwrap_or("the firewall is off")
            )));
        }
        self.inner
            .vms
            .update::<ServiceError>(&uuid_key(vm_id), |v| {
                if let Some(n) = v.nics.iter_mut().find(|n| n.id == nic_id) {
                    n.security_groups.retain(|g| g != group_id);
                    if attach {
                        n.security_groups.push(*group_id);
                    }
                }
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "VM" })?;
        self.sync_firewall()?;
        Ok(())
    }

    /// Makes the change durable, then applies the stored groups to the data plane, so
    /// it takes effect before the response and a crash cannot bring older rules back.
    /// Data-plane failures are logged; the reconciler retries them.
    pub(crate) fn sync_firewall(&self) -> Result<(), ServiceError> {
        self.inner.store.flush()?;
        if let Some(f) = &self.inner.firewall {
            f.sync_logged();
        }
        Ok(())
    }
}
