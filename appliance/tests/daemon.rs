//! The daemon as a real process over real TLS (rustls server, curl client):
//! health, the lock, the WhatsApp handshake and signed deliveries, refused
//! signatures, redelivery, NDJSON ingest with per-line errors, consent,
//! metrics, and a graceful stop that keeps every acknowledged record. The
//! conformance part replays the Cloud API fixtures in ../shared when present.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use stele_tests::daemon::{secret_file, sign, Daemon};
use stele_tests::Scratch;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_stele"))
}

fn stele(args: &[&str]) -> Output {
    stele_tests::daemon::stele(bin(), args)
}

fn delivery(id: &str, from: &str, text: &str) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550001111","phone_number_id":"PN1"}},"contacts":[{{"profile":{{"name":"Client"}},"wa_id":"{from}"}}],"messages":[{{"from":"{from}","id":"{id}","timestamp":"1764064800","text":{{"body":"{text}"}},"type":"text"}}]}}}}]}}]}}"#
    )
    .into_bytes()
}

#[test]
fn the_daemon_captures_over_tls_and_stops_without_losing_anything() {
    let dir = Scratch::new();
    let d = Daemon::start(bin(), dir.path(), "flag");
    let s = d.store.to_str().unwrap().to_string();
    assert_eq!(d.curl(&["/readyz"]).0, 200);
    // TLS 1.3 only: a client limited to TLS 1.2 is refused.
    let old_tls = Command::new("curl")
        .args(["-sS", "--tlsv1.2", "--tls-max", "1.2", "--cacert"])
        .arg(&d.ca)
        .arg(format!("{}/healthz", d.base))
        .output()
        .unwrap();
    assert!(!old_tls.status.success(), "a TLS 1.2 handshake succeeded");
    // One instance per store.
    let second = Command::new(bin())
        .args([
            "serve",
            "--config",
            d.store.join("stele.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another `stele serve` is running"));
    // The handshake.
    let (code, body) = d.curl(&["/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=vibecoding&hub.challenge=1158201444"]);
    assert_eq!((code, body.as_str()), (200, "1158201444"));
    assert_eq!(
        d.curl(&["/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"])
            .0,
        403
    );
    // A signed delivery: the raw body as evidence and the message.
    let m1 = delivery("wamid.T1", "447700900001", "Buy 100 ACME at market");
    let (code, body) = d.deliver(&m1);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"stored\":2"), "{body}");
    // Redelivered: nothing new.
    let (code, body) = d.deliver(&m1);
    assert_eq!(code, 200);
    assert!(
        body.contains("\"stored\":0") && body.contains("\"duplicates\":2"),
        "{body}"
    );
    // A bad or missing signature: 401, nothing stored, the refusal recorded.
    let forged = delivery("wamid.F1", "447700900001", "forged");
    let (code, _) = d.post(
        "/webhooks/whatsapp",
        &forged,
        &[format!("X-Hub-Signature-256: {}", sign(b"something else"))],
    );
    assert_eq!(code, 401);
    assert_eq!(d.post("/webhooks/whatsapp", &forged, &[]).0, 401);
    // A status update and a reaction referring to the message.
    let status = br#"{"object":"whatsapp_business_account","entry":[{"id":"WABA1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"PN1"},"statuses":[{"id":"wamid.O1","status":"read","timestamp":"1764064900","recipient_id":"447700900001"}]}}]}]}"#;
    assert_eq!(d.deliver(status).0, 200);
    let reaction = br#"{"object":"whatsapp_business_account","entry":[{"id":"WABA1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"PN1"},"messages":[{"from":"447700900001","id":"wamid.R1","timestamp":"1764064950","type":"reaction","reaction":{"message_id":"wamid.T1","emoji":"\ud83d\udc4d"}}]}}]}]}"#;
    assert_eq!(d.deliver(reaction).0, 200);
    // NDJSON: good lines stored, bad lines named.
    let nd = concat!(
        r#"{"id":"s1","channel":"sms","conversation":"sms:+447700900002","custodian":"trader-7","timestamp":"2026-11-25T10:00:00Z","text":"call me"}"#,
        "\n",
        r#"{"id":"s2","channel":"sms","conversation":"sms:+447700900002","custodian":"trader-7"}"#,
        "\n",
        r#"{"id":"t1","channel":"teams","conversation":"teams:deal-7","custodian":"trader-7","timestamp":1764064800000000,"text":"ok"}"#,
        "\n",
    );
    let (code, body) = d.post(
        "/v1/messages",
        nd.as_bytes(),
        &["Content-Type: application/x-ndjson".into()],
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"stored\":2") && body.contains("\"line\":2"),
        "{body}"
    );
    // Consent on file for trader-8; trader-7 had none, so its records are flagged.
    let (code, _) = d.post(
        "/v1/consent",
        format!(
            r#"{{"custodian":"trader-8","signed_at":"2026-01-02","document_sha256":"{}"}}"#,
            "ab".repeat(32)
        )
        .as_bytes(),
        &["Content-Type: application/json".into()],
    );
    assert_eq!(code, 200);
    // Metrics.
    let (code, m) = d.curl(&["/metrics"]);
    assert_eq!(code, 200);
    for needle in [
        "stele_captured_records_total{source=\"whatsapp\",type=\"text\"} 1",
        "stele_captured_records_total{source=\"api\",type=\"text\"} 2",
        "stele_webhook_signature_failures_total 2",
        "stele_ack_latency_seconds_bucket",
        "stele_io_backend",
        "stele_zones{condition=\"open\"} 1",
        "stele_no_consent_total{action=\"flagged\"}",
    ] {
        assert!(m.contains(needle), "{needle} missing from\n{m}");
    }
    // Every metric the shipped alert rules use is exported.
    for name in firmware_config::alert_metric_names() {
        let base = name.trim_end_matches("_bucket");
        assert!(
            m.contains(base),
            "alert rules use {name}, which /metrics does not export"
        );
    }
    // A graceful stop; every acknowledged record is there afterwards.
    let log = d.stop();
    assert!(log.contains("stele stopped"), "{log}");
    let out = String::from_utf8(stele(&["get", "--store", &s, "--record-id", "wamid.T1"]).stdout)
        .unwrap();
    assert!(
        out.contains("Buy 100 ACME") && out.contains("\"channel\":\"whatsapp\""),
        "{out}"
    );
    let out = String::from_utf8(stele(&["get", "--store", &s, "--record-id", "wamid.R1"]).stdout)
        .unwrap();
    assert!(
        out.contains("refers_to") && out.contains("wamid.T1"),
        "{out}"
    );
    let out = String::from_utf8(
        stele(&["get", "--store", &s, "--conversation", "sms:+447700900002"]).stdout,
    )
    .unwrap();
    assert!(
        out.contains("call me") && out.contains("none on file"),
        "{out}"
    );
    let audit = String::from_utf8(stele(&["audit", "--store", &s]).stdout).unwrap();
    assert_eq!(audit.matches("delivery-refused").count(), 2, "{audit}");
    assert!(
        !String::from_utf8(stele(&["get", "--store", &s, "--record-id", "wamid.F1"]).stdout)
            .unwrap()
            .contains("forged")
    );
}

