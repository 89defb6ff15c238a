//! Timestamps as sources send them, read one way for strings and numbers.
//!
//! * A number, or a string of digits (with an optional fraction), counts
//!   from the Unix epoch; its unit is recognised by magnitude: below 10^12
//!   it is seconds, below 10^15 milliseconds, else microseconds. (10^12
//!   seconds is past the year 9999, and 10^12 milliseconds is 2001, so the
//!   ranges do not overlap for any message a phone could send.)
//! * Other strings are RFC 3339: `2026-11-25T10:00:00Z`, with an optional
//!   fraction and a `Z` or `±hh:mm` offset; a space may stand for the `T`;
//!   a date alone is midnight UTC.
//! * Years 1 to 9999 only. Anything else is refused with the reason, so the
//!   caller can keep the value verbatim and date the record by its receipt.

use serde_json::Value;

use crate::when::{days_from_civil, days_in_month};

const SECONDS_BELOW: f64 = 1e12;
const MILLIS_BELOW: f64 = 1e15;
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, in seconds from the epoch.
const FIRST_S: i64 = -62_135_596_800;
const LAST_S: i64 = 253_402_300_799;

/// A timestamp from a JSON value, in UTC microseconds.
pub fn from_json(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) => from_epoch_number(x),
            None => Err(format!(
                "{n} is not a number of seconds, milliseconds or microseconds"
            )),
        },
        Value::String(s) => from_str(s),
        Value::Null => Err("no timestamp".into()),
        other => Err(format!("{other} is not a timestamp (a number or a string)")),
    }
}

/// A timestamp from text, in UTC microseconds.
pub fn from_str(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let numeric = !t.is_empty()
        && t.strip_prefix('-')
            .unwrap_or(t)
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.')
        && t.bytes().filter(|&b| b == b'.').count() <= 1;
    if numeric {
        let x: f64 = t.parse().map_err(|_| format!("{s:?} is not a number"))?;
        return from_epoch_number(x);
    }
    rfc3339(t).filter(|us| in_range(*us)).ok_or_else(|| {
        format!("{s:?} is neither a count from the epoch nor an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.f](Z|±hh:mm))")
    })
}

fn from_epoch_number(x: f64) -> Result<i64, String> {
    if !x.is_finite() {
        return Err(format!("{x} is not a time"));
    }
    let us = if x.abs() < SECONDS_BELOW {
        x * 1e6
    } else if x.abs() < MILLIS_BELOW {
        x * 1e3
    } else {
        x
    };
    let us = us.round();
    if us < FIRST_S as f64 * 1e6 || us > LAST_S as f64 * 1e6 + 999_999.0 || !in_range(us as i64) {
        return Err(format!("{x} is outside the years 1 to 9999"));
    }
    Ok(us as i64)
}

fn in_range(us: i64) -> bool {
    (FIRST_S * 1_000_000..=LAST_S * 1_000_000 + 999_999).contains(&us)
}

fn digits(s: &str, n: usize) -> Option<i64> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn rfc3339(s: &str) -> Option<i64> {
    let (date, rest) = match (s.get(..10), s.get(10..)) {
        (Some(d), Some(r)) => (d, r),
        _ if s.len() <= 10 => (s, ""),
        _ => return None,
    };
    let mut p = date.split('-');
    let (y, m, d) = (
        digits(p.next()?, 4)?,
        digits(p.next()?, 2)?,
        digits(p.next()?, 2)?,
    );
    if p.next().is_some() || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) || y < 1 {
        return None;
    }
    let mut us = days_from_civil(y, m, d) * 86_400_000_000;
    if !rest.is_empty() {
        us += time_of_day(rest)?;
    }
    Some(us)
}

/// `THH:MM:SS[.f](Z|±hh:mm)` as microseconds after midnight UTC (may be negative or past a day).
fn time_of_day(s: &str) -> Option<i64> {
    let s = s.strip_prefix(['T', 't', ' '])?;
    let (clock, offset_us) = split_offset(s)?;
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            (a, f)
        }
        Some(_) => return None,
        None => (clock, ""),
    };
    let mut q = hms.split(':');
    let (h, mi, se) = (
        digits(q.next()?, 2)?,
        digits(q.next()?, 2)?,
        digits(q.next()?, 2)?,
    );
    if q.next().is_some() || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let frac_us = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}")[..6].parse::<i64>().ok()?
    };
    Some(((h * 60 + mi) * 60 + se) * 1_000_000 + frac_us - offset_us)
}

fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(c) = s.strip_suffix(['Z', 'z']) {
        return Some((c, 0));
    }
    let at = s.rfind(['+', '-'])?;
    let (clock, off) = s.split_at(at);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let (oh, om) = off[1..].split_once(':')?;
    let (oh, om) = (digits(oh, 2)?, digits(om, 2)?);
    if oh > 23 || om > 59 {
        return None;
    }
    Some((clock, sign * (oh * 60 + om) * 60_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T: i64 = 1_750_016_800_000_000;

    #[test]
    fn units_are_recognised_by_magnitude() {
        for v in [
            json!(1_750_016_800),
            json!("1750016800"),
            json!(1_750_016_800_000i64),
            json!("1750016800000"),
            json!(1_750_016_800_000_000i64),
            json!(1_750_016_800.0),
        ] {
            assert_eq!(from_json(&v), Ok(T), "{v}");
        }
        assert_eq!(from_json(&json!("1750016800.5")), Ok(T + 500_000));
        assert_eq!(from_json(&json!(1)), Ok(1_000_000));
    }

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        assert_eq!(from_str("2025-06-15T19:46:40Z"), Ok(T));
        assert_eq!(from_str("2025-06-15 21:46:40+02:00"), Ok(T));
        assert_eq!(from_str("2025-06-15T19:46:40.25Z"), Ok(T + 250_000));
        assert_eq!(from_str("2025-06-15T14:46:40-05:00"), Ok(T));
        assert_eq!(from_str("1970-01-01"), Ok(0));
        assert_eq!(from_str("0001-01-01T00:00:00Z"), Ok(FIRST_S * 1_000_000));
        assert_eq!(from_str("9999-12-31T23:59:59Z"), Ok(LAST_S * 1_000_000));
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for v in [
            json!("yesterday"),
            json!(""),
            json!(null),
            json!(true),
            json!([1]),
            json!("2025-02-30T00:00:00Z"),
            json!("2025-06-15T24:00:00Z"),
            json!("2025-06-15T10:00:00+25:00"),
            json!("10000-01-01T00:00:00Z"),
            json!("0000-01-01"),
            json!(1e300),
            json!(-1e20),
            json!("1.2.3"),
            json!("--5"),
            json!("2025-06-15T10:00:00.Z"),
            json!("0001-01-01T00:00:00+01:00"),
            json!("9999-12-31T23:59:59-23:59"),
            json!(253_402_300_800i64),
        ] {
            let r = from_json(&v);
            assert!(r.is_err(), "{v} gave {r:?}");
            assert!(!r.unwrap_err().is_empty());
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = from_str(&s);
        }

        #[test]
        fn seconds_round_trip(secs in FIRST_S / 1000..LAST_S / 1000) {
            // Within the range where seconds are recognised.
            proptest::prop_assume!((secs as f64).abs() < SECONDS_BELOW);
            proptest::prop_assert_eq!(from_json(&json!(secs)), Ok(secs * 1_000_000));
            let text = crate::when::format(secs * 1_000_000);
            proptest::prop_assert_eq!(from_str(&text), Ok(secs * 1_000_000));
        }
    }
}
