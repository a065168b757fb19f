//! Who goes first when the machine is busy: during a bulk backlog (a
//! reconnect after an outage, a first import), committing tickets beats
//! sending their acknowledgements a few seconds sooner. Mailbox tasks mark a
//! large batch as in progress; the sender waits for it, bounded, so sending
//! never starves. A single new mail is never a backlog: its acknowledgement
//! leaves at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Batches at least this large count as a backlog.
pub const BACKLOG_BATCH: usize = 50;

/// The longest the sender defers to ingest per round.
pub const MAX_DEFER: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Backlog {
    active: AtomicUsize,
    idle: Notify,
    /// Mailboxes logged in right now: the service is ready (systemd's
    /// `READY=1`) once all are, and its status line counts them.
    connected: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// Marks a bulk batch in progress until dropped.
pub struct BulkGuard<'a>(&'a Backlog);

impl Drop for BulkGuard<'_> {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Backlog {
    /// Marks a batch of `size` mails; only large ones hold the sender back.
    pub fn batch(&self, size: usize) -> Option<BulkGuard<'_>> {
        (size >= BACKLOG_BATCH).then(|| {
            self.active.fetch_add(1, Ordering::AcqRel);
            BulkGuard(self)
        })
    }

    /// Waits until no bulk batch runs, or `MAX_DEFER` passed.
    pub async fn wait_idle(&self) {
        let deadline = tokio::time::Instant::now() + MAX_DEFER;
        while self.active.load(Ordering::Acquire) > 0 {
            let notified = self.idle.notified();
            if self.active.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
    }
}

impl Backlog {
    /// A mailbox logged in (`true`) or lost its session (`false`).
    pub fn set_connected(&self, mailbox: &str, up: bool) {
        let mut set = self.connected.lock().unwrap_or_else(|p| p.into_inner());
        if up {
            set.insert(mailbox.to_string());
        } else {
            set.remove(mailbox);
        }
    }

    /// How many mailboxes are logged in now.
    pub fn connected(&self) -> usize {
        self.connected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_batches_never_hold_the_sender() {
        let b = Backlog::default();
        assert!(b.batch(1).is_none());
        let start = std::time::Instant::now();
        b.wait_idle().await;
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bulk_batch_defers_the_sender_at_most_a_second() {
        let b = Backlog::default();
        let _g = b.batch(500).unwrap();
        let start = tokio::time::Instant::now();
        b.wait_idle().await;
        assert!(start.elapsed() >= MAX_DEFER);
    }

    #[tokio::test]
    async fn the_sender_goes_as_soon_as_the_batch_ends() {
        let b = std::sync::Arc::new(Backlog::default());
        let g = b.batch(500).unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.wait_idle().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(g);
        tokio::time::timeout(Duration::from_millis(500), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
