//! Compliance through the library: retention set at write time and never
//! shortened, holds, refused and recorded attempts, zone reclaim, the
//! compliance clock, key rotation and crypto-shredding.

use std::sync::atomic::Ordering;

use firmware_config::Role;
use stele_engine::compliance::audit::{Action, Actor, Criteria, Outcome};
use stele_engine::compliance::erasure::ErasureState;
use stele_engine::log::zone::ZoneCondition;
use stele_engine::{Error, Store};
use stele_tests::{Archive, Scratch, DAY_US};

fn legal() -> Actor {
    Actor::new("lena (legal)", &[Role::LegalHold])
}
fn records_officer() -> Actor {
    Actor::new("rob (records)", &[Role::Retention])
}
fn operator() -> Actor {
    Actor::new("olga (storage)", &[Role::Operator])
}
fn dpo() -> Actor {
    Actor::new("dora (DPO)", &[Role::Erasure])
}
fn key_admin() -> Actor {
    Actor::new("kai (keys)", &[Role::KeyAdmin])
}
fn intruder() -> Actor {
    Actor::new("mallory", &[Role::Auditor])
}

fn refusals(store: &Store) -> Vec<(String, String)> {
    store
        .audit_trail(usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.event.outcome, Outcome::Refused { .. }))
        .map(|e| (e.event.actor.clone(), e.event.action.name().to_string()))
        .collect()
}

fn sealed_zones(store: &Store) -> Vec<u32> {
    store
        .zones()
        .states()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.condition == ZoneCondition::Sealed)
        .map(|(i, _)| i as u32)
        .collect()
}

#[test]
fn retention_is_set_at_write_time_and_never_shortened() {
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    let store = a.create(32);
    let now = store.compliance_now_us();
    let s1 = a.put(&store, "m1", "chat-1", "alice", 100);
    let s2 = a.put(&store, "m2", "chat-2", "ceo", 100);
    let r1 = store.get(s1).unwrap();
    assert_eq!(
        r1.retain_until_us,
        now + 10 * DAY_US,
        "the default class: 10 days"
    );
    let r2 = store.get(s2).unwrap();
    assert_eq!(
        r2.retain_until_us,
        now + 2192 * DAY_US,
        "custodian ceo: FINRA 4511, 6 years"
    );

    // Event-based retention: alice left; her records are kept 30 days more.
    let until = now + 30 * DAY_US;
    let alice = Criteria {
        custodian: Some("alice".into()),
        ..Default::default()
    };
    store
        .extend_retention(
            &records_officer(),
            alice.clone(),
            until,
            "alice left the firm",
        )
        .unwrap();
    let st = store.retention_status(s1).unwrap();
    assert_eq!(
        st.stored_until_us,
        now + 10 * DAY_US,
        "the frame is never rewritten"
    );
    assert_eq!(st.effective_until_us, until);
    assert_eq!(
        store.retention_status(s2).unwrap().effective_until_us,
        r2.retain_until_us
    );

    // Every way to shorten, delete or modify is refused and recorded.
    let one = Criteria {
        seq: Some(s2),
        ..Default::default()
    };
    assert!(matches!(
        store.extend_retention(
            &records_officer(),
            one.clone(),
            now + 20 * DAY_US,
            "try to cut the ceo's record"
        ),
        Err(Error::Refused { .. })
    ));
    assert!(matches!(
        store.extend_retention(
            &records_officer(),
            alice.clone(),
            now - DAY_US,
            "a date in the past"
        ),
        Err(Error::Refused { .. })
    ));
    assert!(matches!(
        store.shorten_retention(
            &records_officer(),
            alice.clone(),
            now + DAY_US,
            "shorter please"
        ),
        Err(Error::Refused { .. })
    ));
    assert!(matches!(
        store.delete_record(&legal(), s1, "delete it"),
        Err(Error::Refused { .. })
    ));
    assert!(matches!(
        store.modify_record(&legal(), s1, "edit it"),
        Err(Error::Refused { .. })
    ));
    assert!(matches!(
        store.reset_zone(&operator(), 0, "wipe zone 0"),
        Err(Error::Refused { .. })
    ));
    assert!(matches!(
        store.extend_retention(&intruder(), alice.clone(), until + DAY_US, "no role"),
        Err(Error::Unauthorized { .. })
    ));
    assert!(matches!(
        store.extend_retention(&records_officer(), alice.clone(), until + DAY_US, "  "),
        Err(Error::InvalidInput { .. })
    ));
    let refused = refusals(&store);
    for (who, what) in [
        ("rob (records)", "retention-shortened"),
        ("lena (legal)", "record-deleted"),
        ("lena (legal)", "record-modified"),
        ("olga (storage)", "zone-reset"),
        ("mallory", "retention-extended"),
    ] {
        assert!(
            refused.contains(&(who.to_string(), what.to_string())),
            "{who} {what} not in {refused:?}"
        );
    }
    // The records are untouched.
    assert_eq!(store.get(s1).unwrap().body, r1.body);
    // Extensions live in the log: a rebuilt index has them again.
    let digest = store.index_digest().unwrap();
    store.reindex().unwrap();
    assert_eq!(store.index_digest().unwrap(), digest);
    assert_eq!(
        store.retention_status(s1).unwrap().effective_until_us,
        until
    );
    store.close().unwrap();
    let store = a.open().unwrap();
    assert_eq!(
        store.retention_status(s1).unwrap().effective_until_us,
        until
    );
}

