//! Projects: the unit of isolation inside an account.

use uuid::Uuid;

use super::{check_name, invalid, Page, Paged, Principal, ServiceError, Services};
use crate::model::{now, uuid_key, Project, SecurityGroup, Vm};

pub struct NewProject {
    pub name: String,
    pub description: Option<String>,
    pub default_region: Option<String>,
}

#[derive(Default)]
pub struct ProjectChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub default_region: Option<String>,
}

const MAX_DESCRIPTION: usize = 1024;

/// A free-text description of at most `max` characters, taken as given.
pub(crate) fn check_description(d: &str, max: usize) -> Result<String, ServiceError> {
    if d.chars().count() > max {
        return Err(invalid(format!(
            "description must be at most {max} characters"
        )));
    }
    Ok(d.to_string())
}

/// `Web Shop (prod)` → `web-shop-prod`; never empty.
fn slugify(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        "project".into()
    } else {
        s
    }
}

impl Services {
    fn check_region(&self, code: &str) -> Result<(), ServiceError> {
        if self.inner.catalog.regions.iter().any(|r| r.code == code) {
            Ok(())
        } else {
            Err(invalid(format!("unknown region {code:?}")))
        }
    }

    /// The project if it exists in the caller's account and the caller may use it.
    pub fn visible_project(&self, who: &Principal, id: &Uuid) -> Result<Project, ServiceError> {
        match self.inner.projects.get(&uuid_key(id))? {
            Some(p) if p.account_id == who.account_id && who.can_see_project(id) => Ok(p),
            _ => Err(ServiceError::NotFound { kind: "project" }),
        }
    }

    /// Resolves an `X-Project-ID` for an operation that needs `perm` in it.
    pub fn project_scope(
        &self,
        who: &Principal,
        header: Option<&str>,
        perm: &str,
    ) -> Result<Project, ServiceError> {
        let raw = header.ok_or(ServiceError::ProjectRequired)?;
        let id = Uuid::parse_str(raw.trim())
            .map_err(|_| invalid("X-Project-ID must be a project UUID"))?;
        let p = self.visible_project(who, &id)?;
        who.require_in(&id, perm)?;
        Ok(p)
    }

    /// The projects a list covers: the one in the header (none when the caller cannot
    /// see it), or every project of the account.
    pub(crate) fn projects_for_list(
        &self,
        who: &Principal,
        project: Option<&Uuid>,
    ) -> Result<Vec<Uuid>, ServiceError> {
        Ok(match project {
            Some(p) => match self.visible_project(who, p) {
                Ok(p) => vec![p.id],
                Err(_) => vec![],
            },
            None => self
                .inner
                .projects
                .by_index(Project::BY_ACCOUNT, &uuid_key(&who.account_id))?
                .into_iter()
                .map(|p| p.id)
                .collect(),
        })
    }

    /// For an operation on an existing resource where the contract requires
    /// `X-Project-ID`: the header must be given (400) and name the resource's project
    /// (else 404 as `kind`: another project's resource is not there).
    pub fn header_names(
        &self,
        who: &Principal,
        header: Option<&str>,
        project: &Uuid,
        perm: &str,
        kind: &'static str,
    ) -> Result<(), ServiceError> {
        let raw = header.ok_or(ServiceError::ProjectRequired)?;
        let id = Uuid::parse_str(raw.trim())
            .map_err(|_| invalid("X-Project-ID must be a project UUID"))?;
        if id != *project {
            return Err(ServiceError::NotFound { kind });
        }
        self.project_scope(who, Some(raw), perm).map(|_| ())
    }

    pub fn list_projects(
        &self,
        who: &Principal,
        page: Page,
    ) -> Result<Paged<Project>, ServiceError> {
        // A project grant is enough to see that project listed.
        if who.project_rights.is_empty() {
            who.require("account.projects.view")?;
        }
        let mut all: Vec<Project> = self
            .inner
            .projects
            .by_index(Project::BY_ACCOUNT, &uuid_key(&who.account_id))?
            .into_iter()
            .filter(|p| who.can_see_project(&p.id))
            .collect();
        all.sort_by_key(|k| (k.created_at, k.id));
        Ok(Paged::of(all, page))
    }

    pub fn get_project(&self, who: &Principal, id: &Uuid) -> Result<Project, ServiceError> {
        who.require("account.projects.view")?;
        self.visible_project(who, id)
    }

