//! Values with structure: `Map`, `Struct`, `Json`, their lists, and nested lists
//! (`Array(Array(T))`, `Set(Array(T))`). Feast's rules (feast/type_map.py), which featgrid
//! follows so that its answers are Feast's:
//!
//! - A map (or struct) value is a JSON object, or a string holding one (the SDK's remote
//!   store sends them as strings). Each entry is typed from its value as Feast infers it:
//!   integer -> int64, other number -> double, string, bool, null, object -> nested map,
//!   list of objects -> list of maps, other list -> a list of one scalar type (an empty
//!   list, a null inside a list, mixed types or a list of lists are refused, as Feast
//!   refuses them). A struct is stored as a map of the values given, whatever its declared
//!   fields (Feast does the same); a struct that is no object is refused (Feast would wrap it
//!   as `{"_value": "..."}`).
//! - A `Json` value given as a string must be JSON and is kept as that text; any other value
//!   is stored as `json.dumps(value)` ([`super::pyjson`]). It is answered as that string.
//! - An element of a nested list is a list typed from its values as above, or null; an empty
//!   inner list is stored as null (Feast answers it as null).
//!
//! Stored form: a map is its entry count then per entry `key length, key, typed value`; a
//! typed value is a tag byte and its payload (numbers little-endian, strings a length and
//! their bytes, lists a count and their elements). Counts and lengths are LEB128 varints (one
//! byte below 128), so a small map takes fewer bytes than its JSON text. Nothing is re-parsed
//! from JSON text at read.

use std::borrow::Cow;

use super::cell::JsonCell;
use super::json::render_f64;
use super::{nonfinite, pyjson, render_str, Cell, ScalarType, ValueError, ValueType};

const NULL: u8 = 0;
const INT64: u8 = 1;
const DOUBLE: u8 = 2;
const STRING: u8 = 3;
const BOOL: u8 = 4;
/// A list of a scalar is its scalar's tag plus 4: 6 double list, 7 string list, 8 bool list.
const INT64_LIST: u8 = 5;
const BOOL_LIST: u8 = 8;
const MAP: u8 = 9;
const MAP_LIST: u8 = 10;
const VALUE_LIST: u8 = 11;

/// Appends the stored form of a non-null `value` of a tree type (see the module doc).
pub fn encode<C: Cell>(ty: ValueType, value: &C, out: &mut Vec<u8>) -> Result<(), ValueError> {
    let invalid = |reason: String| ValueError::Invalid {
        expected: ty,
        reason,
    };
    match (ty.scalar, ty.list) {
        (ScalarType::ScalarMap, _) => Err(invalid(
            "JSON object keys are strings, so a ScalarMap (non-string keys) cannot be sent over JSON; Feast's feature server neither takes nor answers one (it answers null). Send null, or declare the field as map".into(),
        )),
        (ScalarType::Json, false) => json_text(value.as_text(false).as_deref(), || tree_of(ty, value), out)
            .map_err(invalid),
        (ScalarType::Json, true) => {
            let list = tree_of(ty, value)?;
            let JsonCell::List(items) = &list else {
                return Err(wrong(ty, value));
            };
            for_each_prefixed(items, out, |item, out| {
                let text = match item {
                    JsonCell::Str(s) => Some(s.as_ref()),
                    _ => None,
                };
                json_text(text, || Ok(item.clone()), out).map_err(invalid)
            })
        }
        (ScalarType::Map | ScalarType::Struct, false) => {
            let tree = tree_of(ty, value)?;
            let JsonCell::Object(entries) = &tree else {
                return Err(invalid(format!("got {}: a JSON object (or a string holding one) is expected", value.describe())));
            };
            encode_map(entries, out).map_err(invalid)
        }
        (ScalarType::Map | ScalarType::Struct, true) => {
            let tree = tree_of(ty, value)?;
            let JsonCell::List(items) = &tree else {
                return Err(wrong(ty, value));
            };
            for_each_prefixed(items, out, |item, out| {
                let parsed;
                let item = match item {
                    JsonCell::Str(s) => {
                        parsed = parse_text(s).map_err(invalid)?;
                        &parsed
                    }
                    other => other,
                };
                match item {
                    JsonCell::Object(entries) => encode_map(entries, out).map_err(invalid),
                    other => Err(invalid(format!(
                        "a list element is {}: each element must be a JSON object (or a string holding one)",
                        other.describe()
                    ))),
                }
            })
        }
        (ScalarType::Value, _) => {
            let tree = tree_of(ty, value)?;
            let JsonCell::List(items) = &tree else {
                return Err(wrong(ty, value));
            };
            for_each_prefixed(items, out, |item, out| {
                encode_nested_element(item, out).map_err(invalid)
            })
        }
        _ => Err(wrong(ty, value)),
    }
}

fn wrong<C: Cell>(ty: ValueType, value: &C) -> ValueError {
    ValueError::WrongType {
        expected: ty,
        got: value.describe(),
    }
}

