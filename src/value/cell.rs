//! [`JsonCell`]: one JSON value of a request's columns, parsed without allocating for strings
//! that need no unescaping (timestamps, names, ids borrow straight from the request body).
//! `serde_json::Value` would allocate a `String` per string cell.
//!
//! [`Scalar`]: its lighter sibling for the usual push, whose columns hold only numbers, plain
//! strings, booleans and nulls: 24 bytes against 32, nothing to drop, parsed in about half
//! the time; it reads every value exactly as [`JsonCell`] does.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use super::json::{base64_bytes, float_text, shorten, timestamp_text, JsonNumber};
use super::{nonfinite, Cell, Micros, ValueError};

/// A JSON value from a request body. Objects are kept with their entries in order: a map,
/// struct or JSON feature stores them ([`super::tree`]).
#[derive(Debug, Clone, PartialEq)]
pub enum JsonCell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    Float(f64),
    /// Python's bare `NaN`, `Infinity` or `-Infinity`, through a marker object
    /// ([`super::nonfinite`]).
    NonFinite(f64),
    Str(Cow<'a, str>),
    List(Vec<JsonCell<'a>>),
    Object(Vec<(Cow<'a, str>, JsonCell<'a>)>),
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonCell<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CellVisitor(std::marker::PhantomData))
    }
}

struct CellVisitor<'a>(std::marker::PhantomData<&'a ()>);

/// The most cells a list is allocated for before its length is known.
const LIST_GUESS_MAX: usize = 1024;

thread_local! {
    /// The length of the last list this thread parsed.
    static LAST_LIST_LEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A list's items. JSON gives no length up front; the columns of one request usually share
/// theirs, so the last list's length is the guess (bounded): a push's columns after the first
/// are allocated once instead of grown seven times.
fn collect_list<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(seq: A) -> Result<Vec<T>, A::Error> {
    collect_list_into(seq, Vec::new())
}

/// [`collect_list`] into `items`, an empty list whose capacity is used first.
fn collect_list_into<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
    mut seq: A,
    mut items: Vec<T>,
) -> Result<Vec<T>, A::Error> {
    let guess = seq
        .size_hint()
        .unwrap_or_else(|| LAST_LIST_LEN.get().min(LIST_GUESS_MAX));
    items.reserve(guess);
    while let Some(item) = seq.next_element()? {
        items.push(item);
    }
    LAST_LIST_LEN.set(items.len());
    Ok(items)
}

