//! A `stele serve` process for daemon tests: a store made with `stele init`,
//! a self-signed TLS certificate (openssl), WhatsApp secrets, and curl as
//! the client. The `stele` binary's path is a parameter because only the
//! appliance crate's tests know it (`env!("CARGO_BIN_EXE_stele")`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The WhatsApp app secret the test daemons sign deliveries with.
pub const SECRET: &str = "app-secret-for-tests";
/// The WhatsApp verify token of the test daemons.
pub const VERIFY_TOKEN: &str = "vibecoding";
/// The bearer token of [`INGEST_PRINCIPAL`], which holds the `ingest` role.
pub const INGEST_TOKEN: &str = "ingest-token-for-tests";
/// The principal the test daemons' ingest requests are made as.
pub const INGEST_PRINCIPAL: &str = "capture-gateway";

/// SHA-256 (hex) of `token`, as `[[access.principals]]` stores it.
pub fn token_sha256(token: &str) -> String {
    hex::encode(<Sha256 as sha2::Digest>::digest(token.as_bytes()))
}

/// An `[[access.principals]]` entry.
pub fn principal(name: &str, roles: &[&str], token: &str) -> String {
    let roles: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
    format!(
        "[[access.principals]]\nname = \"{name}\"\nroles = [{}]\ntoken_sha256 = \"{}\"\n\n",
        roles.join(", "),
        token_sha256(token)
    )
}

/// Run the `stele` binary at `bin` with `args`.
pub fn stele(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().expect("run stele")
}

/// The `X-Hub-Signature-256` value of `body` under [`SECRET`].
pub fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Write `value` to `dir/name` with mode 0600.
pub fn secret_file(dir: &Path, name: &str, value: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    p
}

/// Run openssl with `args`, asserting success.
pub fn openssl(args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A self-signed P-256 server certificate for localhost and 127.0.0.1 in
/// `dir`: (cert.pem, key.pem).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        // An end-entity certificate, which TLS clients other than curl insist on.
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    (cert, key)
}

/// What a test daemon's configuration holds beyond the fixed parts.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `[capture] consent`: `off`, `flag` or `refuse`.
    pub consent: String,
    /// Lines added to `[capture.whatsapp]`.
    pub whatsapp_extra: String,
    /// Lines added to `[server]`.
    pub server_extra: String,
    /// `[[access.principals]]` entries (by default [`INGEST_PRINCIPAL`]).
    pub principals: String,
    /// Whole sections added at the end of the file.
    pub extra: String,
    /// Arguments every curl call gets (e.g. a client certificate).
    pub curl_args: Vec<String>,
    /// TLS (the default), or plain HTTP on loopback.
    pub tls: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            consent: "off".into(),
            whatsapp_extra: String::new(),
            server_extra: String::new(),
            principals: principal(INGEST_PRINCIPAL, &["ingest"], INGEST_TOKEN),
            extra: String::new(),
            curl_args: Vec::new(),
            tls: true,
        }
    }
}

/// A running `stele serve` on a store of its own; killed if dropped unstopped.
pub struct Daemon {
    child: Child,
    /// What the daemon wrote to stderr so far (read by a thread, so a chatty
    /// daemon never blocks on a full pipe).
    log: Arc<Mutex<String>>,
    log_reader: Option<std::thread::JoinHandle<()>>,
    /// The `stele` binary.
    pub bin: PathBuf,
    /// `https://127.0.0.1:PORT` (`http://` without TLS).
    pub base: String,
    /// The CA file curl trusts (the server's self-signed certificate).
    pub ca: PathBuf,
    /// The store directory.
    pub store: PathBuf,
    /// Arguments every curl call gets.
    pub curl_args: Vec<String>,
}

impl Daemon {
    /// A daemon in `dir` with capture consent `consent`.
    pub fn start(bin: &Path, dir: &Path, consent: &str) -> Daemon {
        Daemon::start_with(bin, dir, consent, "")
    }

    /// A daemon in `dir` with `whatsapp_extra` lines in `[capture.whatsapp]`.
    pub fn start_with(bin: &Path, dir: &Path, consent: &str, whatsapp_extra: &str) -> Daemon {
        let setup = Setup {
            consent: consent.into(),
            whatsapp_extra: whatsapp_extra.into(),
            ..Setup::default()
        };
        Daemon::start_setup(bin, dir, &setup)
    }

