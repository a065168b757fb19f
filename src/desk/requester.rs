//! What an incoming mail does to a ticket: open a new one, continue an
//! existing one (reopening it when the requester writes back), or record a
//! delivery report on the ticket whose mail bounced. Runs inside the engine's
//! transaction.

use chrono::{DateTime, Utc};

use crate::config::rules::{AckChoice, RuleAction};
use crate::desk::audit::event;
use crate::desk::automail::{self, AutoMail, DroppedAttachment, MessageContext};
use crate::desk::notify_files;
use crate::desk::outcome::Outcome;
use crate::desk::policy::Policy;
use crate::desk::prepare::ParsedParts;
use crate::desk::routing::{evaluate, MailFacts, Routing};
use crate::desk::trust::reply_to_for;
use crate::desk::workers::workers;
use crate::mail::address::Party;
use crate::mail::classify::Class;
use crate::mail::outgoing::AutoSubmitted;
use crate::mail::parse::InboundMail;
use crate::store::records::{
    AttachmentMeta, Event, EventKind, MessageRecord, Status, Ticket, TicketId,
};
use crate::store::{Tx, TxResult};

/// The requester path: the routing rules decide (ignore, reject with a
/// polite reply, or set fields), then the mail continues its ticket or opens
/// a new one. `None` when a person's mail has no usable From address.
pub fn file(
    tx: &Tx<'_>,
    policy: &Policy,
    parts: &ParsedParts,
    existing: Option<TicketId>,
    mailbox: &str,
    now: DateTime<Utc>,
) -> TxResult<Option<Outcome>> {
    let ParsedParts {
        mail,
        class,
        record,
        ..
    } = parts;
    let routing = if policy.rules.is_empty() {
        Routing::default()
    } else {
        let facts = MailFacts::new(mail, mailbox, mail.headers.clone());
        evaluate(&policy.rules, &facts, existing.is_some()).0
    };
    let outcome = match (existing, class, &routing.action) {
        (_, _, Some(RuleAction::Ignore)) => Outcome::Ignored {
            reason: format!("ignored by rule {}", routing.applied.join(", ")),
        },
        (_, _, Some(RuleAction::Reject { template })) => reject(
            tx,
            policy,
            mail,
            mailbox,
            *class == Class::Human,
            template,
            &routing,
            now,
        )?,
        (Some(id), _, None) => thread_onto(tx, policy, id, mail, class, record, &routing, now)?,
        (None, Class::Human, None) => match &mail.from {
            Some(from) => create_ticket(tx, policy, mailbox, from, mail, record, &routing, now)?,
            None => return Ok(None),
        },
        (None, Class::Automatic(r) | Class::Bounce(r) | Class::OwnLoop(r), None) => {
            Outcome::Ignored {
                reason: format!("automatic mail that belongs to no ticket: {r}"),
            }
        }
    };
    Ok(Some(outcome))
}

/// A rule rejected the mail: a person gets a polite reply (within the loop
/// guards), and the mail is kept in the ignored list with why.
#[allow(clippy::too_many_arguments)]
fn reject(
    tx: &Tx<'_>,
    policy: &Policy,
    mail: &InboundMail,
    mailbox: &str,
    human: bool,
    template: &str,
    routing: &Routing,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let rule = routing.applied.join(", ");
    let sent = match (&mail.from, human, auto_reply_refusal(mail)) {
        (_, true, Some(why)) => Err(why.to_string()),
        (Some(from), true, None) => automail::queue_rejection(
            tx,
            policy,
            automail::Rejection {
                from: policy.sender_for_mail(mail, Some(mailbox)),
                to: mail.reply_to.as_ref().unwrap_or(from),
                template,
                rule: &rule,
                message: MessageContext {
                    subject: &mail.subject,
                    text: &mail.text,
                },
                in_reply_to: mail.message_id.clone(),
            },
            now,
        )?,
        _ => Err("the mail is automatic or has no sender".to_string()),
    };
    Ok(Outcome::Ignored {
        reason: match sent {
            Ok(()) => format!("rejected by rule {rule}; a polite reply was queued"),
            Err(why) => format!("rejected by rule {rule}; no reply sent: {why}"),
        },
    })
}

fn dropped(record: &MessageRecord) -> Vec<DroppedAttachment> {
    record
        .attachments
        .iter()
        .filter(|a| a.dropped)
        .map(|a| DroppedAttachment {
            name: a.name.clone(),
            size: a.size,
        })
        .collect()
}

