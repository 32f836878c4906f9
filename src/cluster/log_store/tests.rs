//! The node's Raft log: what survives a reopen, torn tails and damage, segment deletion, and
//! group commit across groups.

use std::path::PathBuf;

use openraft::{CommittedLeaderId, EntryPayload};

use super::*;

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 0), index),
        payload: EntryPayload::Blank,
    }
}

fn options(fsync: FsyncPolicy, segment_bytes: u64, recover: bool) -> LogOptions {
    LogOptions {
        fsync,
        segment_bytes,
        recover,
    }
}

fn open(dir: &Path, groups: usize) -> RaftLog {
    RaftLog::open(dir, options(FsyncPolicy::Always, 1 << 20, false), groups).unwrap()
}

/// Appends and waits until the record is logged.
async fn append(store: &LogStore, list: Vec<Entry>) {
    let (tx, rx) = oneshot::channel();
    store
        .push(list, move |r| {
            let _ = tx.send(r);
        })
        .unwrap();
    rx.await.unwrap().unwrap();
}

/// Purges as openraft does once a snapshot covering `id` is kept.
async fn covered_purge(store: &mut LogStore, id: LogId) {
    store.snapshot_kept(Some(id));
    store.purge(id).await.unwrap();
}

async fn ids(store: &mut LogStore) -> Vec<(u64, u64)> {
    let all = store.try_get_log_entries(..).await.unwrap();
    all.iter()
        .map(|e| (e.log_id.leader_id.term, e.log_id.index))
        .collect()
}

/// Entries 1-5 of term 1 in `a`, then what openraft does when a follower starts to install a
/// snapshot up to (2, 100): a purge (which waits for the snapshot), and entry 101 appended
/// (held with it). Answers once entry 101 is logged (an entry 1 of `other` logged after it:
/// records are logged, and their callbacks run, in order), with the receiver of 101's
/// acknowledgement.
async fn install_started(
    a: &mut LogStore,
    other: &LogStore,
) -> std::sync::mpsc::Receiver<std::io::Result<()>> {
    append(a, (1..=5).map(|i| entry(1, i)).collect()).await;
    a.purge(entry(2, 100).log_id).await.unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    a.push(vec![entry(2, 101)], move |r| tx.send(r).unwrap())
        .unwrap();
    append(other, vec![entry(1, 1)]).await;
    rx
}

fn segments(raft_dir: &Path) -> Vec<PathBuf> {
    wal::list_segments(&raft_dir.join("log"))
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect()
}

#[actix_rt::test]
async fn entries_truncations_purges_and_votes_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 2);
    let (mut a, mut b) = (log.store(0), log.store(1));
    append(&a, (1..=5).map(|i| entry(1, i)).collect()).await;
    append(&b, (1..=3).map(|i| entry(7, i)).collect()).await;
    a.truncate(entry(1, 4).log_id).await.unwrap();
    append(&a, vec![entry(2, 4)]).await;
    covered_purge(&mut a, entry(1, 1).log_id).await;
    a.save_vote(&Vote::new(2, 1)).await.unwrap();
    append(&a, vec![entry(2, 5)]).await;
    a.truncate(entry(2, 5).log_id).await.unwrap();
    covered_purge(&mut b, entry(7, 3).log_id).await;
    log.close();
    drop((log, a, b));

    let log = open(dir.path(), 2);
    let (mut a, mut b) = (log.store(0), log.store(1));
    assert_eq!(ids(&mut a).await, vec![(1, 2), (1, 3), (2, 4)]);
    let state = a.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(entry(1, 1).log_id));
    assert_eq!(state.last_log_id, Some(entry(2, 4).log_id));
    assert_eq!(a.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
    // Everything purged: the last log id is the purged one.
    assert!(ids(&mut b).await.is_empty());
    let state = b.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(entry(7, 3).log_id));
    assert_eq!(b.read_vote().await.unwrap(), None);
}

#[actix_rt::test]
async fn a_torn_last_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1);
    append(&log.store(0), vec![entry(1, 1)]).await;
    append(&log.store(0), vec![entry(1, 2)]).await;
    log.close();
    drop(log);
    let path = segments(dir.path()).pop().unwrap();
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 3]).unwrap();

    let log = open(dir.path(), 1);
    assert_eq!(ids(&mut log.store(0)).await, vec![(1, 1)]);
    let cut = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(cut < full.len() - 3, "the torn record is cut off the file");
    // Appends after the cut go on from there, and read back.
    append(&log.store(0), vec![entry(1, 2)]).await;
    log.close();
    drop(log);
    let log = open(dir.path(), 1);
    assert_eq!(ids(&mut log.store(0)).await, vec![(1, 1), (1, 2)]);
}

