//! Materialization: loading a feature view's rows of an interval from its offline source (a
//! local Parquet file or dataset) into the online store, as Feast's `feast materialize` and
//! `feast materialize-incremental` do.
//!
//! A run reads the view's source on a thread of its own ([`parquet::scan`]), which hands
//! chunks of rows through a channel of two places to the caller's [`RowSink`]: the normal
//! write path (logged, snapshotted, on a cluster node committed through the groups), so the
//! newest-event-wins rule of every write decides between rows of the same key, within a run and
//! against what is stored. Memory is bounded by one row group being decoded plus three chunks.
//! [`state`] records finished intervals per view, durably, and the runs in progress.
//!
//! Nothing here knows about HTTP: the routes (`api::materialize`) parse the request, resolve
//! the views, claim them, and hand a [`RowSink`] to [`run_view`].

pub mod command;
pub mod convert;
pub mod parquet;
pub mod state;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::registry::batch::SourceFormat;
use crate::registry::{FeatureView, ViewId};
use crate::value::Micros;
use parquet::{Chunk, Progress, ScanError, ScanSpec, ScanStats, Wanted};

/// Why a view cannot be materialized.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error("feature view '{view}' has no batch source featgrid can read: {hint}")]
    NoBatchSource { view: String, hint: String },
    #[error("feature view '{view}' reads a {source_type}, which featgrid does not materialize ({reason}); materialize it with Feast on the client side instead: online_store type featgrid_feast.FeatgridOnlineStore (README \"Loading batch data\")")]
    UnsupportedSource {
        view: String,
        source_type: String,
        reason: String,
    },
    #[error("feature view '{view}': {source}")]
    Read {
        view: String,
        #[source]
        source: ScanError,
    },
}

/// Where a run's rows go: the write path. `write` returns once the chunk is applied (or
/// refused); a refusal ends the run.
pub trait RowSink {
    type Error;
    fn write(&self, view: ViewId, chunk: Chunk) -> impl Future<Output = Result<(), Self::Error>>;
}

/// How a run ended badly: reading the source, or writing.
#[derive(Debug)]
pub enum RunError<E> {
    Read(MaterializeError),
    Write(E),
}

/// What reading `view` for `[start, end)` takes, checked against the registry only (the files
/// are opened by the run): the source must be a local Parquet path.
pub fn plan(
    view: &FeatureView,
    (start, end): (Micros, Micros),
    chunk_rows: usize,
) -> Result<ScanSpec, MaterializeError> {
    let Some(source) = &view.offline else {
        return Err(MaterializeError::NoBatchSource {
            view: view.name.clone(),
            hint: match &view.source {
                Some(s) => format!("its source '{s}' has no `path` (set one under [[batch_sources]]) or is a push source"),
                None => "it names no source; declare a [[batch_sources]] entry with a `path` and set `source` on the view".into(),
            },
        });
    };
    let path = match &source.format {
        SourceFormat::Parquet { path } => path.clone(),
        SourceFormat::Unsupported {
            source_type,
            reason,
        } => {
            return Err(MaterializeError::UnsupportedSource {
                view: view.name.clone(),
                source_type: source_type.clone(),
                reason: reason.clone(),
            })
        }
    };
    let wanted = |name: &str, role, required| Wanted {
        name: name.to_string(),
        source: source.source_column(name).to_string(),
        role,
        required,
    };
    let mut columns: Vec<Wanted> = view
        .join_keys
        .iter()
        .map(|k| wanted(&k.name, "join key", true))
        .collect();
    columns.extend(view.fields.iter().map(|f| wanted(&f.name, "feature", true)));
    columns.push(wanted(
        &view.created_timestamp_column,
        "created timestamp",
        false,
    ));
    Ok(ScanSpec {
        path,
        timestamp: wanted(&view.timestamp_field, "event timestamp", true),
        columns,
        start,
        end,
        chunk_rows,
    })
}

/// Where an incremental run of a view ends at `end` starts: where its last run ended, else
/// `end - ttl`, else (no ttl) the epoch, as Feast does.
pub fn incremental_start(view: &FeatureView, last_end: Option<Micros>, end: Micros) -> Micros {
    last_end.unwrap_or_else(|| {
        let ttl = i64::try_from(view.ttl.as_micros()).unwrap_or(i64::MAX);
        if ttl == 0 {
            0
        } else {
            end.saturating_sub(ttl).max(crate::value::MIN_TIMESTAMP)
        }
    })
}

/// What the reader thread sends: chunks, then how the scan ended.
enum Message {
    Chunk(Chunk),
    Done(Result<ScanStats, ScanError>),
}

/// Reads `spec` and writes its rows to `sink` as view `view`, counting rows in `progress`. Reading runs on a thread of its own, a chunk ahead of the writes; nothing here
/// blocks the caller's thread. Cancel safety: a dropped future stops the reader at its next
/// chunk; chunks already written stay written.
pub async fn run_view<S: RowSink>(
    sink: &S,
    view: ViewId,
    view_name: &str,
    spec: ScanSpec,
    progress: &Arc<Progress>,
) -> Result<ScanStats, RunError<S::Error>> {
    let read_error = |source| {
        RunError::Read(MaterializeError::Read {
            view: view_name.to_string(),
            source,
        })
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(2);
    let counts = progress.clone();
    std::thread::Builder::new()
        .name("featgrid-materialize".into())
        .spawn(move || {
            let done = parquet::scan(&spec, &counts, |chunk| {
                tx.blocking_send(Message::Chunk(chunk)).is_ok()
            });
            let _ = tx.blocking_send(Message::Done(done));
        })
        .map_err(|e| {
            read_error(ScanError::File {
                path: "(reader thread)".into(),
                problem: e.to_string(),
            })
        })?;
    while let Some(message) = rx.recv().await {
        match message {
            Message::Chunk(chunk) => {
                let rows = chunk.first().map_or(0, |(_, v)| v.len() as u64);
                sink.write(view, chunk).await.map_err(RunError::Write)?;
                progress.rows_written.fetch_add(rows, Ordering::Relaxed);
            }
            Message::Done(done) => return done.map_err(read_error),
        }
    }
    Err(read_error(ScanError::File {
        path: "(reader thread)".into(),
        problem: "the reader stopped without a result".into(),
    }))
}
