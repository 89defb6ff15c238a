//! Webhook load generator: a separate process driving `stele serve` on
//! loopback with real-format, signed Cloud API deliveries, at a fixed
//! 1,000 msg/s and at saturation; reports end-to-end acknowledgement latency
//! (request sent → `200` after the durable group commit) and the highest
//! sustained rate.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SECRET: &str = "loadgen-app-secret";

fn delivery(n: u64) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA-LOAD","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550001111","phone_number_id":"PN-LOAD"}},"contacts":[{{"profile":{{"name":"Client {c}"}},"wa_id":"4477009{c:05}"}}],"messages":[{{"from":"4477009{c:05}","id":"wamid.LOAD{n:012}","timestamp":"1764064800","text":{{"body":"Please confirm order {n} for 100 shares at market, settlement T+1."}},"type":"text"}}]}}}}]}}]}}"#,
        c = n % 500
    )
    .into_bytes()
}

fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str) -> std::io::Result<Conn> {
        let w = TcpStream::connect(addr)?;
        w.set_nodelay(true)?;
        Ok(Conn {
            r: BufReader::new(w.try_clone()?),
            w,
        })
    }

    /// POST a delivery; returns the status code.
    fn post(&mut self, body: &[u8]) -> std::io::Result<u16> {
        let head = format!(
            "POST /webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Hub-Signature-256: {}\r\nContent-Length: {}\r\n\r\n",
            sign(body),
            body.len()
        );
        self.w.write_all(head.as_bytes())?;
        self.w.write_all(body)?;
        let mut status = String::new();
        self.r.read_line(&mut status)?;
        let code = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            self.r.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0u8; len];
        self.r.read_exact(&mut buf)?;
        Ok(code)
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn start_daemon(stele: &Path, dir: &Path, port: u16) -> Result<Child, Box<dyn std::error::Error>> {
    if dir.exists() {
        let _ = Command::new("chattr").arg("-R").arg("-i").arg(dir).status();
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let dir = &dir.canonicalize()?;
    let secret = |name: &str, v: &str| -> std::io::Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, v)?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(p)
    };
    let vt = secret("verify-token", "loadgen")?;
    let sec = secret("app-secret", SECRET)?;
    let cfg = dir.join("cfg.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\ndevices = [\"data\"]\nzone_size_mib = 256\nzones_per_device = 32\n\n[server]\nlisten = \"127.0.0.1:{port}\"\nallow_plain_http = true\n\n[capture]\nconsent = \"off\"\n\n[capture.whatsapp]\nverify_token_file = \"{}\"\napp_secret_file = \"{}\"\n",
            vt.display(),
            sec.display()
        ),
    )?;
    let store = dir.join("s");
    let o = Command::new(stele)
        .arg("init")
        .arg(&store)
        .arg("--config")
        .arg(&cfg)
        .output()?;
    if !o.status.success() {
        return Err(format!("stele init: {}", String::from_utf8_lossy(&o.stderr)).into());
    }
    let child = Command::new(stele)
        .arg("serve")
        .arg("--config")
        .arg(store.join("stele.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("the daemon did not start".into())
}

pub fn run(
    stele: &Path,
    dir: &Path,
    seconds: f64,
    connections: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    if !stele.exists() {
        let st = Command::new("cargo")
            .args(["build", "--release", "-p", "stele-appliance"])
            .status()?;
        if !st.success() {
            return Err("building stele failed".into());
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut daemon = start_daemon(stele, &dir.join("loadgen"), port)?;
    println!("# Webhook load benchmark");
    println!("command: cargo run --release -p bench -- loadgen --seconds {seconds} --connections {connections}");
    println!(
        "daemon: {} serve on plain HTTP, loopback (TLS costs are not in these figures)",
        stele.display()
    );
    let next = Arc::new(AtomicU64::new(0));
    // Fixed 1,000 msg/s, spread over the connections.
    let rate = 1000.0;
    let paced: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..connections)
            .map(|c| {
                let (addr, next) = (addr.clone(), next.clone());
                s.spawn(move || -> Vec<Duration> {
                    let mut conn = Conn::open(&addr).expect("connect");
                    let mut lat = Vec::new();
                    let per = rate / connections as f64;
                    let start = Instant::now() + Duration::from_secs_f64(c as f64 / rate);
                    let mut k = 0u64;
                    loop {
                        let due = start + Duration::from_secs_f64(k as f64 / per);
                        if due.duration_since(start).as_secs_f64() > seconds {
                            break;
                        }
                        if let Some(w) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(w);
                        }
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let t = Instant::now();
                        let code = conn.post(&delivery(n)).expect("post");
                        assert_eq!(code, 200, "delivery {n}");
                        lat.push(t.elapsed());
                        k += 1;
                    }
                    lat
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("paced worker"))
            .collect()
    });
    let mut paced = paced;
    paced.sort_unstable();
    println!(
        "| at 1,000 msg/s offered ({} deliveries, one message each) | p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms |",
        paced.len(),
        pct(&paced, 0.5),
        pct(&paced, 0.99),
        pct(&paced, 0.999),
        pct(&paced, 1.0)
    );
    // Saturation: every connection sends as fast as acknowledgements come back.
    let sat_conns = connections * 4;
    let t0 = Instant::now();
    let done: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..sat_conns)
            .map(|_| {
                let (addr, next) = (addr.clone(), next.clone());
                s.spawn(move || -> u64 {
                    let mut conn = Conn::open(&addr).expect("connect");
                    let mut k = 0;
                    while t0.elapsed().as_secs_f64() < seconds {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        assert_eq!(conn.post(&delivery(n)).expect("post"), 200);
                        k += 1;
                    }
                    k
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("saturation worker"))
            .sum()
    });
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "| saturation, {sat_conns} connections, {secs:.1} s | {:.0} deliveries/s acknowledged durable (each a message plus its raw evidence record) |",
        done as f64 / secs
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    let _ = daemon.wait();
    let d = dir.join("loadgen");
    let _ = Command::new("chattr").arg("-R").arg("-i").arg(&d).status();
    let _ = std::fs::remove_dir_all(&d);
    Ok(())
}
