//! `stele audit`: the audit trail (every compliance act, refused or done,
//! with who and why), as JSON lines.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::output::json;
use super::store::with_store;

#[derive(Args)]
pub struct Audit {
    #[arg(long)]
    store: PathBuf,
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

impl Audit {
    pub fn run(self) -> Result<()> {
        with_store(&self.store, |_, s| {
            for e in s.audit_trail(self.limit)? {
                json(e);
            }
            Ok(())
        })
    }
}
