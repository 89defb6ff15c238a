//! A real SoftHSM2 token in a temporary directory, for the PKCS#11 tests.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const MODULE_CANDIDATES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// The SoftHSM2 PKCS#11 module installed on this machine.
pub fn module() -> PathBuf {
    MODULE_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("SoftHSM2 is installed (scripts/test-all installs the softhsm2 package)")
}

/// A token directory with one initialised token.
pub struct SoftHsm {
    pub conf: PathBuf,
    pub label: String,
    pub pin: String,
}

impl SoftHsm {
    /// Initialise a token labelled `label` with user PIN `pin` under `dir`.
    pub fn new(dir: &Path, label: &str, pin: &str) -> SoftHsm {
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).expect("token dir");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                "5462",
                "--pin",
                pin,
            ])
            .output()
            .expect("softhsm2-util runs (scripts/test-all installs softhsm2)");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SoftHsm {
            conf,
            label: label.into(),
            pin: pin.into(),
        }
    }
}
