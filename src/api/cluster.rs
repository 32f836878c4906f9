//! The cluster's client routes: `GET /cluster` (who owns, leads and lags what),
//! `POST /cluster/groups/{group}/members` (membership changes) and `POST /cluster/reload` (take
//! nodes added to the topology file). All answer 404 `not_a_cluster` on a single node; the work
//! is the cluster's ([`crate::cluster`]).

use std::sync::Arc;

use actix_web::http::header::HeaderName;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::{parse_json, AppState};
use crate::cluster::membership::MemberChange;
use crate::cluster::{Cluster, Consistency};
use crate::error::ApiError;

/// This node's cluster side, or 404 `not_a_cluster`.
fn cluster_of(state: &AppState) -> Result<&Arc<Cluster>, ApiError> {
    state.cluster.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_a_cluster",
            "this server runs as a single node (started without --cluster)",
        )
    })
}

/// `GET /cluster`: the status as JSON.
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(cluster_of(&state)?.status().await))
}

/// `POST /cluster/groups/{group}/members`: `{"add": [ids], "remove": [ids]}`; answers the
/// group's members once the change is committed.
pub async fn members(
    state: web::Data<AppState>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let cluster = cluster_of(&state)?;
    let group = *group;
    if group >= cluster.topology().groups.len() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_group",
            format!(
                "group {group} does not exist: the topology has groups 0 to {}",
                cluster.topology().groups.len() - 1
            ),
        ));
    }
    let change: MemberChange = parse_json(&body)?;
    for id in change.add.iter().chain(&change.remove) {
        cluster
            .topology()
            .node_index(id)
            .map_err(|e| ApiError::bad_request("unknown_node", e.problem))?;
    }
    Ok(HttpResponse::Ok().json(cluster.change_members(group, change).await?))
}

/// `POST /cluster/reload`: reads the topology file again and takes the nodes added at its
/// end; anything else changed is refused (409 `topology_not_reloaded`, naming the entry) and
/// the topology in force stays.
pub async fn reload(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let cluster = cluster_of(&state)?.clone();
    let reloading = cluster.clone();
    let reloaded = actix_web::rt::task::spawn_blocking(move || reloading.reload_topology())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "topology_not_reloaded", e))?;
    if !reloaded.added.is_empty() {
        cluster.announce_topology().await;
    }
    Ok(HttpResponse::Ok().json(reloaded))
}

/// `POST /cluster/balance`: hands each group's leadership to its preferred leader (the first
/// of its topology nodes that is a voter); answers what happened per group, `balanced` false
/// when a group is still led by another node (each says why).
pub async fn balance(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(cluster_of(&state)?.balance().await))
}

/// The request header that asks for a read's consistency.
pub const CONSISTENCY_HEADER: &str = "x-featgrid-consistency";
/// [`CONSISTENCY_HEADER`] parsed once: a lookup by `&str` parses (and allocates) every time.
static CONSISTENCY: HeaderName = HeaderName::from_static(CONSISTENCY_HEADER);

/// The consistency a read asks for: linearizable unless its header says `local`.
pub fn consistency(req: &actix_web::HttpRequest) -> Result<Consistency, ApiError> {
    let Some(value) = req.headers().get(&CONSISTENCY) else {
        return Ok(Consistency::Linearizable);
    };
    match value.to_str().map(str::trim) {
        Ok("linearizable") => Ok(Consistency::Linearizable),
        Ok("local") => Ok(Consistency::Local),
        _ => Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "{CONSISTENCY_HEADER} is {value:?}: expected \"linearizable\" (the default) or \"local\""
            ),
        )),
    }
}
