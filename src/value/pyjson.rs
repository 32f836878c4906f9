//! JSON text exactly as Python's `json.dumps` writes it with its defaults: Feast stores a
//! `Json` feature given as an object or list as `json.dumps(value)` and answers that text,
//! so featgrid must produce the same bytes: `", "` and `": "` separators, non-ASCII escaped
//! as `\uXXXX` (lower-case hex, surrogate pairs), floats in Python's `repr` (`1.0`, `1e+16`,
//! `1e-05`), and the bare tokens `NaN`, `Infinity`, `-Infinity`.

use super::cell::JsonCell;
use super::nonfinite;

/// Appends `value` as `json.dumps(value)` would write it.
pub fn dumps(value: &JsonCell<'_>, out: &mut String) {
    match value {
        JsonCell::Null => out.push_str("null"),
        JsonCell::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        JsonCell::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        JsonCell::UInt(u) => out.push_str(itoa::Buffer::new().format(*u)),
        JsonCell::Float(f) | JsonCell::NonFinite(f) => float_repr(*f, out),
        JsonCell::Str(s) => string(s, out),
        JsonCell::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dumps(item, out);
            }
            out.push(']');
        }
        JsonCell::Object(entries) => {
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                string(key, out);
                out.push_str(": ");
                dumps(item, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(float)`: the shortest digits that read back as the same float, in fixed
/// notation when the decimal exponent is in -4..16, else scientific with a signed exponent of
/// at least two digits.
pub fn float_repr(v: f64, out: &mut String) {
    if !v.is_finite() {
        out.push_str(nonfinite::text_of(v));
        return;
    }
    // Rust's `{:e}` writes the same shortest digits: "1.5e-5", "-1e16", "0e0".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // The value is 0.DIGITS x 10^point.
    let point = exp + 1;
    out.push_str(sign);
    if (-4 < point && point <= 16) || v == 0.0 {
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = point - 1;
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", e.abs()));
    }
}

/// A string literal with `ensure_ascii=True` escaping.
fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(v: f64) -> String {
        let mut s = String::new();
        float_repr(v, &mut s);
        s
    }

    /// The expectations are Python 3.11's `repr` and `json.dumps`.
    #[test]
    fn floats_as_python_writes_them() {
        for (v, text) in [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e300, "1e+300"),
            (123.456, "123.456"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(repr(v), text, "{v:e}");
        }
    }

    #[test]
    fn dumps_like_python() {
        let cell: JsonCell = serde_json::from_str(
            r#"{"a": 1.0, "b": "\u00e9\ud83d\ude00\"\n", "c": [1e16, 1e-5, 7], "d": {"e": null, "f": true}}"#,
        )
        .unwrap();
        let mut s = String::new();
        dumps(&cell, &mut s);
        assert_eq!(
            s,
            r#"{"a": 1.0, "b": "\u00e9\ud83d\ude00\"\n", "c": [1e+16, 1e-05, 7], "d": {"e": null, "f": true}}"#
        );
    }
}
