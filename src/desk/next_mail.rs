//! `#next` by mail: an agent asks what to work on first and gets their own
//! list (`next.txt`), in the order of `tickets next --agent` (`desk::next`).
//! Asked by `#next` in a mail on a ticket, by a mail to `help+next@`, or by
//! a mail to the help address holding only `#next`. Like the command list
//! (`desk::help`): only a proven agent gets it, as an automatic reply
//! (`Auto-Submitted: auto-replied`) under the per-recipient rate limit, and
//! never as a ticket.

use chrono::{DateTime, Utc};

use crate::desk::agent_tell::{agent_name, AgentMail};
use crate::desk::audit::event;
use crate::desk::automail::{self, MailContext, MessageContext};
use crate::desk::commands::{self, Command};
use crate::desk::next::{self, Candidate};
use crate::desk::outcome::Outcome;
use crate::desk::policy::Policy;
use crate::desk::proof::{proven_asker, AddressSignals};
use crate::mail::address::{EmailAddress, Party};
use crate::mail::classify::Class;
use crate::mail::parse::InboundMail;
use crate::store::records::{EventKind, Status, Ticket};
use crate::store::{ListFilter, Tx, TxResult};

const TEMPLATE: &str = "next.txt";
/// Tickets listed in one mail.
pub const SHOWN: usize = 20;

/// The new and open tickets assigned to `agent`, in the order of work, at
/// most [`SHOWN`]; and whether there are more: the list `tickets next
/// --agent` gives. Every one of the agent's new and open tickets is read
/// (from the list index: the cost is the agent's tickets in hand, never the
/// desk's), since the one due first is often the one updated longest ago;
/// only the first [`SHOWN`] + 1 are kept.
pub fn for_agent(
    tx: &Tx<'_>,
    policy: &Policy,
    agent: &EmailAddress,
    now: DateTime<Utc>,
) -> TxResult<(Vec<Candidate>, bool)> {
    let mut first = next::FirstInOrder::new(SHOWN);
    for status in [Status::New, Status::Open] {
        let filters = [
            ListFilter::Assignee(agent.to_string()),
            ListFilter::Status(status),
        ];
        for t in tx.ticket_list(&filters, usize::MAX)? {
            if next::assigned_to(&t, agent.as_str()) && next::actionable(&t) {
                first.push(next::candidate(&t, policy.sla(t.sla.as_deref()), now));
            }
        }
    }
    Ok(first.finish())
}

/// "2h 10m": minutes are as fine as a list to work from needs.
fn span(secs: i64) -> String {
    let whole = std::time::Duration::from_secs((secs.unsigned_abs() / 60).max(1) * 60);
    humantime::format_duration(whole).to_string()
}

/// The list as the mail shows it, one ticket a line.
pub fn list_text(list: &[Candidate], more: bool, now: DateTime<Utc>) -> String {
    if list.is_empty() {
        return "Nothing new or open is assigned to you.".into();
    }
    let mut out = String::new();
    for (i, c) in list.iter().enumerate() {
        let due = match c.due {
            Some(_) if c.breached => "SLA BREACHED".to_string(),
            Some(d) if d <= now => "due now".to_string(),
            Some(d) => format!("due in {}", span((d - now).num_seconds())),
            None => "no SLA target".to_string(),
        };
        out.push_str(&format!(
            "{:>2}. #{} [{}, {}, {due}] {}\n",
            i + 1,
            c.id,
            c.priority,
            c.status.as_str(),
            crate::mail::text::clean_header_text(&c.subject, 120)
        ));
    }
    if more {
        out.push_str(&format!(
            "(only the first {SHOWN}; `deskgate tickets next --agent` lists them all)\n"
        ));
    }
    out
}

/// `#next` in a proven agent's mail on ticket `t`: the list, threaded under
/// their mail. Held back (rate limit, machine address) is recorded on `t`.
pub fn on_ticket(
    tx: &Tx<'_>,
    policy: &Policy,
    t: &mut Ticket,
    a: &AgentMail<'_>,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    match answer(tx, policy, a.agent, a.mail, now)? {
        Ok(()) => Ok(1),
        Err(why) => {
            let reason = format!("no #next list: {why}");
            tx.add_event(t, &event(now, "deskgate", EventKind::AckSkipped { reason }))?;
            Ok(0)
        }
    }
}

