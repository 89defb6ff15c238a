//! Retention: every record's retain-until date is set at write time (in its
//! frame), can be extended (event-based retention) but never shortened, and
//! space comes back only by resetting a whole zone once every record in it
//! has left retention and no hold covers it. The reset writes an audit
//! record carrying the zone's SHA-256 (and the hash of its last frame, so
//! the chain can still be verified across the gap) before the zone is
//! erased. Every other way to delete, modify or shorten is refused, and the
//! attempt recorded.

use std::collections::BTreeMap;

use firmware_config::Role;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::compliance::audit::{Action, Actor, Criteria, Outcome};
use crate::compliance::state::Extension;
use crate::error::{Error, Result};
use crate::format::frame::FrameKind;
use crate::index::FrameLocation;
use crate::io::buffer::AlignedBuf;
use crate::log::scan::{Scanner, Stretch};
use crate::log::zone::ZoneCondition;
use crate::store::Store;

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

impl Store {
    /// A record's retain-until date after event-based extensions.
    pub fn effective_until(&self, loc: &FrameLocation, extensions: &[Extension]) -> i64 {
        extensions
            .iter()
            .filter(|e| self.criteria_match(&e.criteria, loc))
            .map(|e| e.until_us)
            .fold(loc.retain_until_us, i64::max)
    }

    /// Retention and holds of the record at `seq`.
    pub fn retention_status(&self, seq: u64) -> Result<RetentionStatus> {
        self.sync_index()?;
        let loc = self
            .shared
            .index
            .location(seq)?
            .ok_or_else(|| Error::NotFound {
                what: format!("seq {seq}"),
            })?;
        let c = self.compliance();
        let effective = self.effective_until(&loc, &c.extensions()?);
        let held_by = self.holds_on(&loc, &c.active_holds()?);
        Ok(RetentionStatus {
            seq,
            stored_until_us: loc.retain_until_us,
            effective_until_us: effective,
            expired: held_by.is_empty() && effective <= self.compliance_now_us(),
            held_by,
        })
    }

    /// Event-based retention: keep the records matching `criteria` at least
    /// until `until_us`. An extension can only lengthen: a date that would
    /// shorten a single record's retention is refused and recorded.
    pub fn extend_retention(
        &self,
        actor: &Actor,
        criteria: Criteria,
        until_us: i64,
        reason: &str,
    ) -> Result<u64> {
        let _g = self
            .compliance_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let action = Action::RetentionExtended {
            criteria: criteria.clone(),
            until_us,
        };
        self.require(actor, Role::Retention, &action, reason)?;
        Store::require_reason(reason)?;
        if criteria.is_empty() {
            return Err(Error::invalid(
                "retention criteria",
                "name a custodian, conversation, date range or record",
            ));
        }
        let now = self.compliance_now_us();
        crate::time::timestamp::check_retain_until("retention date", until_us, now)?;
        criteria.check_times()?;
        let refuse = |why: String| -> Result<u64> {
            self.write_audit(
                actor,
                Action::RetentionShortened {
                    criteria: criteria.clone(),
                    until_us,
                },
                Outcome::Refused { why: why.clone() },
                reason,
            )?;
            Err(Error::Refused {
                action: "shorten retention".into(),
                reason: why,
            })
        };
        if until_us <= now {
            return refuse(format!(
                "{} is not after the compliance clock's now ({}); retention is never shortened",
                crate::time::clock::utc(until_us),
                crate::time::clock::utc(now)
            ));
        }
        if let Some(seq) = criteria.seq {
            self.sync_index()?;
            if let Some(loc) = self.shared.index.location(seq)? {
                let current = self.effective_until(&loc, &self.compliance().extensions()?);
                if until_us < current {
                    return refuse(format!(
                        "record {seq} is retained until {}; {} would shorten it",
                        crate::time::clock::utc(current),
                        crate::time::clock::utc(until_us)
                    ));
                }
            }
        }
        self.write_audit(actor, action, Outcome::Done, reason)
    }

