//! Group commit: many producers, one builder, sealing threads, one I/O thread, one indexer.
//!
//! ```text
//! producers ──submit──▶ builder ──batch──▶ writer (I/O thread) ──entries──▶ indexer
//!   (tags, envelope)     seq, nonce,        append at the write pointer,     redb, then
//!                        seal small         fdatasync, then acknowledge      raise the
//!                        frames; chain      every producer in the batch      watermark
//!                          │    ▲
//!                   large  ▼    │ sealed
//!                   sealing threads (encrypt, CRC and SHA-256 of the body)
//! ```
//!
//! A frame's body (ciphertext and tag, with its CRC and SHA-256) depends on
//! no other frame, so large frames are sealed on the sealing threads in
//! parallel from the moment they are placed; the builder seals small ones
//! itself and, at hand-over, chains the batch: each header gets the previous
//! frame's hash and the CRC and hash are finished over it (frame format 3).
//!
//! The builder packs frames into a block-aligned buffer while the writer is
//! busy with the previous batch, so batches grow with load: one fdatasync
//! covers every frame that arrived while the last one ran. A batch is handed
//! over when the input runs dry (after at most `linger`) and the writer can
//! take it, or when it reaches `batch_bytes_max` or `batch_records_max`.
//! Acknowledgements are one-shot sends that never block, so no producer can
//! hold up another's.
//!
//! A failed write or flush poisons the store: every waiting and later
//! append fails with [`Error::Poisoned`] until the store is reopened and
//! recovered. Nothing is retried.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use tokio::sync::oneshot;

use crate::crypto::keyring::Keyring;
use crate::crypto::keys::{DataKey, Keys, CUSTODIAN_TAG_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::frame::{
    self, FrameHeader, FrameKind, CRC_LEN, FLAG_BATCH_START, FRAME_OVERHEAD, GCM_TAG_LEN,
};
use crate::format::record::Receipt;
use crate::index::{Index, IndexEntry};
use crate::io::buffer::{align_up, AlignedBuf};
use crate::io::device::Device;
use crate::log::superblock::Superblock;
use crate::log::zone::{ZoneCondition, ZoneSet, ZoneState};
use crate::time::clock::ComplianceClock;

/// Tuning of the group commit.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// Largest batch buffer, in bytes (a single larger frame gets a batch of its own).
    pub batch_bytes_max: usize,
    /// Most frames in one batch.
    pub batch_records_max: usize,
    /// How long the builder may wait for more frames before handing over a batch while the writer is idle.
    pub linger: Duration,
    /// Write a checkpoint after this many bytes of log...
    pub checkpoint_bytes: u64,
    /// ...or after this much time, whichever comes first.
    pub checkpoint_interval: Duration,
    /// How many submissions may wait for the builder before producers block.
    pub queue_records_max: usize,
    /// Frames of at least this many bytes (media chunks) are sealed on the
    /// sealing threads as soon as they are placed; smaller ones by the builder.
    pub early_seal_bytes: usize,
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions {
            batch_bytes_max: 8 << 20,
            batch_records_max: 16_384,
            linger: Duration::ZERO,
            checkpoint_bytes: 64 << 20,
            checkpoint_interval: Duration::from_secs(5),
            queue_records_max: 65_536,
            early_seal_bytes: 64 << 10,
        }
    }
}

/// Counters, readable at any time.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub records: AtomicU64,
    pub payload_bytes: AtomicU64,
    pub log_bytes: AtomicU64,
    pub batches: AtomicU64,
    pub checkpoints: AtomicU64,
    pub zones_sealed: AtomicU64,
    /// Rollback anchors that could not be written (each place, each checkpoint).
    pub anchor_failures: AtomicU64,
}

/// The index watermark: every seq below `next` is in the index.
#[derive(Debug, Default)]
pub(crate) struct IndexState {
    pub next: u64,
    pub failed: Option<String>,
    /// The failure was damage to the index file (rebuilt at the next open).
    pub damaged: bool,
}

/// The durable state of the log: what the last checkpoint may record.
/// The writer holds this lock from a batch's write to its bookkeeping, so
/// anyone else who checkpoints (zone reclaim) sees a consistent state.
pub(crate) struct LogState {
    pub sb: Superblock,
    /// (next seq, hash of the last frame) of everything durable.
    pub durable: (u64, [u8; 32]),
    pub active: u32,
}

