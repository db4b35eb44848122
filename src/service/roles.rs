//! Roles: the built-in ones and each account's own (custom roles), resolved to
//! permission sets for the principal of every request. No one grants more than it
//! holds: a custom role carries only permissions its author has, and a role above
//! its editor cannot be changed by them.

use std::sync::Mutex;

use uuid::Uuid;

use super::authz::{PermSet, Permission, Rights, Scope, SystemRole, PERMISSIONS, SYSTEM_ROLES};
use super::{check_name, invalid, Page, Principal, ServiceError, Services};
use crate::model::{now, uuid_key, ApiKey, CustomRole};

/// Custom roles one account may hold.
pub const MAX_CUSTOM_ROLES: usize = 100;

/// Serialises role changes with the checks that read them (slug uniqueness, "in
/// use" at delete, a key given a role being deleted).
pub(super) static ROLE_LOCK: Mutex<()> = Mutex::new(());

/// A role as the API shows it, built in or custom.
pub struct RoleView {
    pub id: Uuid,
    /// `None` for built-in roles.
    pub account_id: Option<Uuid>,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub scope: Scope,
    pub permissions: Vec<String>,
    pub is_system: bool,
    pub custom: Option<CustomRole>,
}

impl RoleView {
    fn system(r: &SystemRole) -> RoleView {
        RoleView {
            id: r.id(),
            account_id: None,
            name: r.name.into(),
            slug: r.slug.into(),
            description: format!("Built-in {} role", r.scope.as_str()),
            scope: r.scope,
            permissions: PermSet::of_role(r).names().map(String::from).collect(),
            is_system: true,
            custom: None,
        }
    }

    fn custom(r: CustomRole) -> RoleView {
        RoleView {
            id: r.id,
            account_id: Some(r.account_id),
            name: r.name.clone(),
            slug: r.slug.clone(),
            description: r.description.clone(),
            scope: scope_of(&r.scope),
            permissions: r.permissions.clone(),
            is_system: false,
            custom: Some(r),
        }
    }
}

fn scope_of(s: &str) -> Scope {
    if s == "project" {
        Scope::Project
    } else {
        Scope::Account
    }
}

fn check_scope(scope: Option<&str>) -> Result<(), ServiceError> {
    match scope {
        Some(s) if s != "account" && s != "project" => {
            Err(invalid("scope must be account or project"))
        }
        _ => Ok(()),
    }
}

/// A new custom role as asked for.
pub struct NewRole {
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub scope: String,
    pub permissions: Vec<String>,
}

/// Fields to change; slug and scope stay as created (the contract).
#[derive(Default)]
pub struct RoleChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub permissions: Option<Vec<String>>,
}

/// The permissions of a role of `scope`: known, of that scope, at least one; sorted
/// as the catalog lists them.
fn check_permissions(scope: Scope, perms: &[String]) -> Result<PermSet, ServiceError> {
    if perms.is_empty() {
        return Err(invalid("permissions must name at least one permission"));
    }
    let set = PermSet::of(perms.iter().map(String::as_str)).map_err(|p| {
        invalid(format!(
            "permissions: {p} is not in the catalog (GET /api/v1/permissions)"
        ))
    })?;
    if let Some(p) = PERMISSIONS
        .iter()
        .find(|p| set.has(p.name) && p.scope != scope)
    {
        return Err(invalid(format!(
            "permissions: {} has scope {}; a role of scope {} holds only permissions of that scope",
            p.name,
            p.scope.as_str(),
            scope.as_str()
        )));
    }
    Ok(set)
}

fn check_slug(slug: &str) -> Result<(), ServiceError> {
    if slug.is_empty()
        || slug.len() > 64
        || !slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid("slug must be 1 to 64 characters of a-z, 0-9 and -"));
    }
    if SystemRole::by_slug(slug).is_some() {
        return Err(invalid(format!("slug {slug} is a system role's")));
    }
    Ok(())
}

fn beyond(who: &Principal, set: PermSet) -> Result<(), ServiceError> {
    if who.rights.perms.covers(set) {
        return Ok(());
    }
    let missing: Vec<&str> = set.names().filter(|p| !who.rights.perms.has(p)).collect();
    Err(ServiceError::Forbidden(format!(
        "a role cannot carry permissions this API key lacks: {}",
        missing.join(", ")
    )))
}