/// The value as a tree: a string is JSON text (Feast `json.loads` a string for these types).
fn tree_of<C: Cell>(ty: ValueType, value: &C) -> Result<JsonCell<'static>, ValueError> {
    if let Some(text) = value.as_text(false) {
        return parse_text(&text).map_err(|reason| ValueError::Invalid {
            expected: ty,
            reason,
        });
    }
    value.to_tree().ok_or_else(|| wrong(ty, value))
}

/// JSON text as Python's `json.loads` reads it (bare `NaN` and `Infinity` included).
fn parse_text(text: &str) -> Result<JsonCell<'static>, String> {
    let marked = nonfinite::mark_non_finite(text.as_bytes());
    let bytes = marked.as_deref().unwrap_or(text.as_bytes());
    serde_json::from_slice::<JsonCell>(bytes)
        .map(JsonCell::into_owned)
        .map_err(|e| format!("a string that is not JSON ({e})"))
}

/// A `Json` value: `text` (a string given) kept as it is once checked, else `json.dumps`.
fn json_text(
    text: Option<&str>,
    tree: impl FnOnce() -> Result<JsonCell<'static>, ValueError>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match text {
        Some(text) => {
            parse_text(text)?;
            out.extend_from_slice(text.as_bytes());
        }
        None => {
            let tree = tree().map_err(|e| e.to_string())?;
            let mut dumped = String::new();
            pyjson::dumps(&tree, &mut dumped);
            out.extend_from_slice(dumped.as_bytes());
        }
    }
    Ok(())
}

/// Each item's encoding prefixed with its length (u32 LE), as list elements are stored.
fn for_each_prefixed<T>(
    items: &[T],
    out: &mut Vec<u8>,
    mut encode_one: impl FnMut(&T, &mut Vec<u8>) -> Result<(), ValueError>,
) -> Result<(), ValueError> {
    for item in items {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        encode_one(item, out)?;
        let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    Ok(())
}

/// A count or length as a LEB128 varint.
fn put_len(len: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let mut n = len as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return Ok(());
        }
        out.push(byte | 0x80);
    }
}

fn put_str(s: &str, out: &mut Vec<u8>) -> Result<(), String> {
    put_len(s.len(), out)?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn encode_map(entries: &[(Cow<'_, str>, JsonCell<'_>)], out: &mut Vec<u8>) -> Result<(), String> {
    put_len(entries.len(), out)?;
    for (key, value) in entries {
        put_str(key, out)?;
        encode_inferred(value, out).map_err(|e| format!("key '{key}': {e}"))?;
    }
    Ok(())
}

/// A map entry's value, typed as Feast infers it (see the module doc).
fn encode_inferred(value: &JsonCell<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        JsonCell::Null => out.push(NULL),
        JsonCell::Object(entries) => {
            out.push(MAP);
            encode_map(entries, out)?;
        }
        JsonCell::List(items) => encode_inferred_list(items, out)?,
        scalar => {
            let tag = scalar_tag(scalar)?;
            out.push(tag);
            encode_scalar_payload(tag, scalar, out)?;
        }
    }
    Ok(())
}

fn scalar_tag(value: &JsonCell<'_>) -> Result<u8, String> {
    Ok(match value {
        JsonCell::Int(_) => INT64,
        JsonCell::UInt(u) => return Err(format!("{u} is out of the int64 range")),
        JsonCell::Float(_) | JsonCell::NonFinite(_) => DOUBLE,
        JsonCell::Str(_) => STRING,
        JsonCell::Bool(_) => BOOL,
        JsonCell::Null => return Err("a list may not hold null".into()),
        JsonCell::List(_) => return Err(
            "a list of lists has no type Feast can infer here; declare the field as list<list<T>>"
                .into(),
        ),
        JsonCell::Object(_) => return Err("a list mixes objects and other values".into()),
    })
}

fn encode_scalar_payload(tag: u8, value: &JsonCell<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    match (tag, value) {
        (INT64, JsonCell::Int(i)) => out.extend_from_slice(&i.to_le_bytes()),
        (DOUBLE, JsonCell::Float(f) | JsonCell::NonFinite(f)) => {
            out.extend_from_slice(&f.to_le_bytes())
        }
        (STRING, JsonCell::Str(s)) => put_str(s, out)?,
        (BOOL, JsonCell::Bool(b)) => out.push(u8::from(*b)),
        _ => return Err("internal: tag and value disagree".into()),
    }
    Ok(())
}

