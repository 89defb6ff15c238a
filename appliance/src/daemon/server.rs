//! `stele serve`: the daemon's life. One instance per store (a lock file),
//! the configuration checked as `stele config check` does, TLS 1.3
//! (rustls), the store opened with its background scrub, the capture
//! service, media downloads and counters started, the routes served on a
//! tokio runtime, and a graceful stop on SIGTERM or Ctrl-C that loses no
//! acknowledged record: requests in flight finish, downloads stop, the store
//! closes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::Router;
use firmware_config::{ScrubSection, ServerSection};
use stele_engine::integrity::scrub::ScrubMode;
use stele_engine::Store;

use super::listener::{self, ListenerMetrics};
use super::routes::{self, AppState, WhatsAppSecrets};
use crate::access::IngestAuth;
use crate::capture::metrics::CaptureMetrics;
use crate::capture::{media, Capture};
use crate::store_dir::StoreDir;

/// Run the daemon on the store whose configuration is `config` (the store lives beside it).
pub fn run(config: &Path) -> Result<()> {
    let root = store_root(config)?;
    let _lock = lock(&root)?;
    listener::check_serving(config)?;
    let sd = StoreDir::load(&root)?;
    let server = sd.config.server.clone();
    let addr: SocketAddr = server.listen.parse().context("server.listen")?;
    let tls = tls(&sd, &server, addr)?;
    let whatsapp = WhatsAppSecrets::read(&sd)?;
    let max_body = sd.config.capture.max_body_kib as usize * 1024;
    let (_, store) = StoreDir::open(&root)?;
    let store = Arc::new(store);
    store.start_background_scrub(background_scrub(&sd.config.scrub));
    let s = services(&sd, &root, &store, whatsapp)?;
    let app = routes::router(s.state, s.ingest_auth, max_body);
    serve(&root, addr, tls, &server, s.listener_metrics, app)?;
    s.downloads.stop();
    // Every acknowledged record is already durable; closing checkpoints and stops the threads.
    match Arc::try_unwrap(store) {
        Ok(s) => s.close()?,
        Err(s) => drop(s),
    }
    eprintln!("stele stopped");
    Ok(())
}

