//! Who acts: the principal a command acts as, proved by its token, and the
//! reason that goes into the audit trail with every act.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use firmware_config::Config;
use stele_engine::compliance::audit::Actor;

use crate::access;

/// Who acts: the principal's name; the token comes from STELE_TOKEN or --token-file.
#[derive(Args, Clone)]
pub struct Who {
    /// The principal acting (listed under [[access.principals]] in stele.toml).
    #[arg(long = "as", value_name = "NAME")]
    pub actor: String,
    /// A file holding the principal's access token (otherwise STELE_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Why: kept in the audit trail.
    #[arg(long)]
    pub reason: String,
}

impl Who {
    /// The actor `config` knows by this name and token.
    pub fn actor(&self, config: &Config) -> Result<Actor> {
        let token = access::token(self.token_file.as_deref())?;
        Ok(access::actor(config, &self.actor, token.as_deref()))
    }
}
