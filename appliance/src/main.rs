//! `stele`: the Stele appliance's command line. This file parses it and hands
//! each command to its family in [`cli`] (or the daemon, [`daemon`]).

mod access;
mod capture;
mod cli;
mod daemon;
mod roughtime;
mod store_dir;
mod when;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use cli::{access as tokens, admin, audit, clock, config, erasure, evidence, holds};
use cli::{demo, import, init, integrity, keys, metrics, records, retention};

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
    /// Create a store in DIR: a zone-directory device in DIR/data, a 0600 key file, the keystore, the index.
    Init(init::Init),
    /// Ingest sample messages and media into a store, read them back, verify, and say how fast.
    Demo(demo::Demo),
    /// Run the daemon: HTTP API over TLS, capture endpoints, health and metrics.
    Serve {
        /// The store's stele.toml (the store lives beside it).
        #[arg(long)]
        config: PathBuf,
    },
    /// Import a WhatsApp "Export chat" file (.txt, or .zip with attachments). Re-importing adds nothing.
    Import(import::Import),
    /// What the store is and what opening it found.
    Info(init::Info),
    /// Append one message (body from --body or standard input).
    Put(records::Put),
    /// Read records by sequence number, record id, conversation or time range.
    Get(records::Get),
    /// Check every frame of the log: CRC, sequence, hash chain, authentication.
    /// Check a live store end to end (CRC, sequence, hash chain, GCM, Merkle
    /// root), or with --offline an export bundle with no key, server or network.
    Verify(integrity::Verify),
    /// Sign a Merkle tree head now, store it in the log, and print it (keep it to check later exports).
    TreeHead(evidence::TreeHead),
    /// Write an export bundle: records with their plaintext, inclusion proofs and a signed tree head.
    Export(evidence::Export),
    /// Scrub stored frames: CRC, misdirection, re-hashed payloads against their
    /// Merkle leaves, the hash chain, GCM tags, and (full) roots against signed tree heads.
    Scrub(integrity::Scrub),
    /// Merkle proofs as JSON.
    Proof {
        #[command(subcommand)]
        command: evidence::ProofCommand,
    },
    /// Configuration files: check, show, presets.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// Legal holds.
    Hold {
        #[command(subcommand)]
        command: holds::HoldCommand,
    },
    /// Retention: status, event-based extension.
    Retention {
        #[command(subcommand)]
        command: retention::RetentionCommand,
    },
    /// Delete a record: always refused (records are write-once); the attempt is recorded.
    Delete(retention::Delete),
    /// Reset every zone whose records have all left retention and are unheld.
    Reclaim(retention::Reclaim),
    /// GDPR erasure requests (crypto-shredding once retention allows).
    Erase {
        #[command(subcommand)]
        command: erasure::EraseCommand,
    },
    /// Data keys and the key-encryption key.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// The compliance clock: its reading, anomalies and corroboration.
    Clock(clock::Clock),
    /// The store's metrics in the Prometheus text format.
    Metrics(metrics::Metrics),
    /// The audit trail, as JSON lines.
    Audit(audit::Audit),
    /// Access tokens for principals.
    Access {
        #[command(subcommand)]
        command: tokens::AccessCommand,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
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

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init(c) => c.run(),
        Command::Demo(c) => c.run(),
        Command::Serve { config } => daemon::run(&config),
        Command::Import(c) => c.run(),
        Command::Info(c) => c.run(),
        Command::Put(c) => c.run(),
        Command::Get(c) => c.run(),
        Command::Verify(c) => c.run(),
        Command::TreeHead(c) => c.run(),
        Command::Export(c) => c.run(),
        Command::Scrub(c) => c.run(),
        Command::Proof { command } => command.run(),
        Command::Config { command } => command.run(),
        Command::Hold { command } => command.run(),
        Command::Retention { command } => command.run(),
        Command::Delete(c) => c.run(),
        Command::Reclaim(c) => c.run(),
        Command::Erase { command } => command.run(),
        Command::Keys { command } => command.run(),
        Command::Clock(c) => c.run(),
        Command::Metrics(c) => c.run(),
        Command::Audit(c) => c.run(),
        Command::Access { command } => command.run(),
        Command::Admin { command } => command.run(),
    }
}
