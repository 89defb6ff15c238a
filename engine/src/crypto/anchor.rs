//! Rollback anchors: the store's newest checkpoint, kept outside its data.
//!
//! A checkpoint in the superblock proves what the store held when it was
//! written, but not that it is the newest: a copy of the whole store
//! directory restored from last month opens as a perfectly valid store, and
//! the holds and records added since vanish without a trace. So at every
//! checkpoint the store also writes an anchor — store id, superblock
//! generation, log head (next seq and the hash of the frame before it) —
//! to every place configured for it that does not travel with the data: a
//! directory on another disk, the HSM token (a data object), later the
//! replica. Each anchor is authenticated with a key derived from the store's
//! root key, so it cannot be forged either.
//!
//! At open, a store whose newest superblock generation is older than a valid
//! anchor's, or whose log is shorter than the anchor's head, was rolled back
//! or forked: it is refused, naming the anchor. An anchor that cannot be
//! written is reported (and counted) but does not stop the store: its
//! absence only weakens the check, never the data.
//!
//! The byte layout is specified in docs/FORMAT.md ("Rollback anchor").

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::crypto::keys::Keys;
use crate::error::{Error, Result};

pub const ANCHOR_MAGIC: [u8; 8] = *b"STELEANC";
pub const ANCHOR_VERSION: u32 = 1;
// Where each field starts (docs/FORMAT.md, "Rollback anchor"), each from
// the one before it; a field runs to where the next one starts.
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + ANCHOR_MAGIC.len();
const STORE_ID_AT: usize = VERSION_AT + 4;
const GENERATION_AT: usize = STORE_ID_AT + 16;
const NEXT_SEQ_AT: usize = GENERATION_AT + 8;
const CHAIN_HEAD_AT: usize = NEXT_SEQ_AT + 8;
const WRITTEN_AT: usize = CHAIN_HEAD_AT + 32;
/// The MAC covers every byte before it.
const MAC_AT: usize = WRITTEN_AT + 8;
/// The CRC32C covers every byte before it.
const CRC_AT: usize = MAC_AT + 16;
/// Encoded length: magic, version, store id, generation, next seq, chain
/// head, written at, MAC, CRC32C.
pub const ANCHOR_LEN: usize = CRC_AT + 4;

const _: () = assert!(STORE_ID_AT == 12 && GENERATION_AT == 28 && NEXT_SEQ_AT == 36);
const _: () = assert!(CHAIN_HEAD_AT == 44 && WRITTEN_AT == 76);
const _: () = assert!(MAC_AT == 84 && CRC_AT == 100 && ANCHOR_LEN == 104);

/// What an anchor remembers of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub store_id: [u8; 16],
    /// The superblock generation of the checkpoint (it grows at every checkpoint).
    pub generation: u64,
    /// The log's next seq at the checkpoint: every seq below it was durable.
    pub next_seq: u64,
    /// SHA-256 of frame `next_seq - 1` (zero before the first frame).
    pub chain_head: [u8; 32],
    /// System time of the write, UTC µs (informational).
    pub written_us: i64,
}

