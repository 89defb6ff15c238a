//! Crypto-shredding: GDPR Art. 17 erasure without rewriting the log.
//!
//! A request for a data subject (a conversation or a custodian, whichever
//! the store keys by) is recorded at once. It executes only when every
//! record of the subject has left retention and no hold covers any of them
//! (Art. 17(3)(b): a legal duty to retain overrides erasure); until then it
//! waits, and each change in why it waits is recorded. Executing destroys
//! the subject's data keys (and rotates the key-encryption key so no old
//! wrapped copy survives); the ciphertext stays where it is, and reads of
//! it return [`crate::Error::Erased`].

use firmware_config::DataSubject;
use serde::Serialize;

use crate::compliance::audit::AUDIT_CONVERSATION;
use crate::error::{Error, Result};
use crate::time::clock::utc;

/// What processing a request found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ErasureState {
    Waiting {
        why: String,
        /// When the subject's last unheld record leaves retention (compliance time).
        earliest_us: Option<i64>,
    },
    Executed {
        key_ids: Vec<u32>,
        records: u64,
    },
}

/// Why a request waits, and until when (if known).
pub type Waiting = Option<(String, Option<i64>)>;

/// What the store keys data subjects by, as the audit trail names it.
pub fn subject_kind(subject: DataSubject) -> &'static str {
    match subject {
        DataSubject::Conversation => "conversation",
        DataSubject::Custodian => "custodian",
    }
}

/// A request must name a data subject, and a store must have per-subject
/// keys (`keyring`) for any subject's key to be destroyed.
pub fn check_request(subject: &str, keyring: bool) -> Result<()> {
    if subject.trim().is_empty() || subject == AUDIT_CONVERSATION {
        return Err(Error::invalid(
            "erasure subject",
            format!("{subject:?} is not a data subject"),
        ));
    }
    if !keyring {
        return Err(Error::invalid(
            "erasure",
            "this store was opened without per-subject keys, so no subject's key can be destroyed",
        ));
    }
    Ok(())
}

/// Why erasure must wait by the records alone: a hold on any of them, or
/// `latest` (the subject's last retain-until) after `now`. A legal duty to
/// retain overrides erasure (GDPR Art. 17(3)(b)).
pub fn waiting_for_records(held: &[u64], latest: i64, now: i64) -> Waiting {
    if !held.is_empty() {
        return Some((
            format!("records of the subject are under legal hold {held:?}"),
            None,
        ));
    }
    (latest > now).then(|| {
        (
            format!(
                "records of the subject are retained until {} (compliance clock {}); a legal retention duty overrides erasure (GDPR Art. 17(3)(b))",
                utc(latest),
                utc(now)
            ),
            Some(latest),
        )
    })
}

/// Why erasure must wait by the clock: nothing is shredded on an
/// uncorroborated clock (`corroborated` is the corroborated time, or the
/// error saying why there is none), nor before the corroborated time passes
/// `latest`. Returns the wait and the time to execute at.
pub fn waiting_for_clock(
    corroborated: Result<i64>,
    latest: i64,
    now: i64,
) -> Result<(Waiting, i64)> {
    match corroborated {
        Ok(t) if latest > t => Ok((
            Some((
                format!(
                    "records of the subject are retained until {} and the corroborated clock reads {}",
                    utc(latest),
                    utc(t)
                ),
                Some(latest),
            )),
            t,
        )),
        Ok(t) => Ok((None, t)),
        Err(Error::ClockUncorroborated { why, .. }) => Ok((
            Some((format!("the compliance clock is not corroborated: {why}"), None)),
            now,
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_outranks_retention_in_the_reason() {
        let w = waiting_for_records(&[7], i64::MAX, 0).expect("waits");
        assert!(w.0.contains("legal hold [7]"), "{}", w.0);
        assert_eq!(w.1, None);
    }

    #[test]
    fn retention_waits_until_its_end_and_not_after() {
        let w = waiting_for_records(&[], 2_000, 1_000).expect("waits");
        assert_eq!(w.1, Some(2_000));
        assert!(waiting_for_records(&[], 1_000, 1_000).is_none());
    }

    #[test]
    fn an_uncorroborated_clock_defers_but_does_not_fail() {
        let e = Error::ClockUncorroborated {
            act: "erasure".into(),
            why: crate::error::Uncorroborated::Never,
        };
        let (w, at) = waiting_for_clock(Err(e), 0, 55).expect("defers");
        assert!(w.expect("waits").0.contains("not corroborated"));
        assert_eq!(at, 55);
        let (w, at) = waiting_for_clock(Ok(10), 20, 55).expect("defers");
        assert_eq!(w.expect("waits").1, Some(20));
        assert_eq!(at, 10);
        assert_eq!(waiting_for_clock(Ok(30), 20, 55).expect("goes").0, None);
        assert!(waiting_for_clock(Err(Error::invalid("x", "y")), 0, 0).is_err());
    }

    #[test]
    fn the_audit_trail_is_no_subject() {
        assert!(check_request(AUDIT_CONVERSATION, true).is_err());
        assert!(check_request("  ", true).is_err());
        assert!(check_request("alice", false).is_err());
        assert!(check_request("alice", true).is_ok());
    }
}
