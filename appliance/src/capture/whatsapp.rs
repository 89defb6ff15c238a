//! WhatsApp Business Platform (Cloud API) webhooks: the verification
//! handshake, the `X-Hub-Signature-256` check, and the normalisation of a
//! delivery into records.
//!
//! Every delivery is archived verbatim (as evidence) and as one record per
//! item it carries:
//! * messages (`messages`), echoes of messages the business sent from the
//!   WhatsApp Business app (`message_echoes`, outbound) and the messages of
//!   history-sync threads (`history`) are messages of their conversation,
//!   `whatsapp:<phone number id>:<other party>`, or `…:group:<group id>` for
//!   a group; a message keeps its WhatsApp id as record id, so a redelivery
//!   adds nothing; phone numbers are compared as digits (`+1 650…` is `1650…`);
//! * a status gets `<message id>:status:<status>`;
//! * anything else (errors, history chunks, account updates, every other
//!   field) gets an id derived from the item's own content, so two different
//!   items of one account are two records;
//! * an item that cannot be read (a message without an id, a change without
//!   a value) is kept verbatim as an `unreadable` record.
//!
//! Replies, reactions, edits and deletions (revokes) are new records that
//! name the message they refer to (`refers_to`); the original is never
//! changed. Every record is dated by the item's own timestamp (seconds or
//! milliseconds, see [`super::timestamp`]); one that does not parse is kept
//! verbatim, flagged, and the record is dated by its receipt.

use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Check `X-Hub-Signature-256: sha256=<hex>` over the raw body, in constant time.
pub fn signature_ok(app_secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(app_secret).expect("any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The `X-Hub-Signature-256` header value for `body`.
#[cfg(test)]
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(app_secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One record a delivery yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub record_id: String,
    pub conversation: String,
    pub custodian: String,
    /// text, image, video, audio, voice, document, sticker, location, contacts,
    /// reaction, interactive, button, order, edit, revoke, system, unsupported,
    /// unreadable, error, status, history-chunk
    pub message_type: String,
    pub timestamp_us: i64,
    pub body: Value,
    /// Media to fetch from the Graph API: (media id, mime type).
    pub media: Option<(String, String)>,
    /// SHA-256 of the item as delivered (its canonical JSON), so a
    /// redelivery is told apart from new content under the same id.
    pub fingerprint: [u8; 32],
    /// Anything doubtful about the item (`timestamp-unparsed`).
    pub flags: Vec<String>,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A phone number as a conversation part: `+1 650-555` and `1650555` are one chat.
fn party(v: &Value) -> String {
    let raw = s(v);
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let phone_like = !digits.is_empty()
        && raw
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
    if phone_like {
        digits
    } else {
        raw
    }
}

fn fingerprint(v: &Value) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(v.to_string().as_bytes()).into()
}

fn short_hash(v: &Value) -> String {
    hex::encode(fingerprint(v))[..32].to_string()
}

const MEDIA_TYPES: &[&str] = &["image", "video", "audio", "document", "sticker"];

/// What every record of one change shares.
struct Change<'a> {
    value: &'a Value,
    field: String,
    business: String,
    display: String,
    custodian: String,
    names: HashMap<String, String>,
    received_us: i64,
}

impl Change<'_> {
    fn conversation(&self, other: &str) -> String {
        format!("whatsapp:{}:{other}", self.business)
    }

    fn account(&self) -> String {
        format!("whatsapp:{}", self.business)
    }

    /// The item's own time, else the receipt time with the verbatim value flagged.
    fn when(&self, v: &Value, flags: &mut Vec<String>, body: &mut Value) {
        match super::timestamp::from_json(v) {
            Ok(us) => body["timestamp_us"] = json!(us),
            Err(why) => {
                flags.push("timestamp-unparsed".into());
                body["timestamp_us"] = json!(self.received_us);
                body["timestamp_unparsed"] =
                    json!({"verbatim": v, "why": why, "dated_by": "receipt"});
            }
        }
    }
}

/// Normalise a delivery received at `received_us`. Fails only when the
/// delivery as a whole is not a WhatsApp Business Account delivery (the
/// caller keeps it verbatim as evidence); an item that cannot be read
/// becomes an `unreadable` record holding it verbatim.
pub fn normalize(payload: &Value, received_us: i64) -> Result<Vec<Normalized>, String> {
    if payload.get("object").and_then(Value::as_str) != Some("whatsapp_business_account") {
        return Err("not a WhatsApp Business Account delivery (\"object\" is not \"whatsapp_business_account\")".into());
    }
    let entries = payload
        .get("entry")
        .and_then(Value::as_array)
        .ok_or("the delivery has no \"entry\" array")?;
    let mut out = Vec::new();
    for entry in entries {
        let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
            out.push(unreadable(
                entry,
                "an entry without a \"changes\" array",
                received_us,
            ));
            continue;
        };
        for change in changes {
            match change.get("value") {
                Some(value) if value.is_object() => {
                    normalize_change(&mut out, entry, change, value, received_us)
                }
                _ => out.push(unreadable(
                    change,
                    "a change without a \"value\" object",
                    received_us,
                )),
            }
        }
    }
    Ok(out)
}

