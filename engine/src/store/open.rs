//! Opening a store, step by step: the newest superblock and every device's
//! identity; the key, before anything is written; the zones and what is
//! missing of them; the log tail after the checkpoint recovered; a new epoch
//! made durable; sealed zones made immutable below the store; the index
//! caught up with the log; free zones and the threads; then what the open
//! must record (clock anomalies, an accepted rollback, a log cut, missing
//! keys, the configuration).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use firmware_config::Role;

use crate::compliance::audit::{Action, AuditEvent, Outcome, AUDIT_CONVERSATION};
use crate::crypto::anchor::Anchors;
use crate::crypto::keys::Keys;
use crate::error::{Error, Result};
use crate::format::frame::{self, FrameKind};
use crate::format::location::IndexEntry;
use crate::format::manifest::Manifest;
use crate::format::record::open_envelope;
use crate::index::{FrameLocation, Index};
use crate::integrity::treehead;
use crate::io::buffer::align_up;
use crate::io::device::{Device, Geometry, Immutability};
use crate::log::commit::{self, CommitStats, IndexState, LogHead, LogState, Shared, Submission};
use crate::log::scan::{ScannedFrame, Scanner, Stretch, TailInspection};
use crate::log::superblock::Superblock;
use crate::log::verify::{FrameVerifier, Opened};
use crate::log::zone::{ZoneCondition, ZoneSet, ZoneState, ZonedDevice};
use crate::time::clock::ComplianceClock;

use super::{now_us, LogCut, OpenReport, Progress, Store, StoreOptions};

/// What recovering the active zone's tail found.
struct Recovered {
    active: u32,
    next_seq: u64,
    chain_head: [u8; 32],
    /// The active zone's write pointer after the recovered tail.
    write_pointer: u64,
    tail_frames: u64,
    discarded: u64,
}

/// The background threads a store runs.
type Notary = Option<(JoinHandle<()>, Arc<AtomicBool>)>;

impl Store {
    pub(super) fn open_once(
        devices: Vec<Arc<dyn Device>>,
        keys: Keys,
        options: StoreOptions,
    ) -> Result<Store> {
        let (mut sb, per_device) = newest_superblock(&devices)?;
        check_key(&devices, &per_device, &sb, &keys)?;
        let anchors = crate::crypto::anchor::read_all(&options.anchors, &keys, &sb.store_id)?;
        let found_generation = sb.generation;
        let clock = resume_clock(&devices, &sb, &keys, &options)?;
        let zones = attach_zones(&devices, &sb)?;
        let rec = recover_tail(&zones, &sb, &options)?;
        // Nothing is written before the anchors have been heard.
        let mut rollback = accept(&options, anchors.check_age(found_generation, rec.next_seq))?;
        // A new epoch (part of every nonce) made durable before any frame uses it.
        sb.epoch = sb
            .epoch
            .checked_add(1)
            .ok_or_else(|| Error::invalid("epoch", "the store has been opened 2^32 times"))?;
        let (index, log_cut, index_rebuilt) = open_index(&options.index_path, rec.next_seq)?;
        let shared = new_shared(sb, keys, clock, zones, index, &rec, &options);
        let epoch = {
            let mut log = shared.log.lock().unwrap_or_else(|p| p.into_inner());
            commit::checkpoint(&shared, &mut log)?;
            log.sb.epoch
        };
        let (sealed, immutability) = make_sealed_immutable(&shared)?;
        let replayed = catch_up_at_open(&shared, rec.next_seq, options.progress.as_ref())?;
        free_zones(&shared)?;
        let report = report_at_open(&devices, &shared, &anchors, &rec, epoch);
        let report = OpenReport {
            sealed_zones: sealed,
            immutability,
            index_replayed: replayed,
            index_rebuilt,
            ..report
        };
        let head = LogHead {
            next_seq: rec.next_seq,
            prev_hash: rec.chain_head,
            zone: rec.active,
            offset: rec.write_pointer,
            epoch,
        };
        let (tx, threads) = commit::start(shared.clone(), head);
        let notary = start_notary(&shared, &tx, &options);
        let mut store =
            Store::assemble(shared, tx, threads, notary, report, &options).check_clock_at_open()?;
        if rollback.is_none() {
            let (next_seq, chain_head) = (rec.next_seq, rec.chain_head);
            rollback = accept(
                &options,
                anchors.check_fork(&|seq| store.frame_hash(seq, next_seq, chain_head)),
            )?;
        }
        store.record_rollback(rollback, &options)?;
        store.report.log_cut = store.quarantine_at_open(log_cut)?;
        store.report.keystore_missing = store.check_keystore_at_open()?;
        store.report.configuration_unapproved = store.record_configuration_at_open(
            &options.configuration,
            options.approve_configuration.as_ref(),
        )?;
        Ok(store)
    }

