//! Damage is contained, listed and recoverable: a corrupt index is set
//! aside and rebuilt from the log; a missing or short zone file leaves every
//! other zone readable, and verify and scrub go on past it, naming it; a
//! full scrub lists every damaged zone.

use std::path::Path;

use stele_engine::integrity::scrub::ScrubMode;
use stele_engine::{Error, NewRecord};
use stele_tests::*;

/// A store on a zone-directory device with `n` messages over several zones
/// (64 KiB zones), closed; returns the zone each message lies in.
fn filled(dir: &Path, n: u64) -> Vec<u32> {
    let store = dir_store(dir, 32);
    let mut zones = Vec::new();
    for i in 0..n {
        let r = store
            .append(NewRecord::message(
                format!("m{i}"),
                "c",
                i as i64,
                body(i, 900),
            ))
            .unwrap();
        zones.push(store.get(r.seq).unwrap().location.zone);
    }
    store.close().unwrap();
    zones
}

fn zone_file(dir: &Path, zone: u32) -> std::path::PathBuf {
    dir.join("data").join(format!("zone-{zone:06}"))
}

/// Sealed zone files are immutable: let the test damage one, as root can.
fn writable(path: &Path) {
    let ok = std::process::Command::new("chattr")
        .arg("-i")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chattr -i {}", path.display());
}

fn scribble(path: &Path, at: u64, len: usize, seed: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut x = seed | 1;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f.write_all(&bytes).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn a_corrupt_index_is_set_aside_and_rebuilt_from_the_log() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    filled(dir, 300);
    let index = dir.join("index.redb");
    let len = std::fs::metadata(&index).unwrap().len();
    // Random bytes over most of the file, as in the field: every offset past the header.
    for (k, at) in (8192..len.saturating_sub(4096)).step_by(16384).enumerate() {
        scribble(&index, at, 4096, 0x9e37 + k as u64);
    }
    let store = reopen_dir_store(dir).expect("a damaged index does not stop the store");
    let why = store
        .open_report()
        .index_rebuilt
        .clone()
        .expect("the rebuild is reported");
    assert!(why.contains("kept at"), "{why}");
    let kept: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .collect();
    assert_eq!(kept.len(), 1, "the damaged file is kept as evidence");
    for i in [0u64, 150, 299] {
        let r = store.by_record_id(&format!("m{i}"), 10).unwrap();
        assert_eq!(r.len(), 1, "m{i}");
        assert_eq!(r[0].body, body(i, 900));
    }
    assert_eq!(store.by_conversation("c", usize::MAX).unwrap().len(), 300);
    assert_eq!(store.verify().unwrap().frames, 300);
    let digest = store.index_digest().unwrap();
    store.reindex().unwrap();
    assert_eq!(
        store.index_digest().unwrap(),
        digest,
        "a rebuild gives the same index"
    );
    store.close().unwrap();
}

#[test]
fn damage_found_after_open_is_marked_and_rebuilt_at_the_next_open() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    filled(dir, 50);
    let index = dir.join("index.redb");
    // An earlier access found damage (the mark it leaves beside the file).
    std::fs::write(dir.join("index.redb.damaged"), "reading it failed: test").unwrap();
    let store = reopen_dir_store(dir).unwrap();
    assert!(store.open_report().index_rebuilt.is_some());
    assert!(
        !dir.join("index.redb.damaged").exists(),
        "the mark is cleared"
    );
    assert!(index.exists());
    assert_eq!(store.by_conversation("c", usize::MAX).unwrap().len(), 50);
    store.close().unwrap();
    let again = reopen_dir_store(dir).unwrap();
    assert!(
        again.open_report().index_rebuilt.is_none(),
        "a sound index is kept"
    );
    again.close().unwrap();
}

#[test]
fn a_missing_zone_file_is_contained_and_listed() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    let zones = filled(dir, 400);
    let victim = zones[150];
    assert!(
        victim != zones[0] && victim != *zones.last().unwrap(),
        "a sealed zone in the middle"
    );
    let path = zone_file(dir, victim);
    writable(&path);
    std::fs::remove_file(&path).unwrap();

    let store = reopen_dir_store(dir).expect("one missing zone does not close the archive");
    let report = store.open_report().clone();
    assert_eq!(report.damaged_zones.len(), 1, "{:?}", report.damaged_zones);
    let d = &report.damaged_zones[0];
    assert_eq!(d.zone, victim);
    assert!(d.reason.contains("missing"), "{}", d.reason);
    let held: Vec<u64> = (0..400u64)
        .filter(|&i| zones[i as usize] == victim)
        .collect();
    assert_eq!(
        (d.first_seq, d.end_seq),
        (held[0], held[held.len() - 1] + 1)
    );
    assert!(report.read_only_at.is_none(), "a sealed zone: writes go on");

    // Every other zone is served; the damaged one says so.
    for i in [0u64, 399, held[0] - 1, held[held.len() - 1] + 1] {
        assert_eq!(store.get(i).unwrap().body, body(i, 900), "seq {i}");
    }
    assert!(matches!(store.get(held[0]), Err(Error::ZoneDamaged { .. })));
    let listed = store.listing("c", false, usize::MAX).unwrap();
    assert_eq!(listed.len(), 400, "every record is listed");
    let unreadable = listed.iter().filter(|(_, r)| r.is_err()).count();
    assert_eq!(unreadable, held.len());

    // Verify checks every other frame and names the zone.
    let v = store.verify().unwrap();
    assert_eq!(v.frames, 400 - held.len() as u64);
    assert_eq!(v.damaged_zones.len(), 1);
    // A full scrub goes to the end and lists it once, precisely.
    let s = store.scrub(ScrubMode::Full, None).unwrap();
    assert_eq!(s.frames_checked, 400 - held.len() as u64);
    let listed: Vec<_> = s
        .damage
        .iter()
        .filter(|x| x.kind == "zone-damaged")
        .collect();
    assert_eq!(listed.len(), 1, "{:?}", s.damage);
    assert_eq!(listed[0].zone, victim);
    assert_eq!(s.damage_count, 1, "{:?}", s.damage);

    // New records are still taken, and an index rebuilt without the zone still serves the rest.
    store
        .append(NewRecord::message("after", "c", 1, b"after".to_vec()))
        .unwrap();
    store.reindex().unwrap();
    assert_eq!(
        store.by_record_id("m399", 1).unwrap()[0].body,
        body(399, 900)
    );
    assert_eq!(store.by_record_id("after", 1).unwrap().len(), 1);
    store.close().unwrap();
}

