//! Files one prepared mail inside the batch's transaction: the fork between
//! the three paths a mail can take (a delivery report, an agent's mail on a
//! ticket, a requester's mail), and what every path records afterwards (the
//! raw bytes, attachments, the ignored list, the dedupe key).

use chrono::{DateTime, Utc};

use crate::desk::outcome::{describe, Outcome};
use crate::desk::policy::Policy;
use crate::desk::prepare::{ParsedParts, Prepared};
use crate::desk::proof::{address_signals, agent_proof, AddressSignals};
use crate::desk::quarantine::quarantine_in_tx;
use crate::desk::threading::{follow_merges, resolve};
use crate::desk::{agent, bounces, help, next_mail, requester};
use crate::mail::classify::Class;
use crate::mail::parse::InboundMail;
use crate::store::records::{Disposition, IgnoredEntry, TicketId};
use crate::store::{Tx, TxResult};

/// Applies one prepared mail. Only a store failure is an error; a mail that
/// cannot be understood is quarantined.
pub fn apply(
    tx: &Tx<'_>,
    p: &Prepared<'_>,
    policy: &Policy,
    mailbox: &str,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let parts = match &p.parsed {
        Ok(parts) => parts,
        Err(reason) => return quarantine_in_tx(tx, p.raw, mailbox, reason, &p.dedupe_key, now),
    };
    if let Some(seen) = seen_before(tx, p, &parts.mail)? {
        return Ok(seen);
    }
    let reused = reused_message_id(tx, parts)?;
    let parts = reused.as_ref().unwrap_or(parts);
    if let Some(why) = &parts.mail.ambiguous {
        let reason = format!("ambiguous mail: {why}");
        return quarantine_in_tx(tx, p.raw, mailbox, &reason, &p.dedupe_key, now);
    }
    let outcome = match &parts.class {
        Class::Bounce(_) => bounces::file_report(tx, policy, parts, now)?,
        _ => match file_person_or_automatic(tx, policy, parts, mailbox, now)? {
            Some(outcome) => outcome,
            // Not answerable and not automatic: an admin must look at it.
            None => {
                let reason = "no usable From address";
                return quarantine_in_tx(tx, p.raw, mailbox, reason, &p.dedupe_key, now);
            }
        },
    };
    record_filed(tx, p, parts, &outcome, mailbox, now)?;
    Ok(outcome)
}

/// The same mail again (by its dedupe key), or our own mail coming back (a
/// Bcc to ourselves, a list echo): already on its ticket.
fn seen_before(tx: &Tx<'_>, p: &Prepared<'_>, mail: &InboundMail) -> TxResult<Option<Outcome>> {
    if let Some(d) = tx.disposition(&p.dedupe_key)? {
        return Ok(Some(Outcome::Duplicate { ticket: d.ticket }));
    }
    // Filed by a version that keyed on the Message-ID alone: still a
    // refetch of a processed mail, whatever its content.
    if let Some(legacy) = mail.legacy_dedupe_key() {
        if let Some(d) = tx.disposition(&legacy)? {
            return Ok(Some(Outcome::Duplicate { ticket: d.ticket }));
        }
    }
    if let Some(mid) = &mail.message_id {
        if tx.sent_recipients(mid)?.is_some() {
            return Ok(Some(Outcome::Duplicate {
                ticket: tx.ticket_of_message(mid)?,
            }));
        }
    }
    Ok(None)
}

/// A mail that is not a duplicate (its content differs) but carries a
/// Message-ID another mail already holds: some clients and scripts reuse
/// them. It is filed as usual, as a mail without a Message-ID of its own (so
/// the id keeps leading to the mail that had it first), with a note on the
/// stored message saying so. `None` for every other mail.
fn reused_message_id(tx: &Tx<'_>, parts: &ParsedParts) -> TxResult<Option<ParsedParts>> {
    let Some(mid) = &parts.mail.message_id else {
        return Ok(None);
    };
    if tx.ticket_of_message(mid)?.is_none() {
        return Ok(None);
    }
    let mut mail = parts.mail.clone();
    mail.message_id = None;
    let mut record = parts.record.clone();
    record.text.push_str(&format!(
        "\n[deskgate: this mail reuses the Message-ID <{mid}> of a different mail already filed; it is kept as a mail of its own]"
    ));
    Ok(Some(ParsedParts {
        mail,
        class: parts.class.clone(),
        keys: parts.keys.clone(),
        record,
        oversized: parts.oversized,
    }))
}

