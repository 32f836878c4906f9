//! Materialization routes, as Feast 0.67's feature server defines them (the Feast SDK and CLI
//! in the remote topology POST here: `FeatureStore._delegate_remote_materialize`):
//!
//! - `POST /materialize` `{start_ts, end_ts, feature_views, disable_event_timestamp,
//!   full_feature_names, version}`: every view's rows with event times in `[start, end)`.
//! - `POST /materialize-incremental` `{end_ts, feature_views, ...}`: from where each view's
//!   last run ended (else `end - ttl`, else the epoch) to `end`.
//! - `GET /materialize`: per view, the intervals materialized and the run in progress.
//!
//! `?async=true` answers 202 `{"status": "accepted", "feature_views": [...]}` and runs in the
//! background; otherwise the answer comes when the rows are written. A view already
//! materializing is refused with 409 unless `?force=true` (sync or async: Feast's own server
//! checks only async requests, and silently skips a sync one). `feature_views` null means every
//! view with an offline source; `full_feature_names` does not apply to the online store and is
//! ignored; `version` is refused (featgrid has no view versions).
//!
//! Rows go through [`write_chunk`], the one call into the write path.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{parse_json, read_body, AppState, BodyKind};
use crate::auth::check_views;
use crate::error::ApiError;
use crate::materialize::parquet::{list_files, Chunk, ScanSpec, ScanStats};
use crate::materialize::state::{Claim, Interval};
use crate::materialize::{self, MaterializeError, RowSink, RunError};
use crate::persist::wal::Destination;
use crate::registry::{Registry, ViewId};
use crate::value::{format_timestamp, now_micros, parse_timestamp_text, Micros};

/// Rows per write: a chunk of the source becomes one write of the normal path.
const CHUNK_ROWS: usize = 64 * 1024;
/// Attempts at a write refused with 503 (a full shard mailbox, a cluster group without a
/// leader for a moment) before the run fails.
const WRITE_ATTEMPTS: u32 = 60;

#[derive(Debug, Deserialize)]
struct MaterializeRequest {
    #[serde(default)]
    start_ts: Option<String>,
    #[serde(default)]
    end_ts: Option<String>,
    #[serde(default)]
    feature_views: Option<Vec<String>>,
    #[serde(default)]
    disable_event_timestamp: bool,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IncrementalRequest {
    end_ts: String,
    #[serde(default)]
    feature_views: Option<Vec<String>>,
    #[serde(default)]
    version: Option<String>,
}

/// One view of a run: what to read.
struct Planned {
    view: ViewId,
    name: String,
    /// `None`: nothing to read (an incremental run already at `end`).
    spec: Option<ScanSpec>,
    start: Micros,
    end: Micros,
}

/// What a finished view reports.
#[derive(Debug, Serialize)]
struct Done {
    name: String,
    start: String,
    end: String,
    rows_written: u64,
    #[serde(flatten)]
    stats: ScanStats,
}

pub async fn materialize(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, body, &state.limits, BodyKind::Write).await?;
    let request: MaterializeRequest = parse_json(&body)?;
    refuse_version(request.version.as_deref())?;
    let (start, end) = if request.disable_event_timestamp {
        (0, now_micros())
    } else {
        let start = required_time("start_ts", request.start_ts.as_deref())?;
        let end = required_time("end_ts", request.end_ts.as_deref())?;
        if start >= end {
            return Err(ApiError::bad_request(
                "invalid_interval",
                format!(
                    "start_ts ({}) must be before end_ts ({})",
                    format_timestamp(start),
                    format_timestamp(end)
                ),
            ));
        }
        (start, end)
    };
    let registry = state.registry.current();
    let views = select_views(&registry, request.feature_views.as_deref())?;
    let planned = plan(&registry, &views, |_| start, end)?;
    start_run(state, &req, &registry, planned, "/materialize").await
}

pub async fn materialize_incremental(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, body, &state.limits, BodyKind::Write).await?;
    let request: IncrementalRequest = parse_json(&body)?;
    refuse_version(request.version.as_deref())?;
    let end = required_time("end_ts", Some(&request.end_ts))?;
    let registry = state.registry.current();
    let views = select_views(&registry, request.feature_views.as_deref())?;
    let record = &state.materialized;
    let planned = plan(
        &registry,
        &views,
        |view| {
            let v = &registry.feature_views[view];
            materialize::incremental_start(v, record.last_end(&v.name), end)
        },
        end,
    )?;
    start_run(state, &req, &registry, planned, "/materialize-incremental").await
}

