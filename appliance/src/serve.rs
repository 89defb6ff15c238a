//! `stele serve`: the daemon. HTTP API over TLS 1.3 (rustls), capture
//! endpoints that acknowledge only after the durable group commit, health,
//! readiness and Prometheus metrics, one instance per store (a lock file),
//! graceful shutdown that loses no acknowledged record.
//!
//! Routes:
//! * `GET /healthz`: the process is up.
//! * `GET /readyz`: the store is open and writable.
//! * `GET /metrics`: Prometheus text.
//! * `GET /webhooks/whatsapp`: the Cloud API verification handshake.
//! * `POST /webhooks/whatsapp`: deliveries, checked with `X-Hub-Signature-256`.
//! * `POST /v1/messages`: NDJSON batches (docs/API.md).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use serde_json::json;
use stele_config::ConsentPolicy;
use stele_engine::{FrameKind, NewRecord, Store};

use crate::capture::whatsapp;
use crate::store_dir::StoreDir;

/// Counters of what the daemon captured.
pub struct CaptureMetrics {
    pub registry: Registry,
    captured: IntCounterVec,
    bytes: IntCounterVec,
    ack_latency: HistogramVec,
    signature_failures: IntCounter,
    line_errors: IntCounter,
    duplicates: IntCounterVec,
    errors: IntCounterVec,
    no_consent: IntCounterVec,
    media: crate::capture::media::MediaMetrics,
}

impl CaptureMetrics {
    fn new() -> Result<CaptureMetrics> {
        let registry = Registry::new();
        let captured = IntCounterVec::new(
            Opts::new(
                "stele_captured_records_total",
                "Records captured, by source and type.",
            ),
            &["source", "type"],
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                "stele_captured_bytes_total",
                "Request bytes captured, by source.",
            ),
            &["source"],
        )?;
        let ack_latency = HistogramVec::new(
            HistogramOpts::new(
                "stele_ack_latency_seconds",
                "Time from request to durable acknowledgement.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            &["source"],
        )?;
        let signature_failures = IntCounter::new(
            "stele_webhook_signature_failures_total",
            "Webhook deliveries refused for a bad or missing signature.",
        )?;
        let line_errors =
            IntCounter::new("stele_ingest_line_errors_total", "NDJSON lines refused.")?;
        let duplicates = IntCounterVec::new(
            Opts::new(
                "stele_duplicates_total",
                "Redelivered records not stored again.",
            ),
            &["source"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "stele_capture_errors_total",
                "Capture requests that failed.",
            ),
            &["source"],
        )?;
        let no_consent = IntCounterVec::new(
            Opts::new(
                "stele_no_consent_total",
                "Records of custodians with no consent on file, by what was done.",
            ),
            &["action"],
        )?;
        let media = crate::capture::media::MediaMetrics {
            depth: IntGauge::new("stele_media_queue_depth", "Media downloads waiting.")?,
            unreadable: IntGauge::new(
                "stele_media_queue_unreadable",
                "Media queue items that could not be read, set aside in STORE/media-queue/unreadable/.",
            )?,
            fetched: IntCounter::new("stele_media_fetched_total", "Media downloaded and stored.")?,
            failures: IntCounter::new(
                "stele_media_fetch_failures_total",
                "Media download attempts that failed (each is retried).",
            )?,
        };
        for c in [
            Box::new(captured.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(bytes.clone()),
            Box::new(ack_latency.clone()),
            Box::new(signature_failures.clone()),
            Box::new(line_errors.clone()),
            Box::new(duplicates.clone()),
            Box::new(errors.clone()),
            Box::new(no_consent.clone()),
            Box::new(media.depth.clone()),
            Box::new(media.unreadable.clone()),
            Box::new(media.fetched.clone()),
            Box::new(media.failures.clone()),
        ] {
            registry.register(c)?;
        }
        // Known label sets start at zero, so every series exists before its first event.
        for source in ["whatsapp", "api", "consent"] {
            errors.with_label_values(&[source]);
            duplicates.with_label_values(&[source]);
            bytes.with_label_values(&[source]);
        }
        for action in ["flagged", "refused"] {
            no_consent.with_label_values(&[action]);
        }
        Ok(CaptureMetrics {
            registry,
            captured,
            bytes,
            ack_latency,
            signature_failures,
            line_errors,
            duplicates,
            errors,
            no_consent,
            media,
        })
    }
}

struct WhatsAppSecrets {
    verify_token: String,
    app_secret: Vec<u8>,
}

pub struct AppState {
    store: Arc<Store>,
    metrics: CaptureMetrics,
    whatsapp: Option<WhatsAppSecrets>,
    consent: ConsentPolicy,
    /// Custodians with consent on file.
    consented: Mutex<HashSet<String>>,
    /// Record ids being stored right now (so concurrent redeliveries store once).
    in_flight: Mutex<HashSet<String>>,
    media_queue: Arc<crate::capture::media::Queue>,
    media_wake: crossbeam_channel::Sender<()>,
}

/// Hold the store's lock file for as long as the daemon runs.
fn lock(root: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let path = root.join("stele.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        anyhow::anyhow!(
            "another `stele serve` is running on {} (it holds {}): {e}",
            root.display(),
            path.display()
        )
    })
}

