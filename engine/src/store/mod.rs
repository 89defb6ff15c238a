//! [`Store`]: the engine's one entry point. Create or open (with recovery),
//! append, read by sequence number, record id, conversation or time, store
//! and stream media blobs, rebuild the index, verify the whole log.

pub mod blob;
mod clock;
mod erasure;
mod evidence;
mod holds;
pub mod key_custody;
mod open;
mod retention;
mod scrub;
mod trail;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use tokio::sync::oneshot;

use crate::compliance::audit::{Action, Actor, AuditEvent, Outcome, AUDIT_CONVERSATION};
use crate::crypto::keyring::Keyring;
use crate::crypto::keys::DataKey;
use crate::crypto::keys::{Keys, TagDomain, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::frame::{self, FrameKind, FRAME_OVERHEAD};
use crate::format::record::{envelope, open_envelope, NewRecord, Receipt, Record};
use crate::index::FrameLocation;
use crate::io::device::{Device, Immutability, IoBackend};
use crate::log::commit::{self, CommitOptions, CommitStats, FrameFields, Shared, Submission};
use crate::log::scan::Scanner;
use crate::log::superblock::{DeviceEntry, Superblock};
use crate::log::verify::{FrameVerifier, Opened};
use crate::log::zone::{ZoneCondition, ZoneSet, ZoneState, ZonedDevice};
use crate::time::clock::{ComplianceClock, SystemTimeSource, TimeSource};
use crate::time::timestamp;
use firmware_config::{DataSubject, RecordFacts, RetentionPolicy, Role};

pub use crate::time::timestamp::now_us;

/// How a store is created and run.
#[derive(Clone)]
pub struct StoreOptions {
    /// Zone size in bytes (a multiple of 4 KiB); fixed at creation.
    pub zone_size: u64,
    /// Where the index lives (a redb file).
    pub index_path: PathBuf,
    pub commit: CommitOptions,
    /// Media blobs are split into chunks of this many bytes.
    pub chunk_bytes: usize,
    /// Per-subject data keys. Without a keyring every frame uses the root data key.
    pub keyring: Option<Arc<Keyring>>,
    /// Whose key a record is encrypted with: its conversation's or its custodian's.
    pub subject: DataSubject,
    /// Decides every record's retain-until date at write time.
    pub retention: RetentionPolicy,
    /// How much faster than real time the compliance clock may catch up (ppm).
    pub drift_budget_ppm: u32,
    /// Where the compliance clock reads time.
    pub time: Arc<dyn TimeSource>,
    /// Sign a tree head this often while the log grows, and at every zone
    /// seal. `None`: only on request ([`Store::sign_tree_head`]).
    pub tree_head_interval: Option<std::time::Duration>,
    /// Where rollback anchors are kept, outside the store's data ([`crate::crypto::anchor`]).
    pub anchors: Vec<Arc<dyn crate::crypto::anchor::AnchorPlace>>,
    /// Open even though an anchor says the store was rolled back or forked:
    /// an operator's decision, with its reason, kept in the audit trail.
    pub accept_rollback: Option<(Actor, String)>,
    /// How much error the compliance clock may have gathered since it was
    /// last corroborated before destructive acts are refused ([`crate::compliance::corroboration`]).
    pub clock_max_error_us: i64,
    /// Told how a rebuild of the index goes: (frames indexed, frames to index).
    pub progress: Option<Progress>,
    /// The effective configuration the store runs under, as flat values
    /// (`firmware_config::effective::values`); recorded in the audit trail at
    /// open when it changed ([`crate::compliance::configuration`]). Empty: not recorded.
    pub configuration: std::collections::BTreeMap<String, String>,
    /// Who approves a configuration change that could shorten retention for
    /// new records (the retention role), and why.
    pub approve_configuration: Option<(Actor, String)>,
}

/// A callback told (done, total) as long work proceeds.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// A background scrub schedule ([`Store::start_background_scrub`]): every
/// `interval`, in `mode`, at most `bytes_per_sec`.
#[derive(Debug, Clone, Copy)]
pub struct BackgroundScrub {
    pub interval: std::time::Duration,
    pub mode: crate::integrity::scrub::ScrubMode,
    pub bytes_per_sec: Option<u64>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("zone_size", &self.zone_size)
            .field("index_path", &self.index_path)
            .field("commit", &self.commit)
            .field("chunk_bytes", &self.chunk_bytes)
            .field(
                "keyring",
                &self.keyring.as_ref().map(|k| k.path().to_path_buf()),
            )
            .field("subject", &self.subject)
            .field("drift_budget_ppm", &self.drift_budget_ppm)
            .field(
                "anchors",
                &self
                    .anchors
                    .iter()
                    .map(|a| a.describe())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl StoreOptions {
    pub fn new(index_path: impl Into<PathBuf>) -> Self {
        StoreOptions {
            zone_size: 256 << 20,
            index_path: index_path.into(),
            commit: CommitOptions::default(),
            chunk_bytes: 1 << 20,
            keyring: None,
            subject: DataSubject::Conversation,
            retention: RetentionPolicy::from_config(&Default::default())
                .expect("the default retention section resolves"),
            drift_budget_ppm: 1000,
            time: Arc::new(SystemTimeSource),
            tree_head_interval: None,
            anchors: Vec::new(),
            accept_rollback: None,
            clock_max_error_us: 3_600_000_000,
            progress: None,
            configuration: Default::default(),
            approve_configuration: None,
        }
    }
}

/// What opening a store found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub store_id: String,
    pub io_backend: IoBackend,
    pub direct_io: bool,
    pub epoch: u32,
    /// Frames found after the last checkpoint and kept.
    pub tail_frames: u64,
    /// Bytes after the last valid frame that recovery discarded (a torn, never acknowledged tail).
    pub discarded_tail_bytes: u64,
    /// Frames the index was behind the log and replayed.
    pub index_replayed: u64,
    pub next_seq: u64,
    pub sealed_zones: u32,
    pub immutability: Vec<(u32, Immutability)>,
    /// Rollback anchors holding this store's checkpoint (place, generation),
    /// and the places that held none yet.
    pub anchors_held: Vec<(String, u64)>,
    pub anchors_empty: Vec<String>,
    /// Set when the log was found shorter than the index had seen: the
    /// store reads but refuses new records until an operator acknowledges it.
    pub log_cut: Option<LogCut>,
    /// Zones whose files are missing or short: set aside, every other zone served.
    pub damaged_zones: Vec<crate::log::zone::DamagedZone>,
    /// The active zone, when it is among them: the store refuses new records.
    pub read_only_at: Option<u32>,
    /// Why the index was set aside and rebuilt from the log, and where the damaged file is kept.
    pub index_rebuilt: Option<String>,
    /// Data key ids the log names and the keystore does not hold: the
    /// store refuses new records until they are restored or acknowledged lost.
    pub keystore_missing: Vec<u32>,
    /// Changes of the configuration that could shorten retention for new
    /// records and wait for approval: new records are refused until then.
    pub configuration_unapproved: Vec<String>,
}

/// Acknowledged records missing from the log, found at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCut {
    /// The index had seen every seq below this.
    pub index_next: u64,
    /// The log ends here.
    pub log_next: u64,
    /// Where the index that saw them is kept (its entries name the lost records).
    pub evidence: String,
}

/// A media blob stored in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    /// Seq of the blob's manifest frame.
    pub seq: u64,
    pub len: u64,
    pub sha256: [u8; 32],
    /// Whether identical content was already stored (nothing new was written).
    pub deduplicated: bool,
}

