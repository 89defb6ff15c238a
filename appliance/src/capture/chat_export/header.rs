//! One line of an export, recognised as a message header by its shape alone.
//!
//! A header is an optional `[`, a date and a time (date first, or time first
//! as some iOS locales write), an optional `]`, and a terminator: `] `,
//! ` - ` (or an en dash), `: `, or plain space before the rest of the line.
//! Invisible marks may sit anywhere in it; digits may be in any decimal
//! script (Eastern Arabic, Persian, Devanagari, Thai, full-width …); the
//! Arabic comma stands for a comma, any space for a space. Dates are
//! `a/b/c` with `/`, `.` or `-` (a space may follow each, a period may end
//! it), or the `年月日` / `년월일` layout; a part may carry a Japanese era
//! (`R4`, `H31`, `令和4`, `令和元`) and the date a Buddhist-era marker (`BE`,
//! `พ.ศ.`). Times are `h:mm[:ss]` (or with dots) with a day period before or
//! after (`PM`, `p. m.`, `午後`, `오후`, `下午`, `م` …).
//!
//! Nothing here judges the numbers: that is the caller's job, so that a line
//! shaped like a header but holding an impossible date or time can be set
//! aside instead of running into the message before it.

use super::markers::{DATE_TIME_WORDS, DAY_PERIODS};
use super::parse::is_invisible;

/// A Japanese era, as written before a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Era {
    Reiwa,
    Heisei,
    Showa,
    Taisho,
}

impl Era {
    /// The Gregorian year before the era's first year.
    pub(super) fn offset(self) -> i64 {
        match self {
            Era::Reiwa => 2018,
            Era::Heisei => 1988,
            Era::Showa => 1925,
            Era::Taisho => 1911,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Era::Reiwa => "Reiwa",
            Era::Heisei => "Heisei",
            Era::Showa => "Showa",
            Era::Taisho => "Taisho",
        }
    }
}

/// Where a date's year is, as far as the line alone tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum YearAt {
    First,
    Last,
    /// Every part has one or two digits: the file decides.
    Unknown,
}

/// The three numbers of a date as written, before the file's order is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DateParts {
    pub n: [u32; 3],
    /// How many digits each part has.
    pub len: [u8; 3],
    /// A Japanese era on a part: (its index, the era).
    pub era: Option<(usize, Era)>,
    /// A Buddhist-era marker beside the date.
    pub be: bool,
    /// Written `年月日`: the year is first whatever its length.
    pub kanji: bool,
}

impl DateParts {
    pub(super) fn year_at(&self) -> YearAt {
        if self.kanji || matches!(self.era, Some((0, _))) || self.len[0] >= 3 {
            YearAt::First
        } else if matches!(self.era, Some((2, _))) || self.len[2] >= 3 {
            YearAt::Last
        } else {
            YearAt::Unknown
        }
    }
}

/// A time as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Clock {
    pub h: u32,
    pub m: u32,
    pub s: u32,
    /// A day period: `Some(true)` for PM.
    pub pm: Option<bool>,
}

impl Clock {
    /// Seconds since midnight, and a note when the hour and its day period
    /// disagree; or why the time cannot be.
    pub(super) fn seconds(&self) -> Result<(i64, Option<String>), String> {
        let Clock { h, m, s, pm } = *self;
        if m > 59 || s > 59 || h > 23 {
            return Err(format!("impossible time {h}:{m:02}:{s:02}"));
        }
        let (hour, note) = match pm {
            None => (h, None),
            Some(pm) if h < 12 => (h + if pm { 12 } else { 0 }, None),
            Some(pm) if h == 12 => (if pm { 12 } else { 0 }, None),
            Some(true) => (h, None),
            Some(false) => (
                h,
                Some(format!(
                    "hour {h} is written with AM: read as the 24-hour {h}:{m:02}"
                )),
            ),
        };
        Ok((i64::from(hour * 3600 + m * 60 + s), note))
    }
}

