//! Feast-compatible routes, same paths, bodies and answers as Feast 0.67's feature server.
//!
//! - `POST /push` `{push_source_name, df, to}`: rows for every view the source feeds.
//! - `POST /write-to-online-store` `{feature_view_name, df}`: rows for one view.
//! - `POST /get-online-features` `{features | feature_service, entities, full_feature_names}`:
//!   Feast's column-major answer, rendered straight into one buffer.
//!
//! Unknown request fields are ignored, as Feast does. As Feast also does: a single value in
//! `df` is repeated for every row ([`frame`]); Python's bare `NaN`/`Infinity` tokens are read
//! for float features ([`crate::value::nonfinite`]); an empty `features` beside a
//! `feature_service` is not given; entity names stand for join keys in `entities`
//! ([`super::lookup`]); `include_feature_view_version_metadata` lists the views read.

use std::borrow::Cow;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::lookup::{echo_value, lookup, Lookup, Selection};
use super::rows::{store_batches, to_batches, write_rows};
use super::{
    check_answer_size, columns_with, parse_json, read_body, unique_columns, AppState, BodyKind,
    Frame, Limits,
};
use crate::auth::check_views;
use crate::error::ApiError;
use crate::persist::wal::Destination;
use crate::registry::Registry;
use crate::value::cell::{recycle_lists, JsonCell, JsonList, Scalar, ScalarList};
use crate::value::{nonfinite, Cell};
use crate::value::{render_json, render_str, write_timestamp, EPOCH_RFC3339};

/// A `df` as Feast reads it (into a pandas DataFrame): a column is a list with one value per
/// row, or a single value that is repeated for every row ([`frame`]).
pub type Columns<'a> = indexmap::IndexMap<String, JsonCell<'a>>;

/// The body of `POST /push`; cells borrow their strings from the body.
#[derive(Debug, Deserialize)]
pub struct PushRequest<'a> {
    pub push_source_name: String,
    #[serde(borrow, deserialize_with = "unique_columns")]
    pub df: Columns<'a>,
    #[serde(default)]
    pub to: Option<String>,
    /// Compute the write-time on-demand views fed by this push (featgrid's addition to Feast,
    /// [`crate::ondemand::write`]); Feast's request has the field, with the same default.
    #[serde(default = "yes")]
    pub transform_on_write: bool,
}

/// The body of `POST /push` when every column of `df` is a list of [`Scalar`]s, the usual
/// push; the same fields as [`PushRequest`].
#[derive(Debug, Deserialize)]
struct ScalarPush<'a> {
    push_source_name: String,
    #[serde(borrow, deserialize_with = "scalar_columns")]
    df: Frame<Scalar<'a>>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default = "yes")]
    transform_on_write: bool,
}

/// The body of `POST /write-to-online-store` when every column of `df` is a list of
/// [`Scalar`]s; the same fields as [`WriteRequest`].
#[derive(Debug, Deserialize)]
struct ScalarWrite<'a> {
    feature_view_name: String,
    #[serde(borrow, deserialize_with = "scalar_columns")]
    df: Frame<Scalar<'a>>,
    #[serde(default = "yes")]
    #[allow(dead_code)] // parsed so that a bad value takes the general path and its error
    transform_on_write: bool,
}

fn scalar_columns<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Frame<Scalar<'a>>, D::Error> {
    columns_with(deserializer, ScalarList::default())
}

fn json_columns<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Frame<JsonCell<'a>>, D::Error> {
    columns_with(deserializer, JsonList::default())
}

#[derive(Debug, Deserialize)]
struct WriteRequest<'a> {
    feature_view_name: String,
    #[serde(borrow, deserialize_with = "unique_columns")]
    df: Columns<'a>,
    /// For an on-demand view with write_to_online_store=True: run its transformation on `df`
    /// (Feast's default) or store `df` as given.
    #[serde(default = "yes")]
    transform_on_write: bool,
}

fn yes() -> bool {
    true
}

