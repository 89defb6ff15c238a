//! Frames: the self-describing, versioned unit of the log.
//!
//! ```text
//! offset size field
//!      0    4 magic "STF1"
//!      4    1 version (3)
//!      5    1 kind
//!      6    2 flags (bit 0: first frame of a batch, which starts on a 4 KiB boundary)
//!      8    4 frame_len: total bytes of the frame, header to checksum inclusive
//!     12    4 data_key_id: the data key (0: the store's root data key)
//!     16    8 seq: dense, monotonic sequence number
//!     24    8 timestamp_us (UTC microseconds)
//!     32    8 retain_until_us (0 = decided by policy)
//!     40   12 nonce: epoch (u32) || seq (u64)
//!     52   12 custodian_tag: keyed 96-bit tag of the custodian id (zero: none)
//!     64   16 record_tag: keyed tag of the record id
//!     80   16 conversation_tag: keyed tag of the conversation id
//!     96   32 prev_hash: SHA-256 of the previous frame, all of its bytes
//!    128   32 content_hash: salted SHA-256 of the plaintext (see [`content_hash`])
//!    160    n ciphertext of the payload (AES-256-GCM, AAD = store_id || bytes 0..160
//!              with prev_hash read as zeros)
//!  160+n   16 GCM tag
//!  176+n    4 CRC32C of bytes 160..176+n then 0..160 (body first, like the hash)
//! ```
//! All integers are little-endian. A frame's hash, which the next frame
//! carries as `prev_hash`, is SHA-256 over all `frame_len` bytes taken
//! body first: bytes `160..176+n` (ciphertext and tag), then `0..160` (the
//! header), then the CRC. Neither the ciphertext nor the hash of the body
//! depends on the previous frame, so frames are sealed in parallel
//! ([`seal_body`]) and only the header and CRC are chained in log order
//! ([`seal_chain`]).

use sha2::{Digest, Sha256};

use crate::crypto::keys::{DataKey, CUSTODIAN_TAG_LEN, TAG_LEN};

pub const FRAME_MAGIC: [u8; 4] = *b"STF1";
pub const FRAME_VERSION: u8 = 3;
pub const NONCE_LEN: usize = 12;
/// The nonce is the epoch (u32) then the seq (u64).
const NONCE_EPOCH_LEN: usize = 4;
pub const HASH_LEN: usize = 32;

// Where each header field starts (docs/FORMAT.md, "Frames"), each from the
// one before it; a field runs to where the next one starts.
pub const MAGIC_AT: usize = 0;
pub const VERSION_AT: usize = MAGIC_AT + FRAME_MAGIC.len();
pub const KIND_AT: usize = VERSION_AT + 1;
pub const FLAGS_AT: usize = KIND_AT + 1;
pub const FRAME_LEN_AT: usize = FLAGS_AT + 2;
pub const DATA_KEY_ID_AT: usize = FRAME_LEN_AT + 4;
pub const SEQ_AT: usize = DATA_KEY_ID_AT + 4;
pub const TIMESTAMP_AT: usize = SEQ_AT + 8;
pub const RETAIN_UNTIL_AT: usize = TIMESTAMP_AT + 8;
pub const NONCE_AT: usize = RETAIN_UNTIL_AT + 8;
pub const CUSTODIAN_TAG_AT: usize = NONCE_AT + NONCE_LEN;
pub const RECORD_TAG_AT: usize = CUSTODIAN_TAG_AT + CUSTODIAN_TAG_LEN;
pub const CONVERSATION_TAG_AT: usize = RECORD_TAG_AT + TAG_LEN;
pub const PREV_HASH_AT: usize = CONVERSATION_TAG_AT + TAG_LEN;
pub const CONTENT_HASH_AT: usize = PREV_HASH_AT + HASH_LEN;
/// The fixed header: every field above; the ciphertext starts here.
pub const FRAME_HEADER_LEN: usize = CONTENT_HASH_AT + HASH_LEN;
pub const GCM_TAG_LEN: usize = 16;
pub const CRC_LEN: usize = 4;
/// Bytes a frame adds to its payload.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_LEN + GCM_TAG_LEN + CRC_LEN;
/// The largest frame this build writes or accepts (a 16 MiB payload plus overhead).
pub const FRAME_LEN_MAX: usize = (16 << 20) + FRAME_OVERHEAD;
pub const FLAG_BATCH_START: u16 = 1;

