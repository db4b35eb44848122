//! Dashboard sign-in: users' passwords (argon2id) and the principal a signed-in user
//! acts as. The dashboard calls the same service functions as the API with it, so a
//! page can do exactly what the user's role allows and nothing more.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use uuid::Uuid;

use super::{invalid, Principal, ServiceError, Services};
use crate::model::{uuid_key, RateLimitTier, User};
use crate::store::StoreError;

/// Dashboard passwords: long enough to resist guessing, otherwise the user's choice.
fn check_password(p: &str) -> Result<(), ServiceError> {
    let n = p.chars().count();
    if !(10..=256).contains(&n) {
        return Err(invalid("password must be 10 to 256 characters"));
    }
    Ok(())
}

fn hash_password(p: &str) -> Result<String, ServiceError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(p.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| invalid(format!("cannot hash the password: {e}")))
}

/// A random password for a new owner, shown once by `skiff init`.
pub fn generate_user_password() -> String {
    use rand::Rng;
    const SET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| SET[rng.gen_range(0..SET.len())] as char)
        .collect()
}

impl Services {
    fn account_exists(&self, id: &Uuid) -> Result<bool, ServiceError> {
        Ok(self.inner.accounts.get(&uuid_key(id))?.is_some())
    }

    /// Whether `id` is the host operator's account (read on every request, so a
    /// revoked flag takes effect at once).
    pub(super) fn is_operator(&self, id: &Uuid) -> Result<bool, ServiceError> {
        Ok(self
            .inner
            .accounts
            .get(&uuid_key(id))?
            .is_some_and(|a| a.operator))
    }

    pub(super) fn user_by_name(&self, name: &str) -> Result<Option<User>, ServiceError> {
        Ok(self.inner.users.all()?.into_iter().find(|u| u.name == name))
    }

    /// Checks a user name and password; every failure gives the same answer, and an
    /// unknown name costs as much time as a wrong password.
    pub fn login(&self, name: &str, password: &str) -> Result<User, ServiceError> {
        let denied = || ServiceError::Unauthorized("wrong user name or password".into());
        let user = self.user_by_name(name.trim())?;
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let Some(hash) = hash else {
            // Spend the time a verification takes, so names cannot be probed.
            let _ = hash_password(password);
            return Err(denied());
        };
        let parsed = PasswordHash::new(&hash).map_err(|_| denied())?;
        if Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_err()
        {
            return Err(denied());
        }
        let user = user.ok_or_else(denied)?;
        if !self.account_exists(&user.account_id)? {
            return Err(denied());
        }
        Ok(user)
    }

    /// The principal of a signed-in user, resolved again on every request so that a
    /// removed user or account loses access at once.
    pub fn user_principal(&self, user_id: &Uuid) -> Result<(User, Principal), ServiceError> {
        let gone = || ServiceError::Unauthorized("your session has ended; sign in again".into());
        let user: User = self.inner.users.get(&uuid_key(user_id))?.ok_or_else(gone)?;
        if !self.account_exists(&user.account_id)? {
            return Err(gone());
        }
        let p = self.user_principal_of(&user)?;
        Ok((user, p))
    }

    /// The principal `user` acts as, from its memberships now.
    pub(super) fn user_principal_of(&self, user: &User) -> Result<Principal, ServiceError> {
        let r = self.user_rights(user)?;
        Ok(Principal {
            account_id: user.account_id,
            key_id: user.id,
            user_id: Some(user.id),
            role_id: r.role_id,
            tier: RateLimitTier::Standard,
            project_accesses: r.project_accesses,
            operator: self.is_operator(&user.account_id)?,
            rights: r.rights,
            project_rights: r.project_rights,
        })
    }

    /// Operator tool: sets a user's dashboard password.
    pub fn set_user_password(&self, name: &str, password: &str) -> Result<User, ServiceError> {
        check_password(password)?;
        let user = self
            .user_by_name(name)?
            .ok_or(ServiceError::NotFound { kind: "user" })?;
        let hash = hash_password(password)?;
        let user = self
            .inner
            .users
            .update::<StoreError>(&uuid_key(&user.id), |u| {
                u.password_hash = Some(hash.clone());
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "user" })?;
        self.inner.store.flush()?;
        Ok(user)
    }

    pub(crate) fn new_password_hash(password: &str) -> Result<String, ServiceError> {
        check_password(password)?;
        hash_password(password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_pass_the_rule_and_hash_round_trips() {
        let p = generate_user_password();
        assert!(check_password(&p).is_ok());
        let h = hash_password(&p).unwrap();
        assert!(h.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default()
            .verify_password(p.as_bytes(), &parsed)
            .is_ok());
        assert!(Argon2::default().verify_password(b"nope", &parsed).is_err());
        assert!(check_password("short").is_err());
    }
}
