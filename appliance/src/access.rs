//! Who is acting: principals are listed in the configuration with their
//! roles and the SHA-256 of their access token. The command line takes the
//! name from `--as` and the token from `STELE_TOKEN` or `--token-file`. A
//! name without a matching token acts with no roles, so whatever it tries is
//! refused by the store and recorded in the audit trail under that name.

use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use stele_config::Config;
use stele_engine::audit::Actor;

/// SHA-256 of a token, as configuration files store it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

fn equal_ct(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token from `--token-file`, else from `STELE_TOKEN`.
pub fn token(token_file: Option<&Path>) -> Result<Option<String>> {
    if let Some(p) = token_file {
        return Ok(Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading token file {}", p.display()))?
                .trim()
                .to_string(),
        ));
    }
    Ok(std::env::var("STELE_TOKEN").ok())
}

/// The actor for `name` presenting `token`.
pub fn actor(config: &Config, name: &str, token: Option<&str>) -> Actor {
    let found = config.access.principals.iter().find(|p| p.name == name);
    match (found, token) {
        (Some(p), Some(t))
            if equal_ct(
                token_hash(t).as_bytes(),
                p.token_sha256.to_lowercase().as_bytes(),
            ) =>
        {
            Actor::new(name, &p.roles)
        }
        (Some(_), _) => Actor::new(format!("{name} (token not accepted)"), &[]),
        (None, _) => Actor::new(format!("{name} (unknown principal)"), &[]),
    }
}

/// A new random access token and its hash for the configuration.
pub fn new_token() -> Result<(String, String)> {
    let mut b = [0u8; 24];
    stele_engine::kek::random(&mut b)?;
    let t = hex::encode(b);
    let h = token_hash(&t);
    Ok((t, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_config::{Principal, Role};

    #[test]
    fn only_the_right_token_grants_roles() {
        let mut c = Config::embedded_default();
        c.access.principals.push(Principal {
            name: "legal".into(),
            roles: vec![Role::LegalHold],
            token_sha256: token_hash("s3cret"),
        });
        assert!(actor(&c, "legal", Some("s3cret")).has(Role::LegalHold));
        assert!(actor(&c, "legal", Some("wrong")).roles.is_empty());
        assert!(actor(&c, "legal", None).roles.is_empty());
        assert!(actor(&c, "nobody", Some("s3cret")).roles.is_empty());
    }
}
