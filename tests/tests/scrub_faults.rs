//! Storage faults injected at random places after the data was written:
//! bit flips, torn sectors, misdirected and lost writes, latent read errors
//! (EIO), and a payload edited with its CRC fixed up. Over many seeded runs a
//! full scrub reports exactly the damaged frames (no more, no fewer), and no
//! read ever returns a damaged record as valid. `STELE_SCRUB_FAULT_RUNS=N`
//! runs more seeds.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use stele_engine::integrity::scrub::ScrubMode;
use stele_engine::io::device::{Device, FaultConfig};
use stele_engine::{NewRecord, Store};
use stele_tests::*;

const ZONE: u64 = 64 << 10;
const ZONES: u32 = 24;
const BLOCK: u64 = 4096;

struct Frame {
    seq: u64,
    zone: u32,
    offset: u64,
    len: u64,
    body: Vec<u8>,
    stored: Vec<u8>,
}

fn run(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let dev = fault_device("sim-scrub", FaultConfig::new(seed), ZONE, ZONES);
    let mut opts = small_options(&dir.path().join("index.redb"));
    opts.zone_size = ZONE;
    let store = Store::create(as_devices(&dev), keys(), opts).unwrap();
    let mut frames = Vec::new();
    for round in 0..30u64 {
        let pending: Vec<_> = (0..rng.random_range(1..8u64))
            .map(|i| {
                let b = body(seed ^ (round << 8) ^ i, rng.random_range(30..1500));
                (
                    b.clone(),
                    store
                        .submit(NewRecord::message(format!("r{round}-{i}"), "c", 0, b))
                        .unwrap(),
                )
            })
            .collect();
        for (b, p) in pending {
            let seq = p.wait().unwrap().seq;
            frames.push((seq, b));
        }
    }
    store.sign_tree_head().unwrap();
    let frames: Vec<Frame> = frames
        .into_iter()
        .map(|(seq, body)| {
            let r = store.get(seq).unwrap();
            let (_, bytes) = store.frame_bytes(seq).unwrap();
            Frame {
                seq,
                zone: r.location.zone,
                offset: r.location.offset,
                len: bytes.len() as u64,
                body,
                stored: bytes,
            }
        })
        .collect();
    let clean = store.scrub(ScrubMode::Full, None).unwrap();
    assert_eq!(clean.damage_count, 0, "seed {seed}: {:?}", clean.damage);

    // Damage: (zone, byte range) per fault.
    let mut hit: Vec<(u32, u64, u64)> = Vec::new();
    // Blocks already given a latent read error cannot be read to build another fault.
    let read_block = |zone: u32, off: u64| {
        let mut b = vec![0u8; BLOCK as usize];
        dev.read_zone(zone, off, &mut b).ok().map(|_| b)
    };
    let write_block = |zone: u32, off: u64, b: &[u8]| {
        dev.write_zone(zone, off, b).unwrap();
        dev.flush().unwrap();
    };
    for _ in 0..rng.random_range(1..5) {
        let f = &frames[rng.random_range(0..frames.len())];
        match rng.random_range(0..6) {
            0 => {
                // Bit rot.
                let at = f.offset + rng.random_range(0..f.len);
                dev.flip_bit(f.zone, at, rng.random_range(0..8));
                hit.push((f.zone, at, at + 1));
            }
            1 => {
                // A latent sector error.
                let at = f.offset + rng.random_range(0..f.len);
                dev.fail_reads_at(f.zone, at);
                let b = at / BLOCK * BLOCK;
                hit.push((f.zone, b, b + BLOCK));
            }
            2 => {
                // A lost write: the block never reached the medium.
                let b = (f.offset + rng.random_range(0..f.len)) / BLOCK * BLOCK;
                write_block(f.zone, b, &vec![0u8; BLOCK as usize]);
                hit.push((f.zone, b, b + BLOCK));
            }
            3 => {
                // A misdirected write: another block's contents landed here.
                let other = &frames[rng.random_range(0..frames.len())];
                let src = other.offset / BLOCK * BLOCK;
                let b = (f.offset + rng.random_range(0..f.len)) / BLOCK * BLOCK;
                if (other.zone, src) == (f.zone, b) {
                    continue;
                }
                let (Some(data), Some(here)) = (read_block(other.zone, src), read_block(f.zone, b))
                else {
                    continue;
                };
                if data == here {
                    continue;
                }
                write_block(f.zone, b, &data);
                hit.push((f.zone, b, b + BLOCK));
            }
            4 => {
                // A torn write: the last sectors of the frame's first block never landed.
                let b = f.offset / BLOCK * BLOCK;
                let Some(mut data) = read_block(f.zone, b) else {
                    continue;
                };
                let from = ((f.offset - b) / 512 + 1) * 512;
                if from >= BLOCK || from >= f.offset + f.len - b {
                    continue;
                }
                let before = data.clone();
                data[from as usize..].fill(0);
                if data == before {
                    continue;
                }
                write_block(f.zone, b, &data);
                hit.push((f.zone, b + from, b + BLOCK));
            }
            _ => {
                // Tampering: a payload byte edited and the CRC fixed up to match.
                let b = f.offset / BLOCK * BLOCK;
                let end = (f.offset + f.len).div_ceil(BLOCK) * BLOCK;
                let mut data = vec![0u8; (end - b) as usize];
                if dev.read_zone(f.zone, b, &mut data).is_err() {
                    continue;
                }
                let o = (f.offset - b) as usize;
                let len = f.len as usize;
                let i = o + 160 + rng.random_range(0..len - 160 - 20);
                data[i] ^= 0x20;
                let crc = stele_engine::format::frame::checksum(&data[o..o + len]);
                data[o + len - 4..o + len].copy_from_slice(&crc.to_le_bytes());
                dev.write_zone(f.zone, b, &data).unwrap();
                dev.flush().unwrap();
                hit.push((
                    f.zone,
                    f.offset + (i - o) as u64,
                    f.offset + (i - o) as u64 + 1,
                ));
            }
        }
    }
    if hit.is_empty() {
        return;
    }
    // Damaged: the frames whose stored bytes changed or cannot be read.
    let damaged: BTreeSet<u64> = frames
        .iter()
        .filter(|f| {
            hit.iter()
                .any(|&(z, a, b)| z == f.zone && a < f.offset + f.len && f.offset < b)
        })
        .filter(|f| {
            let b = f.offset / BLOCK * BLOCK;
            let end = (f.offset + f.len).div_ceil(BLOCK) * BLOCK;
            let mut data = vec![0u8; (end - b) as usize];
            match dev.read_zone(f.zone, b, &mut data) {
                Err(_) => true,
                Ok(()) => {
                    let o = (f.offset - b) as usize;
                    data[o..o + f.len as usize] != f.stored[..]
                }
            }
        })
        .map(|f| f.seq)
        .collect();
    let report = store.scrub(ScrubMode::Full, None).unwrap();
    let found: BTreeSet<u64> = report
        .damage
        .iter()
        .filter(|d| d.kind != "tree-head")
        .map(|d| d.seq)
        .collect();
    let missed: Vec<_> = damaged.difference(&found).collect();
    let where_: Vec<_> = frames
        .iter()
        .filter(|f| missed.contains(&&f.seq))
        .map(|f| (f.seq, f.zone, f.offset, f.len))
        .collect();
    assert!(
        missed.is_empty(),
        "seed {seed}: damage to {where_:?} went unnoticed; faults {hit:?}; found {:?}",
        report.damage
    );
    // A frame after a damaged one may fail only its chain check; nothing else is reported.
    for d in &report.damage {
        if d.kind == "tree-head" {
            continue;
        }
        assert!(
            damaged.contains(&d.seq) || (d.kind == "chain" && damaged.contains(&(d.seq - 1))),
            "seed {seed}: seq {} reported ({}) but not damaged",
            d.seq,
            d.kind
        );
    }
    // No read returns a damaged record as valid; undamaged ones read back intact.
    for f in &frames {
        match store.get(f.seq) {
            Ok(r) => {
                assert!(
                    !damaged.contains(&f.seq),
                    "seed {seed}: damaged seq {} read as valid",
                    f.seq
                );
                assert_eq!(r.body, f.body, "seed {seed}: seq {}", f.seq);
            }
            Err(_) => assert!(
                damaged.contains(&f.seq),
                "seed {seed}: intact seq {} unreadable",
                f.seq
            ),
        }
    }
    // A sampled scrub of everything finds the same damage.
    let sampled = store
        .scrub(
            ScrubMode::Sampled {
                percent: 100.0,
                min_records: 0,
            },
            None,
        )
        .unwrap();
    let again: BTreeSet<u64> = sampled.damage.iter().map(|d| d.seq).collect();
    assert!(damaged.is_subset(&again), "seed {seed}");
    assert!(store.scrub_reports(10).unwrap().len() >= 3);
}

#[test]
fn scrub_finds_all_injected_damage_and_reads_never_return_it() {
    if let Ok(s) = std::env::var("STELE_SCRUB_FAULT_SEED") {
        run(s.parse().expect("a seed"));
        return;
    }
    let n = std::env::var("STELE_SCRUB_FAULT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300u64);
    for seed in 0..n {
        run(seed);
    }
}
