//! How long records are kept: a record's retention status, event-based
//! extension, and the acts write-once refuses (shortening, deleting) but
//! records; `stele reclaim` gives back the zones whose records have all left
//! retention and are unheld.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::clock::corroborate_if_configured;
use super::output::json;
use super::select::Select;
use super::store::{with_store, with_store_as};
use super::who::Who;
use crate::when;

#[derive(Subcommand)]
pub enum RetentionCommand {
    /// A record's retention date, extensions and holds.
    Status {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        seq: u64,
    },
    /// Keep matching records at least until a date (event-based retention).
    Extend {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        until: String,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        who: Who,
    },
    /// Shorten retention: always refused; the attempt is recorded.
    Shorten {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        until: String,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        who: Who,
    },
}

impl RetentionCommand {
    pub fn run(self) -> Result<()> {
        match self {
            RetentionCommand::Status { store, seq } => with_store(&store, |_, s| {
                let st = s.retention_status(seq)?;
                json(serde_json::json!({
                    "seq": st.seq,
                    "stored_until": when::format(st.stored_until_us),
                    "effective_until": when::format(st.effective_until_us),
                    "held_by": st.held_by,
                    "expired": st.expired,
                    "compliance_now": when::format(s.compliance_now_us()),
                }));
                Ok(())
            }),
            RetentionCommand::Extend {
                store,
                until,
                select,
                who,
            } => with_store_as(&store, &who, |_, s, actor| {
                let (criteria, until_us) = (select.criteria()?, when::parse(&until)?);
                let id = s.extend_retention(actor, criteria, until_us, &who.reason)?;
                json(serde_json::json!({"extension": id, "until": until}));
                Ok(())
            }),
            RetentionCommand::Shorten {
                store,
                until,
                select,
                who,
            } => with_store_as(&store, &who, |_, s, actor| {
                s.shorten_retention(actor, select.criteria()?, when::parse(&until)?, &who.reason)?;
                Ok(())
            }),
        }
    }
}

#[derive(Args)]
pub struct Delete {
    #[arg(long)]
    store: PathBuf,
    #[arg(long)]
    seq: u64,
    #[command(flatten)]
    who: Who,
}

impl Delete {
    pub fn run(self) -> Result<()> {
        with_store_as(&self.store, &self.who, |_, s, actor| {
            s.delete_record(actor, self.seq, &self.who.reason)?;
            Ok(())
        })
    }
}

#[derive(Args)]
pub struct Reclaim {
    #[arg(long)]
    store: PathBuf,
    #[command(flatten)]
    who: Who,
}

impl Reclaim {
    pub fn run(self) -> Result<()> {
        with_store_as(&self.store, &self.who, |sd, s, actor| {
            corroborate_if_configured(sd, s);
            for v in s.reclaim(actor, &self.who.reason)? {
                json(v);
            }
            Ok(())
        })
    }
}
