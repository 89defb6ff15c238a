//! Media downloads from the Graph API, for WhatsApp messages that carry a
//! media id.
//!
//! A delivery's message is archived at once; its media id goes into a queue
//! kept as one small file per item in `STORE/media-queue/` (written
//! atomically and fsynced before the delivery is acknowledged), so the queue
//! survives a restart. A fetcher thread resolves each id
//! (`GET {graph}/{media_id}` → a download URL, MIME type, SHA-256, size),
//! downloads it with the access token, checks the SHA-256, stores the bytes as
//! a blob of the message's conversation and records a `media` record linking
//! blob and message. `capture.whatsapp.media_workers` downloads run at once
//! (each item by one worker at a time), so a slow download does not hold up
//! the rest. Failures are retried with exponential backoff (1 s
//! doubling to 15 min) forever; they are counted in metrics, and the message
//! itself is archived whatever happens to its media.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use prometheus::{IntCounter, IntGauge};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stele_engine::{NewRecord, Store};

/// One queued download.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub media_id: String,
    pub mime_type: String,
    /// The message the media belongs to.
    pub message_id: String,
    pub conversation: String,
    pub custodian: String,
    pub timestamp_us: i64,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
}

pub struct Queue {
    dir: PathBuf,
}

/// Where queue items that cannot be read are set aside.
const UNREADABLE: &str = "unreadable";

fn file_name(media_id: &str) -> String {
    format!("{}.json", hex::encode(Sha256::digest(media_id.as_bytes())))
}

