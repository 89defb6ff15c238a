//! Power cuts during zone reclaim: whatever instant the power fails (before
//! the audit record is durable, between it and the superblock, between the
//! superblock and the erase, before the index forgets the zone), the store
//! reopens, held and unexpired records all read back, a reclaimed record is
//! either intact or cleanly gone, the chain verifies, and a second reclaim
//! finishes the job. `STELE_RECLAIM_CRASH_POINTS=N` runs more points.

use std::sync::Arc;

use firmware_config::Role;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use stele_engine::compliance::audit::{Actor, Criteria};
use stele_engine::io::device::FaultConfig;
use stele_engine::time::clock::ManualTime;
use stele_engine::{Error, NewRecord, Store, StoreOptions};
use stele_tests::*;

const ZONE: u64 = 64 << 10;
const ZONES: u32 = 24;

fn options(dir: &std::path::Path, time: &Arc<ManualTime>) -> StoreOptions {
    let mut o = small_options(&dir.join("index.redb"));
    o.zone_size = ZONE;
    o.retention = short_retention();
    o.time = time.clone();
    o
}

fn crash_during_reclaim(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let time = ManualTime::starting_at(EPOCH_2026_US);
    let dev = fault_device("sim-reclaim", FaultConfig::new(seed), ZONE, ZONES);
    let opts = options(dir.path(), &time);
    let store = Store::create(as_devices(&dev), keys(), opts.clone()).unwrap();
    let mut old = Vec::new();
    let mut keep = Vec::new();
    for i in 0..140u64 {
        // The held records come last, with a few strays among the old ones.
        let conv = if i >= 110 || i % 37 == 5 {
            "keep"
        } else {
            "old"
        };
        let b = body(seed ^ i, rng.random_range(50..400));
        let r = store
            .append(NewRecord::message(format!("r{i}"), conv, 0, b.clone()))
            .unwrap();
        if conv == "keep" { &mut keep } else { &mut old }.push((r.seq, b));
    }
    let legal = Actor::new("legal", &[Role::LegalHold]);
    store
        .place_hold(
            &legal,
            "H",
            Criteria {
                conversation: Some("keep".into()),
                ..Default::default()
            },
            "matter",
        )
        .unwrap();
    time.pass(11 * DAY_US);
    stele_tests::attest(
        &store,
        time.system_us.load(std::sync::atomic::Ordering::SeqCst),
    );
    let op = Actor::new("op", &[Role::Operator]);
    let mut cfg = FaultConfig::new(seed.wrapping_mul(104_729));
    cfg.power_cut_after_ops = Some(rng.random_range(1..40));
    dev.set_config(cfg);
    match store.reclaim(&op, "nightly") {
        Ok(_) | Err(Error::Poisoned { .. }) | Err(Error::Io { .. }) | Err(Error::Closed) => {}
        Err(e) => panic!("seed {seed}: unexpected reclaim error {e}"),
    }
    drop(store);
    dev.power_cut();
    if rng.random_bool(0.5) {
        let _ = std::fs::remove_file(dir.path().join("index.redb"));
    }
    let store = Store::open(as_devices(&dev), keys(), opts.clone())
        .unwrap_or_else(|e| panic!("seed {seed}: reopen after a cut during reclaim: {e}"));
    let check = |store: &Store, stage: &str| {
        for (seq, b) in &keep {
            let r = store
                .get(*seq)
                .unwrap_or_else(|e| panic!("seed {seed} {stage}: held seq {seq} lost: {e}"));
            assert_eq!(&r.body, b, "seed {seed} {stage}: held seq {seq}");
        }
        for (seq, b) in &old {
            match store.get(*seq) {
                Ok(r) => assert_eq!(&r.body, b, "seed {seed} {stage}: seq {seq} altered"),
                Err(Error::NotFound { .. }) => {}
                Err(e) => panic!("seed {seed} {stage}: seq {seq} neither intact nor gone: {e}"),
            }
        }
        store
            .verify()
            .unwrap_or_else(|e| panic!("seed {seed} {stage}: chain after reclaim crash: {e}"));
    };
    check(&store, "after the cut");
    // A second reclaim finishes the job, and the store keeps working.
    let v = store
        .reclaim(&op, "again")
        .unwrap_or_else(|e| panic!("seed {seed}: second reclaim: {e}"));
    assert!(v.iter().all(|z| z.kept_because.is_some()) || !v.is_empty());
    check(&store, "after the second reclaim");
    store
        .append(NewRecord::message("after", "new", 0, b"ok".to_vec()))
        .unwrap();
    drop(store);
    let store = Store::open(as_devices(&dev), keys(), opts).unwrap();
    check(&store, "after a clean reopen");
    let gone = old.iter().filter(|(s, _)| store.get(*s).is_err()).count();
    assert!(
        gone > 0,
        "seed {seed}: the second reclaim reclaimed something"
    );
}

#[test]
fn power_cuts_during_reclaim_lose_nothing_kept() {
    let n = std::env::var("STELE_RECLAIM_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200u64);
    for seed in 0..n {
        crash_during_reclaim(seed);
    }
}
