//! The HTTP layer: parses and validates requests against the registry, hands them to the
//! coordinator, renders answers. Nothing below this module knows about HTTP or JSON.
//!
//! - [`feast`]: Feast-compatible routes (`/push`, `/write-to-online-store`, `/get-online-features`).
//! - [`native`]: the same operations in the binary codec (`/native/v1/...`).
//! - [`admin`]: `/health`, `/registry`, `/stats`, `/metrics`, `/admin/snapshot`, `/admin/digest`.
//!
//! Both wire formats share [`rows`] (writes) and [`lookup`] (reads): the registry checks and the
//! value conversions are the same code, whatever the format.

pub mod admin;
pub mod feast;
pub mod lookup;
pub mod metrics;
pub mod native;
pub mod rows;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::error::ApiError;
use crate::grid::coordinator::Coordinator;
use crate::persist::offline::OfflineSink;
use crate::persist::snapshotter::Snapshotter;
use crate::persist::wal::Wal;
use crate::reload::LiveRegistry;

/// A columnar data frame: column name -> one value per row, in the order given.
pub type Frame<C> = indexmap::IndexMap<String, Vec<C>>;

/// Request limits, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_entities_per_request: usize,
    pub max_rows_per_push: usize,
}

/// What every handler shares: built once at start, handed to the workers by `web::Data`.
pub struct AppState {
    /// Load it once per request ([`LiveRegistry::current`]): a reload may swap it meanwhile.
    pub registry: LiveRegistry,
    pub grid: Coordinator,
    pub wal: Wal,
    pub snapshotter: Snapshotter,
    pub offline: OfflineSink,
    pub limits: Limits,
    pub metrics: metrics::Metrics,
    /// `FEATGRID_TEST_HOOKS=1`: serve the routes tests use to provoke faults.
    pub test_hooks: bool,
    /// Set once at start on a cluster node (`--cluster`), before the HTTP server starts;
    /// empty on a single node.
    pub cluster: std::sync::OnceLock<std::sync::Arc<crate::cluster::Cluster>>,
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the limit of {limit} bytes (max_body_bytes); split the request"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("bad_body", format!("could not read the request body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses a JSON body read by [`read_body`], borrowing strings from it where it can. Any
/// `Content-Type` is accepted: Feast's documented curl lines send none (or a form type), and the
/// body is JSON whatever the header says.
pub fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::bad_request(
                "invalid_request",
                format!("the request does not have the expected shape: {e}"),
            ),
            _ => ApiError::bad_request(
                "malformed_json",
                format!("the request body is not valid JSON: {e}"),
            ),
        }
    })
}

/// Answers routes that do not exist.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route for {} {}; see GET /registry and the README for the routes",
            req.method(),
            req.path()
        ),
    )
    .error_response()
}

/// Answers a known route called with the wrong method.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {}", req.path(), req.method()),
    )
    .error_response()
}
