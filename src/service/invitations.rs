//! Invitations: a pending member with a one-time token. skiff has no mailer, so the
//! token is returned once to the inviter, who passes the accept link on; only its
//! SHA-256 is stored. Accepting it through the dashboard makes (or signs in) the user.

use chrono::TimeDelta;
use rand::RngCore;
use uuid::Uuid;

use super::api_keys::hash_secret;
use super::authz::Scope;
use super::members::{lock, MemberView};
use super::{invalid, Principal, ServiceError, Services};
use crate::model::{now, uuid_key, Invitation, Member, MemberStatus, Timestamp, User};
use crate::store::StoreError;

/// How long an invitation can be accepted.
pub const INVITATION_TTL: TimeDelta = TimeDelta::days(7);

/// Open invitations one account may have at a time.
pub const MAX_PENDING: usize = 100;

/// What the accept page shows before the invitee decides.
pub struct InvitationPreview {
    pub email: String,
    pub account_name: String,
    pub project_name: Option<String>,
    pub role_name: String,
    pub expires_at: Timestamp,
    /// The email already signs in here: accepting asks for that password.
    pub existing_user: bool,
}

/// An invitation as the API shows it.
pub struct InvitationView {
    pub member: MemberView,
    pub account_name: String,
    pub project_name: Option<String>,
    pub invited_by_email: Option<String>,
}

/// A plausible address, lower-cased: one `@`, something on both sides, no spaces.
fn check_email(raw: &str) -> Result<String, ServiceError> {
    let e = raw.trim().to_lowercase();
    let ok = (3..=254).contains(&e.len())
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.split('@').count() == 2
        && e.split('@').all(|part| !part.is_empty())
        && e.rsplit('@').next().is_some_and(|d| d.contains('.'));
    if !ok {
        return Err(invalid("email must be an email address"));
    }
    Ok(e)
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("inv_{}", hex::encode(bytes))
}

fn not_valid() -> ServiceError {
    invalid("this invitation is not valid: it expired, was cancelled or was already used")
}

impl Services {
    /// Invites `email` to the account (`project` is `None`) or to one project, with
    /// `role_id`; returns the pending member and the token, shown this once.
    pub(super) fn invite(
        &self,
        who: &Principal,
        project: Option<&Uuid>,
        email: &str,
        role_id: &Uuid,
    ) -> Result<(MemberView, String), ServiceError> {
        match project {
            None => who.require("account.members.invite")?,
            Some(p) => {
                self.visible_project(who, p)?;
                who.require_in(p, "project.members.invite")?;
            }
        }
        let email = check_email(email)?;
        let scope = if project.is_some() {
            Scope::Project
        } else {
            Scope::Account
        };
        self.grantable(who, role_id, scope, project)?;
        let _one = lock();
        // Expired invitations go first: they can no longer be accepted, and the same
        // email may be invited again.
        let t = now();
        let mut members = self.account_members(&who.account_id)?;
        for m in &members {
            if m.invitation.as_ref().is_some_and(|i| i.expires_at <= t) {
                self.inner.members.delete(&uuid_key(&m.id))?;
            }
        }
        members.retain(|m| m.invitation.as_ref().is_none_or(|i| i.expires_at > t));
        let owners_email = self
            .owners(&who.account_id)?
            .iter()
            .any(|u| u.name == email);
        if owners_email
            || members
                .iter()
                .any(|m| m.project_id == project.copied() && m.email == email)
        {
            return Err(invalid(format!(
                "{email} is already a member{} or invited",
                if project.is_some() {
                    " of this project"
                } else {
                    ""
                }
            )));
        }
        let pending = members
            .iter()
            .filter(|m| m.status == MemberStatus::Pending)
            .count();
        if pending >= MAX_PENDING {
            return Err(invalid(format!(
                "an account may have at most {MAX_PENDING} open invitations"
            )));
        }
        let token = new_token();
        let m = Member {
            id: Uuid::new_v4(),
            account_id: who.account_id,
            project_id: project.copied(),
            user_id: None,
            email,
            role_id: *role_id,
            status: MemberStatus::Pending,
            invited_by: who.user_id,
            invited_at: Some(t),
            accepted_at: None,
            invitation: Some(Invitation {
                id: Uuid::new_v4(),
                token_sha256: hash_secret(&token),
                expires_at: t + INVITATION_TTL,
            }),
            created_at: t,
            updated_at: t,
        };
        self.inner.members.create(&m)?;
        Ok((self.member_view(m)?, token))
    }

    /// `POST /invitations` and `POST /projects/{id}/invitations`.
    pub fn create_invitation(
        &self,
        who: &Principal,
        project: Option<&Uuid>,
        email: &str,
        role_id: &Uuid,
    ) -> Result<(InvitationView, String), ServiceError> {
        let (m, token) = self.invite(who, project, email, role_id)?;
        Ok((self.invitation_view(m)?, token))
    }

