//! Typed feature values: the one place where request values meet featgrid's stored types.
//!
//! Values are never kept as `serde_json::Value` or boxed objects. A fixed-width scalar is
//! written straight into a row record as little-endian bytes; a string, bytes or list value
//! is encoded into a byte span:
//!
//! - fixed-width scalars (int32, int64, float32, float64, bool, unix_timestamp in microseconds):
//!   little-endian;
//! - strings and bytes: the raw bytes;
//! - UUIDs: 16 bytes; zoned timestamps: microseconds (i64) and the UTC offset in minutes
//!   (i16); decimals and JSON: their text ([`scalars`]);
//! - maps, structs and the elements of nested lists: a typed tree ([`tree`]);
//! - lists (and sets) of fixed-width scalars: the elements back to back; of anything else:
//!   each element prefixed with its length as a little-endian u32. A set drops repeats on
//!   write.
//!
//! A request value is a [`Cell`]: a JSON value ([`json`]) or a native typed value
//! ([`native`]). [`encode_value`] and [`encode_key_value`] convert either by the declared
//! type with the same rules, rejecting anything that would be a silent truncation.

pub mod cell;
pub mod json;
pub mod native;
pub mod nonfinite;
mod pyjson;
pub mod scalars;
mod time;
pub mod tree;
mod types;

use std::ops::Range;

pub use json::{render_json, render_str};
pub use time::{
    format_timestamp, now_micros, parse_timestamp_text, write_timestamp, EPOCH_RFC3339,
    MAX_TIMESTAMP, MIN_TIMESTAMP,
};

pub use types::{ScalarType, ValueType};

/// A timestamp in microseconds since the Unix epoch, UTC.
pub type Micros = i64;

/// Why a request value does not fit its declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("expected {expected}, got {got}")]
    WrongType { expected: ValueType, got: String },
    #[error("{got} does not fit in {expected} without loss")]
    OutOfRange { expected: ValueType, got: String },
    #[error("{got} is not an exact {expected}: a number with a fraction or exponent stands for an integer only when it is whole and within +-2^53 (9007199254740992), and an integer must fit in int64; send large integers as integer literals or strings")]
    InexactInteger { expected: ValueType, got: String },
    #[error("invalid base64: {reason}")]
    BadBase64 { reason: String },
    #[error("invalid timestamp {got}: expected RFC 3339, 'YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]' or Unix seconds")]
    BadTimestamp { got: String },
    #[error("list elements may not be null")]
    NullInList,
    /// A value of a structured or checked type (map, json, uuid, decimal ...) that is not one.
    #[error("expected {expected}: {reason}")]
    Invalid { expected: ValueType, reason: String },
    /// `hint`: for a number, what it would be in another unit.
    #[error("timestamp {got} is outside the years 1 to 9999{hint}")]
    TimestampOutOfRange { got: String, hint: String },
}

/// A value's timestamp (see [`Cell::as_timestamp`]), refused outside the years 1 to 9999:
/// every timestamp featgrid stores can be written back as RFC 3339.
pub fn timestamp_of<C: Cell>(value: &C) -> Result<Micros, ValueError> {
    let micros = value.as_timestamp()?;
    if (MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&micros) {
        Ok(micros)
    } else {
        Err(ValueError::TimestampOutOfRange {
            got: value.describe(),
            hint: String::new(),
        })
    }
}

