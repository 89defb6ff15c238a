//! Helpers shared by the integration tests: stores on simulated and real
//! devices, and a `stele serve` process ([`daemon`]).

pub mod daemon;
pub mod roughtime;
pub mod softhsm;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use stele_engine::io::device::{Device, FaultConfig, FaultDevice, Geometry, ZoneDirDevice};
use stele_engine::{Keys, Store, StoreOptions};

pub const TEST_KEY: [u8; 32] = [0x42; 32];

pub fn keys() -> Keys {
    Keys::from_master(1, &TEST_KEY)
}

/// Options for small test stores: 64 KiB zones, small batches and chunks, frequent checkpoints.
pub fn small_options(index: &Path) -> StoreOptions {
    let mut o = StoreOptions::new(index);
    o.zone_size = 64 << 10;
    o.chunk_bytes = 8 << 10;
    o.commit.batch_bytes_max = 16 << 10;
    o.commit.checkpoint_bytes = 32 << 10;
    o.commit.checkpoint_interval = Duration::from_millis(50);
    o
}

/// A fault-injecting device attached with `zones` zones of the options' size.
pub fn fault_device(
    name: &str,
    config: FaultConfig,
    zone_size: u64,
    zones: u32,
) -> Arc<FaultDevice> {
    let d = Arc::new(FaultDevice::new(name, config));
    d.attach(Geometry {
        zone_size,
        zone_count: zones,
    })
    .expect("attach");
    d
}

pub fn as_devices(d: &Arc<FaultDevice>) -> Vec<Arc<dyn Device>> {
    vec![d.clone() as Arc<dyn Device>]
}

/// A temporary directory whose sealed, immutable zone files are released (chattr -i) before removal.
pub struct Scratch(pub tempfile::TempDir);

