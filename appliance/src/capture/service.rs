//! The capture service: the one way anything captured becomes a record.
//! Webhook deliveries, NDJSON batches, consent records and chat-export
//! imports all go through [`Capture::store`], so "store once", conflicts and
//! the consent policy mean the same everywhere.
//!
//! A batch is handled in four steps:
//! 1. Every item is checked against the store's limits before anything of
//!    the batch is written; an item that would be refused is answered
//!    [`Outcome::Invalid`] and costs only itself.
//! 2. The consent policy flags or refuses items of custodians with no
//!    consent on file.
//! 3. The batch claims its record keys ([`super::claim`]); then each item
//!    is looked up in the store. A record id the store already holds with
//!    the same fingerprint (the SHA-256 of the item as captured) is a
//!    duplicate; with a different fingerprint it is a conflict: the new
//!    content is kept as its own record naming the one it conflicts with,
//!    counted, and written to the audit trail. Nothing else is a duplicate:
//!    a failed attempt leaves no trace that a retry could mistake for one.
//! 4. What is left is submitted to the group commit and acknowledged once
//!    durable. If the store fails part-way, every item says whether it was
//!    stored, so the caller reports exactly what is in the archive and a
//!    retry stores the rest.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use firmware_config::ConsentPolicy;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stele_engine::compliance::audit::{Action, Outcome as AuditOutcome};
use stele_engine::{FrameKind, NewRecord, Record, Store};

use super::claim::Claims;
use super::metrics::CaptureMetrics;

/// The conversation consent records are filed under.
pub const CONSENT_CONVERSATION: &str = "stele/consent";

/// The body field that carries an item's fingerprint.
const FINGERPRINT_FIELD: &str = "capture_sha256";

/// One thing to store.
#[derive(Debug, Clone)]
pub struct Item {
    pub record: NewRecord,
    /// SHA-256 of the item's content as captured (not of any envelope it
    /// arrived in), to tell a redelivery from different content under a
    /// reused id.
    pub fingerprint: [u8; 32],
}

impl Item {
    /// An item whose fingerprint is the SHA-256 of `content`.
    pub fn new(record: NewRecord, content: &[u8]) -> Item {
        Item {
            record,
            fingerprint: Sha256::digest(content).into(),
        }
    }
}

/// What became of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Durable at `seq`.
    Stored { seq: u64 },
    /// The store already holds this record, with the same content, at `seq`.
    Duplicate { seq: u64 },
    /// The store holds this id with different content at `stored_seq`; the
    /// new content is durable at `conflict_seq`.
    Conflict { stored_seq: u64, conflict_seq: u64 },
    /// Refused by policy (no consent on file); nothing stored.
    Refused { why: String },
    /// The item cannot be stored as it is (a label or body over a limit); nothing stored.
    Invalid { why: String },
    /// The store failed before the item was durable; a retry may store it.
    Failed { why: String },
}

impl Outcome {
    /// The seq the item is kept at (for a conflict, the conflict record's).
    pub fn kept_seq(&self) -> Option<u64> {
        match self {
            Outcome::Stored { seq } | Outcome::Duplicate { seq } => Some(*seq),
            Outcome::Conflict { conflict_seq, .. } => Some(*conflict_seq),
            Outcome::Refused { .. } | Outcome::Invalid { .. } | Outcome::Failed { .. } => None,
        }
    }

    /// Whether the item is in the archive now.
    pub fn is_kept(&self) -> bool {
        matches!(
            self,
            Outcome::Stored { .. } | Outcome::Duplicate { .. } | Outcome::Conflict { .. }
        )
    }
}

/// A failure of the whole batch before any of it was written.
#[derive(Debug)]
pub enum CaptureError {
    /// The store could not say whether it holds `record_id`.
    Lookup {
        record_id: String,
        source: stele_engine::Error,
    },
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaptureError::Lookup { record_id, source } => {
                write!(f, "looking up {record_id:?} in the store: {source}")
            }
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaptureError::Lookup { source, .. } => Some(source),
        }
    }
}

/// What a batch does with each item once the store has been consulted.
enum Plan {
    Done(Outcome),
    Submit(NewRecord),
    /// Submit the conflict record; `stored_seq` is the record it conflicts with.
    SubmitConflict(NewRecord, u64),
}

