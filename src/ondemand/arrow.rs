//! featgrid's values as Arrow batches for the Python workers, and the workers' output batches
//! as JSON cells that the usual write and render paths take.
//!
//! In: a column of stored values (their encoded bytes) in its declared type: numbers, bools,
//! strings, bytes and timestamps (UTC, microseconds) and lists of them as the matching Arrow
//! types, so that the transformation sees what Feast's own response would give it (`int`,
//! `float`, `str`, `datetime`, ...); the structured types (maps, JSON, structs, UUIDs,
//! decimals, nested lists) as their JSON text. A written `df` goes in with the types pandas
//! would infer from its JSON ([`frame_batch`]).
//!
//! Out: any Arrow column pyarrow makes from a dict of lists or a DataFrame (integers, floats,
//! bools, strings, binaries, timestamps, lists of these, nulls), one [`JsonCell`] per row.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array,
    ListArray, NullArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use base64::Engine as _;

use crate::value::cell::JsonCell;
use crate::value::{le, render_json, render_text, stored_elements, ScalarType, ValueType};

/// One input column: its name, declared type and each row's stored value (`None`: null).
pub struct InputColumn {
    pub name: String,
    pub dtype: ValueType,
    pub values: Vec<Option<Vec<u8>>>,
}

/// An output column, one cell per row.
pub type OutputColumn = (String, Vec<JsonCell<'static>>);

/// The input columns as one Arrow IPC stream of one batch with `rows` rows.
pub fn input_batch(columns: &[InputColumn], rows: usize) -> Result<Vec<u8>, String> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for c in columns {
        let values: Vec<Option<&[u8]>> = c.values.iter().map(|v| v.as_deref()).collect();
        let array = typed_array(c.dtype, &values);
        fields.push(Field::new(&c.name, array.data_type().clone(), true));
        arrays.push(array);
    }
    ipc(fields, arrays, rows)
}

/// A written `df` as a batch, each column typed as pandas would infer it from the JSON.
pub fn frame_batch(df: &crate::api::Frame<JsonCell<'_>>, rows: usize) -> Result<Vec<u8>, String> {
    let mut fields = Vec::with_capacity(df.len());
    let mut arrays = Vec::with_capacity(df.len());
    for (name, cells) in df {
        let array = inferred_array(cells).map_err(|e| format!("df column '{name}': {e}"))?;
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    ipc(fields, arrays, rows)
}

fn ipc(fields: Vec<Field>, arrays: Vec<ArrayRef>, rows: usize) -> Result<Vec<u8>, String> {
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(&mut out, &schema).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

/// Whether a scalar type goes to Python as its own Arrow type (else as JSON text).
fn native(scalar: ScalarType) -> bool {
    matches!(
        scalar,
        ScalarType::Int32
            | ScalarType::Int64
            | ScalarType::Float32
            | ScalarType::Float64
            | ScalarType::Bool
            | ScalarType::String
            | ScalarType::Bytes
            | ScalarType::PdfBytes
            | ScalarType::ImageBytes
            | ScalarType::UnixTimestamp
    )
}

fn typed_array(dtype: ValueType, values: &[Option<&[u8]>]) -> ArrayRef {
    if !native(dtype.scalar) {
        // As the JSON Feast's server would answer for it.
        let text: StringArray = values
            .iter()
            .map(|v| {
                v.map(|b| {
                    let mut out = Vec::new();
                    render_json(dtype, b, &mut out);
                    match dtype.list {
                        false => render_text(dtype.scalar, b),
                        true => String::from_utf8_lossy(&out).into_owned(),
                    }
                })
            })
            .collect();
        return Arc::new(text);
    }
    if !dtype.list {
        return scalar_array(dtype.scalar, values);
    }
    let mut offsets: Vec<i32> = Vec::with_capacity(values.len() + 1);
    offsets.push(0);
    let mut elements: Vec<Option<&[u8]>> = Vec::new();
    for v in values {
        if let Some(bytes) = v {
            elements.extend(stored_elements(dtype.scalar, bytes).map(Some));
        }
        offsets.push(elements.len() as i32);
    }
    let items = scalar_array(dtype.scalar, &elements);
    let field = Arc::new(Field::new("item", items.data_type().clone(), true));
    let nulls =
        arrow_buffer::NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<_>>());
    Arc::new(ListArray::new(
        field,
        arrow_buffer::OffsetBuffer::new(offsets.into()),
        items,
        Some(nulls),
    ))
}

fn scalar_array(scalar: ScalarType, values: &[Option<&[u8]>]) -> ArrayRef {
    let each = values.iter();
    match scalar {
        ScalarType::Int32 => Arc::new(
            each.map(|v| v.map(|b| i32::from_le_bytes(le(b))))
                .collect::<Int32Array>(),
        ),
        ScalarType::Int64 => Arc::new(
            each.map(|v| v.map(|b| i64::from_le_bytes(le(b))))
                .collect::<Int64Array>(),
        ),
        ScalarType::Float32 => Arc::new(
            each.map(|v| v.map(|b| f32::from_le_bytes(le(b))))
                .collect::<Float32Array>(),
        ),
        ScalarType::Float64 => Arc::new(
            each.map(|v| v.map(|b| f64::from_le_bytes(le(b))))
                .collect::<Float64Array>(),
        ),
        ScalarType::Bool => Arc::new(
            each.map(|v| v.map(|b| b.first() == Some(&1)))
                .collect::<BooleanArray>(),
        ),
        ScalarType::UnixTimestamp => Arc::new(
            each.map(|v| v.map(|b| i64::from_le_bytes(le(b))))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        ScalarType::Bytes | ScalarType::PdfBytes | ScalarType::ImageBytes => {
            Arc::new(each.copied().collect::<BinaryArray>())
        }
        _ => Arc::new(
            each.map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                .collect::<StringArray>(),
        ),
    }
}

/// A JSON column as pandas would type it: bools, integers, floats (integers among floats are
/// floats), strings, or all nulls.
fn inferred_array(cells: &[JsonCell<'_>]) -> Result<ArrayRef, String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Kind {
        Null,
        Bool,
        Int,
        Float,
        Str,
    }
    let mut kind = Kind::Null;
    for cell in cells {
        let k = match cell {
            JsonCell::Null => continue,
            JsonCell::Bool(_) => Kind::Bool,
            JsonCell::Int(_) | JsonCell::UInt(_) => Kind::Int,
            JsonCell::Float(_) | JsonCell::NonFinite(_) => Kind::Float,
            JsonCell::Str(_) => Kind::Str,
            JsonCell::List(_) | JsonCell::Object(_) => {
                return Err(
                    "lists and objects cannot be given to a transformation at write time".into(),
                )
            }
        };
        kind = match (kind, k) {
            (Kind::Null, k) => k,
            (a, b) if a == b => a,
            (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
            _ => return Err("mixes values of different types".into()),
        };
    }
    Ok(match kind {
        Kind::Null => Arc::new(NullArray::new(cells.len())),
        Kind::Bool => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    JsonCell::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        Kind::Int => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    JsonCell::Int(i) => Some(*i),
                    JsonCell::UInt(u) => i64::try_from(*u).ok(),
                    _ => None,
                })
                .collect::<Int64Array>(),
        ),
        Kind::Float => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    JsonCell::Int(i) => Some(*i as f64),
                    JsonCell::UInt(u) => Some(*u as f64),
                    JsonCell::Float(f) | JsonCell::NonFinite(f) => Some(*f),
                    _ => None,
                })
                .collect::<Float64Array>(),
        ),
        Kind::Str => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    JsonCell::Str(s) => Some(s.as_ref()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
    })
}