/// The content type of JSON answers, parsed once (a `&str` is parsed and copied per answer).
const JSON: actix_web::http::header::HeaderValue =
    actix_web::http::header::HeaderValue::from_static("application/json");

/// A feature reference as given, borrowed from the body unless it had to be unescaped.
#[derive(Debug, Deserialize)]
struct Name<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl AsRef<str> for Name<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Deserialize)]
struct ReadRequest<'a> {
    #[serde(default, borrow)]
    features: Option<Vec<Name<'a>>>,
    #[serde(default)]
    feature_service: Option<String>,
    #[serde(borrow, deserialize_with = "json_columns")]
    entities: Frame<JsonCell<'a>>,
    #[serde(default)]
    full_feature_names: bool,
    #[serde(default)]
    include_feature_view_version_metadata: bool,
}

/// Where a push's `to` sends its rows (Feast's default is `online`).
pub fn push_destination(to: Option<&str>) -> Result<Destination, ApiError> {
    match to.unwrap_or("online") {
        "online" => Ok(Destination::ONLINE),
        "offline" => Ok(Destination {
            online: false,
            offline: true,
        }),
        "online_and_offline" => Ok(Destination {
            online: true,
            offline: true,
        }),
        other => Err(ApiError::bad_request(
            "invalid_push_mode",
            format!(
                "\"to\" is '{other}': expected \"online\", \"offline\" or \"online_and_offline\""
            ),
        )),
    }
}

/// Resolves `features` or `feature_service` (exactly one must be given). An empty `features`
/// beside a service is not given: Feast's request model defaults `features` to `[]`, so
/// generated clients send both.
pub fn resolve_features<S: AsRef<str>>(
    registry: &Registry,
    features: Option<&[S]>,
    service: Option<&str>,
) -> Result<Selection, ApiError> {
    let features = features.filter(|f| !f.is_empty() || service.is_none());
    match (features, service) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "ambiguous_features",
            "give either \"features\" or \"feature_service\", not both",
        )),
        (None, None) => Err(ApiError::bad_request(
            "missing_features",
            "give \"features\": [\"view:feature\", ...] or \"feature_service\": \"name\"",
        )),
        (Some(features), None) => Ok(Selection {
            refs: features
                .iter()
                .map(|f| registry.resolve_ref(f.as_ref()))
                .collect::<Result<_, _>>()?,
            aliases: Vec::new(),
        }),
        (None, Some(service)) => {
            let service = registry.feature_service(service)?;
            Ok(Selection {
                refs: service.refs.clone(),
                aliases: service.aliases.clone(),
            })
        }
    }
}

/// The body as JSON text, with Python's bare `NaN`, `Infinity` and `-Infinity` tokens made
/// readable as floats ([`nonfinite`]).
pub fn json_text(body: &[u8]) -> Cow<'_, [u8]> {
    nonfinite::mark_non_finite(body).map_or(Cow::Borrowed(body), Cow::Owned)
}

