//! The `stele` binary end to end: init, put, get, verify, reindex, and clear errors.

use std::path::Path;
use std::process::Command;

use stele_tests::Scratch;

fn stele(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(args)
        .output()
        .expect("run stele")
}

fn ok(args: &[&str]) -> String {
    let o = stele(args);
    assert!(
        o.status.success(),
        "stele {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn init_put_get_verify_reindex() {
    let dir = Scratch::new();
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    let out = ok(&["init", s, "--zone-size-mib", "1", "--zones", "16"]);
    assert!(out.contains("created store"), "{out}");
    let key = store.join("keys/stele.key");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions())
            & 0o777,
        0o600
    );
    for i in 0..30 {
        let out = ok(&[
            "put",
            "--store",
            s,
            "--record-id",
            &format!("wamid.{i}"),
            "--conversation",
            "chat-1",
            "--body",
            &format!("hello {i}"),
        ]);
        // seq 0 is the configuration the store was created with.
        assert!(out.contains(&format!("\"seq\":{}}}", i + 1)), "{out}");
        assert!(out.contains("\"retain_until\":\"20"), "{out}");
    }
    let got = ok(&["get", "--store", s, "--record-id", "wamid.7"]);
    assert!(
        got.contains("\"body\":\"hello 7\"") && got.contains("\"seq\":8"),
        "{got}"
    );
    let conv = ok(&["get", "--store", s, "--conversation", "chat-1"]);
    assert_eq!(conv.lines().count(), 30);
    let v = ok(&["verify", "--store", s]);
    assert!(v.starts_with("ok: 31 frames"), "{v}");
    let r = ok(&["admin", "reindex", "--store", s]);
    // The configuration, 30 messages and the record of the scrub `verify` ran.
    assert!(
        r.contains("reindexed 32 frames") && !r.contains("differs"),
        "{r}"
    );
    let info = ok(&["info", "--store", s]);
    assert!(info.contains("next seq 32"), "{info}");
    // Errors are clear and non-zero.
    let o = stele(&["init", s]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds a store"));
    let o = stele(&[
        "verify",
        "--store",
        dir.path().join("nothing").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a Stele store directory"));
    let o = stele(&["get", "--store", s, "--seq", "999"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found: seq 999"));
    let o = stele(&["get", "--store", s, "--record-id", "no-such-id"]);
    assert!(!o.status.success(), "a missing record is an error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no record has record id \"no-such-id\""));
    let o = stele(&["get", "--store", s, "--conversation", "no-such-chat"]);
    assert!(!o.status.success());
    // A key file others can read is refused.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let o = stele(&["verify", "--store", s]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("chmod 600"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(Path::new(&store).join("stele.toml").exists());
}

#[test]
fn tree_heads_exports_and_the_offline_verifier() {
    let dir = Scratch::new();
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    ok(&["init", s, "--zone-size-mib", "1", "--zones", "16"]);
    for i in 0..10 {
        ok(&[
            "put",
            "--store",
            s,
            "--record-id",
            &format!("m{i}"),
            "--conversation",
            "deal-9",
            "--body",
            &format!("offer {i}"),
        ]);
    }
    let kept = dir.path().join("kept.json");
    std::fs::write(&kept, ok(&["tree-head", "--store", s])).unwrap();
    let pk = ok(&["tree-head", "--store", s, "--public-key"])
        .trim()
        .to_string();
    assert_eq!(pk.len(), 64);
    for i in 10..15 {
        ok(&[
            "put",
            "--store",
            s,
            "--record-id",
            &format!("m{i}"),
            "--conversation",
            "deal-9",
            "--body",
            &format!("offer {i}"),
        ]);
    }
    let bundle = dir.path().join("bundle.json");
    let out = ok(&[
        "export",
        "--store",
        s,
        "--conversation",
        "deal-9",
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(out.contains("exported 15 records"), "{out}");
    // Offline: no store, no key file.
    let b = bundle.to_str().unwrap();
    let k = kept.to_str().unwrap();
    let v = ok(&[
        "verify",
        "--offline",
        b,
        "--public-key",
        &pk,
        "--previous-tree-head",
        k,
    ]);
    assert!(
        v.contains("ok: 15 records") && v.contains("the log only grew"),
        "{v}"
    );
    let inc = ok(&["proof", "inclusion", "--store", s, "--seq", "3"]);
    assert!(inc.contains("\"proof\":["), "{inc}");
    let con = ok(&["proof", "consistency", "--store", s, "--from", "5"]);
    assert!(con.contains("\"from_root\""), "{con}");
    // One changed character in the exported text is caught.
    let text = std::fs::read_to_string(&bundle).unwrap();
    let tampered = text.replacen("offer 7", "offer 8", 1);
    assert_ne!(text, tampered);
    std::fs::write(&bundle, tampered).unwrap();
    let o = stele(&["verify", "--offline", b, "--public-key", &pk]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("verification failed"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Another store's key is not accepted.
    std::fs::write(&bundle, &text).unwrap();
    let o = stele(&["verify", "--offline", b, "--public-key", &"ab".repeat(32)]);
    assert!(!o.status.success());
}

/// Run `stele` and give up after `secs` (a hang is a failure, not a stuck CI job).
fn bounded(args: &[&str], secs: u64) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run stele");
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() > secs {
            let _ = child.kill();
            panic!("stele {args:?} did not finish in {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_corrupt_index_is_rebuilt_and_nothing_hangs() {
    let dir = Scratch::new();
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    ok(&["init", s, "--zone-size-mib", "1", "--zones", "16"]);
    for i in 0..20 {
        let id = format!("wamid.{i}");
        ok(&[
            "put",
            "--store",
            s,
            "--record-id",
            &id,
            "--conversation",
            "chat-1",
            "--body",
            &format!("hello {i}"),
        ]);
    }
    // 64 KiB of random bytes over the index, as an accident or an attacker would.
    let index = store.join("index/index.redb");
    let mut bytes = std::fs::read(&index).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in bytes.iter_mut().skip(4096).take(64 << 10) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&index, bytes).unwrap();
    let got = bounded(&["get", "--store", s, "--record-id", "wamid.7"], 120);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(String::from_utf8_lossy(&got.stdout).contains("\"body\":\"hello 7\""));
    let info = ok(&["info", "--store", s]);
    assert!(
        !info.contains("DAMAGED"),
        "rebuilt once, sound since: {info}"
    );
    let kept = std::fs::read_dir(store.join("index"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".damaged-")
        })
        .count();
    assert_eq!(kept, 1, "the damaged index is kept beside the new one");
    let re = bounded(&["admin", "reindex", "--store", s], 120);
    assert!(
        re.status.success(),
        "{}",
        String::from_utf8_lossy(&re.stderr)
    );
    assert!(String::from_utf8_lossy(&re.stdout).contains("reindexed 21 frames"));
    ok(&["verify", "--store", s]);
}
