//! Who may do what: the permission catalog, the system roles, and the principal a
//! request acts as. Every service call takes a [`Principal`] and checks it here.

use uuid::Uuid;

use super::ServiceError;
use crate::model::{ProjectAccess, RateLimitTier};

/// One entry of the permission catalog (`GET /api/v1/permissions`).
pub struct Permission {
    pub name: &'static str,
    pub description: &'static str,
    pub scope: Scope,
}

impl Permission {
    /// The part before the last dot: `vm.create` → `vm`, `account.projects.view` →
    /// `account.projects`.
    pub fn category(&self) -> &'static str {
        self.name
            .rsplit_once('.')
            .map(|(c, _)| c)
            .unwrap_or(self.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Account,
    Project,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Account => "account",
            Scope::Project => "project",
        }
    }
}

macro_rules! perms {
    ($($scope:ident $name:literal => $desc:literal),* $(,)?) => {
        /// The catalog, the same for every account.
        pub const PERMISSIONS: &[Permission] = &[
            $(Permission { name: $name, description: $desc, scope: Scope::$scope }),*
        ];
    };
}

perms! {
    Account "account.projects.view" => "List and view projects",
    Account "account.projects.create" => "Create projects",
    Account "account.projects.manage" => "Rename and change projects",
    Account "account.projects.delete" => "Delete projects",
    Account "account.members.view" => "List account members",
    Account "account.members.invite" => "Invite account members",
    Account "account.members.manage" => "Change members' roles",
    Account "account.members.remove" => "Remove account members",
    Account "account.roles.view" => "List roles",
    Account "account.roles.create" => "Create custom roles",
    Account "account.roles.manage" => "Change custom roles",
    Account "account.roles.delete" => "Delete custom roles",
    Account "account.apikeys.view" => "List API keys",
    Account "account.apikeys.create" => "Create API keys",
    Account "account.apikeys.manage" => "Change and regenerate API keys",
    Account "account.apikeys.revoke" => "Revoke API keys",
    Account "account.sshkeys.view" => "List SSH keys",
    Account "account.sshkeys.create" => "Add SSH keys",
    Account "account.sshkeys.manage" => "Rename SSH keys",
    Account "account.sshkeys.delete" => "Delete SSH keys",
    Account "account.billing.view" => "View usage and prices",
    Account "account.billing.manage" => "Change billing settings",
    Account "account.settings.view" => "View account settings and operator diagnostics",
    Account "account.settings.manage" => "Change account settings and run operator diagnostics",
    Account "account.audit.view" => "Read the audit log",
    Project "project.settings.view" => "View project settings and jobs",
    Project "project.settings.manage" => "Change project settings",
    Project "project.members.view" => "List project members",
    Project "project.members.invite" => "Invite project members",
    Project "project.members.manage" => "Change project members' roles",
    Project "project.members.remove" => "Remove project members",
    Project "vm.view" => "List and view virtual machines",
    Project "vm.create" => "Create virtual machines",
    Project "vm.manage" => "Resize, rename, reinstall and tag virtual machines",
    Project "vm.delete" => "Delete virtual machines",
    Project "vm.power" => "Start, stop and reboot virtual machines",
    Project "vm.console" => "Open a virtual machine's console",
    Project "vpc.view" => "List and view VPCs",
    Project "vpc.create" => "Create VPCs",
    Project "vpc.manage" => "Change VPCs and attach VMs",
    Project "vpc.delete" => "Delete VPCs",
    Project "ip.view" => "List and view floating IPs",
    Project "ip.create" => "Reserve floating IPs",
    Project "ip.manage" => "Attach, detach and change floating IPs",
    Project "ip.delete" => "Release floating IPs",
    Project "security_group.view" => "List and view security groups",
    Project "security_group.create" => "Create security groups",
    Project "security_group.manage" => "Change and attach security groups",
    Project "security_group.delete" => "Delete security groups",
    Project "volume.view" => "List and view volumes",
    Project "volume.create" => "Create volumes",
    Project "volume.manage" => "Resize, attach and detach volumes",
    Project "volume.delete" => "Delete volumes",
    Project "snapshot.view" => "List and view snapshots",
    Project "snapshot.create" => "Create snapshots",
    Project "snapshot.manage" => "Restore and rename snapshots",
    Project "snapshot.delete" => "Delete snapshots",
    Project "backup.view" => "List and view backups and schedules",
    Project "backup.create" => "Create backups and schedules",
    Project "backup.manage" => "Restore backups, change schedules, reset series",
    Project "backup.delete" => "Delete backups and schedules",
}