#[test]
fn holds_need_authority_and_keep_zones_from_reclaim() {
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    // Sequential appends are one batch (one 4 KiB block) each: 16 records per 64 KiB zone.
    let store = a.create(96);
    let mut b_seqs = Vec::new();
    for i in 0..300 {
        b_seqs.push(a.put(&store, &format!("b{i}"), "chat-B", "bob", 300));
    }
    let mut a_seqs = Vec::new();
    for i in 0..300 {
        a_seqs.push(a.put(&store, &format!("a{i}"), "chat-A", "ann", 300));
    }
    let matter = Criteria {
        conversation: Some("chat-A".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.place_hold(&intruder(), "M-1", matter.clone(), "I want it"),
        Err(Error::Unauthorized { .. })
    ));
    assert!(matches!(
        store.place_hold(&legal(), "M-1", matter.clone(), ""),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        store.place_hold(&legal(), "M-1", Criteria::default(), "everything?"),
        Err(Error::InvalidInput { .. })
    ));
    let hold = store
        .place_hold(&legal(), "M-1", matter.clone(), "SEC inquiry 2026-17")
        .unwrap();
    assert_eq!(
        store.retention_status(a_seqs[0]).unwrap().held_by,
        vec![hold]
    );
    assert!(store
        .retention_status(b_seqs[0])
        .unwrap()
        .held_by
        .is_empty());

    // Nothing is reclaimable before retention ends.
    stele_tests::attest(
        &store,
        a.time.system_us.load(std::sync::atomic::Ordering::SeqCst),
    );
    let sealed = sealed_zones(&store);
    assert!(sealed.len() >= 6, "{sealed:?}");
    let v = store.reclaim(&operator(), "daily reclaim").unwrap();
    assert!(v.iter().all(|z| z.kept_because.is_some()), "{v:?}");
    assert!(matches!(
        store.reclaim(&intruder(), "free space"),
        Err(Error::Unauthorized { .. })
    ));

    // Eleven days later the B zones go; the held A zones stay.
    a.time.pass(11 * DAY_US);
    stele_tests::attest(
        &store,
        a.time.system_us.load(std::sync::atomic::Ordering::SeqCst),
    );
    let zone_file = |z: u32| dir.path().join(format!("data/zone-{z:06}"));
    let first_b_zone = store
        .zones()
        .states()
        .iter()
        .position(|s| s.first_seq == 0)
        .unwrap() as u32;
    let wp = store.zones().state(first_b_zone).unwrap().write_pointer as usize;
    let expect_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            &std::fs::read(zone_file(first_b_zone)).unwrap()[..wp],
        ))
    };
    let v = store.reclaim(&operator(), "daily reclaim").unwrap();
    let reclaimed: Vec<_> = v.iter().filter(|z| z.kept_because.is_none()).collect();
    let kept: Vec<_> = v.iter().filter(|z| z.kept_because.is_some()).collect();
    assert!(!reclaimed.is_empty() && !kept.is_empty(), "{v:?}");
    assert!(
        kept.iter().any(|z| z
            .kept_because
            .as_deref()
            .unwrap()
            .contains(&format!("legal hold {hold}"))),
        "{kept:?}"
    );
    for z in &reclaimed {
        assert!(
            z.end_seq <= a_seqs[0] + 1,
            "only zones of chat-B frames (and the boundary) go: {z:?}"
        );
        assert!(!zone_file(z.zone).exists(), "the zone file is erased");
        assert_eq!(
            store.zones().state(z.zone).unwrap().condition,
            ZoneCondition::Empty
        );
    }
    // The audit record names the zone's hash, taken before the reset.
    let trail = store.audit_trail(usize::MAX).unwrap();
    let rec = trail
        .iter()
        .find_map(|e| match &e.event.action {
            Action::ZoneReclaimed {
                zone, zone_sha256, ..
            } if *zone == first_b_zone => Some(zone_sha256.clone()),
            _ => None,
        })
        .expect("a zone-reclaimed audit record");
    assert_eq!(rec, expect_sha);
    // Reclaimed records are gone from the index; held ones read back; the chain verifies across the gap.
    assert!(matches!(store.get(b_seqs[0]), Err(Error::NotFound { .. })));
    assert_eq!(store.get(a_seqs[0]).unwrap().record_id, "a0");
    let report = store.verify().unwrap();
    assert!(report.reclaimed_ranges >= 1, "{report:?}");

    // Release needs the role and a reason; then the A zones go too.
    assert!(matches!(
        store.release_hold(&intruder(), hold, "done"),
        Err(Error::Unauthorized { .. })
    ));
    assert!(store.retention_status(a_seqs[0]).unwrap().held_by == vec![hold]);
    store
        .release_hold(&legal(), hold, "inquiry closed")
        .unwrap();
    assert!(matches!(
        store.release_hold(&legal(), hold, "again"),
        Err(Error::InvalidInput { .. })
    ));
    let v = store.reclaim(&operator(), "after release").unwrap();
    assert!(v.iter().any(|z| z.kept_because.is_none()), "{v:?}");
    assert!(matches!(store.get(a_seqs[0]), Err(Error::NotFound { .. })));

    // Reopen: recovery, index and chain hold; reclaimed zones take new data.
    let digest = store.index_digest().unwrap();
    store.close().unwrap();
    let store = a.open().unwrap();
    assert_eq!(store.index_digest().unwrap(), digest);
    store.reindex().unwrap();
    assert_eq!(
        store.index_digest().unwrap(),
        digest,
        "the rebuilt index forgets the same zones"
    );
    store.verify().unwrap();
    let before = store.next_seq();
    for i in 0..900 {
        a.put(&store, &format!("n{i}"), "chat-N", "nina", 300);
    }
    let reused = reclaimed.iter().any(|z| {
        let s = store.zones().state(z.zone).unwrap();
        s.condition != ZoneCondition::Empty && s.first_seq >= before
    });
    assert!(reused, "a reclaimed zone was written again");
    store.verify().unwrap();
    let refused = refusals(&store);
    assert!(refused.contains(&("mallory".into(), "hold-placed".into())));
    assert!(refused.contains(&("mallory".into(), "hold-released".into())));
}

