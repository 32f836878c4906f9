//! Reading a view's rows from Parquet: a file, or every Parquet file below a directory (a
//! partitioned dataset; files whose names start with `_` or `.`, such as Spark's `_SUCCESS`,
//! are skipped), in path order.
//!
//! Only the columns the view needs are decoded (an arrow reader with a projection), in record
//! batches; row groups whose event-time statistics lie outside `[start, end)` are not read at
//! all. Rows of the interval are gathered into chunks of about `chunk_rows` rows and handed to
//! the caller one at a time: memory stays within one row group's projected columns plus one
//! chunk, whatever the file's size.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, TimeUnit};
use indexmap::IndexMap;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::statistics::Statistics;

use super::convert::{self, ConvertError};
use crate::value::native::NativeValue;
use crate::value::Micros;

/// Rows decoded per record batch.
const DECODE_ROWS: usize = 16 * 1024;

/// Why the offline data cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path}: no such file or directory")]
    NotFound { path: PathBuf },
    #[error("{path}: the directory holds no Parquet files")]
    NoFiles { path: PathBuf },
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("{path}: no column '{column}' ({role}){mapped}")]
    MissingColumn {
        path: PathBuf,
        column: String,
        role: String,
        mapped: String,
    },
    #[error("{path}: column '{column}': {problem}")]
    Column {
        path: PathBuf,
        column: String,
        problem: ConvertError,
    },
}

/// One column the view needs: its name in the view and in the files.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub name: String,
    pub source: String,
    /// What the column is to the view, for messages ("join key", "feature" ...).
    pub role: &'static str,
    /// A missing optional column (the created timestamp) is left out, not refused.
    pub required: bool,
}

/// What to read.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    pub path: PathBuf,
    /// The event timestamp column; its rows in `[start, end)` are kept.
    pub timestamp: Wanted,
    pub columns: Vec<Wanted>,
    pub start: Micros,
    pub end: Micros,
    pub chunk_rows: usize,
}

/// Rows of the interval, columns named as the view names them (the event timestamp too).
pub type Chunk = IndexMap<String, Vec<NativeValue>>;

/// What a scan went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanStats {
    pub files: u64,
    pub row_groups: u64,
    /// Row groups not read: their event times lie outside the interval.
    pub row_groups_skipped: u64,
    pub rows_read: u64,
    /// Rows in the interval, handed to the caller.
    pub rows_in_interval: u64,
    /// Rows without an event time (never in an interval).
    pub rows_without_event_time: u64,
}

/// The Parquet files of `path`: itself, or those below it in path order.
pub fn list_files(path: &Path) -> Result<Vec<PathBuf>, ScanError> {
    let meta = std::fs::metadata(path).map_err(|_| ScanError::NotFound {
        path: path.to_path_buf(),
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| ScanError::File {
            path: dir.clone(),
            problem: format!("cannot list: {e}"),
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if name.ends_with(".parquet") || name.ends_with(".parq") || !name.contains('.') {
                files.push(p);
            }
        }
    }
    if files.is_empty() {
        return Err(ScanError::NoFiles {
            path: path.to_path_buf(),
        });
    }
    files.sort();
    Ok(files)
}

/// Progress of a scan, for `GET /materialize` and `featgrid materialize`: rows in the files
/// (their footers, read first), rows read so far (row groups skipped count as read), rows
/// written (counted by the caller).
#[derive(Debug, Default)]
pub struct Progress {
    pub rows_total: AtomicU64,
    pub rows_read: AtomicU64,
    pub rows_written: AtomicU64,
}

impl serde::Serialize for Progress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("Progress", 3)?;
        out.serialize_field("rows_total", &self.rows_total.load(Ordering::Relaxed))?;
        out.serialize_field("rows_read", &self.rows_read.load(Ordering::Relaxed))?;
        out.serialize_field("rows_written", &self.rows_written.load(Ordering::Relaxed))?;
        out.end()
    }
}

/// Reads `spec`, handing each chunk of rows in the interval to `emit`; stops early (without
/// an error) when `emit` answers false.
pub fn scan(
    spec: &ScanSpec,
    progress: &Progress,
    mut emit: impl FnMut(Chunk) -> bool,
) -> Result<ScanStats, ScanError> {
    let files = list_files(&spec.path)?;
    for path in &files {
        let rows = File::open(path)
            .ok()
            .and_then(|f| SerializedFileReader::new(f).ok())
            .map_or(0, |r| r.metadata().file_metadata().num_rows());
        progress
            .rows_total
            .fetch_add(u64::try_from(rows).unwrap_or(0), Ordering::Relaxed);
    }
    let mut stats = ScanStats::default();
    let mut chunk = new_chunk(spec);
    for path in files {
        stats.files += 1;
        let go_on = scan_file(spec, &path, progress, &mut stats, &mut chunk, &mut emit)?;
        if !go_on {
            return Ok(stats);
        }
    }
    if chunk_len(&chunk) > 0 {
        emit(chunk);
    }
    Ok(stats)
}

fn new_chunk(spec: &ScanSpec) -> Chunk {
    let mut chunk = Chunk::with_capacity(spec.columns.len() + 1);
    for w in std::iter::once(&spec.timestamp).chain(&spec.columns) {
        chunk.insert(
            w.name.clone(),
            Vec::with_capacity(spec.chunk_rows.min(1 << 16)),
        );
    }
    chunk
}

