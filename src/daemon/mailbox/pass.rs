//! The batches of one drain pass, and finding more while the pipeline is
//! busy: when every planned batch has been fetched but the last ones are
//! still committing or flushing, the IMAP connection would sit idle, so it
//! searches for mail that arrived meanwhile instead. A fresh mail then waits
//! for neither the previous batch's `\Seen` flag (or move) nor the end of the
//! pass — the tail of arrival → acknowledgement under load.

use std::collections::VecDeque;

use super::{plan_batches, Fetched, IngestError, MailboxTask};
use crate::daemon::imap::{bounded, search_after, ImapSession};

/// UIDs found on the server, and the batches still to fetch.
pub(super) struct Pass {
    planned: VecDeque<(Vec<u32>, u64)>,
    /// Every UID this pass found, ascending (what the checkpoint may pass).
    pub(super) uids: Vec<u32>,
}

impl Pass {
    /// The highest UID found: later searches look past it.
    fn high(&self) -> u32 {
        self.uids.last().copied().unwrap_or(0)
    }

    fn absorb(&mut self, more: Pass) {
        self.uids.extend(more.uids);
        self.planned.extend(more.planned);
    }
}

impl MailboxTask {
    /// Searches past `after` and plans the batches of what it finds; None
    /// when nothing is new.
    pub(super) async fn search_new(
        &self,
        s: &mut ImapSession,
        after: u32,
    ) -> Result<Option<Pass>, IngestError> {
        let cfg = &self.cfg;
        // No NOOP first: UID SEARCH makes the server sync the folder itself,
        // and a fresh mail's acknowledgement should not wait for one more
        // round trip to a busy server.
        let Some(search) = search_after(after) else {
            return Ok(None);
        };
        let found = bounded(cfg, "search for new mail", s.uid_search(search)).await?;
        // "n:*" always includes the highest UID, even when it is below n.
        let mut uids: Vec<u32> = found.into_iter().filter(|&u| u > after).collect();
        if uids.is_empty() {
            return Ok(None);
        }
        uids.sort_unstable();
        // One mail is a batch of its own whatever its size, so asking for
        // its size first would only cost a round trip.
        let sizes = match uids.as_slice() {
            [one] => vec![(*one, None)],
            _ => self.fetch_sizes(s, &uids).await?,
        };
        let planned = plan_batches(&sizes, cfg.batch_size as usize, cfg.batch_bytes);
        Ok(Some(Pass {
            planned: planned.into(),
            uids,
        }))
    }

    /// Fetches the next planned batch. With nothing left planned and
    /// `busy` (batches still committing or flushing), searches for newer
    /// mail first, so the connection works while the disk does.
    pub(super) async fn fetch_next(
        &self,
        s: &mut ImapSession,
        pass: &mut Pass,
        busy: bool,
    ) -> Result<Option<Fetched>, IngestError> {
        if pass.planned.is_empty() && busy && !self.shutdown.is_cancelled() {
            if let Some(more) = self.search_new(s, pass.high()).await? {
                self.gauges
                    .set_waiting(&self.cfg.name, (pass.uids.len() + more.uids.len()) as u64);
                pass.absorb(more);
            }
        }
        match pass.planned.pop_front() {
            Some((chunk, bytes)) => Ok(Some(self.fetch_batch(s, &chunk, bytes).await?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refill_extends_the_pass_and_searches_past_its_highest_uid() {
        let mut pass = Pass {
            planned: VecDeque::new(),
            uids: vec![3, 4],
        };
        assert_eq!(pass.high(), 4);
        pass.absorb(Pass {
            planned: vec![(vec![9], 100)].into(),
            uids: vec![9],
        });
        assert_eq!(pass.uids, vec![3, 4, 9]);
        assert_eq!(pass.high(), 9);
        assert_eq!(pass.planned.pop_front(), Some((vec![9], 100)));
    }
}
