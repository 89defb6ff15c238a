//! Typed errors. Every error names what failed and where (device, zone,
//! offset, sequence number), so an operator can act on it without a debugger.

use std::io;
use std::path::PathBuf;

/// Where a frame or block lives: the device path, the zone and the byte offset inside the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub device: String,
    pub zone: u32,
    pub offset: u64,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "device {} zone {} offset {}",
            self.device, self.zone, self.offset
        )
    }
}

/// The write-once rules a device refuses to break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WormViolation {
    /// A write that starts below the zone's write pointer (an overwrite).
    BelowWritePointer { offset: u64, write_pointer: u64 },
    /// A write that starts above the write pointer (it would leave a hole).
    AboveWritePointer { offset: u64, write_pointer: u64 },
    /// Any write into a sealed zone.
    Sealed,
    /// A write that runs past the end of the zone.
    PastZoneEnd { end: u64, zone_size: u64 },
    /// A request to truncate a zone, i.e. move its write pointer back.
    Truncate { to: u64, write_pointer: u64 },
    /// A write whose offset or length is not a whole number of 4 KiB blocks.
    Unaligned { offset: u64, len: u64 },
}

impl std::fmt::Display for WormViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WormViolation::BelowWritePointer { offset, write_pointer } => write!(
                f,
                "write at offset {offset} is below the write pointer {write_pointer} (overwrite refused)"
            ),
            WormViolation::AboveWritePointer { offset, write_pointer } => write!(
                f,
                "write at offset {offset} is above the write pointer {write_pointer} (holes refused)"
            ),
            WormViolation::Sealed => write!(f, "zone is sealed; it accepts no more writes"),
            WormViolation::PastZoneEnd { end, zone_size } => {
                write!(f, "write would end at {end}, past the zone size {zone_size}")
            }
            WormViolation::Truncate { to, write_pointer } => write!(
                f,
                "truncate to {to} refused: write pointer is {write_pointer} and never moves back"
            ),
            WormViolation::Unaligned { offset, len } => {
                write!(f, "write at offset {offset} of {len} bytes is not 4 KiB aligned")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error on {device} during {op} (zone {zone:?}, offset {offset:?}): {source}")]
    Io {
        device: String,
        op: &'static str,
        zone: Option<u32>,
        offset: Option<u64>,
        #[source]
        source: io::Error,
    },

    #[error("write-once violation on device {device} zone {zone}: {violation}")]
    Worm {
        device: String,
        zone: u32,
        violation: WormViolation,
    },

    #[error("damaged frame at {at}: {reason}")]
    Corrupt { at: Location, reason: String },

    #[error("frame at {at} (seq {seq}) failed authentication: wrong key, or the bytes were altered or moved")]
    Authentication { at: Location, seq: u64 },

    #[error("{path}: not a Stele store ({reason})")]
    NotAStore { path: String, reason: String },

    #[error(
        "{path}: store format version {found} is newer than this build supports ({supported})"
    )]
    NewerFormat {
        path: String,
        found: u32,
        supported: u32,
    },

    #[error("{path}: device is truncated: expected at least {expected} bytes, found {found}")]
    Truncated {
        path: String,
        expected: u64,
        found: u64,
    },

    /// Bytes that only Stele writes fail their MAC: they were edited outside it.
    #[error("{path}: {what} fails authentication: it was altered outside Stele (evidence of tampering; the store is not opened)")]
    Tampered { path: String, what: String },

    /// The store is older than an anchor kept outside its data.
    #[error("the store was rolled back or forked: {reason} ({anchor}); it is not opened. Restore the newest copy; if this copy must be used, an operator opens it with `stele admin accept-rollback` (recorded in the audit trail)")]
    RolledBack { anchor: String, reason: String },

    /// The log lost acknowledged frames the index had seen (cut or rolled back below the store).
    #[error("the log ends at seq {log_next} but the index had seen records up to seq {index_next}: acknowledged records were cut from the log (evidence of tampering or of a disk that lost writes). The store is open for reading only until an operator acknowledges it (`stele admin acknowledge-cut`); the index that saw them is kept at {evidence}")]
    LogCutShort {
        index_next: u64,
        log_next: u64,
        evidence: String,
    },

    #[error("the key in {key_path} does not open this store (store {store_id})")]
    WrongKey { key_path: String, store_id: String },

    #[error("device {path} does not belong to this store: {reason}")]
    DeviceMismatch { path: String, reason: String },

    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },

    #[error("the store is poisoned after a failed flush ({reason}); reopen it to recover")]
    Poisoned { reason: String },

    #[error("the store is closed")]
    Closed,

    #[error("the store is full: no empty zone left for {needed} bytes")]
    Full { needed: u64 },

    #[error("the system's secure random generator failed while making {purpose}")]
    Random { purpose: &'static str },

    #[error("{stream} failed after {done} bytes: {source}")]
    Stream {
        /// Which stream: the blob being stored (source) or read out (destination).
        stream: &'static str,
        done: u64,
        #[source]
        source: io::Error,
    },

    #[error("not found: {what}")]
    NotFound { what: String },

    #[error("invalid {what}: {reason}")]
    InvalidInput { what: String, reason: String },

    #[error("store already exists at {path}")]
    AlreadyExists { path: String },

    #[error("hash chain broken at seq {seq} ({at}): {reason}")]
    ChainBroken {
        seq: u64,
        at: Location,
        reason: String,
    },

    #[error("index error in {path}: {reason}")]
    Index { path: String, reason: String },

    /// The index database is damaged (its pages fail redb's checks, or redb
    /// panicked reading them). The index is derived from the log: the next
    /// open sets the damaged file aside and rebuilds it.
    #[error("the index {path} is damaged ({reason}); it is set aside and rebuilt from the log when the store is next opened (or by `stele admin reindex`)")]
    IndexDamaged { path: String, reason: String },

    /// A zone file is missing or shorter than the log says; its records are
    /// unreadable here until it is repaired, every other zone is served.
    #[error("{at}: zone damaged: {reason}")]
    ZoneDamaged { at: Location, reason: String },

    #[error("key provider {provider}: {reason}")]
    KeyProvider { provider: String, reason: String },

    #[error("keystore {path}: {reason}")]
    Keystore { path: String, reason: String },

    #[error("record {seq} was crypto-shredded: its data key {key_id} was destroyed at {erased_at_us} µs under erasure request {request}")]
    Erased {
        seq: u64,
        key_id: u32,
        erased_at_us: i64,
        request: u64,
    },

    /// The keystore has no entry for data keys the log's records are
    /// encrypted with (it was restored from an older backup): new records are
    /// refused so that no key id is issued twice; records of other keys read.
    #[error("keystore {path} does not hold data keys {missing:?}, which records in the log are encrypted with (was it restored from an older backup?): new records are refused so that no key id is reused. Restore the newest keystore, or, if no copy holding them exists, a key administrator records them as lost with `stele admin acknowledge-lost-keys` (recorded in the audit trail)")]
    KeystoreIncomplete { path: String, missing: Vec<u32> },

    /// The store was opened with a configuration that could shorten retention
    /// for new records, and nobody with the retention role approved it.
    #[error("the configuration changed in ways that could shorten retention for new records ({}); new records are refused until someone with the retention role approves it with `stele config apply` (recorded in the audit trail), or the change is undone", changes.join("; "))]
    ConfigurationUnapproved { changes: Vec<String> },

    /// A record's data key is absent from the keystore.
    #[error("record {seq} is encrypted with data key {key_id}, which the keystore {path} does not hold (restore the newest keystore)")]
    KeyMissing { seq: u64, key_id: u32, path: String },

    /// A record's data key was lost with an older keystore and acknowledged as lost.
    #[error("record {seq} is unreadable: its data key {key_id} was lost with the keystore (acknowledged at {acknowledged_at_us} µs, audit record {audit_seq})")]
    KeyLost {
        seq: u64,
        key_id: u32,
        acknowledged_at_us: i64,
        audit_seq: u64,
    },

    #[error("{actor} may not {action}: that needs the {role} role (the attempt is recorded in the audit trail)")]
    Unauthorized {
        actor: String,
        action: String,
        role: String,
    },

    #[error("refused: {action}: {reason} (the attempt is recorded in the audit trail)")]
    Refused { action: String, reason: String },

    #[error("refused to run: the process's {clock} differs from the kernel's by {gap_s} s, so something (a preloaded library such as libfaketime) fakes its view of time; timeouts and retention cannot be trusted under it (recorded in the audit trail as an elapsed-disagrees clock anomaly)")]
    ClockInterposed { clock: String, gap_s: i64 },

    #[error("refused: {act}: {why} (the refusal is recorded in the audit trail)")]
    ClockUncorroborated { act: String, why: Uncorroborated },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A record whose content is unreadable for a known reason (its key was
    /// crypto-shredded, lost with the keystore, or is missing from it), while
    /// the frame itself is intact: paths that check frames or walk the log
    /// step over its content instead of failing.
    pub fn key_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Erased { .. } | Error::KeyMissing { .. } | Error::KeyLost { .. }
        )
    }

    pub(crate) fn io(
        device: &str,
        op: &'static str,
        zone: Option<u32>,
        offset: Option<u64>,
        source: io::Error,
    ) -> Self {
        Error::Io {
            device: device.to_string(),
            op,
            zone,
            offset,
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Why the clock cannot be relied on for a destructive act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Uncorroborated {
    #[error("no independent source has corroborated the compliance clock (attest the time with `stele clock attest`, or configure a Roughtime server and run `stele clock corroborate`)")]
    Never,
    #[error("the two readings of elapsed time disagreed (audit event {since}) after the last corroboration: something interposes on the clock; corroborate it again")]
    ElapsedDisputed { since: u64 },
    #[error("the compliance clock has advanced {advance_s} s since it was corroborated (audit event {seq}); at the drift budget it may be off by {possible_error_s} s, more than the {max_error_s} s allowed: corroborate it again")]
    Stale {
        seq: u64,
        advance_s: i64,
        possible_error_s: i64,
        max_error_s: i64,
    },
}