/// Why this person's mail gets no automatic reply at all, if so: the sender
/// asked for none, or From names several authors and no Sender says who
/// sent it (answering one of them, or all, would be a guess).
fn auto_reply_refusal(mail: &InboundMail) -> Option<&'static str> {
    if mail.auto.suppress_auto_response {
        Some("the sender asked for no automatic replies (X-Auto-Response-Suppress)")
    } else if mail.several_authors {
        Some("From names several authors and no Sender: whom to answer is unknown")
    } else {
        None
    }
}

/// Where automatic answers to this mail go: Reply-To, else From.
fn answer_to(mail: &InboundMail, fallback: &Party) -> Party {
    mail.reply_to.clone().unwrap_or_else(|| fallback.clone())
}

/// An automatic answer to a requester's mail (the acknowledgement, the size
/// notice): to their Reply-To, threaded under their mail, rate-limited.
fn answer_to_requester<'a>(
    kind: &'a str,
    template: &'a str,
    mail: &'a InboundMail,
    requester: &Party,
    dropped_attachments: Vec<DroppedAttachment>,
) -> AutoMail<'a> {
    AutoMail {
        kind,
        template,
        to: answer_to(mail, requester),
        requester: requester.clone(),
        from_name: None,
        reply_to: None,
        in_reply_to: mail.message_id.clone(),
        references: references_for(mail),
        auto_submitted: AutoSubmitted::AutoReplied,
        message: MessageContext {
            subject: &mail.subject,
            text: &mail.text,
        },
        dropped_attachments,
        rate_limited: true,
    }
}

fn references_for(mail: &InboundMail) -> Vec<String> {
    let mut refs = mail.references.clone();
    if let Some(mid) = &mail.message_id {
        if !refs.contains(mid) {
            refs.push(mid.clone());
        }
    }
    refs
}

/// The trail of what the routing rules set on a ticket.
fn routed_event(t: &Ticket, routing: &Routing, now: DateTime<Utc>) -> Event {
    let routed = EventKind::Routed {
        rules: routing.applied.clone(),
        team: t.team.clone(),
        priority: t.priority,
        assignee: t.assignee.clone(),
        tags: t.tags.clone(),
    };
    event(now, "deskgate", routed)
}

/// The Cc of a requester's first mail, less the desk's own addresses, its
/// agents and the requester: the people who follow the ticket.
fn watchers_of(
    policy: &Policy,
    from: &Party,
    mail: &InboundMail,
) -> Vec<crate::mail::address::EmailAddress> {
    let mut w = Vec::new();
    for p in &mail.cc {
        let a = &p.address;
        if policy.is_own_address(a)
            || policy.agent(a).is_some()
            || *a == from.address
            || w.contains(a)
            || crate::mail::classify::is_machine_address(a)
        {
            continue;
        }
        w.push(a.clone());
    }
    w
}