/// State shared by the store handle and its threads.
pub(crate) struct Shared {
    pub store_id: [u8; 16],
    pub keys: Keys,
    pub keyring: Option<Arc<Keyring>>,
    /// Where each checkpoint is also anchored, outside the data.
    pub anchors: Vec<Arc<dyn crate::crypto::anchor::AnchorPlace>>,
    pub clock: Arc<ComplianceClock>,
    pub log: Mutex<LogState>,
    /// Empty zones in the order they will be opened.
    pub free: Mutex<VecDeque<u32>>,
    /// Large plaintext buffers handed back by the builder for reuse (media chunks).
    pub buffers: Arc<crate::io::buffer::PlaintextPool>,
    /// Where the writer announces sealed zones (zone, first seq, end seq) to the tree-head signer.
    pub seals: Mutex<Option<Sender<(u32, u64, u64)>>>,
    /// The longest period of any retention class, in days: what the store's
    /// own records (tree heads) are kept for.
    pub longest_retention_days: std::sync::atomic::AtomicI64,
    pub zones: ZoneSet,
    pub index: Index,
    pub options: CommitOptions,
    pub poison: Mutex<Option<String>>,
    pub stats: CommitStats,
    /// Every seq below this is durable and acknowledged.
    pub acked: AtomicU64,
    pub indexed: Mutex<IndexState>,
    pub indexed_cv: Condvar,
    /// Readers waiting for the index to reach a seq (the indexer then stops gathering).
    pub index_waiters: AtomicU64,
}

impl Shared {
    /// A buffer of at least `capacity` bytes, recycled if one is at hand.
    pub fn take_buffer(&self, capacity: usize) -> Vec<u8> {
        self.buffers.take(capacity)
    }

    /// Hand back a large buffer for reuse.
    pub fn give_buffer(&self, b: Vec<u8>) {
        self.buffers.give(b)
    }

    /// Every seq below this is durable and acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Reset the sealed `zone`, the only way the log ever gives space back:
    /// the reset is checkpointed (durable) before the medium erases the
    /// zone, so a crash in between finishes the reset at the next open.
    /// `forget` runs once the zone is empty (whoever kept entries for its
    /// frames lets go of them); only then does the zone join the free list,
    /// so nothing written into it later can be mistaken for what was there.
    /// A failed checkpoint poisons the log. Whether the zone may be reset is
    /// the caller's decision (retention's); the log checks only that it is
    /// sealed. Returns what `forget` returned.
    pub fn reset_zone<T>(&self, zone: u32, forget: impl FnOnce() -> Result<T>) -> Result<T> {
        {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            let st = self.zones.state(zone)?;
            if st.condition != ZoneCondition::Sealed {
                return Err(Error::invalid(
                    "zone reset",
                    format!("zone {zone} is {:?}, not sealed", st.condition),
                ));
            }
            self.zones.begin_reset(zone)?;
            checkpoint(self, &mut log).inspect_err(|e| {
                self.poison(format!(
                    "checkpoint during the reset of zone {zone} failed: {e}"
                ));
            })?;
        }
        self.zones.finish_reset(zone)?;
        let forgotten = forget()?;
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(zone);
        Ok(forgotten)
    }

    /// The data key that opens frames carrying `key_id` (frame `seq`, for errors).
    pub fn data_key(&self, key_id: u32, seq: u64) -> Result<Arc<DataKey>> {
        if key_id == crate::crypto::keys::ROOT_KEY_ID {
            return Ok(self.keys.data.clone());
        }
        let Some(ring) = &self.keyring else {
            return Err(Error::invalid(
                "key",
                format!("seq {seq} is encrypted with data key {key_id}, and the store was opened without its keystore"),
            ));
        };
        ring.key(key_id).map_err(|e| match e {
            crate::crypto::keyring::KeyLookup::Destroyed(at, request) => Error::Erased {
                seq,
                key_id,
                erased_at_us: at,
                request,
            },
            crate::crypto::keyring::KeyLookup::Missing => Error::KeyMissing {
                seq,
                key_id,
                path: ring.path().display().to_string(),
            },
            crate::crypto::keyring::KeyLookup::Lost(at, audit_seq) => Error::KeyLost {
                seq,
                key_id,
                acknowledged_at_us: at,
                audit_seq,
            },
            crate::crypto::keyring::KeyLookup::Failed(e) => e,
        })
    }

    pub fn poisoned(&self) -> Option<String> {
        self.poison
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or_else(|| self.zones.poisoned())
    }

    pub fn poison(&self, reason: String) {
        let mut p = self.poison.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_none() {
            tracing::error!("store poisoned: {reason}");
            *p = Some(reason);
        }
    }

    /// Wait until the index covers `seq` (which must be acknowledged).
    pub fn wait_indexed(&self, seq: u64) -> Result<()> {
        let mut st = self.indexed.lock().unwrap_or_else(|p| p.into_inner());
        if st.next > seq {
            return Ok(());
        }
        // Someone is reading what was just written: the indexer stops gathering.
        self.index_waiters.fetch_add(1, Ordering::AcqRel);
        let _waiting = WaiterGuard(&self.index_waiters);
        while st.next <= seq {
            if let Some(f) = &st.failed {
                let (path, reason) = ("index".into(), f.clone());
                return Err(if st.damaged {
                    Error::IndexDamaged { path, reason }
                } else {
                    Error::Index { path, reason }
                });
            }
            if seq >= self.acked.load(Ordering::Acquire) {
                return Err(Error::NotFound {
                    what: format!("seq {seq}"),
                });
            }
            st = self
                .indexed_cv
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }
}

struct WaiterGuard<'a>(&'a AtomicU64);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a frame's header says of its record, as the producer computed it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameFields {
    pub kind: FrameKind,
    pub timestamp_us: i64,
    pub retain_until_us: i64,
    pub record_tag: [u8; TAG_LEN],
    pub conversation_tag: [u8; TAG_LEN],
    pub custodian_tag: [u8; CUSTODIAN_TAG_LEN],
}