/// Which permissions a system role holds.
pub enum Grants {
    All,
    /// Every permission whose name ends in one of these verbs, within `scope` (if any).
    Verbs(&'static [&'static str], Option<Scope>),
    Only(&'static [&'static str]),
}

/// A built-in role. Its id is stable across installs (UUIDv5 of its slug).
pub struct SystemRole {
    pub slug: &'static str,
    pub name: &'static str,
    pub scope: Scope,
    /// Account-scoped roles with this flag reach every project of the account.
    pub all_projects: bool,
    pub grants: Grants,
}

const VIEW: &[&str] = &["view"];

pub const SYSTEM_ROLES: &[SystemRole] = &[
    SystemRole {
        slug: "owner",
        name: "Owner",
        scope: Scope::Account,
        all_projects: true,
        grants: Grants::All,
    },
    SystemRole {
        slug: "admin",
        name: "Admin",
        scope: Scope::Account,
        all_projects: true,
        grants: Grants::All,
    },
    SystemRole {
        slug: "billing",
        name: "Billing",
        scope: Scope::Account,
        all_projects: false,
        grants: Grants::Only(&[
            "account.billing.view",
            "account.billing.manage",
            "account.projects.view",
        ]),
    },
    SystemRole {
        slug: "member",
        name: "Member",
        scope: Scope::Account,
        all_projects: false,
        grants: Grants::Verbs(VIEW, Some(Scope::Account)),
    },
    SystemRole {
        slug: "project-admin",
        name: "Project Admin",
        scope: Scope::Project,
        all_projects: false,
        grants: Grants::Verbs(
            &[
                "view", "create", "manage", "delete", "power", "console", "invite", "remove",
                "restore",
            ],
            Some(Scope::Project),
        ),
    },
    SystemRole {
        slug: "operator",
        name: "Operator",
        scope: Scope::Project,
        all_projects: false,
        grants: Grants::Only(&[
            "project.settings.view",
            "vm.view",
            "vm.power",
            "vm.console",
            "volume.view",
            "snapshot.view",
            "snapshot.create",
            "backup.view",
            "backup.create",
            "vpc.view",
            "ip.view",
            "security_group.view",
        ]),
    },
    SystemRole {
        slug: "project-member",
        name: "Project Member",
        scope: Scope::Project,
        all_projects: false,
        grants: Grants::Verbs(
            &["view", "create", "manage", "power", "console"],
            Some(Scope::Project),
        ),
    },
    SystemRole {
        slug: "viewer",
        name: "Viewer",
        scope: Scope::Project,
        all_projects: false,
        grants: Grants::Verbs(VIEW, Some(Scope::Project)),
    },
];

/// Each system role's id (a UUIDv5, a SHA-1) and permission set, worked out once:
/// every request resolves its roles, and a profile showed this at 6 % of a request.
fn resolved() -> &'static [(Uuid, PermSet)] {
    static ONCE: std::sync::OnceLock<Vec<(Uuid, PermSet)>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        SYSTEM_ROLES
            .iter()
            .map(|r| {
                (
                    Uuid::new_v5(&ROLE_NAMESPACE, r.slug.as_bytes()),
                    PermSet::compute(r),
                )
            })
            .collect()
    })
}

const ROLE_NAMESPACE: Uuid = Uuid::from_u128(0x5c1f_f000_0000_4000_8000_726f_6c65_7300);

