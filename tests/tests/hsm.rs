//! The key hierarchy on a real PKCS#11 token (SoftHSM2): the KEK is made
//! inside the token and never leaves it; data keys are wrapped by it; many
//! rotations of data keys and of the KEK keep every record readable; wrong
//! PIN, missing token and missing module are clear errors.
//!
//! One test function: a PKCS#11 module is initialised once per process, and
//! SoftHSM reads its configuration (SOFTHSM2_CONF) at that moment.

use std::sync::Arc;

use firmware_config::Role;
use stele_engine::compliance::audit::Actor;
use stele_engine::io::device::{Geometry, ZoneDirDevice};
use stele_engine::time::clock::ManualTime;
use stele_engine::{Error, KeyProvider, Keyring, NewRecord, Pkcs11Config, Pkcs11Kek, Store};
use stele_tests::softhsm::{module, SoftHsm};
use stele_tests::{short_retention, small_options, Scratch, DAY_US, EPOCH_2026_US};
use zeroize::Zeroizing;

fn config(label: &str, pin: &str) -> Pkcs11Config {
    Pkcs11Config {
        module: module(),
        token_label: label.into(),
        pin: Zeroizing::new(pin.into()),
    }
}

fn open_store(
    dir: &std::path::Path,
    time: &Arc<ManualTime>,
    pin: &str,
    create: bool,
) -> stele_engine::Result<Store> {
    let kek = Pkcs11Kek::open(&config("stele-test", pin))?;
    let ks = dir.join("keys/keystore.redb");
    let ring = Arc::new(if create {
        Keyring::create(Box::new(kek), &ks, 1)?
    } else {
        Keyring::open(Box::new(kek), &ks, 1)?
    });
    let mut o = small_options(&dir.join("index.redb"));
    o.keyring = Some(ring.clone());
    o.retention = short_retention();
    o.time = time.clone();
    if create {
        let dev = ZoneDirDevice::create(
            &dir.join("data"),
            Geometry {
                zone_size: o.zone_size,
                zone_count: 64,
            },
        )?;
        Store::create(vec![Arc::new(dev)], ring.root_keys(), o)
    } else {
        let dev = ZoneDirDevice::open(&dir.join("data"))?;
        Store::open(vec![Arc::new(dev)], ring.root_keys(), o)
    }
}

#[test]
fn key_hierarchy_on_softhsm() {
    let dir = Scratch::new();
    let hsm = SoftHsm::new(dir.path(), "stele-test", "4711");
    std::env::set_var("SOFTHSM2_CONF", &hsm.conf);

    // Clear errors for a wrong PIN, a missing token and a missing module.
    match Pkcs11Kek::open(&config("stele-test", "0000")) {
        Err(Error::KeyProvider { reason, .. }) => assert!(reason.contains("wrong PIN"), "{reason}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a wrong PIN logged in"),
    }
    match Pkcs11Kek::open(&config("no-such-token", "4711")) {
        Err(Error::KeyProvider { reason, .. }) => {
            assert!(
                reason.contains("no initialised token labelled \"no-such-token\""),
                "{reason}"
            );
            assert!(
                reason.contains("stele-test"),
                "names the tokens present: {reason}"
            );
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("found a token that does not exist"),
    }
    let mut missing = config("stele-test", "4711");
    missing.module = dir.path().join("no-such-module.so");
    assert!(
        matches!(Pkcs11Kek::open(&missing), Err(Error::KeyProvider { reason, .. }) if reason.contains("does not exist"))
    );

    // Wrapping inside the token.
    {
        let kek = Pkcs11Kek::open(&config("stele-test", &hsm.pin)).unwrap();
        assert_eq!(
            kek.current_generation().unwrap(),
            1,
            "the first KEK is generated on the token"
        );
        let key = [0x5a; 32];
        let w = kek.wrap(1, &key, b"purpose").unwrap();
        assert_ne!(&w[12..44], &key[..], "the wrapped key is not the key");
        assert_eq!(*kek.unwrap(1, &w, b"purpose").unwrap(), key);
        assert!(kek.unwrap(1, &w, b"another purpose").is_err());
        let mut bad = w.clone();
        bad[20] ^= 1;
        assert!(kek.unwrap(1, &bad, b"purpose").is_err());
    }

    // A store whose data keys are wrapped by the HSM's KEK: many data-key generations, several KEK rotations.
    let time = ManualTime::starting_at(EPOCH_2026_US);
    let store = open_store(dir.path(), &time, &hsm.pin, true).unwrap();
    let mut seqs = Vec::new();
    for day in 0..15 {
        for conv in ["c1", "c2", "c3"] {
            let ts = time.system_us.load(std::sync::atomic::Ordering::SeqCst);
            let r = store
                .append(NewRecord::message(
                    format!("{conv}-{day}"),
                    conv,
                    ts,
                    format!("day {day} in {conv}"),
                ))
                .unwrap();
            seqs.push((r.seq, format!("{conv}-{day}")));
        }
        time.pass(DAY_US + 1);
    }
    assert_eq!(store.keyring().unwrap().keys().unwrap().len(), 45);
    assert!(store.keyring().unwrap().provider().contains("pkcs11"));
    let admin = Actor::new("kai", &[Role::KeyAdmin]);
    for _ in 0..3 {
        let r = store.rotate_kek(&admin, "rotation drill").unwrap();
        assert_eq!(r.rewrapped, 46);
    }
    store.close().unwrap();

    // Reopen with the token: every record reads back; only the newest KEK is left on the token.
    let store = open_store(dir.path(), &time, &hsm.pin, false).unwrap();
    for (seq, id) in &seqs {
        assert_eq!(&store.get(*seq).unwrap().record_id, id);
    }
    store.verify().unwrap();
    store.close().unwrap();
    {
        let kek = Pkcs11Kek::open(&config("stele-test", &hsm.pin)).unwrap();
        assert_eq!(kek.generations().unwrap(), vec![4]);
    }

    // Crypto-shredding on the HSM-backed keyring.
    time.pass(11 * DAY_US);
    let store = open_store(dir.path(), &time, &hsm.pin, false).unwrap();
    stele_tests::attest(
        &store,
        time.system_us.load(std::sync::atomic::Ordering::SeqCst),
    );
    let dpo = Actor::new("dora", &[Role::Erasure]);
    let (_, state) = store
        .request_erasure(&dpo, "c2", "Art. 17 request")
        .unwrap();
    assert!(
        matches!(
            state,
            stele_engine::compliance::erasure::ErasureState::Executed { .. }
        ),
        "{state:?}"
    );
    for (seq, id) in &seqs {
        let r = store.get(*seq);
        if id.starts_with("c2-") {
            assert!(matches!(r, Err(Error::Erased { .. })), "{id}");
        } else {
            assert_eq!(&r.unwrap().record_id, id);
        }
    }
    store.close().unwrap();

    // The wrong PIN cannot open the store.
    assert!(matches!(
        open_store(dir.path(), &time, "1111", false),
        Err(Error::KeyProvider { .. })
    ));
}
