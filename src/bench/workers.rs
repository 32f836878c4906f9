//! The worker loops, one per connection: preload (push every entity once), load (read, push
//! or mixed; closed or open loop) and the freshness probe. Each returns its own [`Recorder`].
//!
//! Every loop ends on its own: at the plan's end, at the request cap, or when the batches run
//! out; a single request is bounded by `--timeout`, a freshness probe by `--probe-timeout`.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{corrected_latency, sleep_until, Schedule, Session, Shared};
use super::options::Load;
use super::protocol::{Call, Route, FEATURES};
use super::record::{Failure, Op, Recorder};
use super::workload::{Generator, Keys, PROBE_KEY_BASE};
use crate::value::now_micros;

fn generator(shared: &Shared, worker: usize) -> Generator {
    let o = &shared.options;
    let keys = Keys::new(o.entities, o.zipf).expect("validated zipf exponent");
    Generator::new(keys, o.workload, o.seed, worker)
}

fn op_of(route: Route) -> Op {
    match route {
        Route::Read => Op::Read,
        Route::Push => Op::Push,
    }
}

/// Records one outcome in the bucket of `at` and feeds the progress line.
fn record(
    shared: &Shared,
    recorder: &mut Recorder,
    op: Op,
    at: Instant,
    latency: Duration,
    outcome: Result<u64, Failure>,
) {
    let second = shared.plan.second(at);
    match outcome {
        Ok(rows) => {
            recorder.success(op, second, latency.as_micros() as u64, rows);
            shared.progressed(true, rows);
        }
        Err(failure) => {
            recorder.failure(op, second, failure);
            shared.progressed(false, 0);
        }
    }
}

/// Pushes driver ids 1..=entities in batches of `--preload-batch`; every push is recorded.
/// The first failure stops the preload (it is reported, and the run does not go on).
pub async fn preload(session: Rc<Session>, shared: Arc<Shared>, worker: usize) -> Recorder {
    let o = &shared.options;
    let mut generator = generator(&shared, worker);
    let mut recorder = Recorder::default();
    let batch = o.preload_batch as u64;
    let mut rows = Vec::with_capacity(o.preload_batch);
    while !shared.stopped() {
        let turn = shared.next_seq();
        let first = turn * batch + 1;
        if first > o.entities {
            break;
        }
        let last = (first + batch - 1).min(o.entities);
        rows.clear();
        for id in first..=last {
            let row = generator.row(id as i64);
            rows.push(row);
        }
        let call = o.protocol.push(&rows, now_micros());
        let started = Instant::now();
        let outcome = session.send(session.target_of(turn), &call).await;
        let failed = outcome.is_err();
        let outcome = outcome.map(|_| rows.len() as u64);
        record(
            &shared,
            &mut recorder,
            Op::Push,
            started,
            started.elapsed(),
            outcome,
        );
        if failed {
            shared.stop.store(true, Ordering::Relaxed);
        }
    }
    recorder
}