impl Scratch {
    pub fn new() -> Self {
        Scratch(tempfile::tempdir().expect("tempdir"))
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(self.0.path())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A new store in `dir` on a zone-directory device.
pub fn dir_store(dir: &Path, zones: u32) -> Store {
    let opts = small_options(&dir.join("index.redb"));
    let dev = ZoneDirDevice::create(
        &dir.join("data"),
        Geometry {
            zone_size: opts.zone_size,
            zone_count: zones,
        },
    )
    .expect("create device");
    Store::create(vec![Arc::new(dev)], keys(), opts).expect("create store")
}

pub fn reopen_dir_store(dir: &Path) -> stele_engine::Result<Store> {
    let opts = small_options(&dir.join("index.redb"));
    let dev = ZoneDirDevice::open(&dir.join("data"))?;
    Store::open(vec![Arc::new(dev)], keys(), opts)
}

/// Deterministic message body for record `i`.
pub fn body(i: u64, len: usize) -> Vec<u8> {
    let mut b = format!("message {i} ").into_bytes();
    while b.len() < len {
        b.push(b'a' + (b.len() as u64 * 7 + i) as u8 % 26);
    }
    b.truncate(len.max(1));
    b
}

/// Append `n` messages `m0..m{n-1}` to conversation `c`, with bodies `body(i, len)`.
pub fn fill(store: &Store, n: u64, len: usize) {
    for i in 0..n {
        store
            .append(stele_engine::NewRecord::message(
                format!("m{i}"),
                "c",
                i as i64,
                body(i, len),
            ))
            .unwrap_or_else(|e| panic!("append m{i}: {e}"));
    }
}

/// A store with the full key hierarchy (a key-encryption key file and a
/// keystore of per-conversation data keys), a retention policy, and a
/// compliance clock driven by a hand-wound time source, in `dir`.
pub struct Archive {
    pub dir: std::path::PathBuf,
    pub time: Arc<stele_engine::time::clock::ManualTime>,
    pub rotation_days: u32,
    pub subject: firmware_config::DataSubject,
}

/// Records of custodian `ceo` are kept 6 years (FINRA 4511); everything else 10 days.
pub fn short_retention() -> firmware_config::RetentionPolicy {
    use firmware_config::{RetentionClass, RetentionRule, RetentionSection};
    firmware_config::RetentionPolicy::from_config(&RetentionSection {
        default_class: "short".into(),
        classes: vec![
            RetentionClass {
                name: "short".into(),
                preset: "custom".into(),
                years: None,
                days: Some(10),
            },
            RetentionClass {
                name: "broker".into(),
                preset: "finra-4511".into(),
                years: None,
                days: None,
            },
        ],
        rules: vec![RetentionRule {
            class: "broker".into(),
            custodian: Some("ceo".into()),
            ..Default::default()
        }],
    })
    .expect("valid policy")
}

pub const DAY_US: i64 = 86_400_000_000;
/// 2026-01-01T00:00:00Z.
pub const EPOCH_2026_US: i64 = 1_767_225_600_000_000;

impl Archive {
    pub fn new(dir: &Path) -> Archive {
        Archive {
            dir: dir.to_path_buf(),
            time: stele_engine::time::clock::ManualTime::starting_at(EPOCH_2026_US),
            rotation_days: 90,
            subject: firmware_config::DataSubject::Conversation,
        }
    }

    fn options(&self, keyring: Arc<stele_engine::Keyring>) -> StoreOptions {
        let mut o = small_options(&self.dir.join("index.redb"));
        o.keyring = Some(keyring);
        o.retention = short_retention();
        o.time = self.time.clone();
        o.subject = self.subject;
        o
    }

    pub fn key_path(&self) -> std::path::PathBuf {
        self.dir.join("keys/kek.key")
    }

    pub fn create(&self, zones: u32) -> Store {
        let provider = stele_engine::FileKek::create(&self.key_path()).expect("key file");
        let ring = Arc::new(
            stele_engine::Keyring::create(
                Box::new(provider),
                &self.dir.join("keys/keystore.redb"),
                self.rotation_days,
            )
            .expect("keystore"),
        );
        let opts = self.options(ring.clone());
        let dev = ZoneDirDevice::create(
            &self.dir.join("data"),
            Geometry {
                zone_size: opts.zone_size,
                zone_count: zones,
            },
        )
        .expect("create device");
        Store::create(vec![Arc::new(dev)], ring.root_keys(), opts).expect("create store")
    }

    pub fn open(&self) -> stele_engine::Result<Store> {
        self.open_with(|_| {})
    }

    /// Open with changed options.
    pub fn open_with(&self, change: impl FnOnce(&mut StoreOptions)) -> stele_engine::Result<Store> {
        let provider = stele_engine::FileKek::load(&self.key_path())?;
        let ring = Arc::new(stele_engine::Keyring::open(
            Box::new(provider),
            &self.dir.join("keys/keystore.redb"),
            self.rotation_days,
        )?);
        let dev = ZoneDirDevice::open(&self.dir.join("data"))?;
        let mut opts = self.options(ring.clone());
        change(&mut opts);
        Store::open(vec![Arc::new(dev)], ring.root_keys(), opts)
    }

    /// Append a message at the archive's current system time.
    pub fn put(
        &self,
        store: &Store,
        id: &str,
        conversation: &str,
        custodian: &str,
        len: usize,
    ) -> u64 {
        let ts = self
            .time
            .system_us
            .load(std::sync::atomic::Ordering::SeqCst);
        store
            .append(
                stele_engine::NewRecord::message(id, conversation, ts, body(ts as u64, len))
                    .with_custodian(custodian),
            )
            .unwrap_or_else(|e| panic!("append {id}: {e}"))
            .seq
    }
}

/// The system clock's UTC time now, as the command line takes it (`YYYY-MM-DDTHH:MM:SSZ`).
pub fn utc_now_text() -> String {
    stele_engine::time::clock::utc(stele_engine::store::now_us())
}

/// Four eyes (an operator and a legal-hold officer) state that the true
/// time is `utc_us`, so that reclaim and erasure may go by the clock.
pub fn attest(store: &Store, utc_us: i64) {
    use firmware_config::Role;
    use stele_engine::compliance::audit::Actor;
    store
        .attest_time(&stele_engine::compliance::corroboration::Attestation {
            first: Actor::new("olga", &[Role::Operator]),
            second: Actor::new("lena", &[Role::LegalHold]),
            utc_us,
            reason: "read from the reference clock".into(),
        })
        .expect("attestation accepted");
}
