//! Corroborated time: what destructive acts (zone reclaim, erasure) go by.
//!
//! The compliance clock ([`crate::time::clock`]) cannot be moved faster than real
//! elapsed time plus the drift budget, but it starts from the system clock,
//! counts no downtime, and over months its permitted drift adds up. So a
//! record is destroyed only on a clock an independent source has vouched
//! for: a four-eyes attestation (two authenticated principals with
//! different roles state the true UTC time, read from a clock they trust).
//! Or a Roughtime server whose public key is configured: its signed answer
//! ([`ServerTime`], queried by the appliance) is kept in the audit event as
//! evidence anyone can check. A replica's clock and NTS are further sources
//! of the same kind, not implemented.
//!
//! An attestation is an audit event (`clock-corroborated`) holding the
//! attested time and the compliance time it was compared with. Destructive
//! acts then go by the attested time plus the compliance clock's advance
//! since ([`destructive_time`]), never by a compliance clock found ahead of
//! the attestation, and only while that advance times the drift budget (the
//! error it may have gathered) is within `max_error_us`. After an
//! elapsed-time disagreement ([`crate::time::clock::AnomalyKind::ElapsedDisagrees`])
//! nothing is destroyed until the clock is corroborated again. Refusals are
//! audited (`clock-uncorroborated`).

use firmware_config::Role;
use serde::{Deserialize, Serialize};

use crate::compliance::audit::{Action, Actor};

/// The latest corroboration, as the compliance state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corroboration {
    /// Seq of its `clock-corroborated` event.
    pub seq: u64,
    pub source: String,
    /// The true time the source stated (UTC µs).
    pub attested_us: i64,
    /// The compliance clock when it was compared (UTC µs).
    pub compliance_us: i64,
}

/// What destructive acts may rely on: the latest corroboration and any
/// elapsed-time disagreement noticed after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockTrust {
    pub corroboration: Option<Corroboration>,
    /// Seq of the first `elapsed-disagrees` anomaly after the corroboration.
    pub disputed_since: Option<u64>,
}

pub use crate::error::Uncorroborated;

/// The time a destructive act at compliance time `now_us` may go by.
pub fn destructive_time(
    trust: &ClockTrust,
    now_us: i64,
    drift_ppm: u32,
    max_error_us: i64,
) -> std::result::Result<i64, Uncorroborated> {
    let c = trust.corroboration.as_ref().ok_or(Uncorroborated::Never)?;
    if let Some(since) = trust.disputed_since {
        return Err(Uncorroborated::ElapsedDisputed { since });
    }
    let advance = now_us.saturating_sub(c.compliance_us).max(0);
    let possible = (advance as i128 * i128::from(drift_ppm) / 1_000_000) as i64;
    if possible > max_error_us {
        return Err(Uncorroborated::Stale {
            seq: c.seq,
            advance_s: advance / 1_000_000,
            possible_error_s: possible / 1_000_000,
            max_error_s: max_error_us / 1_000_000,
        });
    }
    Ok(now_us.min(c.attested_us.saturating_add(advance)))
}

/// A four-eyes statement of the true time.
#[derive(Debug, Clone)]
pub struct Attestation {
    pub first: Actor,
    pub second: Actor,
    /// The true time they read (UTC µs).
    pub utc_us: i64,
    pub reason: String,
}

/// What an attestation found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttestationReport {
    pub seq: u64,
    pub attested_us: i64,
    pub compliance_us: i64,
    /// Compliance minus attested time: positive when the clock was ahead.
    pub ahead_us: i64,
    /// Since the previous corroboration the clock advanced this much more
    /// than the attested times did (beyond the drift budget), if it did.
    pub fast_by_us: Option<i64>,
}

/// A time server's answer, verified against its public key by the caller.
#[derive(Debug, Clone)]
pub struct ServerTime {
    /// Which server, e.g. `roughtime 192.0.2.7:2002 (key …)`.
    pub source: String,
    /// The server's midpoint and radius (UTC µs): the true time lies within.
    pub midpoint_us: i64,
    pub radius_us: i64,
    /// The signed response, hex.
    pub evidence: String,
}

/// A statement of the true time, from people or a server.
pub(crate) struct Stated {
    pub source: String,
    pub utc_us: i64,
    second: String,
    evidence: Option<String>,
    /// How far apart two honest statements may be read.
    slack_us: i64,
}

