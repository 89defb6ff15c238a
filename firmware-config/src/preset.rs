//! Regulatory presets: the retention periods the rules themselves set, with
//! the citation a compliance officer would check them against.

use serde::Serialize;

/// One regulation's retention requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Preset {
    /// The name used in configuration files (`preset = "sec-17a-4"`).
    pub id: &'static str,
    pub title: &'static str,
    /// Where the requirement is written.
    pub citation: &'static str,
    /// The minimum retention in years; `None` when the rule sets no fixed period
    /// (a class using it must give its own `years` or `days`).
    pub years: Option<u32>,
    /// Years at the start of the period during which records must be easily accessible.
    pub easily_accessible_years: Option<u32>,
    /// How far a supervisor may extend the period on request.
    pub extendable_to_years: Option<u32>,
    pub note: &'static str,
    /// Words that name the regulation in a class name (`sec`, `finra`): a
    /// class named for a regulation keeps at least its period, whatever its preset.
    pub names: &'static [&'static str],
}

pub const PRESETS: &[Preset] = &[
    Preset {
        id: "sec-17a-4",
        title: "SEC Rule 17a-4 (broker-dealers)",
        citation: "17 CFR 240.17a-4(b)(4) and (f)",
        years: Some(6),
        easily_accessible_years: Some(2),
        extendable_to_years: None,
        note: "Communications relating to the business as such: six years, the first two in an easily accessible place; electronic records on non-rewriteable, non-erasable media or a system with an audit trail.",
        names: &["sec", "17a4", "sec17a4"],
    },
    Preset {
        id: "finra-4511",
        title: "FINRA Rule 4511 (general books and records)",
        citation: "FINRA Rule 4511(b)",
        years: Some(6),
        easily_accessible_years: None,
        extendable_to_years: None,
        note: "Records with no retention period specified by FINRA or SEA Rule 17a-4 are kept for six years; format follows SEA Rule 17a-4.",
        names: &["finra", "4511", "finra4511"],
    },
    Preset {
        id: "cftc-1-31",
        title: "CFTC Regulation 1.31 (regulatory records)",
        citation: "17 CFR 1.31(b)(1)",
        years: Some(5),
        easily_accessible_years: Some(2),
        extendable_to_years: None,
        note: "Five years from creation, readily accessible for the first two years.",
        names: &["cftc", "cftc131"],
    },
    Preset {
        id: "mifid-ii",
        title: "MiFID II record keeping",
        citation: "Directive 2014/65/EU Art. 16(7)",
        years: Some(5),
        easily_accessible_years: None,
        extendable_to_years: Some(7),
        note: "Recordings of telephone conversations and electronic communications relating to transactions: five years, and up to seven where the competent authority requests.",
        names: &["mifid", "mifid2", "mifidii"],
    },
    Preset {
        id: "fca",
        title: "FCA recording of communications",
        citation: "FCA Handbook COBS 11.8.10R",
        years: Some(5),
        easily_accessible_years: None,
        extendable_to_years: Some(7),
        note: "Five years from the date the record is created, and up to seven where the FCA requests.",
        names: &["fca", "cobs"],
    },
    Preset {
        id: "hipaa",
        title: "HIPAA documentation retention",
        citation: "45 CFR 164.316(b)(2)(i)",
        years: Some(6),
        easily_accessible_years: None,
        extendable_to_years: None,
        note: "Six years from creation or from the date last in effect, whichever is later; state law may require longer for medical records.",
        names: &["hipaa"],
    },
    Preset {
        id: "singapore-pdpa",
        title: "Singapore Personal Data Protection Act",
        citation: "PDPA 2012 s. 25",
        years: None,
        easily_accessible_years: None,
        extendable_to_years: None,
        note: "No fixed period: cease to retain once the purpose is no longer served and retention is not needed for legal or business purposes. The class must state its period.",
        names: &["pdpa"],
    },
    Preset {
        id: "gdpr",
        title: "GDPR storage limitation",
        citation: "Regulation (EU) 2016/679 Art. 5(1)(e), Art. 17(3)(b)",
        years: None,
        easily_accessible_years: None,
        extendable_to_years: None,
        note: "No longer than necessary for the purpose; a legal retention duty overrides erasure (Art. 17(3)(b)). The class must state its period.",
        names: &["gdpr"],
    },
    Preset {
        id: "custom",
        title: "Custom",
        citation: "the firm's own records policy",
        years: None,
        easily_accessible_years: None,
        extendable_to_years: None,
        note: "A period the firm sets; the class must state it.",
        names: &[],
    },
];