impl SystemRole {
    pub fn id(&self) -> Uuid {
        match SYSTEM_ROLES.iter().position(|r| r.slug == self.slug) {
            Some(i) => resolved()[i].0,
            None => Uuid::new_v5(&ROLE_NAMESPACE, self.slug.as_bytes()),
        }
    }

    pub fn by_id(id: &Uuid) -> Option<&'static SystemRole> {
        resolved()
            .iter()
            .position(|(i, _)| i == id)
            .map(|i| &SYSTEM_ROLES[i])
    }

    pub fn by_slug(slug: &str) -> Option<&'static SystemRole> {
        SYSTEM_ROLES.iter().find(|r| r.slug == slug)
    }

    pub fn grants(&self, perm: &str) -> bool {
        let Some(p) = PERMISSIONS.iter().find(|p| p.name == perm) else {
            return false;
        };
        match &self.grants {
            Grants::All => true,
            Grants::Only(list) => list.contains(&perm),
            Grants::Verbs(verbs, scope) => {
                scope.is_none_or(|s| s == p.scope)
                    && perm
                        .rsplit_once('.')
                        .is_some_and(|(_, v)| verbs.contains(&v))
            }
        }
    }

    /// Whether every permission of `other` is also one of this role's.
    pub fn covers(&self, other: &SystemRole) -> bool {
        PERMISSIONS
            .iter()
            .all(|p| !other.grants(p.name) || self.grants(p.name))
    }
}

/// A set of catalog permissions, one bit per entry of [`PERMISSIONS`]: resolved once
/// per request, so a check is a mask test whether the role is built in or custom.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PermSet(u128);

const _: () = assert!(PERMISSIONS.len() <= 128, "PermSet holds 128 permissions");

impl PermSet {
    fn bit(perm: &str) -> Option<u128> {
        PERMISSIONS
            .iter()
            .position(|p| p.name == perm)
            .map(|i| 1u128 << i)
    }

    /// The set of `names`; the first unknown name is the error.
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<PermSet, String> {
        let mut s = 0;
        for n in names {
            s |= Self::bit(n).ok_or_else(|| n.to_string())?;
        }
        Ok(PermSet(s))
    }

    pub fn of_role(r: &SystemRole) -> PermSet {
        match SYSTEM_ROLES.iter().position(|x| x.slug == r.slug) {
            Some(i) => resolved()[i].1,
            None => Self::compute(r),
        }
    }

    fn compute(r: &SystemRole) -> PermSet {
        PermSet::of(
            PERMISSIONS
                .iter()
                .filter(|p| r.grants(p.name))
                .map(|p| p.name),
        )
        .unwrap_or_default()
    }

    pub fn has(self, perm: &str) -> bool {
        Self::bit(perm).is_some_and(|b| self.0 & b != 0)
    }

    /// Whether every permission of `other` is in this set.
    pub fn covers(self, other: PermSet) -> bool {
        other.0 & !self.0 == 0
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        PERMISSIONS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1u128 << i) != 0)
            .map(|(_, p)| p.name)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What a role grants once resolved (built in or the account's own); the default
/// grants nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rights {
    pub perms: PermSet,
    /// The role reaches every project of the account with `perms`.
    pub all_projects: bool,
}

impl Rights {
    pub fn of_role(r: &SystemRole) -> Rights {
        Rights {
            perms: PermSet::of_role(r),
            all_projects: r.all_projects,
        }
    }
}

/// The identity a request acts as, resolved from its API key (or session), with its
/// roles resolved to permission sets.
#[derive(Clone, Debug)]
pub struct Principal {
    pub account_id: Uuid,
    pub key_id: Uuid,
    /// The user the key acts for (its creator); recorded as `created_by`.
    pub user_id: Option<Uuid>,
    pub role_id: Uuid,
    pub tier: RateLimitTier,
    pub project_accesses: Vec<ProjectAccess>,
    /// The key's account is the host operator's (see `Account::operator`).
    pub operator: bool,
    /// What the account role grants.
    pub rights: Rights,
    /// What each project grant gives, in `project_accesses` order (a grant whose role
    /// is gone gives nothing).
    pub project_rights: Vec<(Uuid, PermSet)>,
}