#[test]
fn the_compliance_clock_cannot_be_wound() {
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    let store = a.create(64);
    for i in 0..800 {
        a.put(&store, &format!("m{i}"), "chat", "carl", 300);
    }
    let c0 = store.compliance_now_us();
    // The system clock is wound ten years forward; one real second passes.
    a.time.advance(1_000_000, 3650 * DAY_US);
    stele_tests::attest(&store, c0 + 1_000_000);
    let v = store
        .reclaim(&operator(), "try after winding the clock")
        .unwrap();
    assert!(v.iter().all(|z| z.kept_because.is_some()), "{v:?}");
    assert!(store.compliance_now_us() - c0 < 2_000_000);
    assert!(!store.retention_status(0).unwrap().expired);
    let anomalies: Vec<_> = store
        .audit_trail(usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.event.action, Action::ClockAnomaly(_)))
        .collect();
    assert_eq!(anomalies.len(), 1, "the jump is in the audit trail");
    assert_eq!(store.clock().stats.forward_jumps.load(Ordering::Relaxed), 1);
    // Rolled back: the compliance clock does not move back.
    let c1 = store.compliance_now_us();
    a.time.advance(1_000_000, -2 * 3650 * DAY_US);
    assert!(store.compliance_now_us() >= c1);
    store.close().unwrap();
    // A restart (same boot) resumes from the persisted clock, not the system clock.
    let store = a.open().unwrap();
    assert!(store.compliance_now_us() >= c1 && store.compliance_now_us() - c1 < 10_000_000);
    store.close().unwrap();
    // A new boot with the system clock ten years ahead: still not expired.
    *a.time.boot.lock().unwrap() = [7; 16];
    a.time.advance(0, 3 * 3650 * DAY_US);
    let store = a.open().unwrap();
    assert!(!store.retention_status(0).unwrap().expired);
    assert!(store
        .reclaim(&operator(), "after a reboot")
        .unwrap()
        .iter()
        .all(|z| z.kept_because.is_some()));
    // Eleven real days later the records have really left retention.
    a.time.pass(11 * DAY_US);
    assert!(store.retention_status(0).unwrap().expired);
    // Still, attested three years behind it of the truth: corroborated, nothing goes early.
    let truth = c0 + 11 * DAY_US + 10_000_000;
    stele_tests::attest(&store, truth - 3 * 365 * DAY_US);
    assert!(store
        .reclaim(&operator(), "on a clock found ahead")
        .unwrap()
        .iter()
        .all(|z| z.kept_because.is_some()));
    stele_tests::attest(&store, truth);
    assert!(store
        .reclaim(&operator(), "for real")
        .unwrap()
        .iter()
        .any(|z| z.kept_because.is_none()));
    store.close().unwrap();

    // Editing the persisted clock on the device is detected.
    let dev = stele_engine::io::device::ZoneDirDevice::open(&dir.path().join("data")).unwrap();
    let mut copies = stele_engine::log::superblock::Superblock::read_copies(&dev).unwrap();
    copies.sort_by_key(|s| s.generation);
    let mut sb = copies.pop().unwrap();
    sb.clock.compliance_us += 3650 * DAY_US;
    // Written by someone without the store's key (the superblock's MAC fails).
    sb.write_all(&[&dev], &stele_engine::Keys::from_master(1, &[0; 32]))
        .unwrap();
    drop(dev);
    match a.open() {
        Err(Error::Tampered { what, .. }) => assert!(what.contains("superblock"), "{what}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a store with an edited clock opened"),
    }
}

