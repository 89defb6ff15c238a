//! Integrity a regulator can check: signed tree heads, inclusion and
//! consistency proofs, export bundles verified offline, and every tampered
//! proof, tree head or bundle rejected.

use std::time::Duration;

use firmware_config::Role;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use stele_engine::compliance::audit::Actor;
use stele_engine::format::merkle::{self, MemoryTree};
use stele_engine::integrity::export::{verify_bundle, Bundle};
use stele_engine::NewRecord;
use stele_tests::{Archive, Scratch, DAY_US};

#[test]
fn bundles_verify_offline_and_prove_the_log_only_grew() {
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    let store = a.create(64);
    let mut seqs = Vec::new();
    for i in 0..40 {
        seqs.push(a.put(
            &store,
            &format!("m{i}"),
            if i % 2 == 0 { "deal-1" } else { "deal-2" },
            "tom",
            150,
        ));
    }
    let kept = store.sign_tree_head().unwrap();
    assert!(kept.verify(None));
    assert_eq!(kept.head.tree_size, 40);
    for i in 40..70 {
        seqs.push(a.put(&store, &format!("m{i}"), "deal-1", "tom", 150));
    }
    let pk = store.tree_head_public_key().unwrap();
    let wanted: Vec<u64> = store
        .by_conversation("deal-1", usize::MAX)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    let bundle = store.export_bundle(&wanted, 100).unwrap();
    let report = verify_bundle(&bundle, Some(&pk), Some(&kept)).unwrap();
    assert_eq!(report.records, wanted.len() as u64);
    assert_eq!(report.with_content, wanted.len() as u64);
    assert!(report.previous_head_linked && report.consistency_checked >= 1);
    // The bundle survives a JSON round trip, as a file would.
    let text = serde_json::to_string_pretty(&bundle).unwrap();
    let back: Bundle = serde_json::from_str(&text).unwrap();
    verify_bundle(&back, Some(&pk), None).unwrap();
    // The wrong pinned key, or a kept head the bundle does not cover, fails.
    assert!(verify_bundle(&bundle, Some(&"00".repeat(32)), None).is_err());
    let mut forged = kept.clone();
    forged.head.root[0] ^= 1;
    assert!(verify_bundle(&bundle, Some(&pk), Some(&forged)).is_err());

    // Proofs survive key rotation and crypto-shredding.
    store
        .rotate_kek(&Actor::new("k", &[Role::KeyAdmin]), "rotation")
        .unwrap();
    a.time.pass(11 * DAY_US);
    stele_tests::attest(
        &store,
        a.time.system_us.load(std::sync::atomic::Ordering::SeqCst),
    );
    store
        .request_erasure(&Actor::new("d", &[Role::Erasure]), "deal-2", "Art. 17")
        .unwrap();
    let all: Vec<u64> = (0..70).collect();
    let bundle = store.export_bundle(&all, 100).unwrap();
    let report = verify_bundle(&bundle, Some(&pk), Some(&kept)).unwrap();
    assert_eq!(
        report.erased, 20,
        "deal-2's records are provably there, their content gone"
    );
    assert_eq!(
        report.with_content, 50,
        "the rest, including the tree head signed at seq 40"
    );
}

