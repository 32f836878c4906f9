//! The one wire error. Every failure leaves the server as
//! `{"code": "snake_case_code", "message": "what happened and what to do"}` with an HTTP status;
//! each layer's error enum converts into it here, and nowhere else.
//!
//! Feast SDK users can have Feast's own shape instead ([`to_feast_error`], `error_format =
//! "feast"` or a `Featgrid-Error-Format: feast` request header): the Feast SDK turns an error
//! answer back into its own exception class only when the body is a JSON *string* holding
//! `{"module", "class", "message"}` (what Feast's server sends, `FeastError.to_error_detail()`).

use actix_web::body::EitherBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::grid::coordinator::GridError;
use crate::grid::partition::PartitionError;
use crate::persist::snapshot::SnapshotError;
use crate::persist::wal::WalError;
use crate::registry::RegistryError;

/// Seconds a client should wait after a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 413 `answer_too_large`: the one text, whether the answer was refused as the shards
    /// built it or once rendered.
    pub fn answer_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "answer_too_large",
            format!(
                "the answer would be larger than {limit} bytes (max_answer_bytes); ask for fewer entities or features per request"
            ),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[derive(serde::Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        // Kept beside the body so the answer can be re-rendered in Feast's shape.
        response.extensions_mut().insert(self.clone());
        response.json(Body {
            code: self.code,
            message: &self.message,
        })
    }
}

impl ApiError {
    /// The body Feast's own server would send: for 401 FastAPI's `{"detail": ...}`;
    /// otherwise a JSON string holding `{"module", "class", "message"}`, naming the Feast
    /// exception class of this error (`feast.errors.FeastError` itself, with the code in the
    /// message, where Feast has no closer class).
    pub fn feast_body(&self) -> String {
        if self.status == StatusCode::UNAUTHORIZED {
            return serde_json::json!({ "detail": self.message }).to_string();
        }
        let class = match self.code {
            "unknown_feature_view" => Some("FeatureViewNotFoundException"),
            "unknown_feature_service" => Some("FeatureServiceNotFoundException"),
            "unknown_push_source" => Some("PushSourceNotFoundException"),
            "forbidden" => Some("FeastPermissionError"),
            "feature_name_collision" => Some("FeatureNameCollisionError"),
            _ => None,
        };
        let detail = serde_json::json!({
            "module": "feast.errors",
            "class": class.unwrap_or("FeastError"),
            "message": match class {
                Some(_) => self.message.clone(),
                None => format!("{}: {}", self.code, self.message),
            },
        });
        serde_json::Value::String(detail.to_string()).to_string()
    }
}

/// Whether a request gets errors in Feast's shape: its `Featgrid-Error-Format` header
/// (`feast` or `featgrid`) if it has one, otherwise the server's `error_format`.
pub fn wants_feast_errors(headers: &header::HeaderMap, server_default: bool) -> bool {
    // Parsed once: a lookup by `&str` parses (and allocates) on every request.
    static ERROR_FORMAT: header::HeaderName =
        header::HeaderName::from_static("featgrid-error-format");
    match headers.get(&ERROR_FORMAT).map(|v| v.as_bytes()) {
        Some(b"feast") => true,
        Some(b"featgrid") => false,
        _ => server_default,
    }
}

