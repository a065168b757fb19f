//! The control protocol's messages: the questions the CLI asks and the
//! answers it gets, the same whether the daemon answers over its socket or
//! the CLI opens the store itself. Answering them is `queries`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::engine::views::SearchHit;
use crate::store::records::{
    Event, IgnoredEntry, MessageRecord, OutboxEntry, QuarantineEntry, Status, Ticket, TicketId,
};
use crate::store::ListFilter;

/// A question the CLI asks; answered by the daemon or straight from the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum Query {
    ListTickets {
        status: Option<Status>,
        /// Only tickets with a breached target that is not met.
        #[serde(default)]
        overdue: bool,
        /// Only tickets with a running target due within this many seconds.
        #[serde(default)]
        due_within_secs: Option<u64>,
        /// At most this many, newest first; `None` for every ticket.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// `tickets list` with its filters (the CLI's form of `ListTickets`).
    ListPage(TicketQuery),
    ShowTicket {
        id: TicketId,
    },
    Outbox,
    Quarantine,
    QuarantineShow {
        id: u64,
    },
    /// A quarantined mail's exact bytes (for `quarantine show --raw`).
    QuarantineRaw {
        id: u64,
    },
    /// Changes the store: processes a quarantined mail again.
    QuarantineRetry {
        id: u64,
    },
    /// Changes the store: sends an outbox entry held as possibly sent twice.
    OutboxRelease {
        id: u64,
    },
    Ignored,
    Stats,
    /// Changes the store: a new reply key; the previous one verifies for
    /// `grace_secs` more (the configured grace when None).
    RotateReplyKey {
        #[serde(default)]
        grace_secs: Option<u64>,
    },
    /// A consistent copy of the whole store, written to `path` by whoever
    /// holds the store (the daemon's user when it runs).
    Backup {
        path: std::path::PathBuf,
    },
    /// One attachment's bytes: `which` is its number in `tickets show` or
    /// its file name.
    Attachment {
        ticket: TicketId,
        which: String,
    },
    /// Groups of tickets created in the last `since_secs` about the same
    /// issue, each of at least `min` tickets, against the period before.
    Recurring {
        since_secs: u64,
        min: usize,
    },
    /// The running daemon's mailboxes, outbox and timers.
    Status,
    /// Load the config again now; only a running daemon answers it (the CLI
    /// waits for the verdict, so `systemctl reload` fails on a broken edit).
    Reload,
    /// Changes the store: removes what `[retention]` lets go (`rules`, sent
    /// by the CLI from the configuration), or with `dry_run` counts it.
    Prune {
        rules: crate::store::retention::Retention,
        dry_run: bool,
    },
    /// Tickets, messages, events and attachments as JSON lines, written to
    /// `path` by whoever holds the store.
    Export {
        path: std::path::PathBuf,
    },
    /// The manager's report over a period (`desk::report`).
    Report {
        spec: crate::desk::report::Spec,
    },
    /// The board: tickets in hand, in lanes (`desk::board`).
    Board {
        #[serde(default)]
        team: Option<String>,
        #[serde(default)]
        agent: Option<String>,
    },
    /// What to work on first (`desk::next`).
    Next {
        #[serde(default)]
        team: Option<String>,
        #[serde(default)]
        agent: Option<String>,
        limit: usize,
    },
    /// Tickets whose subject, requester or message text holds `text`.
    Search {
        text: String,
        limit: usize,
    },
    /// Changes the store: `tickets set|comment|reply|merge|link`, applied
    /// as the same commands as an agent's mail (`desk::steer`).
    Steer(crate::desk::steer::Request),
}

/// Which tickets `tickets list` shows. Status, team, assignee, requester and
/// tag are each a range of the store's list index, intersected when several
/// are given; `since` bounds the ranges; overdue and due-within are checked
/// per ticket read. Most recently updated first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TicketQuery {
    pub status: Option<Status>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    /// An address.
    pub requester: Option<String>,
    pub tag: Option<String>,
    /// Only tickets updated at this time or later.
    pub since: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub due_within_secs: Option<u64>,
    /// At most this many; `None` for every ticket that matches.
    pub limit: Option<usize>,
    /// The `next` of the page before: this page starts below it.
    pub page: Option<String>,
}

impl TicketQuery {
    pub(crate) fn filters(&self) -> Vec<ListFilter> {
        let mut f = Vec::new();
        f.extend(self.status.map(ListFilter::Status));
        f.extend(self.team.clone().map(ListFilter::Team));
        f.extend(self.assignee.clone().map(ListFilter::Assignee));
        f.extend(self.requester.clone().map(ListFilter::Requester));
        f.extend(self.tag.clone().map(ListFilter::Tag));
        f
    }
}

