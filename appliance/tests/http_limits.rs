//! The daemon's front door as a real process: ingest refused without a
//! bearer token of a principal holding the `ingest` role (401/403, counted,
//! audited, nothing stored), mutual TLS, connection limits and timeouts that
//! keep slow clients from locking others out (plain HTTP and TLS), and
//! `stele config check` refusing what `stele serve` would refuse.
//!
//! Every wait polls a condition with a generous bound; no sleep stands in
//! for synchronisation.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stele_tests::daemon::{openssl, principal, Daemon, Setup, INGEST_TOKEN};
use stele_tests::Scratch;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_stele"))
}

/// The value of the series of `name` whose labels include every one of `labels`.
fn series(d: &Daemon, name: &str, labels: &[&str]) -> f64 {
    let (_, m) = d.curl(&["/metrics"]);
    m.lines()
        .find(|l| {
            l.strip_prefix(name).is_some_and(|r| r.starts_with('{'))
                && labels.iter().all(|x| l.contains(x))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Poll `series` until it reaches `at_least` (or 30 s pass); its last value.
fn wait_series(d: &Daemon, name: &str, labels: &[&str], at_least: f64) -> f64 {
    let t = Instant::now();
    loop {
        let v = series(d, name, labels);
        if v >= at_least || t.elapsed() > Duration::from_secs(30) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn line(id: &str, text: &str) -> String {
    format!(
        r#"{{"id":"{id}","channel":"sms","conversation":"c","custodian":"trader-1","timestamp":1764064800000000,"text":"{text}"}}"#
    )
}

fn consent() -> String {
    format!(
        r#"{{"custodian":"trader-1","signed_at":"2026-01-02","document_sha256":"{}"}}"#,
        "ab".repeat(32)
    )
}

/// (status, response headers and body) of a POST with exactly `headers`.
fn post_with_headers(d: &Daemon, path: &str, body: &str, headers: &[&str]) -> (u16, String) {
    let mut args = vec![path, "-X", "POST", "--data-binary", body, "-D", "-"];
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    d.curl(&args)
}

#[test]
fn ingest_needs_a_token_of_a_principal_with_the_ingest_role() {
    let dir = Scratch::new();
    let mut setup = Setup::default();
    setup
        .principals
        .push_str(&principal("auditor-1", &["auditor"], "auditor-token"));
    let d = Daemon::start_setup(bin(), dir.path(), &setup);
    let json = "Content-Type: application/json";
    for (path, body) in [
        ("/v1/messages", line("refused-1", "never stored")),
        ("/v1/consent", consent()),
    ] {
        let (code, out) = post_with_headers(&d, path, &body, &[json]);
        assert_eq!(code, 401, "{path} without a token: {out}");
        assert!(
            out.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{out}"
        );
        let (code, out) =
            post_with_headers(&d, path, &body, &[json, "Authorization: Bearer wrong"]);
        assert_eq!(code, 401, "{path} with a wrong token: {out}");
        assert!(out.contains("invalid_token"), "{out}");
        let (code, out) = post_with_headers(
            &d,
            path,
            &body,
            &[json, "Authorization: Bearer auditor-token"],
        );
        assert_eq!(code, 403, "{path} without the ingest role: {out}");
        assert!(out.contains("does not hold the ingest role"), "{out}");
    }
    assert_refusals_counted(&d);
    // The right token stores.
    let (code, out) = d.post(
        "/v1/messages",
        line("accepted-1", "accepted over bearer").as_bytes(),
        &[],
    );
    assert_eq!(code, 200, "{out}");
    assert!(out.contains("\"stored\":1"), "{out}");
    let (code, out) = d.post("/v1/consent", consent().as_bytes(), &[json.into()]);
    assert_eq!(code, 200, "{out}");
    let store = d.store.to_str().unwrap().to_string();
    d.stop();
    let get = |id: &str| {
        let o = stele_tests::daemon::stele(bin(), &["get", "--store", &store, "--record-id", id]);
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert!(!get("sms:refused-1").contains("never stored"));
    assert!(get("sms:accepted-1").contains("accepted over bearer"));
    assert_refusals_audited(&store);
}

/// Each endpoint counted one refusal of each kind.
fn assert_refusals_counted(d: &Daemon) {
    for source in ["api", "consent"] {
        for reason in ["no_token", "unknown_token", "no_ingest_role"] {
            let labels = [
                format!("source=\"{source}\""),
                format!("reason=\"{reason}\""),
            ];
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            assert_eq!(
                series(d, "stele_ingest_refused_total", &labels),
                1.0,
                "{source} {reason}"
            );
        }
    }
}

/// The six refusals are in the audit trail, with who and why.
fn assert_refusals_audited(store: &str) {
    let o = stele_tests::daemon::stele(bin(), &["audit", "--store", store]);
    let audit = String::from_utf8_lossy(&o.stdout);
    let refused: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("delivery-refused"))
        .collect();
    assert_eq!(refused.len(), 6, "{audit}");
    for needle in [
        "no bearer token",
        "token is no principal",
        "auditor-1",
        "ingest authentication",
    ] {
        assert!(
            refused.iter().filter(|l| l.contains(needle)).count() >= 2,
            "{needle} in {audit}"
        );
    }
}

/// A CA and a client certificate it signed, in `dir`: (ca.pem, client.pem, client.key).
fn client_pki(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let ca_subject = format!("/CN={name}-ca");
    let mut args = vec!["req", "-x509", "-nodes", "-days", "1", "-subj", &ca_subject];
    args.extend(ec);
    let (ca_key, ca, key, csr, cert, ext) = (
        p("ca.key"),
        p("ca.pem"),
        p("client.key"),
        p("client.csr"),
        p("client.pem"),
        p("ext.cnf"),
    );
    args.extend(["-keyout", &ca_key, "-out", &ca]);
    openssl(&args);
    let mut args = vec!["req", "-nodes", "-subj", "/CN=gateway"];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr]);
    openssl(&args);
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (ca.into(), cert.into(), key.into())
}

#[test]
fn mutual_tls_admits_only_clients_with_a_certificate_of_the_client_ca() {
    let dir = Scratch::new();
    let (ca, cert, key) = client_pki(&dir.path().join("clients"), "clients");
    let (_, other_cert, other_key) = client_pki(&dir.path().join("other"), "other");
    let with_cert = |c: &PathBuf, k: &PathBuf| {
        vec![
            "--cert".to_string(),
            c.display().to_string(),
            "--key".to_string(),
            k.display().to_string(),
        ]
    };
    let setup = Setup {
        server_extra: format!("client_ca = \"{}\"", ca.display()),
        curl_args: with_cert(&cert, &key),
        ..Setup::default()
    };
    let d = Daemon::start_setup(bin(), dir.path(), &setup);
    assert_eq!(d.curl(&["/healthz"]).0, 200);
    let (code, out) = d.post("/v1/messages", line("m1", "over mTLS").as_bytes(), &[]);
    assert_eq!(code, 200, "{out}");
    let bare = |extra: &[String]| {
        Command::new("curl")
            .args(["-sS", "--tlsv1.3", "--max-time", "20", "--cacert"])
            .arg(&d.ca)
            .args(extra)
            .arg(format!("{}/healthz", d.base))
            .output()
            .unwrap()
    };
    let o = bare(&[]);
    assert!(
        !o.status.success(),
        "no client certificate, yet: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = bare(&with_cert(&other_cert, &other_key));
    assert!(
        !o.status.success(),
        "a certificate of another CA, yet: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = bare(&with_cert(&cert, &key));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok\n");
    d.stop();
}

/// A TLS 1.3 client connection to the daemon that trusts its certificate.
fn tls_connect(d: &Daemon) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&d.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let tcp = TcpStream::connect(d.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

/// Whether the peer closed `s`: a read ends (EOF or error) within the
/// socket's 30 s read timeout rather than timing out.
fn closed_by_server(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// `n` connections from 127.0.0.1 that send `first` (perhaps nothing) and stall.
fn stalled(addr: SocketAddr, n: usize, first: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            // A connection refused at once may already be closed.
            let _ = s.write_all(first);
            s
        })
        .collect()
}

const PER_SOURCE: usize = 32;
const SLOW: usize = 300;

fn limited_setup(tls: bool) -> Setup {
    Setup {
        tls,
        server_extra: format!(
            "max_connections = 1024\nmax_connections_per_source = {PER_SOURCE}\nheader_timeout_s = 2\nhandshake_timeout_s = 2"
        ),
        ..Setup::default()
    }
}

/// With the slow connections open: another source is served at once, the
/// slow source's extra connections were refused and counted; once the
/// timeouts have passed, the slow connections are closed and the same
/// source is served again.
fn others_are_served(d: &Daemon, mut slow: Vec<Box<dyn Read>>) {
    let refused = (SLOW - PER_SOURCE) as f64;
    let per_source = ["limit=\"max_connections_per_source\""];
    assert!(wait_series(d, "stele_connections_refused_total", &per_source, refused) >= refused);
    let elsewhere = ["--interface", "127.0.0.2", "--max-time", "20"];
    let (code, body) = d.curl(&[&["/healthz"], &elsewhere[..]].concat());
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert_eq!(d.curl(&[&["/readyz"], &elsewhere[..]].concat()).0, 200);
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), line("during-siege", "still captured")).unwrap();
    let data = format!("@{}", f.path().display());
    let auth = format!("Authorization: Bearer {INGEST_TOKEN}");
    let mut args = vec![
        "/v1/messages",
        "-X",
        "POST",
        "--data-binary",
        &data,
        "-H",
        &auth,
    ];
    args.extend(elsewhere);
    let (code, out) = d.curl(&args);
    assert_eq!(code, 200, "ingest from another source: {out}");
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(closed_by_server(s), "slow connection {i} is still open");
    }
    let t = Instant::now();
    let mut code = 0;
    while code != 200 && t.elapsed() < Duration::from_secs(30) {
        code = d.curl(&["/healthz", "--max-time", "20"]).0;
    }
    assert_eq!(
        code, 200,
        "the slow source is served once its connections are gone"
    );
    // Only the connection asking is open (it counts itself).
    let t = Instant::now();
    while d.metric("stele_connections_open") > 1.0 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.metric("stele_connections_open"), 1.0);
}