    /// The store around a started pipeline.
    fn assemble(
        shared: Arc<Shared>,
        tx: Sender<Submission>,
        threads: Vec<JoinHandle<()>>,
        notary: Notary,
        report: OpenReport,
        options: &StoreOptions,
    ) -> Store {
        let zone_size = shared.zones.zone_size();
        Store {
            shared,
            input: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            report,
            // A chunk frame must fit in a zone with room to spare.
            chunk_bytes: options.chunk_bytes.min((zone_size / 4) as usize).max(4096),
            policy: options.retention.clone(),
            subject: options.subject,
            compliance_lock: Mutex::new(()),
            clock_max_error_us: options.clock_max_error_us,
            notary: Mutex::new(notary),
            quarantine: Mutex::new(None),
            keys_missing: Mutex::new(Vec::new()),
            configuration_unapproved: Mutex::new(Vec::new()),
            scrubber: Mutex::new(None),
            progress: options.progress.clone(),
        }
    }

    /// Record what the clock found at open; a clock something interposes on
    /// closes the store again and refuses the open.
    fn check_clock_at_open(self) -> Result<Store> {
        self.record_clock_anomalies()?;
        let Some((clock, gap_s)) = self.shared.clock.interposed() else {
            return Ok(self);
        };
        // Recorded while the store's own waits still work (nothing here times out).
        self.shared
            .clock
            .record_interposed(gap_s.saturating_mul(1_000_000));
        self.record_clock_anomalies()?;
        self.close()?;
        Err(Error::ClockInterposed {
            clock: clock.into(),
            gap_s,
        })
    }

    /// An operator's acceptance of a rollback goes on the record.
    fn record_rollback(
        &self,
        rollback: Option<(String, String)>,
        options: &StoreOptions,
    ) -> Result<()> {
        let Some((anchor, found)) = rollback else {
            return Ok(());
        };
        let (actor, reason) = options
            .accept_rollback
            .as_ref()
            .expect("a rollback is accepted only by someone");
        self.write_audit(
            actor,
            Action::RollbackAccepted { anchor, found },
            Outcome::Done,
            reason,
        )
        .map(|_| ())
    }
}

/// What the open found, as far as the log and the devices tell.
fn report_at_open(
    devices: &[Arc<dyn Device>],
    shared: &Shared,
    anchors: &Anchors,
    rec: &Recovered,
    epoch: u32,
) -> OpenReport {
    let first = devices[0].as_ref();
    OpenReport {
        store_id: hex::encode(shared.store_id),
        io_backend: first.io_backend(),
        direct_io: first.direct_io(),
        epoch,
        tail_frames: rec.tail_frames,
        discarded_tail_bytes: rec.discarded,
        index_replayed: 0,
        next_seq: rec.next_seq,
        sealed_zones: 0,
        immutability: Vec::new(),
        anchors_held: anchors
            .held
            .iter()
            .map(|(p, a)| (p.clone(), a.generation))
            .collect(),
        anchors_empty: anchors.empty.clone(),
        log_cut: None,
        damaged_zones: shared.zones.damaged_zones(rec.next_seq),
        read_only_at: shared.zones.damage(rec.active).map(|_| rec.active),
        index_rebuilt: None,
        keystore_missing: Vec::new(),
        configuration_unapproved: Vec::new(),
    }
}

