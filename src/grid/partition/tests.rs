//! Unit and property tests of the partition: the storage format and newest-event-wins.

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::json;

use super::rows::spare_batches;
use super::*;
use crate::registry::Registry;
use crate::value::{encode_key_value, encode_value, render_json};

fn driver() -> (Registry, Arc<[RowLayout]>) {
    let registry = Registry::embedded();
    let layouts = RowLayout::for_registry(&registry);
    (registry, layouts)
}

fn key(id: i64) -> Vec<u8> {
    id.to_le_bytes().to_vec()
}

/// One driver row: conv_rate, acc_rate (null when None), avg_daily_trips.
fn push(
    p: &mut Partition,
    layouts: &[RowLayout],
    id: i64,
    event: i64,
    created: i64,
    conv: f64,
    acc: Option<f64>,
) -> ApplyStats {
    let mut b = RowBatch::new(0);
    b.start_row(&layouts[0], &key(id), event, created);
    b.encode_field(&layouts[0], 0, |out| {
        encode_value(
            crate::value::ValueType::parse("float32").unwrap(),
            &json!(conv),
            out,
        )
    })
    .unwrap();
    if let Some(acc) = acc {
        b.encode_field(&layouts[0], 1, |out| {
            encode_value(
                crate::value::ValueType::parse("float32").unwrap(),
                &json!(acc),
                out,
            )
        })
        .unwrap();
    }
    b.encode_field(&layouts[0], 2, |out| {
        encode_value(
            crate::value::ValueType::parse("int64").unwrap(),
            &json!(event),
            out,
        )
    })
    .unwrap();
    p.apply(&b).unwrap()
}

fn read_conv(p: &Partition, layouts: &[RowLayout], id: i64) -> Option<(f32, i64)> {
    let mut rb = ReadBatch::default();
    rb.push(0, &key(id));
    let out = p.read(&rb).unwrap();
    let row = out.row(layouts, 0)?;
    let conv = f32::from_le_bytes(row.field(0).try_into().unwrap());
    Some((conv, row.event_ts()))
}

#[test]
fn driver_record_is_41_bytes() {
    let (_, layouts) = driver();
    assert_eq!(layouts[0].record_len(), 41);
}

#[test]
fn newest_event_wins_then_created_then_arrival() {
    let (_, layouts) = driver();
    let mut p = Partition::new(layouts.clone());
    assert_eq!(
        push(&mut p, &layouts, 1, 100, NO_CREATED, 0.5, None).written,
        1
    );
    // An older event is skipped and counted.
    let s = push(&mut p, &layouts, 1, 50, NO_CREATED, 0.25, None);
    assert_eq!((s.written, s.skipped_older), (0, 1));
    assert_eq!(read_conv(&p, &layouts, 1), Some((0.5, 100)));
    // Same event, later created: wins.
    push(&mut p, &layouts, 1, 100, 10, 0.75, None);
    assert_eq!(read_conv(&p, &layouts, 1), Some((0.75, 100)));
    // Same event, earlier created: skipped.
    push(&mut p, &layouts, 1, 100, 5, 0.125, None);
    assert_eq!(read_conv(&p, &layouts, 1), Some((0.75, 100)));
    // Same event and created: the later arrival wins.
    push(&mut p, &layouts, 1, 100, 10, 1.0, None);
    assert_eq!(read_conv(&p, &layouts, 1), Some((1.0, 100)));
    assert_eq!(read_conv(&p, &layouts, 2), None);
    assert_eq!(p.row_counts(), vec![1]);
}

/// The embedded registry with its one view made a label view (last write wins).
fn labels() -> Arc<[RowLayout]> {
    let text = crate::registry::DEFAULT_REGISTRY.replace(
        "name = \"driver_hourly_stats\"",
        "name = \"driver_hourly_stats\"\nkind = \"label_view\"",
    );
    let registry = Registry::parse(&text, "labels").unwrap();
    RowLayout::for_registry(&registry)
}

#[test]
fn a_label_view_keeps_the_last_write_whatever_its_times() {
    let layouts = labels();
    let mut p = Partition::new(layouts.clone());
    push(&mut p, &layouts, 1, 100, 10, 0.5, None);
    // Older event and older created: still the last write, so it is kept.
    let s = push(&mut p, &layouts, 1, 50, 5, 0.25, None);
    assert_eq!((s.written, s.skipped_older), (1, 0));
    assert_eq!(read_conv(&p, &layouts, 1), Some((0.25, 50)));
    push(&mut p, &layouts, 1, 200, NO_CREATED, 0.75, None);
    assert_eq!(read_conv(&p, &layouts, 1), Some((0.75, 200)));
}

