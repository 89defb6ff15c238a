//! A zip export read from its file, never whole into memory: the central
//! directory is bounded before it is loaded, and every entry is decompressed
//! as a stream, its bytes counted as they come (the sizes a zip declares are
//! checked first but never trusted) against a per-entry limit, a limit on
//! all entries together and a compression-ratio limit.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Limits on what reading an export may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// Uncompressed bytes of one zip entry.
    pub entry_bytes: u64,
    /// Uncompressed bytes of all entries read from one zip.
    pub total_bytes: u64,
    /// Uncompressed bytes per compressed byte of one entry (checked once an
    /// entry is past [`RATIO_GRACE`] bytes).
    pub ratio: u64,
    /// Bytes of one chat text (it is parsed in memory).
    pub text_bytes: u64,
    /// Bytes of a zip's central directory (its entry list is held in memory).
    pub central_directory_bytes: u64,
}

/// Entries smaller than this are never refused for their compression ratio.
pub const RATIO_GRACE: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            entry_bytes: 4 << 30,
            total_bytes: 64 << 30,
            ratio: 100,
            text_bytes: 256 << 20,
            central_directory_bytes: 16 << 20,
        }
    }
}

/// Why an entry (or a whole zip) was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// More uncompressed bytes than `limit` (declared in the zip, or read).
    EntryTooLarge {
        entry: String,
        limit: u64,
        declared: bool,
    },
    /// Reading it would take the zip past `limit` uncompressed bytes in all.
    TotalTooLarge {
        entry: String,
        limit: u64,
        declared: bool,
    },
    /// It expands more than `limit` times its compressed size.
    RatioTooHigh {
        entry: String,
        limit: u64,
        compressed: u64,
        declared: bool,
    },
    /// A chat text longer than `limit` bytes.
    TextTooLarge { entry: String, limit: u64 },
    /// The central directory is larger than `limit` bytes.
    DirectoryTooLarge { bytes: u64, limit: u64 },
    /// It could not be decompressed (damaged, encrypted, unsupported method).
    Unreadable { entry: String, why: String },
}

fn mib(b: u64) -> String {
    if b >= 1 << 20 && b & ((1 << 20) - 1) == 0 {
        format!("{} MiB", b >> 20)
    } else {
        format!("{b} bytes")
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = |declared: &bool| if *declared { "declares" } else { "holds" };
        match self {
            Refusal::EntryTooLarge { entry, limit, declared } => write!(f, "zip entry {entry:?} {} more than {} uncompressed, the limit for one entry (--max-entry-mib)", how(declared), mib(*limit)),
            Refusal::TotalTooLarge { entry, limit, declared } => write!(f, "zip entry {entry:?} {} more than what is left of the {} allowed for all entries of one zip (--max-total-mib)", how(declared), mib(*limit)),
            Refusal::RatioTooHigh { entry, limit, compressed, declared } => write!(f, "zip entry {entry:?} {} more than {limit} times its {compressed} compressed bytes, the compression-ratio limit (--max-ratio)", how(declared)),
            Refusal::TextTooLarge { entry, limit } => write!(f, "chat text {entry:?} is larger than {}, the limit for one chat text (--max-text-mib)", mib(*limit)),
            Refusal::DirectoryTooLarge { bytes, limit } => write!(f, "the zip's central directory is {bytes} bytes, more than the {} allowed", mib(*limit)),
            Refusal::Unreadable { entry, why } => write!(f, "zip entry {entry:?} cannot be read: {why}"),
        }
    }
}

impl std::error::Error for Refusal {}

/// One entry, as the central directory lists it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub index: usize,
    pub path: String,
    /// Declared sizes (checked, not trusted).
    pub size: u64,
    pub compressed: u64,
    pub is_dir: bool,
}