#[test]
fn data_keys_rotate_and_the_kek_rotates_without_rewriting_records() {
    let dir = Scratch::new();
    let mut a = Archive::new(dir.path());
    a.rotation_days = 1;
    let store = a.create(64);
    let mut seqs = Vec::new();
    for day in 0..40 {
        seqs.push(a.put(&store, &format!("d{day}"), "chat-rot", "ria", 200));
        seqs.push(a.put(&store, &format!("e{day}"), "chat-other", "ria", 200));
        a.time.pass(DAY_US + 1);
    }
    let keys = store.keyring().unwrap().keys().unwrap();
    assert_eq!(keys.len(), 80, "a key per subject per rotation period");
    let ids: std::collections::HashSet<u32> =
        seqs.iter().map(|&s| store.get(s).unwrap().key_id).collect();
    assert_eq!(
        ids.len(),
        80,
        "every period's records use that period's key"
    );
    let sealed_before: Vec<(u32, Vec<u8>)> = sealed_zones(&store)
        .into_iter()
        .map(|z| {
            (
                z,
                std::fs::read(dir.path().join(format!("data/zone-{z:06}"))).unwrap(),
            )
        })
        .collect();
    assert!(!sealed_before.is_empty());
    assert!(matches!(
        store.rotate_kek(&intruder(), "rotate"),
        Err(Error::Unauthorized { .. })
    ));
    for round in 0..3 {
        let r = store
            .rotate_kek(&key_admin(), "quarterly KEK rotation")
            .unwrap();
        assert_eq!(r.to_generation, r.from_generation + 1, "round {round}");
        assert_eq!(r.rewrapped, 81, "80 data keys and the root key");
    }
    let kek = std::fs::read_to_string(a.key_path()).unwrap();
    assert!(
        kek.contains("kek 4:") && !kek.contains("kek 1:") && !kek.contains("kek 3:"),
        "{kek}"
    );
    for (z, bytes) in &sealed_before {
        let now = std::fs::read(dir.path().join(format!("data/zone-{z:06}"))).unwrap();
        assert!(now == *bytes, "zone {z} was rewritten");
    }
    store.close().unwrap();
    let store = a.open().unwrap();
    for (i, &s) in seqs.iter().enumerate() {
        let r = store.get(s).unwrap();
        assert_eq!(
            r.record_id,
            format!("{}{}", if i % 2 == 0 { "d" } else { "e" }, i / 2)
        );
    }
    store.verify().unwrap();
    let rotations = store
        .audit_trail(usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| {
            matches!(e.event.action, Action::KekRotated { .. }) && e.event.outcome == Outcome::Done
        })
        .count();
    assert_eq!(rotations, 3);
}

