//! Timestamps: parsing the forms requests use, and RFC 3339 text without allocation.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};

use super::Micros;

/// 0001-01-01T00:00:00Z: the earliest timestamp Feast (protobuf `Timestamp`) can hold.
pub const MIN_TIMESTAMP: Micros = -62_135_596_800_000_000;
/// 9999-12-31T23:59:59.999999Z: the latest.
pub const MAX_TIMESTAMP: Micros = 253_402_300_799_999_999;

/// `micros` when Feast could store it, otherwise why not (a year 0 or year 10000 date).
pub fn in_feast_range(micros: Micros) -> Result<Micros, super::ValueError> {
    if (MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&micros) {
        Ok(micros)
    } else {
        Err(super::ValueError::TimestampOutOfRange {
            got: DateTime::from_timestamp_micros(micros)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                .unwrap_or_else(|| format!("{micros} µs after the epoch")),
        })
    }
}

/// Parses RFC 3339 or `YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]` (`T` or a space between date and
/// time; no offset means UTC) into microseconds since the epoch.
pub fn parse_timestamp_text(text: &str) -> Option<Micros> {
    let text = text.trim();
    // The fast path (speedate): RFC 3339 and ISO 8601 with `T` or a space, offset optional.
    // Only for text shaped like a date-time, so its other heuristics (bare numbers) never apply.
    if text.len() >= 19 && text.as_bytes()[4] == b'-' {
        if let Ok(t) = speedate::DateTime::parse_str(text) {
            return t
                .timestamp_tz()
                .checked_mul(1_000_000)?
                .checked_add(i64::from(t.time.microsecond));
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    const WITH_OFFSET: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
    ];
    for format in WITH_OFFSET {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.timestamp_micros());
        }
    }
    let naive = text.strip_suffix('Z').unwrap_or(text);
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(Utc.from_utc_datetime(&t).timestamp_micros());
        }
    }
    None
}

/// The zero timestamp Feast gives join keys and missing values.
pub const EPOCH_RFC3339: &str = "1970-01-01T00:00:00Z";

/// RFC 3339 in UTC with `Z`; fractional seconds only when non-zero.
pub fn format_timestamp(micros: Micros) -> String {
    let mut out = Vec::with_capacity(27);
    write_timestamp(micros, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `micros` as RFC 3339 UTC with `Z`, fractional seconds only when non-zero (3 digits
/// for whole milliseconds, else 6), the same text as chrono's `SecondsFormat::AutoSi`, without
/// allocating. Years outside 0..=9999 fall back to chrono.
pub fn write_timestamp(micros: Micros, out: &mut Vec<u8>) {
    use chrono::{Datelike, Timelike};
    let Some(t) = DateTime::<Utc>::from_timestamp_micros(micros) else {
        out.extend_from_slice(EPOCH_RFC3339.as_bytes());
        return;
    };
    if !(0..=9999).contains(&t.year()) {
        out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        return;
    }
    let digits = |out: &mut Vec<u8>, value: u32, width: u32| {
        for i in (0..width).rev() {
            out.push(b'0' + (value / 10u32.pow(i) % 10) as u8);
        }
    };
    digits(out, t.year() as u32, 4);
    out.push(b'-');
    digits(out, t.month(), 2);
    out.push(b'-');
    digits(out, t.day(), 2);
    out.push(b'T');
    digits(out, t.hour(), 2);
    out.push(b':');
    digits(out, t.minute(), 2);
    out.push(b':');
    digits(out, t.second(), 2);
    let fraction = micros.rem_euclid(1_000_000) as u32;
    if fraction != 0 {
        out.push(b'.');
        if fraction.is_multiple_of(1000) {
            digits(out, fraction / 1000, 3);
        } else {
            digits(out, fraction, 6);
        }
    }
    out.push(b'Z');
}

/// The current time in microseconds since the epoch.
pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_forms() {
        let expect = 1_795_600_800_000_000; // 2026-11-25T10:00:00Z
        for text in [
            "2026-11-25T10:00:00Z",
            "2026-11-25T10:00:00+00:00",
            "2026-11-25 10:00:00",
            "2026-11-25T10:00:00",
            "2026-11-25 11:00:00+01:00",
            "2026-11-25 10:00:00.000000",
            "2026-11-25 11:00:00+0100",
        ] {
            assert_eq!(parse_timestamp_text(text), Some(expect), "{text}");
        }
        assert_eq!(parse_timestamp_text("yesterday"), None);
        assert_eq!(format_timestamp(expect), "2026-11-25T10:00:00Z");
        assert_eq!(
            format_timestamp(expect + 250_000),
            "2026-11-25T10:00:00.250Z"
        );
        assert_eq!(
            format_timestamp(expect + 250_001),
            "2026-11-25T10:00:00.250001Z"
        );
        assert_eq!(format_timestamp(0), EPOCH_RFC3339);
    }

    proptest! {
        #[test]
        fn text_matches_chrono(t in -62_135_596_800_000_000i64..253_402_300_799_999_999) {
            let expected = DateTime::<Utc>::from_timestamp_micros(t).unwrap().to_rfc3339_opts(SecondsFormat::AutoSi, true);
            prop_assert_eq!(format_timestamp(t), expected);
        }

        #[test]
        fn text_round_trips(secs in 0i64..4_000_000_000, micros in 0i64..1_000_000) {
            let t = secs * 1_000_000 + micros;
            prop_assert_eq!(parse_timestamp_text(&format_timestamp(t)), Some(t));
        }
    }
}
