//! The daemon's routes: each takes an HTTP request, authenticates it, turns
//! its body into capture items (the verbatim evidence, the normalised
//! records, the media queue entries), stores them through the capture
//! service ([`Capture`]) and answers with a status from its outcomes. No
//! route writes to the store any other way.
//!
//! * `GET /healthz`: the process is up.
//! * `GET /readyz`: the store is open and writable.
//! * `GET /metrics`: Prometheus text.
//! * `GET /webhooks/whatsapp`: the Cloud API verification handshake.
//! * `POST /webhooks/whatsapp`: deliveries, checked with `X-Hub-Signature-256`.
//! * `POST /v1/messages`: NDJSON batches (docs/API.md).
//! * `POST /v1/consent`: a custodian's signed consent.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;
use stele_engine::{FrameKind, NewRecord, Store};

use crate::access::IngestAuth;
use crate::capture::{whatsapp, Capture, Item, Outcome};
use crate::store_dir::StoreDir;

/// The WhatsApp Cloud API's shared secrets: the verification handshake's
/// token and the key deliveries are signed with.
pub struct WhatsAppSecrets {
    verify_token: String,
    app_secret: Vec<u8>,
}

impl WhatsAppSecrets {
    /// The secrets `[capture.whatsapp]` names, or none when it is absent.
    pub fn read(sd: &StoreDir) -> Result<Option<WhatsAppSecrets>> {
        Ok(match &sd.config.capture.whatsapp {
            Some(w) => Some(WhatsAppSecrets {
                verify_token: sd.read_secret(&w.verify_token_file, "WhatsApp verify token")?,
                app_secret: sd
                    .read_secret(&w.app_secret_file, "WhatsApp app secret")?
                    .into_bytes(),
            }),
            None => None,
        })
    }
}

/// What every route shares.
pub struct AppState {
    pub store: Arc<Store>,
    pub capture: Arc<Capture>,
    pub whatsapp: Option<WhatsAppSecrets>,
    pub media_queue: Arc<crate::capture::media::Queue>,
    pub media_wake: crossbeam_channel::Sender<()>,
}

/// Every route, bodies limited to `max_body` bytes, the ingest routes
/// checked against `ingest_auth`.
pub fn router(state: Arc<AppState>, ingest_auth: Arc<IngestAuth>, max_body: usize) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/whatsapp", get(wa_verify).post(wa_deliver))
        .route("/v1/messages", post(ingest))
        .route("/v1/consent", post(consent_post))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::Extension(ingest_auth))
        .with_state(state)
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    match st.store.write_refusal() {
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
        super::metrics::registry(&store).and_then(|r| super::metrics::text(&r))
    })
    .await;
    match (text, super::metrics::text(&st.capture.metrics().registry)) {
        (Ok(Ok(a)), Ok(b)) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            format!("{a}{b}"),
        )
            .into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response(),
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
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    if !whatsapp::signature_ok(&wa.app_secret, &body, sig) {
        st.capture.metrics().signature_failures.inc();
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
    st.capture
        .metrics()
        .bytes
        .with_label_values(&["whatsapp"])
        .inc_by(body.len() as u64);
    let received = stele_engine::store::now_us();
    let st2 = st.clone();
    match tokio::task::spawn_blocking(move || deliver(&st2, &body, &digest, received)).await {
        Ok(r) => r,
        Err(e) => unavailable(format!("capture: {e}")),
    }
}

fn unavailable(why: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not stored: {why}\n"),
    )
        .into_response()
}

/// Store a correctly signed delivery (blocking): verbatim as evidence, and
/// one record per item it carries. A delivery that cannot be read is kept
/// verbatim, answered 200 (so the sender does not retry it into loss),
/// counted and audited.
fn deliver(st: &AppState, body: &[u8], digest: &str, received: i64) -> Response {
    let normalized = serde_json::from_slice::<serde_json::Value>(body)
        .map_err(|e| format!("the body is not JSON: {e}"))
        .and_then(|p| whatsapp::normalize(&p, received));
    let evidence_id = format!("whatsapp-delivery:{digest}");
    let normalized = match normalized {
        Ok(n) => n,
        Err(why) => return deliver_unreadable(st, body, &evidence_id, received, &why),
    };
    let conv = normalized
        .first()
        .map_or("whatsapp".to_string(), |n| n.conversation.clone());
    let custodian = normalized
        .first()
        .map_or(String::new(), |n| n.custodian.clone());
    let evidence = NewRecord::message(evidence_id.clone(), conv, received, Vec::new())
        .with_custodian(custodian)
        .with_channel("whatsapp", "delivery");
    let evidence = match verbatim(st, evidence, body) {
        Ok(e) => e,
        Err(e) => return unavailable(format!("evidence: {e}")),
    };
    let mut items = vec![evidence];
    let mut media = Vec::new();
    for n in normalized {
        for f in &n.flags {
            st.capture.metrics().flagged.with_label_values(&[f]).inc();
        }
        let mut b = n.body;
        b["evidence"] = json!(evidence_id);
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
        items.push(Item {
            record: r,
            fingerprint: n.fingerprint,
        });
    }
    // Media ids are queued durably before the delivery is acknowledged.
    if let Err(e) = queue_media(st, &media) {
        return unavailable(format!("media queue: {e}"));
    }
    match st.capture.store("whatsapp", items) {
        Ok(outcomes) => batch_response(&outcomes),
        Err(e) => unavailable(e.to_string()),
    }
}

