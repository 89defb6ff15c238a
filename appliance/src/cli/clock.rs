//! The compliance clock, which retention and erasure go by: its reading and
//! anomalies (`stele clock`), a four-eyes attestation of the true time, and
//! corroboration by the configured Roughtime servers, also asked before
//! every destructive act.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use stele_engine::compliance::audit::Actor;
use stele_engine::compliance::corroboration::{Attestation, AttestationReport};
use stele_engine::Store;

use super::output::json;
use super::store::with_store;
use super::who::Who;
use crate::store_dir::StoreDir;
use crate::{access, roughtime, when};

#[derive(Args)]
pub struct Clock {
    #[arg(long)]
    store: PathBuf,
    #[command(subcommand)]
    command: Option<ClockCommand>,
}

impl Clock {
    /// `stele clock`: the reading, or an attestation of the true time.
    pub fn run(self) -> Result<()> {
        with_store(&self.store, |sd, s| clock_command(sd, s, self.command))
    }
}

#[derive(Subcommand)]
pub enum ClockCommand {
    /// Four eyes state the true time (read from a clock they trust), so that
    /// reclaim and erasure may go by it. The two principals must hold different roles.
    Attest {
        /// The true UTC time now (YYYY-MM-DDTHH:MM:SSZ).
        #[arg(long)]
        utc: String,
        #[command(flatten)]
        who: Who,
        /// The second principal.
        #[arg(long, value_name = "NAME")]
        second: String,
        /// A file holding the second principal's access token.
        #[arg(long)]
        second_token_file: PathBuf,
    },
    /// Ask the configured Roughtime servers ([[clock.roughtime]]) for the
    /// true time; a signed answer corroborates the clock (kept as evidence).
    Corroborate,
}

/// The reading, or the time attested or corroborated.
fn clock_command(sd: &StoreDir, s: &Store, command: Option<ClockCommand>) -> Result<()> {
    let out: serde_json::Value = match command {
        None => clock_status(sd, s)?,
        Some(ClockCommand::Attest {
            utc,
            who,
            second,
            second_token_file,
        }) => {
            let first_token = access::token(who.token_file.as_deref())?;
            let second_token = access::token(Some(&second_token_file))?;
            let a = Attestation {
                first: access::actor(&sd.config, &who.actor, first_token.as_deref()),
                second: access::actor(&sd.config, &second, second_token.as_deref()),
                utc_us: when::parse(&utc)?,
                reason: who.reason.clone(),
            };
            corroboration_json(s.attest_time(&a)?)
        }
        Some(ClockCommand::Corroborate) => corroboration_json(roughtime::corroborate(
            s,
            &sd.config.clock.roughtime,
            &Actor::system(),
            "corroborated by the configured Roughtime servers",
        )?),
    };
    json(out);
    Ok(())
}

fn corroboration_json(r: AttestationReport) -> serde_json::Value {
    serde_json::json!({
        "corroborated": true,
        "audit_seq": r.seq,
        "attested": when::format(r.attested_us),
        "compliance_now": when::format(r.compliance_us),
        "compliance_ahead_us": r.ahead_us,
        "ran_fast_by_us": r.fast_by_us,
    })
}

/// Before a destructive act: corroborate the clock by the configured
/// Roughtime servers, if any (a failure is reported; the act then goes by
/// the corroboration the store already has, or is refused).
pub fn corroborate_if_configured(sd: &StoreDir, s: &Store) {
    if sd.config.clock.roughtime.is_empty() {
        return;
    }
    let why = "before a destructive act, by the configured Roughtime servers";
    if let Err(e) = roughtime::corroborate(s, &sd.config.clock.roughtime, &Actor::system(), why) {
        eprintln!("warning: the clock was not corroborated by Roughtime: {e:#}");
    }
}

fn clock_status(sd: &StoreDir, s: &Store) -> stele_engine::Result<serde_json::Value> {
    use std::sync::atomic::Ordering::Relaxed;
    s.record_clock_anomalies()?;
    let c = s.clock();
    let (trust, destructive) = s.clock_trust()?;
    Ok(serde_json::json!({
        "compliance_now": when::format(s.compliance_now_us()),
        "compliance_now_us": s.compliance_now_us(),
        "system_now": when::format(stele_engine::store::now_us()),
        "system_minus_compliance_us": c.stats.gap_us.load(Relaxed),
        "drift_budget_ppm": sd.config.clock.drift_budget_ppm,
        "forward_jumps": c.stats.forward_jumps.load(Relaxed),
        "backward_jumps": c.stats.backward_jumps.load(Relaxed),
        "restarts": c.stats.restarts.load(Relaxed),
        "elapsed_disagreements": c.stats.elapsed_disagreements.load(Relaxed),
        "corroboration": trust.corroboration.map(|k| serde_json::json!({
            "audit_seq": k.seq,
            "source": k.source,
            "attested": when::format(k.attested_us),
            "compliance_then": when::format(k.compliance_us),
        })),
        "destructive_acts": match destructive {
            Ok(t) => serde_json::json!({"allowed": true, "by_time": when::format(t)}),
            Err(why) => serde_json::json!({"allowed": false, "why": why.to_string()}),
        },
    }))
}
