//! The store's retention: the rules are `compliance::retention`'s; here they
//! are applied under the compliance lock, refusals are written to the audit
//! trail, and reclaim finds the zones that may go and hands each to the
//! log's one way of resetting a zone.

use std::collections::BTreeMap;

use firmware_config::Role;
use sha2::{Digest, Sha256};

use crate::compliance::audit::{Action, Actor, Criteria, Outcome};
use crate::compliance::retention::{
    self, RetentionStatus, ZoneVerdict, DELETE_REFUSED, MODIFY_REFUSED, RESET_REFUSED,
    SHORTEN_REFUSED,
};
use crate::compliance::state::{Extension, Hold};
use crate::error::{Error, Result};
use crate::format::frame::FrameKind;
use crate::format::merkle::{self, Hash};
use crate::index::FrameLocation;
use crate::io::buffer::AlignedBuf;
use crate::log::scan::{Scanner, Stretch};
use crate::log::zone::{ZoneCondition, ZoneState};
use crate::store::Store;

/// What reclaim judges every frame against.
struct Kept {
    extensions: Vec<Extension>,
    holds: Vec<Hold>,
}

/// A sealed zone as reclaim scanned it.
struct Scanned {
    frames: Vec<FrameLocation>,
    last_hash: Hash,
    end_seq: u64,
}

impl Store {
    /// A record's retain-until date after event-based extensions.
    pub fn effective_until(&self, loc: &FrameLocation, extensions: &[Extension]) -> i64 {
        retention::effective_until(loc, extensions, &self.shared.keys)
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
        let _g = self.compliance_guard();
        let action = Action::RetentionExtended {
            criteria: criteria.clone(),
            until_us,
        };
        self.require(actor, Role::Retention, &action, reason)?;
        Store::require_reason(reason)?;
        let mut refusal =
            retention::check_extension(&criteria, until_us, self.compliance_now_us())?;
        if let (None, Some(seq)) = (&refusal, criteria.seq) {
            self.sync_index()?;
            if let Some(loc) = self.shared.index.location(seq)? {
                let current = self.effective_until(&loc, &self.compliance().extensions()?);
                refusal = retention::shortens(seq, current, until_us);
            }
        }
        match refusal {
            None => self.write_audit(actor, action, Outcome::Done, reason),
            Some(why) => self.refuse(
                actor,
                Action::RetentionShortened { criteria, until_us },
                "shorten retention".into(),
                &why,
                reason,
            ),
        }
    }