/// A record ready for the builder: tags computed and envelope built by the
/// producer. Made only by the constructors below, so what reaches the
/// pipeline is always whole.
pub(crate) struct Submission {
    kind: FrameKind,
    timestamp_us: i64,
    retain_until_us: i64,
    record_tag: [u8; TAG_LEN],
    conversation_tag: [u8; TAG_LEN],
    custodian_tag: [u8; CUSTODIAN_TAG_LEN],
    content_hash: [u8; 32],
    key: Arc<DataKey>,
    /// The envelope, at `plaintext[payload_at..]`.
    plaintext: Vec<u8>,
    /// 0, or `frame::FRAME_HEADER_LEN` when the buffer leaves room for the frame
    /// header in front, so a large payload is sealed where it lies.
    payload_at: usize,
    /// For a blob manifest: the chunks it references (kept in the index).
    refs: Vec<u64>,
    /// Told the frame's seq as soon as the builder gives it one (before it is durable).
    assigned: Option<oneshot::Sender<u64>>,
    done: oneshot::Sender<Result<Receipt>>,
}

impl Submission {
    /// The envelope `plaintext`, to be sealed under `key`; its content hash
    /// is the envelope's.
    pub fn new(fields: FrameFields, key: Arc<DataKey>, plaintext: Vec<u8>) -> Self {
        let content_hash = frame::content_hash(&plaintext);
        Self::with_hash(fields, key, plaintext, 0, content_hash)
    }

    /// A large envelope read into `buffer` behind `payload_at` bytes of room
    /// for the frame header, sealed where it lies, with the content hash its
    /// producer computed (a media chunk's names the chunk, not the envelope).
    pub fn in_place(
        fields: FrameFields,
        key: Arc<DataKey>,
        buffer: Vec<u8>,
        payload_at: usize,
        content_hash: [u8; 32],
    ) -> Self {
        assert!(
            payload_at == 0 || payload_at == frame::FRAME_HEADER_LEN,
            "a payload starts at 0 or behind a frame header's room"
        );
        assert!(
            buffer.len() >= payload_at,
            "the payload lies inside the buffer"
        );
        Self::with_hash(fields, key, buffer, payload_at, content_hash)
    }

    fn with_hash(
        f: FrameFields,
        key: Arc<DataKey>,
        plaintext: Vec<u8>,
        payload_at: usize,
        content_hash: [u8; 32],
    ) -> Self {
        Submission {
            kind: f.kind,
            timestamp_us: f.timestamp_us,
            retain_until_us: f.retain_until_us,
            record_tag: f.record_tag,
            conversation_tag: f.conversation_tag,
            custodian_tag: f.custodian_tag,
            content_hash,
            key,
            plaintext,
            payload_at,
            refs: Vec::new(),
            assigned: None,
            done: oneshot::channel().0,
        }
    }

    /// A blob manifest's chunks, kept in the index with it.
    pub fn referencing(mut self, refs: Vec<u64>) -> Self {
        self.refs = refs;
        self
    }

    /// Tell `assigned` the frame's seq as soon as it has one.
    pub fn announcing(mut self, assigned: oneshot::Sender<u64>) -> Self {
        self.assigned = Some(assigned);
        self
    }

    /// Acknowledge on `done` once durable (or failed); returns the
    /// submission to send.
    pub fn acknowledging(mut self, done: oneshot::Sender<Result<Receipt>>) -> Self {
        self.done = done;
        self
    }

    /// The store's own record: kept until `retain_until_us`, under `key` (the root data key).
    pub fn kept_by_the_store(mut self, retain_until_us: i64, key: Arc<DataKey>) -> Self {
        debug_assert_eq!(self.kind, FrameKind::System);
        self.retain_until_us = retain_until_us;
        self.key = key;
        self
    }

    /// The plaintext envelope.
    pub fn payload(&self) -> &[u8] {
        &self.plaintext[self.payload_at..]
    }
}

/// A frame placed in a batch, not yet chained.
struct Placed {
    header: FrameHeader,
    len: usize,
    body: Body,
    refs: Vec<u64>,
}