// The offsets and sizes docs/FORMAT.md states ("Frames").
const _: () = assert!(VERSION_AT == 4 && KIND_AT == 5 && FLAGS_AT == 6 && FRAME_LEN_AT == 8);
const _: () = assert!(DATA_KEY_ID_AT == 12 && SEQ_AT == 16 && TIMESTAMP_AT == 24);
const _: () = assert!(RETAIN_UNTIL_AT == 32 && NONCE_AT == 40 && CUSTODIAN_TAG_AT == 52);
const _: () = assert!(RECORD_TAG_AT == 64 && CONVERSATION_TAG_AT == 80);
const _: () = assert!(PREV_HASH_AT == 96 && CONTENT_HASH_AT == 128);
const _: () = assert!(FRAME_HEADER_LEN == 160);
const _: () = assert!(
    NONCE_LEN == NONCE_EPOCH_LEN + 8,
    "nonce = epoch u32 || seq u64"
);
const _: () = assert!(FRAME_OVERHEAD == 180, "FORMAT.md: 180 <= frame_len");
const _: () = assert!(
    FRAME_LEN_MAX == (16 << 20) + 180,
    "FORMAT.md: frame_len <= 16 MiB + 180"
);
const _: () = assert!(CUSTODIAN_TAG_LEN == 12 && TAG_LEN == 16);
/// The AAD: the store id, then the header.
const STORE_ID_LEN: usize = 16;
const AAD_LEN: usize = STORE_ID_LEN + FRAME_HEADER_LEN;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A captured message (text or structured), or a message-level event such as an edit or deletion.
    Message = 1,
    /// Raw captured evidence (a webhook body, an export file's bytes).
    Evidence = 2,
    /// One chunk of a media blob.
    MediaChunk = 3,
    /// A media blob's manifest: its length, SHA-256 and chunk list.
    Manifest = 4,
    /// A record the store writes about itself (audit).
    System = 5,
}

impl FrameKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => FrameKind::Message,
            2 => FrameKind::Evidence,
            3 => FrameKind::MediaChunk,
            4 => FrameKind::Manifest,
            5 => FrameKind::System,
            _ => return None,
        })
    }

    /// The kind's name in what the store prints (the command line's JSON):
    /// stable, so the manifest keeps its older name `Media`.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Message => "Message",
            FrameKind::Evidence => "Evidence",
            FrameKind::MediaChunk => "MediaChunk",
            FrameKind::Manifest => "Media",
            FrameKind::System => "System",
        }
    }

    /// Whether the frame is a record in its own right (indexed by time and conversation).
    pub fn is_record(self) -> bool {
        !matches!(self, FrameKind::MediaChunk)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: FrameKind,
    pub flags: u16,
    pub frame_len: u32,
    /// The data key: 0 the store's root data key, from 1 a data subject's key in the keystore.
    pub data_key_id: u32,
    pub seq: u64,
    pub timestamp_us: i64,
    pub retain_until_us: i64,
    pub nonce: [u8; NONCE_LEN],
    pub custodian_tag: [u8; CUSTODIAN_TAG_LEN],
    pub record_tag: [u8; TAG_LEN],
    pub conversation_tag: [u8; TAG_LEN],
    pub prev_hash: [u8; 32],
    pub content_hash: [u8; 32],
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    Short { have: usize, need: usize },
    BadMagic,
    UnsupportedVersion(u8),
    BadKind(u8),
    BadLength(u32),
    BadChecksum { stored: u32, computed: u32 },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Short { have, need } => {
                write!(f, "truncated frame: {have} of {need} bytes")
            }
            FrameError::BadMagic => write!(f, "no frame magic"),
            FrameError::UnsupportedVersion(v) => write!(f, "unsupported frame version {v}"),
            FrameError::BadKind(k) => write!(f, "unknown frame kind {k}"),
            FrameError::BadLength(l) => write!(f, "impossible frame length {l}"),
            FrameError::BadChecksum { stored, computed } => {
                write!(
                    f,
                    "CRC32C mismatch (stored {stored:08x}, computed {computed:08x})"
                )
            }
        }
    }
}