impl Anchor {
    pub fn encode(&self, keys: &Keys) -> [u8; ANCHOR_LEN] {
        let mut b = [0u8; ANCHOR_LEN];
        b[MAGIC_AT..VERSION_AT].copy_from_slice(&ANCHOR_MAGIC);
        b[VERSION_AT..STORE_ID_AT].copy_from_slice(&ANCHOR_VERSION.to_le_bytes());
        b[STORE_ID_AT..GENERATION_AT].copy_from_slice(&self.store_id);
        b[GENERATION_AT..NEXT_SEQ_AT].copy_from_slice(&self.generation.to_le_bytes());
        b[NEXT_SEQ_AT..CHAIN_HEAD_AT].copy_from_slice(&self.next_seq.to_le_bytes());
        b[CHAIN_HEAD_AT..WRITTEN_AT].copy_from_slice(&self.chain_head);
        b[WRITTEN_AT..MAC_AT].copy_from_slice(&self.written_us.to_le_bytes());
        let mac = keys.state_mac(b"stele/v1/anchor", &b[..MAC_AT]);
        b[MAC_AT..CRC_AT].copy_from_slice(&mac);
        let crc = crc32c::crc32c(&b[..CRC_AT]);
        b[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decode an anchor read from `place`; anything torn, foreign or forged is an error naming it.
    pub fn decode(place: &str, b: &[u8], keys: &Keys) -> Result<Anchor> {
        let bad = |what: &str| Error::Tampered {
            path: place.to_string(),
            what: format!("rollback anchor ({what})"),
        };
        if b.len() != ANCHOR_LEN || b[MAGIC_AT..VERSION_AT] != ANCHOR_MAGIC {
            return Err(bad("not an anchor"));
        }
        let crc = u32::from_le_bytes(b[CRC_AT..].try_into().expect("4 bytes"));
        if crc32c::crc32c(&b[..CRC_AT]) != crc {
            return Err(bad("checksum mismatch"));
        }
        let version = u32::from_le_bytes(b[VERSION_AT..STORE_ID_AT].try_into().expect("4 bytes"));
        if version != ANCHOR_VERSION {
            return Err(Error::NewerFormat {
                path: place.to_string(),
                found: version,
                supported: ANCHOR_VERSION,
            });
        }
        let mac = keys.state_mac(b"stele/v1/anchor", &b[..MAC_AT]);
        if !crate::crypto::keys::equal_ct(&mac, &b[MAC_AT..CRC_AT]) {
            return Err(bad("MAC mismatch: not written with this store's key"));
        }
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        Ok(Anchor {
            store_id: b[STORE_ID_AT..GENERATION_AT].try_into().expect("16 bytes"),
            generation: u64_at(GENERATION_AT),
            next_seq: u64_at(NEXT_SEQ_AT),
            chain_head: b[CHAIN_HEAD_AT..WRITTEN_AT].try_into().expect("32 bytes"),
            written_us: u64_at(WRITTEN_AT) as i64,
        })
    }
}

/// Somewhere an anchor is kept.
pub trait AnchorPlace: Send + Sync {
    /// Names the place in errors and reports.
    fn describe(&self) -> String;
    /// The anchor bytes kept for `store_id`, if any.
    fn read(&self, store_id: &[u8; 16]) -> Result<Option<Vec<u8>>>;
    /// Replace the anchor kept for `store_id`, durably.
    fn write(&self, store_id: &[u8; 16], bytes: &[u8]) -> Result<()>;
}

/// Anchors as files in a directory (one per store, `<store id>.anchor`),
/// replaced atomically: written beside, synced, renamed, directory synced.
pub struct DirAnchor {
    dir: PathBuf,
}

impl DirAnchor {
    pub fn new(dir: impl Into<PathBuf>) -> DirAnchor {
        DirAnchor { dir: dir.into() }
    }

    fn path(&self, store_id: &[u8; 16]) -> PathBuf {
        self.dir.join(format!("{}.anchor", hex::encode(store_id)))
    }

    fn io(&self, op: &'static str, path: &Path, e: std::io::Error) -> Error {
        Error::io(&path.display().to_string(), op, None, None, e)
    }
}

impl AnchorPlace for DirAnchor {
    fn describe(&self) -> String {
        format!("anchor directory {}", self.dir.display())
    }

    fn read(&self, store_id: &[u8; 16]) -> Result<Option<Vec<u8>>> {
        let path = self.path(store_id);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("read anchor", &path, e)),
        }
    }

    fn write(&self, store_id: &[u8; 16], bytes: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io("create", &self.dir, e))?;
        let path = self.path(store_id);
        let tmp = path.with_extension("anchor.new");
        let mut f = std::fs::File::create(&tmp).map_err(|e| self.io("create", &tmp, e))?;
        f.write_all(bytes).map_err(|e| self.io("write", &tmp, e))?;
        f.sync_all().map_err(|e| self.io("sync", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(|e| self.io("rename", &path, e))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io("sync", &self.dir, e))
    }
}

/// The anchors kept for a store: those found (place, anchor) and the
/// places that hold none for it yet (a new place, or the store's first open).
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    pub held: Vec<(String, Anchor)>,
    pub empty: Vec<String>,
}

