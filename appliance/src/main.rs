//! `stele`: the Stele appliance's command line.

mod demo;
mod store_dir;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use stele_config::Config;
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

#[derive(Subcommand)]
enum Command {
    /// Create a store in DIR: a zone-directory device in DIR/data, a 0600 key file, the index.
    Init {
        dir: PathBuf,
        /// A device to use instead of DIR/data: a block device, or a file path ending in .img (repeatable).
        #[arg(long = "device")]
        devices: Vec<String>,
        #[arg(long, default_value_t = 256)]
        zone_size_mib: u64,
        #[arg(long, default_value_t = 256)]
        zones: u32,
    },
    /// Ingest sample messages and media into a store, read them back, verify, and say how fast.
    Demo {
        /// Store directory (created if absent). Default: a fresh folder under ./stele-demo.
        #[arg(long)]
        store: Option<PathBuf>,
        #[arg(long, default_value_t = 5000)]
        messages: u64,
        #[arg(long, default_value_t = 4)]
        producers: u64,
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
    Verify {
        #[arg(long)]
        store: PathBuf,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Rebuild the index from the log and check it matches the one it replaces.
    Reindex {
        #[arg(long)]
        store: PathBuf,
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

fn print_record(r: &stele_engine::Record) {
    let body = String::from_utf8_lossy(&r.body);
    println!(
        "{}",
        serde_json::json!({
            "seq": r.seq, "kind": format!("{:?}", r.kind), "timestamp_us": r.timestamp_us,
            "record_id": r.record_id, "conversation_id": r.conversation_id, "body": body,
            "location": r.location.to_string(),
        })
    );
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init {
            dir,
            devices,
            zone_size_mib,
            zones,
        } => {
            let mut cfg = Config::embedded_default();
            if !devices.is_empty() {
                cfg.store.devices = devices;
            }
            cfg.store.zone_size_mib = zone_size_mib;
            cfg.store.zones_per_device = zones;
            let (sd, store) = StoreDir::init(&dir, cfg)?;
            let r = store.open_report().clone();
            store.close()?;
            println!("created store {} in {}", r.store_id, dir.display());
            println!(
                "  devices: {:?} ({} zones of {} MiB each)",
                sd.config.store.devices, zones, zone_size_mib
            );
            println!(
                "  key file: {} (mode 0600; keep it apart from the data and back it up)",
                sd.key_path().display()
            );
            println!("  I/O: {}, O_DIRECT: {}", r.io_backend, r.direct_io);
        }
        Command::Demo {
            store,
            messages,
            producers,
        } => demo::run(store, messages, producers)?,
        Command::Info { store } => {
            let (sd, s) = StoreDir::open(&store)?;
            let r = s.open_report();
            println!("store {} at {}", r.store_id, sd.root.display());
            println!(
                "  next seq {}, epoch {}, sealed zones {}",
                r.next_seq, r.epoch, r.sealed_zones
            );
            println!("  I/O backend {}, O_DIRECT {}", r.io_backend, r.direct_io);
            println!("  recovery: {} tail frames kept, {} torn bytes discarded, {} index entries replayed", r.tail_frames, r.discarded_tail_bytes, r.index_replayed);
            s.close()?;
        }
        Command::Put {
            store,
            record_id,
            conversation,
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
            let (_, s) = StoreDir::open(&store)?;
            let r = s.append(NewRecord::message(
                record_id,
                conversation,
                stele_engine::store::now_us(),
                body,
            ))?;
            println!("{}", serde_json::json!({"seq": r.seq}));
            s.close()?;
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
            let (_, s) = StoreDir::open(&store)?;
            let records = match (seq, record_id, conversation, from_us, to_us) {
                (Some(q), None, None, None, None) => vec![s.get(q)?],
                (None, Some(id), None, None, None) => s.by_record_id(&id, limit)?,
                (None, None, Some(c), None, None) => s.by_conversation(&c, limit)?,
                (None, None, None, Some(a), Some(b)) => s.by_time(a, b, limit)?,
                _ => anyhow::bail!("give exactly one of --seq, --record-id, --conversation, or --from-us with --to-us"),
            };
            for r in &records {
                print_record(r);
            }
            s.close()?;
        }
        Command::Verify { store } => {
            let (_, s) = StoreDir::open(&store)?;
            let v = s.verify()?;
            println!(
                "ok: {} frames ({} bytes), seq {}..{}, chain head {}",
                v.frames, v.bytes, v.first_seq, v.next_seq, v.chain_head
            );
            s.close()?;
        }
        Command::Admin {
            command: AdminCommand::Reindex { store },
        } => {
            let (_, s) = StoreDir::open(&store)?;
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
            s.close()?;
        }
    }
    Ok(())
}
