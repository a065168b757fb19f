//! Delivery reports (bounces) on the ticket whose mail they report on, and
//! the per-address state that keeps deskgate from mailing an address that
//! keeps bouncing. Only a report that quotes a mail we sent counts against an
//! address, and only for that mail's recipients: a forged bounce cannot
//! silence anyone.

use chrono::{DateTime, Utc};

use crate::desk::audit::event;
use crate::desk::outcome::Outcome;
use crate::desk::policy::Policy;
use crate::desk::prepare::ParsedParts;
use crate::desk::threading::ThreadKeys;
use crate::mail::address::EmailAddress;
use crate::mail::bounce::{parse_report, BounceReport};
use crate::mail::parse::InboundMail;
use crate::store::records::{AddressState, EventKind, MessageRecord, TicketId};
use crate::store::{Tx, TxResult};

/// Files a delivery report on the ticket whose mail it reports on, if any.
pub fn file_report(
    tx: &Tx<'_>,
    policy: &Policy,
    parts: &ParsedParts,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let report = parse_report(&parts.mail);
    let target = bounce_target(tx, &report, &parts.keys)?;
    record_bounce(tx, policy, target, &parts.record, &report, now)
}

/// The ticket a delivery report belongs to: through a Message-ID of a mail we
/// sent (then the recipients of that mail are returned too: only they may be
/// counted as bounced), else through any known Message-ID or the subject token
/// (recorded, but counted against nobody: such a report may be forged).
pub fn bounce_target(
    tx: &Tx<'_>,
    report: &BounceReport,
    keys: &ThreadKeys,
) -> TxResult<Option<BounceTarget>> {
    let ids: Vec<&String> = report
        .original_ids
        .iter()
        .chain(&keys.referenced_ids)
        .collect();
    for id in &ids {
        if let Some(sent_to) = tx.sent_recipients(id)? {
            if let Some(ticket) = tx.ticket_of_message(id)? {
                return Ok(Some(BounceTarget {
                    ticket,
                    message_id: (*id).clone(),
                    sent_to,
                }));
            }
        }
    }
    for id in &ids {
        if let Some(ticket) = tx.ticket_of_message(id)? {
            return Ok(Some(BounceTarget {
                ticket,
                message_id: (*id).clone(),
                sent_to: Vec::new(),
            }));
        }
    }
    for &ticket in &keys.tokens {
        if tx.ticket_exists(ticket)? {
            return Ok(Some(BounceTarget {
                ticket,
                message_id: format!("(subject token {ticket})"),
                sent_to: Vec::new(),
            }));
        }
    }
    Ok(None)
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

/// Where a delivery report belongs.
pub struct BounceTarget {
    pub ticket: TicketId,
    /// The Message-ID (or token) it was matched through.
    pub message_id: String,
    /// Recipients of our mail it reports on; empty when it was not matched
    /// through a mail we sent, and then no address is counted.
    pub sent_to: Vec<EmailAddress>,
}

/// Records a delivery report on the ticket whose mail it reports on (each
/// failure, delay and confirmed delivery it states, nothing it does not), and
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
    let mut t = tx.ticket_required(id)?;
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
    // A report of success records the delivery; a report that names no
    // recipient at all records nothing beyond the stored message.
    for d in &report.delivered {
        tx.add_event(
            &mut t,
            &event(
                now,
                "deskgate",
                EventKind::DeliveryConfirmed {
                    message_id: Some(target.message_id.clone()),
                    recipient: d.address.clone(),
                    action: d.action.clone(),
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
