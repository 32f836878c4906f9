//! The HTTP layer: parses and validates requests against the registry, hands them to the
//! coordinator, renders answers. Nothing below this module knows about HTTP or JSON.
//!
//! - [`feast`]: Feast-compatible routes (`/push`, `/write-to-online-store`, `/get-online-features`).
//! - [`native`]: the same operations in the binary codec (`/native/v1/...`).
//! - [`materialize`]: `/materialize`, `/materialize-incremental` (Feast's routes).
//! - [`admin`]: `/health`, `/registry`, `/stats`, `/metrics`, `/admin/snapshot`, `/admin/digest`.
//! - [`request_log`]: failed requests in the log (4xx at `info`, 5xx at `warn`), rate-limited.
//! - [`drain`]: over HTTP/2, the body a route left unread is read before its answer goes out.
//!
//! Both wire formats share [`rows`] (writes) and [`lookup`] (reads): the registry checks and the
//! value conversions are the same code, whatever the format.

pub mod admin;
pub mod cluster;
pub mod drain;
pub mod feast;
pub mod lookup;
pub mod materialize;
pub mod metrics;
pub mod native;
pub mod request_log;
pub mod rows;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::error::ApiError;
use crate::persist::snapshotter::Snapshotter;
use crate::reload::LiveRegistry;

/// A columnar data frame: column name -> one value per row, in the order given.
pub type Frame<C> = indexmap::IndexMap<String, Vec<C>>;

/// Deserializes a JSON frame (`df`, `entities`), refusing a column given twice: JSON allows it,
/// but which copy would be meant is a guess.
pub fn unique_columns<'de, D, C>(deserializer: D) -> Result<indexmap::IndexMap<String, C>, D::Error>
where
    D: serde::Deserializer<'de>,
    C: Deserialize<'de>,
{
    columns_with(deserializer, std::marker::PhantomData::<C>)
}

/// [`unique_columns`], each column read by `seed`.
pub fn columns_with<'de, D, S>(
    deserializer: D,
    seed: S,
) -> Result<indexmap::IndexMap<String, S::Value>, D::Error>
where
    D: serde::Deserializer<'de>,
    S: serde::de::DeserializeSeed<'de> + Copy,
{
    struct Columns<S>(S);
    impl<'de, S: serde::de::DeserializeSeed<'de> + Copy> serde::de::Visitor<'de> for Columns<S> {
        type Value = indexmap::IndexMap<String, S::Value>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of columns, each a list of values")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut frame =
                indexmap::IndexMap::with_capacity(map.size_hint().unwrap_or(0).min(256));
            while let Some(name) = map.next_key::<String>()? {
                if frame.contains_key(&name) {
                    return Err(serde::de::Error::custom(format!(
                        "column '{name}' is given twice"
                    )));
                }
                let values = map.next_value_seed(self.0)?;
                frame.insert(name, values);
            }
            Ok(frame)
        }
    }
    deserializer.deserialize_map(Columns(seed))
}

/// A frame from named columns (the native path), refusing a column given twice.
pub fn frame_of<C>(columns: Vec<(String, Vec<C>)>) -> Result<Frame<C>, ApiError> {
    let mut frame = Frame::with_capacity(columns.len());
    for (name, values) in columns {
        if frame.contains_key(&name) {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("column '{name}' is given twice"),
            ));
        }
        frame.insert(name, values);
    }
    Ok(frame)
}

/// Request limits, from the settings (README "Limits").
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bodies of the write routes.
    pub max_body_bytes: usize,
    /// Bodies of the read routes.
    pub max_read_body_bytes: usize,
    /// How long a whole body may take to arrive.
    pub body_timeout: std::time::Duration,
    pub max_entities_per_request: usize,
    pub max_rows_per_push: usize,
    /// A string, bytes or list value (and an entity key), encoded.
    pub max_value_bytes: usize,
    /// A read's answer.
    pub max_answer_bytes: usize,
}

/// Which body limit applies to a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Read,
    Write,
}

/// What every handler shares: built once at start, handed to the workers by `web::Data`.
pub struct AppState {
    /// Load it once per request ([`LiveRegistry::current`]): a reload may swap it meanwhile.
    pub registry: LiveRegistry,
    /// The shards, the write-ahead log and the offline sink: the local write path.
    pub store: crate::store::LocalStore,
    pub snapshotter: Snapshotter,
    pub limits: Limits,
    pub metrics: metrics::Metrics,
    /// `FEATGRID_TEST_HOOKS=1`: serve the routes tests use to provoke faults.
    pub test_hooks: bool,
    pub memory: Arc<crate::memory::MemoryGuard>,
    /// Also app data of its own, for the auth middleware ([`crate::auth::require`]).
    pub auth: Arc<crate::auth::Auth>,
    /// `error_format = "feast"`: errors in Feast's own shape unless the request asks otherwise.
    pub feast_errors: bool,
    /// Set once at start on a cluster node (`--cluster`), before the HTTP server starts;
    /// empty on a single node.
    pub cluster: std::sync::OnceLock<std::sync::Arc<crate::cluster::Cluster>>,
    /// Materialized intervals per view, and the runs in progress.
    pub materialized: Arc<crate::materialize::state::MaterializeState>,
    /// The Python workers of on-demand feature views; `None` without the `python` setting.
    pub ondemand: Option<Arc<crate::ondemand::Pool>>,
}

/// Reads the whole body, refusing more than the route's limit with 413 and a body that takes
/// longer than `body_timeout` to arrive (a client trickling bytes) with 408. A body that came
/// in one chunk (the usual case: it arrived with the headers) is that chunk, not a copy.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limits: &Limits,
    kind: BodyKind,
) -> Result<web::Bytes, ApiError> {
    let (limit, setting) = match kind {
        BodyKind::Read => (limits.max_read_body_bytes, "max_read_body_bytes"),
        BodyKind::Write => (limits.max_body_bytes, "max_body_bytes"),
    };
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the limit of {limit} bytes ({setting}); split the request"),
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
    let read = async {
        // The first chunk as it came; the chunks joined once a second one comes.
        let mut first: Option<web::Bytes> = None;
        let mut joined = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request("bad_body", format!("could not read the request body: {e}"))
            })?;
            let have = first.as_ref().map_or(joined.len(), web::Bytes::len);
            if have + chunk.len() > limit {
                return Err(too_large());
            }
            match first.take() {
                None if joined.is_empty() => first = Some(chunk),
                first => {
                    if let Some(first) = first {
                        joined.reserve(declared.unwrap_or(0).max(first.len() + chunk.len()));
                        joined.extend_from_slice(&first);
                    }
                    joined.extend_from_slice(&chunk);
                }
            }
        }
        Ok(first.unwrap_or_else(|| joined.freeze()))
    };
    // A small body has usually arrived with the headers: read without arming a timer then.
    let mut read = std::pin::pin!(read);
    if let Some(done) = futures_util::FutureExt::now_or_never(read.as_mut()) {
        return done;
    }
    actix_rt::time::timeout(limits.body_timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms (body_timeout_ms)",
                    limits.body_timeout.as_millis()
                ),
            ))
        })
}

/// 413 once an answer grows past `max_answer_bytes`: checked as it is built, column by column.
pub fn check_answer_size(bytes: usize, limits: &Limits) -> Result<(), ApiError> {
    if bytes <= limits.max_answer_bytes {
        return Ok(());
    }
    Err(ApiError::answer_too_large(limits.max_answer_bytes))
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
