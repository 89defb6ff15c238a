//! Records one at a time: `stele put` appends a message, `stele get` reads
//! records back by sequence number, record id, conversation or time, listing
//! erased and unreadable ones for what they are.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use stele_engine::NewRecord;

use super::output::json;
use super::store::with_store;
use crate::when;

#[derive(Args)]
pub struct Put {
    #[arg(long)]
    store: PathBuf,
    #[arg(long)]
    record_id: String,
    #[arg(long)]
    conversation: String,
    #[arg(long, default_value = "")]
    custodian: String,
    #[arg(long, default_value = "")]
    tenant: String,
    #[arg(long, default_value = "")]
    channel: String,
    #[arg(long = "type", default_value = "")]
    message_type: String,
    /// The message's time (default: now).
    #[arg(long)]
    at: Option<String>,
    #[arg(long)]
    body: Option<String>,
}

impl Put {
    pub fn run(self) -> Result<()> {
        let body = match self.body {
            Some(b) => b.into_bytes(),
            None => {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
                b
            }
        };
        let ts = match self.at {
            Some(a) => when::parse(&a)?,
            None => stele_engine::store::now_us(),
        };
        with_store(&self.store, |_, s| {
            let rec = NewRecord::message(self.record_id, self.conversation, ts, body)
                .with_custodian(self.custodian)
                .with_tenant(self.tenant)
                .with_channel(self.channel, self.message_type);
            let until = s.retain_until_for(&rec);
            let r = s.append(rec)?;
            json(serde_json::json!({"seq": r.seq, "retain_until": when::format(until)}));
            Ok(())
        })
    }
}

#[derive(Args)]
pub struct Get {
    #[arg(long)]
    store: PathBuf,
    #[arg(long)]
    seq: Option<u64>,
    #[arg(long)]
    record_id: Option<String>,
    #[arg(long)]
    conversation: Option<String>,
    /// Time range start, microseconds since the epoch (with --to-us).
    #[arg(long)]
    from_us: Option<i64>,
    #[arg(long)]
    to_us: Option<i64>,
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// Records as listed: each by its seq, read or not.
type Listing = Vec<(u64, stele_engine::Result<stele_engine::Record>)>;

impl Get {
    pub fn run(self) -> Result<()> {
        let found = with_store(&self.store, |_, s| self.find(s))?;
        let mut unreadable = 0;
        for (seq, r) in &found {
            match r {
                Ok(r) => print_record(r),
                Err(e @ stele_engine::Error::Erased { .. }) => print_erased(e),
                Err(e) => {
                    unreadable += 1;
                    json(serde_json::json!({
                        "seq": seq, "unreadable": true, "error": e.to_string(),
                    }));
                }
            }
        }
        if unreadable > 0 {
            bail!("{unreadable} of the {} records listed could not be read (listed above with their error)", found.len());
        }
        match (found.is_empty(), self.record_id, self.conversation) {
            (true, Some(id), _) => bail!("no record has record id {id:?}"),
            (true, _, Some(c)) => bail!("no record is in conversation {c:?}"),
            _ => Ok(()),
        }
    }

    /// The records the one given selector names.
    fn find(&self, s: &stele_engine::Store) -> Result<Listing> {
        let limit = self.limit;
        let found = match (
            self.seq,
            &self.record_id,
            &self.conversation,
            self.from_us,
            self.to_us,
        ) {
            (Some(q), None, None, None, None) => s.get(q).map(|r| vec![(q, Ok(r))]),
            (None, Some(id), None, None, None) => s.listing(id, true, limit),
            (None, None, Some(c), None, None) => s.listing(c, false, limit),
            (None, None, None, Some(a), Some(b)) => s
                .by_time(a, b, limit)
                .map(|v| v.into_iter().map(|r| (r.seq, Ok(r))).collect()),
            _ => bail!(
                "give exactly one of --seq, --record-id, --conversation, or --from-us with --to-us"
            ),
        };
        Ok(found?)
    }
}

/// A listed record whose data key was destroyed: what is known of it.
fn print_erased(e: &stele_engine::Error) {
    if let stele_engine::Error::Erased {
        seq,
        key_id,
        erased_at_us,
        request,
    } = e
    {
        json(serde_json::json!({
            "seq": seq, "erased": true, "key_id": key_id,
            "erased_at": when::format(*erased_at_us), "erasure_request": request,
        }));
    }
}

fn print_record(r: &stele_engine::Record) {
    let body = String::from_utf8_lossy(&r.body);
    println!(
        "{}",
        serde_json::json!({
            "seq": r.seq, "kind": r.kind.name(), "timestamp_us": r.timestamp_us,
            "retain_until": when::format(r.retain_until_us),
            "record_id": r.record_id, "conversation_id": r.conversation_id,
            "custodian": r.custodian, "tenant": r.tenant, "channel": r.channel, "type": r.message_type,
            "body": body, "key_id": r.key_id, "location": r.location.to_string(),
        })
    );
}
