//! `stele import`: a WhatsApp export (`.txt`, or `.zip` with its
//! attachments and one or more chat texts) stored as evidence, messages,
//! attachment blobs and an import report per chat.
//!
//! Nothing is held whole in memory but a chat text being parsed: the file is
//! hashed and archived verbatim as a streamed blob (with a small evidence
//! record naming it) before anything is read from it; a zip is read from the
//! file, each entry decompressed as a stream under limits ([`Limits`]);
//! attachments are streamed into blobs as the messages naming them are
//! stored. Records go through the capture service ([`Capture`]), so the consent
//! policy and store-once apply as they do to HTTP capture. A file that
//! yields no messages, an entry over a limit, a refused message: each is
//! stated in the report and fails the command, naming the evidence.

mod archive;
mod chat;
mod text;

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use stele_engine::{FrameKind, NewRecord, Store};

pub use archive::{Limits, Refusal};
pub use chat::ChatSummary;

use super::parse::parse;
use crate::capture::service::{Capture, Item, Outcome};
use archive::{Archive, OpenError};
use chat::Chat;

/// The channel every imported record is filed under.
const SOURCE: &str = "whatsapp-export";

/// What `stele import` was asked to do.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    pub file: PathBuf,
    pub store: PathBuf,
    /// The employee whose phone the export came from.
    pub custodian: String,
    /// The conversation id (default: from the custodian and the file name).
    pub conversation: Option<String>,
    /// The phone's UTC offset, seconds (exports carry local time).
    pub utc_offset_s: i64,
    pub limits: Limits,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub file: String,
    pub file_sha256: String,
    pub bytes: u64,
    /// `txt` or `zip`.
    pub format: &'static str,
    /// The evidence record naming the verbatim file's blob.
    pub evidence_seq: u64,
    /// The chat's conversation (the file's, when it holds several chats).
    pub conversation: String,
    pub messages: u64,
    pub stored: u64,
    pub already_stored: u64,
    pub refused: u64,
    pub conflicts: u64,
    pub attachments_stored: u64,
    pub attachments_already_stored: u64,
    pub attachments_missing: u64,
    pub attachments_refused: u64,
    /// The single chat's (several chats: see `chats`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unparsed_lines: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_order: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_order_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_seq: Option<u64>,
    pub chats: Vec<ChatSummary>,
    pub limits: Limits,
}

impl ImportSummary {
    /// Everything an operator must act on.
    pub fn problems(&self) -> Vec<String> {
        self.chats.iter().flat_map(ChatSummary::problems).collect()
    }
}

/// What every part of one import shares.
pub struct Ctx<'a> {
    capture: &'a Capture,
    store: &'a Store,
    custodian: &'a str,
    utc_offset_s: i64,
    file_name: &'a str,
    file_sha256: &'a str,
    evidence_seq: u64,
    limits: Limits,
}

/// Import export `a.file` into `store` through `capture`.
pub fn import_with(capture: &Capture, store: &Store, a: &ImportArgs) -> Result<ImportSummary> {
    let file = &a.file;
    let (bytes, sha) = hash_file(file)?;
    let digest = hex::encode(sha);
    let format = if looks_like_zip(file)? { "zip" } else { "txt" };
    let stem = file
        .file_stem()
        .map_or("chat".into(), |s| s.to_string_lossy().to_string());
    let conversation = a
        .conversation
        .clone()
        .unwrap_or_else(|| format!("whatsapp-export:{}:{stem}", a.custodian));
    let file_name = file
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().to_string());
    let mut ctx = Ctx {
        capture,
        store,
        custodian: &a.custodian,
        utc_offset_s: a.utc_offset_s,
        file_name: &file_name,
        file_sha256: &digest,
        evidence_seq: 0,
        limits: a.limits,
    };
    ctx.evidence_seq = archive_file(&ctx, file, bytes, &sha, &conversation, format)?;
    let chats = match format {
        "zip" => import_zip(&ctx, file, &conversation, a, &stem)?,
        _ => vec![import_txt(&ctx, file, bytes, &sha, &conversation)?],
    };
    let total = |f: fn(&ChatSummary) -> u64| chats.iter().map(f).sum::<u64>();
    let one = (chats.len() == 1).then(|| chats[0].clone());
    Ok(ImportSummary {
        file: file.display().to_string(),
        file_sha256: digest.clone(),
        bytes,
        format,
        evidence_seq: ctx.evidence_seq,
        conversation: one
            .as_ref()
            .map_or(conversation, |c| c.conversation.clone()),
        messages: total(|c| c.messages),
        stored: total(|c| c.stored),
        already_stored: total(|c| c.already_stored),
        refused: total(|c| c.refused),
        conflicts: total(|c| c.conflicts),
        attachments_stored: total(|c| c.attachments_stored),
        attachments_already_stored: total(|c| c.attachments_already_stored),
        attachments_missing: total(|c| c.attachments_missing),
        attachments_refused: total(|c| c.attachments_refused),
        unparsed_lines: one.as_ref().map(|c| c.unparsed_lines.clone()),
        date_order: one.as_ref().map(|c| c.date_order.clone()),
        date_order_reason: one.as_ref().map(|c| c.date_order_reason.clone()),
        report_seq: one.as_ref().and_then(|c| c.report_seq),
        chats,
        limits: a.limits,
    })
}

