//! HTTP request counts by route and status, and latencies by route, recorded without a cache
//! line shared between threads: each thread adds to cells of its own, and `GET /metrics` sums
//! them ([`Collector`]). Prometheus's own vectors cost a hash, a lock and two reference-count
//! updates per record, and their atomics bounce between the HTTP workers' cores: with the route
//! lookup, 9% of read 1's throughput (BENCHMARKS.md, 2026-12-04). Request ids come from the
//! same per-thread state, in blocks taken from one shared counter.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sync::lock;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricType};

/// The latency buckets' upper bounds, in seconds.
const BUCKETS: [f64; 11] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0,
];
/// Request ids a thread takes from the shared counter at a time.
const ID_BLOCK: u64 = 1024;

const COUNT_NAME: &str = "requests_total";
const COUNT_HELP: &str = "HTTP requests by route and status";
const DURATION_NAME: &str = "request_duration_seconds";
const DURATION_HELP: &str = "HTTP request latency by route";

/// Tells instances apart in a thread's state (tests run several servers in one process).
static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// Request counts and latencies of one server. Cheap to clone (shared).
#[derive(Clone)]
pub struct RequestStats(Arc<Inner>);

struct Inner {
    instance: u64,
    /// Every thread's cells that recorded here: locked when a thread first records and when
    /// `/metrics` is read.
    threads: Mutex<Vec<Arc<ThreadCells>>>,
    next_id: AtomicU64,
    descs: [Desc; 2],
}

/// One thread's cells: that thread appends, `/metrics` reads.
#[derive(Default)]
struct ThreadCells(Mutex<Vec<Arc<Cell>>>);

/// The requests of one route and status that one thread answered.
struct Cell {
    route: Box<str>,
    status: u16,
    count: Counter,
    nanos: Counter,
    /// Not cumulative: the requests of each bucket of [`BUCKETS`], then those above the last.
    buckets: [Counter; BUCKETS.len() + 1],
}

/// A counter that only one thread adds to: a plain load and store, no locked instruction.
#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Release,
        );
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// What a thread keeps of one instance.
struct Local {
    instance: u64,
    mine: Arc<ThreadCells>,
    cells: Vec<Arc<Cell>>,
    ids: std::ops::Range<u64>,
}

thread_local! {
    static LOCALS: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

impl Cell {
    fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        self.count.add(1);
        self.nanos
            .add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        if let Some(b) = self.buckets.get(bucket) {
            b.add(1);
        }
    }
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats::new()
    }
}

impl RequestStats {
    pub fn new() -> RequestStats {
        let desc = |name: &str, help: &str, labels: &[&str]| {
            Desc::new(
                name.into(),
                help.into(),
                labels.iter().map(|l| l.to_string()).collect(),
                HashMap::new(),
            )
            .expect("a valid metric name")
        };
        RequestStats(Arc::new(Inner {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            threads: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            descs: [
                desc(COUNT_NAME, COUNT_HELP, &["route", "status"]),
                desc(DURATION_NAME, DURATION_HELP, &["route"]),
            ],
        }))
    }

    /// Calls `f` with this thread's state for this instance, made on first use. `None` (and
    /// `f` not called) when the thread's state is gone (the thread is ending) or already in
    /// use further up the stack: no panic either way.
    fn with_local<R>(&self, f: impl FnOnce(&Inner, &mut Local) -> R) -> Option<R> {
        let inner = &*self.0;
        let with = LOCALS.try_with(|locals| {
            let mut locals = locals.try_borrow_mut().ok()?;
            let at = match locals.iter().position(|l| l.instance == inner.instance) {
                Some(at) => at,
                None => {
                    let mine = Arc::new(ThreadCells::default());
                    lock(&inner.threads).push(mine.clone());
                    locals.push(Local {
                        instance: inner.instance,
                        mine,
                        cells: Vec::new(),
                        ids: 0..0,
                    });
                    locals.len() - 1
                }
            };
            Some(f(inner, &mut locals[at]))
        });
        with.ok().flatten()
    }

