//! SSH keys: account-level, validated on the way in, unique per account by fingerprint.

use uuid::Uuid;

use super::{check_name, invalid, sshkey, Principal, ServiceError, Services};
use crate::model::{now, uuid_key, SshKey};
use crate::store::StoreError;

impl Services {
    fn own_ssh_key(&self, who: &Principal, id: &Uuid) -> Result<SshKey, ServiceError> {
        match self.inner.ssh_keys.get(&uuid_key(id))? {
            Some(k) if k.account_id == who.account_id => Ok(k),
            _ => Err(ServiceError::NotFound { kind: "SSH key" }),
        }
    }

    pub fn list_ssh_keys(&self, who: &Principal) -> Result<Vec<SshKey>, ServiceError> {
        who.require("account.sshkeys.view")?;
        let mut keys = self
            .inner
            .ssh_keys
            .by_index(SshKey::BY_ACCOUNT, &uuid_key(&who.account_id))?;
        keys.sort_by_key(|k| (k.created_at, k.id));
        Ok(keys)
    }

    pub fn get_ssh_key(&self, who: &Principal, id: &Uuid) -> Result<SshKey, ServiceError> {
        who.require("account.sshkeys.view")?;
        self.own_ssh_key(who, id)
    }

    pub fn create_ssh_key(
        &self,
        who: &Principal,
        name: &str,
        public_key: &str,
    ) -> Result<SshKey, ServiceError> {
        who.require("account.sshkeys.create")?;
        let name = check_name(name, 128)?;
        let parsed = sshkey::parse(public_key).map_err(|e| invalid(e.to_string()))?;
        let t = now();
        let key = SshKey {
            id: Uuid::new_v4(),
            account_id: who.account_id,
            name,
            public_key: parsed.normalized,
            key_type: parsed.key_type.into(),
            fingerprint: parsed.fingerprint,
            created_at: t,
            updated_at: t,
        };
        match self.inner.ssh_keys.create(&key) {
            Ok(()) => Ok(key),
            Err(StoreError::UniqueViolation { .. }) => Err(ServiceError::Conflict(format!(
                "this public key ({}) is already on the account",
                key.fingerprint
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub fn rename_ssh_key(
        &self,
        who: &Principal,
        id: &Uuid,
        name: &str,
    ) -> Result<SshKey, ServiceError> {
        who.require("account.sshkeys.manage")?;
        self.own_ssh_key(who, id)?;
        let name = check_name(name, 128)?;
        self.inner
            .ssh_keys
            .update::<ServiceError>(&uuid_key(id), |k| {
                k.name = name.clone();
                k.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "SSH key" })
    }

    pub fn delete_ssh_key(&self, who: &Principal, id: &Uuid) -> Result<SshKey, ServiceError> {
        who.require("account.sshkeys.delete")?;
        self.own_ssh_key(who, id)?;
        self.inner
            .ssh_keys
            .delete(&uuid_key(id))?
            .ok_or(ServiceError::NotFound { kind: "SSH key" })
    }
}
