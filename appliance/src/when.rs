//! Times on the command line: `2031-06-30`, `2031-06-30T12:00:00Z`, or
//! microseconds since the Unix epoch.

use anyhow::{bail, Result};

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in month `m` (1-12) of year `y` (proleptic Gregorian).
pub fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parse a time argument into UTC microseconds.
pub fn parse(s: &str) -> Result<i64> {
    let s = s.trim();
    if let Ok(us) = s.parse::<i64>() {
        return Ok(us);
    }
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let p: Vec<&str> = date.split('-').collect();
    let num = |x: &str| x.parse::<i64>().ok();
    let (Some(y), Some(m), Some(d)) = (
        p.first().and_then(|x| num(x)),
        p.get(1).and_then(|x| num(x)),
        p.get(2).and_then(|x| num(x)),
    ) else {
        bail!("{s:?} is not a date (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or microseconds)");
    };
    if p.len() != 3 || !(1..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d)
    {
        bail!("{s:?} is not a valid date (years 1 to 9999)");
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(t) = time {
        let q: Vec<Option<i64>> = t.split(':').map(num).collect();
        match q.as_slice() {
            [Some(h), Some(mi), Some(se)] if *h < 24 && *mi < 60 && *se < 61 => {
                secs += h * 3600 + mi * 60 + se
            }
            _ => bail!("{s:?}: the time must be HH:MM:SS (UTC)"),
        }
    }
    Ok(secs * 1_000_000)
}

/// Format UTC microseconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format(us: i64) -> String {
    stele_engine::time::clock::utc(us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        assert_eq!(parse("1970-01-01").unwrap(), 0);
        assert_eq!(parse("2000-03-01T00:00:01Z").unwrap(), 951_868_801_000_000);
        assert_eq!(format(951_868_801_000_000), "2000-03-01T00:00:01Z");
        for us in [0, 1_700_000_000_000_000, 4_102_444_800_000_000] {
            assert_eq!(parse(&format(us)).unwrap(), us);
        }
        assert!(parse("2031-13-01").is_err());
        assert!(parse("yesterday").is_err());
        assert!(parse("2031-01-01T25:00:00Z").is_err());
        assert!(
            parse("99999999999999-01-01").is_err(),
            "no overflow on absurd years"
        );
    }
}
