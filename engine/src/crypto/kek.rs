//! Key-encryption keys (KEKs) and the providers that hold them.
//!
//! A KEK never encrypts records: it wraps the store's root key and the data
//! keys kept in the keystore ([`crate::crypto::keyring`]). KEKs come in numbered
//! generations; rotating the KEK creates a new generation, re-wraps every
//! stored key under it and destroys the old one, without touching the log.
//!
//! Providers:
//! * [`FileKek`]: the embedded default, a 0600 file (refused if group or
//!   others can read it), written atomically on rotation;
//! * [`Pkcs11Kek`]: an AES-256 key inside an HSM token, reached through
//!   PKCS#11 (`cryptoki`); the key is generated on the token as sensitive and
//!   non-extractable, and wrapping happens inside the token (AES-GCM).
//!
//! A wrapped key is `nonce (12) || ciphertext (32) || GCM tag (16)`, with
//! AAD naming what the key is for, so a wrapped key cannot be swapped for
//! another one in the keystore.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

// A wrapped key (docs/FORMAT.md, "Key-encryption key file"): the nonce,
// then the ciphertext of the key, then the GCM tag.
const WRAP_NONCE_LEN: usize = 12;
/// Where the ciphertext (followed by the tag) starts.
const WRAPPED_KEY_AT: usize = WRAP_NONCE_LEN;
const WRAP_TAG_AT: usize = WRAPPED_KEY_AT + 32;
/// Bytes of a wrapped 256-bit key.
pub const WRAPPED_LEN: usize = WRAP_TAG_AT + 16;
const _: () = assert!(WRAPPED_LEN == 12 + 32 + 16);

