//! A store directory: `stele.toml`, the key file, the index and (for the
//! embedded default) the zone-directory device, all under one folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use stele_config::{Config, CONFIG_FILE};
use stele_engine::device::{Device, FileDevice, Geometry, ZoneDirDevice};
use stele_engine::{KeyFile, Store, StoreOptions};

pub struct StoreDir {
    pub root: PathBuf,
    pub config: Config,
}

impl StoreDir {
    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    pub fn key_path(&self) -> PathBuf {
        self.resolve(&self.config.keys.file)
    }

    fn options(&self) -> StoreOptions {
        let c = &self.config;
        let mut o = StoreOptions::new(self.resolve(&c.store.index));
        o.zone_size = c.store.zone_size_mib << 20;
        o.commit.batch_bytes_max = c.commit.batch_bytes_max;
        o.commit.batch_records_max = c.commit.batch_records_max;
        o.commit.linger = Duration::from_micros(c.commit.linger_us);
        o.commit.checkpoint_bytes = c.commit.checkpoint_mib << 20;
        o.commit.checkpoint_interval = Duration::from_millis(c.commit.checkpoint_interval_ms);
        o
    }

    /// Create a new store in `root` with `config`: devices, a fresh 0600 key file, the index.
    pub fn init(root: &Path, config: Config) -> Result<(StoreDir, Store)> {
        config.validate(&root.join(CONFIG_FILE))?;
        let cfg_path = root.join(CONFIG_FILE);
        if cfg_path.exists() {
            bail!(
                "{} already holds a store ({} exists)",
                root.display(),
                cfg_path.display()
            );
        }
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let sd = StoreDir {
            root: root.to_path_buf(),
            config,
        };
        let geometry = Geometry {
            zone_size: sd.config.store.zone_size_mib << 20,
            zone_count: sd.config.store.zones_per_device,
        };
        let mut devices: Vec<Arc<dyn Device>> = Vec::new();
        for d in &sd.config.store.devices {
            let path = sd.resolve(d);
            let is_file_device = path.exists() && !path.is_dir() || d.ends_with(".img");
            if is_file_device {
                devices.push(Arc::new(FileDevice::create(&path, geometry)?));
            } else {
                devices.push(Arc::new(ZoneDirDevice::create(&path, geometry)?));
            }
        }
        let key = KeyFile::generate(&sd.key_path(), 1)?;
        let store = Store::create(devices, key.keys(), sd.options())?;
        std::fs::write(&cfg_path, sd.config.to_toml())
            .with_context(|| format!("writing {}", cfg_path.display()))?;
        Ok((sd, store))
    }

    /// Open the store in `root`, recovering it if it was not closed cleanly.
    pub fn open(root: &Path) -> Result<(StoreDir, Store)> {
        let cfg_path = root.join(CONFIG_FILE);
        if !cfg_path.exists() {
            bail!("{} is not a Stele store directory (no {CONFIG_FILE}; create one with `stele init {}`)", root.display(), root.display());
        }
        let config = Config::load(&cfg_path)?;
        let sd = StoreDir {
            root: root.to_path_buf(),
            config,
        };
        let key = KeyFile::load(&sd.key_path())?;
        let devices = sd
            .config
            .store
            .devices
            .iter()
            .map(|d| stele_engine::device::open_path(&sd.resolve(d)))
            .collect::<stele_engine::Result<Vec<_>>>()?;
        let store = Store::open(devices, key.keys(), sd.options())?;
        Ok((sd, store))
    }
}
