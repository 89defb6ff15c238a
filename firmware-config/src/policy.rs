//! The retention policy a configuration defines: which class a record falls
//! in and how long that class keeps it.

use crate::preset;
use crate::schema::{RetentionRule, RetentionSection};

/// A retention class resolved to its period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassPolicy {
    pub name: String,
    pub days: u32,
    pub preset: &'static str,
    pub preset_title: &'static str,
    pub citation: &'static str,
}

/// What rules match a record on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFacts<'a> {
    pub tenant: &'a str,
    pub channel: &'a str,
    pub custodian: &'a str,
    pub conversation: &'a str,
    pub message_type: &'a str,
}

#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    pub classes: Vec<ClassPolicy>,
    pub default_class: usize,
    rules: Vec<(RetentionRule, usize)>,
}

const DAY_US: i64 = 86_400_000_000;

impl RetentionPolicy {
    /// Resolve `section`; the error names the class or rule at fault.
    pub fn from_config(section: &RetentionSection) -> Result<RetentionPolicy, String> {
        let mut classes = Vec::new();
        for c in &section.classes {
            let p =
                preset::find(&c.preset).ok_or_else(|| format!("unknown preset {:?}", c.preset))?;
            let days = match (c.years, c.days) {
                (Some(y), None) => preset::years_to_days(y),
                (None, Some(d)) => d,
                (None, None) => preset::years_to_days(p.years.ok_or_else(|| {
                    format!("class {:?}: preset {:?} sets no period", c.name, p.id)
                })?),
                (Some(_), Some(_)) => {
                    return Err(format!("class {:?} gives both years and days", c.name))
                }
            };
            classes.push(ClassPolicy {
                name: c.name.clone(),
                days,
                preset: p.id,
                preset_title: p.title,
                citation: p.citation,
            });
        }
        let find = |name: &str| classes.iter().position(|c: &ClassPolicy| c.name == name);
        let default_class = find(&section.default_class)
            .ok_or_else(|| format!("default class {:?} is not defined", section.default_class))?;
        let mut rules = Vec::new();
        for r in &section.rules {
            let i =
                find(&r.class).ok_or_else(|| format!("rule names unknown class {:?}", r.class))?;
            rules.push((r.clone(), i));
        }
        Ok(RetentionPolicy {
            classes,
            default_class,
            rules,
        })
    }

    /// The class of a record: the most specific matching rule; among equally
    /// specific matches the longest period (never the shorter by accident).
    pub fn class_for(&self, f: &RecordFacts<'_>) -> &ClassPolicy {
        let matches = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let mut best: Option<(usize, u32, usize)> = None;
        for (r, i) in &self.rules {
            if matches(&r.tenant, f.tenant)
                && matches(&r.channel, f.channel)
                && matches(&r.custodian, f.custodian)
                && matches(&r.conversation, f.conversation)
                && matches(&r.message_type, f.message_type)
            {
                let key = (r.specificity(), self.classes[*i].days, *i);
                if best.is_none_or(|b| (key.0, key.1) > (b.0, b.1)) {
                    best = Some(key);
                }
            }
        }
        &self.classes[best.map_or(self.default_class, |b| b.2)]
    }

    /// The retain-until time of a record written at `timestamp_us`.
    pub fn retain_until_us(&self, f: &RecordFacts<'_>, timestamp_us: i64) -> i64 {
        timestamp_us.saturating_add(self.class_for(f).days as i64 * DAY_US)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::RetentionClass;

    fn section() -> RetentionSection {
        let class = |name: &str, preset: &str, years: Option<u32>| RetentionClass {
            name: name.into(),
            preset: preset.into(),
            years,
            days: None,
        };
        RetentionSection {
            default_class: "sec".into(),
            classes: vec![
                class("sec", "sec-17a-4", None),
                class("mifid", "mifid-ii", Some(7)),
                class("short", "custom", Some(1)),
            ],
            rules: vec![
                RetentionRule {
                    class: "mifid".into(),
                    tenant: Some("eu".into()),
                    ..Default::default()
                },
                RetentionRule {
                    class: "short".into(),
                    tenant: Some("eu".into()),
                    message_type: Some("status".into()),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn most_specific_rule_wins() {
        let p = RetentionPolicy::from_config(&section()).unwrap();
        let f = |tenant, mt| RecordFacts {
            tenant,
            message_type: mt,
            ..Default::default()
        };
        assert_eq!(p.class_for(&f("us", "text")).name, "sec");
        assert_eq!(p.class_for(&f("eu", "text")).name, "mifid");
        assert_eq!(p.class_for(&f("eu", "status")).name, "short");
        assert_eq!(p.class_for(&f("eu", "text")).days, 2557);
        assert_eq!(p.retain_until_us(&f("us", "text"), 0), 2192 * DAY_US);
    }
}
