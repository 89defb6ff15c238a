//! The times the store accepts, checked in one place.
//!
//! Every time that enters through the API (a record's own date, a retention
//! date a producer or a retention officer asks for, an attested time, the
//! bounds of a selection) is checked here. A date outside 1970-01-01 to
//! 9999-12-31 is refused with a typed error naming the field. A retention
//! date may lie at most [`RETAIN_MAX_US`] after the compliance clock's now,
//! the longest period a class may set: a date further out would pin its zone
//! for good. A record dated ahead of the clock is kept as dated (phones with
//! wrong clocks are authentic evidence), but its retention counts from no
//! later than [`FUTURE_SKEW_US`] after the clock ([`retention_base`]).

use crate::error::{Error, Result};

/// Microseconds since the Unix epoch, from the system clock (not the
/// compliance clock: see [`crate::time::clock`]).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// 1970-01-01T00:00:00Z.
pub const EARLIEST_US: i64 = 0;
/// 9999-12-31T23:59:59.999999Z.
pub const LATEST_US: i64 = 253_402_300_799_999_999;
/// How far ahead of the compliance clock a record's date counts for retention.
pub const FUTURE_SKEW_US: i64 = 86_400_000_000;
/// The longest retention a class may set (100 years of 366 days): the
/// furthest a retention date may lie after now.
pub const RETAIN_MAX_US: i64 = 100 * 366 * 86_400_000_000;

fn refuse(what: &str, us: i64, bound: &str) -> Error {
    Error::invalid(what, format!("{us} µs ({}) is {bound}", utc(us)))
}

/// A calendar time: within 1970-01-01 to 9999-12-31.
pub fn check(what: &str, us: i64) -> Result<i64> {
    if (EARLIEST_US..=LATEST_US).contains(&us) {
        Ok(us)
    } else {
        Err(refuse(
            what,
            us,
            "outside the dates the store accepts (1970-01-01 to 9999-12-31)",
        ))
    }
}

/// A retention date: a calendar time at most [`RETAIN_MAX_US`] after `now_us`.
pub fn check_retain_until(what: &str, us: i64, now_us: i64) -> Result<i64> {
    check(what, us)?;
    if us > now_us.saturating_add(RETAIN_MAX_US) {
        return Err(refuse(
            what,
            us,
            &format!(
                "more than 100 years after the compliance clock's now ({}): it would keep its zone for good",
                utc(now_us)
            ),
        ));
    }
    Ok(us)
}

/// The time a record's retention counts from: its own date, but never
/// before the compliance clock's now nor more than a day after it.
pub fn retention_base(record_us: i64, now_us: i64) -> i64 {
    record_us
        .min(now_us.saturating_add(FUTURE_SKEW_US))
        .max(now_us)
}

/// Format UTC microseconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000_000;

    #[test]
    fn dates_outside_the_calendar_are_refused_with_the_field() {
        assert!(check("timestamp", 0).is_ok());
        assert!(check("timestamp", LATEST_US).is_ok());
        for bad in [-1, i64::MIN, LATEST_US + 1, i64::MAX] {
            let e = check("record timestamp", bad).unwrap_err().to_string();
            assert!(
                e.contains("record timestamp") && e.contains("1970-01-01 to 9999-12-31"),
                "{e}"
            );
        }
    }

    #[test]
    fn retention_dates_stay_within_a_century() {
        assert!(check_retain_until("until", NOW + RETAIN_MAX_US, NOW).is_ok());
        let e = check_retain_until("until", NOW + RETAIN_MAX_US + 1, NOW).unwrap_err();
        assert!(e.to_string().contains("100 years"), "{e}");
    }

    #[test]
    fn a_future_date_counts_from_a_day_ahead_at_most() {
        assert_eq!(retention_base(NOW - 5, NOW), NOW);
        assert_eq!(retention_base(NOW + 5, NOW), NOW + 5);
        assert_eq!(retention_base(LATEST_US, NOW), NOW + FUTURE_SKEW_US);
    }
}
