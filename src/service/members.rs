//! Members: the people (and, for projects, the API keys) an account lets in, each with
//! one role per account or project. A user's rights are resolved from these records on
//! every request, so a change or a removal applies at once; the keys a member made
//! never hold more than the member does now.

use std::sync::Mutex;

use uuid::Uuid;

use super::authz::{PermSet, Rights, Scope, SystemRole};
use super::{invalid, Page, Paged, Principal, ServiceError, Services};
use crate::model::{now, uuid_key, ApiKey, Member, MemberStatus, ProjectAccess, User};

/// Serialises membership changes with the checks that read them (one membership per
/// user and place, one use of an invitation).
pub(super) static MEMBER_LOCK: Mutex<()> = Mutex::new(());

const OWNER: &str = "owner";

/// A member as the API shows it: a record, or the account's owner (who has none).
pub struct MemberView {
    pub member: Member,
    pub role_name: String,
    pub role_slug: String,
    /// API-key grants of a project appear as project members (no user, no invitation).
    pub api_key_id: Option<Uuid>,
    /// The account's owner, shown as a member but no record.
    pub owner: bool,
}

pub struct NewMember {
    pub email: Option<String>,
    pub target_user_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub role_id: Uuid,
}

#[derive(Default)]
pub struct MemberChange {
    pub role_id: Option<Uuid>,
    pub status: Option<MemberStatus>,
}

/// What a user holds once its memberships are resolved.
pub(super) struct UserRights {
    pub role_id: Uuid,
    pub rights: Rights,
    pub project_accesses: Vec<ProjectAccess>,
    pub project_rights: Vec<(Uuid, PermSet)>,
}

/// The id a key's grant in a project is shown under: stable, and never a record's.
pub(super) fn key_grant_id(key: &Uuid, project: &Uuid) -> Uuid {
    Uuid::new_v5(key, project.as_bytes())
}

pub(super) fn lock() -> std::sync::MutexGuard<'static, ()> {
    MEMBER_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

impl Services {
    /// The rights of `user` now: the owner holds the Owner role; anyone else what
    /// their active memberships give. A suspended account membership holds nothing.
    pub(super) fn user_rights(&self, user: &User) -> Result<UserRights, ServiceError> {
        if user.is_owner {
            let r = SystemRole::by_slug(OWNER).ok_or(ServiceError::NotFound { kind: "role" })?;
            return Ok(UserRights {
                role_id: r.id(),
                rights: Rights::of_role(r),
                project_accesses: vec![],
                project_rights: vec![],
            });
        }
        let mut out = UserRights {
            role_id: Uuid::nil(),
            rights: Rights::default(),
            project_accesses: vec![],
            project_rights: vec![],
        };
        let mine = self
            .inner
            .members
            .by_index(Member::BY_USER, &uuid_key(&user.id))?;
        for m in mine.iter().filter(|m| m.account_id == user.account_id) {
            if m.project_id.is_none() && m.status == MemberStatus::Suspended {
                return Err(ServiceError::Unauthorized(
                    "your membership of this account is suspended".into(),
                ));
            }
        }
        for m in mine
            .into_iter()
            .filter(|m| m.account_id == user.account_id && m.status == MemberStatus::Active)
        {
            let resolved = self.resolve_role(&m.account_id, &m.role_id)?;
            match m.project_id {
                None => {
                    out.role_id = m.role_id;
                    out.rights = resolved.map_or(Rights::default(), |(r, _)| r);
                }
                Some(p) => {
                    out.project_accesses.push(ProjectAccess {
                        project_id: p,
                        role_id: m.role_id,
                    });
                    out.project_rights
                        .push((p, resolved.map_or(PermSet::default(), |(r, _)| r.perms)));
                }
            }
        }
        Ok(out)
    }

