//! The store's scrubs: the scrubber (`integrity::scrub`) is given the
//! signed tree heads and reclaimed ranges to check against; each report is
//! then recorded in the log, where the reports are also read back from.

use crate::crypto::keys::TagDomain;
use crate::error::{Error, Result};
use crate::format::frame::FrameKind;
use crate::format::record::NewRecord;
use crate::integrity::scrub::{ScrubMode, ScrubReport, Scrubber, SCRUB_CONVERSATION};
use crate::store::Store;

impl Store {
    /// Scrub the log in `mode`, reading at most `bytes_per_sec` (None: as fast as it goes).
    /// The report is recorded in the log; damage never stops the scrub.
    pub fn scrub(&self, mode: ScrubMode, bytes_per_sec: Option<u64>) -> Result<ScrubReport> {
        self.sync_index()?;
        // A tree head whose own frame is damaged is reported with the frames; the rest are checked.
        let heads = match mode {
            ScrubMode::Full => self.readable_tree_heads()?,
            _ => Vec::new(),
        };
        let reclaimed = self.compliance().reclaimed()?;
        let report = Scrubber::new(&self.shared, heads, reclaimed).run(mode, bytes_per_sec)?;
        self.record_scrub(&report)?;
        Ok(report)
    }

    fn record_scrub(&self, report: &ScrubReport) -> Result<()> {
        let body = serde_json::to_vec(report)
            .map_err(|e| Error::invalid("scrub report", e.to_string()))?;
        let mut rec = NewRecord::message(
            format!("scrub-{}", report.started_us),
            SCRUB_CONVERSATION,
            report.started_us,
            body,
        );
        rec.kind = FrameKind::System;
        rec.channel = "integrity".into();
        rec.message_type = "scrub".into();
        self.append_system(rec)?;
        Ok(())
    }

    /// Scrub reports recorded in the log, newest last (at most `limit`, the newest ones).
    pub fn scrub_reports(&self, limit: usize) -> Result<Vec<ScrubReport>> {
        self.sync_index()?;
        let tag = self.tag_or_zero(TagDomain::Conversation, SCRUB_CONVERSATION);
        let seqs = self.shared.index.by_conversation_tag(&tag, usize::MAX)?;
        let skip = seqs.len().saturating_sub(limit);
        let mut out = Vec::new();
        for s in seqs.into_iter().skip(skip) {
            let r = self.get(s)?;
            if r.kind == FrameKind::System && r.conversation_id == SCRUB_CONVERSATION {
                out.push(serde_json::from_slice(&r.body).map_err(|e| Error::Corrupt {
                    at: r.location.clone(),
                    reason: format!("scrub report: {e}"),
                })?);
            }
        }
        Ok(out)
    }
}