#[test]
fn crypto_shredding_waits_for_retention_and_holds_then_destroys_keys() {
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    let store = a.create(64);
    let p1: Vec<u64> = (0..50)
        .map(|i| a.put(&store, &format!("p1-{i}"), "patient-1", "dr-x", 200))
        .collect();
    let p2: Vec<u64> = (0..50)
        .map(|i| a.put(&store, &format!("p2-{i}"), "patient-2", "dr-x", 200))
        .collect();
    let scan = vec![7u8; 100_000];
    let blob = store.put_blob(&scan[..], "patient-1", 0).unwrap();

    assert!(matches!(
        store.request_erasure(&intruder(), "patient-1", "please"),
        Err(Error::Unauthorized { .. })
    ));
    let (req, state) = store
        .request_erasure(&dpo(), "patient-1", "GDPR Art. 17 request #88")
        .unwrap();
    assert!(
        matches!(
            state,
            ErasureState::Waiting {
                earliest_us: Some(_),
                ..
            }
        ),
        "{state:?}"
    );
    let hold = store
        .place_hold(
            &legal(),
            "MAL-9",
            Criteria {
                conversation: Some("patient-1".into()),
                ..Default::default()
            },
            "malpractice claim",
        )
        .unwrap();
    a.time.pass(11 * DAY_US);
    stele_tests::attest(
        &store,
        a.time.system_us.load(std::sync::atomic::Ordering::SeqCst),
    );
    let st = store.process_erasures(&dpo()).unwrap();
    assert!(
        matches!(&st[0].1, ErasureState::Waiting { why, .. } if why.contains("legal hold")),
        "{st:?}"
    );
    assert!(store.get(p1[0]).is_ok(), "nothing is destroyed while held");
    store.release_hold(&legal(), hold, "claim settled").unwrap();
    let st = store.process_erasures(&dpo()).unwrap();
    let ErasureState::Executed { key_ids, records } = &st[0].1 else {
        panic!("{st:?}");
    };
    assert!(!key_ids.is_empty());
    assert_eq!(*records, 51, "50 messages and the blob's manifest");
    for &s in &p1 {
        assert!(matches!(store.get(s), Err(Error::Erased { request, .. }) if request == req));
    }
    // A listing of the conversation names every shredded record and goes on.
    let listed = store.listing("patient-1", false, usize::MAX).unwrap();
    assert_eq!(listed.len(), 51, "50 messages and the manifest");
    assert!(listed
        .iter()
        .all(|(_, r)| matches!(r, Err(Error::Erased { .. }))));
    assert_eq!(
        store.listing("patient-2", false, usize::MAX).unwrap().len(),
        50
    );
    assert!(matches!(
        store.read_blob(blob.seq, Vec::new()),
        Err(Error::Erased { .. })
    ));
    for &s in &p2 {
        assert!(store.get(s).is_ok(), "another subject is untouched");
    }
    let v = store.verify().unwrap();
    assert!(v.shredded >= 51, "{v:?}");
    // The request, the wait and the execution are audited.
    let names: Vec<String> = store
        .audit_trail(usize::MAX)
        .unwrap()
        .iter()
        .map(|e| e.event.action.name().to_string())
        .collect();
    for n in ["erasure-requested", "erasure-deferred", "erasure-executed"] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    let erasure = store.erasures().unwrap().pop().unwrap();
    assert!(erasure.executed.is_some());
    // The keys stay destroyed after a restart and a rebuild; the log was not rewritten.
    let digest = store.index_digest().unwrap();
    store.close().unwrap();
    let store = a.open().unwrap();
    assert!(matches!(store.get(p1[3]), Err(Error::Erased { .. })));
    store.reindex().unwrap();
    assert_eq!(store.index_digest().unwrap(), digest);
    assert!(store.get(p2[3]).is_ok());
}

