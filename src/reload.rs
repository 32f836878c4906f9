//! The live registry: what requests read ([`LiveRegistry`], swapped atomically), and how a
//! new registry file from `feast apply` replaces it while serving.
//!
//! The watcher ([`watch`]) reads the Feast registry file every `cache_ttl_seconds` and on
//! SIGHUP. A changed file is decoded and validated whole ([`FeastRepo::decode`]); a file
//! that is refused leaves the loaded registry in place (logged). A valid one is [`merge`]d
//! into the loaded one so that ids stay stable (they index the shards' tables, the log and
//! the snapshots):
//!
//! - a view whose join keys and fields are unchanged takes its new definition (ttl, source,
//!   timestamp columns...) under its old id;
//! - a view whose join keys or fields changed is refused (logged, listed under
//!   `loaded_from.refused` in `GET /registry`) and keeps its loaded definition: its stored
//!   rows have the old form. A restart with `--recover` serves the new form (and drops them);
//! - a removed view is retired: unknown to requests (404), its rows kept until a restart;
//! - a new view gets the next id. Before the registry naming it is swapped in, every shard
//!   gets a table for it, the log starts a segment naming it, and the snapshotter and the
//!   offline sink learn it ([`apply`]), so no request can reach a view the grid lacks.
//!
//! Push sources and feature services are taken from the new file, resolved by name against
//! the merged views; a service that reads a feature a refused view does not have is refused
//! too (its loaded definition kept, if any).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use arc_swap::ArcSwap;

use crate::api::AppState;
use crate::grid::coordinator::GridError;
use crate::grid::partition::RowLayout;
use crate::persist::wal::WalError;
use crate::persist::ViewMeta;
use crate::registry::feast::FeastRepo;
use crate::registry::{FeatureRef, FeatureService, FeatureView, PushSource, Registry, ViewId};

/// The registry requests read: one atomic load per request, replaced whole by a reload.
pub struct LiveRegistry {
    current: ArcSwap<Registry>,
    /// One reload at a time.
    applying: tokio::sync::Mutex<()>,
}

impl LiveRegistry {
    pub fn new(registry: Arc<Registry>) -> LiveRegistry {
        LiveRegistry {
            current: ArcSwap::new(registry),
            applying: tokio::sync::Mutex::new(()),
        }
    }

