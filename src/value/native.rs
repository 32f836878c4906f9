//! Native typed values: what the binary protocol carries instead of JSON. No base64, no
//! number parsing, no timestamp text: a value arrives in its type and is checked against the
//! declared type by the same rules as JSON ([`crate::value::encode_value`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::cell::JsonCell;
use super::{le, render_text, stored_elements, Cell, Micros, ScalarType, ValueError, ValueType};

/// One feature or entity value. A list holds scalars only ([`NativeScalar`]), so the wire type
/// cannot nest and decoding it never recurses. Types with structure (map, struct, json, nested
/// lists) and the text-like ones (uuid, decimal, zoned timestamp) travel as `String`s holding
/// the text of their JSON form, both ways, as the Feast SDK sends them.
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
    List(Vec<NativeScalar>),
}

/// One element of a [`NativeValue::List`]: the scalar variants of [`NativeValue`], no null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NativeScalar {
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Vec<u8>),
    Bool(bool),
    /// Microseconds since the Unix epoch, UTC.
    UnixTimestamp(Micros),
}

impl NativeValue {
    /// Decodes a stored (non-null) value of type `ty`.
    pub fn from_stored(ty: ValueType, bytes: &[u8]) -> NativeValue {
        if ty.list {
            NativeValue::List(
                stored_elements(ty.scalar, bytes)
                    .map(|e| NativeScalar::from_stored(ty.scalar, e))
                    .collect(),
            )
        } else {
            NativeScalar::from_stored(ty.scalar, bytes).into()
        }
    }
}

impl NativeScalar {
    fn from_stored(scalar: ScalarType, bytes: &[u8]) -> NativeScalar {
        match scalar {
            ScalarType::Int32 => NativeScalar::Int32(i32::from_le_bytes(le(bytes))),
            ScalarType::Int64 => NativeScalar::Int64(i64::from_le_bytes(le(bytes))),
            ScalarType::Float32 => NativeScalar::Float32(f32::from_le_bytes(le(bytes))),
            ScalarType::Float64 => NativeScalar::Float64(f64::from_le_bytes(le(bytes))),
            ScalarType::String => NativeScalar::String(String::from_utf8_lossy(bytes).into_owned()),
            ScalarType::Bytes | ScalarType::PdfBytes | ScalarType::ImageBytes => {
                NativeScalar::Bytes(bytes.to_vec())
            }
            ScalarType::Bool => NativeScalar::Bool(bytes.first() == Some(&1)),
            ScalarType::UnixTimestamp => NativeScalar::UnixTimestamp(i64::from_le_bytes(le(bytes))),
            // The rest travel as the text their JSON answer holds (a map as JSON text).
            other => NativeScalar::String(render_text(other, bytes)),
        }
    }

    /// The value as a JSON tree (the structured types read a native value as one).
    fn tree(&self) -> Option<JsonCell<'static>> {
        Some(match *self {
            NativeScalar::Int32(v) => JsonCell::Int(v.into()),
            NativeScalar::Int64(v) => JsonCell::Int(v),
            NativeScalar::Float32(v) => JsonCell::Float(v.into()),
            NativeScalar::Float64(v) => JsonCell::Float(v),
            NativeScalar::Bool(v) => JsonCell::Bool(v),
            NativeScalar::String(ref s) => JsonCell::Str(s.clone().into()),
            NativeScalar::Bytes(_) | NativeScalar::UnixTimestamp(_) => return None,
        })
    }
}

impl From<NativeScalar> for NativeValue {
    fn from(s: NativeScalar) -> NativeValue {
        match s {
            NativeScalar::Int32(v) => NativeValue::Int32(v),
            NativeScalar::Int64(v) => NativeValue::Int64(v),
            NativeScalar::Float32(v) => NativeValue::Float32(v),
            NativeScalar::Float64(v) => NativeValue::Float64(v),
            NativeScalar::String(v) => NativeValue::String(v),
            NativeScalar::Bytes(v) => NativeValue::Bytes(v),
            NativeScalar::Bool(v) => NativeValue::Bool(v),
            NativeScalar::UnixTimestamp(v) => NativeValue::UnixTimestamp(v),
        }
    }
}

impl TryFrom<NativeValue> for NativeScalar {
    type Error = ();

    fn try_from(v: NativeValue) -> Result<NativeScalar, ()> {
        Ok(match v {
            NativeValue::Int32(v) => NativeScalar::Int32(v),
            NativeValue::Int64(v) => NativeScalar::Int64(v),
            NativeValue::Float32(v) => NativeScalar::Float32(v),
            NativeValue::Float64(v) => NativeScalar::Float64(v),
            NativeValue::String(v) => NativeScalar::String(v),
            NativeValue::Bytes(v) => NativeScalar::Bytes(v),
            NativeValue::Bool(v) => NativeScalar::Bool(v),
            NativeValue::UnixTimestamp(v) => NativeScalar::UnixTimestamp(v),
            NativeValue::Null | NativeValue::List(_) => return Err(()),
        })
    }
}

