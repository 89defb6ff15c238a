//! The text of a WhatsApp "Export chat" file, parsed into messages.
//!
//! A message starts on a line shaped like a header: a date and a time in
//! any of the layouts the apps write (`[d/m/yy, h:mm:ss PM] Name: text` on
//! iOS, `dd.mm.yy, HH:MM - Name: text` on Android, year-first, time-first,
//! dotted times, `年月日`, localized day periods, connecting words such as
//! `klo`, digits of any script, invisible marks anywhere; see
//! [`super::header`]). Other lines continue the message before them. A line
//! shaped like a header whose date or time cannot be (month 13, 25:00, a
//! 4-digit year no calendar here knows) is never run into the message before
//! it: it is set aside with its number and the reason, and so are the lines
//! that follow it, as are lines before the first message. An hour above 12
//! with PM is the 24-hour hour; with AM as well, noted on the message.
//!
//! Day/month order is decided for the whole file, not line by line: the
//! order under which the fewest dates are impossible wins; among those, the
//! one under which the messages run forward in time; a tie falls to day
//! first. Lines with a 4-digit year (or an era) first are year-first
//! whatever the file; all-two-digit dates may be read year-first only when
//! no line has its year last and that order runs forward best. Years are
//! Gregorian, Thai Buddhist (a 4-digit year above 2400 or a `BE`/`พ.ศ.`
//! marker: year − 543; two-digit years too when the file is Buddhist or
//! every one of them lies between 52 and 78, i.e. 2052–2078 as Gregorian),
//! or Japanese eras (`R`/`令和` 2019 = 1, `H`/`平成` 1989 = 1, `S`/`昭和`
//! 1926 = 1, `T`/`大正` 1912 = 1). Both decisions and their reasons are
//! reported.
//!
//! A line's rest is `Name: text` or, without a `: `, a system line. Text
//! WhatsApp writes itself is read from the tables in [`super::markers`]:
//! attachments (iOS `<attached: F>`, Android `F (file attached)`, with the
//! lines after the first kept as the caption), media left out, deleted
//! messages, the edited marker (taken off the text, `edited` set), and
//! system events iOS writes under the chat's name (encryption and security
//! code notices, group changes): those get no author, the name kept in
//! `system_name`. Group events a person might also type ("X added Y") need
//! more evidence: the invisible mark iOS writes before such text, or a name
//! that writes nothing but such events (a group's name).

use std::collections::HashSet;

use serde::Serialize;

use super::header::{self, DateParts, YearAt};
use super::markers;
use crate::when::{days_from_civil, days_in_month};

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
    /// A system event (encryption notice, group change …), not a message by
    /// an author: `author` is `None`.
    pub system: bool,
    /// The name a system event is written under (iOS writes them under the
    /// chat's name), if any.
    pub system_name: Option<String>,
    /// With an attachment or a media-omitted marker: the lines after the
    /// marker's, if any (`text` still holds everything).
    pub caption: Option<String>,
    /// What was odd about the header and how it was read (an hour above 12
    /// with AM).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parsed {
    pub messages: Vec<ChatMessage>,
    /// (line number, text) of lines that belong to no message, as written.
    pub unparsed: Vec<(usize, String)>,
    /// (line number, why) for each line of `unparsed`, in the same order.
    pub unparsed_reasons: Vec<(usize, String)>,
    /// "day-first", "month-first" or "year-first".
    pub date_order: String,
    pub date_order_reason: String,
    /// "gregorian", "buddhist", "japanese" or "mixed".
    pub calendar: String,
    pub calendar_reason: String,
}

/// Marks that carry no text: BOM, LRM, RLM, ALM, directional embeddings,
/// overrides and isolates.
pub(super) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{feff}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{061c}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

fn strip(s: &str) -> &str {
    s.trim_start_matches(is_invisible)
}

/// A header line read so far: its date waits for the file's order.
struct Raw<'a> {
    line: usize,
    text: &'a str,
    date: DateParts,
    secs: i64,
    note: Option<String>,
    /// The rest of the header line, as written.
    rest: &'a str,
    more: Vec<&'a str>,
}

/// (line number, text, why) of a line that belongs to no message.
type Aside = (usize, String, String);

