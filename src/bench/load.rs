//! The machinery under every phase: the time plan (warmup, measured window, end), the
//! open-loop schedule, worker threads each running an actix system, and one HTTP session per
//! thread.
//!
//! The client is `awc`, actix-web's own: the project already runs on actix-rt 2 / tokio, so it
//! adds little to build, and its pool keeps connections alive between requests. An awc client
//! is single-threaded (`!Send`), which suits the shape here: `--threads` OS threads, each with
//! its own actix system, one client, and its share of the workers as local tasks. Workers
//! never share anything but a few atomics ([`Shared`]); each records into its own
//! [`Recorder`], merged when the phase is over.

use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use awc::error::{PayloadError, SendRequestError};
use awc::http::{header, Uri};

use super::options::Options;
use super::protocol::{Call, Route};
use super::record::{Failure, Recorder};

/// Largest answer body accepted (a 10,000-entity read is a few MB).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// When a phase starts, when recording starts (after warmup) and when it stops.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub start: Instant,
    pub measure_from: Instant,
    pub end: Instant,
}

impl Plan {
    pub fn new(start: Instant, warmup: Duration, duration: Duration) -> Plan {
        let measure_from = start + warmup;
        Plan {
            start,
            measure_from,
            end: measure_from + duration,
        }
    }

    /// Whether a request started (or was due) at `t` is recorded.
    pub fn measures(&self, t: Instant) -> bool {
        t >= self.measure_from
    }

    /// The per-second bucket of a request started (or due) at `t`.
    pub fn second(&self, t: Instant) -> usize {
        t.saturating_duration_since(self.measure_from).as_secs() as usize
    }
}

/// The open-loop schedule: request `n` (0, 1, 2, ...) is due at `start + n / rate`, however
/// late the earlier ones were answered.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    pub rate: f64,
}

impl Schedule {
    /// When request `n` is due.
    pub fn intended(&self, n: u64) -> Instant {
        self.start + Duration::from_nanos((n as f64 * 1e9 / self.rate).round() as u64)
    }

    /// How many requests are due before `t`.
    pub fn due_before(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.start).as_secs_f64() * self.rate).ceil() as u64
    }
}

/// The latency of a request that was due at `due`, sent at `sent` and answered at `done`.
///
/// Coordinated omission: a request sent late because every connection was busy (the server
/// stalled) counts from when it was due, so the stall shows in its latency. A request sent a
/// little early (timers wake up to [`TIMER_SLACK`] early) counts from when it was sent.
pub fn corrected_latency(due: Instant, sent: Instant, done: Instant) -> Duration {
    done.saturating_duration_since(due.min(sent))
}

/// Open-loop workers wake this much before a request is due: tokio's timer has 1 ms ticks,
/// and waking late would add up to a tick to every latency. The price: requests due within
/// one tick leave together, so at R req/s the arrivals come in bursts of about R/1000 each
/// millisecond (as with wrk2). Spinning to the microsecond would cost a core this 2-core
/// machine does not have to spare.
pub const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Progress counters the progress line reads while a phase runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub errors: AtomicU64,
    pub rows: AtomicU64,
}

/// What the workers of one phase share, across threads: settings, plan, counters.
pub struct Shared {
    pub options: Options,
    pub plan: Plan,
    /// Next sequence number: open-loop slot, freshness value, preload batch, round-robin turn.
    pub next: AtomicU64,
    /// Recorded requests claimed so far, against `--max-requests`.
    pub claimed: AtomicU64,
    /// Set when the run must end early (request cap reached, preload failed).
    pub stop: AtomicBool,
    /// Open loop: due requests never sent because the run ended first.
    pub unsent: AtomicU64,
    pub progress: Arc<Progress>,
}

