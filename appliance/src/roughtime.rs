//! Corroborating the compliance clock with Roughtime servers.
//!
//! Each configured server is asked once; its answer counts only when it is
//! signed by the server's configured long-term key (an unauthenticated
//! answer is never used). Answers whose intervals (midpoint ± radius) do not
//! overlap mean some server lies: nothing is corroborated and the
//! disagreement is reported. Otherwise the answer with the earliest lower
//! bound is recorded, with its signed bytes as evidence, so that a server
//! winding time forward can never make a destructive act come early.

use std::net::ToSocketAddrs;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use firmware_config::RoughtimeServer;
use roughenough_client::measurement::Measurement;
use roughenough_client::Client;
use stele_engine::compliance::audit::Actor;
use stele_engine::compliance::corroboration::{AttestationReport, ServerTime};
use stele_engine::Store;

/// How long to wait for each server's answer.
const TIMEOUT: Duration = Duration::from_secs(5);

fn query(server: &RoughtimeServer) -> Result<Measurement> {
    let addr = server
        .address
        .to_socket_addrs()
        .with_context(|| format!("roughtime server {}: address", server.address))?
        .next()
        .ok_or_else(|| anyhow!("roughtime server {}: no address", server.address))?;
    let key = roughenough_common::encoding::try_decode_key(server.public_key.trim())
        .map_err(|e| anyhow!("roughtime server {}: public key: {e:?}", server.address))?;
    let client = Client::builder(addr)
        .hostname(&server.address)
        .public_key(key)
        .timeout(TIMEOUT)
        .build();
    client
        .query()
        .map_err(|e| anyhow!("roughtime server {}: {e}", server.address))
}

fn server_time(server: &RoughtimeServer, m: &Measurement) -> Result<ServerTime> {
    let midpoint_s = i64::try_from(m.midpoint())
        .map_err(|_| anyhow!("roughtime server {}: midpoint out of range", server.address))?;
    Ok(ServerTime {
        source: format!(
            "roughtime {} (key {})",
            server.address,
            server.public_key.trim()
        ),
        midpoint_us: midpoint_s.saturating_mul(1_000_000),
        radius_us: i64::from(m.radius()) * 1_000_000,
        evidence: hex::encode(m.response_bytes()),
    })
}

/// Ask every server in `servers` and record the earliest answer they allow.
pub fn corroborate(
    store: &Store,
    servers: &[RoughtimeServer],
    actor: &Actor,
    reason: &str,
) -> Result<AttestationReport> {
    if servers.is_empty() {
        bail!("no Roughtime server is configured ([[clock.roughtime]] in stele.toml)");
    }
    let mut answers = Vec::new();
    let mut failures = Vec::new();
    for s in servers {
        match query(s).and_then(|m| server_time(s, &m)) {
            Ok(t) => answers.push(t),
            Err(e) => failures.push(e.to_string()),
        }
    }
    for f in &failures {
        tracing::warn!("{f}");
    }
    let bounds = |t: &ServerTime| {
        (
            t.midpoint_us.saturating_sub(t.radius_us),
            t.midpoint_us.saturating_add(t.radius_us),
        )
    };
    for a in &answers {
        for b in &answers {
            if bounds(a).0 > bounds(b).1 {
                bail!(
                    "Roughtime servers disagree: {} says {}, {} says {}: one of them is wrong; nothing is corroborated",
                    a.source,
                    stele_engine::time::clock::utc(a.midpoint_us),
                    b.source,
                    stele_engine::time::clock::utc(b.midpoint_us)
                );
            }
        }
    }
    let Some(earliest) = answers.into_iter().min_by_key(|t| bounds(t).0) else {
        bail!("no Roughtime server answered: {}", failures.join("; "));
    };
    Ok(store.corroborate_by_server(actor, &earliest, reason)?)
}
