//! The keystore is checked against the log at open: a keystore restored from
//! an older backup (missing keys the log's records are encrypted with) stops
//! new records so that no key id is reused, loses nothing, and a newer
//! keystore puts everything back.

use std::path::Path;

use firmware_config::Role;
use stele_engine::compliance::audit::Actor;
use stele_engine::{Error, NewRecord};
use stele_tests::{Archive, Scratch};

fn keystore(a: &Archive) -> std::path::PathBuf {
    a.dir.join("keys/keystore.redb")
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {from:?} to {to:?}: {e}"));
}

fn bodies(store: &stele_engine::Store, conversation: &str) -> Vec<Result<Vec<u8>, String>> {
    store
        .listing(conversation, false, usize::MAX)
        .expect("listing")
        .into_iter()
        .map(|(_, r)| r.map(|r| r.body).map_err(|e| e.to_string()))
        .collect()
}

/// The names of the audit trail's events, oldest first.
fn audit_names(store: &stele_engine::Store) -> Vec<String> {
    store
        .audit_trail(usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.event.action.name().to_string())
        .collect()
}

/// Conversation `old` is written under key 1, then the keystore is backed
/// up, then conversation `new` gets key 2.
fn archive_with_backup(dir: &Path) -> (Archive, std::path::PathBuf) {
    let a = Archive::new(dir);
    let store = a.create(16);
    for i in 0..5 {
        a.put(&store, &format!("old-{i}"), "old", "alice", 200);
    }
    store.close().expect("close");
    let backup = dir.join("keystore-backup.redb");
    copy(&keystore(&a), &backup);
    let store = a.open().expect("open");
    for i in 0..5 {
        a.put(&store, &format!("new-{i}"), "new", "bob", 200);
    }
    store.close().expect("close");
    (a, backup)
}

#[test]
fn an_old_keystore_stops_writes_and_a_newer_one_resumes_them() {
    let dir = Scratch::new();
    let (a, backup) = archive_with_backup(dir.path());
    let newest = dir.path().join("keystore-newest.redb");
    copy(&keystore(&a), &newest);
    copy(&backup, &keystore(&a));

    let store = a
        .open()
        .expect("an incomplete keystore still opens for reading");
    assert_eq!(store.open_report().keystore_missing, vec![2]);
    let refused = store
        .append(NewRecord::message("x", "other", 1, b"x".to_vec()).with_custodian("carol"))
        .expect_err("writes are refused while keys are missing");
    match &refused {
        Error::KeystoreIncomplete { missing, .. } => assert_eq!(missing, &vec![2]),
        e => panic!("expected KeystoreIncomplete, got {e}"),
    }
    let old = bodies(&store, "old");
    assert_eq!(old.len(), 5);
    assert!(
        old.iter().all(|b| b.is_ok()),
        "records of other keys read: {old:?}"
    );
    let new = bodies(&store, "new");
    assert_eq!(
        new.len(),
        5,
        "records under the missing key are still listed"
    );
    for b in &new {
        let e = b.as_ref().expect_err("their key is missing");
        assert!(e.contains("data key 2"), "the error names the key: {e}");
    }
    store.close().expect("close");

    copy(&newest, &keystore(&a));
    let store = a.open().expect("open with the newest keystore");
    assert!(store.open_report().keystore_missing.is_empty());
    assert!(bodies(&store, "new").iter().all(|b| b.is_ok()));
    let seq = a.put(&store, "after", "third", "carol", 100);
    let key = store.frame_bytes(seq).expect("frame").0.data_key_id;
    assert_eq!(key, 3, "the third conversation's key is a new id");
    store.close().expect("close");
}

#[test]
fn acknowledging_lost_keys_resumes_writes_without_reusing_their_ids() {
    let dir = Scratch::new();
    let (a, backup) = archive_with_backup(dir.path());
    copy(&backup, &keystore(&a));
    let store = a.open().expect("open");
    let intruder = Actor::new("mallory", &[Role::Auditor]);
    let e = store
        .acknowledge_lost_keys(&intruder, "trust me")
        .expect_err("needs the key-administrator role");
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    let kai = Actor::new("kai (keys)", &[Role::KeyAdmin]);
    let lost = store
        .acknowledge_lost_keys(&kai, "no newer keystore backup exists (ticket 7781)")
        .expect("acknowledged");
    assert_eq!(lost, vec![2]);
    let seq = a.put(&store, "after", "third", "carol", 100);
    assert_eq!(
        store.frame_bytes(seq).unwrap().0.data_key_id,
        3,
        "key id 2 is never reused"
    );
    for b in bodies(&store, "new") {
        let e = b.expect_err("lost");
        assert!(e.contains("lost"), "{e}");
    }
    let trail = audit_names(&store);
    assert!(
        trail.iter().any(|n| n == "keystore-incomplete"),
        "{trail:?}"
    );
    assert!(trail.iter().any(|n| n == "data-keys-lost"), "{trail:?}");
    store.close().expect("close");

    let store = a.open().expect("reopen");
    assert!(
        store.open_report().keystore_missing.is_empty(),
        "lost keys count as known"
    );
    a.put(&store, "later", "third", "carol", 100);
    store.close().expect("close");
}