/// Notifies agents of a new ticket or a requester's reply. From `<requester>
/// via <desk>` at the help address, Reply-To the signed reply address, the token in the
/// subject and In-Reply-To the requester's mail: the agent's plain "reply"
/// comes back to deskgate and threads onto the same ticket. The mail's files
/// go along within `notification_attachments` (`desk::notify_files`); those
/// left behind are named in the text and on the ticket. `stored` is what the
/// store kept of each of the mail's files.
pub fn notify_agents(
    tx: &Tx<'_>,
    policy: &Policy,
    ticket: &mut Ticket,
    mail: &InboundMail,
    stored: &[AttachmentMeta],
    now: DateTime<Utc>,
) -> TxResult<usize> {
    let mut queued = 0;
    let stranger = stranger_on_requester_side(ticket, mail);
    let writer = stranger.clone().unwrap_or_else(|| ticket.requester.clone());
    let via = format!(
        "{} via {}",
        writer.name.as_deref().unwrap_or(writer.address.as_str()),
        policy.sender_of(ticket).display_name()
    );
    let text: std::borrow::Cow<'_, str> = match &stranger {
        Some(s) => std::borrow::Cow::Owned(format!(
            "[Note: sent by {}, not by the requester ({}) or a watcher of this ticket.]\n\n{}",
            s.address, ticket.requester.address, mail.text
        )),
        None => std::borrow::Cow::Borrowed(&mail.text),
    };
    let files = notify_files::choose(
        &mail.attachments,
        stored,
        policy.limits.notification_attachments,
    );
    let text = match notify_files::note(ticket.id, &files.not_sent) {
        note if note.is_empty() => text,
        note => std::borrow::Cow::Owned(format!("{text}{note}")),
    };
    let agents = workers(policy, ticket);
    if !agents.is_empty() && !files.not_sent.is_empty() {
        tx.add_event(
            ticket,
            &event(
                now,
                "deskgate",
                EventKind::AttachmentsNotSent {
                    mail: "notification".into(),
                    files: files.not_sent.clone(),
                },
            ),
        )?;
    }
    for agent in agents {
        let n = AutoMail {
            kind: "notification",
            template: "notification.txt",
            reply_to: Some(reply_to_for(policy, ticket, &agent.address)),
            to: agent,
            requester: writer.clone(),
            from_name: Some(via.clone()),
            in_reply_to: mail.message_id.clone(),
            references: references_for(mail),
            auto_submitted: AutoSubmitted::AutoGenerated,
            message: MessageContext {
                subject: &mail.subject,
                text: &text,
            },
            dropped_attachments: Vec::new(),
            rate_limited: false,
        };
        queued += automail::queue_automatic_with_files(
            tx,
            policy,
            ticket,
            n,
            files.attached.clone(),
            now,
        )?;
    }
    Ok(queued)
}

/// The sender of a requester-side mail when it is neither the ticket's
/// requester nor a watcher: anyone who knows a ticket's token can write on
/// it, and agents must not take them for the requester.
fn stranger_on_requester_side(ticket: &Ticket, mail: &InboundMail) -> Option<Party> {
    let from = mail.from.as_ref()?;
    let known = from.address == ticket.requester.address || ticket.watchers.contains(&from.address);
    (!known).then(|| from.clone())
}

#[allow(clippy::too_many_arguments)]
pub fn create_ticket(
    tx: &Tx<'_>,
    policy: &Policy,
    mailbox: &str,
    from: &Party,
    mail: &InboundMail,
    record: &MessageRecord,
    routing: &Routing,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let id = tx.next_ticket_id(policy.first_ticket)?;
    let subject = policy.matcher.strip_tokens(&mail.subject);
    let subject = if subject.is_empty() {
        "(no subject)".to_string()
    } else {
        subject
    };
    let mut ticket = Ticket::new(id, subject, from.clone(), mailbox, now);
    // The queue the requester wrote to; its defaults come after the rules'.
    let queue = policy.queue_for_mail(mail, Some(mailbox));
    ticket.queue = queue.map(|q| q.name.clone());
    ticket.priority = routing.priority.unwrap_or_default();
    ticket.team = routing
        .team
        .clone()
        .or_else(|| queue.and_then(|q| q.default_team.clone()))
        .or_else(|| policy.mailbox_teams.get(mailbox).cloned());
    ticket.assignee = routing.assignee.as_ref().map(|a| a.to_string());
    ticket.tags = routing.tags.clone();
    ticket.watchers = watchers_of(policy, from, mail);
    ticket.last_inbound_id = mail.message_id.clone();
    ticket.sla = routing
        .sla
        .clone()
        .or_else(|| queue.and_then(|q| q.default_sla.clone()))
        .or_else(|| policy.default_sla.clone());
    tx.add_event(
        &mut ticket,
        &event(
            now,
            from.address.as_str(),
            EventKind::Created {
                mailbox: mailbox.into(),
            },
        ),
    )?;
    if !routing.applied.is_empty() || ticket.team.is_some() {
        let routed = routed_event(&ticket, routing, now);
        tx.add_event(&mut ticket, &routed)?;
    }
    tx.add_message(&mut ticket, record.clone())?;
    if let Some(mid) = &mail.message_id {
        // New by the dedupe check, so nobody holds this id yet.
        tx.claim_message_id(mid, id)?;
    }
    let template = match &routing.acknowledge {
        Some(AckChoice::None) => None,
        Some(AckChoice::Template(t)) => Some(t.as_str()),
        None => Some("acknowledgement.txt"),
    };
    let mut queued = match (auto_reply_refusal(mail), template) {
        (Some(reason), _) => {
            let reason = reason.to_string();
            tx.add_event(
                &mut ticket,
                &event(now, "deskgate", EventKind::AckSkipped { reason }),
            )?;
            0
        }
        (None, None) => {
            let reason = format!(
                "rule {} says no acknowledgement",
                routing.applied.join(", ")
            );
            tx.add_event(
                &mut ticket,
                &event(now, "deskgate", EventKind::AckSkipped { reason }),
            )?;
            0
        }
        (None, Some(template)) => {
            let ack = answer_to_requester("acknowledgement", template, mail, from, dropped(record));
            automail::queue_automatic(tx, policy, &mut ticket, ack, now)?
        }
    };
    queued += notify_agents(tx, policy, &mut ticket, mail, &record.attachments, now)?;
    tx.put_ticket(&ticket)?;
    Ok(Outcome::Created { ticket: id, queued })
}

