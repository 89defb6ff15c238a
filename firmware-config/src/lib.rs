//! Configuration of a Stele appliance: the schema ([`schema`]), regulatory
//! presets ([`preset`]), strict validation ([`validate`]), the retention
//! policy it yields ([`policy`]) and the shipped default and example files.
//!
//! Unknown keys, impossible values and conflicting rules are refused with
//! the file, line and column and a hint.

pub mod effective;
pub mod policy;
pub mod preset;
pub mod schema;
pub mod validate;

use std::path::{Path, PathBuf};

pub use policy::{ClassPolicy, RecordFacts, RetentionPolicy};
pub use schema::*;

pub const CONFIG_FILE: &str = "stele.toml";

/// The shipped embedded default, documented key by key.
pub const EMBEDDED_DEFAULT: &str = include_str!("../defaults/embedded.toml");
/// A documented example for a broker-dealer / investment bank.
pub const EXAMPLE_BANK: &str = include_str!("../examples/bank.toml");
/// A documented example for a hospital.
pub const EXAMPLE_HOSPITAL: &str = include_str!("../examples/hospital.toml");
/// Prometheus alerting rules for the metrics the daemon exports.
pub const ALERT_RULES: &str = include_str!("../alerts/stele.rules.yml");

/// The metric names the shipped alert rules use.
pub fn alert_metric_names() -> Vec<String> {
    let mut out: Vec<String> = ALERT_RULES
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("stele_"))
        .map(String::from)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}:{column}: {field}: {message} (hint: {hint})")]
    Invalid {
        path: PathBuf,
        /// 0 when the value is not written in the file (a default).
        line: usize,
        column: usize,
        field: String,
        message: String,
        hint: String,
    },
}

/// Line and column (1-based) of byte offset `at` in `text`.
pub(crate) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    (
        before.matches('\n').count() + 1,
        before.chars().count()
            - before
                .rfind('\n')
                .map_or(0, |i| before[..=i].chars().count())
            + 1,
    )
}

impl Config {
    /// The embedded default: one zone-directory device in `data/`, a key file in `keys/`.
    pub fn embedded_default() -> Config {
        Config::parse(Path::new("defaults/embedded.toml"), EMBEDDED_DEFAULT)
            .expect("the shipped default is valid")
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    /// Parse and validate `text`, naming `path` in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            ConfigError::Syntax {
                path: path.into(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        validate::validate(&cfg, path, Some(text))?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            source: e,
        })?;
        Config::parse(path, &text)
    }

    /// Validate a configuration built in code (errors carry no line numbers).
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        validate::validate(self, path, None)
    }

    /// Check what `stele serve` needs beyond a valid file (see
    /// [`validate::serving`]); `text` is the file's text, for line numbers.
    pub fn check_serving(
        &self,
        path: &Path,
        text: Option<&str>,
        exists: &dyn Fn(&Path) -> bool,
    ) -> Result<(), ConfigError> {
        validate::serving(self, path, text, exists)
    }

    /// The retention policy this configuration defines.
    pub fn retention_policy(&self) -> RetentionPolicy {
        RetentionPolicy::from_config(&self.retention).expect("validated configurations resolve")
    }

    /// The configuration with every default written out and every retention
    /// class resolved to its period, as the appliance applies it.
    pub fn effective_toml(&self) -> String {
        let mut out = self.to_toml();
        out.push_str("\n# Resolved retention classes (what each record of the class is given)\n");
        for c in &self.retention_policy().classes {
            out.push_str(&format!(
                "# class {:?}: {} days ({}), per {}\n",
                c.name, c.days, c.preset_title, c.citation
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_files_are_valid_and_round_trip() {
        let c = Config::embedded_default();
        assert_eq!(Config::parse(Path::new("x"), &c.to_toml()).unwrap(), c);
        let bank = Config::parse(Path::new("bank.toml"), EXAMPLE_BANK).unwrap();
        assert_eq!(bank.keys.provider, KeyProviderKind::Pkcs11);
        assert!(bank.retention.rules.len() >= 2);
        let hosp = Config::parse(Path::new("hospital.toml"), EXAMPLE_HOSPITAL).unwrap();
        assert_eq!(hosp.retention.default_class, "hipaa");
        assert!(c.effective_toml().contains("2192 days"));
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let text =
            "[store]\ndevices = [\"data\"]\nzone_size_mib = 256\nzones_per_device = 4\nbogus = 1\n";
        match Config::parse(Path::new("s.toml"), text) {
            Err(ConfigError::Syntax {
                line,
                column,
                message,
                ..
            }) => {
                assert_eq!(line, 5, "{message}");
                assert_eq!(column, 1);
                assert!(message.contains("bogus"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
