//! featgrid: an online feature store, wire-compatible with Feast's feature server, over
//! actor-sharded memory.
//!
//! Data flows one way: HTTP ([`api`]) -> [`grid::coordinator`] (split by shard) -> shard actor
//! ([`grid::shard`]) -> [`grid::partition`]. [`build_app`] is the one place the routes are
//! assembled; the server and the tests use it alike.

pub mod api;
pub mod bench;
pub mod config;
pub mod error;
pub mod grid;
pub mod persist;
pub mod registry;
pub mod value;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::Service as _;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpServer};
use tracing::Instrument as _;

use api::{admin, feast, native, AppState, Limits};
use config::Settings;
use grid::coordinator::{Coordinator, GridOptions, ShardThreads};
use grid::partition::RowLayout;
use registry::Registry;

/// The actix-web application: every route, the JSON 404/405 answers, the request middleware
/// (span with request id, metrics).
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
    App::new()
        .app_data(state)
        .wrap_fn(move |req, service| {
            // One span per request, with an id the client sees as `x-request-id`.
            let state = metrics_state.clone();
            let started = std::time::Instant::now();
            let id = state.metrics.next_request_id();
            let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
            let span = tracing::info_span!("request", id, method = %req.method(), route = %route);
            let response = service.call(req).instrument(span);
            async move {
                let mut response = response.await?;
                let status = response.status();
                state.metrics.observe(&route, status.as_u16(), started);
                if status.is_server_error() {
                    tracing::warn!(request_id = id, route = %route, status = status.as_u16(), "request failed");
                }
                response.headers_mut().insert(
                    actix_web::http::header::HeaderName::from_static("x-request-id"),
                    actix_web::http::header::HeaderValue::from(id),
                );
                Ok(response)
            }
        })
        .service(resource("/push").route(web::post().to(feast::push)))
        .service(
            resource("/write-to-online-store").route(web::post().to(feast::write_to_online_store)),
        )
        .service(resource("/get-online-features").route(web::post().to(feast::get_online_features)))
        .service(resource("/native/v1/push").route(web::post().to(native::push)))
        .service(
            resource("/native/v1/get-online-features")
                .route(web::post().to(native::get_online_features)),
        )
        .service(resource("/health").route(web::get().to(admin::health)))
        .service(resource("/registry").route(web::get().to(admin::registry)))
        .service(resource("/stats").route(web::get().to(admin::stats)))
        .service(resource("/metrics").route(web::get().to(admin::metrics)))
        .default_service(web::to(api::not_found))
}

/// A started server: the bound address, the server future, the shard threads.
pub struct Running {
    pub addr: SocketAddr,
    pub server: Server,
    pub shard_threads: ShardThreads,
}

/// Starts the shards and binds the HTTP server. Must run inside an actix system.
pub fn start(settings: &Settings, registry: Registry) -> std::io::Result<Running> {
    let registry = Arc::new(registry);
    let options = GridOptions {
        shards: settings.shards,
        shard_threads: settings.shard_threads,
        mailbox_capacity: settings.mailbox_capacity,
        shard_timeout: settings.shard_timeout(),
    };
    let (grid, shard_threads) = Coordinator::start(&options, RowLayout::for_registry(&registry));
    let state = web::Data::new(AppState {
        registry,
        grid,
        limits: Limits {
            max_body_bytes: settings.max_body_bytes,
            max_entities_per_request: settings.max_entities_per_request,
            max_rows_per_push: settings.max_rows_per_push,
        },
        metrics: api::metrics::Metrics::new(),
    });
    let bind = settings.bind_addr().map_err(std::io::Error::other)?;
    let server = HttpServer::new(move || build_app(state.clone()))
        .workers(settings.worker_count())
        .bind(bind)?;
    let addr = server.addrs()[0];
    Ok(Running {
        addr,
        server: server.run(),
        shard_threads,
    })
}