/// An append in flight; [`PendingAppend::wait`] blocks until it is durable.
pub struct PendingAppend(oneshot::Receiver<Result<Receipt>>);

impl PendingAppend {
    pub fn wait(self) -> Result<Receipt> {
        self.0.blocking_recv().map_err(|_| Error::Closed)?
    }
    /// Await the acknowledgement from async code.
    pub async fn wait_async(self) -> Result<Receipt> {
        self.0.await.map_err(|_| Error::Closed)?
    }
}

/// Result of checking every frame of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub frames: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub next_seq: u64,
    pub chain_head: String,
    /// Frames whose data key was destroyed by an erasure: checked (CRC,
    /// chain) but no longer decryptable.
    pub shredded: u64,
    /// Reclaimed zones the chain was followed across.
    pub reclaimed_ranges: u64,
    /// Zones set aside as damaged (missing or short files): every other
    /// frame was checked, the chain again from the first frame after each.
    pub damaged_zones: Vec<crate::log::zone::DamagedZone>,
}

pub struct Store {
    pub(crate) shared: Arc<Shared>,
    input: Mutex<Option<Sender<Submission>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    report: OpenReport,
    pub(crate) chunk_bytes: usize,
    pub(crate) policy: RetentionPolicy,
    pub(crate) subject: DataSubject,
    /// Serialises compliance operations (holds, extensions, erasures, reclaim).
    pub(crate) compliance_lock: Mutex<()>,
    /// The background tree-head signer and its stop flag.
    notary: Mutex<Option<(JoinHandle<()>, Arc<std::sync::atomic::AtomicBool>)>>,
    /// Why new records are refused (a log found cut short, until acknowledged).
    quarantine: Mutex<Option<LogCut>>,
    /// Data key ids the log names and the keystore lacks (see `keyring`).
    pub(crate) keys_missing: Mutex<Vec<u32>>,
    /// Configuration changes that could shorten retention, not yet approved.
    pub(crate) configuration_unapproved: Mutex<Vec<String>>,
    /// The background scrubber's schedule and stop flag (its thread holds a weak handle).
    scrubber: Mutex<Option<(JoinHandle<()>, Arc<std::sync::atomic::AtomicBool>)>>,
    progress: Option<Progress>,
    /// See [`StoreOptions::clock_max_error_us`].
    pub(crate) clock_max_error_us: i64,
}

