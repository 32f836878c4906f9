//! On-demand feature views, run by Feast's own code: a pool of Python worker processes
//! ([`pool`]) that load the Feast registry, build each `OnDemandFeatureView` from its proto and
//! run its transformation (`transform_dict` in python mode, `transform_arrow` in pandas mode).
//! featgrid talks to them over unix sockets in Arrow IPC batches ([`arrow`]): one request per
//! read or write, every row at once.
//!
//! - [`read`]: `/get-online-features` naming views computed at read time: the source views'
//!   features and the request's request-source values in, the requested outputs back, answered
//!   as Feast's feature server answers them.
//! - [`write`]: `/write-to-online-store` naming a view with `write_to_online_store=True`, and
//!   `/push` of the features such a view reads: the transformation runs on the written rows
//!   (unless `transform_on_write` is false) and its outputs are stored like any view's.
//!
//! Plain reads never touch Python; without the `python` setting, a repo with on-demand views
//! loads and serves everything else, and a request that needs a transformation answers 501
//! saying how to enable it.

pub mod arrow;
pub mod pool;
pub mod read;
pub mod write;

use std::path::PathBuf;
use std::time::Duration;

use actix_web::http::StatusCode;

use crate::error::ApiError;

pub use pool::Pool;

/// The worker script, embedded so that `featgrid serve` needs no file beside it.
pub const WORKER_SCRIPT: &str = include_str!("../../python/featgrid_ondemand_worker.py");

/// How the pool is run (settings `python`, `python_workers`, `python_timeout_ms`,
/// `python_queue`).
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// The interpreter of the Feast environment.
    pub python: PathBuf,
    pub workers: usize,
    /// How long one transformation may take; the worker is then killed and restarted.
    pub timeout: Duration,
    /// Transformations that may wait for a free worker.
    pub queue: usize,
}

/// Why a transformation did not give an answer; each names the view.
#[derive(Debug, thiserror::Error)]
pub enum OnDemandError {
    #[error("on-demand feature view '{view}' needs Python to run its transformation, and none is configured: start featgrid with --python PATH (setting `python`, FEATGRID_PYTHON), the python of an environment where `feast` is installed")]
    NotEnabled { view: String },
    #[error(
        "on-demand feature view '{view}': every Python worker is busy ({why}); try again shortly"
    )]
    Busy { view: String, why: String },
    #[error("on-demand feature view '{view}': the transformation took longer than {ms} ms (python_timeout_ms); its worker was restarted")]
    Timeout { view: String, ms: u128 },
    #[error("on-demand feature view '{view}': the Python worker failed ({detail}); it is being restarted")]
    WorkerFailed { view: String, detail: String },
    #[error("on-demand feature view '{view}': no Python worker could be started: {detail}")]
    Unavailable { view: String, detail: String },
    #[error("on-demand feature view '{view}': the transformation raised {message}")]
    Transform { view: String, message: String },
    #[error("on-demand feature view '{view}': {detail}")]
    BadOutput { view: String, detail: String },
}

impl From<OnDemandError> for ApiError {
    fn from(e: OnDemandError) -> ApiError {
        let (status, code) = match &e {
            OnDemandError::NotEnabled { .. } => {
                (StatusCode::NOT_IMPLEMENTED, "ondemand_not_enabled")
            }
            OnDemandError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "ondemand_busy"),
            OnDemandError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "ondemand_timeout"),
            OnDemandError::WorkerFailed { .. } => {
                (StatusCode::BAD_GATEWAY, "ondemand_worker_failed")
            }
            OnDemandError::Unavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "ondemand_unavailable")
            }
            OnDemandError::Transform { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "transformation_failed")
            }
            OnDemandError::BadOutput { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "transformation_output_invalid",
            ),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// The pool the settings ask for: with `python` set and a Feast repo served (only a Feast
/// repo declares on-demand views).
pub fn pool_for(
    settings: &crate::config::Settings,
    counters: pool::Counters,
) -> Option<std::sync::Arc<Pool>> {
    let options = settings.ondemand_options()?;
    match &settings.feast {
        Some(repo) => Some(Pool::start(options, repo, counters)),
        None => {
            tracing::warn!("`python` is set but no Feast repo is served (--feast-repo): no on-demand feature views to run");
            None
        }
    }
}

/// Without a pool, says at start which on-demand views nothing computes: reads of those
/// computed at read time answer 501, and pushes leave the write-time ones as they are.
pub fn warn_not_computed(registry: &crate::registry::Registry) {
    let names: Vec<&str> = registry
        .on_demand_views
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    if !names.is_empty() {
        tracing::warn!(views = ?names, "on-demand feature views are not computed without `python` (--python): reads of them answer 501, pushes do not update the write-time ones");
    }
}
