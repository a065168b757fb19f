//! The sender task: delivers committed outbox entries over SMTP, with retry
//! and exponential backoff, and records each delivery or failure on its ticket.
//!
//! An entry leaves the outbox only in the transaction that records its
//! delivery. A crash between the SMTP server's "250 OK" and that commit sends
//! the mail again on restart, byte for byte, with the same Message-ID. So
//! mail goes in chunks no larger than the number of connections, and each
//! body goes under a durable "possibly sent" mark (see `store::sending`):
//! a crash leaves at most one chunk in doubt, mail in doubt once is sent
//! again first, and mail in doubt twice is held for an admin, so no mail
//! goes out more than twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::address::Envelope;
use thiserror::Error;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{OutboxConfig, SmtpConfig, TlsMode};
use crate::engine::clock::Clock;
use crate::mail::address::EmailAddress;
use crate::store::records::OutboxEntry;
use crate::store::{Store, StoreError};
use smtp::{FinishError, SendError};

#[derive(Debug, Error)]
pub enum OutboxError {
    #[error("cannot set up SMTP to {host}: {source}")]
    Setup {
        host: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("cannot record delivery: {0}")]
    Store(#[from] StoreError),
}

mod record;
mod smtp;

use record::{record_chunk, Outcome};

pub type SmtpTransport = smtp::Pool;

/// The SMTP connections the sender uses: at most `outbox.concurrency` kept
/// open between mails (see `smtp`).
pub fn transport(cfg: &SmtpConfig) -> Result<SmtpTransport, OutboxError> {
    if cfg.tls != TlsMode::None {
        // Checked here once, so a bad host name fails at start, not per mail.
        crate::daemon::tls::starttls_parameters(&cfg.host, &cfg.tls_trust).map_err(|source| {
            OutboxError::Setup {
                host: cfg.host.clone(),
                source,
            }
        })?;
    }
    Ok(smtp::Pool::new(cfg, MAX_CONNECTIONS))
}

/// Idle connections kept open (the config allows up to 64 parallel sends).
const MAX_CONNECTIONS: usize = 64;

pub struct OutboxSender {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub transport: SmtpTransport,
    pub cfg: OutboxConfig,
    pub wake: Arc<Notify>,
    /// Bulk ingest goes first (bounded): see `backlog`.
    pub backlog: Arc<crate::daemon::backlog::Backlog>,
    pub shutdown: CancellationToken,
}

/// At most this many entries are read per round; they are recorded in
/// chunks as they finish, not at the end of the round.
const ROUND: usize = 256;

/// Mail that fell due this recently goes ahead of a backlog: at the start
/// of a round, and between the chunks of a round (so a fresh mail waits for
/// the chunk in flight, not for the rest of the round).
const FRESH_WINDOW: Duration = Duration::from_secs(2);

/// While the SMTP server does not answer, how often it is asked again.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// How a single attempt ended.
enum Attempt {
    /// Accepted by the server for every recipient but `refused` (addresses
    /// lettre would not put in an envelope, with why).
    Sent {
        refused: Vec<(EmailAddress, String)>,
    },
    /// The server answered 4xx: try this mail again later.
    Transient(String),
    /// The server did not answer (connection refused, timeout, TLS): the
    /// outage, not the mail, is the problem.
    Unreachable(String),
    Permanent(String),
    /// Not handed over: it may have reached its recipients twice already.
    Held,
}

/// One mail of a chunk after MAIL, RCPT and DATA.
enum Opened<'p> {
    /// The server waits for the body.
    Ready {
        entry: OutboxEntry,
        ready: Box<smtp::Ready<'p>>,
        raw: String,
        refused: Vec<(EmailAddress, String)>,
    },
    /// Over before the body: nothing went.
    Done(Outcome),
}

/// Delay before retry number `attempts` (1-based): doubling from `initial`, capped.
pub fn backoff(cfg: &OutboxConfig, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
    cfg.retry_initial.saturating_mul(factor).min(cfg.retry_max)
}

