//! The daemon's listener: connection limits and timeouts, so that slow or
//! numerous clients cannot lock others out of `/healthz`, `/readyz` and the
//! capture endpoints.
//!
//! * At most `server.max_connections` connections are open at once, and at
//!   most `server.max_connections_per_source` from one IP address; a
//!   connection over either limit is closed as soon as it is accepted
//!   (before any TLS), and counted in `stele_connections_refused_total`.
//! * The TLS handshake must finish within `handshake_timeout_s`; a request's
//!   headers within `header_timeout_s` (hyper's HTTP/1 header read timeout,
//!   and the time to a connection's first request for every protocol); its
//!   body within `body_timeout_s` (answered 408); a connection with no
//!   request in progress and no byte sent or received for `idle_timeout_s`
//!   is closed.
//! * `check_serving` is the one check of the configuration that `stele serve`
//!   and `stele config check` share.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use firmware_config::{Config, ServerSection};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Load `path` and check everything `stele serve` would refuse: the
/// configuration's own rules, then TLS and the files the daemon reads.
pub fn check_serving(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| firmware_config::ConfigError::Read {
            path: path.into(),
            source: e,
        })
        .map_err(anyhow::Error::from)?;
    let cfg = Config::parse(path, &text)?;
    cfg.check_serving(path, Some(&text), &|p| p.is_file())?;
    Ok(cfg)
}

/// The listener's counters.
#[derive(Clone)]
pub struct ListenerMetrics {
    refused: IntCounterVec,
    open: IntGauge,
}

impl ListenerMetrics {
    /// The counters, registered in `registry`.
    pub fn new(registry: &Registry) -> Result<ListenerMetrics> {
        let refused = IntCounterVec::new(
            Opts::new(
                "stele_connections_refused_total",
                "Connections closed at once because a connection limit was reached, by limit.",
            ),
            &["limit"],
        )?;
        let open = IntGauge::new("stele_connections_open", "Connections open now.")?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(open.clone()))?;
        for limit in ["max_connections", "max_connections_per_source"] {
            refused.with_label_values(&[limit]);
        }
        Ok(ListenerMetrics { refused, open })
    }
}

/// Connections open now: all of them, and by source address.
struct Limits {
    all: Arc<Semaphore>,
    by_source: Mutex<HashMap<IpAddr, u32>>,
    per_source: u32,
    idle: Duration,
    metrics: ListenerMetrics,
}

/// One connection's share of the per-source count, given back on drop.
struct SourceSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut m = self
            .limits
            .by_source
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// An acceptor that admits a connection only within the limits; it runs
/// before the TLS handshake (as the TLS acceptor's inner acceptor).
#[derive(Clone)]
pub struct LimitAcceptor {
    limits: Arc<Limits>,
}

impl LimitAcceptor {
    pub fn new(server: &ServerSection, metrics: ListenerMetrics) -> LimitAcceptor {
        LimitAcceptor {
            limits: Arc::new(Limits {
                all: Arc::new(Semaphore::new(server.max_connections as usize)),
                by_source: Mutex::new(HashMap::new()),
                per_source: server.max_connections_per_source,
                idle: Duration::from_secs(server.idle_timeout_s as u64),
                metrics,
            }),
        }
    }

    fn refuse(&self, limit: &str, ip: IpAddr) -> io::Error {
        self.limits
            .metrics
            .refused
            .with_label_values(&[limit])
            .inc();
        tracing::debug!(%ip, limit, "connection refused: limit reached");
        io::Error::other(format!("{limit} reached"))
    }

    fn admit(&self, stream: &TcpStream) -> io::Result<(OwnedSemaphorePermit, SourceSlot)> {
        let ip = stream.peer_addr()?.ip().to_canonical();
        let Ok(permit) = self.limits.all.clone().try_acquire_owned() else {
            return Err(self.refuse("max_connections", ip));
        };
        let mut m = self
            .limits
            .by_source
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= self.limits.per_source {
            drop(m);
            return Err(self.refuse("max_connections_per_source", ip));
        }
        *n += 1;
        let slot = SourceSlot {
            limits: self.limits.clone(),
            ip,
        };
        Ok((permit, slot))
    }
}