/// A line recognised as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub date: DateParts,
    pub clock: Clock,
    /// Byte offset in the line where the rest (author and text) begins.
    pub rest_at: usize,
}

/// The zero of each decimal digit block WhatsApp's locales write in.
const DIGIT_ZEROS: &[u32] = &[
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xE50, 0xED0, 0xF20, 0x1040, 0x17E0, 0xFF10,
];

fn digit(c: char) -> Option<u32> {
    let u = c as u32;
    if c.is_ascii() {
        return c.to_digit(10);
    }
    DIGIT_ZEROS
        .iter()
        .find(|&&z| (z..z + 10).contains(&u))
        .map(|&z| u - z)
}

/// A character as the header grammar sees it.
fn normalize(c: char) -> char {
    if let Some(d) = digit(c) {
        return char::from_digit(d, 10).unwrap_or(c);
    }
    match c {
        '\u{060C}' | '\u{FF0C}' => ',',
        '\u{FF1A}' => ':',
        '\u{FF3B}' => '[',
        '\u{FF3D}' => ']',
        '\u{2013}' => '-',
        c if c.is_whitespace() => ' ',
        c => c,
    }
}

fn same(a: char, b: char) -> bool {
    if a == b {
        return true;
    }
    match (a.is_ascii(), b.is_ascii()) {
        (true, true) => a.eq_ignore_ascii_case(&b),
        (false, false) => a.to_lowercase().eq(b.to_lowercase()),
        _ => false,
    }
}

/// Whether `w` may start at the cursor: a cheap test before [`Scan::word`].
fn may_start(next: Option<char>, w: &str) -> bool {
    match (next, w.chars().next()) {
        (Some(c), Some(f)) => same(c, normalize(f)),
        _ => false,
    }
}

/// A cursor over a line that skips invisible marks and normalizes what it reads.
#[derive(Debug, Clone, Copy)]
struct Scan<'a> {
    s: &'a str,
    i: usize,
}

impl Scan<'_> {
    fn next(&self) -> Option<(char, usize)> {
        let tail = self.s.get(self.i..)?;
        tail.char_indices()
            .find(|&(_, c)| !is_invisible(c))
            .map(|(o, c)| (normalize(c), self.i + o + c.len_utf8()))
    }

    fn peek(&self) -> Option<char> {
        self.next().map(|x| x.0)
    }

    fn bump(&mut self) -> Option<char> {
        let (c, j) = self.next()?;
        self.i = j;
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let ok = self.peek() == Some(c);
        if ok {
            self.bump();
        }
        ok
    }

    fn eat_any(&mut self, cs: &[char]) -> bool {
        let ok = self.peek().is_some_and(|c| cs.contains(&c));
        if ok {
            self.bump();
        }
        ok
    }

    fn spaces(&mut self) -> usize {
        let mut n = 0;
        while self.eat(' ') {
            n += 1;
        }
        n
    }

    /// Up to `max` digits; `None` if there are none or more.
    fn number(&mut self, max: u8) -> Option<(u32, u8)> {
        let (mut v, mut len) = (0u32, 0u8);
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            if len == max {
                return None;
            }
            v = v * 10 + d;
            len += 1;
            self.bump();
        }
        (len > 0).then_some((v, len))
    }

    /// `w`, case-insensitively; the cursor moves only on a match.
    fn word(&mut self, w: &str) -> bool {
        let save = *self;
        for e in w.chars() {
            match self.bump() {
                Some(c) if same(c, normalize(e)) => {}
                _ => {
                    *self = save;
                    return false;
                }
            }
        }
        true
    }

    fn at_word_end(&self) -> bool {
        !self.peek().is_some_and(char::is_alphabetic)
    }
}

