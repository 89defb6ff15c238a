//! Reading the log in order: the one place that decides where frames are.
//!
//! Frames are packed back to back inside a batch; every batch starts on a
//! 4 KiB boundary with a frame flagged `BATCH_START`, and the rest of its last
//! block is padding (zeros, or the remains of a torn write that recovery cut
//! off). A frame is accepted only if its CRC matches, its sequence number is
//! the next one, and its `prev_hash` is the hash of the frame before it. So
//! the scanner walks: next frame at `pos`; otherwise the batch start at the
//! next 4 KiB boundary; otherwise the end of this zone's data. Below a zone's
//! durable write pointer, anything else is damage and is reported with its
//! device, zone and offset.

use crate::error::{Error, Result};
use crate::format::frame::{self, FrameHeader, FLAG_BATCH_START, FRAME_HEADER_LEN, FRAME_LEN_MAX};
use crate::format::location::IndexEntry;
use crate::io::buffer::{align_down, align_up, AlignedBuf, BLOCK_SIZE};
use crate::log::zone::ZoneSet;

const WINDOW_BYTES: usize = 1 << 20;

/// A frame found by the scanner, checked and chained.
#[derive(Debug, Clone)]
pub struct ScannedFrame {
    pub header: FrameHeader,
    pub crc: u32,
    pub hash: [u8; 32],
    pub zone: u32,
    pub offset: u64,
}

impl ScannedFrame {
    /// The index entry for this frame.
    pub fn entry(&self) -> IndexEntry {
        IndexEntry::of(&self.header, self.crc, &self.hash, self.zone, self.offset)
    }
}

/// What lies after the end of the log's tail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailInspection {
    /// A later, valid batch start (offset, seq): acknowledged data past a hole.
    pub later_batch: Option<(u64, u64)>,
    /// Non-zero bytes after the end: what a torn, unacknowledged write left.
    pub nonzero_bytes: u64,
}

/// One stretch of a zone to scan: frames from `start`; `durable_end` is where
/// data is known to be durable (damage below it is an error); `scan_end`
/// bounds the search (the write pointer, or the zone end for a tail).
#[derive(Debug, Clone, Copy)]
pub struct Stretch {
    pub zone: u32,
    pub start: u64,
    pub durable_end: u64,
    pub scan_end: u64,
}

pub struct Scanner<'a> {
    zones: &'a ZoneSet,
    stretches: Vec<Stretch>,
    current: usize,
    pos: u64,
    expected_seq: u64,
    prev_hash: Option<[u8; 32]>,
    window: AlignedBuf,
    window_zone: u32,
    window_start: u64,
    window_len: usize,
    /// Where the data of the last stretch ended (set when the scan finishes).
    pub end: Option<(u32, u64)>,
    /// Reclaimed ranges the chain may jump: first seq → (end seq, hash of the range's last frame).
    bridges: std::collections::BTreeMap<u64, (u64, [u8; 32])>,
    /// How many reclaimed ranges the scan crossed.
    pub bridged: u64,
    /// Accept a jump in sequence at the start of a zone the zone table says
    /// begins later (a reclaimed gap whose audit record is not at hand).
    allow_zone_gaps: bool,
    /// Ranges of damaged zones (first seq → end seq) the scan may jump, and
    /// nothing else: the chain starts again after them.
    skips: std::collections::BTreeMap<u64, u64>,
    /// How many damaged ranges the scan jumped.
    pub skipped: u64,
}

enum Probe {
    Valid(ScannedFrame),
    Invalid(String),
}

impl<'a> Scanner<'a> {
    /// Scan `stretches` in order, expecting `expected_seq` first, chained to `prev_hash` (None: trust the first frame's).
    pub fn new(
        zones: &'a ZoneSet,
        stretches: Vec<Stretch>,
        expected_seq: u64,
        prev_hash: Option<[u8; 32]>,
    ) -> Self {
        let pos = stretches.first().map_or(0, |s| s.start);
        Scanner {
            zones,
            stretches,
            current: 0,
            pos,
            expected_seq,
            prev_hash,
            window: AlignedBuf::zeroed(WINDOW_BYTES),
            window_zone: u32::MAX,
            window_start: 0,
            window_len: 0,
            end: None,
            bridges: Default::default(),
            bridged: 0,
            allow_zone_gaps: false,
            skips: Default::default(),
            skipped: 0,
        }
    }