impl<S> axum_server::accept::Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Limited;
    type Service = InFlight<S>;
    type Future = std::future::Ready<io::Result<(Limited, InFlight<S>)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(self.admit(&stream).map(|(permit, slot)| {
            let busy = Arc::new(AtomicUsize::new(0));
            self.limits.metrics.open.inc();
            let idle = self.limits.idle;
            let stream = Limited {
                inner: stream,
                idle,
                deadline: Box::pin(tokio::time::sleep(idle)),
                busy: busy.clone(),
                open: self.limits.metrics.open.clone(),
                _permit: permit,
                _slot: slot,
            };
            (
                stream,
                InFlight {
                    inner: service,
                    busy,
                },
            )
        }))
    }
}

/// An admitted connection: holds its places in the limits for its life and
/// ends itself when idle.
pub struct Limited {
    inner: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Requests of this connection in progress.
    busy: Arc<AtomicUsize>,
    open: IntGauge,
    _permit: OwnedSemaphorePermit,
    _slot: SourceSlot,
}

impl Limited {
    fn touch(&mut self) {
        let at = Instant::now() + self.idle;
        self.deadline.as_mut().reset(at);
    }

    /// Whether the connection has been idle too long (no request in progress).
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.deadline.as_mut().poll(cx).is_ready() {
            if self.busy.load(Ordering::Acquire) == 0 {
                return true;
            }
            self.touch();
        }
        false
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection's service that counts its requests in progress, so a
/// connection waiting for a slow answer is not taken for idle.
#[derive(Clone)]
pub struct InFlight<S> {
    inner: S,
    busy: Arc<AtomicUsize>,
}

/// Counts one request in progress until dropped.
struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, R> tower_service::Service<R> for InFlight<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.busy.fetch_add(1, Ordering::AcqRel);
        let busy = Busy(self.busy.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            drop(busy);
            r
        })
    }
}

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    fired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(f) => Poll::Ready(f.map(|r| r.map_err(Into::into))),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.fired.store(true, Ordering::Release);
                    Poll::Ready(Some(Err("request body timed out".into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: the request's body must arrive within `limit` of its
/// headers, or the answer is 408 and the connection is closed.
pub async fn body_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let fired = Arc::new(AtomicBool::new(false));
    let f = fired.clone();
    let req = req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            fired: f,
        })
    });
    let answer = next.run(req).await;
    if fired.load(Ordering::Acquire) {
        return (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            format!(
                "the request body did not arrive within {} s\n",
                limit.as_secs()
            ),
        )
            .into_response();
    }
    answer
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(s as u64)
}

/// Serve `app` on `addr` within the limits of `server`, over TLS when `tls`
/// is given, until `handle` shuts down.
pub async fn serve(
    addr: SocketAddr,
    tls: Option<rustls::ServerConfig>,
    server: &ServerSection,
    metrics: ListenerMetrics,
    handle: axum_server::Handle<SocketAddr>,
    app: Router,
) -> io::Result<()> {
    let limit = LimitAcceptor::new(server, metrics);
    let app = app.layer(axum::middleware::from_fn_with_state(
        secs(server.body_timeout_s),
        body_deadline,
    ));
    let header = secs(server.header_timeout_s);
    let mut srv = axum_server::bind(addr)
        .handle(handle)
        .first_request_timeout(header);
    srv.http_builder()
        .http1()
        .header_read_timeout(header)
        .keep_alive(true);
    match tls {
        Some(cfg) => {
            let cfg = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cfg));
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(cfg)
                .handshake_timeout(secs(server.handshake_timeout_s))
                .acceptor(limit);
            srv.acceptor(acceptor).serve(app.into_make_service()).await
        }
        None => srv.acceptor(limit).serve(app.into_make_service()).await,
    }
}

/// A verifier that accepts only client certificates signed by a CA in the
/// PEM file `path`.
pub fn client_verifier(
    path: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let what = || format!("client CA {}", path.display());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(path).with_context(what)? {
        roots.add(c.with_context(what)?).with_context(what)?;
    }
    if roots.is_empty() {
        anyhow::bail!("{} holds no certificate", what());
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .with_context(what)
}
