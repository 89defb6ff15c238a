//! Scrubbing: re-reading stored frames and checking them against what was
//! recorded when they were written, so that rot, tampering and lying disks
//! are found before a reader or a regulator finds them.
//!
//! For each frame: the read succeeds (no latent sector error); the frame at
//! the indexed place is the one expected (seq, CRC: misdirected or lost
//! writes); its CRC matches; its SHA-256 re-hashed from the stored bytes
//! still gives the Merkle leaf recorded in the index (so editing a payload
//! and fixing its CRC is caught: the gap immudb's audit mode had); it chains
//! to the previous frame; and its GCM tag verifies where its key exists. A
//! full scrub also rebuilds the Merkle roots from the re-hashed leaves and
//! compares them with every signed tree head. Damage is recorded with its
//! exact place; reads never return a damaged frame in any case.
//!
//! Modes: full, sampled (a share of frames with a minimum count), or one
//! zone. A rate limit keeps a scrub to a share of device bandwidth. Each run
//! is recorded in the log (conversation [`SCRUB_CONVERSATION`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::frame::{self, FrameKind};
use crate::format::merkle::{self, Hash, LeafData};
use crate::index::FrameLocation;
use crate::io::buffer::{align_down, align_up, AlignedBuf};
use crate::log::verify::{Fault, FrameVerifier, Opened};
use crate::store::Store;

