//! Operational routes: `GET /health`, `GET /registry`, `GET /stats`, `GET /metrics`.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::AppState;
use crate::error::ApiError;

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The registry as loaded: entities, feature views, push sources, feature services.
pub async fn registry(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&*state.registry)
}

#[derive(Serialize)]
struct ViewStats<'a> {
    name: &'a str,
    rows: u64,
}

#[derive(Serialize)]
struct Stats<'a> {
    shards: usize,
    feature_views: Vec<ViewStats<'a>>,
    /// Heap bytes the partitions hold (allocated capacity).
    memory_bytes: usize,
    /// Rows skipped because a newer event was stored (not errors).
    skipped_older: u64,
    per_shard: Vec<crate::grid::shard::ShardStats>,
}

/// Rows and memory per view and per shard.
pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let per_shard = state.grid.stats().await?;
    let feature_views = state
        .registry
        .feature_views
        .iter()
        .map(|v| ViewStats {
            name: &v.name,
            rows: per_shard.iter().map(|s| s.rows[v.id]).sum(),
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
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
