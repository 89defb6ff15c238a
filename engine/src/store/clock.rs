//! The store's compliance clock as destructive acts see it: corroborating
//! it (a four-eyes attestation, a time server's signed answer), and the
//! time an act may go by. The rules are `compliance::corroboration`'s; here
//! they are applied to the store's clock and written to the audit trail.

use crate::compliance::audit::{Action, Actor, Outcome};
use crate::compliance::corroboration::{
    self, destructive_time, Attestation, AttestationReport, ClockTrust, ServerTime, Stated,
    Uncorroborated,
};
use crate::error::{Error, Result};
use crate::store::Store;

impl Store {
    /// Corroborate the compliance clock with a four-eyes attestation.
    pub fn attest_time(&self, a: &Attestation) -> Result<AttestationReport> {
        Store::require_reason(&a.reason)?;
        self.record_clock_anomalies()?;
        let stated = corroboration::stated_by_people(a);
        if let Some(why) = corroboration::attesters_refusal(a) {
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
        let (stated, why) = corroboration::stated_by_server(t, self.clock_max_error_us);
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
        let previous = self.compliance().clock_trust()?.corroboration;
        let fast_by_us =
            corroboration::ran_fast_by(previous.as_ref(), &s, now, self.clock().drift_ppm());
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
        let (_, t) = self.clock_trust()?;
        t.or_else(|why| {
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
        })
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