impl Shared {
    pub fn new(options: Options, plan: Plan, progress: Arc<Progress>) -> Shared {
        Shared {
            options,
            plan,
            next: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            unsent: AtomicU64::new(0),
            progress,
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Claims one recorded request; false (and the run stops) once the cap is reached.
    pub fn claim(&self) -> bool {
        let Some(max) = self.options.max_requests else {
            return true;
        };
        if self.claimed.fetch_add(1, Ordering::Relaxed) < max {
            true
        } else {
            self.stop.store(true, Ordering::Relaxed);
            false
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a recorded outcome for the progress line.
    pub fn progressed(&self, ok: bool, rows: u64) {
        let p = &self.progress;
        p.done.fetch_add(1, Ordering::Relaxed);
        if ok {
            p.rows.fetch_add(rows, Ordering::Relaxed);
        } else {
            p.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One thread's HTTP client and the URLs of every target.
pub struct Session {
    client: awc::Client,
    /// Per target (then the freshness read target, if any): the read and push URLs.
    endpoints: Vec<[Uri; 2]>,
    targets: usize,
    has_read_target: bool,
    /// `Bearer <token>`, when the options give a token.
    authorization: Option<header::HeaderValue>,
}

impl Session {
    /// A client with room for `connections` keep-alive connections to each target.
    pub fn new(options: &Options, connections: usize) -> Session {
        let connector = awc::Connector::new()
            .limit(connections * (options.targets.len() + 1))
            .timeout(options.timeout)
            .conn_keep_alive(Duration::from_secs(60))
            .conn_lifetime(Duration::from_secs(3600))
            .rustls_0_23(
                super::tls::client_config(options.ca_cert.as_deref()).unwrap_or_else(|problem| {
                    // Validated before the run: only a file changed since lands here.
                    tracing::error!(%problem, "--ca-cert: trusting no certificate");
                    super::tls::client_config(None).expect("an empty trust store builds")
                }),
            );
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(options.timeout)
            .disable_redirects()
            .finish();
        let uri = |base: &str, route: Route| -> Uri {
            format!("{base}{}", options.protocol.path(route))
                .parse()
                .expect("a validated target and a protocol path make a URL")
        };
        let endpoints = options
            .targets
            .iter()
            .chain(&options.read_target)
            .map(|t| [uri(&t.base, Route::Read), uri(&t.base, Route::Push)])
            .collect();
        let authorization = options.token.as_ref().and_then(|t| {
            header::HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| tracing::error!("--token holds characters a header cannot carry"))
                .ok()
        });
        Session {
            client,
            endpoints,
            targets: options.targets.len(),
            has_read_target: options.read_target.is_some(),
            authorization,
        }
    }

    /// The target for round-robin turn `turn`.
    pub fn target_of(&self, turn: u64) -> usize {
        (turn % self.targets as u64) as usize
    }

    /// Where freshness reads go when the push went to `target`.
    pub fn read_target_for(&self, target: usize) -> usize {
        if self.has_read_target {
            self.targets
        } else {
            target
        }
    }

    /// Sends `call` to endpoint `target`; the whole answer body on a 2xx.
    pub async fn send(&self, target: usize, call: &Call) -> Result<Bytes, Failure> {
        let uri = &self.endpoints[target][call.route as usize];
        let mut request = self
            .client
            .post(uri.clone())
            .insert_header((header::CONTENT_TYPE, call.content_type.clone()));
        if let Some(authorization) = &self.authorization {
            request = request.insert_header((header::AUTHORIZATION, authorization.clone()));
        }
        let mut response = request
            .send_body(call.body.clone())
            .await
            .map_err(|e| match e {
                SendRequestError::Connect(_) => Failure::Connect,
                SendRequestError::Timeout => Failure::Timeout,
                _ => Failure::Transport,
            })?;
        // Read the body whatever the status, so the connection goes back to the pool.
        let body = response
            .body()
            .limit(MAX_ANSWER_BYTES)
            .await
            .map_err(|e| match e {
                PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                    Failure::Timeout
                }
                _ => Failure::Transport,
            })?;
        if response.status().is_success() {
            Ok(body)
        } else {
            Err(Failure::Status(response.status().as_u16()))
        }
    }
}

/// Why a connection to the first target cannot be made (a TLS handshake refused, a refused
/// connection ...), by one request of its own; `None` when it can.
pub fn connect_failure(options: &Options) -> Option<String> {
    let target = options.targets.first()?;
    let url = format!("{}/health", target.base);
    actix_rt::System::new().block_on(async {
        let session = Session::new(options, 1);
        match session.client.get(url).send().await {
            Err(SendRequestError::Connect(e)) => Some(e.to_string()),
            _ => None,
        }
    })
}

/// Runs `workers` workers spread round-robin over `threads` threads, each thread in its own
/// actix system with one [`Session`]; returns every worker's recorder once all have ended.
pub fn run_workers<F, Fut>(options: &Options, workers: usize, worker: F) -> Vec<Recorder>
where
    F: Fn(Rc<Session>, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Recorder> + 'static,
{
    let threads = options.threads.clamp(1, workers.max(1));
    let worker = Arc::new(worker);
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let worker = Arc::clone(&worker);
            let options = options.clone();
            std::thread::Builder::new()
                .name(format!("bench-{thread}"))
                .spawn(move || {
                    let ids: Vec<usize> = (thread..workers).step_by(threads).collect();
                    actix_rt::System::new().block_on(async move {
                        let session = Rc::new(Session::new(&options, ids.len()));
                        let tasks: Vec<_> = ids
                            .into_iter()
                            .map(|id| actix_rt::spawn(worker(Rc::clone(&session), id)))
                            .collect();
                        let mut recorders = Vec::with_capacity(tasks.len());
                        for task in tasks {
                            recorders.push(task.await.expect("a bench worker panicked"));
                        }
                        recorders
                    })
                })
                .expect("start a bench thread")
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("a bench thread panicked"))
        .collect()
}

/// Sleeps until `t` (less [`TIMER_SLACK`]) on the current actix system.
pub async fn sleep_until(t: Instant) {
    let wake = t.checked_sub(TIMER_SLACK).unwrap_or(t);
    if wake > Instant::now() {
        actix_rt::time::sleep_until(actix_rt::time::Instant::from_std(wake)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_fixed_by_the_rate() {
        let start = Instant::now();
        let s = Schedule { start, rate: 200.0 };
        assert_eq!(s.intended(0), start);
        assert_eq!(s.intended(1), start + Duration::from_millis(5));
        assert_eq!(s.intended(200), start + Duration::from_secs(1));
        assert_eq!(s.intended(1_000_000), start + Duration::from_secs(5_000));
        // Evenly spaced, whatever happened to earlier requests.
        let gaps: Vec<_> = (1..10).map(|n| s.intended(n) - s.intended(n - 1)).collect();
        assert!(
            gaps.iter().all(|g| *g == Duration::from_millis(5)),
            "{gaps:?}"
        );
        assert_eq!(s.due_before(start), 0);
        assert_eq!(s.due_before(start + Duration::from_secs(2)), 400);
        assert_eq!(s.due_before(start + Duration::from_micros(5_001)), 2);
        let fractional = Schedule { start, rate: 3.0 };
        assert_eq!(
            fractional.intended(1),
            start + Duration::from_nanos(333_333_333)
        );
        assert_eq!(fractional.intended(3), start + Duration::from_secs(1));
    }

    #[test]
    fn late_requests_count_from_when_they_were_due() {
        let due = Instant::now();
        let ms = Duration::from_millis;
        // Sent on time: the server's time.
        assert_eq!(corrected_latency(due, due, due + ms(2)), ms(2));
        // The server stalled for 100 ms and this request waited for a connection: the
        // wait is part of its latency.
        assert_eq!(
            corrected_latency(due, due + ms(100), due + ms(102)),
            ms(102)
        );
        // Sent a little early by the timer: counts from the send.
        let early = due.checked_sub(Duration::from_micros(300)).unwrap();
        assert_eq!(corrected_latency(due, early, early + ms(2)), ms(2));
    }

    #[test]
    fn the_plan_measures_after_warmup_and_buckets_by_second() {
        let start = Instant::now();
        let plan = Plan::new(start, Duration::from_secs(2), Duration::from_secs(10));
        assert!(!plan.measures(start + Duration::from_millis(1999)));
        assert!(plan.measures(start + Duration::from_secs(2)));
        assert_eq!(plan.end, start + Duration::from_secs(12));
        assert_eq!(plan.second(start), 0);
        assert_eq!(plan.second(start + Duration::from_millis(2999)), 0);
        assert_eq!(plan.second(start + Duration::from_millis(3000)), 1);
        assert_eq!(plan.second(start + Duration::from_millis(11_500)), 9);
    }

    #[test]
    fn the_request_cap_is_exact_across_claims() {
        let options = Options {
            max_requests: Some(3),
            ..Options::default()
        };
        let plan = Plan::new(Instant::now(), Duration::ZERO, Duration::from_secs(1));
        let shared = Shared::new(options, plan, Arc::default());
        assert!((0..3).all(|_| shared.claim()));
        assert!(!shared.stopped());
        assert!(!shared.claim());
        assert!(shared.stopped());
    }
}
