//! A store's life at its start: `stele init` creates one, `stele info` says
//! what a store is and what opening it found (recovery, anchors, damage, and
//! what keeps it from taking new records).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use firmware_config::Config;
use stele_engine::OpenReport;

use super::store::{with_new_store, with_store};
use crate::when;

#[derive(Args)]
pub struct Init {
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
}

impl Init {
    pub fn run(self) -> Result<()> {
        let mut cfg = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::embedded_default(),
        };
        if !self.devices.is_empty() {
            cfg.store.devices = self.devices;
        }
        if let Some(z) = self.zone_size_mib {
            cfg.store.zone_size_mib = z;
        }
        if let Some(z) = self.zones {
            cfg.store.zones_per_device = z;
        }
        let dir = self.dir;
        let (c, keystore, r, provider) = with_new_store(&dir, cfg, |sd, store| {
            let r = store.open_report().clone();
            let provider = store.keyring().map(|k| k.provider()).unwrap_or_default();
            Ok((sd.config.store.clone(), sd.keystore_path(), r, provider))
        })?;
        println!("created store {} in {}", r.store_id, dir.display());
        println!(
            "  devices: {:?} ({} zones of {} MiB each)",
            c.devices, c.zones_per_device, c.zone_size_mib
        );
        println!("  key-encryption key: {provider} (keep it apart from the data and back it up)");
        println!("  keystore: {}", keystore.display());
        println!("  I/O: {}, O_DIRECT: {}", r.io_backend, r.direct_io);
        Ok(())
    }
}

#[derive(Args)]
pub struct Info {
    #[arg(long)]
    store: PathBuf,
}

impl Info {
    pub fn run(self) -> Result<()> {
        with_store(&self.store, |sd, s| {
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
        })
    }
}

/// Where the store's checkpoints are anchored, and whether its log was found cut short.
fn print_anchors(r: &OpenReport) {
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

/// Damage opening found and contained: a rebuilt index, zones set aside.
fn print_damage(r: &OpenReport) {
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