/// Ten simulated years of a quiet archive whose tree heads are signed at
/// every zone seal: tree heads are kept as long as the longest class (six
/// years here), so every zone whose records and heads have all left
/// retention is reclaimed, year after year.
#[test]
fn zones_are_reclaimed_across_ten_years_of_tree_heads() {
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    a.create(128).close().unwrap();
    let store = a
        .open_with(|o| o.tree_head_interval = Some(std::time::Duration::from_secs(3600)))
        .unwrap();
    let mut first_of_year = Vec::new();
    let mut reclaimed = Vec::new();
    // Tree heads (by tree size) present after each year's reclaim.
    let heads = |s: &Store| -> std::collections::BTreeSet<u64> {
        s.tree_heads(usize::MAX)
            .unwrap()
            .iter()
            .map(|h| h.head.tree_size)
            .collect()
    };
    let mut heads_by_year = Vec::new();
    for year in 0..10 {
        first_of_year.push(a.put(&store, &format!("y{year}-0"), "chat", "carl", 300));
        for i in 1..100 {
            a.put(&store, &format!("y{year}-{i}"), "chat", "carl", 300);
        }
        a.time.pass(365 * DAY_US);
        stele_tests::attest(&store, a.time.system_us.load(Ordering::SeqCst));
        for z in store.reclaim(&operator(), "yearly reclaim").unwrap() {
            if z.kept_because.is_none() {
                reclaimed.push((year, z.first_seq, z.end_seq));
            }
        }
        heads_by_year.push(heads(&store));
    }
    assert!(
        !store.tree_heads(usize::MAX).unwrap().is_empty(),
        "tree heads were signed"
    );
    // Years 0 to 2 are more than six years old by the end: all of their zones went.
    let gone = |seq: u64| reclaimed.iter().any(|(_, f, e)| (*f..*e).contains(&seq));
    for year in 0..3 {
        let from = first_of_year[year];
        let to = first_of_year[year + 1];
        assert!(
            (from..to).step_by(10).all(gone),
            "year {year} ({from}..{to}) not all reclaimed: {reclaimed:?}"
        );
    }
    // Every tree head still within its six years is still there, whatever
    // zone the (asynchronous) signer put it in.
    let now = heads(&store);
    for year in 5..10 {
        let new: Vec<_> = heads_by_year[year]
            .difference(&heads_by_year[year - 1])
            .collect();
        assert!(!new.is_empty(), "tree heads were signed in year {year}");
        for size in new {
            assert!(
                now.contains(size),
                "year {year}'s tree head (size {size}) was reclaimed: {reclaimed:?}"
            );
        }
    }
    store.close().unwrap();
}

