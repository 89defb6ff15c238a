//! Which records a hold or a retention change covers: every given field must
//! match, read into the engine's `Criteria`.

use anyhow::Result;
use clap::Args;
use stele_engine::compliance::audit::Criteria;

use crate::when;

/// Which records: every given field must match.
#[derive(Args, Clone, Default)]
pub struct Select {
    #[arg(long)]
    custodian: Option<String>,
    #[arg(long)]
    conversation: Option<String>,
    /// Records at or after this time (YYYY-MM-DD[THH:MM:SSZ] or µs).
    #[arg(long)]
    from: Option<String>,
    /// Records before this time.
    #[arg(long)]
    to: Option<String>,
    /// One record, by sequence number.
    #[arg(long)]
    seq: Option<u64>,
    /// A saved search's query text.
    #[arg(long)]
    query: Option<String>,
}

impl Select {
    pub fn criteria(&self) -> Result<Criteria> {
        Ok(Criteria {
            custodian: self.custodian.clone(),
            conversation: self.conversation.clone(),
            from_us: self.from.as_deref().map(when::parse).transpose()?,
            to_us: self.to.as_deref().map(when::parse).transpose()?,
            seq: self.seq,
            query: self.query.clone(),
        })
    }
}