/// `GET /materialize`: per view, its intervals, last end, last error and run in progress.
pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.materialized.status())
}

fn refuse_version(version: Option<&str>) -> Result<(), ApiError> {
    match version {
        None => Ok(()),
        Some(v) => Err(ApiError::bad_request(
            "versions_unsupported",
            format!(
                "\"version\" is '{v}', but featgrid serves no feature view versions: leave it out"
            ),
        )),
    }
}

/// A request's timestamp: ISO 8601 / RFC 3339 (no offset: UTC, as Feast reads it) or a date.
fn required_time(field: &str, text: Option<&str>) -> Result<Micros, ApiError> {
    let Some(text) = text else {
        return Err(ApiError::bad_request(
            "invalid_timestamp",
            format!("{field} is required (unless disable_event_timestamp is true)"),
        ));
    };
    parse_timestamp_text(text)
        .or_else(|| parse_timestamp_text(&format!("{}T00:00:00", text.trim())))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_timestamp",
                format!("{field} '{text}' is not a timestamp: expected ISO 8601, e.g. 2026-07-16T19:20:01 or 2026-07-16T19:20:01+00:00"),
            )
        })
}

/// The views named, or (none named) every view with an offline source.
fn select_views(registry: &Registry, names: Option<&[String]>) -> Result<Vec<ViewId>, ApiError> {
    let views: Vec<ViewId> = match names {
        Some(names) => names
            .iter()
            .map(|n| registry.view(n).map(|v| v.id))
            .collect::<Result<_, _>>()?,
        None => registry
            .serving_views()
            .filter(|v| v.offline.is_some())
            .map(|v| v.id)
            .collect(),
    };
    if views.is_empty() {
        return Err(ApiError::bad_request(
            "nothing_to_materialize",
            "no feature view has an offline source: name a Parquet `path` under [[batch_sources]] (TOML registry) or give views a FileSource (Feast repo)",
        ));
    }
    let mut unique: Vec<ViewId> = Vec::with_capacity(views.len());
    for v in views {
        if !unique.contains(&v) {
            unique.push(v);
        }
    }
    Ok(unique)
}

/// Each view's scan, checked before anything runs: an unreadable source or a missing path is
/// refused now, not after a 202.
fn plan(
    registry: &Registry,
    views: &[ViewId],
    start_of: impl Fn(ViewId) -> Micros,
    end: Micros,
) -> Result<Vec<Planned>, ApiError> {
    views
        .iter()
        .map(|&view| {
            let v = &registry.feature_views[view];
            let start = start_of(view);
            let spec = if start < end {
                let spec = materialize::plan(v, (start, end), CHUNK_ROWS)?;
                list_files(&spec.path).map_err(|source| MaterializeError::Read {
                    view: v.name.clone(),
                    source,
                })?;
                Some(spec)
            } else {
                None
            };
            Ok(Planned {
                view,
                name: v.name.clone(),
                spec,
                start,
                end,
            })
        })
        .collect()
}

/// Claims the views, then runs now (sync) or in the background (`?async=true`).
async fn start_run(
    state: web::Data<AppState>,
    req: &HttpRequest,
    registry: &Registry,
    planned: Vec<Planned>,
    route: &'static str,
) -> Result<HttpResponse, ApiError> {
    check_views(req, registry, planned.iter().map(|p| p.view))?;
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_request", format!("query string: {e}")))?;
    let run_async = flag(&query, "async")?;
    let force = flag(&query, "force")?;
    let names: Vec<String> = planned.iter().map(|p| p.name.clone()).collect();
    let span = (
        planned.iter().map(|p| p.start).min().unwrap_or(0),
        planned.iter().map(|p| p.end).max().unwrap_or(0),
    );
    let claim = state
        .materialized
        .claim(&names, route, span, force)
        .map_err(|busy| {
            ApiError::new(
                StatusCode::CONFLICT,
                "materialize_in_progress",
                format!("cannot start materialization: the feature views {busy:?} are already materializing (GET /materialize shows progress); use ?force=true to override"),
            )
        })?;
    if run_async {
        let state = state.clone();
        actix_rt::spawn(async move {
            // Failures are recorded per view (GET /materialize) and logged.
            let _ = run(&state, planned, &claim).await;
        });
        return Ok(HttpResponse::Accepted()
            .json(serde_json::json!({"status": "accepted", "feature_views": names})));
    }
    let done = run(&state, planned, &claim).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "done", "feature_views": done})))
}