    /// Let the scan jump exactly these ranges (first seq → end seq) of zones
    /// set aside as damaged; the chain is checked again from the frame after.
    pub fn skipping(mut self, skips: std::collections::BTreeMap<u64, u64>) -> Self {
        self.skips = skips;
        self
    }

    /// Where the scan may resume after damaged ranges starting at `seq`.
    pub fn after_skips(&self, seq: u64) -> u64 {
        let mut at = seq;
        while let Some(&end) = self.skips.get(&at).filter(|&&e| e > at) {
            at = end;
        }
        at
    }

    /// Whether the log's first `first_seq` records all lie in damaged zones.
    pub fn starts_after_skips(&self, first_seq: u64) -> bool {
        first_seq > 0 && self.after_skips(0) == first_seq
    }

    /// Let the scan jump the sequence at zone starts, as the zone table says
    /// (rebuilding the index, where the reclaimed ranges are still to be
    /// read from the log). `verify` never does this: it follows the chain
    /// across reclaimed zones with their recorded hashes.
    pub fn allowing_zone_gaps(mut self) -> Self {
        self.allow_zone_gaps = true;
        self
    }

    /// Let the chain cross reclaimed zones: where the expected seq starts a
    /// reclaimed range, continue after it from the hash recorded for it. A scan
    /// that starts right after a reclaimed range takes its recorded hash as
    /// the previous one, so the first frame is checked too.
    pub fn with_bridges(
        mut self,
        bridges: std::collections::BTreeMap<u64, (u64, [u8; 32])>,
    ) -> Self {
        if self.prev_hash.is_none() {
            if let Some((_, (_, h))) = bridges
                .iter()
                .find(|(_, (end, _))| *end == self.expected_seq)
            {
                self.prev_hash = Some(*h);
                self.bridged += 1;
            }
        }
        self.bridges = bridges;
        self
    }

    /// The whole log from its first frame: every non-empty zone in sequence
    /// order, except zones set aside as damaged (the scan needs
    /// [`Scanner::allowing_zone_gaps`] to step over them).
    pub fn whole_log(zones: &'a ZoneSet) -> Self {
        let states = zones.log_zones();
        let first_seq = states.first().map_or(0, |(_, s)| s.first_seq);
        let stretches = states
            .iter()
            .map(|(z, s)| Stretch {
                zone: *z,
                start: 0,
                durable_end: s.write_pointer,
                scan_end: s.write_pointer,
            })
            .collect();
        Scanner::new(zones, stretches, first_seq, None)
    }

    /// The bytes of `f`, the frame [`Scanner::next_frame`] just returned (still in the read window).
    pub fn frame_bytes(&self, f: &ScannedFrame) -> &[u8] {
        let len = f.header.frame_len as usize;
        assert!(
            f.zone == self.window_zone
                && f.offset >= self.window_start
                && f.offset + len as u64 <= self.window_start + self.window_len as u64,
            "frame_bytes is called for the frame just scanned"
        );
        self.bytes(f.offset, len)
    }

    pub fn expected_seq(&self) -> u64 {
        self.expected_seq
    }

    pub fn prev_hash(&self) -> Option<[u8; 32]> {
        self.prev_hash
    }

    fn fill(&mut self, zone: u32, pos: u64, need: usize, scan_end: u64) -> Result<bool> {
        let in_window = zone == self.window_zone
            && pos >= self.window_start
            && pos + need as u64 <= self.window_start + self.window_len as u64;
        if in_window {
            return Ok(true);
        }
        if pos + need as u64 > scan_end {
            return Ok(false);
        }
        let start = align_down(pos);
        let want = align_up((pos - start) + need as u64).max(WINDOW_BYTES as u64);
        let len = want.min(align_up(scan_end) - start) as usize;
        if self.window.len() < len {
            self.window = AlignedBuf::zeroed(len);
        }
        self.zones.read(zone, start, &mut self.window[..len])?;
        self.window_zone = zone;
        self.window_start = start;
        self.window_len = len;
        Ok(pos + need as u64 <= start + len as u64)
    }