fn tls_config(sd: &StoreDir, cert: &str, key: &str) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cp, kp) = (sd.resolve(cert), sd.resolve(key));
    let certs = CertificateDer::pem_file_iter(&cp)
        .with_context(|| format!("TLS certificate {}", cp.display()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("TLS certificate {}", cp.display()))?;
    if certs.is_empty() {
        bail!("TLS certificate {} holds no certificate", cp.display());
    }
    let key =
        PrivateKeyDer::from_pem_file(&kp).with_context(|| format!("TLS key {}", kp.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Run the daemon on the store whose configuration is `config` (the store lives beside it).
pub fn run(config: &Path) -> Result<()> {
    let root = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    if config
        .file_name()
        .is_none_or(|n| n != stele_config::CONFIG_FILE)
    {
        bail!(
            "--config must name a store's {} (got {})",
            stele_config::CONFIG_FILE,
            config.display()
        );
    }
    let _lock = lock(&root)?;
    let sd = StoreDir::load(&root)?;
    let server = sd.config.server.clone();
    let addr: SocketAddr = server.listen.parse().context("server.listen")?;
    let tls = match (&server.tls_cert, &server.tls_key) {
        (Some(c), Some(k)) => Some(tls_config(&sd, c, k)?),
        _ if server.allow_plain_http && addr.ip().is_loopback() => None,
        _ => bail!("server: TLS needs tls_cert and tls_key (plain HTTP is allowed only with allow_plain_http on a loopback address)"),
    };
    let whatsapp = match &sd.config.capture.whatsapp {
        Some(w) => Some(WhatsAppSecrets {
            verify_token: sd.read_secret(&w.verify_token_file, "WhatsApp verify token")?,
            app_secret: sd
                .read_secret(&w.app_secret_file, "WhatsApp app secret")?
                .into_bytes(),
        }),
        None => None,
    };
    let consent = sd.config.capture.consent;
    let scrub = sd.config.scrub.clone();
    let max_body = sd.config.capture.max_body_kib as usize * 1024;
    let (_, store) = StoreDir::open(&root)?;
    let store = Arc::new(store);
    store.start_background_scrub(stele_engine::BackgroundScrub {
        interval: Duration::from_secs(scrub.interval_hours as u64 * 3600),
        mode: match scrub.mode {
            stele_config::ScrubMode::Full => stele_engine::scrub::ScrubMode::Full,
            stele_config::ScrubMode::Sampled => stele_engine::scrub::ScrubMode::Sampled {
                percent: scrub.sample_percent,
                min_records: scrub.sample_min_records,
            },
        },
        bytes_per_sec: Some(
            scrub.device_read_mb_s as u64 * 1_000_000 * scrub.bandwidth_percent as u64 / 100,
        ),
    });
    let consented = load_consent(&store)?;
    let media_queue = Arc::new(crate::capture::media::Queue::open(&root)?);
    let (media_wake, wake_rx) = crossbeam_channel::bounded(1);
    let capture_metrics = CaptureMetrics::new()?;
    let media_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fetcher = match sd.config.capture.whatsapp.as_ref().map(|w| {
        (
            w.graph_base_url.clone(),
            w.access_token_file.clone(),
            w.media_workers,
        )
    }) {
        Some((base, Some(token_file), workers)) => {
            let token = sd.read_secret(&token_file, "Graph API access token")?;
            let f = crate::capture::media::Fetcher::new(&base, token);
            let (s, q, m, stop) = (
                store.clone(),
                media_queue.clone(),
                capture_metrics.media.clone(),
                media_stop.clone(),
            );
            Some(
                std::thread::Builder::new()
                    .name("stele-media".into())
                    .spawn(move || {
                        crate::capture::media::run(s, q, f, m, stop, wake_rx, workers)
                    })?,
            )
        }
        Some((_, None, _)) => {
            tracing::warn!("capture.whatsapp.access_token_file is not set: media ids are queued but not downloaded");
            None
        }
        None => None,
    };
    capture_metrics
        .media
        .depth
        .set(media_queue.items()?.len() as i64);
    let state = Arc::new(AppState {
        store: store.clone(),
        metrics: capture_metrics,
        whatsapp,
        consent,
        consented: Mutex::new(consented),
        in_flight: Mutex::new(HashSet::new()),
        media_queue,
        media_wake,
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/whatsapp", get(wa_verify).post(wa_deliver))
        .route("/v1/messages", post(ingest))
        .route("/v1/consent", post(consent_post))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("stele-http")
        .build()?;
    rt.block_on(async move {
        let handle = axum_server::Handle::new();
        let h = handle.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            h.graceful_shutdown(Some(Duration::from_secs(30)));
        });
        eprintln!(
            "stele serving {} on {}://{addr}",
            root.display(),
            if tls.is_some() { "https" } else { "http" }
        );
        match tls {
            Some(cfg) => {
                let cfg = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cfg));
                axum_server::bind_rustls(addr, cfg)
                    .handle(handle)
                    .serve(app.into_make_service())
                    .await
            }
            None => {
                axum_server::bind(addr)
                    .handle(handle)
                    .serve(app.into_make_service())
                    .await
            }
        }
    })
    .context("serving")?;
    drop(rt);
    media_stop.store(true, std::sync::atomic::Ordering::Release);
    if let Some(f) = fetcher {
        let _ = f.join();
    }
    // Every acknowledged record is already durable; closing checkpoints and stops the threads.
    match Arc::try_unwrap(store) {
        Ok(s) => s.close()?,
        Err(s) => drop(s),
    }
    eprintln!("stele stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    match st.store.poisoned() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let store = st.store.clone();
    let text = tokio::task::spawn_blocking(move || {
        crate::metrics::registry(&store).and_then(|r| crate::metrics::text(&r))
    })
    .await;
    match (text, crate::metrics::text(&st.metrics.registry)) {
        (Ok(Ok(a)), Ok(b)) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            format!("{a}{b}"),
        )
            .into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response(),
    }
}

/// (stored seqs, duplicates, claimed keys, (source, type) of each stored record)
type Stored = (Vec<u64>, u64, Vec<String>, Vec<(String, String)>);

/// Store records, each once: ids already stored or being stored now are skipped.
/// Returns (stored seqs, duplicates). Acknowledged only once durable.
async fn store_once(
    st: &Arc<AppState>,
    source: &str,
    records: Vec<NewRecord>,
) -> Result<(Vec<u64>, u64), stele_engine::Error> {
    let t0 = Instant::now();
    let mut claimed = Vec::new();
    let mut dup = 0;
    for r in records {
        let key = format!("{}|{}", r.channel, r.record_id);
        let fresh = st
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        if !fresh {
            dup += 1;
            continue;
        }
        claimed.push((key, r));
    }
    let store = st.store.clone();
    let src = source.to_string();
    let result = tokio::task::spawn_blocking(move || -> Result<Stored, stele_engine::Error> {
        let mut pending = Vec::new();
        let mut dup = 0;
        let mut keys = Vec::new();
        let mut kinds = Vec::new();
        for (key, r) in claimed {
            keys.push(key);
            if !r.record_id.is_empty()
                && store
                    .by_record_id(&r.record_id, 8)?
                    .iter()
                    .any(|x| x.channel == r.channel && x.kind == r.kind)
            {
                dup += 1;
                continue;
            }
            kinds.push((src.clone(), r.message_type.clone()));
            pending.push(store.submit(r)?);
        }
        let mut seqs = Vec::new();
        for p in pending {
            seqs.push(p.wait()?.seq);
        }
        Ok((seqs, dup, keys, kinds))
    })
    .await
    .map_err(|e| stele_engine::Error::InvalidInput {
        what: "capture".into(),
        reason: e.to_string(),
    })?;
    let (seqs, more_dup, keys, kinds) = match result {
        Ok(x) => x,
        Err(e) => {
            st.metrics.errors.with_label_values(&[source]).inc();
            return Err(e);
        }
    };
    {
        let mut f = st.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            f.remove(&k);
        }
    }
    for (s, t) in kinds {
        st.metrics.captured.with_label_values(&[&s, &t]).inc();
    }
    st.metrics
        .duplicates
        .with_label_values(&[source])
        .inc_by(dup + more_dup);
    st.metrics
        .ack_latency
        .with_label_values(&[source])
        .observe(t0.elapsed().as_secs_f64());
    Ok((seqs, dup + more_dup))
}

