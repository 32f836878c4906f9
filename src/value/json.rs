//! JSON request values ([`Cell`] for `serde_json::Value`) and JSON rendering of stored values,
//! in Feast's conventions: float32 widened to double, bytes as base64, timestamps as RFC 3339.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::Value as Json;

use super::{
    le, parse_timestamp_text, stored_elements, write_timestamp, Cell, Micros, ScalarType,
    ValueError, ValueType,
};

impl Cell for Json {
    fn is_null(&self) -> bool {
        Json::is_null(self)
    }

    fn as_integer(&self) -> Option<i64> {
        match self {
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    return Some(i);
                }
                let f = n.as_f64()?;
                // pandas turns an int column with a null into floats (12.0): accept exact integers,
                // up to 2^53 (past it a float's text may name another integer than it holds).
                let in_range = f.abs() <= 2f64.powi(53);
                (f.fract() == 0.0 && in_range).then_some(f as i64)
            }
            Json::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
    }

    fn as_float(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
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
        let text = self.as_str()?;
        Some(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Cow::Owned)
                .map_err(|e| ValueError::BadBase64 {
                    reason: e.to_string(),
                }),
        )
    }

    /// RFC 3339 or `YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]` text, or a number of Unix seconds
    /// (fractions allowed).
    fn as_timestamp(&self) -> Result<Micros, ValueError> {
        let bad = || ValueError::BadTimestamp {
            got: self.describe(),
        };
        match self {
            Json::Number(n) => {
                if let Some(secs) = n.as_i64() {
                    secs.checked_mul(1_000_000).ok_or_else(bad)
                } else {
                    let micros = (n.as_f64().ok_or_else(bad)? * 1e6).round();
                    if micros.is_finite() && micros.abs() < 9.2e18 {
                        Ok(micros as i64)
                    } else {
                        Err(bad())
                    }
                }
            }
            Json::String(s) => parse_timestamp_text(s).ok_or_else(bad),
            _ => Err(bad()),
        }
    }

    fn as_list(&self) -> Option<&[Json]> {
        self.as_array().map(Vec::as_slice)
    }

    fn is_nat(&self) -> bool {
        self.as_str() == Some("NaT")
    }

    fn describe(&self) -> String {
        let text = self.to_string();
        if text.len() > 40 {
            format!("{}...", &text[..text.floor_char_boundary(40)])
        } else {
            text
        }
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
        ScalarType::String => render_str(&String::from_utf8_lossy(bytes), out),
        ScalarType::Bytes => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            render_str(&encoded, out);
        }
        ScalarType::UnixTimestamp => {
            out.push(b'"');
            write_timestamp(i64::from_le_bytes(le(bytes)), out);
            out.push(b'"');
        }
    }
}

fn render_f64(v: f64, out: &mut Vec<u8>) {
    if v.is_finite() {
        let mut buf = ryu::Buffer::new();
        let text = buf.format_finite(v);
        // ryu writes 12.0 as "12.0", which is valid JSON and what Python's json writes too.
        out.extend_from_slice(text.as_bytes());
    } else {
        out.extend_from_slice(b"null");
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
