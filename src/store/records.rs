//! The records deskgate keeps: tickets, their messages and audit trail, the
//! outbox, and the bookkeeping that makes ingest exactly-once.
//!
//! These are plain data, serialised into sled as `codec.rs` says (their
//! serde attributes give the JSON shape of `--json` and exports; the store's
//! encoding is self-describing, so every attribute works there too);
//! behaviour lives in the modules that own each step.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::mail::address::{EmailAddress, Party};
use crate::mail::outgoing::{self, ComposeError, Outgoing};
pub use crate::store::send_window::SendWindow;

pub type TicketId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Open,
    /// Waiting on the customer (the SLA clock pauses here in later work).
    Waiting,
    Resolved,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Waiting => "waiting",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    /// Resolved and closed tickets are finished; a requester's reply reopens them.
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Resolved | Status::Closed)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub subject: String,
    pub requester: Party,
    pub status: Status,
    pub priority: Priority,
    pub team: Option<String>,
    pub assignee: Option<String>,
    /// The mailbox (help address) the first mail came in at.
    pub mailbox: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Number of messages and events stored; the next sequence numbers.
    pub message_count: u32,
    pub event_count: u32,
    /// Automatic mail this ticket sent lately, for its rate limit.
    #[serde(default)]
    pub auto_sent: SendWindow,
    #[serde(default)]
    pub tags: Vec<String>,
    /// People who receive public replies (the requester's first Cc).
    #[serde(default)]
    pub watchers: Vec<EmailAddress>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub effort: Vec<Effort>,
    /// Set when this ticket was merged into another: later mail goes there.
    #[serde(default)]
    pub merged_into: Option<TicketId>,
    /// Tickets merged into this one; their messages show here.
    #[serde(default)]
    pub merged_from: Vec<TicketId>,
    /// Message-ID of the requester's latest mail: relayed replies answer it.
    #[serde(default)]
    pub last_inbound_id: Option<String>,
    /// The SLA policy that applies (a rule's choice or the desk default).
    #[serde(default)]
    pub sla: Option<String>,
    /// Times the SLA clock stood still (waiting on the customer).
    #[serde(default)]
    pub pauses: Vec<Pause>,
    #[serde(default)]
    pub waiting_since: Option<DateTime<Utc>>,
    /// Timer actions that have fired (warnings, breaches, reminders …): each fires once.
    #[serde(default)]
    pub fired: Vec<String>,
    /// The `[[queue]]` (by name) whose address the ticket's mail goes out
    /// from; None for the desk's own address (and tickets from before queues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Where the store filed the ticket's next timer (see [`TimerSlot`]).
    #[serde(default, skip_serializing_if = "TimerSlot::is_empty")]
    pub timer_due_ms: TimerSlot,
}

/// When the ticket's next timer is due (ms since 1970), as filed in the
/// timer index: the ticket record is rewritten on every change anyway, so
/// it is where the index entry to move is found, with no key of its own.
/// Only the store sets it (`Tx::set_timer_due`; `Tx::put_ticket` keeps the
/// stored value whatever the caller's copy says). It is the store's
/// bookkeeping, not the ticket's state: two copies of a ticket are equal
/// whatever it says, so a copy taken before the timer moved still equals
/// the stored ticket.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimerSlot(pub Option<u64>);

