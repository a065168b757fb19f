//! What `deskgate status` answers about a running daemon (filled in by the
//! daemon's tasks, see `daemon::status`; defined here so the control
//! protocol in `queries` can carry it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxState {
    /// Not logged in yet, or reconnecting.
    Connecting,
    /// Logged in, waiting for mail (IDLE or between polls).
    Idle,
    /// Fetching and committing mail.
    Fetching,
    /// The last session failed; retrying after a pause.
    Failing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailboxStatus {
    pub name: String,
    pub state: MailboxState,
    pub since: DateTime<Utc>,
    pub last_fetch: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Mail on the server past the checkpoint (as of the last pass; filled
    /// in from the status line's gauges when asked).
    pub waiting: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub mailboxes: Vec<MailboxStatus>,
    pub outbox_pending: usize,
    pub outbox_failed: usize,
    /// When the oldest entry still waiting to be sent was queued.
    pub outbox_oldest: Option<DateTime<Utc>>,
    pub timers_last_run: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
}