/// Re-renders an error answer in Feast's shape (same status and headers); other answers pass
/// unchanged.
pub fn to_feast_error<B>(response: ServiceResponse<B>) -> ServiceResponse<EitherBody<B, String>> {
    let Some(body) = response
        .response()
        .extensions()
        .get::<ApiError>()
        .map(ApiError::feast_body)
    else {
        return response.map_into_left_body();
    };
    response.map_body(|head, _| {
        head.headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        head.headers.remove(header::CONTENT_LENGTH);
        EitherBody::right(body)
    })
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        let (status, code) = match &e {
            RegistryError::UnknownFeatureView { .. } => {
                (StatusCode::NOT_FOUND, "unknown_feature_view")
            }
            RegistryError::UnknownFeature { .. } => (StatusCode::NOT_FOUND, "unknown_feature"),
            RegistryError::UnknownFeatureService { .. } => {
                (StatusCode::NOT_FOUND, "unknown_feature_service")
            }
            RegistryError::UnknownPushSource { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unknown_push_source")
            }
            RegistryError::BadFeatureRef { .. } => {
                (StatusCode::BAD_REQUEST, "bad_feature_reference")
            }
            RegistryError::VersionedReference { .. } => {
                (StatusCode::BAD_REQUEST, "versioned_reference_unsupported")
            }
            RegistryError::Invalid { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "invalid_registry")
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::materialize::MaterializeError> for ApiError {
    fn from(e: crate::materialize::MaterializeError) -> ApiError {
        use crate::materialize::MaterializeError as M;
        let (status, code) = match &e {
            M::NoBatchSource { .. } => (StatusCode::BAD_REQUEST, "no_batch_source"),
            M::UnsupportedSource { .. } => (
                StatusCode::NOT_IMPLEMENTED,
                "materialize_unsupported_source",
            ),
            M::Read { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "offline_source_unreadable",
            ),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::persist::offline::OfflineError> for ApiError {
    fn from(e: crate::persist::offline::OfflineError) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "offline_sink_unavailable",
            e.to_string(),
        )
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        use crate::store::StoreError;
        match e {
            StoreError::Grid(e) => e.into(),
            StoreError::Wal(e) => e.into(),
            StoreError::Offline(e) => e.into(),
        }
    }
}

impl From<GridError> for ApiError {
    fn from(e: GridError) -> ApiError {
        let code = match &e {
            GridError::Overloaded { .. } => "shard_overloaded",
            GridError::Timeout { .. } => "shard_timeout",
            GridError::ShardStopped { .. } => "shard_unavailable",
            GridError::InconsistentShardFailure { .. } => "partial_shard_failure",
            GridError::Partition(PartitionError::TableFull { .. }) => {
                return ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "shard_full",
                    e.to_string(),
                )
            }
            GridError::Partition(PartitionError::AnswerTooLarge { limit }) => {
                return ApiError::answer_too_large(*limit)
            }
            GridError::Partition(PartitionError::UnknownView { .. }) => {
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, e.to_string())
    }
}

impl From<WalError> for ApiError {
    fn from(e: WalError) -> ApiError {
        match e {
            WalError::Encode(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
            WalError::Stalled { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "wal_stalled",
                e.to_string(),
            ),
            // The log cannot take the write: nothing was applied; retry later.
            _ => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "wal_unavailable",
                e.to_string(),
            ),
        }
    }
}

impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> ApiError {
        match e {
            SnapshotError::Grid(grid) => ApiError::from(grid),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "snapshot_failed",
                format!("{other}; the write-ahead log still holds every write"),
            ),
        }
    }
}

impl From<crate::cluster::ClusterError> for ApiError {
    fn from(e: crate::cluster::ClusterError) -> ApiError {
        use crate::cluster::ClusterError;
        let unavailable =
            |code| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, e.to_string());
        match &e {
            ClusterError::NoQuorum { .. } => unavailable("no_quorum"),
            ClusterError::PartialFailure { .. } => unavailable("partial_group_failure"),
            // A peer's own refusal keeps its code when it is one a client can act on.
            ClusterError::Peer { code, .. } => match code.as_str() {
                "shard_overloaded" => unavailable("shard_overloaded"),
                "shard_timeout" => unavailable("shard_timeout"),
                "wal_unavailable" => unavailable("wal_unavailable"),
                "no_quorum" => unavailable("no_quorum"),
                "cluster_overloaded" => unavailable("cluster_overloaded"),
                "memory_limit" => ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "memory_limit",
                    e.to_string(),
                ),
                "invalid_member_change" => {
                    ApiError::bad_request("invalid_member_change", e.to_string())
                }
                _ => ApiError::new(StatusCode::BAD_GATEWAY, "peer_failed", e.to_string()),
            },
            ClusterError::Grid(grid) => ApiError::from(grid.clone()),
            ClusterError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn overload_is_503_with_retry_after() {
        let e = ApiError::from(GridError::Overloaded {
            thread: 3,
            capacity: 10,
        });
        let response = e.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get("Retry-After").unwrap(), "1");
        let body = response.into_body().try_into_bytes().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], "shard_overloaded");
        assert!(json["message"].as_str().unwrap().contains("retry"));
    }

    #[test]
    fn a_failing_log_is_503_wal_unavailable() {
        let e = ApiError::from(WalError::Unavailable {
            reason: "write: disk full".into(),
        });
        assert_eq!(
            (e.status, e.code),
            (StatusCode::SERVICE_UNAVAILABLE, "wal_unavailable")
        );
        assert!(e.message.contains("disk full") && e.message.contains("reads keep working"));
        assert!(e.error_response().headers().get("Retry-After").is_some());
    }

    #[test]
    fn feast_bodies_are_json_strings_naming_feast_classes() {
        let view = ApiError::from(RegistryError::UnknownFeatureView { name: "x".into() });
        let outer: serde_json::Value = serde_json::from_str(&view.feast_body()).unwrap();
        let inner: serde_json::Value = serde_json::from_str(outer.as_str().unwrap()).unwrap();
        assert_eq!(inner["module"], "feast.errors");
        assert_eq!(inner["class"], "FeatureViewNotFoundException");
        assert_eq!(inner["message"], view.message.as_str());
        let other = ApiError::bad_request("invalid_value", "column 'a' row 0: bad");
        let outer: serde_json::Value = serde_json::from_str(&other.feast_body()).unwrap();
        let inner: serde_json::Value = serde_json::from_str(outer.as_str().unwrap()).unwrap();
        assert_eq!(inner["class"], "FeastError");
        assert_eq!(inner["message"], "invalid_value: column 'a' row 0: bad");
        let denied = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "no token");
        assert_eq!(denied.feast_body(), r#"{"detail":"no token"}"#);
    }

    #[test]
    fn answer_too_large_has_one_text_whoever_refuses_it() {
        let from_shards = ApiError::from(GridError::Partition(PartitionError::AnswerTooLarge {
            limit: 1000,
        }));
        let limits = crate::api::Limits {
            max_body_bytes: 1,
            max_read_body_bytes: 1,
            body_timeout: std::time::Duration::from_secs(1),
            max_entities_per_request: 1,
            max_rows_per_push: 1,
            max_value_bytes: 1,
            max_answer_bytes: 1000,
        };
        let rendered = crate::api::check_answer_size(1001, &limits).unwrap_err();
        assert_eq!(from_shards, rendered);
        assert_eq!(rendered.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(rendered.message.contains("1000 bytes (max_answer_bytes)"));
    }

    #[test]
    fn the_header_overrides_the_server_error_format() {
        let mut headers = header::HeaderMap::new();
        assert!(!wants_feast_errors(&headers, false) && wants_feast_errors(&headers, true));
        headers.insert(
            header::HeaderName::from_static("featgrid-error-format"),
            header::HeaderValue::from_static("feast"),
        );
        assert!(wants_feast_errors(&headers, false));
        headers.insert(
            header::HeaderName::from_static("featgrid-error-format"),
            header::HeaderValue::from_static("featgrid"),
        );
        assert!(!wants_feast_errors(&headers, true));
    }

    #[test]
    fn registry_errors_follow_feast_statuses() {
        let view = ApiError::from(RegistryError::UnknownFeatureView { name: "x".into() });
        assert_eq!(
            (view.status, view.code),
            (StatusCode::NOT_FOUND, "unknown_feature_view")
        );
        let push = ApiError::from(RegistryError::UnknownPushSource { name: "x".into() });
        assert_eq!(push.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
