//! Read-only views of the store, shared by the control socket (daemon
//! running) and the CLI (store opened directly), and their text rendering.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError};
use crate::model::{
    Event, IgnoredEntry, MessageRecord, OutboxEntry, QuarantineEntry, Status, Ticket, TicketId,
};
use crate::store::StoreError;

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
    },
    ShowTicket {
        id: TicketId,
    },
    Outbox,
    Quarantine,
    QuarantineShow {
        id: u64,
    },
    /// Changes the store: processes a quarantined mail again.
    QuarantineRetry {
        id: u64,
    },
    Ignored,
    Stats,
}

impl Query {
    /// Whether answering may queue mail (the daemon then wakes its sender).
    pub fn mutates(&self) -> bool {
        matches!(self, Query::QuarantineRetry { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    Tickets {
        tickets: Vec<Ticket>,
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
    Retried {
        outcome: String,
    },
    Ignored {
        entries: Vec<IgnoredEntry>,
    },
    Stats {
        stats: Stats,
    },
    Error {
        message: String,
    },
}

/// Counts cheap enough to poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub tickets: usize,
    pub outbox_pending: usize,
    pub outbox_failed: usize,
    pub delivered: usize,
    pub quarantined: usize,
    /// Committed transactions the store has not yet copied from its journal
    /// into its indexed trees (see `kv`); normally 0 a moment after a burst.
    #[serde(default)]
    pub journal_pending: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketView {
    pub ticket: Ticket,
    /// Each SLA target: due time and state.
    #[serde(default)]
    pub sla: Vec<crate::sla::TargetStatus>,
    pub messages: Vec<MessageRecord>,
    pub events: Vec<Event>,
}

/// An outbox entry without its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxSummary {
    pub id: u64,
    pub ticket: Option<TicketId>,
    pub kind: String,
    pub message_id: String,
    pub recipients: Vec<String>,
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
            attempts: e.attempts,
            next_attempt_at: e.next_attempt_at,
            last_error: e.last_error,
            failed: e.failed,
        }
    }
}

/// Answers a query; blocking (sled), so async callers use spawn_blocking.
pub fn answer(engine: &Engine, q: &Query) -> Answer {
    let result = match q {
        Query::QuarantineRetry { id } => retry(engine, *id),
        _ => run(engine, q).map_err(EngineError::from),
    };
    result.unwrap_or_else(|e| Answer::Error {
        message: e.to_string(),
    })
}

fn retry(engine: &Engine, id: u64) -> Result<Answer, EngineError> {
    let outcome = engine.retry_quarantined(id)?;
    engine.store().flush_blocking()?;
    Ok(Answer::Retried {
        outcome: format!("{outcome:?}"),
    })
}

/// Longest raw mail shown by `quarantine show`.
const SHOW_LIMIT: usize = 64 * 1024;

fn sla_of(engine: &Engine, t: &Ticket) -> Vec<crate::sla::TargetStatus> {
    let policy = engine.policy();
    policy
        .sla(t.sla.as_deref())
        .map(|p| crate::sla::status(t, p, engine.now()))
        .unwrap_or_default()
}

fn run(engine: &Engine, q: &Query) -> Result<Answer, StoreError> {
    let store = engine.store();
    Ok(match q {
        Query::ListTickets {
            status,
            overdue,
            due_within_secs,
        } => {
            let now = engine.now();
            let horizon = due_within_secs
                .map(|s| now + chrono::Duration::seconds(s.min(i64::MAX as u64 / 2) as i64));
            let mut tickets = Vec::new();
            for t in store.tickets() {
                let t = t?;
                if !status.is_none_or(|s| s == t.status) {
                    continue;
                }
                if *overdue || horizon.is_some() {
                    let targets = sla_of(engine, &t);
                    let is_overdue = targets
                        .iter()
                        .any(|x| x.state == crate::sla::TargetState::Breached);
                    let due_soon = horizon.is_some_and(|h| {
                        targets.iter().any(|x| {
                            x.state == crate::sla::TargetState::Running
                                && x.due.is_some_and(|d| d <= h)
                        })
                    });
                    if (*overdue && !is_overdue) || (horizon.is_some() && !due_soon) {
                        continue;
                    }
                }
                tickets.push(t);
            }
            Answer::Tickets { tickets }
        }
        Query::ShowTicket { id } => Answer::Ticket {
            view: match store.ticket(*id)? {
                Some(ticket) => {
                    // Messages of merged tickets show here, in time order.
                    let mut messages = store.messages(*id)?;
                    for from in &ticket.merged_from {
                        messages.extend(store.messages(*from)?);
                    }
                    messages.sort_by_key(|m| (m.recorded_at, m.ticket, m.seq));
                    Some(Box::new(TicketView {
                        messages,
                        events: store.events(*id)?,
                        sla: sla_of(engine, &ticket),
                        ticket,
                    }))
                }
                None => None,
            },
        },
        Query::Outbox => Answer::Outbox {
            entries: store
                .outbox()?
                .into_iter()
                .map(OutboxSummary::from)
                .collect(),
        },
        Query::Quarantine => Answer::Quarantine {
            entries: store.quarantine()?,
        },
        Query::QuarantineShow { id } => {
            let entry = store.quarantine_entry(*id)?;
            let raw = match &entry {
                Some(e) => store.raw(&e.raw_key)?.map(|r| {
                    let end = r.len().min(SHOW_LIMIT);
                    String::from_utf8_lossy(&r[..end]).into_owned()
                }),
                None => None,
            };
            Answer::QuarantineItem { entry, raw }
        }
        Query::Ignored => Answer::Ignored {
            entries: store.ignored()?,
        },
        // Handled by `answer`, which has the engine.
        Query::QuarantineRetry { .. } => Answer::Error {
            message: "retry needs the engine".into(),
        },
        Query::Stats => {
            let (pending, failed) = store.outbox_counts();
            Answer::Stats {
                stats: Stats {
                    tickets: store.ticket_count(),
                    outbox_pending: pending,
                    outbox_failed: failed,
                    delivered: store.delivery_count(),
                    quarantined: store.quarantine_count(),
                    journal_pending: store.journal_backlog().0,
                },
            }
        }
    })
}

fn fmt_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn render_ticket_list(tickets: &[Ticket]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>8}  {:<9} {:<7} {:<28} {:<20} SUBJECT",
        "ID", "STATUS", "PRIO", "REQUESTER", "UPDATED"
    );
    for t in tickets {
        let _ = writeln!(
            out,
            "{:>8}  {:<9} {:<7} {:<28} {:<20} {}",
            t.id,
            t.status.as_str(),
            t.priority.as_str(),
            truncate(t.requester.address.as_str(), 28),
            t.updated_at.format("%Y-%m-%d %H:%M"),
            t.subject
        );
    }
    let _ = writeln!(out, "{} ticket(s)", tickets.len());
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

