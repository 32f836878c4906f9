//! Follower read leases: a replica that does not lead its group serves linearizable reads from
//! its own state, with no call to the leader, while it holds a lease from the leader.
//!
//! Without a lease every such read needs a read index from the leader (one node-to-node call
//! per round, [`super::read`]). With one, the follower's read waits only until it has applied
//! its lease's floor and every entry in its own log, and reads. That is linearizable because:
//!
//! 1. **A group commits nothing a live lease holder lacks.** The leader hands openraft a
//!    follower's acceptance of entries ([`Grants::hold`], from the network layer) only once
//!    every other live holder has accepted them too (or its lease has run out): openraft's
//!    majority then always includes every holder, so an entry applied anywhere, and so any
//!    write acknowledged or read anywhere, is in every holder's log first. A holder that stops
//!    answering holds its groups' commits for at most [`LEASE`]: write availability traded for
//!    reads that cost no call. A node that lags (it has not accepted everything the leader
//!    applied: a slow disk) is granted no lease, so it cannot hold commits lease after lease.
//! 2. **A lease starts from what the leader had handed out.** Its floor is the leader's last
//!    log index when it granted it, every entry whose acceptance it had already passed on
//!    included, and the grant is noted before that index is read: an entry is either below
//!    the floor or held for the new holder.
//! 3. **No other leader while a lease lives.** The leader grants one only with its leadership
//!    confirmed after the grant was noted (its own lease, or a quorum round): followers that
//!    accepted it refuse other candidates' votes for openraft's leader lease (the maximum
//!    election timeout), so no new leader, which knows nothing of these leases, is elected
//!    within [`LEASE`] of a grant. A hand-over (whose election the old leader joins at once)
//!    stops granting and waits every lease out first ([`Grants::close`]); a restarted leader,
//!    which forgot whom it granted, counts every other node as a holder for its first
//!    [`LEASE`].
//! 4. **The follower trusts less than the leader holds.** It counts three quarters of
//!    [`LEASE`] from before it asked; the leader counts all of it from when the request
//!    arrived: clocks that run at slightly different rates still agree.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::types::{NodeId, Vote};
use super::{ELECTION_MAX_MS, HEARTBEAT_MS, LEASE_READ_MS};
use crate::sync::lock;

/// How long a leader keeps a follower's lease after granting it. A new leader comes no sooner
/// than what openraft's leader lease leaves after [`LEASE_READ_MS`] (400 ms) after a grant: a
/// quarter of that, the rest a margin. And under openraft's timeout of an append (the
/// heartbeat interval): a held acceptance answers before openraft gives up on it, which would
/// log an error for a healthy follower and resend.
pub const LEASE: Duration = Duration::from_millis((ELECTION_MAX_MS - LEASE_READ_MS) / 4);
const _: () = assert!(LEASE.as_millis() < HEARTBEAT_MS as u128);

/// How long a follower serves reads under a lease, counted from before it asked.
const TRUST: Duration = Duration::from_millis(LEASE.as_millis() as u64 * 3 / 4);

/// A leader's answer to a follower that asks for a read index and a lease.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Granted {
    /// The read index, as `/internal/v1/read-index` answers it.
    pub index: u64,
    /// The lease's floor: the leader's last log index once the grant was noted.
    pub floor: u64,
    /// Whether the lease was granted (not while the leader hands the group over, nor to a
    /// node that is no member).
    pub granted: bool,
}

/// One group's leases, on the node when it leads the group: whom it granted one and until
/// when, and how far each node accepted its entries.
pub struct Grants {
    state: Mutex<GrantState>,
    /// When the latest lease ends (ms since `epoch`): past it, nothing is held.
    ends: AtomicU64,
    epoch: Instant,
    /// Told when a node accepts entries or a lease is granted.
    changed: Notify,
}