impl Query {
    /// Whether answering may queue mail (the daemon then wakes its sender).
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            Query::QuarantineRetry { .. } | Query::OutboxRelease { .. } | Query::Steer(_)
        )
    }

    /// How long the asker waits for the answer: a backup of a large store
    /// takes a while, everything else is quick.
    pub fn answer_timeout(&self) -> std::time::Duration {
        match self {
            Query::Backup { .. } | Query::Export { .. } | Query::Prune { .. } => {
                std::time::Duration::from_secs(3600)
            }
            _ => std::time::Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    Status {
        status: Box<crate::engine::status_view::DaemonStatus>,
    },
    /// An attachment, hex-encoded (JSON strings carry only text).
    Attachment {
        name: String,
        content_type: String,
        hex: String,
    },
    /// The issues of `since..until`, each with its tickets in the period
    /// before (as long, from `previous_since`), and the issues that went away.
    Recurring {
        clusters: Vec<crate::desk::recurring_compare::ComparedIssue>,
        gone: Vec<crate::desk::recurring_compare::GoneIssue>,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        previous_since: chrono::DateTime<chrono::Utc>,
        tickets_read: usize,
        /// The period held more tickets than one report reads.
        truncated: bool,
    },
    /// The new config is live; `warnings` are its load warnings, `restart`
    /// the changed sections that apply only after a restart.
    Reloaded {
        warnings: Vec<String>,
        restart: Vec<String>,
    },
    BackedUp {
        summary: crate::store::backup::BackupSummary,
    },
    Exported {
        summary: crate::store::export::TransferSummary,
    },
    Pruned {
        summary: crate::store::retention::PruneSummary,
    },
    Tickets {
        tickets: Vec<Ticket>,
        /// More tickets match than the limit let through.
        #[serde(default)]
        more: bool,
        /// With `more`: the `page` that shows the next ones.
        #[serde(default)]
        next: Option<String>,
    },
    Ticket {
        view: Option<Box<TicketView>>,
    },
    Outbox {
        entries: Vec<OutboxSummary>,
    },
    Quarantine {
        entries: Vec<QuarantineEntry>,
    },
    QuarantineItem {
        entry: Option<QuarantineEntry>,
        raw: Option<String>,
    },
    /// The exact bytes, hex-encoded (JSON strings carry only text).
    RawMail {
        hex: Option<String>,
    },
    Retried {
        outcome: String,
    },
    Ignored {
        entries: Vec<IgnoredEntry>,
    },
    Stats {
        stats: Stats,
    },
    KeyRotated {
        keys: Vec<KeyEpoch>,
    },
    Error {
        message: String,
    },
    Report {
        report: Box<crate::desk::report::Report>,
    },
    Board {
        board: crate::desk::board::Board,
    },
    Next {
        tickets: Vec<crate::desk::next::Candidate>,
        /// More tickets are in hand than the limit let through.
        more: bool,
    },
    Found {
        hits: Vec<SearchHit>,
        more: bool,
    },
    /// A `Steer` request was applied. `change` is what it did in detail
    /// (`--json`); a daemon from before it was added sends none.
    Steered {
        done: crate::desk::steer::Done,
        #[serde(default)]
        change: Option<Box<SteerChange>>,
    },
    /// A `Steer` request was refused: nothing changed.
    Refused {
        problems: Vec<String>,
    },
}

/// One reply key, without the key: its epoch and until when it verifies
/// (None: the current, signing key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEpoch {
    pub epoch: u32,
    pub valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// Counts cheap enough to poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub tickets: usize,
    pub outbox_pending: usize,
    pub outbox_failed: usize,
    pub delivered: usize,
    pub quarantined: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketView {
    pub ticket: Ticket,
    /// Each SLA target: due time and state.
    #[serde(default)]
    pub sla: Vec<crate::desk::sla::TargetStatus>,
    pub messages: Vec<MessageRecord>,
    pub events: Vec<Event>,
}

/// What a `tickets set|comment|reply|merge|link` did, beyond its
/// [`Done`](crate::desk::steer::Done): the shapes are those of `tickets show
/// --json` (ticket, events) and `outbox --json` (mails), so a script reads
/// one format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteerChange {
    /// The steered ticket as the change left it.
    pub after: Ticket,
    /// The audit events the change added to it, oldest first.
    pub events: Vec<Event>,
    /// Other tickets it wrote: a merge's target, a link's other side.
    #[serde(default)]
    pub also_changed: Vec<ChangedTicket>,
    /// The mails it queued (notices, the reply), in the order queued.
    pub mails: Vec<OutboxSummary>,
}

/// Another ticket a steering change wrote, and the events it added there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangedTicket {
    pub ticket: Ticket,
    pub events: Vec<Event>,
}

/// What `tickets set|comment|… --json` prints: the ticket number, actor and
/// count of [`Done`](crate::desk::steer::Done) with the [`SteerChange`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Steered {
    #[serde(flatten)]
    pub done: crate::desk::steer::Done,
    #[serde(flatten)]
    pub change: SteerChange,
}

/// An outbox entry without its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxSummary {
    pub id: u64,
    pub ticket: Option<TicketId>,
    pub kind: String,
    pub message_id: String,
    pub recipients: Vec<String>,
    /// As composed (unknown for an entry queued already formatted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub attempts: u32,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
    pub last_error: Option<String>,
    pub failed: bool,
}

impl From<OutboxEntry> for OutboxSummary {
    fn from(e: OutboxEntry) -> Self {
        OutboxSummary {
            id: e.id,
            ticket: e.ticket,
            kind: e.kind,
            message_id: e.message_id,
            recipients: e.recipients.iter().map(|r| r.to_string()).collect(),
            subject: e.composed.map(|c| c.subject),
            attempts: e.attempts,
            next_attempt_at: e.next_attempt_at,
            last_error: e.last_error,
            failed: e.failed,
        }
    }
}