#[test]
fn slow_clients_cannot_lock_others_out_over_plain_http() {
    let dir = Scratch::new();
    let d = Daemon::start_setup(bin(), dir.path(), &limited_setup(false));
    // Half stall in the request line, half send nothing at all.
    let mut slow = stalled(d.addr(), SLOW / 2, b"GET /healthz HT");
    slow.extend(stalled(d.addr(), SLOW / 2, b""));
    others_are_served(
        &d,
        slow.into_iter()
            .map(|s| Box::new(s) as Box<dyn Read>)
            .collect(),
    );
    d.stop();
}

#[test]
fn slow_clients_cannot_lock_others_out_over_tls() {
    let dir = Scratch::new();
    let d = Daemon::start_setup(bin(), dir.path(), &limited_setup(true));
    // Some finish the handshake and stall in the request line; the rest
    // stall in the handshake (half of them part-way through a ClientHello).
    let mut slow: Vec<Box<dyn Read>> = Vec::new();
    for _ in 0..PER_SOURCE / 2 {
        let mut s = tls_connect(&d);
        s.write_all(b"GET /healthz HT").unwrap();
        s.flush().unwrap();
        slow.push(Box::new(s));
    }
    let rest = SLOW - slow.len();
    for s in stalled(
        d.addr(),
        rest / 2,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ) {
        slow.push(Box::new(s));
    }
    for s in stalled(d.addr(), rest - rest / 2, b"") {
        slow.push(Box::new(s));
    }
    others_are_served(&d, slow);
    d.stop();
}

