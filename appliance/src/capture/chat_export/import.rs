//! `stele import`: a WhatsApp export (`.txt`, or `.zip` with its
//! attachments) stored as evidence, messages, attachment blobs and a report.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use stele_engine::{FrameKind, NewRecord, Store};

use super::parse::parse;

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    pub file_sha256: String,
    pub conversation: String,
    pub messages: u64,
    pub stored: u64,
    pub already_stored: u64,
    pub attachments_stored: u64,
    pub attachments_missing: u64,
    pub unparsed_lines: Vec<usize>,
    pub date_order: String,
    pub date_order_reason: String,
    pub report_seq: Option<u64>,
}

/// Import an export (`.txt`, or `.zip` with its attachments) into `store`.
pub fn import(
    store: &Store,
    file: &Path,
    custodian: &str,
    conversation: Option<&str>,
    utc_offset_s: i64,
) -> Result<ImportSummary> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let is_zip = bytes.starts_with(b"PK\x03\x04");
    let mut attachments: HashMap<String, Vec<u8>> = HashMap::new();
    let text = if is_zip {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(&bytes))
            .with_context(|| format!("{} is not a readable zip", file.display()))?;
        let mut chat = None;
        for i in 0..z.len() {
            let mut f = z.by_index(i)?;
            if f.is_dir() {
                continue;
            }
            let name = f.name()?.rsplit('/').next().unwrap_or("").to_string();
            let mut data = Vec::new();
            f.read_to_end(&mut data)?;
            if name.ends_with(".txt")
                && chat.is_none()
                && (name == "_chat.txt" || name.starts_with("WhatsApp"))
            {
                chat = Some(data);
            } else {
                attachments.insert(name, data);
            }
        }
        let Some(c) = chat else {
            bail!(
                "{}: no chat text (_chat.txt or WhatsApp Chat….txt) inside the zip",
                file.display()
            );
        };
        String::from_utf8_lossy(&c).into_owned()
    } else {
        String::from_utf8(bytes.clone())
            .with_context(|| format!("{} is not UTF-8 text", file.display()))?
    };
    let parsed = parse(&text);
    if parsed.messages.is_empty() {
        bail!(
            "{}: no WhatsApp messages found ({} lines not in any message)",
            file.display(),
            parsed.unparsed.len()
        );
    }
    let conversation = conversation.map(String::from).unwrap_or_else(|| {
        let stem = file
            .file_stem()
            .map_or("chat".into(), |s| s.to_string_lossy().to_string());
        format!("whatsapp-export:{custodian}:{stem}")
    });
    let mut summary = ImportSummary {
        file_sha256: digest.clone(),
        conversation: conversation.clone(),
        messages: parsed.messages.len() as u64,
        unparsed_lines: parsed.unparsed.iter().map(|(n, _)| *n).collect(),
        date_order: parsed.date_order.clone(),
        date_order_reason: parsed.date_order_reason.clone(),
        ..Default::default()
    };
    let exists = |id: &str| -> Result<bool> { Ok(!store.by_record_id(id, 1)?.is_empty()) };
    // The file itself, as evidence.
    let evidence_id = format!("whatsapp-export-file:{digest}");
    if !exists(&evidence_id)? {
        let mut ev = NewRecord::message(
            evidence_id.clone(),
            conversation.clone(),
            stele_engine::store::now_us(),
            bytes.clone(),
        )
        .with_custodian(custodian)
        .with_channel("whatsapp-export", "export-file");
        ev.kind = FrameKind::Evidence;
        store.append(ev)?;
    }
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(parsed.messages.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} importing {pos}/{len} messages [{bar:40}] {eta}",
        )
        .expect("valid template"),
    );
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut pending = Vec::new();
    for m in &parsed.messages {
        bar.inc(1);
        // Identical lines in one minute are told apart by their order.
        let key = format!(
            "{}|{}|{}",
            m.wallclock_us,
            m.author.as_deref().unwrap_or(""),
            m.text
        );
        let nth = seen.entry(key.clone()).or_insert(0);
        *nth += 1;
        let id = format!(
            "whatsapp-export:{conversation}:{}:{nth}",
            &hex::encode(Sha256::digest(key.as_bytes()))[..32]
        );
        if exists(&id)? {
            summary.already_stored += 1;
            continue;
        }
        let kind = if m.author.is_none() {
            "system"
        } else if m.deleted {
            "deleted"
        } else if m.attachment.is_some() || m.media_omitted {
            "media"
        } else {
            "text"
        };
        let ts = m.wallclock_us - utc_offset_s * 1_000_000;
        let mut body = serde_json::json!({
            "channel": "whatsapp-export", "author": m.author, "text": m.text, "line": m.line,
            "attachment": m.attachment, "media_omitted": m.media_omitted, "deleted": m.deleted,
            "edited": m.edited, "export_file_sha256": digest,
        });
        let rec_owner = NewRecord::message(id.clone(), conversation.clone(), ts, Vec::new())
            .with_custodian(custodian)
            .with_channel("whatsapp-export", kind);
        if let Some(name) = &m.attachment {
            match attachments.get(name) {
                Some(data) => {
                    let b = store.put_blob_for(&data[..], &rec_owner)?;
                    body["blob"] = serde_json::json!({"seq": b.seq, "sha256": hex::encode(b.sha256), "bytes": b.len});
                    summary.attachments_stored += 1;
                }
                None => {
                    body["blob"] = serde_json::json!(null);
                    if is_zip {
                        summary.attachments_missing += 1;
                    }
                }
            }
        }
        let mut rec = rec_owner;
        rec.body = body.to_string().into_bytes();
        pending.push(store.submit(rec)?);
        if pending.len() >= 512 {
            for p in pending.drain(..) {
                p.wait()?;
                summary.stored += 1;
            }
        }
    }
    for p in pending {
        p.wait()?;
        summary.stored += 1;
    }
    bar.finish_and_clear();
    // The import's report, with every line that fit no message, kept verbatim.
    let report_id = format!("whatsapp-export-report:{digest}:{}", summary.stored);
    let mut report = NewRecord::message(
        report_id,
        conversation.clone(),
        stele_engine::store::now_us(),
        serde_json::json!({
            "file_sha256": digest, "messages": summary.messages, "stored": summary.stored,
            "already_stored": summary.already_stored, "date_order": summary.date_order,
            "date_order_reason": summary.date_order_reason,
            "unparsed": parsed.unparsed.iter().map(|(n, l)| serde_json::json!({"line": n, "text": l})).collect::<Vec<_>>(),
        })
        .to_string(),
    )
    .with_custodian(custodian)
    .with_channel("whatsapp-export", "import-report");
    report.kind = FrameKind::Evidence;
    if summary.stored > 0 || !parsed.unparsed.is_empty() {
        summary.report_seq = Some(store.append(report)?.seq);
    }
    Ok(summary)
}