    /// What giving `role_id` (of `scope`, in `project` when given) needs: a role of
    /// this account, of that scope, not the owner's, and nothing the giver lacks.
    pub(super) fn grantable(
        &self,
        who: &Principal,
        role_id: &Uuid,
        scope: Scope,
        project: Option<&Uuid>,
    ) -> Result<Rights, ServiceError> {
        if SystemRole::by_slug(OWNER).is_some_and(|o| o.id() == *role_id) {
            return Err(invalid("the owner role cannot be given"));
        }
        let Some((rights, s)) = self.resolve_role(&who.account_id, role_id)? else {
            return Err(invalid("role_id is not a role of this account"));
        };
        if s != scope {
            return Err(invalid(format!(
                "role_id names a role of scope {}; this needs a role of scope {}",
                s.as_str(),
                scope.as_str()
            )));
        }
        let held = match project {
            None => who.rights.perms,
            Some(p) => who.in_project(p),
        };
        let wider = project.is_none() && rights.all_projects && !who.all_projects();
        if !held.covers(rights.perms) || wider {
            let missing: Vec<&str> = rights.perms.names().filter(|p| !held.has(p)).collect();
            return Err(ServiceError::Forbidden(format!(
                "you cannot give a role that holds more than you do (missing: {})",
                if wider {
                    "every project".to_string()
                } else {
                    missing.join(", ")
                }
            )));
        }
        Ok(rights)
    }

    pub(super) fn member_view(&self, m: Member) -> Result<MemberView, ServiceError> {
        let (role_name, role_slug) = self
            .role_label(&m.account_id, &m.role_id)?
            .unwrap_or_else(|| ("(deleted role)".into(), String::new()));
        Ok(MemberView {
            member: m,
            role_name,
            role_slug,
            api_key_id: None,
            owner: false,
        })
    }

    /// The owner shown as a member: its id is the user's.
    fn owner_view(&self, u: &User) -> MemberView {
        let role = SystemRole::by_slug(OWNER);
        MemberView {
            member: Member {
                id: u.id,
                account_id: u.account_id,
                project_id: None,
                user_id: Some(u.id),
                email: u.name.clone(),
                role_id: role.map(|r| r.id()).unwrap_or_default(),
                status: MemberStatus::Active,
                invited_by: None,
                invited_at: None,
                accepted_at: None,
                invitation: None,
                created_at: u.created_at,
                updated_at: u.created_at,
            },
            role_name: role.map_or("Owner", |r| r.name).into(),
            role_slug: OWNER.into(),
            api_key_id: None,
            owner: true,
        }
    }

    pub(super) fn owners(&self, account: &Uuid) -> Result<Vec<User>, ServiceError> {
        Ok(self
            .inner
            .users
            .all()?
            .into_iter()
            .filter(|u| u.account_id == *account && u.is_owner)
            .collect())
    }

    pub(super) fn account_members(&self, account: &Uuid) -> Result<Vec<Member>, ServiceError> {
        let mut all = self
            .inner
            .members
            .by_index(Member::BY_ACCOUNT, &uuid_key(account))?;
        all.sort_by_key(|m| (m.created_at, m.id));
        Ok(all)
    }

    /// The account's owner first, then its members and pending invitations.
    pub fn list_members(
        &self,
        who: &Principal,
        status: Option<MemberStatus>,
        page: Page,
    ) -> Result<Paged<MemberView>, ServiceError> {
        who.require("account.members.view")?;
        let mut all: Vec<MemberView> = self
            .owners(&who.account_id)?
            .iter()
            .map(|u| self.owner_view(u))
            .collect();
        for m in self.account_members(&who.account_id)? {
            if m.project_id.is_none() {
                all.push(self.member_view(m)?);
            }
        }
        all.retain(|v| status.is_none_or(|s| v.member.status == s));
        Ok(Paged::of(all, page))
    }