/// Parse the text of an export.
pub fn parse(text: &str) -> Parsed {
    let (raws, mut aside) = read_lines(text);
    let (order, date_order, date_order_reason) = decide_order(&raws);
    let cal = decide_calendar(&raws, order);
    let mut messages = Vec::with_capacity(raws.len());
    for r in &raws {
        match resolve(order, &cal, &r.date) {
            Ok((y, m, d)) => {
                let ts = (days_from_civil(y, m, d) * 86_400 + r.secs) * 1_000_000;
                messages.push(build(r, ts));
            }
            Err(why) => set_aside(r, why, &mut aside),
        }
    }
    chat_name_events(&mut messages);
    aside.sort();
    let (unparsed, unparsed_reasons) = aside.into_iter().map(|(n, t, w)| ((n, t), (n, w))).unzip();
    Parsed {
        messages,
        unparsed,
        unparsed_reasons,
        date_order,
        date_order_reason,
        calendar: cal.name.to_string(),
        calendar_reason: cal.reason,
    }
}

enum Sink {
    Start,
    Message,
    Aside(usize),
}

/// Headers with a possible time, and the lines set aside so far.
fn read_lines(text: &str) -> (Vec<Raw<'_>>, Vec<Aside>) {
    let mut raws: Vec<Raw> = Vec::new();
    let mut aside = Vec::new();
    let mut sink = Sink::Start;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim_end_matches('\r');
        if let Some(h) = header::recognise(line) {
            match h.clock.seconds() {
                Ok((secs, note)) => {
                    let rest = line.get(h.rest_at..).unwrap_or("");
                    raws.push(Raw {
                        line: n,
                        text: line,
                        date: h.date,
                        secs,
                        note,
                        rest,
                        more: Vec::new(),
                    });
                    sink = Sink::Message;
                }
                Err(why) => {
                    aside.push((n, line.to_string(), why));
                    sink = Sink::Aside(n);
                }
            }
            continue;
        }
        let why = match sink {
            Sink::Message => {
                if let Some(r) = raws.last_mut() {
                    r.more.push(line);
                }
                continue;
            }
            Sink::Aside(h) => format!("follows line {h}, whose header cannot be read"),
            Sink::Start => "before the first message".to_string(),
        };
        if !markers::trim(line).is_empty() {
            aside.push((n, line.to_string(), why));
        }
    }
    (raws, aside)
}

