//! Append, read back by every key, reopen, reindex: the engine end to end on real files.

use stele_engine::{FrameKind, NewRecord};
use stele_tests::*;

#[test]
fn append_read_reopen_reindex() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir_store(dir.path(), 64);
    let t0 = 1_700_000_000_000_000i64;
    for i in 0..500u64 {
        let r = store
            .append(NewRecord::message(format!("msg-{i}"), format!("conv-{}", i % 7), t0 + i as i64 * 1000, body(i, 300)))
            .unwrap();
        assert_eq!(r.seq, i);
    }
    let r = store.get(123).unwrap();
    assert_eq!(r.record_id, "msg-123");
    assert_eq!(r.conversation_id, "conv-4");
    assert_eq!(r.body, body(123, 300));
    assert_eq!(r.kind, FrameKind::Message);
    assert_eq!(r.timestamp_us, t0 + 123_000);
    let by_id = store.by_record_id("msg-77", 10).unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].seq, 77);
    let conv = store.by_conversation("conv-3", 1000).unwrap();
    assert_eq!(conv.iter().map(|r| r.seq).collect::<Vec<_>>(), (0..500).filter(|i| i % 7 == 3).collect::<Vec<_>>());
    let range = store.by_time(t0 + 10_000, t0 + 20_000, 100).unwrap();
    assert_eq!(range.iter().map(|r| r.seq).collect::<Vec<_>>(), (10..20).collect::<Vec<_>>());
    assert!(store.by_record_id("nope", 10).unwrap().is_empty());
    assert!(store.get(500).is_err());
    let sealed_before = store.stats().zones_sealed.load(std::sync::atomic::Ordering::Relaxed);
    assert!(sealed_before > 0, "500 x 300 bytes fill more than one 64 KiB zone");
    let digest = store.index_digest().unwrap();
    let v = store.verify().unwrap();
    assert_eq!(v.frames, 500);
    store.close().unwrap();

    let store = reopen_dir_store(dir.path()).unwrap();
    assert_eq!(store.next_seq(), 500);
    assert_eq!(store.open_report().discarded_tail_bytes, 0);
    assert_eq!(store.get(499).unwrap().body, body(499, 300));
    assert_eq!(store.index_digest().unwrap(), digest);
    let n = store.reindex().unwrap();
    assert_eq!(n, 500);
    assert_eq!(store.index_digest().unwrap(), digest, "a rebuilt index is identical");
    // Appends continue the chain after reopen.
    assert_eq!(store.append(NewRecord::message("after", "c", t0, b"x".to_vec())).unwrap().seq, 500);
    assert_eq!(store.verify().unwrap().frames, 501);
}
