//! Typed feature values: the one place where request values meet featgrid's stored types.
//!
//! Values are never kept as `serde_json::Value` or boxed objects. A fixed-width scalar is
//! written straight into a row record as little-endian bytes; a string, bytes or list value
//! is encoded into a byte span:
//!
//! - fixed-width scalars (int32, int64, float32, float64, bool, unix_timestamp in microseconds):
//!   little-endian;
//! - strings and bytes: the raw bytes;
//! - lists of fixed-width scalars: the elements back to back; lists of strings or bytes: each
//!   element prefixed with its length as a little-endian u32.
//!
//! A request value is a [`Cell`]: a JSON value ([`json`]) or a native typed value
//! ([`native`]). [`encode_value`] and [`encode_key_value`] convert either by the declared
//! type with the same rules, rejecting anything that would be a silent truncation.

pub mod cell;
pub mod json;
pub mod native;
mod time;

use std::fmt;
use std::ops::Range;

pub use json::{render_json, render_str};
pub use time::{
    format_timestamp, in_feast_range, now_micros, parse_timestamp_text, write_timestamp,
    EPOCH_RFC3339,
};

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

/// Why a request value does not fit its declared type.
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
    #[error("timestamp {got} is outside 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z, the range Feast can store")]
    TimestampOutOfRange { got: String },
}

/// A value as a request gives it. Each accessor answers `None` when the value is not of that
/// kind; the conversion rules themselves live in [`encode_value`], once for every form.
pub trait Cell {
    fn is_null(&self) -> bool;
    /// An integer, without loss (a JSON `12.0` or `"12"` is 12; `2.7` is not an integer).
    fn as_integer(&self) -> Option<i64>;
    fn as_float(&self) -> Option<f64>;
    fn as_bool(&self) -> Option<bool>;
    /// Text for a string value; `key` allows a number to stand for its decimal text, as Feast
    /// coerces entity values.
    fn as_text(&self, key: bool) -> Option<std::borrow::Cow<'_, str>>;
    fn as_bytes(&self) -> Option<Result<std::borrow::Cow<'_, [u8]>, ValueError>>;
    fn as_timestamp(&self) -> Result<Micros, ValueError>;
    fn as_list(&self) -> Option<&[Self]>
    where
        Self: Sized;
    /// A short description for error messages.
    fn describe(&self) -> String;
    /// pandas' "not a time", which the Feast SDK sends for a missing `created` value.
    fn is_nat(&self) -> bool {
        false
    }
}

/// Appends the stored encoding of a non-null `value` of type `ty` to `out`.
pub fn encode_value<C: Cell>(
    ty: ValueType,
    value: &C,
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    if !ty.list {
        return encode_scalar(ty.scalar, value, false, out);
    }
    let items = value.as_list().ok_or_else(|| ValueError::WrongType {
        expected: ty,
        got: value.describe(),
    })?;
    for item in items {
        if item.is_null() {
            return Err(ValueError::NullInList);
        }
        if ty.scalar.fixed_width().is_some() {
            encode_scalar(ty.scalar, item, false, out)?;
        } else {
            encode_prefixed(ty, item, false, out)?;
        }
    }
    Ok(())
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
    match scalar {
        ScalarType::Int32 => {
            let v = value.as_integer().ok_or_else(wrong)?;
            let v = i32::try_from(v).map_err(|_| out_of_range())?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        ScalarType::Int64 => {
            let v = value.as_integer().ok_or_else(wrong)?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        ScalarType::Float32 => {
            let narrowed = value.as_float().ok_or_else(wrong)? as f32;
            if !narrowed.is_finite() {
                return Err(out_of_range());
            }
            out.extend_from_slice(&narrowed.to_le_bytes());
        }
        ScalarType::Float64 => {
            let v = value
                .as_float()
                .filter(|v| v.is_finite())
                .ok_or_else(wrong)?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        ScalarType::Bool => out.push(u8::from(value.as_bool().ok_or_else(wrong)?)),
        ScalarType::String => {
            out.extend_from_slice(value.as_text(key).ok_or_else(wrong)?.as_bytes())
        }
        ScalarType::Bytes => out.extend_from_slice(&value.as_bytes().ok_or_else(wrong)??),
        ScalarType::UnixTimestamp => {
            let micros = time::in_feast_range(value.as_timestamp()?)?;
            out.extend_from_slice(&micros.to_le_bytes())
        }
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
}
