//! Keys: the data keys in the keystore (subjects' tags, ages, destroyed,
//! lost or live), and rotation of the key-encryption key that wraps them.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use super::output::json;
use super::store::{with_store, with_store_as};
use super::who::Who;
use crate::when;

#[derive(Subcommand)]
pub enum KeysCommand {
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

impl KeysCommand {
    pub fn run(self) -> Result<()> {
        match self {
            KeysCommand::List { store } => with_store(&store, |_, s| {
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
            }),
            KeysCommand::RotateKek { store, who } => with_store_as(&store, &who, |_, s, actor| {
                let r = s.rotate_kek(actor, &who.reason)?;
                json(
                    serde_json::json!({"from_generation": r.from_generation, "to_generation": r.to_generation, "rewrapped": r.rewrapped}),
                );
                Ok(())
            }),
        }
    }
}