impl Stated {
    /// The audit event that records it, compared with `compliance_us`.
    pub fn action(&self, compliance_us: i64, fast_by_us: Option<i64>) -> Action {
        Action::ClockCorroborated {
            source: self.source.clone(),
            attested_us: self.utc_us,
            compliance_us,
            second: self.second.clone(),
            fast_by_us,
            evidence: self.evidence.clone(),
        }
    }
}

/// Attested times are read by people: seconds apart at best.
const ATTESTATION_SLACK_US: i64 = 300_000_000;

/// The earliest and latest times an attestation may state (2000 to 9999).
const ATTESTABLE_US: std::ops::RangeInclusive<i64> = 946_684_800_000_000..=253_402_300_799_000_000;

/// Why an attestation's two principals cannot corroborate the clock (they
/// must be distinct, authenticated, of different roles, stating a time
/// from 2000 to 9999), or `None`.
pub fn attesters_refusal(a: &Attestation) -> Option<String> {
    let roles = |x: &Actor| {
        let mut r: Vec<Role> = x.roles.clone();
        r.sort_by_key(|r| format!("{r:?}"));
        r.dedup();
        r
    };
    if a.first.roles.is_empty() || a.second.roles.is_empty() {
        Some("both attesting principals must be authenticated and hold a role".into())
    } else if a.first.name == a.second.name {
        Some(format!(
            "{} cannot attest twice: four eyes are two people",
            a.first.name
        ))
    } else if roles(&a.first) == roles(&a.second) {
        Some(format!(
            "{} and {} hold the same roles: an attestation needs principals of different roles",
            a.first.name, a.second.name
        ))
    } else if let Err(e) = crate::time::timestamp::check("attested time", a.utc_us) {
        Some(e.to_string())
    } else if !ATTESTABLE_US.contains(&a.utc_us) {
        Some(format!("attested time {} µs is before 2000", a.utc_us))
    } else {
        None
    }
}

/// What a four-eyes attestation states.
pub(crate) fn stated_by_people(a: &Attestation) -> Stated {
    Stated {
        source: "four-eyes attestation".into(),
        utc_us: a.utc_us,
        second: a.second.name.clone(),
        evidence: None,
        slack_us: ATTESTATION_SLACK_US,
    }
}

/// What a time server's answer states: the earliest time it allows
/// (midpoint minus radius), and why it cannot corroborate a clock that may
/// be off by `max_error_us` (an answer less precise than that), if so.
pub(crate) fn stated_by_server(t: &ServerTime, max_error_us: i64) -> (Stated, Option<String>) {
    let earliest = t.midpoint_us.saturating_sub(t.radius_us);
    let stated = Stated {
        source: t.source.clone(),
        utc_us: earliest,
        second: String::new(),
        evidence: Some(t.evidence.clone()),
        slack_us: 2 * t.radius_us,
    };
    let why = if t.radius_us < 0 || t.radius_us > max_error_us {
        Some(format!(
            "{} answered with an uncertainty of {} s, more than the {} s the clock may be off",
            t.source,
            t.radius_us / 1_000_000,
            max_error_us / 1_000_000
        ))
    } else {
        crate::time::timestamp::check("server time", earliest)
            .err()
            .map(|e| e.to_string())
    };
    (stated, why)
}