pub fn render_ticket(v: &TicketView) -> String {
    let t = &v.ticket;
    let mut out = String::new();
    let _ = writeln!(out, "Ticket {}: {}", t.id, t.subject);
    let _ = writeln!(out, "  Status:         {}", t.status);
    let _ = writeln!(out, "  Priority:       {}", t.priority);
    let _ = writeln!(out, "  Requester:      {}", t.requester.display());
    let _ = writeln!(
        out,
        "  Team:           {}",
        t.team.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        out,
        "  Assignee:       {}",
        t.assignee.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "  Mailbox:        {}", t.mailbox);
    let _ = writeln!(out, "  Created:        {}", fmt_time(&t.created_at));
    let _ = writeln!(out, "  Updated:        {}", fmt_time(&t.updated_at));
    let _ = writeln!(
        out,
        "  First response: {}",
        t.first_response_at
            .as_ref()
            .map(fmt_time)
            .unwrap_or_else(|| "-".into())
    );
    render_ticket_extras(&mut out, t);
    for x in &v.sla {
        let state = match &x.state {
            crate::sla::TargetState::Met { at, late } => format!(
                "met at {}{}",
                fmt_time(at),
                if *late { " (LATE)" } else { "" }
            ),
            crate::sla::TargetState::Running => "running".into(),
            crate::sla::TargetState::Paused => "paused (waiting on the customer)".into(),
            crate::sla::TargetState::Breached => "BREACHED".into(),
        };
        let _ = writeln!(
            out,
            "  SLA {:<15} {} min ({}): due {} — {state}",
            x.target.key(),
            x.target_minutes,
            x.policy,
            x.due.as_ref().map(fmt_time).unwrap_or_else(|| "-".into())
        );
    }
    let _ = writeln!(out, "\nMessages ({}):", v.messages.len());
    for m in &v.messages {
        let dir = match m.direction {
            crate::model::Direction::Inbound => "in ",
            crate::model::Direction::Outbound => "out",
        };
        let from_other = if m.ticket != t.id {
            format!(" (from #{})", m.ticket)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\n  #{}{from_other} {} {}  {}{}",
            m.seq,
            dir,
            fmt_time(&m.recorded_at),
            m.from
                .as_ref()
                .map(|p| p.display())
                .unwrap_or_else(|| "(no sender)".into()),
            m.kind
                .as_deref()
                .map(|k| format!("  [{k}]"))
                .unwrap_or_default()
        );
        if !m.to.is_empty() {
            let to: Vec<String> = m.to.iter().map(|p| p.display()).collect();
            let _ = writeln!(out, "     To: {}", to.join(", "));
        }
        if !m.cc.is_empty() {
            let cc: Vec<String> = m.cc.iter().map(|p| p.display()).collect();
            let _ = writeln!(out, "     Cc: {}", cc.join(", "));
        }
        let _ = writeln!(out, "     Subject: {}", m.subject);
        if let Some(id) = &m.message_id {
            let _ = writeln!(out, "     Message-ID: <{id}>");
        }
        for a in &m.attachments {
            let _ = writeln!(
                out,
                "     Attachment: {} ({}, {} bytes)",
                a.name, a.content_type, a.size
            );
        }
        for line in m.text.lines() {
            let _ = writeln!(out, "     | {line}");
        }
    }
    let _ = writeln!(out, "\nHistory:");
    for e in &v.events {
        let _ = writeln!(
            out,
            "  {}  {:<28} {}",
            fmt_time(&e.at),
            truncate(&e.actor, 28),
            e.kind.describe()
        );
    }
    out
}

