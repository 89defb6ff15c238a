//! `stele import`: a WhatsApp "Export chat" file stored through the capture
//! service (`capture::chat_export` does the work), with the summary printed
//! and the command failing, naming the evidence, when anything was refused.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::store::with_shared_store;
use crate::capture::chat_export::import::{import_with, ImportArgs, ImportSummary, Limits};
use crate::capture::Capture;

#[derive(Args)]
pub struct Import {
    file: PathBuf,
    #[arg(long)]
    store: PathBuf,
    /// The employee whose phone the export came from.
    #[arg(long)]
    custodian: String,
    /// The conversation id (default: derived from the custodian and the file name).
    #[arg(long)]
    conversation: Option<String>,
    /// The phone's UTC offset when it exported, e.g. +01:00 (exports carry local time).
    #[arg(long, default_value = "+00:00", allow_hyphen_values = true)]
    utc_offset: String,
    /// Largest uncompressed zip entry, MiB (default 4096).
    #[arg(long)]
    max_entry_mib: Option<u64>,
    /// Largest uncompressed total of all entries of one zip, MiB (default 65536).
    #[arg(long)]
    max_total_mib: Option<u64>,
    /// Largest compression ratio of a zip entry past its first MiB (default 100).
    #[arg(long)]
    max_ratio: Option<u64>,
    /// Largest chat text, MiB (it is parsed in memory; default 256).
    #[arg(long)]
    max_text_mib: Option<u64>,
}

impl Import {
    pub fn run(self) -> Result<()> {
        let d = Limits::default();
        let mib = |v: Option<u64>, d: u64| v.map_or(d, |m| m.saturating_mul(1 << 20));
        let a = ImportArgs {
            file: self.file,
            store: self.store,
            custodian: self.custodian,
            conversation: self.conversation,
            utc_offset_s: parse_offset(&self.utc_offset)?,
            limits: Limits {
                entry_bytes: mib(self.max_entry_mib, d.entry_bytes),
                total_bytes: mib(self.max_total_mib, d.total_bytes),
                ratio: self.max_ratio.unwrap_or(d.ratio),
                text_bytes: mib(self.max_text_mib, d.text_bytes),
                ..d
            },
        };
        let r = with_shared_store(&a.store, |sd, store| {
            let cap = Capture::new(store.clone(), sd.config.capture.consent, None)?;
            import_with(&cap, store, &a)
        })?;
        report(&a, &r)
    }
}

/// Print the summary; fail, naming the evidence and the reports, if anything
/// was refused or not importable.
fn report(a: &ImportArgs, r: &ImportSummary) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(r)?);
    for c in &r.chats {
        eprintln!(
            "imported {}{}{}: {} messages, {} stored, {} already stored, {} refused, {} conflicts, {} attachments stored, {} lines fit no message{}; dates read {} ({})",
            a.file.display(),
            if r.chats.len() > 1 { format!(" ({})", c.name) } else { String::new() },
            c.already_imported_seq.map_or(String::new(), |s| format!(" (already imported in full, seq {s})")),
            c.messages, c.stored, c.already_stored, c.refused, c.conflicts, c.attachments_stored,
            c.unparsed_lines.len(),
            match c.unparsed_lines.len() {
                0 => String::new(),
                1..=20 => format!(" (lines {:?}, kept in the import report)", c.unparsed_lines),
                _ => format!(" (lines {:?}…, all kept in the import report)", &c.unparsed_lines[..20]),
            },
            c.date_order, c.date_order_reason
        );
    }
    for note in r.chats.iter().filter_map(|c| c.encoding.as_ref()?.note()) {
        eprintln!("{}: {note}", a.file.display());
    }
    let problems = r.problems();
    if !problems.is_empty() {
        let reports: Vec<String> = r
            .chats
            .iter()
            .filter_map(|c| c.report_seq)
            .map(|s| s.to_string())
            .collect();
        bail!(
            "{}: {}; the file is archived verbatim as evidence (seq {}), the import report is at seq {}",
            a.file.display(),
            problems.join("; "),
            r.evidence_seq,
            reports.join(", ")
        );
    }
    Ok(())
}

/// `+HH:MM` / `-HH:MM` to seconds.
fn parse_offset(s: &str) -> Result<i64> {
    let (sign, rest) = match s.split_at_checked(1) {
        Some(("+", r)) => (1, r),
        Some(("-", r)) => (-1, r),
        _ => bail!("--utc-offset {s:?}: expected +HH:MM or -HH:MM"),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (Ok(h), Ok(m)) = (h.parse::<i64>(), m.parse::<i64>()) else {
        bail!("--utc-offset {s:?}: expected +HH:MM or -HH:MM");
    };
    if h > 14 || m > 59 {
        bail!("--utc-offset {s:?} is out of range");
    }
    Ok(sign * (h * 3600 + m * 60))
}