    /// Record a refused attempt and return the error that says so.
    fn refuse(
        &self,
        actor: &Actor,
        action: Action,
        what: String,
        why: &str,
        reason: &str,
    ) -> Result<()> {
        self.write_audit(actor, action, Outcome::Refused { why: why.into() }, reason)?;
        Err(Error::Refused {
            action: what,
            reason: why.into(),
        })
    }

    /// Shortening retention is never allowed; the attempt is recorded.
    pub fn shorten_retention(
        &self,
        actor: &Actor,
        criteria: Criteria,
        until_us: i64,
        reason: &str,
    ) -> Result<()> {
        self.refuse(
            actor,
            Action::RetentionShortened { criteria, until_us },
            "shorten retention".into(),
            "retention can be extended but never shortened (SEC 17a-4(f), WORM)",
            reason,
        )
    }

    /// Deleting a record is never allowed; space comes back only by zone
    /// reclaim once retention ends. The attempt is recorded.
    pub fn delete_record(&self, actor: &Actor, seq: u64, reason: &str) -> Result<()> {
        self.refuse(
            actor,
            Action::RecordDeleted { seq },
            format!("delete record {seq}"),
            "records are write-once: none is deleted; space returns only when a whole zone has left retention",
            reason,
        )
    }

    /// Modifying a record is never allowed; an edit is a new record linked to
    /// the original. The attempt is recorded.
    pub fn modify_record(&self, actor: &Actor, seq: u64, reason: &str) -> Result<()> {
        self.refuse(
            actor,
            Action::RecordModified { seq },
            format!("modify record {seq}"),
            "records are write-once: store an edit as a new record that refers to the original",
            reason,
        )
    }

    /// Resetting a chosen zone directly is never allowed; only [`Store::reclaim`] resets zones.
    pub fn reset_zone(&self, actor: &Actor, zone: u32, reason: &str) -> Result<()> {
        self.refuse(
            actor,
            Action::ZoneReset { zone },
            format!("reset zone {zone}"),
            "zones are reset only by reclaim, once every record in them has left retention and is unheld",
            reason,
        )
    }

