//! Automatic mail (acknowledgements, notices) and the guards that keep it from
//! looping: none to our own addresses (the desk's and every queue's), none
//! to an address that hard-bounced too often, none past the per-recipient and
//! per-ticket rate limits. What a guard
//! holds back is recorded on the ticket, never silently dropped.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Limits;
use crate::desk::policy::Policy;
use crate::desk::queue::Sender;
use crate::mail::address::{EmailAddress, Party};
use crate::mail::outgoing::{self, AutoSubmitted, Outgoing};
use crate::store::records::{Direction, Event, EventKind, MessageRecord, OutboxEntry, Ticket};
use crate::store::{Tx, TxResult};

/// Whether one more automatic mail is allowed, given how many went to the
/// recipient and from the ticket within the window (see
/// [`SendWindow`](crate::store::records::SendWindow)).
pub fn check_limits(to_recipient: u32, from_ticket: u32, limits: &Limits) -> Result<(), String> {
    let window = humantime::format_duration(limits.auto_reply_window);
    if to_recipient >= limits.auto_replies_per_recipient {
        return Err(format!(
            "rate limit: {to_recipient} automatic mails to this address within {window}"
        ));
    }
    if from_ticket >= limits.auto_replies_per_ticket {
        return Err(format!(
            "rate limit: {from_ticket} automatic mails from this ticket within {window}"
        ));
    }
    Ok(())
}

/// One attachment a size limit kept out of the store.
#[derive(Debug, Clone, Serialize)]
pub struct DroppedAttachment {
    pub name: String,
    pub size: u64,
}

/// What a template sees (documented in the README).
#[derive(Serialize)]
pub struct MailContext<'a> {
    pub ticket: Option<&'a Ticket>,
    pub tag: String,
    /// Who this mail goes to.
    pub recipient: &'a Party,
    pub recipient_name: &'a str,
    /// Who opened the ticket (or wrote the mail being answered).
    pub requester: &'a Party,
    pub requester_name: &'a str,
    pub desk: &'a Party,
    pub message: MessageContext<'a>,
    pub dropped_attachments: Vec<DroppedAttachment>,
    pub max_message_size: String,
    /// The rule that rejected the mail (rejection.txt).
    pub rule: Option<&'a str>,
}

#[derive(Serialize)]
pub struct MessageContext<'a> {
    pub subject: &'a str,
    pub text: &'a str,
}

/// An automatic mail to be rendered and queued on a ticket.
pub struct AutoMail<'a> {
    /// What it is, for the history ("acknowledgement", "notification" …).
    pub kind: &'a str,
    pub template: &'a str,
    pub to: Party,
    pub requester: Party,
    /// Display name of the sender, e.g. "Alice via Help Desk"; default the desk's name.
    pub from_name: Option<String>,
    pub reply_to: Option<Party>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub auto_submitted: AutoSubmitted,
    pub message: MessageContext<'a>,
    pub dropped_attachments: Vec<DroppedAttachment>,
    /// Loop protection: mail to people outside the desk is rate-limited;
    /// notifications to the desk's own agents are not.
    pub rate_limited: bool,
}

fn event(now: DateTime<Utc>, kind: EventKind) -> Event {
    Event {
        at: now,
        actor: "deskgate".into(),
        kind,
    }
}

/// Records on the ticket why an automatic mail was not sent; queued nothing.
fn skipped(
    tx: &Tx<'_>,
    ticket: &mut Ticket,
    reason: String,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    tx.add_event(ticket, &event(now, EventKind::AckSkipped { reason }))?;
    Ok(0)
}

fn display_name(p: &Party) -> &str {
    p.name.as_deref().unwrap_or(p.address.local_part())
}

/// The guards every automatic mail passes, whatever it is: a reason to skip it, or None.
fn blocked(tx: &Tx<'_>, policy: &Policy, to: &EmailAddress) -> TxResult<Option<String>> {
    if policy.is_own_address(to) {
        return Ok(Some(format!("{to} is one of the desk's own addresses")));
    }
    if crate::mail::classify::is_machine_address(to) {
        return Ok(Some(format!("{to} is a machine address")));
    }
    if let Some(st) = tx.address_state(to.as_str())? {
        if st.undeliverable_since.is_some() {
            return Ok(Some(format!(
                "{to} is undeliverable ({} hard bounces)",
                st.hard_bounces
            )));
        }
    }
    Ok(None)
}

/// Renders, checks the guards and queues (or holds back) one automatic mail.
/// Returns how many mails were queued (0 or 1).
pub fn queue_automatic(
    tx: &Tx<'_>,
    policy: &Policy,
    ticket: &mut Ticket,
    mail: AutoMail<'_>,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    queue_automatic_with_files(tx, policy, ticket, mail, Vec::new(), now)
}

