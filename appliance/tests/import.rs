//! `stele import`: WhatsApp chat exports (our own synthetic ones, and the
//! public ones in ../shared when present): every message stored, attachments
//! as blobs, markers kept, unparsable lines kept and counted, dates decided
//! for the whole file, and a re-import adds nothing. Large files and zip
//! bombs: streamed, limited, refused with a reason and still archived, in
//! bounded memory (the importer's peak RSS is measured).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use stele_tests::Scratch;

fn stele(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(args)
        .output()
        .expect("run stele");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn init(dir: &Path) -> String {
    init_zones(dir, 32)
}

/// A store of `zones` 16 MiB zones.
fn init_zones(dir: &Path, zones: u32) -> String {
    let s = dir.join("s");
    let (ok, _, err) = stele(&[
        "init",
        s.to_str().unwrap(),
        "--zone-size-mib",
        "16",
        "--zones",
        &zones.to_string(),
    ]);
    assert!(ok, "{err}");
    s.to_str().unwrap().to_string()
}

/// `stele import FILE --store S --custodian C` and more arguments.
fn import(
    file: &Path,
    s: &str,
    custodian: &str,
    more: &[&str],
) -> (bool, serde_json::Value, String) {
    let mut args = vec![
        "import",
        file.to_str().unwrap(),
        "--store",
        s,
        "--custodian",
        custodian,
    ];
    args.extend_from_slice(more);
    let (ok, out, err) = stele(&args);
    let v = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
    (ok, v, err)
}

/// The record at `seq`, as `stele get` prints it, with its body parsed.
fn record(s: &str, seq: u64) -> serde_json::Value {
    let (ok, out, err) = stele(&["get", "--store", s, "--seq", &seq.to_string()]);
    assert!(ok, "{err}");
    let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
    if let Ok(b) = serde_json::from_str::<serde_json::Value>(v["body"].as_str().unwrap_or("")) {
        v["body"] = b;
    }
    v
}

fn next_seq(s: &str) -> u64 {
    let (ok, out, err) = stele(&["info", "--store", s]);
    assert!(ok, "{err}");
    let at = out.find("next seq ").expect("next seq") + 9;
    out[at..].split(',').next().unwrap().parse().unwrap()
}

/// What a measured run of `stele` did.
struct Measured {
    ok: bool,
    out: serde_json::Value,
    err: String,
    max_rss_mib: f64,
    secs: f64,
}

/// Run `stele args` from a fresh run of this test binary (only
/// `measured_child`), so the peak RSS `getrusage(RUSAGE_CHILDREN)` reports
/// is that one process's, not that of other tests' children.
fn measured(args: &[&str]) -> Measured {
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "measured_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(MEASURE, serde_json::to_string(args).unwrap())
        .output()
        .expect("run the measuring child");
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .find_map(|l| l.split_once("MEASURED ").map(|(_, m)| m))
        .unwrap_or_else(|| {
            panic!(
                "no measurement: {text} {}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    Measured {
        ok: v["ok"].as_bool().unwrap(),
        out: serde_json::from_str(v["stdout"].as_str().unwrap()).unwrap_or(serde_json::Value::Null),
        err: v["stderr"].as_str().unwrap().to_string(),
        max_rss_mib: v["max_rss_kib"].as_f64().unwrap() / 1024.0,
        secs: v["secs"].as_f64().unwrap(),
    }
}

const MEASURE: &str = "STELE_IMPORT_TEST_MEASURE";

/// Part of [`measured`], not a test of its own: with the arguments in
/// `STELE_IMPORT_TEST_MEASURE`, runs `stele` and prints what it did, its
/// time and its peak resident set size. Without them it does nothing.
#[test]
fn measured_child() {
    let Ok(args) = std::env::var(MEASURE) else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(&args)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let v = serde_json::json!({
        "ok": o.status.success(), "stdout": String::from_utf8_lossy(&o.stdout),
        "stderr": String::from_utf8_lossy(&o.stderr), "max_rss_kib": usage.max_rss(), "secs": secs,
    });
    println!("MEASURED {v}");
}

const ANDROID: &str = "\u{feff}Exported from a phone that printed a header\n\
12/03/24, 09:15 - Messages and calls are end-to-end encrypted. No one outside of this chat can read them.\n\
12/03/24, 09:16 - Trader One: Morning, can you confirm the 5m EUR/USD at 1.0875?\n\
12/03/24, 09:17 - Client A: Confirmed.\n\
Please book it to account 7781.\n\
12/03/24, 09:18 - Client A: <Media omitted>\n\
12/03/24, 09:19 - Trader One: This message was deleted\n\
13/03/24, 17:02 - Client A: Changed my mind about the size <This message was edited>\n\
13/03/24, 17:02 - Client A: Changed my mind about the size <This message was edited>\n";

const IOS: &str =
    "[3/12/24, 9:15:02 AM] Trader One: \u{200e}Messages and calls are end-to-end encrypted.\n\
\u{200e}[3/12/24, 9:16:40 AM] Client B: Deal?\n\
[3/12/24, 1:05:00 PM] Trader One: \u{200e}<attached: 00000003-PHOTO-2024-03-12-13-05-00.jpg>\n\
[3/13/24, 10:00:00 AM] Client B: \u{200e}image omitted\n";

#[test]
fn android_text_export_imports_once() {
    let dir = Scratch::new();
    let s = init(dir.path());
    let f = dir.path().join("WhatsApp Chat with Client A.txt");
    std::fs::write(&f, ANDROID).unwrap();
    let (ok, out, err) = stele(&[
        "import",
        f.to_str().unwrap(),
        "--store",
        &s,
        "--custodian",
        "trader-1",
        "--utc-offset",
        "+01:00",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["messages"], 7);
    assert_eq!(
        v["stored"], 7,
        "two identical lines in one minute are two messages"
    );
    assert_eq!(v["unparsed_lines"], serde_json::json!([1]));
    assert_eq!(v["date_order"], "day-first");
    assert!(
        err.contains("lines [1], kept in the import report"),
        "{err}"
    );
    // Again: nothing new.
    let (ok, out, _) = stele(&[
        "import",
        f.to_str().unwrap(),
        "--store",
        &s,
        "--custodian",
        "trader-1",
        "--utc-offset",
        "+01:00",
    ]);
    assert!(ok);
    let v2: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v2["stored"].as_u64(), v2["already_stored"].as_u64()),
        (Some(0), Some(7))
    );
    let conv = v["conversation"].as_str().unwrap();
    let (_, got, _) = stele(&["get", "--store", &s, "--conversation", conv]);
    assert!(
        got.contains("account 7781"),
        "multi-line message kept: {got}"
    );
    assert!(got.contains(r#"\"deleted\":true"#), "{got}");
    assert!(got.contains(r#"\"edited\":true"#), "{got}");
    assert!(got.contains(r#"\"media_omitted\":true"#), "{got}");
    assert!(
        got.contains("Exported from a phone"),
        "the unparsed line is kept in the report: {got}"
    );
    // 09:16 local at +01:00 is 08:16 UTC.
    assert!(got.contains("\"timestamp_us\":1710231360000000"), "{got}");
}

/// A later export of a chat (another file, into the same conversation):
/// only its new messages are stored, each earlier one found as stored.
#[test]
fn later_export_stores_only_new_messages() {
    let dir = Scratch::new();
    let s = init(dir.path());
    let first = dir.path().join("first.txt");
    std::fs::write(&first, ANDROID).unwrap();
    let (ok, _, err) = import(&first, &s, "trader-1", &["--conversation", "client-a"]);
    assert!(ok, "{err}");
    let later = dir.path().join("later.txt");
    std::fs::write(
        &later,
        format!("{ANDROID}14/03/24, 08:00 - Client A: And one more thing\n"),
    )
    .unwrap();
    let (ok, v, err) = import(&later, &s, "trader-1", &["--conversation", "client-a"]);
    assert!(ok, "{err}");
    let counts = (
        v["stored"].as_u64(),
        v["already_stored"].as_u64(),
        v["conflicts"].as_u64(),
    );
    assert_eq!(counts, (Some(1), Some(7), Some(0)), "{v}");
}

#[test]
fn ios_zip_export_stores_attachments_as_blobs() {
    let dir = Scratch::new();
    let s = init(dir.path());
    let zip_path = dir.path().join("WhatsApp Chat - Client B.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("_chat.txt", o).unwrap();
        z.write_all(IOS.as_bytes()).unwrap();
        z.start_file("00000003-PHOTO-2024-03-12-13-05-00.jpg", o)
            .unwrap();
        z.write_all(&[0xffu8, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5])
            .unwrap();
        z.finish().unwrap();
    }
    let (ok, out, err) = stele(&[
        "import",
        zip_path.to_str().unwrap(),
        "--store",
        &s,
        "--custodian",
        "trader-1",
        "--conversation",
        "client-b",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["messages"], 4);
    assert_eq!(v["attachments_stored"], 1);
    assert_eq!(v["date_order"], "month-first");
    let (_, got, _) = stele(&["get", "--store", &s, "--conversation", "client-b"]);
    assert!(got.contains(r#"\"blob\":{\"bytes\":9"#), "{got}");
    assert!(
        got.contains("\"kind\":\"Media\""),
        "the photo is a blob of the conversation: {got}"
    );
    // Not a chat export: a clear error.
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "just some notes\nnothing dated\n").unwrap();
    let (ok, _, err) = stele(&[
        "import",
        junk.to_str().unwrap(),
        "--store",
        &s,
        "--custodian",
        "x",
    ]);
    assert!(!ok && err.contains("no WhatsApp messages found"), "{err}");
}

/// Every export in ../shared (public parser projects' fixtures) imports with
/// every line accounted for.
#[test]
fn conformance_with_shared_chat_exports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/whatsapp-export");
    if !root.exists() {
        println!(
            "conformance: {} is absent; nothing to import",
            root.display()
        );
        return;
    }
    let dir = Scratch::new();
    let s = init(dir.path());
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "txt" || x == "zip") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 30, "{} files", files.len());
    let mut total = 0;
    for f in &files {
        let (ok, out, err) = stele(&[
            "import",
            f.to_str().unwrap(),
            "--store",
            &s,
            "--custodian",
            "conformance",
        ]);
        assert!(ok, "{}: {err}", f.display());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            v["messages"].as_u64().unwrap() >= 5,
            "{}: {out}",
            f.display()
        );
        assert!(
            v["unparsed_lines"].as_array().unwrap().is_empty(),
            "{}: {out}",
            f.display()
        );
        total += v["messages"].as_u64().unwrap();
    }
    println!("conformance: {} exports, {total} messages", files.len());
}

/// A 16-bit little-endian number at `at`.
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Bytes that do not compress.
fn noise(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A zip of `entries` (name, content, deflated?).
fn write_zip(path: &Path, entries: &[(&str, &[u8], bool)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, data, deflate) in entries {
        let method = if *deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        z.start_file(
            *name,
            zip::write::SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn text_larger_than_a_zone_imports() {
    let dir = Scratch::new();
    let s = init(dir.path());
    // 20 MiB: more than a 16 MiB zone, and one message longer than any record may be.
    let f = dir.path().join("WhatsApp Chat with Big.txt");
    let mut text = String::from(
        "12/03/24, 09:15 - Trader One: before\n12/03/24, 09:16 - Trader One: the long one\n",
    );
    let line = "x".repeat(1023) + "\n";
    while text.len() < 20 << 20 {
        text.push_str(&line);
    }
    text.push_str("12/03/24, 09:17 - Client A: after\n");
    std::fs::write(&f, &text).unwrap();
    let (ok, v, err) = import(&f, &s, "trader-1", &[]);
    assert!(ok, "{err}");
    assert_eq!(
        (v["messages"].as_u64(), v["stored"].as_u64()),
        (Some(3), Some(3)),
        "{v}"
    );
    assert_eq!(v["chats"][0]["truncated_lines"], serde_json::json!([2]));
    let ev = record(&s, v["evidence_seq"].as_u64().unwrap());
    assert_eq!(ev["kind"], "Evidence");
    assert_eq!(
        ev["record_id"].as_str().unwrap(),
        format!(
            "whatsapp-export-file:{}",
            v["file_sha256"].as_str().unwrap()
        )
    );
    assert_eq!(ev["body"]["bytes"].as_u64(), Some(text.len() as u64));
    assert_eq!(
        ev["body"]["blob"]["sha256"], v["file_sha256"],
        "the blob is the file, verbatim"
    );
    assert_eq!(
        record(&s, ev["body"]["blob"]["seq"].as_u64().unwrap())["kind"],
        "Media"
    );
    let (_, got, _) = stele(&[
        "get",
        "--store",
        &s,
        "--conversation",
        v["conversation"].as_str().unwrap(),
    ]);
    assert!(
        got.contains("text_truncated"),
        "{}",
        &got[..got.len().min(2000)]
    );
}

/// A chat export of `total` lines (one in eleven continues the message
/// before it) at `f`; returns how many messages it holds.
fn write_lines(f: &Path, total: u64) -> u64 {
    let (mut lines, mut messages) = (0, 0u64);
    let mut w = std::io::BufWriter::new(std::fs::File::create(f).unwrap());
    while lines < total {
        let i = messages;
        let (mi, h, d, mo, y) = (
            i % 60,
            (i / 60) % 24,
            1 + (i / 1440) % 28,
            1 + (i / 40_320) % 12,
            20 + i / 483_840,
        );
        writeln!(
            w,
            "{d:02}/{mo:02}/{y:02}, {h:02}:{mi:02} - Trader {}: order {i} for {} at 1.{:04}",
            i % 7,
            i * 7919 % 100_000,
            i % 10_000
        )
        .unwrap();
        lines += 1;
        messages += 1;
        if i % 10 == 9 && lines < total {
            writeln!(w, "booked to account {}", i % 9973).unwrap();
            lines += 1;
        }
    }
    w.flush().unwrap();
    messages
}

/// A 1,000,000-line export: every message stored; importing it again adds
/// nothing. Prints its time and the importer's peak RSS.
#[test]
fn million_line_export_imports_and_again_adds_nothing() {
    let dir = Scratch::new();
    let s = init_zones(dir.path(), 128);
    let f = dir.path().join("WhatsApp Chat with Desk.txt");
    let messages = write_lines(&f, 1_000_000);
    let args = [
        "import",
        f.to_str().unwrap(),
        "--store",
        &s,
        "--custodian",
        "desk-1",
    ];
    let first = measured(&args);
    assert!(first.ok, "{}", first.err);
    assert_eq!(
        (first.out["messages"].as_u64(), first.out["stored"].as_u64()),
        (Some(messages), Some(messages)),
        "{}",
        first.err
    );
    assert!(first.out["unparsed_lines"].as_array().unwrap().is_empty());
    println!(
        "1,000,000 lines ({messages} messages, {} MiB): imported in {:.1} s, peak RSS {:.0} MiB",
        std::fs::metadata(&f).unwrap().len() >> 20,
        first.secs,
        first.max_rss_mib
    );
    let before = next_seq(&s);
    let again = measured(&args);
    assert!(again.ok, "{}", again.err);
    assert_eq!(
        (
            again.out["stored"].as_u64(),
            again.out["already_stored"].as_u64()
        ),
        (Some(0), Some(messages))
    );
    assert_eq!(next_seq(&s), before, "importing again adds no record");
    println!(
        "again: {:.1} s, peak RSS {:.0} MiB",
        again.secs, again.max_rss_mib
    );
}

/// A zip with an entry of 5 GiB of zeros, one far over the compression
/// ratio, one whose header lies about its size, a nested zip and a photo:
/// the three are refused, naming entry and limit; the rest is stored; the
/// zip is archived verbatim; the importer stays within 256 MiB (its store,
/// eight 1 MiB chunks in flight and decompression buffers need well under
/// half of that; reading any one entry whole would need gigabytes).
#[test]
fn zip_bomb_is_refused_archived_and_memory_stays_bounded() {
    let dir = Scratch::new();
    let s = init(dir.path());
    let zip_path = dir.path().join("WhatsApp Chat - Bomb.zip");
    let t = Instant::now();
    write_bomb(dir.path(), &zip_path);
    let zip_len = std::fs::metadata(&zip_path).unwrap().len();
    println!(
        "zip bomb: {zip_len} bytes holding over 5 GiB, made in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let m = measured(&[
        "import",
        zip_path.to_str().unwrap(),
        "--store",
        &s,
        "--custodian",
        "trader-1",
    ]);
    println!(
        "zip bomb: refused in {:.1} s, importer peak RSS {:.0} MiB",
        m.secs, m.max_rss_mib
    );
    assert!(!m.ok, "an import with refused entries fails");
    for want in [
        "\"00000001-bomb.bin\"",
        "--max-entry-mib",
        "\"00000002-ratio.bin\"",
        "--max-ratio",
        "\"00000003-liar.bin\"",
        "archived verbatim as evidence (seq",
    ] {
        assert!(m.err.contains(want), "{want}: {}", m.err);
    }
    let v = &m.out;
    assert_eq!(
        (v["messages"].as_u64(), v["stored"].as_u64()),
        (Some(6), Some(6)),
        "{v}"
    );
    assert_eq!(
        (
            v["attachments_refused"].as_u64(),
            v["attachments_stored"].as_u64()
        ),
        (Some(3), Some(2)),
        "{v}"
    );
    assert_eq!(
        v["chats"][0]["refused_entries"].as_array().unwrap().len(),
        3
    );
    let ev = record(&s, v["evidence_seq"].as_u64().unwrap());
    assert_eq!(
        (ev["kind"].as_str(), ev["body"]["bytes"].as_u64()),
        (Some("Evidence"), Some(zip_len))
    );
    let report = record(&s, v["report_seq"].as_u64().unwrap());
    assert_eq!(report["type"], "import-report");
    assert!(
        report["body"]["summary"]["refused_entries"]
            .to_string()
            .contains("00000001-bomb.bin"),
        "{report}"
    );
    assert!(m.max_rss_mib < 256.0, "peak RSS {:.0} MiB", m.max_rss_mib);
    raised_limits_stream_the_bomb(&zip_path, &s);
}

/// The bomb imported again with the limits raised: the 5 GiB entry is read
/// (twice: measured, then stored as a blob) as a stream; memory stays where it was.
fn raised_limits_stream_the_bomb(zip_path: &Path, s: &str) {
    let zip_arg = zip_path.to_str().unwrap();
    let m = measured(&[
        "import",
        zip_arg,
        "--store",
        s,
        "--custodian",
        "trader-1",
        "--max-entry-mib",
        "8192",
        "--max-ratio",
        "1000000",
    ]);
    println!(
        "zip bomb with the limits raised: 5 GiB streamed in {:.1} s, importer peak RSS {:.0} MiB",
        m.secs, m.max_rss_mib
    );
    assert!(
        !m.ok && m.err.contains("\"00000003-liar.bin\"") && !m.err.contains("bomb.bin"),
        "{}",
        m.err
    );
    let v = &m.out;
    assert_eq!(
        (
            v["already_stored"].as_u64(),
            v["attachments_stored"].as_u64(),
            v["attachments_already_stored"].as_u64()
        ),
        (Some(6), Some(2), Some(2)),
        "{v}"
    );
    assert!(m.max_rss_mib < 256.0, "peak RSS {:.0} MiB", m.max_rss_mib);
}

/// The zip of [`zip_bomb_is_refused_archived_and_memory_stays_bounded`], at `zip_path`.
fn write_bomb(dir: &Path, zip_path: &Path) {
    let inner = dir.join("inner.zip");
    write_zip(&inner, &[("zeros.bin", &vec![0u8; 256 << 20], true)]);
    let inner = std::fs::read(&inner).unwrap();
    let chat = "[3/12/24, 9:15:02 AM] Trader One: four files\n\
        [3/12/24, 9:16:00 AM] Trader One: \u{200e}<attached: 00000001-bomb.bin>\n\
        [3/12/24, 9:17:00 AM] Trader One: \u{200e}<attached: 00000002-ratio.bin>\n\
        [3/12/24, 9:18:00 AM] Trader One: \u{200e}<attached: 00000003-liar.bin>\n\
        [3/12/24, 9:19:00 AM] Trader One: \u{200e}<attached: 00000004-nested.zip>\n\
        [3/12/24, 9:20:00 AM] Client B: \u{200e}<attached: 00000005-PHOTO.jpg>\n";
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(zip_path).unwrap());
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("_chat.txt", deflated).unwrap();
        z.write_all(chat.as_bytes()).unwrap();
        z.start_file(
            "00000001-bomb.bin",
            deflated.large_file(true).compression_level(Some(1)),
        )
        .unwrap();
        let zeros = vec![0u8; 8 << 20];
        for _ in 0..(5u64 << 30) / zeros.len() as u64 {
            z.write_all(&zeros).unwrap();
        }
        z.start_file("00000002-ratio.bin", deflated).unwrap();
        z.write_all(&vec![b'a'; 64 << 20]).unwrap();
        z.start_file("00000003-liar.bin", deflated).unwrap();
        z.write_all(&vec![b'b'; 64 << 20]).unwrap();
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("00000004-nested.zip", stored).unwrap();
        z.write_all(&inner).unwrap();
        z.start_file("00000005-PHOTO.jpg", stored).unwrap();
        z.write_all(&[0xffu8, 0xd8, 0xff, 0xe0, 1, 2, 3]).unwrap();
        z.finish().unwrap();
    }
    lie_about_size(zip_path, "00000003-liar.bin", 1000);
}

/// Make zip entry `name` declare `size` uncompressed bytes (in its local and central headers).
fn lie_about_size(path: &Path, name: &str, size: u32) {
    let (local, central) = {
        let z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
        let i = z.index_for_name(name).unwrap();
        let e = z.by_index_data(i).unwrap();
        (e.header_start() as usize, e.central_header_start() as usize)
    };
    let mut b = std::fs::read(path).unwrap();
    assert!(b[local..].starts_with(b"PK\x03\x04") && b[central..].starts_with(b"PK\x01\x02"));
    put_u32(&mut b, local + 22, size);
    put_u32(&mut b, central + 24, size);
    std::fs::write(path, b).unwrap();
}

/// The limits can be set per import; each refusal names its limit.
#[test]
fn zip_limits_are_set_per_import() {
    let dir = Scratch::new();
    let s = init(dir.path());
    let chat = "[3/12/24, 9:15:02 AM] A: <attached: 00000001-a.bin>\n[3/12/24, 9:16:00 AM] A: <attached: 00000002-b.bin>\n";
    let (a, b) = (noise(800 << 10, 1), noise(2 << 20, 2));
    let z = dir.path().join("limits.zip");
    write_zip(
        &z,
        &[
            ("_chat.txt", chat.as_bytes(), true),
            ("00000001-a.bin", &a, false),
            ("00000002-b.bin", &b, false),
        ],
    );
    let (ok, v, err) = import(&z, &s, "t", &["--max-entry-mib", "1"]);
    assert!(
        !ok && err.contains("\"00000002-b.bin\" declares more than 1 MiB uncompressed"),
        "{err}"
    );
    assert_eq!(
        (
            v["attachments_stored"].as_u64(),
            v["attachments_refused"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let (ok, v, err) = import(&z, &s, "t", &["--max-total-mib", "2"]);
    assert!(
        !ok && err.contains("\"00000002-b.bin\"") && err.contains("--max-total-mib"),
        "{err}"
    );
    assert_eq!(
        (
            v["attachments_already_stored"].as_u64(),
            v["attachments_refused"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // Within the limits: the rest is stored, and nothing twice.
    let (ok, v, err) = import(&z, &s, "t", &[]);
    assert!(ok, "{err}");
    assert_eq!(
        (
            v["attachments_stored"].as_u64(),
            v["attachments_already_stored"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let (ok, v, err) = import(&z, &s, "t", &["--max-text-mib", "0"]);
    assert!(!ok && err.contains("--max-text-mib"), "{err}");
    assert_eq!(v["messages"].as_u64(), Some(0));
}

#[test]
fn zip_with_two_chat_texts_imports_both() {
    let dir = Scratch::new();
    let s = init(dir.path());
    let anna = "29.01.24, 12:24 - Anna: Hallo\n29.01.24, 12:25 - Anna: 00000001-PHOTO.jpg (Datei angehängt)\n";
    let ana = "[29/01/24, 12:24:03] Ana: Hola\n[29/01/24, 12:25:00] Ana: <attached: 00000001-PHOTO.jpg>\n";
    let z = dir.path().join("export.zip");
    write_zip(
        &z,
        &[
            ("Anna/WhatsApp Chat mit Anna.txt", anna.as_bytes(), true),
            ("Anna/00000001-PHOTO.jpg", b"anna's photo", false),
            ("Ana/Chat de WhatsApp con Ana.txt", ana.as_bytes(), true),
            ("Ana/00000001-PHOTO.jpg", b"ana's photo", false),
            (
                "__MACOSX/Anna/._WhatsApp Chat mit Anna.txt",
                b"\0\x05\x16\x07 resource fork",
                false,
            ),
        ],
    );
    let (ok, v, err) = import(&z, &s, "trader-1", &[]);
    assert!(ok, "{err}");
    let chats = v["chats"].as_array().unwrap();
    assert_eq!(chats.len(), 2, "{v}");
    let convs: Vec<&str> = chats
        .iter()
        .map(|c| c["conversation"].as_str().unwrap())
        .collect();
    assert_eq!(
        convs,
        [
            "whatsapp-export:trader-1:Anna/WhatsApp Chat mit Anna",
            "whatsapp-export:trader-1:Ana/Chat de WhatsApp con Ana"
        ]
    );
    for (c, photo) in chats.iter().zip(["anna's photo", "ana's photo"]) {
        assert_eq!(
            (
                c["messages"].as_u64(),
                c["stored"].as_u64(),
                c["attachments_stored"].as_u64()
            ),
            (Some(2), Some(2), Some(1)),
            "{c}"
        );
        let (_, got, _) = stele(&[
            "get",
            "--store",
            &s,
            "--conversation",
            c["conversation"].as_str().unwrap(),
        ]);
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(photo.as_bytes()));
        assert!(
            got.contains(&sha),
            "each chat links the photo of its own folder: {got}"
        );
    }
    let (ok, v, _) = import(&z, &s, "trader-1", &[]);
    assert!(ok);
    assert_eq!(
        (
            v["stored"].as_u64(),
            v["already_stored"].as_u64(),
            v["attachments_already_stored"].as_u64()
        ),
        (Some(0), Some(4), Some(2))
    );
}

#[test]
fn unparseable_files_are_archived_with_a_report_and_fail() {
    let dir = Scratch::new();
    let s = init(dir.path());
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "just some notes\nnothing dated\n").unwrap();
    let (ok, v, err) = import(&junk, &s, "x", &[]);
    assert!(
        !ok && err.contains("no WhatsApp messages found (2 lines not in any message)"),
        "{err}"
    );
    let (ev, rep) = (
        v["evidence_seq"].as_u64().unwrap(),
        v["report_seq"].as_u64().unwrap(),
    );
    assert!(
        err.contains(&format!("archived verbatim as evidence (seq {ev})"))
            && err.contains(&format!("report is at seq {rep}")),
        "{err}"
    );
    let ev = record(&s, ev);
    assert_eq!(
        (ev["kind"].as_str(), ev["body"]["bytes"].as_u64()),
        (Some("Evidence"), Some(30))
    );
    let rep = record(&s, rep);
    assert_eq!(
        (
            rep["kind"].as_str(),
            rep["channel"].as_str(),
            rep["type"].as_str()
        ),
        (
            Some("Evidence"),
            Some("whatsapp-export"),
            Some("import-report")
        )
    );
    assert_eq!(rep["body"]["unparsed"][1]["text"], "nothing dated", "{rep}");
    // A zip with no chat text, and a file that is not a zip at all.
    let z = dir.path().join("photos.zip");
    write_zip(&z, &[("a.jpg", b"1", false), ("b.jpg", b"2", false)]);
    let (ok, v, err) = import(&z, &s, "x", &[]);
    assert!(
        !ok && err.contains("no chat text inside the zip") && v["report_seq"].is_u64(),
        "{err}"
    );
    let bad = dir.path().join("broken.zip");
    std::fs::write(&bad, b"PK\x03\x04 and then nothing a zip needs").unwrap();
    let (ok, v, err) = import(&bad, &s, "x", &[]);
    assert!(
        !ok && err.contains("is not a readable zip") && v["evidence_seq"].is_u64(),
        "{err}"
    );
}

#[test]
fn utf16_and_invalid_utf8_exports_import() {
    let dir = Scratch::new();
    let s = init(dir.path());
    for (name, le) in [("le.txt", true), ("be.txt", false)] {
        let mut b: Vec<u8> = if le {
            vec![0xff, 0xfe]
        } else {
            vec![0xfe, 0xff]
        };
        for u in ANDROID.trim_start_matches('\u{feff}').encode_utf16() {
            b.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        let f = dir.path().join(name);
        std::fs::write(&f, &b).unwrap();
        let (ok, v, err) = import(&f, &s, "t", &[]);
        assert!(ok, "{err}");
        assert_eq!(
            (v["messages"].as_u64(), v["stored"].as_u64()),
            (Some(7), Some(7)),
            "{v}"
        );
        let enc = if le {
            "utf-16le with BOM"
        } else {
            "utf-16be with BOM"
        };
        assert_eq!(v["chats"][0]["encoding"]["name"], enc);
        assert!(
            record(&s, v["report_seq"].as_u64().unwrap())["body"]["unparsed"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Exported from a phone")
        );
    }
    let mut b = ANDROID.as_bytes().to_vec();
    let at = ANDROID.find("Confirmed").unwrap();
    b.insert(at, 0xff);
    let f = dir.path().join("bad-utf8.txt");
    std::fs::write(&f, &b).unwrap();
    let (ok, v, err) = import(&f, &s, "t", &[]);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!(
            "1 invalid byte sequence(s), the first at byte {at}"
        )),
        "{err}"
    );
    let ev = record(&s, v["evidence_seq"].as_u64().unwrap());
    assert_eq!(
        ev["body"]["bytes"].as_u64(),
        Some(b.len() as u64),
        "the verbatim bytes are archived"
    );
    let rep = record(&s, v["report_seq"].as_u64().unwrap());
    assert!(
        rep["body"]["encoding_note"]
            .as_str()
            .unwrap()
            .contains("verbatim"),
        "{rep}"
    );
}

#[test]
fn consent_refuse_policy_applies_to_imports() {
    let dir = Scratch::new();
    let s = init(dir.path());
    let toml = Path::new(&s).join("stele.toml");
    let cfg = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        cfg.replace("consent = \"flag\"", "consent = \"refuse\""),
    )
    .unwrap();
    let f = dir.path().join("WhatsApp Chat with Client A.txt");
    std::fs::write(&f, ANDROID).unwrap();
    let (ok, v, err) = import(&f, &s, "trader-9", &[]);
    assert!(
        !ok && err.contains("7 of 7 messages") && err.contains("no capture consent on file"),
        "{err}"
    );
    assert_eq!(
        (v["stored"].as_u64(), v["refused"].as_u64()),
        (Some(0), Some(7)),
        "{v}"
    );
    assert_eq!(
        record(&s, v["evidence_seq"].as_u64().unwrap())["kind"],
        "Evidence",
        "the file is archived all the same"
    );
    // With consent on file, the same import stores them.
    let doc = "ab".repeat(32);
    let (ok, _, err) = stele(&[
        "put", "--store", &s, "--record-id", &format!("consent:trader-9:{doc}"), "--conversation", "stele/consent",
        "--custodian", "trader-9", "--channel", "consent", "--type", "consent",
        "--body", &format!("{{\"custodian\":\"trader-9\",\"signed_at\":\"2024-01-01\",\"document_sha256\":\"{doc}\"}}"),
    ]);
    assert!(ok, "{err}");
    let (ok, v, err) = import(&f, &s, "trader-9", &[]);
    assert!(ok, "{err}");
    assert_eq!(
        (v["stored"].as_u64(), v["refused"].as_u64()),
        (Some(7), Some(0)),
        "{v}"
    );
}

/// Past 1,000 lines that fit no message, the report holds the first ones
/// and a blob all of them.
#[test]
fn many_unparsed_lines_go_to_a_blob() {
    let dir = Scratch::new();
    let s = init(dir.path());
    let many = dir.path().join("many.txt");
    std::fs::write(
        &many,
        format!("{}{}\n", "junk line\n".repeat(1500), "y".repeat(5000)),
    )
    .unwrap();
    let (ok, v, err) = import(&many, &s, "x", &[]);
    assert!(
        !ok && err.contains("(1501 lines not in any message)"),
        "{err}"
    );
    assert!(err.len() < 4096, "the message stays readable: {err}");
    let rep = record(&s, v["report_seq"].as_u64().unwrap());
    let body = &rep["body"];
    assert_eq!(
        (
            body["unparsed"].as_array().unwrap().len(),
            body["unparsed_all"]["lines"].as_u64()
        ),
        (1000, Some(1501))
    );
    assert_eq!(
        record(&s, body["unparsed_all"]["blob"]["seq"].as_u64().unwrap())["kind"],
        "Media"
    );
}