fn normalize_change(
    out: &mut Vec<Normalized>,
    entry: &Value,
    change: &Value,
    value: &Value,
    received_us: i64,
) {
    let meta = value.get("metadata").cloned().unwrap_or(Value::Null);
    let business = match s(&meta["phone_number_id"]) {
        b if b.is_empty() => s(&entry["id"]),
        b => b,
    };
    let c = Change {
        value,
        field: s(&change["field"]),
        custodian: format!("whatsapp:{business}"),
        business,
        display: party(&meta["display_phone_number"]),
        names: value["contacts"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|x| (party(&x["wa_id"]), s(&x["profile"]["name"])))
                    .collect()
            })
            .unwrap_or_default(),
        received_us,
    };
    let mut known = false;
    for m in items(value, "messages") {
        known = true;
        out.push(message(&c, m, Direction::Inbound, None));
    }
    for m in items(value, "message_echoes") {
        known = true;
        out.push(message(&c, m, Direction::Outbound, None));
    }
    for h in items(value, "history") {
        known = true;
        history(out, &c, h);
    }
    for st in items(value, "statuses") {
        known = true;
        out.push(status(&c, st));
    }
    for e in items(value, "errors") {
        known = true;
        out.push(system(&c, e, "error", json!({"error": e}), 2));
    }
    if !known {
        // Other fields (account updates, user preferences, ...): one record per change.
        let body = json!({"field": c.field, "value": value});
        out.push(system(&c, value, "system", body, 3));
    }
}

fn items<'a>(value: &'a Value, name: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Inbound,
    Outbound,
}

/// A message (inbound, an echo of one the business sent, or one from a history thread).
fn message(c: &Change, m: &Value, dir: Direction, thread: Option<&str>) -> Normalized {
    let id = s(&m["id"]);
    if id.is_empty() || !m.is_object() {
        return unreadable(m, "a message without an id", c.received_us);
    }
    let from = party(&m["from"]);
    let to = party(&m["to"]);
    // In a history thread the business's own messages come from its number.
    let dir = match dir {
        Direction::Inbound if !c.display.is_empty() && from == c.display => Direction::Outbound,
        d => d,
    };
    let other = match (thread, dir) {
        (Some(t), _) => party(&json!(t)),
        (None, Direction::Outbound) => to.clone(),
        (None, Direction::Inbound) => from.clone(),
    };
    let group = s(&m["group_id"]);
    let conversation = match group.as_str() {
        "" => c.conversation(&other),
        g => c.conversation(&format!("group:{g}")),
    };
    let kind = message_type(m);
    let (media, content) = media_of(m, &kind);
    let mut flags = Vec::new();
    let mut body = json!({
        "channel": "whatsapp",
        "direction": if dir == Direction::Inbound { "inbound" } else { "outbound" },
        "field": c.field,
        "id": id,
        "from": from,
        "from_name": c.names.get(&from),
        "to": if to.is_empty() { json!(c.display) } else { json!(to) },
        "group_id": m.get("group_id"),
        "type": kind,
        "refers_to": refers_to(m, &kind),
        "content": content,
        "errors": m.get("errors"),
        "message": m,
    });
    c.when(&m["timestamp"], &mut flags, &mut body);
    Normalized {
        record_id: id,
        conversation,
        custodian: c.custodian.clone(),
        message_type: kind,
        timestamp_us: body["timestamp_us"].as_i64().unwrap_or(c.received_us),
        body,
        media,
        fingerprint: content_fingerprint(m),
        flags,
    }
}

/// A message's fingerprint leaves out what differs between its live delivery
/// and its history-sync copy (the delivery status of the moment).
fn content_fingerprint(m: &Value) -> [u8; 32] {
    match m.get("history_context") {
        Some(_) => {
            let mut m = m.clone();
            if let Some(o) = m.as_object_mut() {
                o.remove("history_context");
            }
            fingerprint(&m)
        }
        None => fingerprint(m),
    }
}