/// What the store holds under an id.
enum Lookup {
    Found(Vec<Record>),
    /// A record under the id was crypto-shredded (at this seq).
    Erased(u64),
}

/// Most records of one id looked at (ids repeat only across channels and kinds).
const LOOKUP_MAX: usize = 4096;

/// The capture service of one store.
pub struct Capture {
    store: Arc<Store>,
    consent: ConsentPolicy,
    consented: Mutex<HashSet<String>>,
    claims: Claims,
    metrics: CaptureMetrics,
}

impl Capture {
    /// The service for `store`, with the consent registry loaded from it.
    pub fn new(
        store: Arc<Store>,
        consent: ConsentPolicy,
        metrics: Option<CaptureMetrics>,
    ) -> anyhow::Result<Capture> {
        let consented = store
            .by_conversation(CONSENT_CONVERSATION, usize::MAX)?
            .into_iter()
            .filter(|r| r.channel == "consent")
            .map(|r| r.custodian)
            .collect();
        let metrics = match metrics {
            Some(m) => m,
            None => CaptureMetrics::new()?,
        };
        Ok(Capture {
            store,
            consent,
            consented: Mutex::new(consented),
            claims: Claims::new(),
            metrics,
        })
    }

    pub fn metrics(&self) -> &CaptureMetrics {
        &self.metrics
    }

    /// Note that `custodian` has consent on file (after its record is durable).
    pub fn consent_recorded(&self, custodian: &str) {
        self.consented
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(custodian.to_string());
    }