    /// Record a refused attempt and return the error that says so.
    fn refuse<T>(
        &self,
        actor: &Actor,
        action: Action,
        what: String,
        why: &str,
        reason: &str,
    ) -> Result<T> {
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
            SHORTEN_REFUSED,
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
            DELETE_REFUSED,
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
            MODIFY_REFUSED,
            reason,
        )
    }

    /// Resetting a chosen zone directly is never allowed; only [`Store::reclaim`] resets zones.
    pub fn reset_zone(&self, actor: &Actor, zone: u32, reason: &str) -> Result<()> {
        self.refuse(
            actor,
            Action::ZoneReset { zone },
            format!("reset zone {zone}"),
            RESET_REFUSED,
            reason,
        )
    }

    /// Reclaimed ranges, for following the hash chain across them.
    pub(crate) fn bridges(&self) -> Result<BTreeMap<u64, (u64, [u8; 32])>> {
        let zones = &self.shared.zones;
        retention::bridges(&self.compliance().reclaimed()?, |zone, first_seq| {
            let z = zones.state(zone)?;
            Ok(z.condition == ZoneCondition::Sealed && z.first_seq == first_seq)
        })
    }

    /// Why the frame at `loc` must stay, or `None` if it may go. A media
    /// chunk stays while a blob outside the zone that uses it is kept.
    fn keep_reason(
        &self,
        loc: &FrameLocation,
        now: i64,
        c: &Kept,
        zone_range: (u64, u64),
    ) -> Result<Option<String>> {
        let until = self.effective_until(loc, &c.extensions);
        let held = self.holds_on(loc, &c.holds);
        if let Some(why) = retention::kept_by(loc, until, &held, now) {
            return Ok(Some(why));
        }
        if loc.kind != FrameKind::MediaChunk {
            return Ok(None);
        }
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
        Ok(None)
    }

    /// Reset every sealed zone whose records have all left retention and are
    /// unheld. Each reset is preceded by a `zone-reclaimed` audit record with
    /// the zone's SHA-256. Returns a verdict for every sealed zone.
    pub fn reclaim(&self, actor: &Actor, reason: &str) -> Result<Vec<ZoneVerdict>> {
        let _g = self.compliance_guard();
        self.require(
            actor,
            Role::Operator,
            &Action::ZoneReset { zone: u32::MAX },
            reason,
        )?;
        Store::require_reason(reason)?;
        let now = self.destructive_now(actor, "reclaim", reason)?;
        self.sync_index()?;
        let c = Kept {
            extensions: self.compliance().extensions()?,
            holds: self.compliance().active_holds()?,
        };
        let mut sealed: Vec<(u32, ZoneState)> = self
            .shared
            .zones
            .states()
            .into_iter()
            .enumerate()
            .map(|(i, s)| (i as u32, s))
            .filter(|(_, s)| s.condition == ZoneCondition::Sealed)
            .collect();
        sealed.sort_by_key(|(_, s)| s.first_seq);
        let mut out = Vec::new();
        for (zone, st) in sealed {
            let scanned = self.scan_zone(zone, &st)?;
            let end_seq = scanned.end_seq;
            let kept_because = self.zone_kept_because(&scanned, &st, now, &c)?;
            if kept_because.is_none() {
                self.reclaim_zone(actor, reason, zone, &st, &scanned)?;
            }
            out.push(ZoneVerdict {
                zone,
                first_seq: st.first_seq,
                end_seq,
                kept_because,
            });
        }
        Ok(out)
    }

    /// Scan a sealed zone: its frames and the hash of its last one.
    fn scan_zone(&self, zone: u32, st: &ZoneState) -> Result<Scanned> {
        let mut scanner = Scanner::new(
            &self.shared.zones,
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
        Ok(Scanned {
            frames,
            last_hash,
            end_seq: scanner.expected_seq(),
        })
    }

    /// Why a scanned zone must stay (the first reason found), or `None`.
    fn zone_kept_because(
        &self,
        z: &Scanned,
        st: &ZoneState,
        now: i64,
        c: &Kept,
    ) -> Result<Option<String>> {
        let range = (st.first_seq, z.end_seq);
        for loc in &z.frames {
            if let Some(why) = self.keep_reason(loc, now, c, range)? {
                return Ok(Some(why));
            }
        }
        if self.shared.acked() < z.end_seq {
            return Ok(Some("its frames are not all acknowledged yet".into()));
        }
        if z.frames.is_empty() {
            return Ok(Some("it holds no frames".into()));
        }
        Ok(None)
    }

    /// Reclaim one zone: the audit record with the zone's SHA-256 and the
    /// Merkle nodes covering its records, durable before anything is
    /// erased; then the log resets the zone and the index forgets its frames.
    fn reclaim_zone(
        &self,
        actor: &Actor,
        reason: &str,
        zone: u32,
        st: &ZoneState,
        z: &Scanned,
    ) -> Result<()> {
        let zone_sha256 = self.zone_sha256(zone, st.write_pointer)?;
        let merkle_view = self.shared.index.merkle()?;
        let mut cover = Vec::new();
        for (h, i) in merkle::cover(st.first_seq, z.end_seq) {
            cover.push((h, i, merkle::Nodes::node(&merkle_view, h, i)?));
        }
        drop(merkle_view);
        let merkle_nodes = cover
            .iter()
            .map(|(h, i, x)| merkle::format_node(*h, *i, x))
            .collect();
        // 1. The audit record, durable before anything is erased.
        self.write_audit(
            actor,
            Action::ZoneReclaimed {
                zone,
                first_seq: st.first_seq,
                end_seq: z.end_seq,
                last_hash: hex::encode(z.last_hash),
                zone_sha256: hex::encode(zone_sha256),
                bytes: st.write_pointer,
                records: z.frames.len() as u64,
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
            .reset_zone(zone, || index.remove_range(st.first_seq, z.end_seq, &cover))?;
        tracing::info!(
            zone,
            first_seq = st.first_seq,
            end_seq = z.end_seq,
            "zone reclaimed"
        );
        Ok(())
    }

    /// The SHA-256 of a zone's bytes up to its write pointer.
    fn zone_sha256(&self, zone: u32, write_pointer: u64) -> Result<Hash> {
        let mut sha = Sha256::new();
        let mut buf = AlignedBuf::zeroed(1 << 20);
        let mut off = 0u64;
        while off < write_pointer {
            let n = (buf.len() as u64).min(write_pointer - off) as usize;
            self.shared.zones.read(zone, off, &mut buf[..n])?;
            sha.update(&buf[..n]);
            off += n as u64;
        }
        Ok(sha.finalize().into())
    }
}