#[test]
fn consent_refuse_policy_refuses_capture() {
    let dir = Scratch::new();
    let d = Daemon::start(bin(), dir.path(), "refuse");
    let nd = r#"{"id":"x1","channel":"sms","conversation":"c","custodian":"nobody","timestamp":1,"text":"hi"}"#;
    let (code, body) = d.post("/v1/messages", nd.as_bytes(), &[]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("no capture consent"), "{body}");
    d.stop();
}

/// Replays the Cloud API webhook fixtures kept outside the repository
/// (Meta's documentation examples and an SDK's captured deliveries).
#[test]
fn conformance_with_shared_cloud_api_fixtures() {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/cloud-api-webhooks");
    if !root.exists() {
        println!(
            "conformance: {} is absent; nothing to replay",
            root.display()
        );
        return;
    }
    let dir = Scratch::new();
    let d = Daemon::start(bin(), dir.path(), "off");
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for e in std::fs::read_dir(root.join("meta-docs")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".json") && !name.ends_with(".invalid.json") {
            bodies.push((name, std::fs::read(&p).unwrap()));
        }
    }
    let updates = root.join("pywa/tests/data/updates");
    for f in [
        "message.json",
        "message_status.json",
        "callback_button.json",
        "callback_selection.json",
    ] {
        let Ok(text) = std::fs::read_to_string(updates.join(f)) else {
            continue;
        };
        let cases: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).unwrap();
        for (case, v) in cases {
            if v.get("object").and_then(|o| o.as_str()) == Some("whatsapp_business_account") {
                bodies.push((format!("{f}:{case}"), serde_json::to_vec(&v).unwrap()));
            }
        }
    }
    assert!(bodies.len() >= 20, "{} fixtures", bodies.len());
    let mut stored = 0;
    for (name, b) in &bodies {
        let (code, body) = d.deliver(b);
        assert_eq!(code, 200, "{name}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        // Fixtures of different sources reuse message ids with other content: conflicts, kept.
        stored += ["stored", "duplicates", "conflicts"]
            .iter()
            .map(|k| v[k].as_u64().unwrap())
            .sum::<u64>();
        assert!(v.get("unreadable").is_none(), "{name}: {body}");
    }
    println!(
        "conformance: {} fixtures replayed, {stored} records",
        bodies.len()
    );
    // Every fixture yielded its evidence and at least one record.
    assert!(stored >= 2 * bodies.len() as u64);
    d.stop();
}