/// A mail that is not a delivery report: an agent's (proven or not) on an
/// existing ticket, else the requester path. `None` when it cannot be
/// filed at all.
fn file_person_or_automatic(
    tx: &Tx<'_>,
    policy: &Policy,
    parts: &ParsedParts,
    mailbox: &str,
    now: DateTime<Utc>,
) -> TxResult<Option<Outcome>> {
    let ParsedParts {
        mail,
        class,
        record,
        ..
    } = parts;
    if *class == Class::Human {
        bounces::clear_bounce_state(tx, mail)?;
    }
    let signals = address_signals(policy, mail);
    if signals.commands_help {
        return Ok(Some(help::on_address(
            tx, policy, mail, class, &signals, now,
        )?));
    }
    if signals.report {
        return Ok(Some(crate::desk::report_mail::on_address(
            tx, policy, mail, class, &signals, now,
        )?));
    }
    let existing = existing_ticket(tx, parts, &signals)?;
    if signals.next || (existing.is_none() && next_mail::asks(&signals, &record.text)) {
        return Ok(Some(next_mail::on_address(
            tx, policy, mail, class, &signals, now,
        )?));
    }
    let agent = mail
        .from
        .as_ref()
        .filter(|f| policy.agent(&f.address).is_some());
    if let (Some(id), Some(agent), true) = (existing, agent, *class == Class::Human) {
        let proof = agent_proof(policy, mail, &agent.address, &signals, now);
        let a = agent::AgentMail {
            agent,
            mail,
            record,
            proof,
            to_comment_address: signals.comment,
        };
        return Ok(Some(agent::handle(tx, policy, id, a, now)?));
    }
    requester::file(tx, policy, parts, existing, mailbox, now)
}

/// The ticket the mail continues, after merges: a signed reply address names
/// it first, then the threading keys.
fn existing_ticket(
    tx: &Tx<'_>,
    parts: &ParsedParts,
    signals: &AddressSignals,
) -> TxResult<Option<TicketId>> {
    let mut keys = parts.keys.clone();
    if let Some((t, _)) = &signals.signed_ticket {
        keys.tokens.insert(0, *t);
    }
    let found = resolve(
        &keys,
        |t| tx.ticket_exists(t),
        |id| tx.ticket_of_message(id),
    )?;
    match found {
        Some(id) => Ok(Some(follow_merges(tx, id)?)),
        None => Ok(None),
    }
}

/// What every filed mail leaves behind: an entry in the ignored list when it
/// became no ticket, its raw bytes and attachments (unless oversized), and
/// its dedupe key.
fn record_filed(
    tx: &Tx<'_>,
    p: &Prepared<'_>,
    parts: &ParsedParts,
    outcome: &Outcome,
    mailbox: &str,
    now: DateTime<Utc>,
) -> TxResult<()> {
    let ParsedParts {
        mail,
        record,
        oversized,
        ..
    } = parts;
    let unfiled = match outcome {
        Outcome::Ignored { reason } => Some(reason.clone()),
        Outcome::Bounce { ticket: None, .. } => {
            Some("delivery report matching no mail of ours".to_string())
        }
        _ => None,
    };
    if let Some(reason) = unfiled {
        tx.put_ignored(&IgnoredEntry {
            id: tx.generate_id()?,
            mailbox: mailbox.to_string(),
            at: now,
            from: mail.from.as_ref().map(|f| f.address.to_string()),
            subject: mail.subject.clone(),
            reason,
            raw_key: record.raw_key.clone(),
        })?;
    }
    if let Some(raw_key) = &record.raw_key {
        tx.put_raw(raw_key, p.raw)?;
    }
    if !oversized {
        for (a, meta) in mail.attachments.iter().zip(&record.attachments) {
            match &record.raw_key {
                // Read back from the raw mail it came in: stored once.
                Some(raw_key) if !meta.dropped => tx.put_blob_of_raw(&meta.sha256, raw_key)?,
                _ => tx.put_blob(&meta.sha256, &a.bytes)?,
            }
        }
    }
    tx.put_disposition(
        &p.dedupe_key,
        &Disposition {
            ticket: outcome.ticket(),
            at: now,
            outcome: describe(outcome),
        },
    )
}