/// The key ids the index records are part of its digest, so a rebuild that
/// restores a lost entry shows that the index it replaced differed.
#[test]
fn the_index_digest_covers_the_key_ids() {
    let dir = Scratch::new();
    let (a, _) = archive_with_backup(dir.path());
    let store = a.open().expect("open");
    let whole = store.index_digest().unwrap();
    store.close().unwrap();
    {
        const KEY_IDS: redb::TableDefinition<u32, u64> = redb::TableDefinition::new("key_ids");
        let db = redb::Database::open(a.dir.join("index.redb")).expect("index opens");
        let tx = db.begin_write().unwrap();
        tx.open_table(KEY_IDS)
            .unwrap()
            .remove(2)
            .unwrap()
            .expect("key 2 recorded");
        tx.commit().unwrap();
    }
    let store = a.open().expect("open");
    let without = store.index_digest().unwrap();
    assert_ne!(whole, without, "a missing key id changes the digest");
    store.reindex().unwrap();
    assert_eq!(
        store.index_digest().unwrap(),
        whole,
        "the rebuild restores it"
    );
    store.close().unwrap();
}

/// Records and media whose keys were lost do not stop the paths that walk
/// the log: a rebuild of the index, verify, scrub and export go on, and the
/// export says which records it could not read.
#[test]
fn lost_keys_do_not_stop_rebuild_verify_or_export() {
    let dir = Scratch::new();
    let (a, backup) = archive_with_backup(dir.path());
    let store = a.open().expect("open");
    let owner =
        stele_engine::NewRecord::message("photo", "new", 1, Vec::new()).with_custodian("bob");
    let blob = store
        .put_blob_for(&[7u8; 5000][..], &owner)
        .expect("blob under key 2");
    store.close().unwrap();
    copy(&backup, &keystore(&a));
    let store = a.open().expect("open");
    let kai = Actor::new("kai (keys)", &[Role::KeyAdmin]);
    store
        .acknowledge_lost_keys(&kai, "no newer backup")
        .expect("acknowledged");
    store
        .reindex()
        .expect("the rebuild steps over records it cannot read");
    store.verify().expect("verify too");
    let seqs: Vec<u64> = store
        .listing("new", false, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    let bundle = store.export_bundle(&seqs, 0).expect("export");
    assert!(bundle
        .records
        .iter()
        .all(|r| r.unreadable.as_deref().is_some_and(|w| w.contains("lost"))));
    store.close().unwrap();
    std::fs::remove_file(a.dir.join("index.redb")).unwrap();
    let store = a.open().expect("an index rebuilt at open over lost keys");
    assert!(
        store.read_blob(blob.seq, std::io::sink()).is_err(),
        "the blob's key is lost"
    );
    store.close().unwrap();
}

/// A keystore restored from before an erasure holds the erased keys live:
/// the store destroys them again at open and says so, and the erased
/// records stay unreadable.
#[test]
fn an_old_keystore_does_not_bring_erased_records_back() {
    use stele_engine::compliance::erasure::ErasureState;
    let dir = Scratch::new();
    let a = Archive::new(dir.path());
    let store = a.create(16);
    let seqs: Vec<u64> = (0..5)
        .map(|i| a.put(&store, &format!("p-{i}"), "patient-1", "dr-x", 200))
        .collect();
    store.close().unwrap();
    // The whole keys folder is backed up: the erasure rotates the KEK, so
    // an old keystore alone could not even be opened.
    let backup = dir.path().join("keystore-before-erasure.redb");
    let kek_backup = dir.path().join("kek-before-erasure.key");
    copy(&keystore(&a), &backup);
    copy(&a.dir.join("keys/kek.key"), &kek_backup);
    let store = a.open().unwrap();
    let dpo = Actor::new("dora (DPO)", &[Role::Erasure]);
    store
        .request_erasure(&dpo, "patient-1", "Art. 17 #12")
        .unwrap();
    a.time.pass(11 * stele_tests::DAY_US);
    stele_tests::attest(
        &store,
        a.time.system_us.load(std::sync::atomic::Ordering::SeqCst),
    );
    let st = store.process_erasures(&dpo).unwrap();
    assert!(matches!(st[0].1, ErasureState::Executed { .. }), "{st:?}");
    store.close().unwrap();

    copy(&backup, &keystore(&a));
    copy(&kek_backup, &a.dir.join("keys/kek.key"));
    let store = a.open().expect("open with the old keys");
    for &s in &seqs {
        assert!(
            matches!(store.get(s), Err(Error::Erased { .. })),
            "seq {s} stays erased"
        );
    }
    let trail = audit_names(&store);
    assert!(trail.iter().any(|n| n == "erasure-reapplied"), "{trail:?}");
    store.close().unwrap();
}
