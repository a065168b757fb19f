//! The sender task: delivers committed outbox entries over SMTP, with retry
//! and exponential backoff, and records each delivery or failure on its ticket.
//!
//! An entry leaves the outbox only in the transaction that records its
//! delivery. A crash between the SMTP server's "250 OK" and that commit sends
//! the mail again on restart, byte for byte, with the same Message-ID. So
//! results are recorded and flushed in chunks no larger than the number of
//! connections as they come in, and sending runs at most one chunk ahead:
//! a crash re-sends only the mails in flight, never a whole round.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lettre::address::Envelope;
use thiserror::Error;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{OutboxConfig, SmtpConfig, TlsMode};
use crate::engine::clock::Clock;
use crate::mail::address::EmailAddress;
use crate::store::records::{Delivery, Event, EventKind, OutboxEntry};
use crate::store::{Store, StoreError, Tx, TxResult};
use smtp::SendError;

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

mod smtp;

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

/// Mail that fell due this recently goes ahead of a backlog. Rounds are
/// short (16 mails per connection), so a fresh mail waits at most for the
/// rest of the current one.
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
        // Only mail whose commit is on disk leaves: after a crash between
        // sending and the commit reaching disk, the mail would be processed
        // again and its acknowledgement sent twice.
        self.store.flush().await?;
        let chunk = self.cfg.concurrency.max(1);
        // The channel holds one chunk: sending runs ahead of recording by at
        // most that, so a crash re-sends at most the mails in flight.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(OutboxEntry, Attempt)>(chunk);
        let send = async move {
            let mut results = futures::stream::iter(due)
                .map(|e| async move {
                    let a = self.attempt(&e).await;
                    (e, a)
                })
                .buffer_unordered(chunk);
            while let Some(r) = results.next().await {
                if tx.send(r).await.is_err() {
                    break;
                }
            }
        };
        let record = async {
            let mut buf = Vec::with_capacity(chunk);
            let mut down = false;
            while rx.recv_many(&mut buf, chunk).await > 0 {
                let results = std::mem::take(&mut buf);
                down |= results
                    .iter()
                    .any(|(_, a)| matches!(a, Attempt::Unreachable(_)));
                self.record(results).await?;
            }
            Ok::<bool, OutboxError>(down)
        };
        let ((), down) = tokio::join!(send, record);
        if down? {
            *unreachable = true;
        }
        Ok(Some(self.clock.now()))
    }

    async fn attempt(&self, e: &OutboxEntry) -> Attempt {
        let (envelope, refused) = match envelope_of(e) {
            Ok(v) => v,
            Err(err) => return Attempt::Permanent(err),
        };
        let raw = match e.formatted() {
            Ok(raw) => raw,
            Err(err) => return Attempt::Permanent(format!("cannot format the mail: {err}")),
        };
        match self.transport.send(&envelope, raw.as_bytes()).await {
            Ok(()) => Attempt::Sent { refused },
            Err(SendError::Smtp(err)) if err.is_permanent() => Attempt::Permanent(err.to_string()),
            Err(SendError::Smtp(err)) if err.is_transient() => Attempt::Transient(err.to_string()),
            Err(err) => Attempt::Unreachable(err.to_string()),
        }
    }

    /// Records one chunk of results and makes it durable before more mail
    /// of the round is handed over.
    async fn record(&self, results: Vec<(OutboxEntry, Attempt)>) -> Result<(), OutboxError> {
        let now = self.clock.now();
        for (entry, attempt) in &results {
            let attempts = entry.attempts + 1;
            match attempt {
                Attempt::Sent { refused } => {
                    info!(id = entry.id, ticket = ?entry.ticket, message_id = %entry.message_id, attempts, "delivered");
                    for (r, why) in refused {
                        warn!(id = entry.id, recipient = %r, error = %why, "recipient refused");
                    }
                }
                Attempt::Transient(err) | Attempt::Unreachable(err) => {
                    warn!(id = entry.id, attempts, error = %err, "delivery failed, will retry")
                }
                Attempt::Permanent(err) => {
                    warn!(id = entry.id, attempts, error = %err, "delivery failed permanently")
                }
            }
        }
        let cfg = self.cfg.clone();
        self.blocking(move |s| record_chunk(s, &cfg, &results, now))
            .await?;
        self.store.flush().await?;
        Ok(())
    }
}

