//! Compliance state derived from the audit trail: legal holds, retention
//! extensions, erasure requests and reclaimed zones.
//!
//! It lives in the index database (tables below) and, like the index, is
//! rebuilt from the log: each `Done` audit event is applied once, keyed by
//! its sequence number, so replaying an event is harmless.
//!
//! * `holds`: hold id (the seq of its `hold-placed` event) → JSON [`Hold`]
//! * `extensions`: seq → JSON [`Extension`]
//! * `erasures`: request id (seq of `erasure-requested`) → JSON [`Erasure`]
//! * `reclaimed`: first seq of the zone → JSON [`Reclaimed`]
//! * `clock_trust`: 0 → JSON [`ClockTrust`] (the latest corroboration of
//!   the compliance clock and any elapsed-time disagreement since)

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::compliance::audit::{Action, AuditEvent, Criteria, Outcome};
use crate::compliance::corroboration::{ClockTrust, Corroboration};
use crate::error::{Error, Result};
use crate::time::clock::AnomalyKind;

const HOLDS: TableDefinition<u64, &[u8]> = TableDefinition::new("holds");
const EXTENSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("extensions");
const ERASURES: TableDefinition<u64, &[u8]> = TableDefinition::new("erasures");
const RECLAIMED: TableDefinition<u64, &[u8]> = TableDefinition::new("reclaimed");
const CLOCK_TRUST: TableDefinition<u64, &[u8]> = TableDefinition::new("clock_trust");

/// The compliance tables, kept in the index database.
pub(crate) const TABLES: crate::index::TableSet = crate::index::TableSet {
    create: create_tables,
    probe,
    delete: delete_tables,
};

pub(crate) fn create_tables(db: &Database) -> std::result::Result<(), redb::Error> {
    let tx = db.begin_write()?;
    {
        tx.open_table(HOLDS)?;
        tx.open_table(EXTENSIONS)?;
        tx.open_table(ERASURES)?;
        tx.open_table(RECLAIMED)?;
        tx.open_table(CLOCK_TRUST)?;
    }
    tx.commit()?;
    Ok(())
}

/// Read the first and last entry of every compliance table.
pub(crate) fn probe(tx: &redb::ReadTransaction) -> std::result::Result<(), redb::Error> {
    for def in [HOLDS, EXTENSIONS, ERASURES, RECLAIMED, CLOCK_TRUST] {
        let t = tx.open_table(def)?;
        t.first()?;
        t.last()?;
    }
    Ok(())
}

pub(crate) fn delete_tables(tx: &WriteTransaction) -> std::result::Result<(), redb::Error> {
    tx.delete_table(HOLDS)?;
    tx.delete_table(EXTENSIONS)?;
    tx.delete_table(ERASURES)?;
    tx.delete_table(RECLAIMED)?;
    tx.delete_table(CLOCK_TRUST)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub seq: u64,
    pub by: String,
    pub at_us: i64,
    pub reason: String,
}

/// A legal hold: while it is not released, no record it matches can be removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: u64,
    pub name: String,
    pub criteria: Criteria,
    pub placed_by: String,
    pub placed_at_us: i64,
    pub reason: String,
    pub released: Option<Release>,
}

/// Event-based retention: records matching `criteria` are kept at least until `until_us`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub seq: u64,
    pub criteria: Criteria,
    pub until_us: i64,
    pub by: String,
    pub at_us: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Executed {
    pub seq: u64,
    pub at_us: i64,
    pub key_ids: Vec<u32>,
    pub records: u64,
}

/// A GDPR Art. 17 erasure request and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub id: u64,
    pub subject_kind: String,
    pub subject: String,
    pub requested_by: String,
    pub requested_at_us: i64,
    pub reason: String,
    /// Why it has not run yet, as last checked.
    pub waiting: Option<String>,
    pub executed: Option<Executed>,
}