/// Length and SHA-256 of a file, read as a stream.
fn hash_file(file: &Path) -> Result<(u64, [u8; 32])> {
    let mut f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        h.update(&buf[..got]);
        n += got as u64;
    }
    Ok((n, h.finalize().into()))
}

fn looks_like_zip(file: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let n = f
        .read(&mut magic)
        .with_context(|| format!("reading {}", file.display()))?;
    let named = file
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("zip"));
    Ok(named || (n == 4 && (&magic == b"PK\x03\x04" || &magic == b"PK\x05\x06")))
}

/// The file verbatim: a streamed blob, and an evidence record naming it
/// (`whatsapp-export-file:<sha256>`, stored once). Returns the record's seq.
fn archive_file(
    ctx: &Ctx,
    file: &Path,
    bytes: u64,
    sha: &[u8; 32],
    conversation: &str,
    format: &str,
) -> Result<u64> {
    let id = format!("whatsapp-export-file:{}", ctx.file_sha256);
    if let Some(r) = ctx
        .store
        .by_record_id(&id, 8)?
        .iter()
        .find(|r| r.kind == FrameKind::Evidence && r.channel == SOURCE)
    {
        return Ok(r.seq);
    }
    let mut record =
        NewRecord::message(id, conversation, stele_engine::store::now_us(), Vec::new())
            .with_custodian(ctx.custodian)
            .with_channel(SOURCE, "export-file");
    record.kind = FrameKind::Evidence;
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let blob = ctx
        .store
        .put_blob_for(f, &record)
        .with_context(|| format!("archiving {} as a blob", file.display()))?;
    if &blob.sha256 != sha || blob.len != bytes {
        bail!("{} changed while it was being archived ({bytes} bytes hashed, {} stored); import it again once it is complete", file.display(), blob.len);
    }
    record.body = serde_json::json!({
        "channel": SOURCE, "type": "export-file", "file_name": ctx.file_name, "format": format,
        "bytes": bytes, "sha256": ctx.file_sha256,
        "blob": {"bytes": blob.len, "seq": blob.seq, "sha256": hex::encode(blob.sha256)},
    })
    .to_string()
    .into_bytes();
    match ctx
        .capture
        .store(
            SOURCE,
            vec![Item {
                record,
                fingerprint: *sha,
            }],
        )?
        .pop()
    {
        Some(Outcome::Stored { seq } | Outcome::Duplicate { seq }) => Ok(seq),
        Some(Outcome::Conflict { conflict_seq, .. }) => Ok(conflict_seq),
        Some(Outcome::Refused { why } | Outcome::Invalid { why } | Outcome::Failed { why }) => {
            bail!(
                "the evidence record of {} was not stored: {why} (its blob is at seq {})",
                file.display(),
                blob.seq
            )
        }
        None => bail!(
            "capture answered nothing for the evidence record of {}",
            file.display()
        ),
    }
}

/// A chat that could not be read at all: only its report is stored.
fn failed(ctx: &Ctx, name: String, conversation: &str, why: String) -> Result<ChatSummary> {
    let chat = Chat {
        name: name.clone(),
        folder: String::new(),
        conversation: conversation.into(),
        ctx,
        encoding: None,
    };
    let mut sum = ChatSummary {
        name,
        conversation: conversation.into(),
        problem: Some(why),
        ..Default::default()
    };
    sum.report_seq = Some(chat.report(&sum, &[], &[])?);
    Ok(sum)
}

