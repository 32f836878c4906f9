//! Arrow columns -> featgrid's native values, for the rows of a batch that materialization
//! keeps. The values are then checked against the view's declared types by the write path,
//! by the same rules as every write ([`crate::value::encode_value`]): an int64 column for an
//! int32 feature is accepted when each value fits, a float64 for a float32 only without loss.
//!
//! Read: booleans, signed and unsigned integers, float32/64, UTF-8 strings (plain, large, view,
//! dictionary-encoded as pandas categoricals are), binary, timestamps of any unit (naive ones
//! are UTC, as Feast reads them) and dates, and lists of those; structs and maps (Feast's
//! `Struct`, `Map`: what pyarrow writes for a column of dicts) as their JSON text, which the
//! write path stores as a map or struct value. Anything else (decimals, float16) is refused,
//! naming the column and its type.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};

use crate::value::native::{NativeScalar, NativeValue};
use crate::value::Micros;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Why a column cannot be read (the caller adds the column's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("its type {0} is not one featgrid reads (booleans, integers, floats, strings, binary, timestamps, dates, and lists of those)")]
    UnsupportedType(String),
    #[error("row {row}: {problem}")]
    Value { row: usize, problem: String },
}

/// A timestamp or date column as microseconds since the epoch (`None` for a null).
pub fn timestamps(array: &dyn Array) -> Result<Vec<Option<Micros>>, ConvertError> {
    if !is_time(array.data_type()) {
        return Err(unsupported(array));
    }
    (0..array.len())
        .map(|i| timestamp_at(array, i).map_err(|problem| ConvertError::Value { row: i, problem }))
        .collect()
}

/// The timestamp at row `i` of a time array ([`is_time`]); `None` for a null.
fn timestamp_at(array: &dyn Array, i: usize) -> Result<Option<Micros>, String> {
    if array.is_null(i) {
        return Ok(None);
    }
    let overflow = || "the timestamp is out of range".to_string();
    let micros = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => array
            .as_primitive::<TimestampSecondType>()
            .value(i)
            .checked_mul(1_000_000)
            .ok_or_else(overflow)?,
        DataType::Timestamp(TimeUnit::Millisecond, _) => array
            .as_primitive::<TimestampMillisecondType>()
            .value(i)
            .checked_mul(1_000)
            .ok_or_else(overflow)?,
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            array.as_primitive::<TimestampMicrosecondType>().value(i)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => array
            .as_primitive::<TimestampNanosecondType>()
            .value(i)
            .div_euclid(1_000),
        DataType::Date32 => i64::from(array.as_primitive::<Date32Type>().value(i)) * MICROS_PER_DAY,
        DataType::Date64 => array
            .as_primitive::<Date64Type>()
            .value(i)
            .checked_mul(1_000)
            .ok_or_else(overflow)?,
        other => return Err(format!("{other} is not a timestamp")),
    };
    Ok(Some(micros))
}

fn is_time(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    )
}

fn unsupported(array: &dyn Array) -> ConvertError {
    ConvertError::UnsupportedType(array.data_type().to_string())
}

/// Appends the values of `rows` of `array` to `out`.
pub fn append(
    array: &dyn Array,
    rows: &[u32],
    out: &mut Vec<NativeValue>,
) -> Result<(), ConvertError> {
    macro_rules! primitive {
        ($t:ty, $make:expr) => {{
            let a = array.as_primitive::<$t>();
            out.extend(rows.iter().map(|&r| {
                let r = r as usize;
                if a.is_null(r) {
                    NativeValue::Null
                } else {
                    $make(a.value(r))
                }
            }));
        }};
    }
    match array.data_type() {
        DataType::Int64 => primitive!(Int64Type, NativeValue::Int64),
        DataType::Int32 => primitive!(Int32Type, NativeValue::Int32),
        DataType::Float64 => primitive!(Float64Type, NativeValue::Float64),
        DataType::Float32 => primitive!(Float32Type, NativeValue::Float32),
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            out.extend(rows.iter().map(|&r| {
                let r = r as usize;
                if a.is_null(r) {
                    NativeValue::Null
                } else {
                    NativeValue::String(a.value(r).to_owned())
                }
            }));
        }
        DataType::Dictionary(..) => {
            // Each distinct value converted once (pandas categoricals, dictionary pages).
            let dict = array.as_any_dictionary();
            let keys = dict.normalized_keys();
            let values = dict.values();
            let every: Vec<u32> = (0..values.len() as u32).collect();
            let mut decoded = Vec::with_capacity(values.len());
            append(values.as_ref(), &every, &mut decoded)?;
            for &r in rows {
                let r = r as usize;
                out.push(match decoded.get(keys[r]) {
                    Some(v) if !array.is_null(r) => v.clone(),
                    _ => NativeValue::Null,
                });
            }
        }
        DataType::Struct(_) | DataType::Map(..) => {
            for &r in rows {
                let r = r as usize;
                out.push(if array.is_null(r) {
                    NativeValue::Null
                } else {
                    let json = json_at(array, r)
                        .map_err(|problem| ConvertError::Value { row: r, problem })?;
                    NativeValue::String(json.to_string())
                });
            }
        }
        _ => {
            for &r in rows {
                let r = r as usize;
                let value = match scalar_at(array, r) {
                    Ok(Some(s)) => s.into(),
                    Ok(None) if array.is_null(r) => NativeValue::Null,
                    Ok(None) => list_at(array, r)
                        .map_err(|problem| ConvertError::Value { row: r, problem })?
                        .ok_or_else(|| unsupported(array))?,
                    Err(problem) => return Err(ConvertError::Value { row: r, problem }),
                };
                out.push(value);
            }
        }
    }
    Ok(())
}

