//! Keys: the key file of the embedded setup and the keys derived from it.
//!
//! The key file holds one 256-bit master key and its id. From it Stele
//! derives, with HMAC-SHA256 and fixed labels:
//! * the AES-256-GCM data key that encrypts frame payloads,
//! * the tag key that turns record ids, conversation ids and content hashes
//!   into keyed 128-bit tags (so the index and headers reveal no plaintext),
//! * the check key whose MAC over the store id, kept in the superblock, tells
//!   a wrong key apart from a damaged store before anything is modified.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub const TAG_LEN: usize = 16;
const KEY_FILE_HEADER: &str = "stele-key-v1";

/// Domains of keyed tags, so that equal bytes in different roles give unrelated tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TagDomain {
    RecordId = 1,
    Conversation = 2,
    MediaChunk = 3,
    Media = 4,
}

/// A master key and where it came from.
pub struct KeyFile {
    pub path: PathBuf,
    pub key_id: u32,
    master: Zeroizing<[u8; 32]>,
}

impl KeyFile {
    /// Generate a new random key and write it to `path` (which must not exist) with mode 0600.
    pub fn generate(path: &Path, key_id: u32) -> Result<KeyFile> {
        let mut master = Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut master[..]).map_err(
            |_| Error::KeyFile {
                path: path.into(),
                reason: "the system random generator failed".into(),
            },
        )?;
        let text = Zeroizing::new(format!(
            "# Stele master key. Keep it apart from the data and back it up: without it the archive cannot be read.\n{KEY_FILE_HEADER}\nkey-id: {key_id}\nkey: {}\n",
            hex::encode(&master[..])
        ));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::KeyFile {
                path: path.into(),
                reason: e.to_string(),
            })?;
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::KeyFile {
                path: path.into(),
                reason: format!("cannot create: {e}"),
            })?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::KeyFile {
                path: path.into(),
                reason: e.to_string(),
            })?;
        Ok(KeyFile {
            path: path.into(),
            key_id,
            master,
        })
    }

    /// Load a key file; refused if group or others can read it.
    pub fn load(path: &Path) -> Result<KeyFile> {
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
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(err(format!(
                "not a Stele key file (first line is not '{KEY_FILE_HEADER}')"
            )));
        }
        let mut key_id = None;
        let mut master = None;
        for (n, line) in lines.enumerate() {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| err(format!("line {} is not 'name: value'", n + 2)))?;
            match k.trim() {
                "key-id" => {
                    key_id = Some(
                        v.trim()
                            .parse::<u32>()
                            .map_err(|_| err("key-id is not a number".into()))?,
                    )
                }
                "key" => {
                    let bytes = Zeroizing::new(
                        hex::decode(v.trim()).map_err(|_| err("key is not hexadecimal".into()))?,
                    );
                    let arr: [u8; 32] = bytes[..]
                        .try_into()
                        .map_err(|_| err(format!("key is {} bytes, not 32", bytes.len())))?;
                    master = Some(Zeroizing::new(arr));
                }
                other => return Err(err(format!("unknown field '{other}'"))),
            }
        }
        Ok(KeyFile {
            path: path.into(),
            key_id: key_id.ok_or_else(|| err("no key-id line".into()))?,
            master: master.ok_or_else(|| err("no key line".into()))?,
        })
    }

    pub fn keys(&self) -> Keys {
        Keys::from_master(self.key_id, &self.master)
    }
}

fn derive(master: &[u8; 32], label: &str) -> Zeroizing<[u8; 32]> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// The working keys of a store.
pub struct Keys {
    pub key_id: u32,
    data: LessSafeKey,
    tag_mac: Hmac<Sha256>,
    check_key: Zeroizing<[u8; 32]>,
}

/// Authentication of a frame payload failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

impl Keys {
    pub fn from_master(key_id: u32, master: &[u8; 32]) -> Keys {
        let data_key = derive(master, "stele/v1/data-key");
        let tag_key = derive(master, "stele/v1/tag-key");
        let unbound =
            UnboundKey::new(&aead::AES_256_GCM, &data_key[..]).expect("32-byte AES-256 key");
        Keys {
            key_id,
            data: LessSafeKey::new(unbound),
            tag_mac: <Hmac<Sha256> as KeyInit>::new_from_slice(&tag_key[..])
                .expect("HMAC takes any key length"),
            check_key: derive(master, "stele/v1/check-key"),
        }
    }

    /// A keyed 128-bit tag of `bytes` in `domain`.
    pub fn tag(&self, domain: TagDomain, bytes: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.tag_mac.clone();
        mac.update(&[domain as u8]);
        mac.update(&self.key_id.to_le_bytes());
        mac.update(bytes);
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&mac.finalize().into_bytes()[..TAG_LEN]);
        out
    }

    /// The MAC stored in the superblock that proves this key belongs to `store_id`.
    pub fn key_check(&self, store_id: &[u8; 16]) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.check_key[..])
            .expect("HMAC takes any key length");
        mac.update(b"stele/v1/key-check");
        mac.update(store_id);
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac.finalize().into_bytes()[..16]);
        out
    }

    /// Encrypt `in_out` in place; returns the 16-byte GCM tag.
    pub fn seal(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> [u8; 16] {
        let tag = self
            .data
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .expect("AES-GCM sealing cannot fail for in-range lengths");
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Decrypt `ciphertext_and_tag` in place; returns the plaintext length.
    pub fn open(
        &self,
        nonce: [u8; 12],
        aad: &[u8],
        ciphertext_and_tag: &mut [u8],
    ) -> Result<usize, OpenError> {
        self.data
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                ciphertext_and_tag,
            )
            .map(|p| p.len())
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trip_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/stele.key");
        let k = KeyFile::generate(&path, 7).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let l = KeyFile::load(&path).unwrap();
        assert_eq!(l.key_id, 7);
        assert_eq!(k.keys().key_check(&[1; 16]), l.keys().key_check(&[1; 16]));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(KeyFile::load(&path), Err(Error::KeyFile { .. })));
        assert!(
            KeyFile::generate(&path, 1).is_err(),
            "never overwrites a key file"
        );
    }

    #[test]
    fn seal_open_and_tamper() {
        let keys = Keys::from_master(1, &[5; 32]);
        let mut buf = b"hello world".to_vec();
        let tag = keys.seal([1; 12], b"aad", &mut buf);
        let mut ct = buf.clone();
        ct.extend_from_slice(&tag);
        let mut ok = ct.clone();
        assert_eq!(keys.open([1; 12], b"aad", &mut ok).unwrap(), 11);
        assert_eq!(&ok[..11], b"hello world");
        let mut bad = ct.clone();
        assert!(keys.open([1; 12], b"aaD", &mut bad).is_err());
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(keys.open([1; 12], b"aad", &mut bad).is_err());
        assert_ne!(
            keys.tag(TagDomain::RecordId, b"x"),
            keys.tag(TagDomain::Conversation, b"x")
        );
    }
}