/// A value as a request gives it. Each accessor answers `None` when the value is not of that
/// kind; the conversion rules themselves live in [`encode_value`], once for every form.
pub trait Cell {
    fn is_null(&self) -> bool;
    /// An integer, without loss (a JSON `12.0` or `"12"` is 12; `2.7` is not an integer, nor
    /// is `1.2345678901234568e16`: beyond 2^53 a float no longer stands for one integer).
    fn as_integer(&self) -> Option<i64>;
    fn as_float(&self) -> Option<f64>;
    fn as_bool(&self) -> Option<bool>;
    /// Text for a string value; `key` allows a number to stand for its decimal text, as Feast
    /// coerces entity values.
    fn as_text(&self, key: bool) -> Option<std::borrow::Cow<'_, str>>;
    fn as_bytes(&self) -> Option<Result<std::borrow::Cow<'_, [u8]>, ValueError>>;
    fn as_timestamp(&self) -> Result<Micros, ValueError>;
    /// The element type of a list: the same form, or (native) a scalar-only type.
    type Item: Cell;
    fn as_list(&self) -> Option<&[Self::Item]>;
    /// The value as a JSON tree, for the types stored with structure ([`tree`]); `None`
    /// when the form has no such value.
    fn to_tree(&self) -> Option<cell::JsonCell<'static>>;
    /// A short description for error messages.
    fn describe(&self) -> String;
    /// A whole number that is no integer without loss (a JSON float beyond 2^53, an integer
    /// beyond int64): not the same mistake as 2.7 or "abc", so it gets its own message.
    fn is_inexact_integer(&self) -> bool {
        false
    }
    /// pandas' "not a time", which the Feast SDK sends for a missing `created` value.
    fn is_nat(&self) -> bool {
        false
    }
}

/// Whether a feature value is stored as null: null itself, or NaN for a scalar float (pandas'
/// missing float; Feast stores it as null too, see [`nonfinite`]).
pub fn is_missing<C: Cell>(ty: ValueType, value: &C) -> bool {
    value.is_null()
        || (!ty.list
            && matches!(ty.scalar, ScalarType::Float32 | ScalarType::Float64)
            && value.as_float().is_some_and(f64::is_nan))
}

/// Appends the stored encoding of a `value` of type `ty` that is not [`is_missing`] to `out`.
pub fn encode_value<C: Cell>(
    ty: ValueType,
    value: &C,
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    if ty.scalar.is_tree() {
        return tree::encode(ty, value, out);
    }
    if !ty.list {
        if is_missing(ty, value) {
            // Stored as null by the caller, never as a value.
            return Err(ValueError::WrongType {
                expected: ty,
                got: value.describe(),
            });
        }
        return encode_scalar(ty.scalar, value, false, out);
    }
    let items = value.as_list().ok_or_else(|| ValueError::WrongType {
        expected: ty,
        got: value.describe(),
    })?;
    let mut seen = ty.set.then(SetElements::default);
    let first = out.len();
    for item in items {
        if item.is_null() {
            return Err(ValueError::NullInList);
        }
        let at = out.len();
        let element = if ty.scalar.fixed_width().is_some() {
            encode_scalar(ty.scalar, item, false, out)?;
            at..out.len()
        } else {
            encode_prefixed(ty, item, false, out)?
        };
        if let Some(seen) = &mut seen {
            if seen.is_repeat(&out[first..], element.start - first..element.end - first) {
                out.truncate(at);
            }
        }
    }
    Ok(())
}

/// The elements of a set so far, to drop a repeat as Feast does (`list(set(value))`; the
/// first occurrence keeps its place, where Feast's order is Python's set order).
#[derive(Default)]
struct SetElements {
    by_hash: std::collections::HashMap<u64, Vec<Range<usize>>>,
    hasher: ahash::RandomState,
}

impl SetElements {
    /// Whether `bytes[element]` equals an earlier element; if not, it is remembered.
    fn is_repeat(&mut self, bytes: &[u8], element: Range<usize>) -> bool {
        let hash = self.hasher.hash_one(&bytes[element.clone()]);
        let same = self.by_hash.entry(hash).or_default();
        if same
            .iter()
            .any(|r| bytes[r.clone()] == bytes[element.clone()])
        {
            return true;
        }
        same.push(element);
        false
    }
}

/// Appends one join-key value in its canonical key form: fixed-width scalars as in a row,
/// strings and bytes prefixed with their length (u32 LE) so that composite keys are
/// unambiguous. Returns the range of `out` that holds the value itself (without the prefix).
pub fn encode_key_value<C: Cell>(
    ty: ValueType,
    value: &C,
    out: &mut Vec<u8>,
) -> Result<Range<usize>, ValueError> {
    if ty.scalar.fixed_width().is_some() {
        let start = out.len();
        encode_scalar(ty.scalar, value, true, out)?;
        return Ok(start..out.len());
    }
    encode_prefixed(ty, value, true, out)
}

