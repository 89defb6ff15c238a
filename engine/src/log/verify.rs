//! What a good frame is, decided in one place.
//!
//! Four readers check frames: a read by seq, `verify` over the whole log,
//! the index rebuild (which must open manifests and audit events), and the
//! scrubber. They used to write the checks out each in its own way, so a
//! change to the rule could reach the reader and not the scrubber. Here is
//! the one definition, in the order the checks must run:
//!
//! 1. **bounds**: an index entry points inside a zone the store has, with a
//!    length a frame can have (a damaged index gives an error, never a huge
//!    allocation or a read past the zone);
//! 2. **identity**: the bytes there are a whole frame whose CRC matches, and
//!    it is the frame expected there — same seq, CRC and length (a
//!    misdirected or lost write leaves another frame, or none);
//! 3. **authenticity**: the GCM tag verifies under the frame's data key.
//!
//! A frame whose data key is unavailable — destroyed by an executed erasure,
//! missing from a restored keystore, or acknowledged lost — cannot be
//! authenticated, and is not damage: [`Opened::Unreadable`] says so, and each
//! reader decides what that means for it (a read returns the error; verify,
//! rebuild and scrub count it and go on). That is the only way a frame
//! passes without its tag being checked.

use std::fmt;
use std::sync::Arc;

use crate::crypto::keys::DataKey;
use crate::error::{Error, Location, Result};
use crate::format::frame::{self, CheckedFrame, FrameError, FrameHeader, FRAME_OVERHEAD};
use crate::format::location::FrameLocation;
use crate::io::buffer::{align_down, align_up, AlignedBuf};
use crate::log::commit::Shared;

/// Why a frame is not the good frame expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The index entry points outside the log (or has an impossible length).
    OutOfBounds { len: usize },
    /// The bytes are not a whole, well-formed frame with a matching CRC.
    Corrupt(FrameError),
    /// A good frame, but not the one expected there.
    Misdirected {
        expected_seq: u64,
        expected_crc: u32,
        found_seq: u64,
        found_crc: u32,
    },
    /// The GCM tag does not verify under the frame's data key.
    Authentication,
}

impl Fault {
    /// The damage kind the scrubber records for it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::OutOfBounds { .. } => "index",
            Fault::Corrupt(_) => "corrupt",
            Fault::Misdirected { .. } => "misdirected",
            Fault::Authentication => "authentication",
        }
    }

    /// The store's error for frame `seq` at `at`.
    pub fn into_error(self, at: Location, seq: u64) -> Error {
        match self {
            Fault::OutOfBounds { len } => Error::Index {
                path: "index".into(),
                reason: format!("the entry for seq {seq} points outside the log ({at}, {len} bytes); run `stele admin reindex`"),
            },
            Fault::Authentication => Error::Authentication { at, seq },
            f @ Fault::Corrupt(_) => Error::Corrupt {
                at,
                reason: f.detail(seq),
            },
            f @ Fault::Misdirected { .. } => Error::Corrupt {
                at,
                reason: format!("misdirected: {f}"),
            },
        }
    }

    /// What is wrong with frame `seq`, for a damage report.
    pub fn detail(&self, seq: u64) -> String {
        match self {
            Fault::Corrupt(e) => format!("seq {seq}: {e}"),
            f => f.to_string(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::OutOfBounds { len } => {
                write!(f, "the index entry points outside the log ({len} bytes)")
            }
            Fault::Corrupt(e) => write!(f, "{e}"),
            Fault::Misdirected {
                expected_seq,
                expected_crc,
                found_seq,
                found_crc,
            } => write!(
                f,
                "expected seq {expected_seq} (crc {expected_crc:08x}), found seq {found_seq} (crc {found_crc:08x})"
            ),
            Fault::Authentication => write!(f, "the GCM tag does not verify"),
        }
    }
}

/// A frame's plaintext, or why it cannot be had without the frame being damaged.
pub enum Opened {
    Plaintext(Vec<u8>),
    /// Its data key is destroyed, missing or lost: the error says which.
    Unreadable(Error),
}

/// The checks, over the log's zones and keys.
pub struct FrameVerifier<'a> {
    shared: &'a Shared,
}