/// A list inside a map, or an inner list of a nested list: of maps, or of one scalar type.
fn encode_inferred_list(items: &[JsonCell<'_>], out: &mut Vec<u8>) -> Result<(), String> {
    let Some(first) = items.first() else {
        return Err("an empty list has no type Feast can infer: leave it out, or send null".into());
    };
    if matches!(first, JsonCell::Object(_)) {
        out.push(MAP_LIST);
        put_len(items.len(), out)?;
        for item in items {
            let JsonCell::Object(entries) = item else {
                return Err(format!(
                    "a list of maps holds {}: only objects",
                    item.describe()
                ));
            };
            encode_map(entries, out)?;
        }
        return Ok(());
    }
    let tag = scalar_tag(first)?;
    out.push(tag + (INT64_LIST - INT64));
    put_len(items.len(), out)?;
    for item in items {
        let item_tag = scalar_tag(item)?;
        if item_tag != tag {
            return Err(format!(
                "a list mixes {} and {}: Feast needs one type per list",
                tag_name(tag),
                tag_name(item_tag)
            ));
        }
        encode_scalar_payload(tag, item, out)?;
    }
    Ok(())
}

fn tag_name(tag: u8) -> &'static str {
    match tag {
        INT64 => "int64",
        DOUBLE => "double",
        STRING => "string",
        _ => "bool",
    }
}

/// One element of a nested list: null, an empty list (stored as null, as Feast does), a
/// list of lists (nested deeper) or a typed list.
fn encode_nested_element(item: &JsonCell<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    match item {
        JsonCell::Null => out.push(NULL),
        JsonCell::List(items) if items.is_empty() => out.push(NULL),
        JsonCell::List(items) if items.iter().any(|i| matches!(i, JsonCell::List(_))) => {
            out.push(VALUE_LIST);
            put_len(items.len(), out)?;
            for inner in items {
                encode_nested_element(inner, out)?;
            }
        }
        JsonCell::List(items) => encode_inferred_list(items, out)?,
        // The native path (and the SDK's transport) sends an element as its JSON text.
        JsonCell::Str(text) => match parse_text(text)? {
            JsonCell::Str(_) => {
                return Err(format!(
                    "an element is {}: each element of a nested list is a list or null",
                    item.describe()
                ))
            }
            parsed => encode_nested_element(&parsed, out)?,
        },
        other => {
            return Err(format!(
                "an element is {}: each element of a nested list is a list or null",
                other.describe()
            ))
        }
    }
    Ok(())
}

/// Reads stored bytes front to back; a short read ends the value (stored bytes are
/// featgrid's own, so that only happens on a bug, and then answers stay valid JSON).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }

    fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(NULL)
    }

    /// A LEB128 varint ([`put_len`]).
    fn len(&mut self) -> usize {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.take(1).first() else {
                break;
            };
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    fn str(&mut self) -> std::borrow::Cow<'a, str> {
        let len = self.len();
        String::from_utf8_lossy(self.take(len))
    }
}

/// Writes a stored map (or struct) as a JSON object.
pub fn render_map(bytes: &[u8], out: &mut Vec<u8>) {
    render_map_from(&mut Reader(bytes), out);
}

/// Writes a stored nested-list element (a typed value with its tag) as JSON.
pub fn render_value(bytes: &[u8], out: &mut Vec<u8>) {
    render_tagged(&mut Reader(bytes), out);
}

fn render_map_from(r: &mut Reader<'_>, out: &mut Vec<u8>) {
    render_items(r, out, (b'{', b'}'), |r, out| {
        render_str(&r.str(), out);
        out.push(b':');
        render_tagged(r, out);
    });
}

fn render_tagged(r: &mut Reader<'_>, out: &mut Vec<u8>) {
    let tag = r.u8();
    match tag {
        INT64..=BOOL => render_scalar(tag, r, out),
        INT64_LIST..=BOOL_LIST => render_items(r, out, (b'[', b']'), |r, out| {
            render_scalar(tag - (INT64_LIST - INT64), r, out)
        }),
        MAP => render_map_from(r, out),
        MAP_LIST => render_items(r, out, (b'[', b']'), render_map_from),
        VALUE_LIST => render_items(r, out, (b'[', b']'), render_tagged),
        _ => out.extend_from_slice(b"null"),
    }
}

/// A count, then that many items between `brackets`, comma-separated.
fn render_items(
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
    brackets: (u8, u8),
    item: impl Fn(&mut Reader<'_>, &mut Vec<u8>),
) {
    let count = r.len();
    out.push(brackets.0);
    for i in 0..count {
        if r.0.is_empty() {
            break;
        }
        if i > 0 {
            out.push(b',');
        }
        item(r, out);
    }
    out.push(brackets.1);
}

fn render_scalar(tag: u8, r: &mut Reader<'_>, out: &mut Vec<u8>) {
    match tag {
        INT64 => out.extend_from_slice(
            itoa::Buffer::new()
                .format(i64::from_le_bytes(super::le(r.take(8))))
                .as_bytes(),
        ),
        DOUBLE => render_f64(f64::from_le_bytes(super::le(r.take(8))), out),
        STRING => render_str(&r.str(), out),
        _ => out.extend_from_slice(if r.u8() == 1 { b"true" } else { b"false" }),
    }
}

#[cfg(test)]
mod tests;