/// Whether a mail that threads to no ticket asks for the list: sent to
/// `help+next@`, or holding nothing but `#next`.
pub fn asks(signals: &AddressSignals, text: &str) -> bool {
    if signals.next {
        return true;
    }
    let parsed = commands::parse(text);
    parsed.errors.is_empty() && parsed.rest.is_empty() && parsed.commands == [Command::Next]
}

/// A mail asking for the list outside any ticket. A proven agent's
/// person-made mail gets it; anything else gets nothing and is kept in the
/// ignored list with why. Never a ticket.
pub fn on_address(
    tx: &Tx<'_>,
    policy: &Policy,
    mail: &InboundMail,
    class: &Class,
    signals: &AddressSignals,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let ignored = |why: String| Outcome::Ignored {
        reason: format!("#next by mail: {why}"),
    };
    let agent = match proven_asker(policy, mail, class, signals, now) {
        Ok(agent) => agent,
        Err(why) => return Ok(ignored(format!("{why}; no answer"))),
    };
    Ok(match answer(tx, policy, agent, mail, now)? {
        Ok(()) => ignored(format!("the list was sent to {}", agent.address)),
        Err(why) => ignored(format!("no list sent: {why}")),
    })
}

/// Renders and queues the list for `agent`, answering `mail`.
fn answer(
    tx: &Tx<'_>,
    policy: &Policy,
    agent: &Party,
    mail: &InboundMail,
    now: DateTime<Utc>,
) -> TxResult<Result<(), String>> {
    let to = Party {
        name: Some(agent_name(policy, agent)),
        address: agent.address.clone(),
    };
    if crate::mail::classify::is_machine_address(&to.address) {
        return Ok(Err(format!("{} is a machine address", to.address)));
    }
    let (list, more) = for_agent(tx, policy, &agent.address, now)?;
    let text = list_text(&list, more, now);
    let name = to.name.as_deref().unwrap_or(to.address.local_part());
    let ctx = MailContext {
        ticket: None,
        tag: String::new(),
        recipient: &to,
        recipient_name: name,
        requester: &to,
        requester_name: name,
        desk: &policy.desk,
        message: MessageContext {
            subject: &mail.subject,
            text: &text,
        },
        dropped_attachments: Vec::new(),
        max_message_size: bytesize::ByteSize::b(policy.limits.max_message_size).to_string(),
        rule: None,
    };
    let rendered = match policy.templates.render(TEMPLATE, &ctx) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    automail::queue_ticketless(
        tx,
        policy,
        &to,
        "next",
        rendered,
        mail.message_id.clone(),
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::Priority;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_list_reads_as_lines_with_readable_due_times() {
        let now = at("2026-03-02T10:00:00Z");
        let c = |id, due: Option<&str>, breached| Candidate {
            id,
            subject: format!("ticket {id}"),
            status: Status::Open,
            priority: Priority::High,
            assignee: None,
            team: None,
            created_at: now,
            due: due.map(at),
            breached,
        };
        let text = list_text(
            &[
                c(7, Some("2026-03-02T09:00:00Z"), true),
                c(8, Some("2026-03-02T12:10:00Z"), false),
                c(9, None, false),
            ],
            true,
            now,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], " 1. #7 [high, open, SLA BREACHED] ticket 7");
        assert_eq!(lines[1], " 2. #8 [high, open, due in 2h 10m] ticket 8");
        assert_eq!(lines[2], " 3. #9 [high, open, no SLA target] ticket 9");
        assert!(lines[3].starts_with("(only the first 20"), "{text}");
        assert_eq!(
            list_text(&[], false, now),
            "Nothing new or open is assigned to you."
        );
    }

    #[test]
    fn a_lone_next_asks_and_other_text_does_not() {
        let none = AddressSignals::default();
        assert!(asks(&none, "#next\n"));
        assert!(!asks(&none, "#next\nand some words"));
        assert!(!asks(&none, "#next\n#status open"));
        assert!(!asks(&none, "Hello, my printer is broken."));
        let plus = AddressSignals {
            next: true,
            ..AddressSignals::default()
        };
        assert!(asks(&plus, "anything"));
    }
}