/// A placed frame's body: sealed by the builder in the batch buffer, or
/// being sealed on a sealing thread.
enum Body {
    /// Sealed in place in the batch buffer.
    Sealed(frame::SealedBody),
    /// The whole frame, sealed but not chained, in a buffer of its own.
    Sealing(oneshot::Receiver<(Vec<u8>, frame::SealedBody)>),
}

/// Where the log continues: the next frame's seq, the hash it chains to, and where it goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogHead {
    pub next_seq: u64,
    pub prev_hash: [u8; 32],
    pub zone: u32,
    pub offset: u64,
    pub epoch: u32,
}

struct Batch {
    zone: u32,
    start: u64,
    buf: AlignedBuf,
    len: usize,
    /// Frames placed in `buf[..len]`, back to back, in seq order; chained when the batch is handed over.
    placed: Vec<Placed>,
    entries: Vec<IndexEntry>,
    waiters: Vec<(oneshot::Sender<Result<Receipt>>, u64)>,
    /// Seal `zone` after this batch and continue in this zone.
    seal_then: Option<u32>,
    next_seq_after: u64,
    hash_after: [u8; 32],
    created: Instant,
}

/// Start the builder, writer and indexer. Returns the submission queue and the threads.
pub(crate) fn start(
    shared: Arc<Shared>,
    head: LogHead,
) -> (Sender<Submission>, Vec<JoinHandle<()>>) {
    let (sub_tx, sub_rx) = bounded::<Submission>(shared.options.queue_records_max);
    let (batch_tx, batch_rx) = bounded::<Batch>(1);
    let (recycle_tx, recycle_rx) = bounded::<AlignedBuf>(4);
    let (idx_tx, idx_rx) = crossbeam_channel::unbounded::<Vec<IndexEntry>>();
    let mut threads = Vec::new();
    let first_seq = head.next_seq;
    let s = shared.clone();
    let sealers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    // Without its own pool the builder seals every frame itself: slower, never wrong.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(sealers)
        .thread_name(|i| format!("stele-seal-{i}"))
        .build()
        .map_err(|e| {
            tracing::warn!("no sealing threads ({e}): frames are sealed by the builder alone")
        })
        .ok();
    threads.push(
        std::thread::Builder::new()
            .name("stele-builder".into())
            .spawn(move || builder(s, pool, sub_rx, batch_tx, recycle_rx, head))
            .expect("spawn builder thread"),
    );
    let s = shared.clone();
    threads.push(
        std::thread::Builder::new()
            .name("stele-io".into())
            .spawn(move || writer(s, batch_rx, recycle_tx, idx_tx))
            .expect("spawn I/O thread"),
    );
    let s = shared;
    threads.push(
        std::thread::Builder::new()
            .name("stele-indexer".into())
            .spawn(move || indexer(s, idx_rx, first_seq))
            .expect("spawn indexer thread"),
    );
    (sub_tx, threads)
}

fn new_batch(
    recycle: &Receiver<AlignedBuf>,
    zone: u32,
    start: u64,
    min_len: usize,
    opts: &CommitOptions,
    head: &LogHead,
) -> Batch {
    let want = opts.batch_bytes_max.max(align_up(min_len as u64) as usize);
    let buf = match recycle.try_recv() {
        Ok(b) if b.len() >= want => b,
        _ => AlignedBuf::zeroed(want),
    };
    Batch {
        zone,
        start,
        buf,
        len: 0,
        placed: Vec::new(),
        entries: Vec::new(),
        waiters: Vec::new(),
        seal_then: None,
        next_seq_after: head.next_seq,
        hash_after: head.prev_hash, // the batch's last frame hash once chained
        created: Instant::now(),
    }
}

/// How often a builder holding a batch checks whether the writer can take it.
const WRITER_BUSY_POLL: Duration = Duration::from_micros(100);

/// Start sealing a large frame on `pool`; the result arrives on the returned receiver.
fn seal_early(
    shared: &Arc<Shared>,
    pool: &rayon::ThreadPool,
    header: &FrameHeader,
    mut buf: Vec<u8>,
    payload_at: usize,
    key: Arc<DataKey>,
) -> Body {
    let (tx, rx) = oneshot::channel();
    // The job holds the buffer pool and the store id, never the store: the
    // pool's threads are not joined, and a job still queued when a failed
    // builder gives up must not keep the index (or anything else) open.
    let buffers = shared.buffers.clone();
    let store_id = shared.store_id;
    let mut header = header.clone();
    pool.spawn(move || {
        let mut out = if payload_at == frame::FRAME_HEADER_LEN {
            // Room for the header in front: the frame is built where the plaintext lies.
            buf.resize(buf.len() + GCM_TAG_LEN + CRC_LEN, 0);
            buf
        } else {
            let len = FRAME_OVERHEAD + buf.len() - payload_at;
            let mut out = buffers.take(len);
            out.extend_from_slice(&[0; frame::FRAME_HEADER_LEN]);
            out.extend_from_slice(&buf[payload_at..]);
            out.resize(len, 0);
            buffers.give(buf);
            out
        };
        let body = frame::seal_body_in_place(&mut out, &mut header, &key, &store_id);
        drop(key);
        // The builder waits for every frame it placed, so it is still listening.
        let _ = tx.send((out, body));
    });
    Body::Sealing(rx)
}

