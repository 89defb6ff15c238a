//! Stele benchmarks. `cargo run --release -p bench -- ingest` measures, in one
//! run: the primitives (SHA-256, CRC32C, AES-256-GCM from `ring` and from
//! `aes-gcm`), the disk's raw O_DIRECT write bandwidth and fdatasync rate, and
//! the store's durable, encrypted ingest of 1 KiB messages (saturation, and
//! acknowledgement latency at a fixed 1,000 msg/s) and of 4 MiB media blobs.
//! `cargo run --release -p bench -- integrity` measures a full scrub beside
//! `sha256sum` and the raw read bandwidth over the same bytes, and Merkle
//! proof rates.

mod crypto;
mod ingest;
mod integrity;
mod loadgen;
mod raw;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bench", about = "Stele benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest benchmark with primitives and raw-disk baselines, in one run.
    Ingest {
        /// Scratch directory on the file system to measure (default: target/bench-scratch).
        #[arg(long, default_value = "target/bench-scratch")]
        dir: PathBuf,
        /// Seconds of saturation ingest.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Seconds at the fixed offered load.
        #[arg(long, default_value_t = 5.0)]
        paced_seconds: f64,
        /// Producer threads at saturation.
        #[arg(long, default_value_t = 4)]
        producers: usize,
    },
    /// Only the media part of `ingest`, beside the raw write bandwidth.
    Media {
        #[arg(long, default_value = "target/bench-scratch")]
        dir: PathBuf,
    },
    /// Drive `stele serve` with signed WhatsApp deliveries: latency at 1,000 msg/s, and saturation.
    Loadgen {
        #[arg(long, default_value = "target/release/stele")]
        stele: PathBuf,
        #[arg(long, default_value = "target/bench-scratch")]
        dir: PathBuf,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Connections at the fixed rate (four times as many at saturation).
        #[arg(long, default_value_t = 16)]
        connections: usize,
    },
    /// Full scrub beside sha256sum and raw read bandwidth over the same bytes; proof rates.
    Integrity {
        #[arg(long, default_value = "target/bench-scratch")]
        dir: PathBuf,
        /// MiB of 1 KiB messages to store.
        #[arg(long, default_value_t = 512)]
        message_mib: u64,
        /// MiB of media to store.
        #[arg(long, default_value_t = 1024)]
        media_mib: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Ingest {
            dir,
            seconds,
            paced_seconds,
            producers,
        } => {
            if let Err(e) = ingest::run(&dir, seconds, paced_seconds, producers) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
        Command::Media { dir } => {
            if let Err(e) = ingest::media_only(&dir) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
        Command::Loadgen {
            stele,
            dir,
            seconds,
            connections,
        } => {
            if let Err(e) = loadgen::run(&stele, &dir, seconds, connections) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
        Command::Integrity {
            dir,
            message_mib,
            media_mib,
        } => {
            if let Err(e) = integrity::run(&dir, message_mib, media_mib) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
}