fn import_txt(
    ctx: &Ctx,
    file: &Path,
    bytes: u64,
    sha: &[u8; 32],
    conversation: &str,
) -> Result<ChatSummary> {
    let name = ctx.file_name.to_string();
    if bytes > ctx.limits.text_bytes {
        let why = Refusal::TextTooLarge {
            entry: name.clone(),
            limit: ctx.limits.text_bytes,
        };
        return failed(ctx, name, conversation, why.to_string());
    }
    let raw = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if &<[u8; 32]>::from(Sha256::digest(&raw)) != sha {
        bail!(
            "{} changed during the import; import it again once it is complete",
            file.display()
        );
    }
    let (text, encoding) = text::decode(&raw);
    drop(raw);
    let parsed = parse(&text);
    drop(text);
    let chat = Chat {
        name,
        folder: String::new(),
        conversation: conversation.into(),
        ctx,
        encoding: Some(encoding),
    };
    chat.import(&parsed, None)
}

fn import_zip(
    ctx: &Ctx,
    file: &Path,
    conversation: &str,
    a: &ImportArgs,
    stem: &str,
) -> Result<Vec<ChatSummary>> {
    let name = ctx.file_name.to_string();
    let mut zip = match Archive::open(file, ctx.limits) {
        Ok(z) => z,
        Err(OpenError::Refused(r)) => {
            return Ok(vec![failed(
                ctx,
                name,
                conversation,
                format!("{}: {r}", file.display()),
            )?])
        }
        Err(OpenError::NotAZip(why)) => {
            return Ok(vec![failed(
                ctx,
                name,
                conversation,
                format!("{} is not a readable zip: {why}", file.display()),
            )?])
        }
    };
    let texts = archive::chat_texts(&zip.entries);
    if texts.is_empty() {
        let why = format!(
            "{}: no chat text inside the zip (looked for _chat.txt and .txt files named \"WhatsApp …\" in any language, among {} entries)",
            file.display(),
            zip.entries.len()
        );
        return Ok(vec![failed(ctx, name, conversation, why)?]);
    }
    let names = conversations(&zip, &texts, conversation, a, stem);
    let mut out = Vec::new();
    for (&i, conv) in texts.iter().zip(names) {
        let entry = zip.entries[i].clone();
        let raw = match zip.read_text(i) {
            Ok(raw) => raw,
            Err(r) => {
                out.push(failed(ctx, entry.path.clone(), &conv, r.to_string())?);
                continue;
            }
        };
        let (text, encoding) = text::decode(&raw);
        drop(raw);
        let parsed = parse(&text);
        drop(text);
        let chat = Chat {
            name: entry.path.clone(),
            folder: entry.folder().into(),
            conversation: conv,
            ctx,
            encoding: Some(encoding),
        };
        out.push(chat.import(&parsed, Some(&mut zip))?);
    }
    Ok(out)
}

/// The conversation of each chat text: the file's for a zip with one; with
/// several, one per text, from its name (`_chat.txt` from its folder).
fn conversations(
    zip: &Archive,
    texts: &[usize],
    conversation: &str,
    a: &ImportArgs,
    stem: &str,
) -> Vec<String> {
    if texts.len() == 1 {
        return vec![conversation.to_string()];
    }
    let mut out: Vec<String> = Vec::new();
    for &i in texts {
        let e = &zip.entries[i];
        let name = if e.base().eq_ignore_ascii_case("_chat.txt") {
            if e.folder().is_empty() {
                stem.to_string()
            } else {
                e.folder().to_string()
            }
        } else {
            let p = &e.path;
            p.len()
                .checked_sub(4)
                .and_then(|n| p.get(..n))
                .unwrap_or(p)
                .to_string()
        };
        let mut conv = match &a.conversation {
            Some(c) => format!("{c}:{name}"),
            None => format!("whatsapp-export:{}:{name}", a.custodian),
        };
        if out.contains(&conv) {
            conv = format!("{conv}:{i}");
        }
        out.push(conv);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_is_known_by_magic_or_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        std::fs::write(&a, b"PK\x03\x04rest").unwrap();
        let b = dir.path().join("b.txt");
        std::fs::write(&b, b"12/03/24, 09:16 - a: b").unwrap();
        let c = dir.path().join("c.ZIP");
        std::fs::write(&c, b"").unwrap();
        assert!(
            looks_like_zip(&a).unwrap()
                && !looks_like_zip(&b).unwrap()
                && looks_like_zip(&c).unwrap()
        );
        assert_eq!(hash_file(&b).unwrap().0, 22);
    }
}
