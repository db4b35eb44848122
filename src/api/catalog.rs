//! `/api/v1/public/*`: the catalog, open to everyone.

use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::types::*;
use super::AppState;
use crate::config::{IpPriceConfig, StoragePriceConfig};
use crate::service::catalog::StorageKind;

#[utoipa::path(
    get, path = "/api/v1/public/regions", tag = "Catalog", operation_id = "listRegions", security(()),
    responses((status = 200, description = "List of regions", body = RegionsResponse))
)]
pub async fn regions(state: web::Data<AppState>) -> HttpResponse {
    let regions = state
        .services
        .regions()
        .into_iter()
        .map(|r| Region {
            id: r.id,
            code: r.code,
            name: r.name,
            country_code: r.country_code,
            flag: r.flag,
            display_order: r.display_order,
            is_default: r.is_default,
        })
        .collect();
    HttpResponse::Ok().json(RegionsResponse {
        success: true,
        regions,
    })
}

#[utoipa::path(
    get, path = "/api/v1/public/templates", tag = "Catalog", operation_id = "listTemplates", security(()),
    params(TemplateQuery),
    responses(
        (status = 200, description = "List of templates", body = TemplatesResponse),
        (status = 400, description = "Invalid filter", body = Error),
    )
)]
pub async fn templates(
    state: web::Data<AppState>,
    q: web::Query<TemplateQuery>,
) -> Result<HttpResponse, ApiError> {
    let list: Vec<Template> = state
        .services
        .templates(
            q.category.as_deref(),
            q.vm_type.as_deref(),
            q.region.as_deref(),
        )?
        .into_iter()
        .map(|t| Template {
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
        })
        .collect();
    Ok(HttpResponse::Ok().json(TemplatesResponse {
        success: true,
        total: list.len(),
        data: list,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/public/pricing/vm", tag = "Catalog", operation_id = "listVMPricing", security(()),
    params(PlanQuery),
    responses(
        (status = 200, description = "List of VM pricing plans", body = VmPlansResponse),
        (status = 400, description = "Invalid filter", body = Error),
    )
)]
pub async fn vm_pricing(
    state: web::Data<AppState>,
    q: web::Query<PlanQuery>,
) -> Result<HttpResponse, ApiError> {
    let plans = state
        .services
        .vm_plans(q.vm_type.as_deref(), q.region.as_deref())?
        .into_iter()
        .map(|p| VMPricingPlan {
            id: p.id,
            vcpu: p.vcpu,
            memory_gib: p.memory_gib,
            ssd_gib: p.ssd_gib,
            transfer_gib: p.transfer_gib,
            price_per_hour: p.price_per_hour,
            monthly_price: p.monthly_price,
            yearly_price: p.yearly_price,
            twenty_four_month_price: p.twenty_four_month_price,
            vm_type: p.vm_type,
            region: p.region,
        })
        .collect();
    Ok(HttpResponse::Ok().json(VmPlansResponse {
        success: true,
        plans,
    }))
}

fn storage(p: StoragePriceConfig, region: String) -> StoragePricingResponse {
    StoragePricingResponse {
        success: true,
        pricing: StoragePricing {
            id: p.id,
            price_per_gb_hour: p.price_per_gb_hour,
            price_per_gb_month: p.price_per_gb_month,
            yearly_price_per_gb: p.yearly_price_per_gb,
            twenty_four_month_price_per_gb: p.twenty_four_month_price_per_gb,
            region,
        },
    }
}

async fn storage_pricing(
    state: web::Data<AppState>,
    q: web::Query<RegionQuery>,
    kind: StorageKind,
) -> Result<HttpResponse, ApiError> {
    let (p, region) = state.services.storage_pricing(kind, q.region.as_deref())?;
    Ok(HttpResponse::Ok().json(storage(p, region)))
}

#[utoipa::path(
    get, path = "/api/v1/public/pricing/volume", tag = "Catalog", operation_id = "listVolumePricing", security(()),
    params(RegionQuery),
    responses(
        (status = 200, description = "Volume pricing", body = StoragePricingResponse),
        (status = 400, description = "Malformed query", body = Error),
        (status = 404, description = "Region not served", body = Error),
    )
)]
pub async fn volume_pricing(
    state: web::Data<AppState>,
    q: web::Query<RegionQuery>,
) -> Result<HttpResponse, ApiError> {
    storage_pricing(state, q, StorageKind::Volume).await
}

#[utoipa::path(
    get, path = "/api/v1/public/pricing/snapshot", tag = "Catalog", operation_id = "listSnapshotPricing", security(()),
    params(RegionQuery),
    responses(
        (status = 200, description = "Snapshot pricing", body = StoragePricingResponse),
        (status = 400, description = "Malformed query", body = Error),
        (status = 404, description = "Region not served", body = Error),
    )
)]
pub async fn snapshot_pricing(
    state: web::Data<AppState>,
    q: web::Query<RegionQuery>,
) -> Result<HttpResponse, ApiError> {
    storage_pricing(state, q, StorageKind::Snapshot).await
}

#[utoipa::path(
    get, path = "/api/v1/public/pricing/backup", tag = "Catalog", operation_id = "listBackupPricing", security(()),
    params(RegionQuery),
    responses(
        (status = 200, description = "Backup pricing", body = StoragePricingResponse),
        (status = 400, description = "Malformed query", body = Error),
        (status = 404, description = "Region not served", body = Error),
    )
)]
pub async fn backup_pricing(
    state: web::Data<AppState>,
    q: web::Query<RegionQuery>,
) -> Result<HttpResponse, ApiError> {
    storage_pricing(state, q, StorageKind::Backup).await
}

fn ip_tier(p: IpPriceConfig) -> IPPricingTier {
    IPPricingTier {
        price_per_hour: p.price_per_hour,
        monthly_price: p.monthly_price,
        yearly_price: p.yearly_price,
        twenty_four_month_price: p.twenty_four_month_price,
    }
}

#[utoipa::path(
    get, path = "/api/v1/public/pricing/ip", tag = "Catalog", operation_id = "listIPPricing", security(()),
    responses((status = 200, description = "IP pricing", body = IpPricingResponse))
)]
pub async fn ip_pricing(state: web::Data<AppState>) -> HttpResponse {
    let (v4, v6) = state.services.ip_pricing();
    HttpResponse::Ok().json(IpPricingResponse {
        success: true,
        pricing: IPPricing {
            ipv4: ip_tier(v4),
            ipv6: ip_tier(v6),
        },
    })
}
