//! The audit trail: what was done to the archive, by whom, why, and what
//! was refused.
//!
//! Every event is a `System` frame in the log itself (conversation id
//! [`AUDIT_CONVERSATION`], record id the action's name, JSON body, encrypted
//! under the root data key), so it is as immutable, checksummed and chained
//! as the records it speaks of. Holds, retention extensions, erasure
//! requests and reclaimed zones are rebuilt from these events
//! ([`crate::compliance::state`]).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::time::clock::ClockAnomaly;
use firmware_config::Role;

/// The audit trail as the compliance layer acts on it; the store is one.
pub(crate) trait Trail {
    /// Append an event; it is durable when this returns. Returns its seq.
    fn write_audit(
        &self,
        actor: &Actor,
        action: Action,
        outcome: Outcome,
        reason: &str,
    ) -> Result<u64>;

    /// The newest event filed under `name` for which `keep` holds.
    fn latest_audit_event(
        &self,
        name: &str,
        keep: impl Fn(&AuditEvent) -> bool,
    ) -> Result<Option<(u64, AuditEvent)>>;

    /// Refuse, and record the attempt, unless `actor` has `role`.
    fn require(&self, actor: &Actor, role: Role, action: &Action, reason: &str) -> Result<()>;
}

/// The conversation id every audit event is filed under.
pub const AUDIT_CONVERSATION: &str = "stele/audit";

/// Who acts: a name and the roles the caller authenticated it for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub roles: Vec<Role>,
}

impl Actor {
    pub fn new(name: impl Into<String>, roles: &[Role]) -> Actor {
        Actor {
            name: name.into(),
            roles: roles.to_vec(),
        }
    }

