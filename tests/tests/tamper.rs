//! What a root user does to the files below the store, and what the store
//! then says: a forged checkpoint is refused, the open zone cannot be cut
//! without the store noticing, and a restored old copy is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stele_engine::compliance::audit::Actor;
use stele_engine::crypto::anchor::{AnchorPlace, DirAnchor};
use stele_engine::io::device::{Device, Geometry, ZoneDirDevice, META_COPY_BYTES};
use stele_engine::log::superblock::Superblock;
use stele_engine::{Error, NewRecord, Store, StoreOptions};
use stele_tests::*;

fn options(dir: &Path, anchors: &Path) -> StoreOptions {
    let mut o = small_options(&dir.join("index.redb"));
    let place: Arc<dyn AnchorPlace> = Arc::new(DirAnchor::new(anchors));
    o.anchors = vec![place];
    o
}

fn create(dir: &Path, anchors: &Path) -> Store {
    let opts = options(dir, anchors);
    let dev = ZoneDirDevice::create(
        &dir.join("data"),
        Geometry {
            zone_size: opts.zone_size,
            zone_count: 16,
        },
    )
    .unwrap();
    Store::create(vec![Arc::new(dev)], keys(), opts).unwrap()
}

fn open(dir: &Path, anchors: &Path) -> stele_engine::Result<Store> {
    open_with(dir, options(dir, anchors))
}

fn open_with(dir: &Path, opts: StoreOptions) -> stele_engine::Result<Store> {
    let dev = ZoneDirDevice::open(&dir.join("data"))?;
    Store::open(vec![Arc::new(dev)], keys(), opts)
}

fn put(s: &Store, from: u64, n: u64) {
    for i in from..from + n {
        s.append(NewRecord::message(
            format!("m{i}"),
            "c",
            i as i64,
            body(i, 300),
        ))
        .unwrap();
    }
}

fn chattr(flags: &str, path: &Path) {
    let ok = std::process::Command::new("chattr")
        .args(["-R", flags])
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "chattr {flags} {}", path.display());
}

fn operator() -> Actor {
    Actor::new("ops", &[firmware_config::Role::Operator])
}

/// The open zone's file: the newest zone file on the device.
fn open_zone_file(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("zone-")
        })
        .collect();
    files.sort();
    files.pop().expect("a zone file")
}

#[test]
fn a_forged_checkpoint_is_refused_as_tampering() {
    let scratch = Scratch::new();
    let (dir, anchors) = (scratch.path().join("s"), scratch.path().join("anchors"));
    let s = create(&dir, &anchors);
    put(&s, 0, 40);
    s.close().unwrap();
    // Rewrite both superblock slots with a checkpoint 20 records earlier and
    // a valid CRC, as someone with the format document and no key would.
    let sb_path = dir.join("data/superblock");
    let mut file = std::fs::read(&sb_path).unwrap();
    for copy in 0..2usize {
        let at = copy * META_COPY_BYTES as usize;
        let slot = &file[at..at + META_COPY_BYTES as usize];
        let Some(mut sb) = Superblock::decode("t", slot).unwrap() else {
            continue;
        };
        sb.next_seq = sb.next_seq.saturating_sub(20);
        sb.generation += 10;
        let enc = sb.encode();
        file[at..at + enc.len()].copy_from_slice(&enc);
    }
    std::fs::write(&sb_path, &file).unwrap();
    match open(&dir, &anchors) {
        Err(Error::Tampered { what, .. }) => assert!(what.contains("superblock"), "{what}"),
        Err(e) => panic!("expected tampering to be named, got {e}"),
        Ok(_) => panic!("a forged checkpoint was accepted"),
    }
}