#[actix_rt::test]
async fn damage_before_the_end_refuses_and_recover_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1);
    let path = segments(dir.path()).pop().unwrap();
    let mut ends = Vec::new();
    for i in 1..=3 {
        append(&log.store(0), vec![entry(1, i)]).await;
        ends.push(std::fs::metadata(&path).unwrap().len() as usize);
    }
    log.close();
    drop(log);
    // A byte of the second record's payload.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[ends[1] - 1] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let refused = RaftLog::open(dir.path(), options(FsyncPolicy::No, 1 << 20, false), 1);
    let e = refused.err().unwrap().to_string();
    assert!(
        e.contains(&path.display().to_string())
            && e.contains(&format!("offset {}", ends[0]))
            && e.contains("checksum"),
        "{e}"
    );
    let log = RaftLog::open(dir.path(), options(FsyncPolicy::No, 1 << 20, true), 1).unwrap();
    assert_eq!(ids(&mut log.store(0)).await, vec![(1, 1)]);
}

#[actix_rt::test]
async fn a_purge_deletes_the_segments_no_group_needs() {
    let dir = tempfile::tempdir().unwrap();
    let log = RaftLog::open(dir.path(), options(FsyncPolicy::No, 512, false), 2).unwrap();
    let (mut busy, idle) = (log.store(0), log.store(1));
    // The idle group's only entry is in the first segment.
    append(&idle, vec![entry(1, 0)]).await;
    for i in 0..200 {
        append(&busy, vec![entry(1, i)]).await;
    }
    let first = segments(dir.path())[0].clone();
    let before = log.stats().segments;
    assert!(before > 2 * KEEP_SEGMENTS, "{before} segments");
    // The idle group holds the first segment: it restates its log instead.
    covered_purge(&mut busy, entry(1, 150).log_id).await;
    assert!(first.exists());
    covered_purge(&mut busy, entry(1, 160).log_id).await;
    // Segments are deleted on a blocking thread after the purge returns (openraft's core
    // waits for the purge): tidy again until the restatement is logged and they are gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while first.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first segment is kept"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
        log.tidy();
    }
    let after = log.stats().segments;
    assert!(after < before / 2, "{after} of {before} segments kept");
    log.close();
    drop((log, busy, idle));

    let log = RaftLog::open(dir.path(), options(FsyncPolicy::No, 512, false), 2).unwrap();
    let (mut busy, mut idle) = (log.store(0), log.store(1));
    let kept: Vec<_> = (161..200).map(|i| (1, i)).collect();
    assert_eq!(ids(&mut busy).await, kept);
    let state = busy.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(entry(1, 160).log_id));
    assert_eq!(ids(&mut idle).await, vec![(1, 0)]);
    assert_eq!(idle.get_log_state().await.unwrap().last_purged_log_id, None);
}

#[actix_rt::test]
async fn concurrent_appends_of_the_groups_share_writes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 3);
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..100 {
        for g in 0..3 {
            let tx = tx.clone();
            log.store(g)
                .push(vec![entry(1, i)], move |r| tx.send(r).unwrap())
                .unwrap();
        }
    }
    for _ in 0..300 {
        rx.recv().unwrap().unwrap();
    }
    let stats = log.stats();
    assert_eq!(stats.records, 300);
    assert!(
        stats.group_commits < stats.records && stats.fsyncs < stats.records,
        "{stats:?}"
    );
}

#[actix_rt::test]
async fn a_failed_write_reaches_the_callback_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1);
    log.shared.wal.inject_write_failures(1);
    let (tx, rx) = oneshot::channel();
    log.store(0)
        .push(vec![entry(1, 1)], move |r| {
            let _ = tx.send(r);
        })
        .unwrap();
    assert!(rx.await.unwrap().is_err());
}

#[test]
fn a_log_of_the_earlier_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("g1").join("log");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(&old, b"old frames").unwrap();
    let e = RaftLog::open(dir.path(), options(FsyncPolicy::No, 1 << 20, false), 2)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&old.display().to_string()), "{e}");
}