/// Something that holds key-encryption keys and wraps data keys with them.
pub trait KeyProvider: Send + Sync {
    /// What and where, for messages and `stele info`.
    fn describe(&self) -> String;
    /// The newest KEK generation (what new keys are wrapped with).
    fn current_generation(&self) -> Result<u32>;
    /// Wrap `key` under generation `generation`.
    fn wrap(&self, generation: u32, key: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>>;
    /// Unwrap a key wrapped under `generation`.
    fn unwrap(&self, generation: u32, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; 32]>>;
    /// Every generation the provider still holds.
    fn generations(&self) -> Result<Vec<u32>>;
    /// Create the next generation and return its number.
    fn new_generation(&self) -> Result<u32>;
    /// Destroy a generation: keys wrapped only under it become unrecoverable.
    fn destroy_generation(&self, generation: u32) -> Result<()>;
}

/// A provider shared with another user of the same token session (the
/// rollback anchor): one PKCS#11 context per process, never two.
impl<T: KeyProvider + ?Sized> KeyProvider for std::sync::Arc<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn current_generation(&self) -> Result<u32> {
        (**self).current_generation()
    }
    fn wrap(&self, generation: u32, key: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>> {
        (**self).wrap(generation, key, aad)
    }
    fn unwrap(&self, generation: u32, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        (**self).unwrap(generation, wrapped, aad)
    }
    fn generations(&self) -> Result<Vec<u32>> {
        (**self).generations()
    }
    fn new_generation(&self) -> Result<u32> {
        (**self).new_generation()
    }
    fn destroy_generation(&self, generation: u32) -> Result<()> {
        (**self).destroy_generation(generation)
    }
}

/// Fill `buf` from the system's secure random generator.
pub fn random(buf: &mut [u8]) -> Result<()> {
    random_for(buf, "key material")
}

/// Fill `buf` from the system's secure random generator, for `purpose`.
pub fn random_for(buf: &mut [u8], purpose: &'static str) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::Random { purpose })
}

const FILE_HEADER: &str = "stele-kek-v1";

/// KEK generations in a file: the embedded default.
pub struct FileKek {
    path: PathBuf,
    keks: Mutex<Vec<(u32, Zeroizing<[u8; 32]>)>>,
}

impl FileKek {
    fn err(&self, reason: impl Into<String>) -> Error {
        Error::KeyFile {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Create a new key file with generation 1 at `path`, which must not exist.
    pub fn create(path: &Path) -> Result<FileKek> {
        let mut k = Zeroizing::new([0u8; 32]);
        random(&mut k[..])?;
        let f = FileKek {
            path: path.into(),
            keks: Mutex::new(vec![(1, k)]),
        };
        if path.exists() {
            return Err(f.err("already exists; a key file is never overwritten"));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| f.err(e.to_string()))?;
        }
        f.save()?;
        Ok(f)
    }

    /// Load a key file; refused if group or others can read it.
    pub fn load(path: &Path) -> Result<FileKek> {
        let err = |reason: String| Error::KeyFile {
            path: path.into(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "permissions are {mode:o}; the key must be readable by its owner only (chmod 600)"
            )));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?,
        );
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(n, l)| (n + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        if lines.next().map(|(_, l)| l) != Some(FILE_HEADER) {
            return Err(err(format!(
                "not a Stele key file (first line is not '{FILE_HEADER}')"
            )));
        }
        let mut keks = Vec::new();
        for (n, line) in lines {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| err(format!("line {n} is not 'kek N: hex'")))?;
            let generation = k
                .trim()
                .strip_prefix("kek ")
                .and_then(|g| g.trim().parse::<u32>().ok())
                .ok_or_else(|| err(format!("line {n}: expected 'kek N', found '{}'", k.trim())))?;
            let bytes = Zeroizing::new(
                hex::decode(v.trim())
                    .map_err(|_| err(format!("line {n}: key is not hexadecimal")))?,
            );
            let arr: [u8; 32] = bytes[..]
                .try_into()
                .map_err(|_| err(format!("line {n}: key is {} bytes, not 32", bytes.len())))?;
            if keks.iter().any(|(g, _)| *g == generation) {
                return Err(err(format!(
                    "line {n}: generation {generation} appears twice"
                )));
            }
            keks.push((generation, Zeroizing::new(arr)));
        }
        if keks.is_empty() {
            return Err(err("no key-encryption key in the file".into()));
        }
        Ok(FileKek {
            path: path.into(),
            keks: Mutex::new(keks),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the file atomically: a 0600 temporary beside it, fsync, rename, fsync the directory.
    fn save(&self) -> Result<()> {
        let keks = self.keks.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = Zeroizing::new(format!(
            "# Stele key-encryption keys. Keep this file apart from the data and back it up:\n# without it the archive cannot be read.\n{FILE_HEADER}\n"
        ));
        for (g, k) in keks.iter() {
            text.push_str(&format!("kek {g}: {}\n", hex::encode(&k[..])));
        }
        let tmp = self.path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.err(format!("cannot create {}: {e}", tmp.display())))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| self.err(e.to_string()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.err(e.to_string()))?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.err(e.to_string()))?;
        }
        Ok(())
    }

    fn cipher(&self, generation: u32) -> Result<LessSafeKey> {
        let keks = self.keks.lock().unwrap_or_else(|p| p.into_inner());
        let k = keks
            .iter()
            .find(|(g, _)| *g == generation)
            .ok_or_else(|| self.err(format!("no key-encryption key of generation {generation}")))?;
        Ok(LessSafeKey::new(
            UnboundKey::new(&aead::AES_256_GCM, &k.1[..]).expect("32-byte key"),
        ))
    }
}

impl KeyProvider for FileKek {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn current_generation(&self) -> Result<u32> {
        let keks = self.keks.lock().unwrap_or_else(|p| p.into_inner());
        Ok(keks
            .iter()
            .map(|(g, _)| *g)
            .max()
            .expect("at least one KEK"))
    }

    fn wrap(&self, generation: u32, key: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>> {
        let c = self.cipher(generation)?;
        let mut nonce = [0u8; WRAP_NONCE_LEN];
        random(&mut nonce)?;
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(key);
        let tag = c
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[WRAPPED_KEY_AT..],
            )
            .map_err(|_| self.err("wrapping failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    fn unwrap(&self, generation: u32, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        if wrapped.len() != WRAPPED_LEN {
            return Err(self.err(format!(
                "a wrapped key is {} bytes, not {WRAPPED_LEN}",
                wrapped.len()
            )));
        }
        let c = self.cipher(generation)?;
        let nonce: [u8; WRAP_NONCE_LEN] = wrapped[..WRAPPED_KEY_AT].try_into().expect("12");
        let mut buf = Zeroizing::new(wrapped[WRAPPED_KEY_AT..].to_vec());
        let plain = c
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf[..],
            )
            .map_err(|_| {
                self.err(format!(
                    "a wrapped key does not authenticate under generation {generation}"
                ))
            })?;
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(plain);
        Ok(out)
    }

