//! Power cuts at random instants: no acknowledged record is ever lost, no
//! corrupt record is ever returned, and the hash chain stays valid.
//!
//! Each crash point is a seed: the seed picks the operation at which power
//! fails and how the unflushed writes tear. A failure prints its seed; run
//! one seed with `STELE_CRASH_SEED=N`, more points with `STELE_CRASH_POINTS=N`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use stele_engine::io::device::FaultConfig;
use stele_engine::{Error, NewRecord, Store};
use stele_tests::*;

const ZONE: u64 = 64 << 10;
const ZONES: u32 = 16;

fn points() -> Vec<u64> {
    if let Ok(s) = std::env::var("STELE_CRASH_SEED") {
        return vec![s.parse().expect("STELE_CRASH_SEED is a number")];
    }
    let n = std::env::var("STELE_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    (0..n).collect()
}

/// Acked records: seq -> (record id, body).
type Acked = Arc<Mutex<BTreeMap<u64, (String, Vec<u8>)>>>;
/// Acked blobs: manifest seq -> content.
type AckedBlobs = Arc<Mutex<BTreeMap<u64, Vec<u8>>>>;

fn run_producers(store: &Store, seed: u64, acked: &Acked, blobs: &AckedBlobs) {
    std::thread::scope(|s| {
        // One producer streams media blobs (chunks sealed on the sealing threads).
        let blobs = blobs.clone();
        s.spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed * 31 + 99);
            for i in 0..6u64 {
                let content = body(seed ^ (i << 40), rng.random_range(1..40_000));
                match store.put_blob(&content[..], &format!("media-{}", i % 2), i as i64) {
                    Ok(b) => {
                        blobs.lock().unwrap().insert(b.seq, content);
                    }
                    Err(Error::Poisoned { .. }) | Err(Error::Closed) => return,
                    Err(e) => panic!("seed {seed}: unexpected put_blob error {e}"),
                }
            }
        });
        for t in 0..3u64 {
            let acked = acked.clone();
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed * 31 + t);
                for i in 0..60u64 {
                    let len = if rng.random_bool(0.1) {
                        rng.random_range(4000..12000)
                    } else {
                        rng.random_range(1..600)
                    };
                    let id = format!("s{seed}-t{t}-{i}");
                    let b = body(seed ^ (t << 32) ^ i, len);
                    match store.append(NewRecord::message(
                        id.clone(),
                        format!("c{}", i % 3),
                        1_000 + i as i64,
                        b.clone(),
                    )) {
                        Ok(r) => {
                            acked.lock().unwrap().insert(r.seq, (id, b));
                        }
                        Err(Error::Poisoned { .. }) | Err(Error::Closed) => return,
                        Err(e) => panic!("seed {seed}: unexpected append error {e}"),
                    }
                }
            });
        }
    });
}

/// Returns how many acknowledged blobs it checked.
fn crash_and_check(seed: u64) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.redb");
    let mut rng = StdRng::seed_from_u64(seed);
    let dev = fault_device("sim0", FaultConfig::new(seed), ZONE, ZONES);
    let mut opts = small_options(&index);
    opts.zone_size = ZONE;
    // Frames over 2 KiB (the larger messages and every media chunk) are
    // sealed on the sealing threads, the rest by the builder: both paths cut.
    opts.commit.early_seal_bytes = 2048;
    let store = Store::create(as_devices(&dev), keys(), opts.clone())
        .unwrap_or_else(|e| panic!("seed {seed}: create: {e}"));
    // Sometimes start from a store that already crashed once.
    let rounds = if rng.random_bool(0.3) { 2 } else { 1 };
    let acked: Acked = Arc::new(Mutex::new(BTreeMap::new()));
    let blobs: AckedBlobs = Arc::new(Mutex::new(BTreeMap::new()));
    let mut store = Some(store);
    for round in 0..rounds {
        let s = match store.take() {
            Some(s) => s,
            None => Store::open(as_devices(&dev), keys(), opts.clone())
                .unwrap_or_else(|e| panic!("seed {seed} round {round}: reopen: {e}")),
        };
        let mut cfg = FaultConfig::new(seed.wrapping_mul(7919).wrapping_add(round));
        cfg.power_cut_after_ops = Some(rng.random_range(1..120));
        dev.set_config(cfg);
        run_producers(&s, seed * 10 + round, &acked, &blobs);
        drop(s); // the process dies with the device
        dev.power_cut();
        if rng.random_bool(0.5) {
            let _ = std::fs::remove_file(&index); // lose the index too: it is rebuilt from the log
        }
    }
    let store = Store::open(as_devices(&dev), keys(), opts)
        .unwrap_or_else(|e| panic!("seed {seed}: recovery failed: {e}"));
    let acked = acked.lock().unwrap();
    let next = store.next_seq();
    if let Some((&max, _)) = acked.iter().next_back() {
        assert!(
            next > max,
            "seed {seed}: acknowledged seq {max} lost (log ends at {next})"
        );
    }
    for (seq, (id, b)) in acked.iter() {
        let r = store
            .get(*seq)
            .unwrap_or_else(|e| panic!("seed {seed}: acknowledged seq {seq} unreadable: {e}"));
        assert_eq!(
            &r.record_id, id,
            "seed {seed}: seq {seq} has another record"
        );
        assert_eq!(&r.body, b, "seed {seed}: seq {seq} body differs");
    }
    for (seq, content) in blobs.lock().unwrap().iter() {
        let mut out = Vec::new();
        store
            .read_blob(*seq, &mut out)
            .unwrap_or_else(|e| panic!("seed {seed}: acknowledged blob {seq} unreadable: {e}"));
        assert_eq!(&out, content, "seed {seed}: blob {seq} differs");
    }
    // Every record the log holds (acknowledged or a wholly present unacknowledged tail) reads back intact.
    for seq in 0..next {
        store.get(seq).unwrap_or_else(|e| {
            panic!("seed {seed}: seq {seq} below the log end is unreadable: {e}")
        });
    }
    let v = store
        .verify()
        .unwrap_or_else(|e| panic!("seed {seed}: chain invalid after recovery: {e}"));
    assert_eq!(v.frames, next, "seed {seed}");
    // The recovered store accepts writes and chains them on.
    let r = store
        .append(NewRecord::message("after-crash", "c", 0, b"ok".to_vec()))
        .unwrap_or_else(|e| panic!("seed {seed}: append after recovery: {e}"));
    assert_eq!(r.seq, next);
    assert_eq!(store.verify().unwrap().frames, next + 1, "seed {seed}");
    let checked = blobs.lock().map(|b| b.len()).unwrap_or(0);
    checked
}

