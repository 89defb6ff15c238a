//! Append, read back by every key, reopen, reindex: the engine end to end on real files.

use stele_engine::{FrameKind, NewRecord};
use stele_tests::*;

#[test]
fn append_read_reopen_reindex() {
    let dir = Scratch::new();
    let store = dir_store(dir.path(), 64);
    let t0 = 1_700_000_000_000_000i64;
    for i in 0..500u64 {
        let r = store
            .append(NewRecord::message(
                format!("msg-{i}"),
                format!("conv-{}", i % 7),
                t0 + i as i64 * 1000,
                body(i, 300),
            ))
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
    assert_eq!(
        conv.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..500).filter(|i| i % 7 == 3).collect::<Vec<_>>()
    );
    let range = store.by_time(t0 + 10_000, t0 + 20_000, 100).unwrap();
    assert_eq!(
        range.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (10..20).collect::<Vec<_>>()
    );
    assert!(store.by_record_id("nope", 10).unwrap().is_empty());
    assert!(store.get(500).is_err());
    let sealed_before = store
        .stats()
        .zones_sealed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sealed_before > 0,
        "500 x 300 bytes fill more than one 64 KiB zone"
    );
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
    assert_eq!(
        store.index_digest().unwrap(),
        digest,
        "a rebuilt index is identical"
    );
    // Appends continue the chain after reopen.
    assert_eq!(
        store
            .append(NewRecord::message("after", "c", t0, b"x".to_vec()))
            .unwrap()
            .seq,
        500
    );
    assert_eq!(store.verify().unwrap().frames, 501);
}