/// Recognise `line` as a header by its shape, or `None`.
pub(super) fn recognise(line: &str) -> Option<Head> {
    let mut s = Scan { s: line, i: 0 };
    let first = s.peek()?;
    if !(first == '[' || first.is_alphanumeric()) {
        return None;
    }
    s.eat('[');
    let mut a = s;
    if let Some((date, clock)) = date_first(&mut a) {
        if let Some(rest_at) = terminator(a) {
            return Some(Head {
                date,
                clock,
                rest_at,
            });
        }
    }
    let mut b = s;
    let (date, clock) = time_first(&mut b)?;
    let rest_at = terminator(b)?;
    Some(Head {
        date,
        clock,
        rest_at,
    })
}

fn date_first(s: &mut Scan) -> Option<(DateParts, Clock)> {
    let date = date(s)?;
    let comma = s.eat(',');
    let n = s.spaces();
    let word = connector(s);
    if !(comma || n > 0 || word) {
        return None;
    }
    Some((date, clock(s)?))
}

fn time_first(s: &mut Scan) -> Option<(DateParts, Clock)> {
    let clock = clock(s)?;
    let comma = s.eat(',');
    let n = s.spaces();
    if !comma && n == 0 {
        return None;
    }
    Some((date(s)?, clock))
}

/// A word some locales put between the date and the time (`klo`, `kl.`, `um`).
fn connector(s: &mut Scan) -> bool {
    let next = s.peek();
    if next.is_none_or(|c| c.is_ascii_digit()) {
        return false;
    }
    for (_, words) in DATE_TIME_WORDS {
        for w in words.iter().filter(|w| may_start(next, w)) {
            let save = *s;
            if s.word(w) && (w.ends_with('.') || s.spaces() > 0) {
                s.spaces();
                return true;
            }
            *s = save;
        }
    }
    false
}

fn date(s: &mut Scan) -> Option<DateParts> {
    let mut k = *s;
    if let Some(d) = kanji_date(&mut k) {
        *s = k;
        return Some(d);
    }
    numeric_date(s)
}

struct Part {
    n: u32,
    len: u8,
    era: Option<Era>,
    be: bool,
}

/// One number of a date, with an era or Buddhist-era marker before it.
fn part(s: &mut Scan) -> Option<Part> {
    if s.peek().is_some_and(|c| c.is_ascii_digit()) {
        let (n, len) = s.number(4)?;
        return Some(Part {
            n,
            len,
            era: None,
            be: false,
        });
    }
    let be = s.word("พ.ศ.");
    if be {
        s.spaces();
    }
    let era = era(s);
    if era.is_some() && s.word("元") {
        return Some(Part {
            n: 1,
            len: 1,
            era,
            be,
        });
    }
    let (n, len) = s.number(4)?;
    Some(Part { n, len, era, be })
}

fn era(s: &mut Scan) -> Option<Era> {
    for (w, e) in [
        ("令和", Era::Reiwa),
        ("平成", Era::Heisei),
        ("昭和", Era::Showa),
        ("大正", Era::Taisho),
    ] {
        if s.word(w) {
            return Some(e);
        }
    }
    let e = match s.peek()? {
        'R' => Era::Reiwa,
        'H' => Era::Heisei,
        'S' => Era::Showa,
        'T' => Era::Taisho,
        _ => return None,
    };
    let mut t = *s;
    t.bump();
    t.peek()?.is_ascii_digit().then(|| {
        *s = t;
        e
    })
}

fn assemble(parts: [Part; 3], be: bool, kanji: bool) -> Option<DateParts> {
    let mut era = None;
    for (i, p) in parts.iter().enumerate() {
        if let Some(e) = p.era {
            if era.is_some() {
                return None;
            }
            era = Some((i, e));
        }
    }
    Some(DateParts {
        n: [parts[0].n, parts[1].n, parts[2].n],
        len: [parts[0].len, parts[1].len, parts[2].len],
        era,
        be: be || parts.iter().any(|p| p.be),
        kanji,
    })
}

fn numeric_date(s: &mut Scan) -> Option<DateParts> {
    let sep = |s: &mut Scan| -> Option<()> {
        s.eat_any(&['/', '.', '-']).then_some(())?;
        s.spaces();
        Some(())
    };
    let a = part(s)?;
    sep(s)?;
    let b = part(s)?;
    sep(s)?;
    let c = part(s)?;
    s.eat('.');
    let be = be_marker(s);
    assemble([a, b, c], be, false)
}