/// Step 1: the newest valid superblock across all devices, and each
/// device's own, checked to be this store's device at its place.
fn newest_superblock(devices: &[Arc<dyn Device>]) -> Result<(Superblock, Vec<Superblock>)> {
    if devices.is_empty() {
        return Err(Error::invalid(
            "devices",
            "a store needs at least one device",
        ));
    }
    let mut newest: Option<Superblock> = None;
    let mut per_device = Vec::new();
    for d in devices {
        let copies = Superblock::read_copies(d.as_ref())?;
        let Some(best) = copies.iter().max_by_key(|s| s.generation).cloned() else {
            return Err(Error::NotAStore {
                path: d.name().to_string(),
                reason: "no valid superblock in either slot".into(),
            });
        };
        if newest
            .as_ref()
            .is_none_or(|n| best.generation > n.generation)
        {
            newest = Some(best.clone());
        }
        per_device.push(best);
    }
    let sb = newest.expect("at least one device");
    for (i, (d, own)) in devices.iter().zip(&per_device).enumerate() {
        if own.store_id != sb.store_id {
            return Err(Error::DeviceMismatch {
                path: d.name().to_string(),
                reason: format!("it belongs to store {}", hex::encode(own.store_id)),
            });
        }
        if own.device_index as usize != i {
            return Err(Error::DeviceMismatch {
                path: d.name().to_string(),
                reason: format!(
                    "it is device {} of the store, listed as device {i}",
                    own.device_index
                ),
            });
        }
    }
    if sb.devices.len() != devices.len() {
        return Err(Error::DeviceMismatch {
            path: devices[0].name().to_string(),
            reason: format!(
                "the store has {} devices, {} were given",
                sb.devices.len(),
                devices.len()
            ),
        });
    }
    Ok((sb, per_device))
}

/// Step 2: the key is the store's, and every device's superblock is
/// authentic under it, before anything is written.
fn check_key(
    devices: &[Arc<dyn Device>],
    per_device: &[Superblock],
    sb: &Superblock,
    keys: &Keys,
) -> Result<()> {
    if !sb.opened_by(keys) {
        return Err(Error::WrongKey {
            key_path: format!("key id {}", keys.root_key_generation),
            store_id: hex::encode(sb.store_id),
        });
    }
    for (d, own) in devices.iter().zip(per_device) {
        if !own.authentic(keys) {
            return Err(Error::Tampered {
                path: d.name().to_string(),
                what: format!(
                    "superblock generation {} (checkpoint at seq {}, zone table)",
                    own.generation, own.next_seq
                ),
            });
        }
    }
    Ok(())
}

/// The compliance clock, resumed from the superblock's authenticated reading.
fn resume_clock(
    devices: &[Arc<dyn Device>],
    sb: &Superblock,
    keys: &Keys,
    options: &StoreOptions,
) -> Result<Arc<ComplianceClock>> {
    if commit::clock_mac(keys, &sb.store_id, &sb.clock) != sb.clock_mac {
        return Err(Error::NotAStore {
            path: devices[0].name().to_string(),
            reason: "the compliance clock in the superblock fails authentication: it was altered outside Stele".into(),
        });
    }
    Ok(Arc::new(ComplianceClock::resume(
        options.time.clone(),
        options.drift_budget_ppm,
        sb.clock,
    )))
}

