//! The media manifest: the body of a manifest frame (FORMAT.md, "Media"),
//! naming a blob's length, content SHA-256, chunk size and the seqs of its
//! chunks in order. Pure encode and decode; what a blob is lives with the
//! store's media.

use thiserror::Error;

/// The one manifest version written and read.
pub const MANIFEST_VERSION: u8 = 1;

const VERSION_AT: usize = 0;
const TOTAL_LEN_AT: usize = VERSION_AT + 1;
const CONTENT_SHA256_AT: usize = TOTAL_LEN_AT + 8;
const CHUNK_SIZE_AT: usize = CONTENT_SHA256_AT + 32;
const CHUNK_COUNT_AT: usize = CHUNK_SIZE_AT + 4;
/// The fixed part before the chunk seqs.
pub const MANIFEST_HEADER_LEN: usize = CHUNK_COUNT_AT + 4;
const CHUNK_SEQ_LEN: usize = 8;

// FORMAT.md: version u8 | total_len u64 | content_sha256 [32] | chunk_size u32 | chunk_count u32.
const _: () = assert!(MANIFEST_HEADER_LEN == 49);

/// A parsed blob manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub len: u64,
    pub sha256: [u8; 32],
    pub chunk_bytes: u32,
    pub chunks: Vec<u64>,
}

/// Why a manifest body cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManifestError {
    #[error("{len} bytes is shorter than a manifest's {MANIFEST_HEADER_LEN}")]
    Truncated { len: usize },
    #[error("version {found} is not the manifest version {MANIFEST_VERSION}")]
    Version { found: u8 },
    #[error("{count} chunks need {expected} bytes; the body has {len}")]
    ChunkList {
        count: usize,
        expected: usize,
        len: usize,
    },
}

fn field<const N: usize>(m: &[u8], at: usize) -> [u8; N] {
    m[at..at + N]
        .try_into()
        .expect("the caller checked the length")
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(MANIFEST_HEADER_LEN + self.chunks.len() * CHUNK_SEQ_LEN);
        m.push(MANIFEST_VERSION);
        m.extend_from_slice(&self.len.to_le_bytes());
        m.extend_from_slice(&self.sha256);
        m.extend_from_slice(&self.chunk_bytes.to_le_bytes());
        m.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for c in &self.chunks {
            m.extend_from_slice(&c.to_le_bytes());
        }
        assert_eq!(
            m.len(),
            MANIFEST_HEADER_LEN + self.chunks.len() * CHUNK_SEQ_LEN
        );
        m
    }

    pub fn decode(m: &[u8]) -> Result<Manifest, ManifestError> {
        if m.len() < MANIFEST_HEADER_LEN {
            return Err(ManifestError::Truncated { len: m.len() });
        }
        if m[VERSION_AT] != MANIFEST_VERSION {
            return Err(ManifestError::Version {
                found: m[VERSION_AT],
            });
        }
        let count = u32::from_le_bytes(field(m, CHUNK_COUNT_AT)) as usize;
        let expected = count
            .checked_mul(CHUNK_SEQ_LEN)
            .and_then(|n| n.checked_add(MANIFEST_HEADER_LEN));
        if expected != Some(m.len()) {
            return Err(ManifestError::ChunkList {
                count,
                expected: expected.unwrap_or(usize::MAX),
                len: m.len(),
            });
        }
        Ok(Manifest {
            len: u64::from_le_bytes(field(m, TOTAL_LEN_AT)),
            sha256: field(m, CONTENT_SHA256_AT),
            chunk_bytes: u32::from_le_bytes(field(m, CHUNK_SIZE_AT)),
            chunks: m[MANIFEST_HEADER_LEN..]
                .chunks_exact(CHUNK_SEQ_LEN)
                .map(|c| u64::from_le_bytes(field(c, 0)))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            len: 3 << 20,
            sha256: [7; 32],
            chunk_bytes: 1 << 20,
            chunks: vec![10, 11, 40],
        }
    }

    #[test]
    fn encode_is_the_documented_layout_and_decodes_back() {
        let m = sample();
        let b = m.encode();
        assert_eq!(b.len(), 49 + 3 * 8);
        assert_eq!(b[0], 1);
        assert_eq!(&b[1..9], &(3u64 << 20).to_le_bytes());
        assert_eq!(&b[9..41], &[7; 32]);
        assert_eq!(&b[45..49], &3u32.to_le_bytes());
        assert_eq!(&b[49 + 16..], &40u64.to_le_bytes());
        assert_eq!(Manifest::decode(&b), Ok(m));
    }

    #[test]
    fn every_damage_is_a_typed_error() {
        let b = sample().encode();
        assert_eq!(
            Manifest::decode(&b[..20]),
            Err(ManifestError::Truncated { len: 20 })
        );
        let mut v = b.clone();
        v[0] = 2;
        assert_eq!(
            Manifest::decode(&v),
            Err(ManifestError::Version { found: 2 })
        );
        assert!(matches!(
            Manifest::decode(&b[..b.len() - 1]),
            Err(ManifestError::ChunkList { count: 3, .. })
        ));
        let mut huge = b[..49].to_vec();
        huge[45..49].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Manifest::decode(&huge),
            Err(ManifestError::ChunkList { .. })
        ));
    }
}
