//! The configuration schema: one TOML file describes an appliance.
//!
//! Every section refuses unknown keys. Paths are relative to the directory of
//! the file unless absolute. The shipped files (`defaults/embedded.toml`,
//! `examples/bank.toml`, `examples/hospital.toml`) document every key.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub store: StoreSection,
    #[serde(default)]
    pub commit: CommitSection,
    #[serde(default)]
    pub keys: KeysSection,
    #[serde(default)]
    pub clock: ClockSection,
    #[serde(default)]
    pub retention: RetentionSection,
    #[serde(default)]
    pub access: AccessSection,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub integrity: IntegritySection,
    #[serde(default)]
    pub scrub: ScrubSection,
    #[serde(default)]
    pub smart: SmartSection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationSection>,
    #[serde(default)]
    pub capture: CaptureSection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentPolicy {
    /// Capture without checking the consent registry.
    Off,
    /// Archive, and flag records of custodians with no consent on file.
    Flag,
    /// Refuse to archive records of custodians with no consent on file.
    Refuse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSection {
    pub consent: ConsentPolicy,
    /// Largest request body accepted, in KiB.
    pub max_body_kib: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsAppSection>,
}

impl Default for CaptureSection {
    fn default() -> Self {
        CaptureSection {
            consent: ConsentPolicy::Flag,
            max_body_kib: 4096,
            whatsapp: None,
        }
    }
}

/// WhatsApp Business Platform (Cloud API) webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppSection {
    /// File holding the verify token entered in the App Dashboard (mode 0600).
    pub verify_token_file: String,
    /// File holding the app secret that signs deliveries (mode 0600).
    pub app_secret_file: String,
    /// Graph API base URL for media downloads.
    #[serde(default = "graph_default")]
    pub graph_base_url: String,
    /// File holding the access token for media downloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_file: Option<String>,
    /// Media downloads in progress at once (each holds one item in memory, up to 1 GiB).
    #[serde(default = "media_workers_default")]
    pub media_workers: usize,
}

fn media_workers_default() -> usize {
    4
}

fn graph_default() -> String {
    "https://graph.facebook.com/v21.0".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// A directory is a zone-directory device; a file (or `*.img`) or block device path is a single-file device.
    pub devices: Vec<String>,
    pub zone_size_mib: u64,
    /// Capacity of each device, in zones.
    pub zones_per_device: u32,
    #[serde(default = "default_index")]
    pub index: String,
    /// Directories outside the store's data (another disk, the boot volume)
    /// where every checkpoint is anchored, so that a restored old copy of the
    /// store is refused at open. With `keys.provider = "pkcs11"` the HSM
    /// token holds an anchor too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anchors: Vec<String>,
}