/// What one round sends: first the mail that fell due in the last
/// `FRESH_WINDOW` (a new mail's acknowledgement, a relayed reply, a
/// notification: someone is waiting for it), up to two per connection; then
/// the oldest due, so a backlog drains in order beside them and never starves.
fn round_entries(
    store: &Store,
    now: DateTime<Utc>,
    concurrency: usize,
) -> Result<(Vec<OutboxEntry>, Option<DateTime<Utc>>), StoreError> {
    let size = (concurrency * 16).clamp(16, ROUND);
    let since = now - chrono::Duration::from_std(FRESH_WINDOW).unwrap_or_default();
    let mut round = store.due_outbox_since(since, now, concurrency * 2)?;
    let (oldest, next) = store.due_outbox(now, size)?;
    let fresh: std::collections::HashSet<u64> = round.iter().map(|e| e.id).collect();
    round.extend(oldest.into_iter().filter(|e| !fresh.contains(&e.id)));
    round.truncate(size.max(fresh.len()));
    Ok((round, next))
}

/// The SMTP envelope of an entry, and the recipients lettre refuses (each
/// with why): those are recorded as failed, never dropped silently.
fn envelope_of(e: &OutboxEntry) -> Result<(Envelope, Vec<(EmailAddress, String)>), String> {
    let mut to = Vec::new();
    let mut refused = Vec::new();
    for r in &e.recipients {
        match r.as_str().parse::<lettre::Address>() {
            Ok(a) => to.push(a),
            Err(err) => refused.push((r.clone(), err.to_string())),
        }
    }
    if to.is_empty() {
        let why: Vec<String> = refused
            .iter()
            .map(|(r, why)| format!("{r}: {why}"))
            .collect();
        return Err(format!("no recipient could be used ({})", why.join("; ")));
    }
    let from = e
        .envelope_from
        .as_str()
        .parse()
        .map_err(|err| format!("sender {}: {err}", e.envelope_from))?;
    let env = Envelope::new(Some(from), to).map_err(|err| format!("bad envelope: {err}"))?;
    Ok((env, refused))
}

impl OutboxSender {
    pub async fn run(self) {
        // After a restart the server may have been down a while: check it
        // before trusting the backoff times in the store.
        let mut unreachable = true;
        if let Err(e) = self.resend_in_doubt().await {
            warn!(error = %e, "cannot re-send the mail left in doubt; the rounds will");
        }
        loop {
            let next = match self.round(&mut unreachable).await {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "outbox round failed");
                    Some(self.clock.now() + chrono::Duration::seconds(5))
                }
            };
            if self.shutdown.is_cancelled() {
                return;
            }
            let mut sleep = next
                .map(|t| (t - self.clock.now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(60));
            if unreachable {
                sleep = sleep.min(PROBE_EVERY);
            }
            if sleep.is_zero() {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Runs a blocking store call off the async workers.
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, OutboxError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Aborted(format!("the outbox store task failed: {e}")))?
            .map_err(OutboxError::from)
    }

    /// Once the server answers again after an outage, everything waiting
    /// out its backoff is due at once: the backlog leaves within seconds,
    /// not each mail after its own delay (up to `retry_max`).
    async fn recover(&self, unreachable: &mut bool) -> Result<(), OutboxError> {
        if !*unreachable || !self.transport.answers().await {
            return Ok(());
        }
        *unreachable = false;
        let now = self.clock.now();
        let n = self.blocking(move |s| s.retry_waiting_outbox(now)).await?;
        if n > 0 {
            info!(
                entries = n,
                "SMTP server answers again; sending the waiting mail now"
            );
        }
        Ok(())
    }

    /// Sends everything due now; returns when the next entry falls due.
    async fn round(&self, unreachable: &mut bool) -> Result<Option<DateTime<Utc>>, OutboxError> {
        self.backlog.wait_idle().await;
        self.recover(unreachable).await?;
        let now = self.clock.now();
        let conc = self.cfg.concurrency;
        let (due, next) = self.blocking(move |s| round_entries(s, now, conc)).await?;
        if due.is_empty() {
            return Ok(next);
        }
        if self.send(due, self.cfg.concurrency.max(1), now).await? {
            *unreachable = true;
        }
        Ok(Some(self.clock.now()))
    }