impl Store {
    /// Create a new store on `devices` (already created with the zone geometry).
    pub fn create(
        devices: Vec<Arc<dyn Device>>,
        keys: Keys,
        options: StoreOptions,
    ) -> Result<Store> {
        if devices.is_empty() {
            return Err(Error::invalid(
                "devices",
                "a store needs at least one device",
            ));
        }
        // A new store's compliance clock starts from the system clock: never from a faked one.
        if let Some((clock, gap_s)) = options.time.interposed() {
            return Err(Error::ClockInterposed {
                clock: clock.into(),
                gap_s,
            });
        }
        let zone_size = options.zone_size;
        if zone_size == 0
            || !zone_size.is_multiple_of(crate::io::buffer::BLOCK_SIZE as u64)
            || zone_size < 4 * crate::io::buffer::BLOCK_SIZE as u64
        {
            return Err(Error::invalid(
                "zone size",
                format!("{zone_size} is not a multiple of 4 KiB of at least 16 KiB"),
            ));
        }
        for d in &devices {
            if !Superblock::read_copies(d.as_ref())?.is_empty() {
                return Err(Error::AlreadyExists {
                    path: d.name().to_string(),
                });
            }
            if d.geometry().zone_size != zone_size {
                return Err(Error::invalid(
                    "zone size",
                    format!(
                        "device {} has zones of {} bytes, options say {zone_size}",
                        d.name(),
                        d.geometry().zone_size
                    ),
                ));
            }
        }
        let total: usize = devices
            .iter()
            .map(|d| d.geometry().zone_count as usize)
            .sum();
        if total > Superblock::max_zones(devices.len()) || total == 0 {
            return Err(Error::invalid(
                "zone count",
                format!(
                    "{total} zones; a store holds 1 to {}",
                    Superblock::max_zones(devices.len())
                ),
            ));
        }
        let mut store_id = [0u8; 16];
        crate::crypto::kek::random_for(&mut store_id, "a store id")?;
        let mut entries = Vec::new();
        for d in &devices {
            let mut id = [0u8; 16];
            crate::crypto::kek::random_for(&mut id, "a device id")?;
            entries.push(DeviceEntry {
                device_id: id,
                zone_count: d.geometry().zone_count,
            });
        }
        let zoned: Vec<ZonedDevice> = devices
            .iter()
            .map(|d| {
                ZonedDevice::new(
                    d.clone(),
                    vec![ZoneState::EMPTY; d.geometry().zone_count as usize],
                )
            })
            .collect();
        let zones = ZoneSet::new(zoned);
        let first = zones.allocation_order()[0];
        let mut states = zones.states();
        states[first as usize] = ZoneState {
            condition: ZoneCondition::Open,
            write_pointer: 0,
            first_seq: 0,
        };
        let now = now_us();
        let clock =
            ComplianceClock::start(options.time.clone(), options.drift_budget_ppm).reading();
        let mut sb = Superblock {
            generation: 1,
            store_id,
            zone_size,
            device_index: 0,
            epoch: 0,
            root_key_generation: keys.root_key_generation,
            key_check: keys.key_check(&store_id),
            next_seq: 0,
            chain_head: [0; 32],
            active_zone: first,
            created_us: now,
            checkpoint_us: now,
            clock,
            clock_mac: commit::clock_mac(&keys, &store_id, &clock),
            state_mac: [0; 16],
            devices: entries,
            zones: states,
        };
        let devs: Vec<&dyn Device> = devices.iter().map(|d| d.as_ref()).collect();
        sb.write_all(&devs, &keys)?;
        if options.index_path.exists() {
            std::fs::remove_file(&options.index_path).map_err(|e| {
                Error::io(
                    &options.index_path.display().to_string(),
                    "remove stale index",
                    None,
                    None,
                    e,
                )
            })?;
        }
        drop(zones);
        Store::open(devices, keys, options)
    }

    /// Open a store: pick the newest superblock, check the key, recover the
    /// log tail, start a new epoch, and bring the index up to date.
    pub fn open(devices: Vec<Arc<dyn Device>>, keys: Keys, options: StoreOptions) -> Result<Store> {
        match Store::open_once(devices.clone(), keys.clone(), options.clone()) {
            // Damage found while catching up: the index is marked damaged, so
            // the second open sets it aside and rebuilds it from the log.
            Err(Error::IndexDamaged { path, reason }) => {
                tracing::error!("the index {path} is damaged ({reason}); rebuilding it");
                Store::open_once(devices, keys, options)
            }
            other => other,
        }
    }

