//! Which peers this node cannot reach, and since when: the one place that logs a peer going
//! away and coming back.
//!
//! A peer that is not up yet is normal (nodes of a cluster start one after another), so a
//! failed call is a `debug` line only. A peer that has not answered for [`WARN_AFTER`] gets a
//! `warn` line, repeated at most every [`WARN_EVERY`] while it stays away, and an `info` line
//! when it answers again. Every call to a peer (Raft's RPCs, forwarded requests, status
//! reports) reports its outcome here; `GET /cluster` shows how long each peer has been away.
//! openraft's own warn/error lines about an unreachable peer are dropped by the log filter
//! ([`crate::logging`]): this module says it once instead of four lines per retry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cluster::topology::Address;

/// How long a peer may stay unreachable before a `warn` line says so.
pub const WARN_AFTER: Duration = Duration::from_secs(10);
/// How often the `warn` line is repeated while the peer stays unreachable.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// A peer that did not answer its last call.
#[derive(Debug, Clone)]
struct Away {
    since: Instant,
    failures: u64,
    warned_at: Option<Instant>,
}

/// What a failed call should log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Away for less than [`WARN_AFTER`], or warned about recently: `debug`.
    Quiet,
    /// Away for `away` (at least [`WARN_AFTER`]), over `failures` calls: `warn`.
    Warn { away: Duration, failures: u64 },
}

/// What an answered call should log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAnswer {
    /// It was not away: nothing.
    Nothing,
    /// Back after `away`; `warned` says whether a `warn` line said it was away (then `info`,
    /// else `debug`: a peer that came up late at start-up).
    Back { away: Duration, warned: bool },
}

/// The peers this node's calls did not reach, by address.
#[derive(Debug, Default)]
pub struct Reachability {
    away: Mutex<HashMap<Address, Away>>,
}

impl Reachability {
    /// Notes a call to `peer` that did not reach it (refused, timed out), and logs it.
    pub fn failed(&self, peer: &Address, reason: &str) {
        match self.failed_at(peer, Instant::now()) {
            OnFailure::Quiet => {
                tracing::debug!(peer = %peer, reason, "peer not reachable (yet)");
            }
            OnFailure::Warn { away, failures } => tracing::warn!(
                peer = %peer,
                unreachable_secs = away.as_secs(),
                failures,
                reason,
                "peer unreachable"
            ),
        }
    }

    /// Notes a call that `peer` answered (with any answer, an error included), and logs its
    /// return if it was away.
    pub fn answered(&self, peer: &Address) {
        match self.answered_at(peer, Instant::now()) {
            OnAnswer::Nothing => {}
            OnAnswer::Back { away, warned: true } => tracing::info!(
                peer = %peer,
                unreachable_secs = away.as_secs(),
                "peer reachable again"
            ),
            OnAnswer::Back {
                away,
                warned: false,
            } => tracing::debug!(
                peer = %peer,
                unreachable_ms = away.as_millis() as u64,
                "peer reachable"
            ),
        }
    }

    /// How long `peer` has not answered, if its last call failed.
    pub fn unreachable_for(&self, peer: &Address) -> Option<Duration> {
        let away = self.away.lock().unwrap_or_else(|p| p.into_inner());
        away.get(peer).map(|a| a.since.elapsed())
    }

    fn failed_at(&self, peer: &Address, now: Instant) -> OnFailure {
        let mut all = self.away.lock().unwrap_or_else(|p| p.into_inner());
        let away = all.entry(peer.clone()).or_insert(Away {
            since: now,
            failures: 0,
            warned_at: None,
        });
        away.failures += 1;
        let away_for = now.saturating_duration_since(away.since);
        let due = away
            .warned_at
            .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY);
        if away_for >= WARN_AFTER && due {
            away.warned_at = Some(now);
            OnFailure::Warn {
                away: away_for,
                failures: away.failures,
            }
        } else {
            OnFailure::Quiet
        }
    }

    fn answered_at(&self, peer: &Address, now: Instant) -> OnAnswer {
        let mut all = self.away.lock().unwrap_or_else(|p| p.into_inner());
        match all.remove(peer) {
            None => OnAnswer::Nothing,
            Some(away) => OnAnswer::Back {
                away: now.saturating_duration_since(away.since),
                warned: away.warned_at.is_some(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(text: &str) -> Address {
        Address::parse(text).unwrap()
    }

    #[test]
    fn a_peer_up_within_the_grace_period_is_never_warned_about() {
        let r = Reachability::default();
        let (a, t0) = (peer("127.0.0.1:7101"), Instant::now());
        for ms in [0, 500, 1_000, 9_999] {
            assert_eq!(
                r.failed_at(&a, t0 + Duration::from_millis(ms)),
                OnFailure::Quiet
            );
        }
        assert!(r.unreachable_for(&a).is_some());
        assert_eq!(
            r.answered_at(&a, t0 + Duration::from_secs(10)),
            OnAnswer::Back {
                away: Duration::from_secs(10),
                warned: false
            }
        );
        assert_eq!(r.unreachable_for(&a), None);
        assert_eq!(
            r.answered_at(&a, t0 + Duration::from_secs(11)),
            OnAnswer::Nothing
        );
    }

    #[test]
    fn a_peer_away_for_long_is_warned_about_once_a_period_and_its_return_is_told() {
        let r = Reachability::default();
        let (a, b, t0) = (
            peer("127.0.0.1:7101"),
            peer("n2.local:7101"),
            Instant::now(),
        );
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(r.failed_at(&a, at(0)), OnFailure::Quiet);
        assert_eq!(r.failed_at(&b, at(5)), OnFailure::Quiet);
        assert_eq!(
            r.failed_at(&a, at(10)),
            OnFailure::Warn {
                away: Duration::from_secs(10),
                failures: 2
            }
        );
        // b is counted from its own first failure.
        assert_eq!(r.failed_at(&b, at(11)), OnFailure::Quiet);
        for s in [11, 30, 69] {
            assert_eq!(r.failed_at(&a, at(s)), OnFailure::Quiet, "at {s} s");
        }
        assert_eq!(
            r.failed_at(&a, at(70)),
            OnFailure::Warn {
                away: Duration::from_secs(70),
                failures: 6
            }
        );
        assert_eq!(
            r.answered_at(&a, at(75)),
            OnAnswer::Back {
                away: Duration::from_secs(75),
                warned: true
            }
        );
        // Away again: a fresh grace period.
        assert_eq!(r.failed_at(&a, at(80)), OnFailure::Quiet);
        assert_eq!(r.failed_at(&a, at(89)), OnFailure::Quiet);
    }
}
