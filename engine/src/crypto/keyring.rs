//! The keyring: the store's root key and its data subjects' data keys, kept
//! wrapped in a keystore apart from the data (a redb file beside the key
//! file, never on the data devices).
//!
//! * One data key per data subject (a conversation or a custodian, by
//!   configuration) and rotation period: a subject's key is replaced once it
//!   is `rotation` old; older keys stay, so old records stay readable after
//!   any number of rotations.
//! * Keys are stored only wrapped by the current key-encryption key
//!   ([`crate::crypto::kek`]). Rotating the KEK re-wraps every stored key in one
//!   transaction and then destroys the old KEK; no record is rewritten.
//! * Erasing a subject (crypto-shredding) marks its keys destroyed, drops
//!   their wrapped bytes, and rotates the KEK so that any copy of the old
//!   wrapped bytes left in free pages or backups can no longer be unwrapped.
//!
//! Keystore tables:
//! * `meta`: "keystore_id" → 16 random bytes (part of every wrapping AAD),
//!   "root" → kek generation u32 | wrapped root key, "next_key_id" → u32
//! * `keys`: key id u32 → subject tag 16 | created_us i64 | kek generation u32 |
//!   state u8 (1 live, 2 destroyed, 3 lost) | destroyed_at_us i64 | erasure request u64
//!   (for a lost key: when and under which audit record the loss was acknowledged) | wrapped key (live only)
//!
//! The log names the key of every record it holds (the frame header's key
//! id), so the store checks at open that the keystore holds an entry for
//! each of them ([`Keyring::missing`]): a keystore restored from an older
//! backup would otherwise issue the lost ids again. A key known lost is kept
//! as a `lost` entry so that the check passes and its id is never issued.
//! * `current`: subject tag → key id of the subject's newest key

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use zeroize::Zeroizing;

use crate::crypto::kek::{random, KeyProvider};
use crate::crypto::keys::{DataKey, Keys, ROOT_KEY_ID, TAG_LEN};
use crate::error::{Error, Result};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const KEYS: TableDefinition<u32, &[u8]> = TableDefinition::new("keys");
const CURRENT: TableDefinition<&[u8], u32> = TableDefinition::new("current");
const CACHE_MAX: usize = 65_536;
/// The id the root key's derived keys use for their tags and the superblock.
pub const ROOT_KEY_GENERATION: u32 = 1;

const STATE_LIVE: u8 = 1;
const STATE_DESTROYED: u8 = 2;
const STATE_LOST: u8 = 3;
// Where each field of a `keys` value starts (docs/FORMAT.md, "Keystore"),
// each from the one before it; a field runs to where the next one starts.
const SUBJECT_AT: usize = 0;
const CREATED_AT: usize = SUBJECT_AT + TAG_LEN;
const KEK_GENERATION_AT: usize = CREATED_AT + 8;
const STATE_AT: usize = KEK_GENERATION_AT + 4;
/// When the key was destroyed or its loss acknowledged.
const STATE_AT_US_AT: usize = STATE_AT + 1;
/// The erasure request, or the `data-keys-lost` audit record.
const STATE_SEQ_AT: usize = STATE_AT_US_AT + 8;
/// The fixed part; the wrapped key (live keys only) follows.
const KEY_HEAD: usize = STATE_SEQ_AT + 8;
const _: () = assert!(KEY_HEAD == 16 + 8 + 4 + 1 + 8 + 8);
/// The `root` entry: the KEK generation u32, then the wrapped root key.
const ROOT_WRAPPED_AT: usize = 4;

/// A stored key's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: u32,
    pub subject: [u8; TAG_LEN],
    pub created_us: i64,
    pub kek_generation: u32,
    /// `Some((destroyed_at_us, erasure request))` once crypto-shredded.
    pub destroyed: Option<(i64, u64)>,
    /// `Some((acknowledged_at_us, audit seq))` for a key the keystore lost
    /// (restored from an older backup) and a key administrator acknowledged as lost.
    pub lost: Option<(i64, u64)>,
}