    /// A request id unique in this instance.
    pub fn next_request_id(&self) -> u64 {
        self.with_local(|inner, local| {
            if local.ids.is_empty() {
                let start = inner.next_id.fetch_add(ID_BLOCK, Ordering::Relaxed);
                local.ids = start..start + ID_BLOCK;
            }
            local.ids.next().unwrap_or_default()
        })
        .unwrap_or_else(|| self.0.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Records one answered request (not on a thread that is ending).
    pub fn observe(&self, route: &str, status: u16, elapsed: Duration) {
        let _ = self.with_local(|_, local| {
            let at = match local
                .cells
                .iter()
                .position(|c| c.status == status && *c.route == *route)
            {
                Some(at) => at,
                None => {
                    let cell = Arc::new(Cell {
                        route: route.into(),
                        status,
                        count: Counter::default(),
                        nanos: Counter::default(),
                        buckets: Default::default(),
                    });
                    lock(&local.mine.0).push(cell.clone());
                    local.cells.push(cell);
                    local.cells.len() - 1
                }
            };
            local.cells[at].record(elapsed);
        });
    }
}

fn label(name: &str, value: String) -> proto::LabelPair {
    let mut pair = proto::LabelPair::default();
    pair.set_name(name.into());
    pair.set_value(value);
    pair
}

fn family(
    name: &str,
    help: &str,
    kind: MetricType,
    metrics: Vec<proto::Metric>,
) -> proto::MetricFamily {
    let mut family = proto::MetricFamily::default();
    family.set_name(name.into());
    family.set_help(help.into());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

/// One route's latencies summed over threads and statuses.
#[derive(Default)]
struct Summed {
    count: u64,
    nanos: u64,
    buckets: [u64; BUCKETS.len() + 1],
}

impl Collector for RequestStats {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let mut counts: BTreeMap<(Box<str>, u16), u64> = BTreeMap::new();
        let mut latencies: BTreeMap<Box<str>, Summed> = BTreeMap::new();
        for thread in lock(&self.0.threads).iter() {
            for cell in lock(&thread.0).iter() {
                let count = cell.count.get();
                *counts.entry((cell.route.clone(), cell.status)).or_default() += count;
                let summed = latencies.entry(cell.route.clone()).or_default();
                summed.count += count;
                summed.nanos = summed.nanos.saturating_add(cell.nanos.get());
                for (sum, b) in summed.buckets.iter_mut().zip(&cell.buckets) {
                    *sum += b.get();
                }
            }
        }
        let counted = counts
            .into_iter()
            .map(|((route, status), n)| {
                let mut counter = proto::Counter::default();
                counter.set_value(n as f64);
                let mut m = proto::Metric::from_label(vec![
                    label("route", route.into()),
                    label("status", status.to_string()),
                ]);
                m.set_counter(counter);
                m
            })
            .collect();
        let timed = latencies
            .into_iter()
            .map(|(route, summed)| {
                let mut cumulative = 0;
                let buckets = BUCKETS
                    .iter()
                    .zip(&summed.buckets)
                    .map(|(&bound, &n)| {
                        cumulative += n;
                        let mut b = proto::Bucket::default();
                        b.set_upper_bound(bound);
                        b.set_cumulative_count(cumulative);
                        b
                    })
                    .collect();
                let mut h = proto::Histogram::default();
                // The count, read after the buckets were, is at least their sum.
                h.set_sample_count(summed.count.max(cumulative));
                h.set_sample_sum(summed.nanos as f64 / 1e9);
                h.set_bucket(buckets);
                let mut m = proto::Metric::from_label(vec![label("route", route.into())]);
                m.set_histogram(h);
                m
            })
            .collect();
        vec![
            family(COUNT_NAME, COUNT_HELP, MetricType::COUNTER, counted),
            family(DURATION_NAME, DURATION_HELP, MetricType::HISTOGRAM, timed),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(stats: &RequestStats) -> String {
        let registry = prometheus::Registry::new_custom(Some("featgrid".into()), None).unwrap();
        registry.register(Box::new(stats.clone())).unwrap();
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn counts_and_latencies_are_summed_over_threads() {
        let stats = RequestStats::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..250 {
                        stats.observe("/push", 200, Duration::from_micros(300));
                    }
                    stats.observe("/push", 422, Duration::from_millis(2));
                    stats.observe("/health", 200, Duration::from_secs(3));
                });
            }
        });
        let text = render(&stats);
        for line in [
            r#"featgrid_requests_total{route="/push",status="200"} 1000"#,
            r#"featgrid_requests_total{route="/push",status="422"} 4"#,
            r#"featgrid_requests_total{route="/health",status="200"} 4"#,
            // 300 us is in the 500 us bucket, 2 ms in the 2.5 ms one: cumulative.
            r#"featgrid_request_duration_seconds_bucket{route="/push",le="0.00025"} 0"#,
            r#"featgrid_request_duration_seconds_bucket{route="/push",le="0.0005"} 1000"#,
            r#"featgrid_request_duration_seconds_bucket{route="/push",le="0.0025"} 1004"#,
            r#"featgrid_request_duration_seconds_bucket{route="/push",le="+Inf"} 1004"#,
            r#"featgrid_request_duration_seconds_count{route="/push"} 1004"#,
            r#"featgrid_request_duration_seconds_sum{route="/push"} 0.308"#,
            // Over the last bound: only in +Inf.
            r#"featgrid_request_duration_seconds_bucket{route="/health",le="1"} 0"#,
            r#"featgrid_request_duration_seconds_bucket{route="/health",le="+Inf"} 4"#,
            "# TYPE featgrid_request_duration_seconds histogram",
            "# TYPE featgrid_requests_total counter",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn request_ids_are_unique_across_threads_and_instances_are_apart() {
        let (a, b) = (RequestStats::new(), RequestStats::new());
        let ids: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|_| s.spawn(|| (0..3000).map(|_| a.next_request_id()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let unique: std::collections::HashSet<u64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), 9000);
        assert!(!unique.contains(&0));
        // Another instance counts from 1 on its own, and records nothing of the first.
        assert_eq!(b.next_request_id(), 1);
        a.observe("/push", 200, Duration::ZERO);
        assert!(!render(&b).contains("/push"));
    }

    #[test]
    fn an_id_is_still_unique_when_the_thread_state_cannot_be_used() {
        let stats = RequestStats::new();
        assert_eq!(stats.next_request_id(), 1);
        // The thread's state in use: the id comes from the shared counter, past the block.
        let inside = stats.with_local(|_, _| stats.next_request_id());
        assert_eq!(inside, Some(1 + ID_BLOCK));
        assert_eq!(stats.next_request_id(), 2);
    }
}
