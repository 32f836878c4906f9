//! Node-to-node calls: HTTP POSTs to a peer's `internal` address with bodies in the codec's
//! binary format, each carrying the cluster secret (`x-featgrid-cluster-secret`) and the
//! fingerprint of the caller's topology file (`x-featgrid-topology`).
//!
//! awc's client is bound to the thread that made it. Calls made while serving a request
//! (forwarded writes and reads, read indexes) run on the thread serving it (an HTTP worker; for
//! the internal endpoint, the Raft arbiter), with that thread's own client and pooled
//! keep-alive connections ([`Net::call`]): no thread hop. Raft's
//! own RPCs come from openraft, whose network futures must be `Send`: they are handed to the
//! arbiter that runs the Raft cores (the one [`Net::start`] was called on), which owns a client,
//! and their answer comes back on a oneshot ([`Net::call_sendable`]). That is the thread the
//! calls come from: no thread hop either (a dedicated client thread cost two context switches
//! per call; BENCHMARKS.md, 2026-12-04). Every call has a timeout (connecting included): no node waits
//! forever on another. Each call's outcome tells [`reachability`] whether the peer answered:
//! the one place that logs a peer going away and coming back.

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::http::header::HeaderName;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use super::topology::Address;
use super::types::{NodeId, TypeConfig, Vote};
use crate::persist::codec;

pub mod reachability;

use reachability::Reachability;

/// The header carrying the cluster secret.
pub const SECRET_HEADER: &str = "x-featgrid-cluster-secret";
/// The header carrying the caller's topology fingerprint ([`super::topology::Topology::fingerprint`]).
pub const TOPOLOGY_HEADER: &str = "x-featgrid-topology";
/// The two headers parsed once: by `&str`, every call and every check would parse (and
/// allocate) them again.
pub static SECRET: HeaderName = HeaderName::from_static(SECRET_HEADER);
pub static TOPOLOGY: HeaderName = HeaderName::from_static(TOPOLOGY_HEADER);

/// What every call carries to be accepted: the cluster secret and the topology's fingerprint.
pub struct Credentials {
    pub secret: String,
    pub fingerprint: String,
}
/// The content type of internal bodies.
pub const CONTENT_TYPE: &str = "application/x-featgrid-bincode";
/// The largest internal answer read.
const ANSWER_LIMIT: usize = 1 << 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a call to a peer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    /// Not reached, or no answer in time: nothing is known of the outcome.
    #[error("node at {addr} did not answer: {reason}")]
    Unreachable { addr: Address, reason: String },
    /// The peer answered with an error.
    #[error("node at {addr} answered {status}: {code}: {message}")]
    Refused {
        addr: Address,
        status: u16,
        code: String,
        message: String,
    },
    #[error("node at {addr}: {problem}")]
    Garbled { addr: Address, problem: String },
}

thread_local! {
    static CLIENT: awc::Client = awc::Client::builder()
        .connector(awc::Connector::new().timeout(CONNECT_TIMEOUT))
        .disable_redirects()
        .finish();
}

/// Makes calls to peers; cheap to clone.
#[derive(Clone)]
pub struct Net {
    arbiter: ArbiterHandle,
    /// Replaced when the topology grows (its fingerprint changes).
    credentials: std::sync::Arc<arc_swap::ArcSwap<Credentials>>,
    reachability: std::sync::Arc<Reachability>,
}

