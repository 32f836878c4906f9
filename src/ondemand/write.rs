//! Writes of on-demand views with `write_to_online_store=True`, as Feast's
//! `FeatureStore.write_to_online_store` does them: with `transform_on_write` (the default) the
//! written `df` goes through the transformation (Feast's `_transform_on_demand_feature_view_df`,
//! in a worker) and its output is stored; without it the `df` is stored as given. Either way
//! the rows are stamped with the time of the write, as Feast stamps them
//! (`_convert_arrow_odfv_to_proto`).
//!
//! A push computes them too ([`pushed_rows`]), which Feast 0.67's `push` does not: every
//! write-time view that reads a feature view the push source feeds, when the pushed `df`
//! holds every input the view reads (its source features and request fields), with
//! `transform_on_write` true (the default) and `to` including the online store. So a view
//! derived from pushed features stays as fresh as they are. A view that also reads inputs the
//! push does not carry is left alone (write it with `/write-to-online-store`).
//!
//! The Feast SDK's remote online store cannot write such a view, to featgrid as to Feast's own
//! server: it transforms client-side, then sends each join key twice per row (once as the
//! entity key, once as a field of the view's schema), a `df` whose columns differ in length.
//! Write it over HTTP with its inputs instead.

use std::borrow::Cow;

use super::arrow::{frame_batch, output_columns};
use super::pool::Request;
use super::read::source_features;
use super::{OnDemandError, Pool};
use crate::api::Frame;
use crate::error::ApiError;
use crate::registry::on_demand::{OnDemandView, WRITE_TIME_COLUMN};
use crate::registry::{Registry, ViewId};
use crate::value::cell::JsonCell;
use crate::value::{format_timestamp, now_micros};

/// The rows to store for `odfv` from a written `df`.
pub async fn rows_to_store<'a>(
    pool: Option<&Pool>,
    registry: &Registry,
    odfv: &OnDemandView,
    df: Frame<JsonCell<'a>>,
    transform_on_write: bool,
) -> Result<Frame<JsonCell<'a>>, ApiError> {
    let rows = crate::api::rows::row_count(&df, "df")?;
    let mut out = if transform_on_write && rows > 0 {
        let Some(pool) = pool else {
            return Err(OnDemandError::NotEnabled {
                view: odfv.name.clone(),
            }
            .into());
        };
        let bad = |detail: String| OnDemandError::BadOutput {
            view: odfv.name.clone(),
            detail,
        };
        let body = frame_batch(&df, rows).map_err(|e| ApiError::bad_request("invalid_value", e))?;
        let request = Request {
            view: odfv.name.clone(),
            op: "write",
            registry_version: registry.loaded_from.version_id.clone(),
            full_feature_names: false,
            views: Vec::new(),
        };
        let answer = pool.run(request, body).await?;
        let (columns, out_rows) = output_columns(&answer).map_err(bad)?;
        if out_rows != rows {
            return Err(bad(format!(
                "the transformation returned {out_rows} rows for {rows} written rows"
            ))
            .into());
        }
        columns.into_iter().collect::<Frame<JsonCell<'a>>>()
    } else {
        df
    };
    if rows > 0 {
        let now = JsonCell::Str(Cow::Owned(format_timestamp(now_micros())));
        out.insert(WRITE_TIME_COLUMN.to_string(), vec![now; rows]);
        out.shift_remove("created");
    }
    Ok(out)
}

/// The write-time views a push of `df` to feature views `pushed` computes, in the registry's
/// order, each with its stored view. None when no pool runs (the log says so at start) or
/// when the df lacks their inputs.
pub fn computed_on_push<'r, C>(
    pool: Option<&Pool>,
    registry: &'r Registry,
    pushed: &[ViewId],
    df: &Frame<C>,
) -> Vec<(&'r OnDemandView, ViewId)> {
    if pool.is_none() || registry.on_demand_views.is_empty() {
        return Vec::new();
    }
    let fed = |view: &str| {
        pushed
            .iter()
            .any(|&id| registry.feature_views[id].name == view)
    };
    registry
        .on_demand_views
        .iter()
        .filter(|odfv| odfv.write_to_online_store)
        .filter(|odfv| odfv.sources.iter().any(|s| fed(&s.view)))
        .filter(|odfv| {
            let given = odfv.sources.iter().all(|s| {
                source_features(registry, &s.view, &s.features)
                    .iter()
                    .all(|f| df.contains_key(f))
            }) && odfv.request_fields.iter().all(|f| df.contains_key(&f.name));
            if !given {
                tracing::debug!(view = %odfv.name, "a push does not carry every input of this write-time view: not computed");
            }
            given
        })
        .filter_map(|odfv| Some((odfv, registry.view(&odfv.name).ok()?.id)))
        .collect()
}

/// The rows a push stores in each view of [`computed_on_push`]: the transformation run on the
/// pushed `df`, every view's before any is stored.
pub async fn pushed_rows<'a>(
    pool: Option<&Pool>,
    registry: &Registry,
    views: &[(&OnDemandView, ViewId)],
    df: &Frame<JsonCell<'a>>,
) -> Result<Vec<Frame<JsonCell<'a>>>, ApiError> {
    let mut out = Vec::with_capacity(views.len());
    for (odfv, _) in views {
        out.push(rows_to_store(pool, registry, odfv, df.clone(), true).await?);
    }
    Ok(out)
}
