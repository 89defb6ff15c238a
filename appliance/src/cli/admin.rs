//! Administration: rebuilding the index from the log, and the audited
//! decisions that let a store take new records again or open at all after
//! something outside it went wrong (a log cut short, lost data keys, a
//! rolled-back copy).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use super::store::{with_store, with_store_as, with_store_deciding};
use super::who::Who;

#[derive(Subcommand)]
pub enum AdminCommand {
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

impl AdminCommand {
    pub fn run(self) -> Result<()> {
        match self {
            AdminCommand::Reindex { store } => with_store(&store, |_, s| {
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
            }),
            AdminCommand::AcknowledgeCut { store, who } => {
                with_store_as(&store, &who, |_, s, actor| {
                    s.acknowledge_log_cut(actor, &who.reason)?;
                    println!("acknowledged: the store accepts new records again");
                    Ok(())
                })
            }
            AdminCommand::AcknowledgeLostKeys { store, who } => {
                with_store_as(&store, &who, |_, s, actor| {
                    let lost = s.acknowledge_lost_keys(actor, &who.reason)?;
                    println!("acknowledged: data keys {lost:?} are recorded as lost (their records stay listed as unreadable); the store accepts new records again");
                    Ok(())
                })
            }
            AdminCommand::AcceptRollback { store, who } => with_store_deciding(
                &store,
                &who,
                |o, decision| o.accept_rollback = Some(decision),
                |_, s| {
                    println!(
                        "opened and re-anchored at seq {}; the rollback is in the audit trail",
                        s.next_seq()
                    );
                    Ok(())
                },
            ),
        }
    }
}
