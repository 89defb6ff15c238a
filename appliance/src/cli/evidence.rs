//! What the store gives a verifier: signed tree heads (`stele tree-head`),
//! export bundles of records with their proofs (`stele export`), and Merkle
//! inclusion and consistency proofs as JSON (`stele proof`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::output::json;
use super::store::with_store;

#[derive(Args)]
pub struct TreeHead {
    #[arg(long)]
    store: PathBuf,
    /// Print only the store's tree-head public key.
    #[arg(long)]
    public_key: bool,
}

impl TreeHead {
    pub fn run(self) -> Result<()> {
        with_store(&self.store, |_, s| {
            if self.public_key {
                println!("{}", s.tree_head_public_key()?);
            } else {
                println!("{}", serde_json::to_string_pretty(&s.sign_tree_head()?)?);
            }
            Ok(())
        })
    }
}

#[derive(Args)]
pub struct Export {
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
}

impl Export {
    pub fn run(self) -> Result<()> {
        let out = &self.out;
        with_store(&self.store, |_, s| {
            let mut wanted = self.seqs;
            if let Some(c) = self.conversation {
                wanted.extend(s.by_conversation(&c, usize::MAX)?.iter().map(|r| r.seq));
            }
            if let Some(r) = self.record_id {
                wanted.extend(s.by_record_id(&r, usize::MAX)?.iter().map(|r| r.seq));
            }
            wanted.sort_unstable();
            wanted.dedup();
            if wanted.is_empty() {
                bail!("nothing to export: give --conversation, --record-id or --seq");
            }
            let b = s.export_bundle(&wanted, self.history)?;
            std::fs::write(out, serde_json::to_vec_pretty(&b)?)
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
        })
    }
}

#[derive(Subcommand)]
pub enum ProofCommand {
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

impl ProofCommand {
    pub fn run(self) -> Result<()> {
        match self {
            ProofCommand::Inclusion { store, seq, size } => with_store(&store, |_, s| {
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
            }),
            ProofCommand::Consistency { store, from, to } => with_store(&store, |_, s| {
                let to = to.unwrap_or(s.next_seq());
                let proof = s.consistency_proof(from, to)?;
                json(serde_json::json!({
                    "from": from, "to": to,
                    "from_root": hex::encode(s.merkle_root(from)?),
                    "to_root": hex::encode(s.merkle_root(to)?),
                    "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
                }));
                Ok(())
            }),
        }
    }
}