    fn generations(&self) -> Result<Vec<u32>> {
        let keks = self.keks.lock().unwrap_or_else(|p| p.into_inner());
        Ok(keks.iter().map(|(g, _)| *g).collect())
    }

    fn new_generation(&self) -> Result<u32> {
        let g = self.current_generation()? + 1;
        let mut k = Zeroizing::new([0u8; 32]);
        random(&mut k[..])?;
        self.keks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((g, k));
        self.save()?;
        Ok(g)
    }

    fn destroy_generation(&self, generation: u32) -> Result<()> {
        {
            let mut keks = self.keks.lock().unwrap_or_else(|p| p.into_inner());
            if keks.len() == 1 {
                return Err(self.err("refusing to destroy the only key-encryption key"));
            }
            keks.retain(|(g, _)| *g != generation);
        }
        self.save()
    }
}

/// Where to find a KEK in an HSM.
#[derive(Debug, Clone)]
pub struct Pkcs11Config {
    pub module: PathBuf,
    pub token_label: String,
    pub pin: Zeroizing<String>,
}

/// KEK generations as AES-256 keys inside a PKCS#11 token.
pub struct Pkcs11Kek {
    describe: String,
    session: Mutex<cryptoki::session::Session>,
    // Kept alive for the session's sake; finalised when dropped.
    _context: cryptoki::context::Pkcs11,
}

const KEK_LABEL_PREFIX: &str = "stele-kek-";

impl Pkcs11Kek {
    /// Open the token labelled `config.token_label` and log in with the PIN.
    pub fn open(config: &Pkcs11Config) -> Result<Pkcs11Kek> {
        use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
        use cryptoki::session::UserType;
        use cryptoki::types::AuthPin;
        let describe = format!(
            "pkcs11 token {:?} via {}",
            config.token_label,
            config.module.display()
        );
        let err = |reason: String| Error::KeyProvider {
            provider: describe.clone(),
            reason,
        };
        if !config.module.exists() {
            return Err(err(format!(
                "the PKCS#11 module {} does not exist",
                config.module.display()
            )));
        }
        let ctx =
            Pkcs11::new(&config.module).map_err(|e| err(format!("cannot load the module: {e}")))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            // Another handle in this process initialised the module already.
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::CryptokiAlreadyInitialized,
                _,
            )) => {}
            Err(e) => return Err(err(format!("cannot initialise the module: {e}"))),
        }
        let slots = ctx
            .get_slots_with_initialized_token()
            .map_err(|e| err(format!("cannot list slots: {e}")))?;
        let mut found = None;
        let mut labels = Vec::new();
        for s in slots {
            if let Ok(info) = ctx.get_token_info(s) {
                let label = info.label().trim().to_string();
                if label == config.token_label {
                    found = Some(s);
                    break;
                }
                labels.push(label);
            }
        }
        let slot = found.ok_or_else(|| {
            err(format!(
                "no initialised token labelled {:?} (tokens present: {})",
                config.token_label,
                if labels.is_empty() {
                    "none".to_string()
                } else {
                    labels.join(", ")
                }
            ))
        })?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| err(format!("cannot open a session: {e}")))?;
        let pin = AuthPin::new(config.pin.as_str().into());
        session.login(UserType::User, Some(&pin)).map_err(|e| {
            use cryptoki::error::{Error as Ck, RvError};
            match e {
                Ck::Pkcs11(RvError::PinIncorrect, _) => {
                    err("wrong PIN for the token (CKR_PIN_INCORRECT)".into())
                }
                Ck::Pkcs11(RvError::PinLocked, _) => {
                    err("the token's user PIN is locked (CKR_PIN_LOCKED)".into())
                }
                other => err(format!("login failed: {other}")),
            }
        })?;
        Ok(Pkcs11Kek {
            describe,
            session: Mutex::new(session),
            _context: ctx,
        })
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::KeyProvider {
            provider: self.describe.clone(),
            reason: reason.into(),
        }
    }

    /// Every KEK on the token: (generation, handle).
    fn keks(&self) -> Result<Vec<(u32, cryptoki::object::ObjectHandle)>> {
        use cryptoki::object::{Attribute, AttributeType, ObjectClass};
        let s = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let handles = s
            .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
            .map_err(|e| self.err(format!("cannot list keys: {e}")))?;
        let mut out = Vec::new();
        for h in handles {
            let attrs = s
                .get_attributes(h, &[AttributeType::Label])
                .map_err(|e| self.err(format!("cannot read a key label: {e}")))?;
            for a in attrs {
                if let Attribute::Label(l) = a {
                    if let Some(g) = String::from_utf8_lossy(&l)
                        .strip_prefix(KEK_LABEL_PREFIX)
                        .and_then(|g| g.parse::<u32>().ok())
                    {
                        out.push((g, h));
                    }
                }
            }
        }
        Ok(out)
    }

    fn handle(&self, generation: u32) -> Result<cryptoki::object::ObjectHandle> {
        self.keks()?
            .into_iter()
            .find(|(g, _)| *g == generation)
            .map(|(_, h)| h)
            .ok_or_else(|| {
                self.err(format!(
                    "no key-encryption key of generation {generation} ({KEK_LABEL_PREFIX}{generation}) on the token"
                ))
            })
    }

    fn generate(&self, generation: u32) -> Result<()> {
        use cryptoki::mechanism::Mechanism;
        use cryptoki::object::Attribute;
        let s = self.session.lock().unwrap_or_else(|p| p.into_inner());
        s.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::ValueLen(32.into()),
                Attribute::Label(format!("{KEK_LABEL_PREFIX}{generation}").into_bytes()),
            ],
        )
        .map_err(|e| self.err(format!("cannot generate a key on the token: {e}")))?;
        Ok(())
    }
}

