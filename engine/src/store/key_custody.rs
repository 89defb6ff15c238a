//! What the store does with its keystore: checks it against the log at open
//! (missing keys stop new records, erased keys stay destroyed), records lost
//! keys, and rotates the key-encryption key, each audited. The keystore itself
//! ([`crate::crypto::keyring`]) knows nothing of the store or its audit trail.

use std::sync::Arc;

use crate::crypto::keyring::{KekRotation, Keyring};
use crate::error::{Error, Result};

impl crate::store::Store {
    /// Compare the keystore with the key ids the log names (the index's
    /// `key_ids`, derived from every frame header). All held: no id at or
    /// below the highest is ever issued. Some missing: new records are
    /// refused, and the finding is audited (once per distinct finding).
    pub(crate) fn check_keystore_at_open(&self) -> Result<Vec<u32>> {
        use crate::compliance::audit::{Action, Actor, Outcome};
        let Some(ring) = self.keyring() else {
            return Ok(Vec::new());
        };
        self.reapply_erasures(ring)?;
        let named: Vec<u32> = self
            .shared
            .index
            .key_ids()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let missing = ring.missing(named.iter().copied())?;
        if missing.is_empty() {
            if let Some(&highest) = named.iter().max() {
                ring.reserve_through(highest)?;
            }
            return Ok(missing);
        }
        let keystore = ring.path().display().to_string();
        let action = Action::KeystoreIncomplete {
            keystore: keystore.clone(),
            missing: missing.clone(),
        };
        let read_only = self.open_report().read_only_at.is_some();
        if !read_only && self.latest_audit_action("keystore-incomplete")?.as_ref() != Some(&action)
            || self.latest_audit_seq("data-keys-lost")?
                > self.latest_audit_seq("keystore-incomplete")?
        {
            self.write_audit(
                &Actor::system(),
                action,
                Outcome::Done,
                "found at open: the keystore lacks data keys the log's records are encrypted with",
            )?;
        }
        tracing::error!(
            keystore,
            ?missing,
            "keystore lacks data keys the log names: new records are refused"
        );
        *self.keys_missing.lock().unwrap_or_else(|p| p.into_inner()) = missing.clone();
        Ok(missing)
    }

    /// Keys an executed erasure destroyed must stay destroyed, whatever copy
    /// of the keystore is in place (one restored from a backup taken before
    /// the erasure holds them live): destroy them again, audit it, rotate the KEK.
    fn reapply_erasures(&self, ring: &Keyring) -> Result<()> {
        use crate::compliance::audit::{Action, Actor, Outcome};
        for e in self.compliance().erasures()? {
            let Some(x) = e.executed else { continue };
            let again = ring.destroy_again(&x.key_ids, x.at_us, e.id)?;
            if again.is_empty() {
                continue;
            }
            tracing::error!(request = e.id, keys = ?again, "keys of an executed erasure were live in the keystore: destroyed again");
            if self.open_report().read_only_at.is_none() {
                self.write_audit(
                    &Actor::system(),
                    Action::ErasureReapplied {
                        request: e.id,
                        key_ids: again,
                    },
                    Outcome::Done,
                    "found at open: the keystore holds keys an executed erasure destroyed (restored from an older backup?)",
                )?;
            }
            ring.rotate_kek()?;
        }
        Ok(())
    }

    /// Data key ids the log names and the keystore lacks (new records are refused while any are).
    pub fn keystore_missing(&self) -> Vec<u32> {
        self.keys_missing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn keystore_complete(&self) -> Result<()> {
        let missing = {
            let m = self.keys_missing.lock().unwrap_or_else(|p| p.into_inner());
            if m.is_empty() {
                return Ok(()); // every append passes here: no copy
            }
            m.clone()
        };
        Err(Error::KeystoreIncomplete {
            path: self
                .keyring()
                .map(|r| r.path().display().to_string())
                .unwrap_or_default(),
            missing,
        })
    }

    /// A key administrator records that no keystore holding the missing data
    /// keys exists: their records become unreadable for good (each read says
    /// so), their ids are never issued again, and new records are accepted.
    pub fn acknowledge_lost_keys(
        &self,
        actor: &crate::compliance::audit::Actor,
        reason: &str,
    ) -> Result<Vec<u32>> {
        use crate::compliance::audit::{Action, Outcome};
        let missing = self.keystore_missing();
        let action = Action::DataKeysLost {
            key_ids: missing.clone(),
        };
        self.require(actor, firmware_config::Role::KeyAdmin, &action, reason)?;
        crate::store::Store::require_reason(reason)?;
        let Some(ring) = self.keyring().filter(|_| !missing.is_empty()) else {
            return Err(Error::NotFound {
                what: "data keys missing from the keystore".into(),
            });
        };
        let seq = self.write_audit(actor, action, Outcome::Done, reason)?;
        ring.mark_lost(&missing, self.shared.clock.now_us(), seq)?;
        self.keys_missing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(missing)
    }

    /// The keyring, if the store was opened with per-subject keys.
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.shared.keyring.as_ref()
    }

    /// Rotate the key-encryption key: re-wrap every stored key under a new
    /// generation and destroy the old one. No record is rewritten.
    pub fn rotate_kek(
        &self,
        actor: &crate::compliance::audit::Actor,
        reason: &str,
    ) -> Result<KekRotation> {
        use crate::compliance::audit::{Action, Outcome};
        let placeholder = Action::KekRotated {
            from_generation: 0,
            to_generation: 0,
            rewrapped: 0,
        };
        self.require(actor, firmware_config::Role::KeyAdmin, &placeholder, reason)?;
        crate::store::Store::require_reason(reason)?;
        let ring = self.keyring().ok_or_else(|| {
            Error::invalid("key rotation", "this store was opened without a keystore")
        })?;
        let r = ring.rotate_kek()?;
        self.write_audit(
            actor,
            Action::KekRotated {
                from_generation: r.from_generation,
                to_generation: r.to_generation,
                rewrapped: r.rewrapped,
            },
            Outcome::Done,
            reason,
        )?;
        Ok(r)
    }
}