/// A Buddhist-era marker after a date.
fn be_marker(s: &mut Scan) -> bool {
    let mut t = *s;
    t.spaces();
    let ok = t.word("พ.ศ.") || t.word("B.E.") || (t.word("BE") && t.at_word_end());
    if ok {
        *s = t;
    }
    ok
}

fn kanji_date(s: &mut Scan) -> Option<DateParts> {
    let y = part(s)?;
    let unit = |s: &mut Scan, marks: &[char]| -> Option<()> {
        s.spaces();
        s.eat_any(marks).then_some(())?;
        s.spaces();
        Some(())
    };
    unit(s, &['年', '년'])?;
    let (m, ml) = s.number(2)?;
    unit(s, &['月', '월'])?;
    let (d, dl) = s.number(2)?;
    s.spaces();
    s.eat_any(&['日', '일']).then_some(())?;
    weekday(s);
    let p = |n, len| Part {
        n,
        len,
        era: None,
        be: false,
    };
    let be = be_marker(s);
    assemble([y, p(m, ml), p(d, dl)], be, true)
}

/// A weekday in parentheses after a `年月日` date, skipped.
fn weekday(s: &mut Scan) {
    let mut t = *s;
    t.spaces();
    if !t.eat('(') && !t.eat('（') {
        return;
    }
    for _ in 0..4 {
        if t.eat(')') || t.eat('）') {
            *s = t;
            return;
        }
        t.bump();
    }
}

fn clock(s: &mut Scan) -> Option<Clock> {
    let before = day_period(s);
    if before.is_some() {
        s.spaces();
    }
    let (h, _) = s.number(2)?;
    s.eat_any(&[':', '.']).then_some(())?;
    let (m, ml) = s.number(2)?;
    if ml != 2 {
        return None;
    }
    let mut sec = 0;
    let mut t = *s;
    if t.eat_any(&[':', '.']) {
        if let Some((v, 2)) = t.number(2) {
            sec = v;
            *s = t;
        }
    }
    let pm = before.or_else(|| {
        let mut t = *s;
        t.spaces();
        let p = ascii_period(&mut t).or_else(|| day_period(&mut t))?;
        *s = t;
        Some(p)
    });
    Some(Clock { h, m, s: sec, pm })
}

/// `AM`, `pm`, `a.m.`, `p. m.` …: `Some(true)` for PM.
fn ascii_period(s: &mut Scan) -> Option<bool> {
    let mut t = *s;
    let pm = match t.bump()? {
        'a' | 'A' => false,
        'p' | 'P' => true,
        _ => return None,
    };
    t.eat('.');
    t.eat(' ');
    if !(t.eat('m') || t.eat('M')) {
        return None;
    }
    t.eat('.');
    t.at_word_end().then(|| {
        *s = t;
        pm
    })
}

/// A localized day period. A word with no period in it must be followed by
/// the end of the header (`]`, `-`, `,` or nothing), so that a name after a
/// plain space is not taken for one.
fn day_period(s: &mut Scan) -> Option<bool> {
    let next = s.peek();
    if next.is_none_or(|c| c.is_ascii_digit()) {
        return None;
    }
    for (_, am, pm) in DAY_PERIODS {
        for (w, is_pm) in [(am, false), (pm, true)] {
            if !may_start(next, w) {
                continue;
            }
            let mut t = *s;
            if !t.word(w) || !t.at_word_end() {
                continue;
            }
            if !w.contains('.') {
                let mut u = t;
                u.spaces();
                let next = u.peek();
                let clock_follows = next.is_some_and(|c| c.is_ascii_digit());
                if !(clock_follows || matches!(next, None | Some(']' | '-' | ','))) {
                    continue;
                }
            }
            *s = t;
            return Some(is_pm);
        }
    }
    None
}

