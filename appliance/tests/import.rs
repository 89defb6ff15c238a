//! `stele import`: WhatsApp chat exports (our own synthetic ones, and the
//! public ones in ../shared when present): every message stored, attachments
//! as blobs, markers kept, unparsable lines kept and counted, dates decided
//! for the whole file, and a re-import adds nothing.

use std::io::Write;
use std::path::Path;
use std::process::Command;

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
    let s = dir.join("s");
    let (ok, _, err) = stele(&[
        "init",
        s.to_str().unwrap(),
        "--zone-size-mib",
        "16",
        "--zones",
        "32",
    ]);
    assert!(ok, "{err}");
    s.to_str().unwrap().to_string()
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
