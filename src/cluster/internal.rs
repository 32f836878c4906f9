//! The internal endpoint, on the node's `internal` address: Raft messages and forwarded
//! requests from the other nodes, bodies in the codec's binary format. Every call must carry
//! the cluster secret (`x-featgrid-cluster-secret`); a call without it, or with another, is
//! refused with 401 `cluster_secret_required` before its body is read; one whose topology
//! fingerprint (`x-featgrid-topology`) differs from this node's, with 409 `topology_mismatch`
//! naming both.
//!
//! - `POST /internal/v1/raft/{group}/append|vote|snapshot`: openraft's RPCs.
//! - `POST /internal/v1/write/{group}`: commit a [`GroupWrite`] here (this node must lead).
//! - `POST /internal/v1/writes`: commit parts of several groups here (the parts of the pushes
//!   queued for this node, [`super::outbox`]); an answer per part.
//! - `POST /internal/v1/read-index/{group}`: the leader's read index, confirmed by a quorum.
//! - `POST /internal/v1/read-lease/{group}`: the same, with a read lease for the node that
//!   asks ([`super::lease`]).
//! - `POST /internal/v1/rows/{group}`: a forwarded read of the group's keys.
//! - `POST /internal/v1/rows`: forwarded reads of several groups' keys (one call per node and
//!   client request); an answer per group.
//! - `POST /internal/v1/members/{group}`: a membership change, on the group's leader.
//! - `POST /internal/v1/rejoin/{group}`: add back a node that lost its Raft state, on the
//!   group's leader ([`super::rejoin`]).
//! - `POST /internal/v1/status`: this node's view of its groups, for `GET /cluster`.
//! - `POST /internal/v1/pre-vote/{group}`: whether this node lost touch with the group's leader
//!   too ([`super::election`]).

use std::sync::Arc;

use std::rc::Rc;

use actix_http::{HttpService, KeepAlive};
use actix_service::{
    map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt as _,
};
use actix_web::dev::AppConfig;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, ResponseError};
use futures_util::future::{ready, Either};
use futures_util::TryFutureExt as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::membership::{MemberChange, CHANGE_DEADLINE};
use super::network::{CONTENT_TYPE, SECRET, TOPOLOGY};
use super::topology::NodeIndex;
use super::types::{GroupWrite, TypeConfig};
use super::{Cluster, Consistency, GroupKeys, Refusal, RowsRequest, DEADLINE};
use crate::error::ApiError;
use crate::persist::codec;
use openraft::raft::AppendEntriesResponse;

/// The largest internal request body.
const BODY_LIMIT: usize = 1 << 30;

/// Whether two secrets are equal, in time that does not depend on where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Most node-to-node connections served at once; past it, new ones wait to be accepted.
const MAX_CONNECTIONS: usize = 1024;

/// The internal endpoint being served; [`Serving::stop`] ends it.
pub struct Serving(actix_rt::task::JoinHandle<()>);

impl Serving {
    /// Stops accepting and closes every connection (what a call was doing is dropped; its
    /// caller sees the node go away).
    pub fn stop(self) {
        self.0.abort();
    }
}