    /// Store `items`, each once (blocking). One outcome per item, in order.
    /// `Err` only when nothing of the batch was written.
    pub fn store(&self, source: &str, items: Vec<Item>) -> Result<Vec<Outcome>, CaptureError> {
        let t0 = Instant::now();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
        let mut round = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match self.admit(item) {
                Ok(item) => round.push((i, item)),
                Err(o) => outcomes[i] = Some(o),
            }
        }
        let _claim = self
            .claims
            .claim(round.iter().map(|(_, it)| key(&it.record)));
        // A repeat of an earlier item of the batch (same id, same content)
        // takes that item's outcome; the same id with other content waits
        // for a later round, where the store holds the earlier one.
        let mut repeats = Vec::new();
        let mut first_round = true;
        while !round.is_empty() {
            let (now, later) = split_round(round, &mut repeats);
            let undecided: Vec<usize> = now.iter().chain(&later).map(|(i, _)| *i).collect();
            match self.plan(source, now) {
                Ok(plans) => self.submit_all(source, plans, &mut outcomes),
                Err(e) if first_round => return Err(e),
                Err(e) => {
                    // Earlier rounds are written: answer item by item.
                    fail_all(&mut outcomes, undecided.into_iter(), &e);
                    break;
                }
            }
            first_round = false;
            round = later;
        }
        for (i, j) in repeats {
            outcomes[i] = Some(repeat_of(outcomes[j].as_ref()));
        }
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| Outcome::Failed {
                    why: "not decided".into(),
                })
            })
            .collect();
        self.count(source, &outcomes, t0);
        Ok(outcomes)
    }

    /// Store one item (blocking): [`Capture::store`] of a batch of one.
    pub fn store_one(&self, source: &str, item: Item) -> Result<Outcome, CaptureError> {
        let outcome = self.store(source, vec![item])?.into_iter().next();
        Ok(outcome.unwrap_or_else(|| Outcome::Failed {
            why: "capture answered nothing for the item".into(),
        }))
    }

    /// Check an item against the store's limits and the consent policy.
    fn admit(&self, item: Item) -> Result<Item, Outcome> {
        if let Err(e) = self.store.check(&item.record) {
            return Err(Outcome::Invalid { why: e.to_string() });
        }
        let mut item = item;
        item.record = self.consent_check(item.record)?;
        Ok(item)
    }

    fn consent_check(&self, mut r: NewRecord) -> Result<NewRecord, Outcome> {
        // Evidence is kept whoever it names; a consent record is what consent is.
        if self.consent == ConsentPolicy::Off
            || r.custodian.is_empty()
            || r.kind != FrameKind::Message
            || r.channel == "consent"
        {
            return Ok(r);
        }
        let known = self
            .consented
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&r.custodian);
        if known {
            return Ok(r);
        }
        if self.consent == ConsentPolicy::Refuse {
            self.metrics
                .no_consent
                .with_label_values(&["refused"])
                .inc();
            return Err(Outcome::Refused {
                why: "no capture consent on file for the custodian (capture.consent = \"refuse\")"
                    .into(),
            });
        }
        self.metrics
            .no_consent
            .with_label_values(&["flagged"])
            .inc();
        r = with_field(r, "consent", json!("none on file"));
        Ok(r)
    }

    /// Decide each item against what the store holds (keys claimed).
    fn plan(
        &self,
        source: &str,
        items: Vec<(usize, Item)>,
    ) -> Result<Vec<(usize, Plan)>, CaptureError> {
        let mut plans = Vec::with_capacity(items.len());
        for (i, item) in items {
            let plan = self.plan_one(source, item)?;
            // The record as it will be written (fingerprint, conflict fields
            // and id added) must still fit: checked before anything is submitted.
            let plan = match plan {
                Plan::Submit(r) | Plan::SubmitConflict(r, _) if self.store.check(&r).is_err() => {
                    let why = self.store.check(&r).err().map(|e| e.to_string());
                    Plan::Done(Outcome::Invalid {
                        why: why.unwrap_or_default(),
                    })
                }
                p => p,
            };
            plans.push((i, plan));
        }
        Ok(plans)
    }

    fn plan_one(&self, source: &str, item: Item) -> Result<Plan, CaptureError> {
        let mut rec = item.record;
        if rec.record_id.is_empty() {
            return Ok(Plan::Submit(with_fingerprint(rec, &item.fingerprint)));
        }
        let stored = match self.lookup(&rec, &rec.record_id)? {
            Lookup::Found(s) => s,
            Lookup::Erased(seq) => return Ok(Plan::Done(Outcome::Duplicate { seq })),
        };
        let Some(existing) = stored.first() else {
            return Ok(Plan::Submit(with_fingerprint(rec, &item.fingerprint)));
        };
        let same = |r: &&Record| fingerprint_of(r).is_none_or(|fp| fp == item.fingerprint);
        if let Some(same) = stored.iter().find(same) {
            return Ok(Plan::Done(Outcome::Duplicate { seq: same.seq }));
        }
        // Different content under a stored id: kept as a conflict record.
        let conflict_id = conflict_id(&rec.record_id, &item.fingerprint);
        match self.lookup(&rec, &conflict_id)? {
            Lookup::Erased(seq) => return Ok(Plan::Done(Outcome::Duplicate { seq })),
            Lookup::Found(c) if !c.is_empty() => {
                return Ok(Plan::Done(Outcome::Duplicate { seq: c[0].seq }))
            }
            Lookup::Found(_) => {}
        }
        let original = std::mem::replace(&mut rec.record_id, conflict_id);
        rec = with_fingerprint(rec, &item.fingerprint);
        let link = json!({"record_id": original, "stored_seq": existing.seq, "source": source});
        rec = with_field(rec, "conflict", link);
        Ok(Plan::SubmitConflict(rec, existing.seq))
    }

    /// Stored records of `rec`'s channel and kind under `id`.
    fn lookup(&self, rec: &NewRecord, id: &str) -> Result<Lookup, CaptureError> {
        let found = match self.store.by_record_id(id, LOOKUP_MAX) {
            Ok(f) => f,
            // A crypto-shredded record under this id: the store holds it,
            // unreadable by design. It must not be captured again.
            Err(stele_engine::Error::Erased { seq, .. }) => return Ok(Lookup::Erased(seq)),
            // Its key is lost or missing: the store holds it; never capture it twice.
            Err(
                stele_engine::Error::KeyLost { seq, .. }
                | stele_engine::Error::KeyMissing { seq, .. },
            ) => return Ok(Lookup::Erased(seq)),
            Err(source) => {
                return Err(CaptureError::Lookup {
                    record_id: id.to_string(),
                    source,
                })
            }
        };
        Ok(Lookup::Found(
            found
                .into_iter()
                .filter(|r| r.channel == rec.channel && r.kind == rec.kind)
                .collect(),
        ))
    }

    /// Submit every planned record, wait for each, and fill in the outcomes.
    fn submit_all(
        &self,
        source: &str,
        plans: Vec<(usize, Plan)>,
        outcomes: &mut [Option<Outcome>],
    ) {
        let mut pending = Vec::new();
        for (i, plan) in plans {
            let (rec, conflict_with) = match plan {
                Plan::Done(o) => {
                    outcomes[i] = Some(o);
                    continue;
                }
                Plan::Submit(r) => (r, None),
                Plan::SubmitConflict(r, stored) => (r, Some(stored)),
            };
            let labels = (rec.record_id.clone(), rec.message_type.clone());
            pending.push((i, conflict_with, labels, self.store.submit(rec)));
        }
        for (i, conflict_with, (id, kind), p) in pending {
            let done = p.and_then(|p| p.wait());
            if done.is_ok() {
                let m = &self.metrics.captured;
                m.with_label_values(&[source, kind.as_str()]).inc();
            }
            outcomes[i] = Some(match (done, conflict_with) {
                (Ok(r), None) => Outcome::Stored { seq: r.seq },
                (Ok(r), Some(stored_seq)) => {
                    self.record_conflict(source, &id, stored_seq, r.seq);
                    Outcome::Conflict {
                        stored_seq,
                        conflict_seq: r.seq,
                    }
                }
                (Err(e), _) => Outcome::Failed { why: e.to_string() },
            });
        }
    }

    fn record_conflict(&self, source: &str, conflict_id: &str, stored_seq: u64, conflict_seq: u64) {
        self.metrics.conflicts.with_label_values(&[source]).inc();
        let record_id = conflict_id
            .split_once("#conflict:")
            .map_or(conflict_id, |(a, _)| a)
            .to_string();
        tracing::warn!(
            source,
            record_id,
            stored_seq,
            conflict_seq,
            "a stored record id arrived with different content"
        );
        let event = Action::CaptureConflict {
            source: source.to_string(),
            record_id,
            stored_seq,
            conflict_seq,
        };
        let reason = "the same record id arrived with different content; both are kept";
        if let Err(e) = self.store.record_capture_event(
            &format!("{source} capture"),
            event,
            AuditOutcome::Done,
            reason,
        ) {
            // The conflict record itself is durable and names both; the audit entry is the echo.
            tracing::error!(error = %e, "could not write the conflict to the audit trail");
        }
    }

    fn count(&self, source: &str, outcomes: &[Outcome], t0: Instant) {
        let m = &self.metrics;
        let dups = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Duplicate { .. }))
            .count();
        m.duplicates
            .with_label_values(&[source])
            .inc_by(dups as u64);
        if outcomes.iter().any(|o| matches!(o, Outcome::Failed { .. })) {
            m.errors.with_label_values(&[source]).inc();
        }
        m.ack_latency
            .with_label_values(&[source])
            .observe(t0.elapsed().as_secs_f64());
    }
}