fn encode_prefixed<C: Cell>(
    ty: ValueType,
    value: &C,
    key: bool,
    out: &mut Vec<u8>,
) -> Result<Range<usize>, ValueError> {
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let start = out.len();
    encode_scalar(ty.scalar, value, key, out)?;
    let len = u32::try_from(out.len() - start).map_err(|_| ValueError::OutOfRange {
        expected: ty,
        got: "a value over 4 GiB".into(),
    })?;
    out[len_at..start].copy_from_slice(&len.to_le_bytes());
    Ok(start..out.len())
}

fn encode_scalar<C: Cell>(
    scalar: ScalarType,
    value: &C,
    key: bool,
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    let ty = ValueType::scalar(scalar);
    let wrong = || ValueError::WrongType {
        expected: ty,
        got: value.describe(),
    };
    let out_of_range = || ValueError::OutOfRange {
        expected: ty,
        got: value.describe(),
    };
    let integer = || {
        value.as_integer().ok_or_else(|| {
            if value.is_inexact_integer() {
                ValueError::InexactInteger {
                    expected: ty,
                    got: value.describe(),
                }
            } else {
                wrong()
            }
        })
    };
    match scalar {
        ScalarType::Int32 => {
            let v = i32::try_from(integer()?).map_err(|_| out_of_range())?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        ScalarType::Int64 => out.extend_from_slice(&integer()?.to_le_bytes()),
        ScalarType::Float32 => {
            let v = value.as_float().ok_or_else(wrong)?;
            let narrowed = v as f32;
            if narrowed.is_infinite() && v.is_finite() {
                return Err(out_of_range());
            }
            out.extend_from_slice(&narrowed.to_le_bytes());
        }
        ScalarType::Float64 => {
            out.extend_from_slice(&value.as_float().ok_or_else(wrong)?.to_le_bytes())
        }
        ScalarType::Bool => out.push(u8::from(value.as_bool().ok_or_else(wrong)?)),
        ScalarType::String => {
            out.extend_from_slice(value.as_text(key).ok_or_else(wrong)?.as_bytes())
        }
        ScalarType::Bytes => out.extend_from_slice(&value.as_bytes().ok_or_else(wrong)??),
        ScalarType::UnixTimestamp => out.extend_from_slice(&timestamp_of(value)?.to_le_bytes()),
        ScalarType::PdfBytes | ScalarType::ImageBytes => {
            out.extend_from_slice(&value.as_bytes().ok_or_else(wrong)??)
        }
        ScalarType::Uuid | ScalarType::TimeUuid => {
            let text = value.as_text(false).ok_or_else(wrong)?;
            let uuid = scalars::parse_uuid(&text).ok_or_else(|| ValueError::Invalid {
                expected: ty,
                reason: format!("{} is not a UUID (8-4-4-4-12 hex digits)", value.describe()),
            })?;
            if scalar == ScalarType::TimeUuid && scalars::uuid_version(&uuid) != 1 {
                return Err(ValueError::Invalid {
                    expected: ty,
                    reason: format!(
                        "{} is a version-{} UUID, not a time-based (version 1) one",
                        value.describe(),
                        scalars::uuid_version(&uuid)
                    ),
                });
            }
            out.extend_from_slice(&uuid);
        }
        ScalarType::Decimal => {
            // A number is refused rather than read through f64 (Feast refuses it too).
            let text = value.as_text(false).ok_or_else(|| ValueError::Invalid {
                expected: ty,
                reason: format!(
                    "got {}: send a decimal as a string (\"12.50\"), so no digit is lost",
                    value.describe()
                ),
            })?;
            if !scalars::is_decimal(&text) {
                return Err(ValueError::Invalid {
                    expected: ty,
                    reason: format!("{} is not a decimal number", value.describe()),
                });
            }
            out.extend_from_slice(text.as_bytes());
        }
        ScalarType::ZonedTimestamp => {
            let (micros, offset) = match value.as_text(false) {
                Some(text) => scalars::parse_zoned(&text).ok_or_else(|| ValueError::Invalid {
                    expected: ty,
                    reason: format!("{} is not a timestamp with a UTC offset (e.g. 2026-11-25T02:00:00-08:00; named zones are not read)", value.describe()),
                })?,
                None => (timestamp_of(value)?, 0),
            };
            scalars::encode_zoned(micros, offset, out);
        }
        ScalarType::Map
        | ScalarType::Json
        | ScalarType::Struct
        | ScalarType::ScalarMap
        | ScalarType::Value => return Err(wrong()),
    }
    Ok(())
}

/// The elements of a stored list value (see the module doc for the format).
pub fn stored_elements(scalar: ScalarType, bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = match scalar.fixed_width() {
            Some(w) => w,
            None => {
                let (len, tail) = rest.split_first_chunk::<4>()?;
                rest = tail;
                u32::from_le_bytes(*len) as usize
            }
        };
        if len > rest.len() {
            return None;
        }
        let (elem, tail) = rest.split_at(len);
        rest = tail;
        Some(elem)
    })
}