/// [`queue_automatic`] for a mail that carries files (an agent's
/// notification with the requester's attachments).
pub fn queue_automatic_with_files(
    tx: &Tx<'_>,
    policy: &Policy,
    ticket: &mut Ticket,
    mail: AutoMail<'_>,
    files: Vec<outgoing::OutgoingAttachment>,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    let to = mail.to.address.clone();
    if let Some(reason) = blocked(tx, policy, &to)? {
        return skipped(tx, ticket, format!("no {}: {reason}", mail.kind), now);
    }
    let sender = policy.sender_of(ticket);
    let ctx = MailContext {
        ticket: Some(ticket),
        tag: policy.matcher.render(ticket.id),
        recipient: &mail.to,
        recipient_name: display_name(&mail.to),
        requester: &mail.requester,
        requester_name: display_name(&mail.requester),
        desk: sender.party,
        message: mail.message,
        dropped_attachments: mail.dropped_attachments,
        max_message_size: bytesize::ByteSize::b(policy.limits.max_message_size).to_string(),
        rule: None,
    };
    let rendered = match sender.templates.render(mail.template, &ctx) {
        Ok(r) => r,
        Err(e) => {
            return skipped(tx, ticket, e.to_string(), now);
        }
    };
    let outgoing = Outgoing {
        from: Party {
            name: mail.from_name.or_else(|| sender.party.name.clone()),
            address: sender.address().clone(),
        },
        to: vec![mail.to.clone()],
        reply_to: mail.reply_to,
        subject: policy.matcher.tagged_subject(ticket.id, &rendered.subject),
        body: rendered.body,
        message_id: outgoing::new_message_id("auto", Some(ticket.id), sender.address().domain()),
        in_reply_to: mail.in_reply_to,
        references: mail.references,
        auto_submitted: Some(mail.auto_submitted),
        x_loop: sender.address().clone(),
        date: SystemTime::from(now),
        attachments: files,
    };

    if mail.rate_limited {
        let window = policy.limits.auto_reply_window;
        let mut recipient_log = tx.auto_sent(to.as_str())?;
        if let Err(reason) = check_limits(
            recipient_log.count(now, window),
            ticket.auto_sent.count(now, window),
            &policy.limits,
        ) {
            // Kept on the ticket so an agent can still see (and send) it.
            tx.add_message(
                ticket,
                outbound_record(
                    ticket.id,
                    &outgoing,
                    &format!("{} (held back)", mail.kind),
                    now,
                ),
            )?;
            tx.add_event(
                ticket,
                &event(
                    now,
                    EventKind::AutoReplyHeld {
                        kind: mail.kind.to_string(),
                        to: to.to_string(),
                        reason,
                    },
                ),
            )?;
            return Ok(0);
        }
        recipient_log.record(now, window);
        tx.put_auto_sent(to.as_str(), &recipient_log)?;
        ticket.auto_sent.record(now, window);
    }
    queue_mail(tx, policy, ticket, mail.kind, &outgoing, now)
}

/// A polite refusal for a mail a rule rejected: no ticket, so it is queued on
/// its own, under the same guards and the per-recipient limit. Returns why it
/// was not sent, if it was not.
/// A rule's refusal of a mail, to be answered politely.
pub struct Rejection<'a> {
    /// The queue the mail was written to: the refusal comes from there.
    pub from: Sender<'a>,
    pub to: &'a Party,
    pub template: &'a str,
    pub rule: &'a str,
    pub message: MessageContext<'a>,
    pub in_reply_to: Option<String>,
}

pub fn queue_rejection(
    tx: &Tx<'_>,
    policy: &Policy,
    r: Rejection<'_>,
    now: DateTime<Utc>,
) -> TxResult<Result<(), String>> {
    let Rejection {
        from,
        to,
        template,
        rule,
        message,
        in_reply_to,
    } = r;
    if let Some(reason) = blocked(tx, policy, &to.address)? {
        return Ok(Err(reason));
    }
    let ctx = MailContext {
        ticket: None,
        tag: String::new(),
        recipient: to,
        recipient_name: display_name(to),
        requester: to,
        requester_name: display_name(to),
        desk: from.party,
        message,
        dropped_attachments: Vec::new(),
        max_message_size: bytesize::ByteSize::b(policy.limits.max_message_size).to_string(),
        rule: Some(rule),
    };
    let rendered = match from.templates.render(template, &ctx) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    queue_ticketless_from(
        tx,
        policy,
        from,
        to,
        "rejection",
        rendered,
        in_reply_to,
        now,
    )
}

