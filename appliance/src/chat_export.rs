//! WhatsApp "Export chat" files (Android and iOS, `.txt` or `.zip` with
//! attachments): parsing, and `stele import`.
//!
//! A message starts on a line with a date and a time, in any of the layouts
//! the apps write (`[d/m/yy, h:mm:ss PM] Name: text` on iOS,
//! `dd.mm.yy, HH:MM - Name: text` on Android, year-first, dotted times,
//! `a.m.`/`p.m.`, locale words such as `klo`), after any invisible marks
//! (BOM, LRM, RLM, directional isolates). Other lines continue the message
//! before them. Lines before the first message cannot belong to one: they are
//! kept, with their numbers, in the import's report record.
//!
//! Day/month order is decided for the whole file, not line by line: a part
//! above 12 settles it; otherwise the order under which the messages run
//! forward in time wins; a tie falls to day first. The decision and its reason
//! are reported.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::Serialize;
use sha2::{Digest, Sha256};
use stele_engine::{FrameKind, NewRecord, Store};

use crate::when::days_from_civil;

/// One parsed message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    /// The line it starts on (1-based).
    pub line: usize,
    /// Local wall-clock time as written, as UTC microseconds (before any offset).
    pub wallclock_us: i64,
    /// `None` for system messages.
    pub author: Option<String>,
    pub text: String,
    pub attachment: Option<String>,
    pub media_omitted: bool,
    pub deleted: bool,
    pub edited: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parsed {
    pub messages: Vec<ChatMessage>,
    /// (line number, text) of lines that belong to no message.
    pub unparsed: Vec<(usize, String)>,
    /// "day-first", "month-first" or "year-first".
    pub date_order: String,
    pub date_order_reason: String,
}

const INVISIBLE: &[char] = &[
    '\u{feff}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}',
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

fn header() -> Regex {
    Regex::new(
        r"(?x)^\[?
        (?P<a>\d{1,4})[./-]\s?(?P<b>\d{1,2})[./-]\s?(?P<c>\d{1,4})\.?
        ,?\s*(?:klo\s+)?
        (?P<h>\d{1,2})[:.](?P<m>\d{2})(?:[:.](?P<s>\d{2}))?
        (?:\s*(?P<ampm>[AaPp])\.?\s?[Mm]\.?)?
        \]?
        (?:\s*-\s|:\s|\s)\s*
        (?P<rest>.*)$",
    )
    .expect("valid header pattern")
}

struct Raw {
    line: usize,
    parts: (u32, u32, u32),
    year_first: bool,
    secs_of_day: i64,
    rest: String,
    more: Vec<String>,
}

fn strip(s: &str) -> &str {
    s.trim_start_matches(INVISIBLE)
}

fn to_us(order: &str, r: &Raw) -> Option<i64> {
    let (a, b, c) = (r.parts.0 as i64, r.parts.1 as i64, r.parts.2 as i64);
    let (y, m, d) = match order {
        "year-first" => (a, b, c),
        "month-first" => (c, a, b),
        _ => (c, b, a),
    };
    let y = if y < 100 { 2000 + y } else { y };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some((days_from_civil(y, m, d) * 86_400 + r.secs_of_day) * 1_000_000)
}