/// Serves the internal endpoint on `listener` (the node's `internal` address) from the
/// current thread: the Raft arbiter, which runs every group's Raft core. A Raft message, a
/// forwarded write or a read-index call is handled where its group's core runs, so handing it
/// to the core and its answer back are no wake-up of another thread (served by actix-web's
/// server, on worker threads of its own, each call cost two). Nothing here blocks: the Raft
/// log's disk work and a snapshot's run on other threads.
pub async fn serve(
    cluster: Arc<Cluster>,
    listener: std::net::TcpListener,
) -> std::io::Result<Serving> {
    let data = web::Data::from(cluster.clone());
    let app = App::new()
        .app_data(data.clone())
        .app_data(web::PayloadConfig::new(BODY_LIMIT))
        .wrap_fn(move |req, service| {
            let credentials = cluster.net().credentials();
            let headers = req.headers();
            let allowed = headers
                .get(&SECRET)
                .is_some_and(|v| same_secret(v.as_bytes(), credentials.secret.as_bytes()));
            let theirs = headers.get(&TOPOLOGY).map(|v| v.as_bytes());
            let same_topology = theirs == Some(credentials.fingerprint.as_bytes())
                || theirs
                    .and_then(|t| std::str::from_utf8(t).ok())
                    .is_some_and(|t| cluster.ran_with_topology(t) || cluster.follow_topology(t));
            let refusal = if !allowed {
                Some(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "cluster_secret_required",
                    "node-to-node calls must carry the cluster secret",
                ))
            } else if !same_topology {
                let theirs = theirs.map_or("none".into(), String::from_utf8_lossy);
                let path = cluster.topology().path.display().to_string();
                let mine = cluster.net().credentials().fingerprint.clone();
                Some(ApiError::new(
                    StatusCode::CONFLICT,
                    "topology_mismatch",
                    format!("the caller's topology (fingerprint {theirs}) differs from this node's ({path}, fingerprint {mine}): every node must use the same topology file (after adding nodes to every node's file, reload one node with SIGHUP or POST /cluster/reload)"),
                ))
            } else {
                None
            };
            match refusal {
                None => Either::Left(service.call(req).map_ok(|r| r.map_into_left_body())),
                Some(refusal) => {
                    let response = req.into_response(refusal.error_response());
                    Either::Right(ready(Ok(response.map_into_right_body())))
                }
            }
        })
        // The busiest first: routes are tried in order, and each with a `{group}` is a
        // regular expression run on the path.
        .route(
            "/internal/v1/read-index/{group}",
            web::post().to(read_index),
        )
        .route(
            "/internal/v1/read-lease/{group}",
            web::post().to(read_lease),
        )
        .route("/internal/v1/raft/{group}/append", web::post().to(append))
        .route("/internal/v1/writes", web::post().to(writes))
        .route("/internal/v1/raft/{group}/vote", web::post().to(vote))
        .route(
            "/internal/v1/raft/{group}/snapshot",
            web::post().to(snapshot),
        )
        .route("/internal/v1/write/{group}", web::post().to(write))
        .route("/internal/v1/rows/{group}", web::post().to(rows))
        .route("/internal/v1/rows", web::post().to(rows_of_groups))
        .route("/internal/v1/members/{group}", web::post().to(members))
        .route("/internal/v1/rejoin/{group}", web::post().to(rejoin))
        .route("/internal/v1/hand-over/{group}", web::post().to(hand_over))
        .route("/internal/v1/elect/{group}", web::post().to(elect))
        .route(
            "/internal/v1/pre-vote/{group}",
            web::post().to(pre_vote),
        )
        .route(
            "/internal/v1/still-leading/{group}",
            web::post().to(still_leading),
        )
        .route("/internal/v1/status", web::post().to(status))
        .route("/internal/v1/memory", web::post().to(memory));
    // actix-web's server defaults, but for its signals and threads.
    let service = HttpService::build()
        .keep_alive(KeepAlive::Timeout(std::time::Duration::from_secs(5)))
        .client_request_timeout(std::time::Duration::from_secs(5))
        .client_disconnect_timeout(std::time::Duration::from_secs(1))
        .finish(map_config(
            app.into_factory()
                .map_err(|e: actix_web::Error| e.error_response()),
            |_| AppConfig::default(),
        ))
        .tcp()
        .new_service(())
        .await
        .map_err(|()| std::io::Error::other("the internal endpoint's service did not start"))?;
    listener.set_nonblocking(true)?;
    let listener = actix_rt::net::TcpListener::from_std(listener)?;
    Ok(Serving(actix_rt::spawn(accept(listener, Rc::new(service)))))
}