/// An automatic reply outside any ticket (a rejection, the commands list):
/// the per-recipient limit counts it, and it is queued in the transaction
/// with its Message-ID remembered, so a bounce or a reply is recognised.
#[allow(clippy::too_many_arguments)]
pub fn queue_ticketless(
    tx: &Tx<'_>,
    policy: &Policy,
    to: &Party,
    kind: &str,
    rendered: crate::desk::templates::Rendered,
    in_reply_to: Option<String>,
    now: DateTime<Utc>,
) -> TxResult<Result<(), String>> {
    let from = policy.desk_sender();
    queue_ticketless_from(tx, policy, from, to, kind, rendered, in_reply_to, now)
}

/// [`queue_ticketless`] from the queue `from` (the address the mail being
/// answered was written to).
#[allow(clippy::too_many_arguments)]
pub fn queue_ticketless_from(
    tx: &Tx<'_>,
    policy: &Policy,
    from: Sender<'_>,
    to: &Party,
    kind: &str,
    rendered: crate::desk::templates::Rendered,
    in_reply_to: Option<String>,
    now: DateTime<Utc>,
) -> TxResult<Result<(), String>> {
    let window = policy.limits.auto_reply_window;
    let mut log = tx.auto_sent(to.address.as_str())?;
    if let Err(reason) = check_limits(log.count(now, window), 0, &policy.limits) {
        return Ok(Err(reason));
    }
    log.record(now, window);
    tx.put_auto_sent(to.address.as_str(), &log)?;
    let outgoing = Outgoing {
        from: from.party.clone(),
        to: vec![to.clone()],
        reply_to: None,
        subject: rendered.subject,
        body: rendered.body,
        message_id: outgoing::new_message_id(kind, None, from.address().domain()),
        references: in_reply_to.iter().cloned().collect(),
        in_reply_to,
        auto_submitted: Some(AutoSubmitted::AutoReplied),
        x_loop: from.address().clone(),
        date: SystemTime::from(now),
        attachments: Vec::new(),
    };
    if let Err(e) = outgoing::check(&outgoing) {
        return Ok(Err(e.to_string()));
    }
    let recipients = vec![to.address.clone()];
    tx.put_outbox(&OutboxEntry::queued(
        tx.generate_id()?,
        None,
        kind,
        from.envelope_from.clone(),
        recipients.clone(),
        &outgoing,
        now,
    ))?;
    tx.put_sent(&outgoing.message_id, None, &recipients)?;
    Ok(Ok(()))
}

/// A report mailed to one person outside any ticket (a digest, the answer
/// to `help+report@`), with its files.
pub struct ReportMail<'a> {
    pub to: &'a Party,
    /// What it is, for the outbox ("digest", "report").
    pub kind: &'a str,
    pub rendered: crate::desk::templates::Rendered,
    pub attachments: Vec<outgoing::OutgoingAttachment>,
    pub in_reply_to: Option<String>,
    pub auto_submitted: AutoSubmitted,
    /// Answers to a mail count against the per-recipient limit; a digest
    /// does not (it is scheduled, once per period, so it cannot loop).
    pub rate_limited: bool,
}

/// Queues a [`ReportMail`] under the guards every automatic mail passes;
/// returns why it was not sent, if it was not.
pub fn queue_report(
    tx: &Tx<'_>,
    policy: &Policy,
    m: ReportMail<'_>,
    now: DateTime<Utc>,
) -> TxResult<Result<(), String>> {
    if let Some(reason) = blocked(tx, policy, &m.to.address)? {
        return Ok(Err(reason));
    }
    if m.rate_limited {
        let window = policy.limits.auto_reply_window;
        let mut log = tx.auto_sent(m.to.address.as_str())?;
        if let Err(reason) = check_limits(log.count(now, window), 0, &policy.limits) {
            return Ok(Err(reason));
        }
        log.record(now, window);
        tx.put_auto_sent(m.to.address.as_str(), &log)?;
    }
    let outgoing = Outgoing {
        from: policy.desk.clone(),
        to: vec![m.to.clone()],
        reply_to: None,
        subject: m.rendered.subject,
        body: m.rendered.body,
        message_id: outgoing::new_message_id(m.kind, None, policy.desk.address.domain()),
        references: m.in_reply_to.iter().cloned().collect(),
        in_reply_to: m.in_reply_to,
        auto_submitted: Some(m.auto_submitted),
        x_loop: policy.desk.address.clone(),
        date: SystemTime::from(now),
        attachments: m.attachments,
    };
    if let Err(e) = outgoing::check(&outgoing) {
        return Ok(Err(e.to_string()));
    }
    let recipients = vec![m.to.address.clone()];
    tx.put_outbox(&OutboxEntry::queued(
        tx.generate_id()?,
        None,
        m.kind,
        policy.envelope_from.clone(),
        recipients.clone(),
        &outgoing,
        now,
    ))?;
    tx.put_sent(&outgoing.message_id, None, &recipients)?;
    Ok(Ok(()))
}