/// The nonce of frame `seq` written during `epoch`: unique for the store's key
/// because the epoch is made durable before any frame of it is written.
pub fn nonce(epoch: u32, seq: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..NONCE_EPOCH_LEN].copy_from_slice(&epoch.to_le_bytes());
    n[NONCE_EPOCH_LEN..].copy_from_slice(&seq.to_le_bytes());
    n
}

impl FrameHeader {
    pub fn encode(&self, b: &mut [u8]) {
        b[MAGIC_AT..VERSION_AT].copy_from_slice(&FRAME_MAGIC);
        b[VERSION_AT] = FRAME_VERSION;
        b[KIND_AT] = self.kind as u8;
        b[FLAGS_AT..FRAME_LEN_AT].copy_from_slice(&self.flags.to_le_bytes());
        b[FRAME_LEN_AT..DATA_KEY_ID_AT].copy_from_slice(&self.frame_len.to_le_bytes());
        b[DATA_KEY_ID_AT..SEQ_AT].copy_from_slice(&self.data_key_id.to_le_bytes());
        b[SEQ_AT..TIMESTAMP_AT].copy_from_slice(&self.seq.to_le_bytes());
        b[TIMESTAMP_AT..RETAIN_UNTIL_AT].copy_from_slice(&self.timestamp_us.to_le_bytes());
        b[RETAIN_UNTIL_AT..NONCE_AT].copy_from_slice(&self.retain_until_us.to_le_bytes());
        b[NONCE_AT..CUSTODIAN_TAG_AT].copy_from_slice(&self.nonce);
        b[CUSTODIAN_TAG_AT..RECORD_TAG_AT].copy_from_slice(&self.custodian_tag);
        b[RECORD_TAG_AT..CONVERSATION_TAG_AT].copy_from_slice(&self.record_tag);
        b[CONVERSATION_TAG_AT..PREV_HASH_AT].copy_from_slice(&self.conversation_tag);
        b[PREV_HASH_AT..CONTENT_HASH_AT].copy_from_slice(&self.prev_hash);
        b[CONTENT_HASH_AT..FRAME_HEADER_LEN].copy_from_slice(&self.content_hash);
    }

    /// Parse the header at the start of `b` without checking the CRC.
    pub fn decode(b: &[u8]) -> Result<FrameHeader, FrameError> {
        if b.len() < FRAME_HEADER_LEN {
            return Err(FrameError::Short {
                have: b.len(),
                need: FRAME_HEADER_LEN,
            });
        }
        if b[MAGIC_AT..VERSION_AT] != FRAME_MAGIC {
            return Err(FrameError::BadMagic);
        }
        if b[VERSION_AT] != FRAME_VERSION {
            return Err(FrameError::UnsupportedVersion(b[VERSION_AT]));
        }
        let kind = FrameKind::from_u8(b[KIND_AT]).ok_or(FrameError::BadKind(b[KIND_AT]))?;
        let frame_len = u32::from_le_bytes(field(b, FRAME_LEN_AT));
        if (frame_len as usize) < FRAME_OVERHEAD || frame_len as usize > FRAME_LEN_MAX {
            return Err(FrameError::BadLength(frame_len));
        }
        Ok(FrameHeader {
            kind,
            flags: u16::from_le_bytes(field(b, FLAGS_AT)),
            frame_len,
            data_key_id: u32::from_le_bytes(field(b, DATA_KEY_ID_AT)),
            seq: u64::from_le_bytes(field(b, SEQ_AT)),
            timestamp_us: i64::from_le_bytes(field(b, TIMESTAMP_AT)),
            retain_until_us: i64::from_le_bytes(field(b, RETAIN_UNTIL_AT)),
            nonce: field(b, NONCE_AT),
            custodian_tag: field(b, CUSTODIAN_TAG_AT),
            record_tag: field(b, RECORD_TAG_AT),
            conversation_tag: field(b, CONVERSATION_TAG_AT),
            prev_hash: field(b, PREV_HASH_AT),
            content_hash: field(b, CONTENT_HASH_AT),
        })
    }
}

