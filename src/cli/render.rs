//! Text for people: tickets, the outbox, the ignored and quarantined mail, as
//! the terminal shows them. `--json` prints the views themselves instead.

use std::fmt::Write as _;

use super::terminal::{safe, safe_mail};
use super::times::Times;

use crate::cli::event_text::describe_event;
use crate::engine::queries::{OutboxSummary, TicketView};
use crate::store::records::{IgnoredEntry, QuarantineEntry, Ticket};

/// `more`: the list was cut at the limit.
pub fn render_ticket_list(tickets: &[Ticket], more: bool, tm: &Times) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>8}  {:<9} {:<7} {:<28} {:<22} SUBJECT",
        "ID", "STATUS", "PRIO", "REQUESTER", "UPDATED"
    );
    for t in tickets {
        let _ = writeln!(
            out,
            "{:>8}  {:<9} {:<7} {:<28} {:<22} {}",
            t.id,
            t.status.as_str(),
            t.priority.as_str(),
            truncate(t.requester.address.as_str(), 28),
            tm.at(&t.updated_at),
            t.subject
        );
    }
    if more {
        let _ = writeln!(
            out,
            "the newest {} ticket(s); more match (--limit N or --all for more)",
            tickets.len()
        );
    } else {
        let _ = writeln!(out, "{} ticket(s)", tickets.len());
    }
    safe(&out)
}

pub(super) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

pub fn render_ticket(v: &TicketView, tm: &Times) -> String {
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
    if let Some(q) = &t.queue {
        let _ = writeln!(out, "  Queue:          {q}");
    }
    let _ = writeln!(out, "  Created:        {}", tm.at(&t.created_at));
    let _ = writeln!(out, "  Updated:        {}", tm.at(&t.updated_at));
    let _ = writeln!(
        out,
        "  First response: {}",
        t.first_response_at
            .as_ref()
            .map(|x| tm.at(x))
            .unwrap_or_else(|| "-".into())
    );
    render_ticket_extras(&mut out, t);
    for x in &v.sla {
        let state = match &x.state {
            crate::desk::sla::TargetState::Met { at, late } => {
                format!("met at {}{}", tm.at(at), if *late { " (LATE)" } else { "" })
            }
            crate::desk::sla::TargetState::Running => "running".into(),
            crate::desk::sla::TargetState::Paused => "paused (waiting on the customer)".into(),
            crate::desk::sla::TargetState::Breached => "BREACHED".into(),
            crate::desk::sla::TargetState::Stopped { at, late } => format!(
                "stopped at {} (ticket finished){}",
                tm.at(at),
                if *late { " (LATE)" } else { "" }
            ),
        };
        let _ = writeln!(
            out,
            "  SLA {:<15} {} ({}): due {} — {state}",
            x.target.key(),
            super::times::minutes(x.target_minutes.max(0) as u64),
            x.policy,
            x.due
                .as_ref()
                .map(|x| tm.at(x))
                .unwrap_or_else(|| "-".into())
        );
    }
    let _ = writeln!(out, "\nMessages ({}):", v.messages.len());
    for m in &v.messages {
        let dir = match m.direction {
            crate::store::records::Direction::Inbound => "in ",
            crate::store::records::Direction::Outbound => "out",
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
            tm.at(&m.recorded_at),
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
            tm.at(&e.at),
            truncate(&e.actor, 28),
            describe_event(&e.kind)
        );
    }
    safe(&out)
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
            crate::store::records::LinkKind::Related => "related to",
            crate::store::records::LinkKind::Parent => "child of",
            crate::store::records::LinkKind::Child => "parent of",
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
        let _ = writeln!(
            out,
            "  Effort:         {} in all",
            super::times::minutes(total as u64)
        );
        let mut by_agent: Vec<(String, u32)> = Vec::new();
        for e in &t.effort {
            match by_agent.iter_mut().find(|(a, _)| *a == e.agent) {
                Some((_, m)) => *m += e.minutes,
                None => by_agent.push((e.agent.clone(), e.minutes)),
            }
        }
        for (a, m) in by_agent {
            let _ = writeln!(
                out,
                "                  {a}: {}",
                super::times::minutes(m as u64)
            );
        }
    }
}