/// Read, push or mixed requests until the plan ends or the cap is reached. Closed loop: back
/// to back. Open loop: each request takes the next slot of the shared schedule, waits for it,
/// and counts its latency from when it was due.
pub async fn load(session: Rc<Session>, shared: Arc<Shared>, worker: usize) -> Recorder {
    let o = &shared.options;
    let plan = shared.plan;
    let schedule = match o.load {
        Load::Closed => None,
        Load::Open { rate } => Some(Schedule {
            start: plan.start,
            rate,
        }),
    };
    let mut generator = generator(&shared, worker);
    let mut recorder = Recorder::default();
    let mut ids = Vec::with_capacity(o.batch);
    let mut rows = Vec::with_capacity(o.batch);
    while !shared.stopped() {
        let turn = shared.next_seq();
        let now = Instant::now();
        // Closed loop: due now. Open loop: due at this turn's slot of the schedule.
        let due = schedule.map_or(now, |s| s.intended(turn));
        if due >= plan.end {
            break;
        }
        if now >= plan.end {
            // Open loop, every connection busy until the end: this slot was never sent.
            shared.unsent.fetch_add(1, Ordering::Relaxed);
            break;
        }
        let measured = plan.measures(due);
        if measured && !shared.claim() {
            break;
        }
        // Build the request before waiting for its slot: generating it is off the clock.
        let route = generator.next_route();
        let (call, rows_in_call): (Call, u64) = match route {
            Route::Read => {
                generator.keys(o.batch, &mut ids);
                (o.protocol.read(&ids, o.features), ids.len() as u64)
            }
            Route::Push => {
                generator.rows(o.batch, &mut rows);
                (o.protocol.push(&rows, now_micros()), rows.len() as u64)
            }
        };
        if schedule.is_some() {
            sleep_until(due).await;
        }
        let sent = Instant::now();
        let outcome = session.send(session.target_of(turn), &call).await;
        let done = Instant::now();
        if measured {
            let latency = match schedule {
                None => done - sent,
                Some(_) => corrected_latency(due, sent, done),
            };
            let outcome = outcome.map(|_| rows_in_call);
            record(&shared, &mut recorder, op_of(route), due, latency, outcome);
        }
    }
    recorder
}

/// Freshness probes: push a unique `avg_daily_trips` (a sequence number) for this worker's own
/// driver id, then read it back (from `--read-target`, else the same target) back to back until
/// the value is visible. Records the push, every read, and push-to-readable time.
pub async fn freshness(session: Rc<Session>, shared: Arc<Shared>, worker: usize) -> Recorder {
    let o = &shared.options;
    let plan = shared.plan;
    let driver_id = PROBE_KEY_BASE + worker as i64;
    let mut generator = generator(&shared, worker);
    let mut recorder = Recorder::default();
    let read_call = o.protocol.read(&[driver_id], FEATURES.len());
    let mut last_event = 0;
    while !shared.stopped() {
        let probe_start = Instant::now();
        if probe_start >= plan.end {
            break;
        }
        let measured = plan.measures(probe_start);
        if measured && !shared.claim() {
            break;
        }
        let turn = shared.next_seq();
        let value = turn as i64 + 1;
        let mut row = generator.row(driver_id);
        row.avg_daily_trips = value;
        // Strictly newer event times, so newest-event-wins never drops a probe's write.
        last_event = now_micros().max(last_event + 1);
        let push = o.protocol.push(&[row], last_event);
        let target = session.target_of(turn);
        let pushed = session.send(target, &push).await;
        let pushed_at = Instant::now();
        let push_failed = pushed.as_ref().err().copied();
        if measured {
            let latency = pushed_at - probe_start;
            let outcome = pushed.map(|_| 1);
            record(
                &shared,
                &mut recorder,
                Op::Push,
                probe_start,
                latency,
                outcome,
            );
        }
        if let Some(failure) = push_failed {
            if measured {
                recorder.failure(Op::Freshness, plan.second(probe_start), failure);
            }
            continue;
        }
        let reader = session.read_target_for(target);
        let deadline = probe_start + o.probe_timeout;
        let outcome = loop {
            let read_start = Instant::now();
            let answer = session.send(reader, &read_call).await;
            let read_done = Instant::now();
            let latency = read_done - read_start;
            let seen = match &answer {
                Ok(body) => o.protocol.read_trips(body).map_err(|_| Failure::Transport),
                Err(failure) => Err(*failure),
            };
            if measured {
                let outcome = seen.map(|_| 1);
                record(
                    &shared,
                    &mut recorder,
                    Op::Read,
                    read_start,
                    latency,
                    outcome,
                );
            }
            if matches!(seen, Ok(Some(v)) if v >= value) {
                break Ok(1);
            }
            if read_done >= deadline {
                break Err(Failure::Timeout);
            }
        };
        if measured {
            record(
                &shared,
                &mut recorder,
                Op::Freshness,
                probe_start,
                probe_start.elapsed(),
                outcome,
            );
        }
    }
    recorder
}