    /// Whether `from..to` of `zone` (within one block) holds only zeros.
    fn zeros(&mut self, zone: u32, from: u64, to: u64) -> Result<bool> {
        let len = (to - from) as usize;
        Ok(self.fill(zone, from, len, to)? && self.bytes(from, len).iter().all(|&b| b == 0))
    }

    fn bytes(&self, pos: u64, len: usize) -> &[u8] {
        let o = (pos - self.window_start) as usize;
        &self.window[o..o + len]
    }

    /// Look at the frame at `pos` and say whether it continues the chain.
    fn probe(
        &mut self,
        zone: u32,
        pos: u64,
        scan_end: u64,
        need_batch_start: bool,
    ) -> Result<Probe> {
        if !self.fill(zone, pos, FRAME_HEADER_LEN, scan_end)? {
            return Ok(Probe::Invalid(
                "no room for a frame header before the end of the zone's data".into(),
            ));
        }
        let header = match FrameHeader::decode(self.bytes(pos, FRAME_HEADER_LEN)) {
            Ok(h) => h,
            Err(e) => return Ok(Probe::Invalid(e.to_string())),
        };
        let len = header.frame_len as usize;
        if !self.fill(zone, pos, len, scan_end)? {
            return Ok(Probe::Invalid(format!(
                "frame of {len} bytes runs past the end of the zone's data"
            )));
        }
        let bytes = self.bytes(pos, len);
        let checked = match frame::check(bytes) {
            Ok(c) => c,
            Err(e) => return Ok(Probe::Invalid(e.to_string())),
        };
        if checked.header.seq != self.expected_seq {
            return Ok(Probe::Invalid(format!(
                "found seq {} where seq {} belongs",
                checked.header.seq, self.expected_seq
            )));
        }
        if let Some(prev) = self.prev_hash {
            if checked.header.prev_hash != prev {
                return Ok(Probe::Invalid(format!(
                    "seq {} does not chain to the previous frame's hash",
                    checked.header.seq
                )));
            }
        }
        if need_batch_start && checked.header.flags & FLAG_BATCH_START == 0 {
            return Ok(Probe::Invalid(
                "frame at a block boundary does not start a batch".into(),
            ));
        }
        let hash = frame::hash(bytes);
        Ok(Probe::Valid(ScannedFrame {
            header: checked.header,
            crc: checked.crc,
            hash,
            zone,
            offset: pos,
        }))
    }

    /// The chain rule, for a frame about to be taken (probe has checked it):
    /// the expected seq, chained to the frame before (when known), at or
    /// after where the previous frame ended.
    fn assert_continues(&self, f: &ScannedFrame) {
        assert_eq!(
            f.header.seq, self.expected_seq,
            "the scan takes a frame only at its seq"
        );
        assert!(
            self.prev_hash.is_none_or(|p| p == f.header.prev_hash),
            "the scan takes a frame only chained to the one before (seq {})",
            f.header.seq
        );
        assert!(
            f.offset >= self.pos,
            "the scan moves forward through a zone"
        );
    }

