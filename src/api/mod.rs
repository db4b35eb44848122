//! The HTTP edge: the Raff contract under `/api/v1`, skiff's own routes under
//! `/api/skiff/v1`, health and metrics. Handlers parse, call one service function and
//! shape the answer; rules live in the service layer.

mod api_keys;
mod backups;
mod catalog;
pub mod error;
mod extract;
mod images;
mod ips;
mod jobs;
mod members;
pub mod metrics;
mod middleware;
mod op_perms;
mod permissions;
mod projects;
pub mod ratelimit;
mod roles;
mod security_groups;
mod snapshots;
mod ssh_keys;
mod system;
pub mod types;
mod vms;
mod volumes;
mod vpcs;

use actix_web::middleware::from_fn;
use actix_web::web;
use utoipa::OpenApi;

use error::method_not_allowed;
use metrics::Metrics;
use ratelimit::RateLimiter;

use crate::service::Services;

/// Everything a handler can reach.
pub struct AppState {
    pub services: Services,
    pub limiter: RateLimiter,
    pub metrics: Metrics,
    /// The served OpenAPI document, rendered once at start.
    pub openapi: String,
    /// Bearer token `/metrics` requires; `None`: loopback scrapers only.
    pub metrics_token: Option<String>,
}

impl AppState {
    pub fn new(services: Services, limiter: RateLimiter, metrics_token: Option<String>) -> Self {
        AppState {
            services,
            limiter,
            metrics: Metrics::default(),
            openapi: openapi_json(),
            metrics_token: metrics_token.filter(|t| !t.is_empty()),
        }
    }
}

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "ApiKeyAuth",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Marks every operation with the permission it needs (`x-skiff-permission`): the
/// role × operation test reads it from the served document, so an operation without
/// an entry is served as `"unknown"` and fails that test.
struct Permissions;

impl utoipa::Modify for Permissions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let id = op.operation_id.as_deref().unwrap_or_default();
                let perm = op_perms::OPERATION_PERMISSIONS
                    .iter()
                    .find(|(o, _)| *o == id)
                    .map_or("unknown", |(_, p)| p);
                op.extensions
                    .get_or_insert_with(Default::default)
                    .insert("x-skiff-permission".into(), perm.into());
            }
        }
    }
}

/// Declares the answers every operation with a JSON body can give: a body that is not
/// JSON (400) or too large (413).
struct BodyResponses;

impl utoipa::Modify for BodyResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |desc: &str| {
            ResponseBuilder::new()
                .description(desc)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Error")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.post, &mut item.put, &mut item.patch]
                .into_iter()
                .flatten()
            {
                if op.request_body.is_none() {
                    continue;
                }
                let r = &mut op.responses.responses;
                for (code, desc) in [
                    ("400", "The body is not JSON of the expected shape"),
                    ("413", "The body is larger than the server accepts"),
                ] {
                    r.entry(code.to_string())
                        .or_insert_with(|| error(desc).into());
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "skiff API",
        description = "The Raff API contract as served by skiff, a self-hosted cloud in one binary, \
                       plus skiff's own routes under /api/skiff/v1."
    ),
    paths(
        system::health,
        catalog::regions, catalog::templates, catalog::vm_pricing, catalog::volume_pricing,
        catalog::snapshot_pricing, catalog::backup_pricing, catalog::ip_pricing,
        projects::list, projects::create, projects::get, projects::update, projects::delete,
        ssh_keys::list, ssh_keys::create, ssh_keys::get, ssh_keys::update, ssh_keys::delete,
        members::list, members::add, members::get, members::update, members::remove,
        members::list_project, members::add_project, members::get_project,
        members::update_project, members::remove_project, members::invite_account,
        members::invite_project, members::cancel,
        permissions::list, roles::list, roles::create, roles::get, roles::update,
        roles::delete,
        api_keys::list, api_keys::create, api_keys::get, api_keys::update, api_keys::revoke,
        api_keys::regenerate,
        jobs::list, jobs::get, jobs::create_diag,
        vms::list, vms::create, vms::get, vms::delete, vms::start, vms::stop, vms::reboot,
        vms::reboot_hard, vms::rename, vms::networks, vms::console, vms::resize,
        vms::resize_disk, vms::reset_password, vms::reinstall, vms::factory_reset, vms::delete_bulk,
        vms::add_tag, vms::update_tag, vms::remove_tag, vms::notes, vms::put_note, vms::patch_note,
        vms::append_note, vms::save_image, images::list, images::delete,
        backups::list, backups::create, backups::get, backups::delete, backups::delete_chain,
        backups::restore, backups::reset_chain, backups::verify,
        backups::list_schedules, backups::create_schedule, backups::get_schedule,
        backups::update_schedule, backups::delete_schedule,
        security_groups::list, security_groups::create, security_groups::templates,
        security_groups::get, security_groups::update, security_groups::delete,
        security_groups::attach, security_groups::detach,
        volumes::list, volumes::create, volumes::get, volumes::delete, volumes::resize,
        volumes::attach, volumes::detach,
        snapshots::list, snapshots::create, snapshots::get, snapshots::delete,
        snapshots::restore, snapshots::rename,
        vpcs::list, vpcs::create, vpcs::cidr_suggestions, vpcs::get, vpcs::update, vpcs::delete,
        vpcs::attach_vm, vpcs::detach_vm,
        ips::list, ips::reserve, ips::get, ips::release, ips::change, ips::attach, ips::detach,
    ),
    modifiers(&SecurityAddon, &BodyResponses, &Permissions),
    security(("ApiKeyAuth" = [])),
)]
struct ApiDoc;