impl<'de: 'a, 'a> Visitor<'de> for CellVisitor<'a> {
    type Value = JsonCell<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(JsonCell::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(JsonCell::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(JsonCell::UInt(v), JsonCell::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(JsonCell::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(JsonCell::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(JsonCell::Str(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(JsonCell::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(JsonCell::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(JsonCell::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        JsonCell::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        collect_list(seq).map(JsonCell::List)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<JsonCell<'a>>()? {
            let JsonCell::Str(key) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if entries.is_empty() && key == nonfinite::MARKER_KEY {
                let token = map.next_value::<String>()?;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                if let Some(v) = nonfinite::from_text(&token) {
                    return Ok(JsonCell::NonFinite(v));
                }
                return Ok(JsonCell::Object(Vec::new()));
            }
            entries.push((key, map.next_value::<JsonCell<'a>>()?));
        }
        Ok(JsonCell::Object(entries))
    }
}

impl JsonCell<'_> {
    fn number(&self) -> Option<JsonNumber> {
        match *self {
            JsonCell::Int(i) => Some(JsonNumber::Int(i)),
            JsonCell::UInt(u) => Some(JsonNumber::UInt(u)),
            JsonCell::Float(f) => Some(JsonNumber::Float(f)),
            _ => None,
        }
    }

    /// The same tree, owning its strings.
    pub fn into_owned(self) -> JsonCell<'static> {
        match self {
            JsonCell::Null => JsonCell::Null,
            JsonCell::Bool(b) => JsonCell::Bool(b),
            JsonCell::Int(i) => JsonCell::Int(i),
            JsonCell::UInt(u) => JsonCell::UInt(u),
            JsonCell::Float(f) => JsonCell::Float(f),
            JsonCell::NonFinite(f) => JsonCell::NonFinite(f),
            JsonCell::Str(s) => JsonCell::Str(Cow::Owned(s.into_owned())),
            JsonCell::List(items) => {
                JsonCell::List(items.into_iter().map(JsonCell::into_owned).collect())
            }
            JsonCell::Object(entries) => JsonCell::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }

    /// The same tree from a `serde_json::Value`.
    pub fn from_json(value: &Json) -> JsonCell<'static> {
        match value {
            Json::Null => JsonCell::Null,
            Json::Bool(b) => JsonCell::Bool(*b),
            Json::Number(n) => match JsonNumber::from(n) {
                JsonNumber::Int(i) => JsonCell::Int(i),
                JsonNumber::UInt(u) => JsonCell::UInt(u),
                JsonNumber::Float(f) => JsonCell::Float(f),
            },
            Json::String(s) => JsonCell::Str(Cow::Owned(s.clone())),
            Json::Array(items) => JsonCell::List(items.iter().map(JsonCell::from_json).collect()),
            Json::Object(entries) => JsonCell::Object(
                entries
                    .iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), JsonCell::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The same value as a `serde_json::Value`, for messages.
    fn to_json(&self) -> Json {
        match self {
            JsonCell::Null => Json::Null,
            JsonCell::Bool(b) => Json::Bool(*b),
            JsonCell::Int(i) => Json::from(*i),
            JsonCell::UInt(u) => Json::from(*u),
            JsonCell::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            JsonCell::NonFinite(f) => Json::String(nonfinite::text_of(*f).into()),
            JsonCell::Str(s) => Json::String(s.to_string()),
            JsonCell::List(items) => Json::Array(items.iter().map(JsonCell::to_json).collect()),
            JsonCell::Object(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl<'a> Cell for JsonCell<'a> {
    type Item = JsonCell<'a>;

    fn is_null(&self) -> bool {
        matches!(self, JsonCell::Null)
    }

    fn as_integer(&self) -> Option<i64> {
        match self {
            JsonCell::Str(s) => s.trim().parse::<i64>().ok(),
            _ => self.number()?.as_integer(),
        }
    }

    fn as_float(&self) -> Option<f64> {
        match self {
            JsonCell::Str(s) => float_text(s),
            JsonCell::NonFinite(f) => Some(*f),
            _ => Some(self.number()?.as_float()),
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            JsonCell::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn as_text(&self, key: bool) -> Option<Cow<'_, str>> {
        match self {
            JsonCell::Str(s) => Some(Cow::Borrowed(s)),
            _ if key => Some(Cow::Owned(self.number()?.to_string())),
            _ => None,
        }
    }

    fn as_bytes(&self) -> Option<Result<Cow<'_, [u8]>, ValueError>> {
        match self {
            JsonCell::Str(s) => Some(base64_bytes(s)),
            _ => None,
        }
    }

    fn as_timestamp(&self) -> Result<Micros, ValueError> {
        match self {
            JsonCell::Str(s) => timestamp_text(s, || self.describe()),
            _ => match self.number() {
                Some(n) => n.as_timestamp(),
                None => Err(ValueError::BadTimestamp {
                    got: self.describe(),
                }),
            },
        }
    }

    fn as_list(&self) -> Option<&[JsonCell<'a>]> {
        match self {
            JsonCell::List(items) => Some(items),
            _ => None,
        }
    }

    fn to_tree(&self) -> Option<JsonCell<'static>> {
        Some(self.clone().into_owned())
    }

    fn describe(&self) -> String {
        match self {
            JsonCell::NonFinite(f) => nonfinite::text_of(*f).into(),
            _ => shorten(self.to_json().to_string()),
        }
    }

    fn is_inexact_integer(&self) -> bool {
        self.number().is_some_and(JsonNumber::is_inexact_integer)
    }

    fn is_nat(&self) -> bool {
        matches!(self, JsonCell::Str(s) if s == "NaT")
    }
}

/// A JSON value that is no list, no object and no string needing unescaping: what a push's
/// columns almost always hold. Parsing one fails on anything else (a caller then parses the
/// body into [`JsonCell`]s), so a frame of them is never a lossy reading of the body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    Float(f64),
    /// A string borrowed from the body (one with escapes is refused).
    Str(&'a str),
}

impl<'a> Scalar<'a> {
    /// The same value as a [`JsonCell`] (no allocation): the [`Cell`] methods below read it
    /// through this (the commonest cases are answered directly), so both forms give the same
    /// answers and errors.
    fn json(self) -> JsonCell<'a> {
        match self {
            Scalar::Null => JsonCell::Null,
            Scalar::Bool(b) => JsonCell::Bool(b),
            Scalar::Int(i) => JsonCell::Int(i),
            Scalar::UInt(u) => JsonCell::UInt(u),
            Scalar::Float(f) => JsonCell::Float(f),
            Scalar::Str(s) => JsonCell::Str(Cow::Borrowed(s)),
        }
    }
}

/// A cell type read in lists: what a list is expected to hold, and the empty list it is read
/// into first.
pub trait ListItem: Sized {
    const EXPECTING: &'static str;

    /// An empty list to fill (with capacity when the thread has a spare one).
    fn spare_list() -> Vec<Self> {
        Vec::new()
    }
}

impl<'a> ListItem for Scalar<'a> {
    const EXPECTING: &'static str = "a list of numbers, strings, booleans and nulls";

    fn spare_list() -> Vec<Scalar<'a>> {
        // A spare list is `Scalar<'static>`s, and so a list of `Scalar<'a>`s for any 'a.
        SPARE_LISTS.with_borrow_mut(Vec::pop).unwrap_or_default()
    }
}

impl ListItem for JsonCell<'_> {
    const EXPECTING: &'static str = "a list of values";
}

/// Reads a list of cells (a [`serde::de::DeserializeSeed`], for frames of them) into one
/// allocation for the length of the last list this thread read ([`collect_list_into`]): a
/// read's entity column grown by doubling was nine reallocations past 1 KiB for 100 entities.
pub struct List<T>(std::marker::PhantomData<T>);

/// Reads a list of [`Scalar`]s, into this thread's spare lists ([`recycle_lists`]).
pub type ScalarList<'a> = List<Scalar<'a>>;
/// Reads a list of [`JsonCell`]s.
pub type JsonList<'a> = List<JsonCell<'a>>;

impl<T> Default for List<T> {
    fn default() -> Self {
        List(std::marker::PhantomData)
    }
}

impl<T> Clone for List<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for List<T> {}

impl<'de, T: Deserialize<'de> + ListItem> serde::de::DeserializeSeed<'de> for List<T> {
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de> + ListItem> Visitor<'de> for List<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        collect_list_into(seq, T::spare_list())
    }
}

/// Spare lists a thread keeps for [`ScalarList`] ([`recycle_lists`]).
const SPARE_LISTS_MAX: usize = 16;

thread_local! {
    /// Empty lists of [`Scalar`]s with their capacity, kept by the thread that parsed them: a
    /// push's columns (about 2.4 KiB each for 100 rows, past the allocator's per-thread cache)
    /// are taken from here instead of from the allocator. At most [`SPARE_LISTS_MAX`] lists
    /// of at most [`LIST_GUESS_MAX`] cells: 384 KiB a thread at worst.
    static SPARE_LISTS: std::cell::RefCell<Vec<Vec<Scalar<'static>>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Gives a parsed frame's lists to this thread's spares for the next [`ScalarList`] to fill;
/// lists past the bounds are freed.
pub fn recycle_lists<'a>(lists: impl IntoIterator<Item = Vec<Scalar<'a>>>) {
    SPARE_LISTS.with_borrow_mut(|spares| {
        for list in lists {
            if spares.len() < SPARE_LISTS_MAX && list.capacity() <= LIST_GUESS_MAX {
                spares.push(emptied(list));
            }
        }
    });
}

/// `list` emptied: an empty list borrows nothing, so it can be a list of `Scalar<'static>`s.
/// Collected in place, it keeps its allocation (std reuses a vector's buffer when the item
/// type's size and alignment do not change; a unit test checks it still does).
fn emptied(mut list: Vec<Scalar<'_>>) -> Vec<Scalar<'static>> {
    list.clear();
    // `filter_map` rather than `filter`: it changes the item type (its lifetime).
    #[allow(clippy::unnecessary_filter_map)]
    list.into_iter().filter_map(|_| None).collect()
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor<'a>(std::marker::PhantomData<&'a ()>);
        // Only these: any other form (an escaped string, a list, an object) is the visitor's
        // default, an error.
        impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
            type Value = Scalar<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a string without escapes, a boolean or null")
            }

            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }

            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }

            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Scalar::UInt(v), Scalar::Int))
            }

            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(v))
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
        }
        deserializer.deserialize_any(ScalarVisitor(std::marker::PhantomData))
    }
}

