//! Who is acting: principals are listed in the configuration with their
//! roles and the SHA-256 of their access token. The command line takes the
//! name from `--as` and the token from `STELE_TOKEN` or `--token-file`. A
//! name without a matching token acts with no roles, so whatever it tries is
//! refused by the store and recorded in the audit trail under that name.
//!
//! The daemon's ingest endpoints take the token from `Authorization: Bearer`
//! and admit principals holding the `ingest` role ([`IngestAuth`]).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use firmware_config::{Config, Role};
use prometheus::{IntCounterVec, Opts, Registry};
use sha2::{Digest, Sha256};
use stele_engine::compliance::audit::{Action, Actor, Outcome};
use stele_engine::Store;

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
    stele_engine::crypto::kek::random(&mut b)?;
    let t = hex::encode(b);
    let h = token_hash(&t);
    Ok((t, h))
}

/// Who may submit records to the daemon's ingest endpoints: principals
/// holding the `ingest` role, each recognised by the SHA-256 of its token.
pub struct IngestAuth {
    /// (name, token SHA-256 in lower-case hex, holds the ingest role)
    principals: Vec<(String, String, bool)>,
    store: Arc<Store>,
    refused: IntCounterVec,
}

/// The principal an ingest request was authenticated as.
#[derive(Debug, Clone)]
pub struct IngestPrincipal {
    pub name: String,
}

/// Why an ingest request was refused.
enum Refusal {
    NoToken,
    UnknownToken,
    NoIngestRole(String),
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self {
            Refusal::NoToken => "no_token",
            Refusal::UnknownToken => "unknown_token",
            Refusal::NoIngestRole(_) => "no_ingest_role",
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl IngestAuth {
    /// The principals of `config`; refusals are counted in
    /// `stele_ingest_refused_total{source, reason}`, registered in `registry`.
    pub fn new(config: &Config, store: Arc<Store>, registry: &Registry) -> Result<IngestAuth> {
        let refused = IntCounterVec::new(
            Opts::new(
                "stele_ingest_refused_total",
                "Ingest requests refused: no bearer token, a token of no principal, or a principal without the ingest role.",
            ),
            &["source", "reason"],
        )?;
        registry.register(Box::new(refused.clone()))?;
        for source in ["api", "consent"] {
            for reason in ["no_token", "unknown_token", "no_ingest_role"] {
                refused.with_label_values(&[source, reason]);
            }
        }
        let principals = config
            .access
            .principals
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.token_sha256.to_lowercase(),
                    p.roles.contains(&Role::Ingest),
                )
            })
            .collect();
        Ok(IngestAuth {
            principals,
            store,
            refused,
        })
    }

    /// The principal whose token the request carries, if it holds the
    /// ingest role. Every principal is compared (in constant time), so the
    /// time taken does not tell which one matched.
    fn judge(&self, headers: &HeaderMap) -> Result<IngestPrincipal, Refusal> {
        let token = bearer(headers).ok_or(Refusal::NoToken)?;
        let hash = token_hash(token);
        let mut found = None;
        for (name, h, ingest) in &self.principals {
            if equal_ct(hash.as_bytes(), h.as_bytes()) && found.is_none() {
                found = Some((name, *ingest));
            }
        }
        match found {
            Some((name, true)) => Ok(IngestPrincipal { name: name.clone() }),
            Some((name, false)) => Err(Refusal::NoIngestRole(name.clone())),
            None => Err(Refusal::UnknownToken),
        }
    }

    /// Authenticate an ingest request to `source` (`api` or `consent`). A
    /// refusal is counted, logged and recorded in the audit trail with the
    /// body's SHA-256, and answered 401 (with `WWW-Authenticate: Bearer`)
    /// or 403.
    pub async fn check(
        &self,
        source: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<IngestPrincipal, Response> {
        let refusal = match self.judge(headers) {
            Ok(p) => {
                tracing::debug!(principal = p.name, source, "ingest request authenticated");
                return Ok(p);
            }
            Err(r) => r,
        };
        self.refused
            .with_label_values(&[source, refusal.reason()])
            .inc();
        let (actor, why) = match &refusal {
            Refusal::NoToken => (
                format!("{source} client (no token)"),
                "no bearer token".to_string(),
            ),
            Refusal::UnknownToken => (
                format!("{source} client (token not accepted)"),
                "the bearer token is no principal's".to_string(),
            ),
            Refusal::NoIngestRole(name) => (
                name.clone(),
                format!("principal {name:?} does not hold the ingest role"),
            ),
        };
        let digest = hex::encode(Sha256::digest(body));
        tracing::warn!(
            source,
            actor,
            sha256 = digest,
            "ingest request refused: {why}"
        );
        let store = self.store.clone();
        let event = Action::DeliveryRefused {
            source: source.into(),
            body_sha256: digest,
        };
        let outcome = Outcome::Refused { why: why.clone() };
        let audited = tokio::task::spawn_blocking(move || {
            store.record_capture_event(&actor, event, outcome, "ingest authentication")
        })
        .await;
        if !matches!(audited, Ok(Ok(_))) {
            tracing::error!(source, "could not audit a refused ingest request");
        }
        Err(refusal_response(&refusal, &why))
    }
}

fn refusal_response(refusal: &Refusal, why: &str) -> Response {
    let text = format!("{why}\n");
    match refusal {
        Refusal::NoIngestRole(_) => (StatusCode::FORBIDDEN, text).into_response(),
        Refusal::NoToken => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"stele\"")],
            text,
        )
            .into_response(),
        Refusal::UnknownToken => (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"stele\", error=\"invalid_token\"",
            )],
            text,
        )
            .into_response(),
    }
}

/// A JSON body read once authentication (which needs the raw body) is done,
/// with the answers axum's `Json` extractor gives (415, 400, 422).
pub async fn read_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: axum::body::Bytes,
) -> Result<T, Response> {
    use axum::extract::FromRequest;
    let mut req = axum::extract::Request::new(axum::body::Body::from(body));
    *req.headers_mut() = headers.clone();
    match axum::Json::<T>::from_request(req, &()).await {
        Ok(axum::Json(v)) => Ok(v),
        Err(rejection) => Err(rejection.into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_config::Principal;

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        for (value, token) in [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
        ] {
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer(&h), token, "{value:?}");
        }
    }

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
