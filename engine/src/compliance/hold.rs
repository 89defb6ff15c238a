//! Legal holds: placed and released only by a principal with the
//! `legal-hold` role and a stated reason; a record a hold matches is never
//! removable, whatever its retention date.
//!
//! The rules are here; the store applies them (`Store::place_hold`,
//! `release_hold`, and every destructive act, which asks [`holding`]).

use firmware_config::Role;

use crate::compliance::audit::{Action, Actor, Criteria};
use crate::compliance::state::Hold;
use crate::crypto::keys::{Keys, TagDomain};
use crate::error::{Error, Result};
use crate::index::FrameLocation;

/// The name a role has in configuration files and messages.
pub fn role_name(role: Role) -> String {
    serde_json::to_string(&role)
        .unwrap_or_default()
        .trim_matches('"')
        .to_string()
}

/// Unless `actor` has `role`: why not (for the audit record of the refusal)
/// and the error to return.
pub fn lacks_role(actor: &Actor, role: Role, action: &Action) -> Option<(String, Error)> {
    if actor.has(role) {
        return None;
    }
    let why = format!("{} lacks the {} role", actor.name, role_name(role));
    let err = Error::Unauthorized {
        actor: actor.name.clone(),
        action: action.name().to_string(),
        role: role_name(role),
    };
    Some((why, err))
}

/// Every compliance act states why.
pub fn require_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::invalid(
            "reason",
            "a reason is required and is kept in the audit trail",
        ));
    }
    Ok(())
}

/// Whether the frame at `loc` matches `c` (`keys` give the criteria's tags).
pub fn matches(c: &Criteria, loc: &FrameLocation, keys: &Keys) -> bool {
    if c.seq.is_some_and(|s| loc.seq != s) {
        return false;
    }
    if let Some(cu) = &c.custodian {
        if keys.custodian_tag(cu) != loc.custodian_tag {
            return false;
        }
    }
    if let Some(cv) = &c.conversation {
        if keys.tag_or_zero(TagDomain::Conversation, cv) != loc.conversation_tag {
            return false;
        }
    }
    if c.from_us.is_some_and(|f| loc.timestamp_us < f) {
        return false;
    }
    c.to_us.is_none_or(|t| loc.timestamp_us < t)
}

/// The ids of the `active` holds that keep the frame at `loc`.
pub fn holding(active: &[Hold], loc: &FrameLocation, keys: &Keys) -> Vec<u64> {
    active
        .iter()
        .filter(|h| matches(&h.criteria, loc, keys))
        .map(|h| h.id)
        .collect()
}

/// A new hold must be named and must select something, over a real range.
pub fn check_new(name: &str, criteria: &Criteria) -> Result<()> {
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
    Ok(())
}

/// Hold `id` can be released only if it exists (`found`) and still holds.
pub fn check_release(id: u64, found: Option<Hold>) -> Result<()> {
    match found {
        None => Err(Error::NotFound {
            what: format!("legal hold {id}"),
        }),
        Some(h) if h.released.is_some() => Err(Error::invalid(
            "hold",
            format!("hold {id} ({}) is already released", h.name),
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::frame::FrameKind;

    fn keys() -> Keys {
        Keys::from_master(1, &[7; 32])
    }

    fn frame_of(
        keys: &Keys,
        seq: u64,
        custodian: &str,
        conversation: &str,
        at: i64,
    ) -> FrameLocation {
        FrameLocation {
            seq,
            zone: 0,
            offset: 0,
            frame_len: 0,
            crc: 0,
            kind: FrameKind::Message,
            timestamp_us: at,
            retain_until_us: 0,
            data_key_id: 0,
            custodian_tag: keys.custodian_tag(custodian),
            conversation_tag: keys.tag_or_zero(TagDomain::Conversation, conversation),
        }
    }

    fn hold(id: u64, criteria: Criteria, released: bool) -> Hold {
        Hold {
            id,
            name: format!("matter {id}"),
            criteria,
            placed_by: "counsel".into(),
            placed_at_us: 0,
            reason: "litigation".into(),
            released: released.then(|| crate::compliance::state::Release {
                seq: 9,
                by: "counsel".into(),
                at_us: 1,
                reason: "settled".into(),
            }),
        }
    }

    #[test]
    fn every_given_field_must_match_and_the_range_is_half_open() {
        let k = keys();
        let f = frame_of(&k, 5, "alice", "deal-1", 1_000);
        let by = |c: Criteria| matches(&c, &f, &k);
        assert!(by(Criteria {
            custodian: Some("alice".into()),
            ..Default::default()
        }));
        assert!(!by(Criteria {
            custodian: Some("bob".into()),
            ..Default::default()
        }));
        assert!(by(Criteria {
            conversation: Some("deal-1".into()),
            seq: Some(5),
            ..Default::default()
        }));
        assert!(!by(Criteria {
            conversation: Some("deal-1".into()),
            seq: Some(6),
            ..Default::default()
        }));
        assert!(by(Criteria {
            from_us: Some(1_000),
            to_us: Some(1_001),
            ..Default::default()
        }));
        assert!(!by(Criteria {
            from_us: Some(1_001),
            ..Default::default()
        }));
        assert!(!by(Criteria {
            to_us: Some(1_000),
            ..Default::default()
        }));
        // The tags are keyed: another store's keys name other tags.
        let other = Keys::from_master(1, &[8; 32]);
        assert!(!matches(
            &Criteria {
                custodian: Some("alice".into()),
                ..Default::default()
            },
            &f,
            &other
        ));
    }

    #[test]
    fn holding_lists_the_holds_that_match() {
        let k = keys();
        let f = frame_of(&k, 5, "alice", "", 0);
        let active = [
            hold(
                1,
                Criteria {
                    custodian: Some("alice".into()),
                    ..Default::default()
                },
                false,
            ),
            hold(
                2,
                Criteria {
                    custodian: Some("bob".into()),
                    ..Default::default()
                },
                false,
            ),
            hold(
                3,
                Criteria {
                    seq: Some(5),
                    ..Default::default()
                },
                false,
            ),
        ];
        assert_eq!(holding(&active, &f, &k), vec![1, 3]);
    }

    #[test]
    fn a_new_hold_is_named_selects_something_and_ends_after_it_starts() {
        let some = Criteria {
            custodian: Some("alice".into()),
            ..Default::default()
        };
        assert!(check_new("M-1", &some).is_ok());
        assert!(check_new("  ", &some).is_err());
        assert!(check_new("M-1", &Criteria::default()).is_err());
        let backwards = Criteria {
            from_us: Some(10),
            to_us: Some(10),
            ..Default::default()
        };
        assert!(check_new("M-1", &backwards).is_err());
    }

    #[test]
    fn only_a_standing_hold_is_released_and_only_by_its_role() {
        assert!(matches!(
            check_release(4, None),
            Err(Error::NotFound { .. })
        ));
        assert!(check_release(4, Some(hold(4, Criteria::default(), true))).is_err());
        assert!(check_release(4, Some(hold(4, Criteria::default(), false))).is_ok());
        let action = Action::HoldReleased { hold: 4 };
        let (why, err) =
            lacks_role(&Actor::new("clerk", &[]), Role::LegalHold, &action).expect("refused");
        assert!(why.contains("clerk lacks the legal-hold role"), "{why}");
        assert!(matches!(err, Error::Unauthorized { .. }));
        assert!(lacks_role(
            &Actor::new("counsel", &[Role::LegalHold]),
            Role::LegalHold,
            &action
        )
        .is_none());
        assert!(require_reason(" ").is_err() && require_reason("matter 4").is_ok());
    }
}