    /// An account member (or the owner) of the caller's account.
    fn find_member(&self, who: &Principal, id: &Uuid) -> Result<MemberView, ServiceError> {
        if let Some(m) = self.inner.members.get(&uuid_key(id))? {
            if m.account_id == who.account_id && m.project_id.is_none() {
                return self.member_view(m);
            }
        }
        match self.inner.users.get(&uuid_key(id))? {
            Some(u) if u.account_id == who.account_id && u.is_owner => Ok(self.owner_view(&u)),
            _ => Err(ServiceError::NotFound { kind: "member" }),
        }
    }

    pub fn get_member(&self, who: &Principal, id: &Uuid) -> Result<MemberView, ServiceError> {
        who.require("account.members.view")?;
        self.find_member(who, id)
    }

    /// Adds a member: by email (an invitation, returned with its token), or a user of
    /// this account directly. API keys hold their account role from creation on.
    pub fn add_member(
        &self,
        who: &Principal,
        new: NewMember,
    ) -> Result<(MemberView, Option<String>), ServiceError> {
        who.require("account.members.invite")?;
        let given = [
            new.email.is_some(),
            new.target_user_id.is_some(),
            new.api_key_id.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(invalid(
                "give exactly one of email, target_user_id and api_key_id",
            ));
        }
        if new.api_key_id.is_some() {
            return Err(invalid(
                "an API key's account role is set when it is created; create a key with this role instead",
            ));
        }
        if let Some(email) = new.email {
            let (m, token) = self.invite(who, None, &email, &new.role_id)?;
            return Ok((m, Some(token)));
        }
        let uid = new.target_user_id.unwrap_or_default();
        self.grantable(who, &new.role_id, Scope::Account, None)?;
        let _one = lock();
        let user = self.account_user(who, &uid)?;
        if user.is_owner
            || self
                .account_members(&who.account_id)?
                .iter()
                .any(|m| m.project_id.is_none() && m.user_id == Some(uid))
        {
            return Err(invalid("this user is already a member of the account"));
        }
        let m = self.new_active(who, None, &user, new.role_id);
        self.inner.members.create(&m)?;
        Ok((self.member_view(m)?, None))
    }

    fn account_user(&self, who: &Principal, uid: &Uuid) -> Result<User, ServiceError> {
        match self.inner.users.get(&uuid_key(uid))? {
            Some(u) if u.account_id == who.account_id => Ok(u),
            _ => Err(invalid("target_user_id is not a user of this account")),
        }
    }

    fn new_active(
        &self,
        who: &Principal,
        project: Option<Uuid>,
        user: &User,
        role_id: Uuid,
    ) -> Member {
        let t = now();
        Member {
            id: Uuid::new_v4(),
            account_id: who.account_id,
            project_id: project,
            user_id: Some(user.id),
            email: user.name.clone(),
            role_id,
            status: MemberStatus::Active,
            invited_by: who.user_id,
            invited_at: Some(t),
            accepted_at: Some(t),
            invitation: None,
            created_at: t,
            updated_at: t,
        }
    }

    /// Fails unless the caller holds everything member `m` holds where it applies:
    /// no changing or removing someone above oneself.
    fn member_below(&self, who: &Principal, m: &Member) -> Result<(), ServiceError> {
        let above = || {
            ServiceError::Forbidden(
                "you cannot change a member who holds permissions you lack".into(),
            )
        };
        let role = self
            .resolve_role(&m.account_id, &m.role_id)?
            .map_or(Rights::default(), |(r, _)| r);
        match m.project_id {
            Some(p) => {
                if !who.in_project(&p).covers(role.perms) {
                    return Err(above());
                }
            }
            None => {
                // A suspended member holds nothing now; what they would hold again is
                // their role (and their project grants, compared below with it).
                let user = match m.user_id {
                    Some(u) if m.status == MemberStatus::Active => {
                        self.inner.users.get(&uuid_key(&u))?
                    }
                    _ => None,
                };
                let target = match user {
                    Some(u) => self.user_principal_of(&u)?,
                    None => Principal {
                        rights: role,
                        project_rights: vec![],
                        project_accesses: vec![],
                        ..who.clone()
                    },
                };
                if !who.covers(&target) {
                    return Err(above());
                }
            }
        }
        Ok(())
    }

