//! Native typed values: what the binary protocol carries instead of JSON. No base64, no
//! number parsing, no timestamp text: a value arrives in its type and is checked against the
//! declared type by the same rules as JSON ([`crate::value::encode_value`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{le, stored_elements, Cell, Micros, ScalarType, ValueError, ValueType};

/// One feature or entity value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NativeValue {
    Null,
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Vec<u8>),
    Bool(bool),
    /// Microseconds since the Unix epoch, UTC.
    UnixTimestamp(Micros),
    List(Vec<NativeValue>),
}

impl NativeValue {
    /// Decodes a stored (non-null) value of type `ty`.
    pub fn from_stored(ty: ValueType, bytes: &[u8]) -> NativeValue {
        if ty.list {
            NativeValue::List(
                stored_elements(ty.scalar, bytes)
                    .map(|e| scalar_from_stored(ty.scalar, e))
                    .collect(),
            )
        } else {
            scalar_from_stored(ty.scalar, bytes)
        }
    }
}

fn scalar_from_stored(scalar: ScalarType, bytes: &[u8]) -> NativeValue {
    match scalar {
        ScalarType::Int32 => NativeValue::Int32(i32::from_le_bytes(le(bytes))),
        ScalarType::Int64 => NativeValue::Int64(i64::from_le_bytes(le(bytes))),
        ScalarType::Float32 => NativeValue::Float32(f32::from_le_bytes(le(bytes))),
        ScalarType::Float64 => NativeValue::Float64(f64::from_le_bytes(le(bytes))),
        ScalarType::String => NativeValue::String(String::from_utf8_lossy(bytes).into_owned()),
        ScalarType::Bytes => NativeValue::Bytes(bytes.to_vec()),
        ScalarType::Bool => NativeValue::Bool(bytes.first() == Some(&1)),
        ScalarType::UnixTimestamp => NativeValue::UnixTimestamp(i64::from_le_bytes(le(bytes))),
    }
}

impl Cell for NativeValue {
    fn is_null(&self) -> bool {
        matches!(self, NativeValue::Null)
    }

    fn as_integer(&self) -> Option<i64> {
        match *self {
            NativeValue::Int32(v) => Some(v.into()),
            NativeValue::Int64(v) => Some(v),
            _ => None,
        }
    }

    fn as_float(&self) -> Option<f64> {
        match *self {
            NativeValue::Float32(v) => Some(v.into()),
            NativeValue::Float64(v) => Some(v),
            NativeValue::Int32(v) => Some(v.into()),
            NativeValue::Int64(v) => Some(v as f64),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match *self {
            NativeValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    fn as_text(&self, key: bool) -> Option<Cow<'_, str>> {
        match self {
            NativeValue::String(s) => Some(Cow::Borrowed(s)),
            NativeValue::Int32(v) if key => Some(Cow::Owned(v.to_string())),
            NativeValue::Int64(v) if key => Some(Cow::Owned(v.to_string())),
            _ => None,
        }
    }

    fn as_bytes(&self) -> Option<Result<Cow<'_, [u8]>, ValueError>> {
        match self {
            NativeValue::Bytes(b) => Some(Ok(Cow::Borrowed(b))),
            _ => None,
        }
    }

    /// A `UnixTimestamp` in microseconds, or an integer of Unix seconds (as in JSON).
    fn as_timestamp(&self) -> Result<Micros, ValueError> {
        match *self {
            NativeValue::UnixTimestamp(micros) => Ok(micros),
            NativeValue::Int64(secs) => {
                secs.checked_mul(1_000_000)
                    .ok_or_else(|| ValueError::BadTimestamp {
                        got: self.describe(),
                    })
            }
            NativeValue::Int32(secs) => Ok(i64::from(secs) * 1_000_000),
            _ => Err(ValueError::BadTimestamp {
                got: self.describe(),
            }),
        }
    }

    fn as_list(&self) -> Option<&[NativeValue]> {
        match self {
            NativeValue::List(items) => Some(items),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        let text = format!("{self:?}");
        if text.len() > 40 {
            format!("{}...", &text[..text.floor_char_boundary(40)])
        } else {
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::encode_value;
    use proptest::prelude::*;

    fn round_trip(ty: &str, value: NativeValue) -> Result<NativeValue, ValueError> {
        let ty = ValueType::parse(ty).unwrap();
        let mut bytes = Vec::new();
        encode_value(ty, &value, &mut bytes)?;
        Ok(NativeValue::from_stored(ty, &bytes))
    }

    #[test]
    fn typed_values_round_trip() {
        use NativeValue::*;
        assert_eq!(round_trip("int64", Int32(7)), Ok(Int64(7)));
        assert_eq!(round_trip("float32", Float32(0.9)), Ok(Float32(0.9)));
        assert_eq!(round_trip("float64", Int64(3)), Ok(Float64(3.0)));
        assert_eq!(
            round_trip("bytes", Bytes(vec![0, 255])),
            Ok(Bytes(vec![0, 255]))
        );
        assert_eq!(
            round_trip("unix_timestamp", UnixTimestamp(-5)),
            Ok(UnixTimestamp(-5))
        );
        let places = List(vec![String("home".into()), String("".into())]);
        assert_eq!(round_trip("list<string>", places.clone()), Ok(places));
        assert_eq!(round_trip("list<bool>", List(vec![])), Ok(List(vec![])));
    }

    #[test]
    fn wrong_types_are_refused() {
        use NativeValue::*;
        assert!(matches!(
            round_trip("int32", Int64(1 << 40)),
            Err(ValueError::OutOfRange { .. })
        ));
        assert!(matches!(
            round_trip("int64", Float64(1.0)),
            Err(ValueError::WrongType { .. })
        ));
        assert!(round_trip("string", Int64(1)).is_err());
        assert!(round_trip("float64", Float64(f64::NAN)).is_err());
        assert_eq!(
            round_trip("list<int64>", List(vec![Null])),
            Err(ValueError::NullInList)
        );
    }

    proptest! {
        #[test]
        fn int_lists_round_trip(items in proptest::collection::vec(any::<i64>(), 0..16)) {
            let list = NativeValue::List(items.into_iter().map(NativeValue::Int64).collect());
            prop_assert_eq!(round_trip("list<int64>", list.clone()), Ok(list));
        }
    }
}
