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
use tracing::{debug, error, info, warn};

use crate::config::{AfterProcessing, MailboxConfig};
use crate::daemon::imap::{
    bounded, collect_bounded, collect_sized, uid_set, ImapError, ImapSession, IDLE_REFRESH,
};
use crate::daemon::imap_login;
use crate::daemon::notify::Gauges;
use crate::daemon::status::MailboxState;
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

impl IngestError {
    /// The server refused the login: an admin must fix the password.
    fn is_login_refused(&self) -> bool {
        matches!(self, IngestError::Imap(ImapError::Login { .. }))
    }

    /// A failure of the store (ingest only returns store failures as
    /// engine errors; poison mail is handled inside).
    fn is_store(&self) -> bool {
        matches!(self, IngestError::Store(_) | IngestError::Engine(_))
    }
}

/// Sessions in a row that may end in a store failure (with a growing wait
/// between them, 15 s in all) before the store is taken to be broken
/// for good, as the timers task does: the daemon then stops instead of
/// running on without committing, and the service manager restarts it.
const MAX_STORE_FAILURES: u32 = 5;

#[derive(Debug, Error)]
#[error("cannot go on with mailbox {mailbox}: the store failed {times} times in a row, the last time with: {last}")]
pub struct StoreBroken {
    mailbox: String,
    times: u32,
    last: String,
}

/// Counts store failures in a row; too many ends the task. Any pass that
/// got through forgives.
fn judge(failed: &mut u32, mailbox: &str, e: &IngestError) -> Result<(), StoreBroken> {
    if !e.is_store() {
        return Ok(());
    }
    *failed += 1;
    if *failed >= MAX_STORE_FAILURES {
        return Err(StoreBroken {
            mailbox: mailbox.to_string(),
            times: *failed,
            last: e.to_string(),
        });
    }
    Ok(())
}

/// The wait before the session after `failures` store failures in a row.
fn store_retry_delay(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 1).min(6)).min(MAX_BACKOFF),
    }
}

/// What outlives one connection.
struct Lasting {
    backoff: Duration,
    store_failures: u32,
    undelivered: Undelivered,
}

pub struct MailboxTask {
    pub cfg: MailboxConfig,
    pub engine: Arc<Engine>,
    /// Woken after each durable batch that queued outgoing mail.
    pub outbox_wake: Arc<Notify>,
    /// Marks bulk batches, so the sender lets them go first.
    pub backlog: Arc<crate::daemon::backlog::Backlog>,
    /// Mail waiting on the server and UIDs given up, for the status line.
    pub gauges: Arc<Gauges>,
    /// State, last fetch and last error, for `deskgate status`.
    pub status: Arc<crate::daemon::status::Status>,
    pub shutdown: CancellationToken,
}

mod mark;
mod pass;
mod poison;
mod progress;

use mark::Server;
use poison::{ingest_guarded, Place};
use progress::{checkpoint_after, sort_fetched, Undelivered, GIVE_UP_PASSES};

