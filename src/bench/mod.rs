//! `featgrid bench`: the built-in load harness. It preloads entities, then drives reads,
//! pushes, a mix of both, or freshness probes at one or more servers, closed loop
//! (`--connections` back to back) or open loop (`--rate`, latency corrected for coordinated
//! omission), and reports per operation: requests, errors, throughput and HDR latency
//! percentiles, as a table, JSON (`--json`) and an SVG (`--plot`).
//!
//! - [`options`]: what to run, validated (loopback targets only unless `--allow-remote`).
//! - [`protocol`]: the one seam between the harness and a wire format (Feast JSON today).
//! - `workload`: keys (uniform or zipf), row values, the read/push mix.
//! - `load`: the time plan, the open-loop schedule, threads, the HTTP session.
//! - `workers`: the worker loops (preload, load, freshness).
//! - `record`: per-worker HDR histograms and per-second buckets, merged at the end.
//! - [`report`], [`plot`]: the table, the JSON and the SVG.

mod load;
pub mod options;
pub mod plot;
pub mod protocol;
mod record;
pub mod report;
mod tls;
mod workers;
mod workload;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use options::{parse_duration, Load, Options, Target, Workload};
pub use protocol::Protocol;
pub use report::Report;

use load::{run_workers, Plan, Progress, Schedule, Shared};
use record::{Op, Recorder};
use report::PreloadSummary;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{option}: {problem}")]
    InvalidOption {
        option: &'static str,
        problem: String,
    },
    #[error("refusing to load {url}: its host is not this machine (loopback: 127.0.0.0/8, localhost, ::1); pass --allow-remote to load a server you run elsewhere")]
    RemoteTarget { url: String },
    #[error("preload failed after {rows} of {entities} rows ({errors}): {hint}")]
    Preload {
        rows: u64,
        entities: u64,
        errors: String,
        /// What the errors point at: the TLS error, a missing token, or the server itself.
        hint: String,
    },
    #[error("{path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl BenchError {
    /// Whether the run was refused before it started (a usage error).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            BenchError::InvalidOption { .. } | BenchError::RemoteTarget { .. }
        )
    }
}

/// Runs the whole bench: validate, preload, warm up, measure, write `--json` and `--plot`.
/// The caller prints [`Report::table`].
pub fn run(options: &Options) -> Result<Report, BenchError> {
    options.validate()?;
    for path in options.json.iter().chain(&options.plot) {
        check_writable(path)?;
    }
    let preload = if options.preload {
        Some(preload(options)?)
    } else {
        None
    };
    let (recorder, measured, unsent) = measure(options);
    let report = Report::new(options, preload, &recorder, measured, unsent);
    if let Some(path) = &options.json {
        let mut json = serde_json::to_vec_pretty(&report).expect("a report serializes");
        json.push(b'\n');
        write(path, &json)?;
    }
    if let Some(path) = &options.plot {
        write(path, plot::render(&report).as_bytes())?;
    }
    Ok(report)
}

