//! The coordinator against real shard threads: a full mailbox refuses at once, a timed-out
//! write is still applied, stats and reads gather every shard and thread.

use super::*;
use crate::registry::Registry;

fn options(capacity: usize, timeout_ms: u64) -> GridOptions {
    GridOptions {
        shards: 3,
        shard_threads: 2,
        mailbox_capacity: capacity,
        shard_timeout: Duration::from_millis(timeout_ms),
        read_path: ReadPath::Actor,
    }
}

/// A write to thread 0 of 3 shards on 2 threads (driver ids hashing there).
fn write_to_thread_0(grid: &Coordinator, layouts: &[RowLayout], trips: i64) -> Vec<Vec<RowBatch>> {
    let router = grid.router();
    let mut per_shard: Vec<Vec<RowBatch>> = vec![Vec::new(); router.shards()];
    let key = 7i64.to_le_bytes();
    let shard = router.shard_of_key(&key);
    assert_eq!(shard % 2, 0, "test key hashes to thread 0");
    let mut batch = RowBatch::new(0);
    batch.start_row(&layouts[0], &key, trips, crate::grid::partition::NO_CREATED);
    per_shard[shard].push(batch);
    per_shard
}

#[actix_rt::test]
async fn a_full_mailbox_refuses_at_once_and_a_timed_out_write_is_still_applied() {
    let layouts = RowLayout::for_registry(&Registry::embedded());
    let (grid, threads) = Coordinator::start(&options(1, 50), layouts.clone());
    // Hold thread 0: the stall is running, so it no longer counts as queued.
    grid.stall_all(Duration::from_millis(400));
    actix_rt::time::sleep(Duration::from_millis(30)).await;
    // A write takes the only place, and times out: outcome unknown, still queued.
    let timed_out = grid.write(write_to_thread_0(&grid, &layouts, 5)).await;
    assert!(
        matches!(timed_out, Err(GridError::Timeout { thread: 0, .. })),
        "{timed_out:?}"
    );
    // The mailbox is full: refused at once, and never queued.
    let refused = grid.prepare_write(write_to_thread_0(&grid, &layouts, 9));
    assert!(
        matches!(
            refused,
            Err(GridError::Overloaded {
                thread: 0,
                capacity: 1
            })
        ),
        "{:?}",
        refused.err()
    );
    assert!(matches!(
        grid.ask(0, Stats).await,
        Err(GridError::Overloaded { .. })
    ));
    // Once the stall ends, the timed-out write was applied and the refused one was not.
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    let mut reads = vec![ReadBatch::default(); 3];
    let key = 7i64.to_le_bytes();
    reads[grid.router().shard_of_key(&key)].push(0, &key);
    let out = grid.read(reads).await.unwrap();
    let row = out
        .iter()
        .flatten()
        .next()
        .unwrap()
        .row(&layouts, 0)
        .unwrap();
    assert_eq!(row.event_ts(), 5);
    threads.stop();
}

#[actix_rt::test]
async fn stats_gather_every_shard() {
    let layouts = RowLayout::for_registry(&Registry::embedded());
    let (grid, threads) = Coordinator::start(&options(8, 1000), layouts);
    let stats = grid.stats().await.unwrap();
    assert_eq!(
        stats.iter().map(|s| s.shard).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    threads.stop();
}

#[actix_rt::test]
async fn reads_what_was_written_on_every_shard_and_thread() {
    let registry = Registry::embedded();
    let layouts = RowLayout::for_registry(&registry);
    let (grid, threads) = Coordinator::start(&options(8, 1000), layouts.clone());
    let router = grid.router();
    let mut per_shard: Vec<Vec<RowBatch>> = vec![Vec::new(); router.shards()];
    let mut reads = vec![ReadBatch::default(); router.shards()];
    let mut where_is = Vec::new();
    for id in 0..50i64 {
        let key = id.to_le_bytes();
        let shard = router.shard_of_key(&key);
        let mut batch = RowBatch::new(0);
        batch.start_row(&layouts[0], &key, id, crate::grid::partition::NO_CREATED);
        per_shard[shard].push(batch);
        where_is.push((shard, reads[shard].len()));
        reads[shard].push(0, &key);
    }
    assert_eq!(grid.write(per_shard).await.unwrap().written, 50);
    let outputs = grid.read(reads).await.unwrap();
    for (id, (shard, i)) in where_is.into_iter().enumerate() {
        let row = outputs[shard].as_ref().unwrap().row(&layouts, i).unwrap();
        assert_eq!(row.event_ts(), id as i64);
    }
    threads.stop();
}