/// The columns as lists of one value per row: a single value beside list columns is repeated
/// for every row, as pandas does when Feast builds its DataFrame. (Lists of different lengths
/// are left for [`super::rows::row_count`] to refuse.)
pub fn frame(df: Columns<'_>) -> Result<Frame<JsonCell<'_>>, ApiError> {
    let Some(rows) = df.values().find_map(|c| c.as_list().map(<[_]>::len)) else {
        if df.is_empty() {
            return Ok(Frame::new());
        }
        return Err(ApiError::bad_request(
            "invalid_request",
            "every column of df is a single value: give the columns as lists, one value per row (a single value beside them is repeated for every row)",
        ));
    };
    Ok(df
        .into_iter()
        .map(|(name, column)| match column {
            JsonCell::List(values) => (name, values),
            single => (name, vec![single; rows]),
        })
        .collect())
}

pub async fn push(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, body, &state.limits, BodyKind::Write).await?;
    let text = json_text(&body);
    let registry = state.registry.current();
    let pool = state.ondemand.as_deref();
    // The usual push (every column a list of numbers, plain strings, booleans and nulls) is
    // read into `Scalar` cells, in about half the time of `JsonCell`s, and stored as the
    // general path below would store it. Any other body (a single value for a column, an
    // escaped string, a NaN, a list or object value, a malformed body) takes the general
    // path, whose errors name what is wrong; so does a push feeding write-time on-demand
    // views, which read `JsonCell` frames.
    if let Ok(request) = serde_json::from_slice::<ScalarPush>(&text) {
        let source = registry.push_source(&request.push_source_name)?;
        let dest = push_destination(request.to.as_deref())?;
        let derived = dest.online
            && request.transform_on_write
            && !crate::ondemand::write::computed_on_push(
                pool,
                &registry,
                &source.views,
                &request.df,
            )
            .is_empty();
        if !derived {
            check_views(&req, &registry, source.views.iter().copied())?;
            let batches = to_batches(&state, &source.views, &request.df)?;
            recycle_lists(request.df.into_values());
            store_batches(&state, batches, dest).await?;
            return Ok(HttpResponse::Ok().finish());
        }
    }
    let request: PushRequest = parse_json(&text)?;
    let source = registry.push_source(&request.push_source_name)?;
    let dest = push_destination(request.to.as_deref())?;
    let df = frame(request.df)?;
    let derived = match dest.online && request.transform_on_write {
        true => crate::ondemand::write::computed_on_push(pool, &registry, &source.views, &df),
        false => Vec::new(),
    };
    let derived_views = derived.iter().map(|(_, id)| *id);
    check_views(
        &req,
        &registry,
        source.views.iter().copied().chain(derived_views),
    )?;
    // The pushed rows are stored whatever becomes of the write-time views they feed: a
    // transformation that fails (or Python that is down) fails the push loudly, after them.
    let derived_rows = crate::ondemand::write::pushed_rows(pool, &registry, &derived, &df).await;
    write_rows(&state, &source.views, &df, dest).await?;
    let derived_rows = derived_rows.map_err(|mut e| {
        e.message.push_str(" (the pushed rows were stored; the write-time on-demand views they feed were not updated: push again to retry)");
        e
    })?;
    for ((_, view), rows) in derived.iter().zip(&derived_rows) {
        write_rows(&state, &[*view], rows, Destination::ONLINE).await?;
    }
    Ok(HttpResponse::Ok().finish())
}

pub async fn write_to_online_store(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, body, &state.limits, BodyKind::Write).await?;
    let text = json_text(&body);
    let registry = state.registry.current();
    // As in `push`: the usual `df` (what the Feast SDK's push, write and remote materialize
    // send) is read into `Scalar` cells; any other body, and a write to an on-demand view,
    // takes the general path.
    if let Ok(request) = serde_json::from_slice::<ScalarWrite>(&text) {
        let view = registry.view(&request.feature_view_name)?;
        if registry.on_demand_view(&view.name).is_none() {
            check_views(&req, &registry, [view.id])?;
            let batches = to_batches(&state, &[view.id], &request.df)?;
            recycle_lists(request.df.into_values());
            store_batches(&state, batches, Destination::ONLINE).await?;
            return Ok(HttpResponse::Ok().content_type(JSON).body("null"));
        }
    }
    let request: WriteRequest = parse_json(&text)?;
    let view = registry.view(&request.feature_view_name)?;
    check_views(&req, &registry, [view.id])?;
    let mut df = frame(request.df)?;
    if let Some(odfv) = registry.on_demand_view(&view.name) {
        df = crate::ondemand::write::rows_to_store(
            state.ondemand.as_deref(),
            &registry,
            odfv,
            df,
            request.transform_on_write,
        )
        .await?;
    }
    write_rows(&state, &[view.id], &df, Destination::ONLINE).await?;
    Ok(HttpResponse::Ok().content_type(JSON).body("null"))
}