/// Where the rest begins, after an optional `]` and the terminator.
fn terminator(s: Scan) -> Option<usize> {
    let mut t = s;
    let n = t.spaces();
    if t.eat(']') {
        t.spaces();
        let mut u = t;
        if (u.eat('-') || u.eat(':')) && (u.spaces() > 0 || u.peek().is_none()) {
            t = u;
        }
        return Some(t.i);
    }
    let mut u = t;
    if u.eat('-') && (u.spaces() > 0 || u.peek().is_none()) {
        return Some(u.i);
    }
    let mut u = t;
    if n == 0 && u.eat(':') && u.spaces() > 0 {
        return Some(u.i);
    }
    (n > 0 && t.peek().is_some()).then_some(t.i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(l: &str) -> Head {
        recognise(l).unwrap_or_else(|| panic!("{l:?} is not a header"))
    }

    #[test]
    fn shapes() {
        let h = head("[3/27/22, 23:59 PM] A: x");
        assert_eq!(h.date.n, [3, 27, 22]);
        assert_eq!(h.clock.pm, Some(true));
        assert_eq!(&"[3/27/22, 23:59 PM] A: x"[h.rest_at..], "A: x");
        let h = head("[21:41:35, 3/27/22] Name: text");
        assert_eq!((h.date.n, h.clock.h, h.clock.s), ([3, 27, 22], 21, 35));
        let h = head("\u{662}\u{667}/\u{663}\u{200f}/\u{662}\u{660}\u{662}\u{662}\u{60c} \u{661}\u{661}:\u{665}\u{669} \u{645} - A: x");
        assert_eq!(h.date.n, [27, 3, 2022]);
        assert_eq!((h.clock.h, h.clock.m, h.clock.pm), (11, 59, Some(true)));
        let h = head("令和4年3月27日 21:41 - A: x");
        assert_eq!(
            (h.date.era, h.date.n, h.date.kanji),
            (Some((0, Era::Reiwa)), [4, 3, 27], true)
        );
        let h = head("[R4/03/27 21:41:35] A: x");
        assert_eq!(h.date.era, Some((0, Era::Reiwa)));
        let h = head("2022. 3. 27. 오후 9:41 - 홍길동: 안녕");
        assert_eq!((h.date.n, h.clock.pm), ([2022, 3, 27], Some(true)));
        let h = head("[2022/3/27 下午9:41:00] 张三: 你好");
        assert_eq!((h.clock.h, h.clock.pm), (9, Some(true)));
        let h = head("27.03.22, 9:41 nachm. - A: x");
        assert_eq!(h.clock.pm, Some(true));
        assert!(head("27/3/2565 BE, 10:00 - A: x").date.be);
        assert!(head("13.6.2018 klo 21.25.15 - a: m").clock.s == 15);
        assert!(head("[29.01.18 12:24:03]x").rest_at > 0);
    }

    #[test]
    fn not_headers() {
        for l in [
            "2016-04-29 10:30:00",
            "hello 3/27/22, 10:00 - A: x",
            "12:30",
            "3/27/22",
            "192.168.1.1 10:00 - x",
            " [3/27/22, 10:00] A: x",
            "",
            "[",
            "1/2/2012:30 - x",
        ] {
            assert!(recognise(l).is_none(), "{l:?}");
        }
        // A name after a plain space is not a day period.
        let h = head("13. 6. 2018. 21:25:15 Em: hi");
        assert_eq!(h.clock.pm, None);
    }

    #[test]
    fn clock_readings() {
        let c = |h, pm| Clock { h, m: 59, s: 0, pm }.seconds();
        assert_eq!(c(23, Some(true)), Ok((23 * 3600 + 59 * 60, None)));
        assert!(c(23, Some(false)).unwrap().1.is_some());
        assert_eq!(c(12, Some(false)).unwrap().0, 59 * 60);
        assert_eq!(c(0, Some(true)).unwrap().0, 12 * 3600 + 59 * 60);
        assert!(c(24, None).is_err() && c(25, Some(true)).is_err());
    }
}
