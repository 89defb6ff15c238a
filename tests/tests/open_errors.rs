//! Bad stores, wrong keys and damaged bytes get clear, typed errors that say
//! where, and nothing stored is modified.

use std::sync::Arc;

use stele_engine::io::device::{
    Device, FaultConfig, FileDevice, Geometry, ZoneDirDevice, META_BYTES,
};
use stele_engine::{Error, Keys, NewRecord, Store};
use stele_tests::*;

fn file_store(dir: &std::path::Path) -> (std::path::PathBuf, stele_engine::StoreOptions) {
    let path = dir.join("dev.img");
    let opts = small_options(&dir.join("index.redb"));
    let dev = FileDevice::create(
        &path,
        Geometry {
            zone_size: opts.zone_size,
            zone_count: 8,
        },
    )
    .unwrap();
    let store = Store::create(vec![Arc::new(dev)], keys(), opts.clone()).unwrap();
    for i in 0..50u64 {
        store
            .append(NewRecord::message(format!("m{i}"), "c", 0, body(i, 300)))
            .unwrap();
    }
    store.close().unwrap();
    (path, opts)
}

fn open_file(
    path: &std::path::Path,
    k: Keys,
    opts: &stele_engine::StoreOptions,
) -> stele_engine::Result<Store> {
    let dev = FileDevice::open(path)?;
    Store::open(vec![Arc::new(dev)], k, opts.clone())
}

#[test]
fn not_a_store() {
    let dir = Scratch::new();
    let path = dir.path().join("blank.img");
    std::fs::write(&path, vec![0u8; (META_BYTES + (1 << 20)) as usize]).unwrap();
    let e = open_file(&path, keys(), &small_options(&dir.path().join("i.redb")))
        .err()
        .unwrap();
    assert!(matches!(e, Error::NotAStore { .. }), "{e}");
    assert!(e.to_string().contains("blank.img"), "{e}");
    let empty = dir.path().join("emptydir");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(
        ZoneDirDevice::open(&empty),
        Err(Error::NotAStore { .. })
    ));
}

#[test]
fn wrong_key_is_refused_and_nothing_changes() {
    let dir = Scratch::new();
    let (path, opts) = file_store(dir.path());
    let before = std::fs::read(&path).unwrap();
    let e = open_file(&path, Keys::from_master(1, &[0x11; 32]), &opts)
        .err()
        .unwrap();
    assert!(matches!(e, Error::WrongKey { .. }), "{e}");
    let e = open_file(&path, Keys::from_master(2, &TEST_KEY), &opts)
        .err()
        .unwrap();
    assert!(matches!(e, Error::WrongKey { .. }), "{e}");
    assert!(
        std::fs::read(&path).unwrap() == before,
        "a refused open must not modify the device"
    );
    let s = open_file(&path, keys(), &opts).unwrap();
    assert_eq!(s.get(49).unwrap().body, body(49, 300));
}

#[test]
fn newer_format_is_refused() {
    let dir = Scratch::new();
    let (path, opts) = file_store(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    for slot in 0..2usize {
        let base = slot * (META_BYTES as usize / 2);
        let len = u32::from_le_bytes(bytes[base + 12..base + 16].try_into().unwrap()) as usize;
        if &bytes[base..base + 8] != b"STELESB\0" {
            continue;
        }
        bytes[base + 8..base + 12].copy_from_slice(&99u32.to_le_bytes());
        let crc = crc32c(&bytes[base..base + len - 4]);
        bytes[base + len - 4..base + len].copy_from_slice(&crc.to_le_bytes());
    }
    std::fs::write(&path, &bytes).unwrap();
    let e = open_file(&path, keys(), &opts).err().unwrap();
    assert!(matches!(e, Error::NewerFormat { found: 99, .. }), "{e}");
}

fn crc32c(b: &[u8]) -> u32 {
    // CRC32C (Castagnoli), bitwise: independent of the engine's implementation.
    let mut crc = !0u32;
    for &x in b {
        crc ^= x as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn truncated_device_is_refused() {
    let dir = Scratch::new();
    let (path, opts) = file_store(dir.path());
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(META_BYTES + 4096).unwrap();
    let e = open_file(&path, keys(), &opts).err().unwrap();
    assert!(matches!(e, Error::Truncated { .. }), "{e}");
}

#[test]
fn damaged_frames_are_errors_with_their_location_never_wrong_data() {
    let dir = Scratch::new();
    let dev = fault_device("sim-damage", FaultConfig::new(5), 64 << 10, 8);
    let opts = small_options(&dir.path().join("index.redb"));
    let store = Store::create(as_devices(&dev), keys(), opts).unwrap();
    for i in 0..40u64 {
        store
            .append(NewRecord::message(format!("m{i}"), "c", 0, body(i, 300)))
            .unwrap();
    }
    // A bit flip in the payload of seq 7.
    let loc = store.get(7).unwrap().location;
    dev.flip_bit(loc.zone, loc.offset + 200, 1);
    match store.get(7) {
        Err(Error::Corrupt { at, reason }) => {
            assert_eq!(
                (at.device.as_str(), at.zone, at.offset),
                ("sim-damage", loc.zone, loc.offset)
            );
            assert!(reason.contains("CRC32C"), "{reason}");
        }
        other => panic!("expected a damaged-frame error, got {other:?}"),
    }
    assert!(store.verify().is_err(), "verify reports the damage");
    // A misdirected write: seq 9's block lands where seq 10 belongs.
    let l9 = store.get(9).unwrap().location;
    let l10 = store.get(10).unwrap().location;
    let mut block = vec![0u8; 4096];
    dev.read_zone(l9.zone, l9.offset, &mut block).unwrap();
    dev.write_zone(l10.zone, l10.offset, &block).unwrap();
    dev.flush().unwrap();
    match store.get(10) {
        Err(Error::Corrupt { reason, at }) => {
            assert!(
                reason.contains("misdirected") && reason.contains("found seq 9"),
                "{reason}"
            );
            assert_eq!(at.offset, l10.offset);
        }
        other => panic!("expected a misdirected-write error, got {other:?}"),
    }
    // A latent read error is an I/O error naming the zone and offset.
    let l20 = store.get(20).unwrap().location;
    dev.fail_reads_at(l20.zone, l20.offset);
    match store.get(20) {
        Err(Error::Io { zone, offset, .. }) => {
            assert_eq!((zone, offset), (Some(l20.zone), Some(l20.offset)))
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    // Undamaged records still read.
    assert_eq!(store.get(30).unwrap().body, body(30, 300));
}

#[test]
fn bad_input_is_a_typed_error() {
    let dir = Scratch::new();
    let store = dir_store(dir.path(), 8);
    let long = "x".repeat(2000);
    assert!(matches!(
        store.append(NewRecord::message(long, "c", 0, b"x".to_vec())),
        Err(Error::InvalidInput { .. })
    ));
    let huge = vec![0u8; 70 << 10];
    assert!(
        matches!(
            store.append(NewRecord::message("big", "c", 0, huge)),
            Err(Error::InvalidInput { .. })
        ),
        "larger than a zone"
    );
    assert!(matches!(store.get(12345), Err(Error::NotFound { .. })));
    assert_eq!(store.next_seq(), 0, "nothing was stored by refused input");
}