/// A boolean query parameter as FastAPI reads one.
fn flag(query: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match query.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => Err(ApiError::bad_request(
            "invalid_request",
            format!("?{name}={v}: expected true or false"),
        )),
    }
}

/// Runs the views one after another; the first failure is recorded for its view and ends
/// the run.
async fn run(
    state: &web::Data<AppState>,
    planned: Vec<Planned>,
    claim: &Claim,
) -> Result<Vec<Done>, ApiError> {
    let mut done = Vec::with_capacity(planned.len());
    for p in planned {
        let name = p.name.clone();
        match run_one(state, p, claim).await {
            Ok(d) => done.push(d),
            Err(error) => {
                tracing::error!(view = %name, error = %error, "materialization failed");
                if let Err(e) = state.materialized.failed(&name, error.to_string()) {
                    tracing::error!(view = %name, error = %e, "could not record the failure");
                }
                return Err(error);
            }
        }
    }
    Ok(done)
}

/// Reads one view's interval into the online store and records the interval.
async fn run_one(state: &AppState, p: Planned, claim: &Claim) -> Result<Done, ApiError> {
    let started = std::time::Instant::now();
    let before = claim.progress.rows_written.load(Ordering::Relaxed);
    let read = p.spec.is_some();
    let stats = match p.spec {
        None => ScanStats::default(),
        Some(spec) => {
            materialize::run_view(&WritePath(state), p.view, &p.name, spec, &claim.progress)
                .await
                .map_err(|e| match e {
                    RunError::Read(e) => ApiError::from(e),
                    RunError::Write(e) => e,
                })?
        }
    };
    let written = claim.progress.rows_written.load(Ordering::Relaxed) - before;
    if read {
        let interval = Interval {
            start: p.start,
            end: p.end,
            rows: written,
            finished_at: now_micros(),
        };
        state
            .materialized
            .finished(&p.name, interval)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "materialize_record_failed",
                    format!(
                        "the rows of '{}' are written, but the interval could not be recorded: {e}",
                        p.name
                    ),
                )
            })?;
    }
    tracing::info!(view = %p.name, rows = written, read = stats.rows_read, elapsed_ms = started.elapsed().as_millis() as u64, "materialized");
    Ok(Done {
        name: p.name,
        start: format_timestamp(p.start),
        end: format_timestamp(p.end),
        rows_written: written,
        stats,
    })
}

/// The write path, as a [`RowSink`].
struct WritePath<'a>(&'a AppState);

impl RowSink for WritePath<'_> {
    type Error = ApiError;

    async fn write(&self, view: ViewId, chunk: Chunk) -> Result<(), ApiError> {
        let mut attempt = 0;
        loop {
            match write_chunk(self.0, view, &chunk).await {
                Err(e)
                    if e.status == StatusCode::SERVICE_UNAVAILABLE && attempt < WRITE_ATTEMPTS =>
                {
                    attempt += 1;
                    actix_rt::time::sleep(std::time::Duration::from_millis(
                        50 * u64::from(attempt.min(10)),
                    ))
                    .await;
                }
                result => return result,
            }
        }
    }
}

/// The one call into the write path (the function `/write-to-online-store` uses: logged,
/// snapshotted, on a cluster node committed through the groups).
async fn write_chunk(state: &AppState, view: ViewId, chunk: &Chunk) -> Result<(), ApiError> {
    super::rows::write_rows(state, &[view], chunk, Destination::ONLINE).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_read_as_feast_sends_them() {
        let t = |s| required_time("end_ts", Some(s));
        assert_eq!(t("1970-01-01T00:00:01"), Ok(1_000_000));
        assert_eq!(t("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(t("1970-01-02"), Ok(86_400_000_000));
        let e = t("yesterday").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "invalid_timestamp")
        );
        assert_eq!(
            required_time("start_ts", None).unwrap_err().code,
            "invalid_timestamp"
        );
    }

    #[test]
    fn flags_read_like_fastapi() {
        let q: HashMap<String, String> = [("async".to_string(), "True".to_string())].into();
        assert_eq!(flag(&q, "async"), Ok(true));
        assert_eq!(flag(&q, "force"), Ok(false));
        let bad: HashMap<String, String> = [("force".to_string(), "maybe".to_string())].into();
        assert!(flag(&bad, "force").is_err());
    }
}