impl<'a> FrameVerifier<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
        FrameVerifier { shared }
    }

    /// Where frame `seq` at (`zone`, `offset`) is, for errors.
    pub fn at(&self, zone: u32, offset: u64) -> Location {
        self.shared.zones.location(zone, offset)
    }

    /// Check 1: `loc` lies inside a zone of the log and has a frame's length.
    pub fn in_bounds(&self, loc: &FrameLocation) -> std::result::Result<(), Fault> {
        let zones = &self.shared.zones;
        let len = loc.frame_len as usize;
        let fits = (FRAME_OVERHEAD..=frame::FRAME_LEN_MAX).contains(&len)
            && zones.state(loc.zone).is_ok()
            && loc
                .offset
                .checked_add(len as u64)
                .is_some_and(|e| e <= zones.zone_size());
        if fits {
            Ok(())
        } else {
            Err(Fault::OutOfBounds { len })
        }
    }

    /// Check 2: `bytes` are a good frame, and the one `loc` expects.
    pub fn identify(bytes: &[u8], loc: &FrameLocation) -> std::result::Result<CheckedFrame, Fault> {
        let checked = frame::check(bytes).map_err(Fault::Corrupt)?;
        let h = &checked.header;
        if h.seq != loc.seq || checked.crc != loc.crc || h.frame_len != loc.frame_len {
            return Err(Fault::Misdirected {
                expected_seq: loc.seq,
                expected_crc: loc.crc,
                found_seq: h.seq,
                found_crc: checked.crc,
            });
        }
        Ok(checked)
    }

    /// Checks 1 and 2 on the medium: read the frame at `loc` and make sure
    /// it is the one the index expects there. No key is used.
    pub fn read(&self, loc: &FrameLocation) -> Result<(FrameHeader, Vec<u8>)> {
        let at = || self.at(loc.zone, loc.offset);
        self.in_bounds(loc)
            .map_err(|f| f.into_error(at(), loc.seq))?;
        let start = align_down(loc.offset);
        let end = align_up(loc.offset + loc.frame_len as u64);
        let mut buf = AlignedBuf::zeroed((end - start) as usize);
        self.shared.zones.read(loc.zone, start, &mut buf)?;
        let from = (loc.offset - start) as usize;
        let bytes = &buf[from..from + loc.frame_len as usize];
        let checked = Self::identify(bytes, loc).map_err(|f| f.into_error(at(), loc.seq))?;
        Ok((checked.header, bytes.to_vec()))
    }

    /// Check 3: the frame's data key, then its tag. A failed tag is
    /// `Error::Authentication` naming where; a key that cannot be looked up
    /// for another reason (the keystore fails) is that error.
    pub fn open(
        &self,
        bytes: &[u8],
        header: &FrameHeader,
        zone: u32,
        offset: u64,
    ) -> Result<Opened> {
        let key: Arc<DataKey> = match self.shared.data_key(header.data_key_id, header.seq) {
            Ok(k) => k,
            Err(e) if e.key_unavailable() => return Ok(Opened::Unreadable(e)),
            Err(e) => return Err(e),
        };
        frame::open(bytes, header, &key, &self.shared.store_id)
            .map(Opened::Plaintext)
            .map_err(|_| Fault::Authentication.into_error(self.at(zone, offset), header.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(seq: u64, crc: u32, len: u32) -> FrameLocation {
        FrameLocation {
            seq,
            zone: 0,
            offset: 0,
            frame_len: len,
            crc,
            kind: frame::FrameKind::Message,
            timestamp_us: 0,
            retain_until_us: 0,
            data_key_id: 0,
            custodian_tag: [0; crate::crypto::keys::CUSTODIAN_TAG_LEN],
            conversation_tag: [0; crate::crypto::keys::TAG_LEN],
        }
    }

    #[test]
    fn bytes_that_are_no_frame_are_corrupt_not_misdirected() {
        let junk = vec![0xa5u8; 4096];
        match FrameVerifier::identify(&junk, &loc(1, 2, 4096)) {
            Err(Fault::Corrupt(_)) => {}
            other => panic!("{:?}", other.map(|c| c.header.seq)),
        }
    }

    #[test]
    fn faults_name_their_kind_and_become_the_stores_errors() {
        let at = Location {
            device: "d".into(),
            zone: 3,
            offset: 4096,
        };
        let m = Fault::Misdirected {
            expected_seq: 7,
            expected_crc: 1,
            found_seq: 9,
            found_crc: 2,
        };
        assert_eq!(m.kind(), "misdirected");
        match m.into_error(at.clone(), 7) {
            Error::Corrupt { reason, .. } => {
                assert!(reason.contains("expected seq 7") && reason.contains("found seq 9"))
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            Fault::Authentication.into_error(at.clone(), 7),
            Error::Authentication { seq: 7, .. }
        ));
        assert!(matches!(
            Fault::OutOfBounds { len: 1 }.into_error(at, 7),
            Error::Index { .. }
        ));
    }
}
