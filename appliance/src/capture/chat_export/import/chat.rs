//! One chat text stored: its messages in batches through capture, each
//! attachment streamed from the zip into a blob once its message has been
//! accepted (so a refused message leaves nothing of it behind), and the
//! import report.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use stele_engine::{FrameKind, NewRecord, Record};

use super::archive::{Archive, Refusal};
use super::text::Encoding;
use super::{Ctx, SOURCE};
use crate::capture::chat_export::parse::{ChatMessage, Parsed};
use crate::capture::service::{Item, Outcome};

/// Messages per call to capture (keeps the group commit busy).
const BATCH: usize = 512;
/// Threads calling capture, each with a batch (while this one prepares the next).
const CAPTURE_THREADS: usize = 3;

/// Text kept in a message record; a longer text is cut there (the evidence keeps all of it).
const TEXT_INLINE_MAX: usize = 1 << 20;
/// Unparsed lines (and refused entries) listed in the report record itself;
/// all of them go to a blob beyond that.
const UNPARSED_INLINE_MAX: usize = 1000;
/// Bytes of unparsed lines the report holds itself.
const UNPARSED_INLINE_BYTES: usize = 1 << 20;

/// Where a capture thread sends a batch's outcomes.
type Answer =
    crossbeam_channel::Sender<Result<Vec<Outcome>, crate::capture::service::CaptureError>>;

/// What is known of a chat text before its messages are stored.
pub struct Chat<'a> {
    /// The text's entry in the zip, or the file's name.
    pub name: String,
    /// The text's folder in the zip (`""` for a `.txt` file).
    pub folder: String,
    pub conversation: String,
    pub ctx: &'a Ctx<'a>,
    pub encoding: Option<Encoding>,
}

/// A refused zip entry and why.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedEntry {
    pub entry: String,
    pub why: String,
}

/// What importing one chat text did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChatSummary {
    pub name: String,
    pub conversation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    pub messages: u64,
    pub stored: u64,
    pub already_stored: u64,
    /// Refused by capture (the consent policy), with the reasons given.
    pub refused: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused_reasons: Vec<String>,
    /// Record ids already stored with other content (both are kept; audited).
    pub conflicts: u64,
    /// Messages capture could not store as they are (a label over a limit), with why.
    pub invalid: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_reasons: Vec<String>,
    pub attachments_stored: u64,
    pub attachments_already_stored: u64,
    pub attachments_missing: u64,
    pub attachments_refused: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused_entries: Vec<RefusedEntry>,
    /// Lines of messages whose text was cut at the inline limit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated_lines: Vec<usize>,
    pub unparsed_lines: Vec<usize>,
    pub date_order: String,
    pub date_order_reason: String,
    /// The calendar the years are read in (`gregorian`, `buddhist`, ...).
    pub calendar: String,
    pub calendar_reason: String,
    /// Why the chat could not be imported (then nothing but the report is stored for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub report_seq: Option<u64>,
    /// The record saying an earlier import of this file stored this chat in full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub already_imported_seq: Option<u64>,
}

impl ChatSummary {
    /// Everything about this chat an operator must act on.
    pub fn problems(&self) -> Vec<String> {
        let mut p: Vec<String> = self.problem.iter().cloned().collect();
        p.extend(self.refused_entries.iter().take(10).map(|r| r.why.clone()));
        if self.refused_entries.len() > 10 {
            p.push(format!(
                "{} more zip entries refused (all in the import report)",
                self.refused_entries.len() - 10
            ));
        }
        if self.invalid > 0 {
            p.push(format!(
                "{} messages of {} could not be stored as they are: {}",
                self.invalid,
                self.name,
                self.invalid_reasons.join("; ")
            ));
        }
        if self.refused > 0 {
            p.push(format!(
                "{} of {} messages of {} refused by capture: {}",
                self.refused,
                self.messages,
                self.name,
                self.refused_reasons.join("; ")
            ));
        }
        p
    }

    fn changed(&self) -> bool {
        self.stored + self.conflicts + self.attachments_stored > 0
    }
}

