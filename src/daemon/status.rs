//! What `deskgate status` shows of a running daemon: each mailbox's state
//! (connecting, idle, fetching, failing), its last successful fetch and last
//! error in plain words, the mail waiting on the server; the outbox's depth
//! and the age of its oldest entry; the timer task's last run. The tasks
//! report into [`Status`] as they go (a few map writes per pass, nothing per
//! mail); the control socket reads it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

pub use crate::engine::status_view::{DaemonStatus, MailboxState, MailboxStatus};

/// Shared by the tasks (writers) and the control socket (reader).
#[derive(Debug)]
pub struct Status {
    mailboxes: Mutex<BTreeMap<String, MailboxStatus>>,
    timers_last_run: Mutex<Option<DateTime<Utc>>>,
    pub started_at: DateTime<Utc>,
}

impl Status {
    pub fn new(mailboxes: &[String], now: DateTime<Utc>) -> Status {
        let map = mailboxes
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    MailboxStatus {
                        name: n.clone(),
                        state: MailboxState::Connecting,
                        since: now,
                        last_fetch: None,
                        last_error: None,
                        last_error_at: None,
                        waiting: 0,
                    },
                )
            })
            .collect();
        Status {
            mailboxes: Mutex::new(map),
            timers_last_run: Mutex::new(None),
            started_at: now,
        }
    }

    fn with(&self, mailbox: &str, f: impl FnOnce(&mut MailboxStatus)) {
        let mut m = self.mailboxes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = m.get_mut(mailbox) {
            f(s);
        }
    }

    /// A failing mailbox stays failing while it reconnects: it is healthy
    /// again only once it has logged in.
    pub fn set_state(&self, mailbox: &str, state: MailboxState) {
        let now = Utc::now();
        self.with(mailbox, |s| {
            let retrying = s.state == MailboxState::Failing && state == MailboxState::Connecting;
            if s.state != state && !retrying {
                s.state = state;
                s.since = now;
            }
        });
    }

    /// A pass over the folder finished: everything it found is handled.
    pub fn fetched(&self, mailbox: &str) {
        let now = Utc::now();
        self.with(mailbox, |s| s.last_fetch = Some(now));
    }

    pub fn failed(&self, mailbox: &str, error: &str) {
        let now = Utc::now();
        self.with(mailbox, |s| {
            s.state = MailboxState::Failing;
            s.since = now;
            s.last_error = Some(error.to_string());
            s.last_error_at = Some(now);
        });
    }

    pub fn timers_ran(&self, at: DateTime<Utc>) {
        *self
            .timers_last_run
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    pub fn mailboxes(&self) -> Vec<MailboxStatus> {
        let m = self.mailboxes.lock().unwrap_or_else(|p| p.into_inner());
        m.values().cloned().collect()
    }

    pub fn timers_last_run(&self) -> Option<DateTime<Utc>> {
        *self
            .timers_last_run
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_its_words_until_the_next_one() {
        let s = Status::new(&["help".into()], Utc::now());
        s.set_state("help", MailboxState::Idle);
        s.failed("help", "cannot log in to imap.example.com as help@example.com: the server refused the user name or password");
        s.set_state("help", MailboxState::Connecting);
        let m = &s.mailboxes()[0];
        assert_eq!(
            m.state,
            MailboxState::Failing,
            "still failing while it retries"
        );
        assert!(m.last_error.as_deref().unwrap().contains("refused"));
        s.set_state("help", MailboxState::Idle);
        assert_eq!(s.mailboxes()[0].state, MailboxState::Idle);
        s.fetched("help");
        assert!(s.mailboxes()[0].last_fetch.is_some());
        s.set_state("nobody", MailboxState::Idle); // unknown names are ignored
        assert_eq!(s.mailboxes().len(), 1);
    }
}