/// Split a round: the first item of each key now, the rest later, except
/// exact repeats (same key and fingerprint as an item going now), which are
/// noted in `repeats` as (item, the item it repeats).
type Round = Vec<(usize, Item)>;

fn split_round(round: Round, repeats: &mut Vec<(usize, usize)>) -> (Round, Round) {
    let mut first: std::collections::HashMap<String, (usize, [u8; 32])> = Default::default();
    let (mut now, mut later) = (Vec::new(), Vec::new());
    for (i, item) in round {
        match first.entry(key(&item.record)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((i, item.fingerprint));
                now.push((i, item));
            }
            std::collections::hash_map::Entry::Occupied(o) if o.get().1 == item.fingerprint => {
                repeats.push((i, o.get().0))
            }
            std::collections::hash_map::Entry::Occupied(_) => later.push((i, item)),
        }
    }
    (now, later)
}

/// The outcome of an item that repeats one stored in the same batch.
fn repeat_of(first: Option<&Outcome>) -> Outcome {
    match first {
        Some(Outcome::Stored { seq }) | Some(Outcome::Duplicate { seq }) => {
            Outcome::Duplicate { seq: *seq }
        }
        Some(Outcome::Conflict { conflict_seq, .. }) => Outcome::Duplicate { seq: *conflict_seq },
        Some(other) => other.clone(),
        None => Outcome::Failed {
            why: "the item it repeats was not decided".into(),
        },
    }
}

fn fail_all(
    outcomes: &mut [Option<Outcome>],
    items: impl Iterator<Item = usize>,
    e: &CaptureError,
) {
    for i in items {
        outcomes[i] = Some(Outcome::Failed { why: e.to_string() });
    }
}