impl<'a> Cell for Scalar<'a> {
    type Item = Scalar<'a>;

    fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    // The two reads of nearly every pushed number, answered directly (the property test
    // below checks them against `JsonCell`'s too).
    fn as_integer(&self) -> Option<i64> {
        match *self {
            Scalar::Int(i) => Some(i),
            _ => self.json().as_integer(),
        }
    }

    fn as_float(&self) -> Option<f64> {
        match *self {
            Scalar::Float(f) => Some(f),
            Scalar::Int(i) => Some(i as f64),
            _ => self.json().as_float(),
        }
    }

    fn as_bool(&self) -> Option<bool> {
        self.json().as_bool()
    }

    fn as_text(&self, key: bool) -> Option<Cow<'_, str>> {
        match *self {
            Scalar::Str(s) => Some(Cow::Borrowed(s)),
            _ => Some(Cow::Owned(self.json().as_text(key)?.into_owned())),
        }
    }

    fn as_bytes(&self) -> Option<Result<Cow<'_, [u8]>, ValueError>> {
        Some(self.json().as_bytes()?.map(|b| Cow::Owned(b.into_owned())))
    }

    fn as_timestamp(&self) -> Result<Micros, ValueError> {
        self.json().as_timestamp()
    }

    fn as_list(&self) -> Option<&[Scalar<'a>]> {
        None
    }

    fn to_tree(&self) -> Option<JsonCell<'static>> {
        self.json().to_tree()
    }

    fn describe(&self) -> String {
        self.json().describe()
    }

    fn is_inexact_integer(&self) -> bool {
        self.json().is_inexact_integer()
    }

    fn is_nat(&self) -> bool {
        self.json().is_nat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cells(text: &str) -> Vec<JsonCell<'_>> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn strings_borrow_from_the_body_unless_escaped() {
        let parsed = cells(
            r#"["2026-11-25 10:00:00", "a\"b", 1, -2, 18446744073709551615, 2.5, true, null, [1], {"x": 1}]"#,
        );
        assert!(matches!(&parsed[0], JsonCell::Str(Cow::Borrowed(_))));
        assert_eq!(parsed[1], JsonCell::Str(Cow::Owned("a\"b".into())));
        assert_eq!(
            parsed[2..8],
            [
                JsonCell::Int(1),
                JsonCell::Int(-2),
                JsonCell::UInt(u64::MAX),
                JsonCell::Float(2.5),
                JsonCell::Bool(true),
                JsonCell::Null
            ]
        );
        assert_eq!(parsed[8], JsonCell::List(vec![JsonCell::Int(1)]));
        assert_eq!(
            parsed[9],
            JsonCell::Object(vec![(Cow::Borrowed("x"), JsonCell::Int(1))])
        );
        assert_eq!(parsed[9].describe(), r#"{"x":1}"#);
        assert!(parsed[9].as_integer().is_none() && parsed[9].as_text(true).is_none());
    }

    #[test]
    fn python_nan_and_infinity_are_floats_only_where_a_float_is_expected() {
        use crate::value::nonfinite::mark_non_finite;
        use crate::value::{encode_key_value, encode_value, is_missing, render_json, ValueType};
        let body = mark_non_finite(br#"[NaN, Infinity, -Infinity, [1.5, NaN], {"x": 1}]"#).unwrap();
        let parsed: Vec<JsonCell> = serde_json::from_slice(&body).unwrap();
        let ty = |t: &str| ValueType::parse(t).unwrap();
        assert!(matches!(parsed[0], JsonCell::NonFinite(f) if f.is_nan()));
        assert_eq!(
            parsed[1..3],
            [
                JsonCell::NonFinite(f64::INFINITY),
                JsonCell::NonFinite(f64::NEG_INFINITY)
            ]
        );
        assert!(matches!(parsed[4], JsonCell::Object(_)));
        // A scalar float NaN is a missing value (null); an infinity is stored as it is.
        assert!(is_missing(ty("float32"), &parsed[0]) && is_missing(ty("float64"), &parsed[0]));
        assert!(!is_missing(ty("float64"), &parsed[1]) && !is_missing(ty("int64"), &parsed[0]));
        let stored = |t: &str, cell: &JsonCell| {
            let mut bytes = Vec::new();
            encode_value(ty(t), cell, &mut bytes).map(|()| {
                let mut out = Vec::new();
                render_json(ty(t), &bytes, &mut out);
                String::from_utf8(out).unwrap()
            })
        };
        assert_eq!(stored("float32", &parsed[1]).unwrap(), r#""Infinity""#);
        assert_eq!(stored("float64", &parsed[2]).unwrap(), r#""-Infinity""#);
        assert_eq!(
            stored("list<float64>", &parsed[3]).unwrap(),
            r#"[1.5,"NaN"]"#
        );
        assert_eq!(
            stored("list<float32>", &parsed[3]).unwrap(),
            r#"[1.5,"NaN"]"#
        );
        // The strings answers carry are read back as the same floats.
        let text = JsonCell::Str(Cow::Borrowed("-Infinity"));
        assert_eq!(stored("float64", &text).unwrap(), r#""-Infinity""#);
        // Anywhere else, a wrong value like any other.
        for t in [
            "int64",
            "int32",
            "string",
            "bool",
            "bytes",
            "unix_timestamp",
            "list<int64>",
        ] {
            let e = stored(t, &parsed[0]).unwrap_err().to_string();
            assert!(
                e.contains("got NaN") || e.contains("timestamp NaN"),
                "{t}: {e}"
            );
        }
        let e = encode_key_value(ty("string"), &parsed[1], &mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), "expected string, got Infinity");
        // A finite value too large for float32 is still refused.
        assert!(stored("float32", &JsonCell::Float(1e300)).is_err());
    }

    #[test]
    fn scalar_lists_take_only_plain_values() {
        use serde::de::DeserializeSeed;
        let list = |text: &'static str| {
            ScalarList::default().deserialize(&mut serde_json::Deserializer::from_str(text))
        };
        assert_eq!(
            list(r#"["2026-11-25 10:00:00", 1, -2, 18446744073709551615, 2.5, true, null]"#)
                .unwrap(),
            [
                Scalar::Str("2026-11-25 10:00:00"),
                Scalar::Int(1),
                Scalar::Int(-2),
                Scalar::UInt(u64::MAX),
                Scalar::Float(2.5),
                Scalar::Bool(true),
                Scalar::Null
            ]
        );
        assert_eq!(list("[]").unwrap(), []);
        // Everything else is left to `JsonCell`: an escaped string, a list or object value,
        // a non-finite marker, a single value for the whole column, bad JSON.
        let marked = nonfinite::mark_non_finite(b"[1.5, NaN]").unwrap();
        let marked: &'static str = String::from_utf8(marked).unwrap().leak();
        for text in [
            r#"["a\"b"]"#,
            "[[1]]",
            r#"[{"x": 1}]"#,
            marked,
            "1",
            "\"a\"",
            "[1,",
            "null",
        ] {
            assert!(list(text).is_err(), "{text}");
        }
    }

    #[test]
    fn parsed_lists_are_recycled_with_their_allocation_and_parse_again_from_empty() {
        use serde::de::DeserializeSeed;
        let list = |text: &'static str| {
            let parsed = ScalarList::default()
                .deserialize(&mut serde_json::Deserializer::from_str(text))
                .unwrap();
            (parsed.as_ptr() as usize, parsed.capacity(), parsed)
        };
        SPARE_LISTS.with_borrow_mut(Vec::clear);
        let (at, capacity, first) = list(r#"["a", 1, 2, 3, 4, 5, 6, 7, 8]"#);
        assert!(capacity >= 9);
        // Emptied in place: the same buffer (what the spares are for).
        let empty = emptied(first);
        assert_eq!((empty.as_ptr() as usize, empty.capacity()), (at, capacity));
        recycle_lists([empty]);
        let (again, _, second) = list(r#"["b", 2.5]"#);
        assert_eq!(again, at, "the next list takes the spare");
        assert_eq!(second, [Scalar::Str("b"), Scalar::Float(2.5)]);
        // Bounded: at most SPARE_LISTS_MAX lists, none above LIST_GUESS_MAX cells.
        recycle_lists([Vec::with_capacity(LIST_GUESS_MAX + 1)]);
        recycle_lists((0..2 * SPARE_LISTS_MAX).map(|_| Vec::with_capacity(4)));
        SPARE_LISTS.with_borrow(|spares| {
            assert_eq!(spares.len(), SPARE_LISTS_MAX);
            assert!(spares
                .iter()
                .all(|l| l.is_empty() && l.capacity() <= LIST_GUESS_MAX));
        });
    }

    proptest! {
        /// A scalar reads, and is stored under every type, exactly as the same `JsonCell`.
        #[test]
        fn scalars_read_as_json_cells_do(text in prop_oneof![
            Just("12".to_string()), Just("12.0".to_string()), Just("2.7".to_string()), Just("-9223372036854775808".to_string()),
            Just("18446744073709551615".to_string()), Just("1e300".to_string()), Just("1e-300".to_string()),
            Just("12345678901234567.0".to_string()), Just("1795600800000".to_string()), Just("\"12\"".to_string()), Just("\" 3.5 \"".to_string()),
            Just("\"aGk=\"".to_string()), Just("\"NaT\"".to_string()), Just("\"NaN\"".to_string()), Just("\"2026-11-25T10:00:00Z\"".to_string()),
            Just("\"2026-11-25 10:00:00.123456\"".to_string()), Just("\"6ba7b810-9dad-11d1-80b4-00c04fd430c8\"".to_string()),
            Just("\"2026-11-25T10:00:00+02:00\"".to_string()), Just("true".to_string()), Just("false".to_string()), Just("null".to_string()),
            any::<i64>().prop_map(|i| i.to_string()), any::<u64>().prop_map(|i| i.to_string()),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
            "[a-zA-Z0-9 .:+=/-]{0,24}".prop_map(|s| format!("\"{s}\"")),
        ]) {
            use crate::value::{encode_key_value, encode_value, is_missing, ScalarType, ValueType};
            let scalar: Scalar = serde_json::from_str(&text).unwrap();
            let cell: JsonCell = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(scalar.json(), cell.clone());
            prop_assert_eq!(scalar.is_null(), cell.is_null());
            prop_assert_eq!(scalar.as_integer(), cell.as_integer());
            prop_assert_eq!(scalar.as_float().map(f64::to_bits), cell.as_float().map(f64::to_bits));
            prop_assert_eq!(scalar.as_bool(), cell.as_bool());
            prop_assert_eq!(scalar.as_text(true), cell.as_text(true));
            prop_assert_eq!(scalar.as_text(false), cell.as_text(false));
            prop_assert_eq!(scalar.as_timestamp(), cell.as_timestamp());
            prop_assert_eq!(scalar.to_tree(), cell.to_tree());
            prop_assert_eq!(scalar.describe(), cell.describe());
            prop_assert_eq!(scalar.is_inexact_integer(), cell.is_inexact_integer());
            prop_assert_eq!(scalar.is_nat(), cell.is_nat());
            prop_assert_eq!(scalar.as_bytes().map(|r| r.map(|b| b.into_owned())), cell.as_bytes().map(|r| r.map(|b| b.into_owned())));
            prop_assert!(scalar.as_list().is_none());
            for ty in ScalarType::ALL.iter().flat_map(|&t| [ValueType::scalar(t), ValueType::list_of(t)]) {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                let stored = (encode_value(ty, &scalar, &mut a), encode_value(ty, &cell, &mut b));
                prop_assert_eq!(format!("{:?}", stored.0), format!("{:?}", stored.1), "{}", ty);
                prop_assert_eq!(&a, &b, "{}", ty);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                let key = (encode_key_value(ty, &scalar, &mut a), encode_key_value(ty, &cell, &mut b));
                prop_assert_eq!(format!("{:?}", key.0), format!("{:?}", key.1), "{}", ty);
                prop_assert_eq!(&a, &b, "{}", ty);
                prop_assert_eq!(is_missing(ty, &scalar), is_missing(ty, &cell));
            }
        }

        /// Every conversion gives what the same value as a `serde_json::Value` gives.
        #[test]
        fn agrees_with_serde_json_values(text in prop_oneof![
            Just("12".to_string()), Just("12.0".to_string()), Just("2.7".to_string()), Just("-9223372036854775808".to_string()),
            Just("18446744073709551615".to_string()), Just("1e300".to_string()),
            Just("12345678901234567.0".to_string()), Just("-9223372036854775809".to_string()), Just("1795600800000".to_string()), Just("\"12\"".to_string()), Just("\"abc\"".to_string()),
            Just("\"aGk=\"".to_string()), Just("\"NaT\"".to_string()), Just("\"2026-11-25T10:00:00Z\"".to_string()), Just("true".to_string()),
            Just("null".to_string()), Just("[1, 2]".to_string()), any::<i64>().prop_map(|i| i.to_string()),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
        ]) {
            let cell: JsonCell = serde_json::from_str(&text).unwrap();
            let json: Json = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(cell.is_null(), Cell::is_null(&json));
            prop_assert_eq!(cell.as_integer(), json.as_integer());
            prop_assert_eq!(cell.as_float(), Cell::as_float(&json));
            prop_assert_eq!(cell.as_text(true), json.as_text(true));
            prop_assert_eq!(cell.as_text(false), json.as_text(false));
            prop_assert_eq!(cell.as_timestamp(), json.as_timestamp());
            prop_assert_eq!(cell.is_nat(), json.is_nat());
            prop_assert_eq!(cell.is_inexact_integer(), json.is_inexact_integer());
            prop_assert_eq!(cell.describe(), json.describe());
            prop_assert_eq!(cell.as_bytes().map(|r| r.map(|b| b.into_owned())), json.as_bytes().map(|r| r.map(|b| b.into_owned())));
        }
    }
}