/// One validation of times everywhere: dates outside 1970..9999 are refused
/// with the field named, retention dates stay within a century, and a record
/// dated far ahead (a phone with a wrong clock) is kept without pinning its zone.
#[test]
fn times_are_validated_everywhere_and_a_future_date_pins_nothing() {
    use stele_engine::NewRecord;
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    let store = a.create(16);
    let now = store.compliance_now_us();
    let year_294247 = 9_223_372_036_854_775_807;
    for (ts, field) in [(year_294247, "record timestamp"), (-1, "record timestamp")] {
        let e = store
            .append(NewRecord::message("t", "c", ts, b"x".to_vec()))
            .expect_err("refused");
        assert!(
            matches!(e, Error::InvalidInput { .. }) && e.to_string().contains(field),
            "{e}"
        );
    }
    let mut asks = NewRecord::message("t", "c", now, b"x".to_vec());
    asks.retain_until_us = year_294247;
    let e = store
        .append(asks)
        .expect_err("a retention date past a century is refused");
    assert!(e.to_string().contains("record retain-until"), "{e}");
    let e = store
        .put_blob_for(&b"media"[..], &NewRecord::message("b", "c", -7, Vec::new()))
        .expect_err("blobs too");
    assert!(e.to_string().contains("record timestamp"), "{e}");

    let everyone = Criteria {
        conversation: Some("c".into()),
        ..Default::default()
    };
    let e = store
        .extend_retention(&records_officer(), everyone.clone(), year_294247, "forever")
        .expect_err("refused");
    assert!(e.to_string().contains("retention date"), "{e}");
    let odd = Criteria {
        from_us: Some(-5),
        ..everyone
    };
    let e = store
        .place_hold(&legal(), "M-9", odd, "matter 9")
        .expect_err("refused");
    assert!(e.to_string().contains("selection start"), "{e}");
    assert!(
        refusals(&store).is_empty(),
        "invalid input changes nothing: {:?}",
        refusals(&store)
    );

    let far = now + 60 * 365 * DAY_US;
    let seq = store
        .append(NewRecord::message(
            "future",
            "c",
            far,
            b"wrong phone clock".to_vec(),
        ))
        .expect("kept as dated")
        .seq;
    let r = store.get(seq).unwrap();
    assert_eq!(r.timestamp_us, far);
    assert!(
        r.retain_until_us <= now + DAY_US + 10 * DAY_US,
        "retention counts from at most a day ahead: {} µs after now",
        r.retain_until_us - now
    );
    store.close().unwrap();
}

/// Until a retention-shortening configuration is approved, new records are
/// refused and the store's own records keep the old, longer period.
#[test]
fn an_unapproved_shorter_configuration_shortens_nothing() {
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    a.create(16).close().unwrap();
    let config = |days: u32| {
        let text = format!("[store]\ndevices = [\"data\"]\nzone_size_mib = 1\nzones_per_device = 16\n[retention]\ndefault_class = \"chat\"\n[[retention.classes]]\nname = \"chat\"\ndays = {days}\n");
        firmware_config::Config::parse(std::path::Path::new("c.toml"), &text).expect("valid")
    };
    let open = |c: &firmware_config::Config| {
        a.open_with(|o| {
            o.configuration = firmware_config::effective::values(c);
            o.retention = c.retention_policy();
        })
        .expect("open")
    };
    open(&config(400)).close().unwrap();
    let store = open(&config(30));
    assert!(matches!(
        store.append(stele_engine::NewRecord::message("m", "c", 1, b"x".to_vec())),
        Err(Error::ConfigurationUnapproved { .. })
    ));
    let refused = store
        .audit_trail(usize::MAX)
        .unwrap()
        .into_iter()
        .rfind(|e| e.event.action.name() == "config-changed")
        .expect("the refused change is recorded");
    assert!(matches!(refused.event.outcome, Outcome::Refused { .. }));
    let kept = store.get(refused.seq).unwrap().retain_until_us - store.compliance_now_us();
    assert!(
        kept >= 399 * DAY_US,
        "the store's own records keep 400 days: {} days",
        kept / DAY_US
    );
    store.close().unwrap();
}