    /// Mail a previous run may have handed over without recording the
    /// answer goes first, one at a time: the fewer in flight, the fewer a
    /// second crash leaves uncertain. (An entry that may have gone out
    /// twice is held instead.)
    async fn resend_in_doubt(&self) -> Result<(), OutboxError> {
        let doubtful = self.blocking(|s| s.in_doubt_outbox()).await?;
        if doubtful.is_empty() {
            return Ok(());
        }
        info!(
            entries = doubtful.len(),
            "re-sending the mail that was being handed to SMTP when deskgate stopped"
        );
        for (entry, _) in doubtful {
            if self.shutdown.is_cancelled() {
                break;
            }
            self.send(vec![entry], 1, self.clock.now()).await?;
        }
        Ok(())
    }

    /// Sends `due` in chunks of `chunk` connections; returns whether the
    /// server stopped answering. Each chunk's "possibly sent" marks are
    /// written and flushed, with the previous chunk's results, in one
    /// transaction just before the bodies go (see `store::sending`): a
    /// crash leaves at most one chunk in doubt, and a mail already in
    /// doubt twice is held, never handed over a third time.
    ///
    /// `read_at` is when `due` was read: mail falling due after it joins the
    /// next chunk (see `take_fresh`).
    async fn send(
        &self,
        due: Vec<OutboxEntry>,
        chunk: usize,
        read_at: DateTime<Utc>,
    ) -> Result<bool, OutboxError> {
        // Only mail whose commit is on disk leaves: after a crash between
        // sending and the commit reaching disk, the mail would be processed
        // again and its acknowledgement sent twice.
        self.store.flush().await?;
        let mut down = false;
        let mut done: Vec<Outcome> = Vec::new();
        let mut taken: std::collections::HashSet<u64> = due.iter().map(|e| e.id).collect();
        let mut due: std::collections::VecDeque<OutboxEntry> = due.into();
        // Bounded, as at the start of a round: a burst of new mail cannot
        // keep a round (and the mail it holds) going for ever.
        let fresh_cap = taken.len() + chunk * 2;
        let mut first = true;
        while !due.is_empty() {
            if !std::mem::take(&mut first) && taken.len() < fresh_cap {
                self.take_fresh(&mut due, &mut taken, chunk, read_at)
                    .await?;
            }
            let part: Vec<OutboxEntry> = due.drain(..chunk.min(due.len())).collect();
            let ids: Vec<u64> = part.iter().map(|e| e.id).collect();
            let doubt = self.blocking(move |s| s.in_doubt_of(&ids)).await?;
            let opened = futures::future::join_all(
                part.into_iter().zip(doubt).map(|(e, d)| self.open(e, d)),
            )
            .await;
            let mut ready = Vec::new();
            for o in opened {
                match o {
                    Opened::Ready {
                        entry,
                        ready: r,
                        raw,
                        refused,
                    } => ready.push((entry, r, raw, refused)),
                    Opened::Done(outcome) => done.push(outcome),
                }
            }
            let marks: Vec<u64> = ready.iter().map(|(e, ..)| e.id).collect();
            down |= Self::any_down(&done);
            if let Err(e) = self.record(std::mem::take(&mut done), marks).await {
                // Unmarked: their bodies must not go.
                for (_, r, _, _) in ready {
                    r.cancel().await;
                }
                return Err(e);
            }
            done = futures::future::join_all(
                ready
                    .into_iter()
                    .map(|(entry, r, raw, refused)| Self::finish(entry, r, raw, refused)),
            )
            .await;
        }
        down |= Self::any_down(&done);
        self.record(done, Vec::new()).await?;
        Ok(down)
    }

    /// Mail that fell due since the round began (a new mail's
    /// acknowledgement) goes into the next chunk: it waits for the chunk in
    /// flight, not for the rest of the round.
    async fn take_fresh(
        &self,
        due: &mut std::collections::VecDeque<OutboxEntry>,
        taken: &mut std::collections::HashSet<u64>,
        chunk: usize,
        since: DateTime<Utc>,
    ) -> Result<(), OutboxError> {
        // Only what fell due after the round was read can be new to it;
        // newest first, so a backlog queued meanwhile does not hide it.
        let now = self.clock.now();
        let since = since.max(now - chrono::Duration::from_std(FRESH_WINDOW).unwrap_or_default());
        let limit = chunk * 2;
        let fresh = self
            .blocking(move |s| s.newest_due_outbox(since, now, limit))
            .await?;
        let new: Vec<OutboxEntry> = fresh
            .into_iter()
            .filter(|e| taken.insert(e.id))
            .take(chunk)
            .collect();
        for e in new {
            due.push_front(e);
        }
        Ok(())
    }

