//! Appends records to a zone-directory store and dies without closing it,
//! as a process killed by SIGKILL does: no final checkpoint, no clean
//! shutdown. Used by the tamper tests.
//!
//! `killed_writer DIR ANCHORS N`: creates the store in DIR if absent,
//! anchors it in ANCHORS, appends N records, makes the index durable, aborts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use stele_engine::crypto::anchor::{AnchorPlace, DirAnchor};
use stele_engine::io::device::{Geometry, ZoneDirDevice};
use stele_engine::{NewRecord, Store};
use stele_tests::{body, keys, small_options};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, anchors, n] = &args[..] else {
        eprintln!("usage: killed_writer DIR ANCHORS N");
        std::process::exit(2);
    };
    let dir = Path::new(dir);
    let n: u64 = n.parse().expect("N is a number");
    let mut opts = small_options(&dir.join("index.redb"));
    // No checkpoint after the first: only the records' own frames say they exist.
    opts.commit.checkpoint_interval = Duration::from_secs(3600);
    opts.commit.checkpoint_bytes = u64::MAX;
    let place: Arc<dyn AnchorPlace> = Arc::new(DirAnchor::new(anchors));
    opts.anchors = vec![place];
    let geometry = Geometry {
        zone_size: opts.zone_size,
        zone_count: 16,
    };
    let dev = ZoneDirDevice::create(&dir.join("data"), geometry).expect("create device");
    let store = Store::create(vec![Arc::new(dev)], keys(), opts).expect("create store");
    for i in 0..n {
        let rec = NewRecord::message(format!("m{i}"), "c", i as i64, body(i, 300));
        store.append(rec).expect("append");
    }
    store.persist_index().expect("persist index");
    std::process::abort();
}