    /// What opening found and did.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    pub fn store_id(&self) -> [u8; 16] {
        self.shared.store_id
    }

    /// The seq the next record will get; every lower seq is durable.
    pub fn next_seq(&self) -> u64 {
        self.shared.acked()
    }

    pub fn stats(&self) -> &CommitStats {
        &self.shared.stats
    }

    pub fn zones(&self) -> &ZoneSet {
        &self.shared.zones
    }

    /// Why the store refuses writes, if it does.
    pub fn poisoned(&self) -> Option<String> {
        self.shared.poisoned()
    }

    /// Hold the compliance lock: holds, extensions, erasures and reclaim run
    /// one at a time (a panic while it was held leaves nothing half-written
    /// in memory, since every decision is read back from the audit trail).
    pub(crate) fn compliance_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.compliance_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The compliance clock's time now (UTC µs).
    pub fn compliance_now_us(&self) -> i64 {
        self.shared.clock.now_us()
    }

    /// The compliance clock, for status and metrics.
    pub fn clock(&self) -> &ComplianceClock {
        &self.shared.clock
    }

    pub(crate) fn tag_or_zero(&self, domain: TagDomain, id: &str) -> [u8; TAG_LEN] {
        self.shared.keys.tag_or_zero(domain, id)
    }

    /// The keyed tag that names a data subject in the keystore.
    pub(crate) fn subject_tag(&self, subject: &str) -> [u8; TAG_LEN] {
        self.shared.keys.tag(TagDomain::Subject, subject.as_bytes())
    }

    /// The data subject of a record: its conversation or its custodian, by configuration.
    pub(crate) fn subject_of<'a>(&self, conversation: &'a str, custodian: &'a str) -> &'a str {
        match self.subject {
            DataSubject::Conversation => conversation,
            DataSubject::Custodian => custodian,
        }
    }

    /// The key new frames of `subject` are encrypted with at compliance time `now_us`.
    pub(crate) fn key_for(&self, subject: &str, now_us: i64) -> Result<Arc<DataKey>> {
        match (&self.shared.keyring, subject.is_empty()) {
            (Some(ring), false) => ring.subject_key(&self.subject_tag(subject), now_us),
            _ => Ok(self.shared.keys.data.clone()),
        }
    }

    /// The key that opens frames carrying `key_id`.
    pub(crate) fn key_by_id(&self, key_id: u32, seq: u64) -> Result<Arc<DataKey>> {
        self.shared.data_key(key_id, seq)
    }

    /// The retain-until date the policy gives a record: its class's period
    /// from the later of its own timestamp and the compliance clock's now (a
    /// record dated in the past is never kept for less than its period from
    /// capture), and never earlier than a date the producer asked for.
    pub fn retain_until_for(&self, rec: &NewRecord) -> i64 {
        self.retain_until_at(rec, self.shared.clock.now_us())
    }

    /// [`Store::retain_until_for`] at compliance time `now_us`.
    pub(crate) fn retain_until_at(&self, rec: &NewRecord, now_us: i64) -> i64 {
        let facts = RecordFacts {
            tenant: &rec.tenant,
            channel: &rec.channel,
            custodian: &rec.custodian,
            conversation: &rec.conversation_id,
            message_type: &rec.message_type,
        };
        let base = timestamp::retention_base(rec.timestamp_us, now_us);
        self.policy
            .retain_until_us(&facts, base)
            .max(rec.retain_until_us)
    }

    /// The longest period any class keeps records: what the store's own audit records get.
    pub(crate) fn audit_retain_until(&self) -> i64 {
        let days = self.shared.longest_retention_days.load(Ordering::Acquire);
        self.shared
            .clock
            .now_us()
            .saturating_add(days * 86_400_000_000)
    }

    /// Whether `rec` could be appended as it is: every label within
    /// [`crate::format::record::ID_LEN_MAX`] and the frame within the frame and zone
    /// limits. Nothing is written; capture checks a whole batch with this
    /// before it stores any of it.
    pub fn check(&self, rec: &NewRecord) -> Result<()> {
        if rec.kind == FrameKind::System {
            return Err(Error::invalid(
                "record kind",
                "system records are written by the store itself",
            ));
        }
        self.check_times(rec)?;
        let plaintext = envelope(Self::labels(rec), &[])?;
        self.check_frame_len(rec.body.len(), plaintext.len() + rec.body.len())
    }

    /// A record's date and the retention date its producer asked for (0: none).
    pub(crate) fn check_times(&self, rec: &NewRecord) -> Result<()> {
        timestamp::check("record timestamp", rec.timestamp_us)?;
        if rec.retain_until_us != 0 {
            let now = self.shared.clock.now_us();
            timestamp::check_retain_until("record retain-until", rec.retain_until_us, now)?;
        }
        Ok(())
    }

    fn labels(rec: &NewRecord) -> [&str; 6] {
        [
            &rec.record_id,
            &rec.conversation_id,
            &rec.custodian,
            &rec.tenant,
            &rec.channel,
            &rec.message_type,
        ]
    }

    fn check_frame_len(&self, body_len: usize, plaintext_len: usize) -> Result<()> {
        let frame_len = FRAME_OVERHEAD + plaintext_len;
        let zone_size = self.shared.zones.zone_size();
        if frame_len > frame::FRAME_LEN_MAX || frame_len as u64 > zone_size {
            return Err(Error::invalid(
                "record body",
                format!("{body_len} bytes makes a {frame_len}-byte frame; the limit is {} (store large media as a blob)", frame::FRAME_LEN_MAX.min(zone_size as usize)),
            ));
        }
        Ok(())
    }

    fn prepare(&self, rec: &NewRecord) -> Result<Submission> {
        if rec.kind != FrameKind::System {
            self.check_times(rec)?;
        }
        let plaintext = envelope(Self::labels(rec), &rec.body)?;
        self.check_frame_len(rec.body.len(), plaintext.len())?;
        let now = self.shared.clock.now_us();
        let fields = FrameFields {
            kind: rec.kind,
            timestamp_us: rec.timestamp_us,
            retain_until_us: self.retain_until_at(rec, now),
            record_tag: self.tag_or_zero(TagDomain::RecordId, &rec.record_id),
            conversation_tag: self.tag_or_zero(TagDomain::Conversation, &rec.conversation_id),
            custodian_tag: self.shared.keys.custodian_tag(&rec.custodian),
        };
        // The store's own records use the root data key; everything else its subject's key.
        let key = if rec.kind == FrameKind::System {
            self.shared.keys.data.clone()
        } else {
            self.key_for(self.subject_of(&rec.conversation_id, &rec.custodian), now)?
        };
        Ok(Submission::new(fields, key, plaintext))
    }

    pub(crate) fn submit_raw(&self, sub: Submission) -> Result<PendingAppend> {
        if let Some(reason) = self.shared.poisoned() {
            return Err(Error::Poisoned { reason });
        }
        if let Some(at) = self.report.read_only_at {
            return Err(Error::ZoneDamaged {
                at: self.shared.zones.location(at, 0),
                reason: "the active zone is damaged: the store is open for reading only until it is repaired".into(),
            });
        }
        let frame_len = FRAME_OVERHEAD + sub.payload().len();
        if frame_len > frame::FRAME_LEN_MAX || frame_len as u64 > self.shared.zones.zone_size() {
            return Err(Error::invalid(
                "frame",
                format!(
                    "a {frame_len}-byte frame does not fit in a {}-byte zone",
                    self.shared.zones.zone_size()
                ),
            ));
        }
        let (done, rx) = oneshot::channel();
        let sub = sub.acknowledging(done);
        let input = self
            .input
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(Error::Closed)?;
        input.send(sub).map_err(|_| Error::Closed)?;
        Ok(PendingAppend(rx))
    }

    /// Queue a record; the returned handle resolves once it is durable.
    pub fn submit(&self, rec: NewRecord) -> Result<PendingAppend> {
        if rec.kind == FrameKind::MediaChunk || rec.kind == FrameKind::Manifest {
            return Err(Error::invalid(
                "record kind",
                "media is stored with put_blob",
            ));
        }
        if rec.kind == FrameKind::System {
            return Err(Error::invalid(
                "record kind",
                "system records are written by the store itself",
            ));
        }
        self.writable()?;
        let sub = self.prepare(&rec)?;
        self.submit_raw(sub)
    }

    /// Append an audit event and wait until it is durable. Returns its seq.
    pub(crate) fn write_audit(
        &self,
        actor: &Actor,
        action: Action,
        outcome: Outcome,
        reason: &str,
    ) -> Result<u64> {
        let event = AuditEvent {
            at_us: self.shared.clock.now_us(),
            system_us: now_us(),
            actor: actor.name.clone(),
            action,
            outcome,
            reason: reason.to_string(),
        };
        let body =
            serde_json::to_vec(&event).map_err(|e| Error::invalid("audit event", e.to_string()))?;
        let mut rec = NewRecord::message(
            event.action.name(),
            AUDIT_CONVERSATION,
            event.system_us,
            body,
        );
        rec.kind = FrameKind::System;
        rec.channel = "audit".into();
        let seq = self.append_system(rec)?;
        self.compliance().apply(seq, &event)?;
        Ok(seq)
    }

    /// Append one of the store's own records (root data key, kept as long as the longest class).
    pub(crate) fn append_system(&self, rec: NewRecord) -> Result<u64> {
        assert_eq!(rec.kind, FrameKind::System, "only the store's own records");
        let sub = self
            .prepare(&rec)?
            .kept_by_the_store(self.audit_retain_until(), self.shared.keys.data.clone());
        Ok(self.submit_raw(sub)?.wait()?.seq)
    }

    /// Record a capture delivery refused before anything of it was stored
    /// (only its SHA-256 is kept, never its content).
    pub fn record_refused_delivery(
        &self,
        source: &str,
        body_sha256: &str,
        signed: bool,
    ) -> Result<u64> {
        let why = if signed {
            "the signature does not match the body"
        } else {
            "the delivery carries no signature"
        };
        self.write_audit(
            &Actor::new(format!("{source} webhook sender"), &[]),
            Action::DeliveryRefused {
                source: source.into(),
                body_sha256: body_sha256.into(),
            },
            Outcome::Refused { why: why.into() },
            "signature check",
        )
    }

    /// Record a capture event (a refused request, an unreadable delivery, a
    /// conflicting redelivery) in the audit trail, as `actor`. Only capture
    /// events are accepted here: compliance actions go through their own calls.
    pub fn record_capture_event(
        &self,
        actor: &str,
        action: Action,
        outcome: Outcome,
        reason: &str,
    ) -> Result<u64> {
        if !action.is_capture_event() {
            return Err(Error::invalid(
                "audit event",
                format!("{} is not a capture event", action.name()),
            ));
        }
        self.write_audit(&Actor::new(actor, &[]), action, outcome, reason)
    }

    /// Write any clock anomalies noticed since the last call to the audit trail.
    pub fn record_clock_anomalies(&self) -> Result<usize> {
        self.shared.clock.now_us();
        let anomalies = self.shared.clock.take_anomalies();
        let n = anomalies.len();
        for a in anomalies {
            self.write_audit(
                &Actor::system(),
                Action::ClockAnomaly(a),
                Outcome::Done,
                "noticed by the compliance clock",
            )?;
        }
        Ok(n)
    }

    /// The audit trail, oldest first (at most `limit` events).
    pub fn audit_trail(&self, limit: usize) -> Result<Vec<crate::compliance::audit::AuditEntry>> {
        let mut out = Vec::new();
        for r in self.by_conversation(AUDIT_CONVERSATION, limit)? {
            if r.kind != FrameKind::System {
                continue;
            }
            let event: AuditEvent =
                serde_json::from_slice(&r.body).map_err(|e| Error::Corrupt {
                    at: r.location.clone(),
                    reason: format!("audit event: {e}"),
                })?;
            out.push(crate::compliance::audit::AuditEntry { seq: r.seq, event });
        }
        Ok(out)
    }

    /// Derived compliance state (holds, extensions, erasures, reclaimed zones).
    pub fn compliance(&self) -> crate::compliance::state::ComplianceState<'_> {
        crate::compliance::state::ComplianceState {
            index: &self.shared.index,
        }
    }

    /// Append a record and wait until it is durable.
    pub fn append(&self, rec: NewRecord) -> Result<Receipt> {
        self.submit(rec)?.wait()
    }

    /// Read the frame at `loc` and check it is the one the index expects
    /// there ([`FrameVerifier::read`]). No key is used.
    pub(crate) fn read_checked(
        &self,
        loc: &FrameLocation,
    ) -> Result<(frame::FrameHeader, Vec<u8>)> {
        FrameVerifier::new(&self.shared).read(loc)
    }

    /// Read, check and decrypt the frame at `loc` (an unreadable one's error
    /// says why: erased, key missing or lost).
    fn read_frame(&self, loc: &FrameLocation) -> Result<(frame::FrameHeader, Vec<u8>)> {
        let (header, bytes) = self.read_checked(loc)?;
        match FrameVerifier::new(&self.shared).open(&bytes, &header, loc.zone, loc.offset)? {
            Opened::Plaintext(plain) => Ok((header, plain)),
            Opened::Unreadable(e) => Err(e),
        }
    }

    /// The stored bytes of frame `seq`, checked but not decrypted.
    pub fn frame_bytes(&self, seq: u64) -> Result<(frame::FrameHeader, Vec<u8>)> {
        let loc = self.locate(seq)?;
        self.read_checked(&loc)
    }

    fn locate(&self, seq: u64) -> Result<FrameLocation> {
        self.shared.wait_indexed(seq)?;
        self.shared
            .index
            .location(seq)?
            .ok_or_else(|| Error::NotFound {
                what: format!("seq {seq}"),
            })
    }

    /// The record at `seq`.
    pub fn get(&self, seq: u64) -> Result<Record> {
        self.envelope_of(seq).map(|(_, r)| r)
    }

    /// The record at `seq` and its plaintext envelope (what its content hash covers).
    pub fn envelope_of(&self, seq: u64) -> Result<(Vec<u8>, Record)> {
        let loc = self.locate(seq)?;
        let (header, plain) = self.read_frame(&loc)?;
        let at = self.shared.zones.location(loc.zone, loc.offset);
        let e = open_envelope(&plain).map_err(|reason| Error::Corrupt {
            at: at.clone(),
            reason,
        })?;
        let record = Record {
            seq,
            kind: header.kind,
            timestamp_us: header.timestamp_us,
            retain_until_us: header.retain_until_us,
            key_id: header.data_key_id,
            salt: e.salt,
            record_id: e.record_id,
            conversation_id: e.conversation_id,
            custodian: e.custodian,
            tenant: e.tenant,
            channel: e.channel,
            message_type: e.message_type,
            body: e.body,
            location: at,
        };
        Ok((plain, record))
    }

    fn records(&self, seqs: Vec<u64>, keep: impl Fn(&Record) -> bool) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(seqs.len());
        for s in seqs {
            let r = self.get(s)?;
            if keep(&r) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Wait until every acknowledged record is indexed (lookups, dedup and
    /// proofs then see all of them).
    pub fn sync_index(&self) -> Result<()> {
        let acked = self.shared.acked();
        if acked > 0 {
            self.shared.wait_indexed(acked - 1)?;
        }
        Ok(())
    }

    /// Wait until the index holds every acknowledged record and has made it durable.
    pub fn persist_index(&self) -> Result<()> {
        self.sync_index()?;
        self.shared.index.persist()
    }

    /// Records whose record id is `id`, oldest first.
    pub fn by_record_id(&self, id: &str, limit: usize) -> Result<Vec<Record>> {
        self.by_id(TagDomain::RecordId, id, limit)
    }

    /// Records of conversation `id`, oldest first.
    pub fn by_conversation(&self, id: &str, limit: usize) -> Result<Vec<Record>> {
        self.by_id(TagDomain::Conversation, id, limit)
    }

    /// Records of conversation `id` (or with record id `id`, `by_record`),
    /// where a crypto-shredded one is listed as its [`Error::Erased`]
    /// (its ids cannot be read back, so it is matched by keyed tag alone)
    /// instead of ending the listing, and a record that cannot be read
    /// (its zone damaged, its frame corrupt) as its error with its seq. An
    /// error of the index itself ends it.
    pub fn listing(
        &self,
        id: &str,
        by_record: bool,
        limit: usize,
    ) -> Result<Vec<(u64, Result<Record>)>> {
        self.sync_index()?;
        let domain = if by_record {
            TagDomain::RecordId
        } else {
            TagDomain::Conversation
        };
        let tag = self.shared.keys.tag(domain, id.as_bytes());
        let index = &self.shared.index;
        let seqs = match by_record {
            false => index.by_conversation_tag(&tag, limit)?,
            true => index.by_record_tag(&tag, limit)?,
        };
        let mut out = Vec::with_capacity(seqs.len());
        for s in seqs {
            match self.get(s) {
                Ok(r) if by_record && r.record_id != id => {}
                Ok(r) if !by_record && r.conversation_id != id => {}
                Ok(r) => out.push((s, Ok(r))),
                Err(e @ (Error::Index { .. } | Error::IndexDamaged { .. } | Error::Closed)) => {
                    return Err(e)
                }
                Err(e) => out.push((s, Err(e))),
            }
        }
        Ok(out)
    }

    /// Records whose id in `domain` is `id`: found by keyed tag, then checked
    /// against the decrypted id (so a tag collision can never return another record).
    fn by_id(&self, domain: TagDomain, id: &str, limit: usize) -> Result<Vec<Record>> {
        self.sync_index()?;
        let tag = self.shared.keys.tag(domain, id.as_bytes());
        let index = &self.shared.index;
        let seqs = match domain {
            TagDomain::Conversation => index.by_conversation_tag(&tag, limit)?,
            _ => index.by_record_tag(&tag, limit)?,
        };
        self.records(seqs, |r| match domain {
            TagDomain::Conversation => r.conversation_id == id,
            _ => r.record_id == id,
        })
    }

    /// Records with `from_us <= timestamp < to_us`, in time order.
    pub fn by_time(&self, from_us: i64, to_us: i64, limit: usize) -> Result<Vec<Record>> {
        self.sync_index()?;
        let seqs = self.shared.index.by_time(from_us, to_us, limit)?;
        self.records(seqs, |_| true)
    }

    /// Rebuild the index from the log. Returns the number of frames indexed.
    pub fn reindex(&self) -> Result<u64> {
        self.sync_index()?;
        self.shared.index.clear()?;
        let n = open::catch_up_index(&self.shared, self.shared.acked(), self.progress.as_ref())?;
        Ok(n)
    }

    /// SHA-256 digest of the whole index (equal digests: equal indexes).
    pub fn index_digest(&self) -> Result<[u8; 32]> {
        self.sync_index()?;
        self.shared.index.digest()
    }

    /// Check every frame of the log: framing, CRC, sequence, hash chain and GCM tag.
    pub fn verify(&self) -> Result<VerifyReport> {
        let bridges = self.bridges()?;
        let acked = self.shared.acked();
        let damaged = self.shared.zones.damaged_zones(acked);
        let skips = damaged.iter().map(|d| (d.first_seq, d.end_seq)).collect();
        let mut scanner = Scanner::whole_log(&self.shared.zones)
            .with_bridges(bridges)
            .skipping(skips);
        let verifier = FrameVerifier::new(&self.shared);
        let mut report = VerifyReport {
            first_seq: scanner.expected_seq(),
            damaged_zones: damaged,
            ..Default::default()
        };
        if report.first_seq != 0
            && scanner.bridged == 0
            && !scanner.starts_after_skips(report.first_seq)
        {
            return Err(Error::ChainBroken {
                seq: 0,
                at: self.shared.zones.location(0, 0),
                reason: format!("the log starts at seq {} and no reclaimed zone accounts for the records before it", report.first_seq),
            });
        }
        while let Some(f) = scanner.next_frame()? {
            if f.header.seq >= acked {
                break;
            }
            // Authenticate from the bytes the scanner already read: one read per frame.
            let bytes = scanner.frame_bytes(&f);
            if let Opened::Unreadable(_) = verifier.open(bytes, &f.header, f.zone, f.offset)? {
                report.shredded += 1;
            }
            report.frames += 1;
            report.bytes += f.header.frame_len as u64;
            report.chain_head = hex::encode(f.hash);
        }
        report.next_seq = scanner.after_skips(scanner.expected_seq()).min(acked);
        report.reclaimed_ranges = scanner.bridged;
        if report.next_seq != acked {
            let (zone, offset) = scanner.end.unwrap_or((0, 0));
            return Err(Error::ChainBroken {
                seq: report.next_seq,
                at: self.shared.zones.location(zone, offset),
                reason: format!(
                    "the log ends at seq {} but {acked} records were acknowledged",
                    report.next_seq
                ),
            });
        }
        Ok(report)
    }

    /// The SHA-256 of frame `seq` as the chain holds it (for anchors):
    /// the next frame's `prev_hash`, or the log head's for the last frame.
    fn frame_hash(&self, seq: u64, next_seq: u64, chain_head: [u8; 32]) -> Result<[u8; 32]> {
        if seq + 1 >= next_seq {
            return Ok(chain_head);
        }
        Ok(self.frame_bytes(seq + 1)?.0.prev_hash)
    }

    /// Whether new records are refused because the log was found cut short
    /// (now, or at an earlier open and not yet acknowledged). A cut found now
    /// is written to the audit trail first.
    fn quarantine_at_open(&self, found: Option<LogCut>) -> Result<Option<LogCut>> {
        if let Some(cut) = &found {
            self.write_audit(
                &Actor::system(),
                Action::LogCutShort {
                    index_next: cut.index_next,
                    log_next: cut.log_next,
                    evidence: cut.evidence.clone(),
                },
                Outcome::Done,
                "found at open: the log ends before records the index had seen",
            )?;
        }
        let Some((cut_seq, action)) = self.latest_audit("log-cut-short")? else {
            return Ok(None);
        };
        if self.latest_audit_seq("log-cut-acknowledged")? > Some(cut_seq) {
            return Ok(None);
        }
        let Action::LogCutShort {
            index_next,
            log_next,
            evidence,
        } = action
        else {
            return Err(Error::invalid(
                "audit event",
                "log-cut-short of another type",
            ));
        };
        let cut = LogCut {
            index_next,
            log_next,
            evidence,
        };
        *self.quarantine.lock().unwrap_or_else(|p| p.into_inner()) = Some(cut.clone());
        Ok(Some(cut))
    }

    /// The newest audit event filed under `name` done (not refused), with its seq.
    pub(crate) fn latest_audit(&self, name: &str) -> Result<Option<(u64, Action)>> {
        Ok(self
            .latest_audit_event(name, |e| e.outcome == Outcome::Done)?
            .map(|(seq, e)| (seq, e.action)))
    }

    /// The newest audit event filed under `name` for which `keep` holds.
    pub(crate) fn latest_audit_event(
        &self,
        name: &str,
        keep: impl Fn(&AuditEvent) -> bool,
    ) -> Result<Option<(u64, AuditEvent)>> {
        let mut found: Vec<Record> = self
            .by_record_id(name, usize::MAX)?
            .into_iter()
            .filter(|r| r.kind == FrameKind::System && r.conversation_id == AUDIT_CONVERSATION)
            .collect();
        found.sort_by_key(|r| std::cmp::Reverse(r.seq));
        for r in found {
            let event: AuditEvent = serde_json::from_slice(&r.body)
                .map_err(|e| Error::invalid("audit event", format!("seq {}: {e}", r.seq)))?;
            if keep(&event) {
                return Ok(Some((r.seq, event)));
            }
        }
        Ok(None)
    }

    pub(crate) fn latest_audit_seq(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.latest_audit(name)?.map(|(seq, _)| seq))
    }

    pub(crate) fn latest_audit_action(&self, name: &str) -> Result<Option<Action>> {
        Ok(self.latest_audit(name)?.map(|(_, a)| a))
    }

    /// The log cut that stops new records, if any.
    pub fn log_cut(&self) -> Option<LogCut> {
        self.quarantine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Why new records are refused now, if they are (a failed flush, a log
    /// cut, an incomplete keystore, an unapproved configuration): what
    /// readiness reports.
    pub fn write_refusal(&self) -> Option<String> {
        self.poisoned()
            .or_else(|| self.writable().err().map(|e| e.to_string()))
    }

    /// Records are refused while a log cut waits for acknowledgement.
    pub(crate) fn writable(&self) -> Result<()> {
        if let Some(c) = self.log_cut() {
            return Err(Error::LogCutShort {
                index_next: c.index_next,
                log_next: c.log_next,
                evidence: c.evidence,
            });
        }
        self.keystore_complete()?;
        self.configuration_approved()
    }

    /// An operator acknowledges a log found cut short (after comparing the
    /// evidence with the replica or a backup): new records are accepted again.
    pub fn acknowledge_log_cut(&self, actor: &Actor, reason: &str) -> Result<()> {
        let Some(cut) = self.log_cut() else {
            return Err(Error::NotFound {
                what: "a log cut waiting for acknowledgement".into(),
            });
        };
        let action = Action::LogCutAcknowledged {
            index_next: cut.index_next,
            log_next: cut.log_next,
        };
        if !actor.has(Role::Operator) {
            self.write_audit(
                actor,
                action,
                Outcome::Refused {
                    why: "needs the operator role".into(),
                },
                reason,
            )?;
            return Err(Error::Unauthorized {
                actor: actor.name.clone(),
                action: "acknowledge a log cut".into(),
                role: "operator".into(),
            });
        }
        self.write_audit(actor, action, Outcome::Done, reason)?;
        self.quarantine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        Ok(())
    }

    /// Stop accepting appends, finish every queued one, checkpoint and stop the threads.
    pub fn close(self) -> Result<()> {
        self.shutdown();
        match self.shared.poisoned() {
            Some(reason) => Err(Error::Poisoned { reason }),
            None => Ok(()),
        }
    }

    /// A handle on the submission queue (for the store's own writers).
    pub(crate) fn input_sender(&self) -> Result<Sender<Submission>> {
        self.input
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(Error::Closed)
    }

    /// Start scrubbing in the background on `schedule` (the store must be in
    /// an `Arc`; the scrubber stops when the store closes or is dropped).
    pub fn start_background_scrub(self: &Arc<Self>, schedule: BackgroundScrub) {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let weak = Arc::downgrade(self);
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("stele-scrub".into())
            .spawn(move || {
                let mut last = std::time::Instant::now();
                while !flag.load(Ordering::Acquire) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if last.elapsed() < schedule.interval {
                        continue;
                    }
                    let Some(store) = weak.upgrade() else { break };
                    match store.scrub(schedule.mode, schedule.bytes_per_sec) {
                        Ok(r) if r.damage_count > 0 => {
                            tracing::error!(
                                damage = r.damage_count,
                                "background scrub found damage"
                            )
                        }
                        Ok(r) => {
                            tracing::info!(frames = r.frames_checked, "background scrub clean")
                        }
                        Err(e) => tracing::warn!("background scrub failed: {e}"),
                    }
                    last = std::time::Instant::now();
                }
            })
            .expect("spawn scrubber");
        if let Some((h, s)) = self
            .scrubber
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace((handle, stop))
        {
            s.store(true, Ordering::Release);
            let _ = h.join();
        }
    }

    fn shutdown(&self) {
        if let Some((handle, stop)) = self
            .scrubber
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            stop.store(true, Ordering::Release);
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        // The signer holds a submission handle: stop it first so the pipeline
        // can drain. Its seal channel is closed before the join, so it wakes
        // at once even where timed waits do not time out (a faked clock).
        self.shared
            .seals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((handle, stop)) = self.notary.lock().unwrap_or_else(|p| p.into_inner()).take() {
            stop.store(true, Ordering::Release);
            let _ = handle.join();
        }
        self.input.lock().unwrap_or_else(|p| p.into_inner()).take();
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = t.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}