fn message_type(m: &Value) -> String {
    let kind = s(&m["type"]);
    match kind.as_str() {
        "" => "unsupported".into(),
        // A voice note is an audio message flagged `voice`.
        "audio" if m["audio"]["voice"].as_bool() == Some(true) => "voice".into(),
        _ => kind,
    }
}

/// The message an answer, reaction, edit or deletion is about.
fn refers_to(m: &Value, kind: &str) -> Option<String> {
    let candidates: &[&[&str]] = match kind {
        "reaction" => &[&["reaction", "message_id"]],
        "edit" => &[
            &["edit", "original_message_id"],
            &["edit", "message_id"],
            &["edit", "id"],
        ],
        "revoke" => &[
            &["revoke", "original_message_id"],
            &["revoke", "message_id"],
            &["revoke", "id"],
        ],
        _ => &[],
    };
    candidates
        .iter()
        .chain([&["context", "id"][..], &["context", "message_id"][..]].iter())
        .find_map(|path| {
            let v = path.iter().fold(m, |v, k| &v[*k]);
            v.as_str().filter(|x| !x.is_empty()).map(String::from)
        })
}

/// (media to fetch, the content object). Edits carry the new content inside `edit`.
fn media_of(m: &Value, kind: &str) -> (Option<(String, String)>, Value) {
    let key = if kind == "voice" { "audio" } else { kind };
    let direct = MEDIA_TYPES.contains(&key).then(|| &m[key]);
    let edited = MEDIA_TYPES
        .iter()
        .flat_map(|t| [&m["edit"]["message"][*t], &m["edit"][*t]]);
    let media = direct.into_iter().chain(edited).find_map(|x| {
        let id = s(&x["id"]);
        (!id.is_empty()).then(|| (id, s(&x["mime_type"])))
    });
    (media, m[key].clone())
}

/// A history chunk: its threads' messages become messages of their
/// conversations; the chunk itself (phase, order, progress, errors) a record of its own.
fn history(out: &mut Vec<Normalized>, c: &Change, h: &Value) {
    for t in items(h, "threads") {
        let thread = s(&t["id"]);
        for m in items(t, "messages") {
            out.push(message(c, m, Direction::Inbound, Some(&thread)));
        }
    }
    let summary = json!({
        "metadata": h.get("metadata"),
        "errors": h.get("errors"),
        "threads": items(h, "threads").map(|t| json!({"id": t["id"], "messages": items(t, "messages").count()})).collect::<Vec<_>>(),
    });
    out.push(system(c, h, "history-chunk", summary, 1));
}

fn status(c: &Change, st: &Value) -> Normalized {
    let id = s(&st["id"]);
    if id.is_empty() || !st.is_object() {
        return unreadable(st, "a status without a message id", c.received_us);
    }
    let status = s(&st["status"]);
    let recipient = party(&st["recipient_id"]);
    let mut flags = Vec::new();
    let mut body = json!({
        "channel": "whatsapp",
        "direction": "outbound",
        "type": "status",
        "status": status,
        "refers_to": id,
        "recipient": recipient,
        "errors": st.get("errors"),
        "status_update": st,
    });
    c.when(&st["timestamp"], &mut flags, &mut body);
    let conversation = match st["recipient_type"].as_str() {
        Some("group") => c.conversation(&format!("group:{}", s(&st["recipient_id"]))),
        _ => c.conversation(&recipient),
    };
    Normalized {
        record_id: format!("{id}:status:{status}"),
        conversation,
        custodian: c.custodian.clone(),
        message_type: "status".into(),
        timestamp_us: body["timestamp_us"].as_i64().unwrap_or(c.received_us),
        body,
        media: None,
        fingerprint: fingerprint(st),
        flags,
    }
}

/// A record of the account, not of a chat, named by its own content.
/// Its time is the first `timestamp` within `depth` levels of the item, else the receipt.
fn system(c: &Change, item: &Value, kind: &str, mut body: Value, depth: usize) -> Normalized {
    body["channel"] = json!("whatsapp");
    body["type"] = json!(kind);
    body["field"] = json!(c.field);
    let mut flags = Vec::new();
    match find_timestamp(item, depth).or_else(|| find_timestamp(c.value, 0)) {
        Some(t) => c.when(t, &mut flags, &mut body),
        None => {
            body["timestamp_us"] = json!(c.received_us);
            body["dated_by"] = json!("receipt");
        }
    }
    let field = if c.field.is_empty() { kind } else { &c.field };
    Normalized {
        record_id: format!("whatsapp-{field}:{}:{}", c.business, short_hash(item)),
        conversation: c.account(),
        custodian: c.custodian.clone(),
        message_type: kind.into(),
        timestamp_us: body["timestamp_us"].as_i64().unwrap_or(c.received_us),
        body,
        media: None,
        fingerprint: fingerprint(item),
        flags,
    }
}

