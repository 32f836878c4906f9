//! Feast-compatible routes, same paths, bodies and answers as Feast 0.67's feature server.
//!
//! - `POST /push` `{push_source_name, df, to}`: rows for every view the source feeds.
//! - `POST /write-to-online-store` `{feature_view_name, df}`: rows for one view.
//! - `POST /get-online-features` `{features | feature_service, entities, full_feature_names}`:
//!   Feast's column-major answer, rendered straight into one buffer.
//!
//! Unknown request fields are ignored, as Feast does.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::lookup::{echo_value, lookup, Lookup, Selection};
use super::rows::write_rows;
use super::{parse_json, read_body, AppState, Frame};
use crate::cluster::Consistency;
use crate::error::ApiError;
use crate::persist::wal::Destination;
use crate::registry::Registry;
use crate::value::cell::JsonCell;
use crate::value::{render_json, render_str, write_timestamp, EPOCH_RFC3339};

/// The body of `POST /push`; cells borrow their strings from the body.
#[derive(Debug, Deserialize)]
pub struct PushRequest<'a> {
    pub push_source_name: String,
    #[serde(borrow)]
    pub df: Frame<JsonCell<'a>>,
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WriteRequest<'a> {
    feature_view_name: String,
    #[serde(borrow)]
    df: Frame<JsonCell<'a>>,
}

#[derive(Debug, Deserialize)]
struct ReadRequest<'a> {
    #[serde(default)]
    features: Option<Vec<String>>,
    #[serde(default)]
    feature_service: Option<String>,
    #[serde(borrow)]
    entities: Frame<JsonCell<'a>>,
    #[serde(default)]
    full_feature_names: bool,
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

/// Resolves `features` or `feature_service` (exactly one must be given).
pub fn resolve_features(
    registry: &Registry,
    features: Option<&[String]>,
    service: Option<&str>,
) -> Result<Selection, ApiError> {
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
                .map(|f| registry.resolve_ref(f))
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

pub async fn push(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, body, state.limits.max_body_bytes).await?;
    let request: PushRequest = parse_json(&body)?;
    let registry = state.registry.current();
    let source = registry.push_source(&request.push_source_name)?;
    let dest = push_destination(request.to.as_deref())?;
    write_rows(&state, &source.views, &request.df, dest).await?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn write_to_online_store(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, body, state.limits.max_body_bytes).await?;
    let request: WriteRequest = parse_json(&body)?;
    let registry = state.registry.current();
    let view = registry.view(&request.feature_view_name)?;
    write_rows(&state, &[view.id], &request.df, Destination::ONLINE).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body("null"))
}

pub async fn get_online_features(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, body, state.limits.max_body_bytes).await?;
    let request: ReadRequest = parse_json(&body)?;
    let selection = resolve_features(
        &state.registry.current(),
        request.features.as_deref(),
        request.feature_service.as_deref(),
    )?;
    let found = lookup(
        &state,
        selection,
        &request.entities,
        request.full_feature_names,
        Consistency::of(&req)?,
    )
    .await?;
    let body = render(&found, &request.entities)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// Feast's column-major JSON: join-key columns first, then one column per feature.
fn render(found: &Lookup<'_>, entities: &Frame<JsonCell<'_>>) -> Result<Vec<u8>, ApiError> {
    let rows = found.rows;
    let mut out = Vec::with_capacity(128 + (found.names.len() + found.echoed.len()) * rows * 48);
    out.extend_from_slice(b"{\"metadata\":{\"feature_names\":[");
    let names = found
        .echoed
        .iter()
        .map(|e| e.name)
        .chain(found.names.iter().map(String::as_str));
    for (i, name) in names.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        render_str(name, &mut out);
    }
    out.extend_from_slice(b"]},\"results\":[");
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
        out.extend_from_slice(b"],\"statuses\":[");
        for row in 0..rows {
            comma(&mut out, row);
            quoted(&mut out, b"PRESENT");
        }
        out.extend_from_slice(b"],\"event_timestamps\":[");
        for row in 0..rows {
            comma(&mut out, row);
            quoted(&mut out, EPOCH_RFC3339.as_bytes());
        }
        out.extend_from_slice(b"]}");
    }
    // Event timestamp texts of the previous feature column, reused when the next feature
    // comes from the same view (all of a view's features share the row's event time).
    let mut ts_text: Vec<u8> = Vec::with_capacity(rows * 28);
    let mut ts_spans: Vec<(usize, usize)> = Vec::with_capacity(rows);
    for f in 0..found.refs.len() {
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
    }
    out.extend_from_slice(b"]}");
    Ok(out)
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
