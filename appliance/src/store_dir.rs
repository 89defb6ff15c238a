//! A store directory: `stele.toml`, the key-encryption key (a file, or a key
//! in an HSM), the keystore of wrapped data keys, the index and (for the
//! embedded default) the zone-directory device, all under one folder.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use firmware_config::{Config, KeyProviderKind, CONFIG_FILE};
use stele_engine::crypto::anchor::{AnchorPlace, DirAnchor};
use stele_engine::io::device::{Device, FileDevice, Geometry, ZoneDirDevice};
use stele_engine::{FileKek, KeyProvider, Keyring, Pkcs11Config, Pkcs11Kek, Store, StoreOptions};
use zeroize::Zeroizing;

/// The HSM token, as the place a rollback anchor is kept.
type HsmAnchor = Arc<dyn AnchorPlace>;

pub struct StoreDir {
    pub root: PathBuf,
    pub config: Config,
}

impl StoreDir {
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    /// Read a secret kept in a file (a PIN, a token): refused if group or
    /// others can read the file; surrounding whitespace is dropped.
    pub fn read_secret(&self, p: &str, what: &str) -> Result<String> {
        let path = self.resolve(p);
        let meta =
            std::fs::metadata(&path).with_context(|| format!("{what} file {}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "{what} file {} is readable by group or others (chmod 600)",
                path.display()
            );
        }
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_string())
    }

    pub fn key_path(&self) -> PathBuf {
        self.resolve(&self.config.keys.file)
    }

    pub fn keystore_path(&self) -> PathBuf {
        self.resolve(&self.config.keys.keystore)
    }

    /// The key provider the configuration names; `create` makes a new key
    /// file. An HSM also keeps the rollback anchor, through the same session.
    fn provider(&self, create: bool) -> Result<(Box<dyn KeyProvider>, Option<HsmAnchor>)> {
        let k = &self.config.keys;
        Ok(match k.provider {
            KeyProviderKind::File => {
                let path = self.key_path();
                let kek = if create {
                    FileKek::create(&path)?
                } else {
                    FileKek::load(&path)?
                };
                (Box::new(kek), None)
            }
            KeyProviderKind::Pkcs11 => {
                let p = k.pkcs11.as_ref().context("[keys.pkcs11] is missing")?;
                let pin = Zeroizing::new(self.read_secret(&p.pin_file, "HSM PIN")?);
                let kek = Arc::new(Pkcs11Kek::open(&Pkcs11Config {
                    module: self.resolve(&p.module),
                    token_label: p.token_label.clone(),
                    pin,
                })?);
                (Box::new(kek.clone()), Some(kek))
            }
        })
    }

    /// Where checkpoints are anchored outside the data: every configured
    /// directory, and the HSM token when the key-encryption key lives in one.
    fn anchors(&self, hsm: Option<HsmAnchor>) -> Vec<Arc<dyn AnchorPlace>> {
        let mut out: Vec<Arc<dyn AnchorPlace>> = Vec::new();
        for d in &self.config.store.anchors {
            out.push(Arc::new(DirAnchor::new(self.resolve(d))));
        }
        out.extend(hsm);
        out
    }

    fn options(&self, keyring: Arc<Keyring>) -> StoreOptions {
        let c = &self.config;
        let mut o = StoreOptions::new(self.resolve(&c.store.index));
        o.zone_size = c.store.zone_size_mib << 20;
        o.commit.batch_bytes_max = c.commit.batch_bytes_max;
        o.commit.batch_records_max = c.commit.batch_records_max;
        o.commit.linger = Duration::from_micros(c.commit.linger_us);
        o.commit.checkpoint_bytes = c.commit.checkpoint_mib << 20;
        o.commit.checkpoint_interval = Duration::from_millis(c.commit.checkpoint_interval_ms);
        o.keyring = Some(keyring);
        o.subject = c.keys.subject;
        o.retention = c.retention_policy();
        o.drift_budget_ppm = c.clock.drift_budget_ppm;
        o.clock_max_error_us = c.clock.corroboration_max_error_s as i64 * 1_000_000;
        o.tree_head_interval = Some(Duration::from_secs(c.integrity.tree_head_interval_s));
        o.progress = Some(rebuild_progress());
        o.configuration = firmware_config::effective::values(c);
        o
    }

    /// Create a new store in `root` with `config`: devices, the key-encryption
    /// key (a new 0600 file, or a key generated inside the HSM), the keystore, the index.
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
        // Refused before anything is made, so a refused init leaves nothing behind.
        if let Some((clock, gap_s)) = stele_engine::time::clock::interposed_clock() {
            return Err(stele_engine::Error::ClockInterposed {
                clock: clock.into(),
                gap_s,
            }
            .into());
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
        let (provider, hsm) = sd.provider(sd.config.keys.provider == KeyProviderKind::File)?;
        let keyring = Arc::new(Keyring::create(
            provider,
            &sd.keystore_path(),
            sd.config.keys.rotation_days,
        )?);
        let mut options = sd.options(keyring.clone());
        options.anchors = sd.anchors(hsm);
        let store = Store::create(devices, keyring.root_keys(), options)?;
        std::fs::write(&cfg_path, sd.config.to_toml())
            .with_context(|| format!("writing {}", cfg_path.display()))?;
        Ok((sd, store))
    }

    /// Read and validate the store directory's configuration.
    pub fn load(root: &Path) -> Result<StoreDir> {
        let cfg_path = root.join(CONFIG_FILE);
        if !cfg_path.exists() {
            bail!("{} is not a Stele store directory (no {CONFIG_FILE}; create one with `stele init {}`)", root.display(), root.display());
        }
        let config = Config::load(&cfg_path)?;
        Ok(StoreDir {
            root: root.to_path_buf(),
            config,
        })
    }

    /// Open the store in `root`, recovering it if it was not closed cleanly.
    pub fn open(root: &Path) -> Result<(StoreDir, Store)> {
        Self::open_adjusted(root, |_| {})
    }

    /// Open the store in `root` with `adjust` applied to its options.
    pub fn open_with(root: &Path, adjust: impl FnOnce(&mut StoreOptions)) -> Result<Store> {
        Ok(Self::open_adjusted(root, adjust)?.1)
    }

    fn open_adjusted(
        root: &Path,
        adjust: impl FnOnce(&mut StoreOptions),
    ) -> Result<(StoreDir, Store)> {
        let sd = StoreDir::load(root)?;
        let (provider, hsm) = sd.provider(false)?;
        let keyring = Arc::new(Keyring::open(
            provider,
            &sd.keystore_path(),
            sd.config.keys.rotation_days,
        )?);
        let devices = sd
            .config
            .store
            .devices
            .iter()
            .map(|d| stele_engine::io::device::open_path(&sd.resolve(d)))
            .collect::<stele_engine::Result<Vec<_>>>()?;
        let mut options = sd.options(keyring.clone());
        options.anchors = sd.anchors(hsm);
        adjust(&mut options);
        let store = Store::open(devices, keyring.root_keys(), options)?;
        Ok((sd, store))
    }
}

/// A progress bar for rebuilding the index (on a terminal; nothing otherwise).
fn rebuild_progress() -> stele_engine::store::Progress {
    let bar: std::sync::Mutex<Option<indicatif::ProgressBar>> = Default::default();
    Arc::new(move |done, total| {
        if total < 10_000 || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return;
        }
        let mut bar = bar.lock().unwrap_or_else(|p| p.into_inner());
        let b = bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} rebuilding the index from the log: {pos}/{len} frames [{bar:40}] {eta}",
            ) {
                b.set_style(style);
            }
            b
        });
        b.set_position(done);
        if done >= total {
            b.finish_and_clear();
        }
    })
}