/// A header whose date cannot be, and the lines that follow it.
fn set_aside(r: &Raw, why: String, aside: &mut Vec<Aside>) {
    aside.push((r.line, r.text.to_string(), why));
    for (k, l) in r.more.iter().enumerate() {
        if !markers::trim(l).is_empty() {
            let why = format!("follows line {}, whose header cannot be read", r.line);
            aside.push((r.line + 1 + k, l.to_string(), why));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Dmy,
    Mdy,
    Ymd,
}

impl Order {
    fn label(self) -> &'static str {
        match self {
            Order::Dmy => "day-first",
            Order::Mdy => "month-first",
            Order::Ymd => "year-first",
        }
    }
}

/// Which part is the year, the month and the day.
fn positions(order: Order, d: &DateParts) -> (usize, usize, usize) {
    match (d.year_at(), order) {
        (YearAt::First, _) | (YearAt::Unknown, Order::Ymd) => (0, 1, 2),
        (_, Order::Mdy) => (2, 0, 1),
        _ => (2, 1, 0),
    }
}

/// The first part that cannot be what `order` makes it, if any.
fn misfit(order: Order, d: &DateParts) -> Option<usize> {
    let (yi, mi, di) = positions(order, d);
    if matches!(d.era, Some((i, _)) if i != yi) || d.len[yi] == 3 {
        return Some(yi);
    }
    if d.len[mi] > 2 || !(1..=12).contains(&d.n[mi]) {
        return Some(mi);
    }
    (d.len[di] > 2 || !(1..=31).contains(&d.n[di])).then_some(di)
}

/// A sortable reading of a date and time under `order`, for its direction.
fn sort_key(order: Order, r: &Raw) -> i64 {
    let d = &r.date;
    let (yi, mi, di) = positions(order, d);
    let n = |i: usize| i64::from(d.n[i]);
    let y = match d.era {
        Some((_, e)) => e.offset() + n(yi),
        None if d.len[yi] <= 2 => 2000 + n(yi),
        None => n(yi),
    };
    (((y * 13 + n(mi)) * 32 + n(di)) * 86_400) + r.secs
}

struct Score {
    order: Order,
    misfits: usize,
    /// (line, value, place) of the first misfit.
    first_misfit: Option<(usize, u32, usize)>,
    backwards: usize,
}

fn score(raws: &[Raw], order: Order) -> Score {
    let mut s = Score {
        order,
        misfits: 0,
        first_misfit: None,
        backwards: 0,
    };
    let mut prev = None;
    for r in raws {
        if let Some(i) = misfit(order, &r.date) {
            s.misfits += 1;
            s.first_misfit.get_or_insert((r.line, r.date.n[i], i));
            continue;
        }
        let k = sort_key(order, r);
        if prev.is_some_and(|p| k < p) {
            s.backwards += 1;
        }
        prev = Some(k);
    }
    s
}

/// The file's order, its label and the reason.
fn decide_order(raws: &[Raw]) -> (Order, String, String) {
    let first = raws
        .iter()
        .filter(|r| r.date.year_at() == YearAt::First)
        .count();
    let others = raws.len() - first;
    if others == 0 {
        return (
            Order::Ymd,
            "year-first".into(),
            "the year is written first".into(),
        );
    }
    let last = raws.iter().any(|r| r.date.year_at() == YearAt::Last);
    let mut orders = vec![Order::Dmy, Order::Mdy];
    if !last {
        orders.push(Order::Ymd);
    }
    let scores: Vec<Score> = orders.iter().map(|&o| score(raws, o)).collect();
    let rank = |s: &Score| (s.misfits, s.backwards, s.order as u8);
    let Some(best) = scores.iter().min_by_key(|s| rank(s)) else {
        return (Order::Dmy, "day-first".into(), "no dates".into());
    };
    let reason = order_reason(best, &scores);
    if first >= others {
        let why = format!(
            "the year is written first on {first} of {} lines; the others read {}: {reason}",
            raws.len(),
            best.order.label()
        );
        return (best.order, "year-first".into(), why);
    }
    (best.order, best.order.label().into(), reason)
}

fn order_reason(best: &Score, all: &[Score]) -> String {
    const PLACE: [&str; 3] = ["first", "second", "third"];
    let label = best.order.label();
    if best.misfits > 0 {
        let (line, v, i) = best.first_misfit.unwrap_or_default();
        return format!(
            "mixed: {label} fits the most dates, but {} cannot be read so (the first, \
             line {line}, has {v} in the {} place); check the file",
            best.misfits,
            PLACE[i.min(2)]
        );
    }
    let fitting: Vec<&Score> = all
        .iter()
        .filter(|s| s.order != best.order && s.misfits == 0)
        .collect();
    if fitting.is_empty() {
        let runner = all
            .iter()
            .filter(|s| s.order != best.order)
            .min_by_key(|s| s.misfits);
        return match runner.and_then(|r| r.first_misfit) {
            Some((line, v, i)) => format!("line {line} has {v} in the {} place", PLACE[i.min(2)]),
            None => format!("every date reads {label}"),
        };
    }
    let names: Vec<&str> = fitting.iter().map(|s| s.order.label()).collect();
    let least = fitting.iter().map(|s| s.backwards).min().unwrap_or(0);
    if least == best.backwards {
        return format!(
            "every date fits {label} and {} and they run forward alike: {label} kept, \
             as ties go to day first (most locales), then month first",
            names.join(" and ")
        );
    }
    format!(
        "every date fits {label} and {}; {label} runs forward in time \
         ({} steps back against {least})",
        names.join(" and "),
        best.backwards
    )
}

/// How years are read.
struct Calendar {
    name: &'static str,
    reason: String,
    /// Two-digit years are Buddhist-era years.
    buddhist: bool,
}

fn decide_calendar(raws: &[Raw], order: Order) -> Calendar {
    let mut era = None;
    let mut be: Option<String> = None;
    let mut gregorian4 = false;
    let (mut lo, mut hi, mut short) = (u32::MAX, 0, 0usize);
    for r in raws {
        let d = &r.date;
        let (yi, _, _) = positions(order, d);
        let n = d.n[yi];
        if let Some((i, e)) = d.era {
            if i == yi && era.is_none() {
                era = Some(format!(
                    "line {} has the Japanese era {} {n} (= {})",
                    r.line,
                    e.name(),
                    e.offset() + i64::from(n)
                ));
            }
        } else if d.be {
            be.get_or_insert_with(|| format!("line {} has the Buddhist-era marker", r.line));
        } else if d.len[yi] == 4 && n > 2400 {
            be.get_or_insert_with(|| format!("line {} has the year {n}, above 2400", r.line));
        } else if d.len[yi] == 4 {
            gregorian4 = true;
        } else if d.len[yi] <= 2 {
            (lo, hi, short) = (lo.min(n), hi.max(n), short + 1);
        }
    }
    let short_be =
        be.is_none() && era.is_none() && !gregorian4 && short > 0 && lo >= 52 && hi <= 78;
    let buddhist = be.is_some() || short_be;
    let be_reason = be
        .map(|b| format!("{b}: Thai Buddhist era, year − 543"))
        .or_else(|| {
            short_be.then(|| {
                format!(
                    "every two-digit year lies between {lo} and {hi} (as Gregorian years, \
                 20{lo}–20{hi}, still to come): Thai Buddhist era 25{lo}–25{hi}, year − 543"
                )
            })
        });
    let (name, reason) = match (era, be_reason) {
        (Some(e), Some(b)) => ("mixed", format!("{e}; {b}")),
        (Some(e), None) => ("japanese", e),
        (None, Some(b)) => ("buddhist", b),
        (None, None) => (
            "gregorian",
            "every year reads as a Gregorian year (two digits: 20yy)".to_string(),
        ),
    };
    Calendar {
        name,
        reason,
        buddhist,
    }
}

/// The Gregorian date of `d`, or why there is none.
fn resolve(order: Order, cal: &Calendar, d: &DateParts) -> Result<(i64, i64, i64), String> {
    let (yi, mi, di) = positions(order, d);
    if matches!(d.era, Some((i, _)) if i != yi) {
        return Err("impossible date: a Japanese era on the day or month".into());
    }
    let y = year(d, yi, cal)?;
    let (m, day) = (i64::from(d.n[mi]), i64::from(d.n[di]));
    if d.len[mi] > 2 || !(1..=12).contains(&m) {
        return Err(format!(
            "impossible date: no month {m} (dates are read {})",
            order.label()
        ));
    }
    if d.len[di] > 2 || day < 1 || day > days_in_month(y, m) {
        return Err(format!(
            "impossible date: no day {day} in {y}-{m:02} (dates are read {})",
            order.label()
        ));
    }
    Ok((y, m, day))
}

fn year(d: &DateParts, yi: usize, cal: &Calendar) -> Result<i64, String> {
    let n = i64::from(d.n[yi]);
    let y = match (d.era, d.len[yi]) {
        (Some((_, e)), _) if n >= 1 => e.offset() + n,
        (Some((_, e)), _) => return Err(format!("impossible year: {} {n}", e.name())),
        (None, 1 | 2) if cal.buddhist || d.be => 2500 + n - 543,
        (None, 1 | 2) => 2000 + n,
        (None, 4) if d.be || n > 2400 => n - 543,
        (None, 4) if (1300..1500).contains(&n) => {
            return Err(format!(
                "year {n} is a Hijri or Solar Hijri (Persian) year, which is not converted"
            ))
        }
        _ => n,
    };
    if (1900..=2400).contains(&y) {
        Ok(y)
    } else {
        Err(format!("impossible year {n}"))
    }
}

/// `Name: text`, `Name:` or a system line, as split before.
fn split_author(rest: &str) -> (Option<String>, String) {
    match rest.split_once(": ") {
        Some((a, m)) if !a.is_empty() && a.chars().count() <= 100 => {
            (Some(strip(a).to_string()), m.to_string())
        }
        _ => match rest.strip_suffix(':') {
            Some(a) if !a.contains(' ') || a.chars().count() <= 40 => {
                (Some(a.to_string()), String::new())
            }
            _ => (None, rest.to_string()),
        },
    }
}

fn join(mut body: String, more: &[&str]) -> String {
    for m in more {
        body.push('\n');
        body.push_str(m);
    }
    strip(body.trim()).to_string()
}

fn has_quote(s: &str) -> bool {
    s.contains(['"', '“', '”', '„', '«', '»', '「'])
}

/// An invisible mark in the text part of a header line (iOS writes one
/// before the text it writes itself).
fn marked(raw_rest: &str, authored: bool) -> bool {
    let tail = if authored {
        raw_rest.split_once(':').map_or(raw_rest, |x| x.1)
    } else {
        raw_rest
    };
    tail.contains(['\u{200e}', '\u{200f}', '\u{061c}'])
}

fn build(r: &Raw, ts: i64) -> ChatMessage {
    let rest: String = strip(r.rest)
        .chars()
        .filter(|&c| !is_invisible(c))
        .collect();
    let (mut author, mut body) = split_author(&rest);
    // "X changed the subject to "A: B"" is not split at the colon in a quote.
    if author.as_deref().is_some_and(has_quote) && markers::is_notice(&markers::fold(&rest)) {
        (author, body) = (None, rest.clone());
    }
    let mut m = ChatMessage {
        line: r.line,
        wallclock_us: ts,
        system: author.is_none(),
        author,
        text: join(body, &r.more),
        attachment: None,
        media_omitted: false,
        deleted: false,
        edited: false,
        system_name: None,
        caption: None,
        notes: r.note.iter().cloned().collect(),
    };
    if m.system {
        return m;
    }
    let marked = marked(r.rest, true);
    let folded = markers::fold(&m.text);
    if markers::is_notice(&folded) || (marked && markers::is_group_event(&folded)) {
        m.system = true;
        m.system_name = m.author.take();
        return m;
    }
    read_markers(&mut m, folded, marked);
    m
}

/// Attachment, caption, media left out, deleted, edited.
fn read_markers(m: &mut ChatMessage, mut folded: String, marked: bool) {
    if let Some(t) = markers::strip_edited(&m.text) {
        m.text = t;
        m.edited = true;
        folded = markers::fold(&m.text);
    }
    m.deleted = markers::is_deleted(&folded);
    m.media_omitted = markers::is_media_omitted(&folded, marked);
    let (first, caption) = match m.text.split_once('\n') {
        Some((f, c)) => (f, Some(c)),
        None => (m.text.as_str(), None),
    };
    m.attachment = markers::attachment(first);
    if m.attachment.is_some() || m.media_omitted {
        m.caption = caption
            .map(|c| markers::trim(c).to_string())
            .filter(|c| !c.is_empty());
    }
}

/// Names that system notices are written under (the chat's name) and that
/// write nothing but group events are no one's: their lines are system events.
fn chat_name_events(messages: &mut [ChatMessage]) {
    let names: HashSet<String> = messages
        .iter()
        .filter_map(|m| m.system_name.clone())
        .collect();
    if names.is_empty() {
        return;
    }
    let mut people: HashSet<String> = HashSet::new();
    for m in messages.iter() {
        if let Some(a) = m
            .author
            .as_ref()
            .filter(|a| names.contains(*a) && !people.contains(*a))
        {
            if !markers::is_group_event(&markers::fold(&m.text)) {
                people.insert(a.clone());
            }
        }
    }
    for m in messages.iter_mut() {
        if m.author
            .as_ref()
            .is_some_and(|a| names.contains(a) && !people.contains(a))
        {
            m.system = true;
            m.system_name = m.author.take();
            (m.attachment, m.caption, m.media_omitted, m.deleted) = (None, None, false, false);
        }
    }
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

    fn at(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
        (days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * 1_000_000
    }

    fn one(text: &str) -> ChatMessage {
        let p = parse(text);
        assert_eq!(p.messages.len(), 1, "{p:#?}");
        assert!(p.unparsed.is_empty(), "{p:#?}");
        p.messages[0].clone()
    }

    #[test]
    fn twelve_hour_headers_with_24_hour_hours() {
        let m = one("[3/27/22, 23:59 PM] A: x\n");
        assert_eq!(
            (m.wallclock_us, m.notes.len()),
            (at(2022, 3, 27, 23, 59, 0), 0)
        );
        let m = one("27/03/2022, 23:59 PM - A: x\n");
        assert_eq!(m.wallclock_us, at(2022, 3, 27, 23, 59, 0));
        let m = one("[3/27/22, 13:05:09 AM] A: y\n");
        assert_eq!(m.wallclock_us, at(2022, 3, 27, 13, 5, 9));
        assert!(m.notes[0].contains("AM"), "{:?}", m.notes);
        let m = one("27/03/2022, 12:30 AM - A: x\n");
        assert_eq!(m.wallclock_us, at(2022, 3, 27, 0, 30, 0));
    }

    #[test]
    fn impossible_headers_are_set_aside_never_merged() {
        let text = "[3/27/22, 10:00:00] A: first\n[3/27/22, 25:61:00] B: bad time\nits second line\n\n[3/13/22, 10:00:00] C: bad date\n[13/13/22, 10:00:00] D: no month\n[3/28/22, 10:00:00] A: last\n";
        let p = parse(text);
        assert_eq!(p.messages.len(), 3, "{p:#?}");
        assert_eq!(p.messages[0].text, "first");
        let lines: Vec<usize> = p.unparsed.iter().map(|u| u.0).collect();
        assert_eq!(lines, vec![2, 3, 6]);
        assert_eq!(p.unparsed[0].1, "[3/27/22, 25:61:00] B: bad time");
        assert!(p.unparsed_reasons[0].1.contains("impossible time"));
        assert!(p.unparsed_reasons[1].1.contains("line 2"));
        assert!(
            p.unparsed_reasons[2].1.contains("month 13"),
            "{:?}",
            p.unparsed_reasons
        );
        assert_eq!(p.unparsed.len(), p.unparsed_reasons.len());
        // The date is judged once the file's order is known; its lines go with it.
        let p =
            parse("31/12/21, 10:00 - a: x\n31/02/22, 10:00 - b: y\nmore\n01/03/22, 10:00 - a: z\n");
        assert_eq!(p.messages.len(), 2);
        assert_eq!(
            p.unparsed.iter().map(|u| u.0).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert!(
            p.unparsed_reasons[0].1.contains("no day 31"),
            "{:?}",
            p.unparsed_reasons
        );
        // A date and time with nothing after them is text.
        let p = parse("23/06/2018, 01:55 p.m. - Loris: one\ntwo\n2016-04-29 10:30:00\n");
        assert_eq!(p.messages[0].text, "one\ntwo\n2016-04-29 10:30:00");
    }

    #[test]
    fn buddhist_years() {
        let p = parse("27/3/2565, 21:41 - A: x\n28/3/2565, 09:00 - A: y\n");
        assert_eq!(p.messages[0].wallclock_us, at(2022, 3, 27, 21, 41, 0));
        assert_eq!(p.calendar, "buddhist");
        assert!(p.calendar_reason.contains("2565"), "{}", p.calendar_reason);
        let p = parse("[27/3/65 21:41:35] A: x\n");
        assert_eq!(
            (p.messages[0].wallclock_us, p.calendar.as_str()),
            (at(2022, 3, 27, 21, 41, 35), "buddhist")
        );
        let p = parse("27/3/2565 BE, 10:00 - A: x\n");
        assert_eq!(p.messages[0].wallclock_us, at(2022, 3, 27, 10, 0, 0));
        let p = parse("[27/3/22 21:41:35] A: x\n");
        assert_eq!(p.calendar, "gregorian");
        // A Hijri year is not guessed at.
        let p = parse("27/8/1443, 10:00 - A: x\n");
        assert!(p.messages.is_empty() && p.unparsed_reasons[0].1.contains("Hijri"));
    }

    #[test]
    fn japanese_eras() {
        let m = one("[R4/03/27 21:41:35] A: x\n");
        assert_eq!(m.wallclock_us, at(2022, 3, 27, 21, 41, 35));
        for (l, y, mo, d) in [
            ("[H31/04/30 10:00] A: x", 2019, 4, 30),
            ("[S64/01/07 10:00] A: x", 1989, 1, 7),
            ("[H1/01/08 10:00] A: x", 1989, 1, 8),
        ] {
            assert_eq!(one(l).wallclock_us, at(y, mo, d, 10, 0, 0), "{l}");
        }
        let p = parse("令和元年5月1日 10:00 - A: x\n平成31年4月30日(火) 9:00 - B: y\n");
        assert_eq!(p.messages[0].wallclock_us, at(2019, 5, 1, 10, 0, 0));
        assert_eq!(p.messages[1].wallclock_us, at(2019, 4, 30, 9, 0, 0));
        assert_eq!(
            (p.calendar.as_str(), p.date_order.as_str()),
            ("japanese", "year-first")
        );
        let m = one("2022年3月27日 午後9:41 - A: x\n");
        assert_eq!(m.wallclock_us, at(2022, 3, 27, 21, 41, 0));
    }

    #[test]
    fn arabic_and_persian_headers() {
        let m = one("\u{662}\u{667}\u{200f}/\u{663}\u{200f}/\u{662}\u{660}\u{662}\u{662}\u{60c} \u{661}\u{661}:\u{665}\u{669} \u{645} - \u{623}\u{62d}\u{645}\u{62f}: \u{645}\u{631}\u{62d}\u{628}\u{627}\n");
        assert_eq!(m.wallclock_us, at(2022, 3, 27, 23, 59, 0));
        assert_eq!(m.author.as_deref(), Some("\u{623}\u{62d}\u{645}\u{62f}"));
        let m = one("\u{61c}[\u{662}\u{667}/\u{663}/\u{662}\u{662}\u{60c} \u{669}:\u{660}\u{665}:\u{660}\u{660} \u{635}] \u{639}\u{644}\u{64a}: \u{633}\u{644}\u{627}\u{645}\n");
        assert_eq!(m.wallclock_us, at(2022, 3, 27, 9, 5, 0));
        let m = one("\u{6f2}\u{6f7}/\u{6f3}/\u{6f2}\u{6f2}\u{60c} \u{6f1}\u{6f0}:\u{6f0}\u{6f5} \u{628}.\u{638}. - A: x\n");
        assert_eq!(m.wallclock_us, at(2022, 3, 27, 22, 5, 0));
    }

    #[test]
    fn day_periods_of_many_locales() {
        for (l, h) in [
            ("27.03.22, 9:41 nachm. - A: x", 21),
            ("27.03.22, 9:41 vorm. - A: x", 9),
            ("[2022/03/27 午後9:41:00] A: x", 21),
            ("2022. 3. 27. 오후 9:41 - A: x", 21),
            ("2022. 3. 27. 오전 9:41 - A: x", 9),
            ("2022/3/27 下午9:41 - A: x", 21),
            ("2022/3/27 上午9:41 - A: x", 9),
            ("27/3/22, 9:41 a. m. - A: x", 9),
            ("27/3/22, 9:41\u{202f}PM - A: x", 21),
            ("[27/3/22, 9:41:00 CH] A: x", 21),
            ("27.3.2022 klo 21.41 - A: x", 21),
        ] {
            assert_eq!(one(l).wallclock_us, at(2022, 3, 27, h, 41, 0), "{l}");
        }
    }

    #[test]
    fn time_first_headers() {
        let p = parse("[21:41:35, 3/27/22] Name: text\n[21:42, 3/27/22] Name: more\n");
        assert_eq!(p.messages.len(), 2);
        assert_eq!(p.messages[0].wallclock_us, at(2022, 3, 27, 21, 41, 35));
        assert_eq!(p.messages[1].author.as_deref(), Some("Name"));
        assert_eq!(p.messages[1].text, "more");
    }

    #[test]
    fn markers_in_messages() {
        let p = parse("27/03/2022, 10:00 - A: Se eliminó este mensaje.\n27/03/2022, 10:01 - A: <Multimedia omitido>\n27/03/2022, 10:02 - A: Hallo \u{200e}<Diese Nachricht wurde bearbeitet.>\n27/03/2022, 10:03 - A: \u{200e}Bericht.pdf (Datei angehängt)\n[27/03/2022, 10:04:00] A: \u{200e}<angehängt: 00000001-PHOTO-2022-03-27-10-04-00.jpg>\n27/03/2022, 10:05 - A: Multi\nline <This message was edited>\n");
        let m = &p.messages;
        assert!(m[0].deleted && m[1].media_omitted);
        assert_eq!((m[2].text.as_str(), m[2].edited), ("Hallo", true));
        assert_eq!(m[3].attachment.as_deref(), Some("Bericht.pdf"));
        assert_eq!(
            m[4].attachment.as_deref(),
            Some("00000001-PHOTO-2022-03-27-10-04-00.jpg")
        );
        assert_eq!((m[5].text.as_str(), m[5].edited), ("Multi\nline", true));
        assert!(!m[5].deleted && !m[5].media_omitted && m[5].attachment.is_none());
    }

    #[test]
    fn attachment_with_caption() {
        let m = one("27/03/2022, 10:00 - A: \u{200e}Report Q1.pdf (file attached)\nQuarterly numbers\nsee page 3\n");
        assert_eq!(m.attachment.as_deref(), Some("Report Q1.pdf"));
        assert_eq!(m.caption.as_deref(), Some("Quarterly numbers\nsee page 3"));
        assert_eq!(
            m.text,
            "Report Q1.pdf (file attached)\nQuarterly numbers\nsee page 3"
        );
        let m = one("27/03/2022, 10:00 - A: IMG-20220327-WA0001.jpg (file attached)\n");
        assert_eq!(
            (m.attachment.as_deref(), m.caption.as_deref()),
            (Some("IMG-20220327-WA0001.jpg"), None)
        );
    }

    #[test]
    fn system_lines_under_the_chat_name() {
        let text = "[1/29/18, 12:24:03 PM] Traders: \u{200e}Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them.\n[1/29/18, 12:24:04 PM] Traders: \u{200e}Alice created group \u{201c}Traders\u{201d}\n[1/29/18, 12:24:05 PM] Traders: Alice added Bob\n[1/29/18, 12:24:06 PM] Traders: \u{200e}Your security code with Bob changed. Tap to learn more.\n[1/29/18, 12:25:00 PM] Alice: I added the report\n[1/29/18, 12:26:00 PM] Traders: Bob left\n[1/29/18, 12:27:00 PM] Traders: \u{200e}Alice changed the subject to \u{201c}Desk: rates\u{201d}\n";
        let p = parse(text);
        assert_eq!(p.messages.len(), 7, "{p:#?}");
        for (i, m) in p.messages.iter().enumerate() {
            let by_alice = i == 4;
            assert_eq!(m.system, !by_alice, "{m:?}");
            assert_eq!(m.author.as_deref(), by_alice.then_some("Alice"), "{m:?}");
            if !by_alice {
                assert_eq!(m.system_name.as_deref(), Some("Traders"), "{m:?}");
            }
        }
        assert_eq!(p.messages[2].text, "Alice added Bob");
        // In a chat with one person the name is a person's: what they type stays theirs.
        let p = parse("[1/29/18, 12:24:03 PM] Bob: \u{200e}Messages and calls are end-to-end encrypted.\n[1/29/18, 12:25:00 PM] Bob: I added the report\n[1/29/18, 12:26:00 PM] Bob: hello\n");
        assert!(p.messages[0].system && !p.messages[1].system);
        assert_eq!(p.messages[1].author.as_deref(), Some("Bob"));
        // Android system lines have no name; a colon inside quotes does not make one.
        let p = parse("27/03/2022, 10:00 - Alice changed the subject from \u{201c}A: B\u{201d} to \u{201c}C\u{201d}\n27/03/2022, 10:01 - Bob left\n27/03/2022, 10:02 - Du hast Mallory hinzugefügt.\n");
        assert!(
            p.messages
                .iter()
                .all(|m| m.system && m.author.is_none() && m.system_name.is_none()),
            "{p:#?}"
        );
        assert!(p.messages[0].text.starts_with("Alice changed the subject"));
        // Translations: German and French iOS.
        let p = parse("[29.01.18, 12:24:03] Gruppe: \u{200e}Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt.\n[29.01.18, 12:24:04] Gruppe: \u{200e}Alice hat Bob hinzugefügt.\n[29.01.18, 12:24:05] Dupont: \u{200e}Les messages et les appels sont chiffrés de bout en bout.\n");
        assert!(p.messages.iter().all(|m| m.system), "{p:#?}");
    }

    #[test]
    fn two_digit_years_first_when_the_file_runs_so() {
        let p = parse("22/03/27, 10:00 - a: x\n22/03/28, 10:00 - a: y\n22/04/01, 10:00 - a: z\n22/04/05, 10:00 - a: w\n");
        assert_eq!(p.date_order, "year-first", "{}", p.date_order_reason);
        assert_eq!(p.messages[2].wallclock_us, at(2022, 4, 1, 10, 0, 0));
        // A mixed file: the order that fits the most lines wins; the others are set aside.
        let p = parse("13/01/22, 10:00 - a: x\n14/01/22, 10:00 - a: y\n01/15/22, 10:00 - a: z\n");
        assert_eq!(p.date_order, "day-first");
        assert_eq!(p.messages.len(), 2);
        assert!(
            p.date_order_reason.starts_with("mixed"),
            "{}",
            p.date_order_reason
        );
        assert_eq!(p.unparsed[0].0, 3);
    }

    #[test]
    fn every_line_is_accounted_for() {
        let text = "junk\n[3/27/22, 10:00:00] A: x\ny\n[3/27/22, 99:00:00] B: z\nw\n[3/28/22, 10:00:00] C: v\n";
        let p = parse(text);
        assert_eq!(
            p.messages.iter().map(|m| m.line).collect::<Vec<_>>(),
            vec![2, 6]
        );
        assert_eq!(
            p.unparsed.iter().map(|u| u.0).collect::<Vec<_>>(),
            vec![1, 4, 5]
        );
        assert_eq!(p.messages[0].text, "x\ny");
    }

    #[test]
    fn a_large_export_parses() {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("[3/{}/22, {}:{:02}:00 PM] Person {}: message {i}\ncontinued \u{200e}<This message was edited>\n", 1 + i % 28, 1 + i % 12, i % 60, i % 7));
        }
        let p = parse(&text);
        assert_eq!(p.messages.len(), 20_000);
        assert!(p.unparsed.is_empty() && p.messages.iter().all(|m| m.edited));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(lines in proptest::collection::vec("[\\[\\]0-9/.,:\\- APMapm\u{200e}\u{200f}\u{61c}\u{660}-\u{669}\u{6f0}-\u{6f9}\u{60c}\u{645}\u{635}RHS令和年月日午後<>()\"“”a-z\n]{0,40}", 0..30)) {
            let text = lines.join("\n");
            let p = parse(&text);
            let n = text.lines().count();
            let mut seen = HashSet::new();
            for m in &p.messages {
                proptest::prop_assert!(m.line >= 1 && m.line <= n && seen.insert(m.line));
            }
            for (l, _) in &p.unparsed {
                proptest::prop_assert!(*l >= 1 && *l <= n && seen.insert(*l));
            }
            proptest::prop_assert_eq!(p.unparsed.len(), p.unparsed_reasons.len());
        }

        #[test]
        fn headers_of_any_numbers_never_panic(a in 0u32..10_000, b in 0u32..100, c in 0u32..10_000, h in 0u32..100, mi in 0u32..100, pm in 0u8..3) {
            let period = ["", " AM", " PM"][usize::from(pm)];
            for l in [format!("[{a}/{b}/{c}, {h}:{mi:02}{period}] A: x"), format!("{c}.{b}.{a}, {h}:{mi:02}{period} - A: x"), format!("[{h}:{mi:02}{period}, {a}/{b}/{c}] A: x")] {
                let p = parse(&l);
                proptest::prop_assert_eq!(p.messages.len() + p.unparsed.len(), 1, "{}", l);
            }
        }
    }
}