impl Entry {
    /// The file name without its folder.
    pub fn base(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The folder it is in (`""` at the top).
    pub fn folder(&self) -> &str {
        self.path.rsplit_once('/').map_or("", |(d, _)| d)
    }
}

/// The bytes of a zip's central directory, from its end record (and the
/// zip64 end record if there is one). `None` if no end record is found (the
/// zip reader then says why it cannot open the file).
fn central_directory_bytes(f: &mut File, len: u64) -> std::io::Result<Option<u64>> {
    let tail_len = len.min(65_557);
    let mut tail = vec![0u8; tail_len as usize];
    f.seek(SeekFrom::Start(len - tail_len))?;
    f.read_exact(&mut tail)?;
    let Some(at) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
    else {
        return Ok(None);
    };
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let size = u32_at(&tail, at + 12);
    if size != u32::MAX || at < 20 || !tail[at - 20..].starts_with(b"PK\x06\x07") {
        return Ok(Some(size as u64));
    }
    // Zip64: the locator names where the zip64 end record is.
    let mut off = [0u8; 8];
    off.copy_from_slice(&tail[at - 12..at - 4]);
    let mut rec = [0u8; 56];
    f.seek(SeekFrom::Start(u64::from_le_bytes(off)))?;
    if f.read_exact(&mut rec).is_err() || !rec.starts_with(b"PK\x06\x06") {
        return Ok(None);
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&rec[40..48]);
    Ok(Some(u64::from_le_bytes(size)))
}

/// An open zip export and what has been read from it so far.
pub struct Archive {
    zip: zip::ZipArchive<File>,
    pub entries: Vec<Entry>,
    by_base: HashMap<String, Vec<usize>>,
    limits: Limits,
    file_len: u64,
    /// Uncompressed bytes read so far (each entry counted once).
    used: u64,
}

/// Opening a zip: refused by a limit, or not a zip at all.
pub enum OpenError {
    Refused(Refusal),
    NotAZip(String),
}

impl Archive {
    pub fn open(path: &Path, limits: Limits) -> Result<Archive, OpenError> {
        let io = |e: std::io::Error| OpenError::NotAZip(e.to_string());
        let mut f = File::open(path).map_err(io)?;
        let file_len = f.metadata().map_err(io)?.len();
        if let Some(bytes) = central_directory_bytes(&mut f, file_len).map_err(io)? {
            if bytes > limits.central_directory_bytes {
                return Err(OpenError::Refused(Refusal::DirectoryTooLarge {
                    bytes,
                    limit: limits.central_directory_bytes,
                }));
            }
        }
        f.rewind().map_err(io)?;
        let zip = zip::ZipArchive::new(f).map_err(|e| OpenError::NotAZip(e.to_string()))?;
        let mut entries = Vec::with_capacity(zip.len());
        let mut by_base: HashMap<String, Vec<usize>> = HashMap::new();
        for index in 0..zip.len() {
            let Ok(d) = zip.by_index_data(index) else {
                continue;
            };
            let path = d.name().map_or_else(
                |_| String::from_utf8_lossy(d.name_raw()).into_owned(),
                |n| n.into_owned(),
            );
            let e = Entry {
                index,
                path,
                size: d.size(),
                compressed: d.compressed_size(),
                is_dir: d.is_dir(),
            };
            if !e.is_dir {
                by_base
                    .entry(e.base().to_string())
                    .or_default()
                    .push(entries.len());
            }
            entries.push(e);
        }
        Ok(Archive {
            zip,
            entries,
            by_base,
            limits,
            file_len,
            used: 0,
        })
    }

    /// The entry holding attachment `name` of a chat text in `folder`: the
    /// one in the same folder, else the one at the top, else the first.
    pub fn attachment(&self, name: &str, folder: &str) -> Option<usize> {
        let found = self.by_base.get(name)?;
        let pick = |f: &str| {
            found
                .iter()
                .copied()
                .find(|&i| self.entries[i].folder() == f)
        };
        pick(folder)
            .or_else(|| pick(""))
            .or_else(|| found.first().copied())
    }

    /// The most an entry may yield, and which limit that is.
    fn cap(&self, e: &Entry, text: bool) -> (u64, Limit) {
        let ratio = self
            .limits
            .ratio
            .saturating_mul(e.compressed.min(self.file_len))
            .max(RATIO_GRACE);
        let mut caps = vec![
            (self.limits.entry_bytes, Limit::Entry),
            (
                self.limits.total_bytes.saturating_sub(self.used),
                Limit::Total,
            ),
            (ratio, Limit::Ratio),
        ];
        if text {
            caps.push((self.limits.text_bytes, Limit::Text));
        }
        caps.into_iter().min_by_key(|c| c.0).expect("non-empty")
    }