pub fn render_outbox(entries: &[OutboxSummary], tm: &Times) -> String {
    let mut out = String::new();
    for e in entries {
        let _ = writeln!(
            out,
            "{:>6}  ticket {:<8} {:<16} to {:<30} attempts {:<3} {}{}{}",
            e.id,
            e.ticket
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            e.kind,
            e.recipients.join(","),
            e.attempts,
            if e.failed { "FAILED" } else { "pending" },
            if e.failed {
                String::new()
            } else {
                format!(" (next try {})", tm.at(&e.next_attempt_at))
            },
            e.last_error
                .as_deref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out, "{} mail(s) in the outbox", entries.len());
    safe(&out)
}

pub fn render_ignored(entries: &[IgnoredEntry], tm: &Times) -> String {
    let mut out = String::new();
    for e in entries {
        let _ = writeln!(
            out,
            "{:>6}  {}  {:<28} {:<40} {}",
            e.id,
            tm.at(&e.at),
            truncate(e.from.as_deref().unwrap_or("(no sender)"), 28),
            truncate(&e.subject, 40),
            e.reason
        );
    }
    let _ = writeln!(out, "{} ignored mail(s)", entries.len());
    safe(&out)
}

pub fn render_quarantine(entries: &[QuarantineEntry], tm: &Times) -> String {
    let mut out = String::new();
    for q in entries {
        let _ = writeln!(
            out,
            "{:>6}  {}  {:<20} {:>8} bytes  {}",
            q.id,
            tm.at(&q.at),
            q.mailbox,
            q.size,
            q.reason
        );
    }
    let _ = writeln!(out, "{} mail(s) in quarantine", entries.len());
    safe(&out)
}

/// One quarantined mail: why it is there, then the raw mail as text.
pub fn render_quarantine_item(e: &QuarantineEntry, raw: Option<&str>, tm: &Times) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Quarantined mail {}: {}", e.id, e.reason);
    let _ = writeln!(
        out,
        "  mailbox {}, {} bytes, at {}\n",
        e.mailbox,
        e.size,
        tm.at(&e.at)
    );
    let mut out = safe(&out);
    out.push_str(&safe_mail(raw.unwrap_or("(raw bytes missing)")));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::address::{EmailAddress, Party};

    const UTC_TIMES: Times = Times { tz: chrono_tz::UTC };

    /// Characters that must never reach a terminal from mail: C0/C1
    /// controls (ESC starts escape sequences, CR overwrites a line) and the
    /// bidi/invisible formatting marks that reorder or hide text.
    fn hostile(s: &str) -> Vec<char> {
        s.chars()
            .filter(|&c| {
                (c.is_control() && c != '\n')
                    || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
            })
            .collect()
    }

    const EVIL: &str = "Invoice \u{1b}[2J\u{1b}]0;pwned\u{7}\r\u{9b}31m \u{202E}fdp.exe\u{2066}x\u{2069}\u{200E}\u{200F}";

    fn evil_ticket() -> Ticket {
        Ticket::new(
            7,
            EVIL.into(),
            Party {
                name: Some(EVIL.into()),
                address: EmailAddress::parse("a@b.c").unwrap(),
            },
            "help",
            chrono::Utc::now(),
        )
    }

    #[test]
    fn ticket_list_shows_no_control_or_bidi_characters() {
        let out = render_ticket_list(&[evil_ticket()], false, &UTC_TIMES);
        assert_eq!(hostile(&out), Vec::<char>::new(), "{out:?}");
        // What was there is still visible, escaped.
        assert!(out.contains("Invoice \\u{1b}[2J"), "{out}");
        assert!(out.contains("\\u{202e}fdp.exe"), "{out}");
    }

    #[test]
    fn ticket_view_shows_no_control_or_bidi_characters() {
        let view = TicketView {
            ticket: evil_ticket(),
            messages: Vec::new(),
            events: Vec::new(),
            sla: Vec::new(),
        };
        let out = render_ticket(&view, &UTC_TIMES);
        assert_eq!(hostile(&out), Vec::<char>::new(), "{out:?}");
    }

    #[test]
    fn quarantine_views_show_no_control_or_bidi_characters() {
        let q = QuarantineEntry {
            id: 1,
            mailbox: "help".into(),
            reason: EVIL.into(),
            at: chrono::Utc::now(),
            raw_key: "k".into(),
            size: 3,
        };
        let list = render_quarantine(std::slice::from_ref(&q), &UTC_TIMES);
        assert_eq!(hostile(&list), Vec::<char>::new(), "{list:?}");
        let raw = format!("Subject: {EVIL}\r\n\r\nbody\r\n");
        let shown = render_quarantine_item(&q, Some(&raw), &UTC_TIMES);
        assert_eq!(hostile(&shown), Vec::<char>::new(), "{shown:?}");
        // Line ends are line ends, not escaped carriage returns.
        assert!(shown.contains("\nbody\n"), "{shown:?}");
    }
}