#[test]
fn a_body_that_does_not_arrive_in_time_is_answered_408_and_not_stored() {
    let dir = Scratch::new();
    let mut setup = limited_setup(true);
    setup.server_extra.push_str("\nbody_timeout_s = 2");
    let d = Daemon::start_setup(bin(), dir.path(), &setup);
    let mut s = tls_connect(&d);
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {INGEST_TOKEN}\r\nContent-Length: 100000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(line("slow-body", "half").as_bytes()).unwrap();
    s.flush().unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let store = d.store.to_str().unwrap().to_string();
    d.stop();
    let o = stele_tests::daemon::stele(
        bin(),
        &["get", "--store", &store, "--record-id", "sms:slow-body"],
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("half"));
}

#[test]
fn an_idle_connection_is_closed() {
    let dir = Scratch::new();
    let setup = Setup {
        server_extra: "header_timeout_s = 300\nidle_timeout_s = 2".into(),
        ..Setup::default()
    };
    let d = Daemon::start_setup(bin(), dir.path(), &setup);
    // A finished handshake, then silence: only the idle limit (not the
    // 300 s header timeout) can close it within the 30 s read timeout.
    let mut s = tls_connect(&d);
    assert!(closed_by_server(&mut s), "the idle connection stayed open");
    d.stop();
}