/// Parse the text of an export.
pub fn parse(text: &str) -> Parsed {
    let re = header();
    let mut raws: Vec<Raw> = Vec::new();
    let mut unparsed = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        // Invisible marks can sit anywhere in a header, even inside the bracket.
        let cleaned: String = line
            .trim_end_matches('\r')
            .chars()
            .filter(|c| !INVISIBLE.contains(c))
            .collect();
        let l = cleaned.as_str();
        let caps = re.captures(l).and_then(|c| {
            let num = |k: &str| c.name(k).and_then(|x| x.as_str().parse::<u32>().ok());
            let (a, b, cc, h, m) = (num("a")?, num("b")?, num("c")?, num("h")?, num("m")?);
            let s = num("s").unwrap_or(0);
            let mut h = h as i64;
            if let Some(p) = c.name("ampm") {
                let pm = p.as_str().eq_ignore_ascii_case("p");
                if h == 12 {
                    h = 0;
                }
                if pm {
                    h += 12;
                }
            }
            if h > 23 || m > 59 || s > 60 {
                return None;
            }
            let year_first = c.name("a").is_some_and(|x| x.as_str().len() == 4);
            Some(Raw {
                line: n,
                parts: (a, b, cc),
                year_first,
                secs_of_day: h * 3600 + m as i64 * 60 + s as i64,
                rest: c.name("rest").map_or("", |x| x.as_str()).to_string(),
                more: Vec::new(),
            })
        });
        match caps {
            Some(r) => raws.push(r),
            None => match raws.last_mut() {
                Some(prev) => prev.more.push(line.trim_end_matches('\r').to_string()),
                None => {
                    if !l.trim().is_empty() {
                        unparsed.push((n, line.to_string()));
                    }
                }
            },
        }
    }
    // Day/month order, for the whole file.
    let (order, reason) = if raws.iter().any(|r| r.year_first) {
        (
            "year-first".to_string(),
            "the year is written first".to_string(),
        )
    } else {
        let first_big = raws.iter().find(|r| r.parts.0 > 12);
        let second_big = raws.iter().find(|r| r.parts.1 > 12);
        match (first_big, second_big) {
            (Some(r), None) => ("day-first".into(), format!("line {} has {} in the first place", r.line, r.parts.0)),
            (None, Some(r)) => ("month-first".into(), format!("line {} has {} in the second place", r.line, r.parts.1)),
            (Some(x), Some(y)) => (
                "day-first".into(),
                format!("mixed: line {} reads day-first and line {} month-first; day-first kept, check the file", x.line, y.line),
            ),
            (None, None) => {
                let backwards = |o: &str| {
                    let ts: Vec<i64> = raws.iter().filter_map(|r| to_us(o, r)).collect();
                    ts.windows(2).filter(|w| w[1] < w[0]).count()
                };
                let (d, m) = (backwards("day-first"), backwards("month-first"));
                if m < d {
                    ("month-first".into(), format!("no part above 12; month-first runs forward in time ({m} steps back against {d})"))
                } else if d < m {
                    ("day-first".into(), format!("no part above 12; day-first runs forward in time ({d} steps back against {m})"))
                } else {
                    ("day-first".into(), "no part above 12 and both orders run forward: day first, as most locales write".into())
                }
            }
        }
    };
    let mut messages = Vec::new();
    for r in raws {
        let Some(ts) = to_us(&order, &r) else {
            unparsed.push((r.line, format!("(impossible date) {}", r.rest)));
            continue;
        };
        let rest = strip(&r.rest).to_string();
        let (author, mut body) = match rest.split_once(": ") {
            Some((a, m)) if !a.is_empty() && a.chars().count() <= 100 => {
                (Some(strip(a).to_string()), m.to_string())
            }
            _ => match rest.strip_suffix(':') {
                Some(a) if !a.contains(' ') || a.chars().count() <= 40 => {
                    (Some(a.to_string()), String::new())
                }
                _ => (None, rest.clone()),
            },
        };
        for m in &r.more {
            body.push('\n');
            body.push_str(m);
        }
        let clean = strip(body.trim()).to_string();
        let lower = clean.to_lowercase();
        let attachment = attachment_name(&clean);
        let media_omitted = lower.contains("<media omitted>")
            || lower.ends_with(" omitted")
            || lower.contains("medien ausgeschlossen")
            || lower.contains("weggelassen")
            || clean.contains("は含まれていません");
        let deleted = lower.contains("this message was deleted")
            || lower.contains("you deleted this message")
            || lower.contains("nachricht wurde gelöscht")
            || lower.contains("du hast diese nachricht gelöscht");
        let edited = lower.contains("<this message was edited>")
            || lower.contains("<diese nachricht wurde bearbeitet>");
        messages.push(ChatMessage {
            line: r.line,
            wallclock_us: ts,
            author,
            text: clean,
            attachment,
            media_omitted,
            deleted,
            edited,
        });
    }
    unparsed.sort();
    Parsed {
        messages,
        unparsed,
        date_order: order,
        date_order_reason: reason,
    }
}

