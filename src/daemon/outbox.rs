//! The sender task: delivers committed outbox entries over SMTP, with retry
//! and exponential backoff, and records each delivery or failure on its ticket.
//!
//! An entry leaves the outbox only in the transaction that records its
//! delivery. A crash between the SMTP server's "250 OK" and that commit sends
//! the mail again on restart, byte for byte, with the same Message-ID.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use thiserror::Error;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{OutboxConfig, SmtpConfig, TlsMode};
use crate::engine::clock::Clock;
use crate::store::records::{Delivery, Event, EventKind, OutboxEntry};
use crate::store::{Store, StoreError, Tx, TxResult};

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

pub type SmtpTransport = AsyncSmtpTransport<Tokio1Executor>;

pub fn transport(cfg: &SmtpConfig) -> Result<SmtpTransport, OutboxError> {
    let setup = |source| OutboxError::Setup {
        host: cfg.host.clone(),
        source,
    };
    let mut b = SmtpTransport::builder_dangerous(cfg.host.as_str())
        .port(cfg.port)
        .timeout(Some(cfg.timeout))
        .pool_config(
            PoolConfig::new()
                .max_size(8)
                .idle_timeout(Duration::from_secs(30)),
        );
    b = match cfg.tls {
        TlsMode::None => b.tls(Tls::None),
        TlsMode::Implicit => b.tls(Tls::Wrapper(
            TlsParameters::new(cfg.host.clone()).map_err(setup)?,
        )),
        TlsMode::Starttls => b.tls(Tls::Required(
            TlsParameters::new(cfg.host.clone()).map_err(setup)?,
        )),
    };
    if let Some((user, pass)) = &cfg.credentials {
        b = b.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    Ok(b.build())
}

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

/// How a single attempt ended.
enum Attempt {
    Sent,
    Transient(String),
    Permanent(String),
}

/// Delay before retry number `attempts` (1-based): doubling from `initial`, capped.
pub fn backoff(cfg: &OutboxConfig, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
    cfg.retry_initial.saturating_mul(factor).min(cfg.retry_max)
}

impl OutboxSender {
    pub async fn run(self) {
        loop {
            let next = match self.round().await {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "outbox round failed");
                    Some(self.clock.now() + chrono::Duration::seconds(5))
                }
            };
            if self.shutdown.is_cancelled() {
                return;
            }
            let sleep = next
                .map(|t| (t - self.clock.now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(60));
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

    /// Sends everything due now; returns when the next entry falls due.
    async fn round(&self) -> Result<Option<DateTime<Utc>>, OutboxError> {
        self.backlog.wait_idle().await;
        let now = self.clock.now();
        let (due, next) = self.store.due_outbox(now, 256)?;
        if due.is_empty() {
            return Ok(next);
        }
        // Only mail whose commit is on disk leaves: after a crash between
        // sending and the commit reaching disk, the mail would be processed
        // again and its acknowledgement sent twice.
        self.store.flush().await?;
        let results: Vec<(OutboxEntry, Attempt)> = futures::stream::iter(due)
            .map(|e| async move {
                let a = self.attempt(&e).await;
                (e, a)
            })
            .buffer_unordered(self.cfg.concurrency)
            .collect()
            .await;
        self.record(&results)?;
        self.store.flush().await?;
        Ok(Some(self.clock.now()))
    }

    async fn attempt(&self, e: &OutboxEntry) -> Attempt {
        let to: Vec<lettre::Address> = e
            .recipients
            .iter()
            .filter_map(|r| r.as_str().parse().ok())
            .collect();
        let from = e.envelope_from.as_str().parse().ok();
        let envelope = match Envelope::new(from, to) {
            Ok(env) => env,
            Err(err) => return Attempt::Permanent(format!("bad envelope: {err}")),
        };
        let raw = match e.formatted() {
            Ok(raw) => raw,
            Err(err) => return Attempt::Permanent(format!("cannot format the mail: {err}")),
        };
        match self.transport.send_raw(&envelope, raw.as_bytes()).await {
            Ok(_) => Attempt::Sent,
            Err(err) if err.is_permanent() => Attempt::Permanent(err.to_string()),
            Err(err) => Attempt::Transient(err.to_string()),
        }
    }

    /// Records a round's results in one transaction (one commit per round,
    /// not per mail, keeps the sender from starving ingest of store time).
    fn record(&self, results: &[(OutboxEntry, Attempt)]) -> Result<(), OutboxError> {
        let now = self.clock.now();
        for (entry, attempt) in results {
            let attempts = entry.attempts + 1;
            match attempt {
                Attempt::Sent => {
                    info!(id = entry.id, message_id = %entry.message_id, attempts, "delivered")
                }
                Attempt::Transient(err) => {
                    warn!(id = entry.id, attempts, error = %err, "delivery failed, will retry")
                }
                Attempt::Permanent(err) => {
                    warn!(id = entry.id, attempts, error = %err, "delivery failed permanently")
                }
            }
        }
        self.store.transact(|tx| {
            for (entry, attempt) in results {
                self.record_one(tx, entry, attempt, now)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn record_one(
        &self,
        tx: &Tx<'_>,
        entry: &OutboxEntry,
        attempt: &Attempt,
        now: DateTime<Utc>,
    ) -> TxResult<()> {
        let attempts = entry.attempts + 1;
        // The entry may have been changed meanwhile (e.g. by an admin); act on the stored one.
        let Some(stored) = tx.outbox_entry(entry.id)? else {
            return Ok(());
        };
        let mut e = stored.clone();
        e.attempts = attempts;
        let ticket_event = match attempt {
            Attempt::Sent => {
                tx.remove_outbox(&stored)?;
                tx.put_delivery(&Delivery {
                    outbox_id: e.id,
                    ticket: e.ticket,
                    message_id: e.message_id.clone(),
                    recipients: e.recipients.clone(),
                    delivered_at: now,
                    queued_at: e.created_at,
                    attempts,
                })?;
                Some(EventKind::MailDelivered {
                    outbox_id: e.id,
                    message_id: e.message_id.clone(),
                    attempts,
                })
            }
            Attempt::Transient(err) if attempts < self.cfg.max_attempts => {
                e.last_error = Some(err.clone());
                e.next_attempt_at = now
                    + chrono::Duration::from_std(backoff(&self.cfg, attempts)).unwrap_or_default();
                tx.update_outbox(&stored, &e)?;
                None
            }
            Attempt::Transient(err) | Attempt::Permanent(err) => {
                e.last_error = Some(err.clone());
                e.failed = true;
                tx.update_outbox(&stored, &e)?;
                Some(EventKind::MailFailed {
                    outbox_id: e.id,
                    message_id: e.message_id.clone(),
                    error: err.clone(),
                    attempts,
                })
            }
        };
        if let (Some(kind), Some(id)) = (ticket_event, e.ticket) {
            if let Some(mut t) = tx.ticket(id)? {
                tx.add_event(
                    &mut t,
                    &Event {
                        at: now,
                        actor: "deskgate".into(),
                        kind,
                    },
                )?;
                tx.put_ticket(&t)?;
            }
        }
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
}
