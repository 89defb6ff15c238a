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

use firmware_config::{DataSubject, Role};
use serde::Serialize;

use crate::compliance::audit::{Action, Actor, Outcome, AUDIT_CONVERSATION};
use crate::compliance::state::Erasure;
use crate::crypto::keys::TagDomain;
use crate::error::{Error, Result};
use crate::store::Store;

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
type Waiting = Option<(String, Option<i64>)>;

impl Store {
    fn subject_kind(&self) -> &'static str {
        match self.subject {
            DataSubject::Conversation => "conversation",
            DataSubject::Custodian => "custodian",
        }
    }

    /// Record an erasure request for `subject` and try to execute it at once.
    pub fn request_erasure(
        &self,
        actor: &Actor,
        subject: &str,
        reason: &str,
    ) -> Result<(u64, ErasureState)> {
        let action = Action::ErasureRequested {
            subject_kind: self.subject_kind().into(),
            subject: subject.into(),
        };
        let id = {
            let _g = self
                .compliance_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.require(actor, Role::Erasure, &action, reason)?;
            Store::require_reason(reason)?;
            if subject.trim().is_empty() || subject == AUDIT_CONVERSATION {
                return Err(Error::invalid(
                    "erasure subject",
                    format!("{subject:?} is not a data subject"),
                ));
            }
            if self.shared.keyring.is_none() {
                return Err(Error::invalid(
                    "erasure",
                    "this store was opened without per-subject keys, so no subject's key can be destroyed",
                ));
            }
            self.write_audit(actor, action, Outcome::Done, reason)?
        };
        let req = self
            .compliance()
            .erasure(id)?
            .ok_or_else(|| Error::NotFound {
                what: format!("erasure request {id}"),
            })?;
        Ok((id, self.process_erasure(actor, &req)?))
    }

    /// Every erasure request, oldest first.
    pub fn erasures(&self) -> Result<Vec<Erasure>> {
        self.compliance().erasures()
    }

    /// Try every waiting request again (run daily, and after holds are released).
    pub fn process_erasures(&self, actor: &Actor) -> Result<Vec<(u64, ErasureState)>> {
        let mut out = Vec::new();
        for r in self.erasures()? {
            if r.executed.is_none() {
                out.push((r.id, self.process_erasure(actor, &r)?));
            }
        }
        Ok(out)
    }

    /// Nothing is shredded on an uncorroborated clock, nor before the
    /// corroborated time passes `latest` (the subject's last retain-until).
    fn erasure_clock(
        &self,
        actor: &Actor,
        req: &Erasure,
        latest: i64,
        now: i64,
    ) -> Result<(Waiting, i64)> {
        let reason = format!("erasure request {}", req.id);
        match self.destructive_now(actor, "erasure", &reason) {
            Ok(t) if latest > t => Ok((
                Some((
                    format!(
                        "records of the subject are retained until {} and the corroborated clock reads {}",
                        crate::time::clock::utc(latest),
                        crate::time::clock::utc(t)
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

    fn process_erasure(&self, actor: &Actor, req: &Erasure) -> Result<ErasureState> {
        let _g = self
            .compliance_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.sync_index()?;
        let index = &self.shared.index;
        let seqs = match self.subject {
            DataSubject::Conversation => index.by_conversation_tag(
                &self.tag_or_zero(TagDomain::Conversation, &req.subject),
                usize::MAX,
            )?,
            DataSubject::Custodian => {
                index.by_custodian_tag(&self.shared.keys.custodian_tag(&req.subject), usize::MAX)?
            }
        };
        let c = self.compliance();
        let extensions = c.extensions()?;
        let holds = c.active_holds()?;
        let now = self.compliance_now_us();
        let mut latest = i64::MIN;
        let mut held = Vec::new();
        let mut records = 0u64;
        let mut manifests = Vec::new();
        for s in seqs {
            let Some(loc) = index.location(s)? else {
                continue;
            };
            records += 1;
            if loc.kind == crate::format::frame::FrameKind::Manifest {
                manifests.push(s);
            }
            latest = latest.max(self.effective_until(&loc, &extensions));
            for h in self.holds_on(&loc, &holds) {
                if !held.contains(&h) {
                    held.push(h);
                }
            }
        }
        let waiting = if !held.is_empty() {
            Some((
                format!("records of the subject are under legal hold {held:?}"),
                None,
            ))
        } else if latest > now {
            Some((
                format!(
                    "records of the subject are retained until {} (compliance clock {}); a legal retention duty overrides erasure (GDPR Art. 17(3)(b))",
                    crate::time::clock::utc(latest),
                    crate::time::clock::utc(now)
                ),
                Some(latest),
            ))
        } else {
            None
        };
        let (waiting, now) = match waiting {
            Some(w) => (Some(w), now),
            None => self.erasure_clock(actor, req, latest, now)?,
        };
        if let Some((why, earliest_us)) = waiting {
            if req.waiting.as_deref() != Some(why.as_str()) {
                self.write_audit(
                    actor,
                    Action::ErasureDeferred {
                        request: req.id,
                        why: why.clone(),
                        earliest_us,
                    },
                    Outcome::Done,
                    "erasure waits for retention and holds",
                )?;
            }
            return Ok(ErasureState::Waiting { why, earliest_us });
        }
        let ring = self.shared.keyring.as_ref().ok_or_else(|| {
            Error::invalid("erasure", "this store was opened without per-subject keys")
        })?;
        let before = ring.provider();
        let key_ids = ring.destroy_subject(&self.subject_tag(&req.subject), now, req.id)?;
        // The shredded manifests no longer protect their chunks (and a rebuilt index could not read them).
        index.remove_chunk_refs_of(&manifests)?;
        tracing::info!(
            request = req.id,
            keys = key_ids.len(),
            provider = before,
            "subject crypto-shredded"
        );
        self.write_audit(
            actor,
            Action::ErasureExecuted {
                request: req.id,
                key_ids: key_ids.clone(),
                records,
            },
            Outcome::Done,
            &format!("erasure request {} executed", req.id),
        )?;
        Ok(ErasureState::Executed { key_ids, records })
    }
}