proptest! {
    /// Whatever the times, a label view holds each key's last write, and a feature view the
    /// write with the greatest (event, created) that came last among equals.
    #[test]
    fn each_view_follows_its_write_rule(writes in proptest::collection::vec((0i64..4, 0i64..5, 0i64..3), 1..40)) {
        let (_, newest_layouts) = driver();
        let label_layouts = labels();
        let mut newest = Partition::new(newest_layouts.clone());
        let mut last = Partition::new(label_layouts.clone());
        let mut expect_newest: HashMap<i64, (i64, i64, f64)> = HashMap::new();
        let mut expect_last: HashMap<i64, (f64, i64)> = HashMap::new();
        for (n, &(id, event, created)) in writes.iter().enumerate() {
            let conv = n as f64;
            push(&mut newest, &newest_layouts, id, event, created, conv, None);
            push(&mut last, &label_layouts, id, event, created, conv, None);
            let kept = expect_newest.entry(id).or_insert((event, created, conv));
            if (event, created) >= (kept.0, kept.1) {
                *kept = (event, created, conv);
            }
            expect_last.insert(id, (conv, event));
        }
        for id in 0..4 {
            prop_assert_eq!(
                read_conv(&newest, &newest_layouts, id),
                expect_newest.get(&id).map(|&(e, _, c)| (c as f32, e))
            );
            prop_assert_eq!(
                read_conv(&last, &label_layouts, id),
                expect_last.get(&id).map(|&(c, e)| (c as f32, e))
            );
        }
    }
}

#[test]
fn nulls_are_kept_per_field() {
    let (_, layouts) = driver();
    let mut p = Partition::new(layouts.clone());
    push(&mut p, &layouts, 7, 1, NO_CREATED, 0.5, None);
    let mut rb = ReadBatch::default();
    rb.push(0, &key(7));
    let out = p.read(&rb).unwrap();
    let row = out.row(&layouts, 0).unwrap();
    assert!(!row.is_null(0));
    assert!(row.is_null(1));
    assert!(!row.is_null(2));
}