/// Step 3: every device given its geometry; a zone whose data is missing or
/// short is set aside as damaged; the active zone must be open.
fn attach_zones(devices: &[Arc<dyn Device>], sb: &Superblock) -> Result<ZoneSet> {
    for (d, e) in devices.iter().zip(&sb.devices) {
        d.attach(Geometry {
            zone_size: sb.zone_size,
            zone_count: e.zone_count,
        })?;
    }
    let mut zoned = Vec::new();
    let mut base = 0usize;
    let mut damaged = Vec::new();
    for (d, e) in devices.iter().zip(&sb.devices) {
        let states = sb.zones[base..base + e.zone_count as usize].to_vec();
        for (z, s) in states.iter().enumerate() {
            if let Some(reason) = short_zone(d.as_ref(), z as u32, s.write_pointer) {
                damaged.push(((base + z) as u32, reason));
            }
        }
        zoned.push(ZonedDevice::new(d.clone(), states));
        base += e.zone_count as usize;
    }
    let zones = ZoneSet::new(zoned);
    for (z, reason) in damaged {
        zones.mark_damaged(z, reason);
    }
    let active = sb.active_zone;
    if zones
        .state(active)
        .map_or(true, |z| z.condition == ZoneCondition::Sealed)
    {
        return Err(Error::NotAStore {
            path: devices[0].name().to_string(),
            reason: format!("superblock names zone {active} as active, which is not an open zone"),
        });
    }
    Ok(zones)
}

/// Step 4: the frames written to the active zone after the checkpoint are
/// found and chained on; a torn, unacknowledged tail is discarded, and
/// acknowledged data past a hole is an error. A damaged active zone is not
/// scanned: the store opens for reading only.
fn recover_tail(zones: &ZoneSet, sb: &Superblock, options: &StoreOptions) -> Result<Recovered> {
    let active = sb.active_zone;
    let cp = zones.state(active)?;
    let zone_size = sb.zone_size;
    let damaged = zones.damage(active).is_some();
    let stretches = if damaged {
        Vec::new()
    } else {
        vec![Stretch {
            zone: active,
            start: cp.write_pointer,
            durable_end: cp.write_pointer,
            scan_end: zone_size,
        }]
    };
    let chain_start = (sb.next_seq != 0).then_some(sb.chain_head);
    let mut scanner = Scanner::new(zones, stretches, sb.next_seq, chain_start);
    let mut tail_frames = 0u64;
    while scanner.next_frame()?.is_some() {
        tail_frames += 1;
    }
    let end = scanner.end.map_or(cp.write_pointer, |(_, e)| e);
    let next_seq = scanner.expected_seq();
    assert!(
        next_seq >= sb.next_seq,
        "recovery never loses a checkpointed seq"
    );
    let chain_head = scanner.prev_hash().unwrap_or(sb.chain_head);
    let window = options.commit.batch_bytes_max as u64 + frame::FRAME_LEN_MAX as u64;
    let tail = if damaged {
        TailInspection::default()
    } else {
        scanner.inspect_tail(active, end, window, zone_size)?
    };
    if let Some((off, seq)) = tail.later_batch {
        return Err(Error::Corrupt {
            at: zones.location(active, end),
            reason: format!("frames are missing or damaged here, yet a later batch with seq {seq} exists at offset {off}"),
        });
    }
    let write_pointer = move_write_pointer(zones, active, &cp, end, tail.nonzero_bytes);
    Ok(Recovered {
        active,
        next_seq,
        chain_head,
        write_pointer,
        tail_frames,
        discarded: tail.nonzero_bytes,
    })
}

/// The active zone's write pointer after a recovered tail ending at `end`
/// (never before the checkpointed one); a torn tail's bytes are discarded.
fn move_write_pointer(zones: &ZoneSet, active: u32, cp: &ZoneState, end: u64, torn: u64) -> u64 {
    let write_pointer = align_up(end).min(zones.zone_size());
    assert!(
        write_pointer >= cp.write_pointer,
        "recovery never moves a checkpointed write pointer back"
    );
    if write_pointer != cp.write_pointer {
        zones.restore(
            active,
            ZoneState {
                condition: ZoneCondition::Open,
                write_pointer,
                first_seq: cp.first_seq,
            },
        );
    }
    if torn > 0 {
        tracing::warn!(
            zone = active,
            offset = end,
            bytes = torn,
            "discarded a torn, unacknowledged tail"
        );
    }
    write_pointer
}