/// The preset named `id`, if there is one.
pub fn find(id: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.id == id)
}

/// The presets a class name names: its words (split at anything not a
/// letter or digit, lower-cased), and the whole name with separators
/// removed, compared with each preset's id and names. `sec-17a-4`,
/// `SEC_comms` and `finra4511` name regulations; `secure` and `general` do not.
pub fn named_in(class_name: &str) -> Vec<&'static Preset> {
    let lower = class_name.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let joined: String = words.concat();
    PRESETS
        .iter()
        .filter(|p| {
            let id: String = p.id.chars().filter(|c| c.is_alphanumeric()).collect();
            p.names.iter().any(|n| words.contains(n) || joined == *n)
                || (p.id != "custom" && joined == id)
        })
        .collect()
}

/// The shortest period, in days, a class named `class_name` with preset
/// `preset` may keep records: the longest of the preset's and of every
/// regulation its name names; `None` when none of them sets a period.
pub fn floor_days(class_name: &str, preset: &Preset) -> Option<(u32, &'static Preset)> {
    std::iter::once(find(preset.id).expect("a listed preset"))
        .chain(named_in(class_name))
        .filter_map(|p| p.years.map(|y| (years_to_days(y), p)))
        .max_by_key(|(d, _)| *d)
}

/// Days in `years` years, counting leap days generously (365.25 rounded up),
/// so a period in years is never shorter than the calendar years it names.
pub fn years_to_days(years: u32) -> u32 {
    (years * 1461).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_rules_have_their_periods() {
        assert_eq!(find("sec-17a-4").unwrap().years, Some(6));
        assert_eq!(find("sec-17a-4").unwrap().easily_accessible_years, Some(2));
        assert_eq!(find("finra-4511").unwrap().years, Some(6));
        assert_eq!(find("cftc-1-31").unwrap().years, Some(5));
        assert_eq!(find("mifid-ii").unwrap().years, Some(5));
        assert_eq!(find("mifid-ii").unwrap().extendable_to_years, Some(7));
        assert_eq!(find("fca").unwrap().years, Some(5));
        assert_eq!(find("hipaa").unwrap().years, Some(6));
        assert_eq!(find("gdpr").unwrap().years, None);
        assert!(find("singapore-pdpa").is_some());
        assert!(find("nope").is_none());
        assert!(PRESETS.iter().all(|p| !p.citation.is_empty()));
    }

    #[test]
    fn class_names_name_regulations() {
        let ids = |n: &str| named_in(n).iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids("sec-17a-4"), ["sec-17a-4"]);
        assert_eq!(ids("SEC_comms"), ["sec-17a-4"]);
        assert_eq!(ids("finra4511"), ["finra-4511"]);
        assert_eq!(ids("mifid-ii-voice"), ["mifid-ii"]);
        assert_eq!(ids("hipaa records"), ["hipaa"]);
        assert!(ids("secure").is_empty());
        assert!(ids("general").is_empty());
        assert!(ids("custom").is_empty());
        let custom = find("custom").unwrap();
        assert_eq!(floor_days("sec-17a-4", custom).map(|(d, _)| d), Some(2192));
        assert_eq!(floor_days("chat", custom), None);
        assert_eq!(
            floor_days("fca-and-sec", custom).map(|(_, p)| p.id),
            Some("sec-17a-4")
        );
    }

    #[test]
    fn years_cover_leap_days() {
        assert_eq!(years_to_days(4), 1461);
        assert_eq!(years_to_days(6), 2192);
        assert!(years_to_days(1) >= 366);
    }
}