/// `stele config check FILE`: (success, stdout + stderr).
fn check(file: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["config", "check"];
    args.extend(extra);
    args.push(file.to_str().unwrap());
    let o = stele_tests::daemon::stele(bin(), &args);
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

const STORE: &str = "[store]\ndevices = [\"data\"]\nzone_size_mib = 4\nzones_per_device = 4\n\n";

/// (file text, field at fault, words of the message) of each refusal; `tls`
/// is a `[server]` section whose files exist.
fn refusals(tls: &str) -> Vec<(String, &'static str, &'static str)> {
    let server = |t: &str| format!("[server]\n{t}\n");
    let limit = |t: &str| format!("{tls}{t}\n");
    vec![
        (String::new(), "server", "allow_plain_http"),
        (
            server("allow_plain_http = true\nlisten = \"0.0.0.0:80\""),
            "server.allow_plain_http",
            "loopback",
        ),
        (
            server("listen = \"my-host\"\nallow_plain_http = true"),
            "server.listen",
            "address:port",
        ),
        (
            server("tls_cert = \"tls/missing.pem\"\ntls_key = \"tls/key.pem\""),
            "server.tls_cert",
            "missing.pem does not exist",
        ),
        (
            server("tls_cert = \"tls/cert.pem\"\ntls_key = \"nokey.pem\""),
            "server.tls_key",
            "nokey.pem does not exist",
        ),
        (
            limit("client_ca = \"ca.pem\""),
            "server.client_ca",
            "ca.pem does not exist",
        ),
        (
            limit("[capture]\nmax_body_kib = 0"),
            "capture.max_body_kib",
            "1 GiB",
        ),
        (
            limit("[capture]\nmax_body_kib = 4194304"),
            "capture.max_body_kib",
            "1 GiB",
        ),
        (
            limit("max_connections = 0"),
            "server.max_connections",
            "1 to 100000",
        ),
        (
            limit("max_connections_per_source = 5000"),
            "server.max_connections_per_source",
            "1 to max_connections",
        ),
        (
            limit("handshake_timeout_s = 0"),
            "server.handshake_timeout_s",
            "1 to 300",
        ),
        (
            limit("header_timeout_s = 100000"),
            "server.header_timeout_s",
            "1 to 300",
        ),
        (
            limit("body_timeout_s = 0"),
            "server.body_timeout_s",
            "1 to 3600",
        ),
        (
            limit("idle_timeout_s = 100000"),
            "server.idle_timeout_s",
            "1 to 3600",
        ),
    ]
}

#[test]
fn config_check_refuses_what_serve_would_refuse() {
    let dir = Scratch::new();
    let (_, key) = stele_tests::daemon::self_signed(&dir.path().join("tls"));
    let tls = format!(
        "[server]\nlisten = \"0.0.0.0:8443\"\ntls_cert = \"tls/cert.pem\"\ntls_key = \"{}\"\n",
        key.display()
    );
    let cfg = dir.path().join("stele.toml");
    let write = |text: &str| std::fs::write(&cfg, format!("{STORE}{text}")).unwrap();
    // Relative paths are taken from the file's directory.
    write(&tls);
    let (ok, out) = check(&cfg, &[]);
    assert!(ok, "{out}");
    for (text, field, needle) in refusals(&tls) {
        write(&text);
        let (ok, out) = check(&cfg, &[]);
        assert!(!ok, "{field} was accepted");
        assert!(
            out.contains(field) && out.contains(needle),
            "{field}: {out}"
        );
        assert!(
            out.contains("stele.toml:"),
            "{field}: no file:line:column: {out}"
        );
        assert!(out.contains("hint:"), "{field}: no hint: {out}");
    }
    // A missing file is named at its line and column.
    write("[server]\ntls_cert = \"tls/missing.pem\"\ntls_key = \"tls/key.pem\"\n");
    let (_, out) = check(&cfg, &[]);
    assert!(out.contains("stele.toml:7:12"), "{out}");
    // A store that is not served skips the daemon's checks.
    write("");
    let (ok, out) = check(&cfg, &["--no-serve"]);
    assert!(ok, "{out}");
}

#[test]
fn serve_refuses_what_config_check_refuses() {
    let dir = Scratch::new();
    let (cert, key) = stele_tests::daemon::self_signed(&dir.path().join("tls"));
    let cfg = dir.path().join("cfg.toml");
    let text = format!(
        "{STORE}[server]\nlisten = \"127.0.0.1:1\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    std::fs::write(&cfg, text).unwrap();
    let store = dir.path().join("s");
    let o = stele_tests::daemon::stele(
        bin(),
        &[
            "init",
            store.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(&cert).unwrap();
    let store_cfg = store.join("stele.toml");
    let (ok, out) = check(&store_cfg, &[]);
    assert!(!ok && out.contains("cert.pem does not exist"), "{out}");
    let o = stele_tests::daemon::stele(bin(), &["serve", "--config", store_cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("server.tls_cert") && err.contains("cert.pem does not exist"),
        "{err}"
    );
}