impl Net {
    /// Makes the calls of openraft run on the current arbiter: the one that runs the Raft cores.
    pub fn start(credentials: Credentials) -> Net {
        Net {
            arbiter: Arbiter::current(),
            credentials: std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(credentials)),
            reachability: Default::default(),
        }
    }

    /// What every call carries, and what every call received must carry.
    pub fn credentials(&self) -> std::sync::Arc<Credentials> {
        self.credentials.load_full()
    }

    pub fn set_credentials(&self, credentials: Credentials) {
        self.credentials.store(std::sync::Arc::new(credentials));
    }

    /// How long `peer` has not answered this node's calls, if its last call failed.
    pub fn unreachable_for(&self, peer: &Address) -> Option<Duration> {
        self.reachability.unreachable_for(peer)
    }

    /// Tells [`Reachability`] whether the call to `peer` reached it; answers `answer`.
    fn noted<T>(&self, peer: &Address, answer: Result<T, NetError>) -> Result<T, NetError> {
        match &answer {
            Err(NetError::Unreachable { reason, .. }) => self.reachability.failed(peer, reason),
            Ok(_) | Err(NetError::Refused { .. }) => self.reachability.answered(peer),
            // Not sent (the request would not encode) or an answer that would not decode:
            // says nothing of the peer's reachability.
            Err(NetError::Garbled { .. }) => {}
        }
        answer
    }

    /// POSTs `body` to `path` on `addr` from the Raft arbiter; answers the body of a 200.
    async fn call_raw_sendable(
        &self,
        addr: Address,
        path: String,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let (tx, rx) = oneshot::channel();
        let credentials = self.credentials.load_full();
        let to = addr.clone();
        let sent = self.arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                let _ = tx.send(post(to, &path, &credentials, body, timeout).await);
            });
        });
        let unreachable = |reason: &str| NetError::Unreachable {
            addr: addr.clone(),
            reason: reason.to_string(),
        };
        if !sent {
            return Err(unreachable("the Raft arbiter has stopped"));
        }
        let answer = match actix_rt::time::timeout(timeout + CONNECT_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(unreachable("the call was dropped")),
            Err(_) => Err(unreachable("timed out")),
        };
        self.noted(&addr, answer)
    }

    /// POSTs `request` to `path` on `addr` from the current thread (an actix arbiter, e.g. the
    /// worker serving a request), in the codec's format; answers the decoded body of a 200.
    pub async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        addr: Address,
        path: String,
        request: &Q,
        timeout: Duration,
    ) -> Result<A, NetError> {
        let body = encode_request(&addr, request)?;
        let answer = post(addr.clone(), &path, &self.credentials.load(), body, timeout).await;
        let answer = self.noted(&addr, answer)?;
        decode_answer(&addr, &answer)
    }

    /// [`Net::call`] as a `Send` future, from any thread: the call runs on the Raft arbiter.
    pub async fn call_sendable<Q: Serialize, A: DeserializeOwned>(
        &self,
        addr: Address,
        path: String,
        request: &Q,
        timeout: Duration,
    ) -> Result<A, NetError> {
        let body = encode_request(&addr, request)?;
        let answer = self
            .call_raw_sendable(addr.clone(), path, body, timeout)
            .await?;
        decode_answer(&addr, &answer)
    }
}

fn encode_request<Q: Serialize>(addr: &Address, request: &Q) -> Result<Vec<u8>, NetError> {
    codec::encode(request).map_err(|e| NetError::Garbled {
        addr: addr.clone(),
        problem: e.to_string(),
    })
}

fn decode_answer<A: DeserializeOwned>(addr: &Address, answer: &[u8]) -> Result<A, NetError> {
    codec::decode(answer)
        .map(|(value, _)| value)
        .map_err(|e| NetError::Garbled {
            addr: addr.clone(),
            problem: e.to_string(),
        })
}

