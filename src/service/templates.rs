//! Templates: the catalog's images. Configured ones come from the configuration file;
//! imported ones are records with their image under `<data_dir>/templates/`.

use std::path::Path;

use uuid::Uuid;

use super::{check_name, invalid, ServiceError, Services};
use crate::compute::disk;
use crate::config::TemplateConfig;
use crate::model::{now, Template};

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
    /// Every template: configured ones first, then imported ones by age.
    pub fn all_templates(&self) -> Result<Vec<TemplateConfig>, ServiceError> {
        let mut list = self.inner.catalog.templates.clone();
        let mut imported = self.inner.templates.all()?;
        imported.sort_by_key(|t| (t.created_at, t.id));
        list.extend(imported.into_iter().map(as_config));
        Ok(list)
    }

    pub(crate) fn find_template(&self, id: &Uuid) -> Result<Option<TemplateConfig>, ServiceError> {
        Ok(self.all_templates()?.into_iter().find(|t| t.id == *id))
    }

    /// Converts `file` (any format qemu-img reads) into a qcow2 base image and lists it
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
        let host = |e: crate::compute::ComputeError| invalid(e.to_string());
        let id = Uuid::new_v4();
        let dir = self.inner.data_dir.join("templates");
        std::fs::create_dir_all(&dir).map_err(|e| invalid(format!("{}: {e}", dir.display())))?;
        let image = dir.join(format!("{id}.qcow2"));
        let tmp = dir.join(format!("{id}.qcow2.tmp"));
        disk::convert_to_qcow2(file, &tmp).map_err(host)?;
        let size = disk::virtual_size(&tmp).map_err(host)?;
        std::fs::rename(&tmp, &image).map_err(|e| invalid(e.to_string()))?;
        // qemu (another user) reads the base image through every VM's overlay.
        use std::os::unix::fs::PermissionsExt;
        for (p, mode) in [(&dir, 0o755), (&image, 0o644)] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                .map_err(|e| invalid(e.to_string()))?;
        }
        let template = Template {
            id,
            name,
            version: t.version,
            description: t.description,
            is_windows: t.os_type == "windows",
            os_type: t.os_type,
            category: "os".into(),
            region,
            cpu: t.cpu,
            ram: t.ram,
            storage: size.div_ceil(1 << 30).max(1) as i64,
            image,
            created_at: now(),
        };
        self.inner.templates.create(&template)?;
        Ok(template)
    }
}