impl TimerSlot {
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl PartialEq for TimerSlot {
    fn eq(&self, _: &TimerSlot) -> bool {
        true
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

impl Ticket {
    /// A new ticket with everything but its identity and origin at the defaults.
    pub fn new(
        id: TicketId,
        subject: String,
        requester: Party,
        mailbox: &str,
        now: DateTime<Utc>,
    ) -> Ticket {
        Ticket {
            id,
            subject,
            requester,
            status: Status::New,
            priority: Priority::default(),
            team: None,
            assignee: None,
            mailbox: mailbox.to_string(),
            created_at: now,
            updated_at: now,
            first_response_at: None,
            resolved_at: None,
            message_count: 0,
            event_count: 0,
            auto_sent: SendWindow::default(),
            tags: Vec::new(),
            watchers: Vec::new(),
            links: Vec::new(),
            effort: Vec::new(),
            merged_into: None,
            merged_from: Vec::new(),
            last_inbound_id: None,
            sla: None,
            pauses: Vec::new(),
            waiting_since: None,
            fired: Vec::new(),
            queue: None,
            timer_due_ms: TimerSlot(None),
        }
    }

    /// Changes the status and keeps what depends on it right: the SLA clock
    /// pauses while waiting on the customer and resumes after; resolution time;
    /// the lifecycle timers' marks of a waiting or resolved spell that ended.
    /// Returns the previous status.
    pub fn set_status(&mut self, to: Status, now: DateTime<Utc>) -> Status {
        let from = self.status;
        if from == to {
            return from;
        }
        if from == Status::Waiting {
            if let Some(p) = self.pauses.last_mut().filter(|p| p.end.is_none()) {
                p.end = Some(now);
            }
            self.waiting_since = None;
            self.fired.retain(|m| !m.starts_with("waiting:"));
        }
        if to == Status::Waiting {
            self.pauses.push(Pause {
                start: now,
                end: None,
            });
            self.waiting_since = Some(now);
        }
        if to.is_finished() {
            self.resolved_at.get_or_insert(now);
        } else {
            self.resolved_at = None;
            self.fired.retain(|m| !m.starts_with("resolved:"));
        }
        self.status = to;
        from
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Related,
    Parent,
    Child,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub kind: LinkKind,
    pub ticket: TicketId,
}

/// Time an agent spent on a ticket (`#time`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effort {
    pub agent: String,
    pub minutes: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentMeta {
    /// Sanitised file name, safe to show and to use as a file name.
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// Key of the stored bytes (SHA-256, hex), shared by identical attachments.
    pub sha256: String,
    /// Not stored: the mail was over the size limit.
    #[serde(default)]
    pub dropped: bool,
}

/// One mail on a ticket, in either direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub ticket: TicketId,
    pub seq: u32,
    pub direction: Direction,
    pub from: Option<Party>,
    pub to: Vec<Party>,
    pub cc: Vec<Party>,
    pub subject: String,
    /// The Date header; `None` when absent or unparseable.
    pub date: Option<DateTime<Utc>>,
    /// When deskgate stored it.
    pub recorded_at: DateTime<Utc>,
    pub message_id: Option<String>,
    /// Plain text with quoted history trimmed (HTML-only mail converted).
    pub text: String,
    pub attachments: Vec<AttachmentMeta>,
    /// Key of the raw mail in the raw-mail store (inbound only).
    pub raw_key: Option<String>,
    /// What kind of outgoing mail this was (acknowledgement, reply …).
    pub kind: Option<String>,
}

/// A line of the audit trail: what changed, who did it, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    /// An address, or "deskgate" for the daemon itself.
    pub actor: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    Created {
        mailbox: String,
    },
    StatusChanged {
        from: Status,
        to: Status,
        reason: String,
    },
    MailDelivered {
        outbox_id: u64,
        message_id: String,
        attempts: u32,
    },
    MailFailed {
        outbox_id: u64,
        message_id: String,
        error: String,
        attempts: u32,
    },
    AckSkipped {
        reason: String,
    },
    /// Routing rules set fields of the ticket.
    Routed {
        rules: Vec<String>,
        team: Option<String>,
        priority: Priority,
        assignee: Option<String>,
        tags: Vec<String>,
    },
    /// An automatic mail that a limit held back; its text is kept as a message.
    AutoReplyHeld {
        kind: String,
        to: String,
        reason: String,
    },
    /// A delivery report said one of our mails did not reach a recipient.
    DeliveryFailed {
        message_id: Option<String>,
        recipient: String,
        status: Option<String>,
        diagnostic: Option<String>,
        hard: bool,
    },
    /// A delivery report said one of our mails reached a recipient
    /// (`Action: delivered`, `relayed` or `expanded`).
    DeliveryConfirmed {
        message_id: Option<String>,
        recipient: String,
        /// The report's action: delivered, relayed or expanded.
        action: String,
    },
    FieldChanged {
        field: String,
        from: String,
        to: String,
    },
    Escalated {
        from_team: Option<String>,
        to_team: String,
        reason: String,
    },
    EffortLogged {
        minutes: u32,
    },
    Linked {
        kind: LinkKind,
        ticket: TicketId,
    },
    MergedInto {
        ticket: TicketId,
    },
    MergedFrom {
        ticket: TicketId,
    },
    ReplyRelayed {
        to: Vec<String>,
    },
    CommentAdded,
    /// Mail claiming to be from an agent without proof: stored, nothing run.
    PossibleForgery {
        from: String,
        why: String,
    },
    CommandsRefused {
        errors: Vec<String>,
    },
    SlaWarning {
        target: String,
        due: DateTime<Utc>,
    },
    SlaBreached {
        target: String,
        due: DateTime<Utc>,
    },
    WaitingReminder,
    /// Too many hard bounces: no more automatic mail to this address.
    AddressUndeliverable {
        address: String,
        hard_bounces: u32,
    },
    /// A mail went out without some of the files it would have carried (a
    /// size limit): the ticket says what its recipients did not get, and why.
    AttachmentsNotSent {
        /// Which mail went without them ("notification").
        mail: String,
        files: Vec<FileNotSent>,
    },
}

/// One file an outgoing mail did not carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileNotSent {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// In plain words, e.g. "over the 10 MiB a notification carries".
    pub why: String,
}

/// A mail committed for sending. The bytes are final (Message-ID and Date
/// included) so a retry, even after a crash, sends the very same message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    pub ticket: Option<TicketId>,
    pub kind: String,
    pub message_id: String,
    pub envelope_from: EmailAddress,
    pub recipients: Vec<EmailAddress>,
    /// The formatted RFC 5322 message (lettre's output is 7-bit clean), for
    /// entries queued already formatted; empty when `composed` is set.
    #[serde(default)]
    pub raw: String,
    /// The mail as composed. Formatting is a pure function of it, so the
    /// sender formats it when the mail leaves (same bytes as formatting it
    /// at commit), which keeps lettre off the path that commits incoming mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composed: Option<Outgoing>,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Set when the entry gave up (permanent error or too many attempts).
    pub failed: bool,
}

