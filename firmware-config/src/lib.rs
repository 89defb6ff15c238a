//! Configuration of a Stele store: its schema, strict validation and shipped defaults.
//!
//! A store directory holds `stele.toml`:
//!
//! ```toml
//! [store]
//! devices = ["data"]            # relative to the store directory; a directory is a zone-directory device,
//!                               # a file or a block device path is a single-file device
//! zone_size_mib = 256
//! zones_per_device = 256        # capacity of each device, in zones
//! key_file = "keys/stele.key"
//! index = "index/index.redb"
//!
//! [commit]
//! batch_bytes_max = 4194304
//! batch_records_max = 16384
//! linger_us = 0
//! checkpoint_mib = 64
//! checkpoint_interval_ms = 5000
//! ```
//!
//! Unknown keys and impossible values are refused with the file, line and column.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const CONFIG_FILE: &str = "stele.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    pub devices: Vec<String>,
    pub zone_size_mib: u64,
    pub zones_per_device: u32,
    pub key_file: String,
    pub index: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommitSection {
    pub batch_bytes_max: usize,
    pub batch_records_max: usize,
    pub linger_us: u64,
    pub checkpoint_mib: u64,
    pub checkpoint_interval_ms: u64,
}

impl Default for CommitSection {
    fn default() -> Self {
        CommitSection {
            batch_bytes_max: 4 << 20,
            batch_records_max: 16_384,
            linger_us: 0,
            checkpoint_mib: 64,
            checkpoint_interval_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub store: StoreSection,
    #[serde(default)]
    pub commit: CommitSection,
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
    #[error("{path}: {field}: {message} (hint: {hint})")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        message: String,
        hint: &'static str,
    },
}

impl Config {
    /// The embedded default: one zone-directory device in `data/`, a key file in `keys/`.
    pub fn embedded_default() -> Config {
        Config {
            store: StoreSection {
                devices: vec!["data".into()],
                zone_size_mib: 256,
                zones_per_device: 256,
                key_file: "keys/stele.key".into(),
                index: "index/index.redb".into(),
            },
            commit: CommitSection::default(),
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    /// Parse and validate `text`, naming `path` in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    (
                        before.matches('\n').count() + 1,
                        before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                    )
                })
                .unwrap_or((0, 0));
            ConfigError::Syntax {
                path: path.into(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            source: e,
        })?;
        Config::parse(path, &text)
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |field, message: String, hint| {
            Err(ConfigError::Invalid {
                path: path.into(),
                field,
                message,
                hint,
            })
        };
        let s = &self.store;
        if s.devices.is_empty() {
            return bad(
                "store.devices",
                "no devices".into(),
                "list at least one device, e.g. [\"data\"]",
            );
        }
        if !(1..=4096).contains(&s.zone_size_mib) {
            return bad(
                "store.zone_size_mib",
                format!("{} MiB", s.zone_size_mib),
                "zones are 1 to 4096 MiB; 256 suits flash",
            );
        }
        if s.zones_per_device == 0 {
            return bad(
                "store.zones_per_device",
                "0 zones".into(),
                "give each device at least one zone",
            );
        }
        if self.commit.batch_bytes_max < 64 << 10 || self.commit.batch_bytes_max > 256 << 20 {
            return bad(
                "commit.batch_bytes_max",
                format!("{} bytes", self.commit.batch_bytes_max),
                "between 64 KiB and 256 MiB",
            );
        }
        if self.commit.batch_records_max == 0 {
            return bad("commit.batch_records_max", "0".into(), "at least 1");
        }
        if self.commit.linger_us > 1_000_000 {
            return bad(
                "commit.linger_us",
                format!("{} µs", self.commit.linger_us),
                "at most one second of added latency",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips() {
        let c = Config::embedded_default();
        assert_eq!(Config::parse(Path::new("x"), &c.to_toml()).unwrap(), c);
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let text = "[store]\ndevices = [\"data\"]\nzone_size_mib = 256\nzones_per_device = 4\nkey_file = \"k\"\nindex = \"i\"\nbogus = 1\n";
        match Config::parse(Path::new("s.toml"), text) {
            Err(ConfigError::Syntax {
                line,
                column,
                message,
                ..
            }) => {
                assert_eq!(line, 7, "{message}");
                assert_eq!(column, 1);
                assert!(message.contains("bogus"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn impossible_values_are_refused() {
        let mut c = Config::embedded_default();
        c.store.zone_size_mib = 0;
        assert!(matches!(
            c.validate(Path::new("x")),
            Err(ConfigError::Invalid {
                field: "store.zone_size_mib",
                ..
            })
        ));
    }
}