/// The `N` bytes of `b` at `at` (the caller has checked `b` is long enough).
fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N].try_into().expect("field within the header")
}

/// The seq a frame's header carries, read without decoding the rest.
pub fn seq_of(frame: &[u8]) -> u64 {
    u64::from_le_bytes(field(frame, SEQ_AT))
}

/// A frame checked for framing and CRC (not yet authenticated).
#[derive(Debug, Clone)]
pub struct CheckedFrame {
    pub header: FrameHeader,
    pub crc: u32,
}

/// Check that `b` starts with a whole, well-formed frame whose CRC matches.
pub fn check(b: &[u8]) -> Result<CheckedFrame, FrameError> {
    let header = FrameHeader::decode(b)?;
    let len = header.frame_len as usize;
    if b.len() < len {
        return Err(FrameError::Short {
            have: b.len(),
            need: len,
        });
    }
    let stored = u32::from_le_bytes(b[len - CRC_LEN..len].try_into().expect("4"));
    let computed = checksum(&b[..len]);
    if stored != computed {
        return Err(FrameError::BadChecksum { stored, computed });
    }
    Ok(CheckedFrame {
        header,
        crc: stored,
    })
}

/// The CRC32C a whole frame `f` (checksum field included, not read) should
/// carry: over the body (ciphertext and tag), then the header.
pub fn checksum(f: &[u8]) -> u32 {
    let len = f.len();
    assert!(len >= FRAME_OVERHEAD, "a frame is at least its overhead");
    crc32c::crc32c_append(
        crc32c::crc32c(&f[FRAME_HEADER_LEN..len - CRC_LEN]),
        &f[..FRAME_HEADER_LEN],
    )
}

/// The salted content hash of a record's plaintext envelope, kept in the
/// frame header outside the ciphertext: whoever holds the exported
/// plaintext (which carries the random salt) can check it with no key, and
/// nobody without the plaintext learns anything from it.
pub fn content_hash(envelope: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"stele-content-v1");
    h.update(envelope);
    h.finalize().into()
}

/// The content hash of a media chunk, from its salt and the chunk's BLAKE3
/// digest (already computed for deduplication, so the chunk is hashed once
/// more, not twice).
pub fn chunk_content_hash(salt: &[u8; 16], chunk_blake3: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"stele-chunk-v2");
    h.update(salt);
    h.update(chunk_blake3);
    h.finalize().into()
}

/// SHA-256 of a whole frame, body first: what the next frame's `prev_hash` holds.
pub fn hash(frame: &[u8]) -> [u8; 32] {
    let len = frame.len();
    assert!(len >= FRAME_OVERHEAD, "a frame is at least its overhead");
    let mut h = Sha256::new();
    h.update(&frame[FRAME_HEADER_LEN..len - CRC_LEN]);
    h.update(&frame[..FRAME_HEADER_LEN]);
    h.update(&frame[len - CRC_LEN..]);
    h.finalize().into()
}

/// The AAD of a frame: the store id and its header with `prev_hash` read as
/// zeros (the chain binds `prev_hash`; leaving it out of the AAD lets the
/// payload be encrypted before the previous frame's hash is known).
fn aad(store_id: &[u8; 16], header: &[u8]) -> [u8; AAD_LEN] {
    let mut a = [0u8; AAD_LEN];
    a[..STORE_ID_LEN].copy_from_slice(store_id);
    let h = &mut a[STORE_ID_LEN..];
    h[..PREV_HASH_AT].copy_from_slice(&header[..PREV_HASH_AT]);
    h[CONTENT_HASH_AT..].copy_from_slice(&header[CONTENT_HASH_AT..FRAME_HEADER_LEN]);
    a
}