/// `rec` as the verbatim evidence of `body`: the body itself, or, when it is
/// over the record limit, a blob holding it (streamed, any size) and a body
/// naming the blob.
fn verbatim(st: &AppState, mut rec: NewRecord, body: &[u8]) -> stele_engine::Result<Item> {
    rec.kind = FrameKind::Evidence;
    rec.body = body.to_vec();
    if st.store.check(&rec).is_ok() {
        return Ok(Item::new(rec, body));
    }
    let b = st.store.put_blob_for(body, &rec)?;
    rec.body = json!({"blob": {"seq": b.seq, "sha256": hex::encode(b.sha256), "bytes": b.len}})
        .to_string()
        .into_bytes();
    let content = rec.body.clone();
    Ok(Item::new(rec, &content))
}

fn queue_media(st: &AppState, media: &[crate::capture::media::Item]) -> Result<()> {
    if media.is_empty() {
        return Ok(());
    }
    let present = st.media_queue.items()?;
    let mut n = 0;
    for item in media {
        if !present.iter().any(|i| i.media_id == item.media_id) {
            st.media_queue.put(item)?;
            n += 1;
        }
    }
    st.capture.metrics().media.depth.add(n);
    let _ = st.media_wake.try_send(());
    Ok(())
}

fn deliver_unreadable(
    st: &AppState,
    body: &[u8],
    evidence_id: &str,
    received: i64,
    why: &str,
) -> Response {
    tracing::warn!(
        evidence_id,
        why,
        "signed delivery could not be read; kept verbatim"
    );
    let evidence = NewRecord::message(evidence_id, "whatsapp", received, Vec::new())
        .with_channel("whatsapp", "delivery-unreadable");
    let evidence = match verbatim(st, evidence, body) {
        Ok(e) => e,
        Err(e) => return unavailable(format!("evidence: {e}")),
    };
    let outcomes = match st.capture.store("whatsapp", vec![evidence]) {
        Ok(o) => o,
        Err(e) => return unavailable(e.to_string()),
    };
    if let Some(Outcome::Stored { seq }) = outcomes.first() {
        st.capture
            .metrics()
            .unreadable
            .with_label_values(&["whatsapp"])
            .inc();
        let event = stele_engine::compliance::audit::Action::DeliveryUnreadable {
            source: "whatsapp".into(),
            body_sha256: evidence_id.trim_start_matches("whatsapp-delivery:").into(),
            evidence_seq: *seq,
        };
        if let Err(e) = st.store.record_capture_event(
            "whatsapp webhook sender",
            event,
            stele_engine::compliance::audit::Outcome::Done,
            why,
        ) {
            tracing::error!(error = %e, "could not audit an unreadable delivery");
        }
    }
    let mut r = batch_response(&outcomes);
    if r.status() == StatusCode::OK {
        r = (
            StatusCode::OK,
            Json(json!({"stored": outcomes.iter().filter(|o| matches!(o, Outcome::Stored { .. })).count(), "unreadable": why})),
        )
            .into_response();
    }
    r
}

/// Counts of a batch's outcomes, by kind.
fn tally(outcomes: &[Outcome]) -> serde_json::Value {
    let n = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    json!({
        "stored": n(|o| matches!(o, Outcome::Stored { .. })),
        "duplicates": n(|o| matches!(o, Outcome::Duplicate { .. })),
        "conflicts": n(|o| matches!(o, Outcome::Conflict { .. })),
        "refused": n(|o| matches!(o, Outcome::Refused { .. })),
        "invalid": n(|o| matches!(o, Outcome::Invalid { .. })),
        "failed": n(|o| matches!(o, Outcome::Failed { .. })),
    })
}

/// 200 with the tally, or 503 when the store failed for any item (a retry
/// stores what is missing; what was stored is then a duplicate).
fn batch_response(outcomes: &[Outcome]) -> Response {
    let t = tally(outcomes);
    let failed = outcomes.iter().find_map(|o| match o {
        Outcome::Failed { why } => Some(why.clone()),
        _ => None,
    });
    match failed {
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": format!("not stored: {why}"), "outcome": t})),
        )
            .into_response(),
        None => (StatusCode::OK, Json(t)).into_response(),
    }
}

async fn ingest(
    State(st): State<Arc<AppState>>,
    Extension(auth): Extension<Arc<IngestAuth>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match auth.check("api", &headers, &body).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    st.capture
        .metrics()
        .bytes
        .with_label_values(&["api"])
        .inc_by(body.len() as u64);
    let st2 = st.clone();
    match tokio::task::spawn_blocking(move || ingest_batch(&st2, &body, &who.name)).await {
        Ok(r) => r,
        Err(e) => unavailable(format!("capture: {e}")),
    }
}