/// Read every place's anchor for `store_id`. A place that holds a torn,
/// forged or foreign anchor is an error: that is evidence, not absence.
pub fn read_all(
    places: &[Arc<dyn AnchorPlace>],
    keys: &Keys,
    store_id: &[u8; 16],
) -> Result<Anchors> {
    let mut out = Anchors::default();
    for p in places {
        let place = p.describe();
        let Some(bytes) = p.read(store_id)? else {
            out.empty.push(place);
            continue;
        };
        let a = Anchor::decode(&place, &bytes, keys)?;
        if a.store_id != *store_id {
            return Err(Error::Tampered {
                path: place,
                what: "rollback anchor (it names another store)".into(),
            });
        }
        out.held.push((place, a));
    }
    Ok(out)
}

impl Anchors {
    /// Before anything is written: a store whose newest superblock
    /// `generation` or recovered log end `next_seq` is older than an anchor's
    /// was rolled back.
    pub fn check_age(&self, generation: u64, next_seq: u64) -> Result<()> {
        for (place, a) in &self.held {
            let rolled = |why: String| Error::RolledBack {
                anchor: place.clone(),
                reason: why,
            };
            if a.generation > generation {
                return Err(rolled(format!(
                    "the anchor holds checkpoint generation {}, the store's newest superblock is generation {generation}",
                    a.generation
                )));
            }
            if a.next_seq > next_seq {
                return Err(rolled(format!(
                    "the anchor's log reaches seq {}, the store's log ends at seq {next_seq}",
                    a.next_seq
                )));
            }
        }
        Ok(())
    }

    /// Once frames can be read: the log holds the very frame each anchor
    /// names (`hash_at(seq)` is the SHA-256 of frame `seq`), else it was forked.
    pub fn check_fork(&self, hash_at: &dyn Fn(u64) -> Result<[u8; 32]>) -> Result<()> {
        for (place, a) in &self.held {
            if a.next_seq > 0 && hash_at(a.next_seq - 1)? != a.chain_head {
                return Err(Error::RolledBack {
                    anchor: place.clone(),
                    reason: format!(
                        "frame {} is not the frame the anchor names: the log was forked",
                        a.next_seq - 1
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_master(1, &[7; 32])
    }

    fn sample() -> Anchor {
        Anchor {
            store_id: [1; 16],
            generation: 9,
            next_seq: 100,
            chain_head: [3; 32],
            written_us: 5,
        }
    }

    #[test]
    fn round_trip_and_every_flipped_bit_is_refused() {
        let a = sample();
        let b = a.encode(&keys());
        assert_eq!(Anchor::decode("t", &b, &keys()).unwrap(), a);
        for i in 0..ANCHOR_LEN {
            let mut c = b;
            c[i] ^= 0x04;
            assert!(Anchor::decode("t", &c, &keys()).is_err(), "flip at {i}");
        }
        let other = Keys::from_master(1, &[8; 32]);
        assert!(matches!(
            Anchor::decode("t", &b, &other),
            Err(Error::Tampered { .. })
        ));
    }

    #[test]
    fn an_older_or_forked_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let place: Arc<dyn AnchorPlace> = Arc::new(DirAnchor::new(dir.path()));
        let a = sample();
        place.write(&a.store_id, &a.encode(&keys())).unwrap();
        let places = [place];
        let found = read_all(&places, &keys(), &a.store_id).unwrap();
        assert_eq!(found.held.len(), 1);
        found.check_age(9, 100).unwrap();
        found.check_fork(&|_| Ok([3u8; 32])).unwrap();
        for (generation, next) in [(8, 100), (9, 99)] {
            assert!(matches!(
                found.check_age(generation, next),
                Err(Error::RolledBack { .. })
            ));
        }
        assert!(matches!(
            found.check_fork(&|_| Ok([4u8; 32])),
            Err(Error::RolledBack { .. })
        ));
        let none = read_all(&places, &keys(), &[2; 16]).unwrap();
        assert_eq!((none.held.len(), none.empty.len()), (0, 1));
    }
}
