//! A real Roughtime server (roughenough) on loopback, for corroboration tests.
//! `scripts/test-all` installs it under `target/tools`; `STELE_ROUGHTIME_SERVER`
//! names another binary.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running server; stopped and reaped on drop.
pub struct RoughtimeServer {
    child: Child,
    drain: Option<std::thread::JoinHandle<()>>,
    pub address: String,
    /// The long-term public key, hex.
    pub public_key: String,
}

fn binary() -> PathBuf {
    std::env::var_os("STELE_ROUGHTIME_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin/roughenough_server")
        })
}

fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    s.local_addr().expect("local address").port()
}

impl RoughtimeServer {
    /// Start a server whose clock is `offset_s` seconds off the system's.
    pub fn start(dir: &std::path::Path, offset_s: i16) -> RoughtimeServer {
        let seed = dir.join(format!("roughtime-seed-{offset_s}"));
        let bytes: [u8; 32] = rand::random();
        std::fs::write(&seed, hex::encode(bytes)).expect("seed file");
        std::fs::set_permissions(&seed, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("seed file mode");
        let port = free_udp_port();
        let bin = binary();
        let mut child = Command::new(&bin)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-j", "1"])
            .arg(format!("--fixed-offset={offset_s}"))
            .arg("--seed-file")
            .arg(&seed)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{} runs (scripts/test-all installs roughenough-server): {e}",
                    bin.display()
                )
            });
        let out = child.stdout.take().expect("stdout");
        let mut public_key = None;
        let mut ready = false;
        let mut lines = BufReader::new(out).lines();
        for line in lines.by_ref() {
            let line = line.expect("server output");
            if let Some(k) = line.split("Long term public key: PUBK(").nth(1) {
                public_key = Some(k.trim_end_matches(')').to_string());
            }
            if line.contains("online key") {
                ready = true;
                break;
            }
        }
        // Keep draining its output so the server never blocks on a full pipe.
        let drain = std::thread::spawn(move || lines.for_each(drop));
        assert!(ready, "the Roughtime server started");
        RoughtimeServer {
            child,
            drain: Some(drain),
            address: format!("127.0.0.1:{port}"),
            public_key: public_key.expect("the server printed its public key"),
        }
    }

    /// `[[clock.roughtime]]` naming this server (with `key` instead of its own, if given).
    pub fn config(&self, key: Option<&str>) -> String {
        format!(
            "\n[[clock.roughtime]]\naddress = \"{}\"\npublic_key = \"{}\"\n",
            self.address,
            key.unwrap_or(&self.public_key)
        )
    }
}

impl Drop for RoughtimeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The pipe closed with the process: the drain ends.
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}
