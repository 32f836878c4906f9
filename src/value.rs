//! Typed feature values and timestamps: the one place where JSON meets featgrid's types.
//!
//! Values are never kept as `serde_json::Value` or boxed objects. A fixed-width scalar is
//! written straight into a row record as little-endian bytes; a string, bytes or list value
//! is encoded into a byte span. [`encode_json`] converts one JSON value by its declared type
//! (rejecting anything that would be a silent truncation), and [`render_json`] writes the
//! stored bytes back out as JSON in Feast's conventions.

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::Value as Json;

/// A timestamp in microseconds since the Unix epoch, UTC.
pub type Micros = i64;

/// The scalar types featgrid stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarType {
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Bytes,
    Bool,
    UnixTimestamp,
}

impl ScalarType {
    const ALL: [ScalarType; 8] = [
        ScalarType::Int32,
        ScalarType::Int64,
        ScalarType::Float32,
        ScalarType::Float64,
        ScalarType::String,
        ScalarType::Bytes,
        ScalarType::Bool,
        ScalarType::UnixTimestamp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScalarType::Int32 => "int32",
            ScalarType::Int64 => "int64",
            ScalarType::Float32 => "float32",
            ScalarType::Float64 => "float64",
            ScalarType::String => "string",
            ScalarType::Bytes => "bytes",
            ScalarType::Bool => "bool",
            ScalarType::UnixTimestamp => "unix_timestamp",
        }
    }

    /// Bytes of one element when stored fixed-width; `None` for string and bytes.
    pub fn fixed_width(self) -> Option<usize> {
        match self {
            ScalarType::Int32 | ScalarType::Float32 => Some(4),
            ScalarType::Int64 | ScalarType::Float64 | ScalarType::UnixTimestamp => Some(8),
            ScalarType::Bool => Some(1),
            ScalarType::String | ScalarType::Bytes => None,
        }
    }
}

/// A declared value type: a scalar, or a list of one scalar type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueType {
    pub scalar: ScalarType,
    pub list: bool,
}

impl ValueType {
    pub const fn scalar(scalar: ScalarType) -> Self {
        ValueType {
            scalar,
            list: false,
        }
    }

    /// Bytes in a row record when the value is fixed-width (a non-list number, bool or
    /// timestamp); `None` when it is stored as a variable-length span.
    pub fn fixed_width(self) -> Option<usize> {
        if self.list {
            None
        } else {
            self.scalar.fixed_width()
        }
    }

    /// Parses `int64`, `list<int64>`, and Feast's spellings `INT64`, `INT64_LIST`, `Array(Int64)`.
    pub fn parse(text: &str) -> Option<ValueType> {
        let lower = text.trim().to_ascii_lowercase();
        let (inner, list) = if let Some(rest) = lower.strip_prefix("list<") {
            (rest.strip_suffix('>')?, true)
        } else if let Some(rest) = lower.strip_prefix("array(") {
            (rest.strip_suffix(')')?, true)
        } else if let Some(rest) = lower.strip_suffix("_list") {
            (rest, true)
        } else {
            (lower.as_str(), false)
        };
        let scalar = match inner.trim() {
            "unixtimestamp" | "unix_timestamp" => ScalarType::UnixTimestamp,
            name => *ScalarType::ALL.iter().find(|t| t.name() == name)?,
        };
        Some(ValueType { scalar, list })
    }

    /// The spellings [`ValueType::parse`] accepts, for error messages.
    pub fn expected() -> &'static str {
        "one of int32, int64, float32, float64, string, bytes, bool, unix_timestamp, or list<T> of those"
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.list {
            write!(f, "list<{}>", self.scalar.name())
        } else {
            f.write_str(self.scalar.name())
        }
    }
}

/// Why a JSON value does not fit its declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("expected {expected}, got {got}")]
    WrongType { expected: ValueType, got: String },
    #[error("{got} does not fit in {expected} without loss")]
    OutOfRange { expected: ValueType, got: String },
    #[error("invalid base64: {reason}")]
    BadBase64 { reason: String },
    #[error("invalid timestamp {got}: expected RFC 3339, 'YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]' or Unix seconds")]
    BadTimestamp { got: String },
    #[error("list elements may not be null")]
    NullInList,
}

fn describe(value: &Json) -> String {
    let text = value.to_string();
    if text.len() > 40 {
        format!("{}...", &text[..text.floor_char_boundary(40)])
    } else {
        text
    }
}