    fn any_down(results: &[Outcome]) -> bool {
        results
            .iter()
            .any(|r| matches!(r.attempt, Attempt::Unreachable(_)))
    }

    /// MAIL, RCPT and DATA for one entry, unless it may have gone out twice
    /// already (`in_doubt` copies without an answer).
    async fn open(&self, e: OutboxEntry, in_doubt: u32) -> Opened<'_> {
        let done = |e, a| Opened::Done(Outcome::unmarked(e, a));
        if in_doubt >= 2 {
            return done(e, Attempt::Held);
        }
        debug!(id = e.id, ticket = ?e.ticket, in_doubt, "sending");
        let (envelope, refused) = match envelope_of(&e) {
            Ok(v) => v,
            Err(err) => return done(e, Attempt::Permanent(err)),
        };
        let raw = match e.formatted() {
            Ok(raw) => raw.into_owned(),
            Err(err) => {
                return done(
                    e,
                    Attempt::Permanent(format!("cannot format the mail: {err}")),
                )
            }
        };
        match self.transport.open(&envelope, raw.as_bytes()).await {
            Ok(ready) => Opened::Ready {
                entry: e,
                ready: Box::new(ready),
                raw,
                refused,
            },
            Err(SendError::Smtp(err)) if err.is_permanent() => {
                done(e, Attempt::Permanent(err.to_string()))
            }
            Err(SendError::Smtp(err)) if err.is_transient() => {
                done(e, Attempt::Transient(err.to_string()))
            }
            Err(SendError::Unsupported(why)) => done(e, Attempt::Permanent(why.to_string())),
            Err(err) => done(e, Attempt::Unreachable(err.to_string())),
        }
    }

    /// The body and the final dot, under the mark already on disk.
    async fn finish(
        entry: OutboxEntry,
        ready: Box<smtp::Ready<'_>>,
        raw: String,
        refused: Vec<(EmailAddress, String)>,
    ) -> Outcome {
        let (attempt, uncertain) = match ready.finish(raw.as_bytes()).await {
            Ok(()) => (Attempt::Sent { refused }, false),
            Err(FinishError::Refused(err)) if err.is_permanent() => {
                (Attempt::Permanent(err.to_string()), false)
            }
            Err(FinishError::Refused(err)) => (Attempt::Transient(err.to_string()), false),
            Err(FinishError::Uncertain(why)) => (Attempt::Unreachable(why), true),
        };
        Outcome {
            entry,
            attempt,
            marked: true,
            uncertain,
        }
    }

    /// Records one chunk of results and raises the marks of the next, and
    /// makes that durable before its bodies are handed over.
    async fn record(&self, results: Vec<Outcome>, marks: Vec<u64>) -> Result<(), OutboxError> {
        if results.is_empty() && marks.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        for r in &results {
            let (entry, attempts) = (&r.entry, r.entry.attempts + 1);
            match &r.attempt {
                Attempt::Sent { refused } => {
                    info!(id = entry.id, ticket = ?entry.ticket, message_id = %entry.message_id, attempts, "delivered");
                    for (r, why) in refused {
                        warn!(id = entry.id, recipient = %r, error = %why, "recipient refused");
                    }
                }
                Attempt::Transient(err) | Attempt::Unreachable(err) => {
                    warn!(id = entry.id, attempts, error = %err, uncertain = r.uncertain, "delivery failed, will retry")
                }
                Attempt::Permanent(err) => {
                    warn!(id = entry.id, attempts, error = %err, "delivery failed permanently")
                }
                Attempt::Held => {
                    warn!(id = entry.id, ticket = ?entry.ticket, message_id = %entry.message_id, "delivery uncertain, possibly sent twice: held, not sent again")
                }
            }
        }
        let cfg = self.cfg.clone();
        self.blocking(move |s| record_chunk(s, &cfg, &results, &marks, now))
            .await?;
        self.store.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let cfg = OutboxConfig {
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(60),
            max_attempts: 10,
            concurrency: 1,
        };
        assert_eq!(backoff(&cfg, 1), Duration::from_secs(5));
        assert_eq!(backoff(&cfg, 2), Duration::from_secs(10));
        assert_eq!(backoff(&cfg, 4), Duration::from_secs(40));
        assert_eq!(backoff(&cfg, 5), Duration::from_secs(60));
        assert_eq!(backoff(&cfg, 500), Duration::from_secs(60));
    }

    fn cfg() -> OutboxConfig {
        OutboxConfig {
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(60),
            max_attempts: 10,
            concurrency: 4,
        }
    }

    fn entry(id: u64, ticket: Option<u64>, to: &str) -> OutboxEntry {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        OutboxEntry {
            id,
            ticket,
            kind: "acknowledgement".into(),
            message_id: format!("m{id}@desk.test"),
            envelope_from: crate::mail::address::EmailAddress::parse("help@desk.test").unwrap(),
            recipients: vec![crate::mail::address::EmailAddress::parse(to).unwrap()],
            raw: "Subject: x\r\n\r\nhi\r\n".into(),
            composed: None,
            created_at: at,
            attempts: 0,
            next_attempt_at: at,
            last_error: None,
            failed: false,
        }
    }

    /// A store holding `entries`, where ticket 13's record no longer decodes.
    fn store_with_broken_ticket(dir: &std::path::Path, entries: &[OutboxEntry]) -> Store {
        {
            let s = Store::open(dir).unwrap();
            s.transact(|tx| {
                for e in entries {
                    tx.put_outbox(e)?;
                }
                Ok(())
            })
            .unwrap();
            s.flush_blocking().unwrap();
        }
        {
            // sled lets go of its lock a moment after the store above is dropped.
            let db = (0..250)
                .find_map(|_| {
                    sled::open(dir)
                        .inspect_err(|_| std::thread::sleep(std::time::Duration::from_millis(20)))
                        .ok()
                })
                .unwrap();
            // Table 1 (tickets) of the store's one tree, ticket 13.
            let mut key = vec![1u8];
            key.extend_from_slice(&13u64.to_be_bytes());
            let t = db.open_tree("data").unwrap();
            t.insert(key, b"{not a ticket".to_vec()).unwrap();
            db.flush().unwrap();
        }
        Store::open_when_free(dir)
    }

    #[test]
    fn fresh_mail_goes_ahead_of_a_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let now = t0 + chrono::Duration::seconds(30);
        store
            .transact(|tx| {
                for id in 1..=2000 {
                    tx.put_outbox(&entry(id, None, "old@customer.test"))?;
                }
                let mut fresh = entry(5000, None, "new@customer.test");
                fresh.created_at = now;
                fresh.next_attempt_at = now;
                tx.put_outbox(&fresh)
            })
            .unwrap();
        let (due, _) = round_entries(&store, now, 4).unwrap();
        let first: Vec<u64> = due.iter().take(4).map(|e| e.id).collect();
        assert!(first.contains(&5000), "first of the round: {first:?}");
        assert!(due.len() > 4, "the backlog still goes too");
    }

    #[test]
    fn one_record_that_cannot_be_written_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let entries = [
            entry(1, None, "a@customer.test"),
            entry(2, Some(13), "b@customer.test"),
            entry(3, None, "c@customer.test"),
        ];
        let store = store_with_broken_ticket(dir.path(), &entries);
        let results: Vec<Outcome> = entries
            .iter()
            .map(|e| Outcome::unmarked(e.clone(), Attempt::Sent { refused: vec![] }))
            .collect();
        let _ = record_chunk(&store, &cfg(), &results, &[], chrono::Utc::now());
        // All three left: none may be sent again, whatever the ticket's state.
        assert_eq!(store.delivery_count(), 3);
        assert!(store.outbox().unwrap().is_empty());
    }
}
