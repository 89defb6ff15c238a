//! GDPR erasure: a request for a data subject is recorded and waits until
//! retention and holds allow, then the subject's data keys are destroyed
//! (crypto-shredding); waiting requests can be tried again, and all listed.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use super::clock::corroborate_if_configured;
use super::output::json;
use super::store::{with_store, with_store_as};
use super::who::Who;

#[derive(Subcommand)]
pub enum EraseCommand {
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

impl EraseCommand {
    pub fn run(self) -> Result<()> {
        match self {
            EraseCommand::Request {
                store,
                subject,
                who,
            } => with_store_as(&store, &who, |_, s, actor| {
                let (id, state) = s.request_erasure(actor, &subject, &who.reason)?;
                json(serde_json::json!({"request": id, "state": state}));
                Ok(())
            }),
            EraseCommand::Process { store, who } => with_store_as(&store, &who, |sd, s, actor| {
                corroborate_if_configured(sd, s);
                for (id, state) in s.process_erasures(actor)? {
                    json(serde_json::json!({"request": id, "state": state}));
                }
                Ok(())
            }),
            EraseCommand::List { store } => with_store(&store, |_, s| {
                for e in s.erasures()? {
                    json(e);
                }
                Ok(())
            }),
        }
    }
}
