//! The text of a WhatsApp "Export chat" file, parsed into messages.
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

use regex::Regex;
use serde::Serialize;

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
