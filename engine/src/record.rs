//! Records as producers hand them in and readers get them back, and the
//! plaintext envelope that travels encrypted inside a frame.
//!
//! Envelope v1: `version u8 = 1 | record_id_len u16 | record_id | conversation_id_len u16 | conversation_id | body`.

use crate::error::{Error, Location, Result};
use crate::frame::FrameKind;

/// Longest record or conversation id accepted, in bytes.
pub const ID_LEN_MAX: usize = 1024;
const ENVELOPE_VERSION: u8 = 1;

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub kind: FrameKind,
    /// When the message was sent or captured, UTC microseconds.
    pub timestamp_us: i64,
    /// The record's own id (e.g. the message id); may be empty.
    pub record_id: String,
    /// The conversation (chat, thread) the record belongs to; may be empty.
    pub conversation_id: String,
    /// 0 lets retention policy decide; otherwise the retain-until time in UTC microseconds.
    pub retain_until_us: i64,
    pub body: Vec<u8>,
}

impl NewRecord {
    pub fn message(
        record_id: impl Into<String>,
        conversation_id: impl Into<String>,
        timestamp_us: i64,
        body: impl Into<Vec<u8>>,
    ) -> Self {
        NewRecord {
            kind: FrameKind::Message,
            timestamp_us,
            record_id: record_id.into(),
            conversation_id: conversation_id.into(),
            retain_until_us: 0,
            body: body.into(),
        }
    }
}

/// A record read back, authenticated and decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub kind: FrameKind,
    pub timestamp_us: i64,
    pub retain_until_us: i64,
    pub record_id: String,
    pub conversation_id: String,
    pub body: Vec<u8>,
    pub location: Location,
}

/// What the store promises once an append returns: the record is durable at `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
}

pub(crate) fn envelope(record_id: &str, conversation_id: &str, body: &[u8]) -> Result<Vec<u8>> {
    for (what, id) in [
        ("record id", record_id),
        ("conversation id", conversation_id),
    ] {
        if id.len() > ID_LEN_MAX {
            return Err(Error::invalid(
                what,
                format!("{} bytes, the limit is {ID_LEN_MAX}", id.len()),
            ));
        }
    }
    let mut out = Vec::with_capacity(5 + record_id.len() + conversation_id.len() + body.len());
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&(record_id.len() as u16).to_le_bytes());
    out.extend_from_slice(record_id.as_bytes());
    out.extend_from_slice(&(conversation_id.len() as u16).to_le_bytes());
    out.extend_from_slice(conversation_id.as_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Split a decrypted envelope into (record id, conversation id, body).
pub(crate) fn open_envelope(b: &[u8]) -> std::result::Result<(String, String, Vec<u8>), String> {
    if b.first() != Some(&ENVELOPE_VERSION) {
        return Err(format!("unknown envelope version {:?}", b.first()));
    }
    let mut p = 1;
    let take = |p: &mut usize| -> std::result::Result<String, String> {
        let n = u16::from_le_bytes(
            b.get(*p..*p + 2)
                .ok_or("envelope truncated")?
                .try_into()
                .expect("2"),
        ) as usize;
        let s = b.get(*p + 2..*p + 2 + n).ok_or("envelope truncated")?;
        *p += 2 + n;
        String::from_utf8(s.to_vec()).map_err(|_| "id is not UTF-8".to_string())
    };
    let rid = take(&mut p)?;
    let cid = take(&mut p)?;
    Ok((rid, cid, b[p..].to_vec()))
}
