//! featgrid: an online feature store, wire-compatible with Feast's feature server, over
//! actor-sharded memory.
//!
//! Data flows one way: HTTP ([`api`]) -> [`grid::coordinator`] (split by shard) -> shard actor
//! ([`grid::shard`]) -> [`grid::partition`]. Writes are logged by [`persist::wal`] before
//! they reach the coordinator; [`persist::snapshotter`] writes snapshots from frozen copies of
//! the partitions; [`start`] restores both. [`build_app`] is the one place the routes are
//! assembled; the server and the tests use it alike.

pub mod api;
pub mod auth;
pub mod bench;
pub mod cluster;
pub mod config;
pub mod error;
pub mod grid;
pub mod logging;
pub mod materialize;
pub mod memory;
pub mod ondemand;
pub mod persist;
pub mod registry;
pub mod reload;
pub mod store;
mod sync;
pub mod tls;
pub mod value;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::Service as _;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use tracing::Instrument as _;

use api::{admin, feast, native, AppState, Limits};
use auth::{Auth, Need, Scope};
use config::Settings;
use grid::coordinator::{Coordinator, GridOptions, ShardThreads};
use grid::partition::RowLayout;
use persist::offline::{self, OfflineOptions, OfflineSink};
use persist::restore::{self, RestoreError};
use persist::snapshotter::{Durability, Snapshotter, SnapshotterOptions};
use persist::ViewMeta;
use registry::Registry;

/// The actix-web application: every route, the JSON 404/405 answers, the request middleware
/// (span with request id, metrics), and on each route the scope it needs ([`auth::require`]).
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
    let metrics_state = state.clone();
    let resource =
        |path: &str| web::resource(path).default_service(web::to(api::method_not_allowed));
    let guarded = |path: &str, need: Need| {
        resource(path).wrap(from_fn(move |req, next| auth::require(need, req, next)))
    };
    let read = Need::Scope(Scope::Read);
    let write = Need::Scope(Scope::Write);
    let admin = Need::Scope(Scope::Admin);
    App::new()
        .app_data(web::Data::from(state.auth.clone()))
        .app_data(state)
        .wrap_fn(move |mut req, service| {
            // One span per request, with an id the client sees as `x-request-id`. At `debug`:
            // enabled (the default filter is `info`) it cost 8% of read 1 throughput
            // (BENCHMARKS.md, 2026-12-04); a failed request's log line carries the id, route,
            // status and code anyway.
            let state = metrics_state.clone();
            let body = api::drain::Body::share(&mut req);
            let started = std::time::Instant::now();
            let id = state.metrics.next_request_id();
            let route = api::metrics::route_of(&req);
            let feast_errors = error::wants_feast_errors(req.headers(), state.feast_errors);
            let span = tracing::debug_span!("request", id, method = %req.method(), route = %route);
            let response = service.call(req).instrument(span);
            async move {
                let mut response = response.await?;
                if let Some(body) = body {
                    let limits = &state.limits;
                    let most = 2 * limits.max_body_bytes.max(limits.max_read_body_bytes) as u64;
                    body.discard_rest(most, limits.body_timeout).await;
                }
                let status = response.status();
                state.metrics.observe(&route, status.as_u16(), started);
                let code = response
                    .response()
                    .extensions()
                    .get::<error::ApiError>()
                    .map(|e| e.code);
                api::request_log::answered(id, &route, status, code);
                response.headers_mut().insert(
                    actix_web::http::header::HeaderName::from_static("x-request-id"),
                    actix_web::http::header::HeaderValue::from(id),
                );
                Ok(if feast_errors {
                    error::to_feast_error(response)
                } else {
                    response.map_into_left_body()
                })
            }
        })
        .service(guarded("/push", write).route(web::post().to(feast::push)))
        .service(
            guarded("/write-to-online-store", write)
                .route(web::post().to(feast::write_to_online_store)),
        )
        .service(
            guarded("/get-online-features", read).route(web::post().to(feast::get_online_features)),
        )
        .service(
            guarded("/materialize", write)
                .route(web::post().to(api::materialize::materialize))
                .route(web::get().to(api::materialize::status)),
        )
        .service(
            guarded("/materialize-incremental", write)
                .route(web::post().to(api::materialize::materialize_incremental)),
        )
        .service(guarded("/native/v1/push", write).route(web::post().to(native::push)))
        .service(
            guarded("/native/v1/get-online-features", read)
                .route(web::post().to(native::get_online_features)),
        )
        .service(resource("/health").route(web::get().to(admin::health)))
        .service(guarded("/registry", admin).route(web::get().to(admin::registry)))
        .service(guarded("/stats", admin).route(web::get().to(admin::stats)))
        .service(guarded("/metrics", Need::Metrics).route(web::get().to(admin::metrics)))
        .service(
            guarded("/admin/snapshot", admin)
                .route(web::get().to(admin::last_snapshot))
                .route(web::post().to(admin::take_snapshot)),
        )
        .service(guarded("/admin/digest", admin).route(web::get().to(admin::digest)))
        .service(guarded("/admin/test/stall", admin).route(web::post().to(admin::test_stall)))
        .service(guarded("/cluster", admin).route(web::get().to(api::cluster::status)))
        .service(
            guarded("/cluster/groups/{group}/members", admin)
                .route(web::post().to(api::cluster::members)),
        )
        .service(guarded("/cluster/reload", admin).route(web::post().to(api::cluster::reload)))
        .service(guarded("/cluster/balance", admin).route(web::post().to(api::cluster::balance)))
        .default_service(web::to(api::not_found))
}