#[test]
fn a_full_scrub_lists_every_damaged_zone() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    let zones = filled(dir, 400);
    let mut sealed: Vec<u32> = zones.clone();
    sealed.dedup();
    let last = *zones.last().unwrap();
    sealed.retain(|&z| z != last);
    assert!(sealed.len() >= 5, "{sealed:?}");
    let (zeroed, short, gone) = (sealed[1], sealed[2], sealed[4]);
    for z in [zeroed, short, gone] {
        writable(&zone_file(dir, z));
    }
    let len = std::fs::metadata(zone_file(dir, zeroed)).unwrap().len();
    std::fs::write(zone_file(dir, zeroed), vec![0u8; len as usize]).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(zone_file(dir, short))
        .unwrap();
    f.set_len(8192).unwrap();
    drop(f);
    std::fs::remove_file(zone_file(dir, gone)).unwrap();

    let store = reopen_dir_store(dir).unwrap();
    let s = store.scrub(ScrubMode::Full, None).unwrap();
    let hurt: std::collections::BTreeSet<u32> = s
        .damage
        .iter()
        .filter(|d| d.zone != u32::MAX)
        .map(|d| d.zone)
        .collect();
    assert_eq!(
        hurt,
        [zeroed, short, gone].into_iter().collect(),
        "{:?}",
        s.damage
    );
    let in_zeroed = zones.iter().filter(|&&z| z == zeroed).count();
    assert!(
        s.damage.iter().filter(|d| d.zone == zeroed).count() >= in_zeroed,
        "every frame of the zeroed zone is listed"
    );
    let after = zones.iter().filter(|&&z| z > gone).count() as u64;
    assert!(
        s.frames_checked >= after,
        "the scrub went on past the damage to the end"
    );
    // The recorded report (the JSON kept in the log) carries all of it.
    let kept = store.scrub_reports(1).unwrap();
    assert_eq!(kept[0].damage_count, s.damage_count);
    assert_eq!(
        serde_json::to_value(&kept[0].damage).unwrap(),
        serde_json::to_value(&s.damage).unwrap()
    );
    store.close().unwrap();
}

#[test]
fn a_missing_active_zone_opens_the_store_for_reading_only() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    let zones = filled(dir, 200);
    let active = *zones.last().unwrap();
    let path = zone_file(dir, active);
    let _ = std::process::Command::new("chattr")
        .arg("-a")
        .arg(&path)
        .status();
    std::fs::remove_file(&path).unwrap();
    let store = reopen_dir_store(dir).expect("opens for reading");
    assert_eq!(store.open_report().read_only_at, Some(active));
    assert_eq!(store.get(0).unwrap().body, body(0, 900));
    let refused = store.append(NewRecord::message("new", "c", 1, b"x".to_vec()));
    assert!(
        matches!(refused, Err(Error::ZoneDamaged { .. })),
        "{refused:?}"
    );
    let v = store.verify().unwrap();
    assert_eq!(v.damaged_zones.len(), 1);
    store.close().unwrap();
}

#[test]
fn verify_names_the_damaged_frame_not_the_padding_before_it() {
    let scratch = Scratch::new();
    let dir = scratch.path();
    filled(dir, 40);
    let store = reopen_dir_store(dir).unwrap();
    // A frame that starts a batch at a block boundary, after the padding of the one before.
    let victim = (1..39u64)
        .map(|s| store.get(s).unwrap())
        .find(|r| r.location.offset > 0 && r.location.offset % 4096 == 0)
        .expect("single-record batches start at block boundaries");
    let (zone, offset) = (victim.location.zone, victim.location.offset);
    let before = store.get(victim.seq - 1).unwrap();
    assert_eq!(before.location.zone, zone);
    store.close().unwrap();
    let path = zone_file(dir, zone);
    writable(&path);
    scribble(&path, offset + 40, 32, 7);

    let store = reopen_dir_store(dir).unwrap();
    match store.verify() {
        Err(Error::Corrupt { at, .. }) => {
            assert_eq!(
                (at.zone, at.offset),
                (zone, offset),
                "names the frame itself"
            )
        }
        other => panic!("verify must find the damaged frame: {other:?}"),
    }
    let s = store.scrub(ScrubMode::Full, None).unwrap();
    assert!(
        s.damage
            .iter()
            .any(|d| d.seq == victim.seq && d.offset == offset),
        "{:?}",
        s.damage
    );
    store.close().unwrap();
}