/// Chain every frame placed in `b` in seq order after `prev_hash` (waiting
/// for those still on a sealing thread), which is left at the batch's last frame hash.
fn chain_batch(shared: &Shared, b: &mut Batch, prev_hash: &mut [u8; 32]) {
    let mut off = 0usize;
    for p in std::mem::take(&mut b.placed) {
        let out = &mut b.buf[off..off + p.len];
        let sealed = match p.body {
            Body::Sealed(sealed) => sealed,
            Body::Sealing(rx) => {
                let (frame, sealed) = rx
                    .blocking_recv()
                    .expect("a sealing thread finishes every frame it is given");
                assert_eq!(frame.len(), p.len, "a frame is sealed at its placed length");
                assert_eq!(
                    frame::seq_of(&frame),
                    p.header.seq,
                    "a sealed frame carries the seq it was placed with"
                );
                out.copy_from_slice(&frame);
                shared.give_buffer(frame);
                sealed
            }
        };
        let mut header = p.header;
        header.prev_hash = *prev_hash;
        let (crc, hash) = frame::seal_chain(out, prev_hash, sealed);
        let mut entry = IndexEntry::of(&header, crc, &hash, b.zone, b.start + off as u64);
        entry.refs = p.refs;
        b.entries.push(entry);
        off += p.len;
        *prev_hash = hash;
    }
    assert_eq!(off, b.len, "placed frames fill the batch exactly");
    let first = b.entries.first().map_or(b.next_seq_after, |e| e.loc.seq);
    assert_eq!(
        crate::index::dense_from(first, &b.entries),
        Some(b.next_seq_after),
        "a batch's frames have dense seqs, up to where the next batch begins"
    );
    b.hash_after = *prev_hash;
}

fn builder(
    shared: Arc<Shared>,
    pool: Option<rayon::ThreadPool>,
    rx: Receiver<Submission>,
    tx: Sender<Batch>,
    recycle: Receiver<AlignedBuf>,
    mut head: LogHead,
) {
    let opts = shared.options.clone();
    let zone_size = shared.zones.zone_size();
    let mut batch: Option<Batch> = None;
    let send = |mut batch: Batch, head: &mut LogHead| {
        chain_batch(&shared, &mut batch, &mut head.prev_hash);
        head.offset = batch.start + align_up(batch.len as u64);
        // The writer only goes away when the store shuts down; then the waiters get an error from the dropped senders.
        let _ = tx.send(batch);
    };
    loop {
        let sub = match &batch {
            None => match rx.recv() {
                Ok(s) => s,
                Err(_) => break,
            },
            Some(b) => match rx.try_recv() {
                Ok(s) => s,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let waited = b.created.elapsed();
                    let more = if waited < opts.linger {
                        rx.recv_timeout(opts.linger - waited)
                    } else if tx.is_full() {
                        // The writer is busy and the next batch already waits
                        // for it: keep filling this one instead of blocking.
                        rx.recv_timeout(WRITER_BUSY_POLL)
                    } else {
                        Err(RecvTimeoutError::Timeout)
                    };
                    match more {
                        Ok(s) => s,
                        Err(RecvTimeoutError::Disconnected) => break,
                        Err(RecvTimeoutError::Timeout) => {
                            if !tx.is_full() {
                                send(batch.take().expect("batch present"), &mut head);
                            }
                            continue;
                        }
                    }
                }
            },
        };
        if let Some(reason) = shared.poisoned() {
            let _ = sub.done.send(Err(Error::Poisoned { reason }));
            continue;
        }
        let frame_len = FRAME_OVERHEAD + sub.payload().len();
        if align_up(frame_len as u64) > zone_size {
            let _ = sub.done.send(Err(Error::invalid(
                "frame",
                format!("a {frame_len}-byte frame does not fit in a {zone_size}-byte zone"),
            )));
            continue;
        }
        // Hand over a full batch.
        if let Some(b) = &batch {
            if b.len + frame_len > b.buf.len() || b.entries.len() >= opts.batch_records_max {
                send(batch.take().expect("batch present"), &mut head);
            }
        }
        // Move to a new zone when the frame does not fit in this one.
        let start = batch.as_ref().map_or(head.offset, |b| b.start);
        let used = batch.as_ref().map_or(0, |b| b.len);
        if start + align_up((used + frame_len) as u64) > zone_size {
            let next = shared
                .free
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front();
            let Some(next) = next else {
                let _ = sub.done.send(Err(Error::Full {
                    needed: frame_len as u64,
                }));
                continue;
            };
            let mut b = batch
                .take()
                .unwrap_or_else(|| new_batch(&recycle, head.zone, head.offset, 0, &opts, &head));
            b.seal_then = Some(next);
            send(b, &mut head);
            head.zone = next;
            head.offset = 0;
        }
        let b = batch.get_or_insert_with(|| {
            new_batch(&recycle, head.zone, head.offset, frame_len, &opts, &head)
        });
        let off = b.len;
        let seq = head.next_seq;
        let mut header = FrameHeader {
            kind: sub.kind,
            flags: if off == 0 { FLAG_BATCH_START } else { 0 },
            frame_len: frame_len as u32,
            data_key_id: sub.key.id,
            seq,
            timestamp_us: sub.timestamp_us,
            retain_until_us: sub.retain_until_us,
            nonce: frame::nonce(head.epoch, seq),
            custodian_tag: sub.custodian_tag,
            record_tag: sub.record_tag,
            conversation_tag: sub.conversation_tag,
            // Set when the batch is chained (chain_batch).
            prev_hash: [0; 32],
            content_hash: sub.content_hash,
        };
        if let Some(assigned) = sub.assigned {
            let _ = assigned.send(seq);
        }
        let (refs, done) = (sub.refs, sub.done);
        let body = match &pool {
            Some(pool) if frame_len >= opts.early_seal_bytes => seal_early(
                &shared,
                pool,
                &header,
                sub.plaintext,
                sub.payload_at,
                sub.key,
            ),
            _ => {
                // Small frames are sealed here, into the batch, as they arrive.
                let sealed = frame::seal_body(
                    &mut b.buf[off..off + frame_len],
                    &mut header,
                    &sub.plaintext[sub.payload_at..],
                    &sub.key,
                    &shared.store_id,
                );
                shared.give_buffer(sub.plaintext);
                Body::Sealed(sealed)
            }
        };
        b.placed.push(Placed {
            header,
            len: frame_len,
            body,
            refs,
        });
        b.waiters.push((done, seq));
        b.len += frame_len;
        head.next_seq += 1;
        b.next_seq_after = head.next_seq;
    }
    if let Some(b) = batch.take() {
        send(b, &mut head);
    }
}

