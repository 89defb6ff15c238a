//! `stele`: the Stele appliance's command line.

mod access;
mod capture;
mod demo;
mod listener;
mod metrics;
mod roughtime;
mod serve;
mod store_dir;
mod when;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use firmware_config::Config;
use stele_engine::compliance::audit::{Actor, Criteria};
use stele_engine::NewRecord;

use store_dir::StoreDir;

#[derive(Parser)]
#[command(
    name = "stele",
    version,
    about = "Stele: a write-once compliance archive for business chat"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Who acts: the principal's name; the token comes from STELE_TOKEN or --token-file.
#[derive(Args, Clone)]
struct Who {
    /// The principal acting (listed under [[access.principals]] in stele.toml).
    #[arg(long = "as", value_name = "NAME")]
    actor: String,
    /// A file holding the principal's access token (otherwise STELE_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Why: kept in the audit trail.
    #[arg(long)]
    reason: String,
}

/// Which records: every given field must match.
#[derive(Args, Clone, Default)]
struct Select {
    #[arg(long)]
    custodian: Option<String>,
    #[arg(long)]
    conversation: Option<String>,
    /// Records at or after this time (YYYY-MM-DD[THH:MM:SSZ] or µs).
    #[arg(long)]
    from: Option<String>,
    /// Records before this time.
    #[arg(long)]
    to: Option<String>,
    /// One record, by sequence number.
    #[arg(long)]
    seq: Option<u64>,
    /// A saved search's query text.
    #[arg(long)]
    query: Option<String>,
}