fn outbound_record(ticket: u64, o: &Outgoing, kind: &str, now: DateTime<Utc>) -> MessageRecord {
    MessageRecord {
        ticket,
        seq: 0,
        direction: Direction::Outbound,
        from: Some(o.from.clone()),
        to: o.to.clone(),
        cc: Vec::new(),
        subject: o.subject.clone(),
        date: Some(now),
        recorded_at: now,
        message_id: Some(o.message_id.clone()),
        text: o.body.clone(),
        attachments: Vec::new(),
        raw_key: None,
        kind: Some(kind.to_string()),
    }
}

/// Builds, records and queues one outgoing mail on a ticket.
pub fn queue_mail(
    tx: &Tx<'_>,
    policy: &Policy,
    ticket: &mut Ticket,
    kind: &str,
    outgoing: &Outgoing,
    now: DateTime<Utc>,
) -> TxResult<usize> {
    if let Err(e) = outgoing::check(outgoing) {
        return skipped(tx, ticket, e.to_string(), now);
    }
    let id = tx.generate_id()?;
    let recipients: Vec<EmailAddress> = outgoing.to.iter().map(|p| p.address.clone()).collect();
    tx.put_outbox(&OutboxEntry::queued(
        id,
        Some(ticket.id),
        kind,
        policy.sender_of(ticket).envelope_from.clone(),
        recipients,
        outgoing,
        now,
    ))?;
    // Freshly generated and random: nobody holds it.
    tx.put_sent(
        &outgoing.message_id,
        Some(ticket.id),
        &outgoing
            .to
            .iter()
            .map(|p| p.address.clone())
            .collect::<Vec<_>>(),
    )?;
    tx.add_message(ticket, outbound_record(ticket.id, outgoing, kind, now))?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::SendWindow;
    use std::time::Duration;

    fn limits(per_recipient: u32, per_ticket: u32) -> Limits {
        Limits {
            auto_replies_per_recipient: per_recipient,
            auto_replies_per_ticket: per_ticket,
            auto_reply_window: Duration::from_secs(3600),
            ..Limits::default()
        }
    }

    #[test]
    fn the_limit_holds_at_the_boundary() {
        let l = limits(2, 5);
        assert!(check_limits(1, 0, &l).is_ok());
        let err = check_limits(2, 0, &l).unwrap_err();
        assert!(err.contains("to this address"), "{err}");
        assert!(check_limits(0, 4, &l).is_ok());
        let err = check_limits(0, 5, &l).unwrap_err();
        assert!(err.contains("from this ticket"), "{err}");
    }

    #[test]
    fn sends_leave_the_limit_when_the_window_rolls_over() {
        let l = limits(2, 5);
        let now = Utc::now();
        let mut log = SendWindow::default();
        log.record(now - chrono::Duration::hours(2), l.auto_reply_window);
        log.record(now - chrono::Duration::minutes(30), l.auto_reply_window);
        let sent = log.count(now, l.auto_reply_window);
        assert_eq!(sent, 1, "the two-hour-old send fell out of the window");
        assert!(check_limits(sent, 0, &l).is_ok());
        log.record(now, l.auto_reply_window);
        assert!(check_limits(log.count(now, l.auto_reply_window), 0, &l).is_err());
        let later = now + chrono::Duration::minutes(65);
        assert!(check_limits(log.count(later, l.auto_reply_window), 0, &l).is_ok());
    }

    #[test]
    fn raised_limits_count_every_send() {
        let l = limits(100_000, 100_000);
        let now = Utc::now();
        let mut log = SendWindow::default();
        for i in 0..99_999 {
            log.record(now + chrono::Duration::milliseconds(i), l.auto_reply_window);
        }
        let at = now + chrono::Duration::seconds(100);
        assert!(check_limits(log.count(at, l.auto_reply_window), 0, &l).is_ok());
        log.record(at, l.auto_reply_window);
        assert!(check_limits(log.count(at, l.auto_reply_window), 0, &l).is_err());
    }

    #[test]
    fn zero_limit_holds_everything() {
        assert!(check_limits(0, 0, &limits(0, 5)).is_err());
    }
}