/// The value at row `i` as JSON: structs and maps as objects (map keys as text), lists as
/// arrays, scalars as JSON scalars (bytes in base64, timestamps in RFC 3339).
fn json_at(array: &dyn Array, i: usize) -> Result<serde_json::Value, String> {
    use serde_json::Value as Json;
    if array.is_null(i) {
        return Ok(Json::Null);
    }
    Ok(match array.data_type() {
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut object = serde_json::Map::with_capacity(fields.len());
            for (f, field) in fields.iter().enumerate() {
                object.insert(field.name().clone(), json_at(s.column(f).as_ref(), i)?);
            }
            Json::Object(object)
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(i);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut object = serde_json::Map::with_capacity(entries.len());
            for e in 0..entries.len() {
                let key = match json_at(keys.as_ref(), e)? {
                    Json::String(k) => k,
                    other => other.to_string(),
                };
                object.insert(key, json_at(values.as_ref(), e)?);
            }
            Json::Object(object)
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            let items = match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value(i),
                DataType::LargeList(_) => array.as_list::<i64>().value(i),
                _ => array.as_fixed_size_list().value(i),
            };
            Json::Array(
                (0..items.len())
                    .map(|e| json_at(items.as_ref(), e))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => match scalar_at(array, i)? {
            None => Json::Null,
            Some(NativeScalar::Int32(v)) => v.into(),
            Some(NativeScalar::Int64(v)) => v.into(),
            Some(NativeScalar::Float32(v)) => f64::from(v).into(),
            Some(NativeScalar::Float64(v)) => v.into(),
            Some(NativeScalar::Bool(v)) => v.into(),
            Some(NativeScalar::String(v)) => v.into(),
            Some(NativeScalar::Bytes(v)) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(v).into()
            }
            Some(NativeScalar::UnixTimestamp(v)) => crate::value::format_timestamp(v).into(),
        },
    })
}

/// A list value at row `i`, or `None` when the array holds no lists.
fn list_at(array: &dyn Array, i: usize) -> Result<Option<NativeValue>, String> {
    let items = match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().value(i),
        DataType::LargeList(_) => array.as_list::<i64>().value(i),
        DataType::FixedSizeList(..) => array.as_fixed_size_list().value(i),
        _ => return Ok(None),
    };
    let mut list = Vec::with_capacity(items.len());
    for e in 0..items.len() {
        match scalar_at(items.as_ref(), e)? {
            Some(s) => list.push(s),
            None if items.is_null(e) => return Err("list elements may not be null".into()),
            None => {
                return Err(format!(
                    "list elements of type {} are not read",
                    items.data_type()
                ))
            }
        }
    }
    Ok(Some(NativeValue::List(list)))
}

