//! The log's file format (torn tails, corruption, every cut) and the writer (group commit,
//! failure and recovery, deleting covered segments).

use std::fs;
use std::sync::Arc;

use super::*;
use crate::grid::partition::{PortableRows, RowLayout, NO_CREATED};
use crate::registry::Registry;

fn layouts() -> Arc<[RowLayout]> {
    RowLayout::for_registry(&Registry::embedded())
}

/// A record of one driver row `id` with event time `event`, on shard 0 of 1.
fn record(layouts: &[RowLayout], id: i64, event: i64) -> Vec<u8> {
    let mut batch = RowBatch::new(0);
    batch.start_row(&layouts[0], &id.to_le_bytes(), event, NO_CREATED);
    encode_record(
        Destination::ONLINE,
        &portable_views(&[vec![batch]], layouts),
    )
    .unwrap()
}

fn meta(first_lsn: u64) -> SegmentMeta {
    SegmentMeta {
        first_lsn,
        views: crate::persist::ViewMeta::all(&Registry::embedded()),
    }
}

/// A segment with records for ids 1..=n (lsn = id); answers its bytes and record offsets.
fn segment(n: i64) -> (Vec<u8>, Vec<usize>) {
    let layouts = layouts();
    let mut bytes = encode_segment_header(&meta(1)).unwrap();
    let mut starts = Vec::new();
    for id in 1..=n {
        starts.push(bytes.len());
        let mut r = record(&layouts, id, id * 10);
        seal(&mut r, id as u64);
        bytes.extend_from_slice(&r);
    }
    (bytes, starts)
}

/// Reads a segment file; answers the ids of its rows in order.
fn ids(path: &Path, newest: bool, recover: bool) -> Result<(Vec<i64>, SegmentRead), WalError> {
    let layouts = layouts();
    let mut ids = Vec::new();
    let read = read_segment(
        path,
        newest,
        recover,
        |lsn, meta, (_, views): WritePayload| {
            assert_eq!(meta.views[0].name, "driver_hourly_stats");
            for v in views {
                for row in PortableRows::new(&layouts[v.view as usize], &v.data.0) {
                    let row = row.unwrap();
                    let id = i64::from_le_bytes(row.key.try_into().unwrap());
                    assert_eq!(id as u64, lsn);
                    ids.push(id);
                }
            }
            Ok(())
        },
    )?;
    Ok((ids, read))
}

#[test]
fn records_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment_name(1));
    let (bytes, _) = segment(3);
    fs::write(&path, &bytes).unwrap();
    let (found, read) = ids(&path, true, false).unwrap();
    assert_eq!(found, [1, 2, 3]);
    assert_eq!(
        (read.valid_len, read.last_lsn),
        (bytes.len() as u64, Some(3))
    );
    assert!(read.dropped.is_none());
}

#[test]
fn a_cut_anywhere_in_the_last_record_keeps_every_earlier_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment_name(1));
    let (bytes, starts) = segment(3);
    let last = starts[2];
    for cut in last..bytes.len() {
        fs::write(&path, &bytes[..cut]).unwrap();
        let (found, read) = ids(&path, true, false).unwrap();
        assert_eq!(found, [1, 2], "cut at {cut}");
        assert_eq!(read.valid_len, last as u64, "cut at {cut}");
        assert_eq!(read.dropped.is_some(), cut > last, "cut at {cut}");
        // In an older segment the same cut is corruption.
        if cut > last {
            assert!(ids(&path, false, false).is_err(), "cut at {cut}");
        }
    }
    // A cut inside the header of a new segment is a torn creation, not corruption.
    let header_len = starts[0];
    for cut in 0..header_len {
        fs::write(&path, &bytes[..cut]).unwrap();
        let (found, read) = ids(&path, true, false).unwrap();
        assert!(found.is_empty() && read.valid_len == 0, "cut at {cut}");
    }
    // Zeros after the last record (a file extended but never written) are a torn tail.
    let mut zeros = bytes.clone();
    zeros.extend_from_slice(&[0; 100]);
    fs::write(&path, &zeros).unwrap();
    assert_eq!(ids(&path, true, false).unwrap().0, [1, 2, 3]);
}

