//! The Merkle log: a tree over every record, in the manner of RFC 6962 /
//! RFC 9162 (Certificate Transparency), with inclusion and consistency
//! proofs that anyone can check without a key.
//!
//! * Leaf `i` is the frame with seq `i`. Its hash is
//!   `SHA-256(0x00 ‖ "stele-leaf-v1" ‖ seq u64 BE ‖ kind u8 ‖ timestamp_us i64 BE ‖
//!   retain_until_us i64 BE ‖ frame_sha256 [32] ‖ content_hash [32])`:
//!   the record's metadata, the hash of its stored (encrypted) frame, and the
//!   salted hash of its plaintext. No key is involved, so proofs survive key
//!   rotation and crypto-shredding.
//! * An interior node is `SHA-256(0x01 ‖ left ‖ right)`; the tree over `n`
//!   leaves splits at the largest power of two below `n` (RFC 6962 §2.1).
//! * The index keeps every leaf and every complete node of height 3 or more
//!   (`merkle` table); heights 1 and 2 are recomputed from leaves when needed.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::format::frame::{FrameHeader, FrameKind};

pub type Hash = [u8; 32];

/// Heights below this are not stored; they are recomputed from leaves.
pub const STORED_FROM_HEIGHT: u8 = 3;

/// What a leaf commits to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeafData {
    pub seq: u64,
    pub kind: u8,
    pub timestamp_us: i64,
    pub retain_until_us: i64,
    #[serde(with = "hex32")]
    pub frame_sha256: Hash,
    #[serde(with = "hex32")]
    pub content_hash: Hash,
}

impl LeafData {
    pub fn of(header: &FrameHeader, frame_sha256: Hash) -> LeafData {
        LeafData {
            seq: header.seq,
            kind: header.kind as u8,
            timestamp_us: header.timestamp_us,
            retain_until_us: header.retain_until_us,
            frame_sha256,
            content_hash: header.content_hash,
        }
    }

    pub fn kind(&self) -> Option<FrameKind> {
        FrameKind::from_u8(self.kind)
    }

    pub fn hash(&self) -> Hash {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(b"stele-leaf-v1");
        h.update(self.seq.to_be_bytes());
        h.update([self.kind]);
        h.update(self.timestamp_us.to_be_bytes());
        h.update(self.retain_until_us.to_be_bytes());
        h.update(self.frame_sha256);
        h.update(self.content_hash);
        h.finalize().into()
    }
}

/// Hex (de)serialisation of 32-byte hashes.
pub mod hex32 {
    pub fn serialize<S: serde::Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Where complete subtrees come from: `node(h, i)` is the root of leaves
/// `[i·2^h, (i+1)·2^h)`.
pub trait Nodes {
    fn node(&self, height: u8, index: u64) -> Result<Hash>;
}

/// The root of leaves `[lo, hi)` (`hi > lo`), RFC 6962's MTH.
pub fn subtree_root(nodes: &impl Nodes, lo: u64, hi: u64) -> Result<Hash> {
    let n = hi - lo;
    assert!(n > 0, "an empty range has no root");
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return nodes.node(n.trailing_zeros() as u8, lo / n);
    }
    let k = split(n);
    Ok(node_hash(
        &subtree_root(nodes, lo, lo + k)?,
        &subtree_root(nodes, lo + k, hi)?,
    ))
}

/// The root of the tree of `size` leaves (the SHA-256 of nothing for 0).
pub fn root(nodes: &impl Nodes, size: u64) -> Result<Hash> {
    if size == 0 {
        return Ok(Sha256::digest([]).into());
    }
    subtree_root(nodes, 0, size)
}

/// The inclusion proof of leaf `m` in the tree of `size` leaves (RFC 6962 PATH).
pub fn inclusion_proof(nodes: &impl Nodes, m: u64, size: u64) -> Result<Vec<Hash>> {
    if m >= size {
        return Err(Error::invalid(
            "inclusion proof",
            format!("leaf {m} is not in a tree of {size}"),
        ));
    }
    let mut out = Vec::new();
    path(nodes, m, 0, size, &mut out)?;
    Ok(out)
}