/// The log's shared state at the recovered head.
fn new_shared(
    sb: Superblock,
    keys: Keys,
    clock: Arc<ComplianceClock>,
    zones: ZoneSet,
    index: Index,
    rec: &Recovered,
    options: &StoreOptions,
) -> Arc<Shared> {
    let longest_days = options
        .retention
        .classes
        .iter()
        .map(|c| i64::from(c.days))
        .max()
        .unwrap_or(0);
    Arc::new(Shared {
        store_id: sb.store_id,
        keys,
        keyring: options.keyring.clone(),
        anchors: options.anchors.clone(),
        clock,
        log: Mutex::new(LogState {
            sb,
            durable: (rec.next_seq, rec.chain_head),
            active: rec.active,
        }),
        free: Mutex::new(VecDeque::new()),
        seals: Mutex::new(None),
        longest_retention_days: std::sync::atomic::AtomicI64::new(longest_days),
        buffers: Arc::default(),
        zones,
        index,
        options: options.commit.clone(),
        poison: Mutex::new(None),
        stats: CommitStats::default(),
        acked: AtomicU64::new(rec.next_seq),
        indexed: Mutex::new(IndexState::default()),
        indexed_cv: Condvar::new(),
        index_waiters: AtomicU64::new(0),
    })
}

/// Step 6: sealed zones are immutable below the store (idempotent; covers a
/// crash between seal and flag). Returns how many are sealed, and each one's
/// immutability.
fn make_sealed_immutable(shared: &Shared) -> Result<(u32, Vec<(u32, Immutability)>)> {
    let mut immutability = Vec::new();
    let mut sealed = 0;
    for z in 0..shared.zones.zone_count() {
        if shared.zones.state(z)?.condition == ZoneCondition::Sealed {
            sealed += 1;
            match shared.zones.make_immutable(z) {
                Ok(i) => immutability.push((z, i)),
                Err(e) => immutability.push((z, Immutability::Unavailable(e.to_string()))),
            }
        }
    }
    Ok((sealed, immutability))
}

/// Step 7: the index catches up with the log, and forgets zones whose
/// reset a crash interrupted. Returns how many frames it replayed.
fn catch_up_at_open(shared: &Shared, next_seq: u64, progress: Option<&Progress>) -> Result<u64> {
    let replayed = catch_up_index(shared, next_seq, progress)?;
    let state = crate::compliance::state::ComplianceState {
        index: &shared.index,
    };
    for r in state.reclaimed()? {
        let z = shared.zones.state(r.zone)?;
        let still_there = z.condition == ZoneCondition::Sealed && z.first_seq == r.first_seq;
        if !still_there && shared.index.location(r.first_seq)?.is_some() {
            shared
                .index
                .remove_range(r.first_seq, r.end_seq, &r.cover())?;
        }
    }
    shared
        .indexed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .next = next_seq;
    Ok(replayed)
}

/// Step 8: a zone reset before a crash is finished, and the empty zones
/// join the free list in allocation order.
fn free_zones(shared: &Shared) -> Result<()> {
    for z in 0..shared.zones.zone_count() {
        if shared.zones.state(z)?.condition == ZoneCondition::Resetting {
            shared.zones.finish_reset(z)?;
        }
    }
    let free: VecDeque<u32> = shared
        .zones
        .allocation_order()
        .into_iter()
        .filter(|&z| {
            shared
                .zones
                .state(z)
                .is_ok_and(|s| s.condition == ZoneCondition::Empty)
        })
        .collect();
    *shared.free.lock().unwrap_or_else(|p| p.into_inner()) = free;
    Ok(())
}

