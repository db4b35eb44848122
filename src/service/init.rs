//! First start: the admin account, its default project and the first API key. Also
//! the operator's offline tools (more accounts, key tiers), which need the store to
//! themselves because sled allows one process at a time.

use uuid::Uuid;

use super::authz::SystemRole;
use super::{api_keys, invalid, ServiceError, Services};
use crate::model::{now, uuid_key, Account, ApiKey, Project, RateLimitTier, User};
use crate::store::StoreError;

/// What `skiff init` (or `skiff admin account create`) made. The key is shown once.
pub struct InitReport {
    pub account_id: Uuid,
    pub user_id: Uuid,
    pub project_id: Uuid,
    pub api_key_id: Uuid,
    pub api_key: String,
    /// The owner's dashboard sign-in (the account's name; `admin` for the first).
    pub user_name: String,
    pub password: String,
}

impl Services {
    /// Whether the store already has an account.
    pub fn is_initialized(&self) -> Result<bool, ServiceError> {
        Ok(!self.inner.accounts.is_empty())
    }

    /// Creates the first account; refuses when one exists.
    pub fn init(&self, account_name: &str) -> Result<InitReport, ServiceError> {
        if self.is_initialized()? {
            return Err(ServiceError::Conflict(
                "this data directory is initialised already".into(),
            ));
        }
        self.new_account(account_name, true)
    }

    /// A tenant account (see [`Services::new_account`]).
    pub fn create_account(&self, name: &str) -> Result<InitReport, ServiceError> {
        self.new_account(name, false)
    }

    /// Grants or takes the operator flag (offline `skiff admin set-operator`). The
    /// last operator cannot be taken away: someone must run the host.
    pub fn set_operator(&self, account: &str, on: bool) -> Result<Account, ServiceError> {
        let all = self.inner.accounts.all()?;
        let found = all
            .iter()
            .find(|a| a.name == account || a.id.to_string() == account)
            .ok_or(ServiceError::NotFound { kind: "Account" })?;
        if !on && found.operator && all.iter().filter(|a| a.operator).count() == 1 {
            return Err(ServiceError::Conflict(
                "this is the only operator account; grant another first".into(),
            ));
        }
        self.inner
            .accounts
            .update::<ServiceError>(&uuid_key(&found.id), |a| {
                a.operator = on;
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "Account" })
    }

    /// An account with an owner user (signing in as the account's name, with a new
    /// random password), a default project and an owner API key.
    fn new_account(&self, name: &str, operator: bool) -> Result<InitReport, ServiceError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(invalid("account name must be 1 to 64 characters"));
        }
        if self.user_by_name(name)?.is_some() {
            return Err(ServiceError::Conflict(format!(
                "a user named {name} exists already; choose another account name"
            )));
        }
        let password = super::users::generate_user_password();
        let password_hash = Services::new_password_hash(&password)?;
        let t = now();
        let account = Account {
            id: Uuid::new_v4(),
            name: name.into(),
            created_at: t,
            operator,
            quotas: Default::default(),
        };
        let user = User {
            id: Uuid::new_v4(),
            account_id: account.id,
            name: name.into(),
            password_hash: Some(password_hash),
            is_owner: true,
            created_at: t,
        };
        let project = Project {
            id: Uuid::new_v4(),
            account_id: account.id,
            name: "default".into(),
            slug: "default".into(),
            description: Some("Created by skiff init".into()),
            default_region: self.default_region().to_string(),
            is_default: true,
            is_active: true,
            created_by: Some(user.id),
            created_at: t,
            updated_at: t,
        };
        let owner = SystemRole::by_slug("owner").expect("owner is a system role");
        let secret = api_keys::new_secret();
        let key = ApiKey {
            id: Uuid::new_v4(),
            account_id: account.id,
            name: "admin".into(),
            key_prefix: api_keys::prefix_of(&secret),
            secret_sha256: api_keys::hash_secret(&secret),
            rate_limit_tier: RateLimitTier::Standard,
            expires_at: None,
            last_used_at: None,
            is_active: true,
            role_id: owner.id(),
            project_accesses: vec![],
            created_by: Some(user.id),
            created_at: t,
        };
        // Children first, account last: a crash in between leaves no account, so init
        // simply runs again; the orphans it may leave are never reachable.
        self.inner.users.create(&user)?;
        self.inner.projects.create(&project)?;
        self.inner.api_keys.create(&key)?;
        self.inner.accounts.create(&account)?;
        self.inner.store.flush()?;
        Ok(InitReport {
            account_id: account.id,
            user_id: user.id,
            project_id: project.id,
            api_key_id: key.id,
            api_key: secret,
            user_name: user.name,
            password,
        })
    }

    /// Operator tool: sets a key's rate-limit tier, `unlimited` included.
    pub fn set_key_tier(&self, key_id: &Uuid, tier: RateLimitTier) -> Result<ApiKey, ServiceError> {
        self.inner
            .api_keys
            .update::<StoreError>(&uuid_key(key_id), |k| {
                k.rate_limit_tier = tier;
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "API key" })
    }

    pub(crate) fn default_region(&self) -> &str {
        self.inner
            .catalog
            .regions
            .iter()
            .find(|r| r.is_default)
            .map(|r| r.code.as_str())
            .unwrap_or("us-east")
    }
}