/// The columns of a worker's answer (one batch or several, concatenated by row).
pub fn output_columns(bytes: &[u8]) -> Result<(Vec<OutputColumn>, usize), String> {
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| format!("the worker's answer is not an Arrow stream: {e}"))?;
    let schema = reader.schema();
    let mut columns: Vec<OutputColumn> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), Vec::new()))
        .collect();
    let mut rows = 0;
    for batch in reader {
        let batch =
            batch.map_err(|e| format!("the worker's answer is not an Arrow stream: {e}"))?;
        rows += batch.num_rows();
        for (i, array) in batch.columns().iter().enumerate() {
            let (name, cells) = &mut columns[i];
            for row in 0..array.len() {
                cells.push(
                    cell(array.as_ref(), row)
                        .map_err(|e| format!("output column '{name}' row {row}: {e}"))?,
                );
            }
        }
    }
    Ok((columns, rows))
}

/// One Arrow value as a JSON cell.
fn cell(array: &dyn Array, i: usize) -> Result<JsonCell<'static>, String> {
    if array.is_null(i) {
        return Ok(JsonCell::Null);
    }
    let micros = |m: i64| JsonCell::Str(Cow::Owned(crate::value::format_timestamp(m)));
    Ok(match array.data_type() {
        DataType::Null => JsonCell::Null,
        DataType::Boolean => JsonCell::Bool(array.as_boolean().value(i)),
        DataType::Int8 => JsonCell::Int(array.as_primitive::<Int8Type>().value(i).into()),
        DataType::Int16 => JsonCell::Int(array.as_primitive::<Int16Type>().value(i).into()),
        DataType::Int32 => JsonCell::Int(array.as_primitive::<Int32Type>().value(i).into()),
        DataType::Int64 => JsonCell::Int(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => JsonCell::Int(array.as_primitive::<UInt8Type>().value(i).into()),
        DataType::UInt16 => JsonCell::Int(array.as_primitive::<UInt16Type>().value(i).into()),
        DataType::UInt32 => JsonCell::Int(array.as_primitive::<UInt32Type>().value(i).into()),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(i);
            i64::try_from(v).map_or(JsonCell::UInt(v), JsonCell::Int)
        }
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => JsonCell::Str(Cow::Owned(array.as_string::<i32>().value(i).to_string())),
        DataType::LargeUtf8 => JsonCell::Str(Cow::Owned(array.as_string::<i64>().value(i).to_string())),
        DataType::Binary => base64(array.as_binary::<i32>().value(i)),
        DataType::LargeBinary => base64(array.as_binary::<i64>().value(i)),
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => micros(array.as_primitive::<TimestampSecondType>().value(i).saturating_mul(1_000_000)),
            TimeUnit::Millisecond => micros(array.as_primitive::<TimestampMillisecondType>().value(i).saturating_mul(1_000)),
            TimeUnit::Microsecond => micros(array.as_primitive::<TimestampMicrosecondType>().value(i)),
            TimeUnit::Nanosecond => micros(array.as_primitive::<TimestampNanosecondType>().value(i).div_euclid(1_000)),
        },
        DataType::List(_) => list(array.as_list::<i32>().value(i).as_ref())?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(i).as_ref())?,
        other => return Err(format!("Arrow type {other} cannot be read by featgrid (give numbers, bools, strings, bytes, timestamps or lists of them)")),
    })
}