/// The commit index is remembered across a reopen (so a restart re-applies the committed
/// entries after the group's snapshot at once), at most every [`COMMIT_EVERY`], and only as
/// far as the log can vouch for it.
#[actix_rt::test]
async fn the_commit_index_survives_a_reopen_as_far_as_the_log_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 3);
    let (mut a, mut b, mut c) = (log.store(0), log.store(1), log.store(2));
    append(&a, (1..=5).map(|i| entry(1, i)).collect()).await;
    a.save_committed(Some(entry(1, 3).log_id)).await.unwrap();
    // Within COMMIT_EVERY of the last one: logged COMMIT_EVERY later (the log may close first).
    a.save_committed(Some(entry(1, 4).log_id)).await.unwrap();
    append(&b, (1..=2).map(|i| entry(1, i)).collect()).await;
    // A commit index whose entry is not in the log as committed is not vouched for.
    b.save_committed(Some(entry(9, 2).log_id)).await.unwrap();
    // Restated logs carry their commit index on.
    append(&c, (1..=2).map(|i| entry(1, i)).collect()).await;
    c.save_committed(Some(entry(1, 2).log_id)).await.unwrap();
    c.restate().unwrap();
    append(&a, vec![entry(1, 6)]).await;
    log.close();
    drop((log, a, b, c));

    let log = open(dir.path(), 3);
    let (mut a, mut b, mut c) = (log.store(0), log.store(1), log.store(2));
    let a_committed = a.read_committed().await.unwrap();
    assert!(
        [Some(entry(1, 3).log_id), Some(entry(1, 4).log_id)].contains(&a_committed),
        "{a_committed:?}"
    );
    assert_eq!(b.read_committed().await.unwrap(), None);
    assert_eq!(c.read_committed().await.unwrap(), Some(entry(1, 2).log_id));
    // Purged past it: covered by a snapshot.
    covered_purge(&mut a, entry(1, 5).log_id).await;
    log.close();
    drop((log, a, b, c));
    let log = open(dir.path(), 3);
    assert_eq!(log.store(0).read_committed().await.unwrap(), a_committed);
}

/// A commit not logged because one was logged less than COMMIT_EVERY before is logged
/// COMMIT_EVERY later: the last commit before a pause is not left out.
#[actix_rt::test]
async fn a_commit_held_back_by_the_rate_is_logged_later() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1);
    let mut a = log.store(0);
    append(&a, (1..=3).map(|i| entry(1, i)).collect()).await;
    a.save_committed(Some(entry(1, 1).log_id)).await.unwrap();
    a.save_committed(Some(entry(1, 3).log_id)).await.unwrap();
    assert!(a.lock().commit_pending);
    // Wait for the later write to be queued, then for it to be logged (in order, so once a
    // later append is).
    while a.lock().commit_pending {
        actix_rt::time::sleep(COMMIT_EVERY / 4).await;
    }
    append(&a, vec![entry(1, 4)]).await;
    log.close();
    drop((log, a));
    let log = open(dir.path(), 1);
    assert_eq!(
        log.store(0).read_committed().await.unwrap(),
        Some(entry(1, 3).log_id)
    );
}

/// A power cut (only fsynced bytes and names kept) under the laxest policy, right after
/// purges, restatements and segment deletion, loses no entry that was durable before: a
/// segment is unlinked only once the records that made unlinking it safe are durable.
#[actix_rt::test]
async fn a_power_cut_after_segments_are_deleted_loses_no_durable_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log = RaftLog::open(dir.path(), options(FsyncPolicy::No, 1024, false), 2).unwrap();
    let (idle, mut busy) = (log.store(0), log.store(1));
    append(&idle, vec![entry(1, 1), entry(1, 2)]).await;
    // Each segment the busy group fills is fsynced as it is closed.
    for i in 1..=200 {
        append(&busy, vec![entry(3, i)]).await;
    }
    assert!(segments(dir.path()).len() > KEEP_SEGMENTS + 1);
    covered_purge(&mut busy, entry(3, 171).log_id).await;
    // The idle group's records pin the oldest segment: it is restated (a record in the page
    // cache only, under `no`), then the segments before it are deleted.
    log.tidy();
    // Logged in order: once this is, so is the restatement.
    append(&idle, vec![entry(1, 3)]).await;
    log.tidy();
    assert!(!segments(dir.path())
        .iter()
        .any(|s| s.ends_with(wal::segment_name(1))));
    for i in 201..=210 {
        append(&busy, vec![entry(3, i)]).await;
    }
    crate::persist::durable::power_cut::cut(&dir.path().join("log"));

    // The old writer is idle (nothing queued); a new log reads what the cut left.
    let reopened = RaftLog::open(dir.path(), options(FsyncPolicy::No, 1024, false), 2).unwrap();
    let (mut idle, mut busy) = (reopened.store(0), reopened.store(1));
    assert_eq!(ids(&mut idle).await, vec![(1, 1), (1, 2), (1, 3)]);
    let state = busy.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(entry(3, 171).log_id));
    let kept: Vec<u64> = ids(&mut busy).await.iter().map(|(_, i)| *i).collect();
    // Up to 200 was durable before the deletion; 201-210 never were fsynced (allowed lost).
    assert!(
        kept.len() >= 29 && kept.windows(2).all(|w| w[1] == w[0] + 1),
        "{kept:?}"
    );
    assert_eq!(kept[0], 172);
    drop(log);
}