    pub fn update_member(
        &self,
        who: &Principal,
        id: &Uuid,
        change: MemberChange,
    ) -> Result<MemberView, ServiceError> {
        who.require("account.members.manage")?;
        if change.role_id.is_none() && change.status.is_none() {
            return Err(invalid("give role_id or status"));
        }
        if change.status == Some(MemberStatus::Pending) {
            return Err(invalid("status must be active or suspended"));
        }
        let _one = lock();
        let current = self.find_member(who, id)?;
        if current.owner {
            return Err(invalid("the owner's membership cannot be changed"));
        }
        let m = current.member;
        self.member_below(who, &m)?;
        if let Some(r) = &change.role_id {
            self.grantable(who, r, Scope::Account, None)?;
        }
        if change.status.is_some() && m.status == MemberStatus::Pending {
            return Err(invalid(
                "a pending invitation has no status to change; cancel it instead",
            ));
        }
        if change.status == Some(MemberStatus::Suspended) && m.user_id == who.user_id {
            return Err(invalid("you cannot suspend yourself"));
        }
        self.change_member(id, change)
    }

    fn change_member(&self, id: &Uuid, change: MemberChange) -> Result<MemberView, ServiceError> {
        let m = self
            .inner
            .members
            .update::<ServiceError>(&uuid_key(id), |m| {
                if let Some(r) = change.role_id {
                    m.role_id = r;
                }
                if let Some(s) = change.status {
                    m.status = s;
                }
                m.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "member" })?;
        self.member_view(m)
    }

    /// Removes an account member: the user, every grant and every API key they made
    /// go at once (their sessions end at the next request).
    pub fn remove_member(&self, who: &Principal, id: &Uuid) -> Result<MemberView, ServiceError> {
        who.require("account.members.remove")?;
        let _one = lock();
        let current = self.find_member(who, id)?;
        if current.owner {
            return Err(invalid(
                "the account owner cannot be removed; transfer ownership first",
            ));
        }
        self.member_below(who, &current.member)?;
        if current.member.user_id.is_some() && current.member.user_id == who.user_id {
            return Err(invalid("you cannot remove yourself"));
        }
        self.inner.members.delete(&uuid_key(id))?;
        if let Some(uid) = current.member.user_id {
            self.forget_user(&who.account_id, &uid)?;
        }
        Ok(current)
    }

    /// Deletes a user with its grants and keys.
    fn forget_user(&self, account: &Uuid, uid: &Uuid) -> Result<(), ServiceError> {
        for m in self
            .inner
            .members
            .by_index(Member::BY_USER, &uuid_key(uid))?
        {
            self.inner.members.delete(&uuid_key(&m.id))?;
        }
        for k in self
            .inner
            .api_keys
            .by_index(ApiKey::BY_ACCOUNT, &uuid_key(account))?
        {
            if k.created_by == Some(*uid) {
                self.inner.api_keys.delete(&uuid_key(&k.id))?;
            }
        }
        self.inner.users.delete(&uuid_key(uid))?;
        Ok(())
    }

    // ---- project members -------------------------------------------------------

    fn key_grants(&self, account: &Uuid, project: &Uuid) -> Result<Vec<MemberView>, ServiceError> {
        let mut out = vec![];
        for k in self
            .inner
            .api_keys
            .by_index(ApiKey::BY_ACCOUNT, &uuid_key(account))?
        {
            for a in k
                .project_accesses
                .iter()
                .filter(|a| a.project_id == *project)
            {
                let (role_name, role_slug) = self
                    .role_label(account, &a.role_id)?
                    .unwrap_or_else(|| ("(deleted role)".into(), String::new()));
                out.push(MemberView {
                    member: Member {
                        id: key_grant_id(&k.id, project),
                        account_id: *account,
                        project_id: Some(*project),
                        user_id: None,
                        email: format!("{}@api-keys.invalid", k.key_prefix),
                        role_id: a.role_id,
                        status: if k.is_active {
                            MemberStatus::Active
                        } else {
                            MemberStatus::Suspended
                        },
                        invited_by: k.created_by,
                        invited_at: Some(k.created_at),
                        accepted_at: Some(k.created_at),
                        invitation: None,
                        created_at: k.created_at,
                        updated_at: k.created_at,
                    },
                    role_name,
                    role_slug,
                    api_key_id: Some(k.id),
                    owner: false,
                });
            }
        }
        Ok(out)
    }

