//! Records as producers hand them in and readers get them back, and the
//! plaintext envelope that travels encrypted inside a frame.
//!
//! Envelope v2:
//! `version u8 = 2 | salt [16] | six strings, each u16 length + UTF-8:
//!  record_id, conversation_id, custodian, tenant, channel, message_type | body`.
//! The salt is random per record; a salted hash of the plaintext lets a
//! holder of an exported record prove its content without any key.

use crate::error::{Error, Location, Result};
use crate::format::frame::FrameKind;

/// Longest id or label accepted, in bytes.
pub const ID_LEN_MAX: usize = 1024;
const ENVELOPE_VERSION: u8 = 2;
pub const SALT_LEN: usize = 16;
/// Where the salt starts in an envelope: after its version byte.
const SALT_AT: usize = 1;
// docs/FORMAT.md ("Envelope"): a 16-byte salt; each string at most 1024 bytes.
const _: () = assert!(SALT_LEN == 16 && ID_LEN_MAX == 1024);

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
    /// The employee whose communication this is; may be empty.
    pub custodian: String,
    /// The legal entity or business unit; may be empty.
    pub tenant: String,
    /// The capture channel (`whatsapp`, `sms`, `teams`, ...); may be empty.
    pub channel: String,
    /// What the message is (`text`, `image`, `status`, ...); may be empty.
    pub message_type: String,
    /// 0 lets retention policy decide; a later time keeps the record longer.
    /// Never shorter than the policy's date.
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
            custodian: String::new(),
            tenant: String::new(),
            channel: String::new(),
            message_type: String::new(),
            retain_until_us: 0,
            body: body.into(),
        }
    }

    pub fn with_custodian(mut self, custodian: impl Into<String>) -> Self {
        self.custodian = custodian.into();
        self
    }

    pub fn with_channel(
        mut self,
        channel: impl Into<String>,
        message_type: impl Into<String>,
    ) -> Self {
        self.channel = channel.into();
        self.message_type = message_type.into();
        self
    }

    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }
}

/// The labels an envelope carries beside the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub salt: [u8; SALT_LEN],
    pub record_id: String,
    pub conversation_id: String,
    pub custodian: String,
    pub tenant: String,
    pub channel: String,
    pub message_type: String,
    pub body: Vec<u8>,
}

/// A record read back, authenticated and decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub kind: FrameKind,
    pub timestamp_us: i64,
    /// The retain-until date stored in the frame at write time.
    pub retain_until_us: i64,
    pub key_id: u32,
    pub salt: [u8; SALT_LEN],
    pub record_id: String,
    pub conversation_id: String,
    pub custodian: String,
    pub tenant: String,
    pub channel: String,
    pub message_type: String,
    pub body: Vec<u8>,
    pub location: Location,
}

/// What the store promises once an append returns: the record is durable at `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
}

/// Build the plaintext envelope of a record.
pub(crate) fn envelope(fields: [&str; 6], body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    envelope_into(&mut out, fields, body.len())?;
    out.extend_from_slice(body);
    Ok(out)
}

/// Append the envelope's version, a fresh salt and `fields` to `out`, with
/// room reserved for a body of `body_len` bytes to follow.
pub(crate) fn envelope_into(out: &mut Vec<u8>, fields: [&str; 6], body_len: usize) -> Result<()> {
    const NAMES: [&str; 6] = [
        "record id",
        "conversation id",
        "custodian",
        "tenant",
        "channel",
        "message type",
    ];
    let mut len = 1 + SALT_LEN + body_len;
    for (what, f) in NAMES.iter().zip(fields) {
        if f.len() > ID_LEN_MAX {
            return Err(Error::invalid(
                *what,
                format!("{} bytes, the limit is {ID_LEN_MAX}", f.len()),
            ));
        }
        len += 2 + f.len();
    }
    let mut salt = [0u8; SALT_LEN];
    rand::RngExt::fill(&mut rand::rng(), &mut salt[..]);
    out.reserve(len);
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&salt);
    for f in fields {
        out.extend_from_slice(&(f.len() as u16).to_le_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    Ok(())
}

/// The salt of an envelope built by [`envelope_into`] (`b` starts at the
/// envelope's version byte and holds at least its fixed part).
pub fn salt_of(b: &[u8]) -> [u8; SALT_LEN] {
    b[SALT_AT..SALT_AT + SALT_LEN]
        .try_into()
        .expect("an envelope holds its salt")
}

/// Split a decrypted envelope.
pub(crate) fn open_envelope(b: &[u8]) -> std::result::Result<Envelope, String> {
    if b.first() != Some(&ENVELOPE_VERSION) {
        return Err(format!("unknown envelope version {:?}", b.first()));
    }
    let salt: [u8; SALT_LEN] = b
        .get(SALT_AT..SALT_AT + SALT_LEN)
        .ok_or("envelope truncated")?
        .try_into()
        .expect("16");
    let mut p = SALT_AT + SALT_LEN;
    let mut take = || -> std::result::Result<String, String> {
        let n = u16::from_le_bytes(
            b.get(p..p + 2)
                .ok_or("envelope truncated")?
                .try_into()
                .expect("2"),
        ) as usize;
        let s = b.get(p + 2..p + 2 + n).ok_or("envelope truncated")?;
        p += 2 + n;
        String::from_utf8(s.to_vec()).map_err(|_| "id is not UTF-8".to_string())
    };
    let record_id = take()?;
    let conversation_id = take()?;
    let custodian = take()?;
    let tenant = take()?;
    let channel = take()?;
    let message_type = take()?;
    Ok(Envelope {
        salt,
        record_id,
        conversation_id,
        custodian,
        tenant,
        channel,
        message_type,
        body: b[p..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_truncation() {
        let e = envelope(["r", "c", "alice", "bank-eu", "whatsapp", "text"], b"hi").unwrap();
        let o = open_envelope(&e).unwrap();
        assert_eq!(
            (
                o.record_id.as_str(),
                o.custodian.as_str(),
                o.body.as_slice()
            ),
            ("r", "alice", &b"hi"[..])
        );
        assert_eq!(o.message_type, "text");
        for cut in 0..e.len() - 2 {
            let _ = open_envelope(&e[..cut]);
        }
        assert!(open_envelope(&e[..10]).is_err());
        let long = "x".repeat(ID_LEN_MAX + 1);
        assert!(envelope([&long, "", "", "", "", ""], b"").is_err());
    }
}
