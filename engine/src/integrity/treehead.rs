//! Signed tree heads: the Merkle root at a tree size, signed with Ed25519,
//! stored in the log itself (conversation [`TREE_HEAD_CONVERSATION`]).
//!
//! The signing key is derived from the store's root key (which the key
//! provider's KEK protects); its public key goes out with every export, and
//! a regulator who pins it (`stele tree-head --public-key`) needs nothing else.
//! Tree heads are signed on demand, every `tree_head_interval`, and at every
//! zone seal (then also carrying the sealed zone's own Merkle root).
//!
//! Signed bytes: `"stele-sth-v1" ‖ store_id [16] ‖ tree_size u64 BE ‖ root [32] ‖
//! timestamp_us i64 BE ‖ 0` or `… ‖ 1 ‖ zone u32 BE ‖ first_seq u64 BE ‖ end_seq u64 BE ‖ zone_root [32]`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::crypto::keys::TagDomain;
use crate::error::{Error, Result};
use crate::format::frame::FrameKind;
use crate::format::merkle::{self, hex32, Hash};
use crate::format::record::{envelope, Record};
use crate::log::commit::{FrameFields, Shared, Submission};

/// The conversation id tree heads are filed under.
pub const TREE_HEAD_CONVERSATION: &str = "stele/tree-heads";

/// A sealed zone's own root, carried by the tree head signed at its seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneRoot {
    pub zone: u32,
    pub first_seq: u64,
    pub end_seq: u64,
    #[serde(with = "hex32")]
    pub root: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    pub store_id: String,
    pub tree_size: u64,
    #[serde(with = "hex32")]
    pub root: Hash,
    /// Compliance clock time of signing.
    pub timestamp_us: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<ZoneRoot>,
}

impl TreeHead {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Result<Vec<u8>> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(&self.store_id, &mut id)
            .map_err(|_| Error::invalid("tree head", "store id is not 32 hex digits"))?;
        let mut b = b"stele-sth-v1".to_vec();
        b.extend_from_slice(&id);
        b.extend_from_slice(&self.tree_size.to_be_bytes());
        b.extend_from_slice(&self.root);
        b.extend_from_slice(&self.timestamp_us.to_be_bytes());
        match &self.zone {
            None => b.push(0),
            Some(z) => {
                b.push(1);
                b.extend_from_slice(&z.zone.to_be_bytes());
                b.extend_from_slice(&z.first_seq.to_be_bytes());
                b.extend_from_slice(&z.end_seq.to_be_bytes());
                b.extend_from_slice(&z.root);
            }
        }
        Ok(b)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    #[serde(flatten)]
    pub head: TreeHead,
    /// Ed25519 public key (hex) of the store's tree-head signing key.
    pub public_key: String,
    /// Ed25519 signature (hex) over [`TreeHead::signed_bytes`].
    pub signature: String,
}

impl SignedTreeHead {
    /// Whether the signature verifies under the head's own public key, and,
    /// if `pinned` is given, whether that key is the pinned one.
    pub fn verify(&self, pinned: Option<&str>) -> bool {
        if pinned.is_some_and(|p| !p.eq_ignore_ascii_case(&self.public_key)) {
            return false;
        }
        let (Ok(pk), Ok(sig), Ok(msg)) = (
            hex::decode(&self.public_key),
            hex::decode(&self.signature),
            self.head.signed_bytes(),
        ) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, pk)
            .verify(&msg, &sig)
            .is_ok()
    }
}

/// The signing key, derived from the root key.
pub(crate) fn signing_key(shared: &Shared) -> Result<Ed25519KeyPair> {
    Ed25519KeyPair::from_seed_unchecked(&shared.keys.tree_head_seed()[..])
        .map_err(|_| Error::invalid("tree-head key", "cannot derive the signing key"))
}

/// The store's tree-head public key (hex).
pub(crate) fn public_key(shared: &Shared) -> Result<String> {
    Ok(hex::encode(signing_key(shared)?.public_key().as_ref()))
}