#[test]
fn a_flipped_byte_before_the_tail_refuses_naming_file_and_offset_unless_recover() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment_name(1));
    let (bytes, starts) = segment(3);
    for at in [starts[1] + 2, starts[1] + 10, starts[1] + RECORD_HEADER + 3] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        fs::write(&path, &bad).unwrap();
        let e = ids(&path, true, false).unwrap_err().to_string();
        assert!(
            e.contains(&segment_name(1)) && e.contains(&format!("offset {}", starts[1])),
            "{e}"
        );
        let (found, read) = ids(&path, true, true).unwrap();
        assert_eq!(found, [1]);
        assert_eq!(read.valid_len, starts[1] as u64);
        assert!(read.dropped.unwrap().contains("corruption"));
    }
    // A damaged header refuses too.
    let mut bad = bytes.clone();
    bad[3] ^= 1;
    fs::write(&path, &bad).unwrap();
    assert!(ids(&path, false, false).is_err());
}

fn open(dir: &Path, fsync: FsyncPolicy, segment_bytes: u64, next_lsn: u64) -> Wal {
    Wal::open(WalOptions {
        dir: dir.to_path_buf(),
        fsync,
        segment_bytes,
        views: crate::persist::ViewMeta::all(&Registry::embedded()),
        next_lsn,
        existing: list_segments(dir).unwrap(),
    })
    .unwrap()
}

/// Every row id in every segment of `dir`, in log order.
fn all_ids(dir: &Path) -> Vec<i64> {
    let layouts = layouts();
    let segments = list_segments(dir).unwrap();
    let mut ids = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        read_segment(
            &s.path,
            i + 1 == segments.len(),
            false,
            |_, _, (_, views): WritePayload| {
                for v in views {
                    for row in PortableRows::new(&layouts[v.view as usize], &v.data.0) {
                        ids.push(i64::from_le_bytes(row.unwrap().key.try_into().unwrap()));
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    }
    ids
}

/// An `on_logged` hook that records the lsn it was given in `seen`.
fn note(seen: &Arc<std::sync::Mutex<Vec<u64>>>) -> OnLogged {
    let seen = seen.clone();
    Box::new(move |lsn| seen.lock().unwrap().push(lsn))
}

#[actix_rt::test]
async fn concurrent_appends_are_all_logged_share_fsyncs_and_are_handed_on_in_lsn_order() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), FsyncPolicy::Always, 4096, 1);
    let layouts = layouts();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let appends = (0..200).map(|id| {
        let wal = wal.clone();
        let r = record(&layouts, id, 1);
        let hook = note(&seen);
        async move { wal.append(r, hook).await.unwrap() }
    });
    let mut lsns = futures_util::future::join_all(appends).await;
    lsns.sort();
    assert_eq!(lsns, (1..=200).collect::<Vec<u64>>());
    // Every hook ran before its answer, in log order.
    assert_eq!(*seen.lock().unwrap(), lsns);
    let stats = wal.stats();
    assert_eq!(stats.records, 200);
    assert!(stats.group_commits <= 200);
    assert_eq!(wal.covered_lsn(), 201);
    wal.close();
    assert!(
        list_segments(dir.path()).unwrap().len() > 1,
        "4 KiB segments roll"
    );
    let mut found = all_ids(dir.path());
    found.sort();
    assert_eq!(found, (0..200).collect::<Vec<i64>>());
}

#[actix_rt::test]
async fn covered_segments_are_deleted_and_rolled_segments_are_fsynced_under_every_policy() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), FsyncPolicy::No, 1, 1);
    let layouts = layouts();
    assert_eq!(wal.covered_lsn(), 1);
    for id in 1..=5 {
        wal.append(record(&layouts, id, 1), Box::new(|_| {}))
            .await
            .unwrap();
    }
    assert_eq!(wal.covered_lsn(), 6);
    // Segments hold one record each (1-byte segments); each was fsynced when it was closed,
    // even under `no`, so only the newest can hold a torn tail after a power cut. (The roll
    // after record 5 may still be under way.)
    assert!(wal.stats().fsyncs >= 4, "{:?}", wal.stats());
    assert_eq!(wal.delete_covered(4).unwrap(), 3);
    wal.close();
    assert_eq!(all_ids(dir.path()), [4, 5]);
}

