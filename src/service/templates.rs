//! Templates: the catalog's images. Configured ones come from the configuration file;
//! imported ones are records with their image under `<data_dir>/templates/`.

use std::path::Path;

use uuid::Uuid;

use super::{check_name, invalid, ServiceError, Services};
use crate::compute::disk;
use crate::config::TemplateConfig;
use crate::model::{now, ImageOwner, SaveSource, Template};

/// A save-image request.
pub struct SaveImage {
    pub name: String,
    pub description: Option<String>,
    pub disk_id: i64,
    pub snapshot_id: i64,
}

/// Where a new template's bytes come from.
pub(super) enum ImageSource<'a> {
    /// A whole image file of this format.
    File(&'a Path, disk::Format),
    /// An internal snapshot (by tag) of a qcow2.
    Snapshot(&'a Path, &'a str),
}

/// Converts `src` into `<dir>/<id>.qcow2` (through a temporary file, so that the name
/// only ever holds a whole image) and opens it to QEMU, which reads a base through
/// every VM's overlay (`access` is `None` offline: the next start with compute opens
/// it). Returns the image and its minimum disk: the virtual size, in whole GB.
pub(super) fn write_image(
    dir: &Path,
    id: &Uuid,
    src: ImageSource<'_>,
    access: Option<&crate::compute::access::QemuAccess>,
) -> Result<(std::path::PathBuf, i64), crate::compute::ComputeError> {
    let io = |e: std::io::Error| crate::compute::ComputeError::Host {
        what: dir.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let image = dir.join(format!("{id}.qcow2"));
    let tmp = partial_image(dir, id);
    let written = match src {
        ImageSource::File(p, format) => disk::convert_to_qcow2(p, format, &tmp),
        ImageSource::Snapshot(p, tag) => disk::convert_snapshot(p, tag, &tmp),
    }
    .and_then(|()| disk::virtual_size(&tmp, disk::Format::Qcow2));
    let size = match written {
        Ok(size) => size,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &image).map_err(io)?;
    if let Some(a) = access {
        a.traverse(dir)?;
        a.shared_read(&image)?;
    }
    Ok((image, size.div_ceil(1 << 30).max(1) as i64))
}

/// The file an unfinished `write_image` leaves behind.
pub(super) fn partial_image(dir: &Path, id: &Uuid) -> std::path::PathBuf {
    dir.join(format!("{id}.qcow2.tmp"))
}

/// What `skiff template import` is told about an image.
pub struct ImportTemplate {
    pub name: String,
    pub version: String,
    pub description: String,
    pub os_type: String,
    pub region: Option<String>,
    pub cpu: i64,
    pub ram: i64,
}

fn as_config(t: Template) -> TemplateConfig {
    TemplateConfig {
        id: t.id,
        name: t.name,
        version: t.version,
        cpu: t.cpu,
        ram: t.ram,
        storage: t.storage,
        is_windows: t.is_windows,
        os_type: t.os_type,
        category: t.category,
        description: t.description,
        region: t.region,
        image: Some(t.image),
    }
}

impl Services {
    /// The public catalog: configured templates first, then the operator's imported
    /// ones by age. Tenants' saved images are not in it.
    pub fn all_templates(&self) -> Result<Vec<TemplateConfig>, ServiceError> {
        self.templates_with(|_| false)
    }

    /// The catalog plus the images saved in `project`: what a VM there may boot.
    pub fn templates_for_project(
        &self,
        project: &Uuid,
    ) -> Result<Vec<TemplateConfig>, ServiceError> {
        self.templates_with(|o| o.project_id == *project)
    }

    fn templates_with(
        &self,
        own: impl Fn(&ImageOwner) -> bool,
    ) -> Result<Vec<TemplateConfig>, ServiceError> {
        let mut list = self.inner.catalog.templates.clone();
        let mut imported: Vec<Template> = self
            .inner
            .templates
            .all()?
            .into_iter()
            .filter(|t| t.owner.as_ref().is_none_or(&own) && t.status() == "available")
            .collect();
        imported.sort_by_key(|t| (t.created_at, t.id));
        list.extend(imported.into_iter().map(as_config));
        Ok(list)
    }

    /// A template a VM in `project` may boot: the catalog's, or one saved there.
    /// Another tenant's image is as unknown as one that does not exist.
    pub(crate) fn find_template(
        &self,
        id: &Uuid,
        project: &Uuid,
    ) -> Result<Option<TemplateConfig>, ServiceError> {
        let found = self
            .templates_for_project(project)?
            .into_iter()
            .find(|t| t.id == *id);
        if found.is_none() {
            // An image of the project that cannot boot yet says why.
            if let Some(t) = self.inner.templates.get(&crate::model::uuid_key(id))? {
                if t.owner.is_some_and(|o| o.project_id == *project) {
                    return Err(match (t.saving, t.error) {
                        (Some(_), _) => invalid(format!("image {id} is still being saved")),
                        (None, Some(e)) => invalid(format!("image {id} could not be saved: {e}")),
                        (None, None) => invalid(format!("image {id} cannot boot")),
                    });
                }
            }
        }
        Ok(found)
    }

    /// The images saved in the projects the caller can see (all of them, or the one
    /// `header` names).
    pub fn list_saved_images(
        &self,
        who: &super::Principal,
        header: Option<&str>,
    ) -> Result<Vec<Template>, ServiceError> {
        let only = match header {
            Some(_) => Some(self.project_scope(who, header, "vm.view")?.id),
            None => None,
        };
        let mut list: Vec<Template> = self
            .inner
            .templates
            .all()?
            .into_iter()
            .filter(|t| {
                t.owner.is_some_and(|o| {
                    o.account_id == who.account_id
                        && who.can_see_project(&o.project_id)
                        && only.is_none_or(|p| p == o.project_id)
                })
            })
            .collect();
        list.sort_by_key(|t| (t.created_at, t.id));
        Ok(list)
    }

    /// Deletes a saved image of the caller's project. Refused while a VM's disk is
    /// built on it (the image is that disk's base).
    pub fn delete_saved_image(
        &self,
        who: &super::Principal,
        header: Option<&str>,
        id: &Uuid,
    ) -> Result<(), ServiceError> {
        let project = self.project_scope(who, header, "vm.manage")?;
        let not_found = ServiceError::NotFound { kind: "Image" };
        let t = self
            .inner
            .templates
            .get(&crate::model::uuid_key(id))?
            .ok_or(ServiceError::NotFound { kind: "Image" })?;
        match t.owner {
            Some(o) if o.account_id == who.account_id && o.project_id == project.id => {}
            _ => return Err(not_found),
        }
        if t.saving.is_some() {
            return Err(ServiceError::Conflict(
                "the image is being saved; delete it when its job ends".into(),
            ));
        }
        let users: Vec<String> = self
            .inner
            .vms
            .all()?
            .into_iter()
            .filter(|v| v.template_id == *id)
            .map(|v| v.name)
            .collect();
        if !users.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "the image is the base of VM disks ({}): reinstall or delete those VMs first",
                users.join(", ")
            )));
        }
        self.inner.templates.delete(&crate::model::uuid_key(id))?;
        let dir = self.inner.data_dir.join("templates");
        let _ = std::fs::remove_file(partial_image(&dir, id));
        if t.image.as_os_str().is_empty() {
            return Ok(());
        }
        match std::fs::remove_file(&t.image) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                tracing::warn!(image = %t.image.display(), error = %e, "deleted image's file stays");
                Ok(())
            }
        }
    }

    /// Converts `file` (raw, or a qcow2 with no backing or data file) into a qcow2 base image and lists it
    /// in the catalog. The minimum disk is the image's virtual size, rounded up.
    pub fn import_template(
        &self,
        file: &Path,
        t: ImportTemplate,
    ) -> Result<Template, ServiceError> {
        let name = check_name(&t.name, 64)?;
        if t.version.is_empty() || t.version.chars().count() > 64 {
            return Err(invalid("version must be 1 to 64 characters"));
        }
        let region = t
            .region
            .unwrap_or_else(|| self.default_region().to_string());
        if !self.inner.catalog.regions.iter().any(|r| r.code == region) {
            return Err(invalid(format!("unknown region {region:?}")));
        }
        if t.cpu < 1 || t.ram < 1 {
            return Err(invalid("cpu and ram must be at least 1"));
        }
        if !file.is_file() {
            return Err(invalid(format!("{} is not a file", file.display())));
        }
        let file = file
            .canonicalize()
            .map_err(|e| invalid(format!("{}: {e}", file.display())))?;
        // The one image whose format is probed: the operator's own file, checked to
        // name no other host file before it is read.
        let format = disk::inspect_foreign(&file).map_err(|e| invalid(e.to_string()))?;
        self.store_image(
            ImageSource::File(&file, format),
            Template {
                id: Uuid::new_v4(),
                name,
                version: t.version,
                description: t.description,
                is_windows: t.os_type == "windows",
                os_type: t.os_type,
                category: "os".into(),
                region,
                cpu: t.cpu,
                ram: t.ram,
                storage: 0,
                image: Default::default(),
                created_at: now(),
                owner: None,
                saving: None,
                error: None,
            },
        )
    }

    /// Converts `src` into the template's base image and records the template.
    fn store_image(
        &self,
        src: ImageSource<'_>,
        mut template: Template,
    ) -> Result<Template, ServiceError> {
        let dir = self.inner.data_dir.join("templates");
        let (image, storage) =
            write_image(&dir, &template.id, src, self.inner.qemu_access.as_ref())
                .map_err(|e| invalid(e.to_string()))?;
        template.storage = storage;
        template.image = image;
        self.inner.templates.create(&template)?;
        Ok(template)
    }

    /// Saves a VM's disk as a new template: the OS disk (`disk_id` 0) or its
    /// `disk_id`-th volume (by device name), as it is (`snapshot_id` -1, the VM
    /// stopped) or as a snapshot holds it (the VM may run: a snapshot does not
    /// change). Answers at once with the image `saving`; job `image.save` copies it.
    pub fn save_vm_image(
        &self,
        who: &super::Principal,
        header: Option<&str>,
        id: &Uuid,
        req: SaveImage,
    ) -> Result<Template, ServiceError> {
        let SaveImage {
            name,
            description,
            disk_id,
            snapshot_id,
        } = req;
        let vm = self.vm_in_scope(who, header, id, "vm.manage")?;
        // The copy is a job of the VM host.
        self.hypervisor()?;
        let name = check_name(&name, 128)?;
        let disk_id = usize::try_from(disk_id)
            .map_err(|_| invalid("disk_id must be 0 (the OS disk) or 1+ (a volume)"))?;
        let mut volumes: Vec<crate::model::Volume> = self
            .inner
            .volumes
            .by_index(crate::model::Volume::BY_VM, &crate::model::uuid_key(&vm.id))?
            .into_iter()
            .filter(|v| v.status == crate::model::VolumeStatus::Attached)
            .collect();
        volumes.sort_by_key(|v| v.device.clone().map(|d| (d.len(), d)));
        let volume_file = |v: u64| {
            self.inner
                .data_dir
                .join("volumes")
                .join(format!("{v}.qcow2"))
        };
        let os_disk = self
            .inner
            .vm_root
            .join(vm.id.to_string())
            .join("disk.qcow2");
        let no_disk = || {
            invalid(format!(
                "disk_id {disk_id} names no disk: 0 is the OS disk, 1 to {} the VM's volumes",
                volumes.len()
            ))
        };
        let (path, tag) = if snapshot_id == -1 {
            if vm.status != crate::model::VmStatus::Passive {
                return Err(invalid(format!(
                    "stop the VM first so that the image is consistent (it is {}), or save from a snapshot",
                    vm.status.as_str()
                )));
            }
            let path = match disk_id {
                0 => os_disk,
                n => volume_file(volumes.get(n - 1).ok_or_else(no_disk)?.id),
            };
            (path, None)
        } else {
            let snap = u64::try_from(snapshot_id)
                .ok()
                .and_then(|sid| self.get_snapshot(who, Some(&vm.project_id.to_string()), sid).ok())
                .filter(|s| {
                    s.vm_id == Some(vm.id)
                        || s.volume_id.is_some_and(|v| volumes.iter().any(|x| x.id == v))
                })
                .ok_or_else(|| {
                    invalid(format!(
                        "snapshot_id must be -1 or a snapshot of this VM or of a volume attached to it; {snapshot_id} is neither"
                    ))
                })?;
            if snap.pending.is_some() {
                return Err(ServiceError::Conflict(
                    "the snapshot is busy; retry when its change ends".into(),
                ));
            }
            let d = match snap.kind {
                crate::model::SnapshotKind::Vm => snap.disks.get(disk_id).ok_or_else(|| {
                    invalid(format!(
                        "disk_id {disk_id} names no disk of the snapshot (it holds {})",
                        snap.disks.len()
                    ))
                })?,
                crate::model::SnapshotKind::Volume => {
                    let at = volumes
                        .iter()
                        .position(|v| Some(v.id) == snap.volume_id)
                        .map(|i| i + 1);
                    if at != Some(disk_id) {
                        return Err(invalid(format!(
                            "snapshot {} is of volume disk_id {}, not of disk_id {disk_id}",
                            snap.id,
                            at.unwrap_or(0)
                        )));
                    }
                    snap.disks.first().ok_or_else(no_disk)?
                }
            };
            let path = match d.volume_id {
                None => os_disk,
                Some(v) => volume_file(v),
            };
            (path, Some(snap.tag()))
        };
        let held = self
            .inner
            .templates
            .all()?
            .iter()
            .filter(|t| t.owner.is_some_and(|o| o.account_id == vm.account_id))
            .count();
        self.check_quota(&vm.account_id, "saved_images", held as u64, 1)?;
        let base = self.find_template(&vm.template_id, &vm.project_id)?;
        let t = Template {
            id: Uuid::new_v4(),
            name,
            version: format!("from {}", vm.name),
            description: description.unwrap_or_default(),
            os_type: base
                .as_ref()
                .map(|b| b.os_type.clone())
                .unwrap_or_else(|| "linux".into()),
            is_windows: base.as_ref().is_some_and(|b| b.is_windows),
            category: "os".into(),
            region: vm.region.clone(),
            cpu: base.as_ref().map(|b| b.cpu).unwrap_or(1),
            ram: base.as_ref().map(|b| b.ram).unwrap_or(1),
            storage: 0,
            image: Default::default(),
            created_at: now(),
            owner: Some(ImageOwner {
                account_id: vm.account_id,
                project_id: vm.project_id,
            }),
            saving: Some(SaveSource {
                vm_id: vm.id,
                path,
                tag,
            }),
            error: None,
        };
        // The record first: a crash before the job is submitted leaves a record the
        // reconciler submits the job for.
        self.inner.templates.create(&t)?;
        if let Err(e) = self.submit_image_job(&t) {
            let _ = self.inner.templates.delete(&crate::model::uuid_key(&t.id));
            return Err(e);
        }
        Ok(t)
    }

    /// Submits job `image.save` for a record that is `saving`. On the VM's target:
    /// every change of the VM's disks (start, snapshot restore or delete, volume
    /// detach or resize, deletion) queues behind the copy, so the source holds still.
    pub(super) fn submit_image_job(&self, t: &Template) -> Result<(), ServiceError> {
        let (Some(src), Some(owner)) = (&t.saving, t.owner) else {
            return Ok(());
        };
        self.inner.jobs.submit(crate::jobs::NewJob {
            kind: "image.save".into(),
            target: format!("vm/{}", src.vm_id),
            account_id: Some(owner.account_id),
            project_id: Some(owner.project_id),
            params: serde_json::json!({ "template_id": t.id }),
        })?;
        Ok(())
    }
}