/// The id a conflict record is stored under: the original id with the new
/// content's hash, or (when that would be over the label limit) a hash of both.
fn conflict_id(id: &str, fingerprint: &[u8; 32]) -> String {
    let fp = &hex::encode(fingerprint)[..32];
    let long = format!("{id}#conflict:{fp}");
    if long.len() <= stele_engine::format::record::ID_LEN_MAX {
        return long;
    }
    let of_id = &hex::encode(Sha256::digest(id.as_bytes()))[..32];
    format!("#conflict:{of_id}:{fp}")
}

/// `rec` with `field` set in its JSON object body. Evidence is verbatim and
/// never changed; bodies that are not JSON objects are left as they are.
fn with_field(mut rec: NewRecord, field: &str, value: Value) -> NewRecord {
    if rec.kind != FrameKind::Message {
        return rec;
    }
    if let Ok(mut v) = serde_json::from_slice::<Value>(&rec.body) {
        if v.is_object() {
            v[field] = value;
            rec.body = v.to_string().into_bytes();
        }
    }
    rec
}

/// The key a record is stored once under.
fn key(r: &NewRecord) -> String {
    format!("{}|{}|{}", r.kind.name(), r.channel, r.record_id)
}

/// `rec` with `fingerprint` in its JSON body (evidence, and bodies that are
/// not a JSON object, are their own fingerprint's content and stay as they are).
fn with_fingerprint(rec: NewRecord, fingerprint: &[u8; 32]) -> NewRecord {
    with_field(rec, FINGERPRINT_FIELD, json!(hex::encode(fingerprint)))
}