    fn project_members_of(
        &self,
        account: &Uuid,
        project: &Uuid,
    ) -> Result<Vec<MemberView>, ServiceError> {
        let mut out = vec![];
        for m in self.account_members(account)? {
            if m.project_id == Some(*project) {
                out.push(self.member_view(m)?);
            }
        }
        out.extend(self.key_grants(account, project)?);
        Ok(out)
    }

    pub fn list_project_members(
        &self,
        who: &Principal,
        project: &Uuid,
        status: Option<MemberStatus>,
        page: Page,
    ) -> Result<Paged<MemberView>, ServiceError> {
        self.visible_project(who, project)?;
        who.require_in(project, "project.members.view")?;
        let mut all = self.project_members_of(&who.account_id, project)?;
        all.retain(|v| status.is_none_or(|s| v.member.status == s));
        Ok(Paged::of(all, page))
    }

    fn find_project_member(
        &self,
        who: &Principal,
        project: &Uuid,
        id: &Uuid,
    ) -> Result<MemberView, ServiceError> {
        self.project_members_of(&who.account_id, project)?
            .into_iter()
            .find(|v| v.member.id == *id)
            .ok_or(ServiceError::NotFound {
                kind: "project member",
            })
    }

    pub fn get_project_member(
        &self,
        who: &Principal,
        project: &Uuid,
        id: &Uuid,
    ) -> Result<MemberView, ServiceError> {
        self.visible_project(who, project)?;
        who.require_in(project, "project.members.view")?;
        self.find_project_member(who, project, id)
    }

    /// Grants a user of this account, or one of its API keys, a role in `project`.
    pub fn add_project_member(
        &self,
        who: &Principal,
        project: &Uuid,
        new: NewMember,
    ) -> Result<MemberView, ServiceError> {
        self.visible_project(who, project)?;
        who.require_in(project, "project.members.invite")?;
        if new.email.is_some() || new.target_user_id.is_some() == new.api_key_id.is_some() {
            return Err(invalid(
                "give exactly one of target_user_id and api_key_id (invite an email through /projects/{id}/invitations)",
            ));
        }
        self.grantable(who, &new.role_id, Scope::Project, Some(project))?;
        let _one = lock();
        if let Some(kid) = new.api_key_id {
            let key = match self.inner.api_keys.get(&uuid_key(&kid))? {
                Some(k) if k.account_id == who.account_id => k,
                _ => return Err(invalid("api_key_id is not an API key of this account")),
            };
            if key
                .project_accesses
                .iter()
                .any(|a| a.project_id == *project)
            {
                return Err(invalid(
                    "this API key already has access to the project; change its role instead",
                ));
            }
            self.inner
                .api_keys
                .update::<ServiceError>(&uuid_key(&kid), |k| {
                    k.project_accesses.push(ProjectAccess {
                        project_id: *project,
                        role_id: new.role_id,
                    });
                    Ok(())
                })?;
            return self.find_project_member(who, project, &key_grant_id(&kid, project));
        }
        let uid = new.target_user_id.unwrap_or_default();
        let user = self.account_user(who, &uid)?;
        if user.is_owner
            || self
                .account_members(&who.account_id)?
                .iter()
                .any(|m| m.project_id == Some(*project) && m.user_id == Some(uid))
        {
            return Err(invalid(
                "this user is already a member of the project; change their role instead",
            ));
        }
        let m = self.new_active(who, Some(*project), &user, new.role_id);
        self.inner.members.create(&m)?;
        self.member_view(m)
    }