pub async fn get_online_features(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, body, &state.limits, BodyKind::Read).await?;
    let text = json_text(&body);
    let request: ReadRequest = parse_json(&text)?;
    let registry = state.registry.current();
    let planned = crate::ondemand::read::plan(
        &registry,
        request.features.as_deref(),
        request.feature_service.as_deref(),
    )?;
    if let Some(plan) = planned {
        return on_demand_read(&state, &req, &registry, plan, &request).await;
    }
    let selection = resolve_features(
        &registry,
        request.features.as_deref(),
        request.feature_service.as_deref(),
    )?;
    check_views(&req, &registry, selection.refs.iter().map(|r| r.view))?;
    let views = request
        .include_feature_view_version_metadata
        .then(|| view_names(&registry, &selection));
    let found = lookup(
        &state,
        selection,
        &request.entities,
        request.full_feature_names,
        super::cluster::consistency(&req)?,
    )
    .await?;
    let shown = found.refs.len();
    let body = render(
        &found,
        shown,
        &[],
        &request.entities,
        views.as_deref(),
        &state.limits,
    )?;
    Ok(HttpResponse::Ok().content_type(JSON).body(body))
}

/// A read naming on-demand views computed at read time ([`crate::ondemand::read`]).
async fn on_demand_read(
    state: &AppState,
    req: &HttpRequest,
    registry: &Registry,
    plan: crate::ondemand::read::Plan,
    request: &ReadRequest<'_>,
) -> Result<HttpResponse, ApiError> {
    use crate::ondemand::read::{compute, shown_names};
    check_views(req, registry, plan.selection.refs.iter().map(|r| r.view))?;
    let names = shown_names(registry, &plan, request.full_feature_names)?;
    let views = request.include_feature_view_version_metadata.then(|| {
        let shown = Selection {
            refs: plan.selection.refs[..plan.shown].to_vec(),
            aliases: plan.selection.aliases[..plan.shown.min(plan.selection.aliases.len())]
                .to_vec(),
        };
        view_names(registry, &shown)
    });
    // Full names inside: a source read only for a transformation may share its short name
    // with a requested feature.
    let mut found = lookup(
        state,
        plan.selection.clone(),
        &request.entities,
        true,
        super::cluster::consistency(req)?,
    )
    .await?;
    let computed = compute(
        state.ondemand.as_deref(),
        registry,
        &plan,
        &found,
        &request.entities,
        request.full_feature_names,
    )
    .await?;
    found.rename(names);
    let body = render(
        &found,
        plan.shown,
        &computed,
        &request.entities,
        views.as_deref(),
        &state.limits,
    )?;
    Ok(HttpResponse::Ok().content_type(JSON).body(body))
}

/// The views a selection reads (under their alias in a feature service, as Feast names them),
/// in order of first appearance: Feast's `feature_view_metadata`.
fn view_names(registry: &Registry, selection: &Selection) -> Vec<(String, u32)> {
    let mut names: Vec<(String, u32)> = Vec::new();
    for (i, r) in selection.refs.iter().enumerate() {
        let view = &registry.feature_views[r.view];
        let alias = selection.aliases.get(i).and_then(Option::as_deref);
        let name = alias.unwrap_or(&view.name);
        if !names.iter().any(|(n, _)| n == name) {
            names.push((name.to_string(), view.version_number));
        }
    }
    names
}

