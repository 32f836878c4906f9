//! [`Scalar`]: the light cell of the usual push (see the module documentation of `cell`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};

use super::JsonCell;
use crate::value::{Cell, Micros, ValueError};

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
    pub(super) fn json(self) -> JsonCell<'a> {
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