    pub fn invitation_view(&self, m: MemberView) -> Result<InvitationView, ServiceError> {
        let account_name = self
            .inner
            .accounts
            .get(&uuid_key(&m.member.account_id))?
            .map(|a| a.name)
            .unwrap_or_default();
        let project_name = match m.member.project_id {
            Some(p) => self.inner.projects.get(&uuid_key(&p))?.map(|p| p.name),
            None => None,
        };
        let invited_by_email = match m.member.invited_by {
            Some(u) => self.inner.users.get(&uuid_key(&u))?.map(|u| u.name),
            None => None,
        };
        Ok(InvitationView {
            member: m,
            account_name,
            project_name,
            invited_by_email,
        })
    }

    /// Cancels a pending invitation of the caller's account; its link stops working.
    pub fn cancel_invitation(&self, who: &Principal, id: &Uuid) -> Result<(), ServiceError> {
        // Before the lookup: a caller who may cancel none learns nothing about ids.
        if who.require("account.members.invite").is_err() {
            who.require_somewhere("project.members.invite")?;
        }
        let _one = lock();
        let m = self
            .account_members(&who.account_id)?
            .into_iter()
            .find(|m| m.invitation.as_ref().is_some_and(|i| i.id == *id))
            .filter(|m| m.project_id.is_none_or(|p| who.can_see_project(&p)))
            .ok_or(ServiceError::NotFound { kind: "invitation" })?;
        match m.project_id {
            None => who.require("account.members.invite")?,
            Some(p) => who.require_in(&p, "project.members.invite")?,
        }
        self.inner.members.delete(&uuid_key(&m.id))?;
        Ok(())
    }

    fn open_invitation(&self, token: &str) -> Result<Member, ServiceError> {
        let m = self
            .inner
            .members
            .by_unique(Member::BY_TOKEN, hash_secret(token).as_bytes())?
            .ok_or_else(not_valid)?;
        match &m.invitation {
            Some(i) if i.expires_at > now() && m.status == MemberStatus::Pending => Ok(m),
            _ => Err(not_valid()),
        }
    }

    /// What the accept page shows; the token is the only credential.
    pub fn preview_invitation(&self, token: &str) -> Result<InvitationPreview, ServiceError> {
        let m = self.open_invitation(token)?;
        let v = self.invitation_view(self.member_view(m)?)?;
        let existing_user = self
            .user_by_name(&v.member.member.email)?
            .is_some_and(|u| u.account_id == v.member.member.account_id);
        Ok(InvitationPreview {
            email: v.member.member.email.clone(),
            account_name: v.account_name,
            project_name: v.project_name,
            role_name: v.member.role_name,
            expires_at: m_expiry(&v.member.member),
            existing_user,
        })
    }

    /// Accepts an invitation: makes the user with `password` (or checks the password
    /// of the user that email already is in this account) and activates the grant.
    pub fn accept_invitation(&self, token: &str, password: &str) -> Result<User, ServiceError> {
        // The password is checked or hashed (argon2) before the lock: a slow hash
        // must not hold every membership change of the host.
        let m = self.open_invitation(token)?;
        let existing = match self.user_by_name(&m.email)? {
            Some(u) if u.account_id != m.account_id => {
                return Err(invalid(
                    "this email already signs in to another account of this host",
                ))
            }
            Some(u) => Some(self.login(&u.name, password)?),
            None => None,
        };
        let hash = match existing {
            Some(_) => None,
            None => Some(Self::new_password_hash(password)?),
        };
        let _one = lock();
        // Again under the lock: used, cancelled or the user made meanwhile.
        let m = self.open_invitation(token)?;
        let user = match (existing, self.user_by_name(&m.email)?) {
            (Some(u), Some(now_u)) if now_u.id == u.id => {
                let dup = self
                    .inner
                    .members
                    .by_index(Member::BY_USER, &uuid_key(&u.id))?
                    .into_iter()
                    .any(|o| o.account_id == m.account_id && o.project_id == m.project_id);
                if dup || u.is_owner {
                    return Err(invalid("you already hold a role there"));
                }
                u
            }
            (None, None) => {
                let u = User {
                    id: Uuid::new_v4(),
                    account_id: m.account_id,
                    name: m.email.clone(),
                    password_hash: hash,
                    is_owner: false,
                    created_at: now(),
                };
                self.inner.users.create(&u)?;
                u
            }
            _ => return Err(not_valid()),
        };
        let t = now();
        self.inner
            .members
            .update::<StoreError>(&uuid_key(&m.id), |r| {
                r.user_id = Some(user.id);
                r.status = MemberStatus::Active;
                r.accepted_at = Some(t);
                r.invitation = None;
                r.updated_at = t;
                Ok(())
            })?
            .ok_or_else(not_valid)?;
        Ok(user)
    }
}

fn m_expiry(m: &Member) -> Timestamp {
    m.invitation.as_ref().map_or(m.created_at, |i| i.expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(check_email(" Ann@Example.org ").unwrap(), "ann@example.org");
        for bad in [
            "",
            "ann",
            "@x.org",
            "ann@",
            "a b@x.org",
            "a@b@c.org",
            "ann@host",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(new_token().starts_with("inv_"));
        assert_ne!(new_token(), new_token());
    }
}
