//! Integrity benchmark: a full scrub beside `sha256sum` over the same bytes
//! and the device's raw O_DIRECT read bandwidth, measured in one run; and
//! Merkle proof generation and verification rates.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, RngExt};
use stele_engine::format::merkle;
use stele_engine::integrity::scrub::ScrubMode;
use stele_engine::io::buffer::AlignedBuf;
use stele_engine::NewRecord;

use crate::ingest::{new_store, remove_store};

fn zone_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("data"))
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("zone-"))
    });
    v.sort();
    v
}

fn drop_caches() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Sequential O_DIRECT reads of `files` in 8 MiB requests: MB/s.
fn raw_read(files: &[PathBuf]) -> std::io::Result<(f64, u64)> {
    let mut buf = AlignedBuf::zeroed(8 << 20);
    let mut total = 0u64;
    let t = Instant::now();
    for p in files {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(p)?;
        let len = f.metadata()?.len();
        let mut off = 0;
        while off < len {
            let n = f.read_at(&mut buf, off)?;
            if n == 0 {
                break;
            }
            off += n as u64;
            total += n as u64;
        }
    }
    Ok((total as f64 / t.elapsed().as_secs_f64() / 1e6, total))
}

/// `sha256sum` over `files` (cold cache where the machine allows): MB/s.
fn sha256sum(files: &[PathBuf], bytes: u64) -> std::io::Result<f64> {
    drop_caches();
    let t = Instant::now();
    let out = std::process::Command::new("sha256sum")
        .args(files)
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other("sha256sum failed"));
    }
    Ok(bytes as f64 / t.elapsed().as_secs_f64() / 1e6)
}

pub fn run(dir: &Path, message_mib: u64, media_mib: u64) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.join("integrity");
    remove_store(&dir);
    let store = new_store(&dir)?;
    println!("== integrity benchmark (store in {})", dir.display());
    // 1 KiB messages, then media in 1 MiB chunks.
    let n_msgs = message_mib * 1024;
    let mut pending = std::collections::VecDeque::new();
    let body = vec![0x5au8; 1024];
    for i in 0..n_msgs {
        pending.push_back(store.submit(NewRecord::message(
            format!("m{i}"),
            format!("c{}", i % 1000),
            i as i64,
            body.clone(),
        ))?);
        if pending.len() > 4096 {
            pending.pop_front().expect("non-empty").wait()?;
        }
    }
    for p in pending {
        p.wait()?;
    }
    let mut media = vec![0u8; 64 << 20];
    for blob in 0..media_mib.div_ceil(64) {
        rand::rng().fill_bytes(&mut media);
        store.put_blob(&media[..], &format!("media-{blob}"), 0)?;
    }
    let head = store.sign_tree_head()?;
    println!(
        "stored {} frames ({} MiB of 1 KiB messages, {} MiB of media); tree head of size {}",
        store.next_seq(),
        message_mib,
        media_mib,
        head.head.tree_size
    );
    // The same bytes three ways.
    let files = zone_files(&dir);
    let (raw_mbs, bytes) = raw_read(&files)?;
    let sum_mbs = sha256sum(&files, bytes)?;
    let t = Instant::now();
    let report = store.scrub(ScrubMode::Full, None)?;
    let scrub_secs = t.elapsed().as_secs_f64();
    assert_eq!(report.damage_count, 0, "a clean store scrubs clean");
    let scrub_mbs = report.bytes_checked as f64 / scrub_secs / 1e6;
    let floor = raw_mbs.min(sum_mbs);
    println!(
        "raw O_DIRECT sequential read of the zone files: {raw_mbs:.0} MB/s ({} MB)",
        bytes / 1_000_000
    );
    println!(
        "sha256sum over the same files (page cache dropped first: {}): {sum_mbs:.0} MB/s",
        drop_caches()
    );
    println!(
        "full scrub (read, CRC, re-hash against Merkle leaves, chain, AES-GCM, roots vs {} tree heads): {scrub_mbs:.0} MB/s over {} frames = {:.0}% of the smaller of the two ({floor:.0} MB/s); target 80%",
        report.tree_heads_checked,
        report.frames_checked,
        100.0 * scrub_mbs / floor
    );
    // Proofs.
    let size = head.head.tree_size;
    let mut rng = rand::rng();
    let n = 20_000;
    let seqs: Vec<u64> = (0..n).map(|_| rng.random_range(0..size)).collect();
    let t = Instant::now();
    let proofs: Vec<_> = seqs
        .iter()
        .map(|&s| store.inclusion_proof(s, size))
        .collect::<Result<_, _>>()?;
    let gen = n as f64 / t.elapsed().as_secs_f64();
    let leaves: Vec<_> = seqs
        .iter()
        .map(|&s| store.leaf_data(s).map(|l| l.hash()))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for ((s, p), l) in seqs.iter().zip(&proofs).zip(&leaves) {
        assert!(merkle::verify_inclusion(l, *s, size, p, &head.head.root));
    }
    let ver = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let m = 2000;
    let olds: Vec<u64> = (0..m).map(|_| rng.random_range(1..size)).collect();
    let cps: Vec<_> = olds
        .iter()
        .map(|&o| store.consistency_proof(o, size))
        .collect::<Result<_, _>>()?;
    let cgen = m as f64 / t.elapsed().as_secs_f64();
    let roots: Vec<_> = olds
        .iter()
        .map(|&o| store.merkle_root(o))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for ((o, p), r) in olds.iter().zip(&cps).zip(&roots) {
        assert!(merkle::verify_consistency(*o, size, r, &head.head.root, p));
    }
    let cver = m as f64 / t.elapsed().as_secs_f64();
    println!(
        "proofs over a tree of {size} leaves: inclusion {gen:.0}/s generated, {ver:.0}/s verified; consistency {cgen:.0}/s generated, {cver:.0}/s verified"
    );
    store.close()?;
    remove_store(&dir);
    Ok(())
}
