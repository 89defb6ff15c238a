//! Media blobs: large content streamed into chunks, with a manifest.
//!
//! A blob is a run of `MediaChunk` frames and one `Media` manifest frame
//! listing them (version, length, content SHA-256, chunk size, chunk seqs).
//! The content SHA-256 is computed while streaming; memory stays bounded
//! by the chunk size times the chunks in flight.
//!
//! Identical chunks are stored once per data subject (the dedup key is a
//! keyed tag of the subject and the chunk's digest, so the index reveals no
//! plaintext hash and a subject's erasure never takes another subject's
//! media with it). A chunk is reused only if its key is intact. Every blob gets its own
//! manifest carrying its owner's conversation, custodian, time and
//! retention, so holds and retention apply to each use of the media; the
//! index records which manifests reference which chunks, and a chunk is
//! reclaimed only when no manifest that still needs it refers to it.

use std::collections::{HashMap, VecDeque};
use std::io::Read;

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::crypto::keys::{TagDomain, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::frame::{FrameKind, FRAME_HEADER_LEN, FRAME_OVERHEAD};
use crate::format::manifest::Manifest;
use crate::format::record::{envelope, envelope_into, salt_of, NewRecord};
use crate::log::commit::{FrameFields, Submission};
use crate::store::{BlobRef, PendingAppend, Store};

const IN_FLIGHT_MAX: usize = 8;

/// The seq the builder gave a chunk; if it gave none, the reason it refused the chunk.
fn assigned_seq(seq: oneshot::Receiver<u64>, ack: PendingAppend) -> Result<u64> {
    match seq.blocking_recv() {
        Ok(seq) => Ok(seq),
        Err(_) => Err(ack.wait().err().unwrap_or(Error::Closed)),
    }
}

impl Store {
    /// Stream `reader` into the store as a media blob of conversation
    /// `conversation_id` (see [`Store::put_blob_for`]).
    pub fn put_blob(
        &self,
        reader: impl std::io::Read,
        conversation_id: &str,
        timestamp_us: i64,
    ) -> Result<BlobRef> {
        let owner = NewRecord::message("", conversation_id, timestamp_us, Vec::new());
        self.put_blob_for(reader, &owner)
    }

    /// Whether the stored chunk at `seq` can stand in for a new copy: it is
    /// still indexed and its key is intact. (How long it is kept follows
    /// from the manifests that use it: reclaim keeps a chunk while any of
    /// them is kept.)
    fn reusable(&self, seq: u64) -> Result<bool> {
        let Some(loc) = self.shared.index.location(seq)? else {
            return Ok(false);
        };
        match self.key_by_id(loc.data_key_id, seq) {
            Ok(_) => Ok(true),
            Err(e) if e.key_unavailable() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The next chunk of `reader` as a chunk frame's plaintext: room for the
    /// frame header, the envelope's header, then the chunk read straight in
    /// behind it (into a recycled buffer: no fresh pages to fault in per
    /// chunk), sealed later where it lies. Returns the buffer, where the
    /// chunk starts in it and its length; `None` at the end of the stream.
    fn next_chunk(
        &self,
        reader: &mut impl std::io::Read,
        done: u64,
    ) -> Result<Option<(Vec<u8>, usize, usize)>> {
        let mut plaintext = self
            .shared
            .take_buffer(FRAME_HEADER_LEN + 64 + self.chunk_bytes + FRAME_OVERHEAD);
        plaintext.resize(FRAME_HEADER_LEN, 0);
        envelope_into(&mut plaintext, ["", "", "", "", "", ""], self.chunk_bytes)?;
        let head = plaintext.len();
        let read = reader
            .take(self.chunk_bytes as u64)
            .read_to_end(&mut plaintext);
        match read {
            Ok(0) => {
                self.shared.give_buffer(plaintext);
                Ok(None)
            }
            Ok(n) => Ok(Some((plaintext, head, n))),
            Err(source) => {
                self.shared.give_buffer(plaintext);
                Err(Error::Stream {
                    stream: "reading the blob being stored",
                    done,
                    source,
                })
            }
        }
    }

    /// A stored chunk with `tag` that can stand in for a new copy. Best
    /// effort: chunks still in flight, or acknowledged but not yet indexed
    /// (call `Store::sync_index` first to see them), may be stored twice,
    /// never lost.
    fn stored_chunk(&self, tag: &[u8; TAG_LEN]) -> Result<Option<u64>> {
        for seq in self.shared.index.by_record_tag(tag, 16)? {
            if self.reusable(seq)? {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }

    /// Stream `reader` into the store as a media blob belonging to `owner`
    /// (whose conversation, custodian, labels and time decide its key and
    /// retention; its body and record id are not used).
    pub fn put_blob_for(
        &self,
        mut reader: impl std::io::Read,
        owner: &NewRecord,
    ) -> Result<BlobRef> {
        self.writable()?;
        self.check_times(owner)?;
        let keys = &self.shared.keys;
        let subject = self.subject_of(&owner.conversation_id, &owner.custodian);
        let subject_tag = self.subject_tag(subject);
        let now = self.compliance_now_us();
        let key = self.key_for(subject, now)?;
        let retain_until_us = self.retain_until_at(owner, now);
        let conversation_tag = self.tag_or_zero(TagDomain::Conversation, &owner.conversation_id);
        let custodian_tag = keys.custodian_tag(&owner.custodian);
        let fields = |kind, record_tag| FrameFields {
            kind,
            timestamp_us: owner.timestamp_us,
            retain_until_us,
            record_tag,
            conversation_tag,
            custodian_tag,
        };
        let mut content = Sha256::new();
        // The seq of every chunk in order; a chunk still in flight, or a repeat
        // of an earlier chunk of this blob, holds 0 until it is resolved below.
        let mut chunks: Vec<u64> = Vec::new();
        // New chunks not yet given a seq: (position, seq to come, acknowledgement).
        let mut pending: VecDeque<(usize, oneshot::Receiver<u64>, PendingAppend)> = VecDeque::new();
        let mut last_chunk_seq = None;
        // (position, position of the first, newly written, chunk with the same content)
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let mut local: HashMap<[u8; TAG_LEN], usize> = HashMap::new();
        let mut total = 0u64;
        let mut new_chunks = 0u64;
        while let Some((plaintext, head, n)) = self.next_chunk(&mut reader, total)? {
            let chunk = &plaintext[head..];
            total += n as u64;
            content.update(chunk);
            // BLAKE3 (several times SHA-256's speed) names the chunk for
            // dedup and its content hash; the blob's own SHA-256 is the standard one.
            let digest: [u8; 32] = blake3::hash(chunk).into();
            let mut scoped = subject_tag.to_vec();
            scoped.extend_from_slice(&digest);
            let tag = keys.tag(TagDomain::MediaChunk, &scoped);
            if let Some(&first) = local.get(&tag) {
                repeats.push((chunks.len(), first));
                chunks.push(0);
                self.shared.give_buffer(plaintext);
                continue;
            }
            if let Some(seq) = self.stored_chunk(&tag)? {
                chunks.push(seq);
                self.shared.give_buffer(plaintext);
                continue;
            }
            let salt = salt_of(&plaintext[FRAME_HEADER_LEN..]);
            let (assigned, seq) = oneshot::channel();
            let sub = Submission::in_place(
                fields(FrameKind::MediaChunk, tag),
                key.clone(),
                plaintext,
                FRAME_HEADER_LEN,
                crate::format::frame::chunk_content_hash(&salt, &digest),
            )
            .announcing(assigned);
            let p = self.submit_raw(sub)?;
            local.insert(tag, chunks.len());
            pending.push_back((chunks.len(), seq, p));
            chunks.push(0);
            new_chunks += 1;
            // Bounded memory: at most IN_FLIGHT_MAX chunks wait for the builder.
            while pending.len() >= IN_FLIGHT_MAX {
                let (i, seq, p) = pending.pop_front().expect("non-empty");
                chunks[i] = assigned_seq(seq, p)?;
                last_chunk_seq = Some(chunks[i]);
            }
        }
        for (i, seq, p) in pending {
            chunks[i] = assigned_seq(seq, p)?;
            last_chunk_seq = Some(chunks[i]);
        }
        for (pos, first) in repeats {
            assert!(first < pos, "a repeat refers to an earlier chunk");
            chunks[pos] = chunks[first];
        }
        let sha256: [u8; 32] = content.finalize().into();
        let blob_tag = keys.tag(TagDomain::Media, &sha256);
        let manifest = Manifest {
            len: total,
            sha256,
            chunk_bytes: self.chunk_bytes as u32,
            chunks,
        };
        let plaintext = envelope(
            [
                &hex::encode(sha256),
                &owner.conversation_id,
                &owner.custodian,
                &owner.tenant,
                &owner.channel,
                &owner.message_type,
            ],
            &manifest.encode(),
        )?;
        let sub = Submission::new(fields(FrameKind::Manifest, blob_tag), key, plaintext)
            .referencing(manifest.chunks.clone());
        // The log is acknowledged in seq order, so the manifest's
        // acknowledgement is also that of every new chunk before it.
        let seq = self.submit_raw(sub)?.wait()?.seq;
        assert!(
            last_chunk_seq.is_none_or(|c| c < seq),
            "a blob's new chunks precede its manifest in the log"
        );
        Ok(BlobRef {
            seq,
            len: total,
            sha256,
            deduplicated: new_chunks == 0 && total > 0,
        })
    }

    /// Find a stored blob by the SHA-256 of its content (its first manifest).
    pub fn find_blob(&self, sha256: &[u8; 32]) -> Result<Option<u64>> {
        Ok(self.find_blobs(sha256, 1)?.first().copied())
    }

    /// Every manifest of the content with `sha256`, oldest first.
    pub fn find_blobs(&self, sha256: &[u8; 32], limit: usize) -> Result<Vec<u64>> {
        self.sync_index()?;
        self.shared
            .index
            .by_record_tag(&self.shared.keys.tag(TagDomain::Media, sha256), limit)
    }

    /// Stream the blob whose manifest is at `seq` into `out`, verifying every chunk and the content hash.
    pub fn read_blob(&self, seq: u64, mut out: impl std::io::Write) -> Result<u64> {
        let manifest = self.get(seq)?;
        if manifest.kind != FrameKind::Manifest {
            return Err(Error::invalid(
                "blob",
                format!(
                    "seq {seq} is a {:?} record, not a media blob",
                    manifest.kind
                ),
            ));
        }
        let bad = |why: &str| Error::Corrupt {
            at: manifest.location.clone(),
            reason: format!("blob manifest: {why}"),
        };
        let m = Manifest::decode(&manifest.body).map_err(|e| bad(&e.to_string()))?;
        let mut h = Sha256::new();
        let mut written = 0u64;
        for (i, &cseq) in m.chunks.iter().enumerate() {
            let chunk = self.get(cseq)?;
            if chunk.kind != FrameKind::MediaChunk {
                return Err(bad(&format!(
                    "chunk {i} points at seq {cseq}, a {:?} record",
                    chunk.kind
                )));
            }
            h.update(&chunk.body);
            out.write_all(&chunk.body).map_err(|source| Error::Stream {
                stream: "writing the blob out",
                done: written,
                source,
            })?;
            written += chunk.body.len() as u64;
        }
        let got: [u8; 32] = h.finalize().into();
        if got != m.sha256 || written != m.len {
            return Err(bad(&format!(
                "content SHA-256 {} / {written} bytes does not match the manifest's {} / {} bytes",
                hex::encode(got),
                hex::encode(m.sha256),
                m.len
            )));
        }
        Ok(written)
    }
}