/// A zone whose records had all left retention, reset to take new data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reclaimed {
    pub seq: u64,
    pub zone: u32,
    pub first_seq: u64,
    pub end_seq: u64,
    pub last_hash: String,
    pub zone_sha256: String,
    pub at_us: i64,
    /// The Merkle subtrees covering the range (`height:index:hash`).
    #[serde(default)]
    pub merkle_nodes: Vec<String>,
}

impl Reclaimed {
    pub fn cover(&self) -> Vec<(u8, u64, crate::format::merkle::Hash)> {
        self.merkle_nodes
            .iter()
            .filter_map(|n| crate::format::merkle::parse_node(n))
            .collect()
    }
}

fn err(e: impl Into<redb::Error>) -> Error {
    crate::index::classify(std::path::Path::new("index (compliance state)"), e.into())
}

/// A stored entry that does not parse: the index file is damaged.
fn damaged(e: serde_json::Error) -> Error {
    Error::IndexDamaged {
        path: "index (compliance state)".into(),
        reason: e.to_string(),
    }
}

/// Read access to the compliance tables, and the one way they change.
pub struct ComplianceState<'a> {
    pub(crate) index: &'a crate::index::Index,
}

impl ComplianceState<'_> {
    fn all<T: DeserializeOwned>(&self, table: TableDefinition<u64, &[u8]>) -> Result<Vec<T>> {
        self.index.guard(|| {
            let tx = self.index.db().begin_read().map_err(err)?;
            let t = tx.open_table(table).map_err(err)?;
            let mut out = Vec::new();
            for item in t.iter().map_err(err)? {
                let (_, v) = item.map_err(err)?;
                out.push(serde_json::from_slice(v.value()).map_err(damaged)?);
            }
            Ok(out)
        })
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<u64, &[u8]>,
        k: u64,
    ) -> Result<Option<T>> {
        self.index.guard(|| {
            let tx = self.index.db().begin_read().map_err(err)?;
            let t = tx.open_table(table).map_err(err)?;
            match t.get(k).map_err(err)? {
                Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(damaged)?)),
                None => Ok(None),
            }
        })
    }

    fn put<T: Serialize>(&self, table: TableDefinition<u64, &[u8]>, k: u64, v: &T) -> Result<()> {
        let bytes =
            serde_json::to_vec(v).map_err(|e| Error::invalid("compliance entry", e.to_string()))?;
        self.index.guard(|| {
            let tx = self.index.db().begin_write().map_err(err)?;
            {
                let mut t = tx.open_table(table).map_err(err)?;
                t.insert(k, &bytes[..]).map_err(err)?;
            }
            tx.commit().map_err(err)
        })
    }

    pub fn holds(&self) -> Result<Vec<Hold>> {
        self.all(HOLDS)
    }

    pub fn active_holds(&self) -> Result<Vec<Hold>> {
        Ok(self
            .holds()?
            .into_iter()
            .filter(|h| h.released.is_none())
            .collect())
    }

    pub fn hold(&self, id: u64) -> Result<Option<Hold>> {
        self.get(HOLDS, id)
    }

    pub fn extensions(&self) -> Result<Vec<Extension>> {
        self.all(EXTENSIONS)
    }

    pub fn erasures(&self) -> Result<Vec<Erasure>> {
        self.all(ERASURES)
    }

    pub fn erasure(&self, id: u64) -> Result<Option<Erasure>> {
        self.get(ERASURES, id)
    }

    pub fn reclaimed(&self) -> Result<Vec<Reclaimed>> {
        self.all(RECLAIMED)
    }

    /// The latest corroboration of the compliance clock.
    pub fn clock_trust(&self) -> Result<ClockTrust> {
        Ok(self.get(CLOCK_TRUST, 0)?.unwrap_or_default())
    }

    /// Corroborations and elapsed-time disagreements change what the clock may be trusted for.
    fn apply_clock(&self, seq: u64, e: &AuditEvent) -> Result<()> {
        let mut trust = self.clock_trust()?;
        match &e.action {
            Action::ClockCorroborated {
                source,
                attested_us,
                compliance_us,
                ..
            } => {
                if trust.corroboration.as_ref().is_some_and(|c| c.seq >= seq) {
                    return Ok(());
                }
                trust.corroboration = Some(Corroboration {
                    seq,
                    source: source.clone(),
                    attested_us: *attested_us,
                    compliance_us: *compliance_us,
                });
                trust.disputed_since = None;
            }
            Action::ClockAnomaly(a) if a.kind == AnomalyKind::ElapsedDisagrees => {
                let after = trust.corroboration.as_ref().is_none_or(|c| c.seq < seq);
                if !after || trust.disputed_since.is_some() {
                    return Ok(());
                }
                trust.disputed_since = Some(seq);
            }
            _ => return Ok(()),
        }
        self.put(CLOCK_TRUST, 0, &trust)
    }

    /// Apply the audit event at `seq` (idempotent).
    pub(crate) fn apply(&self, seq: u64, e: &AuditEvent) -> Result<()> {
        if e.outcome != Outcome::Done {
            return Ok(());
        }
        match &e.action {
            Action::ClockCorroborated { .. } | Action::ClockAnomaly(_) => self.apply_clock(seq, e),
            Action::HoldPlaced { name, criteria } => self.put(
                HOLDS,
                seq,
                &Hold {
                    id: seq,
                    name: name.clone(),
                    criteria: criteria.clone(),
                    placed_by: e.actor.clone(),
                    placed_at_us: e.at_us,
                    reason: e.reason.clone(),
                    released: None,
                },
            ),
            Action::HoldReleased { hold } => {
                let Some(mut h) = self.hold(*hold)? else {
                    return Err(Error::Index {
                        path: "index (compliance state)".into(),
                        reason: format!("audit event {seq} releases unknown hold {hold}"),
                    });
                };
                if h.released.is_none() {
                    h.released = Some(Release {
                        seq,
                        by: e.actor.clone(),
                        at_us: e.at_us,
                        reason: e.reason.clone(),
                    });
                    self.put(HOLDS, *hold, &h)?;
                }
                Ok(())
            }
            Action::RetentionExtended { criteria, until_us } => self.put(
                EXTENSIONS,
                seq,
                &Extension {
                    seq,
                    criteria: criteria.clone(),
                    until_us: *until_us,
                    by: e.actor.clone(),
                    at_us: e.at_us,
                    reason: e.reason.clone(),
                },
            ),
            Action::ErasureRequested {
                subject_kind,
                subject,
            } => {
                if self.erasure(seq)?.is_none() {
                    self.put(
                        ERASURES,
                        seq,
                        &Erasure {
                            id: seq,
                            subject_kind: subject_kind.clone(),
                            subject: subject.clone(),
                            requested_by: e.actor.clone(),
                            requested_at_us: e.at_us,
                            reason: e.reason.clone(),
                            waiting: None,
                            executed: None,
                        },
                    )?;
                }
                Ok(())
            }
            Action::ErasureDeferred { request, why, .. } => {
                if let Some(mut r) = self.erasure(*request)? {
                    r.waiting = Some(why.clone());
                    self.put(ERASURES, *request, &r)?;
                }
                Ok(())
            }
            Action::ErasureExecuted {
                request,
                key_ids,
                records,
            } => {
                if let Some(mut r) = self.erasure(*request)? {
                    r.waiting = None;
                    r.executed = Some(Executed {
                        seq,
                        at_us: e.at_us,
                        key_ids: key_ids.clone(),
                        records: *records,
                    });
                    self.put(ERASURES, *request, &r)?;
                }
                Ok(())
            }
            Action::ZoneReclaimed {
                zone,
                first_seq,
                end_seq,
                last_hash,
                zone_sha256,
                merkle_nodes,
                ..
            } => self.put(
                RECLAIMED,
                *first_seq,
                &Reclaimed {
                    seq,
                    zone: *zone,
                    first_seq: *first_seq,
                    end_seq: *end_seq,
                    last_hash: last_hash.clone(),
                    zone_sha256: zone_sha256.clone(),
                    at_us: e.at_us,
                    merkle_nodes: merkle_nodes.clone(),
                },
            ),
            _ => Ok(()),
        }
    }
}
