//! JSON request values ([`Cell`] for `serde_json::Value`) and JSON rendering of stored values,
//! in Feast's conventions: float32 widened to double, bytes as base64, timestamps as RFC 3339.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::Value as Json;

use super::nonfinite;
use super::time::{timestamp_from_float_seconds, timestamp_from_seconds};
use super::{
    le, parse_timestamp_text, scalars, stored_elements, tree, write_timestamp, Cell, Micros,
    ScalarType, ValueError, ValueType,
};

/// A JSON number as the parser gives it: an integer literal exactly (as i64, or u64 above
/// `i64::MAX`), anything with a fraction or exponent (or an integer beyond u64) as f64. The
/// number rules live here, once for [`serde_json::Value`] and for the borrowed
/// [`super::cell::JsonCell`]: an integer never passes through f64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JsonNumber {
    Int(i64),
    UInt(u64),
    Float(f64),
}

/// Beyond this magnitude not every integer is a float64, so a float literal no longer stands
/// for one exact integer.
const EXACT_FLOAT_INTEGERS: f64 = 9_007_199_254_740_992.0; // 2^53

impl JsonNumber {
    /// The integer, without loss: integer literals within i64, and float literals that are
    /// whole and within +-2^53 (pandas writes an int column with a null as `12.0`).
    pub fn as_integer(self) -> Option<i64> {
        match self {
            JsonNumber::Int(i) => Some(i),
            JsonNumber::UInt(_) => None,
            JsonNumber::Float(f) => {
                (f.fract() == 0.0 && f.abs() <= EXACT_FLOAT_INTEGERS).then_some(f as i64)
            }
        }
    }

    /// Whole, but not an integer without loss (see [`Cell::is_inexact_integer`]).
    pub fn is_inexact_integer(self) -> bool {
        self.as_integer().is_none() && self.as_float().fract() == 0.0
    }

    pub fn as_float(self) -> f64 {
        match self {
            JsonNumber::Int(i) => i as f64,
            JsonNumber::UInt(u) => u as f64,
            JsonNumber::Float(f) => f,
        }
    }

    /// Unix seconds (fractions allowed), within years 1 to 9999.
    pub fn as_timestamp(self) -> Result<Micros, ValueError> {
        match self {
            JsonNumber::Int(secs) => timestamp_from_seconds(secs),
            JsonNumber::UInt(_) | JsonNumber::Float(_) => {
                timestamp_from_float_seconds(self.as_float(), || self.to_string())
            }
        }
    }
}

impl From<&serde_json::Number> for JsonNumber {
    fn from(n: &serde_json::Number) -> JsonNumber {
        if let Some(i) = n.as_i64() {
            JsonNumber::Int(i)
        } else if let Some(u) = n.as_u64() {
            JsonNumber::UInt(u)
        } else {
            JsonNumber::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }
}

impl std::fmt::Display for JsonNumber {
    /// The number as JSON text (serde_json's formatting: `12.0`, `1.2345678901234568e16`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            JsonNumber::Int(i) => write!(f, "{i}"),
            JsonNumber::UInt(u) => write!(f, "{u}"),
            JsonNumber::Float(v) => match serde_json::Number::from_f64(v) {
                Some(n) => write!(f, "{n}"),
                None => write!(f, "{v}"),
            },
        }
    }
}

impl Cell for Json {
    type Item = Json;

    fn is_null(&self) -> bool {
        Json::is_null(self)
    }