/// Sign the tree over every acknowledged record and append the signed head to the log.
pub(crate) fn sign(
    shared: &Shared,
    input: &Sender<Submission>,
    zone: Option<(u32, u64, u64)>,
) -> Result<SignedTreeHead> {
    let acked = shared.acked();
    if acked > 0 {
        shared.wait_indexed(acked - 1)?;
    }
    let size = acked;
    let view = shared.index.merkle()?;
    let root = merkle::root(&view, size)?;
    let zone = match zone {
        Some((z, first, end)) if end > first && end <= size => Some(ZoneRoot {
            zone: z,
            first_seq: first,
            end_seq: end,
            root: merkle::subtree_root(&view, first, end)?,
        }),
        _ => None,
    };
    drop(view);
    let head = TreeHead {
        store_id: hex::encode(shared.store_id),
        tree_size: size,
        root,
        timestamp_us: shared.clock.now_us(),
        zone,
    };
    let key = signing_key(shared)?;
    let sth = SignedTreeHead {
        signature: hex::encode(key.sign(&head.signed_bytes()?).as_ref()),
        public_key: hex::encode(key.public_key().as_ref()),
        head,
    };
    let body = serde_json::to_vec(&sth).map_err(|e| Error::invalid("tree head", e.to_string()))?;
    let record_id = format!("sth-{size}");
    let plaintext = envelope(
        [
            &record_id,
            TREE_HEAD_CONVERSATION,
            "",
            "",
            "integrity",
            "tree-head",
        ],
        &body,
    )?;
    let (done, rx) = oneshot::channel();
    let days = shared.longest_retention_days.load(Ordering::Acquire);
    let fields = FrameFields {
        kind: FrameKind::System,
        timestamp_us: crate::time::timestamp::now_us(),
        // Tree heads are kept as long as any record could be proved against them.
        retain_until_us: shared.clock.now_us().saturating_add(days * 86_400_000_000),
        record_tag: shared.keys.tag(TagDomain::RecordId, record_id.as_bytes()),
        conversation_tag: shared
            .keys
            .tag(TagDomain::Conversation, TREE_HEAD_CONVERSATION.as_bytes()),
        custodian_tag: [0; crate::crypto::keys::CUSTODIAN_TAG_LEN],
    };
    let sub = Submission::new(fields, shared.keys.data.clone(), plaintext).acknowledging(done);
    input.send(sub).map_err(|_| Error::Closed)?;
    rx.blocking_recv().map_err(|_| Error::Closed)??;
    Ok(sth)
}

/// The background signer: a tree head every `interval` while the log grows,
/// and one at every zone seal (with the zone's root).
pub(crate) fn notary(
    shared: Arc<Shared>,
    input: Sender<Submission>,
    seals: Receiver<(u32, u64, u64)>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) {
    let mut last = Instant::now();
    let mut signed_size = u64::MAX;
    while !stop.load(Ordering::Acquire) {
        let zone = match seals.recv_timeout(Duration::from_millis(100)) {
            Ok(z) => Some(z),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // The head's own frame is the one record a quiet log gains after signing.
        let acked = shared.acked();
        let due =
            last.elapsed() >= interval && (signed_size == u64::MAX || acked > signed_size + 1);
        if zone.is_none() && !due {
            continue;
        }
        if shared.poisoned().is_some() {
            continue;
        }
        match sign(&shared, &input, zone) {
            Ok(h) => {
                signed_size = h.head.tree_size;
                last = Instant::now();
            }
            Err(e) => tracing::warn!("signing a tree head failed: {e}"),
        }
    }
}

/// The signed tree head a stored record carries, if it is one (a record of
/// the tree-head conversation that is not a system record is not).
pub fn from_record(r: &Record) -> Option<Result<SignedTreeHead>> {
    if r.kind != FrameKind::System {
        return None;
    }
    Some(serde_json::from_slice(&r.body).map_err(|e| Error::Corrupt {
        at: r.location.clone(),
        reason: format!("tree head: {e}"),
    }))
}

/// Refuse a tree `size` larger than the `acked` records the log holds.
pub fn check_size(size: u64, acked: u64) -> Result<()> {
    if size > acked {
        return Err(Error::invalid(
            "tree size",
            format!("{size} is larger than the log ({acked} records)"),
        ));
    }
    Ok(())
}