#[test]
fn a_damaged_header_is_torn_only_when_nothing_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment_name(1));
    let (bytes, starts) = segment(3);
    // One flipped byte in the header's metadata, with whole records after it: corruption,
    // refused (it was written and fsynced before any record), even in the newest segment.
    let mut bad = bytes.clone();
    bad[SEGMENT_PREFIX + 5] ^= 0x10;
    fs::write(&path, &bad).unwrap();
    let e = ids(&path, true, false).unwrap_err().to_string();
    assert!(e.contains("header checksum"), "{e}");
    // The same header with nothing after it is a creation a crash cut short.
    fs::write(&path, &bad[..starts[0]]).unwrap();
    let (found, read) = ids(&path, true, false).unwrap();
    assert!(found.is_empty());
    assert!(read.dropped.unwrap().contains("torn segment header"));
    // So is a header cut anywhere, or a file of zeros.
    for cut in [3, 8, SEGMENT_PREFIX + 1, starts[0] - 1] {
        fs::write(&path, &bytes[..cut]).unwrap();
        assert!(ids(&path, true, false).is_ok(), "cut at {cut}");
    }
    fs::write(&path, vec![0u8; 100]).unwrap();
    assert!(ids(&path, true, false).is_ok());
    // A length flipped to something huge is damage, not a cut.
    let mut bad = bytes.clone();
    bad[15] ^= 0x40;
    fs::write(&path, &bad).unwrap();
    assert!(ids(&path, true, false).is_err());
}

#[actix_rt::test]
async fn segments_are_deleted_only_behind_records_fsynced_first() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), FsyncPolicy::No, 1, 1);
    let layouts = layouts();
    for id in 1..=5 {
        wal.append(record(&layouts, id, 1), Box::new(|_| {}))
            .await
            .unwrap();
    }
    // The rolls' own fsyncs are done once the writer is idle.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = wal.stats().fsyncs;
    // Nothing to delete: no fsync.
    assert_eq!(wal.delete_covered(1).unwrap(), 0);
    assert_eq!(wal.stats().fsyncs, before);
    // Deleting fsyncs whatever was written first (under `no` too): the record that made the
    // deletion safe cannot be lost to a power cut after the older segments are gone.
    assert_eq!(wal.delete_covered(4).unwrap(), 3);
    assert_eq!(wal.stats().fsyncs, before + 1);
    wal.close();
    assert_eq!(all_ids(dir.path()), [4, 5]);
}

#[actix_rt::test]
async fn the_newest_segment_is_fsynced_at_open_before_a_new_one_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), FsyncPolicy::No, 1 << 20, 1);
    wal.append(record(&layouts(), 1, 1), Box::new(|_| {}))
        .await
        .unwrap();
    // A `kill -9`: the record is in the page cache only. Opening again fsyncs that segment
    // (counted in no stats: the open itself succeeded only if the fsync did), then starts a
    // new segment after it.
    drop(wal);
    let existing = list_segments(dir.path()).unwrap();
    assert_eq!(existing.len(), 1);
    let again = open(dir.path(), FsyncPolicy::No, 1 << 20, 2);
    assert_eq!(list_segments(dir.path()).unwrap().len(), 2);
    again.close();
    assert_eq!(all_ids(dir.path()), [1]);
}

#[test]
fn a_whole_record_that_does_not_decode_is_skipped_with_recover() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(segment_name(1));
    let (mut bytes, _) = segment(3);
    // Record 4: checksums good, payload not a record.
    let mut bad = vec![0u8; RECORD_HEADER];
    bad.extend_from_slice(&[0xff; 9]);
    bad[0..4].copy_from_slice(&9u32.to_le_bytes());
    let crc = crc32c(&bad[RECORD_HEADER..]);
    bad[12..16].copy_from_slice(&crc.to_le_bytes());
    seal(&mut bad, 4);
    bytes.extend_from_slice(&bad);
    let mut last = record(&layouts(), 5, 50);
    seal(&mut last, 5);
    bytes.extend_from_slice(&last);
    fs::write(&path, &bytes).unwrap();
    let e = ids(&path, true, false).unwrap_err().to_string();
    assert!(e.contains("record 4 does not decode"), "{e}");
    let (found, read) = ids(&path, true, true).unwrap();
    assert_eq!(found, [1, 2, 3, 5]);
    assert_eq!(read.valid_len, bytes.len() as u64);
    assert!(
        read.skipped[0].contains("record 4 skipped"),
        "{:?}",
        read.skipped
    );
}

