//! The effective configuration as flat `key = value` pairs, and which
//! changes between two of them could shorten retention for new records.
//!
//! A store records the values it opened with in its audit trail; at the next
//! open it compares them with the new ones. Every difference is recorded with
//! its old and new value; a difference that could give some new record a
//! shorter retention period than before needs the retention role and a
//! reason. The test is conservative: it may ask for approval of a change
//! that shortens nothing (a new rule sending some records to a class shorter
//! than the longest old one), never the reverse.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Config, RetentionRule};

/// Effective values: every key of the configuration with its defaults
/// written out (`section.key`, arrays as `section.key[i]`), retention
/// classes by name with their resolved period (`retention.classes.<name>.days`),
/// and each retention rule as `retention.rule.<criteria>` = class.
pub fn values(cfg: &Config) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut general = cfg.clone();
    general.retention.classes.clear();
    general.retention.rules.clear();
    if let Ok(v) = toml::Value::try_from(&general) {
        flatten("", &v, &mut out);
    }
    for c in cfg.retention_policy().classes {
        let at = format!("retention.classes.{}", c.name);
        out.insert(format!("{at}.days"), c.days.to_string());
        out.insert(format!("{at}.preset"), c.preset.to_string());
    }
    for r in &cfg.retention.rules {
        out.insert(format!("retention.rule.{}", criteria(r)), r.class.clone());
    }
    out
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::Array(a) if a.iter().any(|v| v.is_table()) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// A rule's criteria as `field=value` pairs joined by `,` (`*` matches all).
fn criteria(r: &RetentionRule) -> String {
    let fields = [
        ("tenant", &r.tenant),
        ("channel", &r.channel),
        ("custodian", &r.custodian),
        ("conversation", &r.conversation),
        ("message_type", &r.message_type),
    ];
    let given: Vec<String> = fields
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v:?}")))
        .collect();
    if given.is_empty() {
        "*".into()
    } else {
        given.join(",")
    }
}

/// Retention as a set of values describes it: class periods, default class, rules.
struct Retention {
    days: BTreeMap<String, u32>,
    default_class: Option<String>,
    rules: BTreeSet<(String, String)>,
}

impl Retention {
    fn of(v: &BTreeMap<String, String>) -> Retention {
        let mut days = BTreeMap::new();
        let mut rules = BTreeSet::new();
        for (k, val) in v {
            if let Some(name) = k
                .strip_prefix("retention.classes.")
                .and_then(|k| k.strip_suffix(".days"))
            {
                days.insert(name.to_string(), val.parse().unwrap_or(0));
            } else if let Some(c) = k.strip_prefix("retention.rule.") {
                rules.insert((c.to_string(), val.clone()));
            }
        }
        let default_class = v
            .get("retention.default_class")
            .map(|s| s.trim_matches('"').to_string());
        Retention {
            days,
            default_class,
            rules,
        }
    }

    fn of_class(&self, class: &str) -> u32 {
        self.days.get(class).copied().unwrap_or(0)
    }

    fn of_default(&self) -> u32 {
        self.default_class
            .as_deref()
            .map_or(0, |c| self.of_class(c))
    }
}