fn default_index() -> String {
    "index/index.redb".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommitSection {
    pub batch_bytes_max: usize,
    pub batch_records_max: usize,
    pub linger_us: u64,
    pub checkpoint_mib: u64,
    pub checkpoint_interval_ms: u64,
}

impl Default for CommitSection {
    fn default() -> Self {
        CommitSection {
            batch_bytes_max: 8 << 20,
            batch_records_max: 16_384,
            linger_us: 0,
            checkpoint_mib: 64,
            checkpoint_interval_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyProviderKind {
    /// A key-encryption key in a 0600 file (the embedded default).
    File,
    /// A key-encryption key inside an HSM, reached through PKCS#11.
    Pkcs11,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSubject {
    /// One data key per conversation (chat) and rotation period.
    Conversation,
    /// One data key per custodian (employee) and rotation period.
    Custodian,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSection {
    pub provider: KeyProviderKind,
    /// The key-encryption key file (`provider = "file"`).
    pub file: String,
    /// Wrapped data keys; kept apart from the data devices.
    pub keystore: String,
    pub subject: DataSubject,
    /// A data subject gets a new data key after this many days.
    pub rotation_days: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<Pkcs11Section>,
}

impl Default for KeysSection {
    fn default() -> Self {
        KeysSection {
            provider: KeyProviderKind::File,
            file: "keys/stele.key".into(),
            keystore: "keys/keystore.redb".into(),
            subject: DataSubject::Conversation,
            rotation_days: 90,
            pkcs11: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Section {
    /// The PKCS#11 module (shared library) of the HSM.
    pub module: String,
    pub token_label: String,
    /// A file holding the user PIN (mode 0600); never the PIN itself in this file.
    pub pin_file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockSection {
    /// How much faster than elapsed monotonic time the compliance clock may
    /// move to catch up with the system clock, in parts per million.
    pub drift_budget_ppm: u32,
    /// Reclaim and erasure go by a clock an independent source (a four-eyes
    /// attestation) corroborated; they are refused once the error the clock
    /// may have gathered since (its advance times the drift budget) exceeds
    /// this many seconds. At 1000 ppm, 3600 s lasts about six weeks.
    pub corroboration_max_error_s: u64,
    /// Roughtime servers that corroborate the clock (`stele clock
    /// corroborate`, and before every reclaim and erasure): each answer is
    /// checked against the server's public key and kept as evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roughtime: Vec<RoughtimeServer>,
}

impl Default for ClockSection {
    fn default() -> Self {
        ClockSection {
            drift_budget_ppm: 1000,
            corroboration_max_error_s: 3600,
            roughtime: Vec::new(),
        }
    }
}

/// A Roughtime server and its long-term public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoughtimeServer {
    /// `host:port` (UDP; 2002 and 5319 are usual).
    pub address: String,
    /// The server's Ed25519 long-term public key: 32 bytes, base64 or hex.
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// The class of records no rule matches.
    pub default_class: String,
    pub classes: Vec<RetentionClass>,
    pub rules: Vec<RetentionRule>,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            default_class: "sec-17a-4".into(),
            classes: vec![RetentionClass {
                name: "sec-17a-4".into(),
                preset: "sec-17a-4".into(),
                years: None,
                days: None,
            }],
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionClass {
    pub name: String,
    /// A regulatory preset (see `stele config presets`); `custom` when the firm sets the period.
    #[serde(default = "custom")]
    pub preset: String,
    /// The period in years; at least the preset's. Give `years` or `days`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
}

fn custom() -> String {
    "custom".into()
}

/// Records matching every given field get `class`. The most specific
/// matching rule wins; among equally specific ones, the longest period.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custodian: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
}

impl RetentionRule {
    /// How many fields the rule matches on.
    pub fn specificity(&self) -> usize {
        [
            &self.tenant,
            &self.channel,
            &self.custodian,
            &self.conversation,
            &self.message_type,
        ]
        .iter()
        .filter(|f| f.is_some())
        .count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Place and release legal holds.
    LegalHold,
    /// Extend retention (event-based retention).
    Retention,
    /// Record erasure requests (data protection officer).
    Erasure,
    /// Rotate data keys and the key-encryption key.
    KeyAdmin,
    /// Reclaim expired zones, run scrubs, operate the appliance.
    Operator,
    /// Read the audit trail and records.
    Auditor,
    /// Submit records to the daemon's ingest endpoints (`POST /v1/messages`,
    /// `POST /v1/consent`) with `Authorization: Bearer <token>`.
    Ingest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    pub name: String,
    pub roles: Vec<Role>,
    /// SHA-256 (hex) of the principal's access token; the token itself is never stored.
    pub token_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessSection {
    pub principals: Vec<Principal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// CA certificate (PEM) that signs client certificates. With it, every
    /// TLS client must present a certificate it signed (mutual TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<String>,
    /// Plain HTTP, allowed only on a loopback address.
    pub allow_plain_http: bool,
    /// Connections open at once, from all sources; one more is closed at once.
    pub max_connections: u32,
    /// Connections open at once from one source IP address.
    pub max_connections_per_source: u32,
    /// Seconds a client has to complete the TLS handshake.
    pub handshake_timeout_s: u32,
    /// Seconds a client has to send a request's headers, counted from when
    /// the connection is ready for the request (so an HTTP/1.1 keep-alive
    /// connection waiting for its next request is closed after this too).
    pub header_timeout_s: u32,
    /// Seconds a client has to send a request's whole body.
    pub body_timeout_s: u32,
    /// Seconds a connection may stay open with no request in progress and
    /// no byte sent or received.
    pub idle_timeout_s: u32,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:8443".into(),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            allow_plain_http: false,
            max_connections: 1024,
            max_connections_per_source: 64,
            handshake_timeout_s: 10,
            header_timeout_s: 10,
            body_timeout_s: 60,
            idle_timeout_s: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegritySection {
    /// Sign a Merkle tree head this often while the log grows (also at every zone seal).
    pub tree_head_interval_s: u64,
}

impl Default for IntegritySection {
    fn default() -> Self {
        IntegritySection {
            tree_head_interval_s: 60,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScrubMode {
    Sampled,
    Full,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrubSection {
    pub mode: ScrubMode,
    pub sample_percent: f64,
    pub sample_min_records: u64,
    pub interval_hours: u32,
    /// Share of device read bandwidth a scrub may use.
    pub bandwidth_percent: u32,
    /// The devices' read bandwidth, MB/s, that the share is taken of.
    pub device_read_mb_s: u32,
}

impl Default for ScrubSection {
    fn default() -> Self {
        ScrubSection {
            mode: ScrubMode::Sampled,
            sample_percent: 0.5,
            sample_min_records: 100_000,
            interval_hours: 24,
            bandwidth_percent: 10,
            device_read_mb_s: 2000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmartSection {
    /// Devices to watch with smartctl; empty watches none.
    pub devices: Vec<String>,
    pub interval_minutes: u32,
    /// Alert when a drive's rated endurance used reaches this percentage.
    pub wear_warn_percent: u32,
    pub temperature_warn_celsius: u32,
}

impl Default for SmartSection {
    fn default() -> Self {
        SmartSection {
            devices: Vec::new(),
            interval_minutes: 60,
            wear_warn_percent: 80,
            temperature_warn_celsius: 70,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSection {
    /// The remote appliance, `https://host:port`.
    pub peer: String,
    /// CA certificate that signs the peer's TLS certificate.
    pub peer_ca: String,
}
