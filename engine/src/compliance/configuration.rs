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

use crate::compliance::audit::{Action, Actor, AuditEvent, Outcome, SettingChange, Trail};
use crate::error::{Error, Result};
use firmware_config::Role;

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

/// What recording the configuration at open decided.
#[derive(Debug)]
pub(crate) enum AtOpen {
    /// Nothing to record, recorded, or approved and recorded.
    Recorded,
    /// A change that could shorten retention and is not approved: the store
    /// refuses new records, keeps its own for `old_longest_days` meanwhile,
    /// and records the refusal ([`record_refusal`]) once it has done so.
    Unapproved {
        action: Action,
        digest: String,
        shortens: Vec<String>,
        old_longest_days: i64,
    },
}

/// Record `values` if they differ from the last recorded configuration in
/// `trail`. `approval` approves a change that could shorten retention if
/// its actor held the retention role before the change and gives a reason.
pub(crate) fn record_at_open(
    trail: &impl Trail,
    values: &BTreeMap<String, String>,
    approval: Option<&(Actor, String)>,
) -> Result<AtOpen> {
    let digest = digest(values);
    let last = trail.latest_audit_event("config-changed", |e| {
        e.outcome == Outcome::Done && is_change_event(e)
    })?;
    let old = match last.map(|(_, e)| e.action) {
        Some(Action::ConfigChanged { digest: d, .. }) if d == digest => {
            return Ok(AtOpen::Recorded)
        }
        Some(Action::ConfigChanged { values, .. }) => Some(values),
        _ => None,
    };
    let shortens = old
        .as_ref()
        .map(|o| retention_shortenings(o, values))
        .unwrap_or_default();
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
        trail.write_audit(&actor, action, Outcome::Done, &reason)?;
        return Ok(AtOpen::Recorded);
    }
    let Some((actor, reason)) = approval else {
        return Ok(AtOpen::Unapproved {
            action,
            digest,
            shortens,
            old_longest_days: old.as_ref().map_or(0, longest_days),
        });
    };
    crate::compliance::hold::require_reason(reason)?;
    trail.require(actor, Role::Retention, &action, reason)?;
    let retention = crate::compliance::hold::role_name(Role::Retention);
    let authority = old
        .as_ref()
        .is_some_and(|o| held_before(o, values, &actor.name, &retention));
    if !authority {
        return refuse_approval(trail, actor, action, reason);
    }
    trail.write_audit(actor, action, Outcome::Done, reason)?;
    Ok(AtOpen::Recorded)
}

/// The approver's role or token comes from the change itself.
fn refuse_approval(
    trail: &impl Trail,
    actor: &Actor,
    action: Action,
    reason: &str,
) -> Result<AtOpen> {
    let why = format!(
        "{} did not hold the retention role with this token under the configuration in effect before the change",
        actor.name
    );
    trail.write_audit(actor, action, Outcome::Refused { why: why.clone() }, reason)?;
    Err(Error::Refused {
        action: "approve a configuration that shortens retention".into(),
        reason: why,
    })
}

/// Record that the unapproved configuration `digest` is refused, once per
/// distinct configuration.
pub(crate) fn record_refusal(trail: &impl Trail, action: Action, digest: &str) -> Result<()> {
    let refused_before = trail.latest_audit_event(
        "config-changed",
        |e| matches!(&e.action, Action::ConfigChanged { digest: d, .. } if *d == digest),
    )?;
    if refused_before.is_none_or(|(_, e)| e.outcome == Outcome::Done) {
        let why =
            "it could shorten retention for new records and is not approved by the retention role"
                .to_string();
        trail.write_audit(
            &Actor::system(),
            action,
            Outcome::Refused { why },
            "found at open: the configuration file changed",
        )?;
    }
    Ok(())
}
