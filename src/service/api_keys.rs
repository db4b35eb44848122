//! API keys: 256-bit secrets shown once, stored as SHA-256, resolved to a [`Principal`]
//! on every request.

use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::authz::{Scope, SystemRole};
use super::{check_name, invalid, Page, Paged, Principal, ServiceError, Services};
use crate::model::{now, uuid_key, ApiKey, RateLimitTier, Timestamp};
use crate::store::StoreError;

/// How often `last_used_at` is written at most, so that authentication is a read.
const LAST_USED_GRANULARITY_SECS: i64 = 60;

pub(super) fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("raff_{}", hex::encode(bytes))
}

pub(super) fn prefix_of(secret: &str) -> String {
    secret.chars().take(13).collect()
}

pub(super) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub struct NewApiKey {
    pub name: String,
    pub rate_limit_tier: Option<RateLimitTier>,
    pub expires_at: Option<Timestamp>,
    pub role_id: Option<Uuid>,
}

/// Fields to change; all absent changes nothing and returns the key as it is.
#[derive(Default)]
pub struct ApiKeyChange {
    pub name: Option<String>,
    pub rate_limit_tier: Option<RateLimitTier>,
    pub expires_at: Option<Timestamp>,
    pub is_active: Option<bool>,
}

/// A key together with its secret, returned once.
pub struct WithSecret {
    pub key: ApiKey,
    pub secret: String,
}

fn check_expiry(t: &Timestamp) -> Result<(), ServiceError> {
    if *t <= now() {
        return Err(invalid("expires_at must be in the future"));
    }
    Ok(())
}

fn check_tier(t: RateLimitTier) -> Result<(), ServiceError> {
    if t == RateLimitTier::Unlimited {
        return Err(invalid(
            "rate_limit_tier must be standard or high; only the operator grants unlimited",
        ));
    }
    Ok(())
}

impl Services {
    /// Resolves a presented secret to the principal it stands for.
    pub fn authenticate(&self, secret: &str) -> Result<Principal, ServiceError> {
        let unauthorized = |m: &str| ServiceError::Unauthorized(m.to_string());
        if secret.is_empty() {
            return Err(unauthorized(
                "missing API key: send it in the X-API-Key header",
            ));
        }
        let Some(key) = self
            .inner
            .api_keys
            .by_unique(ApiKey::BY_SECRET, hash_secret(secret).as_bytes())?
        else {
            return Err(unauthorized("invalid API key"));
        };
        if !key.is_active {
            return Err(unauthorized("this API key is disabled"));
        }
        let t = now();
        if key.expires_at.is_some_and(|e| e <= t) {
            return Err(unauthorized("this API key has expired"));
        }
        if self
            .inner
            .accounts
            .get(&uuid_key(&key.account_id))?
            .is_none()
        {
            return Err(unauthorized("invalid API key"));
        }
        let stale = key
            .last_used_at
            .is_none_or(|u| (t - u).num_seconds() >= LAST_USED_GRANULARITY_SECS);
        if stale {
            self.inner
                .api_keys
                .update::<StoreError>(&uuid_key(&key.id), |k| {
                    k.last_used_at = Some(t);
                    Ok(())
                })?;
        }
        self.principal_of_key(&key)
    }

    fn own_api_key(&self, who: &Principal, id: &Uuid) -> Result<ApiKey, ServiceError> {
        match self.inner.api_keys.get(&uuid_key(id))? {
            Some(k) if k.account_id == who.account_id => Ok(k),
            _ => Err(ServiceError::NotFound { kind: "API key" }),
        }
    }

    /// The key `id` when the caller holds everything it holds: changing, revoking or
    /// regenerating (reading out) a key above oneself would be a way up.
    fn key_below(&self, who: &Principal, id: &Uuid) -> Result<ApiKey, ServiceError> {
        let key = self.own_api_key(who, id)?;
        if !who.covers(&self.principal_of_key(&key)?) {
            return Err(ServiceError::Forbidden(
                "this API key cannot change a key that holds permissions it lacks".into(),
            ));
        }
        Ok(key)
    }

    pub fn list_api_keys(
        &self,
        who: &Principal,
        page: Page,
    ) -> Result<Paged<ApiKey>, ServiceError> {
        who.require("account.apikeys.view")?;
        let mut all = self
            .inner
            .api_keys
            .by_index(ApiKey::BY_ACCOUNT, &uuid_key(&who.account_id))?;
        all.sort_by_key(|k| (k.created_at, k.id));
        Ok(Paged::of(all, page))
    }

