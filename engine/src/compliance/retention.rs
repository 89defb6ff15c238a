//! Retention: every record's retain-until date is set at write time (in its
//! frame), can be extended (event-based retention) but never shortened, and
//! space comes back only by resetting a whole zone once every record in it
//! has left retention and no hold covers it. The reset writes an audit
//! record carrying the zone's SHA-256 (and the hash of its last frame, so
//! the chain can still be verified across the gap) before the zone is
//! erased. Every other way to delete, modify or shorten is refused, and the
//! attempt recorded.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::compliance::audit::Criteria;
use crate::compliance::hold;
use crate::compliance::state::{Extension, Reclaimed};
use crate::crypto::keys::Keys;
use crate::error::{Error, Result};
use crate::index::FrameLocation;
use crate::time::clock::utc;

/// Where a record stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionStatus {
    pub seq: u64,
    /// The date written in the frame.
    pub stored_until_us: i64,
    /// After extensions.
    pub effective_until_us: i64,
    pub held_by: Vec<u64>,
    /// Past retention and unheld, by the compliance clock.
    pub expired: bool,
}

/// One zone a reclaim looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneVerdict {
    pub zone: u32,
    pub first_seq: u64,
    pub end_seq: u64,
    /// `None`: reclaimed. Otherwise why it is kept (the first reason found).
    pub kept_because: Option<String>,
}

/// The refusal every attempt to shorten retention meets.
pub const SHORTEN_REFUSED: &str =
    "retention can be extended but never shortened (SEC 17a-4(f), WORM)";
/// The refusal every attempt to delete a record meets.
pub const DELETE_REFUSED: &str =
    "records are write-once: none is deleted; space returns only when a whole zone has left retention";
/// The refusal every attempt to modify a record meets.
pub const MODIFY_REFUSED: &str =
    "records are write-once: store an edit as a new record that refers to the original";
/// The refusal every attempt to reset a chosen zone meets.
pub const RESET_REFUSED: &str =
    "zones are reset only by reclaim, once every record in them has left retention and is unheld";

/// A record's retain-until date after event-based extensions: the latest
/// of its own and of every extension whose criteria it matches.
pub fn effective_until(loc: &FrameLocation, extensions: &[Extension], keys: &Keys) -> i64 {
    extensions
        .iter()
        .filter(|e| hold::matches(&e.criteria, loc, keys))
        .map(|e| e.until_us)
        .fold(loc.retain_until_us, i64::max)
}

/// Check an extension before anything is written: `Err` for a malformed
/// one, `Ok(Some(why))` for one that would shorten retention (refused and
/// recorded), `Ok(None)` if it may go on to the per-record check.
pub fn check_extension(criteria: &Criteria, until_us: i64, now: i64) -> Result<Option<String>> {
    if criteria.is_empty() {
        return Err(Error::invalid(
            "retention criteria",
            "name a custodian, conversation, date range or record",
        ));
    }
    crate::time::timestamp::check_retain_until("retention date", until_us, now)?;
    criteria.check_times()?;
    if until_us <= now {
        return Ok(Some(format!(
            "{} is not after the compliance clock's now ({}); retention is never shortened",
            utc(until_us),
            utc(now)
        )));
    }
    Ok(None)
}

/// Why extending record `seq`, retained until `current`, to `until_us`
/// would shorten it, if it would.
pub fn shortens(seq: u64, current: i64, until_us: i64) -> Option<String> {
    (until_us < current).then(|| {
        format!(
            "record {seq} is retained until {}; {} would shorten it",
            utc(current),
            utc(until_us)
        )
    })
}

/// Why a frame retained until `until` and held by `held` must stay at
/// `now`, or `None` if neither keeps it.
pub fn kept_by(loc: &FrameLocation, until: i64, held: &[u64], now: i64) -> Option<String> {
    if until > now {
        return Some(format!(
            "seq {} is retained until {} (compliance clock {})",
            loc.seq,
            utc(until),
            utc(now)
        ));
    }
    held.first()
        .map(|h| format!("seq {} is under legal hold {h}", loc.seq))
}

/// The reclaimed ranges a chain must be followed across: first seq ->
/// (end seq, hash of the last frame before the gap). A reset that a crash
/// cut short before the zone was marked still has its frames (`zone_still`
/// says whether zone `z` is sealed with `first_seq`), so it is no gap.
pub fn bridges(
    reclaimed: &[Reclaimed],
    zone_still: impl Fn(u32, u64) -> Result<bool>,
) -> Result<BTreeMap<u64, (u64, [u8; 32])>> {
    let mut out = BTreeMap::new();
    for r in reclaimed {
        if zone_still(r.zone, r.first_seq)? {
            continue;
        }
        let mut h = [0u8; 32];
        hex::decode_to_slice(&r.last_hash, &mut h).map_err(|_| Error::Index {
            path: "index (compliance state)".into(),
            reason: format!("reclaimed zone {} has a malformed hash", r.zone),
        })?;
        out.insert(r.first_seq, (r.end_seq, h));
    }
    Ok(out)
}
