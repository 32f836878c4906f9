//! The results of a run, in one serializable [`Report`]: the setup, the preload, and per
//! operation the counts, throughput, latency percentiles and per-second timeline. Rendered as
//! the stdout table here, as JSON with serde, and as the SVG by [`super::plot`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::options::{Load, Options, Workload};
use super::record::{Op, OpRecord, Recorder};

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub setup: Setup,
    pub preload: Option<PreloadSummary>,
    pub operations: Vec<OpSummary>,
    /// Open loop: requests due before the end that were never sent, because every connection
    /// was busy. Non-zero means the client could not keep the rate: raise `--connections`.
    pub unsent: u64,
}

/// The settings the figures belong to.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    pub targets: Vec<String>,
    pub read_target: Option<String>,
    pub protocol: &'static str,
    pub workload: &'static str,
    pub read_ratio: Option<f64>,
    /// `closed` or `open`.
    pub load: &'static str,
    /// Open loop: requests per second in total.
    pub rate: Option<f64>,
    pub connections: usize,
    pub threads: usize,
    pub entities: u64,
    pub batch: usize,
    pub features: usize,
    pub zipf: Option<f64>,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub max_requests: Option<u64>,
    pub probe_timeout_secs: f64,
    pub seed: u64,
}

impl Setup {
    /// One line saying how the load was made: pacing, request shape, keys, time.
    pub fn describe(&self) -> String {
        let time = format!(
            "{} s measured after {} s warmup",
            self.duration_secs, self.warmup_secs
        );
        if self.workload == Workload::Freshness.name() {
            let reads = match &self.read_target {
                Some(t) => format!("reading it back from {t}"),
                None => "reading it back from the same target".to_string(),
            };
            return format!(
                "{} probe(s), each pushing a new value for its own driver id and {reads} until visible (timeout {} s); {time}",
                self.connections, self.probe_timeout_secs
            );
        }
        let load = match self.rate {
            Some(rate) => format!(
                "open loop at {rate} req/s (at most {} in flight)",
                self.connections
            ),
            None => format!("closed loop, {} connections", self.connections),
        };
        let keys = match self.zipf {
            Some(z) => format!("zipf({z}) keys"),
            None => "uniform keys".to_string(),
        };
        let mix = match self.read_ratio {
            Some(r) => format!("{:.0}% reads, ", r * 100.0),
            None => String::new(),
        };
        let features = if self.workload == Workload::Push.name() {
            String::new()
        } else {
            format!("{} feature(s) per read, ", self.features)
        };
        format!(
            "{load}, {mix}batch {}, {features}{keys} over {} entities, {time}",
            self.batch, self.entities
        )
    }

    pub fn of(o: &Options) -> Setup {
        Setup {
            targets: o.targets.iter().map(|t| t.base.clone()).collect(),
            read_target: o.read_target.as_ref().map(|t| t.base.clone()),
            protocol: o.protocol.name(),
            workload: o.workload.name(),
            read_ratio: match o.workload {
                Workload::Mixed { read_ratio } => Some(read_ratio),
                _ => None,
            },
            load: match o.load {
                Load::Closed => "closed",
                Load::Open { .. } => "open",
            },
            rate: match o.load {
                Load::Closed => None,
                Load::Open { rate } => Some(rate),
            },
            connections: o.connections,
            threads: o.threads,
            entities: o.entities,
            batch: o.batch,
            features: o.features,
            zipf: o.zipf,
            warmup_secs: o.warmup.as_secs_f64(),
            duration_secs: o.duration.as_secs_f64(),
            max_requests: o.max_requests,
            probe_timeout_secs: o.probe_timeout.as_secs_f64(),
            seed: o.seed,
        }
    }
}

/// The preload phase: every entity pushed once.
#[derive(Debug, Clone, Serialize)]
pub struct PreloadSummary {
    pub rows: u64,
    pub requests: u64,
    pub errors: BTreeMap<String, u64>,
    pub seconds: f64,
    pub rows_per_sec: f64,
}

impl PreloadSummary {
    pub fn of(recorder: &Recorder, elapsed: Duration) -> PreloadSummary {
        let push = recorder.op(Op::Push);
        let seconds = elapsed.as_secs_f64();
        PreloadSummary {
            rows: push.rows,
            requests: push.requests(),
            errors: push.errors.clone(),
            seconds,
            rows_per_sec: per_sec(push.rows, seconds),
        }
    }
}

