//! Writes of on-demand views with `write_to_online_store=True`, as Feast's
//! `FeatureStore.write_to_online_store` does them: with `transform_on_write` (the default) the
//! written `df` goes through the transformation (Feast's `_transform_on_demand_feature_view_df`,
//! in a worker) and its output is stored; without it the `df` is stored as given. Either way
//! the rows are stamped with the time of the write, as Feast stamps them
//! (`_convert_arrow_odfv_to_proto`).
//!
//! The Feast SDK's remote online store cannot write such a view, to featgrid as to Feast's own
//! server: it transforms client-side, then sends each join key twice per row (once as the
//! entity key, once as a field of the view's schema), a `df` whose columns differ in length.
//! Write it over HTTP with its inputs instead.

use std::borrow::Cow;

use super::arrow::{frame_batch, output_columns};
use super::pool::Request;
use super::{OnDemandError, Pool};
use crate::api::Frame;
use crate::error::ApiError;
use crate::registry::on_demand::{OnDemandView, WRITE_TIME_COLUMN};
use crate::registry::Registry;
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
            requested: Vec::new(),
            name_to_use: odfv.name.clone(),
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