/// (record id, time) of a message, and its attachment's name and zip entry.
type Attachment = (String, i64, String, Option<usize>);

/// A message ready for capture, with what its attachment needs later.
struct Prepared {
    item: Item,
    attachment: Option<Attachment>,
}

impl Chat<'_> {
    fn owner(&self, id: String, ts: i64, message_type: &str) -> NewRecord {
        NewRecord::message(id, self.conversation.clone(), ts, Vec::new())
            .with_custodian(self.ctx.custodian)
            .with_channel(SOURCE, message_type)
    }

    /// Store every message of `parsed` (and, from `zip`, their attachments).
    pub fn import(&self, parsed: &Parsed, zip: Option<&mut Archive>) -> Result<ChatSummary> {
        let mut sum = ChatSummary {
            name: self.name.clone(),
            conversation: self.conversation.clone(),
            encoding: self.encoding.clone(),
            messages: parsed.messages.len() as u64,
            unparsed_lines: parsed.unparsed.iter().map(|(n, _)| *n).collect(),
            date_order: parsed.date_order.clone(),
            date_order_reason: parsed.date_order_reason.clone(),
            calendar: parsed.calendar.clone(),
            calendar_reason: parsed.calendar_reason.clone(),
            ..Default::default()
        };
        if parsed.messages.is_empty() {
            sum.problem = Some(format!(
                "{}: no WhatsApp messages found ({} lines not in any message)",
                self.name,
                parsed.unparsed.len()
            ));
        }
        let (keys, digest) = self.keys(&parsed.messages);
        let done_id = format!(
            "whatsapp-export-complete:{}:{}",
            self.ctx.file_sha256,
            &hex::encode(digest)[..32]
        );
        if let Some((seq, done)) = self.completed(&done_id)? {
            sum.already_stored = sum.messages;
            sum.attachments_already_stored = done["attachments_kept"].as_u64().unwrap_or(0);
            sum.attachments_missing = done["attachments_missing"].as_u64().unwrap_or(0);
            sum.already_imported_seq = Some(seq);
            return Ok(sum);
        }
        self.store_messages(&parsed.messages, &keys, zip, &mut sum)?;
        if sum.changed() || !sum.problems().is_empty() {
            sum.report_seq = Some(self.report(&sum, &parsed.unparsed, &parsed.unparsed_reasons)?);
        }
        if sum.messages > 0 && sum.problems().is_empty() {
            self.mark_complete(done_id, digest, &sum)?;
        }
        Ok(sum)
    }

    fn ts(&self, m: &ChatMessage) -> i64 {
        m.wallclock_us - self.ctx.utc_offset_s * 1_000_000
    }

    /// Each message's key and its order among identical ones (identical
    /// messages in one minute are told apart by their order), and the
    /// SHA-256 of every record id and fingerprint the messages make.
    fn keys(&self, messages: &[ChatMessage]) -> (Vec<([u8; 32], u32)>, [u8; 32]) {
        let mut seen: std::collections::HashMap<[u8; 32], u32> = std::collections::HashMap::new();
        let mut all = Sha256::new();
        all.update((self.conversation.len() as u64).to_le_bytes());
        all.update(&self.conversation);
        let keys = messages
            .iter()
            .map(|m| {
                let key = message_key(m);
                let nth = seen.entry(key).or_insert(0);
                *nth += 1;
                all.update(key);
                all.update(nth.to_le_bytes());
                all.update(fingerprint(m, self.ts(m)));
                (key, *nth)
            })
            .collect();
        (keys, all.finalize().into())
    }

    /// The record saying this file's chat was imported in full, to the same
    /// record ids and content (then importing it again can add nothing, and
    /// no message needs looking up).
    fn completed(&self, id: &str) -> Result<Option<(u64, serde_json::Value)>> {
        Ok(self
            .ctx
            .store
            .by_record_id(id, 8)?
            .into_iter()
            .find(|r| r.kind == FrameKind::Evidence && r.channel == SOURCE)
            .map(|r| (r.seq, serde_json::from_slice(&r.body).unwrap_or_default())))
    }

    /// Record that every message (and every attachment the zip holds) is kept.
    fn mark_complete(&self, id: String, digest: [u8; 32], sum: &ChatSummary) -> Result<()> {
        let mut record = self.owner(id, stele_engine::store::now_us(), "import-complete");
        record.kind = FrameKind::Evidence;
        record.body = serde_json::json!({
            "channel": SOURCE, "type": "import-complete", "chat": self.name,
            "file_sha256": self.ctx.file_sha256, "records_sha256": hex::encode(digest),
            "messages": sum.messages, "attachments_kept": sum.attachments_stored + sum.attachments_already_stored,
            "attachments_missing": sum.attachments_missing, "report_seq": sum.report_seq,
        })
        .to_string()
        .into_bytes();
        let o = self.ctx.capture.store_one(
            SOURCE,
            Item {
                record,
                fingerprint: digest,
            },
        )?;
        match o.kept_seq() {
            Some(_) => Ok(()),
            None => bail!(
                "the record that {} was imported in full was not stored: {o:?}",
                self.name
            ),
        }
    }

    /// The body of a message whose text is cut at [`TEXT_INLINE_MAX`]
    /// (its SHA-256 and length name the whole text, which the evidence keeps).
    fn truncated(&self, body: Body) -> Vec<u8> {
        let text = &body.message.text;
        let mut cut = TEXT_INLINE_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut v = serde_json::to_value(&body).unwrap_or_default();
        v["text"] = text[..cut].into();
        v["text_truncated"] = serde_json::json!({
            "bytes": text.len(), "kept_bytes": cut, "sha256": hex::encode(Sha256::digest(text)),
            "whole_text": format!("line {} of {} in the export file's evidence", body.message.line, self.name),
        });
        v.to_string().into_bytes()
    }

    /// Store `messages` in batches: capture stores one batch on its own
    /// thread while this one prepares the next and, once a batch's outcomes
    /// are back, streams the attachments of the messages it accepted.
    fn store_messages(
        &self,
        messages: &[ChatMessage],
        keys: &[([u8; 32], u32)],
        mut zip: Option<&mut Archive>,
        sum: &mut ChatSummary,
    ) -> Result<()> {
        let bar = progress(messages.len() as u64);
        let capture = self.ctx.capture;
        let stopped = || anyhow::anyhow!("the capture threads stopped");
        std::thread::scope(|scope| -> Result<()> {
            // Each batch goes with the channel its outcomes come back on.
            let (to_capture, batches) = crossbeam_channel::bounded::<(Vec<Item>, Answer)>(1);
            for _ in 0..CAPTURE_THREADS {
                let batches = batches.clone();
                scope.spawn(move || {
                    for (items, answer) in batches {
                        let _ = answer.send(capture.store(SOURCE, items));
                    }
                });
            }
            let mut waiting = std::collections::VecDeque::new();
            let mut sent = messages.chunks(BATCH).zip(keys.chunks(BATCH));
            loop {
                let next = sent.next();
                if let Some((chunk, keys)) = next {
                    let (items, attachments): (Vec<Item>, Vec<_>) = chunk
                        .iter()
                        .zip(keys)
                        .map(|(m, (key, nth))| {
                            let p = self.prepare(m, key, *nth, zip.as_deref(), sum);
                            (p.item, p.attachment)
                        })
                        .collect();
                    let (answer, outcomes) = crossbeam_channel::bounded(1);
                    to_capture.send((items, answer)).map_err(|_| stopped())?;
                    waiting.push_back((outcomes, attachments));
                }
                if waiting.len() > CAPTURE_THREADS || (next.is_none() && !waiting.is_empty()) {
                    let (outcomes, attachments) = waiting.pop_front().expect("a batch in flight");
                    let outcomes = outcomes
                        .recv()
                        .map_err(|_| stopped())?
                        .context("storing messages")?;
                    bar.inc(outcomes.len() as u64);
                    self.settle(outcomes, attachments, zip.as_deref_mut(), sum)?;
                } else if next.is_none() {
                    return Ok(());
                }
            }
        })?;
        bar.finish_and_clear();
        Ok(())
    }

    fn prepare(
        &self,
        m: &ChatMessage,
        key: &[u8; 32],
        nth: u32,
        zip: Option<&Archive>,
        sum: &mut ChatSummary,
    ) -> Prepared {
        let id = format!(
            "whatsapp-export:{}:{}:{nth}",
            self.conversation,
            &hex::encode(key)[..32]
        );
        let kind = if m.system || m.author.is_none() {
            "system"
        } else if m.deleted {
            "deleted"
        } else if m.attachment.is_some() || m.media_omitted {
            "media"
        } else {
            "text"
        };
        let ts = self.ts(m);
        let entry = match (&m.attachment, zip) {
            (Some(name), Some(z)) => Some(z.attachment(name, &self.folder)),
            _ => None,
        };
        let body = Body {
            channel: SOURCE,
            message: m,
            export_file_sha256: self.ctx.file_sha256,
            attachment_in_export: entry.map(|e| e.is_some()),
        };
        let body = if m.text.len() > TEXT_INLINE_MAX {
            sum.truncated_lines.push(m.line);
            self.truncated(body)
        } else {
            serde_json::to_vec(&body).unwrap_or_default()
        };
        let entry = entry.flatten();
        let mut record = self.owner(id.clone(), ts, kind);
        record.body = body;
        Prepared {
            item: Item {
                record,
                fingerprint: fingerprint(m, ts),
            },
            attachment: m.attachment.clone().map(|a| (id, ts, a, entry)),
        }
    }

    /// Count one batch's outcomes and store the attachments of the messages kept.
    fn settle(
        &self,
        outcomes: Vec<Outcome>,
        attachments: Vec<Option<Attachment>>,
        mut zip: Option<&mut Archive>,
        sum: &mut ChatSummary,
    ) -> Result<()> {
        let mut links = Vec::new();
        for (o, a) in outcomes.into_iter().zip(attachments) {
            match o {
                Outcome::Stored { .. } => sum.stored += 1,
                Outcome::Duplicate { .. } => sum.already_stored += 1,
                Outcome::Conflict { .. } => sum.conflicts += 1,
                Outcome::Refused { why } => {
                    sum.refused += 1;
                    push_once(&mut sum.refused_reasons, why);
                    continue;
                }
                Outcome::Invalid { why } => {
                    sum.invalid += 1;
                    push_once(&mut sum.invalid_reasons, why);
                    continue;
                }
                Outcome::Failed { why } => bail!(
                    "the store failed after {} of {} messages of {} were stored ({} already were): {why}; importing the file again stores the rest",
                    sum.stored, sum.messages, self.name, sum.already_stored
                ),
            }
            match (a, zip.as_deref_mut()) {
                (Some((id, ts, name, Some(entry))), Some(z)) => {
                    match self.attachment(z, id, ts, &name, entry)? {
                        Step::Link(item) => links.push(item),
                        Step::Already => sum.attachments_already_stored += 1,
                        Step::Refused(r) => {
                            sum.attachments_refused += 1;
                            sum.refused_entries.push(RefusedEntry {
                                entry: z.entries[entry].path.clone(),
                                why: r.to_string(),
                            });
                        }
                    }
                }
                (Some(_), Some(_)) => sum.attachments_missing += 1,
                _ => {}
            }
        }
        if !links.is_empty() {
            for o in self
                .ctx
                .capture
                .store(SOURCE, links)
                .context("storing attachment records")?
            {
                match o {
                    Outcome::Stored { .. } => sum.attachments_stored += 1,
                    Outcome::Duplicate { .. } => sum.attachments_already_stored += 1,
                    Outcome::Conflict { .. } => sum.conflicts += 1,
                    Outcome::Refused { why }
                    | Outcome::Invalid { why }
                    | Outcome::Failed { why } => {
                        bail!("an attachment record of an accepted message of {} was not stored: {why}", self.name)
                    }
                }
            }
        }
        Ok(())
    }

    /// Stream attachment `name` (zip entry `entry`) of message `id` into a
    /// blob, unless the same content is already linked to the message.
    fn attachment(
        &self,
        zip: &mut Archive,
        id: String,
        ts: i64,
        name: &str,
        entry: usize,
    ) -> Result<Step> {
        let (len, sha) = match zip.measure(entry) {
            Ok(m) => m,
            Err(r) => return Ok(Step::Refused(r)),
        };
        let link_id = format!("{id}:attachment");
        let sha_hex = hex::encode(sha);
        let mut h = Sha256::new();
        for part in [link_id.as_bytes(), name.as_bytes(), &sha] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let fingerprint: [u8; 32] = h.finalize().into();
        // Linked already: this content under the link's id, or kept as a
        // conflict with an earlier link (the id capture gives conflict records).
        let linked = |r: &Record| {
            serde_json::from_slice::<serde_json::Value>(&r.body)
                .is_ok_and(|v| v["blob"]["sha256"] == sha_hex.as_str())
        };
        let conflict_id = format!("{link_id}#conflict:{}", &hex::encode(fingerprint)[..32]);
        let store = self.ctx.store;
        if store
            .by_record_id(&link_id, 64)?
            .iter()
            .any(|r| r.channel == SOURCE && linked(r))
            || store
                .by_record_id(&conflict_id, 1)?
                .iter()
                .any(|r| r.channel == SOURCE)
        {
            return Ok(Step::Already);
        }
        let owner = self.owner(link_id.clone(), ts, "attachment");
        let blob = match zip.with_reader(entry, len, |r| self.ctx.store.put_blob_for(r, &owner)) {
            Ok(b) => b.with_context(|| {
                format!("storing zip entry {:?} as a blob", zip.entries[entry].path)
            })?,
            Err(r) => return Ok(Step::Refused(r)),
        };
        let path = zip.entries[entry].path.clone();
        if blob.sha256 != sha || blob.len != len {
            bail!("zip entry {path:?} read differently the second time ({} bytes, then {}): did the file change during the import?", len, blob.len);
        }
        let mut record = owner;
        record.body = serde_json::json!({
            "channel": SOURCE, "type": "attachment", "refers_to": id, "attachment": name, "entry": path,
            "blob": {"bytes": blob.len, "seq": blob.seq, "sha256": sha_hex},
            "export_file_sha256": self.ctx.file_sha256,
        })
        .to_string()
        .into_bytes();
        Ok(Step::Link(Item {
            record,
            fingerprint,
        }))
    }

    /// Every line that fit no message, with why, in the report; past
    /// [`UNPARSED_INLINE_MAX`] lines or [`UNPARSED_INLINE_BYTES`], all of
    /// them go to a blob (one JSON object a line) and the report shows the
    /// first ones, each cut at 1 KiB.
    fn unparsed(
        &self,
        body: &mut serde_json::Value,
        unparsed: &[(usize, String)],
        reasons: &[(usize, String)],
    ) -> Result<()> {
        // The parser gives the reasons in the same order as the lines.
        let why = |i: usize, n: usize| reasons.get(i).filter(|r| r.0 == n).map(|r| r.1.clone());
        let line = move |i: usize, (n, l): &(usize, String), cut: usize| {
            let mut end = l.len().min(cut);
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            serde_json::json!({"line": n, "text": &l[..end], "why": why(i, *n), "cut": (end < l.len()).then_some(true)})
        };
        let bytes: usize = unparsed.iter().map(|(_, l)| l.len()).sum();
        if unparsed.len() <= UNPARSED_INLINE_MAX && bytes <= UNPARSED_INLINE_BYTES {
            body["unparsed"] = unparsed
                .iter()
                .enumerate()
                .map(|(i, u)| line(i, u, usize::MAX))
                .collect();
            return Ok(());
        }
        let all = unparsed.iter().enumerate().map(|(i, u)| {
            let mut b = line(i, u, usize::MAX).to_string().into_bytes();
            b.push(b'\n');
            b
        });
        let owner = self.owner(
            String::new(),
            stele_engine::store::now_us(),
            "import-report",
        );
        let blob = self.ctx.store.put_blob_for(Chunks::new(all), &owner)?;
        let shown = unparsed.iter().take(UNPARSED_INLINE_MAX).enumerate();
        body["unparsed"] = shown.map(|(i, u)| line(i, u, 1024)).collect();
        body["unparsed_all"] = serde_json::json!({
            "lines": unparsed.len(), "format": "one JSON object a line",
            "blob": {"bytes": blob.len, "seq": blob.seq, "sha256": hex::encode(blob.sha256)},
        });
        Ok(())
    }

    /// The import report: counts, every line that fit no message, every
    /// refusal. Its record id carries its content's digest, so importing
    /// the same file again to the same effect adds nothing.
    pub fn report(
        &self,
        sum: &ChatSummary,
        unparsed: &[(usize, String)],
        reasons: &[(usize, String)],
    ) -> Result<u64> {
        let mut shown = sum.clone();
        shown.unparsed_lines.truncate(UNPARSED_INLINE_MAX);
        shown.refused_entries.truncate(UNPARSED_INLINE_MAX);
        let mut body = serde_json::json!({
            "file_name": self.ctx.file_name, "file_sha256": self.ctx.file_sha256, "evidence_seq": self.ctx.evidence_seq,
            "summary": shown, "limits": self.ctx.limits,
            "encoding_note": sum.encoding.as_ref().and_then(Encoding::note),
            "unparsed_lines": sum.unparsed_lines.len(), "refused_entries": sum.refused_entries.len(),
        });
        self.unparsed(&mut body, unparsed, reasons)?;
        let bytes = body.to_string().into_bytes();
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let id = format!(
            "whatsapp-export-report:{}:{}",
            self.ctx.file_sha256,
            &hex::encode(digest)[..32]
        );
        let mut record = self.owner(id, stele_engine::store::now_us(), "import-report");
        record.kind = FrameKind::Evidence;
        record.body = bytes;
        let o = self.ctx.capture.store_one(
            SOURCE,
            Item {
                record,
                fingerprint: digest,
            },
        )?;
        match o.kept_seq() {
            Some(seq) => Ok(seq),
            None => bail!("the import report of {} was not stored: {o:?}", self.name),
        }
    }
}