    /// The next frame of the log, or `None` at its end.
    pub fn next_frame(&mut self) -> Result<Option<ScannedFrame>> {
        loop {
            let Some(st) = self.stretches.get(self.current).copied() else {
                return Ok(None);
            };
            if self.pos < st.scan_end {
                let found = match self.probe(st.zone, self.pos, st.scan_end, false)? {
                    Probe::Valid(f) => Some(f),
                    Probe::Invalid(why) => {
                        let cand = align_up(self.pos);
                        let (mut at, mut why) = (self.pos, why);
                        let next = if cand != self.pos && cand < st.scan_end {
                            match self.probe(st.zone, cand, st.scan_end, true)? {
                                Probe::Valid(f) => Some(f),
                                // Zeros up to the block boundary are a batch's
                                // padding: the damage is the frame after them.
                                Probe::Invalid(later) if self.zeros(st.zone, self.pos, cand)? => {
                                    (at, why) = (cand, later);
                                    None
                                }
                                Probe::Invalid(_) => None,
                            }
                        } else {
                            None
                        };
                        if next.is_none() && align_up(self.pos) < st.durable_end {
                            return Err(Error::Corrupt {
                                at: self.zones.location(st.zone, at),
                                reason: why,
                            });
                        }
                        next
                    }
                };
                if let Some(f) = found {
                    self.assert_continues(&f);
                    self.pos = f.offset + f.header.frame_len as u64;
                    self.expected_seq = f.header.seq + 1;
                    self.prev_hash = Some(f.hash);
                    return Ok(Some(f));
                }
            }
            // End of this stretch's data.
            self.end = Some((st.zone, self.pos));
            self.current += 1;
            if let Some(next) = self.stretches.get(self.current) {
                self.pos = next.start;
                while let Some(&(end, hash)) = self.bridges.get(&self.expected_seq) {
                    if end <= self.expected_seq {
                        // A damaged reclaim record cannot move the scan backwards; the
                        // chain check that follows reports the gap instead.
                        break;
                    }
                    self.expected_seq = end;
                    self.prev_hash = Some(hash);
                    self.bridged += 1;
                }
                if next.start == 0 {
                    let first = self.zones.state(next.zone)?.first_seq;
                    let jump = first > self.expected_seq
                        && (self.allow_zone_gaps || self.after_skips(self.expected_seq) == first);
                    if jump {
                        self.skipped += u64::from(!self.allow_zone_gaps);
                        self.expected_seq = first;
                        self.prev_hash = None;
                    }
                }
            }
        }
    }

