//! The bytes of a chat text, decoded for parsing: UTF-8 with or without a
//! byte-order mark, UTF-16 (little or big endian) with a mark, or without
//! one when the NUL bytes give it away. Invalid sequences become U+FFFD and
//! are counted; the verbatim bytes are what the evidence keeps.

use serde::Serialize;

/// How a chat text was decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Encoding {
    /// `utf-8`, `utf-8 with BOM`, `utf-16le with BOM`, `utf-16be with BOM`,
    /// `utf-16le (no BOM, read from its NUL bytes)`, ...
    pub name: String,
    /// Invalid byte sequences replaced by U+FFFD for parsing.
    pub invalid_sequences: u64,
    /// Byte offset of the first of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_invalid_at: Option<u64>,
}

impl Encoding {
    /// A sentence for the report, when decoding was lossy.
    pub fn note(&self) -> Option<String> {
        self.first_invalid_at.map(|at| {
            format!(
                "not valid {}: {} invalid byte sequence(s), the first at byte {at}, were read as U+FFFD for parsing; the evidence keeps the verbatim bytes",
                self.name, self.invalid_sequences
            )
        })
    }
}

#[derive(Clone, Copy)]
enum Utf16 {
    Le,
    Be,
}

/// Decode `bytes` (a whole chat text).
pub fn decode(bytes: &[u8]) -> (String, Encoding) {
    if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
        return utf8(rest, "utf-8 with BOM", 3);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xff\xfe") {
        return utf16(rest, Utf16::Le, "utf-16le with BOM", 2);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xfe\xff") {
        return utf16(rest, Utf16::Be, "utf-16be with BOM", 2);
    }
    match guess_utf16(bytes) {
        Some(Utf16::Le) => utf16(
            bytes,
            Utf16::Le,
            "utf-16le (no BOM, read from its NUL bytes)",
            0,
        ),
        Some(Utf16::Be) => utf16(
            bytes,
            Utf16::Be,
            "utf-16be (no BOM, read from its NUL bytes)",
            0,
        ),
        None => utf8(bytes, "utf-8", 0),
    }
}

/// UTF-16 without a mark: text of a chat export is mostly ASCII, so one
/// byte of each pair is NUL, always on the same side.
fn guess_utf16(bytes: &[u8]) -> Option<Utf16> {
    let head = &bytes[..bytes.len().min(4096) & !1];
    if head.len() < 8 {
        return None;
    }
    let pairs = head.len() / 2;
    let (mut even, mut odd) = (0, 0);
    for p in head.chunks_exact(2) {
        even += usize::from(p[0] == 0);
        odd += usize::from(p[1] == 0);
    }
    if odd * 10 >= pairs * 4 && even * 50 <= pairs {
        Some(Utf16::Le)
    } else if even * 10 >= pairs * 4 && odd * 50 <= pairs {
        Some(Utf16::Be)
    } else {
        None
    }
}

fn utf8(bytes: &[u8], name: &str, offset: u64) -> (String, Encoding) {
    let mut enc = Encoding {
        name: name.into(),
        invalid_sequences: 0,
        first_invalid_at: None,
    };
    if let Ok(s) = std::str::from_utf8(bytes) {
        return (s.to_string(), enc);
    }
    let mut out = String::with_capacity(bytes.len());
    let mut at = offset;
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        at += chunk.valid().len() as u64;
        if !chunk.invalid().is_empty() {
            enc.invalid_sequences += 1;
            enc.first_invalid_at.get_or_insert(at);
            at += chunk.invalid().len() as u64;
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
    (out, enc)
}

fn utf16(bytes: &[u8], order: Utf16, name: &str, offset: u64) -> (String, Encoding) {
    let mut enc = Encoding {
        name: name.into(),
        invalid_sequences: 0,
        first_invalid_at: None,
    };
    let units = bytes.chunks_exact(2).map(|p| match order {
        Utf16::Le => u16::from_le_bytes([p[0], p[1]]),
        Utf16::Be => u16::from_be_bytes([p[0], p[1]]),
    });
    let mut out = String::with_capacity(bytes.len() / 2);
    let mut at = offset;
    for c in char::decode_utf16(units) {
        match c {
            Ok(c) => {
                out.push(c);
                at += 2 * c.len_utf16() as u64;
            }
            Err(_) => {
                enc.invalid_sequences += 1;
                enc.first_invalid_at.get_or_insert(at);
                out.push(char::REPLACEMENT_CHARACTER);
                at += 2;
            }
        }
    }
    if bytes.len() % 2 == 1 {
        enc.invalid_sequences += 1;
        enc.first_invalid_at
            .get_or_insert(offset + bytes.len() as u64 - 1);
        out.push(char::REPLACEMENT_CHARACTER);
    }
    (out, enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16_bytes(s: &str, le: bool, bom: bool) -> Vec<u8> {
        let mut b = Vec::new();
        if bom {
            b.extend_from_slice(if le { b"\xff\xfe" } else { b"\xfe\xff" });
        }
        for u in s.encode_utf16() {
            b.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        b
    }

    #[test]
    fn encodings() {
        let text = "12/03/24, 09:16 - Trader One: Grüße, 5m at 1.0875 ✓\n";
        assert_eq!(
            decode(text.as_bytes()),
            (
                text.to_string(),
                Encoding {
                    name: "utf-8".into(),
                    invalid_sequences: 0,
                    first_invalid_at: None
                }
            )
        );
        let mut bom = b"\xef\xbb\xbf".to_vec();
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(decode(&bom).0, text);
        for (le, bom, name) in [
            (true, true, "utf-16le with BOM"),
            (false, true, "utf-16be with BOM"),
            (true, false, "utf-16le (no BOM, read from its NUL bytes)"),
            (false, false, "utf-16be (no BOM, read from its NUL bytes)"),
        ] {
            let (s, e) = decode(&utf16_bytes(text, le, bom));
            assert_eq!(
                (s.as_str(), e.name.as_str(), e.invalid_sequences > 0),
                (text, name, false)
            );
        }
        let mut bad = text.as_bytes().to_vec();
        bad.insert(5, 0xff);
        bad.push(0xc3);
        let (s, e) = decode(&bad);
        assert_eq!((e.invalid_sequences, e.first_invalid_at), (2, Some(5)));
        assert!(s.starts_with("12/03\u{fffd}/24") && s.ends_with('\u{fffd}'));
        assert!(e.note().unwrap().contains("at byte 5"));
        // A lone surrogate and an odd trailing byte.
        let mut b = utf16_bytes("ab", true, true);
        b.extend_from_slice(&0xd800u16.to_le_bytes());
        b.extend_from_slice(b"c\0x");
        let (s, e) = decode(&b);
        assert_eq!(
            (s.as_str(), e.invalid_sequences, e.first_invalid_at),
            ("ab\u{fffd}c\u{fffd}", 2, Some(6))
        );
    }
}
