//! Telling the service manager the truth (systemd `Type=notify`): `READY=1`
//! only once the store is open and every mailbox has logged in, a `STATUS=`
//! line an admin sees in `systemctl status`, `WATCHDOG=1` from the
//! supervisor's own loop (so it stops when a task has died or the runtime is
//! stuck, and systemd restarts the daemon), and `STOPPING=1`.
//!
//! Without `NOTIFY_SOCKET` (not under systemd, or `Type=simple`) every call
//! is a no-op.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::Instant;
use tracing::debug;

/// What the status line says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    pub mailboxes: usize,
    pub connected: usize,
    pub outbox_pending: usize,
    pub outbox_failed: usize,
    /// Mail on the server past the checkpoints, not yet processed.
    pub waiting: u64,
    /// UIDs the server listed but never delivered, passed by the checkpoint.
    pub skipped: u64,
}

impl Health {
    pub fn all_connected(&self) -> bool {
        self.connected >= self.mailboxes
    }

    pub fn status_line(&self) -> String {
        let mut line = format!(
            "{}/{} mailboxes connected, {} waiting on the server, outbox {} pending, {} failed",
            self.connected, self.mailboxes, self.waiting, self.outbox_pending, self.outbox_failed
        );
        if self.skipped > 0 {
            line.push_str(&format!(
                ", {} undelivered mail{} skipped (see the log)",
                self.skipped,
                if self.skipped == 1 { "" } else { "s" }
            ));
        }
        line
    }
}

/// What the mailbox tasks know that the status line shows, kept up to date
/// from counts each pass has anyway (its UID SEARCH past the checkpoint), so
/// it costs nothing per mail and nothing that grows with history.
#[derive(Debug, Default)]
pub struct Gauges {
    waiting: Mutex<BTreeMap<String, u64>>,
    skipped: AtomicU64,
}

impl Gauges {
    /// `mailbox` has `n` mails on the server not yet processed.
    pub fn set_waiting(&self, mailbox: &str, n: u64) {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        w.insert(mailbox.to_string(), n);
    }

    /// `n` more UIDs were given up (see `mailbox::progress`).
    pub fn add_skipped(&self, n: u64) {
        self.skipped.fetch_add(n, Ordering::Relaxed);
    }

    /// Mail waiting on the server for one mailbox.
    pub fn waiting_of(&self, mailbox: &str) -> u64 {
        let w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        w.get(mailbox).copied().unwrap_or(0)
    }

    /// (waiting, skipped) over all mailboxes.
    pub fn totals(&self) -> (u64, u64) {
        let w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        (w.values().sum(), self.skipped.load(Ordering::Relaxed))
    }
}

pub struct Notifier {
    /// systemd's `WatchdogSec`, when it is on; pinged at half of it.
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
    ready: bool,
    last_status: String,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        Notifier {
            watchdog: sd_notify::watchdog_enabled(),
            last_ping: None,
            ready: false,
            last_status: String::new(),
        }
    }

    /// How often the supervisor should call [`Notifier::tick`].
    pub fn tick_interval(&self) -> Duration {
        let quarter = self.watchdog.map(|w| w / 4).unwrap_or(Duration::MAX);
        quarter.clamp(Duration::from_millis(50), Duration::from_millis(250))
    }

    /// Called from the supervisor's loop while every task is alive: reports
    /// readiness once, a changed status line, and the watchdog ping when due.
    pub fn tick(&mut self, health: &Health) {
        let mut states = Vec::new();
        let status = health.status_line();
        let becomes_ready = !self.ready && health.all_connected();
        if becomes_ready {
            self.ready = true;
            states.push(NotifyState::Ready);
        }
        if becomes_ready || status != self.last_status {
            states.push(NotifyState::Status(&status));
        }
        if let Some(w) = self.watchdog {
            let now = Instant::now();
            if self.last_ping.is_none_or(|t| now - t >= w / 2) {
                self.last_ping = Some(now);
                states.push(NotifyState::Watchdog);
            }
        }
        if !states.is_empty() {
            send(&states);
        }
        self.last_status = status;
    }

    /// The daemon is stopping (`why` goes on the status line).
    pub fn stopping(&self, why: &str) {
        send(&[NotifyState::Stopping, NotifyState::Status(why)]);
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "cannot reach the service manager's notify socket");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_every_mailbox() {
        let mut h = Health {
            mailboxes: 2,
            connected: 1,
            ..Health::default()
        };
        assert!(!h.all_connected());
        h.connected = 2;
        assert!(h.all_connected());
        assert_eq!(
            h.status_line(),
            "2/2 mailboxes connected, 0 waiting on the server, outbox 0 pending, 0 failed"
        );
    }

    #[test]
    fn the_status_line_counts_mail_waiting_on_the_server_and_skipped_uids() {
        let g = Gauges::default();
        g.set_waiting("help", 7);
        g.set_waiting("sales", 5);
        g.set_waiting("help", 3);
        assert_eq!(g.totals(), (8, 0));
        let (waiting, skipped) = g.totals();
        let mut h = Health {
            mailboxes: 2,
            connected: 2,
            outbox_pending: 4,
            waiting,
            skipped,
            ..Health::default()
        };
        assert_eq!(
            h.status_line(),
            "2/2 mailboxes connected, 8 waiting on the server, outbox 4 pending, 0 failed"
        );
        g.add_skipped(1);
        h.skipped = g.totals().1;
        assert!(
            h.status_line()
                .ends_with(", 1 undelivered mail skipped (see the log)"),
            "{}",
            h.status_line()
        );
    }
}