/// The background tree-head signer, if the options ask for one.
fn start_notary(shared: &Arc<Shared>, tx: &Sender<Submission>, options: &StoreOptions) -> Notary {
    let interval = options.tree_head_interval?;
    let (seal_tx, seal_rx) = crossbeam_channel::bounded(64);
    *shared.seals.lock().unwrap_or_else(|p| p.into_inner()) = Some(seal_tx);
    let stop = Arc::new(AtomicBool::new(false));
    let (s, input, flag) = (shared.clone(), tx.clone(), stop.clone());
    let handle = std::thread::Builder::new()
        .name("stele-notary".into())
        .spawn(move || treehead::notary(s, input, seal_rx, interval, flag))
        .expect("spawn tree-head signer");
    Some((handle, stop))
}

/// A rollback an anchor found, accepted by an operator who asked to open
/// this copy anyway (returned for the audit trail), or the refusal.
fn accept(options: &StoreOptions, found: Result<()>) -> Result<Option<(String, String)>> {
    match (found, &options.accept_rollback) {
        (Ok(()), _) => Ok(None),
        (Err(Error::RolledBack { anchor, reason }), Some((actor, _)))
            if actor.has(Role::Operator) =>
        {
            tracing::error!(%anchor, "opening a rolled-back store as {}: {reason}", actor.name);
            Ok(Some((anchor, reason)))
        }
        (Err(Error::RolledBack { .. }), Some((actor, _))) => Err(Error::Unauthorized {
            actor: actor.name.clone(),
            action: "open a store an anchor shows was rolled back".into(),
            role: "operator".into(),
        }),
        (Err(e), _) => Err(e),
    }
}

/// Open the index; if it has seen seqs the log no longer holds, those
/// acknowledged records were cut from the log below the store. The index
/// that saw them is kept aside as evidence (its entries name them) and a
/// fresh one is rebuilt from the log.
/// The index at `path`, with what was wrong with it: a log cut (the index
/// saw records the log no longer holds; kept as evidence) or damage (set
/// aside, and an empty index opened to be rebuilt from the log).
fn open_index(
    path: &std::path::Path,
    log_next: u64,
) -> Result<(Index, Option<LogCut>, Option<String>)> {
    let (index, rebuilt) = match open_sound_index(path) {
        Ok(index) => (index, None),
        Err(Error::IndexDamaged { reason, .. }) => {
            let kept = set_aside(path, "damaged")?;
            tracing::error!(
                kept = %kept.display(),
                "the index is damaged ({reason}); set aside, rebuilding it from the log"
            );
            let why = format!("{reason}; the damaged file is kept at {}", kept.display());
            (
                Index::open(path, &[crate::compliance::state::TABLES])?,
                Some(why),
            )
        }
        Err(e) => return Err(e),
    };
    let index_next = index.next_seq()?;
    if index_next <= log_next {
        return Ok((index, None, rebuilt));
    }
    drop(index);
    let evidence = set_aside(path, &format!("cut-{log_next}-{index_next}"))?;
    tracing::error!(
        index = index_next,
        log = log_next,
        evidence = %evidence.display(),
        "the log ends before records the index had seen: acknowledged records were cut from the log"
    );
    let cut = LogCut {
        index_next,
        log_next,
        evidence: evidence.display().to_string(),
    };
    Ok((
        Index::open(path, &[crate::compliance::state::TABLES])?,
        Some(cut),
        rebuilt,
    ))
}

/// Open the index and read what every open reads (its end and its last
/// entry); damage marked by an earlier failure counts as found.
fn open_sound_index(path: &std::path::Path) -> Result<Index> {
    if let Some(reason) = crate::index::damage_mark(path) {
        return Err(Error::IndexDamaged {
            path: path.display().to_string(),
            reason,
        });
    }
    let index = Index::open(path, &[crate::compliance::state::TABLES])?;
    let next = index.next_seq()?;
    if next > 0 {
        index.location(next - 1)?;
    }
    index.probe_tables()?;
    Ok(index)
}

