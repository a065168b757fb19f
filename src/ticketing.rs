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
    AddressState, Direction, Event, EventKind, MessageRecord, Priority, Status, Ticket, TicketId,
};
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

pub fn create_ticket(
    tx: &Tx<'_>,
    policy: &Policy,
    mailbox: &str,
    from: &Party,
    mail: &InboundMail,
    record: &MessageRecord,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let id = tx.next_ticket_id(policy.first_ticket)?;
    let subject = policy.matcher.strip_tokens(&mail.subject);
    let mut ticket = Ticket {
        id,
        subject: if subject.is_empty() {
            "(no subject)".into()
        } else {
            subject
        },
        requester: from.clone(),
        status: Status::New,
        priority: Priority::Normal,
        team: None,
        assignee: None,
        mailbox: mailbox.to_string(),
        created_at: now,
        updated_at: now,
        first_response_at: None,
        resolved_at: None,
        message_count: 0,
        event_count: 0,
        auto_sent: Vec::new(),
    };
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
    tx.add_message(&mut ticket, record.clone())?;
    if let Some(mid) = &mail.message_id {
        // New by the dedupe check, so nobody holds this id yet.
        tx.claim_message_id(mid, id)?;
    }
    let queued = if mail.auto.suppress_auto_response {
        tx.add_event(
            &mut ticket,
            &event(
                now,
                "deskgate",
                EventKind::AckSkipped {
                    reason: "the sender asked for no automatic replies (X-Auto-Response-Suppress)"
                        .into(),
                },
            ),
        )?;
        0
    } else {
        let ack = AutoMail {
            kind: "acknowledgement",
            template: "acknowledgement.txt",
            to: answer_to(mail, from),
            in_reply_to: mail.message_id.clone(),
            references: references_for(mail),
            auto_submitted: AutoSubmitted::AutoReplied,
            message: MessageContext {
                subject: &mail.subject,
                text: &mail.text,
            },
            dropped_attachments: dropped(record),
        };
        automail::queue_automatic(tx, policy, &mut ticket, ack, now)?
    };
    tx.put_ticket(&ticket)?;
    Ok(Outcome::Created { ticket: id, queued })
}

fn load(tx: &Tx<'_>, id: TicketId) -> TxResult<Ticket> {
    tx.ticket(id)?.ok_or_else(|| {
        // The caller saw it a moment ago in this same transaction.
        ConflictableTransactionError::Abort(StoreError::Aborted(format!("ticket {id} vanished")))
    })
}

pub fn thread_onto(
    tx: &Tx<'_>,
    policy: &Policy,
    id: TicketId,
    mail: &InboundMail,
    class: &Class,
    record: &MessageRecord,
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
    let from_requester = mail.from.as_ref().map(|p| &p.address) == Some(&ticket.requester.address);
    let mut queued = 0;
    if from_requester && class.may_auto_reply() {
        let reopen = match ticket.status {
            Status::Resolved | Status::Closed => Some("requester replied to a finished ticket"),
            Status::Waiting => Some("requester replied"),
            _ => None,
        };
        if let Some(reason) = reopen {
            let from = ticket.status;
            ticket.status = Status::Open;
            ticket.resolved_at = None;
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
                in_reply_to: mail.message_id.clone(),
                references: references_for(mail),
                auto_submitted: AutoSubmitted::AutoReplied,
                message: MessageContext {
                    subject: &mail.subject,
                    text: &mail.text,
                },
                dropped_attachments: dropped,
            };
            queued = automail::queue_automatic(tx, policy, &mut ticket, notice, now)?;
        }
    }
    ticket.updated_at = now;
    tx.put_ticket(&ticket)?;
    Ok(Outcome::Threaded { ticket: id, queued })
}

/// Records a delivery report on the ticket whose mail it reports on, and
/// counts hard failures against the addresses. Only a report matched to a mail
/// of ours counts: a forged bounce cannot silence an address.
pub fn record_bounce(
    tx: &Tx<'_>,
    policy: &Policy,
    ticket: Option<(TicketId, String)>,
    record: &MessageRecord,
    report: &BounceReport,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let failed: Vec<String> = report.failed.iter().map(|f| f.address.clone()).collect();
    let Some((id, matched_id)) = ticket else {
        return Ok(Outcome::Bounce {
            ticket: None,
            failed,
        });
    };
    let mut t = load(tx, id)?;
    let mut rec = record.clone();
    rec.kind = Some("delivery report".into());
    tx.add_message(&mut t, rec)?;
    for f in &report.failed {
        tx.add_event(
            &mut t,
            &event(
                now,
                "deskgate",
                EventKind::DeliveryFailed {
                    message_id: Some(matched_id.clone()),
                    recipient: f.address.clone(),
                    status: f.status.clone(),
                    diagnostic: f.diagnostic.clone(),
                    hard: f.hard,
                },
            ),
        )?;
        if !f.hard {
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
    if report.failed.is_empty() {
        tx.add_event(
            &mut t,
            &event(
                now,
                "deskgate",
                EventKind::DeliveryFailed {
                    message_id: Some(matched_id),
                    recipient: "(not stated in the report)".into(),
                    status: None,
                    diagnostic: None,
                    hard: false,
                },
            ),
        )?;
    }
    t.updated_at = now;
    tx.put_ticket(&t)?;
    Ok(Outcome::Bounce {
        ticket: Some(id),
        failed,
    })
}