/// Records a chunk in one transaction; if that fails, each result alone, and
/// a result whose ticket cannot be written is recorded without its ticket
/// event: one broken record never undoes the others, so mail already handed
/// to SMTP is not sent again.
fn record_chunk(
    store: &Store,
    cfg: &OutboxConfig,
    results: &[(OutboxEntry, Attempt)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let all = store.transact(|tx| {
        for (entry, attempt) in results {
            record_one(tx, cfg, entry, attempt, now, true)?;
        }
        Ok(())
    });
    let Err(first) = all else {
        return Ok(());
    };
    warn!(error = %first, "cannot record a chunk of deliveries at once; recording each alone");
    for (entry, attempt) in results {
        if let Err(e) = store.transact(|tx| record_one(tx, cfg, entry, attempt, now, true)) {
            warn!(id = entry.id, error = %e, "cannot record the delivery on its ticket; recording it without");
            store.transact(|tx| record_one(tx, cfg, entry, attempt, now, false))?;
        }
    }
    Ok(())
}

/// The stored entry to act on: it may have been changed meanwhile (e.g. by
/// an admin). One that no longer decodes is replaced by the one that was sent.
fn stored_entry(tx: &Tx<'_>, entry: &OutboxEntry, strict: bool) -> TxResult<Option<OutboxEntry>> {
    match tx.outbox_entry(entry.id) {
        Err(_) if !strict => Ok(Some(entry.clone())),
        other => other,
    }
}

/// Records one result; with `on_ticket` false, the ticket event is left out
/// (its ticket could not be written).
fn record_one(
    tx: &Tx<'_>,
    cfg: &OutboxConfig,
    entry: &OutboxEntry,
    attempt: &Attempt,
    now: DateTime<Utc>,
    on_ticket: bool,
) -> TxResult<()> {
    let attempts = entry.attempts + 1;
    let Some(stored) = stored_entry(tx, entry, on_ticket)? else {
        return Ok(());
    };
    let mut e = stored.clone();
    e.attempts = attempts;
    let mut events = Vec::new();
    match attempt {
        Attempt::Sent { refused } => {
            tx.remove_outbox(&stored)?;
            let refused_addr = |r: &EmailAddress| refused.iter().any(|(x, _)| x == r);
            tx.put_delivery(&Delivery {
                outbox_id: e.id,
                ticket: e.ticket,
                message_id: e.message_id.clone(),
                recipients: e
                    .recipients
                    .iter()
                    .filter(|r| !refused_addr(r))
                    .cloned()
                    .collect(),
                delivered_at: now,
                queued_at: e.created_at,
                attempts,
            })?;
            events.push(EventKind::MailDelivered {
                outbox_id: e.id,
                message_id: e.message_id.clone(),
                attempts,
            });
            for (r, why) in refused {
                events.push(EventKind::MailFailed {
                    outbox_id: e.id,
                    message_id: e.message_id.clone(),
                    error: format!("not sent to {r}: the address was refused ({why})"),
                    attempts,
                });
            }
        }
        Attempt::Transient(err) | Attempt::Unreachable(err) if attempts < cfg.max_attempts => {
            e.last_error = Some(err.clone());
            e.next_attempt_at =
                now + chrono::Duration::from_std(backoff(cfg, attempts)).unwrap_or_default();
            tx.update_outbox(&stored, &e)?;
        }
        Attempt::Transient(err) | Attempt::Unreachable(err) | Attempt::Permanent(err) => {
            e.last_error = Some(err.clone());
            e.failed = true;
            tx.update_outbox(&stored, &e)?;
            events.push(EventKind::MailFailed {
                outbox_id: e.id,
                message_id: e.message_id.clone(),
                error: err.clone(),
                attempts,
            });
        }
    }
    let Some(id) = e.ticket.filter(|_| on_ticket && !events.is_empty()) else {
        return Ok(());
    };
    if let Some(mut t) = tx.ticket(id)? {
        for kind in events {
            tx.add_event(
                &mut t,
                &Event {
                    at: now,
                    actor: "deskgate".into(),
                    kind,
                },
            )?;
        }
        tx.put_ticket(&t)?;
    }
    Ok(())
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
        let results: Vec<(OutboxEntry, Attempt)> = entries
            .iter()
            .map(|e| (e.clone(), Attempt::Sent { refused: vec![] }))
            .collect();
        let _ = record_chunk(&store, &cfg(), &results, chrono::Utc::now());
        // All three left: none may be sent again, whatever the ticket's state.
        assert_eq!(store.delivery_count(), 3);
        assert!(store.outbox().unwrap().is_empty());
    }
}