#[allow(clippy::too_many_arguments)]
fn writer(
    shared: Arc<Shared>,
    rx: Receiver<Batch>,
    recycle: Sender<AlignedBuf>,
    idx: Sender<Vec<IndexEntry>>,
) {
    let opts = shared.options.clone();
    let mut since_checkpoint = 0u64;
    let mut last_checkpoint = Instant::now();
    for mut batch in rx {
        let mut log = shared.log.lock().unwrap_or_else(|p| p.into_inner());
        let log = &mut *log;
        if let Some(reason) = shared.poisoned() {
            for (done, _) in batch.waiters.drain(..) {
                let _ = done.send(Err(Error::Poisoned {
                    reason: reason.clone(),
                }));
            }
            continue;
        }
        if batch.len > 0 {
            assert_eq!(batch.zone, log.active, "batches go to the active zone");
            let wlen = align_up(batch.len as u64) as usize;
            batch.buf[batch.len..wlen].fill(0);
            let first_seq = batch.entries[0].loc.seq;
            assert_eq!(
                first_seq, log.durable.0,
                "batches are contiguous in sequence"
            );
            if let Err(e) =
                shared
                    .zones
                    .append_durable(batch.zone, batch.start, &batch.buf[..wlen], first_seq)
            {
                let reason = e.to_string();
                shared.poison(reason.clone());
                for (done, _) in batch.waiters.drain(..) {
                    let _ = done.send(Err(Error::Poisoned {
                        reason: reason.clone(),
                    }));
                }
                continue;
            }
            let wp = shared.zones.state(batch.zone).map(|z| z.write_pointer).ok();
            assert_eq!(
                wp,
                Some(batch.start + wlen as u64),
                "the batch ends exactly at the zone's new write pointer"
            );
            log.durable = (batch.next_seq_after, batch.hash_after);
            shared.acked.store(log.durable.0, Ordering::Release);
            for (done, seq) in batch.waiters.drain(..) {
                let _ = done.send(Ok(Receipt { seq }));
            }
            let st = &shared.stats;
            st.records
                .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
            st.payload_bytes.fetch_add(
                (batch.len - batch.entries.len() * FRAME_OVERHEAD) as u64,
                Ordering::Relaxed,
            );
            st.log_bytes.fetch_add(wlen as u64, Ordering::Relaxed);
            st.batches.fetch_add(1, Ordering::Relaxed);
            since_checkpoint += wlen as u64;
            let _ = idx.send(std::mem::take(&mut batch.entries));
        }
        if let Some(next) = batch.seal_then {
            let sealed = batch.zone;
            shared.zones.seal(sealed);
            shared.zones.restore(
                next,
                ZoneState {
                    condition: ZoneCondition::Open,
                    write_pointer: 0,
                    first_seq: log.durable.0,
                },
            );
            log.active = next;
            if let Err(e) = checkpoint(&shared, log) {
                shared.poison(format!(
                    "checkpoint after sealing zone {sealed} failed: {e}"
                ));
            } else {
                shared.stats.zones_sealed.fetch_add(1, Ordering::Relaxed);
                let first = shared.zones.state(sealed).map(|z| z.first_seq).unwrap_or(0);
                if let Some(tx) = &*shared.seals.lock().unwrap_or_else(|p| p.into_inner()) {
                    let _ = tx.try_send((sealed, first, log.durable.0));
                }
                match shared.zones.make_immutable(sealed) {
                    Ok(state) => tracing::info!(zone = sealed, ?state, "zone sealed"),
                    Err(e) => tracing::warn!(
                        zone = sealed,
                        "zone sealed, but could not be marked immutable: {e}"
                    ),
                }
            }
            since_checkpoint = 0;
            last_checkpoint = Instant::now();
        } else if since_checkpoint >= opts.checkpoint_bytes
            || (since_checkpoint > 0 && last_checkpoint.elapsed() >= opts.checkpoint_interval)
        {
            if let Err(e) = checkpoint(&shared, log) {
                shared.poison(format!("checkpoint failed: {e}"));
            }
            since_checkpoint = 0;
            last_checkpoint = Instant::now();
        }
        let _ = recycle.try_send(batch.buf);
    }
    if since_checkpoint > 0 && shared.poisoned().is_none() {
        let mut log = shared.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = checkpoint(&shared, &mut log) {
            shared.poison(format!("final checkpoint failed: {e}"));
        }
    }
}