/// A stand-in for Meta's Graph API (an outside service that cannot be
/// reached here): media info and downloads on loopback, one media id that
/// always fails.
struct Graph {
    port: u16,
    hits: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
    /// Most `/download/MID-SLOW-*` downloads in progress at once.
    peak: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

const IMAGE: &[u8] = b"\xff\xd8\xff\xe0 a small jpeg, as far as this test cares";

impl Graph {
    fn start() -> Graph {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>> =
            Default::default();
        let h = hits.clone();
        let peak: std::sync::Arc<std::sync::atomic::AtomicU32> = Default::default();
        let active: std::sync::Arc<std::sync::atomic::AtomicU32> = Default::default();
        let (pk, act) = (peak.clone(), active.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut w) = conn else { continue };
                let h = h.clone();
                let (pk, act) = (pk.clone(), act.clone());
                std::thread::spawn(move || {
                    let mut r = BufReader::new(w.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                        let mut authorized = false;
                        loop {
                            let mut hl = String::new();
                            if r.read_line(&mut hl).unwrap_or(0) == 0 || hl == "\r\n" {
                                break;
                            }
                            if hl
                                .to_ascii_lowercase()
                                .starts_with("authorization: bearer graph-token")
                            {
                                authorized = true;
                            }
                        }
                        *h.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                        let (code, body): (u16, Vec<u8>) = match (authorized, path.as_str()) {
                            (false, _) => (401, b"{}".to_vec()),
                            (true, "/MID-OK") => (
                                200,
                                format!(
                                    r#"{{"url":"http://127.0.0.1:{port}/download/MID-OK","mime_type":"image/jpeg","sha256":"{}","file_size":{}}}"#,
                                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(IMAGE)),
                                    IMAGE.len()
                                )
                                .into_bytes(),
                            ),
                            (true, "/download/MID-OK") => (200, IMAGE.to_vec()),
                            (true, p) if p.starts_with("/MID-SLOW-") => (
                                200,
                                format!(
                                    r#"{{"url":"http://127.0.0.1:{port}/download{p}","mime_type":"image/jpeg","sha256":"{}"}}"#,
                                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(p.as_bytes()))
                                )
                                .into_bytes(),
                            ),
                            (true, p) if p.starts_with("/download/MID-SLOW-") => {
                                // A slow download: long enough that workers overlap.
                                use std::sync::atomic::Ordering::SeqCst;
                                let now = act.fetch_add(1, SeqCst) + 1;
                                pk.fetch_max(now, SeqCst);
                                std::thread::sleep(Duration::from_millis(400));
                                act.fetch_sub(1, SeqCst);
                                (200, p.as_bytes()["/download".len()..].to_vec())
                            }
                            _ => (500, b"{\"error\":\"unavailable\"}".to_vec()),
                        };
                        let head = format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        if w.write_all(head.as_bytes())
                            .and_then(|_| w.write_all(&body))
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Graph { port, hits, peak }
    }

    /// A daemon in `dir` whose media downloads come from this stand-in, with
    /// `extra` lines for `[capture.whatsapp]`.
    fn daemon(&self, dir: &std::path::Path, extra: &str) -> Daemon {
        let token = secret_file(dir, "graph-token", "graph-token");
        Daemon::start_with(
            bin(),
            dir,
            "off",
            &format!(
                "graph_base_url = \"http://127.0.0.1:{}\"\naccess_token_file = \"{}\"\n{extra}",
                self.port,
                token.display()
            ),
        )
    }

    fn hits(&self, path: &str) -> u32 {
        *self.hits.lock().unwrap().get(path).unwrap_or(&0)
    }
}

fn image_delivery(id: &str, media: &str) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550001111","phone_number_id":"PN1"}},"messages":[{{"from":"447700900001","id":"{id}","timestamp":"1764064800","type":"image","image":{{"id":"{media}","mime_type":"image/jpeg","caption":"the signed term sheet"}}}}]}}}}]}}]}}"#
    )
    .into_bytes()
}