fn chunk_len(chunk: &Chunk) -> usize {
    chunk.first().map_or(0, |(_, v)| v.len())
}

fn scan_file(
    spec: &ScanSpec,
    path: &Path,
    progress: &Progress,
    stats: &mut ScanStats,
    chunk: &mut Chunk,
    emit: &mut impl FnMut(Chunk) -> bool,
) -> Result<bool, ScanError> {
    let file_error = |problem: String| ScanError::File {
        path: path.to_path_buf(),
        problem,
    };
    let file = File::open(path).map_err(|e| file_error(format!("cannot open: {e}")))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| file_error(format!("not a readable Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let root_index = |w: &Wanted| schema.index_of(&w.source).ok();
    let ts_index = root_index(&spec.timestamp).ok_or_else(|| missing(path, &spec.timestamp))?;
    let mut roots = vec![ts_index];
    // Columns absent from this file (optional ones) are filled with nulls.
    let mut present = Vec::with_capacity(spec.columns.len());
    for w in &spec.columns {
        match root_index(w) {
            Some(i) => {
                roots.push(i);
                present.push(true);
            }
            None if w.required => return Err(missing(path, w)),
            None => present.push(false),
        }
    }
    let groups = builder.metadata().row_groups().len();
    let unit = match schema.field(ts_index).data_type() {
        DataType::Timestamp(unit, _) => Some(*unit),
        _ => None,
    };
    let leaf = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [spec.timestamp.source.as_str()]);
    let mut keep = Vec::with_capacity(groups);
    for g in 0..groups {
        let rg = &builder.metadata().row_groups()[g];
        stats.row_groups += 1;
        let range = leaf
            .zip(unit)
            .and_then(|(leaf, unit)| time_range(rg.column(leaf).statistics()?, unit));
        match range {
            Some((min, max)) if max < spec.start || min >= spec.end => {
                stats.row_groups_skipped += 1;
                let rows = u64::try_from(rg.num_rows()).unwrap_or(0);
                progress.rows_read.fetch_add(rows, Ordering::Relaxed);
            }
            _ => keep.push(g),
        }
    }
    if keep.is_empty() {
        return Ok(true);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_row_groups(keep)
        .with_batch_size(DECODE_ROWS)
        .build()
        .map_err(|e| file_error(e.to_string()))?;
    let mut selected: Vec<u32> = Vec::with_capacity(DECODE_ROWS);
    for batch in reader {
        let batch = batch.map_err(|e| file_error(format!("cannot decode: {e}")))?;
        stats.rows_read += batch.num_rows() as u64;
        progress
            .rows_read
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        let times = convert::timestamps(column(&batch, path, &spec.timestamp)?)
            .map_err(|problem| column_error(path, &spec.timestamp, problem))?;
        selected.clear();
        let ts_values = &mut chunk[0];
        for (row, t) in times.iter().enumerate() {
            match t {
                None => stats.rows_without_event_time += 1,
                Some(t) if (spec.start..spec.end).contains(t) => {
                    selected.push(row as u32);
                    ts_values.push(NativeValue::UnixTimestamp(*t));
                }
                Some(_) => {}
            }
        }
        if selected.is_empty() {
            continue;
        }
        stats.rows_in_interval += selected.len() as u64;
        for (i, w) in spec.columns.iter().enumerate() {
            let out = &mut chunk[i + 1];
            if present[i] {
                convert::append(column(&batch, path, w)?, &selected, out)
                    .map_err(|problem| column_error(path, w, problem))?;
            } else {
                out.extend(std::iter::repeat_n(NativeValue::Null, selected.len()));
            }
        }
        if chunk_len(chunk) >= spec.chunk_rows {
            let full = std::mem::replace(chunk, new_chunk(spec));
            if !emit(full) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// A projected column of a batch (present, unless the file changed under the reader).
fn column<'a>(
    batch: &'a RecordBatch,
    path: &Path,
    w: &Wanted,
) -> Result<&'a dyn arrow_array::Array, ScanError> {
    batch
        .column_by_name(&w.source)
        .map(|c| c.as_ref())
        .ok_or_else(|| missing(path, w))
}

fn missing(path: &Path, w: &Wanted) -> ScanError {
    ScanError::MissingColumn {
        path: path.to_path_buf(),
        column: w.source.clone(),
        role: format!("{} '{}'", w.role, w.name),
        mapped: if w.source != w.name {
            " (named by the source's field_mapping)".into()
        } else {
            String::new()
        },
    }
}

fn column_error(path: &Path, w: &Wanted, problem: ConvertError) -> ScanError {
    ScanError::Column {
        path: path.to_path_buf(),
        column: w.source.clone(),
        problem,
    }
}

/// A row group's event times as microseconds, from its statistics (INT64 timestamps).
fn time_range(stats: &Statistics, unit: TimeUnit) -> Option<(Micros, Micros)> {
    let Statistics::Int64(s) = stats else {
        return None;
    };
    let to_micros = |v: i64| match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1_000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1_000),
    };
    Some((to_micros(*s.min_opt()?), to_micros(*s.max_opt()?)))
}
