//! Micro-benchmarks of the hot path: slot routing, partition writes and reads, the shard
//! actors' round trip through the coordinator (1 key, 100 keys), Feast JSON in and out of
//! the app (in-process, no sockets), and the binary codec.
//!
//! `cargo bench --bench micro` (figures in BENCHMARKS.md).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use actix_web::test as actix_test;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use featgrid::api::feast::PushRequest;
use featgrid::api::native::{NativeRead, NativeWrite, WriteTarget};
use featgrid::config::Settings;
use featgrid::grid::coordinator::{Coordinator, GridOptions};
use featgrid::grid::partition::{Partition, ReadBatch, RowBatch, RowLayout, NO_CREATED};
use featgrid::grid::routing::{slot, Router};
use featgrid::persist::codec;
use featgrid::registry::Registry;
use featgrid::value::native::NativeValue;
use featgrid::value::{encode_value, ValueType};
use serde_json::{json, Value as Json};

fn driver_batch(layouts: &[RowLayout], ids: std::ops::Range<i64>) -> RowBatch {
    let f32t = ValueType::parse("float32").unwrap();
    let i64t = ValueType::parse("int64").unwrap();
    let mut batch = RowBatch::new(0);
    for id in ids {
        batch.start_row(
            &layouts[0],
            &id.to_le_bytes(),
            1_795_600_800_000_000,
            NO_CREATED,
        );
        batch
            .encode_field(&layouts[0], 0, |out| encode_value(f32t, &json!(0.5), out))
            .unwrap();
        batch
            .encode_field(&layouts[0], 1, |out| encode_value(f32t, &json!(0.9), out))
            .unwrap();
        batch
            .encode_field(&layouts[0], 2, |out| encode_value(i64t, &json!(id), out))
            .unwrap();
    }
    batch
}

fn routing(c: &mut Criterion) {
    let router = Router::new(8);
    c.bench_function("routing/slot_and_shard_of_int64_key", |b| {
        let mut id = 0i64;
        b.iter(|| {
            id += 1;
            black_box(router.shard_of_key(&id.to_le_bytes()))
        })
    });
    c.bench_function("routing/slot_of_32_byte_key", |b| {
        b.iter(|| black_box(slot(black_box(&[7u8; 32]))))
    });
}