    /// Reclaimed ranges, for following the hash chain across them.
    pub(crate) fn bridges(&self) -> Result<BTreeMap<u64, (u64, [u8; 32])>> {
        let mut out = BTreeMap::new();
        for r in self.compliance().reclaimed()? {
            // A reset a crash cut short before the zone was marked: the frames are still there.
            let z = self.shared.zones.state(r.zone)?;
            if z.condition == ZoneCondition::Sealed && z.first_seq == r.first_seq {
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

    /// Why the frame at `loc` must stay, or `None` if it may go.
    fn keep_reason(
        &self,
        loc: &FrameLocation,
        now: i64,
        c: &Ctx,
        zone_range: (u64, u64),
    ) -> Result<Option<String>> {
        let until = self.effective_until(loc, &c.extensions);
        if until > now {
            return Ok(Some(format!(
                "seq {} is retained until {} (compliance clock {})",
                loc.seq,
                crate::time::clock::utc(until),
                crate::time::clock::utc(now)
            )));
        }
        let held = self.holds_on(loc, &c.holds);
        if let Some(h) = held.first() {
            return Ok(Some(format!("seq {} is under legal hold {h}", loc.seq)));
        }
        if loc.kind == FrameKind::MediaChunk {
            for m in self.shared.index.chunk_users(loc.seq)? {
                if (zone_range.0..zone_range.1).contains(&m) {
                    continue; // judged with this zone
                }
                let Some(ml) = self.shared.index.location(m)? else {
                    continue;
                };
                if self.effective_until(&ml, &c.extensions) > now
                    || !self.holds_on(&ml, &c.holds).is_empty()
                {
                    return Ok(Some(format!(
                        "media chunk {} is used by blob {m}, which is still kept",
                        loc.seq
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Reset every sealed zone whose records have all left retention and are
    /// unheld. Each reset is preceded by a `zone-reclaimed` audit record with
    /// the zone's SHA-256. Returns a verdict for every sealed zone.
    pub fn reclaim(&self, actor: &Actor, reason: &str) -> Result<Vec<ZoneVerdict>> {
        let _g = self
            .compliance_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.require(
            actor,
            Role::Operator,
            &Action::ZoneReset { zone: u32::MAX },
            reason,
        )?;
        Store::require_reason(reason)?;
        let now = self.destructive_now(actor, "reclaim", reason)?;
        self.sync_index()?;
        let c = Ctx {
            extensions: self.compliance().extensions()?,
            holds: self.compliance().active_holds()?,
        };
        let zones = &self.shared.zones;
        let mut sealed: Vec<(u32, crate::log::zone::ZoneState)> = zones
            .states()
            .into_iter()
            .enumerate()
            .map(|(i, s)| (i as u32, s))
            .filter(|(_, s)| s.condition == ZoneCondition::Sealed)
            .collect();
        sealed.sort_by_key(|(_, s)| s.first_seq);
        let mut out = Vec::new();
        for (zone, st) in sealed {
            // Scan the zone: its frames, their hashes, and its bytes' SHA-256.
            let mut scanner = Scanner::new(
                zones,
                vec![Stretch {
                    zone,
                    start: 0,
                    durable_end: st.write_pointer,
                    scan_end: st.write_pointer,
                }],
                st.first_seq,
                None,
            );
            let mut frames = Vec::new();
            let mut last_hash = [0u8; 32];
            while let Some(f) = scanner.next_frame()? {
                last_hash = f.hash;
                frames.push(f.entry().loc);
            }
            let end_seq = scanner.expected_seq();
            let range = (st.first_seq, end_seq);
            let mut kept = None;
            for loc in &frames {
                if let Some(why) = self.keep_reason(loc, now, &c, range)? {
                    kept = Some(why);
                    break;
                }
            }
            if kept.is_none() && self.shared.acked() < end_seq {
                kept = Some("its frames are not all acknowledged yet".into());
            }
            if kept.is_some() || frames.is_empty() {
                out.push(ZoneVerdict {
                    zone,
                    first_seq: st.first_seq,
                    end_seq,
                    kept_because: kept.or(Some("it holds no frames".into())),
                });
                continue;
            }
            let mut sha = Sha256::new();
            let mut buf = AlignedBuf::zeroed(1 << 20);
            let mut off = 0u64;
            while off < st.write_pointer {
                let n = (buf.len() as u64).min(st.write_pointer - off) as usize;
                zones.read(zone, off, &mut buf[..n])?;
                sha.update(&buf[..n]);
                off += n as u64;
            }
            let zone_sha256: [u8; 32] = sha.finalize().into();
            let merkle = self.shared.index.merkle()?;
            let mut cover = Vec::new();
            for (h, i) in crate::format::merkle::cover(st.first_seq, end_seq) {
                cover.push((h, i, crate::format::merkle::Nodes::node(&merkle, h, i)?));
            }
            drop(merkle);
            let merkle_nodes = cover
                .iter()
                .map(|(h, i, x)| crate::format::merkle::format_node(*h, *i, x))
                .collect();
            // 1. The audit record, durable before anything is erased.
            self.write_audit(
                actor,
                Action::ZoneReclaimed {
                    zone,
                    first_seq: st.first_seq,
                    end_seq,
                    last_hash: hex::encode(last_hash),
                    zone_sha256: hex::encode(zone_sha256),
                    bytes: st.write_pointer,
                    records: frames.len() as u64,
                    merkle_nodes,
                },
                Outcome::Done,
                reason,
            )?;
            // 2. The superblock says the zone is being reset (durable), 3. the
            // medium erases it, 4. the index forgets the zone's frames, and
            // the zone joins the free list.
            let index = &self.shared.index;
            self.shared
                .reset_zone(zone, || index.remove_range(st.first_seq, end_seq, &cover))?;
            tracing::info!(zone, first_seq = st.first_seq, end_seq, "zone reclaimed");
            out.push(ZoneVerdict {
                zone,
                first_seq: st.first_seq,
                end_seq,
                kept_because: None,
            });
        }
        Ok(out)
    }
}

struct Ctx {
    extensions: Vec<Extension>,
    holds: Vec<crate::compliance::state::Hold>,
}
