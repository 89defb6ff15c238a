//! Compliance through the `stele` command line: configuration checks,
//! authority (principals and tokens), refused and recorded attempts, a
//! wound system clock (libfaketime), and the key hierarchy on SoftHSM2.

use std::path::Path;
use std::process::{Command, Output};

use stele_tests::softhsm::{module, SoftHsm};
use stele_tests::Scratch;

fn stele_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stele"));
    c.args(args).env_remove("STELE_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run stele")
}

fn ok_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let o = stele_env(args, env);
    assert!(
        o.status.success(),
        "stele {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn ok(args: &[&str]) -> String {
    ok_env(args, &[])
}

/// Runs and must fail; returns stderr.
fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let o = stele_env(args, env);
    assert!(
        !o.status.success(),
        "stele {args:?} succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stderr).unwrap()
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let cfg = format!(
        r#"[store]
devices = ["data"]
zone_size_mib = 1
zones_per_device = 32

[retention]
default_class = "short"

[[retention.classes]]
name = "short"
preset = "custom"
days = 1

[[retention.classes]]
name = "broker"
preset = "sec-17a-4"

[[retention.rules]]
class = "broker"
channel = "whatsapp"

[[access.principals]]
name = "lena"
roles = ["legal-hold"]
token_sha256 = "{}"

[[access.principals]]
name = "olga"
roles = ["operator"]
token_sha256 = "{}"
{extra}"#,
        sha256_hex("lena-token"),
        sha256_hex("olga-token")
    );
    let p = dir.join("appliance.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

#[test]
fn config_check_show_and_presets() {
    let dir = Scratch::new();
    let good = write_config(dir.path(), "");
    // The store is not served: the daemon's checks (TLS, its files) are skipped.
    let out = ok(&["config", "check", "--no-serve", good.to_str().unwrap()]);
    assert!(
        out.contains("valid") && out.contains("2 principals"),
        "{out}"
    );
    let eff = ok(&["config", "show", "--effective", good.to_str().unwrap()]);
    assert!(
        eff.contains("class \"broker\": 2192 days") && eff.contains("17 CFR 240.17a-4"),
        "{eff}"
    );
    // A class shorter than its regulation, named by line and column.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[store]\ndevices = [\"data\"]\nzone_size_mib = 1\nzones_per_device = 4\n\n[retention]\ndefault_class = \"c\"\n\n[[retention.classes]]\nname = \"c\"\npreset = \"mifid-ii\"\nyears = 2\n",
    )
    .unwrap();
    let err = fails(&["config", "check", bad.to_str().unwrap()], &[]);
    assert!(
        err.contains("bad.toml:12:9") && err.contains("shorter than the 5 years"),
        "{err}"
    );
    let err = fails(
        &[
            "config",
            "check",
            dir.path().join("missing.toml").to_str().unwrap(),
        ],
        &[],
    );
    assert!(err.contains("cannot read"), "{err}");
    let presets = ok(&["config", "presets"]);
    for id in [
        "sec-17a-4",
        "finra-4511",
        "cftc-1-31",
        "mifid-ii",
        "fca",
        "hipaa",
        "singapore-pdpa",
        "gdpr",
        "custom",
    ] {
        assert!(presets.contains(&format!("\"id\":\"{id}\"")), "{id}");
    }
    for name in ["embedded", "bank", "hospital"] {
        let text = ok(&["config", "example", name]);
        let f = dir.path().join(format!("{name}.toml"));
        std::fs::write(&f, text).unwrap();
        ok(&["config", "check", "--no-serve", f.to_str().unwrap()]);
        // Served as shipped: the embedded default has no TLS, the examples
        // name certificates this machine does not have.
        let err = fails(&["config", "check", f.to_str().unwrap()], &[]);
        assert!(
            err.contains("tls_cert") || err.contains("does not exist"),
            "{name}: {err}"
        );
    }
}

#[test]
fn refusals_are_enforced_and_recorded() {
    let dir = Scratch::new();
    let cfg = write_config(dir.path(), &rita());
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    ok(&["init", s, "--config", cfg.to_str().unwrap()]);
    let put = ok(&[
        "put",
        "--store",
        s,
        "--record-id",
        "w1",
        "--conversation",
        "deal-7",
        "--custodian",
        "trader-1",
        "--channel",
        "whatsapp",
        "--body",
        "buy 100",
    ]);
    // seq 0 is the configuration the store was created with.
    assert!(put.contains("\"seq\":1"), "{put}");
    let status = ok(&["retention", "status", "--store", s, "--seq", "1"]);
    assert!(status.contains("\"expired\":false"), "{status}");
    // The whatsapp rule gives SEC 17a-4's six years.
    let year: i32 = status.split("\"stored_until\":\"").nth(1).unwrap()[..4]
        .parse()
        .unwrap();
    let now: i32 = ok(&["clock", "--store", s])
        .split("\"compliance_now\":\"")
        .nth(1)
        .unwrap()[..4]
        .parse()
        .unwrap();
    assert_eq!(year - now, 6, "{status}");

    let lena = [("STELE_TOKEN", "lena-token")];
    let err = fails(
        &[
            "delete", "--store", s, "--seq", "1", "--as", "lena", "--reason", "cleanup",
        ],
        &lena,
    );
    assert!(
        err.contains("refused") && err.contains("write-once"),
        "{err}"
    );
    // No token: the name acts with no roles.
    let err = fails(
        &[
            "hold",
            "place",
            "--store",
            s,
            "--name",
            "M-1",
            "--conversation",
            "deal-7",
            "--as",
            "lena",
            "--reason",
            "inquiry",
        ],
        &[],
    );
    assert!(
        err.contains("may not") && err.contains("legal-hold"),
        "{err}"
    );
    let err = fails(
        &[
            "hold",
            "place",
            "--store",
            s,
            "--name",
            "M-1",
            "--conversation",
            "deal-7",
            "--as",
            "lena",
            "--reason",
            "inquiry",
        ],
        &[("STELE_TOKEN", "guess")],
    );
    assert!(err.contains("may not"), "{err}");
    let placed = ok_env(
        &[
            "hold",
            "place",
            "--store",
            s,
            "--name",
            "M-1",
            "--conversation",
            "deal-7",
            "--as",
            "lena",
            "--reason",
            "SEC inquiry",
        ],
        &lena,
    );
    let hold: u64 = placed
        .split("\"hold\":")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let h = hold.to_string();
    // The operator has a token but not the role.
    let err = fails(
        &[
            "hold", "release", "--store", s, "--hold", &h, "--as", "olga", "--reason", "space",
        ],
        &[("STELE_TOKEN", "olga-token")],
    );
    assert!(err.contains("olga may not hold-released"), "{err}");
    let err = fails(
        &[
            "retention",
            "shorten",
            "--store",
            s,
            "--conversation",
            "deal-7",
            "--until",
            "2027-01-01",
            "--as",
            "lena",
            "--reason",
            "too long",
        ],
        &lena,
    );
    assert!(err.contains("never shortened"), "{err}");
    let err = fails(
        &["reclaim", "--store", s, "--as", "lena", "--reason", "space"],
        &lena,
    );
    assert!(err.contains("operator"), "{err}");
    assert!(ok(&["hold", "list", "--store", s]).contains("\"released\":null"));
    ok_env(
        &[
            "hold",
            "release",
            "--store",
            s,
            "--hold",
            &h,
            "--as",
            "lena",
            "--reason",
            "inquiry closed",
        ],
        &lena,
    );
    // The trail names every refused attempt and who made it.
    let audit = ok(&["audit", "--store", s]);
    for needle in [
        "\"actor\":\"lena\",\"action\":{\"type\":\"record-deleted\"",
        "\"actor\":\"lena (token not accepted)\",\"action\":{\"type\":\"hold-placed\"",
        "\"actor\":\"olga\",\"action\":{\"type\":\"hold-released\"",
        "\"type\":\"retention-shortened\"",
        "\"type\":\"hold-released\",\"hold\":",
    ] {
        assert!(audit.contains(needle), "{needle} not in\n{audit}");
    }
    assert!(
        audit.matches("\"outcome\":\"refused\"").count() >= 6,
        "{audit}"
    );
    // The record is untouched and the log verifies.
    assert!(ok(&["get", "--store", s, "--seq", "1"]).contains("\"body\":\"buy 100\""));
    assert!(ok(&["verify", "--store", s]).starts_with("ok:"));
    // A configuration change does not shorten what is stored: only new records follow it.
    let toml_path = store.join("stele.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap();
    let changed = text.replace("class = \"broker\"\nchannel", "class = \"short\"\nchannel");
    assert_ne!(text, changed, "the rule is in the store's configuration");
    std::fs::write(&toml_path, changed).unwrap();
    let after = ok(&["retention", "status", "--store", s, "--seq", "1"]);
    assert_eq!(
        after.split("\"stored_until\":").nth(1).unwrap()[..22],
        status.split("\"stored_until\":").nth(1).unwrap()[..22],
        "{after}"
    );
    let put = [
        "put",
        "--store",
        s,
        "--record-id",
        "w2",
        "--conversation",
        "deal-7",
        "--channel",
        "whatsapp",
        "--body",
        "sell",
    ];
    // Routing whatsapp to a shorter class waits for the retention role.
    let err = fails(&put, &[]);
    assert!(err.contains("could shorten retention"), "{err}");
    ok_env(
        &[
            "config",
            "apply",
            "--store",
            s,
            "--as",
            "rita",
            "--reason",
            "policy 12b",
        ],
        &[("STELE_TOKEN", "rita-token")],
    );
    let put = ok(&put);
    let y: i32 = put.split("\"retain_until\":\"").nth(1).unwrap()[..4]
        .parse()
        .unwrap();
    assert!(y - now <= 1, "new records follow the new rule: {put}");
}

/// Four eyes (olga, operator; lena, legal hold) state the true time.
fn attest_now(s: &str) -> String {
    let dir = Scratch::new();
    let second = dir.path().join("lena.token");
    std::fs::write(&second, "lena-token").unwrap();
    let utc = stele_tests::utc_now_text();
    ok_env(
        &[
            "clock",
            "--store",
            s,
            "attest",
            "--utc",
            &utc,
            "--as",
            "olga",
            "--reason",
            "read from the reference clock",
            "--second",
            "lena",
            "--second-token-file",
            second.to_str().unwrap(),
        ],
        &[("STELE_TOKEN", "olga-token")],
    )
}

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// libfaketime fakes every clock the process reads through the C library,
/// CLOCK_BOOTTIME and CLOCK_MONOTONIC included. The store reads elapsed time
/// by the system call itself, sees the process's clocks disagree with the
/// kernel's, records the anomaly and refuses to run under them (its own
/// timeouts would not hold); reclaim and erasure never act early, and after
/// the anomaly nothing is destroyed until the clock is corroborated again.
#[test]
fn an_interposed_clock_cannot_make_reclaim_or_erasure_act_early() {
    let dir = Scratch::new();
    let extra = format!(
        "\n[[access.principals]]\nname = \"dora\"\nroles = [\"erasure\"]\ntoken_sha256 = \"{}\"\n",
        sha256_hex("dora-token")
    );
    let cfg = write_config(dir.path(), &extra);
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    let faked = [("LD_PRELOAD", LIBFAKETIME), ("FAKETIME", "+10y")];
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "scripts/test-all installs libfaketime"
    );
    // A store is not created on a faked clock.
    let err = fails(&["init", s, "--config", cfg.to_str().unwrap()], &faked);
    assert!(err.contains("fakes its view of time"), "{err}");
    ok(&["init", s, "--config", cfg.to_str().unwrap()]);
    ok(&["demo", "--store", s, "--messages", "20000"]);
    let put = [
        "put",
        "--store",
        s,
        "--record-id",
        "c1",
        "--conversation",
        "chat-1",
    ];
    ok(&[&put[..], &["--body", "see you tomorrow"]].concat());
    let before = ok(&["clock", "--store", s]);
    attest_now(s);
    let olga = ("STELE_TOKEN", "olga-token");
    let dora = ("STELE_TOKEN", "dora-token");
    let reclaim = ["reclaim", "--store", s, "--as", "olga", "--reason", "space"];
    let req = [
        "erase",
        "request",
        "--store",
        s,
        "--subject",
        "chat-1",
        "--as",
        "dora",
        "--reason",
        "Art. 17",
    ];
    for (args, token) in [
        (&reclaim[..], olga),
        (&req[..], dora),
        (&["clock", "--store", s][..], olga),
    ] {
        let err = fails(args, &[faked[0], faked[1], token]);
        assert!(err.contains("fakes its view of time"), "{args:?}: {err}");
    }
    // The compliance clock did not move, the anomaly is recorded, and it
    // voids the corroboration: destructive acts wait for a new one.
    let year = |out: &str| -> String {
        out.split("\"compliance_now\":\"").nth(1).unwrap()[..10].to_string()
    };
    let after = ok(&["clock", "--store", s]);
    assert_eq!(year(&after), year(&before), "{after}");
    assert!(
        after.contains("\"allowed\":false") && after.contains("disagreed"),
        "{after}"
    );
    let audit = ok(&["audit", "--store", s]);
    assert!(
        audit.matches("\"kind\":\"elapsed-disagrees\"").count() >= 3,
        "{audit}"
    );
    let err = fails(&reclaim, &[olga]);
    assert!(err.contains("disagreed"), "{err}");
    let out = ok_env(&req, &[dora]);
    assert!(out.contains("\"state\":\"waiting\""), "{out}");
    // Corroborated again, retention still decides: nothing has expired.
    attest_now(s);
    let out = ok_env(&reclaim, &[olga]);
    assert!(out.lines().count() >= 3, "{out}");
    assert!(
        out.lines().all(|l| l.contains("\"kept_because\"")),
        "nothing reclaimed: {out}"
    );
    let process = [
        "erase", "process", "--store", s, "--as", "dora", "--reason", "daily",
    ];
    let out = ok_env(&process, &[dora]);
    assert!(
        out.contains("waiting") && out.contains("retained until"),
        "{out}"
    );
    assert!(ok(&["get", "--store", s, "--record-id", "c1"]).contains("see you tomorrow"));
    let audit = ok(&["audit", "--store", s]);
    assert!(
        audit.contains("\"type\":\"clock-uncorroborated\""),
        "{audit}"
    );
    assert!(ok(&["verify", "--store", s]).starts_with("ok:"));
}

/// An attestation needs two authenticated principals of different roles.
#[test]
fn an_attestation_needs_four_eyes() {
    let dir = Scratch::new();
    let cfg = write_config(dir.path(), "");
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    ok(&["init", s, "--config", cfg.to_str().unwrap()]);
    let tok = dir.path().join("olga.token");
    std::fs::write(&tok, "olga-token").unwrap();
    let bad = dir.path().join("bad.token");
    std::fs::write(&bad, "guess").unwrap();
    let utc = stele_tests::utc_now_text();
    let attest = |second: &str, file: &Path| {
        fails(
            &[
                "clock",
                "--store",
                s,
                "attest",
                "--utc",
                &utc,
                "--as",
                "olga",
                "--reason",
                "r",
                "--second",
                second,
                "--second-token-file",
                file.to_str().unwrap(),
            ],
            &[("STELE_TOKEN", "olga-token")],
        )
    };
    assert!(attest("olga", &tok).contains("four eyes are two people"));
    assert!(attest("lena", &bad).contains("authenticated"));
    let audit = ok(&["audit", "--store", s]);
    assert_eq!(
        audit.matches("\"type\":\"clock-corroborated\"").count(),
        2,
        "{audit}"
    );
    assert!(
        !audit.contains("\"outcome\":\"done\",\"reason\":\"r\""),
        "{audit}"
    );
    assert!(ok(&["clock", "--store", s]).contains("\"corroboration\":null"));
}

#[test]
fn a_wound_system_clock_expires_nothing() {
    let dir = Scratch::new();
    let cfg = write_config(dir.path(), "");
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    ok(&["init", s, "--config", cfg.to_str().unwrap()]);
    // Enough records (one-day class) to seal several 1 MiB zones.
    ok(&["demo", "--store", s, "--messages", "20000"]);
    let olga = ("STELE_TOKEN", "olga-token");
    let wound = [
        (
            "LD_PRELOAD",
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        ),
        ("FAKETIME", "+3650d"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        olga,
    ];
    assert!(
        Path::new(wound[0].1).exists(),
        "libfaketime is installed (scripts/test-all installs the faketime package)"
    );
    let clock = ok_env(&["clock", "--store", s], &wound);
    assert!(
        clock.contains("\"system_now\":\"203"),
        "the system clock is wound ten years: {clock}"
    );
    assert!(clock.contains("\"forward_jumps\":1"), "{clock}");
    attest_now(s);
    let out = ok_env(
        &[
            "reclaim",
            "--store",
            s,
            "--as",
            "olga",
            "--reason",
            "after winding the clock",
        ],
        &wound,
    );
    assert!(out.lines().count() >= 3, "{out}");
    assert!(
        out.lines().all(|l| l.contains("\"kept_because\":\"seq")),
        "nothing is reclaimed: {out}"
    );
    // Wound back: nothing moves back either.
    let back = [
        ("LD_PRELOAD", wound[0].1),
        ("FAKETIME", "-3650d"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        olga,
    ];
    let out = ok_env(
        &[
            "reclaim",
            "--store",
            s,
            "--as",
            "olga",
            "--reason",
            "after rolling the clock back",
        ],
        &back,
    );
    assert!(out.lines().all(|l| l.contains("\"kept_because\"")), "{out}");
    let audit = ok(&["audit", "--store", s]);
    assert!(
        audit.contains("\"kind\":\"forward-jump\"") && audit.contains("\"kind\":\"backward-jump\""),
        "{audit}"
    );
    assert!(ok(&["get", "--store", s, "--seq", "0"]).contains("\"seq\":0"));
}

#[test]
fn pkcs11_key_provider_through_the_cli() {
    let dir = Scratch::new();
    let hsm = SoftHsm::new(dir.path(), "stele-cli", "2468");
    let pin = dir.path().join("hsm.pin");
    std::fs::write(&pin, "2468\n").unwrap();
    std::fs::set_permissions(&pin, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let extra = format!(
        "\n[keys]\nprovider = \"pkcs11\"\nrotation_days = 90\n\n[keys.pkcs11]\nmodule = \"{}\"\ntoken_label = \"stele-cli\"\npin_file = \"{}\"\n\n[[access.principals]]\nname = \"kai\"\nroles = [\"key-admin\"]\ntoken_sha256 = \"{}\"\n",
        module().display(),
        pin.display(),
        sha256_hex("kai-token")
    );
    let cfg = write_config(dir.path(), &extra);
    let conf = hsm.conf.to_str().unwrap().to_string();
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    let out = ok_env(&["init", s, "--config", cfg.to_str().unwrap()], &env);
    assert!(out.contains("pkcs11 token \"stele-cli\""), "{out}");
    assert!(
        !store.join("keys/stele.key").exists(),
        "no key file: the KEK is in the HSM"
    );
    for i in 0..5 {
        ok_env(
            &[
                "put",
                "--store",
                s,
                "--record-id",
                &format!("r{i}"),
                "--conversation",
                &format!("c{i}"),
                "--body",
                "x",
            ],
            &env,
        );
    }
    let rot = ok_env(
        &[
            "keys",
            "rotate-kek",
            "--store",
            s,
            "--as",
            "kai",
            "--reason",
            "drill",
        ],
        &[env[0], ("STELE_TOKEN", "kai-token")],
    );
    assert!(
        rot.contains("\"to_generation\":2") && rot.contains("\"rewrapped\":6"),
        "{rot}"
    );
    assert!(ok_env(&["get", "--store", s, "--conversation", "c3"], &env)
        .contains("\"record_id\":\"r3\""));
    assert!(ok_env(&["verify", "--store", s], &env).starts_with("ok:"));
    // A wrong PIN and a PIN file others can read are clear errors.
    std::fs::write(&pin, "1357\n").unwrap();
    let err = fails(&["info", "--store", s], &env);
    assert!(err.contains("wrong PIN"), "{err}");
    std::fs::write(&pin, "2468\n").unwrap();
    std::fs::set_permissions(&pin, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let err = fails(&["info", "--store", s], &env);
    assert!(err.contains("readable by group or others"), "{err}");
}

/// A principal with the retention role (token `rita-token`), for [`write_config`].
fn rita() -> String {
    format!(
        "\n[[access.principals]]\nname = \"rita\"\nroles = [\"retention\"]\ntoken_sha256 = \"{}\"\n",
        sha256_hex("rita-token")
    )
}

/// The configuration file of store directory `store`.
fn store_cfg(store: &str) -> std::path::PathBuf {
    Path::new(store).join("stele.toml")
}

#[test]
fn a_configuration_that_shortens_retention_waits_for_the_retention_role() {
    let dir = Scratch::new();
    let cfg = write_config(dir.path(), &rita());
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    ok(&["init", s, "--config", cfg.to_str().unwrap()]);
    let put = |id: &str| {
        stele_env(
            &[
                "put",
                "--store",
                s,
                "--record-id",
                id,
                "--conversation",
                "c",
                "--body",
                "x",
            ],
            &[],
        )
    };
    assert!(put("r1").status.success());
    let original = std::fs::read_to_string(store_cfg(s)).unwrap();

    // Lengthening is recorded, old and new, by the store itself.
    std::fs::write(store_cfg(s), original.replace("days = 1\n", "days = 30\n")).unwrap();
    assert!(put("r2").status.success());
    let audit = ok(&["audit", "--store", s]);
    assert!(
        audit.contains("{\"key\":\"retention.classes.short.days\",\"old\":\"1\",\"new\":\"30\"}"),
        "{audit}"
    );

    // Shortening: new records refused, the store still reads.
    std::fs::write(store_cfg(s), original.replace("days = 1\n", "days = 2\n")).unwrap();
    let o = put("r3");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("could shorten retention"),
        "{err}"
    );
    assert!(err.contains("\"short\": 30 → 2 days"), "{err}");
    let got = ok(&["get", "--store", s, "--record-id", "r1"]);
    assert!(got.contains("r1"), "{got}");
    let info = ok(&["info", "--store", s]);
    assert!(info.contains("CONFIGURATION NOT APPROVED"), "{info}");
    let olga = [("STELE_TOKEN", "olga-token")];
    let apply = [
        "config",
        "apply",
        "--store",
        s,
        "--as",
        "olga",
        "--reason",
        "new policy",
    ];
    let err = fails(&apply, &olga);
    assert!(
        err.contains("may not") && err.contains("retention"),
        "{err}"
    );
    assert!(!put("r3").status.success(), "still refused");
    // Authority the edit itself adds does not count.
    let shortened = std::fs::read_to_string(store_cfg(s)).unwrap();
    let mo = format!(
        "\n[[access.principals]]\nname = \"mo\"\nroles = [\"retention\"]\ntoken_sha256 = \"{}\"\n",
        sha256_hex("mo-token")
    );
    std::fs::write(store_cfg(s), format!("{shortened}{mo}")).unwrap();
    let by_mo = [
        "config", "apply", "--store", s, "--as", "mo", "--reason", "trust me",
    ];
    let err = fails(&by_mo, &[("STELE_TOKEN", "mo-token")]);
    assert!(err.contains("did not hold the retention role"), "{err}");
    std::fs::write(store_cfg(s), shortened).unwrap();
    let rita_env = [("STELE_TOKEN", "rita-token")];
    let apply = [
        "config",
        "apply",
        "--store",
        s,
        "--as",
        "rita",
        "--reason",
        "policy 12b",
    ];
    ok_env(&apply, &rita_env);
    assert!(put("r3").status.success());
    let audit = ok(&["audit", "--store", s]);
    let approved = audit
        .lines()
        .find(|l| l.contains("\"actor\":\"rita\"") && l.contains("config-changed"))
        .unwrap_or_else(|| panic!("approval recorded: {audit}"));
    assert!(
        approved.contains("\"old\":\"30\",\"new\":\"2\"") && approved.contains("policy 12b"),
        "{approved}"
    );
    assert!(
        audit.contains("\"outcome\":\"refused\""),
        "the unapproved open is recorded as refused: {audit}"
    );

    // A class named for a regulation cannot be cut below it, preset or not.
    let cut = original
        .replace("name = \"short\"", "name = \"sec-17a-4\"")
        .replace("default_class = \"short\"", "default_class = \"sec-17a-4\"");
    std::fs::write(store_cfg(s), cut).unwrap();
    let err = fails(&["info", "--store", s], &[]);
    assert!(err.contains("is named for SEC Rule 17a-4"), "{err}");
}

/// The clock corroborated by real Roughtime servers (roughenough, on
/// loopback): a signed answer is recorded with its evidence and lets reclaim
/// run; a wrong key or disagreeing servers corroborate nothing.
#[test]
fn roughtime_servers_corroborate_the_clock() {
    use stele_tests::roughtime::RoughtimeServer;
    let dir = Scratch::new();
    let honest = RoughtimeServer::start(dir.path(), 0);
    let cfg = write_config(dir.path(), &honest.config(None));
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    ok(&["init", s, "--config", cfg.to_str().unwrap()]);
    let olga = [("STELE_TOKEN", "olga-token")];
    let reclaim = ["reclaim", "--store", s, "--as", "olga", "--reason", "space"];
    ok_env(&reclaim, &olga);
    let audit = ok(&["audit", "--store", s]);
    let line = audit
        .lines()
        .find(|l| l.contains("\"type\":\"clock-corroborated\""))
        .unwrap_or_else(|| panic!("reclaim corroborated first: {audit}"));
    assert!(
        line.contains(&format!("roughtime {}", honest.address)),
        "{line}"
    );
    assert!(
        line.contains("\"evidence\":\""),
        "the signed answer is kept: {line}"
    );
    assert!(!audit.contains("clock-uncorroborated"), "{audit}");
    let out = ok(&["clock", "--store", s, "corroborate"]);
    assert!(out.contains("\"corroborated\":true"), "{out}");

    // The answer must be signed by the configured key.
    let cfg_file = store.join("stele.toml");
    let text = std::fs::read_to_string(&cfg_file).unwrap();
    let other_key = "ab".repeat(32);
    std::fs::write(&cfg_file, text.replace(&honest.public_key, &other_key)).unwrap();
    let before = ok(&["audit", "--store", s])
        .matches("clock-corroborated")
        .count();
    let err = fails(&["clock", "--store", s, "corroborate"], &[]);
    assert!(err.contains("no Roughtime server answered"), "{err}");
    let after = ok(&["audit", "--store", s])
        .matches("clock-corroborated")
        .count();
    assert_eq!(
        before, after,
        "an unauthenticated answer corroborates nothing"
    );

    // Servers that disagree: nothing is corroborated.
    let liar = RoughtimeServer::start(dir.path(), 9 * 3600);
    std::fs::write(&cfg_file, format!("{text}{}", liar.config(None))).unwrap();
    let err = fails(&["clock", "--store", s, "corroborate"], &[]);
    assert!(err.contains("disagree"), "{err}");
    assert_eq!(
        after,
        ok(&["audit", "--store", s])
            .matches("clock-corroborated")
            .count()
    );
}
