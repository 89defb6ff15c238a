//! Legal holds: placed and released only by a principal with the
//! `legal-hold` role and a stated reason; a record a hold matches is never
//! removable, whatever its retention date.

use firmware_config::Role;

use crate::compliance::audit::{Action, Actor, Criteria, Outcome};
use crate::compliance::state::Hold;
use crate::crypto::keys::TagDomain;
use crate::error::{Error, Result};
use crate::index::FrameLocation;
use crate::store::Store;

/// The name a role has in configuration files and messages.
pub fn role_name(role: Role) -> String {
    serde_json::to_string(&role)
        .unwrap_or_default()
        .trim_matches('"')
        .to_string()
}

impl Store {
    /// Refuse, and record the attempt, unless `actor` has `role`.
    pub(crate) fn require(
        &self,
        actor: &Actor,
        role: Role,
        action: &Action,
        reason: &str,
    ) -> Result<()> {
        if actor.has(role) {
            return Ok(());
        }
        let why = format!("{} lacks the {} role", actor.name, role_name(role));
        self.write_audit(actor, action.clone(), Outcome::Refused { why }, reason)?;
        Err(Error::Unauthorized {
            actor: actor.name.clone(),
            action: action.name().to_string(),
            role: role_name(role),
        })
    }

    pub(crate) fn require_reason(reason: &str) -> Result<()> {
        if reason.trim().is_empty() {
            return Err(Error::invalid(
                "reason",
                "a reason is required and is kept in the audit trail",
            ));
        }
        Ok(())
    }

    /// Whether the frame at `loc` matches `c`.
    pub fn criteria_match(&self, c: &Criteria, loc: &FrameLocation) -> bool {
        if let Some(s) = c.seq {
            if loc.seq != s {
                return false;
            }
        }
        if let Some(cu) = &c.custodian {
            if self.shared.keys.custodian_tag(cu) != loc.custodian_tag {
                return false;
            }
        }
        if let Some(cv) = &c.conversation {
            if self.tag_or_zero(TagDomain::Conversation, cv) != loc.conversation_tag {
                return false;
            }
        }
        if c.from_us.is_some_and(|f| loc.timestamp_us < f) {
            return false;
        }
        if c.to_us.is_some_and(|t| loc.timestamp_us >= t) {
            return false;
        }
        true
    }

    /// Place a legal hold. Returns its id.
    pub fn place_hold(
        &self,
        actor: &Actor,
        name: &str,
        criteria: Criteria,
        reason: &str,
    ) -> Result<u64> {
        let _g = self
            .compliance_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let action = Action::HoldPlaced {
            name: name.to_string(),
            criteria: criteria.clone(),
        };
        self.require(actor, Role::LegalHold, &action, reason)?;
        Store::require_reason(reason)?;
        if name.trim().is_empty() {
            return Err(Error::invalid(
                "hold name",
                "a hold needs a name (e.g. the matter number)",
            ));
        }
        if criteria.is_empty() {
            return Err(Error::invalid(
                "hold criteria",
                "name a custodian, conversation, date range, record or saved search",
            ));
        }
        criteria.check_times()?;
        if let (Some(f), Some(t)) = (criteria.from_us, criteria.to_us) {
            if t <= f {
                return Err(Error::invalid(
                    "hold date range",
                    format!("ends ({t}) before it starts ({f})"),
                ));
            }
        }
        self.write_audit(actor, action, Outcome::Done, reason)
    }

    /// Release a legal hold.
    pub fn release_hold(&self, actor: &Actor, hold: u64, reason: &str) -> Result<()> {
        let _g = self
            .compliance_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let action = Action::HoldReleased { hold };
        self.require(actor, Role::LegalHold, &action, reason)?;
        Store::require_reason(reason)?;
        match self.compliance().hold(hold)? {
            None => Err(Error::NotFound {
                what: format!("legal hold {hold}"),
            }),
            Some(h) if h.released.is_some() => Err(Error::invalid(
                "hold",
                format!("hold {hold} ({}) is already released", h.name),
            )),
            Some(_) => self
                .write_audit(actor, action, Outcome::Done, reason)
                .map(|_| ()),
        }
    }

    /// Every hold, placed and released, oldest first.
    pub fn holds(&self) -> Result<Vec<Hold>> {
        self.compliance().holds()
    }

    /// The ids of the active holds that keep the frame at `loc`.
    pub fn holds_on(&self, loc: &FrameLocation, active: &[Hold]) -> Vec<u64> {
        active
            .iter()
            .filter(|h| self.criteria_match(&h.criteria, loc))
            .map(|h| h.id)
            .collect()
    }
}
