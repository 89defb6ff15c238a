//! Checking what is stored: `stele verify` walks a live store end to end (or
//! checks an export bundle offline, with no key, server or network), `stele
//! scrub` re-reads stored frames against their checksums, leaves and tags.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use stele_engine::integrity::export::Bundle;
use stele_engine::integrity::scrub::ScrubMode;
use stele_engine::integrity::treehead::SignedTreeHead;
use stele_engine::Store;

use super::output::json;
use super::store::with_store;

#[derive(Args)]
pub struct Verify {
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
}

impl Verify {
    pub fn run(self) -> Result<()> {
        match (&self.store, &self.offline) {
            (_, Some(bundle)) => self.bundle(bundle),
            (Some(store), None) => with_store(store, |_, s| verify_store(s)),
            (None, None) => bail!("give --store DIR or --offline BUNDLE"),
        }
    }

    /// `stele verify --offline`: the bundle against the pinned key and the kept tree head.
    fn bundle(&self, bundle: &Path) -> Result<()> {
        let text = std::fs::read_to_string(bundle)
            .with_context(|| format!("reading {}", bundle.display()))?;
        let b: Bundle = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an export bundle", bundle.display()))?;
        let previous = match &self.previous_tree_head {
            Some(p) => Some(
                serde_json::from_str::<SignedTreeHead>(
                    &std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                )
                .with_context(|| format!("{} is not a signed tree head", p.display()))?,
            ),
            None => None,
        };
        let public_key = &self.public_key;
        let r = stele_engine::integrity::export::verify_bundle(
            &b,
            public_key.as_deref(),
            previous.as_ref(),
        )
        .map_err(|why| anyhow::anyhow!("{}: verification failed: {why}", bundle.display()))?;
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
        Ok(())
    }
}

/// `stele verify --store`: the chain walk stops at the first break; the
/// full scrub after it goes on to the end and lists every damaged place.
fn verify_store(s: &Store) -> Result<()> {
    let walked = s.verify();
    let scrub = s.scrub(ScrubMode::Full, None)?;
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

#[derive(Args)]
pub struct Scrub {
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
}

impl Scrub {
    pub fn run(self) -> Result<()> {
        let r = with_store(&self.store, |sd, s| {
            let sc = &sd.config.scrub;
            let mode = match (self.mode.as_str(), self.zone) {
                ("full", _) => ScrubMode::Full,
                ("sampled", _) => ScrubMode::Sampled {
                    percent: sc.sample_percent,
                    min_records: sc.sample_min_records,
                },
                ("zone", Some(z)) => ScrubMode::Zone { zone: z },
                (other, _) => bail!("unknown scrub mode {other:?}: full, sampled or zone"),
            };
            let rate = (!self.unlimited).then(|| {
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
        Ok(())
    }
}