/// The scalar at row `i`; `None` for a null, or when the array holds no scalars.
fn scalar_at(array: &dyn Array, i: usize) -> Result<Option<NativeScalar>, String> {
    if array.is_null(i) {
        return Ok(None);
    }
    let too_large = |v: u64| format!("{v} does not fit in int64");
    let s = match array.data_type() {
        DataType::Boolean => NativeScalar::Bool(array.as_boolean().value(i)),
        DataType::Int8 => NativeScalar::Int32(array.as_primitive::<Int8Type>().value(i).into()),
        DataType::Int16 => NativeScalar::Int32(array.as_primitive::<Int16Type>().value(i).into()),
        DataType::Int32 => NativeScalar::Int32(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => NativeScalar::Int64(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => NativeScalar::Int32(array.as_primitive::<UInt8Type>().value(i).into()),
        DataType::UInt16 => NativeScalar::Int32(array.as_primitive::<UInt16Type>().value(i).into()),
        DataType::UInt32 => NativeScalar::Int64(array.as_primitive::<UInt32Type>().value(i).into()),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(i);
            NativeScalar::Int64(i64::try_from(v).map_err(|_| too_large(v))?)
        }
        DataType::Float32 => NativeScalar::Float32(array.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => NativeScalar::Float64(array.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => NativeScalar::String(array.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => NativeScalar::String(array.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => NativeScalar::String(array.as_string_view().value(i).to_owned()),
        DataType::Binary => NativeScalar::Bytes(array.as_binary::<i32>().value(i).to_vec()),
        DataType::LargeBinary => NativeScalar::Bytes(array.as_binary::<i64>().value(i).to_vec()),
        DataType::BinaryView => NativeScalar::Bytes(array.as_binary_view().value(i).to_vec()),
        DataType::FixedSizeBinary(_) => {
            NativeScalar::Bytes(array.as_fixed_size_binary().value(i).to_vec())
        }
        DataType::Dictionary(..) => {
            let dict = array.as_any_dictionary();
            let key = dict.normalized_keys()[i];
            return scalar_at(dict.values().as_ref(), key);
        }
        ty if is_time(ty) => match timestamp_at(array, i)? {
            Some(micros) => NativeScalar::UnixTimestamp(micros),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringDictionaryBuilder};
    use arrow_array::types::Int32Type as DictKey;
    use arrow_array::{ArrayRef, Int64Array, StringArray, TimestampNanosecondArray, UInt64Array};

    use super::*;

    fn read(array: ArrayRef, rows: &[u32]) -> Result<Vec<NativeValue>, ConvertError> {
        let mut out = Vec::new();
        append(array.as_ref(), rows, &mut out)?;
        Ok(out)
    }

    #[test]
    fn selected_rows_are_read_with_nulls() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]));
        assert_eq!(
            read(a, &[2, 1]).unwrap(),
            [NativeValue::Int64(3), NativeValue::Null]
        );
        let s: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        assert_eq!(read(s, &[1]).unwrap(), [NativeValue::String("b".into())]);
    }

    #[test]
    fn nanosecond_timestamps_become_microseconds_rounding_down() {
        let a = TimestampNanosecondArray::from(vec![Some(1_500), Some(-1_500), None]);
        assert_eq!(timestamps(&a).unwrap(), [Some(1), Some(-2), None]);
        assert!(matches!(
            timestamps(&Int64Array::from(vec![1])),
            Err(ConvertError::UnsupportedType(_))
        ));
    }

    #[test]
    fn dictionaries_and_lists_are_read() {
        let mut dict = StringDictionaryBuilder::<DictKey>::new();
        dict.append_value("x");
        dict.append_null();
        dict.append_value("x");
        let a: ArrayRef = Arc::new(dict.finish());
        assert_eq!(
            read(a, &[0, 1, 2]).unwrap(),
            [
                NativeValue::String("x".into()),
                NativeValue::Null,
                NativeValue::String("x".into())
            ]
        );
        let mut list = ListBuilder::new(arrow_array::builder::Float64Builder::new());
        list.values().append_value(1.5);
        list.append(true);
        list.values().append_null();
        list.append(true);
        let a: ArrayRef = Arc::new(list.finish());
        assert_eq!(
            read(a.clone(), &[0]).unwrap(),
            [NativeValue::List(vec![NativeScalar::Float64(1.5)])]
        );
        assert!(matches!(
            read(a, &[1]),
            Err(ConvertError::Value { row: 1, .. })
        ));
    }

    #[test]
    fn structs_are_read_as_their_json_text() {
        let names: ArrayRef = Arc::new(StringArray::from(vec![Some("truck"), None]));
        let ratings: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), Some(4)]));
        let a: ArrayRef = Arc::new(arrow_array::StructArray::from(vec![
            (
                Arc::new(arrow_schema::Field::new(
                    "vehicle_type",
                    DataType::Utf8,
                    true,
                )),
                names,
            ),
            (
                Arc::new(arrow_schema::Field::new("rating", DataType::Int64, true)),
                ratings,
            ),
        ]));
        let json: Vec<serde_json::Value> = read(a, &[0, 1])
            .unwrap()
            .into_iter()
            .map(|v| match v {
                NativeValue::String(text) => serde_json::from_str(&text).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            json,
            [
                serde_json::json!({"vehicle_type": "truck", "rating": 5}),
                serde_json::json!({"vehicle_type": null, "rating": 4}),
            ]
        );
    }

    #[test]
    fn an_unsigned_value_beyond_int64_is_refused_not_wrapped() {
        let a: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
        assert!(matches!(
            read(a, &[0]),
            Err(ConvertError::Value { row: 0, .. })
        ));
    }
}