/// Move the index file at `path` aside as `<name>.<what>-<µs>`, returning the new path.
fn set_aside(path: &std::path::Path, what: &str) -> Result<std::path::PathBuf> {
    let kept = path.with_file_name(format!(
        "{}.{what}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("index"),
        now_us()
    ));
    std::fs::rename(path, &kept).map_err(|e| {
        Error::io(
            &path.display().to_string(),
            "set aside the index",
            None,
            None,
            e,
        )
    })?;
    crate::index::clear_damage_mark(path);
    Ok(kept)
}

/// Why zone `zone` of `device`, written to `write_pointer`, cannot be read
/// whole (its file missing or short), or None if it can.
fn short_zone(device: &dyn Device, zone: u32, write_pointer: u64) -> Option<String> {
    if write_pointer == 0 {
        return None;
    }
    match device.zone_extent(zone) {
        Ok(0) => Some(format!(
            "its data is missing: the log wrote {write_pointer} bytes, none are there"
        )),
        Ok(extent) if extent < write_pointer => Some(format!(
            "it is short: the log wrote {write_pointer} bytes, {extent} are there"
        )),
        Ok(_) => None,
        Err(e) => Some(format!("its size cannot be read: {e}")),
    }
}

/// Index every frame from the index's `next_seq` up to `next_seq` of the log. Returns how many.
pub(super) fn catch_up_index(
    shared: &Shared,
    log_next: u64,
    progress: Option<&Progress>,
) -> Result<u64> {
    let Some((have, prev)) = resume_point(shared, log_next)? else {
        return Ok(0);
    };
    let from = have;
    let mut scanner = match prev {
        None => Scanner::whole_log(&shared.zones).allowing_zone_gaps(),
        Some(prev) => scanner_after(shared, &prev)?,
    };
    let mut batch = Vec::with_capacity(4096);
    let mut n = 0u64;
    let mut events = Vec::new();
    while let Some(f) = scanner.next_frame()? {
        if f.header.seq >= log_next {
            break;
        }
        let mut entry = f.entry();
        // Manifests name their chunks and audit events carry compliance state:
        // both are inside the ciphertext, so they are read here.
        if matches!(f.header.kind, FrameKind::Manifest | FrameKind::System) {
            read_inside(shared, &f, scanner.frame_bytes(&f), &mut entry, &mut events)?;
        }
        batch.push(entry);
        n += 1;
        if batch.len() == 4096 {
            shared.index.insert(&batch, false)?;
            batch.clear();
            if let Some(p) = progress {
                p(f.header.seq + 1 - from, log_next - from);
            }
        }
    }
    shared.index.insert(&batch, true)?;
    if let Some(p) = progress {
        p(log_next - from, log_next - from);
    }
    replay_compliance(shared, events, log_next)?;
    let now = shared.index.next_seq()?;
    if now != log_next {
        return Err(Error::Index {
            path: "index".into(),
            reason: format!("after replay the index ends at seq {now}, the log at {log_next}"),
        });
    }
    Ok(n)
}

/// Where the index resumes: the first seq it lacks and the entry before it
/// (none when it starts over). An index ahead of the log, or whose last
/// entry is lost or lies in a damaged zone, is cleared and rebuilt. `None`:
/// the index is up to date.
fn resume_point(shared: &Shared, log_next: u64) -> Result<Option<(u64, Option<FrameLocation>)>> {
    let mut have = shared.index.next_seq()?;
    if have > log_next {
        tracing::warn!(
            index = have,
            log = log_next,
            "index is ahead of the log; rebuilding it"
        );
        shared.index.clear()?;
        have = 0;
    }
    if have == log_next {
        return Ok(None);
    }
    let prev = if have == 0 {
        None
    } else {
        shared.index.location(have - 1)?
    };
    if have > 0 && prev.is_none_or(|p| shared.zones.damage(p.zone).is_some()) {
        tracing::warn!(
            seq = have - 1,
            "the index lost its last entry, or it lies in a damaged zone; rebuilding it"
        );
        shared.index.clear()?;
        have = 0;
    }
    Ok(Some((have, prev.filter(|_| have > 0))))
}

