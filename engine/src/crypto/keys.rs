//! Keys: the store's root keys and the data keys that encrypt frames.
//!
//! A store has one 256-bit root key (kept wrapped by the key-encryption key
//! in the keystore, see [`crate::crypto::keyring`]). From it Stele derives, with
//! HMAC-SHA256 and fixed labels:
//! * the AES-256-GCM data key with id 0, which encrypts the frames that
//!   belong to no data subject (the store's own audit records),
//! * the tag key that turns record ids, conversation ids and content hashes
//!   into keyed 128-bit tags (so the index and headers reveal no plaintext),
//! * the check key whose MAC over the store id, kept in the superblock, tells
//!   a wrong key apart from a damaged store before anything is modified.

use hmac::{Hmac, KeyInit, Mac};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroizing;

pub const TAG_LEN: usize = 16;
/// Bytes of the custodian tag carried in a frame header.
pub const CUSTODIAN_TAG_LEN: usize = 12;
/// The id of the root data key in frame headers; data subjects' keys count from 1.
pub const ROOT_KEY_ID: u32 = 0;

/// Domains of keyed tags, so that equal bytes in different roles give unrelated tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TagDomain {
    RecordId = 1,
    Conversation = 2,
    MediaChunk = 3,
    Media = 4,
    Custodian = 5,
    /// Data subjects in the keystore (a conversation or custodian).
    Subject = 6,
}

fn derive(master: &[u8; 32], label: &str) -> Zeroizing<[u8; 32]> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// An AES-256-GCM data key and its id (the `data_key_id` frames carry).
///
/// The raw key bytes are zeroized as soon as the cipher is keyed; the
/// expanded key schedule lives inside `ring` until the key is dropped.
pub struct DataKey {
    pub id: u32,
    key: LessSafeKey,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({})", self.id)
    }
}

impl DataKey {
    pub fn new(id: u32, bytes: &[u8; 32]) -> DataKey {
        let unbound = UnboundKey::new(&aead::AES_256_GCM, &bytes[..]).expect("32-byte AES-256 key");
        DataKey {
            id,
            key: LessSafeKey::new(unbound),
        }
    }

    /// Encrypt `in_out` in place; returns the 16-byte GCM tag.
    pub fn seal(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> [u8; 16] {
        let tag = self
            .key
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
        self.key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                ciphertext_and_tag,
            )
            .map(|p| p.len())
            .map_err(|_| OpenError)
    }
}

/// The working keys of a store, derived from its root key.
#[derive(Clone)]
pub struct Keys {
    /// The root key's generation in the keystore: kept in the superblock
    /// beside the key check, and part of every tag.
    pub root_key_generation: u32,
    pub data: std::sync::Arc<DataKey>,
    tag_mac: Hmac<Sha256>,
    check_key: Zeroizing<[u8; 32]>,
    tree_head_seed: Zeroizing<[u8; 32]>,
}

/// Authentication of a frame payload failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

impl Keys {
    pub fn from_master(root_key_generation: u32, master: &[u8; 32]) -> Keys {
        let data_key = derive(master, "stele/v1/data-key");
        let tag_key = derive(master, "stele/v1/tag-key");
        Keys {
            root_key_generation,
            data: std::sync::Arc::new(DataKey::new(ROOT_KEY_ID, &data_key)),
            tag_mac: <Hmac<Sha256> as KeyInit>::new_from_slice(&tag_key[..])
                .expect("HMAC takes any key length"),
            check_key: derive(master, "stele/v1/check-key"),
            tree_head_seed: derive(master, "stele/v1/tree-head-signing-key"),
        }
    }

    /// The tag of the id `id` in `domain`, or all zeros for no id (the
    /// index's "none" in a frame header).
    pub fn tag_or_zero(&self, domain: TagDomain, id: &str) -> [u8; TAG_LEN] {
        if id.is_empty() {
            [0; TAG_LEN]
        } else {
            self.tag(domain, id.as_bytes())
        }
    }

    /// A keyed 128-bit tag of `bytes` in `domain`.
    pub fn tag(&self, domain: TagDomain, bytes: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.tag_mac.clone();
        mac.update(&[domain as u8]);
        mac.update(&self.root_key_generation.to_le_bytes());
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

    /// The Ed25519 seed of the tree-head signing key.
    pub(crate) fn tree_head_seed(&self) -> &Zeroizing<[u8; 32]> {
        &self.tree_head_seed
    }

    /// A keyed tag of a custodian id, short enough for the frame header.
    pub fn custodian_tag(&self, custodian: &str) -> [u8; CUSTODIAN_TAG_LEN] {
        if custodian.is_empty() {
            return [0; CUSTODIAN_TAG_LEN];
        }
        let t = self.tag(TagDomain::Custodian, custodian.as_bytes());
        t[..CUSTODIAN_TAG_LEN].try_into().expect("12 bytes")
    }

    /// The key that authenticates values the store keeps about itself (the compliance clock).
    pub fn state_mac(&self, label: &[u8], bytes: &[u8]) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.check_key[..])
            .expect("HMAC takes any key length");
        mac.update(label);
        mac.update(bytes);
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac.finalize().into_bytes()[..16]);
        out
    }
}

/// Compare two MACs without a timing signal of where they first differ.
pub fn equal_ct(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let keys = Keys::from_master(1, &[5; 32]);
        let data = &keys.data;
        let mut buf = b"hello world".to_vec();
        let tag = data.seal([1; 12], b"aad", &mut buf);
        let mut ct = buf.clone();
        ct.extend_from_slice(&tag);
        let mut ok = ct.clone();
        assert_eq!(data.open([1; 12], b"aad", &mut ok).unwrap(), 11);
        assert_eq!(&ok[..11], b"hello world");
        let mut bad = ct.clone();
        assert!(data.open([1; 12], b"aaD", &mut bad).is_err());
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(data.open([1; 12], b"aad", &mut bad).is_err());
        assert_ne!(
            keys.tag(TagDomain::RecordId, b"x"),
            keys.tag(TagDomain::Conversation, b"x")
        );
    }
}