#[test]
fn variable_keys_and_values_round_trip() {
    let registry = Registry::parse(
        include_str!("../../../config/example_registry.toml"),
        "example",
    )
    .unwrap();
    let layouts = RowLayout::for_registry(&registry);
    let view = registry.view("customer_profile").unwrap();
    let layout = &layouts[view.id];
    let mut p = Partition::new(layouts.clone());
    let values = [
        json!(30),
        json!(1234),
        json!(4.5),
        json!(99.25),
        json!("Ada \"Lovelace\""),
        json!("aGVsbG8="),
        json!(true),
        json!("2026-11-25T10:00:00Z"),
        json!([1, 2]),
        json!([3]),
        json!([0.5]),
        json!([1.5, 2.5]),
        json!(["home", "work"]),
        json!(["AA==", ""]),
        json!([true, false]),
        json!(["2026-01-01T00:00:00Z"]),
    ];
    assert_eq!(values.len(), view.fields.len());
    for (name, version) in [("alice", 1), ("bob", 2), ("alice", 3)] {
        let mut k = Vec::new();
        encode_key_value(view.join_keys[0].value_type, &json!(name), &mut k).unwrap();
        let mut b = RowBatch::new(view.id);
        b.start_row(layout, &k, version, NO_CREATED);
        for (i, v) in values.iter().enumerate() {
            b.encode_field(layout, i, |out| encode_value(view.fields[i].dtype, v, out))
                .unwrap();
        }
        p.apply(&b).unwrap();
    }
    assert_eq!(p.row_counts()[view.id], 2);
    let mut rb = ReadBatch::default();
    for name in ["alice", "bob", "carol"] {
        let mut k = Vec::new();
        encode_key_value(view.join_keys[0].value_type, &json!(name), &mut k).unwrap();
        rb.push(view.id, &k);
    }
    let out = p.read(&rb).unwrap();
    let alice = out.row(&layouts, 0).unwrap();
    assert_eq!(alice.event_ts(), 3);
    let rendered: Vec<String> = (0..values.len())
        .map(|i| {
            let mut s = Vec::new();
            render_json(view.fields[i].dtype, alice.field(i), &mut s);
            String::from_utf8(s).unwrap()
        })
        .collect();
    assert_eq!(rendered[4], r#""Ada \"Lovelace\"""#);
    assert_eq!(rendered[5], r#""aGVsbG8=""#);
    assert_eq!(rendered[12], r#"["home","work"]"#);
    assert_eq!(rendered[13], r#"["AA==",""]"#);
    assert_eq!(rendered[15], r#"["2026-01-01T00:00:00Z"]"#);
    assert_eq!(out.row(&layouts, 1).unwrap().event_ts(), 2);
    assert!(out.row(&layouts, 2).is_none());
    assert!(p.memory_bytes() > 0);
}

#[test]
fn unknown_view_is_an_error_not_a_panic() {
    let (_, layouts) = driver();
    let mut p = Partition::new(layouts);
    assert_eq!(
        p.apply(&RowBatch::new(9)),
        Err(PartitionError::UnknownView { view: 9 })
    );
    let mut rb = ReadBatch::default();
    rb.push(9, b"x");
    assert!(p.read(&rb).unwrap().items[0].is_none());
}

#[test]
fn views_added_by_a_reload_get_tables_and_a_copy_begun_before_covers_the_old_ones() {
    let (_, layouts) = driver();
    let mut p = Partition::new(layouts.clone());
    push(&mut p, &layouts, 1, 10, NO_CREATED, 0.5, None);
    let mut early = FrozenPartition::empty(layouts.clone());
    // The driver view again, as view 1.
    let grown: Arc<[RowLayout]> = vec![layouts[0].clone(), layouts[0].clone()].into();
    p.add_views(grown.clone());
    let mut b = RowBatch::new(1);
    b.start_row(&grown[1], &key(2), 20, NO_CREATED);
    assert_eq!(p.apply(&b).unwrap().written, 1);
    assert_eq!(p.row_counts(), [1, 1]);
    assert_eq!(read_conv(&p, &grown, 1), Some((0.5, 10)));
    // A copy made for one view stops there; a new one holds both.
    assert!(p.freeze_step(&mut early, usize::MAX));
    assert_eq!(early.row_counts(), [1]);
    assert_eq!(p.freeze().row_counts(), [1, 1]);
    // Fewer layouts than tables (never sent) change nothing.
    p.add_views(layouts);
    assert_eq!(p.row_counts(), [1, 1]);
}

proptest! {
    /// Whatever the arrival order, each key ends with its newest (event, created) write,
    /// and the last arrival among equals.
    #[test]
    fn newest_event_wins_in_any_order(writes in proptest::collection::vec((0i64..8, 0i64..5, 0i64..3), 1..60)) {
        let (_, layouts) = driver();
        let mut p = Partition::new(layouts.clone());
        let mut model: HashMap<i64, ((i64, i64), usize)> = HashMap::new();
        for (seq, &(id, event, created)) in writes.iter().enumerate() {
            push(&mut p, &layouts, id, event, created, seq as f64, None);
            let entry = model.entry(id).or_insert(((event, created), seq));
            if (event, created) >= entry.0 {
                *entry = ((event, created), seq);
            }
        }
        for (id, ((event, _), seq)) in model {
            prop_assert_eq!(read_conv(&p, &layouts, id), Some((seq as f32, event)));
        }
    }
}

proptest! {
    /// A copy taken in small steps, with writes between the steps, holds every row that
    /// existed before the first step at that value or a newer one, and every key once.
    #[test]
    fn a_stepped_copy_holds_every_row_at_least_as_new(before in 1i64..200, after in proptest::collection::vec((0i64..300, 0i64..1000), 0..100), budget in 1usize..500) {
        let (registry, layouts) = driver();
        let mut p = Partition::new(layouts.clone());
        for id in 0..before {
            push(&mut p, &layouts, id, 1, NO_CREATED, 0.5, None);
        }
        let mut frozen = FrozenPartition::empty(layouts.clone());
        let mut writes = after.iter();
        while !p.freeze_step(&mut frozen, budget) {
            if let Some(&(id, event)) = writes.next() {
                push(&mut p, &layouts, id, event, NO_CREATED, 0.25, None);
            }
        }
        let mut bytes = Vec::new();
        frozen.encode_view(0, &mut bytes);
        let mut keys = std::collections::HashSet::new();
        for row in PortableRows::new(&layouts[0], &bytes) {
            let row = row.unwrap();
            let id = i64::from_le_bytes(row.key.try_into().unwrap());
            prop_assert!(keys.insert(id));
            if id < before {
                prop_assert!(read_i64(row.value, EVENT_AT) >= 1);
            }
        }
        prop_assert!((0..before).all(|id| keys.contains(&id)));
        let _ = registry;
    }
}

/// Writers store rows whose fields agree with each other (conv_rate and avg_daily_trips are
/// both derived from the event time); readers on other threads, reading through the
/// [`PartitionView`] while the rows are overwritten, must never see a mixed row, nor lose a
/// key once it was found. `FEATGRID_STRESS_MS` sets the duration (short in CI; run it long
/// with `FEATGRID_STRESS_MS=60000 cargo test --release --lib read_view_never_shows_a_torn_row`).
#[test]
fn read_view_never_shows_a_torn_row() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let run_for = std::time::Duration::from_millis(
        std::env::var("FEATGRID_STRESS_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300),
    );
    let (_, layouts) = driver();
    let mut p = Partition::new(layouts.clone());
    const KEYS: i64 = 4096;
    for id in 0..KEYS {
        push(&mut p, &layouts, id, 1, NO_CREATED, 1.0, Some(-1.0));
    }
    let view = p.view();
    let stop = AtomicBool::new(false);
    let checked = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for reader in 0..2u64 {
            let (view, layouts, stop, checked) = (view.clone(), &layouts, &stop, &checked);
            scope.spawn(move || {
                let mut n = 0u64;
                let mut rng = reader.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                while !stop.load(Ordering::Relaxed) {
                    let mut batch = ReadBatch::default();
                    for _ in 0..16 {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        // Some keys beyond KEYS: inserted while we read.
                        batch.push(0, &key((rng % (KEYS as u64 * 2)) as i64));
                    }
                    let out = view
                        .read(&batch)
                        .expect("the driver view is direct")
                        .unwrap();
                    for i in 0..batch.len() {
                        let Some(row) = out.row(layouts, i) else {
                            continue;
                        };
                        let event = row.event_ts();
                        let conv = f32::from_le_bytes(row.field(0).try_into().unwrap());
                        let acc = f32::from_le_bytes(row.field(1).try_into().unwrap());
                        let trips = i64::from_le_bytes(row.field(2).try_into().unwrap());
                        assert_eq!(trips, event, "a torn row");
                        assert_eq!(conv, event as f32, "a torn row");
                        assert_eq!(acc, -(event as f32), "a torn row");
                        n += 1;
                    }
                }
                checked.fetch_add(n, Ordering::Relaxed);
            });
        }
        let started = std::time::Instant::now();
        let mut event = 1i64;
        let mut next_new = KEYS;
        while started.elapsed() < run_for {
            event += 1;
            for id in (0..KEYS).step_by(7) {
                let e = event + id;
                push(
                    &mut p,
                    &layouts,
                    id,
                    e,
                    NO_CREATED,
                    e as f64,
                    Some(-e as f64),
                );
            }
            if next_new < KEYS * 2 {
                push(
                    &mut p,
                    &layouts,
                    next_new,
                    event,
                    NO_CREATED,
                    event as f64,
                    Some(-event as f64),
                );
                next_new += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(checked.load(Ordering::Relaxed) > 0, "the readers read rows");
    // Every key written is found through the view, with its newest value.
    let mut batch = ReadBatch::default();
    for id in 0..KEYS {
        batch.push(0, &key(id));
    }
    let out = view.read(&batch).unwrap().unwrap();
    let direct: Vec<i64> = (0..KEYS as usize)
        .map(|i| out.row(&layouts, i).unwrap().event_ts())
        .collect();
    let actor = p.read(&batch).unwrap();
    let owned: Vec<i64> = (0..KEYS as usize)
        .map(|i| actor.row(&layouts, i).unwrap().event_ts())
        .collect();
    assert_eq!(direct, owned);
}

/// Keys arrive from peers too: one shorter or longer than the view's fixed key width is no
/// key of it, through the actor and through the read view alike (a shorter one once matched
/// a stored key's prefix, a longer one read past the row).
#[test]
fn keys_of_another_width_are_never_found_and_never_panic() {
    let (_, layouts) = driver();
    let mut p = Partition::new(layouts.clone());
    push(&mut p, &layouts, 7, 10, NO_CREATED, 0.5, None);
    let view = p.view();
    for bad in [&key(7)[..4], &[7u8, 0, 0, 0, 0, 0, 0, 0, 0][..], &[][..]] {
        let mut rb = ReadBatch::default();
        rb.push(0, bad);
        let out = view.read(&rb).expect("fixed-width view").unwrap();
        assert!(out.row(&layouts, 0).is_none(), "{bad:?}");
        let out = p.read(&rb).unwrap();
        assert!(out.row(&layouts, 0).is_none(), "{bad:?}");
    }
    let mut rb = ReadBatch::default();
    rb.push(0, &key(7));
    assert!(view.read(&rb).unwrap().unwrap().row(&layouts, 0).is_some());
}

#[test]
fn a_recycled_batch_comes_back_empty_for_its_new_view() {
    let layouts = RowLayout::for_registry(&Registry::embedded());
    let mut used = RowBatch::with_capacity(0, &layouts[0], 4, 8);
    used.start_row(&layouts[0], &key(1), 10, NO_CREATED);
    used.start_row(&layouts[0], &key(2), 10, NO_CREATED);
    let capacity = used.data.capacity();
    used.recycle();
    let mut reused = RowBatch::with_capacity(5, &layouts[0], 1, 8);
    assert_eq!((reused.view, reused.len(), reused.data_len()), (5, 0, 0));
    assert!(reused.vars.is_empty());
    assert!(
        reused.data.capacity() >= capacity,
        "the recycled buffer is reused"
    );
    // Filled again, it reads back only its own row.
    reused.start_row(&layouts[0], &key(3), 20, NO_CREATED);
    assert_eq!(reused.len(), 1);
    assert_eq!(reused.key(0), key(3));
    // A batch past the limit is freed, not kept.
    let mut big = RowBatch::with_capacity(0, &layouts[0], 1, 8);
    big.data.reserve(SPARE_BATCH_BYTES + 1);
    big.recycle();
    let next = RowBatch::with_capacity(0, &layouts[0], 1, 8);
    assert!(next.data.capacity() <= SPARE_BATCH_BYTES);
}

#[test]
fn a_thread_keeps_the_batches_of_many_pushes_in_flight_within_its_byte_budget() {
    let layouts = RowLayout::for_registry(&Registry::embedded());
    let made = |n| -> Vec<RowBatch> {
        (0..n)
            .map(|_| RowBatch::with_capacity(0, &layouts[0], 27, 8))
            .collect()
    };
    // 32 pushes in flight on one worker, a batch for each of 8 shards: all 256 are kept when
    // they come back, and the next 256 are made from them.
    made(256).into_iter().for_each(RowBatch::recycle);
    assert_eq!(spare_batches().0, 256);
    let again = made(256);
    assert_eq!(spare_batches(), (0, 0));
    // Past the budget, recycled batches are freed.
    again
        .into_iter()
        .chain(made(1024))
        .for_each(RowBatch::recycle);
    let (kept, bytes) = spare_batches();
    assert!(bytes <= SPARE_BATCHES_BYTES, "{bytes}");
    assert!(kept > 256 && kept < 1280, "{kept}");
}

#[test]
fn a_long_first_key_does_not_size_a_batch_for_thousands_of_keys_like_it() {
    let layouts = RowLayout::for_registry(&Registry::embedded());
    let rows = 25_000;
    let batch = RowBatch::with_capacity(0, &layouts[0], rows, 1 << 20);
    assert!(batch.data.capacity() <= rows * (64 + layouts[0].value_len));
    let mut read = ReadBatch::default();
    read.reserve(rows, 1 << 20);
    read.push(0, &vec![7; 1 << 20]);
    assert_eq!(read.len(), 1);
    assert!(read.keys.capacity() <= 2 << 20);
}

#[test]
fn a_restore_sized_index_holds_its_rows_without_growing_and_grows_as_usual_past_them() {
    let (_, layouts) = driver();
    let mut p = Partition::new(layouts.clone());
    p.reserve(0, 10_000);
    let slots = p.tables[0].shared.index_slots();
    // 7/10 full once the rows are in: 5.7 bytes of index a row, not the 8 a growth leaves.
    assert_eq!(slots, 10_000 * 10 / 7 + 1);
    for id in 0..10_000 {
        push(&mut p, &layouts, id, 1, 1, 0.5, None);
    }
    assert_eq!(
        p.tables[0].shared.index_slots(),
        slots,
        "no growth within the reserve"
    );
    // Past 3/4 full, the index grows as usual, and every row is still found.
    for id in 10_000..11_000 {
        push(&mut p, &layouts, id, 1, 1, 0.5, None);
    }
    assert!(p.tables[0].shared.index_slots() > slots);
    for id in [0, 9_999, 10_000, 10_999] {
        assert_eq!(read_conv(&p, &layouts, id), Some((0.5, 1)), "row {id}");
    }
}