#[actix_rt::test]
async fn a_failed_write_refuses_writes_until_the_log_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), FsyncPolicy::Everysec, 1 << 20, 1);
    let layouts = layouts();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    wal.append(record(&layouts, 1, 1), note(&seen))
        .await
        .unwrap();
    wal.inject_write_failures(1);
    let e = wal
        .append(record(&layouts, 2, 1), note(&seen))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("injected failure"), "{e}");
    assert_eq!(
        *seen.lock().unwrap(),
        [1],
        "an unlogged record is not handed on"
    );
    let stats = wal.stats();
    assert!(!stats.healthy && stats.failures == 1);
    // Refused at once while unhealthy.
    assert!(matches!(
        wal.append(record(&layouts, 3, 1), Box::new(|_| {})).await,
        Err(WalError::Unavailable { .. })
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !wal.stats().healthy {
        assert!(std::time::Instant::now() < deadline, "did not recover");
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    wal.append(record(&layouts, 4, 1), Box::new(|_| {}))
        .await
        .unwrap();
    wal.close();
    // The half-written record was cut away: the log reads cleanly, without it.
    assert_eq!(all_ids(dir.path()), [1, 4]);
}

#[test]
fn a_record_encoded_into_a_recycled_buffer_is_the_same_record() {
    let layouts = layouts();
    let fresh = record(&layouts, 7, 70);
    // A used, sealed record of another row, larger than the next one: nothing of it may show.
    let mut used = record(&layouts, 123_456, 99);
    seal(&mut used, 41);
    used.extend_from_slice(&[0xAB; 300]);
    recycle_record(used);
    let reused = record(&layouts, 7, 70);
    assert_eq!(reused, fresh);
    // Buffers past the limit are freed, not kept: the next record is built in a new one.
    recycle_record(Vec::with_capacity(RECORDS_POOL.largest + 1));
    assert_eq!(record(&layouts, 7, 70), fresh);
}

#[actix_rt::test]
async fn a_log_past_the_writeback_step_reads_back_whole() {
    // Under `no` the writer starts the writeback of every megabyte it writes: records of
    // 500 rows each, 3 MB in all, one segment, every row read back after close.
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), FsyncPolicy::No, 64 << 20, 1);
    let layouts = layouts();
    let (mut id, mut written) = (0, 0);
    while written < 3 << 20 {
        let mut batch = RowBatch::new(0);
        for _ in 0..500 {
            batch.start_row(&layouts[0], &i64::to_le_bytes(id), 1, NO_CREATED);
            id += 1;
        }
        let r = encode_record(
            Destination::ONLINE,
            &portable_views(&[vec![batch]], &layouts),
        )
        .unwrap();
        written += r.len();
        wal.append(r, Box::new(|_| {})).await.unwrap();
    }
    wal.close();
    assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    assert!(
        std::fs::metadata(&list_segments(dir.path()).unwrap()[0].path)
            .unwrap()
            .len()
            > 2 << 20
    );
    assert_eq!(all_ids(dir.path()), (0..id).collect::<Vec<i64>>());
}

#[test]
fn a_given_back_view_buffer_is_reused_and_holds_only_the_next_writes_rows() {
    let layouts = layouts();
    let views = |id: i64| {
        let mut batch = RowBatch::new(0);
        batch.start_row(&layouts[0], &id.to_le_bytes(), 10, NO_CREATED);
        portable_views(&[vec![batch]], &layouts)
    };
    let fresh = views(2);
    let first = views(1);
    let buffer = first[0].data.0.as_ptr();
    recycle_views(first);
    let again = views(2);
    assert_eq!(again[0].data.0.as_ptr(), buffer, "the buffer is reused");
    assert_eq!(
        again[0].data.0, fresh[0].data.0,
        "and holds only its own rows"
    );
    // One past the size kept is freed, not kept.
    let mut big = views(3);
    big[0].data.0.reserve(VIEWS_POOL.largest + 1);
    recycle_views(big);
    assert!(views(4)[0].data.0.capacity() <= VIEWS_POOL.largest);
}