fn attachment_name(text: &str) -> Option<String> {
    let t = strip(text.trim());
    for (open, close) in [
        ("<attached: ", ">"),
        ("< attached: ", " >"),
        ("<Anhang: ", ">"),
    ] {
        if let Some(x) = t.strip_prefix(open).and_then(|x| x.strip_suffix(close)) {
            return Some(x.trim().to_string());
        }
    }
    for suffix in [" (file attached)", " (Datei angehängt)"] {
        if let Some(x) = t.strip_suffix(suffix) {
            return Some(strip(x).trim().to_string());
        }
    }
    None
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_markers() {
        let ios = "\u{feff}[1/29/18, 12:24:03 PM] Messages and calls are end-to-end encrypted.\n[1/29/18, 12:24:12 PM] Mallory: Hey! :)\nsecond line\n\u{200e}[1/29/18, 1:05:00 PM] Alice: \u{200e}<attached: 00000012-PHOTO-2018-01-29-13-05-00.jpg>\n";
        let p = parse(ios);
        assert_eq!(p.messages.len(), 3, "{p:?}");
        assert!(p.unparsed.is_empty());
        assert_eq!(p.date_order, "month-first");
        assert_eq!(p.messages[0].author, None);
        assert_eq!(p.messages[1].author.as_deref(), Some("Mallory"));
        assert_eq!(p.messages[1].text, "Hey! :)\nsecond line");
        assert_eq!(
            p.messages[1].wallclock_us,
            (days_from_civil(2018, 1, 29) * 86_400 + 12 * 3600 + 24 * 60 + 12) * 1_000_000
        );
        assert_eq!(
            p.messages[2].attachment.as_deref(),
            Some("00000012-PHOTO-2018-01-29-13-05-00.jpg")
        );
        let p = parse("[\u{feff}29.01.18, 12:24:03] Nachrichten sind verschlüsselt.\n\u{feff}\u{feff}[29.01.18, 12:24:05] Du: hallo\n");
        assert_eq!(p.messages.len(), 2);
        assert!(p.unparsed.is_empty());
        let android = "header junk\n29.01.18, 12:24 - Du hast Mallory hinzugefügt.\n29.01.18, 12:25 - Mallory: <Medien ausgeschlossen>\n29.01.18, 12:26 - Mallory: Diese Nachricht wurde gelöscht\n";
        let p = parse(android);
        assert_eq!(p.unparsed, vec![(1, "header junk".to_string())]);
        assert_eq!(p.date_order, "day-first");
        assert!(p.messages[1].media_omitted && p.messages[2].deleted);
        // Ambiguous dates are decided for the whole file.
        let p = parse("01/02/20, 10:00 - a: x\n01/03/20, 10:00 - a: y\n");
        assert_eq!(p.date_order, "day-first");
        let p = parse("03/01/20, 10:00 - a: x\n04/01/20, 10:00 - a: y\n05/01/20, 10:00 - a: z\n02/01/20, 10:00 - a: w\n01/02/20, 10:00 - a: v\n");
        assert_eq!(p.date_order, "day-first", "{}", p.date_order_reason);
        let p = parse("2019/01/01, 11:25 - John Doe: Lorem\n13.6.2018 klo 21.25.15 - a: m\n");
        assert_eq!(p.date_order, "year-first");
        let p = parse("3/6/18, 1:55 p.\u{a0}m. - a: m\n03/02/17, 18:42 - Luke: \n");
        assert_eq!(p.messages.len(), 2);
        assert_eq!(p.messages[1].author.as_deref(), Some("Luke"));
        assert_eq!(p.messages[1].text, "");
        assert_eq!(
            p.messages[0].wallclock_us % 86_400_000_000,
            (13 * 3600 + 55 * 60) * 1_000_000
        );
    }
}
