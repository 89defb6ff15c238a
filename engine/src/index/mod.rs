//! The index: derived from the log, rebuildable from it, kept in redb.
//!
//! Tables (all keys big-endian so byte order is numeric order):
//! * `locations`: seq → zone u32 | offset u64 | frame_len u32 | crc u32 | kind u8 | timestamp_us i64 |
//!   retain_until_us i64 | data_key_id u32 | custodian_tag[12] | conversation_tag[16]
//! * `record_tags`: record_tag[16] | seq u64 → ()
//! * `conversations`: conversation_tag[16] | seq u64 → ()
//! * `custodians`: custodian_tag[12] | seq u64 → ()
//! * `times`: timestamp_us (sign bit flipped) u64 | seq u64 → ()
//! * `chunk_refs`: chunk seq u64 | manifest seq u64 → () (which blob manifests use a chunk)
//! * `merkle`: height u8 | index u64 → hash: every leaf and every complete node of height ≥ 3 ([`crate::format::merkle`])
//! * `meta`: "next_seq" → the first sequence number not yet indexed
//! * `key_ids`: data key id u32 → the first seq encrypted with it (every key the log names)
//!
//! The compliance state (holds, retention extensions, erasure requests,
//! reclaimed zones, registered as a [`TableSet`]) lives in the same database
//! and is likewise derived from the log's audit records.
//!
//! Only the log is authoritative: on open the index catches up from its
//! `next_seq`; `reindex` rebuilds it from nothing, and [`Index::digest`]
//! proves that a rebuild gives the same index.

use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use sha2::{Digest, Sha256};

