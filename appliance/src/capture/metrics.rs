//! What capture counts, for Prometheus: records by source and type, bytes,
//! acknowledgement latency, duplicates, conflicts, refusals and unreadable
//! deliveries, consent outcomes and the media queue.

use anyhow::Result;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Counters of what the daemon captured.
#[derive(Clone)]
pub struct CaptureMetrics {
    pub registry: Registry,
    pub captured: IntCounterVec,
    pub bytes: IntCounterVec,
    pub ack_latency: HistogramVec,
    pub signature_failures: IntCounter,
    pub line_errors: IntCounter,
    pub duplicates: IntCounterVec,
    pub errors: IntCounterVec,
    pub no_consent: IntCounterVec,
    pub conflicts: IntCounterVec,
    pub unreadable: IntCounterVec,
    pub flagged: IntCounterVec,
    pub media: crate::capture::media::MediaMetrics,
}

impl CaptureMetrics {
    pub fn new() -> Result<CaptureMetrics> {
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
        let conflicts = IntCounterVec::new(
            Opts::new(
                "stele_capture_conflicts_total",
                "Record ids that arrived again with different content (both kept, linked by a conflict record).",
            ),
            &["source"],
        )?;
        let unreadable = IntCounterVec::new(
            Opts::new(
                "stele_capture_unreadable_total",
                "Authenticated deliveries that could not be read, kept verbatim as evidence.",
            ),
            &["source"],
        )?;
        let flagged = IntCounterVec::new(
            Opts::new(
                "stele_capture_flagged_total",
                "Records stored with a flag (e.g. an unparsable timestamp, dated by receipt).",
            ),
            &["flag"],
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
            Box::new(conflicts.clone()),
            Box::new(unreadable.clone()),
            Box::new(flagged.clone()),
            Box::new(media.depth.clone()),
            Box::new(media.unreadable.clone()),
            Box::new(media.fetched.clone()),
            Box::new(media.failures.clone()),
        ] {
            registry.register(c)?;
        }
        // Known label sets start at zero, so every series exists before its first event.
        for source in ["whatsapp", "api", "consent", "import"] {
            errors.with_label_values(&[source]);
            conflicts.with_label_values(&[source]);
            unreadable.with_label_values(&[source]);
            duplicates.with_label_values(&[source]);
            bytes.with_label_values(&[source]);
        }
        flagged.with_label_values(&["timestamp-unparsed"]);
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
            conflicts,
            unreadable,
            flagged,
            media,
        })
    }
}
