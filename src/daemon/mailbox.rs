//! One task per mailbox: fetch new mail past the stored checkpoint, hand each
//! mail to the engine, make the result durable, and only then mark the mail
//! processed on the server. Waits in IDLE where the server offers it, polls
//! otherwise, and reconnects with backoff after any failure.

use std::sync::Arc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use thiserror::Error;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{AfterProcessing, MailboxConfig};
use crate::daemon::imap::{
    self, bounded, collect_bounded, collect_sized, quoted, search_after, uid_set, ImapError,
    ImapSession, IDLE_REFRESH,
};
use crate::desk::outcome::Outcome;
use crate::engine::{Engine, EngineError};
use crate::store::records::Checkpoint;
use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum IngestError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot make ingested mail durable: {0}")]
    Store(#[from] StoreError),
    #[error("cannot run the ingest worker: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub struct MailboxTask {
    pub cfg: MailboxConfig,
    pub engine: Arc<Engine>,
    /// Woken after each durable batch that queued outgoing mail.
    pub outbox_wake: Arc<Notify>,
    /// Marks bulk batches, so the sender lets them go first.
    pub backlog: Arc<crate::daemon::backlog::Backlog>,
    pub shutdown: CancellationToken,
}

mod poison;

use poison::{ingest_guarded, Place};

const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A batch as fetched from the server.
struct Fetched {
    mails: Vec<(u32, Vec<u8>)>,
    fetch: Duration,
}

/// A committed batch, not yet durable.
struct Committed<'a> {
    handled: Vec<u32>,
    outcomes: Vec<(u32, Outcome)>,
    fetch: Duration,
    commit: Duration,
    _bulk: Option<crate::daemon::backlog::BulkGuard<'a>>,
}

/// A committed, durable batch not yet marked processed on the server.
struct Settled {
    handled: Vec<u32>,
    queued: usize,
    fetch: Duration,
    commit: Duration,
    flush: Duration,
}

/// A batch being committed while the next one is fetched.
struct InFlight<'a> {
    fetch: Duration,
    started: std::time::Instant,
    /// Keeps the sender deferring while bulk mail is in hand.
    _bulk: Option<crate::daemon::backlog::BulkGuard<'a>>,
    /// Closed when this batch's task ends: the next batch parses meanwhile
    /// and waits for it before its own transaction, so batches commit in order.
    done: Option<std::sync::mpsc::Receiver<()>>,
    task: tokio::task::JoinHandle<Result<Vec<(u32, Outcome)>, EngineError>>,
}

/// Splits UIDs (with their RFC822.SIZE, when the server said) into batches
/// of at most `count` mails and `bytes` bytes; a mail larger than `bytes`
/// (or of unknown size) is a batch of its own. Each batch comes with its
/// expected size.
fn plan_batches(uids: &[(u32, Option<u32>)], count: usize, bytes: u64) -> Vec<(Vec<u32>, u64)> {
    let mut batches: Vec<(Vec<u32>, u64)> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut size = 0u64;
    for &(uid, len) in uids {
        let len = len.map_or(bytes, u64::from);
        if !current.is_empty() && (current.len() >= count || size + len > bytes) {
            batches.push((std::mem::take(&mut current), size));
            size = 0;
        }
        current.push(uid);
        size += len;
    }
    if !current.is_empty() {
        batches.push((current, size));
    }
    batches
}

/// The new checkpoint: the highest searched UID below which every searched
/// UID was processed. Mail the server did not deliver (a FETCH item without
/// its UID or body) or that failed holds it back, so it is fetched again.
fn checkpoint_after(
    last_uid: u32,
    searched: &[u32],
    done: &std::collections::BTreeSet<u32>,
) -> u32 {
    let mut cp = last_uid;
    for &uid in searched {
        if !done.contains(&uid) {
            break;
        }
        cp = cp.max(uid);
    }
    cp
}

/// Runs a store call off the async worker threads.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<R, IngestError> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

