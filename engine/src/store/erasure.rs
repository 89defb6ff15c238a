//! The store's erasures: the rules are `compliance::erasure`'s; here a
//! request is recorded, the subject's records are found through the index
//! and judged against retention, holds and the corroborated clock, and an
//! erasure that may go destroys the subject's keys in the keystore.

use firmware_config::{DataSubject, Role};

use crate::compliance::audit::{Action, Actor, Outcome};
use crate::compliance::erasure::{self, ErasureState};
use crate::compliance::state::Erasure;
use crate::crypto::keys::TagDomain;
use crate::error::{Error, Result};
use crate::format::frame::FrameKind;
use crate::store::Store;

/// What the index holds of a subject.
struct Subject {
    records: u64,
    /// The latest retain-until of its records.
    latest: i64,
    held: Vec<u64>,
    /// Its media manifests, whose chunk references go with the keys.
    manifests: Vec<u64>,
}

impl Store {
    /// Record an erasure request for `subject` and try to execute it at once.
    pub fn request_erasure(
        &self,
        actor: &Actor,
        subject: &str,
        reason: &str,
    ) -> Result<(u64, ErasureState)> {
        let action = Action::ErasureRequested {
            subject_kind: erasure::subject_kind(self.subject).into(),
            subject: subject.into(),
        };
        let id = {
            let _g = self.compliance_guard();
            self.require(actor, Role::Erasure, &action, reason)?;
            Store::require_reason(reason)?;
            erasure::check_request(subject, self.shared.keyring.is_some())?;
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

    /// The subject's records as the index has them, judged at `now`.
    fn subject_records(&self, subject: &str) -> Result<Subject> {
        let index = &self.shared.index;
        let seqs = match self.subject {
            DataSubject::Conversation => index.by_conversation_tag(
                &self.tag_or_zero(TagDomain::Conversation, subject),
                usize::MAX,
            )?,
            DataSubject::Custodian => {
                index.by_custodian_tag(&self.shared.keys.custodian_tag(subject), usize::MAX)?
            }
        };
        let c = self.compliance();
        let extensions = c.extensions()?;
        let holds = c.active_holds()?;
        let mut found = Subject {
            records: 0,
            latest: i64::MIN,
            held: Vec::new(),
            manifests: Vec::new(),
        };
        for s in seqs {
            let Some(loc) = index.location(s)? else {
                continue;
            };
            found.records += 1;
            if loc.kind == FrameKind::Manifest {
                found.manifests.push(s);
            }
            found.latest = found.latest.max(self.effective_until(&loc, &extensions));
            for h in self.holds_on(&loc, &holds) {
                if !found.held.contains(&h) {
                    found.held.push(h);
                }
            }
        }
        Ok(found)
    }

    fn process_erasure(&self, actor: &Actor, req: &Erasure) -> Result<ErasureState> {
        let _g = self.compliance_guard();
        self.sync_index()?;
        let found = self.subject_records(&req.subject)?;
        let now = self.compliance_now_us();
        let (waiting, now) = match erasure::waiting_for_records(&found.held, found.latest, now) {
            Some(w) => (Some(w), now),
            None => {
                let why = format!("erasure request {}", req.id);
                let corroborated = self.destructive_now(actor, "erasure", &why);
                erasure::waiting_for_clock(corroborated, found.latest, now)?
            }
        };
        if let Some((why, earliest_us)) = waiting {
            self.record_wait(actor, req, &why, earliest_us)?;
            return Ok(ErasureState::Waiting { why, earliest_us });
        }
        self.execute_erasure(actor, req, &found, now)
    }

    /// Record why a request waits, when that changed.
    fn record_wait(
        &self,
        actor: &Actor,
        req: &Erasure,
        why: &str,
        earliest_us: Option<i64>,
    ) -> Result<()> {
        if req.waiting.as_deref() == Some(why) {
            return Ok(());
        }
        let action = Action::ErasureDeferred {
            request: req.id,
            why: why.into(),
            earliest_us,
        };
        let note = "erasure waits for retention and holds";
        self.write_audit(actor, action, Outcome::Done, note)
            .map(|_| ())
    }

    /// Destroy the subject's data keys (rotating the key-encryption key)
    /// and record it.
    fn execute_erasure(
        &self,
        actor: &Actor,
        req: &Erasure,
        found: &Subject,
        now: i64,
    ) -> Result<ErasureState> {
        let ring = self.shared.keyring.as_ref().ok_or_else(|| {
            Error::invalid("erasure", "this store was opened without per-subject keys")
        })?;
        let before = ring.provider();
        let key_ids = ring.destroy_subject(&self.subject_tag(&req.subject), now, req.id)?;
        // The shredded manifests no longer protect their chunks (and a rebuilt index could not read them).
        self.shared.index.remove_chunk_refs_of(&found.manifests)?;
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
                records: found.records,
            },
            Outcome::Done,
            &format!("erasure request {} executed", req.id),
        )?;
        Ok(ErasureState::Executed {
            key_ids,
            records: found.records,
        })
    }
}