/// A scanner over the log from the frame after `prev` (the last one the
/// index has): the rest of its zone, then every later undamaged zone.
fn scanner_after<'a>(shared: &'a Shared, prev: &FrameLocation) -> Result<Scanner<'a>> {
    let st = shared.zones.state(prev.zone)?;
    let mut stretches = vec![Stretch {
        zone: prev.zone,
        start: prev.offset,
        durable_end: st.write_pointer,
        scan_end: st.write_pointer,
    }];
    let later: Vec<(u32, ZoneState)> = shared
        .zones
        .log_zones()
        .into_iter()
        .filter(|(z, s)| s.first_seq > st.first_seq && *z != prev.zone)
        .collect();
    stretches.extend(later.into_iter().map(|(z, s)| Stretch {
        zone: z,
        start: 0,
        durable_end: s.write_pointer,
        scan_end: s.write_pointer,
    }));
    let mut sc = Scanner::new(&shared.zones, stretches, prev.seq, None).allowing_zone_gaps();
    sc.next_frame()?; // the frame the index already has
    Ok(sc)
}

/// What the index needs from inside a manifest (its chunks) or an audit
/// event (compliance state), read from the frame's plaintext. A frame whose
/// key is shredded, lost or missing gives nothing: a shredded manifest
/// protects nothing, its subject's retention being over.
fn read_inside(
    shared: &Shared,
    f: &ScannedFrame,
    bytes: &[u8],
    entry: &mut IndexEntry,
    events: &mut Vec<(u64, AuditEvent)>,
) -> Result<()> {
    let at = shared.zones.location(f.zone, f.offset);
    let Opened::Plaintext(plain) =
        FrameVerifier::new(shared).open(bytes, &f.header, f.zone, f.offset)?
    else {
        return Ok(());
    };
    let env = open_envelope(&plain).map_err(|reason| Error::Corrupt {
        at: at.clone(),
        reason,
    })?;
    if f.header.kind == FrameKind::Manifest {
        let m = Manifest::decode(&env.body).map_err(|e| Error::Corrupt {
            at,
            reason: format!("blob manifest: {e}"),
        })?;
        entry.refs = m.chunks;
    } else if env.conversation_id == AUDIT_CONVERSATION {
        let e: AuditEvent = serde_json::from_slice(&env.body).map_err(|e| Error::Corrupt {
            at,
            reason: format!("audit event: {e}"),
        })?;
        events.push((f.header.seq, e));
    }
    Ok(())
}

/// Apply the audit events read during a catch-up to the compliance state;
/// a reclaim that finished drops its zone's entries and restores the
/// Merkle nodes that stand in for them.
fn replay_compliance(shared: &Shared, events: Vec<(u64, AuditEvent)>, log_next: u64) -> Result<()> {
    let state = crate::compliance::state::ComplianceState {
        index: &shared.index,
    };
    let mut restore = Vec::new();
    for (seq, e) in events {
        state.apply(seq, &e)?;
        if let Action::ZoneReclaimed {
            zone,
            first_seq,
            end_seq,
            merkle_nodes,
            ..
        } = e.action
        {
            let cover: Vec<_> = merkle_nodes
                .iter()
                .filter_map(|n| crate::format::merkle::parse_node(n))
                .collect();
            restore.extend(cover.iter().copied());
            // The reset may have been cut short by a crash; only drop the entries of a zone that was reset.
            let st = shared.zones.state(zone)?;
            if st.condition != ZoneCondition::Sealed || st.first_seq != first_seq {
                shared.index.remove_range(first_seq, end_seq, &cover)?;
            }
        }
    }
    if !restore.is_empty() {
        shared.index.merkle_restore(&restore, log_next)?;
    }
    Ok(())
}