#[test]
fn the_open_zone_cannot_be_cut_and_a_cut_log_is_refused_new_records() {
    let scratch = Scratch::new();
    let (dir, anchors) = (scratch.path().join("s"), scratch.path().join("anchors"));
    // A writer killed after 30 acknowledged records, with no checkpoint since the first.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_killed_writer"))
        .arg(&dir)
        .arg(&anchors)
        .arg("30")
        .status()
        .unwrap();
    assert!(!status.success(), "the writer dies");
    let zone = open_zone_file(&dir);
    let len = std::fs::metadata(&zone).unwrap().len();
    assert!(len > 8192, "the records are in the open zone ({len} bytes)");
    // The file is append-only: not even root truncates or rewrites it.
    let cut = std::fs::OpenOptions::new().write(true).open(&zone);
    assert!(cut.is_err(), "an open zone file opened for rewriting");
    assert!(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&zone)
            .unwrap()
            .set_len(len / 2)
            .is_err(),
        "an open zone file was truncated"
    );
    // Root lifts the flag and cuts the newest records off.
    chattr("-a", &zone);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&zone)
        .unwrap()
        .set_len(8192)
        .unwrap();
    let s = open(&dir, &anchors).expect("the store opens to be read");
    let cut = s.log_cut().expect("the cut is found");
    assert!(cut.index_next > cut.log_next, "{cut:?}");
    assert!(
        Path::new(&cut.evidence).exists(),
        "the index that saw them is kept"
    );
    match s.append(NewRecord::message("new", "c", 1, b"x".to_vec())) {
        Err(Error::LogCutShort { .. }) => {}
        other => panic!("a record was accepted after the cut: {other:?}"),
    }
    let trail = s.audit_trail(10_000).unwrap();
    assert!(trail
        .iter()
        .any(|e| e.event.action.name() == "log-cut-short"));
    s.close().unwrap();
    // It stays refused across opens until an operator acknowledges it.
    let s = open(&dir, &anchors).unwrap();
    assert!(s.log_cut().is_some(), "the refusal survives a reopen");
    let clerk = Actor::new("clerk", &[firmware_config::Role::Auditor]);
    assert!(matches!(
        s.acknowledge_log_cut(&clerk, "no"),
        Err(Error::Unauthorized { .. })
    ));
    s.acknowledge_log_cut(&operator(), "compared with the replica")
        .unwrap();
    s.append(NewRecord::message("new", "c", 1, b"x".to_vec()))
        .unwrap();
    s.close().unwrap();
    let s = open(&dir, &anchors).unwrap();
    assert!(s.log_cut().is_none());
    s.close().unwrap();
}

#[test]
fn a_restored_old_copy_is_refused_at_open() {
    let scratch = Scratch::new();
    let root = scratch.path();
    let (dir, anchors, backup) = (root.join("s"), root.join("anchors"), root.join("backup"));
    let s = create(&dir, &anchors);
    put(&s, 0, 20);
    s.close().unwrap();
    copy_dir(&dir, &backup);
    let s = open(&dir, &anchors).unwrap();
    put(&s, 20, 30);
    s.close().unwrap();
    // The old copy goes back in place of the store.
    chattr("-i", &dir);
    chattr("-a", &dir);
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&backup, &dir);
    match open(&dir, &anchors) {
        Err(Error::RolledBack { anchor, reason }) => {
            assert!(anchor.contains("anchor directory"), "{anchor}");
            assert!(reason.contains("generation"), "{reason}");
        }
        Err(e) => panic!("expected a rollback refusal, got {e}"),
        Ok(_) => panic!("a restored old copy was opened"),
    }
    // Nothing was written to the old copy by the refused open: it stays refused.
    assert!(matches!(
        open(&dir, &anchors),
        Err(Error::RolledBack { .. })
    ));
    // An operator may open it anyway; that is in the audit trail.
    let mut opts = options(&dir, &anchors);
    opts.accept_rollback = Some((Actor::new("clerk", &[]), "try".into()));
    assert!(matches!(
        open_with(&dir, opts),
        Err(Error::Unauthorized { .. })
    ));
    let mut opts = options(&dir, &anchors);
    opts.accept_rollback = Some((operator(), "the newest copy burnt".into()));
    let s = open_with(&dir, opts).unwrap();
    let old_end = s.next_seq();
    assert!(old_end < 50, "the old copy is open ({old_end})");
    let trail = s.audit_trail(10_000).unwrap();
    assert!(trail
        .iter()
        .any(|e| e.event.action.name() == "rollback-accepted"));
    s.close().unwrap();
    open(&dir, &anchors).expect("re-anchored").close().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cp -r {} {}", from.display(), to.display());
}

#[test]
fn a_device_never_writes_anywhere_but_its_zone_file_end() {
    let scratch = Scratch::new();
    let data = scratch.path().join("data");
    let dev = ZoneDirDevice::create(
        &data,
        Geometry {
            zone_size: 64 << 10,
            zone_count: 4,
        },
    )
    .unwrap();
    let block = stele_engine::io::buffer::AlignedBuf::zeroed(4096);
    dev.write_durable(&[stele_engine::io::device::ZoneWrite {
        zone: 0,
        offset: 0,
        data: &block,
    }])
    .unwrap();
    // A write past the end would leave a hole the append would not honour.
    assert!(dev
        .write_durable(&[stele_engine::io::device::ZoneWrite {
            zone: 0,
            offset: 3 * 4096,
            data: &block,
        }])
        .is_err());
    assert_eq!(std::fs::metadata(dev.zone_path(0)).unwrap().len(), 4096);
}