/// The OpenAPI document of this build.
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.to_json().unwrap_or_else(|_| "{}".into())
}

/// Registers every route. `max_body` bounds JSON bodies.
pub fn configure(cfg: &mut web::ServiceConfig, max_body: usize) {
    let res = |path: &str, allowed: &'static str| {
        web::resource(path.to_string()).default_service(method_not_allowed(allowed))
    };
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body)
            .content_type_required(false)
            .error_handler(error::json_error),
    )
    .app_data(web::QueryConfig::default().error_handler(error::query_error))
    .app_data(web::PathConfig::default().error_handler(error::path_error))
    .service(res("/health", "GET").route(web::get().to(system::health)))
    .service(res("/ready", "GET").route(web::get().to(system::ready)))
    .service(res("/metrics", "GET").route(web::get().to(system::metrics)))
    .service(res("/api/openapi.json", "GET").route(web::get().to(system::openapi)))
    .service(
        web::scope("/api/v1/public")
            .service(res("/regions", "GET").route(web::get().to(catalog::regions)))
            .service(res("/templates", "GET").route(web::get().to(catalog::templates)))
            .service(res("/pricing/vm", "GET").route(web::get().to(catalog::vm_pricing)))
            .service(res("/pricing/volume", "GET").route(web::get().to(catalog::volume_pricing)))
            .service(
                res("/pricing/snapshot", "GET").route(web::get().to(catalog::snapshot_pricing)),
            )
            .service(res("/pricing/backup", "GET").route(web::get().to(catalog::backup_pricing)))
            .service(res("/pricing/ip", "GET").route(web::get().to(catalog::ip_pricing))),
    )
    .service(
        web::scope("/api/v1")
            .wrap(from_fn(middleware::authenticate))
            .service(
                res("/projects", "GET, POST")
                    .route(web::get().to(projects::list))
                    .route(web::post().to(projects::create)),
            )
            .service(
                res("/projects/{id}", "GET, PUT, DELETE")
                    .route(web::get().to(projects::get))
                    .route(web::put().to(projects::update))
                    .route(web::delete().to(projects::delete)),
            )
            .service(
                res("/ssh-keys", "GET, POST")
                    .route(web::get().to(ssh_keys::list))
                    .route(web::post().to(ssh_keys::create)),
            )
            .service(
                res("/ssh-keys/{id}", "GET, PUT, DELETE")
                    .route(web::get().to(ssh_keys::get))
                    .route(web::put().to(ssh_keys::update))
                    .route(web::delete().to(ssh_keys::delete)),
            )
            .service(
                res("/members", "GET, POST")
                    .route(web::get().to(members::list))
                    .route(web::post().to(members::add)),
            )
            .service(
                res("/members/{id}", "GET, PATCH, DELETE")
                    .route(web::get().to(members::get))
                    .route(web::patch().to(members::update))
                    .route(web::delete().to(members::remove)),
            )
            .service(
                res("/projects/{id}/members", "GET, POST")
                    .route(web::get().to(members::list_project))
                    .route(web::post().to(members::add_project)),
            )
            .service(
                res("/projects/{id}/members/{member_id}", "GET, PATCH, DELETE")
                    .route(web::get().to(members::get_project))
                    .route(web::patch().to(members::update_project))
                    .route(web::delete().to(members::remove_project)),
            )
            .service(
                res("/projects/{id}/invitations", "POST")
                    .route(web::post().to(members::invite_project)),
            )
            .service(res("/invitations", "POST").route(web::post().to(members::invite_account)))
            .service(res("/invitations/{id}", "DELETE").route(web::delete().to(members::cancel)))
            .service(res("/permissions", "GET").route(web::get().to(permissions::list)))
            .service(
                res("/roles", "GET, POST")
                    .route(web::get().to(roles::list))
                    .route(web::post().to(roles::create)),
            )
            .service(
                res("/roles/{id}", "GET, PATCH, DELETE")
                    .route(web::get().to(roles::get))
                    .route(web::patch().to(roles::update))
                    .route(web::delete().to(roles::delete)),
            )
            .service(
                res("/api-keys", "GET, POST")
                    .route(web::get().to(api_keys::list))
                    .route(web::post().to(api_keys::create)),
            )
            .service(
                res("/api-keys/{id}", "GET, PATCH, DELETE")
                    .route(web::get().to(api_keys::get))
                    .route(web::patch().to(api_keys::update))
                    .route(web::delete().to(api_keys::revoke)),
            )
            .service(
                res("/vms", "GET, POST")
                    .route(web::get().to(vms::list))
                    .route(web::post().to(vms::create)),
            )
            .service(res("/vms/bulk", "DELETE").route(web::delete().to(vms::delete_bulk)))
            .service(
                res("/vms/{id}", "GET, DELETE")
                    .route(web::get().to(vms::get))
                    .route(web::delete().to(vms::delete)),
            )
            .service(res("/vms/{id}/start", "POST").route(web::post().to(vms::start)))
            .service(res("/vms/{id}/stop", "POST").route(web::post().to(vms::stop)))
            .service(res("/vms/{id}/reboot", "POST").route(web::post().to(vms::reboot)))
            .service(res("/vms/{id}/reboot-hard", "POST").route(web::post().to(vms::reboot_hard)))
            .service(res("/vms/{id}/rename", "PATCH").route(web::patch().to(vms::rename)))
            .service(res("/vms/{id}/networks", "GET").route(web::get().to(vms::networks)))
            .service(res("/vms/{id}/resize", "POST").route(web::post().to(vms::resize)))
            .service(res("/vms/{id}/disk/resize", "POST").route(web::post().to(vms::resize_disk)))
            .service(
                res("/vms/{id}/reset-password", "POST").route(web::post().to(vms::reset_password)),
            )
            .service(res("/vms/{id}/tags", "POST").route(web::post().to(vms::add_tag)))
            .service(
                res("/vms/{id}/tags/{tag}", "PATCH, DELETE")
                    .route(web::patch().to(vms::update_tag))
                    .route(web::delete().to(vms::remove_tag)),
            )
            .service(res("/vms/{id}/notes", "GET").route(web::get().to(vms::notes)))
            .service(
                res("/vms/{id}/notes/{type}", "PUT, PATCH")
                    .route(web::put().to(vms::put_note))
                    .route(web::patch().to(vms::patch_note)),
            )
            .service(
                res("/vms/{id}/notes/{type}/append", "POST")
                    .route(web::post().to(vms::append_note)),
            )
            .service(res("/vms/{id}/save-image", "POST").route(web::post().to(vms::save_image)))
            .service(res("/vms/{id}/reinstall", "POST").route(web::post().to(vms::reinstall)))
            .service(
                res("/vms/{id}/factory-reset", "POST").route(web::post().to(vms::factory_reset)),
            )
            .service(
                res("/api-keys/{id}/regenerate", "POST")
                    .route(web::post().to(api_keys::regenerate)),
            )
            .service(
                res("/backups", "GET, POST")
                    .route(web::get().to(backups::list))
                    .route(web::post().to(backups::create)),
            )
            .service(
                res("/backups/{id}", "GET, DELETE")
                    .route(web::get().to(backups::get))
                    .route(web::delete().to(backups::delete)),
            )
            .service(
                res("/backups/{id}/chain", "DELETE").route(web::delete().to(backups::delete_chain)),
            )
            .service(res("/backups/{id}/restore", "POST").route(web::post().to(backups::restore)))
            .service(
                res("/vms/{id}/backups/reset-chain", "POST")
                    .route(web::post().to(backups::reset_chain)),
            )
            .service(
                res("/backup-schedules", "GET, POST")
                    .route(web::get().to(backups::list_schedules))
                    .route(web::post().to(backups::create_schedule)),
            )
            .service(
                res("/backup-schedules/{id}", "GET, PATCH, DELETE")
                    .route(web::get().to(backups::get_schedule))
                    .route(web::patch().to(backups::update_schedule))
                    .route(web::delete().to(backups::delete_schedule)),
            )
            .service(
                res("/volumes", "GET, POST")
                    .route(web::get().to(volumes::list))
                    .route(web::post().to(volumes::create)),
            )
            .service(
                res("/volumes/{id}", "GET, PATCH, DELETE")
                    .route(web::get().to(volumes::get))
                    .route(web::patch().to(volumes::resize))
                    .route(web::delete().to(volumes::delete)),
            )
            .service(res("/ips", "GET").route(web::get().to(ips::list)))
            .service(res("/ips/reserve", "POST").route(web::post().to(ips::reserve)))
            .service(res("/ips/{id}", "GET").route(web::get().to(ips::get)))
            .service(res("/ips/{id}/reserve", "DELETE").route(web::delete().to(ips::release)))
            .service(res("/ips/{id}/change", "POST").route(web::post().to(ips::change)))
            .service(res("/vms/{id}/ip", "POST").route(web::post().to(ips::attach)))
            .service(res("/vms/{id}/ip/{nic_id}", "DELETE").route(web::delete().to(ips::detach)))
            .service(res("/vms/{id}/vpc", "POST").route(web::post().to(vpcs::attach_vm)))
            .service(
                res("/vms/{id}/vpc/{nic_id}", "DELETE").route(web::delete().to(vpcs::detach_vm)),
            )
            .service(
                res("/vpcs", "GET, POST")
                    .route(web::get().to(vpcs::list))
                    .route(web::post().to(vpcs::create)),
            )
            .service(
                res("/vpcs/cidr-suggestions", "GET").route(web::get().to(vpcs::cidr_suggestions)),
            )
            .service(
                res("/vpcs/{id}", "GET, PUT, DELETE")
                    .route(web::get().to(vpcs::get))
                    .route(web::put().to(vpcs::update))
                    .route(web::delete().to(vpcs::delete)),
            )
            .service(res("/volumes/{id}/attach", "POST").route(web::post().to(volumes::attach)))
            .service(res("/volumes/{id}/detach", "POST").route(web::post().to(volumes::detach)))
            .service(
                res("/snapshots", "GET, POST")
                    .route(web::get().to(snapshots::list))
                    .route(web::post().to(snapshots::create)),
            )
            .service(
                res("/snapshots/{id}", "GET, DELETE")
                    .route(web::get().to(snapshots::get))
                    .route(web::delete().to(snapshots::delete)),
            )
            .service(
                res("/snapshots/{id}/restore", "POST").route(web::post().to(snapshots::restore)),
            )
            .service(
                res("/snapshots/{id}/rename", "PATCH").route(web::patch().to(snapshots::rename)),
            )
            .service(
                res("/security-groups", "GET, POST")
                    .route(web::get().to(security_groups::list))
                    .route(web::post().to(security_groups::create)),
            )
            .service(
                res("/security-groups/templates", "GET")
                    .route(web::get().to(security_groups::templates)),
            )
            .service(
                res("/security-groups/{id}", "GET, PUT, DELETE")
                    .route(web::get().to(security_groups::get))
                    .route(web::put().to(security_groups::update))
                    .route(web::delete().to(security_groups::delete)),
            )
            .service(
                res("/vms/{id}/security-groups", "POST")
                    .route(web::post().to(security_groups::attach)),
            )
            .service(
                res("/vms/{id}/security-groups/{sg_id}/{nic_id}", "DELETE")
                    .route(web::delete().to(security_groups::detach)),
            ),
    )
    .service(
        web::scope("/api/skiff/v1")
            .wrap(from_fn(middleware::authenticate))
            .service(res("/jobs", "GET").route(web::get().to(jobs::list)))
            .service(res("/jobs/diag", "POST").route(web::post().to(jobs::create_diag)))
            .service(res("/jobs/{id}", "GET").route(web::get().to(jobs::get)))
            .service(res("/vms/{id}/console", "GET").route(web::get().to(vms::console)))
            .service(res("/backups/verify", "POST").route(web::post().to(backups::verify)))
            .service(res("/images", "GET").route(web::get().to(images::list)))
            .service(res("/images/{id}", "DELETE").route(web::delete().to(images::delete))),
    )
    .default_service(web::to(error::not_found));
}

/// Wraps the app-wide middleware; use on the `App` that [`configure`] filled.
pub use middleware::{durable, observe};
