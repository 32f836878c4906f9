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

mod list;
mod scalar;

pub use list::{recycle_lists, JsonList, List, ListItem, ScalarList};
pub use scalar::Scalar;

#[cfg(test)]
mod tests;