fn decode(id: u32, b: &[u8]) -> Option<(KeyInfo, Vec<u8>)> {
    if b.len() < KEY_HEAD {
        return None;
    }
    let subject: [u8; TAG_LEN] = b[SUBJECT_AT..CREATED_AT].try_into().ok()?;
    let created_us = i64::from_le_bytes(b[CREATED_AT..KEK_GENERATION_AT].try_into().ok()?);
    let kek_generation = u32::from_le_bytes(b[KEK_GENERATION_AT..STATE_AT].try_into().ok()?);
    let state = b[STATE_AT];
    let at = i64::from_le_bytes(b[STATE_AT_US_AT..STATE_SEQ_AT].try_into().ok()?);
    let req = u64::from_le_bytes(b[STATE_SEQ_AT..KEY_HEAD].try_into().ok()?);
    Some((
        KeyInfo {
            id,
            subject,
            created_us,
            kek_generation,
            destroyed: (state == STATE_DESTROYED).then_some((at, req)),
            lost: (state == STATE_LOST).then_some((at, req)),
        },
        b[KEY_HEAD..].to_vec(),
    ))
}

fn encode(info: &KeyInfo, wrapped: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(KEY_HEAD + wrapped.len());
    b.extend_from_slice(&info.subject);
    b.extend_from_slice(&info.created_us.to_le_bytes());
    b.extend_from_slice(&info.kek_generation.to_le_bytes());
    let (state, at, req) = match (info.destroyed, info.lost) {
        (Some((at, req)), _) => (STATE_DESTROYED, at, req),
        (None, Some((at, req))) => (STATE_LOST, at, req),
        (None, None) => (STATE_LIVE, 0, 0),
    };
    b.push(state);
    b.extend_from_slice(&at.to_le_bytes());
    b.extend_from_slice(&req.to_le_bytes());
    assert_eq!(
        b.len(),
        KEY_HEAD,
        "a key entry's fixed part is KEY_HEAD bytes"
    );
    b.extend_from_slice(wrapped);
    b
}

/// Why a data key cannot be had.
#[derive(Debug)]
pub enum KeyLookup {
    /// Destroyed by an erasure: (destroyed_at_us, erasure request).
    Destroyed(i64, u64),
    /// The keystore has no entry for the key (it is older than the log).
    Missing,
    /// Lost with an older keystore, acknowledged: (acknowledged_at_us, audit seq).
    Lost(i64, u64),
    Failed(Error),
}

/// What a KEK rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekRotation {
    pub from_generation: u32,
    pub to_generation: u32,
    pub rewrapped: u64,
}

pub struct Keyring {
    provider: Box<dyn KeyProvider>,
    db: Database,
    path: PathBuf,
    keystore_id: [u8; 16],
    root: Zeroizing<[u8; 32]>,
    rotation_us: i64,
    cache: Mutex<HashMap<u32, Arc<DataKey>>>,
    /// Each subject's newest key and when it was made (a cache of `current`).
    current: Mutex<HashMap<[u8; TAG_LEN], (u32, i64)>>,
    /// Serialises key creation, rotation and erasure.
    write: Mutex<()>,
}