    /// The registry now. A request holds it for its whole course: ids never change meaning,
    /// so a reload meanwhile cannot make them point elsewhere.
    pub fn current(&self) -> Arc<Registry> {
        self.current.load_full()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the shards could not take the new views: {0}")]
    Grid(#[from] GridError),
    #[error("the write-ahead log could not start a segment naming the new views: {0}")]
    Wal(#[from] WalError),
}

/// What a reload changed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub retired: Vec<String>,
    pub refused: Vec<String>,
}

/// `fresh` (validated on its own) laid over `current`: stable ids, refused schema changes,
/// retired views (see the module documentation).
pub fn merge(current: &Registry, fresh: Registry) -> (Registry, Changes) {
    let mut changes = Changes::default();
    let mut refused = Vec::new();
    let mut views: Vec<FeatureView> = Vec::with_capacity(current.feature_views.len());
    for old in &current.feature_views {
        let view = match fresh.view(&old.name) {
            Ok(new) if ViewMeta::of(new) == ViewMeta::of(old) => {
                if old.retired {
                    changes.added.push(format!("feature view '{}'", old.name));
                }
                FeatureView {
                    id: old.id,
                    retired: false,
                    ..new.clone()
                }
            }
            Ok(new) => {
                let kept = if old.retired {
                    "it was removed, and stays unserved since its stored rows have the old form"
                } else {
                    "the loaded definition is kept, since its stored rows have that form"
                };
                refused.push(format!(
                    "feature view '{}': its join keys or fields changed from {} to {}; {kept} (restart with --recover to serve the new one: its rows are then dropped)",
                    old.name,
                    ViewMeta::of(old).schema,
                    ViewMeta::of(new).schema
                ));
                old.clone()
            }
            Err(_) => {
                if !old.retired {
                    changes.retired.push(format!("feature view '{}'", old.name));
                }
                FeatureView {
                    retired: true,
                    ..old.clone()
                }
            }
        };
        views.push(view);
    }
    for new in fresh.serving_views() {
        if current.feature_views.iter().all(|v| v.name != new.name) {
            changes.added.push(format!("feature view '{}'", new.name));
            views.push(FeatureView {
                id: views.len(),
                ..new.clone()
            });
        }
    }
    // Fresh view id -> merged id, for the views requests can reach.
    let by_name: HashMap<&str, &FeatureView> = views
        .iter()
        .filter(|v| !v.retired)
        .map(|v| (v.name.as_str(), v))
        .collect();
    let merged_id = |fresh_id: ViewId| -> Option<ViewId> {
        by_name
            .get(fresh.feature_views[fresh_id].name.as_str())
            .map(|v| v.id)
    };

    let push_sources = fresh
        .push_sources
        .iter()
        .filter_map(|p| {
            let ids: Vec<ViewId> = p.views.iter().filter_map(|&v| merged_id(v)).collect();
            (!ids.is_empty()).then(|| PushSource {
                feature_views: ids.iter().map(|&v| views[v].name.clone()).collect(),
                views: ids,
                ..p.clone()
            })
        })
        .collect();

    let mut services = Vec::with_capacity(fresh.feature_services.len());
    for service in &fresh.feature_services {
        let refs: Option<Vec<FeatureRef>> = service
            .features
            .iter()
            .map(|name| {
                let (view, feature) = name.split_once(':')?;
                let view = by_name.get(view)?;
                Some(FeatureRef {
                    view: view.id,
                    field: view.field_index(feature)?,
                })
            })
            .collect();
        match refs {
            Some(refs) => services.push(FeatureService {
                refs,
                ..service.clone()
            }),
            None => {
                let kept = current.feature_service(&service.name).ok();
                refused.push(format!(
                    "feature service '{}': it reads a feature that a refused feature view does not have; {}",
                    service.name,
                    if kept.is_some() { "the loaded definition is kept" } else { "it is not served" }
                ));
                services.extend(kept.cloned());
            }
        }
    }
    changes.refused = refused.clone();
    for s in &fresh.feature_services {
        if current.feature_service(&s.name).is_err() {
            changes.added.push(format!("feature service '{}'", s.name));
        }
    }
    for s in &current.feature_services {
        if fresh.feature_service(&s.name).is_err() {
            changes
                .retired
                .push(format!("feature service '{}'", s.name));
        }
    }
    for p in &current.push_sources {
        if fresh.push_source(&p.name).is_err() {
            changes.retired.push(format!("push source '{}'", p.name));
        }
    }

    let mut merged = Registry::from_parts(fresh.entities.clone(), views, push_sources, services);
    merged.batch_sources = fresh.batch_sources.clone();
    merged.on_demand_views = fresh.on_demand_views.clone();
    merged.on_demand_services = fresh.on_demand_services.clone();
    merged.loaded_from = fresh.loaded_from.clone();
    merged.loaded_from.refused = refused;
    (merged, changes)
}

/// Merges `fresh` into the live registry and swaps the result in, after the grid, the log,
/// the snapshotter and the offline sink know every new view. A failure leaves the loaded
/// registry serving; the same file can be applied again.
pub async fn apply(state: &AppState, fresh: Registry) -> Result<Changes, ReloadError> {
    let _one_at_a_time = state.registry.applying.lock().await;
    let current = state.registry.current();
    let (merged, changes) = merge(&current, fresh);
    if merged.feature_views.len() > current.feature_views.len() {
        let layouts = RowLayout::for_registry(&merged);
        let metas = ViewMeta::all(&merged);
        state.store.grid.add_views(layouts.clone()).await?;
        state.store.wal.set_views(metas.clone()).await?;
        state.snapshotter.set_views(metas);
        state
            .store
            .offline
            .set_views(merged.feature_views.clone(), layouts);
    } else {
        state
            .store
            .offline
            .set_views(merged.feature_views.clone(), state.store.grid.layouts());
    }
    state.registry.current.store(Arc::new(merged));
    Ok(changes)
}

/// How soon a registry file that was being written is read again.
const RETRY_SOON: Duration = Duration::from_secs(1);
/// Two reads of the registry file this far apart must agree before it is used: Feast
/// rewrites the file in place, so a read can catch it half written.
const SETTLE: Duration = Duration::from_millis(100);

/// Checks the repo's registry file every `cache_ttl` (never when zero) and on SIGHUP, and
/// applies it when it changed. Runs until the actix system stops.
pub fn watch(state: web::Data<AppState>, repo: FeastRepo) -> actix_rt::task::JoinHandle<()> {
    // Listening before the server starts: SIGHUP's default action ends the process.
    let mut hangup = hangup_signal();
    actix_rt::spawn(async move {
        let mut seen: Option<Vec<u8>> = None;
        let mut retry = false;
        loop {
            let wait = if retry {
                Some(RETRY_SOON)
            } else {
                (!repo.cache_ttl.is_zero()).then_some(repo.cache_ttl)
            };
            let forced = next_check(wait, &mut hangup).await;
            retry = check(&state, &repo, &mut seen, forced).await == Check::RetrySoon;
        }
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Check {
    Done,
    RetrySoon,
}

/// One look at the registry file. `seen`: the last bytes dealt with (applied, or refused).
async fn check(
    state: &AppState,
    repo: &FeastRepo,
    seen: &mut Option<Vec<u8>>,
    forced: bool,
) -> Check {
    let path = repo.registry_path.display();
    let bytes = match read_settled(repo).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Check::RetrySoon,
        Err(e) => {
            tracing::warn!(%path, error = %e, "cannot read the registry file; the loaded registry keeps serving");
            return Check::Done;
        }
    };
    let loaded = state.registry.current().loaded_from.version_id.clone();
    let unchanged = |seen: &mut Option<Vec<u8>>, bytes: Vec<u8>| {
        if forced {
            tracing::info!(%path, version_id = loaded.as_deref().unwrap_or(""), "SIGHUP: the registry file is unchanged");
        }
        *seen = Some(bytes);
        Check::Done
    };
    if seen.as_ref() == Some(&bytes) {
        return unchanged(seen, bytes);
    }
    let fresh = match repo.decode(&bytes) {
        // Feast writes a new version_id each time it writes the file.
        Ok(fresh) if loaded.is_some() && fresh.loaded_from.version_id == loaded => {
            return unchanged(seen, bytes)
        }
        Ok(fresh) => fresh,
        Err(e) => {
            tracing::error!(error = %e, "registry file refused; the loaded registry keeps serving");
            *seen = Some(bytes);
            return Check::Done;
        }
    };
    match apply(state, fresh).await {
        Ok(changes) => {
            for refused in &changes.refused {
                tracing::error!(%refused, "registry reload: change refused");
            }
            let now = state.registry.current();
            tracing::info!(
                %path,
                version_id = now.loaded_from.version_id.as_deref().unwrap_or(""),
                added = ?changes.added,
                removed = ?changes.retired,
                refused = changes.refused.len(),
                "registry reloaded"
            );
            *seen = Some(bytes);
            Check::Done
        }
        Err(e) => {
            tracing::error!(error = %e, "registry reload failed; the loaded registry keeps serving, retrying shortly");
            Check::RetrySoon
        }
    }
}

/// Waits `wait` (forever when `None`) or for SIGHUP; answers whether SIGHUP came.
async fn next_check(wait: Option<Duration>, hangup: &mut Option<Hangup>) -> bool {
    let timer = std::pin::pin!(async {
        match wait {
            Some(wait) => actix_rt::time::sleep(wait).await,
            None => std::future::pending().await,
        }
    });
    let signal = std::pin::pin!(async {
        match hangup {
            Some(hangup) => hangup.recv().await,
            None => std::future::pending().await,
        }
    });
    matches!(
        futures_util::future::select(timer, signal).await,
        futures_util::future::Either::Right(_)
    )
}

#[cfg(unix)]
type Hangup = actix_rt::signal::unix::Signal;

#[cfg(unix)]
fn hangup_signal() -> Option<Hangup> {
    use actix_rt::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup())
        .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP; the registry reloads on its timer only"))
        .ok()
}

/// No SIGHUP off Unix: a stand-in that never fires.
#[cfg(not(unix))]
struct Hangup;

#[cfg(not(unix))]
impl Hangup {
    async fn recv(&mut self) -> Option<()> {
        std::future::pending().await
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Option<Hangup> {
    None
}

/// The registry file's bytes once two reads [`SETTLE`] apart agree; `None` while it is being
/// written (or empty, as Feast leaves it between truncating and writing).
async fn read_settled(repo: &FeastRepo) -> std::io::Result<Option<Vec<u8>>> {
    let read = || {
        let path = repo.registry_path.clone();
        async move {
            actix_rt::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(std::io::Error::other)?
        }
    };
    let first = read().await?;
    actix_rt::time::sleep(SETTLE).await;
    let second = read().await?;
    Ok((!first.is_empty() && first == second).then_some(first))
}

#[cfg(test)]
mod tests;