/// The [`Cell`] accessors of a scalar, for both enums: their scalar variants have the same
/// names and meanings.
macro_rules! scalar_cell_accessors {
    ($ty:ident) => {
        fn as_integer(&self) -> Option<i64> {
            match *self {
                $ty::Int32(v) => Some(v.into()),
                $ty::Int64(v) => Some(v),
                _ => None,
            }
        }

        fn as_float(&self) -> Option<f64> {
            match *self {
                $ty::Float32(v) => Some(v.into()),
                $ty::Float64(v) => Some(v),
                $ty::Int32(v) => Some(v.into()),
                $ty::Int64(v) => Some(v as f64),
                _ => None,
            }
        }

        fn as_bool(&self) -> Option<bool> {
            match *self {
                $ty::Bool(v) => Some(v),
                _ => None,
            }
        }

        fn as_text(&self, key: bool) -> Option<Cow<'_, str>> {
            match self {
                $ty::String(s) => Some(Cow::Borrowed(s)),
                $ty::Int32(v) if key => Some(Cow::Owned(v.to_string())),
                $ty::Int64(v) if key => Some(Cow::Owned(v.to_string())),
                _ => None,
            }
        }

        fn as_bytes(&self) -> Option<Result<Cow<'_, [u8]>, ValueError>> {
            match self {
                $ty::Bytes(b) => Some(Ok(Cow::Borrowed(b))),
                _ => None,
            }
        }

        /// A `UnixTimestamp` in microseconds, or an integer of Unix seconds (as in JSON).
        fn as_timestamp(&self) -> Result<Micros, ValueError> {
            match *self {
                $ty::UnixTimestamp(micros) => Ok(micros),
                $ty::Int64(secs) => {
                    secs.checked_mul(1_000_000)
                        .ok_or_else(|| ValueError::BadTimestamp {
                            got: self.describe(),
                        })
                }
                $ty::Int32(secs) => Ok(i64::from(secs) * 1_000_000),
                _ => Err(ValueError::BadTimestamp {
                    got: self.describe(),
                }),
            }
        }

        fn describe(&self) -> String {
            describe(self)
        }
    };
}

fn describe(value: &dyn std::fmt::Debug) -> String {
    let text = format!("{value:?}");
    if text.len() > 40 {
        format!("{}...", &text[..text.floor_char_boundary(40)])
    } else {
        text
    }
}

impl Cell for NativeValue {
    type Item = NativeScalar;

    fn is_null(&self) -> bool {
        matches!(self, NativeValue::Null)
    }

    fn to_tree(&self) -> Option<JsonCell<'static>> {
        match self {
            NativeValue::Null => Some(JsonCell::Null),
            NativeValue::List(items) => items
                .iter()
                .map(NativeScalar::tree)
                .collect::<Option<Vec<_>>>()
                .map(JsonCell::List),
            other => NativeScalar::try_from(other.clone()).ok()?.tree(),
        }
    }

    fn as_list(&self) -> Option<&[NativeScalar]> {
        match self {
            NativeValue::List(items) => Some(items),
            _ => None,
        }
    }

    scalar_cell_accessors!(NativeValue);
}

impl Cell for NativeScalar {
    type Item = NativeScalar;

    fn is_null(&self) -> bool {
        false
    }

    fn to_tree(&self) -> Option<JsonCell<'static>> {
        self.tree()
    }

    fn as_list(&self) -> Option<&[NativeScalar]> {
        None
    }

    scalar_cell_accessors!(NativeScalar);
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
        let places = List(vec![
            NativeScalar::String("home".into()),
            NativeScalar::String("".into()),
        ]);
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
        assert!(matches!(
            round_trip("list<int64>", List(vec![NativeScalar::Bool(true)])),
            Err(ValueError::WrongType { .. })
        ));
    }

    /// Structured and text-like types travel as the text of their JSON answer, both ways.
    #[test]
    fn structured_values_travel_as_text() {
        use NativeValue::*;
        let text = |s: &str| String(s.to_string());
        assert_eq!(
            round_trip("map", text(r#"{"a": 1, "b": [1.5]}"#)),
            Ok(text(r#"{"a":1,"b":[1.5]}"#))
        );
        assert_eq!(
            round_trip("json", text(r#"{"a": 1}"#)),
            Ok(text(r#"{"a": 1}"#))
        );
        assert_eq!(
            round_trip("uuid", text("A0B1C2D3-E4F5-4789-8ABC-DEF012345678")),
            Ok(text("a0b1c2d3-e4f5-4789-8abc-def012345678"))
        );
        assert_eq!(round_trip("decimal", text("1.50")), Ok(text("1.50")));
        assert_eq!(
            round_trip(
                "set<int64>",
                List(vec![NativeScalar::Int64(2), NativeScalar::Int64(2)])
            ),
            Ok(List(vec![NativeScalar::Int64(2)]))
        );
        assert_eq!(
            round_trip(
                "list<map>",
                List(vec![NativeScalar::String(r#"{"a": 1}"#.into())])
            ),
            Ok(List(vec![NativeScalar::String(r#"{"a":1}"#.into())]))
        );
        let texts = |items: &[&str]| {
            List(
                items
                    .iter()
                    .map(|t| NativeScalar::String(t.to_string()))
                    .collect(),
            )
        };
        assert_eq!(
            round_trip("value_list", texts(&["[1, 2]", "[]", "null"])),
            Ok(texts(&["[1,2]", "null", "null"]))
        );
        assert!(round_trip("value_list", texts(&["\"x\""])).is_err());
        assert!(round_trip("map", Int64(1)).is_err());
    }

    proptest! {
        #[test]
        fn int_lists_round_trip(items in proptest::collection::vec(any::<i64>(), 0..16)) {
            let list = NativeValue::List(items.into_iter().map(NativeScalar::Int64).collect());
            prop_assert_eq!(round_trip("list<int64>", list.clone()), Ok(list));
        }
    }
}