impl Keyring {
    fn err_at(path: &Path, e: impl std::fmt::Display) -> Error {
        Error::Keystore {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Keyring::err_at(&self.path, e)
    }

    fn root_aad(keystore_id: &[u8; 16]) -> Vec<u8> {
        let mut a = b"stele/v1/root-key/".to_vec();
        a.extend_from_slice(keystore_id);
        a
    }

    fn key_aad(&self, id: u32, subject: &[u8; 16]) -> Vec<u8> {
        let mut a = b"stele/v1/data-key/".to_vec();
        a.extend_from_slice(&self.keystore_id);
        a.extend_from_slice(&id.to_le_bytes());
        a.extend_from_slice(subject);
        a
    }

    /// Create a keystore at `path` (which must not exist) with a new random root key.
    pub fn create(
        provider: Box<dyn KeyProvider>,
        path: &Path,
        rotation_days: u32,
    ) -> Result<Keyring> {
        if path.exists() {
            return Err(Keyring::err_at(
                path,
                "already exists; a keystore is never overwritten",
            ));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Keyring::err_at(path, e))?;
        }
        let mut keystore_id = [0u8; 16];
        random(&mut keystore_id)?;
        let mut root = Zeroizing::new([0u8; 32]);
        random(&mut root[..])?;
        let generation = provider.current_generation()?;
        let wrapped = provider.wrap(generation, &root, &Keyring::root_aad(&keystore_id))?;
        let db = Database::create(path).map_err(|e| Keyring::err_at(path, e))?;
        let tx = db.begin_write().map_err(|e| Keyring::err_at(path, e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| Keyring::err_at(path, e))?;
            meta.insert("keystore_id", &keystore_id[..])
                .map_err(|e| Keyring::err_at(path, e))?;
            let mut r = generation.to_le_bytes().to_vec();
            r.extend_from_slice(&wrapped);
            meta.insert("root", &r[..])
                .map_err(|e| Keyring::err_at(path, e))?;
            meta.insert("next_key_id", &1u32.to_le_bytes()[..])
                .map_err(|e| Keyring::err_at(path, e))?;
            tx.open_table(KEYS).map_err(|e| Keyring::err_at(path, e))?;
            tx.open_table(CURRENT)
                .map_err(|e| Keyring::err_at(path, e))?;
        }
        tx.commit().map_err(|e| Keyring::err_at(path, e))?;
        drop(db);
        Keyring::open(provider, path, rotation_days)
    }

    /// Open the keystore at `path` and unwrap the root key with the provider's KEK.
    pub fn open(
        provider: Box<dyn KeyProvider>,
        path: &Path,
        rotation_days: u32,
    ) -> Result<Keyring> {
        if !path.exists() {
            return Err(Keyring::err_at(path, "does not exist"));
        }
        let db = Database::open(path).map_err(|e| Keyring::err_at(path, e))?;
        let (keystore_id, root_gen, root_wrapped) = {
            let tx = db.begin_read().map_err(|e| Keyring::err_at(path, e))?;
            let meta = tx.open_table(META).map_err(|e| Keyring::err_at(path, e))?;
            let get = |k: &str| -> Result<Vec<u8>> {
                meta.get(k)
                    .map_err(|e| Keyring::err_at(path, e))?
                    .map(|v| v.value().to_vec())
                    .ok_or_else(|| {
                        Keyring::err_at(path, format!("no {k} entry: not a Stele keystore"))
                    })
            };
            let id: [u8; 16] = get("keystore_id")?
                .try_into()
                .map_err(|_| Keyring::err_at(path, "keystore id is not 16 bytes"))?;
            let r = get("root")?;
            if r.len() < ROOT_WRAPPED_AT {
                return Err(Keyring::err_at(path, "root key entry is truncated"));
            }
            (
                id,
                u32::from_le_bytes(r[..ROOT_WRAPPED_AT].try_into().expect("4")),
                r[ROOT_WRAPPED_AT..].to_vec(),
            )
        };
        let root = provider
            .unwrap(root_gen, &root_wrapped, &Keyring::root_aad(&keystore_id))
            .map_err(|e| Error::KeyProvider {
                provider: provider.describe(),
                reason: format!("cannot unwrap the root key of {}: {e}", path.display()),
            })?;
        Ok(Keyring {
            provider,
            db,
            path: path.into(),
            keystore_id,
            root,
            rotation_us: rotation_days as i64 * 86_400_000_000,
            cache: Mutex::new(HashMap::new()),
            current: Mutex::new(HashMap::new()),
            write: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn provider(&self) -> String {
        self.provider.describe()
    }

    /// Change the rotation period (a configuration change; affects the next key a subject needs).
    pub fn set_rotation_days(&mut self, days: u32) {
        self.rotation_us = days as i64 * 86_400_000_000;
    }

    /// The store's root-derived keys (tags, key check, the root data key).
    pub fn root_keys(&self) -> Keys {
        Keys::from_master(ROOT_KEY_GENERATION, &self.root)
    }

    fn cache_put(&self, key: Arc<DataKey>) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(key.id, key);
    }

    fn info(&self, id: u32) -> Result<Option<(KeyInfo, Vec<u8>)>> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(KEYS).map_err(|e| self.err(e))?;
        let Some(v) = t.get(id).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        decode(id, v.value())
            .map(Some)
            .ok_or_else(|| self.err(format!("key {id} entry is damaged")))
    }

    /// The data key `id`, unwrapped (cached after the first use).
    pub fn key(&self, id: u32) -> std::result::Result<Arc<DataKey>, KeyLookup> {
        assert_ne!(id, ROOT_KEY_ID, "the root data key comes from root_keys()");
        if let Some(k) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(k.clone());
        }
        let (info, wrapped) = self
            .info(id)
            .map_err(KeyLookup::Failed)?
            .ok_or(KeyLookup::Missing)?;
        if let Some((at, req)) = info.destroyed {
            return Err(KeyLookup::Destroyed(at, req));
        }
        if let Some((at, req)) = info.lost {
            return Err(KeyLookup::Lost(at, req));
        }
        let raw = self
            .provider
            .unwrap(
                info.kek_generation,
                &wrapped,
                &self.key_aad(id, &info.subject),
            )
            .map_err(KeyLookup::Failed)?;
        let k = Arc::new(DataKey::new(id, &raw));
        self.cache_put(k.clone());
        Ok(k)
    }