impl KeyProvider for Pkcs11Kek {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn current_generation(&self) -> Result<u32> {
        match self.keks()?.into_iter().map(|(g, _)| g).max() {
            Some(g) => Ok(g),
            None => {
                // A fresh token: its first KEK is created here, inside the token.
                self.generate(1)?;
                Ok(1)
            }
        }
    }

    fn wrap(&self, generation: u32, key: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>> {
        use cryptoki::mechanism::aead::GcmParams;
        use cryptoki::mechanism::Mechanism;
        let h = self.handle(generation)?;
        let mut iv = [0u8; WRAP_NONCE_LEN];
        random(&mut iv)?;
        let nonce = iv;
        let params = GcmParams::new(&mut iv, aad, 128.into())
            .map_err(|e| self.err(format!("GCM parameters: {e}")))?;
        let s = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let ct = s
            .encrypt(&Mechanism::AesGcm(params), h, key)
            .map_err(|e| self.err(format!("wrapping on the token failed: {e}")))?;
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        if out.len() != WRAPPED_LEN {
            return Err(self.err(format!("the token returned {} wrapped bytes", ct.len())));
        }
        Ok(out)
    }

    fn unwrap(&self, generation: u32, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        use cryptoki::mechanism::aead::GcmParams;
        use cryptoki::mechanism::Mechanism;
        if wrapped.len() != WRAPPED_LEN {
            return Err(self.err(format!(
                "a wrapped key is {} bytes, not {WRAPPED_LEN}",
                wrapped.len()
            )));
        }
        let h = self.handle(generation)?;
        let mut iv: [u8; WRAP_NONCE_LEN] = wrapped[..WRAPPED_KEY_AT].try_into().expect("12");
        let params = GcmParams::new(&mut iv, aad, 128.into())
            .map_err(|e| self.err(format!("GCM parameters: {e}")))?;
        let s = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let plain = Zeroizing::new(
            s.decrypt(&Mechanism::AesGcm(params), h, &wrapped[WRAPPED_KEY_AT..])
                .map_err(|_| {
                    self.err(format!(
                        "a wrapped key does not authenticate under generation {generation}"
                    ))
                })?,
        );
        let mut out = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(self.err("an unwrapped key is not 32 bytes"));
        }
        out.copy_from_slice(&plain);
        Ok(out)
    }