/// Appends a fixed-width or variable-width encoding of `value` (non-null) to `out`.
///
/// Fixed-width scalars are little-endian; strings and bytes are raw; lists of fixed-width
/// scalars are their elements back to back, lists of strings or bytes are each element
/// prefixed with its length as a little-endian u32.
pub fn encode_json(ty: ValueType, value: &Json, out: &mut Vec<u8>) -> Result<(), ValueError> {
    if !ty.list {
        return encode_scalar(ty.scalar, value, out);
    }
    let items = value.as_array().ok_or_else(|| ValueError::WrongType {
        expected: ty,
        got: describe(value),
    })?;
    for item in items {
        if item.is_null() {
            return Err(ValueError::NullInList);
        }
        if ty.scalar.fixed_width().is_some() {
            encode_scalar(ty.scalar, item, out)?;
        } else {
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            encode_scalar(ty.scalar, item, out)?;
            let len =
                u32::try_from(out.len() - len_at - 4).map_err(|_| ValueError::OutOfRange {
                    expected: ty,
                    got: "an element over 4 GiB".into(),
                })?;
            out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        }
    }
    Ok(())
}

/// Appends one join-key value in its canonical key form: fixed-width scalars as in a row,
/// strings and bytes prefixed with their length (u32 LE) so that composite keys are unambiguous.
/// A number given for a string key is taken as its decimal text, as Feast coerces entity values.
/// Returns the range of `out` that holds the value itself (without the prefix).
pub fn encode_key_value(
    ty: ValueType,
    value: &Json,
    out: &mut Vec<u8>,
) -> Result<std::ops::Range<usize>, ValueError> {
    if ty.scalar.fixed_width().is_some() {
        let start = out.len();
        encode_scalar(ty.scalar, value, out)?;
        return Ok(start..out.len());
    }
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let start = out.len();
    match (ty.scalar, value) {
        (ScalarType::String, Json::Number(n)) => out.extend_from_slice(n.to_string().as_bytes()),
        _ => encode_scalar(ty.scalar, value, out)?,
    }
    let len = u32::try_from(out.len() - start).map_err(|_| ValueError::OutOfRange {
        expected: ty,
        got: "a key over 4 GiB".into(),
    })?;
    out[len_at..start].copy_from_slice(&len.to_le_bytes());
    Ok(start..out.len())
}