/// How automatic mail stored on a ticket is labelled, with why it counts as
/// automatic (`automatic mail: Auto-Submitted: auto-replied (vacation)`),
/// so nobody takes an out-of-office for the requester's own words.
fn automatic_label(class: &Class) -> Option<String> {
    match class {
        Class::Human => None,
        Class::Automatic(why) => Some(format!("automatic mail: {why}")),
        Class::Bounce(why) => Some(format!("automatic mail (delivery report): {why}")),
        Class::OwnLoop(why) => Some(format!("automatic mail (our own mail looping): {why}")),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn thread_onto(
    tx: &Tx<'_>,
    policy: &Policy,
    id: TicketId,
    mail: &InboundMail,
    class: &Class,
    record: &MessageRecord,
    routing: &Routing,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let mut ticket = tx.ticket_required(id)?;
    let actor = mail
        .from
        .as_ref()
        .map(|p| p.address.to_string())
        .unwrap_or_else(|| "unknown sender".into());
    let mut stored = record.clone();
    if let Some(label) = automatic_label(class) {
        stored.kind = Some(label);
    }
    tx.add_message(&mut ticket, stored)?;
    if let Some(mid) = &mail.message_id {
        tx.claim_message_id(mid, id)?;
    }
    if !routing.applied.is_empty() {
        if let Some(t) = &routing.team {
            ticket.team = Some(t.clone());
        }
        if let Some(p) = routing.priority {
            ticket.priority = p;
        }
        if let Some(a) = &routing.assignee {
            ticket.assignee = Some(a.to_string());
        }
        for tag in &routing.tags {
            if !ticket.tags.contains(tag) {
                ticket.tags.push(tag.clone());
            }
        }
        let routed = routed_event(&ticket, routing, now);
        tx.add_event(&mut ticket, &routed)?;
    }
    let from_requester = mail.from.as_ref().map(|p| &p.address) == Some(&ticket.requester.address);
    let mut queued = 0;
    // Relays answer the requester's own words: an out-of-office or any
    // other automatic mail must never be what the next reply threads to.
    if from_requester && mail.message_id.is_some() && *class == Class::Human {
        ticket.last_inbound_id = mail.message_id.clone();
    }
    if from_requester && class.may_auto_reply() {
        let reopen = match ticket.status {
            Status::Resolved | Status::Closed => Some("requester replied to a finished ticket"),
            Status::Waiting => Some("requester replied"),
            _ => None,
        };
        if let Some(reason) = reopen {
            let from = ticket.set_status(Status::Open, now);
            tx.add_event(
                &mut ticket,
                &event(
                    now,
                    &actor,
                    EventKind::StatusChanged {
                        from,
                        to: Status::Open,
                        reason: reason.into(),
                    },
                ),
            )?;
        }
    }
    if *class == Class::Human {
        // The requester (or a watcher) wrote: whoever works the ticket
        // should know, and see the ticket as this mail left it (reopened).
        queued += notify_agents(tx, policy, &mut ticket, mail, &record.attachments, now)?;
    }
    if from_requester && class.may_auto_reply() {
        let dropped = dropped(record);
        if !dropped.is_empty() && auto_reply_refusal(mail).is_none() {
            let requester = ticket.requester.clone();
            let notice =
                answer_to_requester("size notice", "oversized.txt", mail, &requester, dropped);
            queued += automail::queue_automatic(tx, policy, &mut ticket, notice, now)?;
        }
    }
    ticket.updated_at = now;
    tx.put_ticket(&ticket)?;
    Ok(Outcome::Threaded { ticket: id, queued })
}