/// Apply the consent policy to `r`: flag it, or refuse it (None).
fn consent_check(st: &AppState, mut r: NewRecord) -> Option<NewRecord> {
    if st.consent == ConsentPolicy::Off || r.custodian.is_empty() {
        return Some(r);
    }
    if st
        .consented
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&r.custodian)
    {
        return Some(r);
    }
    match st.consent {
        ConsentPolicy::Refuse => {
            st.metrics.no_consent.with_label_values(&["refused"]).inc();
            None
        }
        _ => {
            st.metrics.no_consent.with_label_values(&["flagged"]).inc();
            if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&r.body) {
                v["consent"] = json!("none on file");
                r.body = v.to_string().into_bytes();
            }
            Some(r)
        }
    }
}

async fn wa_verify(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(wa) = &st.whatsapp else {
        return (
            StatusCode::NOT_FOUND,
            "WhatsApp capture is not configured\n",
        )
            .into_response();
    };
    let token_ok = q.get("hub.verify_token").is_some_and(|t| {
        t.len() == wa.verify_token.len()
            && t.bytes()
                .zip(wa.verify_token.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
    });
    match (
        q.get("hub.mode").map(String::as_str),
        token_ok,
        q.get("hub.challenge"),
    ) {
        (Some("subscribe"), true, Some(c)) => (StatusCode::OK, c.clone()).into_response(),
        _ => (StatusCode::FORBIDDEN, "verification refused\n").into_response(),
    }
}

async fn wa_deliver(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(wa) = &st.whatsapp else {
        return (
            StatusCode::NOT_FOUND,
            "WhatsApp capture is not configured\n",
        )
            .into_response();
    };
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !whatsapp::signature_ok(&wa.app_secret, &body, sig) {
        st.metrics.signature_failures.inc();
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
        tracing::warn!(
            sha256 = digest,
            bytes = body.len(),
            "webhook delivery refused: bad or missing X-Hub-Signature-256"
        );
        let store = st.store.clone();
        let signed = sig.is_some();
        let _ = tokio::task::spawn_blocking(move || {
            store.record_refused_delivery("whatsapp", &digest, signed)
        })
        .await;
        return (StatusCode::UNAUTHORIZED, "bad signature\n").into_response();
    }
    st.metrics
        .bytes
        .with_label_values(&["whatsapp"])
        .inc_by(body.len() as u64);
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}\n"),
            )
                .into_response()
        }
    };
    let normalized = match whatsapp::normalize(&payload) {
        Ok(n) => n,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    let conv = normalized
        .first()
        .map_or("whatsapp".to_string(), |n| n.conversation.clone());
    let custodian = normalized
        .first()
        .map_or(String::new(), |n| n.custodian.clone());
    // The delivery verbatim, as evidence; then its records.
    let mut evidence = NewRecord::message(
        format!("whatsapp-delivery:{digest}"),
        conv,
        stele_engine::store::now_us(),
        body.to_vec(),
    )
    .with_custodian(custodian)
    .with_channel("whatsapp", "delivery");
    evidence.kind = FrameKind::Evidence;
    let mut records = vec![evidence];
    let mut media = Vec::new();
    for n in normalized {
        let mut b = n.body;
        b["evidence"] = json!(format!("whatsapp-delivery:{digest}"));
        if let Some((id, mime)) = &n.media {
            b["media"] = json!({"id": id, "mime_type": mime, "fetch": "queued"});
            media.push(crate::capture::media::Item {
                media_id: id.clone(),
                mime_type: mime.clone(),
                message_id: n.record_id.clone(),
                conversation: n.conversation.clone(),
                custodian: n.custodian.clone(),
                timestamp_us: n.timestamp_us,
                attempts: 0,
                last_error: None,
            });
        }
        let r = NewRecord::message(n.record_id, n.conversation, n.timestamp_us, b.to_string())
            .with_custodian(n.custodian)
            .with_channel("whatsapp", n.message_type);
        if let Some(r) = consent_check(&st, r) {
            records.push(r);
        }
    }
    // Media ids are queued durably before the delivery is acknowledged.
    if !media.is_empty() {
        let q = st.media_queue.clone();
        let queued = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
            let present = q.items()?;
            let mut n = 0;
            for item in &media {
                if !present.iter().any(|i| i.media_id == item.media_id) {
                    q.put(item)?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await;
        match queued {
            Ok(Ok(n)) => {
                st.metrics.media.depth.add(n as i64);
                let _ = st.media_wake.try_send(());
            }
            _ => {
                return (StatusCode::SERVICE_UNAVAILABLE, "media queue unavailable\n")
                    .into_response()
            }
        }
    }
    match store_once(&st, "whatsapp", records).await {
        Ok((seqs, dup)) => (
            StatusCode::OK,
            Json(json!({"stored": seqs.len(), "duplicates": dup})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not stored: {e}\n"),
        )
            .into_response(),
    }
}

async fn ingest(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not UTF-8 NDJSON\n").into_response();
    };
    st.metrics
        .bytes
        .with_label_values(&["api"])
        .inc_by(body.len() as u64);
    let (good, bad) = crate::capture::ndjson::parse(text);
    st.metrics.line_errors.inc_by(bad.len() as u64);
    let mut rejected: Vec<serde_json::Value> = bad
        .iter()
        .map(|(n, e)| json!({"line": n, "error": e}))
        .collect();
    let mut lines = Vec::new();
    let mut records = Vec::new();
    for l in good {
        match consent_check(&st, l.record) {
            Some(r) => {
                lines.push(l.number);
                records.push(r);
            }
            None => rejected.push(json!({"line": l.number, "error": "no capture consent on file for the custodian (capture.consent = \"refuse\")"})),
        }
    }
    rejected.sort_by_key(|v| v["line"].as_u64());
    let n = records.len();
    match store_once(&st, "api", records).await {
        Ok((seqs, dup)) => {
            let status = if n == 0 && !rejected.is_empty() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (status, Json(json!({"accepted": n, "stored": seqs.len(), "duplicates": dup, "lines": lines, "rejected": rejected}))).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not stored: {e}\n"),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Consent {
    custodian: String,
    signed_at: String,
    document_sha256: String,
}

async fn consent_post(State(st): State<Arc<AppState>>, Json(c): Json<Consent>) -> Response {
    if c.custodian.trim().is_empty()
        || c.document_sha256.len() != 64
        || !c.document_sha256.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return (
            StatusCode::BAD_REQUEST,
            "custodian must be set and document_sha256 must be 64 hex digits\n",
        )
            .into_response();
    }
    let Ok(at) = crate::when::parse(&c.signed_at) else {
        return (
            StatusCode::BAD_REQUEST,
            "signed_at must be YYYY-MM-DD[THH:MM:SSZ]\n",
        )
            .into_response();
    };
    let rec = NewRecord::message(
        format!("consent:{}:{}", c.custodian, c.document_sha256),
        CONSENT_CONVERSATION,
        at,
        json!({"custodian": c.custodian, "signed_at": c.signed_at, "document_sha256": c.document_sha256}).to_string(),
    )
    .with_custodian(c.custodian.clone())
    .with_channel("consent", "consent");
    match store_once(&st, "consent", vec![rec]).await {
        Ok(_) => {
            st.consented
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(c.custodian);
            (StatusCode::OK, "consent recorded\n").into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not stored: {e}\n"),
        )
            .into_response(),
    }
}

/// The conversation consent records are filed under.
pub const CONSENT_CONVERSATION: &str = "stele/consent";

fn load_consent(store: &Store) -> Result<HashSet<String>> {
    Ok(store
        .by_conversation(CONSENT_CONVERSATION, usize::MAX)?
        .into_iter()
        .filter(|r| r.channel == "consent")
        .map(|r| r.custodian)
        .collect())
}
