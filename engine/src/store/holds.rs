//! The store's legal holds and role checks: the rules are
//! `compliance::hold`'s; here they are applied under the compliance lock
//! and written to the audit trail.

use firmware_config::Role;

use crate::compliance::audit::{Action, Actor, Criteria, Outcome};
use crate::compliance::hold;
use crate::compliance::state::Hold;
use crate::error::Result;
use crate::index::FrameLocation;
use crate::store::Store;

impl Store {
    /// Refuse, and record the attempt, unless `actor` has `role`.
    pub(crate) fn require(
        &self,
        actor: &Actor,
        role: Role,
        action: &Action,
        reason: &str,
    ) -> Result<()> {
        let Some((why, err)) = hold::lacks_role(actor, role, action) else {
            return Ok(());
        };
        self.write_audit(actor, action.clone(), Outcome::Refused { why }, reason)?;
        Err(err)
    }

    pub(crate) fn require_reason(reason: &str) -> Result<()> {
        hold::require_reason(reason)
    }

    /// Whether the frame at `loc` matches `c`.
    pub fn criteria_match(&self, c: &Criteria, loc: &FrameLocation) -> bool {
        hold::matches(c, loc, &self.shared.keys)
    }

    /// Place a legal hold. Returns its id.
    pub fn place_hold(
        &self,
        actor: &Actor,
        name: &str,
        criteria: Criteria,
        reason: &str,
    ) -> Result<u64> {
        let _g = self.compliance_guard();
        let action = Action::HoldPlaced {
            name: name.to_string(),
            criteria: criteria.clone(),
        };
        self.require(actor, Role::LegalHold, &action, reason)?;
        hold::require_reason(reason)?;
        hold::check_new(name, &criteria)?;
        self.write_audit(actor, action, Outcome::Done, reason)
    }

    /// Release a legal hold.
    pub fn release_hold(&self, actor: &Actor, id: u64, reason: &str) -> Result<()> {
        let _g = self.compliance_guard();
        let action = Action::HoldReleased { hold: id };
        self.require(actor, Role::LegalHold, &action, reason)?;
        hold::require_reason(reason)?;
        hold::check_release(id, self.compliance().hold(id)?)?;
        self.write_audit(actor, action, Outcome::Done, reason)
            .map(|_| ())
    }

    /// Every hold, placed and released, oldest first.
    pub fn holds(&self) -> Result<Vec<Hold>> {
        self.compliance().holds()
    }

    /// The ids of the active holds that keep the frame at `loc`.
    pub fn holds_on(&self, loc: &FrameLocation, active: &[Hold]) -> Vec<u64> {
        hold::holding(active, loc, &self.shared.keys)
    }
}
