//! Configuration files: check one (and that the daemon could serve with it),
//! show one with its defaults resolved, put a store's edited one into effect
//! on the record, and print the presets and shipped examples.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Subcommand;
use firmware_config::Config;

use super::output::json;
use super::store::with_store_deciding;
use super::who::Who;
use crate::daemon::listener;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file, and that `stele serve` could run with
    /// it (TLS or plain HTTP on loopback; the files it reads exist, relative
    /// to the file's directory); errors name the line and column.
    Check {
        file: PathBuf,
        /// Skip the daemon's checks, for a store that is not served.
        #[arg(long)]
        no_serve: bool,
    },
    /// Print a configuration with every default and resolved retention period.
    Show {
        /// A configuration file, or a store directory.
        path: PathBuf,
        #[arg(long)]
        effective: bool,
    },
    /// Put a store's edited stele.toml into effect now, recorded in the audit
    /// trail with who and why; needed (retention role) when the change could
    /// shorten retention for new records, which are refused until then.
    Apply {
        #[arg(long)]
        store: PathBuf,
        #[command(flatten)]
        who: Who,
    },
    /// The regulatory presets, with their periods and citations.
    Presets,
    /// Print a shipped file: embedded, bank, hospital, or alerts (Prometheus rules).
    Example { name: String },
}

impl ConfigCommand {
    pub fn run(self) -> Result<()> {
        match self {
            ConfigCommand::Check { file, no_serve } => check(&file, no_serve)?,
            ConfigCommand::Show { path, effective } => show(path, effective)?,
            ConfigCommand::Apply { store, who } => with_store_deciding(
                &store,
                &who,
                |o, decision| o.approve_configuration = Some(decision),
                |sd, _| {
                    println!(
                        "the configuration in {} is in effect and recorded in the audit trail",
                        sd.root.join(firmware_config::CONFIG_FILE).display()
                    );
                    Ok(())
                },
            )?,
            ConfigCommand::Presets => {
                for p in firmware_config::preset::PRESETS {
                    json(p);
                }
            }
            ConfigCommand::Example { name } => match name.as_str() {
                "embedded" => print!("{}", firmware_config::EMBEDDED_DEFAULT),
                "bank" => print!("{}", firmware_config::EXAMPLE_BANK),
                "hospital" => print!("{}", firmware_config::EXAMPLE_HOSPITAL),
                "alerts" => print!("{}", firmware_config::ALERT_RULES),
                other => bail!("no example {other:?}: embedded, bank, hospital or alerts"),
            },
        }
        Ok(())
    }
}

/// `stele config check`: the file's own rules, and unless `no_serve` the daemon's.
fn check(file: &Path, no_serve: bool) -> Result<()> {
    let c = if no_serve {
        Config::load(file)?
    } else {
        listener::check_serving(file)?
    };
    println!(
        "{}: valid ({} devices, key provider {:?}, {} retention classes, {} rules, {} principals)",
        file.display(),
        c.store.devices.len(),
        c.keys.provider,
        c.retention.classes.len(),
        c.retention.rules.len(),
        c.access.principals.len()
    );
    Ok(())
}

/// `stele config show`: the file as written, or with `effective` every value resolved.
fn show(path: PathBuf, effective: bool) -> Result<()> {
    let file = if path.is_dir() {
        path.join(firmware_config::CONFIG_FILE)
    } else {
        path
    };
    let c = Config::load(&file)?;
    if effective {
        print!("{}", c.effective_toml());
    } else {
        print!("{}", std::fs::read_to_string(&file)?);
    }
    Ok(())
}
