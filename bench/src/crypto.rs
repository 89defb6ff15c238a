//! Per-core throughput of the primitives on the write path.

use std::time::Instant;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use ring::aead::{Aad, LessSafeKey, Nonce as RingNonce, UnboundKey, AES_256_GCM};
use sha2::{Digest, Sha256};

/// Run `f` over `buf` repeatedly for about `secs`; returns MB/s.
fn rate(buf_len: usize, secs: f64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    n as f64 * buf_len as f64 / start.elapsed().as_secs_f64() / 1e6
}

pub struct CryptoRates {
    pub rows: Vec<(String, f64, f64)>,
    pub ring_1k: f64,
    pub aesgcm_1k: f64,
}

pub fn measure() -> CryptoRates {
    let mut rows = Vec::new();
    let key = [7u8; 32];
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("key"));
    let rc = Aes256Gcm::new_from_slice(&key).expect("key");
    let mut out = (0.0, 0.0);
    for &len in &[1024usize, 1 << 20] {
        let secs = 0.5;
        let mut buf = vec![1u8; len];
        let sha = rate(len, secs, || {
            std::hint::black_box(Sha256::digest(&buf));
        });
        let crc = rate(len, secs, || {
            std::hint::black_box(crc32c::crc32c(&buf));
        });
        let ring = rate(len, secs, || {
            let t = ring_key
                .seal_in_place_separate_tag(
                    RingNonce::assume_unique_for_key([1; 12]),
                    Aad::from(&[0u8; 16][..]),
                    &mut buf,
                )
                .expect("seal");
            let _ = std::hint::black_box(t);
        });
        let nonce = Nonce::try_from(&[1u8; 12][..]).expect("12-byte nonce");
        let rcr = rate(len, secs, || {
            let t = rc
                .encrypt_inout_detached(&nonce, &[0u8; 16], (&mut buf[..]).into())
                .expect("seal");
            let _ = std::hint::black_box(t);
        });
        let label = if len == 1024 { "1 KiB" } else { "1 MiB" };
        rows.push((
            format!("SHA-256 (sha2), {label}"),
            sha,
            sha * 1e6 / len as f64,
        ));
        rows.push((format!("CRC32C, {label}"), crc, crc * 1e6 / len as f64));
        rows.push((
            format!("AES-256-GCM (ring), {label}"),
            ring,
            ring * 1e6 / len as f64,
        ));
        rows.push((
            format!("AES-256-GCM (aes-gcm), {label}"),
            rcr,
            rcr * 1e6 / len as f64,
        ));
        if len == 1024 {
            out = (ring, rcr);
        }
    }
    CryptoRates {
        rows,
        ring_1k: out.0,
        aesgcm_1k: out.1,
    }
}