impl MailboxTask {
    pub async fn run(self) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let ended = self.session(&mut backoff).await;
            self.backlog.set_connected(&self.cfg.name, false);
            match ended {
                Ok(()) => return,
                Err(e) => {
                    warn!(mailbox = %self.cfg.name, error = %e, retry_in = ?backoff, "mailbox session failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's life. Returns Ok only on shutdown.
    async fn session(&self, backoff: &mut Duration) -> Result<(), IngestError> {
        let cfg = &self.cfg;
        let mut s = tokio::select! {
            r = imap::connect(cfg) => r?,
            _ = self.shutdown.cancelled() => return Ok(()),
        };
        let caps = bounded(cfg, "read capabilities", s.capabilities()).await?;
        let use_idle = cfg.idle && caps.has_str("IDLE");
        let server = Server {
            has_move: caps.has_str("MOVE"),
            has_uidplus: caps.has_str("UIDPLUS"),
        };
        if let AfterProcessing::MoveTo(folder) = &cfg.after_processing {
            // Creating an existing folder fails harmlessly; a real problem shows at the first move.
            let _ = bounded(cfg, "create folder", s.create(folder)).await;
            if !server.has_move && !server.has_uidplus {
                warn!(mailbox = %cfg.name, "the server has neither MOVE nor UIDPLUS: processed mail is copied and flagged \\Deleted but not expunged (a plain EXPUNGE would also remove other clients' deleted mail)");
            }
        }
        let mailbox = bounded(cfg, "select folder", s.select(&cfg.folder)).await?;
        let validity = mailbox.uid_validity.unwrap_or(0);
        info!(mailbox = %cfg.name, folder = %cfg.folder, idle = use_idle, uid_validity = validity, "connected");
        self.backlog.set_connected(&cfg.name, true);
        *backoff = Duration::from_secs(1);

        loop {
            let retry_soon = self.drain(&mut s, validity, server).await?;
            if self.shutdown.is_cancelled() {
                let _ = bounded(cfg, "log out", s.logout()).await;
                return Ok(());
            }
            // Mail left unprocessed is tried again after the poll interval,
            // not only when new mail wakes IDLE.
            s = if use_idle && !retry_soon {
                self.idle(s).await?
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(cfg.poll_interval) => {}
                    _ = self.shutdown.cancelled() => {}
                }
                s
            };
            // Drain the unsolicited-response channel so it never fills.
            while s.unsolicited_responses.try_recv().is_ok() {}
        }
    }

    async fn idle(&self, s: ImapSession) -> Result<ImapSession, IngestError> {
        let cfg = &self.cfg;
        let mut handle = s.idle();
        bounded(cfg, "start IDLE", handle.init()).await?;
        {
            let (wait, _interrupt) = handle.wait_with_timeout(IDLE_REFRESH);
            tokio::select! {
                r = wait => match r {
                    Ok(IdleResponse::NewData(d)) => debug!(mailbox = %cfg.name, response = ?d.parsed(), "IDLE woke"),
                    Ok(_) => {}
                    Err(source) => return Err(ImapError::Command { what: "wait in IDLE".into(), source }.into()),
                },
                _ = self.shutdown.cancelled() => {}
            }
        }
        Ok(bounded(cfg, "end IDLE", handle.done()).await?)
    }

    /// Ingests everything past the checkpoint, batch by batch. Returns
    /// whether some mail was left unprocessed (to be tried again soon).
    async fn drain(
        &self,
        s: &mut ImapSession,
        validity: u32,
        server: Server,
    ) -> Result<bool, IngestError> {
        let cfg = &self.cfg;
        let store = self.engine.store().clone();
        let name = cfg.name.clone();
        let stored = blocking(move || store.checkpoint(&name)).await?;
        let mut last_uid = match stored {
            Some(cp) if cp.uid_validity == validity => cp.last_uid,
            Some(cp) => {
                warn!(mailbox = %cfg.name, old = cp.uid_validity, new = validity,
                    "UIDVALIDITY changed: rescanning the folder (dedupe keeps it exactly-once)");
                0
            }
            None => 0,
        };
        loop {
            bounded(cfg, "poll for new mail", s.noop()).await?;
            let Some(search) = search_after(last_uid) else {
                return Ok(false);
            };
            let found = bounded(cfg, "search for new mail", s.uid_search(search)).await?;
            // "n:*" always includes the highest UID, even when it is below n.
            let mut uids: Vec<u32> = found.into_iter().filter(|&u| u > last_uid).collect();
            if uids.is_empty() {
                return Ok(false);
            }
            uids.sort_unstable();
            let sizes = self.fetch_sizes(s, &uids).await?;
            let batches = plan_batches(&sizes, cfg.batch_size as usize, cfg.batch_bytes);
            let mut done = std::collections::BTreeSet::new();
            // Pipelined: while batch k is committed on a blocking thread,
            // batch k+1 is fetched and parsed, batch k-1 is flushed and then
            // marked processed, so neither the IMAP round trips nor the disk
            // nor the parser stand in the way of the next commit.
            let mut in_flight: Option<InFlight> = None;
            let mut unflushed: Option<Committed> = None;
            let mut batches = batches.iter();
            loop {
                let next = batches.next();
                let (fetched, durable) = tokio::join!(
                    async {
                        match next {
                            Some((chunk, bytes)) => Some(self.fetch_batch(s, chunk, *bytes).await),
                            None => None,
                        }
                    },
                    async {
                        match unflushed.take() {
                            Some(c) => Some(self.make_durable(c).await),
                            None => None,
                        }
                    }
                );
                let (fetched, durable) = match (fetched.transpose(), durable.transpose()) {
                    (Ok(f), Ok(d)) => (f, d),
                    (Err(e), _) | (_, Err(e)) => {
                        if let Some(prev) = in_flight.take() {
                            // Let the batch in hand commit; it is not marked
                            // processed, so the next pass refetches it and
                            // dedupe makes that harmless.
                            let _ = prev.task.await;
                        }
                        return Err(e);
                    }
                };
                let mut prev = in_flight.take();
                if let Some(fetched) = fetched {
                    if !self.shutdown.is_cancelled() {
                        let after = prev.as_mut().and_then(|p| p.done.take());
                        in_flight = Some(self.start_batch(fetched, validity, after));
                    }
                }
                if let Some(prev) = prev {
                    match self.await_commit(prev).await {
                        Ok(c) => unflushed = Some(c),
                        Err(e) => {
                            if let Some(next) = in_flight.take() {
                                let _ = next.task.await;
                            }
                            return Err(e);
                        }
                    }
                }
                if let Some(settled) = durable {
                    let marked = self.mark_batch(s, settled, server).await;
                    match marked {
                        Ok(handled) => done.extend(handled),
                        Err(e) => {
                            if let Some(next) = in_flight.take() {
                                let _ = next.task.await;
                            }
                            return Err(e);
                        }
                    }
                    let cp = checkpoint_after(last_uid, &uids, &done);
                    if cp > last_uid {
                        last_uid = cp;
                        let store = self.engine.store().clone();
                        let name = cfg.name.clone();
                        let checkpoint = Checkpoint {
                            uid_validity: validity,
                            last_uid,
                        };
                        blocking(move || store.set_checkpoint(&name, checkpoint)).await?;
                    }
                }
                if in_flight.is_none() && unflushed.is_none() {
                    break;
                }
            }
            if self.shutdown.is_cancelled() {
                return Ok(false);
            }
            let left = uids.iter().filter(|u| !done.contains(u)).count();
            if left > 0 {
                warn!(mailbox = %cfg.name, mails = left, "some mail was not processed this pass; trying again soon");
                return Ok(true);
            }
        }
    }

    /// The RFC822.SIZE of each UID, before any body is fetched, so batches
    /// can be bounded by bytes; None where the server did not say.
    async fn fetch_sizes(
        &self,
        s: &mut ImapSession,
        uids: &[u32],
    ) -> Result<Vec<(u32, Option<u32>)>, IngestError> {
        let cfg = &self.cfg;
        let stream = bounded(
            cfg,
            "fetch mail sizes",
            s.uid_fetch(uid_set(uids), "(UID RFC822.SIZE)"),
        )
        .await?;
        let fetches = collect_bounded(cfg, "fetch mail sizes", stream).await?;
        let known: std::collections::HashMap<u32, u32> = fetches
            .iter()
            .filter_map(|f| Some((f.uid?, f.size?)))
            .collect();
        Ok(uids.iter().map(|u| (*u, known.get(u).copied())).collect())
    }

    async fn fetch_batch(
        &self,
        s: &mut ImapSession,
        uids: &[u32],
        bytes: u64,
    ) -> Result<Fetched, IngestError> {
        let cfg = &self.cfg;
        let started = std::time::Instant::now();
        let fetches = {
            let stream = bounded(
                cfg,
                "fetch mail",
                s.uid_fetch(uid_set(uids), "(UID BODY.PEEK[])"),
            )
            .await?;
            collect_sized(cfg, "fetch mail", bytes, stream).await?
        };
        let asked: std::collections::BTreeSet<u32> = uids.iter().copied().collect();
        let mut mails: Vec<(u32, Vec<u8>)> = Vec::with_capacity(uids.len());
        let mut incomplete = 0usize;
        for f in &fetches {
            match (f.uid, f.body()) {
                (Some(uid), Some(body)) if asked.contains(&uid) => mails.push((uid, body.to_vec())),
                _ => incomplete += 1,
            }
        }
        mails.sort_unstable_by_key(|(uid, _)| *uid);
        mails.dedup_by_key(|(uid, _)| *uid);
        if mails.len() < uids.len() {
            // Not processed, so the checkpoint stays below them and they are
            // fetched again; a mail expunged meanwhile is simply not found then.
            warn!(mailbox = %cfg.name, asked = uids.len(), got = mails.len(), incomplete,
                "the server's FETCH answer lacked some mails' UID or body; they are fetched again later");
        }
        Ok(Fetched {
            mails,
            fetch: started.elapsed(),
        })
    }

    /// Parses and commits a fetched batch on a blocking thread; its
    /// transaction waits for `after` (the previous batch's task).
    fn start_batch(
        &self,
        fetched: Fetched,
        validity: u32,
        after: Option<std::sync::mpsc::Receiver<()>>,
    ) -> InFlight<'_> {
        let bulk = self.backlog.batch(fetched.mails.len());
        let engine = self.engine.clone();
        let name = self.cfg.name.clone();
        let mails = fetched.mails;
        let (finished, done) = std::sync::mpsc::channel::<()>();
        InFlight {
            fetch: fetched.fetch,
            started: std::time::Instant::now(),
            _bulk: bulk,
            done: Some(done),
            task: tokio::task::spawn_blocking(move || {
                let _finished = finished;
                let at = Place {
                    mailbox: &name,
                    uid_validity: validity,
                };
                ingest_guarded(&engine, &mails, &at, after)
            }),
        }
    }

    /// Waits for the commit.
    async fn await_commit<'a>(&self, batch: InFlight<'a>) -> Result<Committed<'a>, IngestError> {
        let outcomes = batch.task.await??;
        Ok(Committed {
            handled: outcomes.iter().map(|(uid, _)| *uid).collect(),
            outcomes,
            fetch: batch.fetch,
            commit: batch.started.elapsed(),
            _bulk: batch._bulk,
        })
    }

    /// Makes a committed batch durable.
    async fn make_durable(&self, batch: Committed<'_>) -> Result<Settled, IngestError> {
        let started = std::time::Instant::now();
        // Durable before the server hears the mail is done: a crash from here on
        // refetches it, and dedupe makes that harmless.
        self.engine.store().flush().await?;
        let outcomes = batch.outcomes;
        let queued: usize = outcomes.iter().map(|(_, o)| o.queued()).sum();
        if queued > 0 {
            self.outbox_wake.notify_one();
        }
        for (uid, o) in &outcomes {
            debug!(mailbox = %self.cfg.name, uid, outcome = ?o, "mail processed");
        }
        Ok(Settled {
            handled: batch.handled,
            queued,
            fetch: batch.fetch,
            commit: batch.commit,
            flush: started.elapsed(),
        })
    }

    /// Marks a durable batch processed on the server. Returns the UIDs
    /// handled.
    async fn mark_batch(
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

/// What the server can do, from its capabilities.
#[derive(Debug, Clone, Copy)]
struct Server {
    has_move: bool,
    has_uidplus: bool,
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let sizes = [
            (1, Some(10)),
            (2, Some(10)),
            (3, Some(10)),
            (4, Some(50)),
            (5, None),
            (6, Some(1)),
        ];
        assert_eq!(
            plan_batches(&sizes, 2, 40),
            vec![
                (vec![1, 2], 20),
                (vec![3], 10),
                (vec![4], 50),
                (vec![5], 40),
                (vec![6], 1)
            ]
        );
        assert_eq!(
            plan_batches(&sizes, 10, 1000),
            vec![(vec![1, 2, 3, 4], 80), (vec![5], 1000), (vec![6], 1)]
        );
        assert!(plan_batches(&[], 10, 10).is_empty());
    }

    #[test]
    fn the_checkpoint_passes_only_processed_uids() {
        let done = |u: &[u32]| {
            u.iter()
                .copied()
                .collect::<std::collections::BTreeSet<u32>>()
        };
        assert_eq!(checkpoint_after(4, &[5, 6, 7], &done(&[5, 7])), 5);
        assert_eq!(checkpoint_after(4, &[5, 6, 7], &done(&[6, 7])), 4);
        assert_eq!(checkpoint_after(4, &[5, 6, 7], &done(&[5, 6, 7])), 7);
        assert_eq!(
            checkpoint_after(u32::MAX - 1, &[u32::MAX], &done(&[u32::MAX])),
            u32::MAX
        );
    }
}