/// Accepts connections and serves each on this thread, at most [`MAX_CONNECTIONS`] at once.
/// The connections are tasks of a set this loop owns: when it is stopped, they end with it.
async fn accept<S>(listener: actix_rt::net::TcpListener, service: Rc<S>)
where
    S: Service<actix_rt::net::TcpStream, Response = ()> + 'static,
    S::Error: std::fmt::Debug,
{
    let room = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Reap the finished connections as they end.
        while connections.try_join_next().is_some() {}
        let Ok(place) = room.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let service = service.clone();
                connections.spawn_local(async move {
                    if let Err(e) = service.call(stream).await {
                        tracing::debug!(error = ?e, "internal connection ended with an error");
                    }
                    drop(place);
                });
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to close.
                tracing::warn!(error = %e, "the internal endpoint cannot accept a connection");
                actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    codec::decode(body)
        .map(|(v, _)| v)
        .map_err(|e| ApiError::bad_request("malformed_body", e.to_string()))
}

fn encoded<T: Serialize>(value: &T) -> HttpResponse {
    match codec::encode(value) {
        Ok(body) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(body),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            .error_response(),
    }
}

fn raft_of(cluster: &Cluster, group: usize) -> Result<&super::types::Raft, ApiError> {
    cluster.raft(group).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_group",
            format!("this node holds no replica of group {group}"),
        )
    })
}

async fn append(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let raft = raft_of(&cluster, *group)?;
    let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> = decode(&body)?;
    // From the leader this node follows: it is heard from while the append is written, not
    // only once it is (a slow disk must not make this node take itself for cut off, nor grant
    // pre-votes, while the leader waits for it).
    let _hearing = (rpc.vote.is_committed() && raft.metrics().borrow().vote == rpc.vote)
        .then(|| cluster.hearing(*group));
    let answer = raft.append_entries(rpc).await;
    if matches!(&answer, Ok(a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
        cluster.heard_from_leader(*group);
    }
    Ok(encoded(&answer))
}

async fn vote(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let raft = raft_of(&cluster, *group)?;
    let rpc: openraft::raft::VoteRequest<u64> = decode(&body)?;
    if cluster.rejoining(*group).is_some() {
        // Lost its Raft state: its vote could elect a leader without acknowledged writes.
        let refused: Result<_, openraft::error::RaftError<u64>> =
            Ok(openraft::raft::VoteResponse {
                vote: rpc.vote,
                vote_granted: false,
                last_log_id: None,
            });
        return Ok(encoded(&refused));
    }
    let candidate = rpc.vote.leader_id().voted_for();
    if let Some(reason) = candidate.and_then(|c| cluster.refuses_candidate(*group, c)) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            super::network::NOT_A_MEMBER,
            reason,
        ));
    }
    Ok(encoded(&raft.vote(rpc).await))
}

async fn snapshot(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let raft = raft_of(&cluster, *group)?;
    let rpc: openraft::raft::InstallSnapshotRequest<TypeConfig> = decode(&body)?;
    let answer = cluster
        .clone()
        .into_inner()
        .install_snapshot(*group, raft, rpc)
        .await;
    if answer.is_ok() {
        cluster.heard_from_leader(*group);
    }
    Ok(encoded(&answer))
}

async fn write(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let group = *group;
    let write: GroupWrite = decode(&body)?;
    let answer = match cluster.raft(group) {
        Some(raft) => cluster.commit_here(group, raft, write, DEADLINE).await,
        None => Err(Refusal::NotLeader { leader: None }),
    };
    Ok(encoded(&answer))
}

async fn writes(cluster: web::Data<Cluster>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let writes: Vec<(usize, GroupWrite)> = decode(&body)?;
    Ok(encoded(&cluster.commit_parts_here(writes).await))
}

async fn read_index(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
) -> Result<HttpResponse, ApiError> {
    let group = *group;
    let answer = match cluster.raft(group) {
        Some(_) => cluster.read_index_for_peer(group).await,
        None => Err(Refusal::NotLeader { leader: None }),
    };
    Ok(encoded(&answer))
}