    pub fn update_project_member(
        &self,
        who: &Principal,
        project: &Uuid,
        id: &Uuid,
        change: MemberChange,
    ) -> Result<MemberView, ServiceError> {
        self.visible_project(who, project)?;
        who.require_in(project, "project.members.manage")?;
        if change.role_id.is_none() && change.status.is_none() {
            return Err(invalid("give role_id or status"));
        }
        if change.status == Some(MemberStatus::Pending) {
            return Err(invalid("status must be active or suspended"));
        }
        let _one = lock();
        let current = self.find_project_member(who, project, id)?;
        self.member_below(who, &current.member)?;
        if let Some(r) = &change.role_id {
            self.grantable(who, r, Scope::Project, Some(project))?;
        }
        if let Some(kid) = current.api_key_id {
            if change.status.is_some() {
                return Err(invalid(
                    "an API key's grant has no status; disable the key or remove the grant",
                ));
            }
            self.inner
                .api_keys
                .update::<ServiceError>(&uuid_key(&kid), |k| {
                    for a in k.project_accesses.iter_mut() {
                        if a.project_id == *project {
                            a.role_id = change.role_id.unwrap_or(a.role_id);
                        }
                    }
                    Ok(())
                })?;
            return self.find_project_member(who, project, id);
        }
        if change.status.is_some() && current.member.status == MemberStatus::Pending {
            return Err(invalid(
                "a pending invitation has no status to change; cancel it instead",
            ));
        }
        self.change_member(id, change)
    }

    /// Removes a grant of one project; the user stays in the account.
    pub fn remove_project_member(
        &self,
        who: &Principal,
        project: &Uuid,
        id: &Uuid,
    ) -> Result<MemberView, ServiceError> {
        self.visible_project(who, project)?;
        who.require_in(project, "project.members.remove")?;
        let _one = lock();
        let current = self.find_project_member(who, project, id)?;
        self.member_below(who, &current.member)?;
        if let Some(kid) = current.api_key_id {
            self.inner
                .api_keys
                .update::<ServiceError>(&uuid_key(&kid), |k| {
                    k.project_accesses.retain(|a| a.project_id != *project);
                    Ok(())
                })?;
        } else {
            self.inner.members.delete(&uuid_key(id))?;
        }
        Ok(current)
    }

    /// Takes back `key`'s grant in `project` (the dashboard's way to name it).
    pub fn remove_key_grant(
        &self,
        who: &Principal,
        project: &Uuid,
        key: &Uuid,
    ) -> Result<MemberView, ServiceError> {
        self.remove_project_member(who, project, &key_grant_id(key, project))
    }

    /// Called when a project is deleted: its grants go with it.
    pub(super) fn drop_project_grants(
        &self,
        account: &Uuid,
        project: &Uuid,
    ) -> Result<(), ServiceError> {
        let _one = lock();
        for m in self.account_members(account)? {
            if m.project_id == Some(*project) {
                self.inner.members.delete(&uuid_key(&m.id))?;
            }
        }
        for k in self
            .inner
            .api_keys
            .by_index(ApiKey::BY_ACCOUNT, &uuid_key(account))?
        {
            if k.project_accesses.iter().any(|a| a.project_id == *project) {
                self.inner
                    .api_keys
                    .update::<ServiceError>(&uuid_key(&k.id), |k| {
                        k.project_accesses.retain(|a| a.project_id != *project);
                        Ok(())
                    })?;
            }
        }
        Ok(())
    }

    /// Members holding `role` (for "in use" at role deletion).
    pub(super) fn members_with_role(
        &self,
        account: &Uuid,
        role: &Uuid,
    ) -> Result<usize, ServiceError> {
        Ok(self
            .account_members(account)?
            .iter()
            .filter(|m| m.role_id == *role)
            .count())
    }
}
