//! The store as the compliance layer's audit trail ([`Trail`]), and the
//! configuration it records at open (`compliance::configuration`'s rules).

use std::collections::BTreeMap;

use firmware_config::Role;

use crate::compliance::audit::{Action, Actor, AuditEvent, Outcome, Trail};
use crate::compliance::configuration::{self, AtOpen};
use crate::error::{Error, Result};
use crate::store::Store;

impl Trail for Store {
    fn write_audit(
        &self,
        actor: &Actor,
        action: Action,
        outcome: Outcome,
        reason: &str,
    ) -> Result<u64> {
        Store::write_audit(self, actor, action, outcome, reason)
    }

    fn latest_audit_event(
        &self,
        name: &str,
        keep: impl Fn(&AuditEvent) -> bool,
    ) -> Result<Option<(u64, AuditEvent)>> {
        Store::latest_audit_event(self, name, keep)
    }

    fn require(&self, actor: &Actor, role: Role, action: &Action, reason: &str) -> Result<()> {
        Store::require(self, actor, role, action, reason)
    }
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
        let AtOpen::Unapproved {
            action,
            digest,
            shortens,
            old_longest_days,
        } = configuration::record_at_open(self, values, approval)?
        else {
            return Ok(Vec::new());
        };
        // Until approved, the store's own records (the refusal first) keep the old longest period.
        self.shared
            .longest_retention_days
            .fetch_max(old_longest_days, std::sync::atomic::Ordering::AcqRel);
        configuration::record_refusal(self, action, &digest)?;
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