    fn generations(&self) -> Result<Vec<u32>> {
        Ok(self.keks()?.into_iter().map(|(g, _)| g).collect())
    }

    fn new_generation(&self) -> Result<u32> {
        let g = self.current_generation()? + 1;
        self.generate(g)?;
        Ok(g)
    }

    fn destroy_generation(&self, generation: u32) -> Result<()> {
        let h = self.handle(generation)?;
        if self.keks()?.len() == 1 {
            return Err(self.err("refusing to destroy the only key-encryption key"));
        }
        let s = self.session.lock().unwrap_or_else(|p| p.into_inner());
        s.destroy_object(h)
            .map_err(|e| self.err(format!("cannot destroy generation {generation}: {e}")))
    }
}

/// Rollback anchors kept on the token as data objects (`stele-anchor-<store id>`):
/// private, token objects, readable only after logging in with the PIN.
impl crate::crypto::anchor::AnchorPlace for Pkcs11Kek {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn read(&self, store_id: &[u8; 16]) -> Result<Option<Vec<u8>>> {
        use cryptoki::object::{Attribute, AttributeType};
        let s = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let found = s
            .find_objects(&anchor_template(store_id))
            .map_err(|e| self.err(format!("cannot look for the rollback anchor: {e}")))?;
        let Some(&h) = found.first() else {
            return Ok(None);
        };
        let attrs = s
            .get_attributes(h, &[AttributeType::Value])
            .map_err(|e| self.err(format!("cannot read the rollback anchor: {e}")))?;
        Ok(attrs.into_iter().find_map(|a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        }))
    }

    fn write(&self, store_id: &[u8; 16], bytes: &[u8]) -> Result<()> {
        use cryptoki::object::Attribute;
        let s = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let template = anchor_template(store_id);
        let found = s
            .find_objects(&template)
            .map_err(|e| self.err(format!("cannot look for the rollback anchor: {e}")))?;
        match found.first() {
            Some(&h) => s
                .update_attributes(h, &[Attribute::Value(bytes.to_vec())])
                .map_err(|e| self.err(format!("cannot update the rollback anchor: {e}"))),
            None => {
                let mut create = template;
                create.extend([
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Value(bytes.to_vec()),
                ]);
                s.create_object(&create)
                    .map(|_| ())
                    .map_err(|e| self.err(format!("cannot create the rollback anchor: {e}")))
            }
        }
    }
}

fn anchor_template(store_id: &[u8; 16]) -> Vec<cryptoki::object::Attribute> {
    use cryptoki::object::{Attribute, ObjectClass};
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Label(format!("stele-anchor-{}", hex::encode(store_id)).into_bytes()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_kek_generations_wrap_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/kek.key");
        let f = FileKek::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let key = [9u8; 32];
        let w1 = f.wrap(1, &key, b"what").unwrap();
        assert_eq!(w1.len(), WRAPPED_LEN);
        assert_eq!(*f.unwrap(1, &w1, b"what").unwrap(), key);
        assert!(f.unwrap(1, &w1, b"other").is_err(), "AAD binds the purpose");
        assert_eq!(f.new_generation().unwrap(), 2);
        let reloaded = FileKek::load(&path).unwrap();
        assert_eq!(reloaded.current_generation().unwrap(), 2);
        assert_eq!(*reloaded.unwrap(1, &w1, b"what").unwrap(), key);
        reloaded.destroy_generation(1).unwrap();
        assert!(FileKek::load(&path)
            .unwrap()
            .unwrap(1, &w1, b"what")
            .is_err());
        assert!(
            reloaded.destroy_generation(2).is_err(),
            "never the last KEK"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(FileKek::load(&path), Err(Error::KeyFile { .. })));
        assert!(
            FileKek::create(&path).is_err(),
            "never overwrites a key file"
        );
    }
}
