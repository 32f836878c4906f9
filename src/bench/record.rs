//! What the workers measure: per operation, an HDR histogram of latencies (microseconds,
//! 3 significant figures), successes, rows, errors by kind, and per-second buckets for the
//! plot. Each worker owns a [`Recorder`]; they are merged once the run is over.

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;

/// An operation with its own table row and chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Read,
    Push,
    /// Push-to-readable time of one freshness probe.
    Freshness,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Read, Op::Push, Op::Freshness];

    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Push => "push",
            Op::Freshness => "freshness",
        }
    }
}

/// Why a request failed: an HTTP status, or a transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Status(u16),
    /// The connection could not be made.
    Connect,
    /// No answer within the request timeout (or, for freshness, the probe timeout).
    Timeout,
    /// Any other transport or decoding failure (reset connection, bad answer).
    Transport,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(code) => write!(f, "{code}"),
            Failure::Connect => f.write_str("connect"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Transport => f.write_str("transport"),
        }
    }
}

/// A histogram of microseconds with 3 significant figures, resized as values arrive.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is valid")
}

/// Records one value. Not `saturating_record`: on an auto-resizing histogram that clamps to
/// the range allocated so far instead of growing it (hdrhistogram 7.5).
fn add_sample<T: hdrhistogram::Counter>(histogram: &mut Histogram<T>, value: u64) {
    // Fails only when a count overflows T, which a per-second u32 count never reaches.
    let _ = histogram.record(value);
}

/// One second of one operation: enough to plot p50/p99/max and throughput. Its histogram
/// keeps 2 significant figures (about 4 KB): plenty for a chart, and cheap per second.
#[derive(Debug, Clone)]
pub struct Second {
    pub ok: u64,
    pub errors: u64,
    pub rows: u64,
    pub latency: Histogram<u32>,
}

impl Second {
    fn new() -> Second {
        Second {
            ok: 0,
            errors: 0,
            rows: 0,
            latency: Histogram::new(2).expect("2 significant figures is valid"),
        }
    }
}

/// Everything recorded for one operation.
#[derive(Debug, Clone)]
pub struct OpRecord {
    pub latency: Histogram<u64>,
    pub ok: u64,
    pub rows: u64,
    pub errors: BTreeMap<String, u64>,
    /// Index = whole seconds since the measured phase began.
    pub seconds: Vec<Second>,
}

impl OpRecord {
    fn new() -> OpRecord {
        OpRecord {
            latency: latency_histogram(),
            ok: 0,
            rows: 0,
            errors: BTreeMap::new(),
            seconds: Vec::new(),
        }
    }

    pub fn requests(&self) -> u64 {
        self.ok + self.errors.values().sum::<u64>()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn second(&mut self, second: usize) -> &mut Second {
        if self.seconds.len() <= second {
            self.seconds.resize_with(second + 1, Second::new);
        }
        &mut self.seconds[second]
    }

    fn merge(&mut self, other: &OpRecord) {
        self.latency
            .add(&other.latency)
            .expect("auto-resizing histograms merge");
        self.ok += other.ok;
        self.rows += other.rows;
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += count;
        }
        for (i, theirs) in other.seconds.iter().enumerate() {
            let ours = self.second(i);
            ours.ok += theirs.ok;
            ours.errors += theirs.errors;
            ours.rows += theirs.rows;
            ours.latency
                .add(&theirs.latency)
                .expect("auto-resizing histograms merge");
        }
    }
}

/// A worker's measurements for every operation.
#[derive(Debug, Clone)]
pub struct Recorder {
    ops: [OpRecord; 3],
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            ops: [OpRecord::new(), OpRecord::new(), OpRecord::new()],
        }
    }
}

impl Recorder {
    pub fn op(&self, op: Op) -> &OpRecord {
        &self.ops[op as usize]
    }

    /// A success: `latency_us` microseconds, `rows` rows read or written, in `second`.
    pub fn success(&mut self, op: Op, second: usize, latency_us: u64, rows: u64) {
        let record = &mut self.ops[op as usize];
        add_sample(&mut record.latency, latency_us);
        record.ok += 1;
        record.rows += rows;
        let bucket = record.second(second);
        bucket.ok += 1;
        bucket.rows += rows;
        add_sample(&mut bucket.latency, latency_us);
    }

    /// A failure in `second`; failures are counted, their latency is not recorded.
    pub fn failure(&mut self, op: Op, second: usize, failure: Failure) {
        let record = &mut self.ops[op as usize];
        *record.errors.entry(failure.to_string()).or_default() += 1;
        record.second(second).errors += 1;
    }

    pub fn merge(&mut self, other: &Recorder) {
        for (ours, theirs) in self.ops.iter_mut().zip(&other.ops) {
            ours.merge(theirs);
        }
    }

    /// All recorders merged into one.
    pub fn merged<'a>(recorders: impl IntoIterator<Item = &'a Recorder>) -> Recorder {
        let mut all = Recorder::default();
        for r in recorders {
            all.merge(r);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_recorders_hold_every_sample() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for us in 1..=1000 {
            a.success(Op::Read, 0, us, 1);
        }
        for us in 1001..=2000 {
            b.success(Op::Read, 2, us, 10);
        }
        // Far beyond the range a fresh histogram starts with: it must grow, not clamp.
        b.success(Op::Read, 2, 7_000_000, 10);
        b.failure(Op::Read, 2, Failure::Status(503));
        b.failure(Op::Read, 1, Failure::Status(503));
        a.failure(Op::Push, 0, Failure::Timeout);

        let all = Recorder::merged([&a, &b]);
        let read = all.op(Op::Read);
        assert_eq!(read.ok, 2001);
        assert_eq!(read.rows, 1000 + 10_010);
        assert_eq!(read.requests(), 2003);
        assert_eq!(read.errors, BTreeMap::from([("503".to_string(), 2)]));
        assert_eq!(read.latency.len(), 2001);
        assert_eq!(read.latency.min(), 1);
        assert!(read.latency.equivalent(read.latency.max(), 7_000_000));
        assert!(read
            .latency
            .equivalent(read.latency.value_at_quantile(0.5), 1001));
        // Per-second buckets line up by index.
        assert_eq!(read.seconds.len(), 3);
        assert_eq!((read.seconds[0].ok, read.seconds[0].errors), (1000, 0));
        assert_eq!((read.seconds[1].ok, read.seconds[1].errors), (0, 1));
        assert_eq!((read.seconds[2].ok, read.seconds[2].rows), (1001, 10_010));
        // Two significant figures per second.
        let second = &read.seconds[2].latency;
        assert!((1000..=1001).contains(&second.min()), "{}", second.min());
        assert!(
            second.max().abs_diff(7_000_000) < 70_000,
            "{}",
            second.max()
        );
        let push = all.op(Op::Push);
        assert_eq!((push.ok, push.error_count()), (0, 1));
        assert_eq!(push.errors["timeout"], 1);
        assert_eq!(all.op(Op::Freshness).requests(), 0);
    }

    #[test]
    fn merging_is_order_independent() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        a.success(Op::Push, 1, 250, 100);
        b.success(Op::Push, 0, 90_000, 100);
        let ab = Recorder::merged([&a, &b]);
        let ba = Recorder::merged([&b, &a]);
        let (x, y) = (ab.op(Op::Push), ba.op(Op::Push));
        assert_eq!(x.latency, y.latency);
        assert_eq!(x.seconds.len(), y.seconds.len());
        assert_eq!(x.rows, 200);
    }
}
