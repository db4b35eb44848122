//! Tags and notes on VMs: records only, nothing on the host.

use uuid::Uuid;

use super::{check_name, invalid, Principal, ServiceError, Services};
use crate::model::{now, uuid_key, Vm, VmNote, VmTag};

/// How a note is written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NoteWrite {
    /// Create or overwrite.
    Put,
    /// Overwrite; the note must exist.
    Patch,
    /// Add a line; create if missing.
    Append,
}

const MAX_TAGS: usize = 50;
const MAX_NOTE: usize = 64 * 1024;

fn check_scope(scope: &str) -> Result<(), ServiceError> {
    if scope == "personal" || scope == "account" {
        Ok(())
    } else {
        Err(ServiceError::NotFound { kind: "note type" })
    }
}

impl Services {
    fn edit_tags(
        &self,
        vm: &Vm,
        f: impl Fn(&mut Vec<VmTag>) -> Result<(), ServiceError>,
    ) -> Result<Vec<VmTag>, ServiceError> {
        let vm = self
            .inner
            .vms
            .update::<ServiceError>(&uuid_key(&vm.id), |v| {
                f(&mut v.tags)?;
                // Kept in display order, so readers never sort.
                v.tags.sort_by_key(|t| (t.priority, t.created_at, t.id));
                v.updated_at = now();
                Ok(())
            })?
            .ok_or(ServiceError::NotFound { kind: "VM" })?;
        Ok(vm.tags)
    }

    pub fn add_vm_tag(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        name: &str,
        priority: i64,
    ) -> Result<Vec<VmTag>, ServiceError> {
        let vm = self.vm_in_scope(who, header, id, "vm.manage")?;
        let name = check_name(name, 64)?;
        let tag = VmTag {
            id: Uuid::new_v4(),
            name,
            priority,
            created_at: now(),
        };
        self.edit_tags(&vm, |tags| {
            if tags.len() >= MAX_TAGS {
                return Err(invalid(format!("a VM holds at most {MAX_TAGS} tags")));
            }
            if tags.iter().any(|t| t.name == tag.name) {
                return Err(invalid(format!(
                    "the VM has a tag named {:?} already",
                    tag.name
                )));
            }
            tags.push(tag.clone());
            Ok(())
        })
    }

    pub fn update_vm_tag(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        tag_id: &Uuid,
        name: Option<&str>,
        priority: Option<i64>,
    ) -> Result<Vec<VmTag>, ServiceError> {
        let vm = self.vm_in_scope(who, header, id, "vm.manage")?;
        if !vm.tags.iter().any(|t| t.id == *tag_id) {
            return Err(ServiceError::NotFound { kind: "tag" });
        }
        if name.is_none() && priority.is_none() {
            return Err(invalid("give name, priority or both"));
        }
        let name = name.map(|n| check_name(n, 64)).transpose()?;
        self.edit_tags(&vm, |tags| {
            if let Some(n) = &name {
                if tags.iter().any(|t| t.name == *n && t.id != *tag_id) {
                    return Err(invalid(format!("the VM has a tag named {n:?} already")));
                }
            }
            let t = tags
                .iter_mut()
                .find(|t| t.id == *tag_id)
                .ok_or(ServiceError::NotFound { kind: "tag" })?;
            if let Some(n) = &name {
                t.name = n.clone();
            }
            if let Some(p) = priority {
                t.priority = p;
            }
            Ok(())
        })
    }

    pub fn remove_vm_tag(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        tag_id: &Uuid,
    ) -> Result<Vec<VmTag>, ServiceError> {
        let vm = self.vm_in_scope(who, header, id, "vm.manage")?;
        if !vm.tags.iter().any(|t| t.id == *tag_id) {
            return Err(ServiceError::NotFound { kind: "tag" });
        }
        self.edit_tags(&vm, |tags| {
            tags.retain(|t| t.id != *tag_id);
            Ok(())
        })
    }

    /// The writer of personal notes: the key's user, or the key itself.
    fn note_owner(who: &Principal) -> Uuid {
        who.user_id.unwrap_or(who.key_id)
    }

    /// The caller's personal note and the account note of a VM.
    pub fn vm_notes(
        &self,
        who: &Principal,
        id: &Uuid,
    ) -> Result<(Option<VmNote>, Option<VmNote>), ServiceError> {
        let vm = self.visible_vm(who, id, "vm.view")?;
        let owner = Self::note_owner(who);
        let get = |scope: &str| {
            self.inner
                .notes
                .get(&VmNote::key_for(&vm.id, scope, &owner))
        };
        Ok((get("personal")?, get("account")?))
    }

    pub fn write_vm_note(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: &Uuid,
        scope: &str,
        content: &str,
        how: NoteWrite,
    ) -> Result<VmNote, ServiceError> {
        check_scope(scope)?;
        let vm = self.vm_in_scope(who, header, id, "vm.view")?;
        let owner = Self::note_owner(who);
        let key = VmNote::key_for(&vm.id, scope, &owner);
        let t = now();
        let existing = self.inner.notes.get(&key)?;
        let content = match (&existing, how) {
            (None, NoteWrite::Patch) => return Err(ServiceError::NotFound { kind: "note" }),
            (Some(n), NoteWrite::Append) if !n.content.is_empty() => {
                format!("{}\n{content}", n.content)
            }
            _ => content.to_string(),
        };
        if content.len() > MAX_NOTE {
            return Err(invalid(format!("a note holds at most {MAX_NOTE} bytes")));
        }
        let note = VmNote {
            id: existing.as_ref().map(|n| n.id).unwrap_or_else(Uuid::new_v4),
            vm_id: vm.id,
            scope: scope.to_string(),
            user_id: owner,
            content,
            created_at: existing.as_ref().map(|n| n.created_at).unwrap_or(t),
            updated_at: t,
        };
        self.inner.notes.put(&note)?;
        Ok(note)
    }
}
