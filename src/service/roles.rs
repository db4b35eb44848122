//! Roles and permissions as the API lists them: the built-in catalog, checked against
//! the caller.

use uuid::Uuid;

use super::authz::{Permission, SystemRole, PERMISSIONS, SYSTEM_ROLES};
use super::{invalid, Page, Principal, ServiceError, Services};

fn check_scope(scope: Option<&str>) -> Result<(), ServiceError> {
    match scope {
        Some(s) if s != "account" && s != "project" => {
            Err(invalid("scope must be account or project"))
        }
        _ => Ok(()),
    }
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

    pub fn list_roles(
        &self,
        who: &Principal,
        scope: Option<&str>,
        page: Page,
    ) -> Result<Vec<&'static SystemRole>, ServiceError> {
        who.require("account.roles.view")?;
        check_scope(scope)?;
        Ok(SYSTEM_ROLES
            .iter()
            .filter(|r| scope.is_none_or(|s| r.scope.as_str() == s))
            .skip(page.offset)
            .take(page.limit)
            .collect())
    }

    pub fn get_role(
        &self,
        who: &Principal,
        id: &Uuid,
    ) -> Result<&'static SystemRole, ServiceError> {
        who.require("account.roles.view")?;
        SystemRole::by_id(id).ok_or(ServiceError::NotFound { kind: "role" })
    }
}
