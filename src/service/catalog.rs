//! The public catalog: regions, templates and prices, all operator configuration.

use super::{invalid, ServiceError, Services};
use crate::config::{
    IpPriceConfig, RegionConfig, StoragePriceConfig, TemplateConfig, VmPlanConfig,
};

/// Which storage price list.
#[derive(Clone, Copy)]
pub enum StorageKind {
    Volume,
    Snapshot,
    Backup,
}

fn one_of(field: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), ServiceError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(invalid(format!(
            "{field} must be one of {}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

impl Services {
    pub fn regions(&self) -> Vec<RegionConfig> {
        let mut r = self.inner.catalog.regions.clone();
        r.sort_by_key(|r| (r.display_order.unwrap_or(i64::MAX), r.id));
        r
    }

    fn known_region(&self, region: Option<&str>) -> Result<(), ServiceError> {
        let codes: Vec<&str> = self
            .inner
            .catalog
            .regions
            .iter()
            .map(|r| r.code.as_str())
            .collect();
        one_of("region", region, &codes)
    }

    pub fn templates(
        &self,
        category: Option<&str>,
        vm_type: Option<&str>,
        region: Option<&str>,
    ) -> Result<Vec<TemplateConfig>, ServiceError> {
        one_of("category", category, &["os", "marketplace"])?;
        one_of("vm_type", vm_type, &["standard", "premium"])?;
        self.known_region(region)?;
        Ok(self
            .all_templates()?
            .into_iter()
            .filter(|t| category.is_none_or(|c| t.category == c))
            .filter(|t| region.is_none_or(|r| t.region == r))
            // Windows templates are for premium VMs only.
            .filter(|t| !(t.is_windows && vm_type == Some("standard")))
            .collect())
    }

    pub fn vm_plans(
        &self,
        vm_type: Option<&str>,
        region: Option<&str>,
    ) -> Result<Vec<VmPlanConfig>, ServiceError> {
        one_of("type", vm_type, &["standard", "premium"])?;
        self.known_region(region)?;
        Ok(self
            .inner
            .catalog
            .vm_plans
            .iter()
            .filter(|p| vm_type.is_none_or(|t| p.vm_type == t))
            .filter(|p| region.is_none_or(|r| p.region == r))
            .cloned()
            .collect())
    }

    /// Prices of one storage kind in `region` (the default region when absent);
    /// `NotFound` for a region skiff does not serve.
    pub fn storage_pricing(
        &self,
        kind: StorageKind,
        region: Option<&str>,
    ) -> Result<(StoragePriceConfig, String), ServiceError> {
        let region = region.unwrap_or(self.default_region());
        if !self.inner.catalog.regions.iter().any(|r| r.code == region) {
            return Err(ServiceError::NotFound {
                kind: "pricing for this region",
            });
        }
        let c = &self.inner.catalog;
        let p = match kind {
            StorageKind::Volume => &c.volume_pricing,
            StorageKind::Snapshot => &c.snapshot_pricing,
            StorageKind::Backup => &c.backup_pricing,
        };
        Ok((p.clone(), region.to_string()))
    }

    pub fn ip_pricing(&self) -> (IpPriceConfig, IpPriceConfig) {
        (
            self.inner.catalog.ipv4_pricing.clone(),
            self.inner.catalog.ipv6_pricing.clone(),
        )
    }
}
