//! Capture answers only what the archive holds: a real `stele serve` over
//! TLS, driven with signed webhook deliveries and NDJSON batches, then the
//! store read back with the CLI once the daemon has stopped.

use std::path::Path;

use serde_json::{json, Value};
use stele_tests::daemon::{Daemon, Setup, INGEST_PRINCIPAL, INGEST_TOKEN};
use stele_tests::Scratch;

const BIN: &str = env!("CARGO_BIN_EXE_stele");

fn start(dir: &Path) -> Daemon {
    Daemon::start_setup(Path::new(BIN), dir, &Setup::default())
}

fn ndjson(d: &Daemon, lines: &[Value]) -> (u16, Value) {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let (code, text) = d.post(
        "/v1/messages",
        body.as_bytes(),
        &[
            "Content-Type: application/x-ndjson".into(),
            format!("Authorization: Bearer {INGEST_TOKEN}"),
        ],
    );
    (
        code,
        serde_json::from_str(&text).unwrap_or(json!({"raw": text})),
    )
}

fn line(id: &str, custodian: &str, text: &str) -> Value {
    json!({"id": id, "channel": "sms", "conversation": "desk-1", "custodian": custodian,
           "timestamp": "2026-11-25T10:00:00Z", "text": text})
}

/// The store of a daemon that has stopped.
struct Stopped(std::path::PathBuf);

fn stop(d: Daemon) -> Stopped {
    let store = d.store.clone();
    d.stop();
    Stopped(store)
}

fn cli(args: &[&str]) -> std::process::Output {
    stele_tests::daemon::stele(Path::new(BIN), args)
}

/// Records the stopped daemon's store holds under `flag value`, as JSON lines.
fn records(d: &Stopped, flag: &str, value: &str) -> Vec<Value> {
    let store = d.0.to_str().unwrap();
    let o = cli(&["get", "--store", store, flag, value, "--limit", "1000"]);
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && err.contains("no record") {
        return Vec::new(); // nothing matched: said on stderr, exit status nonzero
    }
    assert!(o.status.success(), "{err}");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn audit(d: &Stopped) -> String {
    let o = cli(&["audit", "--store", d.0.to_str().unwrap()]);
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).into()
}

fn body(r: &Value) -> Value {
    serde_json::from_str(r["body"].as_str().unwrap()).unwrap()
}

#[test]
fn one_bad_line_costs_one_line_and_a_retry_stores_the_rest() {
    let dir = Scratch::new();
    let d = start(dir.path());
    let long = "x".repeat(2000);
    let (code, a) = ndjson(
        &d,
        &[
            line("R", "ann", "r"),
            line("S", &long, "s"),
            line("T", "ann", "t"),
        ],
    );
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["lines"], json!([1, 3]), "{a}");
    assert_eq!(a["stored"], 2, "{a}");
    assert_eq!(a["rejected"][0]["line"], 2, "{a}");
    assert!(
        a["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("custodian"),
        "{a}"
    );
    // The good lines are in the archive: a resend is a duplicate, not lost.
    let (code, b) = ndjson(&d, &[line("T", "ann", "t")]);
    assert_eq!(
        (code, b["duplicates"].clone(), b["stored"].clone()),
        (200, json!(1), json!(0))
    );
    // The fixed line was never claimed by the failed one: it is stored now.
    let (code, c) = ndjson(&d, &[line("S", "ann", "s")]);
    assert_eq!((code, c["stored"].clone()), (200, json!(1)), "{c}");
    // Every line rejected: 400, nothing stored, and the refusal is audited.
    let (code, e) = ndjson(&d, &[json!({"id": "U"}), line("V", &long, "v")]);
    assert_eq!(code, 400, "{e}");
    assert_eq!(e["stored"], 0);
    let d = stop(d);
    for id in ["sms:R", "sms:S", "sms:T"] {
        assert_eq!(records(&d, "--record-id", id).len(), 1, "{id}");
    }
    assert!(records(&d, "--record-id", "sms:V").is_empty());
    assert!(audit(&d).contains("delivery-refused"));
}

#[test]
fn a_reused_id_with_other_content_is_a_conflict_not_a_duplicate() {
    let dir = Scratch::new();
    let d = start(dir.path());
    let (_, a) = ndjson(&d, &[line("K", "ann", "buy 100")]);
    assert_eq!(a["stored"], 1, "{a}");
    // The same line, spaced differently: the same content, a duplicate.
    let spaced = "{ \"text\": \"buy 100\", \"id\": \"K\", \"channel\": \"sms\", \"conversation\": \"desk-1\", \"custodian\": \"ann\", \"timestamp\": \"2026-11-25T10:00:00Z\" }\n";
    let (_, t) = d.post(
        "/v1/messages",
        spaced.as_bytes(),
        &[format!("Authorization: Bearer {INGEST_TOKEN}")],
    );
    let t: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(t["duplicates"], 1, "{t}");
    let (_, b) = ndjson(&d, &[line("K", "ann", "buy 900")]);
    assert_eq!(
        (b["conflicts"].clone(), b["duplicates"].clone()),
        (json!(1), json!(0)),
        "{b}"
    );
    // The conflicting content, resent, is a duplicate of its conflict record.
    let (_, c) = ndjson(&d, &[line("K", "ann", "buy 900")]);
    assert_eq!(c["duplicates"], 1, "{c}");
    let (_, m) = d.curl(&["/metrics"]);
    assert!(
        m.contains("stele_capture_conflicts_total{source=\"api\"} 1"),
        "{m}"
    );
    let d = stop(d);
    let original = records(&d, "--record-id", "sms:K");
    assert_eq!(original.len(), 1);
    assert_eq!(body(&original[0])["text"], "buy 100");
    assert_eq!(body(&original[0])["ingested_by"], INGEST_PRINCIPAL);
    let conv = records(&d, "--conversation", "desk-1");
    let conflict: Vec<&Value> = conv
        .iter()
        .filter(|r| {
            r["record_id"]
                .as_str()
                .unwrap()
                .starts_with("sms:K#conflict:")
        })
        .collect();
    assert_eq!(conflict.len(), 1, "{conv:?}");
    let cb = body(conflict[0]);
    assert_eq!(cb["text"], "buy 900");
    assert_eq!(cb["conflict"]["record_id"], "sms:K");
    assert_eq!(cb["conflict"]["stored_seq"], original[0]["seq"]);
    assert!(audit(&d).contains("capture-conflict"));
}

