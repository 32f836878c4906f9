//! The ceiling: a bare actix-web handler that answers the same Feast requests as featgrid
//! (`/push` and `/get-online-features` of the driver quickstart) from a plain sharded map,
//! with no actors, no registry and no validation beyond what the answer needs. Benchmarks
//! compare featgrid against it, on the same machine, with the same load generator and bodies.
//!
//! `cargo run --release --example ceiling -- 127.0.0.1:6567`

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;
use serde_json::{json, Value};

const SHARDS: usize = 8;

#[derive(Clone)]
struct Row {
    event: String,
    values: [f64; 2],
    trips: i64,
}

type Map = Vec<Mutex<HashMap<i64, Row>>>;

#[derive(Deserialize)]
struct Push {
    df: HashMap<String, Vec<Value>>,
}

#[derive(Deserialize)]
struct Read {
    features: Vec<String>,
    entities: HashMap<String, Vec<Value>>,
}

fn shard(id: i64) -> usize {
    (id as u64 % SHARDS as u64) as usize
}

async fn push(map: web::Data<Map>, body: web::Bytes) -> HttpResponse {
    let Ok(push) = serde_json::from_slice::<Push>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let col = |name: &str| push.df.get(name).cloned().unwrap_or_default();
    let (ids, ts, conv, acc, trips) = (
        col("driver_id"),
        col("event_timestamp"),
        col("conv_rate"),
        col("acc_rate"),
        col("avg_daily_trips"),
    );
    for i in 0..ids.len() {
        let id = ids[i].as_i64().unwrap_or_default();
        let row = Row {
            event: ts[i].as_str().unwrap_or_default().to_string(),
            values: [
                conv[i].as_f64().unwrap_or_default() as f32 as f64,
                acc[i].as_f64().unwrap_or_default() as f32 as f64,
            ],
            trips: trips[i].as_i64().unwrap_or_default(),
        };
        map[shard(id)].lock().unwrap().insert(id, row);
    }
    HttpResponse::Ok().finish()
}

async fn read(map: web::Data<Map>, body: web::Bytes) -> HttpResponse {
    let Ok(read) = serde_json::from_slice::<Read>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let ids: Vec<i64> = read
        .entities
        .get("driver_id")
        .map(|v| v.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let rows: Vec<Option<Row>> = ids
        .iter()
        .map(|id| map[shard(*id)].lock().unwrap().get(id).cloned())
        .collect();
    let mut names = vec!["driver_id".to_string()];
    let mut results = vec![
        json!({"values": ids, "statuses": vec!["PRESENT"; ids.len()], "event_timestamps": vec!["1970-01-01T00:00:00Z"; ids.len()]}),
    ];
    for feature in &read.features {
        let name = feature.split(':').nth(1).unwrap_or_default();
        let value = |r: &Row| match name {
            "conv_rate" => json!(r.values[0]),
            "acc_rate" => json!(r.values[1]),
            _ => json!(r.trips),
        };
        names.push(name.to_string());
        results.push(json!({
            "values": rows.iter().map(|r| r.as_ref().map(value)).collect::<Vec<_>>(),
            "statuses": rows.iter().map(|r| if r.is_some() { "PRESENT" } else { "NOT_FOUND" }).collect::<Vec<_>>(),
            "event_timestamps": rows.iter().map(|r| r.as_ref().map_or("1970-01-01T00:00:00Z".to_string(), |r| r.event.clone())).collect::<Vec<_>>(),
        }));
    }
    HttpResponse::Ok().json(json!({"metadata": {"feature_names": names}, "results": results}))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6567".into());
    let map: web::Data<Map> =
        web::Data::new((0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(map.clone())
            .app_data(web::PayloadConfig::new(16 << 20))
            .route("/push", web::post().to(push))
            .route("/get-online-features", web::post().to(read))
    })
    .bind(addr)?;
    println!("ceiling listening on http://{}", server.addrs()[0]);
    server.run().await
}