impl Queue {
    pub fn open(store_root: &Path) -> Result<Queue> {
        let dir = store_root.join("media-queue");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Queue { dir })
    }

    /// Add (or rewrite) an item durably.
    pub fn put(&self, item: &Item) -> Result<()> {
        let path = self.dir.join(file_name(&item.media_id));
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(item)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// How many items are queued (counted on disk).
    pub fn count(&self) -> usize {
        std::fs::read_dir(&self.dir).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
    }

    /// Whether `media_id` is still queued.
    pub fn contains(&self, media_id: &str) -> bool {
        self.dir.join(file_name(media_id)).exists()
    }

    pub fn remove(&self, media_id: &str) -> Result<()> {
        let _ = std::fs::remove_file(self.dir.join(file_name(media_id)));
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// Move an item that cannot be read to `unreadable/`, where it stays for
    /// an operator (counted in `stele_media_queue_unreadable`); its message is archived.
    fn set_aside(&self, p: &Path) {
        let aside = self.dir.join(UNREADABLE);
        let to = aside.join(p.file_name().unwrap_or_default());
        let moved = std::fs::create_dir_all(&aside)
            .and_then(|_| std::fs::rename(p, &to))
            .and_then(|_| std::fs::File::open(&self.dir)?.sync_all());
        match moved {
            Ok(()) => tracing::error!(
                "media queue item {} cannot be read; moved to {}",
                p.display(),
                to.display()
            ),
            Err(e) => tracing::error!(
                "media queue item {} cannot be read, nor moved aside: {e}",
                p.display()
            ),
        }
    }

    /// How many items were set aside as unreadable.
    pub fn unreadable(&self) -> usize {
        std::fs::read_dir(self.dir.join(UNREADABLE)).map_or(0, |d| d.flatten().count())
    }

    pub fn items(&self) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "json") {
                match std::fs::read(&p)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                {
                    Some(i) => out.push(i),
                    None => self.set_aside(&p),
                }
            }
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct MediaInfo {
    url: String,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
}

pub struct Fetcher {
    pub base_url: String,
    pub token: String,
    pub agent: ureq::Agent,
}

impl Fetcher {
    pub fn new(base_url: &str, token: String) -> Fetcher {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Fetcher {
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    /// Download one media item and check it against the SHA-256 the API gives.
    pub fn fetch(&self, media_id: &str) -> Result<(Vec<u8>, Option<String>)> {
        let auth = format!("Bearer {}", self.token);
        let answer = self
            .agent
            .get(format!("{}/{}", self.base_url, media_id))
            .header("Authorization", &auth)
            .call()
            .with_context(|| format!("resolving media {media_id}"))?
            .body_mut()
            .read_to_vec()
            .with_context(|| format!("resolving media {media_id}"))?;
        let info: MediaInfo = serde_json::from_slice(&answer)
            .with_context(|| format!("media {media_id}: the API's answer is not media info"))?;
        let bytes = self
            .agent
            .get(&info.url)
            .header("Authorization", &auth)
            .call()
            .with_context(|| format!("downloading media {media_id}"))?
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .with_context(|| format!("downloading media {media_id}"))?;
        if let Some(want) = &info.sha256 {
            let got = hex::encode(Sha256::digest(&bytes));
            if !want.eq_ignore_ascii_case(&got) {
                bail!(
                    "media {media_id}: downloaded {} bytes hash to {got}, the API said {want}",
                    bytes.len()
                );
            }
        }
        Ok((bytes, info.mime_type))
    }
}

/// Metrics of the media queue.
#[derive(Clone)]
pub struct MediaMetrics {
    pub depth: IntGauge,
    pub unreadable: IntGauge,
    pub fetched: IntCounter,
    pub failures: IntCounter,
}

fn store_media(store: &Store, item: &Item, bytes: &[u8], mime: Option<String>) -> Result<()> {
    let link_id = format!("{}:media:{}", item.message_id, item.media_id);
    if !store.by_record_id(&link_id, 1)?.is_empty() {
        return Ok(());
    }
    let owner = NewRecord::message(
        link_id.clone(),
        item.conversation.clone(),
        item.timestamp_us,
        Vec::new(),
    )
    .with_custodian(item.custodian.clone())
    .with_channel("whatsapp", "media");
    let blob = store.put_blob_for(bytes, &owner)?;
    let mut rec = owner;
    rec.body = serde_json::json!({
        "channel": "whatsapp", "type": "media", "refers_to": item.message_id, "media_id": item.media_id,
        "mime_type": mime.unwrap_or_else(|| item.mime_type.clone()),
        "blob": {"seq": blob.seq, "sha256": hex::encode(blob.sha256), "bytes": blob.len},
    })
    .to_string()
    .into_bytes();
    store.append(rec)?;
    Ok(())
}

/// Fetch and store one item; on failure count it, back off and record why.
fn work_item(
    store: &Store,
    queue: &Queue,
    fetcher: &Fetcher,
    metrics: &MediaMetrics,
    next_try: &Mutex<HashMap<String, Instant>>,
    mut item: Item,
) {
    // Done by another worker since the queue was listed.
    if !queue.contains(&item.media_id) {
        return;
    }
    match fetcher
        .fetch(&item.media_id)
        .and_then(|(b, mime)| store_media(store, &item, &b, mime))
    {
        Ok(()) => {
            metrics.fetched.inc();
            lock(next_try).remove(&item.media_id);
            if let Err(e) = queue.remove(&item.media_id) {
                tracing::warn!("removing media {} from the queue: {e}", item.media_id);
            }
            metrics.depth.set(queue.count() as i64);
        }
        Err(e) => {
            metrics.failures.inc();
            item.attempts += 1;
            item.last_error = Some(format!("{e:#}"));
            tracing::warn!(
                media = item.media_id,
                attempts = item.attempts,
                "media fetch failed: {e:#}"
            );
            let backoff =
                Duration::from_secs(1 << item.attempts.min(10)).min(Duration::from_secs(900));
            lock(next_try).insert(item.media_id.clone(), Instant::now() + backoff);
            let _ = queue.put(&item);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Work the queue until `stop` with `workers` downloads at a time: each item
/// when its backoff allows, never two at once.
pub fn run(
    store: Arc<Store>,
    queue: Arc<Queue>,
    fetcher: Fetcher,
    metrics: MediaMetrics,
    stop: Arc<AtomicBool>,
    wake: crossbeam_channel::Receiver<()>,
    workers: usize,
) {
    let workers = workers.max(1);
    let next_try: Mutex<HashMap<String, Instant>> = Default::default();
    let in_flight: Mutex<HashSet<String>> = Default::default();
    let (tx, rx) = crossbeam_channel::bounded::<Item>(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            let rx = rx.clone();
            let (store, queue, fetcher, metrics) = (&store, &queue, &fetcher, &metrics);
            let (next_try, in_flight) = (&next_try, &in_flight);
            s.spawn(move || {
                for item in rx {
                    let id = item.media_id.clone();
                    work_item(store, queue, fetcher, metrics, next_try, item);
                    lock(in_flight).remove(&id);
                }
            });
        }
        drop(rx);
        while !stop.load(Ordering::Acquire) {
            let items = queue.items().unwrap_or_default();
            metrics.depth.set(items.len() as i64);
            let now = Instant::now();
            for item in items {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let due = lock(&next_try)
                    .get(&item.media_id)
                    .is_none_or(|t| *t <= now);
                if !due || !lock(&in_flight).insert(item.media_id.clone()) {
                    continue;
                }
                // Hand over to the next free worker, looking up now and then for `stop`.
                let mut item = item;
                loop {
                    match tx.send_timeout(item, Duration::from_millis(200)) {
                        Ok(()) => break,
                        Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                            if stop.load(Ordering::Acquire) {
                                lock(&in_flight).remove(&back.media_id);
                                break;
                            }
                            item = back;
                        }
                        Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return,
                    }
                }
            }
            metrics.depth.set(queue.count() as i64);
            metrics.unreadable.set(queue.unreadable() as i64);
            let _ = wake.recv_timeout(Duration::from_millis(200));
        }
        drop(tx);
    });
}