fn float(v: f64) -> JsonCell<'static> {
    if v.is_finite() {
        JsonCell::Float(v)
    } else {
        JsonCell::NonFinite(v)
    }
}

fn base64(bytes: &[u8]) -> JsonCell<'static> {
    JsonCell::Str(Cow::Owned(
        base64::engine::general_purpose::STANDARD.encode(bytes),
    ))
}

fn list(items: &dyn Array) -> Result<JsonCell<'static>, String> {
    (0..items.len())
        .map(|j| cell(items, j))
        .collect::<Result<Vec<_>, _>>()
        .map(JsonCell::List)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::encode_value;

    fn stored(dtype: ValueType, cell: JsonCell<'_>) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        encode_value(dtype, &cell, &mut out).unwrap();
        Some(out)
    }

    #[test]
    fn input_columns_come_back_as_the_cells_they_were() {
        let int = ValueType::scalar(ScalarType::Int64);
        let f32 = ValueType::scalar(ScalarType::Float32);
        let ints = ValueType::list_of(ScalarType::Int32);
        let ts = ValueType::scalar(ScalarType::UnixTimestamp);
        let columns = vec![
            InputColumn {
                name: "a".into(),
                dtype: int,
                values: vec![stored(int, JsonCell::Int(7)), None],
            },
            InputColumn {
                name: "b".into(),
                dtype: f32,
                values: vec![
                    stored(f32, JsonCell::Float(0.5)),
                    stored(f32, JsonCell::Float(1.0)),
                ],
            },
            InputColumn {
                name: "c".into(),
                dtype: ints,
                values: vec![
                    stored(
                        ints,
                        JsonCell::List(vec![JsonCell::Int(1), JsonCell::Int(2)]),
                    ),
                    None,
                ],
            },
            InputColumn {
                name: "t".into(),
                dtype: ts,
                values: vec![
                    stored(ts, JsonCell::Str("2026-11-25T10:00:00Z".into())),
                    None,
                ],
            },
        ];
        let bytes = input_batch(&columns, 2).unwrap();
        let (out, rows) = output_columns(&bytes).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(out[0].1, vec![JsonCell::Int(7), JsonCell::Null]);
        assert_eq!(out[1].1, vec![JsonCell::Float(0.5), JsonCell::Float(1.0)]);
        assert_eq!(
            out[2].1,
            vec![
                JsonCell::List(vec![JsonCell::Int(1), JsonCell::Int(2)]),
                JsonCell::Null
            ]
        );
        assert_eq!(
            out[3].1,
            vec![JsonCell::Str("2026-11-25T10:00:00Z".into()), JsonCell::Null]
        );
    }

    #[test]
    fn a_written_frame_is_typed_as_pandas_would() {
        let mut df = crate::api::Frame::new();
        df.insert("i".to_string(), vec![JsonCell::Int(1), JsonCell::Null]);
        df.insert(
            "f".to_string(),
            vec![JsonCell::Int(1), JsonCell::Float(2.5)],
        );
        df.insert(
            "s".to_string(),
            vec![JsonCell::Str("x".into()), JsonCell::Null],
        );
        let (out, rows) = output_columns(&frame_batch(&df, 2).unwrap()).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(out[1].1, vec![JsonCell::Float(1.0), JsonCell::Float(2.5)]);
        assert_eq!(out[2].1, vec![JsonCell::Str("x".into()), JsonCell::Null]);
        let mut mixed = crate::api::Frame::new();
        mixed.insert(
            "m".to_string(),
            vec![JsonCell::Int(1), JsonCell::Str("x".into())],
        );
        assert!(frame_batch(&mixed, 2).unwrap_err().contains("column 'm'"));
    }
}
