//! Wiring: open the store, make the services, settle interrupted jobs, start the
//! workers and the reconciler, then serve HTTP until a signal.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::api::{self, ratelimit::RateLimiter, AppState};
use crate::compute::{Accel, Hypervisor, Libvirt};
use crate::config::Config;
use crate::jobs::Reconciler;
use crate::network::{bridge, Cidr};
use crate::service::{
    BackupScheduler, FirewallReconciler, ImageReconciler, InitReport, ServiceError, Services,
    SnapshotReconciler, VmReconciler, VolumeReconciler, VpcReconciler,
};
use crate::store::{Store, StoreError};
use crate::web as dashboard;

/// Errors of starting the appliance.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Another skiff process holds the datastore.
    #[error("the datastore in {0} is in use by another skiff process; stop it first")]
    Locked(std::path::PathBuf),
    /// The datastore failed to open.
    #[error(transparent)]
    Store(StoreError),
    /// A service call failed during start.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// The rustls server configuration from `[tls]`'s PEM files.
pub fn tls_server_config(t: &crate::config::TlsConfig) -> Result<rustls::ServerConfig, AppError> {
    let open = |p: &std::path::Path| {
        std::fs::File::open(p)
            .map(std::io::BufReader::new)
            .map_err(|e| AppError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    let certs = rustls_pemfile::certs(&mut open(&t.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::Tls(format!("{}: {e}", t.cert.display())))?;
    if certs.is_empty() {
        return Err(AppError::Tls(format!(
            "{} holds no PEM certificate",
            t.cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut open(&t.key)?)
        .map_err(|e| AppError::Tls(format!("{}: {e}", t.key.display())))?
        .ok_or_else(|| AppError::Tls(format!("{} holds no PEM private key", t.key.display())))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| AppError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| AppError::Tls(format!("certificate and key do not fit: {e}")))
}

/// Opens the store and the services over `cfg.data_dir`, without compute: for the
/// offline commands (`init`, `admin`).
pub fn open(cfg: &Config) -> Result<Services, AppError> {
    open_with(cfg, Err("offline command".into()))
}

fn open_with(
    cfg: &Config,
    hypervisor: Result<Arc<dyn Hypervisor>, String>,
) -> Result<Services, AppError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| AppError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    // Private to skiff. Compute, when it starts, lets QEMU's group enter it (0710);
    // an offline command run beside `serve` leaves that as it is.
    {
        use std::os::unix::fs::PermissionsExt;
        let dir_err = |source| AppError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        };
        let mode = std::fs::metadata(&cfg.data_dir)
            .map_err(dir_err)?
            .permissions()
            .mode();
        if mode & 0o067 != 0 {
            std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(dir_err)?;
        }
    }
    let store = Store::open(&cfg.data_dir.join("db")).map_err(|e| match e {
        StoreError::Sled(sled::Error::Io(io)) if io.kind() == std::io::ErrorKind::WouldBlock => {
            AppError::Locked(cfg.data_dir.clone())
        }
        StoreError::Sled(sled::Error::Io(io)) if io.to_string().contains("lock") => {
            AppError::Locked(cfg.data_dir.clone())
        }
        e => AppError::Store(e),
    })?;
    Ok(Services::new(store, cfg, hypervisor)?)
}

/// Connects to libvirt and prepares the public bridge, or says why VMs cannot run.
fn start_compute(cfg: &Config) -> Result<Arc<dyn Hypervisor>, String> {
    if !cfg.compute.enabled {
        return Err("compute is disabled in the configuration".into());
    }
    let accel = match cfg.compute.accel.as_str() {
        "kvm" => Accel::Kvm,
        "tcg" => Accel::Tcg,
        _ => Accel::detect(),
    };
    let net = &cfg.network.public;
    let cidr = Cidr::parse(&net.cidr).map_err(|e| e.to_string())?;
    let gateway = if net.gateway.is_empty() {
        cidr.first_host().to_string()
    } else {
        net.gateway.clone()
    };
    bridge::ensure(&net.bridge, &format!("{gateway}/{}", cidr.prefix))
        .map_err(|e| e.to_string())?;
    if let Some(p) = crate::network::Prefix64::parse(&net.ipv6_prefix) {
        bridge::ensure_v6(&net.bridge, &format!("{}/64", p.host(1))).map_err(|e| e.to_string())?;
    }
    let hv = Libvirt::connect(&cfg.compute.libvirt_uri, accel).map_err(|e| e.to_string())?;
    tracing::info!(accel = accel.as_str(), uri = %cfg.compute.libvirt_uri, bridge = %net.bridge, "compute ready");
    Ok(Arc::new(hv))
}

/// Runs the appliance. `on_first_start` receives the init report when the data
/// directory was empty, so the caller can print the admin key once.
pub async fn serve(cfg: Config, on_first_start: impl FnOnce(&InitReport)) -> Result<(), AppError> {
    // The first libvirt connection can take seconds while it probes QEMU.
    let compute = start_compute(&cfg);
    match &compute {
        Err(why) if cfg.compute.enabled => {
            tracing::warn!(reason = %why, "virtual machines are unavailable")
        }
        Err(why) => tracing::info!(reason = %why, "virtual machines are off"),
        Ok(_) => {}
    }
    let services = open_with(&cfg, compute)?;
    if !services.is_initialized()? {
        let report = services.init("admin")?;
        on_first_start(&report);
    }
    let (requeued, failed) = services.jobs().recover().map_err(ServiceError::from)?;
    tracing::info!(requeued, failed, "interrupted jobs settled");
    let reconciler = Reconciler::new(vec![
        Arc::new(VmReconciler(services.clone())),
        Arc::new(VolumeReconciler(services.clone())),
        Arc::new(VpcReconciler::new(services.clone())),
        Arc::new(SnapshotReconciler::new(services.clone())),
        Arc::new(ImageReconciler(services.clone())),
        Arc::new(FirewallReconciler(services.clone())),
    ]);
    reconciler.run_once();
    reconciler.start(Duration::from_secs(cfg.reconcile_interval_secs));
    Reconciler::new(vec![Arc::new(BackupScheduler(services.clone()))]).start(Duration::from_secs(
        cfg.backup.schedule_interval_secs.max(1),
    ));
    services.jobs().start();

    let listener = TcpListener::bind(cfg.listen).map_err(|source| AppError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(AppError::Http)?;
    let tls = match cfg.tls.addr() {
        Some(tls_addr) => {
            let config = tls_server_config(&cfg.tls)?;
            let l = TcpListener::bind(tls_addr).map_err(|source| AppError::Listen {
                addr: tls_addr,
                source,
            })?;
            Some((l, config))
        }
        None => None,
    };
    let state = web::Data::new(AppState::new(
        services.clone(),
        RateLimiter::new(cfg.rate_limit.clone()),
        Some(cfg.metrics_token.clone()),
    ));
    let ui = web::Data::new(dashboard::WebState::new(
        services.clone(),
        cfg.trusted_proxies.clone(),
    ));
    let max_body = cfg.max_body_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(ui.clone())
            .wrap(from_fn(api::durable))
            .wrap(from_fn(api::observe))
            .configure(dashboard::configure)
            .configure(|c| api::configure(c, max_body))
    })
    .listen(listener)
    .map_err(AppError::Http)?;
    let mut https = None;
    if let Some((l, config)) = tls {
        https = Some(l.local_addr().map_err(AppError::Http)?);
        server = server
            .listen_rustls_0_23(l, config)
            .map_err(AppError::Http)?;
    }
    if cfg.http_workers > 0 {
        server = server.workers(cfg.http_workers);
    }
    // The lines tests and scripts wait for; keep their shape (HTTP first).
    println!("skiff listening on http://{addr}");
    if let Some(a) = https {
        println!("skiff listening on https://{a}");
        tracing::info!(addr = %a, "HTTPS listening");
    }
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "skiff listening");
    let result = server.run().await.map_err(AppError::Http);
    if let Err(e) = services.store().flush() {
        tracing::error!(error = %e, "final flush");
    }
    result
}
