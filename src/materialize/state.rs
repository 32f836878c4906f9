//! What has been materialized, per feature view, and what is materializing now.
//!
//! Finished intervals are kept in `data_dir/materialized.json`, replaced atomically after
//! every finished run ([`crate::persist::atomic`]); `materialize-incremental` starts where the
//! view's last interval ended (Feast keeps the same in its registry, which featgrid does not
//! write). Views are named, not numbered: the record survives registry reloads. Runs in
//! progress are kept in memory only: a restart forgets them (their rows are in the write-ahead
//! log; the interval is simply not recorded, so the next incremental run reads it again).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::parquet::Progress;
use crate::persist::atomic::{write_atomic, FileError};
use crate::sync::lock;
use crate::value::{format_timestamp, now_micros, Micros};

/// The file's format version.
const FORMAT: u32 = 1;
/// Intervals kept per view (the newest); `last_end` is kept whatever the count.
const KEEP_INTERVALS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: not a featgrid materialization record ({problem}); move it away to start afresh (incremental runs then start at end - ttl)")]
    Corrupt { path: PathBuf, problem: String },
}

/// One finished run of one view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    #[serde(with = "rfc3339")]
    pub start: Micros,
    #[serde(with = "rfc3339")]
    pub end: Micros,
    pub rows: u64,
    #[serde(with = "rfc3339")]
    pub finished_at: Micros,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// The latest end of any finished interval: where the next incremental run starts.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub last_end: Option<Micros>,
    #[serde(default)]
    pub intervals: Vec<Interval>,
    /// Why the last run failed, if it did (cleared by the next success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    format: u32,
    views: BTreeMap<String, ViewRecord>,
}

/// A run in progress, for `GET /materialize`.
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    #[serde(skip)]
    pub id: u64,
    pub route: &'static str,
    #[serde(with = "rfc3339")]
    pub start: Micros,
    #[serde(with = "rfc3339")]
    pub end: Micros,
    #[serde(with = "rfc3339")]
    pub started_at: Micros,
    #[serde(flatten)]
    pub progress: Arc<Progress>,
}

/// The record (durable) and the runs in progress (in memory).
pub struct MaterializeState {
    path: PathBuf,
    record: Mutex<Record>,
    running: Mutex<BTreeMap<String, Running>>,
    next_id: AtomicU64,
}

/// The claim of a run on its views; dropping it releases them (unless a forced run has
/// taken one over since).
pub struct Claim {
    state: Arc<MaterializeState>,
    id: u64,
    views: Vec<String>,
    pub progress: Arc<Progress>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut running = lock(&self.state.running);
        for v in &self.views {
            if running.get(v).is_some_and(|r| r.id == self.id) {
                running.remove(v);
            }
        }
    }
}

