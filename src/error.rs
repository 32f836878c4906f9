//! The one wire error. Every failure leaves the server as
//! `{"code": "snake_case_code", "message": "what happened and what to do"}` with an HTTP status;
//! each layer's error enum converts into it here, and nowhere else.

use actix_web::http::StatusCode;
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
        response.json(Body {
            code: self.code,
            message: &self.message,
        })
    }
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
            RegistryError::Invalid { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "invalid_registry")
            }
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
                "invalid_member_change" => {
                    ApiError::bad_request("invalid_member_change", e.to_string())
                }
                _ => ApiError::new(StatusCode::BAD_GATEWAY, "peer_failed", e.to_string()),
            },
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