/// Feast's column-major JSON: join-key columns first, then one column per feature. With
/// `views`, the metadata also lists them as Feast's `feature_view_metadata` with their
/// `current_version_number` (Feast leaves version 0 out, and so does featgrid).
fn render(
    found: &Lookup<'_>,
    shown: usize,
    computed: &[crate::ondemand::read::Computed],
    entities: &Frame<JsonCell<'_>>,
    views: Option<&[(String, u32)]>,
    limits: &Limits,
) -> Result<Vec<u8>, ApiError> {
    let rows = found.rows;
    let mut out = Vec::with_capacity(128 + (found.name_count() + found.echoed.len()) * rows * 48);
    out.extend_from_slice(b"{\"metadata\":{\"feature_names\":[");
    let names = found
        .echoed
        .iter()
        .map(|e| e.name.as_str())
        .chain((0..shown).map(|f| found.name(f)))
        .chain(computed.iter().map(|c| c.name.as_str()));
    for (i, name) in names.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        render_str(name, &mut out);
    }
    out.push(b']');
    if let Some(views) = views {
        out.extend_from_slice(b",\"feature_view_metadata\":[");
        for (i, (name, version)) in views.iter().enumerate() {
            comma(&mut out, i);
            out.extend_from_slice(b"{\"name\":");
            render_str(name, &mut out);
            if *version > 0 {
                out.extend_from_slice(b",\"version\":");
                out.extend_from_slice(itoa::Buffer::new().format(*version).as_bytes());
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    out.extend_from_slice(b"},\"results\":[");
    let mut scratch = Vec::new();
    for (c, key) in found.echoed.iter().enumerate() {
        if c > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"values\":[");
        let values = &entities[key.column];
        for (row, value) in values.iter().enumerate() {
            comma(&mut out, row);
            render_json(key.ty, echo_value(key, value, row, &mut scratch)?, &mut out);
        }
        close_present_column(&mut out, rows);
    }
    // Event timestamp texts of the previous feature column, reused when the next feature
    // comes from the same view (all of a view's features share the row's event time).
    let mut ts_text: Vec<u8> = Vec::with_capacity(rows * 28);
    let mut ts_spans: Vec<(usize, usize)> = Vec::with_capacity(rows);
    for f in 0..shown {
        if f > 0 || !found.echoed.is_empty() {
            out.push(b',');
        }
        let dtype = found.dtype(f);
        let field = found.refs[f].field;
        out.extend_from_slice(b"{\"values\":[");
        for row in 0..rows {
            comma(&mut out, row);
            match found.row(f, row) {
                Some(stored) if !stored.is_null(field) => {
                    render_json(dtype, stored.field(field), &mut out)
                }
                _ => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b"],\"statuses\":[");
        for row in 0..rows {
            comma(&mut out, row);
            quoted(&mut out, found.status(f, row).0.as_str().as_bytes());
        }
        if f == 0 || !found.same_view(f, f - 1) {
            ts_text.clear();
            ts_spans.clear();
            for row in 0..rows {
                let start = ts_text.len();
                match found.row(f, row) {
                    Some(stored) => write_timestamp(stored.event_ts(), &mut ts_text),
                    None => ts_text.extend_from_slice(EPOCH_RFC3339.as_bytes()),
                }
                ts_spans.push((start, ts_text.len()));
            }
        }
        out.extend_from_slice(b"],\"event_timestamps\":[");
        for (row, &(start, end)) in ts_spans.iter().enumerate() {
            comma(&mut out, row);
            quoted(&mut out, &ts_text[start..end]);
        }
        out.extend_from_slice(b"]}");
        check_answer_size(out.len(), limits)?;
    }
    // On-demand outputs: PRESENT, at the epoch, as Feast's server answers them.
    for (c, column) in computed.iter().enumerate() {
        if c > 0 || shown > 0 || !found.echoed.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"values\":[");
        for (row, value) in column.values.iter().enumerate() {
            comma(&mut out, row);
            match value {
                Some(bytes) => render_json(column.dtype, bytes, &mut out),
                None => out.extend_from_slice(b"null"),
            }
        }
        close_present_column(&mut out, rows);
        check_answer_size(out.len(), limits)?;
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Ends a column whose `rows` values are all present with no event time of their own (entity
/// keys, request data): its statuses and event timestamps.
fn close_present_column(out: &mut Vec<u8>, rows: usize) {
    out.extend_from_slice(b"],\"statuses\":[");
    for row in 0..rows {
        comma(out, row);
        quoted(out, b"PRESENT");
    }
    out.extend_from_slice(b"],\"event_timestamps\":[");
    for row in 0..rows {
        comma(out, row);
        quoted(out, EPOCH_RFC3339.as_bytes());
    }
    out.extend_from_slice(b"]}");
}

fn comma(out: &mut Vec<u8>, index: usize) {
    if index > 0 {
        out.push(b',');
    }
}

/// Appends text that needs no escaping, in quotes.
fn quoted(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(text);
    out.push(b'"');
}