fn wa(field: &str, value: Value) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": field, "value": value}]}]})
        .to_string()
        .into_bytes()
}

fn meta() -> Value {
    json!({"display_phone_number": "15550100", "phone_number_id": "PN"})
}

#[test]
fn every_kind_of_delivery_gets_its_own_records() {
    let dir = Scratch::new();
    let d = start(dir.path());
    let chunk = |order: u32, id: &str| {
        wa(
            "history",
            json!({"metadata": meta(), "history": [{"metadata": {"phase": 1, "chunk_order": order, "progress": 40},
            "threads": [{"id": "447700", "messages": [{"from": "447700", "id": id, "timestamp": "1739230955", "type": "text", "text": {"body": "old"}}]}]}]}),
        )
    };
    for body in [
        chunk(1, "wamid.H1"),
        chunk(2, "wamid.H2"),
        wa(
            "smb_message_echoes",
            json!({"metadata": meta(), "message_echoes": [
            {"from": "15550100", "to": "+44 7700", "id": "wamid.E", "timestamp": "1739321024", "type": "text", "text": {"body": "from the app"}}]}),
        ),
        wa(
            "messages",
            json!({"metadata": meta(), "messages": [
            {"from": "447701", "group_id": "G1", "id": "wamid.G", "timestamp": "1739321025", "type": "text", "text": {"body": "to the group"}},
            {"from": "447700", "id": "wamid.D", "timestamp": "1739321026", "type": "revoke", "revoke": {"original_message_id": "wamid.E"}},
            {"from": "447700", "id": "wamid.T", "timestamp": "soon", "type": "text", "text": {"body": "bad clock"}}]}),
        ),
    ] {
        let (code, a) = d.deliver(&body);
        assert_eq!(code, 200, "{a}");
        let a: Value = serde_json::from_str(&a).unwrap();
        assert!(a["stored"].as_u64().unwrap() >= 2, "{a}");
    }
    // Signed, but not JSON: kept verbatim and answered 2xx, so it is not retried into loss.
    let (code, a) = d.deliver(b"{\"object\": truncated");
    assert_eq!(code, 200, "{a}");
    assert!(a.contains("unreadable"), "{a}");
    assert_eq!(
        d.metric("stele_capture_unreadable_total{source=\"whatsapp\"}"),
        1.0
    );
    assert_eq!(
        d.metric("stele_capture_flagged_total{flag=\"timestamp-unparsed\"}"),
        1.0
    );
    let d = stop(d);
    let chat = records(&d, "--conversation", "whatsapp:PN:447700");
    let ids: Vec<&str> = chat
        .iter()
        .map(|r| r["record_id"].as_str().unwrap())
        .collect();
    for id in ["wamid.H1", "wamid.H2", "wamid.E", "wamid.D", "wamid.T"] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
    let by = |id: &str| chat.iter().find(|r| r["record_id"] == id).unwrap();
    assert_eq!(body(by("wamid.E"))["direction"], "outbound");
    assert_eq!(body(by("wamid.D"))["refers_to"], "wamid.E");
    assert!(by("wamid.T")["timestamp_us"].as_i64().unwrap() > 1_700_000_000_000_000);
    assert_eq!(
        body(by("wamid.T"))["timestamp_unparsed"]["verbatim"],
        "soon"
    );
    assert!(chat.iter().all(|r| r["timestamp_us"].as_i64().unwrap() > 0));
    let group = records(&d, "--conversation", "whatsapp:PN:group:G1");
    let messages: Vec<&Value> = group.iter().filter(|r| r["kind"] == "Message").collect();
    assert_eq!(messages.len(), 1, "{group:?}");
    assert_eq!(messages[0]["record_id"], "wamid.G");
    let account = records(&d, "--conversation", "whatsapp:PN");
    let chunks = account
        .iter()
        .filter(|r| r["type"] == "history-chunk")
        .count();
    assert_eq!(chunks, 2, "each history chunk is a record of its own");
    let unread = records(&d, "--conversation", "whatsapp");
    assert!(unread
        .iter()
        .any(|r| r["type"] == "delivery-unreadable" && r["body"] == "{\"object\": truncated"));
    assert!(audit(&d).contains("delivery-unreadable"));
}

#[test]
fn concurrent_redeliveries_store_once() {
    let dir = Scratch::new();
    let d = std::sync::Arc::new(start(dir.path()));
    let body = wa(
        "messages",
        json!({"metadata": meta(), "messages": [
        {"from": "447700", "id": "wamid.C1", "timestamp": "1739321025", "type": "text", "text": {"body": "once"}}]}),
    );
    let answers: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| s.spawn(|| serde_json::from_str(&d.deliver(&body).1).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stored: u64 = answers.iter().map(|a| a["stored"].as_u64().unwrap()).sum();
    assert_eq!(
        stored, 2,
        "one evidence record and one message in all: {answers:?}"
    );
    let d = std::sync::Arc::into_inner(d).unwrap();
    let d = stop(d);
    assert_eq!(records(&d, "--record-id", "wamid.C1").len(), 1);
}
