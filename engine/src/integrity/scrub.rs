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

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use crate::compliance::state::Reclaimed;
use crate::error::{Error, Result};
use crate::format::frame;
use crate::format::merkle::{self, Hash, LeafData};
use crate::index::FrameLocation;
use crate::index::MerkleView;
use crate::integrity::treehead::SignedTreeHead;
use crate::io::buffer::{align_down, align_up, AlignedBuf};
use crate::log::commit::Shared;
use crate::log::verify::{Fault, FrameVerifier, Opened};
use crate::log::zone::DamagedZone;

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
    Damaged(DamagedZone),
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

/// One scrub of the log: what it reads, and what the frames are checked
/// against besides themselves.
pub(crate) struct Scrubber<'a> {
    log: &'a Shared,
    /// The signed tree heads whose roots a full scrub rebuilds.
    heads: Vec<SignedTreeHead>,
    /// Reclaimed ranges: their Merkle cover stands in for their frames.
    reclaimed: Vec<Reclaimed>,
}

/// A scrub under way: the report so far, and the Merkle roots rebuilt from
/// the re-hashed leaves.
struct Run {
    full: bool,
    report: ScrubReport,
    frontier: merkle::Frontier,
    /// The tree sizes of the signed heads, whose roots are kept.
    wanted: HashSet<u64>,
    roots_at: HashMap<u64, Hash>,
    /// Roots can be rebuilt only while every leaf is known.
    leaves_known_to: u64,
    /// The last frame checked and its hash, for the chain link.
    prev: Option<(u64, Hash)>,
    read_bytes: u64,
}

impl<'a> Scrubber<'a> {
    /// A scrub of `log`; `heads` empty unless the scrub is full.
    pub(crate) fn new(
        log: &'a Shared,
        heads: Vec<SignedTreeHead>,
        reclaimed: Vec<Reclaimed>,
    ) -> Self {
        Scrubber {
            log,
            heads,
            reclaimed,
        }
    }

    /// Scrub the log in `mode`, reading at most `bytes_per_sec` (None: as
    /// fast as it goes). Damage never stops the scrub.
    pub(crate) fn run(&self, mode: ScrubMode, bytes_per_sec: Option<u64>) -> Result<ScrubReport> {
        let t0 = Instant::now();
        let limiter = Limiter {
            started: t0,
            rate: bytes_per_sec,
        };
        let full = matches!(mode, ScrubMode::Full);
        let mut run = Run {
            full,
            report: ScrubReport {
                mode,
                started_us: crate::time::timestamp::now_us(),
                seconds: 0.0,
                frames_checked: 0,
                bytes_checked: 0,
                authenticated: 0,
                shredded: 0,
                tree_heads_checked: 0,
                damage_count: 0,
                damage: Vec::new(),
            },
            frontier: merkle::Frontier::default(),
            wanted: self.heads.iter().map(|h| h.head.tree_size).collect(),
            roots_at: HashMap::new(),
            leaves_known_to: u64::MAX,
            prev: None,
            read_bytes: 0,
        };
        let groups = self.groups(mode)?;
        let merkle_view = self.log.index.merkle()?;
        for g in groups {
            self.visit(&mut run, g, &merkle_view, &limiter)?;
        }
        drop(merkle_view);
        run.report.bytes_checked = run.read_bytes;
        if full {
            run.check_heads(&self.heads);
        }
        run.report.seconds = t0.elapsed().as_secs_f64();
        Ok(run.report)
    }