#[derive(Default)]
struct GrantState {
    until: HashMap<NodeId, Instant>,
    /// The last index each node accepted, in the leader's vote that sent it.
    accepted: HashMap<NodeId, (Vote, u64)>,
    /// No lease granted while a hand-over is under way.
    closed: bool,
}

impl Grants {
    /// The grants of a node that starts: every other node of the group (`others`) counts as a
    /// holder for a whole [`LEASE`], since this node may have granted them leases before a
    /// restart.
    pub fn new(others: impl IntoIterator<Item = NodeId>) -> Grants {
        let epoch = Instant::now();
        let until = others.into_iter().map(|n| (n, epoch + LEASE)).collect();
        Grants {
            state: Mutex::new(GrantState {
                until,
                ..Default::default()
            }),
            ends: AtomicU64::new(LEASE.as_millis() as u64 + 1),
            epoch,
            changed: Notify::new(),
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Whether every lease granted has ended.
    fn none_live(&self, now: Instant) -> bool {
        self.ms(now) > self.ends.load(Ordering::Acquire)
    }

    /// Grants `node` a lease from `now`; `false` while a hand-over is under way.
    pub fn grant(&self, node: NodeId, now: Instant) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            return false;
        }
        let until = now + LEASE;
        let at = state.until.entry(node).or_insert(until);
        *at = (*at).max(until);
        // Rounded up: `none_live` must not see a lease end before it does.
        self.ends.fetch_max(self.ms(until) + 1, Ordering::AcqRel);
        drop(state);
        self.changed.notify_waiters();
        true
    }

    /// Notes that `node` accepted the entries up to `index` sent in `vote`.
    pub fn accepted(&self, node: NodeId, vote: Vote, index: u64) {
        if self.none_live(Instant::now()) {
            return;
        }
        let mut state = lock(&self.state);
        let entry = state.accepted.entry(node).or_insert((vote, index));
        if entry.0 != vote || entry.1 < index {
            *entry = (vote, index);
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Waits until every live holder but `node` accepted the entries up to `index` sent in
    /// `vote`, or its lease ended: what must be true before openraft learns that `node`
    /// accepted them.
    pub async fn hold(&self, node: NodeId, vote: Vote, index: u64) {
        loop {
            // Registered before the check: a change in between is not missed.
            let changed = self.changed.notified();
            let now = Instant::now();
            if self.none_live(now) {
                return;
            }
            let first_end = {
                let state = lock(&self.state);
                state
                    .until
                    .iter()
                    .filter(|&(&holder, &until)| {
                        holder != node
                            && until > now
                            && state
                                .accepted
                                .get(&holder)
                                .is_none_or(|&(v, at)| v != vote || at < index)
                    })
                    .map(|(_, &until)| until)
                    .min()
            };
            let Some(first_end) = first_end else { return };
            let _ = tokio::time::timeout_at(first_end.into(), changed).await;
        }
    }

    /// Stops granting leases and waits until those granted have ended; granting resumes when
    /// the answer is dropped.
    pub async fn close(&self) -> Closed<'_> {
        let last = {
            let mut state = lock(&self.state);
            state.closed = true;
            state.until.values().copied().max()
        };
        if let Some(last) = last {
            tokio::time::sleep_until(last.into()).await;
        }
        Closed(self)
    }
}

/// Granting resumes when dropped.
pub struct Closed<'a>(&'a Grants);

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).closed = false;
    }
}

/// The lease this node holds for one group, as a follower.
#[derive(Default)]
pub struct Held {
    lease: Mutex<Option<(Instant, u64)>>,
    /// A renewal is under way.
    renewing: AtomicBool,
}

impl Held {
    /// Notes a lease granted with `floor`, asked for at `asked`.
    pub fn note(&self, asked: Instant, floor: u64) {
        let until = asked + TRUST;
        let mut lease = lock(&self.lease);
        if lease.is_none_or(|(at, _)| at < until) {
            *lease = Some((until, floor));
        }
    }

