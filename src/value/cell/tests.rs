//! Tests of [`super::JsonCell`], [`super::Scalar`] and the list readers.

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
        list(r#"["2026-11-25 10:00:00", 1, -2, 18446744073709551615, 2.5, true, null]"#).unwrap(),
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