#[test]
fn media_downloads_run_side_by_side() {
    let dir = Scratch::new();
    let graph = Graph::start();
    let d = graph.daemon(dir.path(), "media_workers = 3");
    let s = d.store.to_str().unwrap().to_string();
    // A queue item damaged on disk is set aside and counted, and holds up nothing.
    let queue = d.store.join("media-queue");
    std::fs::write(queue.join("damaged.json"), b"{not json").unwrap();
    assert_eq!(d.wait_metric("stele_media_queue_unreadable", 1.0), 1.0);
    assert!(queue.join("unreadable").join("damaged.json").exists());
    assert!(!queue.join("damaged.json").exists());
    for i in 0..6 {
        let (code, _) = d.deliver(&image_delivery(
            &format!("wamid.SLOW{i}"),
            &format!("MID-SLOW-{i}"),
        ));
        assert_eq!(code, 200);
    }
    assert_eq!(d.wait_metric("stele_media_fetched_total", 6.0), 6.0);
    let peak = graph.peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=3).contains(&peak),
        "three workers download side by side, never more: {peak} at once"
    );
    for i in 0..6 {
        assert_eq!(
            graph.hits(&format!("/download/MID-SLOW-{i}")),
            1,
            "each item fetched once"
        );
    }
    assert_eq!(d.metric("stele_media_queue_depth"), 0.0);
    d.stop();
    for i in 0..6 {
        let out = stele(&[
            "get",
            "--store",
            &s,
            "--record-id",
            &format!("wamid.SLOW{i}:media:MID-SLOW-{i}"),
        ]);
        assert!(out.status.success(), "media record {i}: {:?}", out);
    }
}

#[test]
fn media_is_fetched_retried_and_survives_a_restart() {
    let dir = Scratch::new();
    let graph = Graph::start();
    let d = graph.daemon(dir.path(), "");
    let s = d.store.to_str().unwrap().to_string();
    assert_eq!(d.deliver(&image_delivery("wamid.IMG1", "MID-OK")).0, 200);
    assert_eq!(d.wait_metric("stele_media_fetched_total", 1.0), 1.0);
    // A download that keeps failing: the message is archived, the failures are counted, the item stays queued.
    assert_eq!(d.deliver(&image_delivery("wamid.IMG2", "MID-BAD")).0, 200);
    assert!(d.wait_metric("stele_media_fetch_failures_total", 2.0) >= 2.0);
    assert_eq!(d.metric("stele_media_queue_depth"), 1.0);
    let (base, ca, store) = (d.base.clone(), d.ca.clone(), d.store.clone());
    d.stop();
    assert_eq!(
        std::fs::read_dir(store.join("media-queue"))
            .unwrap()
            .count(),
        1,
        "the queue is on disk"
    );
    let before = graph.hits("/MID-BAD");
    let d = Daemon::spawn(bin(), store, base, ca);
    let t = Instant::now();
    while graph.hits("/MID-BAD") == before && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        graph.hits("/MID-BAD") > before,
        "the queued download is retried after a restart"
    );
    assert_eq!(d.metric("stele_media_queue_depth"), 1.0);
    d.stop();
    let out = String::from_utf8(
        stele(&[
            "get",
            "--store",
            &s,
            "--record-id",
            "wamid.IMG1:media:MID-OK",
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        out.contains("refers_to")
            && out.contains("wamid.IMG1")
            && out.contains(&format!("bytes\\\":{}", IMAGE.len())),
        "{out}"
    );
    let out = String::from_utf8(stele(&["get", "--store", &s, "--record-id", "wamid.IMG2"]).stdout)
        .unwrap();
    assert!(out.contains("the signed term sheet"), "{out}");
}