/// openraft purges a follower's log when it starts to install the leader's snapshot, before
/// the snapshot is on disk. The purge waits for a whole snapshot, and appends meanwhile are
/// not acknowledged: a crash in between leaves the log as it was (the unacknowledged entries
/// after the hole dropped for good); once the snapshot is kept the purge is logged and the
/// held appends acknowledged.
#[actix_rt::test]
async fn a_purge_waits_for_a_whole_snapshot_and_appends_wait_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 2);
    let (mut a, other) = (log.store(0), log.store(1));
    let rx = install_started(&mut a, &other).await;
    assert!(
        rx.try_recv().is_err(),
        "acknowledged before the snapshot is whole"
    );
    log.close();
    drop((log, a, other));

    // A crash before the snapshot was whole: the log as it was before the install.
    let log = open(dir.path(), 2);
    log.settle(0, None).unwrap();
    let mut a = log.store(0);
    assert_eq!(
        ids(&mut a).await,
        (1..=5).map(|i| (1, i)).collect::<Vec<_>>()
    );
    assert_eq!(a.get_log_state().await.unwrap().last_purged_log_id, None);
    append(&a, vec![entry(1, 6)]).await;
    log.close();
    drop((log, a));
    // The dropped entry stays dropped.
    let log = open(dir.path(), 2);
    log.settle(0, None).unwrap();
    let mut a = log.store(0);
    assert_eq!(
        ids(&mut a).await,
        (1..=6).map(|i| (1, i)).collect::<Vec<_>>()
    );

    // The install again, completed this time.
    a.purge(entry(2, 100).log_id).await.unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    a.push(vec![entry(2, 101)], move |r| tx.send(r).unwrap())
        .unwrap();
    append(&log.store(1), vec![entry(1, 2)]).await;
    assert!(rx.try_recv().is_err());
    a.snapshot_kept(Some(entry(2, 100).log_id));
    rx.recv().unwrap().unwrap();
    log.close();
    drop((log, a));
    let log = open(dir.path(), 2);
    log.settle(0, Some(entry(2, 100).log_id)).unwrap();
    let mut a = log.store(0);
    assert_eq!(ids(&mut a).await, vec![(2, 101)]);
    let state = a.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(entry(2, 100).log_id));
}

/// A crash after the snapshot was whole but before the deferred purge was logged: the start
/// purges the hole the snapshot covers and keeps the entries after it.
#[actix_rt::test]
async fn a_hole_the_kept_snapshot_covers_is_purged_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1);
    let a = log.store(0);
    append(&a, (1..=5).map(|i| entry(1, i)).collect()).await;
    append(&a, (101..=103).map(|i| entry(2, i)).collect()).await;
    log.close();
    drop((log, a));
    let log = open(dir.path(), 1);
    log.settle(0, Some(entry(2, 100).log_id)).unwrap();
    let mut a = log.store(0);
    assert_eq!(ids(&mut a).await, vec![(2, 101), (2, 102), (2, 103)]);
    log.close();
    drop((log, a));
    // Logged: the next start needs no snapshot to see it.
    let log = open(dir.path(), 1);
    let mut a = log.store(0);
    let state = a.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(entry(2, 100).log_id));
    // A purge point past the snapshot kept is damage: refused.
    let e = log.settle(0, Some(entry(1, 5).log_id)).unwrap_err();
    assert!(e.contains("purged up to index 100"), "{e}");
}

/// A power cut (only fsynced bytes and names kept) while a purge waits for its snapshot, and
/// after the snapshot is kept: under `always` every acknowledged entry survives, and the log
/// matches the snapshot on disk (no purge without it, no hole with it).
#[actix_rt::test]
async fn a_power_cut_around_a_deferred_purge_keeps_every_acknowledged_entry() {
    for kept in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), 2);
        let (mut a, other) = (log.store(0), log.store(1));
        let rx = install_started(&mut a, &other).await;
        let snapshot = kept.then(|| entry(2, 100).log_id);
        if kept {
            a.snapshot_kept(snapshot);
            rx.recv().unwrap().unwrap();
            append(&a, vec![entry(2, 102)]).await;
        } else {
            assert!(rx.try_recv().is_err(), "acknowledged before the snapshot");
        }
        crate::persist::durable::power_cut::cut(&dir.path().join("log"));

        let reopened = open(dir.path(), 2);
        reopened.settle(0, snapshot).unwrap();
        let mut a = reopened.store(0);
        let state = a.get_log_state().await.unwrap();
        if kept {
            assert_eq!(ids(&mut a).await, vec![(2, 101), (2, 102)]);
            assert_eq!(state.last_purged_log_id, snapshot);
        } else {
            assert_eq!(
                ids(&mut a).await,
                (1..=5).map(|i| (1, i)).collect::<Vec<_>>()
            );
            assert_eq!(state.last_purged_log_id, None);
        }
        assert_eq!(ids(&mut reopened.store(1)).await, vec![(1, 1)]);
        drop(log);
    }
}