async fn read_lease(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (group, from): (usize, NodeIndex) = (*group, decode(&body)?);
    let answer = match cluster.raft(group) {
        Some(_) => cluster.read_lease_for_peer(group, from).await,
        None => Err(Refusal::NotLeader { leader: None }),
    };
    Ok(encoded(&answer))
}

async fn rows(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: RowsRequest = decode(&body)?;
    Ok(encoded(&cluster.serve_rows(*group, request).await))
}

async fn rows_of_groups(
    cluster: web::Data<Cluster>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (consistency, parts): (Consistency, GroupKeys) = decode(&body)?;
    Ok(encoded(&cluster.serve_parts(consistency, parts).await))
}

async fn members(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let group = *group;
    let change: MemberChange = decode(&body)?;
    let answer = match cluster.raft(group) {
        Some(raft) => {
            cluster
                .change_members_here(group, raft, &change, CHANGE_DEADLINE)
                .await
        }
        None => Err(Refusal::NotLeader { leader: None }),
    };
    Ok(encoded(&answer))
}

async fn rejoin(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let group = *group;
    let node: NodeIndex = decode(&body)?;
    if node as usize >= cluster.topology().nodes.len() {
        return Err(ApiError::bad_request(
            "unknown_node",
            format!("node #{node} is not in the topology"),
        ));
    }
    let answer = match cluster.raft(group) {
        Some(raft) => {
            cluster
                .rejoin_here(group, raft, node, CHANGE_DEADLINE)
                .await
        }
        None => Err(Refusal::NotLeader { leader: None }),
    };
    Ok(encoded(&answer))
}

/// On a group's leader: hand leadership to the preferred leader ([`super::balance`]).
async fn hand_over(cluster: web::Data<Cluster>, group: web::Path<usize>) -> HttpResponse {
    let group = *group;
    let answer = match cluster.raft(group) {
        Some(raft) => cluster.hand_over_here(group, raft, CHANGE_DEADLINE).await,
        None => Err(Refusal::NotLeader { leader: None }),
    };
    encoded(&answer)
}

/// On a group's preferred leader: stand for election ([`super::balance`]).
async fn elect(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: super::balance::Elect = decode(&body)?;
    Ok(encoded(&cluster.elect_here(*group, request).await))
}

/// A node that lost touch with a group's leader asks whether this one has too
/// ([`super::election`]): `true` if so.
async fn pre_vote(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    raft_of(&cluster, *group)?;
    let candidate: NodeIndex = decode(&body)?;
    if let Some(reason) = cluster.refuses_candidate(*group, candidate) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            super::network::NOT_A_MEMBER,
            reason,
        ));
    }
    Ok(encoded(&Ok::<bool, Refusal>(
        cluster.grants_pre_vote(*group),
    )))
}

/// From a group's leader that went quiet for a hand-over ([`super::balance`]): it is still
/// there, so this follower does not take itself for cut off from it.
async fn still_leading(
    cluster: web::Data<Cluster>,
    group: web::Path<usize>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let raft = raft_of(&cluster, *group)?;
    let from: NodeIndex = decode(&body)?;
    if raft.metrics().borrow().current_leader == Some(from) {
        cluster.heard_from_leader(*group);
    }
    Ok(encoded(&Ok::<(), Refusal>(())))
}

async fn status(cluster: web::Data<Cluster>, _req: HttpRequest) -> HttpResponse {
    encoded(&cluster.local_status())
}

/// A node's report of the room it has left under its `max_memory` ([`super::memory`]).
async fn memory(cluster: web::Data<Cluster>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let (node, headroom): (NodeIndex, u64) = decode(&body)?;
    cluster.memory_reports.note(node, headroom);
    Ok(encoded(&()))
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abcdef", b"abcdef"));
        assert!(!same_secret(b"abcdeg", b"abcdef"));
        assert!(!same_secret(b"abcde", b"abcdef"));
        assert!(!same_secret(b"", b"abcdef"));
    }
}