/// The first `timestamp` (or `time`) field within `depth` levels of `v`.
fn find_timestamp(v: &Value, depth: usize) -> Option<&Value> {
    let obj = v.as_object()?;
    if let Some(t) = obj.get("timestamp").or_else(|| obj.get("time")) {
        return Some(t);
    }
    if depth == 0 {
        return None;
    }
    obj.values().find_map(|x| match x {
        Value::Array(a) => a.iter().find_map(|y| find_timestamp(y, depth - 1)),
        other => find_timestamp(other, depth - 1),
    })
}

/// An item that cannot be read as what it claims to be, kept verbatim.
fn unreadable(item: &Value, why: &str, received_us: i64) -> Normalized {
    Normalized {
        record_id: format!("whatsapp-unreadable:{}", short_hash(item)),
        conversation: "whatsapp".into(),
        custodian: String::new(),
        message_type: "unreadable".into(),
        timestamp_us: received_us,
        body: json!({"channel": "whatsapp", "type": "unreadable", "why": why, "item": item, "dated_by": "receipt"}),
        media: None,
        fingerprint: fingerprint(item),
        flags: vec!["unreadable".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_over_the_raw_bytes() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let h = sign(b"secret", body);
        assert!(signature_ok(b"secret", body, Some(&h)));
        assert!(!signature_ok(b"other", body, Some(&h)));
        assert!(!signature_ok(b"secret", b"{}", Some(&h)));
        assert!(!signature_ok(b"secret", body, None));
        assert!(!signature_ok(b"secret", body, Some("sha256=zz")));
        assert!(!signature_ok(
            b"secret",
            body,
            Some(&h.replace("sha256=", "sha1="))
        ));
    }

    #[test]
    fn a_text_message_and_a_status() {
        let v: Value = serde_json::from_str(r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"155","phone_number_id":"PN"},"contacts":[{"profile":{"name":"Ann"},"wa_id":"44"}],"messages":[{"from":"44","id":"wamid.A","timestamp":"1750016800","text":{"body":"hi"},"type":"text","context":{"id":"wamid.Z"}}],"statuses":[{"id":"wamid.B","status":"read","timestamp":"1750016900","recipient_id":"44"}]}}]}]}"#).unwrap();
        let n = normalize(&v, 7).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].record_id, "wamid.A");
        assert_eq!(n[0].conversation, "whatsapp:PN:44");
        assert_eq!(n[0].timestamp_us, 1_750_016_800_000_000);
        assert_eq!(n[0].body["refers_to"], "wamid.Z");
        assert_eq!(n[0].body["from_name"], "Ann");
        assert_eq!(n[1].record_id, "wamid.B:status:read");
        assert_eq!(n[1].message_type, "status");
        assert!(normalize(&json!({"object": "page"}), 7).is_err());
        assert!(normalize(&json!({"object": "whatsapp_business_account"}), 7).is_err());
    }

    fn delivery(field: &str, value: Value) -> Value {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": field, "value": value}]}]})
    }

    fn meta() -> Value {
        json!({"display_phone_number": "+1 555 0100", "phone_number_id": "PN"})
    }

    #[test]
    fn echoes_are_outbound_messages_of_their_chat() {
        let v = delivery(
            "smb_message_echoes",
            json!({"metadata": meta(), "message_echoes": [
            {"from": "15550100", "to": "+44 7700", "id": "wamid.E", "timestamp": "1739321024", "type": "text", "text": {"body": "sent from the app"}}]}),
        );
        let n = normalize(&v, 7).unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].record_id, "wamid.E");
        assert_eq!(n[0].conversation, "whatsapp:PN:447700");
        assert_eq!(n[0].body["direction"], "outbound");
        assert_eq!(n[0].timestamp_us, 1_739_321_024_000_000);
    }

    #[test]
    fn history_threads_become_messages_and_each_chunk_a_record() {
        let chunk = |order: u32, id: &str| {
            delivery(
                "history",
                json!({"metadata": meta(), "history": [{"metadata": {"phase": 0, "chunk_order": order, "progress": 50}, "threads": [
                {"id": "16505551234", "messages": [
                    {"from": "15550100", "id": id, "timestamp": "1739230955", "type": "text", "text": {"body": "hello"}, "history_context": {"status": "READ"}},
                    {"from": "16505551234", "id": format!("{id}.r"), "timestamp": "1739230970", "type": "text", "text": {"body": "thanks"}}]}]}]}),
            )
        };
        let a = normalize(&chunk(1, "wamid.H1"), 7).unwrap();
        let b = normalize(&chunk(2, "wamid.H2"), 7).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].conversation, "whatsapp:PN:16505551234");
        assert_eq!(
            a[0].body["direction"], "outbound",
            "the business's own number"
        );
        assert_eq!(a[1].body["direction"], "inbound");
        assert_eq!(a[2].message_type, "history-chunk");
        assert_ne!(
            a[2].record_id, b[2].record_id,
            "a second chunk is its own record"
        );
        assert_eq!(
            a[2].timestamp_us, 7,
            "a chunk carries no time of its own: dated by receipt"
        );
    }

    #[test]
    fn group_messages_are_filed_under_the_group() {
        let v = delivery(
            "messages",
            json!({"metadata": meta(), "messages": [
            {"from": "447700", "group_id": "G1", "id": "wamid.G", "timestamp": 1739230955, "type": "text", "text": {"body": "all"}}]}),
        );
        let n = normalize(&v, 7).unwrap();
        assert_eq!(n[0].conversation, "whatsapp:PN:group:G1");
    }

    #[test]
    fn edits_revokes_and_reactions_refer_to_their_message() {
        let v = delivery(
            "messages",
            json!({"metadata": meta(), "messages": [
            {"from": "447700", "id": "wamid.R", "timestamp": "1739230955", "type": "revoke", "revoke": {"original_message_id": "wamid.A"}},
            {"from": "447700", "id": "wamid.X", "timestamp": "1739230955", "type": "edit", "edit": {"original_message_id": "wamid.B", "message": {"type": "image", "image": {"id": "M1", "mime_type": "image/jpeg", "caption": "new"}}}},
            {"from": "447700", "id": "wamid.Y", "timestamp": "1739230955", "type": "reaction", "reaction": {"message_id": "wamid.C", "emoji": "x"}}]}),
        );
        let n = normalize(&v, 7).unwrap();
        assert_eq!(n[0].body["refers_to"], "wamid.A");
        assert_eq!(n[1].body["refers_to"], "wamid.B");
        assert_eq!(
            n[1].media,
            Some(("M1".into(), "image/jpeg".into())),
            "media inside an edit is fetched"
        );
        assert_eq!(n[2].body["refers_to"], "wamid.C");
    }

    #[test]
    fn other_fields_get_ids_from_their_content_and_a_real_time() {
        let upd = |event: &str| {
            delivery(
                "account_update",
                json!({"event": event, "timestamp": 1739230955}),
            )
        };
        let a = normalize(&upd("VERIFIED"), 7).unwrap();
        let b = normalize(&upd("DISABLED"), 7).unwrap();
        assert_ne!(a[0].record_id, b[0].record_id);
        assert_eq!(a[0].timestamp_us, 1_739_230_955_000_000);
        let e = delivery(
            "messages",
            json!({"metadata": meta(), "errors": [{"code": 131000, "title": "x"}]}),
        );
        let n = normalize(&e, 7).unwrap();
        assert_eq!(n[0].message_type, "error");
        assert_eq!(n[0].timestamp_us, 7);
    }

    #[test]
    fn bad_timestamps_and_items_are_kept_flagged() {
        let v = delivery(
            "messages",
            json!({"metadata": meta(), "messages": [
            {"from": "447700", "id": "wamid.T", "timestamp": "next tuesday", "type": "text", "text": {"body": "x"}},
            {"from": "447700", "timestamp": "1739230955", "type": "text", "text": {"body": "no id"}}]}),
        );
        let n = normalize(&v, 7).unwrap();
        assert_eq!(n[0].timestamp_us, 7);
        assert_eq!(n[0].flags, vec!["timestamp-unparsed".to_string()]);
        assert_eq!(n[0].body["timestamp_unparsed"]["verbatim"], "next tuesday");
        assert_eq!(n[1].message_type, "unreadable");
        assert_eq!(n[1].body["item"]["text"]["body"], "no id");
        let ms = delivery(
            "messages",
            json!({"metadata": meta(), "messages": [
            {"from": "447700", "id": "wamid.M", "timestamp": 1_739_230_955_000i64, "type": "text", "text": {"body": "x"}}]}),
        );
        assert_eq!(
            normalize(&ms, 7).unwrap()[0].timestamp_us,
            1_739_230_955_000_000
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_shape(text in ".{0,200}") {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                let _ = normalize(&v, 7);
            }
            let wrapped = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": [text.clone()], "history": [{"threads": [text]}]}}]}]});
            let _ = normalize(&wrapped, 7);
        }
    }
}