async fn post(
    addr: Address,
    path: &str,
    credentials: &Credentials,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, NetError> {
    let client = CLIENT.with(Clone::clone);
    let unreachable = |reason: String| NetError::Unreachable {
        addr: addr.clone(),
        reason,
    };
    let mut response = client
        .post(format!("http://{addr}{path}"))
        .insert_header((SECRET.clone(), credentials.secret.as_str()))
        .insert_header((TOPOLOGY.clone(), credentials.fingerprint.as_str()))
        .insert_header(("content-type", CONTENT_TYPE))
        .timeout(timeout)
        .send_body(body)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let bytes = response
        .body()
        .limit(ANSWER_LIMIT)
        .await
        .map_err(|e| unreachable(format!("reading the answer: {e}")))?;
    let status = response.status();
    if status.is_success() {
        return Ok(bytes.to_vec());
    }
    #[derive(serde::Deserialize)]
    struct Wire {
        code: String,
        message: String,
    }
    let wire: Wire = serde_json::from_slice(&bytes).unwrap_or(Wire {
        code: "unknown".into(),
        message: String::from_utf8_lossy(&bytes).into_owned(),
    });
    Err(NetError::Refused {
        addr,
        status: status.as_u16(),
        code: wire.code,
        message: wire.message,
    })
}

/// When each follower of a group last accepted this node as its leader: per follower, the
/// vote it accepted and when the append (or heartbeat) it answered was sent. A follower that
/// accepts an append keeps refusing other candidates' votes for openraft's leader lease (the
/// maximum election timeout) from when it got it, so no other leader can be elected before
/// `sent + lease` by a majority that acknowledged `sent` ([`super::Cluster::lease_read_index`]).
#[derive(Default)]
pub struct Acks {
    by_node: std::sync::Mutex<std::collections::HashMap<NodeId, (Vote, Instant)>>,
}

impl Acks {
    fn note(&self, node: NodeId, vote: Vote, sent: Instant) {
        let mut by_node = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        let newer = by_node.get(&node).is_none_or(|&(_, at)| at < sent);
        if newer {
            by_node.insert(node, (vote, sent));
        }
    }

    /// When `node` last acknowledged `vote`, if it did.
    pub fn acked(&self, node: NodeId, vote: &Vote) -> Option<Instant> {
        let by_node = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        by_node
            .get(&node)
            .filter(|(v, _)| v == vote)
            .map(|&(_, at)| at)
    }
}

/// Opens Raft connections of one group to its peers.
pub struct GroupNetwork {
    pub net: Net,
    pub group: usize,
    pub acks: std::sync::Arc<Acks>,
    /// The group's follower read leases: acceptances are held for them ([`super::lease`]).
    pub grants: std::sync::Arc<super::lease::Grants>,
    /// Noted when a member answers this node's vote request [`NOT_A_MEMBER`] (pre-votes:
    /// [`super::election`]).
    pub removed: std::sync::Arc<super::membership::Removed>,
}

/// The code of a (pre-)vote request's answer from a member whose committed membership lacks the
/// candidate (see [`super::membership::Removed`]).
pub const NOT_A_MEMBER: &str = "not_a_member";

/// One group's Raft connection to one peer.
pub struct Peer {
    net: Net,
    group: usize,
    target: NodeId,
    addr: Result<Address, String>,
    acks: std::sync::Arc<Acks>,
    grants: std::sync::Arc<super::lease::Grants>,
    removed: std::sync::Arc<super::membership::Removed>,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            net: self.net.clone(),
            group: self.group,
            target,
            addr: Address::parse(&node.addr),
            acks: self.acks.clone(),
            grants: self.grants.clone(),
            removed: self.removed.clone(),
        }
    }
}

impl Peer {
    async fn rpc<Q, A, E>(
        &self,
        what: &str,
        request: &Q,
        option: &RPCOption,
    ) -> Result<A, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Q: Serialize,
        A: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let addr = self
            .addr
            .clone()
            .map_err(|e| RPCError::Network(NetworkError::new(&std::io::Error::other(e))))?;
        let path = format!("/internal/v1/raft/{}/{what}", self.group);
        let answer: Result<Result<A, RaftError<NodeId, E>>, NetError> = self
            .net
            .call_sendable(addr, path, request, option.hard_ttl())
            .await;
        match answer {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(NetError::Refused { code, message, .. }) if code == NOT_A_MEMBER => {
                self.removed.note(message.clone());
                Err(RPCError::Network(NetworkError::new(
                    &std::io::Error::other(message),
                )))
            }
            Err(e @ NetError::Unreachable { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let (sent, vote) = (Instant::now(), rpc.vote);
        let last = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
        let answer = self.rpc("append", &rpc, &option).await;
        // Any answer but a higher vote accepts this leader (a log conflict included).
        if matches!(&answer, Ok(a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
            self.acks.note(self.target, vote, sent);
        }
        let accepted = match &answer {
            Ok(AppendEntriesResponse::Success) => last,
            Ok(AppendEntriesResponse::PartialSuccess(matched)) => *matched,
            _ => None,
        };
        // openraft learns of the acceptance (and may commit on it) only once every read
        // lease holder has the entries too.
        if let Some(accepted) = accepted {
            self.grants.accepted(self.target, vote, accepted.index);
            self.grants.hold(self.target, vote, accepted.index).await;
        }
        answer
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc("vote", &rpc, &option).await
    }
}