/// Record the durable state in a new superblock generation on every device.
pub(crate) fn checkpoint(shared: &Shared, log: &mut LogState) -> Result<()> {
    let states = shared.zones.states();
    assert_ne!(
        states[log.active as usize].condition,
        ZoneCondition::Sealed,
        "the active zone is open"
    );
    let sb = &mut log.sb;
    sb.generation += 1;
    sb.next_seq = log.durable.0;
    sb.chain_head = log.durable.1;
    sb.active_zone = log.active;
    sb.zones = states;
    sb.checkpoint_us = crate::time::timestamp::now_us();
    sb.clock = shared.clock.reading();
    sb.clock_mac = clock_mac(&shared.keys, &sb.store_id, &sb.clock);
    let devices: Vec<&dyn Device> = shared
        .zones
        .devices()
        .iter()
        .map(|d| d.device().as_ref())
        .collect();
    sb.write_all(&devices, &shared.keys)?;
    shared.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
    write_anchors(shared, sb);
    Ok(())
}

/// Anchor the checkpoint just written everywhere configured (after the
/// superblock, so an anchor is never newer than a superblock that exists).
/// A place that fails is counted and reported, never fatal: it only weakens
/// the rollback check until it is reachable again.
fn write_anchors(shared: &Shared, sb: &Superblock) {
    if shared.anchors.is_empty() {
        return;
    }
    let anchor = crate::crypto::anchor::Anchor {
        store_id: sb.store_id,
        generation: sb.generation,
        next_seq: sb.next_seq,
        chain_head: sb.chain_head,
        written_us: sb.checkpoint_us,
    };
    let bytes = anchor.encode(&shared.keys);
    for place in &shared.anchors {
        if let Err(e) = place.write(&sb.store_id, &bytes) {
            shared.stats.anchor_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(place = %place.describe(), "rollback anchor not written: {e}");
        }
    }
}

/// The MAC that makes the persisted compliance clock tamper-evident.
pub(crate) fn clock_mac(
    keys: &Keys,
    store_id: &[u8; 16],
    clock: &crate::time::clock::ClockReading,
) -> [u8; 16] {
    let mut b = store_id.to_vec();
    b.extend_from_slice(&clock.to_bytes());
    keys.state_mac(b"stele/v1/compliance-clock", &b)
}

/// The index is derived from the log and caught up on open, so its own fsync
/// is paced for the log's sake: while appends flow, a durable index commit
/// at most this often (each competes with the log's fdatasync for the disk)...
const INDEX_PERSIST_BUSY: Duration = Duration::from_secs(10);
/// ...and after this long without input, at once.
const INDEX_PERSIST_IDLE: Duration = Duration::from_secs(1);
/// How long the indexer gathers entries into one transaction.
const INDEX_GATHER: Duration = Duration::from_millis(5);

/// Should the indexer thread die, readers waiting on it are told why
/// instead of waiting for an index that will not come.
struct IndexerExit<'a>(&'a Shared);

impl Drop for IndexerExit<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut st = self.0.indexed.lock().unwrap_or_else(|p| p.into_inner());
            st.failed = Some("the indexer stopped on an internal error".into());
            drop(st);
            self.0.indexed_cv.notify_all();
        }
    }
}