use crate::crypto::keys::{CUSTODIAN_TAG_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::frame::FrameKind;

const LOCATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("locations");
const RECORD_TAGS: TableDefinition<&[u8], ()> = TableDefinition::new("record_tags");
const CONVERSATIONS: TableDefinition<&[u8], ()> = TableDefinition::new("conversations");
const CUSTODIANS: TableDefinition<&[u8], ()> = TableDefinition::new("custodians");
const TIMES: TableDefinition<&[u8], ()> = TableDefinition::new("times");
const CHUNK_REFS: TableDefinition<&[u8], ()> = TableDefinition::new("chunk_refs");
const MERKLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("merkle");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const KEY_IDS: TableDefinition<u32, u64> = TableDefinition::new("key_ids");
const NEXT_SEQ: &str = "next_seq";
// Where each field of a `locations` value starts (docs/FORMAT.md, "Index"),
// each from the one before it; a field runs to where the next one starts.
const LOC_ZONE_AT: usize = 0;
const LOC_OFFSET_AT: usize = LOC_ZONE_AT + 4;
const LOC_FRAME_LEN_AT: usize = LOC_OFFSET_AT + 8;
const LOC_CRC_AT: usize = LOC_FRAME_LEN_AT + 4;
const LOC_KIND_AT: usize = LOC_CRC_AT + 4;
const LOC_TIMESTAMP_AT: usize = LOC_KIND_AT + 1;
const LOC_RETAIN_UNTIL_AT: usize = LOC_TIMESTAMP_AT + 8;
const LOC_DATA_KEY_ID_AT: usize = LOC_RETAIN_UNTIL_AT + 8;
const LOC_CUSTODIAN_TAG_AT: usize = LOC_DATA_KEY_ID_AT + 4;
const LOC_CONVERSATION_TAG_AT: usize = LOC_CUSTODIAN_TAG_AT + CUSTODIAN_TAG_LEN;
const LOCATION_LEN: usize = LOC_CONVERSATION_TAG_AT + TAG_LEN;
// docs/FORMAT.md ("Index"): zone 4, offset 8, frame_len 4, crc 4, kind 1,
// timestamp 8, retain_until 8, data_key_id 4, custodian_tag, conversation_tag: 69 bytes.
const _: () = assert!(LOCATION_LEN == 4 + 8 + 4 + 4 + 1 + 8 + 8 + 4 + CUSTODIAN_TAG_LEN + TAG_LEN);
const _: () = assert!(LOCATION_LEN == 69);
/// A key of the `times`, `chunk_refs` tables: two u64 BE.
const PAIR_KEY_LEN: usize = 8 + 8;
/// A `merkle` key: height u8, then index u64 BE.
const NODE_INDEX_AT: usize = 1;
const NODE_KEY_LEN: usize = NODE_INDEX_AT + 8;

/// The `N` bytes of `v` at `at` (the caller has checked `v` is long enough).
fn field<const N: usize>(v: &[u8], at: usize) -> [u8; N] {
    v[at..at + N].try_into().expect("field within the value")
}

pub use crate::format::location::{FrameLocation, IndexEntry};

/// The dense-seq rule for frames the log hands to the index as it writes
/// them: `entries` run `from, from + 1, ...` with no gap and no repeat.
/// Returns the seq after them (`from` for none), or `None` if they break the
/// rule. A rebuild across reclaimed zones, whose seqs jump, is not held to it.
pub fn dense_from(from: u64, entries: &[IndexEntry]) -> Option<u64> {
    let mut next = from;
    for e in entries {
        if e.loc.seq != next {
            return None;
        }
        next += 1;
    }
    Some(next)
}

/// A `locations` value (docs/FORMAT.md, "Index").
fn encode_location(l: &FrameLocation) -> [u8; LOCATION_LEN] {
    let mut v = [0u8; LOCATION_LEN];
    v[LOC_ZONE_AT..LOC_OFFSET_AT].copy_from_slice(&l.zone.to_le_bytes());
    v[LOC_OFFSET_AT..LOC_FRAME_LEN_AT].copy_from_slice(&l.offset.to_le_bytes());
    v[LOC_FRAME_LEN_AT..LOC_CRC_AT].copy_from_slice(&l.frame_len.to_le_bytes());
    v[LOC_CRC_AT..LOC_KIND_AT].copy_from_slice(&l.crc.to_le_bytes());
    v[LOC_KIND_AT] = l.kind as u8;
    v[LOC_TIMESTAMP_AT..LOC_RETAIN_UNTIL_AT].copy_from_slice(&l.timestamp_us.to_le_bytes());
    v[LOC_RETAIN_UNTIL_AT..LOC_DATA_KEY_ID_AT].copy_from_slice(&l.retain_until_us.to_le_bytes());
    v[LOC_DATA_KEY_ID_AT..LOC_CUSTODIAN_TAG_AT].copy_from_slice(&l.data_key_id.to_le_bytes());
    v[LOC_CUSTODIAN_TAG_AT..LOC_CONVERSATION_TAG_AT].copy_from_slice(&l.custodian_tag);
    v[LOC_CONVERSATION_TAG_AT..].copy_from_slice(&l.conversation_tag);
    v
}

fn time_key(ts: i64, seq: u64) -> [u8; PAIR_KEY_LEN] {
    pair_key((ts as u64) ^ (1 << 63), seq)
}

fn tag_key(tag: &[u8; TAG_LEN], seq: u64) -> [u8; TAG_LEN + 8] {
    let mut k = [0u8; TAG_LEN + 8];
    k[..TAG_LEN].copy_from_slice(tag);
    k[TAG_LEN..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn custodian_key(tag: &[u8; CUSTODIAN_TAG_LEN], seq: u64) -> [u8; CUSTODIAN_TAG_LEN + 8] {
    let mut k = [0u8; CUSTODIAN_TAG_LEN + 8];
    k[..CUSTODIAN_TAG_LEN].copy_from_slice(tag);
    k[CUSTODIAN_TAG_LEN..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn pair_key(a: u64, b: u64) -> [u8; PAIR_KEY_LEN] {
    let mut k = [0u8; PAIR_KEY_LEN];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

fn node_key(height: u8, index: u64) -> [u8; NODE_KEY_LEN] {
    let mut k = [0u8; NODE_KEY_LEN];
    k[0] = height;
    k[NODE_INDEX_AT..].copy_from_slice(&index.to_be_bytes());
    k
}

/// A Merkle node from `t`: stored, or (below the stored heights, or where a
/// rebuild left a gap) computed from its children. `None` if unavailable.
fn merkle_get(
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
    height: u8,
    index: u64,
) -> std::result::Result<Option<crate::format::merkle::Hash>, redb::StorageError> {
    if let Some(v) = t.get(&node_key(height, index)[..])? {
        return Ok(v.value().try_into().ok());
    }
    if height == 0 {
        return Ok(None);
    }
    let Some(l) = merkle_get(t, height - 1, index * 2)? else {
        return Ok(None);
    };
    let Some(r) = merkle_get(t, height - 1, index * 2 + 1)? else {
        return Ok(None);
    };
    Ok(Some(crate::format::merkle::node_hash(&l, &r)))
}

/// Add leaf `seq` and every node it completes.
fn merkle_add(
    t: &mut redb::Table<&'static [u8], &'static [u8]>,
    seq: u64,
    leaf: crate::format::merkle::Hash,
) -> std::result::Result<(), redb::StorageError> {
    t.insert(&node_key(0, seq)[..], &leaf[..])?;
    let (mut height, mut index, mut cur) = (0u8, seq, leaf);
    while index & 1 == 1 {
        let Some(left) = merkle_get(t, height, index - 1)? else {
            break; // a gap (reclaimed leaves during a rebuild): filled later from the reclaim record
        };
        cur = crate::format::merkle::node_hash(&left, &cur);
        height += 1;
        index >>= 1;
        if height >= crate::format::merkle::STORED_FROM_HEIGHT {
            t.insert(&node_key(height, index)[..], &cur[..])?;
        }
    }
    Ok(())
}

fn seq_of(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[key.len() - 8..].try_into().expect("8-byte seq suffix"))
}

pub struct Index {
    db: Database,
    path: PathBuf,
    others: &'static [TableSet],
}

/// Tables another layer keeps in the index database, derived from the log
/// like the index's own (the compliance state): created at open, probed for
/// damage, and dropped with the index when it is rebuilt.
#[derive(Clone, Copy)]
pub struct TableSet {
    pub create: fn(&Database) -> std::result::Result<(), redb::Error>,
    pub probe: fn(&redb::ReadTransaction) -> std::result::Result<(), redb::Error>,
    pub delete: fn(&redb::WriteTransaction) -> std::result::Result<(), redb::Error>,
}

/// What a redb error means for the store: damage to the file (set it aside
/// and rebuild) or a failure to reach it (an I/O error, the file in use).
pub(crate) fn classify(path: &Path, e: redb::Error) -> Error {
    use redb::Error as E;
    let path = path.display().to_string();
    match e {
        E::Corrupted(_)
        | E::UpgradeRequired(_)
        | E::TableTypeMismatch { .. }
        | E::TableIsMultimap(_)
        | E::TableIsNotMultimap(_)
        | E::TypeDefinitionChanged { .. }
        | E::TableDoesNotExist(_)
        | E::TransactionPoisoned => Error::IndexDamaged {
            path,
            reason: e.to_string(),
        },
        other => Error::Index {
            path,
            reason: other.to_string(),
        },
    }
}

/// Run `f`, turning a panic (redb panics on some damaged pages) into
/// [`Error::IndexDamaged`]. Damage found is marked beside the file, so the
/// next open sets the file aside and rebuilds it even if it does not touch
/// the damaged pages itself.
fn guard_at<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic inside the database".into());
            Err(Error::IndexDamaged {
                path: path.display().to_string(),
                reason: format!("reading it failed: {what}"),
            })
        }
    };
    if let Err(Error::IndexDamaged { reason, .. }) = &result {
        if let Err(e) = std::fs::write(mark_path(path), reason) {
            tracing::error!("cannot mark the index damaged: {e}");
        }
    }
    result
}

fn mark_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".damaged");
    path.with_file_name(name)
}