/// Store an NDJSON batch sent by the principal `who` (blocking): every line
/// is checked before any is written; each line is answered on its own.
fn ingest_batch(st: &AppState, body: &[u8], who: &str) -> Response {
    let Ok(text) = std::str::from_utf8(body) else {
        refuse_request(st, "api", body, "the body is not UTF-8 NDJSON");
        return (StatusCode::BAD_REQUEST, "the body is not UTF-8 NDJSON\n").into_response();
    };
    let (good, bad) = crate::capture::ndjson::parse(text);
    st.capture.metrics().line_errors.inc_by(bad.len() as u64);
    let mut rejected: Vec<serde_json::Value> = bad
        .iter()
        .map(|(n, e)| json!({"line": n, "error": e}))
        .collect();
    let numbers: Vec<usize> = good.iter().map(|l| l.number).collect();
    let items = good.into_iter().map(|l| attributed(l.item, who)).collect();
    let outcomes = match st.capture.store("api", items) {
        Ok(o) => o,
        Err(e) => return unavailable(e.to_string()),
    };
    let mut kept = Vec::new();
    let mut failed = Vec::new();
    for (n, o) in numbers.iter().zip(&outcomes) {
        match o {
            Outcome::Stored { .. } | Outcome::Duplicate { .. } | Outcome::Conflict { .. } => {
                kept.push(*n)
            }
            Outcome::Refused { why } | Outcome::Invalid { why } => {
                st.capture.metrics().line_errors.inc();
                rejected.push(json!({"line": n, "error": why}))
            }
            Outcome::Failed { why } => failed.push(json!({"line": n, "error": why})),
        }
    }
    rejected.sort_by_key(|v| v["line"].as_u64());
    let status = if !failed.is_empty() {
        StatusCode::SERVICE_UNAVAILABLE
    } else if kept.is_empty() && !rejected.is_empty() {
        refuse_request(st, "api", body, "no line of the batch could be stored");
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut answer = tally(&outcomes);
    answer["accepted"] = json!(numbers.len());
    answer["lines"] = json!(kept);
    answer["rejected"] = json!(rejected);
    answer["failed_lines"] = json!(failed);
    (status, Json(answer)).into_response()
}

/// `item` with the principal that sent it named in its body.
fn attributed(mut item: Item, who: &str) -> Item {
    if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&item.record.body) {
        if v.is_object() {
            v["ingested_by"] = json!(who);
            item.record.body = v.to_string().into_bytes();
        }
    }
    item
}

/// Count and audit a request refused as a whole (only its SHA-256 is kept).
fn refuse_request(st: &AppState, source: &str, body: &[u8], why: &str) {
    st.capture
        .metrics()
        .errors
        .with_label_values(&[source])
        .inc();
    let event = stele_engine::compliance::audit::Action::DeliveryRefused {
        source: source.into(),
        body_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body)),
    };
    let outcome = stele_engine::compliance::audit::Outcome::Refused { why: why.into() };
    if let Err(e) =
        st.store
            .record_capture_event(&format!("{source} client"), event, outcome, "request check")
    {
        tracing::error!(error = %e, "could not audit a refused request");
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Consent {
    custodian: String,
    signed_at: String,
    document_sha256: String,
}

async fn consent_post(
    State(st): State<Arc<AppState>>,
    Extension(auth): Extension<Arc<IngestAuth>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match auth.check("consent", &headers, &body).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let c: Consent = match crate::access::read_json(&headers, body).await {
        Ok(c) => c,
        Err(rejected) => return rejected,
    };
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
    let Ok(at) = crate::capture::timestamp::from_str(&c.signed_at) else {
        return (
            StatusCode::BAD_REQUEST,
            "signed_at must be an RFC 3339 time (YYYY-MM-DD[THH:MM:SSZ])\n",
        )
            .into_response();
    };
    let content = json!({"custodian": c.custodian, "signed_at": c.signed_at, "document_sha256": c.document_sha256});
    let rec = NewRecord::message(
        format!("consent:{}:{}", c.custodian, c.document_sha256),
        CONSENT_CONVERSATION,
        at,
        content.to_string(),
    )
    .with_custodian(c.custodian.clone())
    .with_channel("consent", "consent");
    let item = attributed(Item::new(rec, content.to_string().as_bytes()), &who.name);
    let st2 = st.clone();
    let done = tokio::task::spawn_blocking(move || st2.capture.store("consent", vec![item])).await;
    match done {
        Ok(Ok(o)) if o.first().is_some_and(Outcome::is_kept) => {
            st.capture.consent_recorded(&c.custodian);
            (StatusCode::OK, "consent recorded\n").into_response()
        }
        Ok(Ok(o)) => match o.first() {
            Some(Outcome::Invalid { why }) | Some(Outcome::Refused { why }) => {
                (StatusCode::BAD_REQUEST, format!("not stored: {why}\n")).into_response()
            }
            _ => batch_response(&o),
        },
        Ok(Err(e)) => unavailable(e.to_string()),
        Err(e) => unavailable(format!("capture: {e}")),
    }
}

/// The conversation consent records are filed under.
pub use crate::capture::service::CONSENT_CONVERSATION;
