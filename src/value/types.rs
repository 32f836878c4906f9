//! The declared value types: featgrid's element types ([`ScalarType`], one per Feast
//! primitive type plus `struct` and the element of nested lists) and a declared type
//! ([`ValueType`]: one element, a list or a set), with their TOML and Feast spellings.

use std::fmt;

/// The element types featgrid stores (Feast's `PrimitiveFeastType`s, plus `Struct` and the
/// untyped element of nested lists).
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
    /// 16 bytes; answered in the canonical hyphenated form.
    Uuid,
    /// A version-1 UUID, stored like [`ScalarType::Uuid`].
    TimeUuid,
    /// Decimal text as given (validated), answered as that string, as Feast does.
    Decimal,
    PdfBytes,
    ImageBytes,
    /// Microseconds since the epoch (i64) and the UTC offset in minutes (i16): 10 bytes.
    ZonedTimestamp,
    /// String keys to values typed as Feast infers them ([`tree`]).
    Map,
    /// JSON text, answered as a string, as Feast does.
    Json,
    /// Stored and answered like a map (Feast stores a struct in a `Map` proto).
    Struct,
    /// Non-string keys: JSON cannot carry them (see [`tree`]); only null is accepted.
    ScalarMap,
    /// One element of a nested list (`Array(Array(T))`, `Set(Array(T))`): a list typed as
    /// Feast infers it from the values, or null ([`tree`]).
    Value,
}

impl ScalarType {
    pub(crate) const ALL: [ScalarType; 19] = [
        ScalarType::Int32,
        ScalarType::Int64,
        ScalarType::Float32,
        ScalarType::Float64,
        ScalarType::String,
        ScalarType::Bytes,
        ScalarType::Bool,
        ScalarType::UnixTimestamp,
        ScalarType::Uuid,
        ScalarType::TimeUuid,
        ScalarType::Decimal,
        ScalarType::PdfBytes,
        ScalarType::ImageBytes,
        ScalarType::ZonedTimestamp,
        ScalarType::Map,
        ScalarType::Json,
        ScalarType::Struct,
        ScalarType::ScalarMap,
        ScalarType::Value,
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
            ScalarType::Uuid => "uuid",
            ScalarType::TimeUuid => "time_uuid",
            ScalarType::Decimal => "decimal",
            ScalarType::PdfBytes => "pdf_bytes",
            ScalarType::ImageBytes => "image_bytes",
            ScalarType::ZonedTimestamp => "zoned_timestamp",
            ScalarType::Map => "map",
            ScalarType::Json => "json",
            ScalarType::Struct => "struct",
            ScalarType::ScalarMap => "scalar_map",
            ScalarType::Value => "value",
        }
    }

    /// Bytes of one element when stored fixed-width; `None` for variable-length types.
    pub fn fixed_width(self) -> Option<usize> {
        match self {
            ScalarType::Int32 | ScalarType::Float32 => Some(4),
            ScalarType::Int64 | ScalarType::Float64 | ScalarType::UnixTimestamp => Some(8),
            ScalarType::Bool => Some(1),
            ScalarType::Uuid | ScalarType::TimeUuid => Some(16),
            ScalarType::ZonedTimestamp => Some(10),
            _ => None,
        }
    }

    /// Whether a join key may have this type.
    pub fn can_be_key(self) -> bool {
        matches!(
            self,
            ScalarType::Int32
                | ScalarType::Int64
                | ScalarType::String
                | ScalarType::Bytes
                | ScalarType::Bool
                | ScalarType::UnixTimestamp
        )
    }

    /// Whether values are stored as a tree of typed values ([`tree`]) rather than one scalar.
    pub fn is_tree(self) -> bool {
        matches!(
            self,
            ScalarType::Map
                | ScalarType::Json
                | ScalarType::Struct
                | ScalarType::ScalarMap
                | ScalarType::Value
        )
    }

    /// Whether Feast has a list type of it (`Array(T)`).
    fn has_list(self) -> bool {
        !matches!(
            self,
            ScalarType::PdfBytes
                | ScalarType::ImageBytes
                | ScalarType::ZonedTimestamp
                | ScalarType::ScalarMap
        )
    }

    /// Whether Feast has a set type of it (`Set(T)`).
    fn has_set(self) -> bool {
        self.has_list()
            && !matches!(
                self,
                ScalarType::Map | ScalarType::Json | ScalarType::Struct
            )
    }

    /// The type named `name` (lower case), in featgrid's or Feast's spelling, `_` optional.
    fn parse(name: &str) -> Option<ScalarType> {
        let bare: String = name.chars().filter(|&c| c != '_').collect();
        let aliased = match bare.as_str() {
            "double" => "float64",
            "float" => "float32",
            other => other,
        };
        ScalarType::ALL
            .iter()
            .copied()
            .filter(|&t| t != ScalarType::Value)
            .find(|t| t.name().replace('_', "") == aliased)
    }
}

/// A declared value type: a scalar, a list of one element type, or a set (a list whose
/// duplicates are dropped on write, as Feast does; `set` implies `list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueType {
    pub scalar: ScalarType,
    pub list: bool,
    pub set: bool,
}

impl ValueType {
    pub const fn scalar(scalar: ScalarType) -> Self {
        ValueType {
            scalar,
            list: false,
            set: false,
        }
    }

    pub const fn list_of(scalar: ScalarType) -> Self {
        ValueType {
            scalar,
            list: true,
            set: false,
        }
    }

