//! Operational routes: `GET /health` (503 while a log is stalled on its disk), `GET /registry`,
//! `GET /stats`, `GET /metrics`, `POST /admin/snapshot` (write a snapshot set now; answers when
//! it is durable), `GET /admin/snapshot` (the last one, and the write-ahead log's state),
//! `GET /admin/digest` (an order-independent digest of every row, equal across restarts and
//! shard counts when the contents are).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::AppState;
use crate::error::ApiError;
use crate::persist::wal;

/// `GET /health`: 200 `{"status":"ok"}`; 503 `{"status":"degraded","problems":[...]}` while
/// a log of this node is stalled on its disk (a write or fsync has not returned for
/// [`wal::STALLED`]): writes cannot be logged here, reads are still served.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let problems: Vec<String> = disk_waits(&state)
        .into_iter()
        .filter(|(_, _, waited)| *waited >= wal::STALLED)
        .map(|(_, log, waited)| {
            format!(
                "the {log} has waited {:.1} s on the disk (a write or fsync has not returned): writes that need it are refused, reads are served",
                waited.as_secs_f64()
            )
        })
        .collect();
    match problems.is_empty() {
        true => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        false => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "degraded", "problems": problems})),
    }
}

/// How long each log of this node has waited on the disk (zero when it is not waiting): its
/// metric label, its name, the wait.
fn disk_waits(state: &AppState) -> Vec<(&'static str, &'static str, Duration)> {
    let mut waits = vec![(
        "wal",
        "write-ahead log",
        state.store.wal.disk_wait().unwrap_or_default(),
    )];
    if let Some(cluster) = state.cluster.get() {
        let waited = cluster.log_disk_wait().unwrap_or_default();
        waits.push(("raft", "Raft log", waited));
    }
    waits
}

/// The registry as loaded: where from (file, Feast project and version), entities, feature
/// views, push sources, feature services.
pub async fn registry(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&*state.registry.current())
}

#[derive(Serialize)]
struct ViewStats {
    name: String,
    rows: u64,
}

#[derive(Serialize)]
struct Stats {
    shards: usize,
    feature_views: Vec<ViewStats>,
    /// Heap bytes the partitions hold (allocated capacity).
    memory_bytes: usize,
    /// Rows skipped because a newer event was stored (not errors).
    skipped_older: u64,
    per_shard: Vec<crate::grid::shard::ShardStats>,
}

/// Rows and memory per view and per shard.
pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Loaded first: the shards know every view of a registry that was swapped in.
    let registry = state.registry.current();
    let per_shard = state.store.grid.stats().await?;
    let feature_views = registry
        .serving_views()
        .map(|v| ViewStats {
            name: v.name.clone(),
            rows: per_shard
                .iter()
                .map(|s| s.rows.get(v.id).copied().unwrap_or(0))
                .sum(),
        })
        .collect();
    let body = Stats {
        shards: per_shard.len(),
        feature_views,
        memory_bytes: per_shard.iter().map(|s| s.memory_bytes).sum(),
        skipped_older: per_shard.iter().map(|s| s.skipped_older).sum(),
        per_shard,
    };
    Ok(HttpResponse::Ok().json(body))
}

/// Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Some(cluster) = state.cluster.get() {
        for group in cluster.topology().groups_of(cluster.me) {
            let label = group.to_string();
            let set = |problem, on: bool| {
                state
                    .metrics
                    .cluster_group_problem
                    .with_label_values(&[label.as_str(), problem])
                    .set(on as i64)
            };
            set("stopped", cluster.stopped(group).is_some());
            set("rejoining", cluster.rejoining(group).is_some());
            set("not_a_member", cluster.removed(group).is_some());
        }
    }
    for (label, _, waited) in disk_waits(&state) {
        state
            .metrics
            .log_disk_wait
            .with_label_values(&[label])
            .set(waited.as_secs_f64());
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// Writes a snapshot set now; answers `{seq, rows, bytes, duration_ms, ...}` once durable.
pub async fn take_snapshot(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let report = state.snapshotter.take().await?;
    let Some(cluster) = state.cluster.get() else {
        return Ok(HttpResponse::Ok().json(report));
    };
    // A cluster node's rows are in its groups' Raft snapshots: those are started too (they
    // are built in the background; `raft snapshot built` is logged for each).
    let mut answer = serde_json::to_value(&report).unwrap_or_default();
    answer["raft_snapshots_started"] = serde_json::json!(cluster.snapshot_groups().await);
    Ok(HttpResponse::Ok().json(answer))
}

/// The last snapshot this process wrote (`null` before the first), the complete sets on
/// disk (newest first, from earlier runs too) and the log's state.
pub async fn last_snapshot(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "last": state.snapshotter.last(),
        "sets": state.snapshotter.sets(),
        "wal": state.store.wal.stats(),
        "offline": state.store.offline.stats(),
    }))
}

/// Which rows `GET /admin/digest` covers: all, or (on a cluster node) one slot group's.
#[derive(Debug, serde::Deserialize)]
pub struct DigestQuery {
    group: Option<usize>,
}

/// `{rows, digest}`: the wrapping sum of a CRC-64 per row over its view name and stored
/// bytes, computed on frozen copies off the shard threads. `?group=N` on a cluster node: the
/// rows of slot group N only, equal on every replica of the group once they agree. Copies of
/// all shards are held at once: an admin route for tests and audits, not for a hot loop.
pub async fn digest(
    state: web::Data<AppState>,
    query: web::Query<DigestQuery>,
) -> Result<HttpResponse, ApiError> {
    let topology = match (query.group, state.cluster.get()) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(ApiError::new(
                actix_web::http::StatusCode::NOT_FOUND,
                "not_a_cluster",
                "group= needs a cluster node; this server runs as a single node",
            ))
        }
        (Some(g), Some(cluster)) if g >= cluster.topology().groups.len() => {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!(
                    "group {g} does not exist: the topology has {} groups",
                    cluster.topology().groups.len()
                ),
            ))
        }
        (Some(g), Some(cluster)) => Some((g, cluster.topology())),
    };
    let frozen = state.store.grid.freeze().await?;
    let names: Vec<String> = state
        .registry
        .current()
        .feature_views
        .iter()
        .map(|v| v.name.clone())
        .collect();
    let (rows, sum) = actix_web::rt::task::spawn_blocking(move || {
        let keep = |key: &[u8]| match &topology {
            None => true,
            Some((g, topology)) => topology.group_of_slot(crate::grid::routing::slot(key)) == *g,
        };
        frozen.iter().fold((0u64, 0u64), |(rows, sum), f| {
            let (r, s) = f.digest(&names, &keep);
            (rows + r, sum.wrapping_add(s))
        })
    })
    .await
    .map_err(|e| {
        ApiError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the digest task failed: {e}"),
        )
    })?;
    let mut answer = serde_json::json!({"rows": rows, "digest": format!("{sum:016x}")});
    if let Some(g) = query.group {
        answer["group"] = g.into();
    }
    Ok(HttpResponse::Ok().json(answer))
}

/// `POST /admin/test/stall?ms=N`: holds every shard thread for N ms (at most 60 s) without
/// waiting, so tests can fill mailboxes over HTTP. Served only when the server was started with
/// `FEATGRID_TEST_HOOKS=1`; otherwise the route does not exist.
pub async fn test_stall(
    state: web::Data<AppState>,
    query: web::Query<std::collections::HashMap<String, u64>>,
    req: actix_web::HttpRequest,
) -> HttpResponse {
    if !state.test_hooks {
        return super::not_found(req).await;
    }
    let ms = query.get("ms").copied().unwrap_or(1000).min(60_000);
    state
        .store
        .grid
        .stall_all(std::time::Duration::from_millis(ms));
    HttpResponse::Ok().json(serde_json::json!({"stalled_ms": ms}))
}