    fn refusal(&self, e: &Entry, limit: Limit, declared: bool) -> Refusal {
        let entry = e.path.clone();
        match limit {
            Limit::Entry => Refusal::EntryTooLarge {
                entry,
                limit: self.limits.entry_bytes,
                declared,
            },
            Limit::Total => Refusal::TotalTooLarge {
                entry,
                limit: self.limits.total_bytes,
                declared,
            },
            Limit::Ratio => Refusal::RatioTooHigh {
                entry,
                limit: self.limits.ratio,
                compressed: e.compressed,
                declared,
            },
            Limit::Text => Refusal::TextTooLarge {
                entry,
                limit: self.limits.text_bytes,
            },
        }
    }

    /// Stream entry `i` through `sink`, refusing it once it passes a limit
    /// (its declared size first, then the bytes as they come).
    fn stream(
        &mut self,
        i: usize,
        text: bool,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<u64, Refusal> {
        let e = self.entries[i].clone();
        let (cap, limit) = self.cap(&e, text);
        if e.size > cap {
            return Err(self.refusal(&e, limit, true));
        }
        let unreadable = |why: String| Refusal::Unreadable {
            entry: e.path.clone(),
            why,
        };
        let f = self
            .zip
            .by_index(e.index)
            .map_err(|z| unreadable(z.to_string()))?;
        let mut r = f.take(cap.saturating_add(1));
        let mut buf = vec![0u8; 256 << 10];
        let mut n = 0u64;
        loop {
            let got = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(got) => got,
                Err(x) if x.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(x) => return Err(unreadable(x.to_string())),
            };
            n += got as u64;
            if n > cap {
                drop(r);
                return Err(self.refusal(&e, limit, false));
            }
            sink(&buf[..got]);
        }
        self.used += n;
        Ok(n)
    }

    /// The whole of chat text entry `i`.
    pub fn read_text(&mut self, i: usize) -> Result<Vec<u8>, Refusal> {
        let mut out = Vec::new();
        self.stream(i, true, |b| out.extend_from_slice(b))?;
        Ok(out)
    }

    /// The length and SHA-256 of entry `i`, read as a stream (nothing kept).
    pub fn measure(&mut self, i: usize) -> Result<(u64, [u8; 32]), Refusal> {
        let mut h = Sha256::new();
        let n = self.stream(i, false, |b| h.update(b))?;
        Ok((n, h.finalize().into()))
    }

