//! Prometheus metrics and the per-request middleware: a tracing span with a request id
//! (echoed as `x-request-id`), a count by route and status, and a latency histogram by route.
//! Served as text at `GET /metrics`.

use std::borrow::Cow;
use std::time::Instant;

use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

mod requests;

use requests::RequestStats;

pub struct Metrics {
    registry: Registry,
    /// Counts by route and status, latencies by route, request ids.
    requests: RequestStats,
    pub rows_written: IntCounter,
    pub rows_skipped_older: IntCounter,
    /// Cluster nodes: the per-group parts of requests, by operation and how they were served.
    pub cluster_parts: IntCounterVec,
    /// Cluster nodes: the calls that carried forwarded write parts.
    pub cluster_forward_calls: IntCounter,
    /// Cluster nodes, per group this node holds: 1 while its replica there is stopped
    /// (fail-stop apply) or rejoining, 0 otherwise; set when `/metrics` is read.
    pub cluster_group_problem: prometheus::IntGaugeVec,
    /// How long the oldest write or fsync in progress has waited on the disk, by log (`wal`:
    /// the node's write-ahead log; `raft`: a cluster node's Raft log); set when `/metrics`
    /// is read.
    pub log_disk_wait: prometheus::GaugeVec,
    /// The on-demand worker pool's round trips and process starts.
    pub ondemand: crate::ondemand::pool::Counters,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("featgrid".into()), None).expect("a valid prefix");
        let requests = RequestStats::new();
        let rows_written = IntCounter::new(
            "rows_written_total",
            "rows stored (new keys or newer events)",
        )
        .expect("valid metric");
        let rows_skipped_older = IntCounter::new(
            "rows_skipped_older_total",
            "rows skipped because a newer event was stored",
        )
        .expect("valid metric");
        let cluster_parts = IntCounterVec::new(
            Opts::new(
                "cluster_group_parts_total",
                "cluster nodes: the per-group parts of requests by op (read, write) and how they were served (local: this node leads the group, or the read asked for local consistency; forwarded: the group's leader on another node was called)",
            ),
            &["op", "served"],
        )
        .expect("valid metric");
        let cluster_forward_calls = IntCounter::new(
            "cluster_forward_calls_total",
            "cluster nodes: calls that carried write parts to their group's leader on another node; the parts of pushes that arrive while a call is under way share the next one, so under load this grows slower than cluster_group_parts_total{op=\"write\",served=\"forwarded\"}",
        )
        .expect("valid metric");
        let cluster_group_problem = prometheus::IntGaugeVec::new(
            Opts::new(
                "cluster_group_replica_problem",
                "cluster nodes: 1 while this node's replica of the group is stopped (a committed entry could not be applied here; restart once mended), rejoining (it lost its Raft state and votes in no election until the leader adds it back) or not_a_member (removed from the group while it ran), else 0",
            ),
            &["group", "problem"],
        )
        .expect("valid metric");
        let log_disk_wait = prometheus::GaugeVec::new(
            Opts::new(
                "log_disk_wait_seconds",
                "how long the oldest write or fsync in progress has waited on the disk, by log (wal: this node's write-ahead log; raft: a cluster node's Raft log); 0 when none is in progress. From 5 s the log counts as stalled: pushes are refused (503 wal_stalled) and GET /health answers 503",
            ),
            &["log"],
        )
        .expect("valid metric");
        let ondemand = crate::ondemand::pool::Counters {
            round_trips: IntCounter::new(
                "ondemand_round_trips_total",
                "requests answered by the on-demand Python workers (one per read or write that runs on-demand feature views, whatever their number)",
            )
            .expect("valid metric"),
            batches: IntCounter::new(
                "ondemand_batches_total",
                "writes to the on-demand Python workers: under load one carries several requests (each transformed on its own), so this grows slower than ondemand_round_trips_total",
            )
            .expect("valid metric"),
            starts: IntCounter::new(
                "ondemand_worker_starts_total",
                "on-demand Python worker processes started, restarts included",
            )
            .expect("valid metric"),
        };
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(ondemand.round_trips.clone()),
            Box::new(ondemand.batches.clone()),
            Box::new(ondemand.starts.clone()),
            Box::new(cluster_parts.clone()),
            Box::new(cluster_forward_calls.clone()),
            Box::new(cluster_group_problem.clone()),
            Box::new(log_disk_wait.clone()),
            Box::new(rows_written.clone()),
            Box::new(rows_skipped_older.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            rows_written,
            rows_skipped_older,
            cluster_parts,
            cluster_forward_calls,
            cluster_group_problem,
            log_disk_wait,
            ondemand,
        }
    }

    /// A request id unique in this server, for `x-request-id` and log lines.
    pub fn next_request_id(&self) -> u64 {
        self.requests.next_request_id()
    }

    /// Records one finished request.
    pub fn observe(&self, route: &str, status: u16, started: Instant) {
        self.requests.observe(route, status, started.elapsed());
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// The route a request is counted under: its resource's pattern, or `unmatched`. The busiest
/// routes, whose pattern is their path, are known by their path alone (`match_pattern` walks
/// the resource map and allocates); any other takes `match_pattern`.
pub fn route_of(req: &actix_web::dev::ServiceRequest) -> Cow<'static, str> {
    const BY_PATH: [&str; 6] = [
        "/get-online-features",
        "/push",
        "/write-to-online-store",
        "/native/v1/get-online-features",
        "/native/v1/push",
        "/health",
    ];
    let path = req.path();
    match BY_PATH.iter().find(|&&p| p == path) {
        Some(&p) => Cow::Borrowed(p),
        None => req
            .match_pattern()
            .map_or(Cow::Borrowed("unmatched"), Cow::Owned),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_by_route_and_status() {
        let m = Metrics::new();
        m.observe("/push", 200, Instant::now());
        m.observe("/push", 400, Instant::now());
        m.rows_written.inc_by(3);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(r#"featgrid_requests_total{route="/push",status="400"} 1"#),
            "{text}"
        );
        assert!(text.contains("featgrid_rows_written_total 3"), "{text}");
        assert!(
            text.contains("featgrid_request_duration_seconds_bucket"),
            "{text}"
        );
    }
}