/// How much faster than the stated times (beyond the drift budget and the
/// statements' slack) the compliance clock, now at `now_us`, advanced since
/// the `previous` corroboration, if it did.
pub(crate) fn ran_fast_by(
    previous: Option<&Corroboration>,
    s: &Stated,
    now_us: i64,
    drift_ppm: u32,
) -> Option<i64> {
    let p = previous?;
    let clock = now_us - p.compliance_us;
    let real = s.utc_us - p.attested_us;
    let allowed = real + real.max(0) * i64::from(drift_ppm) / 1_000_000;
    (clock > allowed + s.slack_us).then_some(clock - allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn trust(attested: i64, compliance: i64) -> ClockTrust {
        ClockTrust {
            corroboration: Some(Corroboration {
                seq: 7,
                source: "four-eyes attestation".into(),
                attested_us: attested,
                compliance_us: compliance,
            }),
            disputed_since: None,
        }
    }

    #[test]
    fn never_corroborated_is_refused() {
        let t = ClockTrust::default();
        assert_eq!(
            destructive_time(&t, 1000 * S, 1000, 3600 * S),
            Err(Uncorroborated::Never)
        );
    }

    #[test]
    fn a_clock_ahead_of_the_attestation_is_held_to_it() {
        // The clock was a year ahead when attested; a day later acts go by the attested time plus a day.
        let year = 365 * 86_400 * S;
        let t = trust(1_000_000 * S, 1_000_000 * S + year);
        let now = 1_000_000 * S + year + 86_400 * S;
        assert_eq!(
            destructive_time(&t, now, 1000, 3600 * S),
            Ok(1_000_000 * S + 86_400 * S)
        );
    }

    #[test]
    fn a_clock_behind_goes_by_itself() {
        let t = trust(2_000 * S, 1_000 * S);
        assert_eq!(
            destructive_time(&t, 1_500 * S, 1000, 3600 * S),
            Ok(1_500 * S)
        );
    }

    #[test]
    fn the_drift_budget_bounds_how_long_a_corroboration_lasts() {
        let t = trust(1_000 * S, 1_000 * S);
        // At 1000 ppm, one hour of error builds up in 1000 hours.
        let ok = 1_000 * S + 999 * 3600 * S;
        assert!(destructive_time(&t, ok, 1000, 3600 * S).is_ok());
        let stale = 1_000 * S + 1001 * 3600 * S;
        assert!(matches!(
            destructive_time(&t, stale, 1000, 3600 * S),
            Err(Uncorroborated::Stale { .. })
        ));
    }

    #[test]
    fn a_dispute_after_corroboration_refuses() {
        let mut t = trust(1_000 * S, 1_000 * S);
        t.disputed_since = Some(9);
        assert_eq!(
            destructive_time(&t, 1_001 * S, 1000, 3600 * S),
            Err(Uncorroborated::ElapsedDisputed { since: 9 })
        );
    }

    fn actor(name: &str, roles: &[Role]) -> Actor {
        Actor::new(name, roles)
    }

    #[test]
    fn four_eyes_are_two_authenticated_people_of_different_roles() {
        let a = |first: Actor, second: Actor, utc_us: i64| Attestation {
            first,
            second,
            utc_us,
            reason: "quarterly check".into(),
        };
        let now = 1_700_000_000 * S;
        let (ops, legal) = (&[Role::Operator][..], &[Role::LegalHold][..]);
        assert_eq!(
            attesters_refusal(&a(actor("ann", ops), actor("bo", legal), now)),
            None
        );
        let same_person = attesters_refusal(&a(actor("ann", ops), actor("ann", legal), now));
        assert!(same_person.is_some_and(|w| w.contains("four eyes")));
        let same_roles = attesters_refusal(&a(actor("ann", ops), actor("bo", ops), now));
        assert!(same_roles.is_some_and(|w| w.contains("same roles")));
        let anonymous = attesters_refusal(&a(actor("ann", &[]), actor("bo", legal), now));
        assert!(anonymous.is_some_and(|w| w.contains("authenticated")));
        let long_ago = attesters_refusal(&a(actor("ann", ops), actor("bo", legal), 10 * S));
        assert!(long_ago.is_some_and(|w| w.contains("before 2000")));
    }

    #[test]
    fn a_server_answer_goes_by_its_earliest_time_and_must_be_precise_enough() {
        let t = ServerTime {
            source: "roughtime test".into(),
            midpoint_us: 1_700_000_000 * S,
            radius_us: 2 * S,
            evidence: "00".into(),
        };
        let (stated, why) = stated_by_server(&t, 60 * S);
        assert_eq!((stated.utc_us, why), (1_700_000_000 * S - 2 * S, None));
        let (_, why) = stated_by_server(&t, S);
        assert!(why.is_some_and(|w| w.contains("uncertainty of 2 s")));
    }

    #[test]
    fn a_clock_that_ran_fast_between_corroborations_is_measured() {
        let prev = trust(1_000 * S, 1_000 * S).corroboration.expect("one");
        let stated = |utc_us| Stated {
            source: "x".into(),
            utc_us,
            second: String::new(),
            evidence: None,
            slack_us: 0,
        };
        // A day passed by the stated times; the clock counted a day and 100 s.
        let day = 86_400 * S;
        let fast = ran_fast_by(
            Some(&prev),
            &stated(1_000 * S + day),
            1_000 * S + day + 100 * S,
            0,
        );
        assert_eq!(fast, Some(100 * S));
        // Within the drift budget (1000 ppm of a day is 86.4 s) 80 s is not fast.
        let within = ran_fast_by(
            Some(&prev),
            &stated(1_000 * S + day),
            1_000 * S + day + 80 * S,
            1000,
        );
        assert_eq!(within, None);
        assert_eq!(ran_fast_by(None, &stated(0), 0, 0), None);
    }
}