/// A started server: the bound address, the server future, the shard threads, and the
/// durability side. Shutdown order: the server future ends (SIGTERM or SIGINT: stop
/// accepting, drain) -> [`Durability::shutdown`] (final snapshot, log closed) -> shard threads.
pub struct Running {
    pub addr: SocketAddr,
    /// Whether the server speaks HTTPS.
    pub tls: bool,
    pub server: Server,
    pub shard_threads: ShardThreads,
    pub durability: Durability,
    /// On a cluster node: the Raft side, stopped after the HTTP server and before the final
    /// snapshot.
    pub cluster: Option<cluster::Node>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Everything but the HTTP server: the shared state the app is built from, the shard threads,
/// and the durability side. Benchmarks and tests build the app in-process from it.
pub struct Prepared {
    pub state: web::Data<AppState>,
    pub shard_threads: ShardThreads,
    pub durability: Durability,
}

/// Whose rows the node's own snapshots and log hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A single node: its snapshots and write-ahead log hold every row.
    Single,
    /// A cluster node: its rows are replicas of slot groups, restored from each group's Raft
    /// snapshot and log; its own snapshots hold no rows and its log only offline rows (the
    /// offline sink's queue).
    Replica,
}

/// Restores the data directory, starts the shards and the snapshot scheduler (and, serving a
/// Feast repo, the registry watcher). Must run inside an actix system. Blocks while restoring.
pub fn prepare(settings: &Settings, registry: Registry) -> Result<Prepared, StartError> {
    prepare_as(settings, registry, Role::Single)
}

