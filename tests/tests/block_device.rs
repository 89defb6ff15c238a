//! A store on a real block device (a loop device over a file): created with
//! O_DIRECT on the device node, filled across several zones, reopened through
//! the same path as any device, every record read back, the chain verified,
//! and a reused device refused.

use std::process::Command;
use std::sync::Arc;

use stele_engine::io::device::{open_path, Device, FileDevice, Geometry};
use stele_engine::{Error, NewRecord, Store};
use stele_tests::*;

/// A loop device, detached on drop.
struct Loop {
    dev: String,
    _file: tempfile::NamedTempFile,
}

impl Loop {
    fn new(bytes: u64) -> Loop {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(bytes).unwrap();
        let o = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file.path())
            .output()
            .expect("losetup runs (util-linux)");
        assert!(
            o.status.success(),
            "losetup needs root and loop devices: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Loop {
            dev: String::from_utf8(o.stdout).unwrap().trim().to_string(),
            _file: file,
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

#[test]
fn a_store_on_a_loop_block_device() {
    let lo = Loop::new(64 << 20);
    let dir = tempfile::tempdir().unwrap();
    let geometry = Geometry {
        zone_size: 1 << 20,
        zone_count: 48,
    };
    let path = std::path::Path::new(&lo.dev);
    let dev = FileDevice::create(path, geometry).unwrap();
    assert!(dev.direct_io(), "O_DIRECT on the device node");
    let mut opts = small_options(&dir.path().join("index.redb"));
    opts.zone_size = geometry.zone_size;
    let store =
        Store::create(vec![Arc::new(dev) as Arc<dyn Device>], keys(), opts.clone()).unwrap();
    let mut pending = Vec::new();
    for i in 0..3000u64 {
        pending.push(
            store
                .submit(NewRecord::message(
                    format!("b{i}"),
                    "blk",
                    i as i64,
                    body(i, 900),
                ))
                .unwrap(),
        );
    }
    let seqs: Vec<u64> = pending.into_iter().map(|p| p.wait().unwrap().seq).collect();
    assert!(
        store
            .zones()
            .states()
            .iter()
            .filter(|z| z.condition == stele_engine::log::zone::ZoneCondition::Sealed)
            .count()
            >= 2
    );
    store.close().unwrap();
    // Reopened as any device path is: a block device becomes a FileDevice.
    let store = Store::open(vec![open_path(path).unwrap()], keys(), opts.clone()).unwrap();
    for (i, s) in seqs.iter().enumerate() {
        assert_eq!(store.get(*s).unwrap().body, body(i as u64, 900));
    }
    assert_eq!(store.verify().unwrap().frames, 3000);
    store.close().unwrap();
    // The device now holds a store: creating another on it is refused, and nothing is changed.
    let again = FileDevice::create(path, geometry).unwrap();
    assert!(matches!(
        Store::create(
            vec![Arc::new(again) as Arc<dyn Device>],
            keys(),
            opts.clone()
        ),
        Err(Error::AlreadyExists { .. })
    ));
    let store = Store::open(vec![open_path(path).unwrap()], keys(), opts).unwrap();
    assert_eq!(store.next_seq(), 3000);
}