#[test]
fn many_concurrent_producers_get_dense_unique_sequence_numbers() {
    let dir = Scratch::new();
    let store = dir_store(dir.path(), 1024);
    let per = 1500u64;
    let producers = 8u64;
    let mut seqs: Vec<(u64, u64, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..producers)
            .map(|p| {
                let store = &store;
                s.spawn(move || {
                    // Half the producers pipeline, half wait for each append: neither holds up the other.
                    let mut out = Vec::new();
                    let mut pending = Vec::new();
                    for i in 0..per {
                        let rec = NewRecord::message(
                            format!("p{p}-{i}"),
                            format!("p{p}"),
                            i as i64,
                            body(p * 100_000 + i, 64),
                        );
                        if p % 2 == 0 {
                            pending.push((i, store.submit(rec).unwrap()));
                        } else {
                            out.push((store.append(rec).unwrap().seq, p, i));
                        }
                    }
                    for (i, pa) in pending {
                        out.push((pa.wait().unwrap().seq, p, i));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    seqs.sort();
    assert_eq!(seqs.len() as u64, per * producers);
    for (k, (seq, p, i)) in seqs.iter().enumerate() {
        assert_eq!(*seq, k as u64, "sequence numbers are dense and unique");
        if k % 97 == 0 {
            let r = store.get(*seq).unwrap();
            assert_eq!(r.record_id, format!("p{p}-{i}"));
            assert_eq!(r.body, body(p * 100_000 + i, 64));
        }
    }
    // Each producer's records are in its own order within its conversation.
    let conv = store.by_conversation("p3", usize::MAX).unwrap();
    assert_eq!(
        conv.iter().map(|r| r.record_id.clone()).collect::<Vec<_>>(),
        (0..per).map(|i| format!("p3-{i}")).collect::<Vec<_>>()
    );
    assert!(
        store
            .stats()
            .batches
            .load(std::sync::atomic::Ordering::Relaxed)
            < per * producers,
        "appends were grouped into batches"
    );
    assert_eq!(store.verify().unwrap().frames, per * producers);
}

#[test]
fn media_blobs_stream_verify_and_deduplicate() {
    let dir = Scratch::new();
    let store = dir_store(dir.path(), 128);
    // 200 KiB of varied bytes spans 25 chunks of 8 KiB and several 64 KiB zones.
    let data: Vec<u8> = (0..200u32 << 10)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    let a = store.put_blob(&data[..], "conv-1", 5).unwrap();
    assert!(!a.deduplicated);
    assert_eq!(a.len, data.len() as u64);
    let used = store.next_seq();
    store.sync_index().unwrap();
    let b = store.put_blob(&data[..], "conv-1", 6).unwrap();
    assert!(
        b.deduplicated,
        "identical media is stored once per data subject"
    );
    assert_ne!(b.seq, a.seq, "each use gets its own manifest");
    assert_eq!(
        store.next_seq(),
        used + 1,
        "only a manifest was written for the duplicate"
    );
    let mut out = Vec::new();
    store.read_blob(b.seq, &mut out).unwrap();
    assert_eq!(out, data);
    // Another data subject never shares chunks (so erasing one cannot take the other's media).
    let other = store.put_blob(&data[..], "conv-2", 6).unwrap();
    assert!(!other.deduplicated);
    assert_eq!(
        store.next_seq(),
        used + 1 + used,
        "the second subject stores its own chunks and manifest"
    );
    let mut out = Vec::new();
    assert_eq!(store.read_blob(a.seq, &mut out).unwrap(), data.len() as u64);
    assert_eq!(out, data);
    let sha: [u8; 32] = {
        use std::io::Write;
        let mut h = Sha256Sink::default();
        h.write_all(&data).unwrap();
        h.finish()
    };
    assert_eq!(a.sha256, sha);
    assert_eq!(store.find_blob(&sha).unwrap(), Some(a.seq));
    assert_eq!(
        store.find_blobs(&sha, 10).unwrap(),
        vec![a.seq, b.seq, other.seq]
    );
    // A blob differing in one byte shares all other chunks and is stored as a new blob.
    let mut data2 = data.clone();
    data2[100_000] ^= 1;
    let before = store.next_seq();
    store.sync_index().unwrap();
    let c = store.put_blob(&data2[..], "conv-1", 7).unwrap();
    assert!(!c.deduplicated);
    assert_eq!(
        store.next_seq() - before,
        2,
        "one new chunk and one manifest"
    );
    let mut out = Vec::new();
    store.read_blob(c.seq, &mut out).unwrap();
    assert_eq!(out, data2);
    // Reading a message as a blob is a typed error.
    let m = store
        .append(NewRecord::message("m", "c", 0, b"not media".to_vec()))
        .unwrap();
    assert!(matches!(
        store.read_blob(m.seq, Vec::new()),
        Err(stele_engine::Error::InvalidInput { .. })
    ));
}

/// SHA-256 through the engine's own dependency, to check the blob digest independently of put_blob.
#[derive(Default)]
struct Sha256Sink(Vec<u8>);
impl std::io::Write for Sha256Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl Sha256Sink {
    fn finish(self) -> [u8; 32] {
        let out = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut child = out;
        child.stdin.take().unwrap().write_all(&self.0).unwrap();
        let o = child.wait_with_output().unwrap();
        let hexs = String::from_utf8(o.stdout).unwrap();
        hex::decode(&hexs[..64]).unwrap().try_into().unwrap()
    }
}

#[test]
fn a_dropped_store_has_let_go_of_everything_it_opened() {
    // Large chunks are sealed on the sealing threads, which are not joined:
    // they must let go of the store before the builder sees their frames, or
    // the index is still open when drop returns and the reopen below fails.
    let dir = Scratch::new();
    let blob: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    drop(dir_store(dir.path(), 64));
    for round in 0..30 {
        let store = reopen_dir_store(dir.path())
            .unwrap_or_else(|e| panic!("round {round}: reopen right after drop: {e}"));
        let mut one = blob.clone();
        one[0] = round as u8;
        store.put_blob(&one[..], "c", 1).unwrap();
        drop(store);
    }
    let store = reopen_dir_store(dir.path()).unwrap();
    assert_eq!(store.verify().unwrap().frames, store.next_seq());
    store.close().unwrap();
}

/// A reader that gives `good` bytes, then fails.
struct FailingReader {
    good: usize,
}

impl std::io::Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.good == 0 {
            return Err(std::io::Error::other("the camera upload dropped"));
        }
        let n = buf.len().min(self.good);
        buf[..n].fill(0x5a);
        self.good -= n;
        Ok(n)
    }
}

/// A writer that takes `room` bytes, then fails.
struct FullWriter {
    room: usize,
}

impl std::io::Write for FullWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::other("no space left on the export disk"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_blob_stream_is_a_typed_error_and_stores_no_blob() {
    let dir = Scratch::new();
    let store = dir_store(dir.path(), 64);
    let err = store
        .put_blob(
            FailingReader { good: 10_000 },
            "conv",
            1_700_000_000_000_000,
        )
        .expect_err("the source failed");
    match &err {
        stele_engine::Error::Stream { done, source, .. } => {
            assert!(*done <= 10_000, "{err}");
            assert!(source.to_string().contains("camera upload"), "{err}");
        }
        other => panic!("expected a stream error, got {other:?}"),
    }
    store.sync_index().unwrap();
    let manifests = (0..store.next_seq())
        .filter(|&s| store.get(s).is_ok_and(|r| r.kind == FrameKind::Manifest))
        .count();
    assert_eq!(manifests, 0, "no manifest for a blob whose source failed");

    let blob = store
        .put_blob(&vec![7u8; 20_000][..], "conv", 1_700_000_000_000_000)
        .unwrap();
    let err = store
        .read_blob(blob.seq, FullWriter { room: 5_000 })
        .expect_err("the destination failed");
    assert!(
        matches!(&err, stele_engine::Error::Stream { done, .. } if *done <= 5_000),
        "{err:?}"
    );
    let mut out = Vec::new();
    assert_eq!(store.read_blob(blob.seq, &mut out).unwrap(), 20_000);
    assert_eq!(out, vec![7u8; 20_000]);
    store.close().unwrap();
}