    /// The key new records of `subject` are encrypted with at compliance time
    /// `now_us`: the subject's newest key, or a new one when it has none or
    /// its newest is a rotation period old.
    pub fn subject_key(&self, subject: &[u8; TAG_LEN], now_us: i64) -> Result<Arc<DataKey>> {
        let cached = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(subject)
            .copied();
        if let Some((id, created)) = cached {
            if now_us - created < self.rotation_us {
                if let Ok(k) = self.key(id) {
                    return Ok(k);
                }
            }
        }
        let current = {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let t = tx.open_table(CURRENT).map_err(|e| self.err(e))?;
            t.get(&subject[..])
                .map_err(|e| self.err(e))?
                .map(|v| v.value())
        };
        if let Some(id) = current {
            if let Some((info, _)) = self.info(id)? {
                if info.destroyed.is_none() && now_us - info.created_us < self.rotation_us {
                    self.remember(subject, id, info.created_us);
                    return self.key(id).map_err(|e| self.unusable(id, e));
                }
            }
        }
        self.new_subject_key(subject, now_us, current)
    }

    fn new_subject_key(
        &self,
        subject: &[u8; TAG_LEN],
        now_us: i64,
        seen: Option<u32>,
    ) -> Result<Arc<DataKey>> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        // Another producer may have made the key while this one waited.
        {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let t = tx.open_table(CURRENT).map_err(|e| self.err(e))?;
            let now = t
                .get(&subject[..])
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            if now != seen {
                if let Some(id) = now {
                    return self.key(id).map_err(|e| self.unusable(id, e));
                }
            }
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        random(&mut raw[..])?;
        let generation = self.provider.current_generation()?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let id;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let next = self.next_key_id(&meta)?;
            let keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
            let highest = keys
                .last()
                .map_err(|e| self.err(e))?
                .map(|(k, _)| k.value());
            drop(keys);
            // A key id is never issued twice, whatever next_key_id says.
            if let Some(h) = highest.filter(|&h| h >= next) {
                return Err(self.err(format!(
                    "next_key_id {next} is not above key {h}: the keystore is damaged"
                )));
            }
            id = next;
            let after = next
                .checked_add(1)
                .ok_or_else(|| self.err("2^32 data keys issued"))?;
            meta.insert("next_key_id", &after.to_le_bytes()[..])
                .map_err(|e| self.err(e))?;
            let info = KeyInfo {
                id,
                subject: *subject,
                created_us: now_us,
                kek_generation: generation,
                destroyed: None,
                lost: None,
            };
            let wrapped = self
                .provider
                .wrap(generation, &raw, &self.key_aad(id, subject))?;
            let mut keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
            keys.insert(id, &encode(&info, &wrapped)[..])
                .map_err(|e| self.err(e))?;
            let mut cur = tx.open_table(CURRENT).map_err(|e| self.err(e))?;
            cur.insert(&subject[..], id).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        let k = Arc::new(DataKey::new(id, &raw));
        self.cache_put(k.clone());
        self.remember(subject, id, now_us);
        Ok(k)
    }

