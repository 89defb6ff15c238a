//! The configuration a store runs under is part of its record.
//!
//! At open the store compares the effective configuration it is given (flat
//! values, see `firmware_config::effective`) with the one its audit trail last
//! recorded. A difference is recorded as a `config-changed` event with every
//! old and new value and all values now in effect, so the trail alone says
//! which retention periods, rules and settings applied to any record. A
//! change that could shorten retention for new records is not taken on a
//! file edit alone: until someone with the retention role approves it with a
//! reason, the store refuses new records (reads go on) and the refusal is
//! recorded once per distinct configuration.

use std::collections::BTreeMap;

use firmware_config::effective::{held_before, retention_shortenings};
use sha2::{Digest, Sha256};

use crate::compliance::audit::{Action, Actor, AuditEvent, Outcome, SettingChange};
use crate::error::{Error, Result};
use crate::store::Store;

/// SHA-256 (hex) of the values' canonical JSON (keys sorted).
pub fn digest(values: &BTreeMap<String, String>) -> String {
    let json = serde_json::to_vec(values).expect("string maps serialise");
    hex::encode(Sha256::digest(json))
}

/// Every key whose value differs between `old` and `new`.
pub fn changes(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<SettingChange> {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| SettingChange {
            key: k.clone(),
            old: old.get(k).cloned(),
            new: new.get(k).cloned(),
        })
        .collect()
}

/// The longest class period the values name, in days.
fn longest_days(values: &BTreeMap<String, String>) -> i64 {
    values
        .iter()
        .filter(|(k, _)| k.starts_with("retention.classes.") && k.ends_with(".days"))
        .filter_map(|(_, v)| v.parse::<i64>().ok())
        .max()
        .unwrap_or(0)
}

fn is_change_event(e: &AuditEvent) -> bool {
    matches!(e.action, Action::ConfigChanged { .. })
}

impl Store {
    /// Record `values` if they differ from the last recorded configuration;
    /// returns the unapproved changes that could shorten retention (the
    /// store then refuses new records). `approval` approves them if its
    /// actor has the retention role and gives a reason.
    pub(crate) fn record_configuration_at_open(
        &self,
        values: &BTreeMap<String, String>,
        approval: Option<&(Actor, String)>,
    ) -> Result<Vec<String>> {
        if values.is_empty() || self.open_report().read_only_at.is_some() {
            return Ok(Vec::new());
        }
        let digest = digest(values);
        let last = self.latest_audit_event("config-changed", |e| {
            e.outcome == Outcome::Done && is_change_event(e)
        })?;
        let old = match last.map(|(_, e)| e.action) {
            Some(Action::ConfigChanged { digest: d, .. }) if d == digest => return Ok(Vec::new()),
            Some(Action::ConfigChanged { values, .. }) => Some(values),
            _ => None,
        };
        let shortens = old
            .as_ref()
            .map(|o| retention_shortenings(o, values))
            .unwrap_or_default();
        let authority = |actor: &Actor| {
            old.as_ref().is_some_and(|o| {
                held_before(
                    o,
                    values,
                    &actor.name,
                    &crate::compliance::hold::role_name(firmware_config::Role::Retention),
                )
            })
        };
        let action = Action::ConfigChanged {
            digest: digest.clone(),
            changes: changes(old.as_ref().unwrap_or(&BTreeMap::new()), values),
            shortens_retention: shortens.clone(),
            values: values.clone(),
        };
        if shortens.is_empty() {
            let (actor, reason) = approval.cloned().unwrap_or_else(|| {
                (
                    Actor::system(),
                    "opened with a changed configuration".into(),
                )
            });
            self.write_audit(&actor, action, Outcome::Done, &reason)?;
            return Ok(Vec::new());
        }
        match approval {
            Some((actor, reason)) => {
                Store::require_reason(reason)?;
                self.require(actor, firmware_config::Role::Retention, &action, reason)?;
                if !authority(actor) {
                    return self.refuse_approval(actor, action, reason);
                }
                self.write_audit(actor, action, Outcome::Done, reason)?;
                Ok(Vec::new())
            }
            None => {
                // Until approved, the store's own records keep the old longest period.
                let old_longest = old.as_ref().map_or(0, longest_days);
                self.shared
                    .longest_retention_days
                    .fetch_max(old_longest, std::sync::atomic::Ordering::AcqRel);
                self.refuse_configuration(action, digest, shortens)
            }
        }
    }

    /// The approver's role or token comes from the change itself.
    fn refuse_approval(&self, actor: &Actor, action: Action, reason: &str) -> Result<Vec<String>> {
        let why = format!(
            "{} did not hold the retention role with this token under the configuration in effect before the change",
            actor.name
        );
        self.write_audit(actor, action, Outcome::Refused { why: why.clone() }, reason)?;
        Err(Error::Refused {
            action: "approve a configuration that shortens retention".into(),
            reason: why,
        })
    }

    fn refuse_configuration(
        &self,
        action: Action,
        digest: String,
        shortens: Vec<String>,
    ) -> Result<Vec<String>> {
        let refused_before = self.latest_audit_event(
            "config-changed",
            |e| matches!(&e.action, Action::ConfigChanged { digest: d, .. } if *d == digest),
        )?;
        if refused_before.is_none_or(|(_, e)| e.outcome == Outcome::Done) {
            let why = "it could shorten retention for new records and is not approved by the retention role".to_string();
            self.write_audit(
                &Actor::system(),
                action,
                Outcome::Refused { why },
                "found at open: the configuration file changed",
            )?;
        }
        tracing::error!(
            changes = ?shortens,
            "the configuration could shorten retention and is not approved: new records are refused"
        );
        *self
            .configuration_unapproved
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = shortens.clone();
        Ok(shortens)
    }

    /// New records are refused while a retention-shortening configuration waits for approval.
    pub(crate) fn configuration_approved(&self) -> Result<()> {
        let changes = self
            .configuration_unapproved
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if changes.is_empty() {
            Ok(()) // every append passes here: no copy
        } else {
            Err(Error::ConfigurationUnapproved {
                changes: changes.clone(),
            })
        }
    }
}