    /// The floor of the lease if it is live at `now`, and whether the caller should renew it:
    /// less than half of it is left and no renewal is under way (the caller then reports
    /// with [`Held::renewed`]).
    pub fn floor(&self, now: Instant) -> Option<(u64, bool)> {
        let (until, floor) = (*lock(&self.lease))?;
        if now >= until {
            return None;
        }
        let renew = until - now < TRUST / 2
            && self
                .renewing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        Some((floor, renew))
    }

    /// A renewal started by [`Held::floor`] is over (granted or not).
    pub fn renewed(&self) {
        self.renewing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(term: u64) -> Vote {
        let mut v = Vote::new(term, 1);
        v.commit();
        v
    }

    #[actix_rt::test]
    async fn a_restarted_leader_holds_for_every_node_until_a_lease_has_passed() {
        let grants = Grants::new([2, 3]);
        let started = Instant::now();
        grants.hold(2, vote(1), 5).await;
        assert!(started.elapsed() >= LEASE - Duration::from_millis(5));
        // Past the first lease nothing is held.
        let at = Instant::now();
        grants.hold(2, vote(1), 6).await;
        assert!(at.elapsed() < LEASE / 2);
    }

    #[actix_rt::test]
    async fn an_acceptance_is_held_until_every_other_holder_accepted_as_much() {
        let grants = std::sync::Arc::new(Grants::new([]));
        assert!(grants.grant(3, Instant::now()));
        // Node 2's acceptance of entry 7 waits for holder 3.
        let held = {
            let grants = grants.clone();
            actix_rt::spawn(async move { grants.hold(2, vote(1), 7).await })
        };
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert!(!held.is_finished());
        // An acceptance in another vote does not count; one of an earlier entry neither.
        grants.accepted(3, vote(2), 9);
        grants.accepted(3, vote(1), 6);
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert!(!held.is_finished());
        grants.accepted(3, vote(1), 7);
        let at = Instant::now();
        held.await.unwrap();
        assert!(at.elapsed() < LEASE / 2);
        // The holder's own acceptance is never held for itself.
        grants.hold(3, vote(1), 100).await;
    }

    #[actix_rt::test]
    async fn a_holder_that_does_not_answer_holds_until_its_lease_ends() {
        let grants = Grants::new([]);
        let granted = Instant::now();
        assert!(grants.grant(3, granted));
        grants.hold(2, vote(1), 1).await;
        assert!(granted.elapsed() >= LEASE - Duration::from_millis(5));
    }

    #[actix_rt::test]
    async fn a_hand_over_stops_grants_and_waits_the_live_ones_out() {
        let grants = Grants::new([]);
        let granted = Instant::now();
        assert!(grants.grant(3, granted));
        let closed = grants.close().await;
        assert!(granted.elapsed() >= LEASE - Duration::from_millis(5));
        assert!(!grants.grant(3, Instant::now()));
        drop(closed);
        assert!(grants.grant(3, Instant::now()));
    }

    #[test]
    fn a_follower_trusts_its_lease_for_less_than_the_leader_holds_it() {
        let held = Held::default();
        let asked = Instant::now();
        assert_eq!(held.floor(asked), None);
        held.note(asked, 42);
        assert_eq!(held.floor(asked), Some((42, false)));
        let late = asked + TRUST / 2 + Duration::from_millis(1);
        assert_eq!(held.floor(late), Some((42, true)));
        // One renewal at a time.
        assert_eq!(held.floor(late), Some((42, false)));
        held.renewed();
        assert_eq!(held.floor(late), Some((42, true)));
        assert_eq!(held.floor(asked + TRUST), None);
        assert!(TRUST < LEASE);
        // An older answer arriving late does not replace a newer lease.
        held.note(asked - Duration::from_millis(10), 7);
        assert_eq!(held.floor(asked), Some((42, false)));
    }
}
