//! Export bundles for regulators, and the offline verifier.
//!
//! A bundle is one JSON document: a freshly signed tree head, and for each
//! exported record its plaintext envelope (base64), the leaf it commits to,
//! and its inclusion proof; plus consistency proofs from earlier tree heads
//! the store signed, so whoever kept one of those can check that the log
//! only grew. [`verify_bundle`] needs no key, no server and no network:
//! * each envelope's salted hash equals its leaf's content hash;
//! * each leaf is included in the signed tree head;
//! * the tree head's Ed25519 signature verifies (under a pinned key if given);
//! * every consistency proof links its earlier head to the bundle's head,
//!   and, if the verifier supplies the head it kept, that one is among them.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::frame::{self, FrameKind};
use crate::format::merkle::{self, Hash, LeafData};
use crate::format::record::open_envelope;
use crate::format::record::Record;
use crate::integrity::treehead::{SignedTreeHead, TreeHead};

pub const BUNDLE_FORMAT: &str = "stele-bundle-v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedRecord {
    pub leaf: LeafData,
    /// The plaintext envelope (base64); absent when the record's key was destroyed by an erasure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<String>,
    /// Convenience copies of the envelope's fields (the envelope is authoritative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custodian: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_utf8: Option<String>,
    #[serde(default)]
    pub erased: bool,
    /// Why the content is not in the bundle although not erased (its data
    /// key was lost with the keystore, or the keystore lacks it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// Inclusion proof (hex hashes) in the bundle's tree head.
    pub proof: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consistency {
    pub from: SignedTreeHead,
    pub proof: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    pub tree_head: SignedTreeHead,
    pub records: Vec<ExportedRecord>,
    pub consistency: Vec<Consistency>,
}

/// What the offline verifier found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BundleReport {
    pub tree_size: u64,
    pub records: u64,
    pub with_content: u64,
    pub erased: u64,
    /// Records whose content could not be exported (their key is lost or missing).
    pub unreadable: u64,
    pub consistency_checked: u64,
    pub previous_head_linked: bool,
}

fn hexes(v: &[Hash]) -> Vec<String> {
    v.iter().map(hex::encode).collect()
}

fn unhex(v: &[String], what: &str) -> std::result::Result<Vec<Hash>, String> {
    v.iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out)
                .map_err(|_| format!("{what}: {h:?} is not a 32-byte hex hash"))?;
            Ok(out)
        })
        .collect()
}

/// What a bundle is built from: the archive's reads, proofs and tree heads.
pub trait BundleSource {
    /// A new signed tree head over every acknowledged record, stored in the log.
    fn sign_tree_head(&self) -> Result<SignedTreeHead>;
    /// The stored tree heads, oldest first.
    fn tree_heads(&self, limit: usize) -> Result<Vec<SignedTreeHead>>;
    /// The stored bytes of frame `seq`, checked but not decrypted.
    fn frame_bytes(&self, seq: u64) -> Result<(frame::FrameHeader, Vec<u8>)>;
    /// The record at `seq` and its plaintext envelope.
    fn envelope_of(&self, seq: u64) -> Result<(Vec<u8>, Record)>;
    fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>>;
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>>;
}

/// The leaf of record `seq`, read from the frame itself (no key needed).
pub fn leaf_data(src: &impl BundleSource, seq: u64) -> Result<LeafData> {
    let (header, bytes) = src.frame_bytes(seq)?;
    Ok(LeafData::of(&header, frame::hash(&bytes)))
}

/// Build a bundle with records `seqs`, a new signed tree head, and
/// consistency proofs from up to `history` earlier tree heads.
pub fn bundle(src: &impl BundleSource, seqs: &[u64], history: usize) -> Result<Bundle> {
    let head = src.sign_tree_head()?;
    let size = head.head.tree_size;
    let mut records = Vec::new();
    for &seq in seqs {
        records.push(exported(src, seq, size)?);
    }
    let mut consistency = Vec::new();
    let mut earlier = src.tree_heads(usize::MAX)?;
    earlier.retain(|h| h.head.tree_size > 0 && h.head.tree_size <= size && h != &head);
    let skip = earlier.len().saturating_sub(history);
    for h in earlier.into_iter().skip(skip) {
        let proof = hexes(&src.consistency_proof(h.head.tree_size, size)?);
        consistency.push(Consistency { from: h, proof });
    }
    Ok(Bundle {
        format: BUNDLE_FORMAT.into(),
        tree_head: head,
        records,
        consistency,
    })
}

/// Record `seq` as a bundle carries it, proved in the tree of `size` records.
fn exported(src: &impl BundleSource, seq: u64, size: u64) -> Result<ExportedRecord> {
    let mut r = ExportedRecord {
        leaf: leaf_data(src, seq)?,
        envelope: None,
        record_id: None,
        conversation_id: None,
        custodian: None,
        body_utf8: None,
        erased: false,
        unreadable: None,
        proof: hexes(&src.inclusion_proof(seq, size)?),
    };
    match src.envelope_of(seq) {
        Ok((env, rec)) => {
            r.envelope = Some(base64::engine::general_purpose::STANDARD.encode(&env));
            r.record_id = Some(rec.record_id);
            r.conversation_id = Some(rec.conversation_id);
            r.custodian = Some(rec.custodian);
            r.body_utf8 = String::from_utf8(rec.body).ok();
        }
        Err(Error::Erased { .. }) => r.erased = true,
        Err(e) if e.key_unavailable() => r.unreadable = Some(e.to_string()),
        Err(e) => return Err(e),
    }
    Ok(r)
}

