//! `stele metrics`: the store's metrics in the Prometheus text format, the
//! same registry the daemon serves at `/metrics`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::store::with_store;
use crate::daemon::metrics;

#[derive(Args)]
pub struct Metrics {
    #[arg(long)]
    store: PathBuf,
}

impl Metrics {
    pub fn run(self) -> Result<()> {
        with_store(&self.store, |_, s| {
            print!("{}", metrics::text(&metrics::registry(s)?)?);
            Ok(())
        })
    }
}
