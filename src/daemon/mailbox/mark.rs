//! Telling the server a mail is done, once its ticket change is durable:
//! `\Seen`, or a move that never touches mail deskgate did not process
//! (UID MOVE; else COPY, `\Deleted` and UID EXPUNGE of just those UIDs;
//! with neither MOVE nor UIDPLUS no expunge at all).

use super::{IngestError, MailboxTask, Settled};
use crate::config::AfterProcessing;
use crate::daemon::imap::{bounded, collect_bounded, quoted, uid_set, ImapSession};
use tracing::info;

/// What the server can do, from its capabilities.
#[derive(Debug, Clone, Copy)]
pub(super) struct Server {
    pub(super) has_move: bool,
    pub(super) has_uidplus: bool,
}

impl MailboxTask {
    /// Marks a durable batch processed on the server. Returns the UIDs
    /// handled.
    pub(super) async fn mark_batch(
        &self,
        s: &mut ImapSession,
        done: Settled,
        server: Server,
    ) -> Result<Vec<u32>, IngestError> {
        let started = std::time::Instant::now();
        if !done.handled.is_empty() {
            self.mark_processed(s, &uid_set(&done.handled), server)
                .await?;
        }
        info!(
            mailbox = %self.cfg.name,
            mails = done.handled.len(),
            queued = done.queued,
            fetch_ms = done.fetch.as_millis() as u64,
            commit_ms = done.commit.as_millis() as u64,
            flush_ms = done.flush.as_millis() as u64,
            mark_ms = started.elapsed().as_millis() as u64,
            "batch committed"
        );
        Ok(done.handled)
    }

    async fn mark_processed(
        &self,
        s: &mut ImapSession,
        set: &str,
        server: Server,
    ) -> Result<(), IngestError> {
        let cfg = &self.cfg;
        match &cfg.after_processing {
            AfterProcessing::FlagSeen => {
                let stream = bounded(
                    cfg,
                    "flag mail seen",
                    s.uid_store(set, "+FLAGS.SILENT (\\Seen)"),
                )
                .await?;
                collect_bounded(cfg, "flag mail seen", stream).await?;
            }
            AfterProcessing::MoveTo(folder) if server.has_move => {
                bounded(cfg, "move mail", s.uid_mv(set, folder)).await?;
            }
            AfterProcessing::MoveTo(folder) => {
                bounded(cfg, "copy mail", s.uid_copy(set, quoted(folder))).await?;
                let stream = bounded(
                    cfg,
                    "flag mail deleted",
                    s.uid_store(set, "+FLAGS.SILENT (\\Deleted)"),
                )
                .await?;
                collect_bounded(cfg, "flag mail deleted", stream).await?;
                // Only the UIDs just copied: a plain EXPUNGE would also remove
                // mail other clients flagged \Deleted. Without UIDPLUS the
                // copies stay flagged in the folder (said once at connect).
                if server.has_uidplus {
                    let stream = bounded(cfg, "expunge moved mail", s.uid_expunge(set)).await?;
                    collect_bounded(cfg, "expunge moved mail", stream).await?;
                }
            }
        }
        Ok(())
    }
}