/// Check a bundle with no key, no server and no network. `pinned_key`: the
/// store's tree-head public key as the verifier knows it; `previous`: a tree
/// head the verifier kept from before, which the bundle must prove the log
/// grew from.
pub fn verify_bundle(
    bundle: &Bundle,
    pinned_key: Option<&str>,
    previous: Option<&SignedTreeHead>,
) -> std::result::Result<BundleReport, String> {
    if bundle.format != BUNDLE_FORMAT {
        return Err(format!("unknown bundle format {:?}", bundle.format));
    }
    let head = &bundle.tree_head;
    if !head.verify(pinned_key) {
        return Err(match pinned_key {
            Some(_) if !pinned_key.is_some_and(|p| p.eq_ignore_ascii_case(&head.public_key)) => {
                "the tree head is signed by another key than the pinned one".into()
            }
            _ => "the tree head's signature does not verify".into(),
        });
    }
    let size = head.head.tree_size;
    let mut report = BundleReport {
        tree_size: size,
        ..Default::default()
    };
    for (i, r) in bundle.records.iter().enumerate() {
        let at = format!("record {i} (seq {})", r.leaf.seq);
        match &r.envelope {
            Some(_) if r.erased || r.unreadable.is_some() => {
                return Err(format!(
                    "{at}: marked erased or unreadable yet carries content"
                ))
            }
            Some(b64) => {
                let env = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| format!("{at}: envelope is not base64"))?;
                let kind = r.leaf.kind();
                if kind == Some(FrameKind::MediaChunk) {
                    return Err(format!(
                        "{at}: media chunks are verified through their blob"
                    ));
                }
                if frame::content_hash(&env) != r.leaf.content_hash {
                    return Err(format!(
                        "{at}: the plaintext does not match the content hash the log recorded"
                    ));
                }
                let e = open_envelope(&env).map_err(|w| format!("{at}: {w}"))?;
                let same = |a: &Option<String>, b: &str| a.as_deref().is_none_or(|x| x == b);
                if !same(&r.record_id, &e.record_id)
                    || !same(&r.conversation_id, &e.conversation_id)
                    || !same(&r.custodian, &e.custodian)
                    || r.body_utf8
                        .as_deref()
                        .is_some_and(|b| b.as_bytes() != e.body.as_slice())
                {
                    return Err(format!(
                        "{at}: the readable fields differ from the envelope"
                    ));
                }
                report.with_content += 1;
            }
            None if r.erased => report.erased += 1,
            None if r.unreadable.is_some() => report.unreadable += 1,
            None => {
                return Err(format!(
                    "{at}: no envelope and not marked erased or unreadable"
                ))
            }
        }
        let proof = unhex(&r.proof, &at)?;
        if !merkle::verify_inclusion(&r.leaf.hash(), r.leaf.seq, size, &proof, &head.head.root) {
            return Err(format!(
                "{at}: not included in the signed tree head of size {size}"
            ));
        }
        report.records += 1;
    }
    for c in &bundle.consistency {
        let from = &c.from;
        let at = format!("consistency from tree size {}", from.head.tree_size);
        if from.head.store_id != head.head.store_id || !from.verify(Some(&head.public_key)) {
            return Err(format!(
                "{at}: the earlier tree head is not signed by this store's key"
            ));
        }
        let proof = unhex(&c.proof, &at)?;
        if !merkle::verify_consistency(
            from.head.tree_size,
            size,
            &from.head.root,
            &head.head.root,
            &proof,
        ) {
            return Err(format!(
                "{at}: the log did not only grow (consistency proof fails)"
            ));
        }
        report.consistency_checked += 1;
        if previous.is_some_and(|p| p.head == from.head) {
            report.previous_head_linked = true;
        }
    }
    if let Some(p) = previous {
        if !p.verify(Some(&head.public_key)) {
            return Err("the kept tree head is not signed by this store's key".into());
        }
        if p.head == head.head {
            report.previous_head_linked = true;
        }
        if !report.previous_head_linked {
            return Err(unlinked_previous(&p.head, &head.head));
        }
    }
    Ok(report)
}

/// Why a kept tree head is not linked to the bundle's: the log is shorter
/// than it or forked from it, or the bundle left out the proof.
fn unlinked_previous(kept: &TreeHead, now: &TreeHead) -> String {
    if kept.tree_size > now.tree_size {
        format!(
            "the log is shorter than the tree head you kept ({} records, the bundle's log {}): it was rolled back",
            kept.tree_size, now.tree_size
        )
    } else if kept.tree_size == now.tree_size {
        format!(
            "the log does not contain the tree head you kept (same size {}, another root): it was forked",
            kept.tree_size
        )
    } else {
        format!(
            "the bundle holds no proof that its log contains the tree head you kept (size {}): export again with --previous-tree-head; if the store cannot prove it, its log was rolled back or forked",
            kept.tree_size
        )
    }
}