#[test]
fn no_acknowledged_record_is_lost_across_power_cuts() {
    let pts = points();
    let mut blobs = 0;
    for &seed in &pts {
        blobs += crash_and_check(seed);
    }
    println!(
        "{} crash points passed, {blobs} acknowledged blobs read back",
        pts.len()
    );
    if pts.len() >= 100 {
        assert!(blobs > 0, "the crash points acknowledged no blob at all");
    }
}

#[test]
fn failed_flush_poisons_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let dev = fault_device("sim-flush", FaultConfig::new(1), ZONE, ZONES);
    let opts = small_options(&dir.path().join("index.redb"));
    let store = Store::create(as_devices(&dev), keys(), opts.clone()).unwrap();
    for i in 0..20 {
        store
            .append(NewRecord::message(format!("m{i}"), "c", 0, body(i, 100)))
            .unwrap();
    }
    let mut cfg = FaultConfig::new(2);
    cfg.fail_flush_at = Some(1);
    dev.set_config(cfg);
    let e = store
        .append(NewRecord::message("doomed", "c", 0, b"x".to_vec()))
        .unwrap_err();
    assert!(matches!(e, Error::Poisoned { .. }), "{e}");
    // No retry: every later append is refused too, even though the device works again.
    let e = store
        .append(NewRecord::message("later", "c", 0, b"y".to_vec()))
        .unwrap_err();
    assert!(matches!(e, Error::Poisoned { .. }), "{e}");
    assert!(store.poisoned().is_some());
    assert!(store.close().is_err());
    let store = Store::open(as_devices(&dev), keys(), opts).unwrap();
    assert!(store.poisoned().is_none());
    for i in 0..20u64 {
        assert_eq!(store.get(i).unwrap().body, body(i, 100));
    }
    assert_eq!(
        store.next_seq(),
        20,
        "the record whose flush failed was never acknowledged and is gone"
    );
    store
        .append(NewRecord::message("again", "c", 0, b"z".to_vec()))
        .unwrap();
    assert_eq!(store.verify().unwrap().frames, 21);
}

#[test]
fn recovery_refuses_a_hole_before_acknowledged_batches() {
    // Damage a frame in the middle of the unsynced-since-checkpoint tail: later
    // batches exist, so this is damage, not a torn tail, and open must say where.
    let dir = tempfile::tempdir().unwrap();
    let dev = fault_device("sim-hole", FaultConfig::new(3), 1 << 20, 4);
    let mut opts = small_options(&dir.path().join("index.redb"));
    opts.zone_size = 1 << 20;
    opts.commit.checkpoint_bytes = u64::MAX;
    opts.commit.checkpoint_interval = std::time::Duration::from_secs(3600);
    let store = Store::create(as_devices(&dev), keys(), opts.clone()).unwrap();
    for i in 0..10 {
        store
            .append(NewRecord::message(format!("m{i}"), "c", 0, body(i, 200)))
            .unwrap();
    }
    drop(store); // a clean close writes a checkpoint; the next writes form the tail
    let store = Store::open(as_devices(&dev), keys(), opts.clone()).unwrap();
    let first_tail = store.next_seq();
    for i in 0..10 {
        store
            .append(NewRecord::message(format!("t{i}"), "c", 0, body(i, 200)))
            .unwrap();
    }
    let loc = store.get(first_tail + 2).unwrap().location;
    // Simulate a crash (no clean checkpoint): cut power with nothing pending, after a bit flip.
    let mut cfg = FaultConfig::new(4);
    cfg.power_cut_after_ops = Some(0);
    dev.set_config(cfg);
    drop(store);
    dev.power_cut();
    dev.flip_bit(loc.zone, loc.offset + 140, 3);
    match Store::open(as_devices(&dev), keys(), opts) {
        Err(Error::Corrupt { at, .. }) => assert_eq!(at.zone, loc.zone),
        Err(e) => panic!("unexpected error {e}"),
        Ok(s) => panic!(
            "opened with a hole in acknowledged data (log ends at {}): {:?} {:?}",
            s.next_seq(),
            s.open_report(),
            s.get(first_tail + 2).map(|r| r.location)
        ),
    }
}