fn partition(c: &mut Criterion) {
    let registry = Registry::embedded();
    let layouts = RowLayout::for_registry(&registry);
    let mut group = c.benchmark_group("partition");
    group.throughput(Throughput::Elements(100));
    let batch = driver_batch(&layouts, 0..100);
    let mut p = Partition::new(layouts.clone());
    group.bench_function("apply_100_rows_existing_keys", |b| {
        b.iter(|| p.apply(black_box(&batch)).unwrap())
    });
    group.bench_function("apply_100_rows_new_keys", |b| {
        let mut next = 0i64;
        b.iter_batched(
            || {
                next += 100;
                driver_batch(&layouts, next..next + 100)
            },
            |batch| p.apply(&batch).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let mut keys = ReadBatch::default();
    for id in 0..100i64 {
        keys.push(0, &id.to_le_bytes());
    }
    group.bench_function("read_100_keys", |b| {
        b.iter(|| black_box(p.read(black_box(&keys)).unwrap()))
    });
    group.finish();
}

fn start_grid(system: &actix_rt::SystemRunner) -> (Coordinator, Arc<[RowLayout]>) {
    let layouts = RowLayout::for_registry(&Registry::embedded());
    let options = GridOptions {
        shards: 8,
        shard_threads: 1,
        mailbox_capacity: 1024,
        shard_timeout: Duration::from_secs(2),
    };
    let (grid, _threads) = system.block_on(async { Coordinator::start(&options, layouts.clone()) });
    (grid, layouts)
}

fn coordinator(c: &mut Criterion) {
    let system = actix_rt::System::new();
    let (grid, layouts) = start_grid(&system);
    let router = grid.router();
    let mut per_shard: Vec<Vec<RowBatch>> = vec![Vec::new(); router.shards()];
    for id in 0..100i64 {
        per_shard[router.shard_of_key(&id.to_le_bytes())].push(driver_batch(&layouts, id..id + 1));
    }
    system.block_on(grid.write(per_shard)).unwrap();
    let reads = |ids: std::ops::Range<i64>| {
        let mut per_shard = vec![ReadBatch::default(); router.shards()];
        for id in ids {
            per_shard[router.shard_of_key(&id.to_le_bytes())].push(0, &id.to_le_bytes());
        }
        per_shard
    };
    let mut group = c.benchmark_group("coordinator");
    group.bench_function("read_round_trip_1_key", |b| {
        b.iter_batched(
            || reads(7..8),
            |r| system.block_on(grid.read(r)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("read_round_trip_100_keys", |b| {
        b.iter_batched(
            || reads(0..100),
            |r| system.block_on(grid.read(r)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn read_body(ids: &[i64]) -> Json {
    json!({"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"],
           "entities": {"driver_id": ids}})
}

fn push_body(ids: &[i64]) -> Json {
    let n = ids.len();
    json!({"push_source_name": "driver_stats_push_source", "to": "online", "df": {
        "driver_id": ids, "event_timestamp": vec!["2026-11-25T10:00:00Z"; n], "created": vec!["2026-11-25 10:00:00"; n],
        "conv_rate": vec![0.5; n], "acc_rate": vec![0.9; n], "avg_daily_trips": vec![12; n]}})
}

fn feast_json(c: &mut Criterion) {
    let ids: Vec<i64> = (0..100).collect();
    let push = serde_json::to_vec(&push_body(&ids)).unwrap();
    let mut group = c.benchmark_group("feast_json");
    group.throughput(Throughput::Bytes(push.len() as u64));
    group.bench_function("parse_push_100_rows", |b| {
        b.iter(|| black_box(serde_json::from_slice::<PushRequest>(black_box(&push)).unwrap()))
    });
    group.finish();

    // The whole app in-process: parse, validate, route, shard round trip, render, and the
    // write-ahead log (fsync "no": the figure is the CPU path, not the disk).
    let system = actix_rt::System::new();
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::defaults();
    settings.data_dir = data_dir.path().to_path_buf();
    settings.fsync = "no".into();
    settings.snapshot_interval = toml::Value::Integer(0);
    let prepared = system
        .block_on(async { featgrid::prepare(&settings, Registry::embedded()) })
        .unwrap();
    let app = system.block_on(actix_test::init_service(featgrid::build_app(
        prepared.state.clone(),
    )));
    let call = |path: &str, body: &[u8]| {
        let req = actix_test::TestRequest::post()
            .uri(path)
            .set_payload(body.to_vec())
            .to_request();
        let response = system.block_on(actix_test::call_service(&app, req));
        assert!(response.status().is_success());
        system.block_on(actix_test::read_body(response))
    };
    call("/push", &push);
    let mut group = c.benchmark_group("app_in_process");
    for (name, body) in [
        ("read_1x3", read_body(&[7])),
        ("read_100x3", read_body(&ids)),
    ] {
        let body = serde_json::to_vec(&body).unwrap();
        group.bench_function(format!("feast_json_{name}"), |b| {
            b.iter(|| black_box(call("/get-online-features", &body)))
        });
    }
    group.bench_function("feast_json_push_100", |b| {
        b.iter(|| black_box(call("/push", &push)))
    });
    let native_read = codec::encode(&NativeRead {
        features: Some(vec![
            "driver_hourly_stats:conv_rate".into(),
            "driver_hourly_stats:acc_rate".into(),
            "driver_hourly_stats:avg_daily_trips".into(),
        ]),
        feature_service: None,
        entities: vec![(
            "driver_id".into(),
            ids.iter().map(|&i| NativeValue::Int64(i)).collect(),
        )],
        full_feature_names: false,
    })
    .unwrap();
    group.bench_function("native_read_100x3", |b| {
        b.iter(|| black_box(call("/native/v1/get-online-features", &native_read)))
    });
    group.finish();
}

fn codec_bench(c: &mut Criterion) {
    let write = NativeWrite {
        target: WriteTarget::PushSource {
            name: "driver_stats_push_source".into(),
            to: None,
        },
        columns: vec![
            (
                "driver_id".into(),
                (0..100).map(NativeValue::Int64).collect(),
            ),
            (
                "event_timestamp".into(),
                vec![NativeValue::UnixTimestamp(1_795_600_800_000_000); 100],
            ),
            ("conv_rate".into(), vec![NativeValue::Float32(0.5); 100]),
            ("acc_rate".into(), vec![NativeValue::Float32(0.9); 100]),
            ("avg_daily_trips".into(), vec![NativeValue::Int64(12); 100]),
        ],
    };
    let bytes = codec::encode(&write).unwrap();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode_native_push_100_rows", |b| {
        b.iter(|| black_box(codec::encode(black_box(&write)).unwrap()))
    });
    group.bench_function("decode_native_push_100_rows", |b| {
        b.iter(|| black_box(codec::decode::<NativeWrite>(black_box(&bytes)).unwrap()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = routing, partition, coordinator, feast_json, codec_bench
}
criterion_main!(benches);
