//! WhatsApp Business Platform (Cloud API) webhooks: the verification
//! handshake, the `X-Hub-Signature-256` check, and the normalisation of a
//! delivery into records.
//!
//! Every delivery is archived verbatim (as evidence) and as one record per
//! message, status or error it carries. A message keeps its WhatsApp id as
//! record id, so a redelivery adds nothing; a status gets `id:status:<status>`.
//! Replies, reactions, edits and deletions are new records that name the
//! message they refer to (`refers_to`); the original is never changed.

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
    /// reaction, interactive, button, order, system, unsupported, error, status
    pub message_type: String,
    pub timestamp_us: i64,
    pub body: Value,
    /// Media to fetch from the Graph API: (media id, mime type).
    pub media: Option<(String, String)>,
}

fn ts(v: &Value) -> i64 {
    let secs = match v {
        Value::String(s) => s.parse::<i64>().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    };
    secs.saturating_mul(1_000_000)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

const MEDIA_TYPES: &[&str] = &["image", "video", "audio", "document", "sticker"];

/// Normalise a delivery. Errors name what in the payload is wrong.
pub fn normalize(payload: &Value) -> Result<Vec<Normalized>, String> {
    if payload.get("object").and_then(Value::as_str) != Some("whatsapp_business_account") {
        return Err("not a WhatsApp Business Account delivery (\"object\" is not \"whatsapp_business_account\")".into());
    }
    let entries = payload
        .get("entry")
        .and_then(Value::as_array)
        .ok_or("the delivery has no \"entry\" array")?;
    let mut out = Vec::new();
    for (ei, entry) in entries.iter().enumerate() {
        let changes = entry
            .get("changes")
            .and_then(Value::as_array)
            .ok_or(format!("entry {ei} has no \"changes\" array"))?;
        for (ci, change) in changes.iter().enumerate() {
            let Some(value) = change.get("value") else {
                return Err(format!("entry {ei} change {ci} has no \"value\""));
            };
            let field = s(change.get("field").unwrap_or(&Value::Null));
            let meta = value.get("metadata").cloned().unwrap_or(Value::Null);
            let business = s(meta.get("phone_number_id").unwrap_or(&Value::Null));
            let custodian = format!("whatsapp:{business}");
            let names: std::collections::HashMap<String, String> = value
                .get("contacts")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| (s(&c["wa_id"]), s(&c["profile"]["name"])))
                        .collect()
                })
                .unwrap_or_default();
            for m in value
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = s(&m["id"]);
                if id.is_empty() {
                    return Err(format!("entry {ei} change {ci}: a message has no id"));
                }
                let from = s(&m["from"]);
                let mut kind = s(&m["type"]);
                if kind.is_empty() {
                    kind = "unsupported".into();
                }
                // A voice note is an audio message flagged `voice`.
                if kind == "audio" && m["audio"]["voice"].as_bool() == Some(true) {
                    kind = "voice".into();
                }
                let refers_to = match kind.as_str() {
                    "reaction" => m["reaction"]["message_id"].as_str().map(String::from),
                    _ => m["context"]["id"].as_str().map(String::from),
                };
                let media_kind = if kind == "voice" {
                    "audio"
                } else {
                    kind.as_str()
                };
                let media = MEDIA_TYPES
                    .contains(&media_kind)
                    .then(|| (s(&m[media_kind]["id"]), s(&m[media_kind]["mime_type"])))
                    .filter(|(i, _)| !i.is_empty());
                out.push(Normalized {
                    record_id: id.clone(),
                    conversation: format!("whatsapp:{business}:{from}"),
                    custodian: custodian.clone(),
                    message_type: kind.clone(),
                    timestamp_us: ts(&m["timestamp"]),
                    body: json!({
                        "channel": "whatsapp",
                        "direction": "inbound",
                        "id": id,
                        "from": from,
                        "from_name": names.get(&from),
                        "to": meta.get("display_phone_number"),
                        "type": kind,
                        "refers_to": refers_to,
                        "content": m.get(media_kind).or_else(|| m.get(kind.as_str())),
                        "errors": m.get("errors"),
                        "message": m,
                    }),
                    media,
                });
            }
            for st in value
                .get("statuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = s(&st["id"]);
                let status = s(&st["status"]);
                let recipient = s(&st["recipient_id"]);
                out.push(Normalized {
                    record_id: format!("{id}:status:{status}"),
                    conversation: format!("whatsapp:{business}:{recipient}"),
                    custodian: custodian.clone(),
                    message_type: "status".into(),
                    timestamp_us: ts(&st["timestamp"]),
                    body: json!({
                        "channel": "whatsapp",
                        "direction": "outbound",
                        "type": "status",
                        "status": status,
                        "refers_to": id,
                        "recipient": recipient,
                        "errors": st.get("errors"),
                        "status_update": st,
                    }),
                    media: None,
                });
            }
            for (i, e) in value
                .get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                out.push(Normalized {
                    record_id: format!(
                        "whatsapp-error:{business}:{}:{i}:{}",
                        entry["id"].as_str().unwrap_or(""),
                        s(&e["code"])
                    ),
                    conversation: format!("whatsapp:{business}"),
                    custodian: custodian.clone(),
                    message_type: "error".into(),
                    timestamp_us: 0,
                    body: json!({"channel": "whatsapp", "type": "error", "error": e}),
                    media: None,
                });
            }
            if value.get("messages").is_none()
                && value.get("statuses").is_none()
                && value.get("errors").is_none()
            {
                // Other fields (account updates, user preferences, ...): kept as a system record.
                out.push(Normalized {
                    record_id: format!("whatsapp-{field}:{}:{}", entry["id"].as_str().unwrap_or(""), ci),
                    conversation: format!("whatsapp:{business}"),
                    custodian: custodian.clone(),
                    message_type: "system".into(),
                    timestamp_us: 0,
                    body: json!({"channel": "whatsapp", "type": "system", "field": field, "value": value}),
                    media: None,
                });
            }
        }
    }
    Ok(out)
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
        let n = normalize(&v).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].record_id, "wamid.A");
        assert_eq!(n[0].conversation, "whatsapp:PN:44");
        assert_eq!(n[0].timestamp_us, 1_750_016_800_000_000);
        assert_eq!(n[0].body["refers_to"], "wamid.Z");
        assert_eq!(n[0].body["from_name"], "Ann");
        assert_eq!(n[1].record_id, "wamid.B:status:read");
        assert_eq!(n[1].message_type, "status");
        assert!(normalize(&json!({"object": "page"})).is_err());
        assert!(normalize(&json!({"object": "whatsapp_business_account"})).is_err());
    }
}
