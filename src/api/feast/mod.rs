//! Feast-compatible routes, same paths, bodies and answers as Feast 0.67's feature server.
//!
//! - `POST /push` `{push_source_name, df, to}`: rows for every view the source feeds.
//! - `POST /write-to-online-store` `{feature_view_name, df}`: rows for one view.
//! - `POST /get-online-features` `{features | feature_service, entities, full_feature_names}`.
//!
//! Unknown request fields are ignored, as Feast does.

mod push;
mod read;

use actix_web::{web, HttpRequest, HttpResponse};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value as Json;

use super::{json_body, AppState};
use crate::error::ApiError;

/// A columnar data frame: column name -> one value per row, in the order given.
pub type Columns = IndexMap<String, Vec<Json>>;

#[derive(Debug, Deserialize)]
struct PushRequest {
    push_source_name: String,
    df: Columns,
    #[serde(default)]
    to: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WriteRequest {
    feature_view_name: String,
    df: Columns,
}

#[derive(Debug, Deserialize)]
struct ReadRequest {
    #[serde(default)]
    features: Option<Vec<String>>,
    #[serde(default)]
    feature_service: Option<String>,
    entities: Columns,
    #[serde(default)]
    full_feature_names: bool,
}

pub async fn push(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: PushRequest = json_body(&req, body, state.limits.max_body_bytes).await?;
    let source = state.registry.push_source(&request.push_source_name)?;
    match request.to.as_deref().unwrap_or("online") {
        "online" => {}
        "offline" | "online_and_offline" => {
            return Err(ApiError::bad_request(
                "offline_store_unavailable",
                "this featgrid has no offline store yet: push with \"to\": \"online\"",
            ))
        }
        other => {
            return Err(ApiError::bad_request(
                "invalid_push_mode",
                format!(
                "\"to\" is '{other}': expected \"online\", \"offline\" or \"online_and_offline\""
            ),
            ))
        }
    }
    push::write_rows(&state, &source.views, &request.df).await?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn write_to_online_store(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: WriteRequest = json_body(&req, body, state.limits.max_body_bytes).await?;
    let view = state.registry.view(&request.feature_view_name)?;
    push::write_rows(&state, &[view.id], &request.df).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body("null"))
}

pub async fn get_online_features(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: ReadRequest = json_body(&req, body, state.limits.max_body_bytes).await?;
    let refs = match (&request.features, &request.feature_service) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "ambiguous_features",
                "give either \"features\" or \"feature_service\", not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "missing_features",
                "give \"features\": [\"view:feature\", ...] or \"feature_service\": \"name\"",
            ))
        }
        (Some(features), None) => features
            .iter()
            .map(|f| state.registry.resolve_ref(f))
            .collect::<Result<Vec<_>, _>>()?,
        (None, Some(service)) => state.registry.feature_service(service)?.refs.clone(),
    };
    let body =
        read::read_features(&state, &refs, &request.entities, request.full_feature_names).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}