/// A frame whose body is encrypted and hashed, waiting for its place in the chain.
#[derive(Clone)]
pub struct SealedBody {
    body_crc: u32,
    body_hash: Sha256,
}

/// Encode and encrypt a frame into `out` (which must hold exactly
/// `FRAME_OVERHEAD + plaintext.len()` bytes) and hash its body; `header.frame_len`
/// and `header.data_key_id` are set here and `header.prev_hash` is not used.
/// Independent of every other frame, so any number run in parallel;
/// [`seal_chain`] then finishes the frames in log order.
pub fn seal_body(
    out: &mut [u8],
    header: &mut FrameHeader,
    plaintext: &[u8],
    key: &DataKey,
    store_id: &[u8; 16],
) -> SealedBody {
    assert_eq!(
        out.len(),
        FRAME_OVERHEAD + plaintext.len(),
        "frame buffer sized for the payload"
    );
    out[FRAME_HEADER_LEN..FRAME_HEADER_LEN + plaintext.len()].copy_from_slice(plaintext);
    seal_body_in_place(out, header, key, store_id)
}

/// [`seal_body`] for a frame buffer that already holds the plaintext at
/// `FRAME_HEADER_LEN..frame.len() - GCM_TAG_LEN - CRC_LEN` (no copy).
pub fn seal_body_in_place(
    out: &mut [u8],
    header: &mut FrameHeader,
    key: &DataKey,
    store_id: &[u8; 16],
) -> SealedBody {
    let len = out.len();
    assert!(len >= FRAME_OVERHEAD, "a frame is at least its overhead");
    assert!(len <= FRAME_LEN_MAX, "payload within the frame limit");
    header.frame_len = len as u32;
    header.data_key_id = key.id;
    header.encode(&mut out[..FRAME_HEADER_LEN]);
    out[PREV_HASH_AT..CONTENT_HASH_AT].fill(0);
    let body_end = len - GCM_TAG_LEN - CRC_LEN;
    let a = aad(store_id, &out[..FRAME_HEADER_LEN]);
    let tag = key.seal(header.nonce, &a, &mut out[FRAME_HEADER_LEN..body_end]);
    out[body_end..body_end + GCM_TAG_LEN].copy_from_slice(&tag);
    let body = &out[FRAME_HEADER_LEN..len - CRC_LEN];
    let mut body_hash = Sha256::new();
    body_hash.update(body);
    SealedBody {
        body_crc: crc32c::crc32c(body),
        body_hash,
    }
}

/// Chain a frame sealed by [`seal_body`] to the frame before it: write
/// `prev_hash` and the CRC. Returns the frame's CRC and hash.
pub fn seal_chain(out: &mut [u8], prev_hash: &[u8; 32], body: SealedBody) -> (u32, [u8; 32]) {
    let len = out.len();
    assert!(
        len >= FRAME_OVERHEAD,
        "a sealed frame is at least its overhead"
    );
    out[PREV_HASH_AT..CONTENT_HASH_AT].copy_from_slice(prev_hash);
    let crc = crc32c::crc32c_append(body.body_crc, &out[..FRAME_HEADER_LEN]);
    out[len - CRC_LEN..].copy_from_slice(&crc.to_le_bytes());
    let mut h = body.body_hash;
    h.update(&out[..FRAME_HEADER_LEN]);
    h.update(crc.to_le_bytes());
    (crc, h.finalize().into())
}

/// Encode, encrypt, checksum and chain a frame into `out` (which must hold exactly
/// `FRAME_OVERHEAD + plaintext.len()` bytes) after the frame whose hash is
/// `header.prev_hash`. Returns the frame's CRC and hash.
pub fn seal(
    out: &mut [u8],
    header: &mut FrameHeader,
    plaintext: &[u8],
    key: &DataKey,
    store_id: &[u8; 16],
) -> (u32, [u8; 32]) {
    let body = seal_body(out, header, plaintext, key, store_id);
    seal_chain(out, &header.prev_hash, body)
}

