//! Durable, encrypted ingest into a real store, beside the primitives and the disk.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use stele_engine::io::device::{Device, Geometry, ZoneDirDevice};
use stele_engine::{Keys, NewRecord, Store, StoreOptions};

use crate::{crypto, raw};

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Remove a scratch store. Its sealed zone files are immutable and its open
/// ones append-only, so both flags are lifted first (needs root).
pub fn remove_store(dir: &Path) {
    if dir.exists() {
        let _ = std::process::Command::new("chattr")
            .arg("-R")
            .arg("-ia")
            .arg(dir)
            .status();
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A fresh store in `dir`: a zone directory of 64 zones of 256 MiB, a random key.
pub fn new_store(dir: &Path) -> Result<Store, stele_engine::Error> {
    remove_store(dir);
    let mut opts = StoreOptions::new(dir.join("index.redb"));
    opts.zone_size = 256 << 20;
    let dev = ZoneDirDevice::create(
        &dir.join("data"),
        Geometry {
            zone_size: opts.zone_size,
            zone_count: 64,
        },
    )?;
    let mut master = [0u8; 32];
    rand::rng().fill_bytes(&mut master);
    Store::create(
        vec![Arc::new(dev) as Arc<dyn Device>],
        Keys::from_master(1, &master),
        opts,
    )
}

pub fn run(
    dir: &Path,
    seconds: f64,
    paced_seconds: f64,
    producers: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    println!("# Stele ingest benchmark");
    println!("command: cargo run --release -p bench -- ingest --dir {} --seconds {seconds} --paced-seconds {paced_seconds} --producers {producers}", dir.display());
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let c = crypto::measure();
    println!("\n## Primitives (one core)\n| primitive | MB/s | ops/s |\n|---|---:|---:|");
    for (name, mbs, ops) in &c.rows {
        println!("| {name} | {mbs:.0} | {ops:.0} |");
    }
    println!(
        "AES-256-GCM on 1 KiB: ring {:.0} MB/s vs aes-gcm {:.0} MB/s -> the engine uses {}",
        c.ring_1k,
        c.aesgcm_1k,
        if c.ring_1k >= c.aesgcm_1k {
            "ring"
        } else {
            "aes-gcm (switch!)"
        }
    );

    let r = raw::measure(dir)?;
    println!("\n## Disk (same file system, O_DIRECT={})", r.direct);
    println!("| measure | value |\n|---|---:|");
    println!(
        "| sequential 4 MiB writes, one fdatasync | {:.0} MB/s |",
        r.seq_write_mbs
    );
    println!(
        "| sequential 4 MiB writes, fdatasync each | {:.0} MB/s |",
        r.seq_write_synced_mbs
    );
    println!("| 4 KiB write + fdatasync | {:.0} /s |", r.syncs_per_s);

    // Saturation: 1 KiB messages from several producers, each keeping many appends in flight.
    let store = new_store(&dir.join("store-sat"))?;
    println!(
        "\n## Store ingest (I/O backend {}, O_DIRECT {})",
        store.open_report().io_backend,
        store.open_report().direct_io
    );
    let stop = AtomicBool::new(false);
    let acked = AtomicU64::new(0);
    let body = vec![b'x'; 1024];
    let started = Instant::now();
    std::thread::scope(|s| {
        for p in 0..producers {
            let (store, stop, acked, body) = (&store, &stop, &acked, &body);
            s.spawn(move || {
                let mut inflight = VecDeque::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let rec = NewRecord::message(
                        format!("p{p}-{i}"),
                        format!("conv-{}", i % 1000),
                        i as i64,
                        body.clone(),
                    );
                    inflight.push_back(store.submit(rec).expect("submit"));
                    i += 1;
                    if inflight.len() >= 4096 {
                        inflight
                            .pop_front()
                            .expect("non-empty")
                            .wait()
                            .expect("ack");
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
                for pa in inflight {
                    pa.wait().expect("ack");
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let el = started.elapsed().as_secs_f64();
    let n = acked.load(Ordering::Relaxed);
    let batches = store.stats().batches.load(Ordering::Relaxed);
    println!("| measure | value |\n|---|---:|");
    println!(
        "| 1 KiB messages, durable + encrypted + hashed, at saturation | {:.0} msg/s |",
        n as f64 / el
    );
    println!(
        "| payload bandwidth at saturation | {:.1} MB/s |",
        n as f64 * 1024.0 / el / 1e6
    );
    println!(
        "| group commits (fdatasync) | {batches} ({:.0} messages each) |",
        n as f64 / batches.max(1) as f64
    );
    store.close()?;

    // Fixed offered load: 1,000 msg/s, one submission per millisecond on a fixed schedule.
    let store = new_store(&dir.join("store-paced"))?;
    let total = (paced_seconds * 1000.0) as u64;
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, stele_engine::PendingAppend)>();
    let t0 = Instant::now();
    let lat = std::thread::scope(|s| {
        let waiter = s.spawn(move || {
            let mut lat = Vec::with_capacity(total as usize);
            for (at, pa) in rx {
                pa.wait().expect("ack");
                lat.push(at.elapsed());
            }
            lat
        });
        for i in 0..total {
            let due = t0 + Duration::from_micros(i * 1000);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let rec = NewRecord::message(format!("paced-{i}"), "conv", i as i64, body.clone());
            let at = Instant::now();
            tx.send((at, store.submit(rec).expect("submit")))
                .expect("waiter alive");
        }
        drop(tx);
        waiter.join().expect("waiter")
    });
    let mut lat = lat;
    lat.sort_unstable();
    println!("| ack latency at 1,000 msg/s offered ({} messages) p50 / p99 / p99.9 / max | {:.3} / {:.3} / {:.3} / {:.3} ms |", lat.len(), pct(&lat, 0.5), pct(&lat, 0.99), pct(&lat, 0.999), pct(&lat, 1.0));
    store.close()?;

    let store = media(dir, r.seq_write_mbs)?;
    store.close()?;
    for s in ["store-sat", "store-paced", "store-media"] {
        remove_store(&dir.join(s));
    }
    Ok(())
}

/// The media path's CPU work alone, per byte as the engine does it (content
/// SHA-256, BLAKE3 chunk digest, copy in, AES-256-GCM, CRC32C and the frame's
/// SHA-256) over the same `blobs` the media runs store, in 1 MiB chunks, on
/// `threads` threads at once with no I/O and no hand-offs between threads:
/// the most any media ingest of these blobs on this machine could reach. MB/s.
pub fn media_cpu_ceiling(threads: usize, blobs: &[Vec<u8>]) -> f64 {
    use sha2::Digest;
    use stele_engine::format::frame::{
        self, FrameHeader, FrameKind, FRAME_HEADER_LEN, FRAME_OVERHEAD,
    };
    let chunk = 1usize << 20;
    let t = Instant::now();
    std::thread::scope(|s| {
        for i in 0..threads {
            s.spawn(move || {
                let key = stele_engine::crypto::keys::DataKey::new(1, &[9; 32]);
                let mut out = vec![0u8; chunk + FRAME_OVERHEAD];
                let mut prev = [0u8; 32];
                let mut seq = 0u64;
                for blob in blobs.iter().skip(i).step_by(threads) {
                    let mut content = sha2::Sha256::new();
                    for src in blob.chunks(chunk) {
                        content.update(src);
                        std::hint::black_box(blake3::hash(src));
                        let out = &mut out[..src.len() + FRAME_OVERHEAD];
                        out[FRAME_HEADER_LEN..FRAME_HEADER_LEN + src.len()].copy_from_slice(src);
                        let mut h = FrameHeader {
                            kind: FrameKind::MediaChunk,
                            flags: 0,
                            frame_len: 0,
                            data_key_id: 0,
                            seq,
                            timestamp_us: 0,
                            retain_until_us: 0,
                            nonce: frame::nonce(1, seq),
                            custodian_tag: [0; 12],
                            record_tag: [0; 16],
                            conversation_tag: [0; 16],
                            prev_hash: prev,
                            content_hash: [0; 32],
                        };
                        let body = frame::seal_body_in_place(out, &mut h, &key, &[1; 16]);
                        prev = frame::seal_chain(out, &prev, body).1;
                        seq += 1;
                    }
                    std::hint::black_box(content.finalize());
                }
                std::hint::black_box(prev);
            });
        }
    });
    blobs.iter().map(|b| b.len()).sum::<usize>() as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// CPU time (user + system) this process has used, in seconds.
pub fn cpu_seconds() -> f64 {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => f64::NAN,
    }
}

/// Media ingest: 4 MiB blobs from 2 and from 4 producers; returns the last store.
pub fn media(dir: &Path, raw_write_mbs: f64) -> Result<Store, Box<dyn std::error::Error>> {
    // Media: distinct 4 MiB blobs, streamed in 1 MiB chunks. The blobs are
    // generated before the clock starts, so only storing them is timed.
    let blobs = 128usize;
    let blob_bytes = 4usize << 20;
    let data: Vec<Vec<u8>> = (0..blobs)
        .map(|i| {
            let mut d = vec![0u8; blob_bytes];
            rand::rngs::StdRng::seed_from_u64(i as u64).fill_bytes(&mut d);
            d
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ceiling = media_cpu_ceiling(cores, &data);
    println!("| media CPU ceiling: the per-byte work alone on all {cores} cores, no I/O | {ceiling:.0} MB/s ({:.0}% of raw O_DIRECT sequential write) |", 100.0 * ceiling / raw_write_mbs);
    let mut store = None;
    for (round, media_producers) in [2usize, 4, 8].into_iter().enumerate() {
        drop(store.take());
        let s_ = new_store(&dir.join("store-media"))?;
        let cpu = cpu_seconds();
        let t = Instant::now();
        std::thread::scope(|s| {
            for p in 0..media_producers {
                let (store, data) = (&s_, &data);
                s.spawn(move || {
                    for i in (p..blobs).step_by(media_producers) {
                        store
                            .put_blob(&data[i][..], &format!("media-{round}-{i}"), i as i64)
                            .expect("put_blob");
                    }
                });
            }
        });
        let secs = t.elapsed().as_secs_f64();
        let busy = (cpu_seconds() - cpu) / secs;
        let mbs = (blobs * blob_bytes) as f64 / secs / 1e6;
        println!("| 4 MiB media blobs from {media_producers} producers, durable + encrypted | {mbs:.0} MB/s ({:.0}% of raw O_DIRECT sequential write, {:.0}% of the CPU ceiling; {busy:.2} cores busy) |", 100.0 * mbs / raw_write_mbs, 100.0 * mbs / ceiling);
        store = Some(s_);
    }
    Ok(store.expect("a media store"))
}

/// Only the media part, beside a fresh raw-write measurement.
pub fn media_only(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let r = raw::measure(dir)?;
    println!(
        "| sequential 4 MiB writes, one fdatasync | {:.0} MB/s |",
        r.seq_write_mbs
    );
    let store = media(dir, r.seq_write_mbs)?;
    store.close()?;
    remove_store(&dir.join("store-media"));
    Ok(())
}