    /// After the tail of the log ended at `end` in `zone`, read what lies
    /// beyond it (up to `window` bytes past the next block boundary), in one
    /// pass: count the non-zero bytes a torn write left behind, and look for a
    /// later batch carrying a sequence number at or beyond the expected one.
    /// Finding one means acknowledged frames exist past a damaged one: that
    /// is damage, not a torn tail.
    pub fn inspect_tail(
        &mut self,
        zone: u32,
        end: u64,
        window: u64,
        scan_end: u64,
    ) -> Result<TailInspection> {
        let mut out = TailInspection::default();
        let first_start = align_up(end);
        let limit = (first_start + window).min(scan_end);
        let mut pos = align_down(end);
        while pos < limit {
            if !self.fill(zone, pos, BLOCK_SIZE, scan_end)? {
                break;
            }
            let from = end.max(pos);
            out.nonzero_bytes += self
                .bytes(from, (pos + BLOCK_SIZE as u64 - from) as usize)
                .iter()
                .filter(|&&b| b != 0)
                .count() as u64;
            if pos >= first_start && out.later_batch.is_none() {
                if let Ok(h) = FrameHeader::decode(self.bytes(pos, FRAME_HEADER_LEN)) {
                    let len = h.frame_len as usize;
                    if h.flags & FLAG_BATCH_START != 0
                        && h.seq >= self.expected_seq
                        && len <= FRAME_LEN_MAX
                        && self.fill(zone, pos, len, scan_end)?
                        && frame::check(self.bytes(pos, len)).is_ok()
                    {
                        out.later_batch = Some((pos, h.seq));
                    }
                }
            }
            pos += BLOCK_SIZE as u64;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::DataKey;
    use crate::format::frame::{FrameKind, FRAME_OVERHEAD};
    use crate::io::device::{Device, FaultConfig, FaultDevice, Geometry};
    use crate::log::zone::{ZoneState, ZonedDevice};
    use std::sync::Arc;

    const ZONE: u64 = 64 * 1024;

    fn zones(count: u32) -> ZoneSet {
        let d = Arc::new(FaultDevice::new("t", FaultConfig::new(1)));
        d.attach(Geometry {
            zone_size: ZONE,
            zone_count: count,
        })
        .unwrap();
        ZoneSet::new(vec![ZonedDevice::new(
            d,
            vec![ZoneState::EMPTY; count as usize],
        )])
    }

    /// One batch: frames `seqs` chained after `prev`, padded to whole
    /// blocks. Returns its bytes, where each frame starts, and the last hash.
    fn batch(seqs: std::ops::Range<u64>, prev: [u8; 32]) -> (Vec<u8>, Vec<usize>, [u8; 32]) {
        let key = DataKey::new(0, &[1; 32]);
        let (mut out, mut starts, mut prev) = (Vec::new(), Vec::new(), prev);
        for seq in seqs.clone() {
            let payload = vec![seq as u8 | 1; 300 + seq as usize * 7];
            let mut h = FrameHeader {
                kind: FrameKind::Message,
                flags: if seq == seqs.start {
                    FLAG_BATCH_START
                } else {
                    0
                },
                frame_len: 0,
                data_key_id: 0,
                seq,
                timestamp_us: seq as i64,
                retain_until_us: 0,
                nonce: frame::nonce(1, seq),
                custodian_tag: [0; 12],
                record_tag: [0; 16],
                conversation_tag: [0; 16],
                prev_hash: prev,
                content_hash: [0; 32],
            };
            let mut f = vec![0u8; FRAME_OVERHEAD + payload.len()];
            let (_, hash) = frame::seal(&mut f, &mut h, &payload, &key, &[3; 16]);
            starts.push(out.len());
            out.extend_from_slice(&f);
            prev = hash;
        }
        out.resize(align_up(out.len() as u64) as usize, 0);
        (out, starts, prev)
    }

    /// The active zone's tail from offset 0: nothing checkpointed yet.
    fn tail(zone: u32) -> Stretch {
        Stretch {
            zone,
            start: 0,
            durable_end: 0,
            scan_end: ZONE,
        }
    }

    fn seqs(sc: &mut Scanner<'_>) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        while let Some(f) = sc.next_frame()? {
            out.push(f.header.seq);
        }
        Ok(out)
    }

    #[test]
    fn a_tail_scan_takes_every_chained_frame_and_stops_at_zeros() {
        let z = zones(1);
        let (a, _, h) = batch(0..3, [0; 32]);
        let (b, b_starts, _) = batch(3..5, h);
        z.append_durable(0, 0, &a, 0).unwrap();
        z.append_durable(0, a.len() as u64, &b, 3).unwrap();
        let mut sc = Scanner::new(&z, vec![tail(0)], 0, Some([0; 32]));
        let mut found = Vec::new();
        while let Some(f) = sc.next_frame().unwrap() {
            found.push((f.header.seq, f.offset));
        }
        assert_eq!(
            found.iter().map(|f| f.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(
            found[3].1,
            a.len() as u64,
            "the second batch starts on its block"
        );
        let last_len = FRAME_OVERHEAD as u64 + 300 + 4 * 7;
        assert_eq!(
            sc.end,
            Some((0, a.len() as u64 + b_starts[1] as u64 + last_len)),
            "the log ends where its last frame ends"
        );
        assert_eq!(sc.expected_seq(), 5);
    }

    #[test]
    fn a_torn_batch_at_the_tail_ends_the_log_and_leaves_its_bytes_counted() {
        let z = zones(1);
        let (a, _, h) = batch(0..2, [0; 32]);
        let (mut b, b_starts, _) = batch(2..4, h);
        // Frame 3 was half written when the power failed.
        let torn_at = b_starts[1] + 100;
        b[torn_at..].fill(0);
        z.append_durable(0, 0, &a, 0).unwrap();
        z.append_durable(0, a.len() as u64, &b, 2).unwrap();
        let mut sc = Scanner::new(&z, vec![tail(0)], 0, Some([0; 32]));
        assert_eq!(seqs(&mut sc).unwrap(), vec![0, 1, 2]);
        let (zone, end) = sc.end.unwrap();
        assert_eq!((zone, end), (0, a.len() as u64 + b_starts[1] as u64));
        let t = sc.inspect_tail(0, end, ZONE, ZONE).unwrap();
        assert_eq!(t.later_batch, None, "nothing acknowledged lies beyond");
        assert_eq!(
            t.nonzero_bytes,
            b[b_starts[1]..torn_at].iter().filter(|&&x| x != 0).count() as u64,
            "the torn frame's bytes are what is left past the end"
        );
    }

    #[test]
    fn a_valid_batch_past_a_damaged_one_is_reported() {
        let z = zones(1);
        let (a, _, h) = batch(0..2, [0; 32]);
        let (mut b, _, h) = batch(2..3, h);
        let (c, _, _) = batch(3..4, h);
        b[FRAME_HEADER_LEN + 10] ^= 0x40;
        z.append_durable(0, 0, &a, 0).unwrap();
        z.append_durable(0, a.len() as u64, &b, 2).unwrap();
        let c_at = (a.len() + b.len()) as u64;
        z.append_durable(0, c_at, &c, 3).unwrap();
        let mut sc = Scanner::new(&z, vec![tail(0)], 0, Some([0; 32]));
        assert_eq!(
            seqs(&mut sc).unwrap(),
            vec![0, 1],
            "the scan stops at the damage"
        );
        let (_, end) = sc.end.unwrap();
        let t = sc.inspect_tail(0, end, ZONE, ZONE).unwrap();
        assert_eq!(
            t.later_batch,
            Some((c_at, 3)),
            "an acknowledged batch past the damage is found"
        );
    }

    #[test]
    fn damage_below_the_durable_end_is_an_error_naming_where() {
        let z = zones(1);
        let (a, _, h) = batch(0..2, [0; 32]);
        let (mut b, _, _) = batch(2..4, h);
        b[FRAME_HEADER_LEN + 10] ^= 0x40;
        z.append_durable(0, 0, &a, 0).unwrap();
        z.append_durable(0, a.len() as u64, &b, 2).unwrap();
        let wp = (a.len() + b.len()) as u64;
        let st = Stretch {
            zone: 0,
            start: 0,
            durable_end: wp,
            scan_end: wp,
        };
        let mut sc = Scanner::new(&z, vec![st], 0, Some([0; 32]));
        match seqs(&mut sc) {
            Err(Error::Corrupt { at, reason }) => {
                assert_eq!(at.offset, a.len() as u64, "the damaged frame's offset");
                assert!(reason.contains("CRC"), "{reason}");
            }
            other => panic!("expected damage, got {other:?}"),
        }
    }

    #[test]
    fn a_frame_that_does_not_chain_or_skips_a_seq_is_not_taken() {
        let z = zones(1);
        let (a, _, _) = batch(0..2, [0; 32]);
        // Well formed and flagged as a batch start, but chained to another log.
        let (b, _, _) = batch(2..3, [9; 32]);
        z.append_durable(0, 0, &a, 0).unwrap();
        z.append_durable(0, a.len() as u64, &b, 2).unwrap();
        let wp = (a.len() + b.len()) as u64;
        let durable = |start| Stretch {
            zone: 0,
            start,
            durable_end: wp,
            scan_end: wp,
        };
        let mut sc = Scanner::new(&z, vec![durable(0)], 0, Some([0; 32]));
        match seqs(&mut sc) {
            Err(Error::Corrupt { reason, .. }) => {
                assert!(reason.contains("does not chain"), "{reason}")
            }
            other => panic!("expected a broken chain, got {other:?}"),
        }
        // Expecting another seq at the same place: refused for its seq.
        let mut sc = Scanner::new(&z, vec![durable(a.len() as u64)], 5, None);
        match seqs(&mut sc) {
            Err(Error::Corrupt { reason, .. }) => {
                assert!(
                    reason.contains("found seq 2 where seq 5 belongs"),
                    "{reason}"
                )
            }
            other => panic!("expected a wrong seq, got {other:?}"),
        }
        // With no previous hash to hold it to, the frame is taken.
        let mut sc = Scanner::new(&z, vec![durable(a.len() as u64)], 2, None);
        assert_eq!(seqs(&mut sc).unwrap(), vec![2]);
    }

    #[test]
    fn the_whole_log_runs_across_zones_in_seq_order() {
        let z = zones(2);
        let (a, _, h) = batch(0..2, [0; 32]);
        let (b, _, _) = batch(2..4, h);
        // The log began in zone 1 and went on in zone 0.
        z.append_durable(1, 0, &a, 0).unwrap();
        z.append_durable(0, 0, &b, 2).unwrap();
        let mut sc = Scanner::whole_log(&z);
        let mut found = Vec::new();
        while let Some(f) = sc.next_frame().unwrap() {
            found.push((f.zone, f.header.seq));
        }
        assert_eq!(found, vec![(1, 0), (1, 1), (0, 2), (0, 3)]);
        assert_eq!(sc.expected_seq(), 4);
    }
}
