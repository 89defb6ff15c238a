//! Legal holds: place one on the records a selection names, release it, list
//! every hold placed and released. Each act is the acting principal's, audited.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use super::output::json;
use super::select::Select;
use super::store::{with_store, with_store_as};
use super::who::Who;

#[derive(Subcommand)]
pub enum HoldCommand {
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

impl HoldCommand {
    pub fn run(self) -> Result<()> {
        match self {
            HoldCommand::Place {
                store,
                name,
                select,
                who,
            } => with_store_as(&store, &who, |_, s, actor| {
                let id = s.place_hold(actor, &name, select.criteria()?, &who.reason)?;
                json(serde_json::json!({"hold": id, "name": name}));
                Ok(())
            }),
            HoldCommand::Release { store, hold, who } => {
                with_store_as(&store, &who, |_, s, actor| {
                    s.release_hold(actor, hold, &who.reason)?;
                    json(serde_json::json!({"released": hold}));
                    Ok(())
                })
            }
            HoldCommand::List { store } => with_store(&store, |_, s| {
                for h in s.holds()? {
                    json(h);
                }
                Ok(())
            }),
        }
    }
}
