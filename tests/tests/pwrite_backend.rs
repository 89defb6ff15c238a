//! The pwrite + fdatasync fallback (used where io_uring is unavailable) is a
//! complete write path: forced here for this test process only.

use stele_engine::io::device::IoBackend;
use stele_engine::NewRecord;
use stele_tests::*;

#[test]
fn store_works_on_the_pwrite_fallback_and_reports_it() {
    // This test binary is its own process and sets the variable before any device exists.
    std::env::set_var("STELE_IO_BACKEND", "pwrite");
    let dir = Scratch::new();
    let store = dir_store(dir.path(), 32);
    assert_eq!(store.open_report().io_backend, IoBackend::Pwrite);
    for i in 0..300u64 {
        store
            .append(NewRecord::message(format!("m{i}"), "c", 0, body(i, 400)))
            .unwrap();
    }
    store.close().unwrap();
    let store = reopen_dir_store(dir.path()).unwrap();
    assert_eq!(store.open_report().io_backend, IoBackend::Pwrite);
    assert_eq!(store.verify().unwrap().frames, 300);
    assert_eq!(store.get(299).unwrap().body, body(299, 400));
}
