//! Prometheus metrics of a store: commit counters, zone use, the compliance
//! clock, keys, holds and erasures. `stele metrics` prints them in the text
//! exposition format; the daemon serves the same registry on `/metrics`.

use std::sync::atomic::Ordering::Relaxed;

use anyhow::Result;
use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use stele_engine::log::zone::ZoneCondition;
use stele_engine::Store;

fn gauge(r: &Registry, name: &str, help: &str, v: i64) -> Result<()> {
    let g = IntGauge::new(name, help)?;
    g.set(v);
    r.register(Box::new(g))?;
    Ok(())
}

/// A registry holding the store's current figures.
pub fn registry(store: &Store) -> Result<Registry> {
    let r = Registry::new();
    let st = store.stats();
    gauge(
        &r,
        "stele_records_total",
        "Frames appended since the store was opened.",
        st.records.load(Relaxed) as i64,
    )?;
    gauge(
        &r,
        "stele_log_bytes_total",
        "Bytes appended to the log since open.",
        st.log_bytes.load(Relaxed) as i64,
    )?;
    gauge(
        &r,
        "stele_group_commits_total",
        "Group commits (one fdatasync each) since open.",
        st.batches.load(Relaxed) as i64,
    )?;
    gauge(
        &r,
        "stele_checkpoints_total",
        "Superblock checkpoints since open.",
        st.checkpoints.load(Relaxed) as i64,
    )?;
    gauge(
        &r,
        "stele_next_seq",
        "Sequence number of the next record.",
        store.next_seq() as i64,
    )?;
    let zones = IntGaugeVec::new(
        Opts::new("stele_zones", "Zones by condition."),
        &["condition"],
    )?;
    for (name, c) in [
        ("empty", ZoneCondition::Empty),
        ("open", ZoneCondition::Open),
        ("sealed", ZoneCondition::Sealed),
        ("resetting", ZoneCondition::Resetting),
    ] {
        let n = store
            .zones()
            .states()
            .iter()
            .filter(|s| s.condition == c)
            .count();
        zones.with_label_values(&[name]).set(n as i64);
    }
    r.register(Box::new(zones))?;
    let backend = IntGaugeVec::new(
        Opts::new(
            "stele_io_backend",
            "The I/O submission path in use (1 = active).",
        ),
        &["backend", "direct_io"],
    )?;
    let rep = store.open_report();
    backend
        .with_label_values(&[&rep.io_backend.to_string(), &rep.direct_io.to_string()])
        .set(1);
    r.register(Box::new(backend))?;
    let c = &store.clock().stats;
    gauge(
        &r,
        "stele_compliance_clock_seconds",
        "The compliance clock (Unix seconds).",
        store.compliance_now_us() / 1_000_000,
    )?;
    gauge(
        &r,
        "stele_clock_gap_seconds",
        "System clock minus compliance clock.",
        c.gap_us.load(Relaxed) / 1_000_000,
    )?;
    gauge(
        &r,
        "stele_clock_forward_jumps_total",
        "System clock jumps ahead of elapsed time.",
        c.forward_jumps.load(Relaxed) as i64,
    )?;
    gauge(
        &r,
        "stele_clock_backward_jumps_total",
        "System clock jumps behind the compliance clock.",
        c.backward_jumps.load(Relaxed) as i64,
    )?;
    gauge(
        &r,
        "stele_clock_restarts_total",
        "Opens in a new boot (downtime not counted).",
        c.restarts.load(Relaxed) as i64,
    )?;
    if let Some(k) = store.keyring() {
        let keys = k.keys()?;
        let destroyed = keys.iter().filter(|k| k.destroyed.is_some()).count();
        let lost = keys.iter().filter(|k| k.lost.is_some()).count();
        gauge(
            &r,
            "stele_data_keys",
            "Live data keys in the keystore.",
            (keys.len() - destroyed - lost) as i64,
        )?;
        gauge(
            &r,
            "stele_data_keys_lost",
            "Data keys acknowledged lost with an older keystore.",
            lost as i64,
        )?;
        gauge(
            &r,
            "stele_keystore_missing_keys",
            "Data keys the log names and the keystore lacks (new records are refused while nonzero).",
            store.keystore_missing().len() as i64,
        )?;
        gauge(
            &r,
            "stele_data_keys_destroyed",
            "Data keys destroyed by erasure.",
            destroyed as i64,
        )?;
    }
    let comp = store.compliance();
    gauge(
        &r,
        "stele_legal_holds_active",
        "Legal holds in force.",
        comp.active_holds()?.len() as i64,
    )?;
    let erasures = comp.erasures()?;
    gauge(
        &r,
        "stele_erasures_waiting",
        "Erasure requests waiting for retention or holds.",
        erasures.iter().filter(|e| e.executed.is_none()).count() as i64,
    )?;
    gauge(
        &r,
        "stele_erasures_executed",
        "Erasure requests executed.",
        erasures.iter().filter(|e| e.executed.is_some()).count() as i64,
    )?;
    gauge(
        &r,
        "stele_zones_reclaimed_total",
        "Zones reset after their records left retention.",
        comp.reclaimed()?.len() as i64,
    )?;
    // Exported even before the first scrub (as zeros), so "no scrub yet" alerts as overdue.
    let last = store.scrub_reports(1)?.pop();
    gauge(
        &r,
        "stele_scrub_last_damage",
        "Damaged frames the last scrub found.",
        last.as_ref().map_or(0, |l| l.damage_count as i64),
    )?;
    gauge(
        &r,
        "stele_scrub_last_frames",
        "Frames the last scrub checked.",
        last.as_ref().map_or(0, |l| l.frames_checked as i64),
    )?;
    gauge(
        &r,
        "stele_scrub_last_started_seconds",
        "When the last scrub started (Unix seconds; 0: never).",
        last.as_ref().map_or(0, |l| l.started_us / 1_000_000),
    )?;
    Ok(r)
}

/// The text exposition of `registry`.
pub fn text(registry: &Registry) -> Result<String> {
    let mut buf = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buf)?;
    Ok(String::from_utf8(buf)?)
}