#[test]
fn every_tampered_bundle_is_rejected() {
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    let store = a.create(64);
    for i in 0..12 {
        a.put(&store, &format!("m{i}"), "chat", "ann", 80);
    }
    let kept = store.sign_tree_head().unwrap();
    for i in 12..20 {
        a.put(&store, &format!("m{i}"), "chat", "ann", 80);
    }
    let pk = store.tree_head_public_key().unwrap();
    let bundle = store.export_bundle(&[0, 3, 7, 12, 19], 10).unwrap();
    verify_bundle(&bundle, Some(&pk), Some(&kept)).unwrap();
    let original = serde_json::to_value(&bundle).unwrap();
    // Every place a value can be changed.
    fn paths(v: &Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, x)| paths(x, [at.clone(), vec![k.clone()]].concat(), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| paths(x, [at.clone(), vec![i.to_string()]].concat(), out)),
            _ => out.push(at),
        }
    }
    let mut all = Vec::new();
    paths(&original, Vec::new(), &mut all);
    let mut rng = StdRng::seed_from_u64(7);
    let mut tried = 0;
    for path in &all {
        for _ in 0..3 {
            let mut v = original.clone();
            let mut x = &mut v;
            for p in path {
                x = match x {
                    Value::Object(m) => m.get_mut(p).unwrap(),
                    Value::Array(a) => &mut a[p.parse::<usize>().unwrap()],
                    _ => unreachable!(),
                };
            }
            *x = match x.clone() {
                Value::String(s) if !s.is_empty() => {
                    let mut b = s.into_bytes();
                    let i = rng.random_range(0..b.len());
                    b[i] = if b[i] == b'a' { b'b' } else { b'a' };
                    Value::String(String::from_utf8_lossy(&b).into_owned())
                }
                Value::String(_) => Value::String("x".into()),
                Value::Number(n) => Value::from(n.as_i64().unwrap_or(0) + rng.random_range(1..5)),
                Value::Bool(b) => Value::Bool(!b),
                Value::Null => Value::from(1),
                other => other,
            };
            if v == original {
                continue;
            }
            tried += 1;
            let verdict = serde_json::from_value::<Bundle>(v)
                .map_err(|e| e.to_string())
                .and_then(|b| verify_bundle(&b, Some(&pk), Some(&kept)).map(|_| ()));
            assert!(verdict.is_err(), "a change at {path:?} went unnoticed");
        }
    }
    assert!(tried > 100, "{tried}");
}

#[test]
fn tree_heads_are_signed_at_zone_seals_with_the_zone_root() {
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    let store = a.create(64);
    store.close().unwrap();
    let mut a2 = Archive::new(dir.path());
    a2.time = a.time.clone();
    let store = a2
        .open_with(|o| o.tree_head_interval = Some(Duration::from_secs(3600)))
        .unwrap();
    for i in 0..200 {
        store
            .append(NewRecord::message(format!("z{i}"), "c", 0, vec![7u8; 500]))
            .unwrap();
    }
    // Give the signer time to act on the seals.
    let mut heads = Vec::new();
    for _ in 0..100 {
        heads = store.tree_heads(usize::MAX).unwrap();
        if heads.iter().filter(|h| h.head.zone.is_some()).count() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let zoned: Vec<_> = heads
        .iter()
        .filter_map(|h| h.head.zone.map(|z| (h, z)))
        .collect();
    assert!(zoned.len() >= 3, "{} heads", heads.len());
    for (h, z) in zoned {
        assert!(h.verify(None));
        let leaves: Vec<merkle::Hash> = (z.first_seq..z.end_seq)
            .map(|s| store.leaf_data(s).unwrap().hash())
            .collect();
        assert_eq!(
            merkle::root(&MemoryTree(leaves), z.end_seq - z.first_seq).unwrap(),
            z.root
        );
        assert_eq!(store.merkle_root(h.head.tree_size).unwrap(), h.head.root);
    }
}

#[test]
fn background_scrub_runs_on_its_schedule() {
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    let store = std::sync::Arc::new(a.create(64));
    for i in 0..50 {
        a.put(&store, &format!("m{i}"), "c", "x", 200);
    }
    store.start_background_scrub(stele_engine::BackgroundScrub {
        interval: Duration::from_millis(200),
        mode: stele_engine::integrity::scrub::ScrubMode::Full,
        bytes_per_sec: Some(50_000_000),
    });
    let mut reports = Vec::new();
    for _ in 0..100 {
        reports = store.scrub_reports(10).unwrap();
        if reports.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reports.len() >= 2, "{} reports", reports.len());
    assert!(reports
        .iter()
        .all(|r| r.damage_count == 0 && r.frames_checked >= 50));
}

/// A tree head kept from a longer log than the bundle's says the log was
/// rolled back, instead of only that the bundle proves nothing.
#[test]
fn a_kept_tree_head_beyond_the_bundle_names_a_rollback() {
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    let store = a.create(64);
    for i in 0..30 {
        a.put(&store, &format!("m{i}"), "deal-1", "tom", 150);
    }
    let pk = store.tree_head_public_key().unwrap();
    let old = store.export_bundle(&[0, 1, 2], 100).unwrap();
    for i in 30..50 {
        a.put(&store, &format!("m{i}"), "deal-1", "tom", 150);
    }
    let kept = store.sign_tree_head().unwrap();
    let err = verify_bundle(&old, Some(&pk), Some(&kept)).unwrap_err();
    assert!(
        err.contains("shorter than the tree head you kept") && err.contains("rolled back"),
        "{err}"
    );
    store.close().unwrap();
}