/// Authenticate and decrypt a checked frame; returns the plaintext.
pub fn open(
    frame: &[u8],
    header: &FrameHeader,
    key: &DataKey,
    store_id: &[u8; 16],
) -> Result<Vec<u8>, crate::crypto::keys::OpenError> {
    let len = header.frame_len as usize;
    if header.data_key_id != key.id {
        return Err(crate::crypto::keys::OpenError);
    }
    let a = aad(store_id, &frame[..FRAME_HEADER_LEN]);
    let mut body = frame[FRAME_HEADER_LEN..len - CRC_LEN].to_vec();
    let n = key.open(header.nonce, &a, &mut body)?;
    body.truncate(n);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(seq: u64) -> FrameHeader {
        FrameHeader {
            kind: FrameKind::Message,
            flags: 0,
            frame_len: 0,
            data_key_id: 0,
            seq,
            timestamp_us: 1_700_000_000_000_000,
            retain_until_us: 0,
            nonce: nonce(1, seq),
            custodian_tag: [6; 12],
            record_tag: [7; 16],
            conversation_tag: [8; 16],
            prev_hash: [9; 32],
            content_hash: [4; 32],
        }
    }

    fn sealed(seq: u64, payload: &[u8]) -> (Vec<u8>, FrameHeader) {
        let keys = DataKey::new(0, &[1; 32]);
        let mut h = header(seq);
        let mut out = vec![0u8; FRAME_OVERHEAD + payload.len()];
        seal(&mut out, &mut h, payload, &keys, &[3; 16]);
        (out, h)
    }

    proptest! {
        #[test]
        fn round_trip(seq in any::<u64>(), ts in any::<i64>(), payload in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let keys = DataKey::new(0, &[1; 32]);
            let mut h = header(seq);
            h.timestamp_us = ts;
            let mut out = vec![0u8; FRAME_OVERHEAD + payload.len()];
            let (crc, hsh) = seal(&mut out, &mut h, &payload, &keys, &[3; 16]);
            let c = check(&out).unwrap();
            prop_assert_eq!(&c.header, &h);
            prop_assert_eq!(c.crc, crc);
            prop_assert_eq!(hash(&out), hsh);
            prop_assert_eq!(open(&out, &c.header, &keys, &[3; 16]).unwrap(), payload);
        }

        #[test]
        fn any_corruption_is_rejected(payload in proptest::collection::vec(any::<u8>(), 0..600),
                                      flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)) {
            let keys = DataKey::new(0, &[1; 32]);
            let (orig, _) = sealed(5, &payload);
            let mut bad = orig.clone();
            for (i, x) in flips { let i = i.index(bad.len()); bad[i] ^= x; }
            prop_assume!(bad != orig);
            // Either the frame fails its checks, or (if the CRC was forged by
            // chance) authentication fails: never the original plaintext from altered bytes.
            if let Ok(c) = check(&bad) {
                prop_assert!(open(&bad, &c.header, &keys, &[3; 16]).is_err());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = check(&bytes);
        }
    }

    #[test]
    fn bodies_sealed_out_of_order_chain_like_sequential_frames() {
        let key = DataKey::new(0, &[1; 32]);
        let payloads: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; 100 + 700 * i]).collect();
        // Sequentially, each frame chained as it is sealed.
        let mut prev = [0u8; 32];
        let mut sequential = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let mut h = header(i as u64);
            h.prev_hash = prev;
            let mut out = vec![0u8; FRAME_OVERHEAD + p.len()];
            let (_, hash) = seal(&mut out, &mut h, p, &key, &[3; 16]);
            prev = hash;
            sequential.push(out);
        }
        // Bodies last to first, then the chain in order: the same bytes.
        let mut outs: Vec<Vec<u8>> = payloads
            .iter()
            .map(|p| vec![0u8; FRAME_OVERHEAD + p.len()])
            .collect();
        let mut bodies: Vec<Option<SealedBody>> = vec![None; payloads.len()];
        for i in (0..payloads.len()).rev() {
            let mut h = header(i as u64);
            h.prev_hash = [0xEE; 32]; // ignored by seal_body
            bodies[i] = Some(seal_body(
                &mut outs[i],
                &mut h,
                &payloads[i],
                &key,
                &[3; 16],
            ));
        }
        let mut prev = [0u8; 32];
        for (i, out) in outs.iter_mut().enumerate() {
            let (crc, h) = seal_chain(out, &prev, bodies[i].take().unwrap());
            assert_eq!(check(out).unwrap().crc, crc);
            assert_eq!(hash(out), h);
            prev = h;
        }
        assert_eq!(outs, sequential);
    }

    #[test]
    fn header_fields_sit_where_format_md_puts_them() {
        let mut h = header(0x0102_0304_0506_0708);
        h.kind = FrameKind::Manifest;
        h.flags = FLAG_BATCH_START;
        h.frame_len = 200;
        h.data_key_id = 9;
        h.retain_until_us = 11;
        let mut b = [0u8; FRAME_HEADER_LEN];
        h.encode(&mut b);
        assert_eq!(&b[0..4], b"STF1");
        assert_eq!(b[4], 3, "version");
        assert_eq!(b[5], 4, "kind 4 is the manifest");
        assert_eq!(&b[6..8], &1u16.to_le_bytes(), "flags");
        assert_eq!(&b[8..12], &200u32.to_le_bytes(), "frame_len");
        assert_eq!(&b[12..16], &9u32.to_le_bytes(), "data_key_id");
        assert_eq!(&b[16..24], &h.seq.to_le_bytes(), "seq");
        assert_eq!(&b[24..32], &h.timestamp_us.to_le_bytes(), "timestamp_us");
        assert_eq!(&b[32..40], &11i64.to_le_bytes(), "retain_until_us");
        assert_eq!(&b[40..44], &1u32.to_le_bytes(), "nonce: epoch");
        assert_eq!(&b[44..52], &h.seq.to_le_bytes(), "nonce: seq");
        assert_eq!(&b[52..64], &[6; 12], "custodian_tag");
        assert_eq!(&b[64..80], &[7; 16], "record_tag");
        assert_eq!(&b[80..96], &[8; 16], "conversation_tag");
        assert_eq!(&b[96..128], &[9; 32], "prev_hash");
        assert_eq!(&b[128..160], &[4; 32], "content_hash");
        assert_eq!(FrameHeader::decode(&b).unwrap(), h);
        assert_eq!(seq_of(&b), h.seq);
        assert_eq!(
            FrameKind::Manifest.name(),
            "Media",
            "the printed name is unchanged"
        );
    }

    #[test]
    fn prev_hash_is_bound_by_the_chain_not_the_aad() {
        let key = DataKey::new(0, &[1; 32]);
        let (mut f, _) = sealed(5, b"payload");
        let before = hash(&f);
        f[PREV_HASH_AT] ^= 1;
        let n = f.len();
        let crc = checksum(&f);
        f[n - 4..].copy_from_slice(&crc.to_le_bytes());
        // Still authentic (prev_hash is not in the AAD), but the frame's hash
        // changes, so the next frame's prev_hash no longer matches it.
        let c = check(&f).unwrap();
        assert!(open(&f, &c.header, &key, &[3; 16]).is_ok());
        assert_ne!(hash(&f), before);
    }

    #[test]
    fn replayed_frame_fails_authentication() {
        let keys = DataKey::new(0, &[1; 32]);
        let (mut f, _) = sealed(5, b"payload");
        // Re-label the frame as seq 6 with a valid CRC: the AAD binds seq, so GCM refuses it.
        f[SEQ_AT..TIMESTAMP_AT].copy_from_slice(&6u64.to_le_bytes());
        let n = f.len();
        let crc = checksum(&f);
        f[n - 4..].copy_from_slice(&crc.to_le_bytes());
        let c = check(&f).unwrap();
        assert!(open(&f, &c.header, &keys, &[3; 16]).is_err());
        // The same frame under another store id fails too.
        let (g, h) = sealed(5, b"payload");
        assert!(open(&g, &h, &keys, &[4; 16]).is_err());
    }
}
