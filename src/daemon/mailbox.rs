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
    self, bounded, collect_bounded, quoted, uid_set, ImapError, ImapSession, IDLE_REFRESH,
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

const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A batch as fetched from the server.
struct Fetched {
    mails: Vec<(u32, Vec<u8>)>,
    max_uid: u32,
    fetch: Duration,
}

/// A committed batch, not yet durable.
struct Committed<'a> {
    handled: Vec<u32>,
    max_uid: u32,
    outcomes: Vec<(u32, Outcome)>,
    fetch: Duration,
    commit: Duration,
    _bulk: Option<crate::daemon::backlog::BulkGuard<'a>>,
}

/// A committed, durable batch not yet marked processed on the server.
struct Settled {
    handled: Vec<u32>,
    max_uid: u32,
    queued: usize,
    fetch: Duration,
    commit: Duration,
    flush: Duration,
}

/// A batch being committed while the next one is fetched.
struct InFlight<'a> {
    handled: Vec<u32>,
    max_uid: u32,
    fetch: Duration,
    started: std::time::Instant,
    /// Keeps the sender deferring while bulk mail is in hand.
    _bulk: Option<crate::daemon::backlog::BulkGuard<'a>>,
    task: tokio::task::JoinHandle<Result<Vec<(u32, Outcome)>, EngineError>>,
}