impl OutboxEntry {
    /// A composed mail queued now, due at once: every automatic mail enters
    /// the outbox this one way.
    pub fn queued(
        id: u64,
        ticket: Option<TicketId>,
        kind: &str,
        envelope_from: EmailAddress,
        recipients: Vec<EmailAddress>,
        composed: &Outgoing,
        now: DateTime<Utc>,
    ) -> OutboxEntry {
        OutboxEntry {
            id,
            ticket,
            kind: kind.to_string(),
            message_id: composed.message_id.clone(),
            envelope_from,
            recipients,
            raw: String::new(),
            composed: Some(composed.clone()),
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            failed: false,
        }
    }

    /// The bytes that go on the wire.
    pub fn formatted(&self) -> Result<std::borrow::Cow<'_, str>, ComposeError> {
        match &self.composed {
            Some(o) => outgoing::build(o).map(std::borrow::Cow::Owned),
            None => Ok(std::borrow::Cow::Borrowed(&self.raw)),
        }
    }
}

/// The proof that a mail left: kept after the outbox entry is removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub outbox_id: u64,
    pub ticket: Option<TicketId>,
    pub message_id: String,
    pub recipients: Vec<EmailAddress>,
    pub delivered_at: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
    pub attempts: u32,
}

/// How far a mailbox has been ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub uid_validity: u32,
    pub last_uid: u32,
}

/// What became of a mail, remembered under its dedupe key so that the same
/// mail seen again (refetch after a crash, a second mailbox, a resend) is
/// recognised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disposition {
    pub ticket: Option<TicketId>,
    pub at: DateTime<Utc>,
    pub outcome: String,
}

/// Automatic mail that threaded to no ticket (or a bounce matching no mail of
/// ours): not a ticket, never answered, but kept and listed for admins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IgnoredEntry {
    pub id: u64,
    pub mailbox: String,
    pub at: DateTime<Utc>,
    pub from: Option<String>,
    pub subject: String,
    pub reason: String,
    pub raw_key: Option<String>,
}

/// What deskgate knows about an address it sends to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AddressState {
    /// Hard bounces since the address last wrote to us.
    pub hard_bounces: u32,
    pub undeliverable_since: Option<DateTime<Utc>>,
    pub last_bounce: Option<DateTime<Utc>>,
}

/// A mail that could not be processed, kept whole for an admin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub id: u64,
    pub mailbox: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub raw_key: String,
    pub size: u64,
}
