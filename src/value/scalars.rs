//! The scalar types beyond numbers, strings and UTC timestamps: UUIDs (stored as 16 bytes),
//! decimals (validated text) and zoned timestamps (an instant and a fixed UTC offset): how
//! each is read from text, stored, and written back.

use chrono::{DateTime, FixedOffset, Offset, TimeZone};

use super::{le, parse_timestamp_text, Micros, MAX_TIMESTAMP, MIN_TIMESTAMP};

/// A UUID in the hyphenated form (`8-4-4-4-12` hex digits, any case) or as 32 hex digits.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    let hex: Vec<u8> = if text.len() == 36 {
        let dashes = [8, 13, 18, 23];
        if dashes.iter().any(|&i| text.as_bytes()[i] != b'-') {
            return None;
        }
        text.bytes().filter(|&b| b != b'-').collect()
    } else {
        text.bytes().collect()
    };
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// The UUID's version (the high nibble of byte 6): 1 for a time-based UUID.
pub fn uuid_version(bytes: &[u8; 16]) -> u8 {
    bytes[6] >> 4
}

/// The canonical form: lower-case, hyphenated (what Python's `str(uuid.UUID(..))` writes).
pub fn write_uuid(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().take(16).enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

/// Whether `text` is a decimal Python's `decimal.Decimal` reads: `[+-]digits[.digits][e[+-]digits]`
/// (digits on at least one side of the point), or `Infinity`, `Inf`, `NaN`, `sNaN`.
pub fn is_decimal(text: &str) -> bool {
    let text = text.trim();
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan" | "snan") {
        return true;
    }
    let (number, exponent) = match lower.split_once('e') {
        Some((n, e)) => (n, Some(e)),
        None => (lower.as_str(), None),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty()) && exponent_ok
}

/// Bytes of a stored zoned timestamp: the instant (i64 microseconds) and the offset (i16 minutes).
pub const ZONED_WIDTH: usize = 10;

/// A zoned timestamp from RFC 3339 text (`2026-11-25T02:00:00-08:00`) or
/// `YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM`; text without an offset is UTC (as Feast reads a naive
/// datetime). Named zones (`America/Los_Angeles`) are not read: only fixed offsets.
pub fn parse_zoned(text: &str) -> Option<(Micros, i16)> {
    let text = text.trim();
    let parsed = DateTime::parse_from_rfc3339(text)
        .ok()
        .or_else(|| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z").ok())
        .or_else(|| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%:z").ok());
    let (micros, offset) = match parsed {
        Some(t) => (
            t.timestamp_micros(),
            (t.offset().fix().local_minus_utc() / 60) as i16,
        ),
        None => (parse_timestamp_text(text)?, 0),
    };
    (MIN_TIMESTAMP..=MAX_TIMESTAMP)
        .contains(&micros)
        .then_some((micros, offset))
}

pub fn encode_zoned(micros: Micros, offset_minutes: i16, out: &mut Vec<u8>) {
    out.extend_from_slice(&micros.to_le_bytes());
    out.extend_from_slice(&offset_minutes.to_le_bytes());
}

/// ISO 8601 in the value's own offset, as Python's `datetime.isoformat()` writes it (what
/// Feast answers): `2026-11-25T02:00:00-08:00`, `.ffffff` only when there are microseconds,
/// `+00:00` for UTC.
pub fn write_zoned(bytes: &[u8], out: &mut Vec<u8>) {
    let micros = i64::from_le_bytes(le(bytes));
    let offset = i16::from_le_bytes(le(bytes.get(8..).unwrap_or_default()));
    let zone = FixedOffset::east_opt(i32::from(offset) * 60)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
    let Some(utc) = DateTime::from_timestamp_micros(micros) else {
        return;
    };
    let local = zone.from_utc_datetime(&utc.naive_utc());
    let format = if micros.rem_euclid(1_000_000) == 0 {
        "%Y-%m-%dT%H:%M:%S%:z"
    } else {
        "%Y-%m-%dT%H:%M:%S%.6f%:z"
    };
    out.extend_from_slice(local.format(format).to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        let text = "A0B1C2D3-e4f5-1789-8abc-def012345678";
        let bytes = parse_uuid(text).unwrap();
        let mut out = Vec::new();
        write_uuid(&bytes, &mut out);
        assert_eq!(out, b"a0b1c2d3-e4f5-1789-8abc-def012345678");
        assert_eq!(uuid_version(&bytes), 1);
        assert_eq!(parse_uuid("a0b1c2d3e4f517898abcdef012345678"), Some(bytes));
        for bad in [
            "not-a-uuid",
            "a0b1c2d3-e4f5-1789-8abc-def01234567",
            "a0b1c2d3-e4f5-1789-8abc_def012345678",
            "g0b1c2d3-e4f5-1789-8abc-def012345678",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
    }

    #[test]
    fn decimals() {
        for ok in [
            "1.50",
            "-0.1",
            "+3",
            ".5",
            "5.",
            "1e10",
            "1.5E-3",
            "NaN",
            "-Infinity",
        ] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", ".", "1.2.3", "abc", "1e", "0x10", "1,5"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn zoned_timestamps_keep_their_offset() {
        let render = |text: &str| {
            let (micros, offset) = parse_zoned(text).unwrap();
            let mut bytes = Vec::new();
            encode_zoned(micros, offset, &mut bytes);
            assert_eq!(bytes.len(), ZONED_WIDTH);
            let mut out = Vec::new();
            write_zoned(&bytes, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            render("2026-11-25T02:00:00-08:00"),
            "2026-11-25T02:00:00-08:00"
        );
        assert_eq!(
            render("2026-11-25 10:00:00.5+05:30"),
            "2026-11-25T10:00:00.500000+05:30"
        );
        assert_eq!(render("2026-11-25T10:00:00Z"), "2026-11-25T10:00:00+00:00");
        assert_eq!(render("2026-11-25 10:00:00"), "2026-11-25T10:00:00+00:00");
        assert_eq!(parse_zoned("2026-11-25T10:00:00 America/Los_Angeles"), None);
    }
}