    /// The store itself (clock anomalies, creation).
    pub fn system() -> Actor {
        Actor::new("stele", &[])
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Which records a hold or a retention extension covers: every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criteria {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custodian: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// Records with timestamp at or after this (UTC µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_us: Option<i64>,
    /// Records with timestamp before this (UTC µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_us: Option<i64>,
    /// One record, by sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// A saved search's text query. Until full-text search is available the
    /// hold covers every record the other fields match (a wider hold, never a narrower one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

impl Criteria {
    /// The date bounds, if given, are calendar times ([`crate::time::timestamp::check`]).
    pub fn check_times(&self) -> crate::error::Result<()> {
        if let Some(us) = self.from_us {
            crate::time::timestamp::check("selection start (from)", us)?;
        }
        if let Some(us) = self.to_us {
            crate::time::timestamp::check("selection end (to)", us)?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.custodian.is_none()
            && self.conversation.is_none()
            && self.from_us.is_none()
            && self.to_us.is_none()
            && self.seq.is_none()
            && self.query.is_none()
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Action {
    StoreOpened {
        epoch: u32,
    },
    HoldPlaced {
        name: String,
        criteria: Criteria,
    },
    HoldReleased {
        hold: u64,
    },
    RetentionExtended {
        criteria: Criteria,
        until_us: i64,
    },
    RetentionShortened {
        criteria: Criteria,
        until_us: i64,
    },
    RecordDeleted {
        seq: u64,
    },
    RecordModified {
        seq: u64,
    },
    ZoneReset {
        zone: u32,
    },
    ErasureRequested {
        subject_kind: String,
        subject: String,
    },
    ErasureDeferred {
        request: u64,
        why: String,
        /// Compliance time at which the subject's last record leaves retention, if no hold keeps it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        earliest_us: Option<i64>,
    },
    ErasureExecuted {
        request: u64,
        key_ids: Vec<u32>,
        records: u64,
    },
    /// Keys an executed erasure destroyed were found live in the keystore
    /// (a copy restored from before the erasure) and were destroyed again.
    ErasureReapplied {
        request: u64,
        key_ids: Vec<u32>,
    },
    ZoneReclaimed {
        zone: u32,
        first_seq: u64,
        end_seq: u64,
        /// SHA-256 of the zone's last frame, so the hash chain can be checked across the gap.
        last_hash: String,
        /// SHA-256 of every byte the zone held, taken before the reset.
        zone_sha256: String,
        bytes: u64,
        records: u64,
        /// The Merkle subtrees that cover the reclaimed leaves exactly
        /// (`height:index:hash`), so proofs for the rest of the log can still
        /// be made after the index is rebuilt from the log.
        #[serde(default)]
        merkle_nodes: Vec<String>,
    },
    DataKeyRotated {
        subject_tag: String,
        key_id: u32,
    },
    KekRotated {
        from_generation: u32,
        to_generation: u32,
        rewrapped: u64,
    },
    ClockAnomaly(ClockAnomaly),
    /// A capture delivery refused before anything of it was stored (e.g. a bad webhook signature).
    DeliveryRefused {
        source: String,
        body_sha256: String,
    },
    /// A correctly authenticated delivery that could not be read (not JSON,
    /// or not in the source's schema): kept verbatim as evidence at `evidence_seq`.
    DeliveryUnreadable {
        source: String,
        body_sha256: String,
        evidence_seq: u64,
    },
    /// A record id already stored arrived again with different content: both
    /// are kept, the new one as a conflict record at `conflict_seq`.
    CaptureConflict {
        source: String,
        record_id: String,
        stored_seq: u64,
        conflict_seq: u64,
    },
    /// The log was found ending before records the index had seen: they
    /// were cut from the log below the store. New records are refused until acknowledged.
    LogCutShort {
        index_next: u64,
        log_next: u64,
        evidence: String,
    },
    /// An operator acknowledged a log found cut short; new records are accepted again.
    LogCutAcknowledged {
        index_next: u64,
        log_next: u64,
    },
    /// An operator opened a copy of the store an anchor showed was rolled
    /// back or forked (what the anchor found is in `found`).
    RollbackAccepted {
        anchor: String,
        found: String,
    },
    /// An independent source stated the true time; the compliance clock read
    /// `compliance_us` then. Four eyes: the actor and `second`.
    ClockCorroborated {
        source: String,
        attested_us: i64,
        compliance_us: i64,
        /// The second principal of a four-eyes attestation (empty for a time server).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        second: String,
        /// How much faster than the attested times the clock ran since the
        /// previous corroboration, beyond the drift budget, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fast_by_us: Option<i64>,
        /// A time server's signed response (hex), which proves the
        /// stated time to anyone holding the server's public key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<String>,
    },
    /// The store opened with a configuration other than the one it last
    /// recorded: every effective value that differs (`None`: absent), the
    /// changes that could shorten retention for new records, and every
    /// value now in effect (what the next change is compared with).
    ConfigChanged {
        digest: String,
        changes: Vec<SettingChange>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shortens_retention: Vec<String>,
        values: std::collections::BTreeMap<String, String>,
    },
    /// The keystore opened lacks data keys the log names: new records are
    /// refused until a newer keystore is restored or the keys are acknowledged lost.
    KeystoreIncomplete {
        keystore: String,
        missing: Vec<u32>,
    },
    /// A key administrator acknowledged that the keystore lost these data
    /// keys: their records are unreadable for good, their ids are never reused.
    DataKeysLost {
        key_ids: Vec<u32>,
    },
    /// A destructive act (`reclaim`, `erasure`) refused because the clock
    /// was not corroborated (recorded with outcome refused).
    ClockUncorroborated {
        act: String,
    },
}

/// One effective configuration value that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingChange {
    pub key: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl Action {
    /// Whether capture (not the store itself or a compliance role) may record this event.
    pub fn is_capture_event(&self) -> bool {
        matches!(
            self,
            Action::DeliveryRefused { .. }
                | Action::DeliveryUnreadable { .. }
                | Action::CaptureConflict { .. }
        )
    }

    /// The short name the event is filed under (its record id).
    pub fn name(&self) -> &'static str {
        match self {
            Action::StoreOpened { .. } => "store-opened",
            Action::HoldPlaced { .. } => "hold-placed",
            Action::HoldReleased { .. } => "hold-released",
            Action::RetentionExtended { .. } => "retention-extended",
            Action::RetentionShortened { .. } => "retention-shortened",
            Action::RecordDeleted { .. } => "record-deleted",
            Action::RecordModified { .. } => "record-modified",
            Action::ZoneReset { .. } => "zone-reset",
            Action::ErasureRequested { .. } => "erasure-requested",
            Action::ErasureDeferred { .. } => "erasure-deferred",
            Action::ErasureExecuted { .. } => "erasure-executed",
            Action::ErasureReapplied { .. } => "erasure-reapplied",
            Action::ZoneReclaimed { .. } => "zone-reclaimed",
            Action::DataKeyRotated { .. } => "data-key-rotated",
            Action::KekRotated { .. } => "kek-rotated",
            Action::ClockAnomaly(_) => "clock-anomaly",
            Action::DeliveryRefused { .. } => "delivery-refused",
            Action::DeliveryUnreadable { .. } => "delivery-unreadable",
            Action::CaptureConflict { .. } => "capture-conflict",
            Action::LogCutShort { .. } => "log-cut-short",
            Action::LogCutAcknowledged { .. } => "log-cut-acknowledged",
            Action::RollbackAccepted { .. } => "rollback-accepted",
            Action::ClockCorroborated { .. } => "clock-corroborated",
            Action::ClockUncorroborated { .. } => "clock-uncorroborated",
            Action::KeystoreIncomplete { .. } => "keystore-incomplete",
            Action::ConfigChanged { .. } => "config-changed",
            Action::DataKeysLost { .. } => "data-keys-lost",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Done,
    Refused { why: String },
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Compliance clock time.
    pub at_us: i64,
    /// System clock time, for comparison.
    pub system_us: i64,
    pub actor: String,
    pub action: Action,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The reason the actor gave.
    pub reason: String,
}

/// An audit event as stored, with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: u64,
    #[serde(flatten)]
    pub event: AuditEvent,
}
