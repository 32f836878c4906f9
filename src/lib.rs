//! featgrid: an online feature store, wire-compatible with Feast's feature server, over
//! actor-sharded memory.
//!
//! Data flows one way: HTTP ([`api`]) -> [`grid::coordinator`] (split by shard) -> shard actor
//! ([`grid::shard`]) -> [`grid::partition`]. Writes are logged by [`persist::wal`] before
//! they reach the coordinator; [`persist::snapshotter`] writes snapshots from frozen copies of
//! the partitions; [`start`] restores both. [`build_app`] is the one place the routes are
//! assembled; the server and the tests use it alike.

pub mod api;
pub mod config;
pub mod error;
pub mod grid;
pub mod persist;
pub mod registry;
pub mod value;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpServer};

use api::{admin, feast, AppState, Limits};
use config::Settings;
use grid::coordinator::{Coordinator, GridOptions, ShardThreads};
use grid::partition::RowLayout;
use persist::restore::{self, RestoreError};
use persist::snapshotter::{Durability, Snapshotter, SnapshotterOptions};
use persist::ViewMeta;
use registry::Registry;

/// The actix-web application: every route, the JSON 404/405 answers.
pub fn build_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let resource =
        |path: &str| web::resource(path).default_service(web::to(api::method_not_allowed));
    App::new()
        .app_data(state)
        .service(resource("/push").route(web::post().to(feast::push)))
        .service(
            resource("/write-to-online-store").route(web::post().to(feast::write_to_online_store)),
        )
        .service(resource("/get-online-features").route(web::post().to(feast::get_online_features)))
        .service(resource("/health").route(web::get().to(admin::health)))
        .service(resource("/registry").route(web::get().to(admin::registry)))
        .service(resource("/stats").route(web::get().to(admin::stats)))
        .service(
            resource("/admin/snapshot")
                .route(web::get().to(admin::last_snapshot))
                .route(web::post().to(admin::take_snapshot)),
        )
        .service(resource("/admin/digest").route(web::get().to(admin::digest)))
        .default_service(web::to(api::not_found))
}

/// A started server: the bound address, the server future, the shard threads, and the
/// durability side. Shutdown order: the server future ends (SIGTERM or SIGINT: stop
/// accepting, drain) -> [`Durability::shutdown`] (final snapshot, log closed) -> shard threads.
pub struct Running {
    pub addr: SocketAddr,
    pub server: Server,
    pub shard_threads: ShardThreads,
    pub durability: Durability,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Restores the data directory, starts the shards, the snapshot scheduler and binds the HTTP
/// server. Must run inside an actix system. Blocks while restoring.
pub fn start(settings: &Settings, registry: Registry) -> Result<Running, StartError> {
    let registry = Arc::new(registry);
    let options = GridOptions {
        shards: settings.shards,
        shard_threads: settings.shard_threads,
        mailbox_capacity: settings.mailbox_capacity,
        shard_timeout: settings.shard_timeout(),
    };
    let layouts = RowLayout::for_registry(&registry);
    let views = ViewMeta::all(&registry);
    let opened = restore::open(&restore::OpenOptions {
        data_dir: &settings.data_dir,
        views: views.clone(),
        layouts: layouts.clone(),
        shards: settings.shards,
        fsync: settings.fsync_policy().map_err(std::io::Error::other)?,
        wal_segment_bytes: settings.wal_segment_bytes,
        recover: settings.recover,
    })?;
    let r = &opened.report;
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        snapshot_seq = r.snapshot_seq,
        snapshot_rows = r.snapshot_rows,
        wal_records = r.wal_records,
        wal_rows = r.wal_rows,
        skipped = r.skipped.len(),
        snapshot_ms = r.snapshot_ms,
        wal_ms = r.wal_ms,
        elapsed_ms = r.elapsed_ms,
        "restored"
    );
    let (grid, shard_threads) = Coordinator::start_with(&options, layouts, opened.partitions);
    let snapshotter = Snapshotter::new(SnapshotterOptions {
        dir: opened.dir,
        grid: grid.clone(),
        wal: opened.wal.clone(),
        views,
        keep: settings.snapshot_keep,
        next_seq: opened.next_seq,
        sets: opened.sets,
        lock: opened.lock,
    });
    if opened.needs_snapshot {
        // Damaged files were skipped: a fresh set makes them unnecessary.
        let s = snapshotter.clone();
        actix_rt::spawn(async move {
            if let Err(e) = s.take().await {
                tracing::error!(error = %e, "snapshot after --recover failed");
            }
        });
    }
    let durability = Durability {
        scheduler: snapshotter.schedule(settings.snapshot_interval()),
        snapshotter: snapshotter.clone(),
    };
    let state = web::Data::new(AppState {
        registry,
        grid,
        wal: opened.wal,
        snapshotter,
        limits: Limits {
            max_body_bytes: settings.max_body_bytes,
            max_entities_per_request: settings.max_entities_per_request,
            max_rows_per_push: settings.max_rows_per_push,
        },
    });
    let bind = settings.bind_addr().map_err(std::io::Error::other)?;
    let server = HttpServer::new(move || build_app(state.clone()))
        .workers(settings.worker_count())
        // Our own signal handling: actix's would stop the whole actix system (the shard
        // threads included) right after draining, before the final snapshot.
        .disable_signals()
        .bind(bind)?;
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        shutdown_signal().await;
        handle.stop(true).await;
    });
    Ok(Running {
        addr,
        server,
        shard_threads,
        durability,
    })
}

/// Resolves on SIGTERM or SIGINT; the server then stops accepting and drains.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use actix_rt::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                let ctrl_c = std::pin::pin!(actix_rt::signal::ctrl_c());
                let term = std::pin::pin!(term.recv());
                futures_util::future::select(ctrl_c, term).await;
            }
            Err(_) => {
                let _ = actix_rt::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = actix_rt::signal::ctrl_c().await;
    tracing::info!("shutdown signal: draining requests, then a final snapshot");
}