    pub fn get_api_key(&self, who: &Principal, id: &Uuid) -> Result<ApiKey, ServiceError> {
        who.require("account.apikeys.view")?;
        self.own_api_key(who, id)
    }

    pub fn create_api_key(
        &self,
        who: &Principal,
        new: NewApiKey,
    ) -> Result<WithSecret, ServiceError> {
        who.require("account.apikeys.create")?;
        let name = check_name(&new.name, 128)?;
        let tier = new.rate_limit_tier.unwrap_or(RateLimitTier::Standard);
        check_tier(tier)?;
        if let Some(e) = &new.expires_at {
            check_expiry(e)?;
        }
        let role_id = match new.role_id {
            Some(id) => id,
            None => SystemRole::by_slug("member")
                .expect("member is a system role")
                .id(),
        };
        // Held until the key is stored: the role cannot be deleted in between.
        let _roles = super::roles::ROLE_LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let rights = match self.resolve_role(&who.account_id, &role_id)? {
            Some((r, Scope::Account)) => r,
            _ => {
                return Err(invalid(format!(
                    "role_id {role_id} is not an account role of this account"
                )))
            }
        };
        if !who.rights.perms.covers(rights.perms) || (rights.all_projects && !who.all_projects()) {
            return Err(ServiceError::Forbidden(
                "a key cannot grant a role that has permissions it lacks".into(),
            ));
        }
        let secret = new_secret();
        let key = ApiKey {
            id: Uuid::new_v4(),
            account_id: who.account_id,
            name,
            key_prefix: prefix_of(&secret),
            secret_sha256: hash_secret(&secret),
            rate_limit_tier: tier,
            expires_at: new.expires_at,
            last_used_at: None,
            is_active: true,
            role_id,
            project_accesses: vec![],
            created_by: who.user_id,
            created_at: now(),
        };
        self.inner.api_keys.create(&key)?;
        Ok(WithSecret { key, secret })
    }

    pub fn update_api_key(
        &self,
        who: &Principal,
        id: &Uuid,
        change: ApiKeyChange,
    ) -> Result<ApiKey, ServiceError> {
        who.require("account.apikeys.manage")?;
        self.key_below(who, id)?;
        let name = change
            .name
            .as_deref()
            .map(|n| check_name(n, 128))
            .transpose()?;
        if let Some(t) = change.rate_limit_tier {
            check_tier(t)?;
        }
        // An expiry in the past is allowed here: it expires the key now. (The contract
        // gives this operation no 400, and "expire now" is a fair thing to ask.)
        self.inner
            .api_keys
            .update::<ServiceError>(&uuid_key(id), |k| {
                if let Some(n) = &name {
                    k.name = n.clone();
                }
                if let Some(t) = change.rate_limit_tier {
                    k.rate_limit_tier = t;
                }
                if change.expires_at.is_some() {
                    k.expires_at = change.expires_at;
                }
                if let Some(a) = change.is_active {
                    k.is_active = a;
                }
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "API key" })
    }

    pub fn revoke_api_key(&self, who: &Principal, id: &Uuid) -> Result<ApiKey, ServiceError> {
        who.require("account.apikeys.revoke")?;
        self.key_below(who, id)?;
        self.inner
            .api_keys
            .delete(&uuid_key(id))?
            .ok_or(ServiceError::NotFound { kind: "API key" })
    }

    pub fn regenerate_api_key(
        &self,
        who: &Principal,
        id: &Uuid,
    ) -> Result<WithSecret, ServiceError> {
        who.require("account.apikeys.manage")?;
        self.key_below(who, id)?;
        let secret = new_secret();
        let (prefix, hash) = (prefix_of(&secret), hash_secret(&secret));
        let key = self
            .inner
            .api_keys
            .update::<ServiceError>(&uuid_key(id), |k| {
                k.key_prefix = prefix.clone();
                k.secret_sha256 = hash.clone();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "API key" })?;
        Ok(WithSecret { key, secret })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_contract_shape() {
        let s = new_secret();
        assert_eq!(s.len(), 5 + 64);
        assert!(s.starts_with("raff_") && s[5..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(prefix_of(&s), s[..13]);
        assert_ne!(new_secret(), s);
        assert_eq!(hash_secret("abc").len(), 64);
    }
}
