//! Native ingest: NDJSON batches of messages from other channels (SMS,
//! Teams, e-mail gateways), one JSON object per line, in the schema of
//! docs/API.md. Each line is checked on its own: a bad line is reported with
//! its number and the reason, and the good lines are stored.

use serde::Deserialize;
use stele_engine::NewRecord;

use super::service::Item;

/// One message, as a line of `POST /v1/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// The message's id in its source system; a resend with the same id and channel is stored once.
    pub id: String,
    pub channel: String,
    pub conversation: String,
    pub custodian: String,
    /// RFC 3339 (`2026-11-25T10:00:00Z`), or a count from the epoch in
    /// seconds, milliseconds or microseconds (told apart by magnitude).
    pub timestamp: serde_json::Value,
    #[serde(default = "text")]
    #[serde(rename = "type")]
    pub message_type: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub text: Option<String>,
    /// Anything else the source captured (kept verbatim).
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    /// The id of a message this one edits, deletes, answers or reacts to.
    #[serde(default)]
    pub refers_to: Option<String>,
}

fn text() -> String {
    "text".into()
}

/// A line that was accepted as a record to store.
pub struct Line {
    pub number: usize,
    /// The record, fingerprinted by the line's JSON in canonical form (keys
    /// sorted, no spacing), so a resend is a duplicate however it is spaced.
    pub item: Item,
}

/// Parse an NDJSON body: (good lines, (line number, error) for the bad ones).
pub fn parse(body: &str) -> (Vec<Line>, Vec<(usize, String)>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in body.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(item) => good.push(Line { number, item }),
            Err(e) => bad.push((number, e)),
        }
    }
    (good, bad)
}

fn parse_line(line: &str) -> Result<Item, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let canonical = value.to_string();
    let m: Message = serde_json::from_value(value).map_err(|e| format!("not a message: {e}"))?;
    for (what, v) in [
        ("id", &m.id),
        ("channel", &m.channel),
        ("conversation", &m.conversation),
        ("custodian", &m.custodian),
    ] {
        if v.trim().is_empty() {
            return Err(format!("\"{what}\" is empty"));
        }
    }
    let ts =
        super::timestamp::from_json(&m.timestamp).map_err(|e| format!("\"timestamp\": {e}"))?;
    let body = serde_json::json!({
        "channel": m.channel, "id": m.id, "type": m.message_type, "from": m.from, "to": m.to,
        "text": m.text, "data": m.data, "refers_to": m.refers_to,
    });
    let record = NewRecord::message(
        format!("{}:{}", m.channel, m.id),
        m.conversation,
        ts,
        body.to_string(),
    )
    .with_custodian(m.custodian)
    .with_tenant(m.tenant)
    .with_channel(m.channel, m.message_type);
    Ok(Item::new(record, canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lines_pass_and_bad_lines_are_named() {
        let body = concat!(
            r#"{"id":"1","channel":"sms","conversation":"c","custodian":"ann","timestamp":"2026-11-25T10:00:00Z","text":"hi"}"#,
            "\n",
            "not json\n",
            "\n",
            r#"{"id":"2","channel":"sms","conversation":"c","custodian":"","timestamp":1}"#,
            "\n",
            r#"{"id":"3","channel":"teams","conversation":"c","custodian":"ann","timestamp":1764064800000000,"bogus":1}"#,
            "\n",
            r#"{"id":"4","channel":"teams","conversation":"c","custodian":"ann","timestamp":1764064800000000,"type":"edit","refers_to":"teams:3"}"#,
            "\n",
        );
        let (good, bad) = parse(body);
        assert_eq!(
            good.iter().map(|l| l.number).collect::<Vec<_>>(),
            vec![1, 6]
        );
        assert_eq!(
            bad.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            vec![2, 4, 5]
        );
        assert!(bad[1].1.contains("custodian"), "{:?}", bad[1]);
        assert!(bad[2].1.contains("bogus"), "{:?}", bad[2]);
        assert_eq!(good[0].item.record.record_id, "sms:1");
        assert_eq!(good[1].item.record.message_type, "edit");
    }
}
