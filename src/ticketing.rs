//! What an incoming mail does to a ticket: open a new one, continue an
//! existing one (reopening it when the requester writes back), or record a
//! delivery report on the ticket whose mail bounced. Runs inside the engine's
//! transaction.

use chrono::{DateTime, Utc};
use sled::transaction::ConflictableTransactionError;

use crate::address::Party;
use crate::automail::{self, AutoMail, DroppedAttachment, MessageContext};
use crate::bounce::BounceReport;
use crate::classify::Class;
use crate::compose::AutoSubmitted;
use crate::engine::{Outcome, Policy};
use crate::inbound::InboundMail;
use crate::model::{
    AddressState, Direction, Event, EventKind, MessageRecord, Status, Ticket, TicketId,
};
use crate::rules::{AckChoice, Routing};
use crate::store::{StoreError, Tx, TxResult};
use crate::text::trim_quoted;

pub fn event(now: DateTime<Utc>, actor: &str, kind: EventKind) -> Event {
    Event {
        at: now,
        actor: actor.to_string(),
        kind,
    }
}

/// The stored form of an incoming mail. Attachments over the size limit are
/// listed but marked dropped.
pub fn inbound_record(mail: &InboundMail, now: DateTime<Utc>, oversized: bool) -> MessageRecord {
    let mut text = trim_quoted(&mail.text);
    let attachments: Vec<crate::model::AttachmentMeta> = mail
        .attachments
        .iter()
        .map(|a| crate::model::AttachmentMeta {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.bytes.len() as u64,
            sha256: if oversized {
                String::new()
            } else {
                crate::inbound::sha256_hex(&a.bytes)
            },
            dropped: oversized,
        })
        .collect();
    if oversized {
        for a in &attachments {
            text.push_str(&format!(
                "\n[deskgate: attachment \"{}\" ({} bytes) was not kept: the mail was over the size limit; the original stays in the mailbox]",
                a.name, a.size
            ));
        }
    }
    MessageRecord {
        ticket: 0,
        seq: 0,
        direction: Direction::Inbound,
        from: mail.from.clone(),
        to: mail.to.clone(),
        cc: mail.cc.clone(),
        subject: mail.subject.clone(),
        date: mail.date,
        recorded_at: now,
        message_id: mail.message_id.clone(),
        text,
        attachments,
        raw_key: (!oversized).then(|| mail.raw_sha256.clone()),
        kind: None,
    }
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

/// Where automatic answers to this mail go: Reply-To, else From.
fn answer_to(mail: &InboundMail, fallback: &Party) -> Party {
    mail.reply_to.clone().unwrap_or_else(|| fallback.clone())
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

/// A person who writes to us is reachable again, whatever bounced before.
pub fn clear_bounce_state(tx: &Tx<'_>, mail: &InboundMail) -> TxResult<()> {
    if let Some(from) = &mail.from {
        if tx.address_state(from.address.as_str())?.is_some() {
            tx.remove_address_state(from.address.as_str())?;
        }
    }
    Ok(())
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
) -> Vec<crate::address::EmailAddress> {
    let mut w = Vec::new();
    for p in &mail.cc {
        let a = &p.address;
        let ours = a.domain() == policy.desk.address.domain()
            && (a.local_part() == policy.desk.address.local_part()
                || a.local_part()
                    .starts_with(&format!("{}+", policy.desk.address.local_part())));
        if ours
            || policy.agent(a).is_some()
            || *a == from.address
            || w.contains(a)
            || crate::classify::is_machine_address(a)
        {
            continue;
        }
        w.push(a.clone());
    }
    w
}

/// Where an agent's reply to a notification should go: the keyed per-ticket
/// address (proof the reply is theirs), or plainly the help address.
pub fn reply_to_for(
    policy: &Policy,
    ticket: TicketId,
    agent: &crate::address::EmailAddress,
) -> Party {
    let signed = (policy.trust.signed_reply_addresses && !policy.reply_key.is_empty())
        .then(|| {
            crate::trust::reply_address(&policy.desk.address, &policy.reply_key, ticket, agent)
        })
        .flatten();
    Party {
        name: policy.desk.name.clone(),
        address: signed.unwrap_or_else(|| policy.desk.address.clone()),
    }
}

/// Who hears about a new ticket: its assignee, or else every member of its team.
fn notify_targets(policy: &Policy, ticket: &Ticket) -> Vec<Party> {
    let agents: Vec<&crate::address::EmailAddress> = match (&ticket.assignee, &ticket.team) {
        (Some(a), _) => policy.agent_address(a).into_iter().collect(),
        (None, Some(team)) => policy
            .team(team)
            .map(|t| t.members.iter().collect())
            .unwrap_or_default(),
        (None, None) => Vec::new(),
    };
    agents
        .into_iter()
        // The requester needs no notification of their own mail.
        .filter(|a| **a != ticket.requester.address)
        .map(|a| Party {
            name: policy.agent(a).and_then(|x| x.name.clone()),
            address: a.clone(),
        })
        .collect()
}

/// Notifies agents of a new ticket or a requester's reply. From `<requester>
/// via <desk>` at the help address, Reply-To the signed reply address, the token in the
/// subject and In-Reply-To the requester's mail: the agent's plain "reply"
/// comes back to deskgate and threads onto the same ticket.
pub fn notify_agents(
    tx: &Tx<'_>,
    policy: &Policy,
    ticket: &mut Ticket,
    mail: &InboundMail,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    let mut queued = 0;
    let via = format!(
        "{} via {}",
        ticket
            .requester
            .name
            .as_deref()
            .unwrap_or(ticket.requester.address.as_str()),
        policy.desk.name.as_deref().unwrap_or("the help desk")
    );
    for agent in notify_targets(policy, ticket) {
        let n = AutoMail {
            kind: "notification",
            template: "notification.txt",
            reply_to: Some(reply_to_for(policy, ticket.id, &agent.address)),
            to: agent,
            requester: ticket.requester.clone(),
            from_name: Some(via.clone()),
            in_reply_to: mail.message_id.clone(),
            references: references_for(mail),
            auto_submitted: AutoSubmitted::AutoGenerated,
            message: MessageContext {
                subject: &mail.subject,
                text: &mail.text,
            },
            dropped_attachments: Vec::new(),
            rate_limited: false,
        };
        queued += automail::queue_automatic(tx, policy, ticket, n, now)?;
    }
    Ok(queued)
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
    ticket.priority = routing.priority.unwrap_or_default();
    ticket.team = routing
        .team
        .clone()
        .or_else(|| policy.mailbox_teams.get(mailbox).cloned());
    ticket.assignee = routing.assignee.as_ref().map(|a| a.to_string());
    ticket.tags = routing.tags.clone();
    ticket.watchers = watchers_of(policy, from, mail);
    ticket.last_inbound_id = mail.message_id.clone();
    ticket.sla = routing.sla.clone().or_else(|| policy.default_sla.clone());
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
    let mut queued = match template {
        _ if mail.auto.suppress_auto_response => {
            let reason =
                "the sender asked for no automatic replies (X-Auto-Response-Suppress)".to_string();
            tx.add_event(
                &mut ticket,
                &event(now, "deskgate", EventKind::AckSkipped { reason }),
            )?;
            0
        }
        None => {
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
        Some(template) => {
            let ack = AutoMail {
                kind: "acknowledgement",
                template,
                to: answer_to(mail, from),
                requester: from.clone(),
                from_name: None,
                reply_to: None,
                in_reply_to: mail.message_id.clone(),
                references: references_for(mail),
                auto_submitted: AutoSubmitted::AutoReplied,
                message: MessageContext {
                    subject: &mail.subject,
                    text: &mail.text,
                },
                dropped_attachments: dropped(record),
                rate_limited: true,
            };
            automail::queue_automatic(tx, policy, &mut ticket, ack, now)?
        }
    };
    queued += notify_agents(tx, policy, &mut ticket, mail, now)?;
    tx.put_ticket(&ticket)?;
    Ok(Outcome::Created { ticket: id, queued })
}

fn load(tx: &Tx<'_>, id: TicketId) -> TxResult<Ticket> {
    tx.ticket(id)?.ok_or_else(|| {
        // The caller saw it a moment ago in this same transaction.
        ConflictableTransactionError::Abort(StoreError::Aborted(format!("ticket {id} vanished")))
    })
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
    let mut ticket = load(tx, id)?;
    let actor = mail
        .from
        .as_ref()
        .map(|p| p.address.to_string())
        .unwrap_or_else(|| "unknown sender".into());
    tx.add_message(&mut ticket, record.clone())?;
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
    if from_requester && mail.message_id.is_some() {
        ticket.last_inbound_id = mail.message_id.clone();
    }
    if *class == Class::Human {
        // The requester (or a watcher) wrote: whoever works the ticket should know.
        queued += notify_agents(tx, policy, &mut ticket, mail, now)?;
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
        let dropped = dropped(record);
        if !dropped.is_empty() && !mail.auto.suppress_auto_response {
            let notice = AutoMail {
                kind: "size notice",
                template: "oversized.txt",
                to: answer_to(mail, &ticket.requester.clone()),
                requester: ticket.requester.clone(),
                from_name: None,
                reply_to: None,
                in_reply_to: mail.message_id.clone(),
                references: references_for(mail),
                auto_submitted: AutoSubmitted::AutoReplied,
                message: MessageContext {
                    subject: &mail.subject,
                    text: &mail.text,
                },
                dropped_attachments: dropped,
                rate_limited: true,
            };
            queued += automail::queue_automatic(tx, policy, &mut ticket, notice, now)?;
        }
    }
    ticket.updated_at = now;
    tx.put_ticket(&ticket)?;
    Ok(Outcome::Threaded { ticket: id, queued })
}

/// Where a delivery report belongs.
pub struct BounceTarget {
    pub ticket: TicketId,
    /// The Message-ID (or token) it was matched through.
    pub message_id: String,
    /// Recipients of our mail it reports on; empty when it was not matched
    /// through a mail we sent, and then no address is counted.
    pub sent_to: Vec<crate::address::EmailAddress>,
}

/// Records a delivery report on the ticket whose mail it reports on, and
/// counts hard failures against the addresses that mail went to. Only a
/// report that quotes a mail we sent counts, and only for that mail's
/// recipients: a forged bounce cannot silence an address.
pub fn record_bounce(
    tx: &Tx<'_>,
    policy: &Policy,
    target: Option<BounceTarget>,
    record: &MessageRecord,
    report: &BounceReport,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let failed: Vec<String> = report.failed.iter().map(|f| f.address.clone()).collect();
    let Some(target) = target else {
        return Ok(Outcome::Bounce {
            ticket: None,
            failed,
        });
    };
    let id = target.ticket;
    let mut t = load(tx, id)?;
    let mut rec = record.clone();
    rec.kind = Some("delivery report".into());
    tx.add_message(&mut t, rec)?;
    let failure =
        |recipient: &str, status: Option<String>, diagnostic: Option<String>, hard: bool| {
            event(
                now,
                "deskgate",
                EventKind::DeliveryFailed {
                    message_id: Some(target.message_id.clone()),
                    recipient: recipient.to_string(),
                    status,
                    diagnostic,
                    hard,
                },
            )
        };
    for f in &report.failed {
        tx.add_event(
            &mut t,
            &failure(&f.address, f.status.clone(), f.diagnostic.clone(), f.hard),
        )?;
        let counts = f.hard && target.sent_to.iter().any(|r| r.as_str() == f.address);
        if !counts {
            continue;
        }
        let mut st: AddressState = tx.address_state(&f.address)?.unwrap_or_default();
        st.hard_bounces += 1;
        st.last_bounce = Some(now);
        if st.undeliverable_since.is_none() && st.hard_bounces >= policy.limits.undeliverable_after
        {
            st.undeliverable_since = Some(now);
            tx.add_event(
                &mut t,
                &event(
                    now,
                    "deskgate",
                    EventKind::AddressUndeliverable {
                        address: f.address.clone(),
                        hard_bounces: st.hard_bounces,
                    },
                ),
            )?;
        }
        tx.put_address_state(&f.address, &st)?;
    }
    for d in &report.delayed {
        tx.add_event(
            &mut t,
            &failure(
                d,
                None,
                Some("delayed: the server is still trying".into()),
                false,
            ),
        )?;
    }
    if report.failed.is_empty() && report.delayed.is_empty() {
        tx.add_event(
            &mut t,
            &failure("(not stated in the report)", None, None, false),
        )?;
    }
    t.updated_at = now;
    tx.put_ticket(&t)?;
    Ok(Outcome::Bounce {
        ticket: Some(id),
        failed,
    })
}
