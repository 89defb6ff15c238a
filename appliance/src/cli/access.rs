//! Access tokens for principals: a new random token with the hash that goes
//! into stele.toml, or the hash of a token given on standard input. No store
//! is opened: the configuration keeps only hashes.

use anyhow::Result;
use clap::Subcommand;

use crate::access;

#[derive(Subcommand)]
pub enum AccessCommand {
    /// Make a new random token and print it with the hash for stele.toml.
    NewToken,
    /// Print the hash of a token read from standard input.
    HashToken,
}

impl AccessCommand {
    pub fn run(self) -> Result<()> {
        match self {
            AccessCommand::NewToken => {
                let (t, h) = access::new_token()?;
                println!("token: {t}");
                println!("token_sha256 = \"{h}\"");
            }
            AccessCommand::HashToken => {
                let mut t = String::new();
                std::io::stdin().read_line(&mut t)?;
                println!("token_sha256 = \"{}\"", access::token_hash(&t));
            }
        }
        Ok(())
    }
}
