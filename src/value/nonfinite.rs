//! NaN and the infinities: Python's `json.dumps` writes them as the bare tokens `NaN`,
//! `Infinity` and `-Infinity` (pandas' missing floats are NaN), which JSON does not have and
//! serde_json refuses. Feast accepts them, so featgrid does too, for float values only:
//!
//! - [`mark_non_finite`] rewrites each bare token outside strings into a marker object
//!   `{"$featgrid::non_finite": "NaN"}` (serde_json marks its own arbitrary-precision numbers
//!   the same way), which [`super::cell::JsonCell`] reads as a non-finite float. Anywhere a
//!   float is not expected, the marker is refused like any other wrong value.
//! - A scalar float NaN is stored as null (`NULL_VALUE`), as Feast stores pandas' missing
//!   float; an infinity, and NaN inside a float list, are stored as they are.
//! - Answers carry them as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (the protobuf JSON
//!   mapping, what Feast's feature server answers), and those strings are read back as floats.

/// The key of the marker object a bare token becomes.
pub const MARKER_KEY: &str = "$featgrid::non_finite";

/// The three spellings, as tokens and as the strings answers carry.
const SPELLINGS: [(&str, f64); 3] = [
    ("NaN", f64::NAN),
    ("Infinity", f64::INFINITY),
    ("-Infinity", f64::NEG_INFINITY),
];

/// The float a spelling stands for: `"NaN"`, `"Infinity"` or `"-Infinity"` exactly.
pub fn from_text(text: &str) -> Option<f64> {
    SPELLINGS.iter().find(|(s, _)| *s == text).map(|&(_, v)| v)
}

/// The spelling of a non-finite float.
pub fn text_of(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// `body` with every bare `NaN`, `Infinity` and `-Infinity` token outside strings rewritten
/// into a marker object; `None` when there is none (the body is then used as it is). Cheap on
/// the common path: without those letters in the body, nothing is scanned.
pub fn mark_non_finite(body: &[u8]) -> Option<Vec<u8>> {
    if memchr::memmem::find(body, b"NaN").is_none()
        && memchr::memmem::find(body, b"Infinity").is_none()
    {
        return None;
    }
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut in_string = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
        } else if matches!(b, b'N' | b'I' | b'-') && starts_value(body, i) {
            if let Some(&(token, _)) = SPELLINGS
                .iter()
                .find(|(t, _)| body[i..].starts_with(t.as_bytes()) && ends_value(body, i + t.len()))
            {
                let out = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 64));
                out.extend_from_slice(&body[copied..i]);
                out.extend_from_slice(format!("{{\"{MARKER_KEY}\":\"{token}\"}}").as_bytes());
                i += token.len();
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.map(|mut out| {
        out.extend_from_slice(&body[copied..]);
        out
    })
}

/// Whether a value may start at `i`: after whitespace, `[`, `,` or `:`.
fn starts_value(body: &[u8], i: usize) -> bool {
    i == 0
        || matches!(
            body[i - 1],
            b'[' | b',' | b':' | b' ' | b'\t' | b'\n' | b'\r'
        )
}

/// Whether a value may end at `i`: before whitespace, `]`, `}`, `,` or the end.
fn ends_value(body: &[u8], i: usize) -> bool {
    i == body.len() || matches!(body[i], b']' | b'}' | b',' | b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(text: &str) -> Option<String> {
        mark_non_finite(text.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn bare_tokens_outside_strings_become_markers() {
        let nan = format!("{{\"{MARKER_KEY}\":\"NaN\"}}");
        let inf = format!("{{\"{MARKER_KEY}\":\"Infinity\"}}");
        let neg = format!("{{\"{MARKER_KEY}\":\"-Infinity\"}}");
        assert_eq!(
            marked(r#"{"a": [NaN, 1.5,Infinity], "b":-Infinity}"#).unwrap(),
            format!(r#"{{"a": [{nan}, 1.5,{inf}], "b":{neg}}}"#)
        );
        assert_eq!(marked("NaN").unwrap(), nan);
        // Inside strings (escaped quotes too), or part of a longer word: untouched.
        assert_eq!(marked(r#"{"a": ["NaN", "x\"NaN", "Infinity"]}"#), None);
        assert_eq!(
            marked(r#"{"a": [NaNa, xNaN, Infinity1, -Infinityx]}"#),
            None
        );
        assert_eq!(marked(r#"{"a": [1, 2]}"#), None);
        let m = marked(r#"{"NaN": ["\\", NaN]}"#).unwrap();
        assert_eq!(m, format!(r#"{{"NaN": ["\\", {nan}]}}"#));
    }

    #[test]
    fn spellings_round_trip() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let back = from_text(text_of(v)).unwrap();
            assert!(back.is_nan() && v.is_nan() || back == v);
        }
        assert_eq!(from_text("nan"), None);
        assert_eq!(from_text("inf"), None);
    }
}