/// The damage an earlier access found in the index at `path`, if any.
pub(crate) fn damage_mark(path: &Path) -> Option<String> {
    std::fs::read_to_string(mark_path(path)).ok()
}

/// Forget the mark once the damaged file is set aside.
pub(crate) fn clear_damage_mark(path: &Path) {
    let _ = std::fs::remove_file(mark_path(path));
}

impl Index {
    /// Open (or create) the index at `path`. A damaged file is reported as
    /// [`Error::IndexDamaged`], never a panic, so the caller can set it aside.
    /// `others`: the tables other layers keep beside the index's.
    pub fn open(path: &Path, others: &'static [TableSet]) -> Result<Index> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Index {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let db = guard_at(path, || {
            Database::create(path).map_err(|e| classify(path, e.into()))
        })?;
        let index = Index {
            db,
            path: path.to_path_buf(),
            others,
        };
        index.guard(|| {
            let tx = index.db.begin_write().map_err(|e| index.err(e))?;
            {
                tx.open_table(LOCATIONS).map_err(|e| index.err(e))?;
                tx.open_table(MERKLE).map_err(|e| index.err(e))?;
                for t in [RECORD_TAGS, CONVERSATIONS, CUSTODIANS, TIMES, CHUNK_REFS] {
                    tx.open_table(t).map_err(|e| index.err(e))?;
                }
                tx.open_table(META).map_err(|e| index.err(e))?;
                tx.open_table(KEY_IDS).map_err(|e| index.err(e))?;
            }
            tx.commit().map_err(|e| index.err(e))?;
            index.create_others()
        })?;
        Ok(index)
    }

    /// Run `f` on the database; redb's panics on damaged pages become
    /// [`Error::IndexDamaged`] instead of unwinding through the store.
    pub(crate) fn guard<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        guard_at(&self.path, f)
    }

    /// Read the first and last entry of every table: the pages every open
    /// and most queries touch first.
    pub(crate) fn probe_tables(&self) -> Result<()> {
        self.guard(|| {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let t = tx.open_table(LOCATIONS).map_err(|e| self.err(e))?;
            t.first().map_err(|e| self.err(e))?;
            t.last().map_err(|e| self.err(e))?;
            for def in [RECORD_TAGS, CONVERSATIONS, CUSTODIANS, TIMES, CHUNK_REFS] {
                let t = tx.open_table(def).map_err(|e| self.err(e))?;
                t.first().map_err(|e| self.err(e))?;
                t.last().map_err(|e| self.err(e))?;
            }
            let t = tx.open_table(MERKLE).map_err(|e| self.err(e))?;
            t.first().map_err(|e| self.err(e))?;
            t.last().map_err(|e| self.err(e))?;
            // Read whole: the keystore check at open relies on every entry.
            let t = tx.open_table(KEY_IDS).map_err(|e| self.err(e))?;
            for item in t.iter().map_err(|e| self.err(e))? {
                item.map_err(|e| self.err(e))?;
            }
            for set in self.others {
                (set.probe)(&tx).map_err(|e| self.err(e))?;
            }
            Ok(())
        })
    }

    /// An entry that cannot be what the index writes: the file is damaged.
    fn damaged(&self, reason: String) -> Error {
        Error::IndexDamaged {
            path: self.path.display().to_string(),
            reason,
        }
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        classify(&self.path, e.into())
    }

    /// The first sequence number the index does not cover.
    pub fn next_seq(&self) -> Result<u64> {
        self.guard(|| {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let t = tx.open_table(META).map_err(|e| self.err(e))?;
            Ok(t.get(NEXT_SEQ)
                .map_err(|e| self.err(e))?
                .map_or(0, |v| v.value()))
        })
    }

    /// Add `entries` (consecutive, starting at the index's `next_seq`). Durable
    /// only if `durable`; otherwise a crash may lose it and the log replays it.
    pub fn insert(&self, entries: &[IndexEntry], durable: bool) -> Result<()> {
        self.guard(|| {
            let mut tx = self.db.begin_write().map_err(|e| self.err(e))?;
            tx.set_durability(if durable {
                Durability::Immediate
            } else {
                Durability::None
            })
            .map_err(|e| self.err(e))?;
            {
                let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
                let mut next = meta
                    .get(NEXT_SEQ)
                    .map_err(|e| self.err(e))?
                    .map_or(0, |v| v.value());
                let mut loc = tx.open_table(LOCATIONS).map_err(|e| self.err(e))?;
                let mut rec = tx.open_table(RECORD_TAGS).map_err(|e| self.err(e))?;
                let mut conv = tx.open_table(CONVERSATIONS).map_err(|e| self.err(e))?;
                let mut cust = tx.open_table(CUSTODIANS).map_err(|e| self.err(e))?;
                let mut times = tx.open_table(TIMES).map_err(|e| self.err(e))?;
                let mut refs = tx.open_table(CHUNK_REFS).map_err(|e| self.err(e))?;
                let mut merkle = tx.open_table(MERKLE).map_err(|e| self.err(e))?;
                let mut key_ids = tx.open_table(KEY_IDS).map_err(|e| self.err(e))?;
                let mut seen_key = crate::crypto::keys::ROOT_KEY_ID;
                let mut previous: Option<u64> = None;
                for e in entries {
                    // In increasing order (a gap only where reclaimed zones
                    // were; the scanner checks the chain): an entry out of
                    // order would otherwise be skipped below as already indexed.
                    assert!(
                        previous.is_none_or(|p| e.loc.seq > p),
                        "index entries arrive in increasing seq order: {} after {previous:?}",
                        e.loc.seq
                    );
                    previous = Some(e.loc.seq);
                    if e.loc.seq < next {
                        continue; // already indexed (replay after a crash)
                    }
                    loc.insert(e.loc.seq, &encode_location(&e.loc)[..])
                        .map_err(|x| self.err(x))?;
                    if e.record_tag != [0; TAG_LEN] {
                        rec.insert(&tag_key(&e.record_tag, e.loc.seq)[..], ())
                            .map_err(|x| self.err(x))?;
                    }
                    if e.loc.kind.is_record() {
                        if e.conversation_tag != [0; TAG_LEN] {
                            conv.insert(&tag_key(&e.conversation_tag, e.loc.seq)[..], ())
                                .map_err(|x| self.err(x))?;
                        }
                        if e.loc.custodian_tag != [0; CUSTODIAN_TAG_LEN] {
                            cust.insert(&custodian_key(&e.loc.custodian_tag, e.loc.seq)[..], ())
                                .map_err(|x| self.err(x))?;
                        }
                        times
                            .insert(&time_key(e.loc.timestamp_us, e.loc.seq)[..], ())
                            .map_err(|x| self.err(x))?;
                    }
                    for &c in &e.refs {
                        refs.insert(&pair_key(c, e.loc.seq)[..], ())
                            .map_err(|x| self.err(x))?;
                    }
                    merkle_add(&mut merkle, e.loc.seq, e.leaf).map_err(|x| self.err(x))?;
                    if e.loc.data_key_id != seen_key {
                        seen_key = e.loc.data_key_id;
                        let known = seen_key == crate::crypto::keys::ROOT_KEY_ID
                            || key_ids.get(seen_key).map_err(|x| self.err(x))?.is_some();
                        if !known {
                            key_ids
                                .insert(seen_key, e.loc.seq)
                                .map_err(|x| self.err(x))?;
                        }
                    }
                    next = e.loc.seq + 1;
                }
                meta.insert(NEXT_SEQ, next).map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| self.err(e))
        })
    }

    /// Make every earlier insert durable.
    pub fn persist(&self) -> Result<()> {
        self.guard(|| self.insert(&[], true))
    }

    /// Remove everything (before a rebuild).
    pub fn clear(&self) -> Result<()> {
        self.guard(|| {
            let tx = self.db.begin_write().map_err(|e| self.err(e))?;
            tx.delete_table(LOCATIONS).map_err(|e| self.err(e))?;
            tx.delete_table(RECORD_TAGS).map_err(|e| self.err(e))?;
            tx.delete_table(CONVERSATIONS).map_err(|e| self.err(e))?;
            tx.delete_table(CUSTODIANS).map_err(|e| self.err(e))?;
            tx.delete_table(TIMES).map_err(|e| self.err(e))?;
            tx.delete_table(CHUNK_REFS).map_err(|e| self.err(e))?;
            tx.delete_table(MERKLE).map_err(|e| self.err(e))?;
            tx.delete_table(META).map_err(|e| self.err(e))?;
            tx.delete_table(KEY_IDS).map_err(|e| self.err(e))?;
            for set in self.others {
                (set.delete)(&tx).map_err(|e| self.err(e))?;
            }
            {
                tx.open_table(LOCATIONS).map_err(|e| self.err(e))?;
                tx.open_table(RECORD_TAGS).map_err(|e| self.err(e))?;
                tx.open_table(CONVERSATIONS).map_err(|e| self.err(e))?;
                tx.open_table(CUSTODIANS).map_err(|e| self.err(e))?;
                tx.open_table(TIMES).map_err(|e| self.err(e))?;
                tx.open_table(CHUNK_REFS).map_err(|e| self.err(e))?;
                tx.open_table(MERKLE).map_err(|e| self.err(e))?;
                tx.open_table(META).map_err(|e| self.err(e))?;
                tx.open_table(KEY_IDS).map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| self.err(e))?;
            self.create_others()
        })
    }

    fn create_others(&self) -> Result<()> {
        for set in self.others {
            (set.create)(&self.db).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The database, shared with the compliance state.
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// Remove the entries of frames `from_seq..to_seq` (a reclaimed zone's).
    /// Their Merkle leaves and inner nodes go too, replaced by `cover`: the
    /// subtrees that cover the range exactly, which is all the tree needs of
    /// it (and all an index rebuilt from the log can know).
    pub(crate) fn remove_range(
        &self,
        from_seq: u64,
        to_seq: u64,
        cover: &[(u8, u64, crate::format::merkle::Hash)],
    ) -> Result<u64> {
        self.guard(|| {
            let tx = self.db.begin_write().map_err(|e| self.err(e))?;
            let mut n = 0;
            {
                let mut merkle = tx.open_table(MERKLE).map_err(|e| self.err(e))?;
                let mut h = 0u32;
                while h < 64 && (1u64 << h) <= to_seq - from_seq {
                    for i in from_seq.div_ceil(1 << h)..(to_seq >> h) {
                        merkle
                            .remove(&node_key(h as u8, i)[..])
                            .map_err(|e| self.err(e))?;
                    }
                    h += 1;
                }
                for (h, i, hash) in cover {
                    merkle
                        .insert(&node_key(*h, *i)[..], &hash[..])
                        .map_err(|e| self.err(e))?;
                }
            }
            {
                let mut loc = tx.open_table(LOCATIONS).map_err(|e| self.err(e))?;
                let mut rec = tx.open_table(RECORD_TAGS).map_err(|e| self.err(e))?;
                let mut conv = tx.open_table(CONVERSATIONS).map_err(|e| self.err(e))?;
                let mut cust = tx.open_table(CUSTODIANS).map_err(|e| self.err(e))?;
                let mut times = tx.open_table(TIMES).map_err(|e| self.err(e))?;
                for seq in from_seq..to_seq {
                    let Some(v) = loc.remove(seq).map_err(|e| self.err(e))? else {
                        continue;
                    };
                    let v = v.value().to_vec();
                    n += 1;
                    if v.len() != LOCATION_LEN {
                        continue;
                    }
                    let ts = i64::from_le_bytes(field(&v, LOC_TIMESTAMP_AT));
                    times
                        .remove(&time_key(ts, seq)[..])
                        .map_err(|e| self.err(e))?;
                    let ct: [u8; CUSTODIAN_TAG_LEN] = field(&v, LOC_CUSTODIAN_TAG_AT);
                    cust.remove(&custodian_key(&ct, seq)[..])
                        .map_err(|e| self.err(e))?;
                }
                let mut refs = tx.open_table(CHUNK_REFS).map_err(|e| self.err(e))?;
                let lo = pair_key(from_seq, 0);
                let hi = pair_key(to_seq, 0);
                let doomed: Vec<Vec<u8>> = refs
                    .range(&lo[..]..&hi[..])
                    .map_err(|e| self.err(e))?
                    .filter_map(|i| i.ok().map(|(k, _)| k.value().to_vec()))
                    .collect();
                for k in doomed {
                    refs.remove(&k[..]).map_err(|e| self.err(e))?;
                }
                self.move_key_ids(&tx, &loc, from_seq..to_seq)?;
                // Tag tables are keyed by tag first: drop their entries of the range by a scan.
                for table in [&mut rec, &mut conv] {
                    let mut doomed = Vec::new();
                    for item in table.iter().map_err(|e| self.err(e))? {
                        let (k, _) = item.map_err(|e| self.err(e))?;
                        let s = seq_of(k.value());
                        if (from_seq..to_seq).contains(&s) {
                            doomed.push(k.value().to_vec());
                        }
                    }
                    for k in doomed {
                        table.remove(&k[..]).map_err(|e| self.err(e))?;
                    }
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
            Ok(n)
        })
    }

    /// Keys first seen in the reclaimed `range` are first seen at their next
    /// frame after it, or not at all: what a rebuild from the log finds.
    fn move_key_ids(
        &self,
        tx: &redb::WriteTransaction,
        loc: &redb::Table<u64, &[u8]>,
        range: std::ops::Range<u64>,
    ) -> Result<()> {
        let mut key_ids = tx.open_table(KEY_IDS).map_err(|e| self.err(e))?;
        let mut left = std::collections::HashSet::new();
        for item in key_ids.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if range.contains(&v.value()) {
                left.insert(k.value());
            }
        }
        let mut found = Vec::new();
        if !left.is_empty() {
            for item in loc.range(range.end..).map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let Some(id) = v.value().get(LOC_DATA_KEY_ID_AT..LOC_CUSTODIAN_TAG_AT) else {
                    continue;
                };
                let id = u32::from_le_bytes(id.try_into().expect("4 bytes"));
                if left.remove(&id) {
                    found.push((id, k.value()));
                    if left.is_empty() {
                        break;
                    }
                }
            }
        }
        for id in left {
            key_ids.remove(id).map_err(|e| self.err(e))?;
        }
        for (id, seq) in found {
            key_ids.insert(id, seq).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    pub fn location(&self, seq: u64) -> Result<Option<FrameLocation>> {
        self.guard(|| {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let t = tx.open_table(LOCATIONS).map_err(|e| self.err(e))?;
            let Some(v) = t.get(seq).map_err(|e| self.err(e))? else {
                return Ok(None);
            };
            self.decode_location(seq, v.value()).map(Some)
        })
    }

    /// Every location with `from <= seq < to`, in order (one read transaction).
    pub fn locations(&self, from: u64, to: u64) -> Result<Vec<FrameLocation>> {
        self.guard(|| {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let t = tx.open_table(LOCATIONS).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for item in t.range(from..to).map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                out.push(self.decode_location(k.value(), v.value())?);
            }
            Ok(out)
        })
    }

    fn decode_location(&self, seq: u64, v: &[u8]) -> Result<FrameLocation> {
        if v.len() != LOCATION_LEN {
            return Err(self.damaged(format!("location of seq {seq} has {} bytes", v.len())));
        }
        let kind = FrameKind::from_u8(v[LOC_KIND_AT]).ok_or_else(|| {
            self.damaged(format!("location of seq {seq} has kind {}", v[LOC_KIND_AT]))
        })?;
        Ok(FrameLocation {
            seq,
            zone: u32::from_le_bytes(field(v, LOC_ZONE_AT)),
            offset: u64::from_le_bytes(field(v, LOC_OFFSET_AT)),
            frame_len: u32::from_le_bytes(field(v, LOC_FRAME_LEN_AT)),
            crc: u32::from_le_bytes(field(v, LOC_CRC_AT)),
            kind,
            timestamp_us: i64::from_le_bytes(field(v, LOC_TIMESTAMP_AT)),
            retain_until_us: i64::from_le_bytes(field(v, LOC_RETAIN_UNTIL_AT)),
            data_key_id: u32::from_le_bytes(field(v, LOC_DATA_KEY_ID_AT)),
            custodian_tag: field(v, LOC_CUSTODIAN_TAG_AT),
            conversation_tag: field(v, LOC_CONVERSATION_TAG_AT),
        })
    }

    /// Sequence numbers (the keys' last 8 bytes) of the keys in `table` that
    /// start with `prefix`, in key order, at most `limit`.
    fn prefixed_seqs(
        &self,
        table: TableDefinition<&[u8], ()>,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<u64>> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(table).map_err(|e| self.err(e))?;
        let mut lo = prefix.to_vec();
        lo.extend_from_slice(&[0; 8]);
        let mut hi = prefix.to_vec();
        hi.extend_from_slice(&[0xff; 8]);
        let mut out = Vec::new();
        for item in t.range(&lo[..]..=&hi[..]).map_err(|e| self.err(e))? {
            let (k, _) = item.map_err(|e| self.err(e))?;
            out.push(seq_of(k.value()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn tag_seqs(
        &self,
        table: TableDefinition<&[u8], ()>,
        tag: &[u8; TAG_LEN],
        limit: usize,
    ) -> Result<Vec<u64>> {
        self.prefixed_seqs(table, tag, limit)
    }

    /// Sequence numbers of frames whose record tag is `tag`, oldest first.
    pub fn by_record_tag(&self, tag: &[u8; TAG_LEN], limit: usize) -> Result<Vec<u64>> {
        self.guard(|| self.tag_seqs(RECORD_TAGS, tag, limit))
    }

    /// Sequence numbers of records in the conversation with tag `tag`, oldest first.
    pub fn by_conversation_tag(&self, tag: &[u8; TAG_LEN], limit: usize) -> Result<Vec<u64>> {
        self.guard(|| self.tag_seqs(CONVERSATIONS, tag, limit))
    }

    /// Forget which chunks the manifests `manifests` use.
    pub(crate) fn remove_chunk_refs_of(&self, manifests: &[u64]) -> Result<()> {
        self.guard(|| {
            if manifests.is_empty() {
                return Ok(());
            }
            let set: std::collections::HashSet<u64> = manifests.iter().copied().collect();
            let tx = self.db.begin_write().map_err(|e| self.err(e))?;
            {
                let mut t = tx.open_table(CHUNK_REFS).map_err(|e| self.err(e))?;
                let doomed: Vec<Vec<u8>> = t
                    .iter()
                    .map_err(|e| self.err(e))?
                    .filter_map(|i| i.ok())
                    .filter(|(k, _)| set.contains(&seq_of(k.value())))
                    .map(|(k, _)| k.value().to_vec())
                    .collect();
                for k in doomed {
                    t.remove(&k[..]).map_err(|e| self.err(e))?;
                }
            }
            tx.commit().map_err(|e| self.err(e))
        })
    }

    /// Merkle nodes for proofs, read in one transaction.
    pub fn merkle(&self) -> Result<MerkleView> {
        self.guard(|| {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let table = tx.open_table(MERKLE).map_err(|e| self.err(e))?;
            Ok(MerkleView {
                table,
                path: self.path.clone(),
            })
        })
    }

    /// Store nodes recorded when their leaves were reclaimed, then fill in
    /// every complete node of a tree of `size` leaves that a rebuild could not
    /// compute across the gap.
    pub(crate) fn merkle_restore(
        &self,
        nodes: &[(u8, u64, crate::format::merkle::Hash)],
        size: u64,
    ) -> Result<()> {
        self.guard(|| {
            let tx = self.db.begin_write().map_err(|e| self.err(e))?;
            {
                let mut t = tx.open_table(MERKLE).map_err(|e| self.err(e))?;
                for (h, i, hash) in nodes {
                    t.insert(&node_key(*h, *i)[..], &hash[..])
                        .map_err(|e| self.err(e))?;
                }
                let mut h = crate::format::merkle::STORED_FROM_HEIGHT;
                while h < 64 && (1u64 << h) <= size {
                    for i in 0..(size >> h) {
                        if t.get(&node_key(h, i)[..])
                            .map_err(|e| self.err(e))?
                            .is_none()
                        {
                            if let Some(v) = merkle_get(&t, h, i).map_err(|e| self.err(e))? {
                                t.insert(&node_key(h, i)[..], &v[..])
                                    .map_err(|e| self.err(e))?;
                            }
                        }
                    }
                    h += 1;
                }
            }
            tx.commit().map_err(|e| self.err(e))
        })
    }

    /// Every data key id the log names (the root data key aside), with the
    /// first seq encrypted under it.
    pub fn key_ids(&self) -> Result<Vec<(u32, u64)>> {
        self.guard(|| {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let t = tx.open_table(KEY_IDS).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for item in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                if k.value() != crate::crypto::keys::ROOT_KEY_ID {
                    out.push((k.value(), v.value()));
                }
            }
            Ok(out)
        })
    }

    /// The manifests that reference chunk `chunk`.
    pub fn chunk_users(&self, chunk: u64) -> Result<Vec<u64>> {
        self.guard(|| self.prefixed_seqs(CHUNK_REFS, &chunk.to_be_bytes(), usize::MAX))
    }

    /// Sequence numbers of records of the custodian with tag `tag`, oldest first.
    pub fn by_custodian_tag(
        &self,
        tag: &[u8; CUSTODIAN_TAG_LEN],
        limit: usize,
    ) -> Result<Vec<u64>> {
        self.guard(|| self.prefixed_seqs(CUSTODIANS, tag, limit))
    }

    /// Sequence numbers of records with `from_us <= timestamp < to_us`, in time order.
    pub fn by_time(&self, from_us: i64, to_us: i64, limit: usize) -> Result<Vec<u64>> {
        self.guard(|| {
            if to_us <= from_us {
                return Ok(Vec::new());
            }
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let t = tx.open_table(TIMES).map_err(|e| self.err(e))?;
            let lo = time_key(from_us, 0);
            let hi = time_key(to_us, 0);
            let mut out = Vec::new();
            for item in t.range(&lo[..]..&hi[..]).map_err(|e| self.err(e))? {
                let (k, _) = item.map_err(|e| self.err(e))?;
                out.push(seq_of(k.value()));
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// SHA-256 over every table's contents in key order: equal digests mean equal indexes.
    pub fn digest(&self) -> Result<[u8; 32]> {
        self.guard(|| {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let mut h = Sha256::new();
            let t = tx.open_table(LOCATIONS).map_err(|e| self.err(e))?;
            h.update(t.len().map_err(|e| self.err(e))?.to_le_bytes());
            for item in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                h.update(k.value().to_be_bytes());
                h.update(v.value());
            }
            for def in [RECORD_TAGS, CONVERSATIONS, CUSTODIANS, TIMES, CHUNK_REFS] {
                let t = tx.open_table(def).map_err(|e| self.err(e))?;
                h.update(t.len().map_err(|e| self.err(e))?.to_le_bytes());
                for item in t.iter().map_err(|e| self.err(e))? {
                    let (k, _) = item.map_err(|e| self.err(e))?;
                    h.update(k.value());
                }
            }
            let t = tx.open_table(MERKLE).map_err(|e| self.err(e))?;
            h.update(t.len().map_err(|e| self.err(e))?.to_le_bytes());
            for item in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                h.update(k.value());
                h.update(v.value());
            }
            // The data key ids only: the first seq under a key moves on when
            // its zone is reclaimed, and the root key (0) is not recorded.
            let t = tx.open_table(KEY_IDS).map_err(|e| self.err(e))?;
            let mut ids = 0u64;
            for item in t.iter().map_err(|e| self.err(e))? {
                let (k, _) = item.map_err(|e| self.err(e))?;
                if k.value() != crate::crypto::keys::ROOT_KEY_ID {
                    h.update(k.value().to_le_bytes());
                    ids += 1;
                }
            }
            h.update(ids.to_le_bytes());
            let m = tx.open_table(META).map_err(|e| self.err(e))?;
            h.update(
                m.get(NEXT_SEQ)
                    .map_err(|e| self.err(e))?
                    .map_or(0, |v| v.value())
                    .to_le_bytes(),
            );
            Ok(h.finalize().into())
        })
    }
}

/// A read-only view of the Merkle nodes.
pub struct MerkleView {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    path: PathBuf,
}

impl crate::format::merkle::Nodes for MerkleView {
    fn node(&self, height: u8, index: u64) -> Result<crate::format::merkle::Hash> {
        guard_at(&self.path, || {
            merkle_get(&self.table, height, index)
                .map_err(|e| classify(&self.path, e.into()))?
                .ok_or_else(|| Error::NotFound {
                    what: format!("Merkle node (height {height}, index {index}): its leaves were reclaimed before it was recorded"),
                })
        })
    }
}

impl MerkleView {
    /// The recorded leaves with `from <= seq < to`.
    pub fn leaves(
        &self,
        from: u64,
        to: u64,
    ) -> Result<std::collections::HashMap<u64, crate::format::merkle::Hash>> {
        guard_at(&self.path, || self.leaves_unguarded(from, to))
    }

    fn leaves_unguarded(
        &self,
        from: u64,
        to: u64,
    ) -> Result<std::collections::HashMap<u64, crate::format::merkle::Hash>> {
        let err = |e: redb::StorageError| classify(&self.path, e.into());
        let (lo, hi) = (node_key(0, from), node_key(0, to));
        let mut out = std::collections::HashMap::new();
        for item in self.table.range(&lo[..]..&hi[..]).map_err(err)? {
            let (k, v) = item.map_err(err)?;
            let seq = k
                .value()
                .get(NODE_INDEX_AT..NODE_KEY_LEN)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes);
            match (seq, v.value().try_into()) {
                (Some(seq), Ok(h)) => {
                    out.insert(seq, h);
                }
                _ => {
                    return Err(Error::IndexDamaged {
                        path: self.path.display().to_string(),
                        reason: "a Merkle leaf entry is not a seq and a hash".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// The leaf hash of `seq`, if the index holds it.
    pub fn leaf(&self, seq: u64) -> Result<Option<crate::format::merkle::Hash>> {
        guard_at(&self.path, || {
            Ok(self
                .table
                .get(&node_key(0, seq)[..])
                .map_err(|e| classify(&self.path, e.into()))?
                .and_then(|v| v.value().try_into().ok()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, key_id: u32, ts: i64) -> IndexEntry {
        IndexEntry {
            loc: FrameLocation {
                seq,
                zone: (seq / 10) as u32,
                offset: seq * 4096,
                frame_len: 200,
                crc: seq as u32,
                kind: FrameKind::Message,
                timestamp_us: ts,
                retain_until_us: ts + 1,
                data_key_id: key_id,
                custodian_tag: [1; CUSTODIAN_TAG_LEN],
                conversation_tag: [2; TAG_LEN],
            },
            record_tag: [3; TAG_LEN],
            conversation_tag: [2; TAG_LEN],
            refs: Vec::new(),
            leaf: [seq as u8; 32],
        }
    }

    fn open(dir: &tempfile::TempDir, name: &str) -> Index {
        Index::open(&dir.path().join(name), &[]).expect("index opens")
    }

    #[test]
    fn locations_round_trip_and_times_sort_across_the_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open(&dir, "i.redb");
        let entries = [entry(0, 1, 7), entry(1, 1, -5), entry(2, 1, 0)];
        ix.insert(&entries, true).unwrap();
        for e in &entries {
            assert_eq!(ix.location(e.loc.seq).unwrap(), Some(e.loc));
        }
        assert_eq!(
            ix.by_time(-10, 10, 10).unwrap(),
            vec![1, 2, 0],
            "time order, negative first"
        );
        assert_eq!(ix.next_seq().unwrap(), 3);
    }

    #[test]
    fn a_replayed_batch_is_skipped_and_an_out_of_order_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open(&dir, "i.redb");
        ix.insert(&[entry(0, 1, 1), entry(1, 1, 2)], true).unwrap();
        let before = ix.digest().unwrap();
        ix.insert(&[entry(0, 1, 1), entry(1, 1, 2)], true).unwrap();
        assert_eq!(ix.digest().unwrap(), before, "a replay changes nothing");
        assert!(ix.insert(&[entry(3, 1, 3), entry(2, 1, 3)], true).is_err());
        assert_eq!(
            ix.next_seq().unwrap(),
            2,
            "nothing of the refused batch is kept"
        );
    }

    #[test]
    fn reclaiming_moves_key_ids_as_a_rebuild_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open(&dir, "i.redb");
        let key = |s: u64| match s {
            0..10 => 1,
            10..20 => 2,
            25 => 3,
            _ => 1,
        };
        let all: Vec<IndexEntry> = (0..30).map(|s| entry(s, key(s), s as i64)).collect();
        ix.insert(&all, true).unwrap();
        assert_eq!(ix.key_ids().unwrap(), vec![(1, 0), (2, 10), (3, 25)]);
        ix.remove_range(0, 10, &[]).unwrap();
        assert_eq!(ix.key_ids().unwrap(), vec![(1, 20), (2, 10), (3, 25)]);
        ix.remove_range(10, 20, &[]).unwrap();
        let rebuilt = open(&dir, "rebuilt.redb");
        rebuilt.insert(&all[20..], true).unwrap();
        assert_eq!(ix.key_ids().unwrap(), rebuilt.key_ids().unwrap());
        assert_eq!(ix.key_ids().unwrap(), vec![(1, 20), (3, 25)]);
    }

    #[test]
    fn the_dense_seq_rule() {
        let run =
            |seqs: &[u64]| -> Vec<IndexEntry> { seqs.iter().map(|&s| entry(s, 1, 0)).collect() };
        assert_eq!(dense_from(5, &run(&[5, 6, 7])), Some(8));
        assert_eq!(
            dense_from(5, &[]),
            Some(5),
            "nothing handed over: still at 5"
        );
        assert_eq!(dense_from(5, &run(&[5, 7])), None, "a gap");
        assert_eq!(dense_from(5, &run(&[5, 5])), None, "a repeat");
        assert_eq!(
            dense_from(5, &run(&[6, 7])),
            None,
            "not where the last hand-over ended"
        );
        assert_eq!(dense_from(5, &run(&[4, 5])), None, "an old seq again");
    }

    #[test]
    fn lookups_by_seq_range_tag_custodian_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open(&dir, "i.redb");
        let mut entries: Vec<IndexEntry> = (0..6).map(|s| entry(s, 1, 100 - s as i64)).collect();
        entries[4].record_tag = [9; TAG_LEN];
        entries[5].loc.kind = FrameKind::MediaChunk;
        entries[5].record_tag = [9; TAG_LEN];
        ix.insert(&entries, true).unwrap();
        assert_eq!(ix.location(6).unwrap(), None, "nothing past the end");
        let seqs = |v: Vec<FrameLocation>| v.iter().map(|l| l.seq).collect::<Vec<_>>();
        assert_eq!(seqs(ix.locations(2, 5).unwrap()), vec![2, 3, 4]);
        assert_eq!(ix.by_record_tag(&[9; TAG_LEN], 10).unwrap(), vec![4, 5]);
        assert_eq!(
            ix.by_record_tag(&[3; TAG_LEN], 2).unwrap(),
            vec![0, 1],
            "at most the limit"
        );
        // A media chunk is found by its tag, but is not a record of its own:
        // not in the conversation, custodian or time tables.
        assert_eq!(
            ix.by_conversation_tag(&[2; TAG_LEN], 10).unwrap(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(
            ix.by_custodian_tag(&[1; CUSTODIAN_TAG_LEN], 10).unwrap(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(
            ix.by_time(96, 98, 10).unwrap(),
            vec![4, 3],
            "time order; seq 2 at 98 is past the end"
        );
        assert_eq!(ix.next_seq().unwrap(), 6);
    }

    #[test]
    fn removing_a_range_removes_it_from_every_table() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open(&dir, "i.redb");
        let entries: Vec<IndexEntry> = (0..6).map(|s| entry(s, 1, s as i64)).collect();
        ix.insert(&entries, true).unwrap();
        assert_eq!(
            ix.remove_range(2, 4, &[]).unwrap(),
            2,
            "two locations removed"
        );
        let seqs = |v: Vec<FrameLocation>| v.iter().map(|l| l.seq).collect::<Vec<_>>();
        assert_eq!(seqs(ix.locations(0, 6).unwrap()), vec![0, 1, 4, 5]);
        assert_eq!(ix.location(2).unwrap(), None);
        assert_eq!(
            ix.by_record_tag(&[3; TAG_LEN], 10).unwrap(),
            vec![0, 1, 4, 5]
        );
        assert_eq!(
            ix.by_conversation_tag(&[2; TAG_LEN], 10).unwrap(),
            vec![0, 1, 4, 5]
        );
        assert_eq!(
            ix.by_custodian_tag(&[1; CUSTODIAN_TAG_LEN], 10).unwrap(),
            vec![0, 1, 4, 5]
        );
        assert_eq!(ix.by_time(0, 10, 10).unwrap(), vec![0, 1, 4, 5]);
        assert_eq!(
            ix.next_seq().unwrap(),
            6,
            "the index still covers up to the log's end"
        );
    }

    #[test]
    fn a_rebuild_may_cross_a_reclaimed_gap() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open(&dir, "i.redb");
        // Seqs 2..10 were in a reclaimed zone: a rebuild reads 0, 1, then 10 on.
        ix.insert(&[entry(0, 1, 0), entry(1, 1, 1), entry(10, 1, 10)], true)
            .unwrap();
        assert_eq!(ix.next_seq().unwrap(), 11);
        assert_eq!(ix.location(5).unwrap(), None);
        assert_eq!(ix.location(10).unwrap().map(|l| l.seq), Some(10));
        assert!(
            dense_from(0, &[entry(0, 1, 0), entry(1, 1, 1), entry(10, 1, 10)]).is_none(),
            "which the writer's dense stream would never hand over"
        );
    }
}
