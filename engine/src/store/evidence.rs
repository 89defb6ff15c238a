//! What the store gives verifiers: tree heads signed into the log, the kept
//! ones, Merkle proofs, and export bundles. The formats, the signer and the
//! bundle builder are the integrity layer's (`integrity::treehead`,
//! `integrity::export`); this is the store's face of them.

use crate::error::Result;
use crate::format::frame::FrameHeader;
use crate::format::merkle::LeafData;
use crate::format::merkle::{self, Hash};
use crate::format::record::Record;
use crate::integrity::export::{self, Bundle, BundleSource};
use crate::integrity::treehead::{self, SignedTreeHead, TREE_HEAD_CONVERSATION};
use crate::store::Store;

impl Store {
    /// Sign a tree head over every acknowledged record now, and store it in the log.
    pub fn sign_tree_head(&self) -> Result<SignedTreeHead> {
        let input = self.input_sender()?;
        treehead::sign(&self.shared, &input, None)
    }

    /// The store's tree-head public key (Ed25519, hex): what verifiers pin.
    pub fn tree_head_public_key(&self) -> Result<String> {
        treehead::public_key(&self.shared)
    }

    /// Signed tree heads stored in the log, oldest first (at most `limit`).
    pub fn tree_heads(&self, limit: usize) -> Result<Vec<SignedTreeHead>> {
        self.by_conversation(TREE_HEAD_CONVERSATION, limit)?
            .iter()
            .filter_map(treehead::from_record)
            .collect()
    }

    /// Every signed tree head that can still be read; one whose frame is
    /// damaged is left out (a scrub reports the frame itself).
    pub(crate) fn readable_tree_heads(&self) -> Result<Vec<SignedTreeHead>> {
        let listed = self.listing(TREE_HEAD_CONVERSATION, false, usize::MAX)?;
        Ok(listed
            .into_iter()
            .filter_map(|(_, r)| r.ok())
            .filter_map(|r| treehead::from_record(&r)?.ok())
            .collect())
    }

    /// The Merkle root of the first `size` records.
    pub fn merkle_root(&self, size: u64) -> Result<Hash> {
        self.sync_index()?;
        merkle::root(&self.shared.index.merkle()?, size)
    }

    /// The inclusion proof of record `seq` in the tree of `size` records.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>> {
        self.sync_index()?;
        treehead::check_size(size, self.shared.acked())?;
        merkle::inclusion_proof(&self.shared.index.merkle()?, seq, size)
    }

    /// The consistency proof between the trees of `old` and `new` records.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        self.sync_index()?;
        treehead::check_size(new, self.shared.acked())?;
        merkle::consistency_proof(&self.shared.index.merkle()?, old, new)
    }
}

impl Store {
    /// The leaf of record `seq`, read from the frame itself (no key needed).
    pub fn leaf_data(&self, seq: u64) -> Result<LeafData> {
        export::leaf_data(self, seq)
    }

    /// Build a bundle with records `seqs`, a new signed tree head, and
    /// consistency proofs from up to `history` earlier tree heads.
    pub fn export_bundle(&self, seqs: &[u64], history: usize) -> Result<Bundle> {
        export::bundle(self, seqs, history)
    }
}

impl BundleSource for Store {
    fn sign_tree_head(&self) -> Result<SignedTreeHead> {
        Store::sign_tree_head(self)
    }
    fn tree_heads(&self, limit: usize) -> Result<Vec<SignedTreeHead>> {
        Store::tree_heads(self, limit)
    }
    fn frame_bytes(&self, seq: u64) -> Result<(FrameHeader, Vec<u8>)> {
        Store::frame_bytes(self, seq)
    }
    fn envelope_of(&self, seq: u64) -> Result<(Vec<u8>, Record)> {
        Store::envelope_of(self, seq)
    }
    fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>> {
        Store::inclusion_proof(self, seq, size)
    }
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        Store::consistency_proof(self, old, new)
    }
}