fn encode_scalar(scalar: ScalarType, value: &Json, out: &mut Vec<u8>) -> Result<(), ValueError> {
    let ty = ValueType::scalar(scalar);
    let wrong = || ValueError::WrongType {
        expected: ty,
        got: describe(value),
    };
    let out_of_range = || ValueError::OutOfRange {
        expected: ty,
        got: describe(value),
    };
    match scalar {
        ScalarType::Int32 => {
            let v = json_integer(value).ok_or_else(wrong)?;
            let v = i32::try_from(v).map_err(|_| out_of_range())?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        ScalarType::Int64 => {
            let v = json_integer(value).ok_or_else(wrong)?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        ScalarType::Float32 => {
            let v = json_float(value).ok_or_else(wrong)?;
            let narrowed = v as f32;
            if !narrowed.is_finite() {
                return Err(out_of_range());
            }
            out.extend_from_slice(&narrowed.to_le_bytes());
        }
        ScalarType::Float64 => {
            let v = json_float(value).ok_or_else(wrong)?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        ScalarType::Bool => {
            let v = value.as_bool().ok_or_else(wrong)?;
            out.push(u8::from(v));
        }
        ScalarType::String => {
            let v = value.as_str().ok_or_else(wrong)?;
            out.extend_from_slice(v.as_bytes());
        }
        ScalarType::Bytes => {
            let v = value.as_str().ok_or_else(wrong)?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|e| ValueError::BadBase64 {
                    reason: e.to_string(),
                })?;
            out.extend_from_slice(&decoded);
        }
        ScalarType::UnixTimestamp => {
            let v = parse_timestamp(value)?;
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(())
}

/// An integer from a JSON number or a decimal string; a float only when it has no fraction.
fn json_integer(value: &Json) -> Option<i64> {
    match value {
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Some(i);
            }
            let f = n.as_f64()?;
            // Pandas turns an int column with a null into floats (12.0): accept exact integers.
            let in_range = f >= -(2f64.powi(63)) && f < 2f64.powi(63);
            (f.fract() == 0.0 && in_range).then_some(f as i64)
        }
        Json::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

fn json_float(value: &Json) -> Option<f64> {
    match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Parses an event or created timestamp: RFC 3339, `YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]`
/// (`T` or a space between date and time; no offset means UTC), or a JSON number of Unix
/// seconds (fractions allowed).
pub fn parse_timestamp(value: &Json) -> Result<Micros, ValueError> {
    let bad = || ValueError::BadTimestamp {
        got: describe(value),
    };
    match value {
        Json::Number(n) => {
            if let Some(secs) = n.as_i64() {
                secs.checked_mul(1_000_000).ok_or_else(bad)
            } else {
                let secs = n.as_f64().ok_or_else(bad)?;
                let micros = (secs * 1e6).round();
                if micros.is_finite() && micros.abs() < 9.2e18 {
                    Ok(micros as i64)
                } else {
                    Err(bad())
                }
            }
        }
        Json::String(s) => parse_timestamp_str(s).ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn parse_timestamp_str(text: &str) -> Option<Micros> {
    let text = text.trim();
    // The fast path (speedate): RFC 3339 and ISO 8601 with `T` or a space, offset optional.
    // Only for text shaped like a date-time, so its other heuristics (bare numbers) never apply.
    if text.len() >= 19 && text.as_bytes()[4] == b'-' {
        if let Ok(t) = speedate::DateTime::parse_str(text) {
            return t
                .timestamp_tz()
                .checked_mul(1_000_000)?
                .checked_add(i64::from(t.time.microsecond));
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    const WITH_OFFSET: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
    ];
    for format in WITH_OFFSET {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.timestamp_micros());
        }
    }
    let naive = text.strip_suffix('Z').unwrap_or(text);
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(Utc.from_utc_datetime(&t).timestamp_micros());
        }
    }
    None
}

/// The zero timestamp Feast gives join keys and missing values.
pub const EPOCH_RFC3339: &str = "1970-01-01T00:00:00Z";

/// RFC 3339 in UTC with `Z`; fractional seconds only when non-zero.
pub fn format_timestamp(micros: Micros) -> String {
    let mut out = Vec::with_capacity(27);
    write_timestamp(micros, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `micros` as RFC 3339 UTC with `Z`, fractional seconds only when non-zero (3 digits
/// for whole milliseconds, else 6), the same text as chrono's `SecondsFormat::AutoSi`, without
/// allocating. Years outside 0..=9999 fall back to chrono.
pub fn write_timestamp(micros: Micros, out: &mut Vec<u8>) {
    use chrono::{Datelike, Timelike};
    let Some(t) = DateTime::<Utc>::from_timestamp_micros(micros) else {
        out.extend_from_slice(EPOCH_RFC3339.as_bytes());
        return;
    };
    if !(0..=9999).contains(&t.year()) {
        out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        return;
    }
    let digits = |out: &mut Vec<u8>, value: u32, width: u32| {
        for i in (0..width).rev() {
            out.push(b'0' + (value / 10u32.pow(i) % 10) as u8);
        }
    };
    digits(out, t.year() as u32, 4);
    out.push(b'-');
    digits(out, t.month(), 2);
    out.push(b'-');
    digits(out, t.day(), 2);
    out.push(b'T');
    digits(out, t.hour(), 2);
    out.push(b':');
    digits(out, t.minute(), 2);
    out.push(b':');
    digits(out, t.second(), 2);
    let fraction = micros.rem_euclid(1_000_000) as u32;
    if fraction != 0 {
        out.push(b'.');
        if fraction.is_multiple_of(1000) {
            digits(out, fraction / 1000, 3);
        } else {
            digits(out, fraction, 6);
        }
    }
    out.push(b'Z');
}

/// The current time in microseconds since the epoch.
pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

/// Writes one stored (non-null) value as JSON: float32 widened to double, bytes as base64,
/// timestamps as RFC 3339 strings, lists as arrays.
pub fn render_json(ty: ValueType, bytes: &[u8], out: &mut Vec<u8>) {
    if !ty.list {
        render_scalar(ty.scalar, bytes, out);
        return;
    }
    out.push(b'[');
    let mut rest = bytes;
    let mut first = true;
    while !rest.is_empty() {
        let elem_len = match ty.scalar.fixed_width() {
            Some(w) => w,
            None => {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    break;
                };
                rest = tail;
                u32::from_le_bytes(*len) as usize
            }
        };
        if elem_len > rest.len() {
            break;
        }
        let (elem, tail) = rest.split_at(elem_len);
        if !first {
            out.push(b',');
        }
        first = false;
        render_scalar(ty.scalar, elem, out);
        rest = tail;
    }
    out.push(b']');
}

fn le<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = bytes.len().min(N);
    a[..n].copy_from_slice(&bytes[..n]);
    a
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
            render_str(&format_timestamp(i64::from_le_bytes(le(bytes))), out)
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
    use proptest::prelude::*;
    use serde_json::json;

    fn round_trip(ty: &str, value: Json) -> String {
        let ty = ValueType::parse(ty).unwrap();
        let mut bytes = Vec::new();
        encode_json(ty, &value, &mut bytes).unwrap();
        let mut out = Vec::new();
        render_json(ty, &bytes, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn parses_type_spellings() {
        assert_eq!(
            ValueType::parse("int64"),
            Some(ValueType::scalar(ScalarType::Int64))
        );
        let list = ValueType {
            scalar: ScalarType::String,
            list: true,
        };
        assert_eq!(ValueType::parse("list<string>"), Some(list));
        assert_eq!(ValueType::parse("STRING_LIST"), Some(list));
        assert_eq!(ValueType::parse("Array(String)"), Some(list));
        assert_eq!(
            ValueType::parse("UnixTimestamp"),
            Some(ValueType::scalar(ScalarType::UnixTimestamp))
        );
        assert_eq!(ValueType::parse("int65"), None);
        assert_eq!(list.to_string(), "list<string>");
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
        let mut out = Vec::new();
        let int64 = ValueType::parse("int64").unwrap();
        let int32 = ValueType::parse("int32").unwrap();
        assert!(matches!(
            encode_json(int64, &json!(2.7), &mut out),
            Err(ValueError::WrongType { .. })
        ));
        assert!(encode_json(int64, &json!("abc"), &mut out).is_err());
        assert!(matches!(
            encode_json(int32, &json!(1i64 << 40), &mut out),
            Err(ValueError::OutOfRange { .. })
        ));
        let float32 = ValueType::parse("float32").unwrap();
        assert!(encode_json(float32, &json!(1e300), &mut out).is_err());
        let list = ValueType::parse("list<int64>").unwrap();
        assert_eq!(
            encode_json(list, &json!([1, null]), &mut out),
            Err(ValueError::NullInList)
        );
        let bytes = ValueType::parse("bytes").unwrap();
        assert!(encode_json(bytes, &json!("not base64!"), &mut out).is_err());
    }

    #[test]
    fn timestamps_in_every_accepted_form() {
        let expect = 1_795_600_800_000_000; // 2026-11-25T10:00:00Z
        for text in [
            "2026-11-25T10:00:00Z",
            "2026-11-25T10:00:00+00:00",
            "2026-11-25 10:00:00",
            "2026-11-25T10:00:00",
            "2026-11-25 11:00:00+01:00",
            "2026-11-25 10:00:00.000000",
            "2026-11-25 11:00:00+0100",
        ] {
            assert_eq!(parse_timestamp(&json!(text)), Ok(expect), "{text}");
        }
        assert_eq!(parse_timestamp(&json!(1_795_600_800)), Ok(expect));
        assert_eq!(parse_timestamp(&json!(1.5)), Ok(1_500_000));
        assert!(parse_timestamp(&json!("yesterday")).is_err());
        assert!(parse_timestamp(&json!(null)).is_err());
        assert_eq!(format_timestamp(expect), "2026-11-25T10:00:00Z");
        assert_eq!(
            format_timestamp(expect + 250_000),
            "2026-11-25T10:00:00.250Z"
        );
        assert_eq!(format_timestamp(0), EPOCH_RFC3339);
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

        #[test]
        fn timestamp_text_matches_chrono(t in -62_135_596_800_000_000i64..253_402_300_799_999_999) {
            let expected = DateTime::<Utc>::from_timestamp_micros(t).unwrap().to_rfc3339_opts(SecondsFormat::AutoSi, true);
            prop_assert_eq!(format_timestamp(t), expected);
        }

        #[test]
        fn timestamps_round_trip(secs in 0i64..4_000_000_000, micros in 0i64..1_000_000) {
            let t = secs * 1_000_000 + micros;
            let text = format_timestamp(t);
            prop_assert_eq!(parse_timestamp(&json!(text)), Ok(t));
        }
    }
}