/// Ingests a batch; if that panics (a bug in a parser meeting a hostile mail),
/// goes mail by mail and quarantines the one that panics, so one poison mail
/// can never wedge the mailbox in a refetch loop.
fn ingest_guarded(
    engine: &Engine,
    mails: &[(u32, Vec<u8>)],
    mailbox: &str,
) -> Result<Vec<(u32, Outcome)>, EngineError> {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let raws: Vec<&[u8]> = mails.iter().map(|(_, raw)| raw.as_slice()).collect();
    match catch_unwind(AssertUnwindSafe(|| engine.ingest_batch(&raws, mailbox))) {
        Ok(outcomes) => Ok(mails.iter().map(|(uid, _)| *uid).zip(outcomes?).collect()),
        Err(_) => {
            warn!(
                mailbox,
                "processing a batch panicked; retrying mail by mail"
            );
            let mut out = Vec::with_capacity(mails.len());
            for (uid, raw) in mails {
                let outcome = match catch_unwind(AssertUnwindSafe(|| engine.ingest(raw, mailbox))) {
                    Ok(o) => o?,
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "unknown panic".into());
                        engine.quarantine_raw(
                            raw,
                            mailbox,
                            &format!("internal error while processing: {what}"),
                        )?
                    }
                };
                out.push((*uid, outcome));
            }
            Ok(out)
        }
    }
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
        let has_move = caps.has_str("MOVE");
        if let AfterProcessing::MoveTo(folder) = &cfg.after_processing {
            // Creating an existing folder fails harmlessly; a real problem shows at the first move.
            let _ = bounded(cfg, "create folder", s.create(folder)).await;
        }
        let mailbox = bounded(cfg, "select folder", s.select(&cfg.folder)).await?;
        let validity = mailbox.uid_validity.unwrap_or(0);
        info!(mailbox = %cfg.name, folder = %cfg.folder, idle = use_idle, uid_validity = validity, "connected");
        self.backlog.set_connected(&cfg.name, true);
        *backoff = Duration::from_secs(1);

        loop {
            self.drain(&mut s, validity, has_move).await?;
            if self.shutdown.is_cancelled() {
                let _ = bounded(cfg, "log out", s.logout()).await;
                return Ok(());
            }
            s = if use_idle {
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

    /// Ingests everything past the checkpoint, batch by batch.
    async fn drain(
        &self,
        s: &mut ImapSession,
        validity: u32,
        has_move: bool,
    ) -> Result<(), IngestError> {
        let cfg = &self.cfg;
        let store = self.engine.store().clone();
        let mut last_uid = match store.checkpoint(&cfg.name)? {
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
            let found = bounded(
                cfg,
                "search for new mail",
                s.uid_search(format!("UID {}:*", last_uid + 1)),
            )
            .await?;
            // "n:*" always includes the highest UID, even when it is below n.
            let mut uids: Vec<u32> = found.into_iter().filter(|&u| u > last_uid).collect();
            if uids.is_empty() {
                return Ok(());
            }
            uids.sort_unstable();
            // Pipelined: while batch k is committed on a blocking thread,
            // batch k+1 is fetched, batch k-1 is flushed and then marked
            // processed, so neither the IMAP round trips nor the disk stand
            // in the way of the next commit.
            let mut in_flight: Option<InFlight> = None;
            let mut unflushed: Option<Committed> = None;
            let mut chunks = uids.chunks(cfg.batch_size as usize);
            loop {
                let next = chunks.next();
                let (fetched, durable) = tokio::join!(
                    async {
                        match next {
                            Some(chunk) => Some(self.fetch_batch(s, chunk).await),
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
                if let Some(prev) = in_flight.take() {
                    unflushed = Some(self.await_commit(prev).await?);
                }
                if let Some(fetched) = fetched {
                    if !self.shutdown.is_cancelled() {
                        in_flight = Some(self.start_batch(fetched));
                    }
                }
                if let Some(done) = durable {
                    let marked = self.mark_batch(s, done, has_move).await;
                    let max = match marked {
                        Ok(max) => max,
                        Err(e) => {
                            if let Some(prev) = in_flight.take() {
                                let _ = prev.task.await;
                            }
                            return Err(e);
                        }
                    };
                    last_uid = last_uid.max(max);
                    store.set_checkpoint(
                        &cfg.name,
                        Checkpoint {
                            uid_validity: validity,
                            last_uid,
                        },
                    )?;
                }
                if in_flight.is_none() && unflushed.is_none() {
                    break;
                }
            }
            if self.shutdown.is_cancelled() {
                return Ok(());
            }
        }
    }

    async fn fetch_batch(&self, s: &mut ImapSession, uids: &[u32]) -> Result<Fetched, IngestError> {
        let cfg = &self.cfg;
        let started = std::time::Instant::now();
        let fetches = {
            let stream = bounded(
                cfg,
                "fetch mail",
                s.uid_fetch(uid_set(uids), "(UID BODY.PEEK[])"),
            )
            .await?;
            collect_bounded(cfg, "fetch mail", stream).await?
        };
        let mails: Vec<(u32, Vec<u8>)> = fetches
            .iter()
            .filter_map(|f| Some((f.uid?, f.body()?.to_vec())))
            .collect();
        Ok(Fetched {
            mails,
            max_uid: uids.iter().copied().max().unwrap_or(0),
            fetch: started.elapsed(),
        })
    }

    /// Commits a fetched batch on a blocking thread.
    fn start_batch(&self, fetched: Fetched) -> InFlight<'_> {
        let handled: Vec<u32> = fetched.mails.iter().map(|(u, _)| *u).collect();
        let bulk = self.backlog.batch(handled.len());
        let engine = self.engine.clone();
        let name = self.cfg.name.clone();
        let mails = fetched.mails;
        InFlight {
            handled,
            max_uid: fetched.max_uid,
            fetch: fetched.fetch,
            started: std::time::Instant::now(),
            _bulk: bulk,
            task: tokio::task::spawn_blocking(move || ingest_guarded(&engine, &mails, &name)),
        }
    }

    /// Waits for the commit.
    async fn await_commit<'a>(&self, batch: InFlight<'a>) -> Result<Committed<'a>, IngestError> {
        let outcomes = batch.task.await??;
        Ok(Committed {
            handled: batch.handled,
            max_uid: batch.max_uid,
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
            max_uid: batch.max_uid,
            queued,
            fetch: batch.fetch,
            commit: batch.commit,
            flush: started.elapsed(),
        })
    }

    /// Marks a durable batch processed on the server. Returns the highest
    /// UID handled.
    async fn mark_batch(
        &self,
        s: &mut ImapSession,
        done: Settled,
        has_move: bool,
    ) -> Result<u32, IngestError> {
        let started = std::time::Instant::now();
        if !done.handled.is_empty() {
            self.mark_processed(s, &uid_set(&done.handled), has_move)
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
        Ok(done.max_uid)
    }

    async fn mark_processed(
        &self,
        s: &mut ImapSession,
        set: &str,
        has_move: bool,
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
            AfterProcessing::MoveTo(folder) if has_move => {
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
                let stream = bounded(cfg, "expunge", s.expunge()).await?;
                collect_bounded(cfg, "expunge", stream).await?;
            }
        }
        Ok(())
    }
}

// The only test needs a mail that panics, which exists in debug builds only.
#[cfg(test)]
#[cfg(debug_assertions)]
mod tests {
    use super::*;
    use crate::desk::policy::Policy;
    use crate::desk::templates::Templates;
    use crate::engine::clock::SystemClock;
    use crate::mail::address::{EmailAddress, Party};
    use crate::store::Store;

    /// In debug builds this mail trips a debug assertion inside mail-parser
    /// (found by the fuzzer): a real panic to recover from.
    #[cfg(debug_assertions)]
    #[test]
    fn a_panicking_mail_is_quarantined_and_the_others_go_on() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let poison =
            std::fs::read(repo.join("tests/fixtures/parser-panic-nested-rfc822.eml")).unwrap();
        let good = |n: u32| {
            format!("From: a@c.test\r\nSubject: ok {n}\r\nMessage-ID: <g{n}@c>\r\n\r\nhi\r\n")
                .into_bytes()
        };
        // A small batch (parsed in line) and a large one (parsed on a helper
        // thread while the transaction applies it).
        for (size, poison_at) in [(3, 1), (100, 57)] {
            let dir = tempfile::tempdir().unwrap();
            let policy = Policy::new(
                Party {
                    name: None,
                    address: EmailAddress::parse("help@desk.test").unwrap(),
                },
                Templates::load(&repo.join("templates")).unwrap(),
            );
            let engine = Engine::new(
                Store::open(dir.path()).unwrap(),
                Arc::new(SystemClock),
                policy,
            );
            let mut mails: Vec<(u32, Vec<u8>)> = (0..size).map(|i| (i, good(i))).collect();
            mails[poison_at as usize].1 = poison.clone();
            let out = ingest_guarded(&engine, &mails, "help").unwrap();
            for (uid, o) in &out {
                if *uid == poison_at {
                    assert!(
                        matches!(o, Outcome::Quarantined { reason, .. } if reason.contains("internal error")),
                        "{out:?}"
                    );
                } else {
                    assert!(matches!(o, Outcome::Created { .. }), "{uid}: {o:?}");
                }
            }
            assert_eq!(engine.store().quarantine().unwrap().len(), 1);
        }
    }
}