/// Pushes every entity once with `--connections` workers; fails on the first error.
fn preload(options: &Options) -> Result<PreloadSummary, BenchError> {
    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    // No time limit: the preload ends when the batches run out (each bounded by --timeout).
    let plan = Plan::new(start, Duration::ZERO, Duration::from_secs(365 * 86_400));
    let shared = Arc::new(Shared::new(options.clone(), plan, Arc::clone(&progress)));
    let line = ProgressLine::start(options.progress, "preload", progress, None);
    let worker_shared = Arc::clone(&shared);
    let recorders = run_workers(options, options.connections, move |session, worker| {
        workers::preload(session, Arc::clone(&worker_shared), worker)
    });
    let elapsed = start.elapsed();
    line.finish();
    let recorder = Recorder::merged(&recorders);
    let summary = PreloadSummary::of(&recorder, elapsed);
    let push = recorder.op(Op::Push);
    if push.error_count() > 0 {
        let errors: Vec<String> = push
            .errors
            .iter()
            .map(|(kind, n)| format!("{kind} x {n}"))
            .collect();
        let failed = |kind: &str| push.errors.contains_key(kind);
        let targets = options
            .targets
            .iter()
            .map(|t| t.base.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let hint = if failed("401") {
            format!("{targets} asks for a token: give one with --token (or FEATGRID_TOKEN)")
        } else if failed("403") {
            format!("{targets} refused the token: it needs the write scope")
        } else {
            let reason = failed("connect")
                .then(|| load::connect_failure(options))
                .flatten();
            let listening = format!(
                "is a featgrid with the driver quickstart registry listening at {targets}?"
            );
            match reason {
                Some(r) if targets.contains("https://") && !r.contains("refused") => format!(
                    "cannot connect: {r} (--ca-cert names the server's certificate or its CA)"
                ),
                Some(r) => format!("cannot connect: {r}; {listening}"),
                None => listening,
            }
        };
        return Err(BenchError::Preload {
            rows: push.rows,
            entities: options.entities,
            errors: errors.join(", "),
            hint,
        });
    }
    Ok(summary)
}

/// Warmup then the measured window; returns the merged recorder, the measured time and the
/// open-loop requests never sent.
fn measure(options: &Options) -> (Recorder, Duration, u64) {
    let progress = Arc::new(Progress::default());
    let plan = Plan::new(Instant::now(), options.warmup, options.duration);
    let shared = Arc::new(Shared::new(options.clone(), plan, Arc::clone(&progress)));
    let line = ProgressLine::start(
        options.progress,
        options.workload.name(),
        progress,
        Some(plan),
    );
    let worker_shared = Arc::clone(&shared);
    let recorders = match options.workload {
        Workload::Freshness => run_workers(options, options.connections, move |session, worker| {
            workers::freshness(session, Arc::clone(&worker_shared), worker)
        }),
        _ => run_workers(options, options.connections, move |session, worker| {
            workers::load(session, Arc::clone(&worker_shared), worker)
        }),
    };
    let finished = Instant::now();
    line.finish();
    let measured = finished
        .min(plan.end)
        .saturating_duration_since(plan.measure_from);
    let mut unsent = shared.unsent.load(Ordering::Relaxed);
    if let Load::Open { rate } = options.load {
        if !shared.stopped() {
            // Slots due before the end that no worker even took.
            let schedule = Schedule {
                start: plan.start,
                rate,
            };
            let taken = shared.next.load(Ordering::Relaxed);
            unsent += schedule.due_before(plan.end).saturating_sub(taken);
        }
    }
    (Recorder::merged(&recorders), measured, unsent)
}

/// The progress line on stderr, redrawn twice a second while a phase runs (only when asked
/// for: the CLI asks when stderr is a terminal).
struct ProgressLine {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    fn start(
        enabled: bool,
        label: &'static str,
        progress: Arc<Progress>,
        plan: Option<Plan>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = enabled.then(|| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(500));
                    let elapsed = start.elapsed().as_secs_f64();
                    let phase = match plan {
                        Some(p) if Instant::now() < p.measure_from => " (warmup)",
                        _ => "",
                    };
                    let of = plan.map_or(String::new(), |p| {
                        format!("/{:.0}s", (p.end - p.start).as_secs_f64())
                    });
                    let done = progress.done.load(Ordering::Relaxed);
                    let rows = progress.rows.load(Ordering::Relaxed);
                    let errors = progress.errors.load(Ordering::Relaxed);
                    eprint!(
                        "\r\x1b[2K{label}{phase} {elapsed:.0}s{of}: {done} requests, {rows} rows, {errors} errors"
                    );
                    let _ = std::io::stderr().flush();
                }
                eprint!("\r\x1b[2K");
            })
        });
        ProgressLine { stop, thread }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn check_writable(path: &Path) -> Result<(), BenchError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(BenchError::Output {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the directory {} does not exist", dir.display()),
            ),
        })
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    std::fs::write(path, bytes).map_err(|source| BenchError::Output {
        path: path.to_path_buf(),
        source,
    })
}