impl Services {
    /// The permission catalog, any key may read it.
    pub fn list_permissions(
        &self,
        scope: Option<&str>,
    ) -> Result<Vec<&'static Permission>, ServiceError> {
        check_scope(scope)?;
        Ok(PERMISSIONS
            .iter()
            .filter(|p| scope.is_none_or(|s| p.scope.as_str() == s))
            .collect())
    }

    /// What role `role_id` grants in `account` (built in, or the account's own), with
    /// its scope; `None` when there is no such role there.
    pub(super) fn resolve_role(
        &self,
        account: &Uuid,
        role_id: &Uuid,
    ) -> Result<Option<(Rights, Scope)>, ServiceError> {
        if let Some(r) = SystemRole::by_id(role_id) {
            return Ok(Some((Rights::of_role(r), r.scope)));
        }
        Ok(self
            .inner
            .roles
            .get(&uuid_key(role_id))?
            .filter(|r| r.account_id == *account)
            .map(|r| {
                let perms =
                    PermSet::of(r.permissions.iter().map(String::as_str)).unwrap_or_default();
                (
                    Rights {
                        perms,
                        all_projects: false,
                    },
                    scope_of(&r.scope),
                )
            }))
    }

    /// The principal a key stands for, its roles resolved.
    pub(super) fn principal_of_key(&self, key: &ApiKey) -> Result<Principal, ServiceError> {
        let rights = self
            .resolve_role(&key.account_id, &key.role_id)?
            .map_or(Rights::default(), |(r, _)| r);
        let mut project_rights = Vec::with_capacity(key.project_accesses.len());
        for a in &key.project_accesses {
            let g = self
                .resolve_role(&key.account_id, &a.role_id)?
                .map_or(PermSet::default(), |(r, _)| r.perms);
            project_rights.push((a.project_id, g));
        }
        let p = Principal {
            account_id: key.account_id,
            key_id: key.id,
            user_id: key.created_by,
            role_id: key.role_id,
            tier: key.rate_limit_tier,
            project_accesses: key.project_accesses.clone(),
            operator: self.is_operator(&key.account_id)?,
            rights,
            project_rights,
        };
        // A key holds no more than the member who made it holds now.
        let Some(uid) = key.created_by else {
            return Ok(p);
        };
        match self.inner.users.get(&uuid_key(&uid))? {
            Some(u) if u.is_owner => Ok(p),
            Some(u) if u.account_id == key.account_id => {
                Ok(p.capped_by(&self.user_principal_of(&u)?))
            }
            _ => Err(ServiceError::Unauthorized(
                "the user who made this API key is no longer a member".into(),
            )),
        }
    }

    /// A role's name and slug for showing beside a key; `None` when it is gone.
    pub fn role_label(
        &self,
        account: &Uuid,
        role_id: &Uuid,
    ) -> Result<Option<(String, String)>, ServiceError> {
        if let Some(r) = SystemRole::by_id(role_id) {
            return Ok(Some((r.name.into(), r.slug.into())));
        }
        Ok(self
            .inner
            .roles
            .get(&uuid_key(role_id))?
            .filter(|r| r.account_id == *account)
            .map(|r| (r.name, r.slug)))
    }

    fn custom_roles(&self, account: &Uuid) -> Result<Vec<CustomRole>, ServiceError> {
        let mut all = self
            .inner
            .roles
            .by_index(CustomRole::BY_ACCOUNT, &uuid_key(account))?;
        all.sort_by_key(|r| (r.created_at, r.id));
        Ok(all)
    }

    /// The built-in roles, then the account's own, oldest first.
    pub fn list_roles(
        &self,
        who: &Principal,
        scope: Option<&str>,
        page: Page,
    ) -> Result<Vec<RoleView>, ServiceError> {
        who.require("account.roles.view")?;
        check_scope(scope)?;
        let custom = self.custom_roles(&who.account_id)?;
        Ok(SYSTEM_ROLES
            .iter()
            .map(RoleView::system)
            .chain(custom.into_iter().map(RoleView::custom))
            .filter(|r| scope.is_none_or(|s| r.scope.as_str() == s))
            .skip(page.offset)
            .take(page.limit)
            .collect())
    }

    pub fn get_role(&self, who: &Principal, id: &Uuid) -> Result<RoleView, ServiceError> {
        who.require("account.roles.view")?;
        if let Some(r) = SystemRole::by_id(id) {
            return Ok(RoleView::system(r));
        }
        self.own_role(who, id).map(RoleView::custom)
    }

    fn own_role(&self, who: &Principal, id: &Uuid) -> Result<CustomRole, ServiceError> {
        match self.inner.roles.get(&uuid_key(id))? {
            Some(r) if r.account_id == who.account_id => Ok(r),
            _ => Err(ServiceError::NotFound { kind: "role" }),
        }
    }

    pub fn create_role(&self, who: &Principal, new: NewRole) -> Result<RoleView, ServiceError> {
        who.require("account.roles.create")?;
        let name = check_name(new.name.trim(), 64)?;
        check_slug(&new.slug)?;
        let scope = match new.scope.as_str() {
            "account" => Scope::Account,
            "project" => Scope::Project,
            _ => return Err(invalid("scope must be account or project")),
        };
        let set = check_permissions(scope, &new.permissions)?;
        beyond(who, set)?;
        let _one = ROLE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let existing = self.custom_roles(&who.account_id)?;
        if existing.iter().any(|r| r.slug == new.slug) {
            return Err(invalid(format!(
                "slug {} is taken in this account",
                new.slug
            )));
        }
        if existing.len() >= MAX_CUSTOM_ROLES {
            return Err(invalid(format!(
                "an account holds at most {MAX_CUSTOM_ROLES} custom roles"
            )));
        }
        let t = now();
        let role = CustomRole {
            id: Uuid::new_v4(),
            account_id: who.account_id,
            name,
            slug: new.slug,
            description: new.description.unwrap_or_default(),
            scope: scope.as_str().into(),
            permissions: set.names().map(String::from).collect(),
            created_by: who.user_id,
            created_at: t,
            updated_at: t,
        };
        self.inner.roles.create(&role)?;
        Ok(RoleView::custom(role))
    }

    pub fn update_role(
        &self,
        who: &Principal,
        id: &Uuid,
        change: RoleChange,
    ) -> Result<RoleView, ServiceError> {
        who.require("account.roles.manage")?;
        if SystemRole::by_id(id).is_some() {
            return Err(invalid("system roles cannot be changed"));
        }
        let _one = ROLE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.own_role(who, id)?;
        if change.name.is_none() && change.description.is_none() && change.permissions.is_none() {
            return Err(invalid("give name, description or permissions"));
        }
        let name = change
            .name
            .as_deref()
            .map(|n| check_name(n.trim(), 64))
            .transpose()?;
        let scope = scope_of(&old.scope);
        // Its holders get the new set at their next request: the editor must hold
        // what the role had (no taking over a role above oneself) and what it gets.
        beyond(
            who,
            PermSet::of(old.permissions.iter().map(String::as_str)).unwrap_or_default(),
        )?;
        let set = change
            .permissions
            .as_deref()
            .map(|p| check_permissions(scope, p))
            .transpose()?;
        if let Some(s) = set {
            beyond(who, s)?;
        }
        let r = self
            .inner
            .roles
            .update::<ServiceError>(&uuid_key(id), |r| {
                if let Some(n) = &name {
                    r.name = n.clone();
                }
                if let Some(d) = &change.description {
                    r.description = d.clone();
                }
                if let Some(s) = set {
                    r.permissions = s.names().map(String::from).collect();
                }
                r.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "role" })?;
        Ok(RoleView::custom(r))
    }

    pub fn delete_role(&self, who: &Principal, id: &Uuid) -> Result<RoleView, ServiceError> {
        who.require("account.roles.delete")?;
        if SystemRole::by_id(id).is_some() {
            return Err(invalid("system roles cannot be deleted"));
        }
        let _one = ROLE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        self.own_role(who, id)?;
        let users = self
            .inner
            .api_keys
            .by_index(ApiKey::BY_ACCOUNT, &uuid_key(&who.account_id))?
            .into_iter()
            .filter(|k| k.role_id == *id || k.project_accesses.iter().any(|a| a.role_id == *id))
            .count();
        if users > 0 {
            return Err(invalid(format!(
                "the role is in use by {users} API key(s); give them another role first"
            )));
        }
        let members = self.members_with_role(&who.account_id, id)?;
        if members > 0 {
            return Err(invalid(format!(
                "the role is in use by {members} member(s) or invitation(s); give them another role first"
            )));
        }
        let r = self
            .inner
            .roles
            .delete(&uuid_key(id))?
            .ok_or(ServiceError::NotFound { kind: "role" })?;
        Ok(RoleView::custom(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_of_a_role_are_known_of_its_scope_and_not_empty() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_permissions(Scope::Project, &p(&["vm.view", "vm.power"])).is_ok());
        assert!(check_permissions(Scope::Project, &p(&[])).is_err());
        assert!(check_permissions(Scope::Project, &p(&["vm.fly"])).is_err());
        assert!(check_permissions(Scope::Project, &p(&["account.roles.view"])).is_err());
        assert!(check_permissions(Scope::Account, &p(&["vm.view"])).is_err());
        assert!(check_slug("ops-2").is_ok());
        for bad in ["", "Ops", "a b", "owner", "x/y"] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
    }
}