impl MaterializeState {
    /// Opens `data_dir/materialized.json` (absent: nothing materialized yet).
    pub fn open(data_dir: &std::path::Path) -> Result<MaterializeState, StateError> {
        let path = data_dir.join("materialized.json");
        let record = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record {
                format: FORMAT,
                ..Record::default()
            },
            Err(e) => return Err(FileError::new(&path, "read", e).into()),
            Ok(bytes) => {
                let record: Record =
                    serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                        path: path.clone(),
                        problem: e.to_string(),
                    })?;
                if record.format != FORMAT {
                    return Err(StateError::Corrupt {
                        path,
                        problem: format!("format {} (this build reads {FORMAT})", record.format),
                    });
                }
                record
            }
        };
        Ok(MaterializeState {
            path,
            record: Mutex::new(record),
            running: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Where the next incremental run of `view` starts, if it ran before.
    pub fn last_end(&self, view: &str) -> Option<Micros> {
        lock(&self.record).views.get(view).and_then(|r| r.last_end)
    }

    /// Claims `views` for a run of `[start, end)`, or names those already materializing;
    /// `force` takes them over (the earlier run goes on, but no longer holds them).
    pub fn claim(
        self: &Arc<Self>,
        views: &[String],
        route: &'static str,
        (start, end): (Micros, Micros),
        force: bool,
    ) -> Result<Claim, Vec<String>> {
        let mut running = lock(&self.running);
        let busy: Vec<String> = views
            .iter()
            .filter(|v| running.contains_key(*v))
            .cloned()
            .collect();
        if !busy.is_empty() && !force {
            return Err(busy);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let progress = Arc::new(Progress::default());
        for v in views {
            running.insert(
                v.clone(),
                Running {
                    id,
                    route,
                    start,
                    end,
                    started_at: now_micros(),
                    progress: progress.clone(),
                },
            );
        }
        Ok(Claim {
            state: self.clone(),
            id,
            views: views.to_vec(),
            progress,
        })
    }

    /// Records a finished interval of `view`, durably.
    pub fn finished(&self, view: &str, interval: Interval) -> Result<(), StateError> {
        self.update(view, |r| {
            r.last_end = Some(r.last_end.map_or(interval.end, |e| e.max(interval.end)));
            r.intervals.push(interval);
            let excess = r.intervals.len().saturating_sub(KEEP_INTERVALS);
            r.intervals.drain(..excess);
            r.last_error = None;
        })
    }

    /// Records why a run of `view` failed.
    pub fn failed(&self, view: &str, error: String) -> Result<(), StateError> {
        self.update(view, |r| r.last_error = Some(error))
    }

    fn update(&self, view: &str, change: impl FnOnce(&mut ViewRecord)) -> Result<(), StateError> {
        let mut record = lock(&self.record);
        change(record.views.entry(view.to_string()).or_default());
        let bytes = serde_json::to_vec_pretty(&*record).unwrap_or_default();
        write_atomic(&self.path, &bytes)?;
        Ok(())
    }

    /// Every view's record and run in progress, for `GET /materialize`.
    pub fn status(&self) -> serde_json::Value {
        let record = lock(&self.record);
        let running = lock(&self.running);
        let mut views = serde_json::Map::new();
        for name in record.views.keys().chain(running.keys()) {
            let mut v = serde_json::to_value(record.views.get(name).cloned().unwrap_or_default())
                .unwrap_or_default();
            v["state"] = (if running.contains_key(name) {
                "materializing"
            } else {
                "idle"
            })
            .into();
            if let Some(r) = running.get(name) {
                v["running"] = serde_json::to_value(r).unwrap_or_default();
            }
            views.insert(name.clone(), v);
        }
        serde_json::json!({ "views": views })
    }
}

mod rfc3339 {
    use crate::value::{parse_timestamp_text, Micros};

    pub fn serialize<S: serde::Serializer>(t: &Micros, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_timestamp(*t))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Micros, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        parse_timestamp_text(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("'{text}' is not a timestamp")))
    }
}

mod rfc3339_opt {
    use crate::value::Micros;

    pub fn serialize<S: serde::Serializer>(t: &Option<Micros>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Micros>, D::Error> {
        super::rfc3339::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Micros = 3_600_000_000;

    fn interval(start: Micros, end: Micros) -> Interval {
        Interval {
            start,
            end,
            rows: 7,
            finished_at: end,
        }
    }

    #[test]
    fn intervals_survive_a_reopen_and_the_last_end_is_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let state = MaterializeState::open(dir.path()).unwrap();
        assert_eq!(state.last_end("v"), None);
        state.finished("v", interval(0, 2 * HOUR)).unwrap();
        state.finished("v", interval(0, HOUR)).unwrap();
        let reopened = MaterializeState::open(dir.path()).unwrap();
        assert_eq!(reopened.last_end("v"), Some(2 * HOUR));
        assert_eq!(reopened.status()["views"]["v"]["intervals"][1]["rows"], 7);
    }

    #[test]
    fn a_view_in_a_run_is_refused_to_a_second_run_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(MaterializeState::open(dir.path()).unwrap());
        let views = ["a".to_string(), "b".to_string()];
        let first = state
            .claim(&views, "/materialize", (0, HOUR), false)
            .unwrap();
        let busy = state
            .claim(&views[1..], "/materialize", (0, HOUR), false)
            .err();
        assert_eq!(busy, Some(vec!["b".to_string()]));
        let forced = state
            .claim(&views[1..], "/materialize", (0, HOUR), true)
            .unwrap();
        drop(first);
        // "b" stays claimed by the forced run; "a" is free.
        assert!(state
            .claim(&views[..1], "/materialize", (0, HOUR), false)
            .is_ok());
        assert!(state
            .claim(&views[1..], "/materialize", (0, HOUR), false)
            .is_err());
        drop(forced);
        assert!(state
            .claim(&views[1..], "/materialize", (0, HOUR), false)
            .is_ok());
    }

    #[test]
    fn a_corrupt_record_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("materialized.json"), b"{not json").unwrap();
        let e = MaterializeState::open(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("materialized.json") && e.contains("move it away"),
            "{e}"
        );
    }
}