    /// Entry `i`, already measured at `len` bytes, as a reader for `f`
    /// (which must check what it read against the measurement).
    pub fn with_reader<T>(
        &mut self,
        i: usize,
        len: u64,
        f: impl FnOnce(&mut dyn Read) -> T,
    ) -> Result<T, Refusal> {
        let e = &self.entries[i];
        let file = self
            .zip
            .by_index(e.index)
            .map_err(|z| Refusal::Unreadable {
                entry: e.path.clone(),
                why: z.to_string(),
            })?;
        let mut r = file.take(len);
        Ok(f(&mut r))
    }
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    Entry,
    Total,
    Ratio,
    Text,
}

/// Whether entry `e` is a chat text: `_chat.txt` (iOS), or a `.txt` whose
/// name holds "WhatsApp", as the apps name it in every language (`WhatsApp
/// Chat with X.txt`, `WhatsApp Chat mit X.txt`, `Chat de WhatsApp con
/// X.txt`, `Conversa do WhatsApp com X.txt`, `Discussion WhatsApp avec
/// X.txt`, `Chat WhatsApp con X.txt`, `WhatsApp-chat met X.txt`, `Czat
/// WhatsApp z X.txt`, `Чат WhatsApp с X.txt`, ...) and not as the apps name
/// attachments (`00000012-…`, `DOC-20240312-WA0001…`). macOS resource
/// forks (`__MACOSX/`, `._name`) are never chat texts.
pub fn is_chat_text(e: &Entry) -> bool {
    let base = e.base();
    let lower = base.to_lowercase();
    if e.is_dir
        || e.path.split('/').any(|p| p == "__MACOSX")
        || base.starts_with("._")
        || !lower.ends_with(".txt")
    {
        return false;
    }
    lower == "_chat.txt" || (lower.contains("whatsapp") && !is_attachment_name(base))
}

fn is_attachment_name(base: &str) -> bool {
    let b = base.as_bytes();
    let ios = b.len() > 9 && b[..8].iter().all(u8::is_ascii_digit) && b[8] == b'-';
    let android = ["DOC-", "IMG-", "VID-", "AUD-", "PTT-", "STK-"]
        .iter()
        .any(|p| base.starts_with(p))
        && base.contains("-WA");
    ios || android
}

/// The chat texts among `entries`: those named as one; failing that, the
/// only `.txt` file (outside macOS resource forks), if there is exactly one.
pub fn chat_texts(entries: &[Entry]) -> Vec<usize> {
    let named: Vec<usize> = (0..entries.len())
        .filter(|&i| is_chat_text(&entries[i]))
        .collect();
    if !named.is_empty() {
        return named;
    }
    let txt: Vec<usize> = (0..entries.len())
        .filter(|&i| {
            let e = &entries[i];
            !e.is_dir
                && e.base().to_lowercase().ends_with(".txt")
                && !e.path.split('/').any(|p| p == "__MACOSX")
                && !e.base().starts_with("._")
        })
        .collect();
    if txt.len() == 1 {
        txt
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn entry(path: &str) -> Entry {
        Entry {
            index: 0,
            path: path.into(),
            size: 0,
            compressed: 0,
            is_dir: false,
        }
    }

    #[test]
    fn chat_text_names() {
        for yes in [
            "_chat.txt",
            "a/b/_chat.txt",
            "WhatsApp Chat with Client A.txt",
            "WhatsApp Chat mit Anna.txt",
            "Chat de WhatsApp con Ana.txt",
            "Conversa do WhatsApp com Ana.txt",
            "Discussion WhatsApp avec Anne.txt",
            "x/Czat WhatsApp z Anną.txt",
            "Чат WhatsApp с Анной.txt",
        ] {
            assert!(is_chat_text(&entry(yes)), "{yes}");
        }
        for no in [
            "__MACOSX/._chat.txt",
            "__MACOSX/.__chat.txt",
            "._WhatsApp Chat with A.txt",
            "00000004-whatsapp-notes.txt",
            "DOC-20240312-WA0001-whatsapp.txt",
            "WhatsApp Chat with A.zip",
            "notes.txt",
        ] {
            assert!(!is_chat_text(&entry(no)), "{no}");
        }
        assert_eq!(
            chat_texts(&[entry("photo.jpg"), entry("chat.txt")]),
            vec![1]
        );
        assert!(chat_texts(&[entry("a.txt"), entry("b.txt")]).is_empty());
    }

    fn zip_with(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut z = zip::ZipWriter::new(f.reopen().unwrap());
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            z.start_file(*name, o).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
        f
    }

    #[test]
    fn limits_are_counted_as_read() {
        let zeros = vec![0u8; 8 << 20];
        let f = zip_with(&[("zeros.bin", &zeros), ("small.txt", b"hello")]);
        let mut a = Archive::open(f.path(), Limits::default()).unwrap_or_else(|_| panic!("open"));
        let err = a.measure(0).unwrap_err();
        assert!(
            matches!(err, Refusal::RatioTooHigh { declared: true, .. }),
            "{err}"
        );
        // Sizes that lie: the same entry believed small is still cut off when read.
        a.entries[0].size = 10;
        let err = a.measure(0).unwrap_err();
        assert!(
            matches!(
                err,
                Refusal::RatioTooHigh {
                    declared: false,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("\"zeros.bin\"") && err.to_string().contains("100 times"),
            "{err}"
        );
        assert_eq!(a.measure(1).unwrap().0, 5);
        let limits = Limits {
            ratio: 1 << 20,
            entry_bytes: 4 << 20,
            ..Limits::default()
        };
        let mut a = Archive::open(f.path(), limits).unwrap_or_else(|_| panic!("open"));
        a.entries[0].size = 10;
        assert!(
            matches!(a.measure(0).unwrap_err(), Refusal::EntryTooLarge { declared: false, limit, .. } if limit == 4 << 20)
        );
        let limits = Limits {
            ratio: 1 << 20,
            total_bytes: 6 << 20,
            ..Limits::default()
        };
        let mut a = Archive::open(f.path(), limits).unwrap_or_else(|_| panic!("open"));
        assert_eq!(a.measure(1).unwrap().0, 5);
        a.entries[0].size = 10;
        let err = a.measure(0).unwrap_err();
        assert!(matches!(err, Refusal::TotalTooLarge { .. }), "{err}");
    }
}