/// The changes from `old` to `new` that could give a new record a shorter
/// retention period, described for the audit trail; empty when none can.
pub fn retention_shortenings(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<String> {
    let (o, n) = (Retention::of(old), Retention::of(new));
    let longest_old = o.days.values().copied().max().unwrap_or(0);
    let shortest_new = n.days.values().copied().min().unwrap_or(0);
    let mut out = Vec::new();
    for (class, &d) in &o.days {
        match n.days.get(class) {
            Some(&nd) if nd < d => out.push(format!("class {class:?}: {d} → {nd} days")),
            None if shortest_new < d => out.push(format!(
                "class {class:?} ({d} days) removed: its records fall to a class as short as {shortest_new} days"
            )),
            _ => {}
        }
    }
    if o.default_class != n.default_class && n.of_default() < o.of_default() {
        out.push(format!(
            "default class {:?} ({} days) → {:?} ({} days)",
            o.default_class.as_deref().unwrap_or(""),
            o.of_default(),
            n.default_class.as_deref().unwrap_or(""),
            n.of_default()
        ));
    }
    for (c, class) in o.rules.difference(&n.rules) {
        if shortest_new < o.of_class(class) {
            out.push(format!(
                "rule {c} → {class:?} ({} days) removed",
                o.of_class(class)
            ));
        }
    }
    for (c, class) in n.rules.difference(&o.rules) {
        if n.of_class(class) < longest_old {
            out.push(format!(
                "rule {c} → {class:?} ({} days) added: records it matches may have had up to {longest_old} days",
                n.of_class(class)
            ));
        }
    }
    out
}

/// The roles and token hash of principal `name` in `values`, as TOML text.
fn principal(values: &BTreeMap<String, String>, name: &str) -> Option<(String, String)> {
    let quoted = toml::Value::String(name.into()).to_string();
    let (key, _) = values.iter().find(|(k, v)| {
        k.starts_with("access.principals[") && k.ends_with("].name") && **v == quoted
    })?;
    let prefix = key.strip_suffix("name")?;
    Some((
        values.get(&format!("{prefix}roles"))?.clone(),
        values.get(&format!("{prefix}token_sha256"))?.clone(),
    ))
}

/// Whether principal `name` held `role` with the same token under `old` as
/// under `new`: a change is approved by authority the configuration had
/// before it, never by a principal or role the change itself adds.
pub fn held_before(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    name: &str,
    role: &str,
) -> bool {
    let role = toml::Value::String(role.into()).to_string();
    match (principal(old, name), principal(new, name)) {
        (Some((roles, token)), Some((_, now))) => roles.contains(&role) && token == now,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = "[store]\ndevices = [\"data\"]\nzone_size_mib = 256\nzones_per_device = 4\n[retention]\ndefault_class = \"a\"\n[[retention.classes]]\nname = \"a\"\ndays = 400\n[[retention.classes]]\nname = \"b\"\ndays = 3000\n";

    fn vals(extra: &str, base: &str) -> BTreeMap<String, String> {
        values(&Config::parse(Path::new("c.toml"), &format!("{base}{extra}")).expect("valid"))
    }

    #[test]
    fn values_name_every_setting_and_each_class_period() {
        let v = vals("", BASE);
        assert_eq!(v["retention.classes.a.days"], "400");
        assert_eq!(v["retention.default_class"], "\"a\"");
        assert!(
            v.contains_key("keys.rotation_days"),
            "defaults are written out"
        );
        assert!(v.contains_key("store.devices"));
    }

    #[test]
    fn only_changes_that_could_shorten_retention_are_named() {
        let old = vals("", BASE);
        let longer = vals("", &BASE.replace("days = 400", "days = 500"));
        assert!(retention_shortenings(&old, &longer).is_empty());
        let shorter = vals("", &BASE.replace("days = 400", "days = 30"));
        assert_eq!(
            retention_shortenings(&old, &shorter),
            ["class \"a\": 400 → 30 days"]
        );
        let to_long = vals(
            "[[retention.rules]]\nclass = \"b\"\nchannel = \"sms\"\n",
            BASE,
        );
        assert!(
            retention_shortenings(&old, &to_long).is_empty(),
            "a rule to the longest class shortens nothing"
        );
        assert_eq!(
            retention_shortenings(&to_long, &old).len(),
            1,
            "removing it may"
        );
        let default_b = vals(
            "",
            &BASE.replace("default_class = \"a\"", "default_class = \"b\""),
        );
        assert!(retention_shortenings(&old, &default_b).is_empty());
        let back = retention_shortenings(&default_b, &old);
        assert!(
            back.iter().any(|s| s.starts_with("default class")),
            "{back:?}"
        );
        let rita = "[[access.principals]]\nname = \"rita\"\nroles = [\"retention\"]\ntoken_sha256 = \"{}\"\n";
        let rita = rita.replace("{}", &"a".repeat(64));
        let with_rita = vals(&rita, BASE);
        assert!(held_before(&with_rita, &with_rita, "rita", "retention"));
        assert!(
            !held_before(&old, &with_rita, "rita", "retention"),
            "added by the change itself"
        );
        assert!(!held_before(&with_rita, &with_rita, "rita", "operator"));
        let new_token = vals(&rita.replace(&"a".repeat(64), &"b".repeat(64)), BASE);
        assert!(
            !held_before(&with_rita, &new_token, "rita", "retention"),
            "a new token"
        );
        let tuned = vals(
            "",
            &BASE.replace("zone_size_mib = 256", "zone_size_mib = 64"),
        );
        assert!(retention_shortenings(&old, &tuned).is_empty());
        assert_ne!(old, tuned);
    }
}