/// The text form of a stored (non-null) element of the text-like and structured types: a
/// UUID's canonical form, a decimal's or JSON value's text, a zoned timestamp in ISO 8601,
/// a map or nested list as JSON text. What native answers and offline files hold.
pub fn render_text(scalar: ScalarType, bytes: &[u8]) -> String {
    let mut out = Vec::new();
    match scalar {
        ScalarType::Uuid | ScalarType::TimeUuid => scalars::write_uuid(bytes, &mut out),
        ScalarType::ZonedTimestamp => scalars::write_zoned(bytes, &mut out),
        ScalarType::Map | ScalarType::Struct => tree::render_map(bytes, &mut out),
        ScalarType::Value => tree::render_value(bytes, &mut out),
        _ => out.extend_from_slice(bytes),
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A little-endian integer or float from stored bytes (short input reads as zero-padded).
pub fn le<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = bytes.len().min(N);
    a[..n].copy_from_slice(&bytes[..n]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_drop_repeats_and_new_scalars_are_checked() {
        use serde_json::json;
        let stored = |ty: &str, v: serde_json::Value| {
            let ty = ValueType::parse(ty).unwrap();
            let mut bytes = Vec::new();
            encode_value(ty, &v, &mut bytes).map(|()| {
                let mut out = Vec::new();
                render_json(ty, &bytes, &mut out);
                String::from_utf8(out).unwrap()
            })
        };
        assert_eq!(
            stored("set<string>", json!(["b", "a", "b", "a"])).unwrap(),
            r#"["b","a"]"#
        );
        assert_eq!(
            stored("set<float64>", json!([1.5, 1.5, 2])).unwrap(),
            "[1.5,2.0]"
        );
        let uuid = "a0b1c2d3-e4f5-4789-8abc-def012345678";
        assert_eq!(
            stored("set<uuid>", json!([uuid, uuid.to_uppercase()])).unwrap(),
            format!(r#"["{uuid}"]"#)
        );
        assert_eq!(stored("uuid", json!(uuid)).unwrap(), format!(r#""{uuid}""#));
        let e = stored("time_uuid", json!(uuid)).unwrap_err().to_string();
        assert!(e.contains("version-4 UUID, not a time-based"), "{e}");
        assert!(stored("uuid", json!("nope"))
            .unwrap_err()
            .to_string()
            .contains("is not a UUID"));
        assert_eq!(stored("decimal", json!("12.50")).unwrap(), r#""12.50""#);
        let e = stored("decimal", json!(12.5)).unwrap_err().to_string();
        assert!(e.contains("send a decimal as a string"), "{e}");
        assert_eq!(stored("pdf_bytes", json!("aGk=")).unwrap(), r#""aGk=""#);
        assert_eq!(
            stored("zoned_timestamp", json!("2026-11-25T02:00:00-08:00")).unwrap(),
            r#""2026-11-25T02:00:00-08:00""#
        );
        assert!(stored("set<int64>", json!([1, null])).is_err());
    }
}