    /// The configuration file text for a store in `dir` listening on `port`.
    pub fn config_text(dir: &Path, port: u16, setup: &Setup) -> String {
        let (cert, key) = self_signed(&dir.join("tls"));
        let vt = secret_file(dir, "wa-verify-token", VERIFY_TOKEN);
        let sec = secret_file(dir, "wa-app-secret", SECRET);
        let transport = if setup.tls {
            format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"",
                cert.display(),
                key.display()
            )
        } else {
            "allow_plain_http = true".to_string()
        };
        format!(
            "[store]\ndevices = [\"data\"]\nzone_size_mib = 4\nzones_per_device = 64\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n{transport}\n{}\n\n[capture]\nconsent = \"{}\"\n\n[capture.whatsapp]\nverify_token_file = \"{}\"\napp_secret_file = \"{}\"\n{}\n\n{}{}\n",
            setup.server_extra,
            setup.consent,
            vt.display(),
            sec.display(),
            setup.whatsapp_extra,
            setup.principals,
            setup.extra,
        )
    }

    /// A new store in `dir/s` made with `setup`, served and answering.
    pub fn start_setup(bin: &Path, dir: &Path, setup: &Setup) -> Daemon {
        let store = dir.join("s");
        let port = free_port();
        let cfg = dir.join("cfg.toml");
        std::fs::write(&cfg, Daemon::config_text(dir, port, setup)).unwrap();
        let o = stele(
            bin,
            &[
                "init",
                store.to_str().unwrap(),
                "--config",
                cfg.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let ca = dir.join("tls").join("cert.pem");
        let scheme = if setup.tls { "https" } else { "http" };
        let base = format!("{scheme}://127.0.0.1:{port}");
        Daemon::spawn_with(bin, store, base, ca, setup.curl_args.clone())
    }

    /// Run `stele serve` on an existing store and wait until it answers.
    pub fn spawn(bin: &Path, store: PathBuf, base: String, ca: PathBuf) -> Daemon {
        Daemon::spawn_with(bin, store, base, ca, Vec::new())
    }

    /// [`Daemon::spawn`], with arguments for every curl call.
    pub fn spawn_with(
        bin: &Path,
        store: PathBuf,
        base: String,
        ca: PathBuf,
        curl_args: Vec<String>,
    ) -> Daemon {
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--config",
                store.join("stele.toml").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let log_reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let d = Daemon {
            child,
            log,
            log_reader: Some(log_reader),
            bin: bin.to_path_buf(),
            base,
            ca,
            store,
            curl_args,
        };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if d.curl(&["/healthz"]).0 == 200 {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the daemon did not come up");
    }

    /// The address the daemon listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        let (_, hostport) = self.base.split_once("://").unwrap();
        hostport.parse().unwrap()
    }

    /// Run the `stele` binary with `args`.
    pub fn stele(&self, args: &[&str]) -> Output {
        stele(&self.bin, args)
    }

    /// (status, body) of a request: the path, then any further curl arguments.
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        let (path, rest) = args.split_first().unwrap();
        let o = Command::new("curl")
            .args(["-sS", "--tlsv1.3", "--cacert"])
            .arg(&self.ca)
            .args(["-w", "\n%{http_code}"])
            .args(&self.curl_args)
            .arg(format!("{}{}", self.base, path))
            .args(rest)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// POST `body` to `path` with `headers` (`Name: value`), authenticated
    /// as [`INGEST_PRINCIPAL`] unless `headers` hold an `Authorization`.
    pub fn post(&self, path: &str, body: &[u8], headers: &[String]) -> (u16, String) {
        let mut headers = headers.to_vec();
        if !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("authorization:"))
        {
            headers.push(format!("Authorization: Bearer {INGEST_TOKEN}"));
        }
        self.post_raw(path, &headers, body)
    }

    /// POST `body` to `path` with exactly `headers`.
    pub fn post_raw(&self, path: &str, headers: &[String], body: &[u8]) -> (u16, String) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), body).unwrap();
        let data = format!("@{}", f.path().display());
        let mut args: Vec<&str> = vec![path, "-X", "POST", "--data-binary", &data];
        for h in headers {
            args.push("-H");
            args.push(h);
        }
        self.curl(&args)
    }

    /// A WhatsApp delivery signed with [`SECRET`].
    pub fn deliver(&self, body: &[u8]) -> (u16, String) {
        self.post(
            "/webhooks/whatsapp",
            body,
            &[
                "Content-Type: application/json".into(),
                format!("X-Hub-Signature-256: {}", sign(body)),
            ],
        )
    }

    /// The value of the unlabelled metric `name` (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        let (_, m) = self.curl(&["/metrics"]);
        m.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Poll `metric(name)` until it reaches `at_least` (or 20 s pass); its last value.
    pub fn wait_metric(&self, name: &str, at_least: f64) -> f64 {
        let t = Instant::now();
        loop {
            let v = self.metric(name);
            if v >= at_least || t.elapsed() > Duration::from_secs(20) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the daemon has written to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, wait, assert a clean exit; the daemon's stderr.
    pub fn stop(mut self) -> String {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        if let Some(r) = self.log_reader.take() {
            let _ = r.join();
        }
        let log = self.log();
        assert!(status.success(), "the daemon stopped badly: {log}");
        log
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
