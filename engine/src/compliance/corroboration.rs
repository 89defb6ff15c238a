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

use crate::compliance::audit::{Action, Actor, Outcome};
use crate::error::{Error, Result};
use crate::store::Store;

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
struct Stated {
    source: String,
    utc_us: i64,
    second: String,
    evidence: Option<String>,
    /// How far apart two honest statements may be read.
    slack_us: i64,
}

impl Stated {
    fn action(&self, compliance_us: i64, fast_by_us: Option<i64>) -> Action {
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

impl Store {
    /// Check an attestation's two principals: distinct, authenticated, of different roles.
    fn attesters_refusal(a: &Attestation) -> Option<String> {
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

    /// Corroborate the compliance clock with a four-eyes attestation.
    pub fn attest_time(&self, a: &Attestation) -> Result<AttestationReport> {
        Store::require_reason(&a.reason)?;
        self.record_clock_anomalies()?;
        let stated = Stated {
            source: "four-eyes attestation".into(),
            utc_us: a.utc_us,
            second: a.second.name.clone(),
            evidence: None,
            slack_us: ATTESTATION_SLACK_US,
        };
        if let Some(why) = Store::attesters_refusal(a) {
            return self.refuse_corroboration(&a.first, &stated, why, &a.reason);
        }
        self.record_corroboration(&a.first, stated, &a.reason)
    }

    /// Corroborate the compliance clock with a time server's signed answer
    /// (checked by the caller against the server's configured public key).
    /// The earliest time the answer allows (midpoint minus radius) is what
    /// destructive acts go by; an answer less precise than the error the
    /// clock may gather is refused.
    pub fn corroborate_by_server(
        &self,
        actor: &Actor,
        t: &ServerTime,
        reason: &str,
    ) -> Result<AttestationReport> {
        Store::require_reason(reason)?;
        self.record_clock_anomalies()?;
        let earliest = t.midpoint_us.saturating_sub(t.radius_us);
        let stated = Stated {
            source: t.source.clone(),
            utc_us: earliest,
            second: String::new(),
            evidence: Some(t.evidence.clone()),
            slack_us: 2 * t.radius_us,
        };
        let why = if t.radius_us < 0 || t.radius_us > self.clock_max_error_us {
            Some(format!(
                "{} answered with an uncertainty of {} s, more than the {} s the clock may be off",
                t.source,
                t.radius_us / 1_000_000,
                self.clock_max_error_us / 1_000_000
            ))
        } else {
            crate::time::timestamp::check("server time", earliest)
                .err()
                .map(|e| e.to_string())
        };
        if let Some(why) = why {
            return self.refuse_corroboration(actor, &stated, why, reason);
        }
        self.record_corroboration(actor, stated, reason)
    }

    fn refuse_corroboration(
        &self,
        actor: &Actor,
        s: &Stated,
        why: String,
        reason: &str,
    ) -> Result<AttestationReport> {
        let action = s.action(self.compliance_now_us(), None);
        self.write_audit(actor, action, Outcome::Refused { why: why.clone() }, reason)?;
        Err(Error::Refused {
            action: format!("corroborate the time by {}", s.source),
            reason: why,
        })
    }

    fn record_corroboration(
        &self,
        actor: &Actor,
        s: Stated,
        reason: &str,
    ) -> Result<AttestationReport> {
        let now = self.compliance_now_us();
        let fast_by_us = self
            .compliance()
            .clock_trust()?
            .corroboration
            .and_then(|p| {
                let clock = now - p.compliance_us;
                let real = s.utc_us - p.attested_us;
                let allowed = real + real.max(0) * i64::from(self.clock().drift_ppm()) / 1_000_000;
                (clock > allowed + s.slack_us).then_some(clock - allowed)
            });
        let seq = self.write_audit(actor, s.action(now, fast_by_us), Outcome::Done, reason)?;
        Ok(AttestationReport {
            seq,
            attested_us: s.utc_us,
            compliance_us: now,
            ahead_us: now - s.utc_us,
            fast_by_us,
        })
    }

    /// The time destructive act `act` may go by, or a refusal (audited).
    pub(crate) fn destructive_now(&self, actor: &Actor, act: &str, reason: &str) -> Result<i64> {
        self.record_clock_anomalies()?;
        let trust = self.compliance().clock_trust()?;
        let now = self.compliance_now_us();
        let ppm = self.clock().drift_ppm();
        match destructive_time(&trust, now, ppm, self.clock_max_error_us) {
            Ok(t) => Ok(t),
            Err(why) => {
                self.write_audit(
                    actor,
                    Action::ClockUncorroborated { act: act.into() },
                    Outcome::Refused {
                        why: why.to_string(),
                    },
                    reason,
                )?;
                Err(Error::ClockUncorroborated {
                    act: act.into(),
                    why,
                })
            }
        }
    }

    /// Whether destructive acts may run now, and by what time.
    pub fn clock_trust(&self) -> Result<(ClockTrust, std::result::Result<i64, Uncorroborated>)> {
        let trust = self.compliance().clock_trust()?;
        let t = destructive_time(
            &trust,
            self.compliance_now_us(),
            self.clock().drift_ppm(),
            self.clock_max_error_us,
        );
        Ok((trust, t))
    }
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
}