impl Select {
    fn criteria(&self) -> Result<Criteria> {
        Ok(Criteria {
            custodian: self.custodian.clone(),
            conversation: self.conversation.clone(),
            from_us: self.from.as_deref().map(when::parse).transpose()?,
            to_us: self.to.as_deref().map(when::parse).transpose()?,
            seq: self.seq,
            query: self.query.clone(),
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a store in DIR: a zone-directory device in DIR/data, a 0600 key file, the keystore, the index.
    Init {
        dir: PathBuf,
        /// A configuration file to create the store with (default: the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A device to use instead of DIR/data: a block device, or a file path ending in .img (repeatable).
        #[arg(long = "device")]
        devices: Vec<String>,
        #[arg(long)]
        zone_size_mib: Option<u64>,
        #[arg(long)]
        zones: Option<u32>,
    },
    /// Ingest sample messages and media into a store, read them back, verify, and say how fast.
    Demo {
        /// Store directory (created if absent). Default: ./stele-demo.
        #[arg(long)]
        store: Option<PathBuf>,
        #[arg(long, default_value_t = 5000)]
        messages: u64,
        #[arg(long, default_value_t = 4)]
        producers: u64,
    },
    /// Run the daemon: HTTP API over TLS, capture endpoints, health and metrics.
    Serve {
        /// The store's stele.toml (the store lives beside it).
        #[arg(long)]
        config: PathBuf,
    },
    /// Import a WhatsApp "Export chat" file (.txt, or .zip with attachments). Re-importing adds nothing.
    Import {
        file: PathBuf,
        #[arg(long)]
        store: PathBuf,
        /// The employee whose phone the export came from.
        #[arg(long)]
        custodian: String,
        /// The conversation id (default: derived from the custodian and the file name).
        #[arg(long)]
        conversation: Option<String>,
        /// The phone's UTC offset when it exported, e.g. +01:00 (exports carry local time).
        #[arg(long, default_value = "+00:00", allow_hyphen_values = true)]
        utc_offset: String,
        /// Largest uncompressed zip entry, MiB (default 4096).
        #[arg(long)]
        max_entry_mib: Option<u64>,
        /// Largest uncompressed total of all entries of one zip, MiB (default 65536).
        #[arg(long)]
        max_total_mib: Option<u64>,
        /// Largest compression ratio of a zip entry past its first MiB (default 100).
        #[arg(long)]
        max_ratio: Option<u64>,
        /// Largest chat text, MiB (it is parsed in memory; default 256).
        #[arg(long)]
        max_text_mib: Option<u64>,
    },
    /// What the store is and what opening it found.
    Info {
        #[arg(long)]
        store: PathBuf,
    },
    /// Append one message (body from --body or standard input).
    Put {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        record_id: String,
        #[arg(long)]
        conversation: String,
        #[arg(long, default_value = "")]
        custodian: String,
        #[arg(long, default_value = "")]
        tenant: String,
        #[arg(long, default_value = "")]
        channel: String,
        #[arg(long = "type", default_value = "")]
        message_type: String,
        /// The message's time (default: now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        body: Option<String>,
    },
    /// Read records by sequence number, record id, conversation or time range.
    Get {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        seq: Option<u64>,
        #[arg(long)]
        record_id: Option<String>,
        #[arg(long)]
        conversation: Option<String>,
        /// Time range start, microseconds since the epoch (with --to-us).
        #[arg(long)]
        from_us: Option<i64>,
        #[arg(long)]
        to_us: Option<i64>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Check every frame of the log: CRC, sequence, hash chain, authentication.
    /// Check a live store end to end (CRC, sequence, hash chain, GCM, Merkle
    /// root), or with --offline an export bundle with no key, server or network.
    Verify {
        #[arg(long, required_unless_present = "offline", conflicts_with = "offline")]
        store: Option<PathBuf>,
        /// An export bundle to check offline.
        #[arg(long, value_name = "BUNDLE")]
        offline: Option<PathBuf>,
        /// The store's tree-head public key (hex) as you know it.
        #[arg(long, requires = "offline")]
        public_key: Option<String>,
        /// A signed tree head you kept earlier: the bundle must prove the log only grew since.
        #[arg(long, requires = "offline")]
        previous_tree_head: Option<PathBuf>,
    },
    /// Sign a Merkle tree head now, store it in the log, and print it (keep it to check later exports).
    TreeHead {
        #[arg(long)]
        store: PathBuf,
        /// Print only the store's tree-head public key.
        #[arg(long)]
        public_key: bool,
    },
    /// Write an export bundle: records with their plaintext, inclusion proofs and a signed tree head.
    Export {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        conversation: Option<String>,
        #[arg(long)]
        record_id: Option<String>,
        /// Records by sequence number (repeatable).
        #[arg(long = "seq")]
        seqs: Vec<u64>,
        #[arg(long)]
        out: PathBuf,
        /// Consistency proofs from up to this many earlier tree heads.
        #[arg(long, default_value_t = 1000)]
        history: usize,
    },
    /// Scrub stored frames: CRC, misdirection, re-hashed payloads against their
    /// Merkle leaves, the hash chain, GCM tags, and (full) roots against signed tree heads.
    Scrub {
        #[arg(long)]
        store: PathBuf,
        /// full, sampled (scrub.sample_percent, at least scrub.sample_min_records) or zone
        #[arg(long, default_value = "sampled")]
        mode: String,
        #[arg(long, required_if_eq("mode", "zone"))]
        zone: Option<u32>,
        /// Ignore the configured bandwidth share.
        #[arg(long)]
        unlimited: bool,
    },
    /// Merkle proofs as JSON.
    Proof {
        #[command(subcommand)]
        command: ProofCommand,
    },
    /// Configuration files: check, show, presets.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Legal holds.
    Hold {
        #[command(subcommand)]
        command: HoldCommand,
    },
    /// Retention: status, event-based extension.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Delete a record: always refused (records are write-once); the attempt is recorded.
    Delete {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        seq: u64,
        #[command(flatten)]
        who: Who,
    },
    /// Reset every zone whose records have all left retention and are unheld.
    Reclaim {
        #[arg(long)]
        store: PathBuf,
        #[command(flatten)]
        who: Who,
    },
    /// GDPR erasure requests (crypto-shredding once retention allows).
    Erase {
        #[command(subcommand)]
        command: EraseCommand,
    },
    /// Data keys and the key-encryption key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The compliance clock: its reading, anomalies and corroboration.
    Clock {
        #[arg(long)]
        store: PathBuf,
        #[command(subcommand)]
        command: Option<ClockCommand>,
    },
    /// The store's metrics in the Prometheus text format.
    Metrics {
        #[arg(long)]
        store: PathBuf,
    },
    /// The audit trail, as JSON lines.
    Audit {
        #[arg(long)]
        store: PathBuf,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Access tokens for principals.
    Access {
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum ProofCommand {
    /// Record SEQ's inclusion in the tree of SIZE records (default: the whole log).
    Inclusion {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        seq: u64,
        #[arg(long)]
        size: Option<u64>,
    },
    /// That the tree of FROM records is a prefix of the tree of TO records.
    Consistency {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: Option<u64>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file, and that `stele serve` could run with
    /// it (TLS or plain HTTP on loopback; the files it reads exist, relative
    /// to the file's directory); errors name the line and column.
    Check {
        file: PathBuf,
        /// Skip the daemon's checks, for a store that is not served.
        #[arg(long)]
        no_serve: bool,
    },
    /// Print a configuration with every default and resolved retention period.
    Show {
        /// A configuration file, or a store directory.
        path: PathBuf,
        #[arg(long)]
        effective: bool,
    },
    /// Put a store's edited stele.toml into effect now, recorded in the audit
    /// trail with who and why; needed (retention role) when the change could
    /// shorten retention for new records, which are refused until then.
    Apply {
        #[arg(long)]
        store: PathBuf,
        #[command(flatten)]
        who: Who,
    },
    /// The regulatory presets, with their periods and citations.
    Presets,
    /// Print a shipped file: embedded, bank, hospital, or alerts (Prometheus rules).
    Example { name: String },
}

#[derive(Subcommand)]
enum HoldCommand {
    /// Place a legal hold.
    Place {
        #[arg(long)]
        store: PathBuf,
        /// The hold's name (e.g. the matter number).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        who: Who,
    },
    /// Release a legal hold.
    Release {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        hold: u64,
        #[command(flatten)]
        who: Who,
    },
    /// Every hold, placed and released.
    List {
        #[arg(long)]
        store: PathBuf,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// A record's retention date, extensions and holds.
    Status {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        seq: u64,
    },
    /// Keep matching records at least until a date (event-based retention).
    Extend {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        until: String,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        who: Who,
    },
    /// Shorten retention: always refused; the attempt is recorded.
    Shorten {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        until: String,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        who: Who,
    },
}

#[derive(Subcommand)]
enum EraseCommand {
    /// Record an erasure request for a data subject; it runs once retention and holds allow.
    Request {
        #[arg(long)]
        store: PathBuf,
        /// The conversation or custodian id (whichever keys.subject names).
        #[arg(long)]
        subject: String,
        #[command(flatten)]
        who: Who,
    },
    /// Try every waiting request again.
    Process {
        #[arg(long)]
        store: PathBuf,
        #[command(flatten)]
        who: Who,
    },
    /// Every request and its state.
    List {
        #[arg(long)]
        store: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// The data keys in the keystore (ids, subjects' tags, ages, destroyed or live).
    List {
        #[arg(long)]
        store: PathBuf,
    },
    /// Rotate the key-encryption key: re-wrap every data key, destroy the old KEK.
    RotateKek {
        #[arg(long)]
        store: PathBuf,
        #[command(flatten)]
        who: Who,
    },
}

#[derive(Subcommand)]
enum ClockCommand {
    /// Four eyes state the true time (read from a clock they trust), so that
    /// reclaim and erasure may go by it. The two principals must hold different roles.
    Attest {
        /// The true UTC time now (YYYY-MM-DDTHH:MM:SSZ).
        #[arg(long)]
        utc: String,
        #[command(flatten)]
        who: Who,
        /// The second principal.
        #[arg(long, value_name = "NAME")]
        second: String,
        /// A file holding the second principal's access token.
        #[arg(long)]
        second_token_file: PathBuf,
    },
    /// Ask the configured Roughtime servers ([[clock.roughtime]]) for the
    /// true time; a signed answer corroborates the clock (kept as evidence).
    Corroborate,
}

#[derive(Subcommand)]
enum AccessCommand {
    /// Make a new random token and print it with the hash for stele.toml.
    NewToken,
    /// Print the hash of a token read from standard input.
    HashToken,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Rebuild the index from the log and check it matches the one it replaces.
    Reindex {
        #[arg(long)]
        store: PathBuf,
    },
    /// Accept new records again after the log was found cut short (operator role; audited).
    AcknowledgeCut {
        #[arg(long)]
        store: PathBuf,
        #[command(flatten)]
        who: Who,
    },
    /// Record the data keys an older keystore lacks as lost, when no newer keystore exists (key-admin role; audited).
    AcknowledgeLostKeys {
        #[arg(long)]
        store: PathBuf,
        #[command(flatten)]
        who: Who,
    },
    /// Open a copy of the store that an anchor shows was rolled back or forked (operator role; audited).
    AcceptRollback {
        #[arg(long)]
        store: PathBuf,
        #[command(flatten)]
        who: Who,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STELE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Damage opening found and contained: a rebuilt index, zones set aside.
fn print_damage(r: &stele_engine::OpenReport) {
    if let Some(why) = &r.index_rebuilt {
        println!("  index: DAMAGED, rebuilt from the log at this open: {why}");
    }
    for d in &r.damaged_zones {
        println!(
            "  zone {}: DAMAGED ({}), records {}..{} unreadable here: {}",
            d.zone, d.at, d.first_seq, d.end_seq, d.reason
        );
    }
    if let Some(z) = r.read_only_at {
        println!("  READ ONLY: the active zone {z} is damaged; new records are refused until it is repaired");
    }
}

/// A listed record whose data key was destroyed: what is known of it.
fn print_erased(e: &stele_engine::Error) {
    if let stele_engine::Error::Erased {
        seq,
        key_id,
        erased_at_us,
        request,
    } = e
    {
        json(serde_json::json!({
            "seq": seq, "erased": true, "key_id": key_id,
            "erased_at": when::format(*erased_at_us), "erasure_request": request,
        }));
    }
}

fn print_record(r: &stele_engine::Record) {
    let body = String::from_utf8_lossy(&r.body);
    println!(
        "{}",
        serde_json::json!({
            "seq": r.seq, "kind": r.kind.name(), "timestamp_us": r.timestamp_us,
            "retain_until": when::format(r.retain_until_us),
            "record_id": r.record_id, "conversation_id": r.conversation_id,
            "custodian": r.custodian, "tenant": r.tenant, "channel": r.channel, "type": r.message_type,
            "body": body, "key_id": r.key_id, "location": r.location.to_string(),
        })
    );
}

/// `+HH:MM` / `-HH:MM` to seconds.
fn parse_offset(s: &str) -> Result<i64> {
    let (sign, rest) = match s.split_at_checked(1) {
        Some(("+", r)) => (1, r),
        Some(("-", r)) => (-1, r),
        _ => bail!("--utc-offset {s:?}: expected +HH:MM or -HH:MM"),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (Ok(h), Ok(m)) = (h.parse::<i64>(), m.parse::<i64>()) else {
        bail!("--utc-offset {s:?}: expected +HH:MM or -HH:MM");
    };
    if h > 14 || m > 59 {
        bail!("--utc-offset {s:?} is out of range");
    }
    Ok(sign * (h * 3600 + m * 60))
}

fn json(v: impl serde::Serialize) {
    println!("{}", serde_json::to_string(&v).expect("serialisable"));
}

/// Open a store and authenticate `who` against its configuration.
/// Open the store in `root`, run `f` on it, and close it on every path: a
/// close error is the result when `f` succeeded, and is added to `f`'s error
/// when it did not (never lost).
fn with_store<T>(
    root: &Path,
    f: impl FnOnce(&StoreDir, &stele_engine::Store) -> Result<T>,
) -> Result<T> {
    let (sd, s) = StoreDir::open(root)?;
    let out = f(&sd, &s);
    closing(s, out)
}

/// [`with_store`] acting as the principal `who` names.
fn with_store_as<T>(
    root: &Path,
    who: &Who,
    f: impl FnOnce(&StoreDir, &stele_engine::Store, &Actor) -> Result<T>,
) -> Result<T> {
    let (sd, s, actor) = open_as(root, who)?;
    let out = f(&sd, &s, &actor);
    closing(s, out)
}

/// Close `s` after a command produced `out`.
fn closing<T>(s: stele_engine::Store, out: Result<T>) -> Result<T> {
    match (out, s.close()) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(c)) => Err(c.into()),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(c)) => Err(e.context(format!("closing the store also failed: {c}"))),
    }
}

/// Open a store with a decision `who` takes at open (accepting a rollback,
/// approving a configuration): `set` puts (actor, reason) into the options.
fn open_deciding(
    store: &Path,
    who: &Who,
    set: impl FnOnce(&mut stele_engine::StoreOptions, (Actor, String)),
) -> Result<(StoreDir, stele_engine::Store)> {
    let sd = StoreDir::load(store)?;
    let token = access::token(who.token_file.as_deref())?;
    let actor = access::actor(&sd.config, &who.actor, token.as_deref());
    let s = StoreDir::open_with(store, |o| set(o, (actor, who.reason.clone())))?;
    Ok((sd, s))
}

fn open_as(store: &Path, who: &Who) -> Result<(StoreDir, stele_engine::Store, Actor)> {
    let (sd, s) = StoreDir::open(store)?;
    let token = access::token(who.token_file.as_deref())?;
    let actor = access::actor(&sd.config, &who.actor, token.as_deref());
    Ok((sd, s, actor))
}

/// `stele clock`: the reading, or an attestation of the true time.
fn clock(store: &Path, command: Option<ClockCommand>) -> Result<()> {
    with_store(store, |sd, s| clock_command(sd, s, command))
}

fn clock_command(
    sd: &StoreDir,
    s: &stele_engine::Store,
    command: Option<ClockCommand>,
) -> Result<()> {
    let out: serde_json::Value = match command {
        None => clock_status(sd, s)?,
        Some(ClockCommand::Attest {
            utc,
            who,
            second,
            second_token_file,
        }) => {
            let first_token = access::token(who.token_file.as_deref())?;
            let second_token = access::token(Some(&second_token_file))?;
            let a = stele_engine::compliance::corroboration::Attestation {
                first: access::actor(&sd.config, &who.actor, first_token.as_deref()),
                second: access::actor(&sd.config, &second, second_token.as_deref()),
                utc_us: when::parse(&utc)?,
                reason: who.reason.clone(),
            };
            corroboration_json(s.attest_time(&a)?)
        }
        Some(ClockCommand::Corroborate) => corroboration_json(roughtime::corroborate(
            s,
            &sd.config.clock.roughtime,
            &Actor::system(),
            "corroborated by the configured Roughtime servers",
        )?),
    };
    json(out);
    Ok(())
}

fn corroboration_json(
    r: stele_engine::compliance::corroboration::AttestationReport,
) -> serde_json::Value {
    serde_json::json!({
        "corroborated": true,
        "audit_seq": r.seq,
        "attested": when::format(r.attested_us),
        "compliance_now": when::format(r.compliance_us),
        "compliance_ahead_us": r.ahead_us,
        "ran_fast_by_us": r.fast_by_us,
    })
}

/// Before a destructive act: corroborate the clock by the configured
/// Roughtime servers, if any (a failure is reported; the act then goes by
/// the corroboration the store already has, or is refused).
fn corroborate_if_configured(sd: &StoreDir, s: &stele_engine::Store) {
    if sd.config.clock.roughtime.is_empty() {
        return;
    }
    let why = "before a destructive act, by the configured Roughtime servers";
    if let Err(e) = roughtime::corroborate(s, &sd.config.clock.roughtime, &Actor::system(), why) {
        eprintln!("warning: the clock was not corroborated by Roughtime: {e:#}");
    }
}

fn clock_status(sd: &StoreDir, s: &stele_engine::Store) -> stele_engine::Result<serde_json::Value> {
    use std::sync::atomic::Ordering::Relaxed;
    s.record_clock_anomalies()?;
    let c = s.clock();
    let (trust, destructive) = s.clock_trust()?;
    Ok(serde_json::json!({
        "compliance_now": when::format(s.compliance_now_us()),
        "compliance_now_us": s.compliance_now_us(),
        "system_now": when::format(stele_engine::store::now_us()),
        "system_minus_compliance_us": c.stats.gap_us.load(Relaxed),
        "drift_budget_ppm": sd.config.clock.drift_budget_ppm,
        "forward_jumps": c.stats.forward_jumps.load(Relaxed),
        "backward_jumps": c.stats.backward_jumps.load(Relaxed),
        "restarts": c.stats.restarts.load(Relaxed),
        "elapsed_disagreements": c.stats.elapsed_disagreements.load(Relaxed),
        "corroboration": trust.corroboration.map(|k| serde_json::json!({
            "audit_seq": k.seq,
            "source": k.source,
            "attested": when::format(k.attested_us),
            "compliance_then": when::format(k.compliance_us),
        })),
        "destructive_acts": match destructive {
            Ok(t) => serde_json::json!({"allowed": true, "by_time": when::format(t)}),
            Err(why) => serde_json::json!({"allowed": false, "why": why.to_string()}),
        },
    }))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init {
            dir,
            config,
            devices,
            zone_size_mib,
            zones,
        } => {
            let mut cfg = match &config {
                Some(p) => Config::load(p)?,
                None => Config::embedded_default(),
            };
            if !devices.is_empty() {
                cfg.store.devices = devices;
            }
            if let Some(z) = zone_size_mib {
                cfg.store.zone_size_mib = z;
            }
            if let Some(z) = zones {
                cfg.store.zones_per_device = z;
            }
            let (sd, store) = StoreDir::init(&dir, cfg)?;
            let r = store.open_report().clone();
            let provider = store.keyring().map(|k| k.provider()).unwrap_or_default();
            store.close()?;
            let c = &sd.config.store;
            println!("created store {} in {}", r.store_id, dir.display());
            println!(
                "  devices: {:?} ({} zones of {} MiB each)",
                c.devices, c.zones_per_device, c.zone_size_mib
            );
            println!(
                "  key-encryption key: {provider} (keep it apart from the data and back it up)"
            );
            println!("  keystore: {}", sd.keystore_path().display());
            println!("  I/O: {}, O_DIRECT: {}", r.io_backend, r.direct_io);
        }
        Command::Demo {
            store,
            messages,
            producers,
        } => demo::run(store, messages, producers)?,
        Command::Serve { config } => serve::run(&config)?,
        Command::Import {
            file,
            store,
            custodian,
            conversation,
            utc_offset,
            max_entry_mib,
            max_total_mib,
            max_ratio,
            max_text_mib,
        } => {
            let d = capture::chat_export::import::Limits::default();
            let mib = |v: Option<u64>, d: u64| v.map_or(d, |m| m.saturating_mul(1 << 20));
            capture::chat_export::import(&capture::chat_export::import::ImportArgs {
                file,
                store,
                custodian,
                conversation,
                utc_offset_s: parse_offset(&utc_offset)?,
                limits: capture::chat_export::import::Limits {
                    entry_bytes: mib(max_entry_mib, d.entry_bytes),
                    total_bytes: mib(max_total_mib, d.total_bytes),
                    ratio: max_ratio.unwrap_or(d.ratio),
                    text_bytes: mib(max_text_mib, d.text_bytes),
                    ..d
                },
            })?;
        }
        Command::Info { store } => {
            with_store(&store, |sd, s| {
                let r = s.open_report();
                println!(
                    "store {} at {} (on-disk format {})",
                    r.store_id,
                    sd.root.display(),
                    stele_engine::log::superblock::FORMAT_VERSION
                );
                println!(
                    "  next seq {}, epoch {}, sealed zones {}",
                    r.next_seq, r.epoch, r.sealed_zones
                );
                println!("  I/O backend {}, O_DIRECT {}", r.io_backend, r.direct_io);
                if let Some(k) = s.keyring() {
                    println!("  keys: {} ({} data keys)", k.provider(), k.keys()?.len());
                }
                println!("  compliance clock {}", when::format(s.compliance_now_us()));
                println!("  recovery: {} tail frames kept, {} torn bytes discarded, {} index entries replayed", r.tail_frames, r.discarded_tail_bytes, r.index_replayed);
                print_anchors(r);
                print_damage(r);
                Ok(())
            })?;
        }
        Command::Put {
            store,
            record_id,
            conversation,
            custodian,
            tenant,
            channel,
            message_type,
            at,
            body,
        } => {
            let body = match body {
                Some(b) => b.into_bytes(),
                None => {
                    let mut b = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
                    b
                }
            };
            let ts = match at {
                Some(a) => when::parse(&a)?,
                None => stele_engine::store::now_us(),
            };
            with_store(&store, |_, s| {
                let rec = NewRecord::message(record_id, conversation, ts, body)
                    .with_custodian(custodian)
                    .with_tenant(tenant)
                    .with_channel(channel, message_type);
                let until = s.retain_until_for(&rec);
                let r = s.append(rec)?;
                json(serde_json::json!({"seq": r.seq, "retain_until": when::format(until)}));
                Ok(())
            })?;
        }
        Command::Get {
            store,
            seq,
            record_id,
            conversation,
            from_us,
            to_us,
            limit,
        } => {
            let found = with_store(&store, |_, s| {
                let found = match (seq, &record_id, &conversation, from_us, to_us) {
                (Some(q), None, None, None, None) => s.get(q).map(|r| vec![(q, Ok(r))]),
                (None, Some(id), None, None, None) => s.listing(id, true, limit),
                (None, None, Some(c), None, None) => s.listing(c, false, limit),
                (None, None, None, Some(a), Some(b)) => {
                    s.by_time(a, b, limit).map(|v| v.into_iter().map(|r| (r.seq, Ok(r))).collect())
                }
                _ => bail!("give exactly one of --seq, --record-id, --conversation, or --from-us with --to-us"),
            };
                Ok(found?)
            })?;
            let mut unreadable = 0;
            for (seq, r) in &found {
                match r {
                    Ok(r) => print_record(r),
                    Err(e @ stele_engine::Error::Erased { .. }) => print_erased(e),
                    Err(e) => {
                        unreadable += 1;
                        json(serde_json::json!({
                            "seq": seq, "unreadable": true, "error": e.to_string(),
                        }));
                    }
                }
            }
            if unreadable > 0 {
                bail!("{unreadable} of the {} records listed could not be read (listed above with their error)", found.len());
            }
            match (found.is_empty(), record_id, conversation) {
                (true, Some(id), _) => bail!("no record has record id {id:?}"),
                (true, _, Some(c)) => bail!("no record is in conversation {c:?}"),
                _ => {}
            }
        }
        Command::Verify {
            store,
            offline,
            public_key,
            previous_tree_head,
        } => match (store, offline) {
            (_, Some(bundle)) => {
                let text = std::fs::read_to_string(&bundle)
                    .with_context(|| format!("reading {}", bundle.display()))?;
                let b: stele_engine::integrity::export::Bundle = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not an export bundle", bundle.display()))?;
                let previous = match &previous_tree_head {
                    Some(p) => Some(
                        serde_json::from_str::<stele_engine::integrity::treehead::SignedTreeHead>(
                            &std::fs::read_to_string(p)
                                .with_context(|| format!("reading {}", p.display()))?,
                        )
                        .with_context(|| format!("{} is not a signed tree head", p.display()))?,
                    ),
                    None => None,
                };
                let r = stele_engine::integrity::export::verify_bundle(
                    &b,
                    public_key.as_deref(),
                    previous.as_ref(),
                )
                .map_err(|why| {
                    anyhow::anyhow!("{}: verification failed: {why}", bundle.display())
                })?;
                println!(
                    "ok: {} records included in the tree head of size {} signed by {}{} ({} with content checked against their hash, {} erased); {} consistency proofs checked{}",
                    r.records,
                    r.tree_size,
                    &b.tree_head.public_key[..16],
                    if public_key.is_some() { " (the pinned key)" } else { " (key not pinned: pass --public-key)" },
                    r.with_content,
                    r.erased,
                    r.consistency_checked,
                    if r.previous_head_linked { "; the log only grew since the tree head you kept" } else { "" }
                );
            }
            (Some(store), None) => {
                with_store(&store, |_, s| verify_store(s))?;
            }
            (None, None) => bail!("give --store DIR or --offline BUNDLE"),
        },
        Command::TreeHead { store, public_key } => {
            with_store(&store, |_, s| {
                if public_key {
                    println!("{}", s.tree_head_public_key()?);
                } else {
                    println!("{}", serde_json::to_string_pretty(&s.sign_tree_head()?)?);
                }
                Ok(())
            })?;
        }
        Command::Export {
            store,
            conversation,
            record_id,
            seqs,
            out,
            history,
        } => {
            with_store(&store, |_, s| {
                let mut wanted = seqs;
                if let Some(c) = conversation {
                    wanted.extend(s.by_conversation(&c, usize::MAX)?.iter().map(|r| r.seq));
                }
                if let Some(r) = record_id {
                    wanted.extend(s.by_record_id(&r, usize::MAX)?.iter().map(|r| r.seq));
                }
                wanted.sort_unstable();
                wanted.dedup();
                if wanted.is_empty() {
                    bail!("nothing to export: give --conversation, --record-id or --seq");
                }
                let b = s.export_bundle(&wanted, history)?;
                std::fs::write(&out, serde_json::to_vec_pretty(&b)?)
                    .with_context(|| format!("writing {}", out.display()))?;
                println!(
                    "exported {} records to {} (tree size {}, {} consistency proofs); check it with `stele verify --offline {} --public-key {}`",
                    b.records.len(),
                    out.display(),
                    b.tree_head.head.tree_size,
                    b.consistency.len(),
                    out.display(),
                    b.tree_head.public_key
                );
                Ok(())
            })?;
        }
        Command::Scrub {
            store,
            mode,
            zone,
            unlimited,
        } => {
            use stele_engine::integrity::scrub::ScrubMode;
            let r = with_store(&store, |sd, s| {
                let sc = &sd.config.scrub;
                let mode = match (mode.as_str(), zone) {
                    ("full", _) => ScrubMode::Full,
                    ("sampled", _) => ScrubMode::Sampled {
                        percent: sc.sample_percent,
                        min_records: sc.sample_min_records,
                    },
                    ("zone", Some(z)) => ScrubMode::Zone { zone: z },
                    (other, _) => bail!("unknown scrub mode {other:?}: full, sampled or zone"),
                };
                let rate = (!unlimited).then(|| {
                    sc.device_read_mb_s as u64 * 1_000_000 * sc.bandwidth_percent as u64 / 100
                });
                let r = s.scrub(mode, rate)?;
                json(serde_json::json!({
                    "mode": r.mode, "frames": r.frames_checked, "bytes": r.bytes_checked,
                    "authenticated": r.authenticated, "shredded": r.shredded,
                    "tree_heads_checked": r.tree_heads_checked, "seconds": r.seconds,
                    "mb_per_s": r.mb_per_s(), "damage_count": r.damage_count,
                }));
                for d in &r.damage {
                    json(d);
                }
                Ok(r)
            })?;
            if r.damage_count > 0 {
                bail!(
                    "scrub found {} damaged frames (listed above; recorded in the log for repair)",
                    r.damage_count
                );
            }
        }
        Command::Proof { command } => match command {
            ProofCommand::Inclusion { store, seq, size } => {
                with_store(&store, |_, s| {
                    let size = size.unwrap_or(s.next_seq());
                    let proof = s.inclusion_proof(seq, size)?;
                    json(serde_json::json!({
                        "seq": seq, "tree_size": size,
                        "leaf": s.leaf_data(seq)?,
                        "leaf_hash": hex::encode(s.leaf_data(seq)?.hash()),
                        "root": hex::encode(s.merkle_root(size)?),
                        "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
                    }));
                    Ok(())
                })?;
            }
            ProofCommand::Consistency { store, from, to } => {
                with_store(&store, |_, s| {
                    let to = to.unwrap_or(s.next_seq());
                    let proof = s.consistency_proof(from, to)?;
                    json(serde_json::json!({
                        "from": from, "to": to,
                        "from_root": hex::encode(s.merkle_root(from)?),
                        "to_root": hex::encode(s.merkle_root(to)?),
                        "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
                    }));
                    Ok(())
                })?;
            }
        },
        Command::Config { command } => match command {
            ConfigCommand::Check { file, no_serve } => {
                let c = if no_serve {
                    Config::load(&file)?
                } else {
                    listener::check_serving(&file)?
                };
                println!(
                    "{}: valid ({} devices, key provider {:?}, {} retention classes, {} rules, {} principals)",
                    file.display(),
                    c.store.devices.len(),
                    c.keys.provider,
                    c.retention.classes.len(),
                    c.retention.rules.len(),
                    c.access.principals.len()
                );
            }
            ConfigCommand::Show { path, effective } => {
                let file = if path.is_dir() {
                    path.join(firmware_config::CONFIG_FILE)
                } else {
                    path
                };
                let c = Config::load(&file)?;
                if effective {
                    print!("{}", c.effective_toml());
                } else {
                    print!("{}", std::fs::read_to_string(&file)?);
                }
            }
            ConfigCommand::Apply { store, who } => {
                let (sd, s) = open_deciding(&store, &who, |o, decision| {
                    o.approve_configuration = Some(decision)
                })?;
                println!(
                    "the configuration in {} is in effect and recorded in the audit trail",
                    sd.root.join(firmware_config::CONFIG_FILE).display()
                );
                s.close()?;
            }
            ConfigCommand::Presets => {
                for p in firmware_config::preset::PRESETS {
                    json(p);
                }
            }
            ConfigCommand::Example { name } => match name.as_str() {
                "embedded" => print!("{}", firmware_config::EMBEDDED_DEFAULT),
                "bank" => print!("{}", firmware_config::EXAMPLE_BANK),
                "hospital" => print!("{}", firmware_config::EXAMPLE_HOSPITAL),
                "alerts" => print!("{}", firmware_config::ALERT_RULES),
                other => bail!("no example {other:?}: embedded, bank, hospital or alerts"),
            },
        },
        Command::Hold { command } => match command {
            HoldCommand::Place {
                store,
                name,
                select,
                who,
            } => {
                with_store_as(&store, &who, |_, s, actor| {
                    let id = s.place_hold(actor, &name, select.criteria()?, &who.reason)?;
                    json(serde_json::json!({"hold": id, "name": name}));
                    Ok(())
                })?;
            }
            HoldCommand::Release { store, hold, who } => {
                with_store_as(&store, &who, |_, s, actor| {
                    s.release_hold(actor, hold, &who.reason)?;
                    json(serde_json::json!({"released": hold}));
                    Ok(())
                })?;
            }
            HoldCommand::List { store } => {
                with_store(&store, |_, s| {
                    for h in s.holds()? {
                        json(h);
                    }
                    Ok(())
                })?;
            }
        },
        Command::Retention { command } => match command {
            RetentionCommand::Status { store, seq } => {
                with_store(&store, |_, s| {
                    let st = s.retention_status(seq)?;
                    json(serde_json::json!({
                        "seq": st.seq,
                        "stored_until": when::format(st.stored_until_us),
                        "effective_until": when::format(st.effective_until_us),
                        "held_by": st.held_by,
                        "expired": st.expired,
                        "compliance_now": when::format(s.compliance_now_us()),
                    }));
                    Ok(())
                })?;
            }
            RetentionCommand::Extend {
                store,
                until,
                select,
                who,
            } => {
                with_store_as(&store, &who, |_, s, actor| {
                    let id = s.extend_retention(
                        actor,
                        select.criteria()?,
                        when::parse(&until)?,
                        &who.reason,
                    )?;
                    json(serde_json::json!({"extension": id, "until": until}));
                    Ok(())
                })?;
            }
            RetentionCommand::Shorten {
                store,
                until,
                select,
                who,
            } => {
                with_store_as(&store, &who, |_, s, actor| {
                    s.shorten_retention(
                        actor,
                        select.criteria()?,
                        when::parse(&until)?,
                        &who.reason,
                    )?;
                    Ok(())
                })?;
            }
        },
        Command::Delete { store, seq, who } => {
            with_store_as(&store, &who, |_, s, actor| {
                s.delete_record(actor, seq, &who.reason)?;
                Ok(())
            })?;
        }
        Command::Reclaim { store, who } => {
            with_store_as(&store, &who, |sd, s, actor| {
                corroborate_if_configured(sd, s);
                for v in s.reclaim(actor, &who.reason)? {
                    json(v);
                }
                Ok(())
            })?;
        }
        Command::Erase { command } => match command {
            EraseCommand::Request {
                store,
                subject,
                who,
            } => {
                with_store_as(&store, &who, |_, s, actor| {
                    let (id, state) = s.request_erasure(actor, &subject, &who.reason)?;
                    json(serde_json::json!({"request": id, "state": state}));
                    Ok(())
                })?;
            }
            EraseCommand::Process { store, who } => {
                with_store_as(&store, &who, |sd, s, actor| {
                    corroborate_if_configured(sd, s);
                    for (id, state) in s.process_erasures(actor)? {
                        json(serde_json::json!({"request": id, "state": state}));
                    }
                    Ok(())
                })?;
            }
            EraseCommand::List { store } => {
                with_store(&store, |_, s| {
                    for e in s.erasures()? {
                        json(e);
                    }
                    Ok(())
                })?;
            }
        },
        Command::Keys { command } => match command {
            KeysCommand::List { store } => {
                with_store(&store, |_, s| {
                    if let Some(k) = s.keyring() {
                        for info in k.keys()? {
                            json(serde_json::json!({
                                "key_id": info.id,
                                "subject_tag": hex::encode(info.subject),
                                "created": when::format(info.created_us),
                                "kek_generation": info.kek_generation,
                                "destroyed": info.destroyed.map(|(at, req)| serde_json::json!({"at": when::format(at), "erasure_request": req})),
                                "lost": info.lost.map(|(at, seq)| serde_json::json!({"acknowledged": when::format(at), "audit_seq": seq})),
                            }));
                        }
                    }
                    Ok(())
                })?;
            }
            KeysCommand::RotateKek { store, who } => {
                with_store_as(&store, &who, |_, s, actor| {
                    let r = s.rotate_kek(actor, &who.reason)?;
                    json(
                        serde_json::json!({"from_generation": r.from_generation, "to_generation": r.to_generation, "rewrapped": r.rewrapped}),
                    );
                    Ok(())
                })?;
            }
        },
        Command::Clock { store, command } => clock(&store, command)?,
        Command::Metrics { store } => {
            with_store(&store, |_, s| {
                print!("{}", metrics::text(&metrics::registry(s)?)?);
                Ok(())
            })?;
        }
        Command::Audit { store, limit } => {
            with_store(&store, |_, s| {
                for e in s.audit_trail(limit)? {
                    json(e);
                }
                Ok(())
            })?;
        }
        Command::Access { command } => match command {
            AccessCommand::NewToken => {
                let (t, h) = access::new_token()?;
                println!("token: {t}");
                println!("token_sha256 = \"{h}\"");
            }
            AccessCommand::HashToken => {
                let mut t = String::new();
                std::io::stdin().read_line(&mut t)?;
                println!("token_sha256 = \"{}\"", access::token_hash(&t));
            }
        },
        Command::Admin {
            command: AdminCommand::Reindex { store },
        } => {
            with_store(&store, |_, s| {
                let before = s.index_digest()?;
                let n = s.reindex()?;
                let after = s.index_digest()?;
                println!("reindexed {n} frames; index digest {}", hex::encode(after));
                if before != after {
                    println!(
                        "note: the rebuilt index differs from the one it replaced (digest was {})",
                        hex::encode(before)
                    );
                }
                Ok(())
            })?;
        }
        Command::Admin {
            command: AdminCommand::AcknowledgeCut { store, who },
        } => {
            with_store_as(&store, &who, |_, s, actor| {
                s.acknowledge_log_cut(actor, &who.reason)?;
                println!("acknowledged: the store accepts new records again");
                Ok(())
            })?;
        }
        Command::Admin {
            command: AdminCommand::AcknowledgeLostKeys { store, who },
        } => {
            with_store_as(&store, &who, |_, s, actor| {
                let lost = s.acknowledge_lost_keys(actor, &who.reason)?;
                println!("acknowledged: data keys {lost:?} are recorded as lost (their records stay listed as unreadable); the store accepts new records again");
                Ok(())
            })?;
        }
        Command::Admin {
            command: AdminCommand::AcceptRollback { store, who },
        } => {
            let (_, s) = open_deciding(&store, &who, |o, decision| {
                o.accept_rollback = Some(decision)
            })?;
            println!(
                "opened and re-anchored at seq {}; the rollback is in the audit trail",
                s.next_seq()
            );
            s.close()?;
        }
    }
    Ok(())
}

/// `stele verify --store`: the chain walk stops at the first break; the
/// full scrub after it goes on to the end and lists every damaged place.
fn verify_store(s: &stele_engine::Store) -> Result<()> {
    let walked = s.verify();
    let scrub = s.scrub(stele_engine::integrity::scrub::ScrubMode::Full, None)?;
    let v = match walked {
        Ok(v) if scrub.damage_count == 0 && v.damaged_zones.is_empty() => v,
        walked => {
            for d in &scrub.damage {
                json(d);
            }
            let first = match walked {
                Err(e) => format!("; the chain walk stopped at: {e}"),
                Ok(_) => String::new(),
            };
            bail!(
                "{} damaged places (listed above){first}",
                scrub.damage_count
            );
        }
    };
    let root = s.merkle_root(v.next_seq)?;
    println!(
        "ok: {} frames ({} bytes), seq {}..{}, chain head {}; Merkle root {}; every frame matches its Merkle leaf and {} signed tree heads match the rebuilt roots; {} shredded frames checked without their key; {} reclaimed ranges crossed",
        v.frames, v.bytes, v.first_seq, v.next_seq, v.chain_head, hex::encode(root), scrub.tree_heads_checked, v.shredded, v.reclaimed_ranges
    );
    Ok(())
}

/// Where the store's checkpoints are anchored, and whether its log was found cut short.
fn print_anchors(r: &stele_engine::OpenReport) {
    if r.anchors_held.is_empty() && r.anchors_empty.is_empty() {
        println!("  rollback anchors: none configured (store.anchors): a restored old copy would not be noticed");
    }
    for (place, generation) in &r.anchors_held {
        println!("  rollback anchor: {place} (checkpoint generation {generation})");
    }
    for place in &r.anchors_empty {
        println!("  rollback anchor: {place} (first anchor written now)");
    }
    if let Some(c) = &r.log_cut {
        println!(
            "  LOG CUT SHORT: the index had seen seq {} but the log ends at {}; new records refused until `stele admin acknowledge-cut`; evidence {}",
            c.index_next, c.log_next, c.evidence
        );
    }
    if !r.configuration_unapproved.is_empty() {
        println!(
            "  CONFIGURATION NOT APPROVED: it could shorten retention for new records ({}); new records refused until `stele config apply` by the retention role",
            r.configuration_unapproved.join("; ")
        );
    }
    if !r.keystore_missing.is_empty() {
        println!(
            "  KEYSTORE INCOMPLETE: it lacks data keys {:?} that records in the log are encrypted with; new records refused until the newest keystore is restored or `stele admin acknowledge-lost-keys`",
            r.keystore_missing
        );
    }
}