/// The store's folder: the one `config` (its stele.toml) lies in.
fn store_root(config: &Path) -> Result<PathBuf> {
    let root = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    if config
        .file_name()
        .is_none_or(|n| n != firmware_config::CONFIG_FILE)
    {
        bail!(
            "--config must name a store's {} (got {})",
            firmware_config::CONFIG_FILE,
            config.display()
        );
    }
    Ok(root)
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

/// TLS 1.3 with the certificate and key; with `client_ca`, clients must
/// present a certificate that CA signed (mutual TLS).
fn tls_config(
    sd: &StoreDir,
    cert: &str,
    key: &str,
    client_ca: Option<&str>,
) -> Result<rustls::ServerConfig> {
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
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?;
    let builder = match client_ca {
        Some(ca) => {
            builder.with_client_cert_verifier(listener::client_verifier(&sd.resolve(ca), provider)?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// TLS as `server` configures it, or none: plain HTTP is allowed only with
/// `allow_plain_http` on a loopback address.
fn tls(
    sd: &StoreDir,
    server: &ServerSection,
    addr: SocketAddr,
) -> Result<Option<rustls::ServerConfig>> {
    Ok(match (&server.tls_cert, &server.tls_key) {
        (Some(c), Some(k)) => Some(tls_config(sd, c, k, server.client_ca.as_deref())?),
        _ if server.allow_plain_http && addr.ip().is_loopback() => None,
        _ => bail!("server: TLS needs tls_cert and tls_key (plain HTTP is allowed only with allow_plain_http on a loopback address)"),
    })
}

/// The background scrub as `[scrub]` configures it.
fn background_scrub(scrub: &ScrubSection) -> stele_engine::BackgroundScrub {
    stele_engine::BackgroundScrub {
        interval: Duration::from_secs(scrub.interval_hours as u64 * 3600),
        mode: match scrub.mode {
            firmware_config::ScrubMode::Full => ScrubMode::Full,
            firmware_config::ScrubMode::Sampled => ScrubMode::Sampled {
                percent: scrub.sample_percent,
                min_records: scrub.sample_min_records,
            },
        },
        bytes_per_sec: Some(
            scrub.device_read_mb_s as u64 * 1_000_000 * scrub.bandwidth_percent as u64 / 100,
        ),
    }
}

/// What serves requests beside the store.
struct Services {
    /// What the routes share: the store, the capture service, the media queue.
    state: Arc<AppState>,
    /// The principals allowed on the ingest routes.
    ingest_auth: Arc<IngestAuth>,
    listener_metrics: ListenerMetrics,
    downloads: Downloads,
}

/// Start the capture service and its counters, the media queue and its
/// downloads, and the ingest principals' check, on `store`.
fn services(
    sd: &StoreDir,
    root: &Path,
    store: &Arc<Store>,
    whatsapp: Option<WhatsAppSecrets>,
) -> Result<Services> {
    let media_queue = Arc::new(media::Queue::open(root)?);
    let (media_wake, wake_rx) = crossbeam_channel::bounded(1);
    let capture_metrics = CaptureMetrics::new()?;
    let listener_metrics = ListenerMetrics::new(&capture_metrics.registry)?;
    let ingest_auth = Arc::new(IngestAuth::new(
        &sd.config,
        store.clone(),
        &capture_metrics.registry,
    )?);
    let downloads = Downloads::start(sd, store, &media_queue, &capture_metrics, wake_rx)?;
    capture_metrics
        .media
        .depth
        .set(media_queue.items()?.len() as i64);
    let consent = sd.config.capture.consent;
    let capture = Arc::new(Capture::new(store.clone(), consent, Some(capture_metrics))?);
    let state = Arc::new(AppState {
        store: store.clone(),
        capture,
        whatsapp,
        media_queue,
        media_wake,
    });
    Ok(Services {
        state,
        ingest_auth,
        listener_metrics,
        downloads,
    })
}

/// The thread that downloads queued media from the Graph API, when an access
/// token is configured, and the flag that stops it.
struct Downloads {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Downloads {
    fn start(
        sd: &StoreDir,
        store: &Arc<Store>,
        queue: &Arc<media::Queue>,
        metrics: &CaptureMetrics,
        wake: crossbeam_channel::Receiver<()>,
    ) -> Result<Downloads> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = match sd.config.capture.whatsapp.as_ref().map(|w| {
            (
                w.graph_base_url.clone(),
                w.access_token_file.clone(),
                w.media_workers,
            )
        }) {
            Some((base, Some(token_file), workers)) => {
                let token = sd.read_secret(&token_file, "Graph API access token")?;
                let f = media::Fetcher::new(&base, token);
                let (s, q, m, stop) = (
                    store.clone(),
                    queue.clone(),
                    metrics.media.clone(),
                    stop.clone(),
                );
                Some(
                    std::thread::Builder::new()
                        .name("stele-media".into())
                        .spawn(move || media::run(s, q, f, m, stop, wake, workers))?,
                )
            }
            Some((_, None, _)) => {
                tracing::warn!("capture.whatsapp.access_token_file is not set: media ids are queued but not downloaded");
                None
            }
            None => None,
        };
        Ok(Downloads { stop, thread })
    }

    /// Stop downloading and wait for the thread.
    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread {
            let _ = t.join();
        }
    }
}

/// Serve `app` on `addr` until SIGTERM or Ctrl-C, then let requests in
/// flight finish (up to 30 s).
fn serve(
    root: &Path,
    addr: SocketAddr,
    tls: Option<rustls::ServerConfig>,
    server: &ServerSection,
    listener_metrics: ListenerMetrics,
    app: Router,
) -> Result<()> {
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
        listener::serve(addr, tls, server, listener_metrics, handle, app).await
    })
    .context("serving")?;
    drop(rt);
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
