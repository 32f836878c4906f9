//! Each expectation is what Feast 0.67 answers for the same value
//! (`python_values_to_proto_values` then `feature_server_utils._value_to_native`), compared as
//! JSON values (so `1` and `1.0` differ, and map order does not count).

use serde_json::Value as Json;

use crate::value::cell::JsonCell;
use crate::value::{encode_value, render_json, ValueError, ValueType};

fn stored(ty: &str, input: &str) -> Result<String, ValueError> {
    let ty = ValueType::parse(ty).unwrap();
    let cell: JsonCell = serde_json::from_str(input).unwrap();
    let mut bytes = Vec::new();
    encode_value(ty, &cell, &mut bytes)?;
    let mut out = Vec::new();
    render_json(ty, &bytes, &mut out);
    Ok(String::from_utf8(out).unwrap())
}

fn json(text: &str) -> Json {
    serde_json::from_str(text).unwrap()
}

#[test]
fn answers_are_feasts() {
    for (ty, input, feast) in [
        (
            "map",
            r#"{"vehicle_type": "truck", "rating": "5.0"}"#,
            r#"{"vehicle_type": "truck", "rating": "5.0"}"#,
        ),
        (
            "map",
            r#""{\"a\": 1, \"b\": 2.5, \"c\": [1, 2], \"d\": [1.0], \"e\": [\"x\"], \"f\": [true], \"g\": {\"h\": null}, \"i\": [{\"j\": 1}], \"k\": false}""#,
            r#"{"d": [1.0], "e": ["x"], "a": 1, "f": [true], "i": [{"j": 1}], "g": {"h": null}, "b": 2.5, "c": [1, 2], "k": false}"#,
        ),
        ("map", r#"{"a": 1, "b": 2.0}"#, r#"{"b": 2.0, "a": 1}"#),
        (
            "Struct({name: String, age: String})",
            r#"{"name": "driver_1001_updated", "age": "30"}"#,
            r#"{"name": "driver_1001_updated", "age": "30"}"#,
        ),
        (
            "struct",
            r#""{\"name\": \"x\", \"age\": 3}""#,
            r#"{"name": "x", "age": 3}"#,
        ),
        (
            "json",
            r#""{\"max_distance_km\": 500, \"preferred_zones\": [\"north\"]}""#,
            r#""{\"max_distance_km\": 500, \"preferred_zones\": [\"north\"]}""#,
        ),
        (
            "json",
            r#"{"a": 1.0, "b": "\u00e9", "c": [1e+16, 1e-05]}"#,
            r#""{\"a\": 1.0, \"b\": \"\\u00e9\", \"c\": [1e+16, 1e-05]}""#,
        ),
        ("json", r#"[1, "x", null]"#, r#""[1, \"x\", null]""#),
        (
            "list<json>",
            r#"[{"a": 1}, "[1]"]"#,
            r#"["{\"a\": 1}", "[1]"]"#,
        ),
        (
            "list<map>",
            r#"[{"a": 1}, {"b": "x"}]"#,
            r#"[{"a": 1}, {"b": "x"}]"#,
        ),
        ("Array(Map)", r#"["{\"a\": 1}"]"#, r#"[{"a": 1}]"#),
        ("list<struct>", r#"[{"a": 1}]"#, r#"[{"a": 1}]"#),
        (
            "Array(Array(Int64))",
            r#"[[1, 2], [], null, ["a"], [[1.5], [true]]]"#,
            r#"[[1, 2], null, null, ["a"], [[1.5], [true]]]"#,
        ),
        ("Set(Array(String))", r#"[[1, 2], [3]]"#, r#"[[1, 2], [3]]"#),
        ("set<int64>", "[3, 1, 3]", "[3, 1]"),
        ("STRING_SET", r#"["b", "b"]"#, r#"["b"]"#),
    ] {
        let got = stored(ty, input).unwrap_or_else(|e| panic!("{ty} {input}: {e}"));
        assert_eq!(json(&got), json(feast), "{ty} {input}: {got}");
    }
}

/// What Feast refuses (with a 500), featgrid refuses with a reason.
#[test]
fn feasts_refusals_are_refused_with_a_reason() {
    for (ty, input, reason) in [
        ("map", r#"{"a": []}"#, "key 'a': an empty list has no type"),
        (
            "map",
            r#"{"a": [1, 2.5]}"#,
            "key 'a': a list mixes int64 and double",
        ),
        ("map", r#"{"a": [1, null]}"#, "may not hold null"),
        ("map", r#"{"a": [[1], [2]]}"#, "a list of lists"),
        (
            "map",
            r#"{"a": 9223372036854775808}"#,
            "out of the int64 range",
        ),
        ("map", "[1]", "a JSON object"),
        ("map", r#""{not json""#, "not JSON"),
        ("struct", "5", "a JSON object"),
        ("json", r#""{\"a\": ""#, "not JSON"),
        ("list<map>", "[1]", "each element must be a JSON object"),
        (
            "value_list",
            "[1]",
            "each element of a nested list is a list or null",
        ),
        ("scalar_map", r#"{"1": 2}"#, "ScalarMap"),
    ] {
        let e = stored(ty, input).unwrap_err().to_string();
        assert!(e.contains(reason), "{ty} {input}: {e}");
    }
}

#[test]
fn python_nan_inside_a_map_is_a_double() {
    let body = crate::value::nonfinite::mark_non_finite(br#"{"a": NaN}"#).unwrap();
    let cell: JsonCell = serde_json::from_slice(&body).unwrap();
    let ty = ValueType::parse("map").unwrap();
    let mut bytes = Vec::new();
    encode_value(ty, &cell, &mut bytes).unwrap();
    let mut out = Vec::new();
    render_json(ty, &bytes, &mut out);
    assert_eq!(out, br#"{"a":"NaN"}"#);
}

/// The template's `driver_metadata` value takes fewer bytes stored than as JSON text.
#[test]
fn a_small_map_is_stored_in_fewer_bytes_than_its_json_text() {
    let text = r#"{"vehicle_type":"truck","rating":"5.0"}"#;
    let cell: JsonCell = serde_json::from_str(text).unwrap();
    let mut bytes = Vec::new();
    encode_value(ValueType::parse("map").unwrap(), &cell, &mut bytes).unwrap();
    assert_eq!(bytes.len(), 33, "{bytes:?}");
    assert!(bytes.len() < text.len());
    // Long strings and many entries take multi-byte lengths and read back the same.
    let long = "x".repeat(300);
    let many: String = (0..200)
        .map(|i| format!(r#""k{i}": {i}"#))
        .collect::<Vec<_>>()
        .join(",");
    let input = format!(r#"{{"long": "{long}", "many": {{{many}}}}}"#);
    let got = stored("map", &input).unwrap();
    assert_eq!(json(&got), json(&input));
}
