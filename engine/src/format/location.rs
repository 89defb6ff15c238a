//! Where a frame is in the log, and what the index keeps of it: the entry
//! the scanner produces for each frame it reads and the indexer stores.

use crate::crypto::keys::{CUSTODIAN_TAG_LEN, TAG_LEN};
use crate::format::frame::{FrameHeader, FrameKind};

/// Where a frame is, and what must be found there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLocation {
    pub seq: u64,
    pub zone: u32,
    pub offset: u64,
    pub frame_len: u32,
    pub crc: u32,
    pub kind: FrameKind,
    pub timestamp_us: i64,
    pub retain_until_us: i64,
    pub data_key_id: u32,
    pub custodian_tag: [u8; CUSTODIAN_TAG_LEN],
    pub conversation_tag: [u8; TAG_LEN],
}

/// What the index knows about one frame: where it is, and its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub loc: FrameLocation,
    pub record_tag: [u8; TAG_LEN],
    pub conversation_tag: [u8; TAG_LEN],
    /// A blob manifest's chunks.
    pub refs: Vec<u64>,
    /// The frame's Merkle leaf hash.
    pub leaf: crate::format::merkle::Hash,
}

impl IndexEntry {
    /// The entry for the frame with `header` and `crc` stored at `offset` of global zone `zone`.
    pub fn of(
        header: &FrameHeader,
        crc: u32,
        frame_sha256: &[u8; 32],
        zone: u32,
        offset: u64,
    ) -> IndexEntry {
        IndexEntry {
            loc: FrameLocation {
                seq: header.seq,
                zone,
                offset,
                frame_len: header.frame_len,
                crc,
                kind: header.kind,
                timestamp_us: header.timestamp_us,
                retain_until_us: header.retain_until_us,
                data_key_id: header.data_key_id,
                custodian_tag: header.custodian_tag,
                conversation_tag: header.conversation_tag,
            },
            record_tag: header.record_tag,
            conversation_tag: header.conversation_tag,
            refs: Vec::new(),
            leaf: crate::format::merkle::LeafData::of(header, *frame_sha256).hash(),
        }
    }
}