    pub const fn set_of(scalar: ScalarType) -> Self {
        ValueType {
            scalar,
            list: true,
            set: true,
        }
    }

    /// Bytes in a row record when the value is fixed-width (a non-list number, bool,
    /// timestamp or UUID); `None` when it is stored as a variable-length span.
    pub fn fixed_width(self) -> Option<usize> {
        if self.list {
            None
        } else {
            self.scalar.fixed_width()
        }
    }

    /// Parses featgrid's names (`int64`, `list<int64>`, `set<string>`, `map`, `json`,
    /// `list<list<int64>>`, ...) and Feast's (`INT64`, `INT64_LIST`, `STRING_SET`,
    /// `Array(Int64)`, `Set(String)`, `Struct({...})`, `Array(Array(Int64))`, `VALUE_LIST`).
    /// Only the types Feast has are accepted (no `set<map>`, no `list<pdf_bytes>`).
    pub fn parse(text: &str) -> Option<ValueType> {
        let lower = text.trim().to_ascii_lowercase();
        let ty = Self::parse_lower(&lower)?;
        let valid = match (ty.list, ty.set) {
            (false, _) => ty.scalar != ScalarType::Value,
            (true, false) => ty.scalar.has_list(),
            (true, true) => ty.scalar.has_set() || ty.scalar == ScalarType::Value,
        };
        valid.then_some(ty)
    }

    fn parse_lower(text: &str) -> Option<ValueType> {
        let text = text.trim();
        match text {
            "value_list" => return Some(ValueType::list_of(ScalarType::Value)),
            "value_set" => return Some(ValueType::set_of(ScalarType::Value)),
            _ => {}
        }
        // A struct's field list is not kept: Feast stores a struct as a map of the values
        // as given, whatever the declared fields.
        if text.starts_with("struct(") && text.ends_with(')') {
            return Some(ValueType::scalar(ScalarType::Struct));
        }
        let wrapped = |open: &str, close: char| {
            text.strip_prefix(open)
                .and_then(|rest| rest.strip_suffix(close))
        };
        let collection = if let Some(inner) = wrapped("list<", '>').or(wrapped("array(", ')')) {
            Some((inner, false))
        } else if let Some(inner) = wrapped("set<", '>').or(wrapped("set(", ')')) {
            Some((inner, true))
        } else if let Some(inner) = text.strip_suffix("_list") {
            Some((inner, false))
        } else {
            text.strip_suffix("_set").map(|inner| (inner, true))
        };
        match collection {
            Some((inner, set)) => {
                let inner = Self::parse(inner)?;
                let scalar = if inner.list {
                    // Nested: Feast types the inner lists from their values.
                    ScalarType::Value
                } else {
                    inner.scalar
                };
                Some(ValueType {
                    scalar,
                    list: true,
                    set,
                })
            }
            None => ScalarType::parse(text).map(ValueType::scalar),
        }
    }

    /// The spellings [`ValueType::parse`] accepts, for error messages.
    pub fn expected() -> &'static str {
        "one of int32, int64, float32, float64, string, bytes, bool, unix_timestamp, uuid, time_uuid, decimal, pdf_bytes, image_bytes, zoned_timestamp, map, json, struct, scalar_map; list<T> or set<T> of those Feast has; list<list<T>> or set<list<T>> (or Feast's spellings: INT64_LIST, Array(Int64), Set(String), Struct({...}))"
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.list, self.set, self.scalar) {
            (true, false, ScalarType::Value) => f.write_str("value_list"),
            (true, true, ScalarType::Value) => f.write_str("value_set"),
            (true, false, s) => write!(f, "list<{}>", s.name()),
            (true, true, s) => write!(f, "set<{}>", s.name()),
            (false, _, s) => f.write_str(s.name()),
        }
    }
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
        let list = ValueType::list_of(ScalarType::String);
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
    fn every_feast_type_has_a_name_that_reads_back() {
        use crate::registry::feast::proto::value_type::NAMES;
        use crate::registry::feast::value_type;
        let mut served = 0;
        for (number, feast_name) in NAMES {
            let Some(ty) = value_type(number) else {
                assert!(matches!(feast_name, "INVALID" | "NULL"), "{feast_name}");
                continue;
            };
            served += 1;
            assert_eq!(ValueType::parse(&ty.to_string()), Some(ty), "{feast_name}");
            assert_eq!(ValueType::parse(feast_name), Some(ty), "{feast_name}");
        }
        assert_eq!(served, 45);
        for (feast, ours) in [
            ("Array(Array(Int64))", "value_list"),
            ("Set(Array(String))", "value_set"),
            ("Struct({name: String, age: String})", "struct"),
            ("Array(Struct({a: Int64}))", "list<struct>"),
            ("Set(Uuid)", "set<uuid>"),
            ("Array(Json)", "list<json>"),
            ("Map", "map"),
            ("ZonedTimestamp", "zoned_timestamp"),
            ("PdfBytes", "pdf_bytes"),
        ] {
            assert_eq!(
                ValueType::parse(feast).unwrap().to_string(),
                ours,
                "{feast}"
            );
        }
        // Types Feast does not have.
        for bad in [
            "set<map>",
            "list<pdf_bytes>",
            "Array(ZonedTimestamp)",
            "set<json>",
            "value",
        ] {
            assert_eq!(ValueType::parse(bad), None, "{bad}");
        }
    }
}