/// A reader over the byte strings an iterator yields, one after another.
struct Chunks<I> {
    items: I,
    current: Vec<u8>,
    at: usize,
}

impl<I: Iterator<Item = Vec<u8>>> Chunks<I> {
    fn new(items: I) -> Self {
        Chunks {
            items,
            current: Vec::new(),
            at: 0,
        }
    }
}

impl<I: Iterator<Item = Vec<u8>>> std::io::Read for Chunks<I> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.items.next() {
                Some(next) => (self.current, self.at) = (next, 0),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn push_once(reasons: &mut Vec<String>, why: String) {
    if !reasons.contains(&why) {
        reasons.push(why);
    }
}

/// A message record's body: the parsed message and where it came from.
#[derive(Serialize)]
struct Body<'a> {
    channel: &'static str,
    #[serde(flatten)]
    message: &'a ChatMessage,
    export_file_sha256: &'a str,
    /// For an attachment in a zip: whether the zip holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    attachment_in_export: Option<bool>,
}

enum Step {
    Link(Item),
    Already,
    Refused(Refusal),
}

/// SHA-256 of `time|author|text` as written: with the message's order
/// among identical ones, its record id.
fn message_key(m: &ChatMessage) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(m.wallclock_us.to_string());
    h.update(b"|");
    h.update(m.author.as_deref().unwrap_or(""));
    h.update(b"|");
    h.update(&m.text);
    h.finalize().into()
}

/// SHA-256 of the message as captured: author, time, text, attachment name.
fn fingerprint(m: &ChatMessage, ts: i64) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut field = |present: bool, b: &[u8]| {
        h.update([u8::from(present)]);
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(
        m.author.is_some(),
        m.author.as_deref().unwrap_or("").as_bytes(),
    );
    field(true, &ts.to_le_bytes());
    field(true, m.text.as_bytes());
    field(
        m.attachment.is_some(),
        m.attachment.as_deref().unwrap_or("").as_bytes(),
    );
    h.finalize().into()
}

/// A progress bar on a terminal, nothing otherwise.
fn progress(len: u64) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} importing {pos}/{len} messages [{bar:40}] {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}