/// [`prepare`] for a node of `role`.
pub fn prepare_as(
    settings: &Settings,
    registry: Registry,
    role: Role,
) -> Result<Prepared, StartError> {
    let registry = Arc::new(registry);
    let from = &registry.loaded_from;
    tracing::info!(
        kind = from.kind,
        path = from.path.as_deref().unwrap_or(""),
        project = from.project.as_deref().unwrap_or(""),
        version_id = from.version_id.as_deref().unwrap_or(""),
        views = registry.feature_views.len(),
        "registry loaded"
    );
    if !from.not_served.is_empty() {
        tracing::warn!(not_served = ?from.not_served, "the registry declares objects featgrid does not serve");
    }
    let auth = Auth::load(settings.auth_options())?;
    let options = GridOptions {
        shards: settings.shards,
        shard_threads: settings.shard_threads,
        mailbox_capacity: settings.mailbox_capacity,
        shard_timeout: settings.shard_timeout(),
        read_path: settings.read_path().map_err(std::io::Error::other)?,
    };
    let layouts = RowLayout::for_registry(&registry);
    let views = ViewMeta::all(&registry);
    let mut opened = restore::open(&restore::OpenOptions {
        data_dir: &settings.data_dir,
        views: views.clone(),
        layouts: layouts.clone(),
        shards: settings.shards,
        fsync: settings.fsync_policy().map_err(std::io::Error::other)?,
        wal_segment_bytes: settings.wal_segment_bytes,
        recover: settings.recover,
        offline_covered: offline::covered_lsns(
            &settings.data_dir.join("offline"),
            &registry.feature_views,
        ),
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
    if role == Role::Replica && r.snapshot_rows + r.wal_rows > 0 {
        // Written by an earlier build, which logged replicated rows twice (the groups' Raft
        // snapshots and logs hold them all), or by single-node runs on this data directory
        // (rows no group ever committed: a cluster node does not serve them).
        tracing::warn!(
            rows = r.snapshot_rows + r.wal_rows,
            "cluster node: the rows in the node's own snapshots and write-ahead log are not served; each group restores from its Raft snapshot and log (rows loaded while this data directory ran as a single node must be pushed or materialized into the cluster again)"
        );
        opened.partitions = (0..settings.shards)
            .map(|_| crate::grid::partition::Partition::new(layouts.clone()))
            .collect();
    }
    let offline = OfflineSink::start(
        OfflineOptions {
            dir: settings.data_dir.join("offline"),
            views: registry.feature_views.clone(),
            layouts: layouts.clone(),
            roll_rows: settings.offline_roll_rows,
            roll_interval: settings.offline_roll_interval(),
            wal: opened.wal.clone(),
        },
        opened.offline_backlog,
    )
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    let (grid, shard_threads) = Coordinator::start_with(&options, layouts, opened.partitions);
    let memory = Arc::new(memory::MemoryGuard::new(settings.max_memory()));
    memory::MemoryGuard::start_sampling(memory.clone(), grid.clone());
    let snapshotter = Snapshotter::new(SnapshotterOptions {
        dir: opened.dir,
        grid: grid.clone(),
        wal: opened.wal.clone(),
        offline: offline.clone(),
        views,
        keep: settings.snapshot_keep,
        next_seq: opened.next_seq,
        sets: opened.sets,
        lock: opened.lock,
        rows: role == Role::Single,
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
    let materialized = Arc::new(
        materialize::state::MaterializeState::open(&settings.data_dir)
            .map_err(|e| std::io::Error::other(e.to_string()))?,
    );
    let metrics = api::metrics::Metrics::new();
    let ondemand = ondemand::pool_for(settings, metrics.ondemand.clone());
    let state = web::Data::new(AppState {
        registry: reload::LiveRegistry::new(registry),
        store: store::LocalStore {
            memory: memory.clone(),
            grid,
            wal: opened.wal,
            offline,
            rows_written: metrics.rows_written.clone(),
            rows_skipped_older: metrics.rows_skipped_older.clone(),
        },
        snapshotter,
        limits: Limits {
            max_body_bytes: settings.max_body_bytes,
            max_read_body_bytes: settings.max_read_body_bytes,
            body_timeout: std::time::Duration::from_millis(settings.body_timeout_ms),
            max_entities_per_request: settings.max_entities_per_request,
            max_rows_per_push: settings.max_rows_per_push,
            max_value_bytes: settings.max_value_bytes,
            max_answer_bytes: settings.max_answer_bytes,
        },
        memory,
        metrics,
        test_hooks: std::env::var("FEATGRID_TEST_HOOKS").is_ok_and(|v| v == "1"),
        auth: Arc::new(auth),
        feast_errors: settings.error_format == "feast",
        cluster: std::sync::OnceLock::new(),
        materialized,
        ondemand,
    });
    if state.ondemand.is_none() {
        ondemand::warn_not_computed(&state.registry.current());
    }
    if let Some(repo) = settings.feast.clone() {
        reload::watch(state.clone(), repo);
    }
    Ok(Prepared {
        state,
        shard_threads,
        durability,
    })
}

/// [`prepare`], then binds the HTTP server and handles SIGTERM and SIGINT.
pub fn start(settings: &Settings, registry: Registry) -> Result<Running, StartError> {
    serve(settings, prepare(settings, registry)?, None)
}

/// [`start`] as node `node` of the cluster `topology`: the shards are restored, then the
/// node's Raft groups and its internal endpoint start, then the client HTTP server.
pub async fn start_cluster(
    settings: &Settings,
    registry: Registry,
    topology: cluster::topology::Topology,
    node: cluster::topology::NodeIndex,
    bootstrap: bool,
) -> Result<Running, StartError> {
    let prepared = prepare_as(settings, registry, Role::Replica)?;
    let fsync = settings.fsync_policy().map_err(std::io::Error::other)?;
    let state = &prepared.state;
    let local = state.store.clone();
    let log = cluster::log_store::LogOptions {
        fsync,
        segment_bytes: settings.wal_segment_bytes,
        recover: settings.recover,
    };
    let served = cluster::Served::new(
        &state.metrics.cluster_parts,
        state.metrics.cluster_forward_calls.clone(),
    );
    let started = cluster::Node::start(
        topology,
        node,
        &settings.data_dir,
        log,
        local,
        served,
        bootstrap,
    )
    .await
    .map_err(std::io::Error::other)?;
    let _ = state.cluster.set(started.cluster.clone());
    serve(settings, prepared, Some(started))
}

/// Binds the client HTTP server on prepared state and handles SIGTERM and SIGINT.
fn serve(
    settings: &Settings,
    prepared: Prepared,
    cluster: Option<cluster::Node>,
) -> Result<Running, StartError> {
    return_freed_memory_periodically();
    let Prepared {
        state,
        shard_threads,
        durability,
    } = prepared;
    let bind = settings.bind_addr().map_err(std::io::Error::other)?;
    let certificate = match settings.tls_files() {
        Some((cert, key)) => Some(Arc::new(tls::ReloadableCert::load(&cert, &key)?)),
        None => None,
    };
    reload_on_hangup(state.clone(), certificate.clone());
    let server = HttpServer::new(move || build_app(state.clone()))
        .workers(settings.worker_count())
        .client_request_timeout(std::time::Duration::from_millis(settings.header_timeout_ms))
        .keep_alive(std::time::Duration::from_secs(settings.keep_alive_secs))
        .max_connections(settings.max_connections)
        // Our own signal handling: actix's would stop the whole actix system (the shard
        // threads included) right after draining, before the final snapshot.
        .disable_signals();
    let server = match &certificate {
        Some(certificate) => server.bind_rustls_0_23(bind, certificate.server_config()?)?,
        // HTTP/1.1 only: actix-web's h2c detection (`bind_auto_h2c`) waits for a connection's
        // first bytes with no timeout, so a silent connection would hold its slot forever
        // instead of getting a 408 after `header_timeout_ms`. HTTP/2 is served over TLS.
        None => server.bind(bind)?,
    };
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        shutdown_signal().await;
        handle.stop(true).await;
    });
    Ok(Running {
        addr,
        tls: certificate.is_some(),
        server,
        shard_threads,
        durability,
        cluster,
    })
}

/// On every SIGHUP, re-reads the credentials (token file) and the TLS certificate and key. A
/// bad file is logged and what is in force stays. The handler is installed before this
/// returns, so a SIGHUP after the server reports its address never takes the default action
/// (exit).
fn reload_on_hangup(state: web::Data<AppState>, certificate: Option<Arc<tls::ReloadableCert>>) {
    #[cfg(unix)]
    {
        use actix_rt::signal::unix::{signal, SignalKind};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            tracing::warn!(
                "cannot listen for SIGHUP: credentials and certificates reload only on restart"
            );
            return;
        };
        actix_rt::spawn(async move {
            while hangup.recv().await.is_some() {
                match state.auth.reload() {
                    Ok(tokens) => tracing::info!(tokens, "SIGHUP: credentials reloaded"),
                    Err(e) => tracing::error!(
                        error = %e,
                        "SIGHUP: credentials not reloaded; the previous ones stay in force"
                    ),
                }
                match certificate.as_ref().map(|c| c.reload()) {
                    None => {}
                    Some(Ok(())) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Some(Err(e)) => tracing::error!(
                        error = %e,
                        "SIGHUP: TLS certificate not reloaded; the previous one stays in force"
                    ),
                }
                if let Some(cluster) = state.cluster.get().cloned() {
                    // File reads and an fsync: off the thread that runs the Raft cores.
                    let reloading = cluster.clone();
                    let reloaded =
                        actix_rt::task::spawn_blocking(move || reloading.reload_topology()).await;
                    match reloaded.unwrap_or_else(|e| Err(e.to_string())) {
                        Ok(r) => {
                            tracing::info!(added = ?r.added, nodes = r.nodes.len(), "SIGHUP: cluster topology reloaded");
                            if !r.added.is_empty() {
                                cluster.announce_topology().await;
                            }
                        }
                        Err(e) => tracing::error!(
                            error = %e,
                            "SIGHUP: cluster topology not reloaded; the one in force stays"
                        ),
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (state, certificate);
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

/// Every 10 s, hands the memory the allocator keeps free (request and answer buffers of past
/// requests, tens of MiB after a bulk load) back to the OS, so the resident size follows the
/// store's own size (glibc keeps freed heap memory otherwise; `malloc_trim` walks its arenas in
/// milliseconds, off every request path).
fn return_freed_memory_periodically() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::thread::Builder::new()
            .name("featgrid-trim".into())
            .spawn(|| loop {
                std::thread::sleep(std::time::Duration::from_secs(10));
                // SAFETY: malloc_trim only releases free memory of glibc's own arenas; it
                // takes no pointer and is safe to call from any thread at any time.
                unsafe { libc::malloc_trim(0) };
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "could not start the memory trimmer");
        }
    }
}

/// The number in environment variable `var`, read only when tests turned their hooks on
/// (`FEATGRID_TEST_HOOKS=1`): the fault injections of the integration tests.
pub(crate) fn test_setting(var: &str) -> Option<u64> {
    if !std::env::var("FEATGRID_TEST_HOOKS").is_ok_and(|v| v == "1") {
        return None;
    }
    std::env::var(var).ok()?.parse().ok()
}
