//! Strict validation: impossible values and conflicting rules, each refused
//! with the file, line and column of the value at fault and a hint.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use crate::preset;
use crate::schema::{Config, KeyProviderKind, ServerSection};
use crate::{line_col, ConfigError};

/// One step of a path to a value: a table key or an array index.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    Key(&'a str),
    Idx(usize),
}

/// Where the value at `path` is written in `text`, as (line, column); (0, 0) if it is not (a default).
pub fn locate(text: &str, path: &[Seg<'_>]) -> (usize, usize) {
    let Ok(doc) = toml_edit::Document::parse(text) else {
        return (0, 0);
    };
    let mut item: &toml_edit::Item = doc.as_item();
    let mut span = None;
    for seg in path {
        let next = match seg {
            Seg::Key(k) => item.get(k),
            Seg::Idx(i) => item.get(*i),
        };
        match next {
            Some(n) => {
                item = n;
                span = item.span().or(span);
            }
            None => break,
        }
    }
    span.map_or((0, 0), |s| line_col(text, s.start))
}

struct Checker<'a> {
    path: &'a Path,
    text: Option<&'a str>,
}

impl Checker<'_> {
    fn fail(&self, at: &[Seg<'_>], message: String, hint: &str) -> ConfigError {
        let (line, column) = self.text.map_or((0, 0), |t| locate(t, at));
        let field = at
            .iter()
            .map(|s| match s {
                Seg::Key(k) => format!(".{k}"),
                Seg::Idx(i) => format!("[{i}]"),
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string();
        ConfigError::Invalid {
            path: self.path.into(),
            line,
            column,
            field,
            message,
            hint: hint.into(),
        }
    }
}

use Seg::{Idx, Key};

pub fn validate(cfg: &Config, path: &Path, text: Option<&str>) -> Result<(), ConfigError> {
    let c = Checker { path, text };
    let s = &cfg.store;
    if s.devices.is_empty() {
        return Err(c.fail(
            &[Key("store"), Key("devices")],
            "no devices".into(),
            "list at least one device, e.g. [\"data\"]",
        ));
    }
    let mut seen = HashSet::new();
    for (i, d) in s.devices.iter().enumerate() {
        if d.trim().is_empty() || !seen.insert(d) {
            return Err(c.fail(
                &[Key("store"), Key("devices"), Idx(i)],
                format!("device {d:?} is empty or listed twice"),
                "each device once, by path",
            ));
        }
    }
    if !(1..=4096).contains(&s.zone_size_mib) {
        return Err(c.fail(
            &[Key("store"), Key("zone_size_mib")],
            format!("{} MiB", s.zone_size_mib),
            "zones are 1 to 4096 MiB; 256 suits flash",
        ));
    }
    if s.zones_per_device == 0 {
        return Err(c.fail(
            &[Key("store"), Key("zones_per_device")],
            "0 zones".into(),
            "give each device at least one zone",
        ));
    }
    if let Some(w) = &cfg.capture.whatsapp {
        if w.media_workers == 0 || w.media_workers > 64 {
            return Err(c.fail(
                &[Key("capture"), Key("whatsapp"), Key("media_workers")],
                w.media_workers.to_string(),
                "between 1 and 64 downloads at once",
            ));
        }
    }
    let m = &cfg.commit;
    if m.batch_bytes_max < 64 << 10 || m.batch_bytes_max > 256 << 20 {
        return Err(c.fail(
            &[Key("commit"), Key("batch_bytes_max")],
            format!("{} bytes", m.batch_bytes_max),
            "between 64 KiB and 256 MiB",
        ));
    }
    if m.batch_records_max == 0 {
        return Err(c.fail(
            &[Key("commit"), Key("batch_records_max")],
            "0".into(),
            "at least 1",
        ));
    }
    if m.linger_us > 1_000_000 {
        return Err(c.fail(
            &[Key("commit"), Key("linger_us")],
            format!("{} µs", m.linger_us),
            "at most one second of added latency",
        ));
    }
    if m.checkpoint_mib == 0 || m.checkpoint_interval_ms == 0 {
        return Err(c.fail(
            &[Key("commit")],
            "checkpoint_mib and checkpoint_interval_ms must be positive".into(),
            "e.g. 64 MiB and 5000 ms",
        ));
    }

    // Keys.
    let k = &cfg.keys;
    if !(1..=3650).contains(&k.rotation_days) {
        return Err(c.fail(
            &[Key("keys"), Key("rotation_days")],
            format!("{} days", k.rotation_days),
            "1 to 3650 days; 90 is usual",
        ));
    }
    match (k.provider, &k.pkcs11) {
        (KeyProviderKind::Pkcs11, None) => {
            return Err(c.fail(
                &[Key("keys"), Key("provider")],
                "provider is pkcs11 but there is no [keys.pkcs11] section".into(),
                "add [keys.pkcs11] with module, token_label and pin_file",
            ));
        }
        (KeyProviderKind::File, Some(_)) => {
            return Err(c.fail(
                &[Key("keys"), Key("pkcs11")],
                "a [keys.pkcs11] section while provider is \"file\"".into(),
                "set provider = \"pkcs11\" or remove the section",
            ));
        }
        _ => {}
    }
    if k.keystore.trim().is_empty() || k.file.trim().is_empty() {
        return Err(c.fail(
            &[Key("keys")],
            "keys.file and keys.keystore must name files".into(),
            "e.g. keys/stele.key and keys/keystore.redb",
        ));
    }
    for d in &s.devices {
        let dev = Path::new(d);
        for (what, p) in [("file", &k.file), ("keystore", &k.keystore)] {
            if Path::new(p).starts_with(dev) {
                return Err(c.fail(
                    &[Key("keys"), Key(what)],
                    format!("{p:?} lies inside data device {d:?}"),
                    "keep keys apart from the data they protect",
                ));
            }
        }
    }

    // Clock.
    if cfg.clock.drift_budget_ppm > 100_000 {
        return Err(c.fail(
            &[Key("clock"), Key("drift_budget_ppm")],
            format!("{} ppm", cfg.clock.drift_budget_ppm),
            "at most 100000 ppm (10%); 1000 is usual",
        ));
    }
    if !(60..=86_400 * 30).contains(&cfg.clock.corroboration_max_error_s) {
        return Err(c.fail(
            &[Key("clock"), Key("corroboration_max_error_s")],
            format!("{} s", cfg.clock.corroboration_max_error_s),
            "between 60 s and 30 days; 3600 is usual",
        ));
    }
    for (i, r) in cfg.clock.roughtime.iter().enumerate() {
        let at = |f| [Key("clock"), Key("roughtime"), Idx(i), Key(f)];
        let port = r
            .address
            .rsplit_once(':')
            .map(|(h, p)| (h, p.parse::<u16>()));
        if !matches!(port, Some((h, Ok(p))) if !h.is_empty() && p > 0) {
            return Err(c.fail(
                &at("address"),
                format!("{:?} is not host:port", r.address),
                "e.g. \"roughtime.example.net:2002\"",
            ));
        }
        if key_bytes(&r.public_key) != Some(32) {
            return Err(c.fail(
                &at("public_key"),
                format!("{:?} is not a 32-byte key", r.public_key),
                "the server's Ed25519 public key, base64 (44 characters) or hex (64)",
            ));
        }
    }

    // Retention.
    let r = &cfg.retention;
    let mut names = HashSet::new();
    for (i, cl) in r.classes.iter().enumerate() {
        let at = |f| [Key("retention"), Key("classes"), Idx(i), Key(f)];
        if !names.insert(cl.name.as_str()) {
            return Err(c.fail(
                &at("name"),
                format!("class {:?} is defined twice", cl.name),
                "give each class a distinct name",
            ));
        }
        let Some(p) = preset::find(&cl.preset) else {
            let ids: Vec<_> = preset::PRESETS.iter().map(|p| p.id).collect();
            return Err(c.fail(
                &at("preset"),
                format!("unknown preset {:?}", cl.preset),
                &format!("one of {}", ids.join(", ")),
            ));
        };
        let days = match (cl.years, cl.days) {
            (Some(_), Some(_)) => {
                return Err(c.fail(
                    &at("days"),
                    "both years and days are given".into(),
                    "give one of them",
                ))
            }
            (Some(y), None) => Some(preset::years_to_days(y)),
            (None, Some(d)) => Some(d),
            (None, None) => None,
        };
        let floor = preset::floor_days(&cl.name, p);
        match (p.years, days) {
            (None, None) => {
                return Err(c.fail(
                    &at("preset"),
                    format!("class {:?}: {} sets no fixed period", cl.name, p.title),
                    "state the period with years = N or days = N",
                ));
            }
            (Some(min), Some(d)) if d < preset::years_to_days(min) => {
                let field = if cl.years.is_some() { "years" } else { "days" };
                return Err(c.fail(&at(field), format!("class {:?} keeps records {d} days, shorter than the {} years {} requires ({})", cl.name, min, p.title, p.citation), "a class may lengthen its preset's period, never shorten it"));
            }
            (_, Some(0)) => {
                return Err(c.fail(&at("days"), "a period of 0".into(), "at least one day"))
            }
            (_, Some(d)) if d > 100 * 366 => {
                return Err(c.fail(&at("days"), format!("{d} days"), "at most 100 years"))
            }
            _ => {}
        }
        // A class named for a regulation keeps its period, whatever its preset gives.
        let effective = days.or(p.years.map(preset::years_to_days));
        if let (Some(d), Some((min, named))) = (effective, floor) {
            if d < min {
                let field = match (cl.years, cl.days) {
                    (Some(_), _) => "years",
                    (_, Some(_)) => "days",
                    _ => "preset",
                };
                return Err(c.fail(&at(field), format!("class {:?} is named for {} but keeps records {d} days, shorter than the {min} days ({} years) it requires ({})", cl.name, named.title, named.years.unwrap_or(0), named.citation), &format!("give it at least {min} days (preset = {:?}), or a name that does not name a regulation", named.id)));
            }
        }
    }
    if !names.contains(r.default_class.as_str()) {
        return Err(c.fail(
            &[Key("retention"), Key("default_class")],
            format!("class {:?} is not defined", r.default_class),
            "define it under [[retention.classes]]",
        ));
    }
    let mut criteria = std::collections::HashMap::new();
    for (i, rule) in r.rules.iter().enumerate() {
        let at = |f| [Key("retention"), Key("rules"), Idx(i), Key(f)];
        if !names.contains(rule.class.as_str()) {
            return Err(c.fail(
                &at("class"),
                format!("class {:?} is not defined", rule.class),
                "define it under [[retention.classes]]",
            ));
        }
        if rule.specificity() == 0 {
            return Err(c.fail(&[Key("retention"), Key("rules"), Idx(i)], "the rule matches every record".into(), "use retention.default_class for that, or add tenant, channel, custodian, conversation or message_type"));
        }
        let key = (
            rule.tenant.clone(),
            rule.channel.clone(),
            rule.custodian.clone(),
            rule.conversation.clone(),
            rule.message_type.clone(),
        );
        if let Some((j, other)) = criteria.insert(key, (i, rule.class.clone())) {
            if other != rule.class {
                return Err(c.fail(&at("class"), format!("conflicts with rule {j}: the same records would be class {other:?} and {:?}", rule.class), "merge the two rules or make one more specific"));
            }
        }
    }

    // Access.
    let mut pnames = HashSet::new();
    for (i, p) in cfg.access.principals.iter().enumerate() {
        let at = |f| [Key("access"), Key("principals"), Idx(i), Key(f)];
        if p.name.trim().is_empty() || !pnames.insert(p.name.as_str()) {
            return Err(c.fail(
                &at("name"),
                format!("principal {:?} is empty or defined twice", p.name),
                "one entry per person or service",
            ));
        }
        if p.token_sha256.len() != 64 || !p.token_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(c.fail(
                &at("token_sha256"),
                "not 64 hexadecimal digits".into(),
                "store the SHA-256 of the token: `stele access hash-token`",
            ));
        }
        if p.roles.is_empty() {
            return Err(c.fail(&at("roles"), "no roles".into(), "e.g. [\"legal-hold\"]"));
        }
    }

    server(&c, cfg)?;

    // Scrub and SMART.
    let sc = &cfg.scrub;
    if !(sc.sample_percent > 0.0 && sc.sample_percent <= 100.0) {
        return Err(c.fail(
            &[Key("scrub"), Key("sample_percent")],
            format!("{}", sc.sample_percent),
            "a percentage above 0 and at most 100",
        ));
    }
    if !(1..=100).contains(&sc.bandwidth_percent) {
        return Err(c.fail(
            &[Key("scrub"), Key("bandwidth_percent")],
            format!("{}%", sc.bandwidth_percent),
            "1 to 100",
        ));
    }
    if sc.device_read_mb_s == 0 {
        return Err(c.fail(
            &[Key("scrub"), Key("device_read_mb_s")],
            "0".into(),
            "the devices' sequential read bandwidth, e.g. 2000",
        ));
    }
    if !(1..=86_400).contains(&cfg.integrity.tree_head_interval_s) {
        return Err(c.fail(
            &[Key("integrity"), Key("tree_head_interval_s")],
            format!("{} s", cfg.integrity.tree_head_interval_s),
            "1 s to a day; 60 is usual",
        ));
    }
    if sc.interval_hours == 0 {
        return Err(c.fail(
            &[Key("scrub"), Key("interval_hours")],
            "0".into(),
            "at least 1",
        ));
    }
    let sm = &cfg.smart;
    if !(1..=100).contains(&sm.wear_warn_percent) {
        return Err(c.fail(
            &[Key("smart"), Key("wear_warn_percent")],
            format!("{}%", sm.wear_warn_percent),
            "1 to 100",
        ));
    }
    if sm.interval_minutes == 0 {
        return Err(c.fail(
            &[Key("smart"), Key("interval_minutes")],
            "0".into(),
            "at least 1",
        ));
    }
    if let Some(rep) = &cfg.replication {
        if !rep.peer.starts_with("https://") {
            return Err(c.fail(
                &[Key("replication"), Key("peer")],
                format!("{:?}", rep.peer),
                "replication runs over TLS: https://host:port",
            ));
        }
    }
    Ok(())
}

/// The `[server]` section and the request size limit.
fn server(c: &Checker<'_>, cfg: &Config) -> Result<(), ConfigError> {
    let sv = &cfg.server;
    let addr: SocketAddr = sv.listen.parse().map_err(|_| {
        c.fail(
            &[Key("server"), Key("listen")],
            format!("{:?} is not an address:port", sv.listen),
            "e.g. \"0.0.0.0:8443\"",
        )
    })?;
    if sv.tls_cert.is_some() != sv.tls_key.is_some() {
        return Err(c.fail(
            &[Key("server")],
            "tls_cert and tls_key go together".into(),
            "give both, or neither with allow_plain_http on loopback",
        ));
    }
    if sv.allow_plain_http && !addr.ip().is_loopback() {
        return Err(c.fail(
            &[Key("server"), Key("allow_plain_http")],
            format!("plain HTTP on {addr}, which is not loopback"),
            "plain HTTP is allowed only on 127.0.0.1 or ::1; configure TLS",
        ));
    }
    if sv.client_ca.is_some() && sv.tls_cert.is_none() {
        return Err(c.fail(
            &[Key("server"), Key("client_ca")],
            "client certificates need TLS, and no tls_cert is given".into(),
            "give tls_cert and tls_key, or remove client_ca",
        ));
    }
    let kib = cfg.capture.max_body_kib;
    if !(1..=MAX_BODY_KIB).contains(&kib) {
        return Err(c.fail(
            &[Key("capture"), Key("max_body_kib")],
            format!("{kib} KiB"),
            "1 KiB to 1 GiB (1048576); 4096 suits webhooks and NDJSON batches",
        ));
    }
    server_limits(c, sv)
}

/// Largest `capture.max_body_kib`: 1 GiB.
pub const MAX_BODY_KIB: u32 = 1 << 20;

/// Connection limits and timeouts: each bounded below and above.
fn server_limits(c: &Checker<'_>, sv: &ServerSection) -> Result<(), ConfigError> {
    let bounds: [(&str, u32, u32, u32, &str); 6] = [
        (
            "max_connections",
            sv.max_connections,
            1,
            100_000,
            "1 to 100000; 1024 is usual",
        ),
        (
            "max_connections_per_source",
            sv.max_connections_per_source,
            1,
            sv.max_connections.max(1),
            "1 to max_connections; 64 is usual",
        ),
        (
            "handshake_timeout_s",
            sv.handshake_timeout_s,
            1,
            300,
            "1 to 300 seconds; 10 is usual",
        ),
        (
            "header_timeout_s",
            sv.header_timeout_s,
            1,
            300,
            "1 to 300 seconds; 10 is usual",
        ),
        (
            "body_timeout_s",
            sv.body_timeout_s,
            1,
            3600,
            "1 to 3600 seconds; 60 is usual",
        ),
        (
            "idle_timeout_s",
            sv.idle_timeout_s,
            1,
            3600,
            "1 to 3600 seconds; 60 is usual",
        ),
    ];
    for (key, value, min, max, hint) in bounds {
        if !(min..=max).contains(&value) {
            return Err(c.fail(&[Key("server"), Key(key)], value.to_string(), hint));
        }
    }
    Ok(())
}

/// What `stele serve` needs beyond a valid configuration: TLS, unless plain
/// HTTP is allowed on loopback, and every file the daemon reads at start
/// (TLS certificate, key and client CA; the WhatsApp secrets) present.
/// Relative paths are resolved against the directory of `path`; `exists`
/// answers whether a file is there, so this module does no I/O itself.
pub fn serving(
    cfg: &Config,
    path: &Path,
    text: Option<&str>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<(), ConfigError> {
    let c = Checker { path, text };
    let sv = &cfg.server;
    let plain_ok = sv.allow_plain_http
        && sv
            .listen
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
    if sv.tls_cert.is_none() && !plain_ok {
        return Err(c.fail(
            &[Key("server")],
            "no tls_cert and tls_key, and plain HTTP is not allowed".into(),
            "give tls_cert and tls_key, or allow_plain_http = true on a loopback listen address",
        ));
    }
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut files: Vec<(Vec<Seg<'_>>, &str)> = Vec::new();
    for (key, v) in [
        ("tls_cert", &sv.tls_cert),
        ("tls_key", &sv.tls_key),
        ("client_ca", &sv.client_ca),
    ] {
        if let Some(f) = v {
            files.push((vec![Key("server"), Key(key)], f));
        }
    }
    if let Some(w) = &cfg.capture.whatsapp {
        let at = |k| vec![Key("capture"), Key("whatsapp"), Key(k)];
        files.push((at("verify_token_file"), &w.verify_token_file));
        files.push((at("app_secret_file"), &w.app_secret_file));
        if let Some(t) = &w.access_token_file {
            files.push((at("access_token_file"), t));
        }
    }
    for (at, f) in files {
        let full = base.join(f);
        if !exists(&full) {
            return Err(c.fail(
                &at,
                format!("{} does not exist", full.display()),
                "relative paths are taken from the directory of this file",
            ));
        }
    }
    Ok(())
}

/// How many bytes `key` holds as hex or (standard or URL-safe) base64.
fn key_bytes(key: &str) -> Option<usize> {
    let k = key.trim();
    if k.len().is_multiple_of(2) && k.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(k.len() / 2);
    }
    let body = k.trim_end_matches('=');
    let b64 = |c: char| c.is_ascii_alphanumeric() || "+/-_".contains(c);
    (k.len().is_multiple_of(4) && k.len() - body.len() <= 2 && body.chars().all(b64))
        .then_some(body.len() * 3 / 4)
}

#[cfg(test)]
mod tests {
    use crate::{Config, ConfigError};
    use std::path::Path;

    fn err(text: &str) -> (usize, usize, String, String) {
        match Config::parse(Path::new("t.toml"), text) {
            Err(ConfigError::Invalid {
                line,
                column,
                field,
                message,
                ..
            }) => (line, column, field, message),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    const STORE: &str =
        "[store]\ndevices = [\"data\"]\nzone_size_mib = 256\nzones_per_device = 4\n";

    #[test]
    fn a_class_named_for_a_regulation_keeps_its_period_whatever_its_preset() {
        for (name, period) in [
            ("sec-17a-4", "days = 1"),
            ("finra-comms", "years = 2"),
            ("SEC", "days = 2000"),
        ] {
            let text = format!("{STORE}[retention]\ndefault_class = \"{name}\"\n[[retention.classes]]\nname = \"{name}\"\npreset = \"custom\"\n{period}\n");
            let e = Config::parse(Path::new("c.toml"), &text)
                .unwrap_err()
                .to_string();
            assert!(e.contains("is named for"), "{name}: {e}");
            assert!(e.contains(":10:"), "{name}: names the period's line: {e}");
        }
        let text = format!("{STORE}[retention]\ndefault_class = \"sec-17a-4\"\n[[retention.classes]]\nname = \"sec-17a-4\"\npreset = \"cftc-1-31\"\n");
        let e = Config::parse(Path::new("c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is named for SEC") && e.contains("preset"),
            "another preset's shorter period: {e}"
        );
        let text = format!("{STORE}[retention]\ndefault_class = \"chat\"\n[[retention.classes]]\nname = \"chat\"\npreset = \"custom\"\ndays = 30\n");
        Config::parse(Path::new("c.toml"), &text)
            .expect("a class not named for a regulation sets its own period");
        let text = format!("{STORE}[retention]\ndefault_class = \"sec-17a-4\"\n[[retention.classes]]\nname = \"sec-17a-4\"\npreset = \"custom\"\nyears = 7\n");
        Config::parse(Path::new("c.toml"), &text).expect("longer than the floor");
    }

    #[test]
    fn roughtime_servers_need_an_address_and_a_32_byte_key() {
        let key = "AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE=";
        let ok = format!(
            "{STORE}[[clock.roughtime]]\naddress = \"time.example:2002\"\npublic_key = \"{key}\"\n"
        );
        Config::parse(Path::new("c.toml"), &ok).expect("valid");
        let hex = format!(
            "{STORE}[[clock.roughtime]]\naddress = \"10.0.0.1:5319\"\npublic_key = \"{}\"\n",
            "ab".repeat(32)
        );
        Config::parse(Path::new("c.toml"), &hex).expect("hex keys too");
        for (bad, field) in [
            (ok.replace("time.example:2002", "time.example"), "address"),
            (ok.replace(key, "AW5uAoTS"), "public_key"),
        ] {
            let e = Config::parse(Path::new("c.toml"), &bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("clock.roughtime[0].{field}")), "{e}");
        }
    }

    #[test]
    fn shortening_a_preset_is_refused_at_its_line() {
        let text = format!("{STORE}[retention]\ndefault_class = \"sec\"\n[[retention.classes]]\nname = \"sec\"\npreset = \"sec-17a-4\"\nyears = 3\n");
        let (line, col, field, msg) = err(&text);
        assert_eq!((line, col), (10, 9), "{msg}");
        assert_eq!(field, "retention.classes[0].years");
        assert!(msg.contains("shorter than the 6 years"), "{msg}");
    }

    #[test]
    fn conflicting_rules_are_refused() {
        let text = format!("{STORE}[retention]\ndefault_class = \"a\"\n[[retention.classes]]\nname = \"a\"\npreset = \"fca\"\n[[retention.classes]]\nname = \"b\"\npreset = \"hipaa\"\n[[retention.rules]]\nclass = \"a\"\nchannel = \"sms\"\n[[retention.rules]]\nclass = \"b\"\nchannel = \"sms\"\n");
        let (line, _, field, msg) = err(&text);
        assert_eq!(field, "retention.rules[1].class");
        assert_eq!(line, 17, "{msg}");
        assert!(msg.contains("conflicts with rule 0"), "{msg}");
    }

    #[test]
    fn impossible_values_are_refused() {
        for (extra, field) in [
            ("[store]\ndevices = []\nzone_size_mib = 256\nzones_per_device = 4\n", "store.devices"),
            ("[store]\ndevices = [\"d\"]\nzone_size_mib = 0\nzones_per_device = 4\n", "store.zone_size_mib"),
            (&format!("{STORE}[keys]\nrotation_days = 0\n"), "keys.rotation_days"),
            (&format!("{STORE}[keys]\nprovider = \"pkcs11\"\n"), "keys.provider"),
            (&format!("{STORE}[keys]\nkeystore = \"data/ks.redb\"\n"), "keys.keystore"),
            (&format!("{STORE}[server]\nlisten = \"0.0.0.0:80\"\nallow_plain_http = true\n"), "server.allow_plain_http"),
            (&format!("{STORE}[retention]\ndefault_class = \"nope\"\n"), "retention.default_class"),
            (&format!("{STORE}[[retention.classes]]\nname = \"g\"\npreset = \"gdpr\"\n"), "retention.classes[0].preset"),
            (&format!("{STORE}[[retention.rules]]\nclass = \"sec-17a-4\"\n"), "retention.rules[0]"),
            (&format!("{STORE}[[access.principals]]\nname = \"a\"\nroles = [\"legal-hold\"]\ntoken_sha256 = \"xyz\"\n"), "access.principals[0].token_sha256"),
            (&format!("{STORE}[capture.whatsapp]\nverify_token_file = \"v\"\napp_secret_file = \"s\"\nmedia_workers = 0\n"), "capture.whatsapp.media_workers"),
            (&format!("{STORE}[server]\nlisten = \"localhost\"\n"), "server.listen"),
            (&format!("{STORE}[server]\nclient_ca = \"ca.pem\"\n"), "server.client_ca"),
            (&format!("{STORE}[capture]\nmax_body_kib = 0\n"), "capture.max_body_kib"),
            (&format!("{STORE}[capture]\nmax_body_kib = 2000000\n"), "capture.max_body_kib"),
            (&format!("{STORE}[server]\nmax_connections = 0\n"), "server.max_connections"),
            (&format!("{STORE}[server]\nmax_connections = 1000000\n"), "server.max_connections"),
            (&format!("{STORE}[server]\nmax_connections = 10\nmax_connections_per_source = 11\n"), "server.max_connections_per_source"),
            (&format!("{STORE}[server]\nhandshake_timeout_s = 0\n"), "server.handshake_timeout_s"),
            (&format!("{STORE}[server]\nheader_timeout_s = 301\n"), "server.header_timeout_s"),
            (&format!("{STORE}[server]\nbody_timeout_s = 0\n"), "server.body_timeout_s"),
            (&format!("{STORE}[server]\nidle_timeout_s = 86400\n"), "server.idle_timeout_s"),
        ] {
            let (line, _, f, msg) = err(extra);
            assert_eq!(f, field, "{msg}");
            assert!(line > 0, "{field}: {msg}");
        }
    }

    fn serving(text: &str, present: &[&str]) -> Result<(), ConfigError> {
        let path = Path::new("/etc/stele/stele.toml");
        let cfg = Config::parse(path, text).expect("a valid file");
        cfg.check_serving(path, Some(text), &|p| {
            present.iter().any(|f| p == Path::new(f))
        })
    }

    #[test]
    fn serving_needs_tls_or_loopback_plain_http_and_its_files() {
        let tls = format!("{STORE}[server]\nlisten = \"0.0.0.0:8443\"\ntls_cert = \"tls/c.pem\"\ntls_key = \"/k.pem\"\nclient_ca = \"ca.pem\"\n");
        let all = ["/etc/stele/tls/c.pem", "/k.pem", "/etc/stele/ca.pem"];
        serving(&tls, &all).expect("every file is there");
        for (i, field) in ["server.tls_cert", "server.tls_key", "server.client_ca"]
            .iter()
            .enumerate()
        {
            let mut some = all.to_vec();
            let gone = some.remove(i);
            match serving(&tls, &some) {
                Err(ConfigError::Invalid {
                    field: f,
                    message,
                    line,
                    ..
                }) => {
                    assert_eq!(&f, field);
                    assert!(message.contains(gone), "{message}");
                    assert_eq!(line, 7 + i, "{message}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        match serving(STORE, &[]) {
            Err(ConfigError::Invalid { field, hint, .. }) => {
                assert_eq!(field, "server");
                assert!(hint.contains("allow_plain_http"), "{hint}");
            }
            other => panic!("{other:?}"),
        }
        let plain = format!("{STORE}[server]\nallow_plain_http = true\n");
        serving(&plain, &[]).expect("plain HTTP on loopback");
        let wa = format!(
            "{plain}[capture.whatsapp]\nverify_token_file = \"v\"\napp_secret_file = \"/s\"\n"
        );
        match serving(&wa, &["/s"]) {
            Err(ConfigError::Invalid { field, .. }) => {
                assert_eq!(field, "capture.whatsapp.verify_token_file")
            }
            other => panic!("{other:?}"),
        }
    }
}
