//! The state machine: applying committed entries (or refusing for good), restoring from the
//! kept snapshot, and keeping snapshots in order.

use super::*;
use crate::config::{Overrides, Settings};
use crate::store::LocalStore;
use openraft::{CommittedLeaderId, EntryPayload};

fn entry(index: u64, views: Vec<RecordView>) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(super::super::types::GroupBatch {
            writes: vec![GroupWrite {
                dest: Destination::ONLINE,
                views,
            }]
            .into(),
        }),
    }
}

fn topology() -> Arc<Topology> {
    let topology = Topology::parse(
        "cluster_secret = \"0123456789abcdef\"\n[[node]]\nid = \"n1\"\nclient = \"127.0.0.1:1\"\ninternal = \"127.0.0.1:2\"\n[[group]]\nslots = \"0-16383\"\nnodes = [\"n1\"]\n",
        std::path::Path::new("cluster.toml"),
    )
    .unwrap();
    Arc::new(topology)
}

/// A Raft log of one group in a directory of its own (kept until the test ends).
fn raft_log() -> LogStore {
    use super::super::log_store::{LogOptions, RaftLog};
    let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
    let options = LogOptions {
        fsync: crate::persist::wal::FsyncPolicy::No,
        segment_bytes: 1 << 20,
        recover: false,
    };
    RaftLog::open(dir.path(), options, 1).unwrap().store(0)
}

/// A node's store on a fresh data directory in `data`.
fn node(data: &std::path::Path) -> crate::Prepared {
    let flags = Overrides {
        data_dir: Some(data.to_path_buf()),
        ..Overrides::default()
    };
    let (settings, registry) = Settings::load(None, [], &flags).unwrap();
    crate::prepare_as(&settings, registry, crate::Role::Replica).unwrap()
}

/// Driver rows `ids` of the embedded registry's first view, in the portable form.
fn rows(store: &LocalStore, ids: &[i64]) -> Vec<RecordView> {
    let layouts = store.grid.layouts();
    let mut batch = crate::grid::partition::RowBatch::new(0);
    for id in ids {
        batch.start_row(
            &layouts[0],
            &id.to_le_bytes(),
            *id,
            crate::grid::partition::NO_CREATED,
        );
    }
    crate::persist::wal::portable_views(&[vec![batch]], &layouts)
}

async fn held(store: &LocalStore, ids: &[i64]) -> usize {
    let keys: Vec<(u32, Blob)> = ids
        .iter()
        .map(|id| (0, Blob(id.to_le_bytes().to_vec())))
        .collect();
    let found = Replica::new(store.clone()).read_rows(&keys).await.unwrap();
    let layouts = store.grid.layouts();
    found
        .iter()
        .map(|v| PortableRows::new(&layouts[v.view as usize], &v.data.0).count())
        .sum()
}

async fn open(dir: &std::path::Path, store: &LocalStore) -> GroupMachine {
    let replica = Replica::new(store.clone());
    GroupMachine::open(0, dir.to_path_buf(), replica, topology(), raft_log())
        .await
        .unwrap()
}

/// Committed entries are applied to the shards without a second log; the kept snapshot is
/// the replica's restore point: a machine opened on it (on another node's store, here)
/// holds its rows and has applied up to its last log id, so the log replays after it.
#[actix_rt::test]
async fn a_machine_restores_its_rows_and_applied_index_from_its_snapshot() {
    let (data, group_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = node(data.path());
    let store = first.state.store.clone();
    let logged = store.wal.covered_lsn();
    let mut machine = open(group_dir.path(), &store).await;
    let entries = (1..=3)
        .map(|i| entry(i as u64, rows(&store, &[i])))
        .collect::<Vec<_>>();
    machine.apply(entries).await.unwrap();
    assert_eq!(held(&store, &[1, 2, 3]).await, 3);
    assert_eq!(
        store.wal.covered_lsn(),
        logged,
        "an apply writes nothing to the node's log"
    );
    let snapshot = machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(3));
    first.shard_threads.stop();
    // A newer pair cut short by a crash (its rows file torn) is skipped for the whole one.
    let files = SnapshotFiles::in_dir(group_dir.path(), raft_log());
    let (torn, torn_meta) = files.pair(99);
    std::fs::copy(files.pair(3).1, torn_meta).unwrap();
    std::fs::write(torn, b"FGSNAP").unwrap();

    let other = tempfile::tempdir().unwrap();
    let second = node(other.path());
    let store = second.state.store.clone();
    assert_eq!(held(&store, &[1, 2, 3]).await, 0);
    let mut machine = open(group_dir.path(), &store).await;
    let (applied, _) = machine.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(3));
    assert_eq!(held(&store, &[1, 2, 3]).await, 3);
    assert!(machine.get_current_snapshot().await.unwrap().is_some());
    second.shard_threads.stop();
}

/// A snapshot built here that finishes after a newer one was installed from the leader is
/// not kept over it, and the newer pair stays readable.
#[test]
fn an_older_snapshot_is_never_kept_over_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let files = SnapshotFiles::in_dir(dir.path(), raft_log());
    let meta = |index: u64| SnapshotMeta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 0), index)),
        last_membership: StoredMembership::default(),
        snapshot_id: format!("s{index}"),
    };
    files.keep(&meta(5), b"five").unwrap();
    files.keep(&meta(3), b"three").unwrap();
    assert_eq!(files.current().unwrap().snapshot_id, "s5");
    let (kept, bytes) = files.read().unwrap().unwrap();
    assert_eq!(
        (kept.snapshot_id.as_str(), bytes.as_slice()),
        ("s5", &b"five"[..])
    );
    assert!(!files.pair(3).0.exists());
    files.keep(&meta(8), b"eight").unwrap();
    assert!(!files.pair(5).0.exists() && !files.pair(5).1.exists());
    assert_eq!(files.read().unwrap().unwrap().1, b"eight");
}

/// A committed entry this node cannot apply (here: rows of a view its registry does not
/// have) stops the machine with an error; `applied` stays at the last entry applied.
#[actix_rt::test]
async fn an_entry_that_cannot_be_applied_is_never_counted_applied() {
    let data = tempfile::tempdir().unwrap();
    let prepared = node(data.path());
    let mut machine = GroupMachine::open(
        0,
        data.path().join("g0"),
        Replica::new(prepared.state.store.clone()),
        topology(),
        raft_log(),
    )
    .await
    .unwrap();
    machine.apply(vec![entry(1, Vec::new())]).await.unwrap();
    assert_eq!(machine.applied.map(|l| l.index), Some(1));
    let unknown = RecordView {
        view: 99,
        data: Blob(vec![1, 2, 3]),
    };
    let e = machine
        .apply(vec![entry(2, Vec::new()), entry(3, vec![unknown])])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("view id 99"), "{e}");
    // Entry 2 was applied, entry 3 was not: a restart re-applies from there.
    assert_eq!(machine.applied.map(|l| l.index), Some(2));
    let (applied, _) = machine.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(2));
    prepared.shard_threads.stop();
}
