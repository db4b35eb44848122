//! Wiring: open the store, make the services, settle interrupted jobs, start the
//! workers and the reconciler, then serve HTTP until a signal.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::api::{self, ratelimit::RateLimiter, AppState};
use crate::config::Config;
use crate::jobs::Reconciler;
use crate::service::{InitReport, ServiceError, Services};
use crate::store::{Store, StoreError};

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
}

/// Opens the store and the services over `cfg.data_dir`.
pub fn open(cfg: &Config) -> Result<Services, AppError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| AppError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let store = Store::open(&cfg.data_dir.join("db")).map_err(|e| match e {
        StoreError::Sled(sled::Error::Io(io)) if io.kind() == std::io::ErrorKind::WouldBlock => {
            AppError::Locked(cfg.data_dir.clone())
        }
        StoreError::Sled(sled::Error::Io(io)) if io.to_string().contains("lock") => {
            AppError::Locked(cfg.data_dir.clone())
        }
        e => AppError::Store(e),
    })?;
    Ok(Services::new(
        store,
        cfg.catalog.clone(),
        cfg.data_dir.clone(),
        cfg.job_workers,
        vec![],
    )?)
}

/// Runs the appliance. `on_first_start` receives the init report when the data
/// directory was empty, so the caller can print the admin key once.
pub async fn serve(cfg: Config, on_first_start: impl FnOnce(&InitReport)) -> Result<(), AppError> {
    let services = open(&cfg)?;
    if !services.is_initialized()? {
        let report = services.init("admin")?;
        on_first_start(&report);
    }
    let (requeued, failed) = services.jobs().recover().map_err(ServiceError::from)?;
    tracing::info!(requeued, failed, "interrupted jobs settled");
    let reconciler = Reconciler::new(vec![]);
    reconciler.run_once();
    reconciler.start(Duration::from_secs(cfg.reconcile_interval_secs));
    services.jobs().start();

    let listener = TcpListener::bind(cfg.listen).map_err(|source| AppError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(AppError::Http)?;
    let state = web::Data::new(AppState::new(
        services.clone(),
        RateLimiter::new(cfg.rate_limit.clone()),
    ));
    let max_body = cfg.max_body_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(api::observe))
            .configure(|c| api::configure(c, max_body))
    })
    .listen(listener)
    .map_err(AppError::Http)?;
    if cfg.http_workers > 0 {
        server = server.workers(cfg.http_workers);
    }
    // The line tests and scripts wait for; keep its shape.
    println!("skiff listening on http://{addr}");
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "skiff listening");
    let result = server.run().await.map_err(AppError::Http);
    if let Err(e) = services.store().flush() {
        tracing::error!(error = %e, "final flush");
    }
    result
}