pub const SCRUB_CONVERSATION: &str = "stele/scrub";
/// Damage entries kept in one scrub record (the count is always exact).
const DAMAGE_LISTED_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum ScrubMode {
    Full,
    Sampled { percent: f64, min_records: u64 },
    Zone { zone: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    pub seq: u64,
    /// `device … zone … offset …`
    pub at: String,
    pub zone: u32,
    pub offset: u64,
    /// read-error, corrupt, misdirected, payload-rehash, chain, authentication, index
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrubReport {
    pub mode: ScrubMode,
    pub started_us: i64,
    pub seconds: f64,
    pub frames_checked: u64,
    pub bytes_checked: u64,
    pub authenticated: u64,
    /// Frames whose key was destroyed by an erasure (checked without GCM).
    pub shredded: u64,
    /// Signed tree heads whose root was rebuilt from re-hashed leaves (full scrub).
    pub tree_heads_checked: u64,
    pub damage_count: u64,
    pub damage: Vec<Damage>,
}

impl ScrubReport {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes_checked as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

/// What checking one frame found.
struct Checked {
    seq: u64,
    sha: Option<Hash>,
    prev_hash: Option<Hash>,
    leaf: Option<Hash>,
    damage: Vec<Damage>,
    authenticated: bool,
    shredded: bool,
}

enum Group {
    /// Consecutive frames of one zone.
    Zone(Vec<FrameLocation>),
    /// One sampled frame.
    One(u64),
    /// A reclaimed range, as the Merkle subtrees that cover it.
    Reclaimed(Vec<(u8, u64, Hash)>),
    /// A seq the index lacks and no reclaim explains.
    Missing(u64),
    /// A zone set aside as damaged (its file missing or short), with its records.
    Damaged(crate::log::zone::DamagedZone),
}

/// Bytes read at once from a zone.
const WINDOW_BYTES: usize = 8 << 20;

struct Limiter {
    started: Instant,
    rate: Option<u64>,
}

impl Limiter {
    fn pace(&self, bytes: u64) {
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
            let spent = self.started.elapsed();
            if due > spent {
                std::thread::sleep(due - spent);
            }
        }
    }
}

impl Store {
    /// The sequence numbers a scrub in `mode` looks at.
    fn scrub_seqs(&self, mode: ScrubMode) -> Result<Vec<u64>> {
        let end = self.next_seq();
        let zones = self.zones().states();
        Ok(match mode {
            ScrubMode::Full => (0..end).collect(),
            ScrubMode::Sampled {
                percent,
                min_records,
            } => {
                if !(percent > 0.0 && percent <= 100.0) {
                    return Err(Error::invalid(
                        "scrub sample",
                        format!("{percent}% is not a share"),
                    ));
                }
                let want = ((end as f64 * percent / 100.0).ceil() as u64)
                    .max(min_records)
                    .min(end);
                let mut picked: Vec<u64> = sample(&mut rand::rng(), end as usize, want as usize)
                    .into_iter()
                    .map(|i| i as u64)
                    .collect();
                picked.sort_unstable();
                picked
            }
            ScrubMode::Zone { zone } => {
                let st = self.zones().state(zone)?;
                use crate::log::zone::ZoneCondition::{Open, Sealed};
                if !matches!(st.condition, Open | Sealed) {
                    return Err(Error::invalid(
                        "scrub zone",
                        format!("zone {zone} holds no log data"),
                    ));
                }
                let next = zones
                    .iter()
                    .filter(|z| matches!(z.condition, Open | Sealed) && z.first_seq > st.first_seq)
                    .map(|z| z.first_seq)
                    .min()
                    .unwrap_or(end);
                (st.first_seq..next).collect()
            }
        })
    }

    /// Check one frame's bytes against its index entry and recorded leaf.
    fn check_one(
        &self,
        loc: &FrameLocation,
        bytes: std::result::Result<&[u8], Error>,
        recorded_leaf: Option<Hash>,
    ) -> Checked {
        let at = self.zones().location(loc.zone, loc.offset);
        let mut c = Checked {
            seq: loc.seq,
            sha: None,
            prev_hash: None,
            leaf: recorded_leaf,
            damage: Vec::new(),
            authenticated: false,
            shredded: false,
        };
        let mut hurt = |kind: &str, detail: String| {
            c.damage.push(Damage {
                seq: loc.seq,
                at: at.to_string(),
                zone: loc.zone,
                offset: loc.offset,
                kind: kind.into(),
                detail,
            })
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                hurt(
                    match e {
                        Error::Io { .. } => "read-error",
                        Error::ZoneDamaged { .. } => "zone-damaged",
                        _ => "index",
                    },
                    e.to_string(),
                );
                return c;
            }
        };
        let header = match FrameVerifier::identify(bytes, loc) {
            Ok(checked) => checked.header,
            Err(f) => {
                hurt(f.kind(), f.detail(loc.seq));
                return c;
            }
        };
        let sha = frame::hash(bytes);
        if recorded_leaf != Some(LeafData::of(&header, sha).hash()) {
            hurt(
                "payload-rehash",
                "the stored bytes no longer hash to the Merkle leaf recorded when they were written".into(),
            );
        }
        c.sha = Some(sha);
        c.prev_hash = Some(header.prev_hash);
        match FrameVerifier::new(&self.shared).open(bytes, &header, loc.zone, loc.offset) {
            Ok(Opened::Plaintext(_)) => c.authenticated = true,
            Ok(Opened::Unreadable(_)) => c.shredded = true,
            Err(Error::Authentication { .. }) => hurt(
                Fault::Authentication.kind(),
                Fault::Authentication.to_string(),
            ),
            Err(e) => hurt("authentication", e.to_string()),
        }
        c
    }

    /// Check `locs` (consecutive frames of one zone) from sequential reads of
    /// the zone, several frames per read, the checks spread over the cores.
    fn check_zone_frames(
        &self,
        locs: &[FrameLocation],
        leaves: &HashMap<u64, Hash>,
        limiter: &Limiter,
        done_bytes: &mut u64,
    ) -> Vec<Checked> {
        let mut out = Vec::with_capacity(locs.len());
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let mut i = 0;
        while i < locs.len() {
            let zone = locs[i].zone;
            let start = align_down(locs[i].offset);
            let mut end = align_up(locs[i].offset + locs[i].frame_len as u64);
            let mut j = i + 1;
            while j < locs.len() && locs[j].zone == zone {
                let e = align_up(locs[j].offset + locs[j].frame_len as u64);
                if e - start > WINDOW_BYTES as u64 || locs[j].offset < start {
                    break;
                }
                end = end.max(e);
                j += 1;
            }
            let batch = &locs[i..j];
            let mut buf = AlignedBuf::zeroed((end - start) as usize);
            let read = self.zones().read(zone, start, &mut buf);
            let one = |loc: &FrameLocation| -> Checked {
                let leaf = leaves.get(&loc.seq).copied();
                match &read {
                    Ok(()) => {
                        let o = (loc.offset - start) as usize;
                        self.check_one(loc, Ok(&buf[o..o + loc.frame_len as usize]), leaf)
                    }
                    // A failed read of the window: find out frame by frame which ones are hurt.
                    Err(_) => match self.read_checked(loc) {
                        Ok((_, b)) => self.check_one(loc, Ok(&b), leaf),
                        Err(e) => self.check_one(loc, Err(e), leaf),
                    },
                }
            };
            let per = batch.len().div_ceil(workers);
            let results: Vec<Vec<Checked>> = std::thread::scope(|sc| {
                let handles: Vec<_> = batch
                    .chunks(per.max(1))
                    .map(|part| sc.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("scrub worker"))
                    .collect()
            });
            out.extend(results.into_iter().flatten());
            *done_bytes += end - start;
            limiter.pace(*done_bytes);
            i = j;
        }
        out
    }

    /// Scrub the log in `mode`, reading at most `bytes_per_sec` (None: as fast as it goes).
    /// The report is recorded in the log; damage never stops the scrub.
    pub fn scrub(&self, mode: ScrubMode, bytes_per_sec: Option<u64>) -> Result<ScrubReport> {
        self.sync_index()?;
        let started_us = crate::store::now_us();
        let t0 = Instant::now();
        let limiter = Limiter {
            started: t0,
            rate: bytes_per_sec,
        };
        let index = &self.shared.index;
        let mut report = ScrubReport {
            mode,
            started_us,
            seconds: 0.0,
            frames_checked: 0,
            bytes_checked: 0,
            authenticated: 0,
            shredded: 0,
            tree_heads_checked: 0,
            damage_count: 0,
            damage: Vec::new(),
        };
        let full = matches!(mode, ScrubMode::Full);
        // A tree head whose own frame is damaged is reported with the frames; the rest are checked.
        let heads = if full {
            self.readable_tree_heads()?
        } else {
            Vec::new()
        };
        let damaged = self.zones().damaged_zones(self.next_seq());
        // Roots can be rebuilt only while every leaf is known.
        let mut leaves_known_to = u64::MAX;
        let wanted: std::collections::HashSet<u64> =
            heads.iter().map(|h| h.head.tree_size).collect();
        let mut roots_at: HashMap<u64, Hash> = HashMap::new();
        let mut frontier = merkle::Frontier::default();
        let mut prev: Option<(u64, Hash)> = None;
        let mut read_bytes = 0u64;
        // The frames to check, in seq order, grouped so each group is read sequentially.
        let groups: Vec<Group> = match mode {
            ScrubMode::Sampled { .. } => {
                self.scrub_seqs(mode)?.into_iter().map(Group::One).collect()
            }
            _ => {
                let seqs = self.scrub_seqs(mode)?;
                let (first, last) = match (seqs.first(), seqs.last()) {
                    (Some(&f), Some(&l)) => (f, l),
                    _ => (1, 0),
                };
                let mut groups = Vec::new();
                let mut reclaimed = self.compliance().reclaimed()?;
                reclaimed.retain(|r| r.end_seq > first && r.first_seq <= last);
                let locs = if first <= last {
                    index.locations(first, last + 1)?
                } else {
                    Vec::new()
                };
                let mut at = first;
                let mut li = 0;
                while at <= last {
                    if let Some(d) = damaged.iter().find(|d| d.first_seq == at && d.end_seq > at) {
                        groups.push(Group::Damaged(d.clone()));
                        at = d.end_seq;
                        while li < locs.len() && locs[li].seq < at {
                            li += 1;
                        }
                        continue;
                    }
                    if let Some(r) = reclaimed.iter().find(|r| r.first_seq == at) {
                        groups.push(Group::Reclaimed(r.cover()));
                        at = r.end_seq;
                        continue;
                    }
                    let mut run = Vec::new();
                    while li < locs.len() && locs[li].seq == at {
                        if let Some(l) = run.last() {
                            let l: &FrameLocation = l;
                            if l.zone != locs[li].zone {
                                break;
                            }
                        }
                        run.push(locs[li]);
                        li += 1;
                        at += 1;
                    }
                    if run.is_empty() {
                        groups.push(Group::Missing(at));
                        at += 1;
                    } else {
                        groups.push(Group::Zone(run));
                    }
                }
                groups
            }
        };
        let merkle_view = index.merkle()?;
        for g in groups {
            let checked: Vec<Checked> = match g {
                Group::Reclaimed(cover) => {
                    for (h, i, x) in cover {
                        frontier.push_node(h, i, x);
                    }
                    prev = None;
                    continue;
                }
                Group::Damaged(d) => {
                    let leaves = merkle_view.leaves(d.first_seq, d.end_seq)?;
                    for seq in d.first_seq..d.end_seq {
                        match leaves.get(&seq) {
                            Some(l) if full && leaves_known_to == u64::MAX => {
                                frontier.push_leaf(seq, *l)
                            }
                            _ => leaves_known_to = leaves_known_to.min(seq),
                        }
                    }
                    tracing::error!(zone = d.zone, at = %d.at, "scrub found a damaged zone: {}", d.reason);
                    report.damage_count += 1;
                    report.damage.push(Damage {
                        seq: d.first_seq,
                        at: d.at.clone(),
                        zone: d.zone,
                        offset: 0,
                        kind: "zone-damaged".into(),
                        detail: format!(
                            "records {}..{} are unreadable here: {}",
                            d.first_seq, d.end_seq, d.reason
                        ),
                    });
                    prev = None;
                    continue;
                }
                Group::Missing(seq) => {
                    leaves_known_to = leaves_known_to.min(seq);
                    report.damage_count += 1;
                    report.damage.push(Damage {
                        seq,
                        at: "index".into(),
                        zone: u32::MAX,
                        offset: 0,
                        kind: "index".into(),
                        detail: format!("seq {seq} is neither indexed nor in a reclaimed zone"),
                    });
                    prev = None;
                    continue;
                }
                Group::One(seq) => {
                    let Some(loc) = index.location(seq)? else {
                        continue;
                    };
                    let leaf = merkle_view.leaf(seq)?;
                    read_bytes += loc.frame_len as u64;
                    limiter.pace(read_bytes);
                    let c = match self.read_checked(&loc) {
                        Ok((_, b)) => self.check_one(&loc, Ok(&b), leaf),
                        Err(e) => self.check_one(&loc, Err(e), leaf),
                    };
                    // A sampled frame's chain link: the frame before it, read on its own.
                    prev = if seq > 0 && prev.is_none_or(|(p, _)| p + 1 != seq) {
                        index
                            .location(seq - 1)?
                            .and_then(|l| self.read_checked(&l).ok())
                            .map(|(_, b)| (seq - 1, frame::hash(&b)))
                    } else {
                        prev
                    };
                    vec![c]
                }
                Group::Zone(locs) => {
                    let leaves = merkle_view.leaves(locs[0].seq, locs[locs.len() - 1].seq + 1)?;
                    self.check_zone_frames(&locs, &leaves, &limiter, &mut read_bytes)
                }
            };
            for c in checked {
                if full && wanted.contains(&frontier.size()) {
                    roots_at.insert(frontier.size(), frontier.root());
                }
                report.frames_checked += 1;
                if let Some((p, h)) = prev {
                    if p + 1 == c.seq && c.prev_hash.is_some_and(|x| x != h) {
                        report.damage_count += 1;
                        report.damage.push(Damage {
                            seq: c.seq,
                            at: format!("seq {}", c.seq),
                            zone: u32::MAX,
                            offset: 0,
                            kind: "chain".into(),
                            detail: format!("seq {} does not chain to the frame before it", c.seq),
                        });
                    }
                }
                if let Some(l) = c.leaf {
                    if full {
                        frontier.push_leaf(c.seq, l);
                    }
                }
                prev = c.sha.map(|h| (c.seq, h));
                report.authenticated += c.authenticated as u64;
                report.shredded += c.shredded as u64;
                for d in c.damage {
                    tracing::error!(seq = d.seq, at = %d.at, kind = %d.kind, "scrub found damage: {}", d.detail);
                    report.damage_count += 1;
                    if report.damage.len() < DAMAGE_LISTED_MAX {
                        report.damage.push(d);
                    }
                }
            }
        }
        drop(merkle_view);
        report.bytes_checked = read_bytes;
        if full {
            roots_at.insert(frontier.size(), frontier.root());
            for h in &heads {
                let Some(root) = roots_at.get(&h.head.tree_size) else {
                    continue;
                };
                if h.head.tree_size > leaves_known_to {
                    continue;
                }
                report.tree_heads_checked += 1;
                if *root != h.head.root {
                    report.damage_count += 1;
                    report.damage.push(Damage {
                        seq: h.head.tree_size,
                        at: "Merkle tree".into(),
                        zone: u32::MAX,
                        offset: 0,
                        kind: "tree-head".into(),
                        detail: format!(
                            "the root rebuilt from the recorded leaves differs from the signed tree head of size {}",
                            h.head.tree_size
                        ),
                    });
                }
            }
        }
        report.seconds = t0.elapsed().as_secs_f64();
        self.record_scrub(&report)?;
        Ok(report)
    }

    fn record_scrub(&self, report: &ScrubReport) -> Result<()> {
        let body = serde_json::to_vec(report)
            .map_err(|e| Error::invalid("scrub report", e.to_string()))?;
        let mut rec = crate::format::record::NewRecord::message(
            format!("scrub-{}", report.started_us),
            SCRUB_CONVERSATION,
            report.started_us,
            body,
        );
        rec.kind = FrameKind::System;
        rec.channel = "integrity".into();
        rec.message_type = "scrub".into();
        self.append_system(rec)?;
        Ok(())
    }

    /// Scrub reports recorded in the log, newest last (at most `limit`, the newest ones).
    pub fn scrub_reports(&self, limit: usize) -> Result<Vec<ScrubReport>> {
        self.sync_index()?;
        let tag = self.tag_or_zero(
            crate::crypto::keys::TagDomain::Conversation,
            SCRUB_CONVERSATION,
        );
        let seqs = self.shared.index.by_conversation_tag(&tag, usize::MAX)?;
        let skip = seqs.len().saturating_sub(limit);
        let mut out = Vec::new();
        for s in seqs.into_iter().skip(skip) {
            let r = self.get(s)?;
            if r.kind == FrameKind::System && r.conversation_id == SCRUB_CONVERSATION {
                out.push(serde_json::from_slice(&r.body).map_err(|e| Error::Corrupt {
                    at: r.location.clone(),
                    reason: format!("scrub report: {e}"),
                })?);
            }
        }
        Ok(out)
    }
}