    fn as_integer(&self) -> Option<i64> {
        match self {
            Json::Number(n) => JsonNumber::from(n).as_integer(),
            Json::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
    }

    fn as_float(&self) -> Option<f64> {
        match self {
            Json::Number(n) => Some(JsonNumber::from(n).as_float()),
            Json::String(s) => float_text(s),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        Json::as_bool(self)
    }

    fn as_text(&self, key: bool) -> Option<Cow<'_, str>> {
        match self {
            Json::String(s) => Some(Cow::Borrowed(s)),
            Json::Number(n) if key => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }

    fn as_bytes(&self) -> Option<Result<Cow<'_, [u8]>, ValueError>> {
        self.as_str().map(base64_bytes)
    }

    /// RFC 3339 or `YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]` text, or a number of Unix seconds
    /// (fractions allowed).
    fn as_timestamp(&self) -> Result<Micros, ValueError> {
        match self {
            Json::Number(n) => JsonNumber::from(n).as_timestamp(),
            Json::String(s) => timestamp_text(s, || self.describe()),
            _ => Err(ValueError::BadTimestamp {
                got: self.describe(),
            }),
        }
    }

    fn as_list(&self) -> Option<&[Json]> {
        self.as_array().map(Vec::as_slice)
    }

    fn to_tree(&self) -> Option<super::cell::JsonCell<'static>> {
        Some(super::cell::JsonCell::from_json(self))
    }

    fn is_inexact_integer(&self) -> bool {
        matches!(self, Json::Number(n) if JsonNumber::from(n).is_inexact_integer())
    }

    fn is_nat(&self) -> bool {
        self.as_str() == Some("NaT")
    }

    fn describe(&self) -> String {
        shorten(self.to_string())
    }
}

/// A float given as text: a decimal number, or `"NaN"`, `"Infinity"`, `"-Infinity"` as
/// answers carry them.
pub(crate) fn float_text(text: &str) -> Option<f64> {
    let text = text.trim();
    nonfinite::from_text(text).or_else(|| text.parse::<f64>().ok().filter(|f| f.is_finite()))
}

pub(crate) fn base64_bytes(text: &str) -> Result<Cow<'static, [u8]>, ValueError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(Cow::Owned)
        .map_err(|e| ValueError::BadBase64 {
            reason: e.to_string(),
        })
}

pub(crate) fn timestamp_text(
    text: &str,
    describe: impl FnOnce() -> String,
) -> Result<Micros, ValueError> {
    parse_timestamp_text(text).ok_or_else(|| ValueError::BadTimestamp { got: describe() })
}

/// At most 40 bytes of a value's JSON text, for error messages.
pub(crate) fn shorten(text: String) -> String {
    if text.len() > 40 {
        format!("{}...", &text[..text.floor_char_boundary(40)])
    } else {
        text
    }
}

/// Writes one stored (non-null) value as JSON.
pub fn render_json(ty: ValueType, bytes: &[u8], out: &mut Vec<u8>) {
    if !ty.list {
        render_scalar(ty.scalar, bytes, out);
        return;
    }
    out.push(b'[');
    for (i, elem) in stored_elements(ty.scalar, bytes).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        render_scalar(ty.scalar, elem, out);
    }
    out.push(b']');
}

fn render_scalar(scalar: ScalarType, bytes: &[u8], out: &mut Vec<u8>) {
    match scalar {
        ScalarType::Int32 => out.extend_from_slice(
            itoa::Buffer::new()
                .format(i32::from_le_bytes(le(bytes)))
                .as_bytes(),
        ),
        ScalarType::Int64 => out.extend_from_slice(
            itoa::Buffer::new()
                .format(i64::from_le_bytes(le(bytes)))
                .as_bytes(),
        ),
        ScalarType::Float32 => render_f64(f64::from(f32::from_le_bytes(le(bytes))), out),
        ScalarType::Float64 => render_f64(f64::from_le_bytes(le(bytes)), out),
        ScalarType::Bool => out.extend_from_slice(if bytes.first() == Some(&1) {
            b"true"
        } else {
            b"false"
        }),
        ScalarType::String | ScalarType::Decimal | ScalarType::Json => {
            render_str(&String::from_utf8_lossy(bytes), out)
        }
        ScalarType::Bytes | ScalarType::PdfBytes | ScalarType::ImageBytes => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            render_str(&encoded, out);
        }
        ScalarType::Uuid | ScalarType::TimeUuid => {
            out.push(b'"');
            scalars::write_uuid(bytes, out);
            out.push(b'"');
        }
        ScalarType::ZonedTimestamp => {
            out.push(b'"');
            scalars::write_zoned(bytes, out);
            out.push(b'"');
        }
        ScalarType::Map | ScalarType::Struct => tree::render_map(bytes, out),
        ScalarType::Value => tree::render_value(bytes, out),
        ScalarType::ScalarMap => out.extend_from_slice(b"null"),
        ScalarType::UnixTimestamp => {
            out.push(b'"');
            write_timestamp(i64::from_le_bytes(le(bytes)), out);
            out.push(b'"');
        }
    }
}