    /// The `next_key_id` entry of the keystore's meta table.
    fn next_key_id(&self, meta: &redb::Table<&str, &[u8]>) -> Result<u32> {
        meta.get("next_key_id")
            .map_err(|e| self.err(e))?
            .and_then(|v| v.value().try_into().ok().map(u32::from_le_bytes))
            .ok_or_else(|| self.err("next_key_id is missing"))
    }

    fn unusable(&self, id: u32, e: KeyLookup) -> Error {
        match e {
            KeyLookup::Failed(e) => e,
            KeyLookup::Destroyed(..) => self.err(format!("key {id} was destroyed")),
            KeyLookup::Missing => self.err(format!("no data key {id}")),
            KeyLookup::Lost(..) => self.err(format!("data key {id} was lost")),
        }
    }

    fn remember(&self, subject: &[u8; TAG_LEN], id: u32, created_us: i64) {
        let mut c = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(*subject, (id, created_us));
    }

    /// Of `ids`, those the keystore holds no entry for (live, destroyed and
    /// lost keys all count as held), in order.
    pub fn missing(&self, ids: impl IntoIterator<Item = u32>) -> Result<Vec<u32>> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(KEYS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for id in ids {
            if t.get(id).map_err(|e| self.err(e))?.is_none() {
                out.push(id);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Make sure no id at or below `highest` is ever issued (the log names it).
    pub fn reserve_through(&self, highest: u32) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let next = self.next_key_id(&meta)?;
            if next > highest {
                return Ok(());
            }
            let after = highest
                .checked_add(1)
                .ok_or_else(|| self.err("2^32 data keys issued"))?;
            meta.insert("next_key_id", &after.to_le_bytes()[..])
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Record `ids` (keys the log names and the keystore lost) as lost, as
    /// acknowledged at `at_us` by audit record `audit_seq`: they count as held
    /// from now on, their records read as lost, and their ids are never issued.
    pub fn mark_lost(&self, ids: &[u32], at_us: i64, audit_seq: u64) -> Result<()> {
        let Some(&highest) = ids.iter().max() else {
            return Ok(());
        };
        {
            let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
            let tx = self.db.begin_write().map_err(|e| self.err(e))?;
            {
                let mut keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
                for &id in ids {
                    if keys.get(id).map_err(|e| self.err(e))?.is_some() {
                        continue;
                    }
                    let info = KeyInfo {
                        id,
                        subject: [0; TAG_LEN],
                        created_us: 0,
                        kek_generation: 0,
                        destroyed: None,
                        lost: Some((at_us, audit_seq)),
                    };
                    keys.insert(id, &encode(&info, &[])[..])
                        .map_err(|e| self.err(e))?;
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
        }
        self.reserve_through(highest)
    }

    /// Destroy again the live keys among `ids` (an erasure executed before
    /// this keystore's backup was taken, found live in it): returns those it
    /// destroyed. Their subjects' current key entries go too.
    pub(crate) fn destroy_again(&self, ids: &[u32], at_us: i64, request: u64) -> Result<Vec<u32>> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut done = Vec::new();
        {
            let mut keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
            let mut cur = tx.open_table(CURRENT).map_err(|e| self.err(e))?;
            for &id in ids {
                let Some((mut info, _)) = self.info(id)? else {
                    continue;
                };
                if info.destroyed.is_some() || info.lost.is_some() {
                    continue;
                }
                info.destroyed = Some((at_us, request));
                keys.insert(id, &encode(&info, &[])[..])
                    .map_err(|e| self.err(e))?;
                cur.remove(&info.subject[..]).map_err(|e| self.err(e))?;
                done.push((id, info.subject));
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        for (id, subject) in &done {
            cache.remove(id);
            current.remove(subject);
        }
        Ok(done.into_iter().map(|(id, _)| id).collect())
    }

    /// Every entry of `table`, decoded (read before the caller rewrites any).
    fn all_keys(
        &self,
        table: &impl ReadableTable<u32, &'static [u8]>,
    ) -> Result<Vec<(KeyInfo, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let id = k.value();
            out.push(
                decode(id, v.value())
                    .ok_or_else(|| self.err(format!("key {id} entry is damaged")))?,
            );
        }
        Ok(out)
    }

    /// Every key (live or destroyed), in id order.
    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(KEYS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (info, _) = decode(k.value(), v.value())
                .ok_or_else(|| self.err(format!("key {} entry is damaged", k.value())))?;
            out.push(info);
        }
        Ok(out)
    }

    /// Keys of one subject.
    pub fn subject_keys(&self, subject: &[u8; TAG_LEN]) -> Result<Vec<KeyInfo>> {
        Ok(self
            .keys()?
            .into_iter()
            .filter(|k| &k.subject == subject)
            .collect())
    }

    /// Re-wrap every stored key under a new KEK generation, then destroy the older generations.
    pub fn rotate_kek(&self) -> Result<KekRotation> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let from = self.provider.current_generation()?;
        let to = self.provider.new_generation()?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut rewrapped = 0u64;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let root = self
                .provider
                .wrap(to, &self.root, &Keyring::root_aad(&self.keystore_id))?;
            let mut r = to.to_le_bytes().to_vec();
            r.extend_from_slice(&root);
            meta.insert("root", &r[..]).map_err(|e| self.err(e))?;
            rewrapped += 1;
            let mut keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
            for (mut info, wrapped) in self.all_keys(&keys)? {
                let id = info.id;
                if info.destroyed.is_some() || info.lost.is_some() {
                    continue;
                }
                let aad = self.key_aad(id, &info.subject);
                let raw = self.provider.unwrap(info.kek_generation, &wrapped, &aad)?;
                let again = self.provider.wrap(to, &raw, &aad)?;
                info.kek_generation = to;
                keys.insert(id, &encode(&info, &again)[..])
                    .map_err(|e| self.err(e))?;
                rewrapped += 1;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        for g in self.provider.generations()? {
            if g < to {
                self.provider.destroy_generation(g)?;
            }
        }
        Ok(KekRotation {
            from_generation: from,
            to_generation: to,
            rewrapped,
        })
    }

    /// Destroy every key of `subject` (crypto-shredding), recording when and
    /// under which erasure request; then rotate the KEK so no old wrapped copy
    /// can be unwrapped. Returns the destroyed key ids.
    pub fn destroy_subject(
        &self,
        subject: &[u8; TAG_LEN],
        at_us: i64,
        request: u64,
    ) -> Result<Vec<u32>> {
        let destroyed = {
            let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
            let tx = self.db.begin_write().map_err(|e| self.err(e))?;
            let mut ids = Vec::new();
            {
                let mut keys = tx.open_table(KEYS).map_err(|e| self.err(e))?;
                for (mut info, _) in self.all_keys(&keys)? {
                    let id = info.id;
                    if &info.subject != subject || info.destroyed.is_some() || info.lost.is_some() {
                        continue;
                    }
                    info.destroyed = Some((at_us, request));
                    keys.insert(id, &encode(&info, &[])[..])
                        .map_err(|e| self.err(e))?;
                    ids.push(id);
                }
                let mut cur = tx.open_table(CURRENT).map_err(|e| self.err(e))?;
                cur.remove(&subject[..]).map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| self.err(e))?;
            let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for id in &ids {
                c.remove(id);
            }
            self.current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(subject);
            ids
        };
        self.rotate_kek()?;
        Ok(destroyed)
    }
}