    /// The sequence numbers a scrub in `mode` looks at.
    fn scrub_seqs(&self, mode: ScrubMode) -> Result<Vec<u64>> {
        let end = self.log.acked();
        let zones = self.log.zones.states();
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
                let st = self.log.zones.state(zone)?;
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

    /// The frames to check, in seq order, grouped so each group is read sequentially.
    fn groups(&self, mode: ScrubMode) -> Result<Vec<Group>> {
        let seqs = self.scrub_seqs(mode)?;
        if let ScrubMode::Sampled { .. } = mode {
            return Ok(seqs.into_iter().map(Group::One).collect());
        }
        let (first, last) = match (seqs.first(), seqs.last()) {
            (Some(&f), Some(&l)) => (f, l),
            _ => return Ok(Vec::new()),
        };
        let damaged = self.log.zones.damaged_zones(self.log.acked());
        let reclaimed: Vec<&Reclaimed> = self
            .reclaimed
            .iter()
            .filter(|r| r.end_seq > first && r.first_seq <= last)
            .collect();
        let locs = self.log.index.locations(first, last + 1)?;
        let mut groups = Vec::new();
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
            let mut run: Vec<FrameLocation> = Vec::new();
            while li < locs.len() && locs[li].seq == at {
                if run.last().is_some_and(|l| l.zone != locs[li].zone) {
                    break;
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
        Ok(groups)
    }

    /// Check one group and take what it found into the run.
    fn visit(&self, run: &mut Run, g: Group, view: &MerkleView, limiter: &Limiter) -> Result<()> {
        let checked = match g {
            Group::Reclaimed(cover) => {
                for (h, i, x) in cover {
                    run.frontier.push_node(h, i, x);
                }
                run.prev = None;
                return Ok(());
            }
            Group::Damaged(d) => {
                let leaves = view.leaves(d.first_seq, d.end_seq)?;
                run.damaged_zone(&d, &leaves);
                return Ok(());
            }
            Group::Missing(seq) => {
                run.missing(seq);
                return Ok(());
            }
            Group::One(seq) => {
                let Some(loc) = self.log.index.location(seq)? else {
                    return Ok(());
                };
                run.read_bytes += loc.frame_len as u64;
                limiter.pace(run.read_bytes);
                let c = self.check_read(&loc, view.leaf(seq)?);
                run.prev = self.link_before(seq, run.prev)?;
                vec![c]
            }
            Group::Zone(locs) => {
                let leaves = view.leaves(locs[0].seq, locs[locs.len() - 1].seq + 1)?;
                self.check_zone_frames(&locs, &leaves, limiter, &mut run.read_bytes)
            }
        };
        run.absorb(checked);
        Ok(())
    }

    /// A sampled frame's chain link: the frame before it, read on its own
    /// (unless it was the frame checked just before).
    fn link_before(&self, seq: u64, prev: Option<(u64, Hash)>) -> Result<Option<(u64, Hash)>> {
        if seq == 0 || prev.is_some_and(|(p, _)| p + 1 == seq) {
            return Ok(prev);
        }
        let verifier = FrameVerifier::new(self.log);
        Ok(self
            .log
            .index
            .location(seq - 1)?
            .and_then(|l| verifier.read(&l).ok())
            .map(|(_, b)| (seq - 1, frame::hash(&b))))
    }

    /// Read the frame at `loc` on its own and check it.
    fn check_read(&self, loc: &FrameLocation, leaf: Option<Hash>) -> Checked {
        match FrameVerifier::new(self.log).read(loc) {
            Ok((_, b)) => self.check_one(loc, Ok(&b), leaf),
            Err(e) => self.check_one(loc, Err(e), leaf),
        }
    }

    /// Check one frame's bytes against its index entry and recorded leaf.
    fn check_one(
        &self,
        loc: &FrameLocation,
        bytes: std::result::Result<&[u8], Error>,
        recorded_leaf: Option<Hash>,
    ) -> Checked {
        let at = self.log.zones.location(loc.zone, loc.offset);
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
        match FrameVerifier::new(self.log).open(bytes, &header, loc.zone, loc.offset) {
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
            let read = self.log.zones.read(zone, start, &mut buf);
            let one = |loc: &FrameLocation| -> Checked {
                let leaf = leaves.get(&loc.seq).copied();
                match &read {
                    Ok(()) => {
                        let o = (loc.offset - start) as usize;
                        self.check_one(loc, Ok(&buf[o..o + loc.frame_len as usize]), leaf)
                    }
                    // A failed read of the window: find out frame by frame which ones are hurt.
                    Err(_) => self.check_read(loc, leaf),
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
}

impl Run {
    fn push_damage(&mut self, d: Damage) {
        self.report.damage_count += 1;
        if self.report.damage.len() < DAMAGE_LISTED_MAX {
            self.report.damage.push(d);
        }
    }

    /// A zone set aside as damaged: its records count as found damaged, and
    /// its recorded leaves keep the Merkle rebuild going where known.
    fn damaged_zone(&mut self, d: &DamagedZone, leaves: &HashMap<u64, Hash>) {
        for seq in d.first_seq..d.end_seq {
            match leaves.get(&seq) {
                Some(l) if self.full && self.leaves_known_to == u64::MAX => {
                    self.frontier.push_leaf(seq, *l)
                }
                _ => self.leaves_known_to = self.leaves_known_to.min(seq),
            }
        }
        tracing::error!(zone = d.zone, at = %d.at, "scrub found a damaged zone: {}", d.reason);
        self.push_damage(Damage {
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
        self.prev = None;
    }

    /// A seq the index lacks and no reclaim explains.
    fn missing(&mut self, seq: u64) {
        self.leaves_known_to = self.leaves_known_to.min(seq);
        self.push_damage(Damage {
            seq,
            at: "index".into(),
            zone: u32::MAX,
            offset: 0,
            kind: "index".into(),
            detail: format!("seq {seq} is neither indexed nor in a reclaimed zone"),
        });
        self.prev = None;
    }

    /// Take checked frames (in seq order) into the report, the chain check
    /// and the Merkle rebuild.
    fn absorb(&mut self, checked: Vec<Checked>) {
        for c in checked {
            if self.full && self.wanted.contains(&self.frontier.size()) {
                self.roots_at
                    .insert(self.frontier.size(), self.frontier.root());
            }
            self.report.frames_checked += 1;
            if let Some((p, h)) = self.prev {
                if p + 1 == c.seq && c.prev_hash.is_some_and(|x| x != h) {
                    self.push_damage(Damage {
                        seq: c.seq,
                        at: format!("seq {}", c.seq),
                        zone: u32::MAX,
                        offset: 0,
                        kind: "chain".into(),
                        detail: format!("seq {} does not chain to the frame before it", c.seq),
                    });
                }
            }
            if let (Some(l), true) = (c.leaf, self.full) {
                self.frontier.push_leaf(c.seq, l);
            }
            self.prev = c.sha.map(|h| (c.seq, h));
            self.report.authenticated += c.authenticated as u64;
            self.report.shredded += c.shredded as u64;
            for d in c.damage {
                tracing::error!(seq = d.seq, at = %d.at, kind = %d.kind, "scrub found damage: {}", d.detail);
                self.push_damage(d);
            }
        }
    }

    /// Compare the rebuilt roots with every signed tree head whose leaves
    /// were all known.
    fn check_heads(&mut self, heads: &[SignedTreeHead]) {
        self.roots_at
            .insert(self.frontier.size(), self.frontier.root());
        for h in heads {
            let Some(root) = self.roots_at.get(&h.head.tree_size).copied() else {
                continue;
            };
            if h.head.tree_size > self.leaves_known_to {
                continue;
            }
            self.report.tree_heads_checked += 1;
            if root != h.head.root {
                self.push_damage(Damage {
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
}