pub(crate) fn render_f64(v: f64, out: &mut Vec<u8>) {
    if v.is_finite() {
        let mut buf = ryu::Buffer::new();
        let text = buf.format_finite(v);
        // ryu writes 12.0 as "12.0", which is valid JSON and what Python's json writes too.
        out.extend_from_slice(text.as_bytes());
    } else {
        // Not JSON numbers: the strings of the protobuf JSON mapping, as Feast answers.
        render_str(nonfinite::text_of(v), out);
    }
}

/// Writes a JSON string literal with escaping.
pub fn render_str(s: &str, out: &mut Vec<u8>) {
    // serde_json's escaping is the reference; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::encode_value;
    use proptest::prelude::*;
    use serde_json::json;

    fn round_trip(ty: &str, value: Json) -> String {
        let ty = ValueType::parse(ty).unwrap();
        let mut bytes = Vec::new();
        encode_value(ty, &value, &mut bytes).unwrap();
        let mut out = Vec::new();
        render_json(ty, &bytes, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn encode(ty: &str, value: Json) -> Result<(), ValueError> {
        encode_value(ValueType::parse(ty).unwrap(), &value, &mut Vec::new())
    }

    #[test]
    fn float32_comes_back_widened_like_feast() {
        assert_eq!(round_trip("float32", json!(0.9)), "0.8999999761581421");
        assert_eq!(round_trip("float64", json!(0.9)), "0.9");
    }

    #[test]
    fn every_type_round_trips() {
        assert_eq!(round_trip("int32", json!(-7)), "-7");
        assert_eq!(round_trip("int64", json!("1001")), "1001");
        assert_eq!(round_trip("int64", json!(12.0)), "12");
        assert_eq!(round_trip("bool", json!(true)), "true");
        assert_eq!(round_trip("string", json!("a\"b")), "\"a\\\"b\"");
        assert_eq!(round_trip("bytes", json!("aGk=")), "\"aGk=\"");
        assert_eq!(
            round_trip("unix_timestamp", json!("2026-11-25 10:00:00")),
            "\"2026-11-25T10:00:00Z\""
        );
        assert_eq!(round_trip("list<int64>", json!([1, 2, 3])), "[1,2,3]");
        assert_eq!(
            round_trip("list<string>", json!(["a", "", "c"])),
            "[\"a\",\"\",\"c\"]"
        );
        assert_eq!(round_trip("list<float32>", json!([])), "[]");
    }

    #[test]
    fn refuses_silent_truncation() {
        assert!(matches!(
            encode("int64", json!(2.7)),
            Err(ValueError::WrongType { .. })
        ));
        assert!(encode("int64", json!("abc")).is_err());
        assert!(matches!(
            encode("int32", json!(1i64 << 40)),
            Err(ValueError::OutOfRange { .. })
        ));
        assert!(encode("float32", json!(1e300)).is_err());
        assert_eq!(
            encode("list<int64>", json!([1, null])),
            Err(ValueError::NullInList)
        );
        assert!(matches!(
            encode("bytes", json!("not base64!")),
            Err(ValueError::BadBase64 { .. })
        ));
        assert!(
            encode("string", json!(12)).is_err(),
            "a number is a string only for join keys"
        );
    }

    #[test]
    fn integers_never_pass_through_f64() {
        let parsed = |text: &str| serde_json::from_str::<Json>(text).unwrap();
        for (text, stored) in [
            ("9007199254740993", "9007199254740993"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("12.0", "12"),
            ("1e3", "1000"),
            ("-9007199254740992.0", "-9007199254740992"),
        ] {
            assert_eq!(round_trip("int64", parsed(text)), stored, "{text}");
        }
        for text in [
            "12345678901234567.0",
            "9007199254740994.0",
            "-9223372036854775809",
            "9223372036854775808",
            "18446744073709551616",
            "1e19",
        ] {
            assert!(
                matches!(
                    encode("int64", parsed(text)),
                    Err(ValueError::InexactInteger { .. })
                ),
                "{text}"
            );
        }
        assert!(matches!(
            encode("int32", parsed("4294967296.0")),
            Err(ValueError::OutOfRange { .. })
        ));
    }

    #[test]
    fn numeric_timestamps_in_another_unit_name_the_unit() {
        let message = |v: Json| v.as_timestamp().unwrap_err().to_string();
        for (v, unit) in [
            (json!(1_795_600_800_000i64), "milliseconds"),
            (json!(1_795_600_800_000.5), "milliseconds"),
            (json!(-1_795_600_800_000i64), "milliseconds"),
            (json!(1_795_600_800_000_000i64), "microseconds"),
            (json!(1_795_600_800_000_000_000i64), "nanoseconds"),
        ] {
            let m = message(v);
            assert!(
                m.contains(&format!("looks like {unit} since the epoch")),
                "{m}"
            );
        }
        let m = message(json!(1_795_600_800_000i64));
        assert!(
            m.starts_with("timestamp 1795600800000 is outside the years 1 to 9999 as Unix seconds")
                && m.contains("(2026-11-25T10:00:00Z)"),
            "{m}"
        );
        assert!(!message(json!(1e300)).contains("looks like"));
        assert_eq!(
            json!(253_402_300_799i64).as_timestamp(),
            Ok(253_402_300_799_000_000)
        );
        assert_eq!(
            json!(-62_135_596_800i64).as_timestamp(),
            Ok(-62_135_596_800_000_000)
        );
        assert!(json!(253_402_300_800i64).as_timestamp().is_err());
        // The last second of year 9999, and the first one past it, as floats.
        assert_eq!(
            json!(253_402_300_799.5).as_timestamp(),
            Ok(253_402_300_799_500_000)
        );
        assert!(json!(253_402_300_800.5).as_timestamp().is_err());
        assert!(json!(-62_135_596_801i64).as_timestamp().is_err());
        assert!(json!(u64::MAX).as_timestamp().is_err());
    }

    #[test]
    fn timestamps_as_text_or_unix_seconds() {
        assert_eq!(
            json!("2026-11-25T10:00:00Z").as_timestamp(),
            Ok(1_795_600_800_000_000)
        );
        assert_eq!(
            json!(1_795_600_800).as_timestamp(),
            Ok(1_795_600_800_000_000)
        );
        assert_eq!(json!(1.5).as_timestamp(), Ok(1_500_000));
        assert!(json!("yesterday").as_timestamp().is_err());
        assert!(json!(null).as_timestamp().is_err());
        assert!(json!(1e300).as_timestamp().is_err());
    }

    proptest! {
        #[test]
        fn int64_round_trips(v in any::<i64>()) {
            prop_assert_eq!(round_trip("int64", json!(v)), v.to_string());
        }

        #[test]
        fn float64_round_trips_exactly(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
            let text = round_trip("float64", json!(v));
            prop_assert_eq!(text.parse::<f64>().unwrap(), v);
        }

        #[test]
        fn float32_matches_widening(v in any::<f32>().prop_filter("finite", |v| v.is_finite())) {
            let text = round_trip("float32", json!(v as f64));
            prop_assert_eq!(text.parse::<f64>().unwrap(), v as f64);
        }

        #[test]
        fn string_lists_round_trip(items in proptest::collection::vec(".{0,8}", 0..6)) {
            let text = round_trip("list<string>", json!(items));
            let back: Vec<String> = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, items);
        }
    }
}