/// Tags, watchers, links, merges and effort, where there are any.
fn render_ticket_extras(out: &mut String, t: &Ticket) {
    if !t.tags.is_empty() {
        let _ = writeln!(out, "  Tags:           {}", t.tags.join(" "));
    }
    if !t.watchers.is_empty() {
        let w: Vec<String> = t.watchers.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(out, "  Watchers:       {}", w.join(", "));
    }
    for l in &t.links {
        let kind = match l.kind {
            crate::model::LinkKind::Related => "related to",
            crate::model::LinkKind::Parent => "child of",
            crate::model::LinkKind::Child => "parent of",
        };
        let _ = writeln!(out, "  Link:           {kind} #{}", l.ticket);
    }
    if let Some(n) = t.merged_into {
        let _ = writeln!(out, "  Merged into:    #{n}");
    }
    if !t.merged_from.is_empty() {
        let m: Vec<String> = t.merged_from.iter().map(|n| format!("#{n}")).collect();
        let _ = writeln!(out, "  Merged from:    {}", m.join(", "));
    }
    if !t.effort.is_empty() {
        let total: u32 = t.effort.iter().map(|e| e.minutes).sum();
        let _ = writeln!(out, "  Effort:         {total} min in all");
        let mut by_agent: Vec<(String, u32)> = Vec::new();
        for e in &t.effort {
            match by_agent.iter_mut().find(|(a, _)| *a == e.agent) {
                Some((_, m)) => *m += e.minutes,
                None => by_agent.push((e.agent.clone(), e.minutes)),
            }
        }
        for (a, m) in by_agent {
            let _ = writeln!(out, "                  {a}: {m} min");
        }
    }
}

pub fn render_outbox(entries: &[OutboxSummary]) -> String {
    let mut out = String::new();
    for e in entries {
        let _ = writeln!(
            out,
            "{:>6}  ticket {:<8} {:<16} to {:<30} attempts {:<3} {}{}",
            e.id,
            e.ticket
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            e.kind,
            e.recipients.join(","),
            e.attempts,
            if e.failed { "FAILED" } else { "pending" },
            e.last_error
                .as_deref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out, "{} mail(s) in the outbox", entries.len());
    out
}

pub fn render_ignored(entries: &[IgnoredEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        let _ = writeln!(
            out,
            "{:>6}  {}  {:<28} {:<40} {}",
            e.id,
            fmt_time(&e.at),
            truncate(e.from.as_deref().unwrap_or("(no sender)"), 28),
            truncate(&e.subject, 40),
            e.reason
        );
    }
    let _ = writeln!(out, "{} ignored mail(s)", entries.len());
    out
}

pub fn render_quarantine(entries: &[QuarantineEntry]) -> String {
    let mut out = String::new();
    for q in entries {
        let _ = writeln!(
            out,
            "{:>6}  {}  {:<20} {:>8} bytes  {}",
            q.id,
            fmt_time(&q.at),
            q.mailbox,
            q.size,
            q.reason
        );
    }
    let _ = writeln!(out, "{} mail(s) in quarantine", entries.len());
    out
}