/// Latency percentiles in microseconds (all zero when nothing succeeded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// One second of one operation, for the plot.
#[derive(Debug, Clone, Serialize)]
pub struct SecondSummary {
    pub second: usize,
    pub requests: u64,
    pub errors: u64,
    pub rows: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// One operation's results.
#[derive(Debug, Clone, Serialize)]
pub struct OpSummary {
    pub op: Op,
    /// Answered or failed, after warmup.
    pub requests: u64,
    pub ok: u64,
    /// Failures by HTTP status (`"503"`) or transport (`"connect"`, `"timeout"`, `"transport"`).
    pub errors: BTreeMap<String, u64>,
    pub rows: u64,
    /// The measured window these rates are over.
    pub seconds: f64,
    /// Successful requests per second.
    pub requests_per_sec: f64,
    /// Rows read or written per second (successful requests only).
    pub rows_per_sec: f64,
    /// Successful requests only (failures are counted, not timed).
    pub latency_us: Percentiles,
    pub timeline: Vec<SecondSummary>,
}

impl OpSummary {
    pub fn of(op: Op, record: &OpRecord, elapsed: Duration) -> OpSummary {
        let seconds = elapsed.as_secs_f64();
        let buckets = elapsed.as_secs_f64().ceil() as usize;
        let timeline = record
            .seconds
            .iter()
            .take(buckets.max(1))
            .enumerate()
            .map(|(second, s)| {
                let p = Percentiles::of(&s.latency);
                SecondSummary {
                    second,
                    requests: s.ok + s.errors,
                    errors: s.errors,
                    rows: s.rows,
                    p50_us: p.p50,
                    p99_us: p.p99,
                    max_us: p.max,
                }
            })
            .collect();
        OpSummary {
            op,
            requests: record.requests(),
            ok: record.ok,
            errors: record.errors.clone(),
            rows: record.rows,
            seconds,
            requests_per_sec: per_sec(record.ok, seconds),
            rows_per_sec: per_sec(record.rows, seconds),
            latency_us: Percentiles::of(&record.latency),
            timeline,
        }
    }
}

impl Report {
    /// The report of a run: the operations that saw any request, in table order.
    pub fn new(
        options: &Options,
        preload: Option<PreloadSummary>,
        recorder: &Recorder,
        measured: Duration,
        unsent: u64,
    ) -> Report {
        let operations = Op::ALL
            .into_iter()
            .filter(|&op| recorder.op(op).requests() > 0)
            .map(|op| OpSummary::of(op, recorder.op(op), measured))
            .collect();
        Report {
            setup: Setup::of(options),
            preload,
            operations,
            unsent,
        }
    }

    /// The table printed on stdout.
    pub fn table(&self) -> String {
        let s = &self.setup;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "featgrid bench: {} ({}), {} thread(s), targets {}",
            s.workload,
            s.protocol,
            s.threads,
            s.targets.join(" ")
        );
        let _ = writeln!(out, "  {}", s.describe());
        if let Some(p) = &self.preload {
            let _ = writeln!(
                out,
                "preload: {} rows in {:.2} s = {:.0} rows/s ({} pushes, {} errors)",
                p.rows,
                p.seconds,
                p.rows_per_sec,
                p.requests,
                p.errors.values().sum::<u64>()
            );
        }
        let _ = writeln!(
            out,
            "\n{:<10} {:>9} {:>7} {:>10} {:>11} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8}",
            "op",
            "requests",
            "errors",
            "req/s",
            "rows/s",
            "min",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max"
        );
        for op in &self.operations {
            let l = &op.latency_us;
            let _ = writeln!(
                out,
                "{:<10} {:>9} {:>7} {:>10.1} {:>11.1} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8}",
                op.op.name(),
                op.requests,
                op.requests - op.ok,
                op.requests_per_sec,
                op.rows_per_sec,
                l.min,
                l.p50,
                l.p90,
                l.p99,
                l.p999,
                l.max
            );
        }
        let _ = writeln!(
            out,
            "latency in microseconds, successful requests only; req/s and rows/s count successes over {:.2} s",
            self.operations.first().map_or(0.0, |o| o.seconds)
        );
        for op in self.operations.iter().filter(|o| !o.errors.is_empty()) {
            let kinds: Vec<String> = op
                .errors
                .iter()
                .map(|(kind, n)| format!("{kind} x {n}"))
                .collect();
            let _ = writeln!(out, "errors, {}: {}", op.op.name(), kinds.join(", "));
        }
        if let Some(warning) = self.unsent_warning() {
            let _ = writeln!(out, "{warning}");
        }
        out
    }

    /// The warning the table and the plot carry when open-loop requests were never sent.
    pub fn unsent_warning(&self) -> Option<String> {
        (self.unsent > 0).then(|| format!(
            "warning: {} scheduled requests were never sent (every connection was busy): the latencies understate; raise --connections",
            self.unsent
        ))
    }
}

fn per_sec(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::record::Failure;

    #[test]
    fn a_report_has_ordered_percentiles_and_rates() {
        let mut r = Recorder::default();
        for i in 0..10_000u64 {
            r.success(Op::Read, (i / 5_000) as usize, 100 + i % 900, 2);
        }
        r.failure(Op::Read, 1, Failure::Status(503));
        let report = Report::new(&Options::default(), None, &r, Duration::from_secs(2), 0);
        assert_eq!(report.operations.len(), 1);
        let read = &report.operations[0];
        assert_eq!(
            (read.requests, read.ok, read.rows),
            (10_001, 10_000, 20_000)
        );
        assert_eq!(read.requests_per_sec, 5_000.0);
        assert_eq!(read.rows_per_sec, 10_000.0);
        let l = read.latency_us;
        assert!(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99);
        assert!(l.p99 <= l.p999 && l.p999 <= l.max, "{l:?}");
        assert_eq!(l.min, 100);
        assert_eq!(read.timeline.len(), 2);
        assert_eq!(read.timeline[1].errors, 1);
        let table = report.table();
        assert!(table.contains("read"), "{table}");
        assert!(table.contains("errors, read: 503 x 1"), "{table}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["operations"][0]["op"], "read");
        assert_eq!(json["operations"][0]["errors"]["503"], 1);
    }
}
