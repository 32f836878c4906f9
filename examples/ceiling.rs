//! The ceiling: the least work an actix-web handler can do to answer the same Feast requests as
//! featgrid (`/push` and `/get-online-features` of the driver quickstart), the yardstick for
//! "close to the limit". Bodies are parsed straight into typed serde structs, timestamps are
//! parsed to integers, rows live in a sharded `RwLock<HashMap>` keyed by the integer id, and
//! answers are rendered from typed structs: no registry, no log, no validation beyond what the
//! answer needs. It does what the shared reference handler (`fsbench`'s direct mode) does, at
//! featgrid's own URLs, so every script here can run both with the same bodies. (An earlier
//! version parsed into `serde_json::Value`, cloned columns and rendered through `json!`: 3-4x
//! slower on read 100 and push 100, which flattered every ratio measured against it.)
//!
//! `cargo run --release --example ceiling -- 127.0.0.1:6567`

use std::collections::HashMap;
use std::sync::RwLock;

use actix_web::{web, App, HttpResponse, HttpServer};
use ahash::RandomState;
use serde::{Deserialize, Serialize};

const SHARDS: usize = 16;

/// conv_rate, acc_rate, avg_daily_trips, and the event time (Unix seconds).
#[derive(Clone, Copy)]
struct Row {
    values: [f64; 3],
    event: i64,
}

type Map = Vec<RwLock<HashMap<u64, Row, RandomState>>>;

fn shard(id: u64) -> usize {
    ((id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize) % SHARDS
}

#[derive(Deserialize)]
struct Df {
    driver_id: Vec<u64>,
    event_timestamp: Vec<String>,
    conv_rate: Vec<f64>,
    acc_rate: Vec<f64>,
    avg_daily_trips: Vec<i64>,
}

#[derive(Deserialize)]
struct Push {
    #[allow(dead_code)]
    push_source_name: String,
    df: Df,
}

#[derive(Deserialize)]
struct Read {
    features: Vec<String>,
    entities: HashMap<String, Vec<u64>>,
}

#[derive(Serialize)]
struct Column {
    values: Vec<Option<f64>>,
    statuses: Vec<&'static str>,
    event_timestamps: Vec<i64>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    feature_names: Vec<&'a str>,
}

#[derive(Serialize)]
struct Answer<'a> {
    metadata: Metadata<'a>,
    results: Vec<Column>,
}

/// "YYYY-MM-DDTHH:MM:SS..." -> Unix seconds (days from civil), `None` when malformed.
fn parse_ts(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(&b[r]).ok()?.parse().ok()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400 + hh * 3600 + mm * 60 + ss)
}

async fn push(map: web::Data<Map>, push: web::Json<Push>) -> HttpResponse {
    let df = &push.df;
    for (i, id) in df.driver_id.iter().enumerate() {
        let (Some(ts), Some(conv), Some(acc), Some(trips)) = (
            df.event_timestamp.get(i).and_then(|t| parse_ts(t)),
            df.conv_rate.get(i),
            df.acc_rate.get(i),
            df.avg_daily_trips.get(i),
        ) else {
            return HttpResponse::BadRequest().finish();
        };
        let row = Row {
            values: [*conv, *acc, *trips as f64],
            event: ts,
        };
        map[shard(*id)]
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*id, row);
    }
    HttpResponse::Ok().finish()
}

fn feature_index(feature: &str) -> Option<usize> {
    match feature.rsplit(':').next()? {
        "conv_rate" => Some(0),
        "acc_rate" => Some(1),
        "avg_daily_trips" => Some(2),
        _ => None,
    }
}

async fn read(map: web::Data<Map>, read: web::Json<Read>) -> HttpResponse {
    let Some((name, ids)) = read.entities.iter().next() else {
        return HttpResponse::BadRequest().finish();
    };
    let rows: Vec<Option<Row>> = ids
        .iter()
        .map(|id| {
            let shard = map[shard(*id)].read();
            shard.unwrap_or_else(|p| p.into_inner()).get(id).copied()
        })
        .collect();
    let mut names = Vec::with_capacity(read.features.len() + 1);
    names.push(name.as_str());
    let mut results = Vec::with_capacity(read.features.len() + 1);
    results.push(Column {
        values: ids.iter().map(|id| Some(*id as f64)).collect(),
        statuses: vec!["PRESENT"; ids.len()],
        event_timestamps: vec![0; ids.len()],
    });
    for feature in &read.features {
        let index = feature_index(feature);
        names.push(feature.rsplit(':').next().unwrap_or(feature));
        let found = |r: &Option<Row>| (*r).zip(index);
        results.push(Column {
            values: rows
                .iter()
                .map(|r| found(r).map(|(r, i)| r.values[i]))
                .collect(),
            statuses: rows
                .iter()
                .map(|r| {
                    if found(r).is_some() {
                        "PRESENT"
                    } else {
                        "NOT_FOUND"
                    }
                })
                .collect(),
            event_timestamps: rows.iter().map(|r| r.map_or(0, |r| r.event)).collect(),
        });
    }
    HttpResponse::Ok().json(Answer {
        metadata: Metadata {
            feature_names: names,
        },
        results,
    })
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6567".into());
    let map: web::Data<Map> = web::Data::new(
        (0..SHARDS)
            .map(|_| RwLock::new(HashMap::with_hasher(RandomState::new())))
            .collect(),
    );
    let server = HttpServer::new(move || {
        App::new()
            .app_data(map.clone())
            .app_data(web::JsonConfig::default().limit(16 << 20))
            .route("/push", web::post().to(push))
            .route("/get-online-features", web::post().to(read))
    })
    .bind(addr)?;
    println!("ceiling listening on http://{}", server.addrs()[0]);
    server.run().await
}