    pub fn create_project(
        &self,
        who: &Principal,
        new: NewProject,
    ) -> Result<Project, ServiceError> {
        who.require("account.projects.create")?;
        let name = check_name(&new.name, 64)?;
        let description = new
            .description
            .as_deref()
            .map(|d| check_description(d, MAX_DESCRIPTION))
            .transpose()?;
        let region = new
            .default_region
            .unwrap_or_else(|| self.default_region().to_string());
        self.check_region(&region)?;
        let base = slugify(&name);
        let t = now();
        for n in 1..=1000 {
            let slug = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let p = Project {
                id: Uuid::new_v4(),
                account_id: who.account_id,
                name: name.clone(),
                slug,
                description: description.clone(),
                default_region: region.clone(),
                is_default: false,
                is_active: true,
                created_by: who.user_id,
                created_at: t,
                updated_at: t,
            };
            match self.inner.projects.create(&p) {
                Ok(()) => return Ok(p),
                Err(crate::store::StoreError::UniqueViolation { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(
            "too many projects share this name".into(),
        ))
    }

    pub fn update_project(
        &self,
        who: &Principal,
        id: &Uuid,
        change: ProjectChange,
    ) -> Result<Project, ServiceError> {
        who.require("account.projects.manage")?;
        self.visible_project(who, id)?;
        let name = change
            .name
            .as_deref()
            .map(|n| check_name(n, 64))
            .transpose()?;
        let description = change
            .description
            .as_deref()
            .map(|d| check_description(d, MAX_DESCRIPTION))
            .transpose()?;
        if let Some(r) = &change.default_region {
            self.check_region(r)?;
        }
        self.inner
            .projects
            .update::<ServiceError>(&uuid_key(id), |p| {
                if let Some(n) = &name {
                    p.name = n.clone();
                }
                if let Some(d) = &description {
                    p.description = Some(d.clone());
                }
                if let Some(r) = &change.default_region {
                    p.default_region = r.clone();
                }
                p.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "project" })
    }

    pub fn delete_project(&self, who: &Principal, id: &Uuid) -> Result<Project, ServiceError> {
        who.require("account.projects.delete")?;
        let p = self.visible_project(who, id)?;
        if p.is_default {
            return Err(ServiceError::Conflict(
                "the account's default project cannot be deleted".into(),
            ));
        }
        let live_jobs = self
            .inner
            .jobs
            .list_by_project(id)?
            .into_iter()
            .any(|j| !j.status.is_final());
        if live_jobs {
            return Err(ServiceError::Conflict(
                "the project has operations in progress; retry when they finish".into(),
            ));
        }
        self.project_is_empty(id)?;
        // Grants that name the project go with it.
        self.drop_project_grants(&who.account_id, id)?;
        self.inner.projects.delete(&uuid_key(id))?;
        Ok(p)
    }

    /// The contract: a project to delete "must not contain any active resources".
    /// Deleting one that does would orphan them (and their disks and backups).
    fn project_is_empty(&self, id: &Uuid) -> Result<(), ServiceError> {
        let key = uuid_key(id);
        let i = &self.inner;
        let held = [
            ("VMs", i.vms.count_by_index(Vm::BY_PROJECT, &key)?),
            (
                "volumes",
                i.volumes
                    .count_by_index(crate::model::Volume::BY_PROJECT, &key)?,
            ),
            (
                "security groups",
                i.groups.count_by_index(SecurityGroup::BY_PROJECT, &key)?,
            ),
            (
                "backups",
                i.backups
                    .all()?
                    .iter()
                    .filter(|b| b.project_id == *id)
                    .count(),
            ),
            (
                "backup schedules",
                i.schedules
                    .all()?
                    .iter()
                    .filter(|s| s.project_id == *id)
                    .count(),
            ),
            (
                "saved images",
                i.templates
                    .all()?
                    .iter()
                    .filter(|t| t.owner.as_ref().is_some_and(|o| o.project_id == *id))
                    .count(),
            ),
        ];
        let list: Vec<String> = held
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        if list.is_empty() {
            return Ok(());
        }
        Err(ServiceError::Conflict(format!(
            "the project still holds {}; delete them first",
            list.join(", ")
        )))
    }

    /// Name of a project of the caller's account, for display next to grants.
    pub(crate) fn project_name(&self, id: &Uuid) -> Option<String> {
        self.inner
            .projects
            .get(&uuid_key(id))
            .ok()
            .flatten()
            .map(|p| p.name)
    }
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(slugify("Web Shop (prod)"), "web-shop-prod");
        assert_eq!(slugify("  --Ünïcode--  "), "n-code");
        assert_eq!(slugify("!!!"), "project");
    }
}
