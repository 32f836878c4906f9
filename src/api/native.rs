//! The native binary path: the same push and read as the Feast routes, with bodies in
//! featgrid's binary codec ([`crate::persist::codec`], bincode today) instead of JSON. Values
//! travel typed ([`NativeValue`]): no base64, no number or timestamp text to parse or print.
//!
//! - `POST /native/v1/push`: a [`NativeWrite`]; answers 200 with an empty body.
//! - `POST /native/v1/get-online-features`: a [`NativeRead`]; answers a [`NativeAnswer`].
//!
//! Bodies use `Content-Type: application/x-featgrid-bincode`. Errors are the same JSON
//! `{"code", "message"}` as everywhere else. The types below are the protocol: clients link
//! this crate (`featgrid::api::native`) or mirror them.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::feast::{push_destination, resolve_features};
use super::lookup::{echo_value, lookup, Status};
use super::rows::write_rows;
use super::{check_answer_size, frame_of, read_body, AppState, BodyKind};
use crate::auth::check_views;
use crate::error::ApiError;
use crate::persist::codec;
use crate::persist::wal::Destination;
use crate::value::native::NativeValue;
use crate::value::{Micros, ValueType};

pub const CONTENT_TYPE: &str = "application/x-featgrid-bincode";

/// Where written rows go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WriteTarget {
    /// Every view the push source feeds, as `/push` does; `to` as in Feast (`None` = online).
    PushSource { name: String, to: Option<String> },
    /// One view, as `/write-to-online-store` does.
    FeatureView { name: String },
}

/// Rows to write: named columns of equal length (join keys, the event timestamp column,
/// optionally `created`, the features).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeWrite {
    pub target: WriteTarget,
    pub columns: Vec<(String, Vec<NativeValue>)>,
}

/// A read: `features` (`view:feature`) or `feature_service`, and entity columns by join key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeRead {
    pub features: Option<Vec<String>>,
    pub feature_service: Option<String>,
    pub entities: Vec<(String, Vec<NativeValue>)>,
    pub full_feature_names: bool,
}

/// One column of the answer: a value, status and event time (µs, 0 for none) per entity row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeColumn {
    pub values: Vec<NativeValue>,
    pub statuses: Vec<Status>,
    pub event_timestamps: Vec<Micros>,
}

/// The answer to a [`NativeRead`]: join-key columns first, then the features in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeAnswer {
    pub feature_names: Vec<String>,
    pub results: Vec<NativeColumn>,
}

async fn decode_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    kind: BodyKind,
) -> Result<T, ApiError> {
    let bytes = read_body(req, body, &state.limits, kind).await?;
    let (value, used) = codec::decode(&bytes).map_err(|e| {
        ApiError::bad_request(
            "malformed_body",
            format!("the body is not a valid native request: {e}"),
        )
    })?;
    if used != bytes.len() {
        return Err(ApiError::bad_request(
            "malformed_body",
            format!("{} bytes after the end of the request", bytes.len() - used),
        ));
    }
    Ok(value)
}

fn encoded<T: Serialize>(value: &T) -> Result<HttpResponse, ApiError> {
    let body = codec::encode(value)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(body))
}

pub async fn push(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: NativeWrite = decode_body(&req, body, &state, BodyKind::Write).await?;
    let registry = state.registry.current();
    let (views, dest) = match &request.target {
        WriteTarget::PushSource { name, to } => {
            let source = registry.push_source(name)?;
            (source.views.clone(), push_destination(to.as_deref())?)
        }
        WriteTarget::FeatureView { name } => (vec![registry.view(name)?.id], Destination::ONLINE),
    };
    check_views(&req, &registry, views.iter().copied())?;
    let frame = frame_of(request.columns)?;
    write_rows(&state, &views, &frame, dest).await?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn get_online_features(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: NativeRead = decode_body(&req, body, &state, BodyKind::Read).await?;
    let registry = state.registry.current();
    let selection = resolve_features(
        &registry,
        request.features.as_deref(),
        request.feature_service.as_deref(),
    )?;
    check_views(&req, &registry, selection.refs.iter().map(|r| r.view))?;
    let entities = frame_of(request.entities)?;
    let found = lookup(
        &state,
        selection,
        &entities,
        request.full_feature_names,
        super::cluster::consistency(&req)?,
    )
    .await?;
    let rows = found.rows;
    let mut feature_names = Vec::with_capacity(found.echoed.len() + found.name_count());
    let mut results = Vec::with_capacity(feature_names.capacity());
    let mut scratch = Vec::new();
    // Encoded size so far, roughly: a value's stored bytes plus a few bytes of framing.
    let mut answer_bytes = 0usize;
    for key in &found.echoed {
        feature_names.push(key.name.to_string());
        let values = entities[key.column]
            .iter()
            .enumerate()
            .map(|(row, v)| {
                Ok(NativeValue::from_stored(
                    ValueType::scalar(key.ty.scalar),
                    echo_value(key, v, row, &mut scratch)?,
                ))
            })
            .collect::<Result<_, ApiError>>()?;
        results.push(NativeColumn {
            values,
            statuses: vec![Status::Present; rows],
            event_timestamps: vec![0; rows],
        });
    }
    for f in 0..found.refs.len() {
        let dtype = found.dtype(f);
        let field = found.refs[f].field;
        let mut column = NativeColumn {
            values: Vec::with_capacity(rows),
            statuses: Vec::with_capacity(rows),
            event_timestamps: Vec::with_capacity(rows),
        };
        for row in 0..rows {
            let (status, stored) = found.status(f, row);
            column.statuses.push(status);
            column
                .event_timestamps
                .push(stored.map_or(0, |s| s.event_ts()));
            column.values.push(match stored {
                Some(s) if !s.is_null(field) => {
                    answer_bytes += s.field(field).len();
                    NativeValue::from_stored(dtype, s.field(field))
                }
                _ => NativeValue::Null,
            });
        }
        answer_bytes += rows * 16;
        check_answer_size(answer_bytes, &state.limits)?;
        results.push(column);
    }
    feature_names.extend((0..found.name_count()).map(|f| found.name(f).to_string()));
    encoded(&NativeAnswer {
        feature_names,
        results,
    })
}