fn path(nodes: &impl Nodes, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) -> Result<()> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(nodes, m, lo, lo + k, out)?;
        out.push(subtree_root(nodes, lo + k, hi)?);
    } else {
        path(nodes, m - k, lo + k, hi, out)?;
        out.push(subtree_root(nodes, lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of `old` and `new` leaves (RFC 6962 PROOF).
pub fn consistency_proof(nodes: &impl Nodes, old: u64, new: u64) -> Result<Vec<Hash>> {
    if old == 0 || old > new {
        return Err(Error::invalid(
            "consistency proof",
            format!("from {old} to {new}"),
        ));
    }
    let mut out = Vec::new();
    if old < new {
        subproof(nodes, old, 0, new, true, &mut out)?;
    }
    Ok(out)
}

fn subproof(
    nodes: &impl Nodes,
    m: u64,
    lo: u64,
    hi: u64,
    b: bool,
    out: &mut Vec<Hash>,
) -> Result<()> {
    let n = hi - lo;
    if m == n {
        if !b {
            out.push(subtree_root(nodes, lo, hi)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(nodes, m, lo, lo + k, b, out)?;
        out.push(subtree_root(nodes, lo + k, hi)?);
    } else {
        subproof(nodes, m - k, lo + k, hi, false, out)?;
        out.push(subtree_root(nodes, lo, lo + k)?);
    }
    Ok(())
}

/// Check an inclusion proof (RFC 9162 §2.1.3.2): leaf `index` with hash
/// `leaf` is in the tree of `size` leaves with root `root`.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Check a consistency proof (RFC 9162 §2.1.4.2): the tree of `old` leaves
/// with root `old_root` is a prefix of the tree of `new` leaves with root `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old == 0 || old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if old.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old_root && sr == *new_root
}

/// The aligned complete subtrees that exactly cover leaves `[lo, hi)`, largest first from the left.
pub fn cover(lo: u64, hi: u64) -> Vec<(u8, u64)> {
    let mut out = Vec::new();
    let mut at = lo;
    while at < hi {
        let mut h = if at == 0 {
            63
        } else {
            at.trailing_zeros().min(63)
        };
        while h > 0 && at + (1u64 << h) > hi {
            h -= 1;
        }
        out.push((h as u8, at >> h));
        at += 1 << h;
    }
    out
}

/// A node as audit records carry it: `height:index:hex`.
pub fn format_node(height: u8, index: u64, hash: &Hash) -> String {
    format!("{height}:{index}:{}", hex::encode(hash))
}

/// Parse [`format_node`]'s output.
pub fn parse_node(s: &str) -> Option<(u8, u64, Hash)> {
    let mut parts = s.splitn(3, ':');
    let h = parts.next()?.parse().ok()?;
    let i = parts.next()?.parse().ok()?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(parts.next()?, &mut hash).ok()?;
    Some((h, i, hash))
}

/// The right edge of a tree being built leaf by leaf: its complete subtrees,
/// largest first. Gives the root of everything pushed so far in O(log n).
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    stack: Vec<(u8, Hash)>,
    size: u64,
}

impl Frontier {
    /// Append leaf `seq` (which must be the next one).
    pub fn push_leaf(&mut self, seq: u64, leaf: Hash) {
        debug_assert_eq!(seq, self.size, "leaves arrive in order");
        self.push_node(0, seq, leaf);
    }

    /// Append a complete subtree `(height, index)` that starts where the tree ends.
    pub fn push_node(&mut self, height: u8, index: u64, hash: Hash) {
        debug_assert_eq!(
            index << height,
            self.size,
            "the subtree starts at the end of the tree"
        );
        let (mut h, mut x) = (height, hash);
        while let Some(&(top, left)) = self.stack.last() {
            if top != h {
                break;
            }
            self.stack.pop();
            x = node_hash(&left, &x);
            h += 1;
        }
        self.stack.push((h, x));
        self.size += 1 << height;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(&(_, mut r)) = it.next() else {
            return Sha256::digest([]).into();
        };
        for (_, left) in it {
            r = node_hash(left, &r);
        }
        r
    }
}

/// Leaves in memory: for tests, exports and small verifications.
pub struct MemoryTree(pub Vec<Hash>);

impl Nodes for MemoryTree {
    fn node(&self, height: u8, index: u64) -> Result<Hash> {
        let w = 1u64 << height;
        let lo = index * w;
        if lo + w > self.0.len() as u64 {
            return Err(Error::invalid(
                "merkle node",
                format!("({height}, {index}) is beyond the leaves"),
            ));
        }
        if height == 0 {
            return Ok(self.0[lo as usize]);
        }
        Ok(node_hash(
            &self.node(height - 1, index * 2)?,
            &self.node(height - 1, index * 2 + 1)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: u64) -> MemoryTree {
        MemoryTree(
            (0..n)
                .map(|i| Sha256::digest(i.to_le_bytes()).into())
                .collect(),
        )
    }

    /// The RFC's definition, directly from the leaves.
    fn mth(l: &[Hash]) -> Hash {
        match l.len() {
            0 => Sha256::digest([]).into(),
            1 => l[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&l[..k]), &mth(&l[k..]))
            }
        }
    }

    #[test]
    fn cover_is_exact_and_aligned() {
        for lo in 0..40u64 {
            for hi in lo..80 {
                let mut at = lo;
                for (h, i) in cover(lo, hi) {
                    assert_eq!(i << h, at, "[{lo}, {hi})");
                    at += 1 << h;
                }
                assert_eq!(at, hi);
            }
        }
    }

    #[test]
    fn the_frontier_gives_every_prefix_root() {
        let t = leaves(100);
        let mut f = Frontier::default();
        for (i, l) in t.0.iter().enumerate() {
            f.push_leaf(i as u64, *l);
            assert_eq!(f.root(), mth(&t.0[..=i]), "size {}", i + 1);
        }
        // Subtrees pushed whole give the same roots as their leaves.
        let mut g = Frontier::default();
        for (h, i) in cover(0, 37) {
            g.push_node(h, i, t.node(h, i).unwrap());
        }
        assert_eq!(g.root(), mth(&t.0[..37]));
    }

    #[test]
    fn roots_match_the_definition() {
        for n in 0..70 {
            let t = leaves(n);
            assert_eq!(root(&t, n).unwrap(), mth(&t.0), "n = {n}");
        }
    }

    proptest! {
        #[test]
        fn inclusion_proofs_verify_and_reject_tampering(n in 1u64..300, m_frac in 0.0f64..1.0, flip in any::<prop::sample::Index>()) {
            let t = leaves(n);
            let m = ((n as f64 * m_frac) as u64).min(n - 1);
            let r = root(&t, n).unwrap();
            let p = inclusion_proof(&t, m, n).unwrap();
            prop_assert!(verify_inclusion(&t.0[m as usize], m, n, &p, &r));
            // Wrong leaf, index, size, root or any altered proof element fails.
            prop_assert!(!verify_inclusion(&Sha256::digest(b"x").into(), m, n, &p, &r));
            if n > 1 {
                prop_assert!(!verify_inclusion(&t.0[m as usize], (m + 1) % n, n, &p, &r));
            }
            if !p.is_empty() {
                let mut bad = p.clone();
                let i = flip.index(bad.len());
                bad[i][0] ^= 1;
                prop_assert!(!verify_inclusion(&t.0[m as usize], m, n, &bad, &r));
                prop_assert!(!verify_inclusion(&t.0[m as usize], m, n, &p[..p.len() - 1], &r));
            }
        }

        #[test]
        fn consistency_proofs_verify_and_reject_tampering(new in 1u64..300, old_frac in 0.0f64..1.0, flip in any::<prop::sample::Index>()) {
            let t = leaves(new);
            let old = ((new as f64 * old_frac) as u64).clamp(1, new);
            let (ro, rn) = (root(&t, old).unwrap(), root(&t, new).unwrap());
            let p = consistency_proof(&t, old, new).unwrap();
            prop_assert!(verify_consistency(old, new, &ro, &rn, &p));
            prop_assert!(!verify_consistency(old, new, &rn, &ro, &p) || ro == rn);
            if !p.is_empty() {
                let mut bad = p.clone();
                let i = flip.index(bad.len());
                bad[i][31] ^= 0x80;
                prop_assert!(!verify_consistency(old, new, &ro, &rn, &bad));
            }
            // A history that was rewritten (another leaf at position 0) is not consistent.
            let mut other = t.0.clone();
            other[0][5] ^= 1;
            let forged = root(&MemoryTree(other), new).unwrap();
            prop_assert!(!verify_consistency(old, new, &ro, &forged, &p));
        }
    }
}