/// The fingerprint a stored record was captured with: the one in its JSON
/// body, else the SHA-256 of a body that is not a JSON object. `None` for a
/// JSON body stored without one (before fingerprints were kept): such a
/// record cannot be told apart from a redelivery, so it counts as the same.
fn fingerprint_of(r: &Record) -> Option<[u8; 32]> {
    if r.kind != FrameKind::Message {
        return Some(Sha256::digest(&r.body).into());
    }
    match serde_json::from_slice::<Value>(&r.body) {
        Ok(v) if v.is_object() => v
            .get(FINGERPRINT_FIELD)?
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok()),
        _ => Some(Sha256::digest(&r.body).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_engine::io::device::FaultConfig;
    use stele_tests::{as_devices, fault_device, keys, small_options};

    const ZONE: u64 = 64 << 10;

    fn item(id: &str, text: &str) -> Item {
        let body = json!({"text": text}).to_string();
        let r = NewRecord::message(id, "c", 1, body.clone()).with_channel("sms", "text");
        Item::new(r, body.as_bytes())
    }

    #[test]
    fn a_failed_write_leaves_nothing_a_retry_takes_for_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let dev = fault_device("capture-flush", FaultConfig::new(1), ZONE, 16);
        let opts = small_options(&dir.path().join("index.redb"));
        let store = Arc::new(Store::create(as_devices(&dev), keys(), opts.clone()).unwrap());
        let c = Capture::new(store.clone(), ConsentPolicy::Off, None).unwrap();
        let first = c.store("api", vec![item("R", "r")]).unwrap();
        assert!(matches!(first[0], Outcome::Stored { .. }), "{first:?}");
        let mut cfg = FaultConfig::new(2);
        cfg.fail_flush_at = Some(1);
        dev.set_config(cfg);
        let long = "x".repeat(2000);
        let mut bad = item("S", "s");
        bad.record.custodian = long;
        let o = c
            .store("api", vec![item("T", "t"), bad, item("U", "u")])
            .unwrap();
        assert!(matches!(o[0], Outcome::Failed { .. }), "{o:?}");
        assert!(matches!(o[1], Outcome::Invalid { .. }), "{o:?}");
        assert!(matches!(o[2], Outcome::Failed { .. }), "{o:?}");
        assert_eq!(c.claims.held(), 0, "a failed batch holds no key");
        drop(c);
        let _ = Arc::into_inner(store).unwrap().close();
        dev.set_config(FaultConfig::new(3));
        let store = Arc::new(Store::open(as_devices(&dev), keys(), opts).unwrap());
        let c = Capture::new(store.clone(), ConsentPolicy::Off, None).unwrap();
        let o = c
            .store("api", vec![item("R", "r"), item("T", "t"), item("U", "u")])
            .unwrap();
        assert!(matches!(o[0], Outcome::Duplicate { .. }), "{o:?}");
        assert!(matches!(o[1], Outcome::Stored { .. }), "{o:?}");
        assert!(matches!(o[2], Outcome::Stored { .. }), "{o:?}");
        drop(c);
        Arc::into_inner(store).unwrap().close().unwrap();
    }

    #[test]
    fn repeats_within_a_batch_are_decided_against_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let dev = fault_device("capture-repeat", FaultConfig::new(4), ZONE, 16);
        let opts = small_options(&dir.path().join("index.redb"));
        let store = Arc::new(Store::create(as_devices(&dev), keys(), opts).unwrap());
        let c = Capture::new(store.clone(), ConsentPolicy::Refuse, None).unwrap();
        let mut unconsented = item("N", "n");
        unconsented.record.custodian = "nobody".into();
        let o = c
            .store(
                "api",
                vec![item("A", "1"), item("A", "1"), item("A", "2"), unconsented],
            )
            .unwrap();
        let Outcome::Stored { seq } = o[0] else {
            panic!("{o:?}")
        };
        assert_eq!(o[1], Outcome::Duplicate { seq });
        assert!(
            matches!(o[2], Outcome::Conflict { stored_seq, .. } if stored_seq == seq),
            "{o:?}"
        );
        assert!(matches!(o[3], Outcome::Refused { .. }), "{o:?}");
        drop(c);
        Arc::into_inner(store).unwrap().close().unwrap();
    }

    fn store_for(name: &str) -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let dev = fault_device(name, FaultConfig::new(5), ZONE, 16);
        let opts = small_options(&dir.path().join("index.redb"));
        (
            dir,
            Arc::new(Store::create(as_devices(&dev), keys(), opts).unwrap()),
        )
    }

    #[test]
    fn consent_can_be_recorded_under_refuse_and_evidence_stays_verbatim() {
        let (_dir, store) = store_for("capture-consent");
        let c = Capture::new(store.clone(), ConsentPolicy::Refuse, None).unwrap();
        let body = json!({"custodian": "t7"}).to_string();
        let r = NewRecord::message("consent:t7", CONSENT_CONVERSATION, 1, body.clone())
            .with_custodian("t7")
            .with_channel("consent", "consent");
        let o = c
            .store("consent", vec![Item::new(r, body.as_bytes())])
            .unwrap();
        assert!(matches!(o[0], Outcome::Stored { .. }), "{o:?}");
        let raw = b"{ \"b\": 1,   \"a\": 123456789012345678901234 }".to_vec();
        let mut ev =
            NewRecord::message("delivery:x", "c", 1, raw.clone()).with_channel("w", "delivery");
        ev.kind = FrameKind::Evidence;
        let o = c.store("w", vec![Item::new(ev.clone(), &raw)]).unwrap();
        let Outcome::Stored { seq } = o[0] else {
            panic!("{o:?}")
        };
        assert_eq!(
            store.get(seq).unwrap().body,
            raw,
            "evidence is stored byte for byte"
        );
        let again = c.store("w", vec![Item::new(ev, &raw)]).unwrap();
        assert_eq!(again[0], Outcome::Duplicate { seq });
        drop(c);
        Arc::into_inner(store).unwrap().close().unwrap();
    }

    #[test]
    fn a_conflict_under_a_longest_id_still_fits() {
        let (_dir, store) = store_for("capture-long");
        let c = Capture::new(store.clone(), ConsentPolicy::Off, None).unwrap();
        let id = "i".repeat(stele_engine::format::record::ID_LEN_MAX);
        let first = c.store("api", vec![item(&id, "a")]).unwrap();
        assert!(matches!(first[0], Outcome::Stored { .. }), "{first:?}");
        let o = c.store("api", vec![item(&id, "b")]).unwrap();
        assert!(matches!(o[0], Outcome::Conflict { .. }), "{o:?}");
        let o = c.store("api", vec![item(&id, "b")]).unwrap();
        assert!(matches!(o[0], Outcome::Duplicate { .. }), "{o:?}");
        drop(c);
        Arc::into_inner(store).unwrap().close().unwrap();
    }
}