impl Principal {
    /// Fails with 403 unless the caller acts for the host operator's account and its
    /// role grants `perm` there: host-wide actions are not a tenant owner's.
    pub fn require_operator(&self, perm: &str) -> Result<(), ServiceError> {
        if !self.operator {
            return Err(ServiceError::Forbidden(
                "only the host operator may do this".into(),
            ));
        }
        self.require(perm)
    }

    /// Fails with 403 unless the key's account role grants `perm`.
    pub fn require(&self, perm: &str) -> Result<(), ServiceError> {
        if self.rights.perms.has(perm) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "this API key's role lacks the permission {perm}"
            )))
        }
    }

    /// Whether the key reaches every project of its account.
    pub fn all_projects(&self) -> bool {
        self.rights.all_projects
    }

    /// Whether the key may use `project` at all.
    pub fn can_see_project(&self, project: &Uuid) -> bool {
        self.all_projects() || self.project_rights.iter().any(|(p, _)| p == project)
    }

    /// What the key holds in `project`.
    pub fn in_project(&self, project: &Uuid) -> PermSet {
        let mut s = if self.all_projects() {
            self.rights.perms.0
        } else {
            0
        };
        for (p, g) in &self.project_rights {
            if p == project {
                s |= g.0;
            }
        }
        PermSet(s)
    }

    /// Fails with 403 unless the key holds `perm` in some project: asked before a
    /// resource is looked up, it tells the caller only about its own rights.
    pub fn require_somewhere(&self, perm: &str) -> Result<(), ServiceError> {
        let held = (self.all_projects() && self.rights.perms.has(perm))
            || self.project_rights.iter().any(|(_, g)| g.has(perm));
        if held {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "this API key lacks the permission {perm} in every project"
            )))
        }
    }

    /// Fails with 403 unless the key holds `perm` in `project`.
    pub fn require_in(&self, project: &Uuid, perm: &str) -> Result<(), ServiceError> {
        if self.in_project(project).has(perm) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "this API key lacks the permission {perm} in project {project}"
            )))
        }
    }

    /// Whether this principal holds everything `other` holds: the rule for giving,
    /// changing or reading out another key or a role (no one grants more than it has).
    pub fn covers(&self, other: &Principal) -> bool {
        self.rights.perms.covers(other.rights.perms)
            && (self.all_projects() || !other.all_projects())
            && other
                .project_rights
                .iter()
                .all(|(p, g)| self.in_project(p).covers(*g))
    }

    /// This principal limited to what `cap` holds: a key never outlives a demotion of
    /// the user who made it.
    pub fn capped_by(mut self, cap: &Principal) -> Principal {
        let mut projects: Vec<Uuid> = self
            .project_rights
            .iter()
            .chain(&cap.project_rights)
            .map(|(p, _)| *p)
            .collect();
        projects.sort();
        projects.dedup();
        let project_rights = projects
            .into_iter()
            .map(|p| (p, PermSet(self.in_project(&p).0 & cap.in_project(&p).0)))
            .filter(|(_, g)| !g.is_empty())
            .collect();
        self.project_accesses
            .retain(|a| cap.can_see_project(&a.project_id));
        self.rights = Rights {
            perms: PermSet(self.rights.perms.0 & cap.rights.perms.0),
            all_projects: self.rights.all_projects && cap.rights.all_projects,
        };
        self.project_rights = project_rights;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_are_unique_and_roles_resolve() {
        let mut names: Vec<_> = PERMISSIONS.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PERMISSIONS.len());
        for r in SYSTEM_ROLES {
            assert_eq!(SystemRole::by_id(&r.id()).unwrap().slug, r.slug);
            assert_eq!(r.id(), Uuid::new_v5(&ROLE_NAMESPACE, r.slug.as_bytes()));
            assert_eq!(PermSet::of_role(r), PermSet::compute(r));
            assert!(
                PERMISSIONS.iter().any(|p| r.grants(p.name)),
                "{} grants nothing",
                r.slug
            );
        }
        assert_eq!(PERMISSIONS[0].category(), "account.projects");
        for r in SYSTEM_ROLES {
            let set = PermSet::of_role(r);
            for p in PERMISSIONS {
                assert_eq!(set.has(p.name), r.grants(p.name), "{} {}", r.slug, p.name);
            }
            assert_eq!(PermSet::of(set.names()).unwrap(), set);
        }
        assert_eq!(PermSet::of(["vm.view", "nope"]), Err("nope".to_string()));
    }

    #[test]
    fn roles_grant_what_their_names_say() {
        let owner = SystemRole::by_slug("owner").unwrap();
        let member = SystemRole::by_slug("member").unwrap();
        let viewer = SystemRole::by_slug("viewer").unwrap();
        let operator = SystemRole::by_slug("operator").unwrap();
        assert!(owner.grants("account.apikeys.create"));
        assert!(member.grants("account.projects.view"));
        assert!(!member.grants("account.projects.create"));
        assert!(
            !member.grants("vm.view"),
            "account member is not a project viewer"
        );
        assert!(viewer.grants("vm.view") && !viewer.grants("vm.power"));
        assert!(operator.grants("vm.power") && !operator.grants("vm.delete"));
        assert!(!owner.grants("no.such.permission"));
        assert!(owner.covers(member) && !member.covers(owner));
    }

    #[test]
    fn project_grants_do_not_leak_to_other_projects() {
        let p1 = Uuid::new_v4();
        let p2 = Uuid::new_v4();
        let member_role = SystemRole::by_slug("member").unwrap();
        let operator = SystemRole::by_slug("operator").unwrap();
        let member = Principal {
            account_id: Uuid::new_v4(),
            key_id: Uuid::new_v4(),
            user_id: None,
            role_id: member_role.id(),
            tier: RateLimitTier::Standard,
            project_accesses: vec![ProjectAccess {
                project_id: p1,
                role_id: operator.id(),
            }],
            operator: false,
            rights: Rights::of_role(member_role),
            project_rights: vec![(p1, PermSet::of_role(operator))],
        };
        assert!(member.can_see_project(&p1) && !member.can_see_project(&p2));
        assert!(member.require_in(&p1, "vm.power").is_ok());
        assert!(member.require_in(&p1, "vm.delete").is_err());
        assert!(member.require_in(&p2, "vm.view").is_err());
        let owner_role = SystemRole::by_slug("owner").unwrap();
        let owner = Principal {
            role_id: owner_role.id(),
            project_accesses: vec![],
            rights: Rights::of_role(owner_role),
            project_rights: vec![],
            ..member.clone()
        };
        assert!(owner.require_in(&p2, "vm.delete").is_ok());
        assert!(owner.covers(&member) && !member.covers(&owner));
        let elsewhere = Principal {
            project_rights: vec![(p2, PermSet::of_role(operator))],
            ..member.clone()
        };
        assert!(!member.covers(&elsewhere), "a grant in a project it lacks");
        assert!(member.covers(&member));
        // An owner's key made by a user now only an operator in p1 holds that much.
        let capped = owner.clone().capped_by(&member);
        assert!(!capped.all_projects());
        assert!(capped.require_in(&p1, "vm.power").is_ok());
        assert!(capped.require_in(&p1, "vm.delete").is_err());
        assert!(capped.require_in(&p2, "vm.view").is_err());
        assert!(capped.require("account.apikeys.create").is_err());
        assert!(member.covers(&capped));
        assert_eq!(owner.clone().capped_by(&owner).rights, owner.rights);
    }
}