const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A batch as fetched from the server.
struct Fetched {
    mails: Vec<(u32, Vec<u8>)>,
    /// Asked for, not in the answer.
    missing: Vec<u32>,
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

/// Runs a store call off the async worker threads.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<R, IngestError> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

impl MailboxTask {
    /// Runs until shutdown (`Ok`), reconnecting after any failure, or until
    /// the store keeps failing ([`MAX_STORE_FAILURES`]).
    pub async fn run(self) -> Result<(), StoreBroken> {
        let mut lasting = Lasting {
            backoff: Duration::from_secs(1),
            store_failures: 0,
            undelivered: Undelivered::default(),
        };
        // The same failure again (a wrong password, a server that is down)
        // is logged once, not at every retry.
        let mut last_error: Option<String> = None;
        loop {
            self.status
                .set_state(&self.cfg.name, MailboxState::Connecting);
            let ended = self.session(&mut lasting).await;
            self.backlog.set_connected(&self.cfg.name, false);
            let backoff = match ended {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if let Err(broken) = judge(&mut lasting.store_failures, &self.cfg.name, &e) {
                        error!(mailbox = %self.cfg.name, error = %e, "the store keeps failing; stopping the daemon");
                        return Err(broken);
                    }
                    // Logging in resets the backoff; a store that fails
                    // after each login still gets a growing one (1, 2, 4, 8 s).
                    let backoff = lasting
                        .backoff
                        .max(store_retry_delay(lasting.store_failures));
                    let text = e.to_string();
                    self.status.failed(&self.cfg.name, &text);
                    if last_error.as_deref() == Some(text.as_str()) {
                        debug!(mailbox = %self.cfg.name, error = %text, retry_in = ?backoff, "mailbox session failed again");
                    } else if e.is_login_refused() {
                        error!(mailbox = %self.cfg.name, retry_in = ?backoff, "{text}");
                    } else {
                        warn!(mailbox = %self.cfg.name, error = %text, retry_in = ?backoff, "mailbox session failed");
                    }
                    last_error = Some(text);
                    backoff
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown.cancelled() => return Ok(()),
            }
            lasting.backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's life. Returns Ok only on shutdown.
    async fn session(&self, lasting: &mut Lasting) -> Result<(), IngestError> {
        let cfg = &self.cfg;
        let mut s = tokio::select! {
            r = imap_login::connect(cfg) => r?,
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
        lasting.backoff = Duration::from_secs(1);

        loop {
            self.status.set_state(&cfg.name, MailboxState::Fetching);
            let retry_soon = self
                .drain(&mut s, validity, server, &mut lasting.undelivered)
                .await?;
            self.status.fetched(&cfg.name);
            self.status.set_state(&cfg.name, MailboxState::Idle);
            lasting.store_failures = 0;
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
        undelivered: &mut Undelivered,
    ) -> Result<bool, IngestError> {
        let cfg = &self.cfg;
        if crate::daemon::fault::injected_store_fault("mailbox") {
            return Err(StoreError::Aborted(
                "the store call failed on purpose (DESKGATE_TEST_FAULT)".into(),
            )
            .into());
        }
        let store = self.engine.store().clone();
        let name = cfg.name.clone();
        let stored = blocking(move || store.checkpoint(&name)).await?;
        let mut last_uid = match stored {
            Some(cp) if cp.uid_validity == validity => cp.last_uid,
            Some(cp) => {
                warn!(mailbox = %cfg.name, old = cp.uid_validity, new = validity,
                    "UIDVALIDITY changed: rescanning the folder (dedupe keeps it exactly-once)");
                undelivered.clear();
                0
            }
            None => 0,
        };
        loop {
            let Some(mut pass) = self.search_new(s, last_uid).await? else {
                self.gauges.set_waiting(&cfg.name, 0);
                return Ok(false);
            };
            self.gauges.set_waiting(&cfg.name, pass.uids.len() as u64);
            undelivered.start_pass(&pass.uids);
            // Processed, or given up: what the checkpoint may pass. A subset
            // of `pass.uids` (start_pass dropped given-up UIDs no longer listed).
            let mut done = undelivered.given_up().clone();
            // Pipelined: while batch k is committed on a blocking thread,
            // batch k+1 is fetched and parsed (or, with none left, newer mail
            // is searched for), batch k-1 is flushed and then marked
            // processed, so neither the IMAP round trips nor the disk nor the
            // parser stand in the way of the next commit.
            let mut in_flight: Option<InFlight> = None;
            let mut unflushed: Option<Committed> = None;
            loop {
                let busy = in_flight.is_some() || unflushed.is_some();
                let (fetched, durable) = tokio::join!(self.fetch_next(s, &mut pass, busy), async {
                    match unflushed.take() {
                        Some(c) => Some(self.make_durable(c).await),
                        None => None,
                    }
                });
                let (fetched, durable) = match (fetched, durable.transpose()) {
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
                if let Some(fetched) = &fetched {
                    done.extend(self.give_up(undelivered, fetched));
                }
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
                    let left = pass.uids.len().saturating_sub(done.len());
                    self.gauges.set_waiting(&cfg.name, left as u64);
                    let cp = checkpoint_after(last_uid, &pass.uids, &done);
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
            let left = pass.uids.len().saturating_sub(done.len());
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
        let sorted = sort_fetched(uids, fetches.iter().map(|f| (f.uid, f.body())));
        let incomplete = sorted.incomplete;
        let mails: Vec<(u32, Vec<u8>)> = sorted
            .mails
            .into_iter()
            .map(|(uid, body)| (uid, body.to_vec()))
            .collect();
        if mails.len() < uids.len() {
            // Not processed, so the checkpoint stays below them and they are
            // fetched again; a mail expunged meanwhile is simply not found then.
            warn!(mailbox = %cfg.name, asked = uids.len(), got = mails.len(), incomplete,
                "the server's FETCH answer lacked some mails' UID or body; they are fetched again later");
        }
        Ok(Fetched {
            mails,
            missing: sorted.missing,
            fetch: started.elapsed(),
        })
    }

    /// Counts the mails a FETCH answer lacked; one missing
    /// [`GIVE_UP_PASSES`] passes in a row is passed by the checkpoint,
    /// said once at WARN and counted on the status line. Returns the UIDs
    /// given up just now.
    fn give_up(&self, undelivered: &mut Undelivered, fetched: &Fetched) -> Vec<u32> {
        let newly = undelivered.record(fetched.mails.iter().map(|(u, _)| *u), &fetched.missing);
        for uid in &newly {
            warn!(mailbox = %self.cfg.name, folder = %self.cfg.folder, uid,
                "the server lists this mail but did not deliver it in {GIVE_UP_PASSES} passes in a row; \
                 passing it by so later mail is not held back (it stays on the server, unprocessed)");
        }
        self.gauges.add_skipped(newly.len() as u64);
        newly
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
        // A mail that became no ticket may still have queued an answer of
        // its own (a rule's rejection, the command list, #next): a spare
        // round of the sender costs less than a minute's wait for it.
        let answered = outcomes
            .iter()
            .any(|(_, o)| matches!(o, crate::desk::outcome::Outcome::Ignored { .. }));
        if queued > 0 || answered {
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
    fn a_store_that_keeps_failing_ends_the_task_a_good_pass_forgives() {
        let store = || IngestError::Store(StoreError::Aborted("disk full".into()));
        let net = || {
            IngestError::Imap(ImapError::Closed {
                what: "poll for new mail".into(),
            })
        };
        let mut failed = 0;
        for _ in 0..MAX_STORE_FAILURES - 1 {
            assert!(judge(&mut failed, "help", &store()).is_ok());
        }
        // Network trouble neither counts nor forgives.
        assert!(judge(&mut failed, "help", &net()).is_ok());
        assert_eq!(failed, MAX_STORE_FAILURES - 1);
        let waits: Vec<u64> = (1..MAX_STORE_FAILURES)
            .map(|n| store_retry_delay(n).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8]);
        assert_eq!(store_retry_delay(40), MAX_BACKOFF);
        let e = judge(&mut failed, "help", &store()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot go on with mailbox help: the store failed 5 times in a row, the last time with: cannot make ingested mail durable: transaction aborted: disk full"
        );
    }
}