/// Indexes what the writer made durable, from seq `expected` on: dense
/// seqs, each hand-over continuing the one before (checked, kept on in release).
fn indexer(shared: Arc<Shared>, rx: Receiver<Vec<IndexEntry>>, mut expected: u64) {
    let _exit = IndexerExit(&shared);
    let mut last_persist = Instant::now();
    let mut dirty = false;
    loop {
        let mut entries = match rx.recv_timeout(INDEX_PERSIST_IDLE) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => {
                if dirty {
                    match shared.index.persist() {
                        Ok(()) => dirty = false,
                        Err(e) => tracing::warn!("index persist failed: {e}"),
                    }
                    last_persist = Instant::now();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Gather what else arrives within a few milliseconds: one index
        // transaction per gathering instead of one per batch keeps the
        // indexer from taking the cores the log's own threads need.
        let gather_until = Instant::now() + INDEX_GATHER;
        while entries.len() < 262_144 {
            match rx.try_recv() {
                Ok(more) => entries.extend(more),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let left = gather_until.saturating_duration_since(Instant::now());
                    if left.is_zero() || shared.index_waiters.load(Ordering::Acquire) > 0 {
                        break;
                    }
                    // Short waits, so a reader waiting on the index is noticed at once.
                    match rx.recv_timeout(left.min(Duration::from_micros(250))) {
                        Ok(more) => entries.extend(more),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        expected = crate::index::dense_from(expected, &entries)
            .expect("the writer hands the indexer dense seqs, continuing the last hand-over");
        let durable = last_persist.elapsed() >= INDEX_PERSIST_BUSY;
        let next = entries.last().map(|e| e.loc.seq + 1);
        let result = shared.index.insert(&entries, durable);
        let mut st = shared.indexed.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                if let Some(n) = next {
                    st.next = st.next.max(n);
                }
                dirty = !durable;
                if durable {
                    last_persist = Instant::now();
                }
            }
            Err(e) => {
                tracing::error!("index update failed: {e}");
                st.damaged = matches!(e, Error::IndexDamaged { .. });
                st.failed = Some(e.to_string());
            }
        }
        drop(st);
        shared.indexed_cv.notify_all();
    }
    if let Err(e) = shared.index.persist() {
        tracing::warn!("final index persist failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(kind: FrameKind) -> FrameFields {
        FrameFields {
            kind,
            timestamp_us: 1,
            retain_until_us: 2,
            record_tag: [3; TAG_LEN],
            conversation_tag: [4; TAG_LEN],
            custodian_tag: [5; CUSTODIAN_TAG_LEN],
        }
    }

    fn key() -> Arc<DataKey> {
        Arc::new(DataKey::new(7, &[9; 32]))
    }

    #[test]
    fn a_submission_hashes_its_envelope_and_carries_nothing_else() {
        let s = Submission::new(fields(FrameKind::Message), key(), b"envelope".to_vec());
        assert_eq!(s.content_hash, frame::content_hash(b"envelope"));
        assert_eq!(s.payload(), b"envelope");
        assert!(s.refs.is_empty() && s.assigned.is_none());
        assert_eq!(
            (s.kind, s.timestamp_us, s.retain_until_us),
            (FrameKind::Message, 1, 2)
        );
        assert_eq!(s.key.id, 7);
    }

    #[test]
    fn a_chunk_sealed_in_place_keeps_its_own_hash_and_its_room_for_the_header() {
        let mut buf = vec![0u8; frame::FRAME_HEADER_LEN];
        buf.extend_from_slice(b"chunk");
        let s = Submission::in_place(
            fields(FrameKind::MediaChunk),
            key(),
            buf,
            frame::FRAME_HEADER_LEN,
            [8; 32],
        );
        assert_eq!(s.payload(), b"chunk");
        assert_eq!(s.content_hash, [8; 32]);
    }

    #[test]
    #[should_panic(expected = "a payload starts at 0 or behind a frame header's room")]
    fn a_payload_elsewhere_in_the_buffer_is_refused() {
        Submission::in_place(
            fields(FrameKind::MediaChunk),
            key(),
            vec![0; 64],
            3,
            [0; 32],
        );
    }

    #[test]
    fn builders_set_what_they_name() {
        let (tx, mut rx) = oneshot::channel();
        let s = Submission::new(fields(FrameKind::System), key(), Vec::new())
            .referencing(vec![1, 2])
            .announcing(tx)
            .kept_by_the_store(99, Arc::new(DataKey::new(0, &[1; 32])));
        assert_eq!(s.refs, vec![1, 2]);
        assert_eq!((s.retain_until_us, s.key.id), (99, 0));
        s.assigned.expect("announcing").send(5).expect("send");
        assert_eq!(rx.try_recv().expect("told"), 5);
    }
}
