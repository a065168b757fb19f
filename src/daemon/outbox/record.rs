//! Recording what became of each mail handed to SMTP, with the "possibly
//! sent" marks (see `store::sending`): in one transaction per chunk,
//! together with the marks of the next chunk, so each chunk costs one flush.

use chrono::{DateTime, Utc};
use tracing::warn;

use super::{backoff, Attempt};
use crate::config::OutboxConfig;
use crate::mail::address::EmailAddress;
use crate::store::records::{Delivery, Event, EventKind, OutboxEntry};
use crate::store::{Store, StoreError, Tx, TxResult, HELD_UNCERTAIN};

/// What became of one mail of a chunk.
pub(super) struct Outcome {
    pub entry: OutboxEntry,
    pub attempt: Attempt,
    /// Its body was handed over under a "possibly sent" mark.
    pub marked: bool,
    /// The body went and no answer came: the server may have taken it, so
    /// the mark stays.
    pub uncertain: bool,
}

impl Outcome {
    /// A mail that never reached its body (or was not tried).
    pub fn unmarked(entry: OutboxEntry, attempt: Attempt) -> Outcome {
        Outcome {
            entry,
            attempt,
            marked: false,
            uncertain: false,
        }
    }
}

/// Records a chunk in one transaction; if that fails, each result alone, and
/// a result whose ticket cannot be written is recorded without its ticket
/// event: one broken record never undoes the others, so mail already handed
/// to SMTP is not sent again.
///
/// Then raises the mark of each entry in `marks`, whose body is about to be
/// handed over; when that fails, the caller must not hand them over.
pub(super) fn record_chunk(
    store: &Store,
    cfg: &OutboxConfig,
    results: &[Outcome],
    marks: &[u64],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let all = store.transact(|tx| {
        for r in results {
            record_one(tx, cfg, r, now, true)?;
        }
        raise_marks(tx, marks)
    });
    let Err(first) = all else {
        return Ok(());
    };
    warn!(error = %first, "cannot record a chunk of deliveries at once; recording each alone");
    for r in results {
        if let Err(e) = store.transact(|tx| record_one(tx, cfg, r, now, true)) {
            warn!(id = r.entry.id, error = %e, "cannot record the delivery on its ticket; recording it without");
            store.transact(|tx| record_one(tx, cfg, r, now, false))?;
        }
    }
    store.transact(|tx| raise_marks(tx, marks))
}

fn raise_marks(tx: &Tx<'_>, marks: &[u64]) -> TxResult<()> {
    for id in marks {
        tx.raise_in_doubt(*id)?;
    }
    Ok(())
}

/// The mark after an answer: a delivery clears it, a refusal takes this
/// copy back, no answer leaves it (the copy may be out).
fn settle_mark(tx: &Tx<'_>, r: &Outcome) -> TxResult<()> {
    match (&r.attempt, r.marked, r.uncertain) {
        (Attempt::Sent { .. }, _, _) => tx.clear_in_doubt(r.entry.id),
        (_, true, false) => tx.lower_in_doubt(r.entry.id)?,
        _ => {}
    }
    Ok(())
}

/// The stored entry to act on: it may have been changed meanwhile (e.g. by
/// an admin). One that no longer decodes is replaced by the one that was sent.
fn stored_entry(tx: &Tx<'_>, entry: &OutboxEntry, strict: bool) -> TxResult<Option<OutboxEntry>> {
    match tx.outbox_entry(entry.id) {
        Err(_) if !strict => Ok(Some(entry.clone())),
        other => other,
    }
}

/// Records one result; with `on_ticket` false, the ticket event is left out
/// (its ticket could not be written).
fn record_one(
    tx: &Tx<'_>,
    cfg: &OutboxConfig,
    r: &Outcome,
    now: DateTime<Utc>,
    on_ticket: bool,
) -> TxResult<()> {
    let (entry, attempt) = (&r.entry, &r.attempt);
    settle_mark(tx, r)?;
    let attempts = entry.attempts + 1;
    let Some(stored) = stored_entry(tx, entry, on_ticket)? else {
        return Ok(());
    };
    let mut e = stored.clone();
    e.attempts = attempts;
    let mut events = Vec::new();
    match attempt {
        Attempt::Sent { refused } => {
            tx.remove_outbox(&stored)?;
            let refused_addr = |r: &EmailAddress| refused.iter().any(|(x, _)| x == r);
            tx.put_delivery(&Delivery {
                outbox_id: e.id,
                ticket: e.ticket,
                message_id: e.message_id.clone(),
                recipients: e
                    .recipients
                    .iter()
                    .filter(|r| !refused_addr(r))
                    .cloned()
                    .collect(),
                delivered_at: now,
                queued_at: e.created_at,
                attempts,
            })?;
            events.push(EventKind::MailDelivered {
                outbox_id: e.id,
                message_id: e.message_id.clone(),
                attempts,
            });
            for (r, why) in refused {
                events.push(EventKind::MailFailed {
                    outbox_id: e.id,
                    message_id: e.message_id.clone(),
                    error: format!("not sent to {r}: the address was refused ({why})"),
                    attempts,
                });
            }
        }
        Attempt::Held => {
            e.attempts = stored.attempts;
            e.last_error = Some(HELD_UNCERTAIN.into());
            e.failed = true;
            tx.update_outbox(&stored, &e)?;
            events.push(EventKind::MailFailed {
                outbox_id: e.id,
                message_id: e.message_id.clone(),
                error: HELD_UNCERTAIN.into(),
                attempts: e.attempts,
            });
        }
        Attempt::Transient(err) | Attempt::Unreachable(err) if attempts < cfg.max_attempts => {
            e.last_error = Some(err.clone());
            e.next_attempt_at =
                now + chrono::Duration::from_std(backoff(cfg, attempts)).unwrap_or_default();
            tx.update_outbox(&stored, &e)?;
        }
        Attempt::Transient(err) | Attempt::Unreachable(err) | Attempt::Permanent(err) => {
            e.last_error = Some(err.clone());
            e.failed = true;
            tx.update_outbox(&stored, &e)?;
            events.push(EventKind::MailFailed {
                outbox_id: e.id,
                message_id: e.message_id.clone(),
                error: err.clone(),
                attempts,
            });
        }
    }
    let Some(id) = e.ticket.filter(|_| on_ticket && !events.is_empty()) else {
        return Ok(());
    };
    if let Some(mut t) = tx.ticket(id)? {
        for kind in events {
            tx.add_event(
                &mut t,
                &Event {
                    at: now,
                    actor: "deskgate".into(),
                    kind,
                },
            )?;
        }
        tx.put_ticket(&t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> OutboxConfig {
        OutboxConfig {
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(60),
            max_attempts: 10,
            concurrency: 4,
        }
    }

    fn entry(id: u64) -> OutboxEntry {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        OutboxEntry {
            id,
            ticket: None,
            kind: "acknowledgement".into(),
            message_id: format!("m{id}@desk.test"),
            envelope_from: EmailAddress::parse("help@desk.test").unwrap(),
            recipients: vec![EmailAddress::parse("a@customer.test").unwrap()],
            raw: "Subject: x\r\n\r\nhi\r\n".into(),
            composed: None,
            created_at: at,
            attempts: 0,
            next_attempt_at: at,
            last_error: None,
            failed: false,
        }
    }

    fn store_with(ids: &[u64]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .transact(|tx| {
                for id in ids {
                    tx.put_outbox(&entry(*id))?;
                }
                Ok(())
            })
            .unwrap();
        (dir, store)
    }

    fn marked(id: u64, attempt: Attempt, uncertain: bool) -> Outcome {
        Outcome {
            entry: entry(id),
            attempt,
            marked: true,
            uncertain,
        }
    }

    #[test]
    fn marks_follow_the_answers() {
        let (_dir, store) = store_with(&[1, 2, 3]);
        let now = chrono::Utc::now();
        record_chunk(&store, &cfg(), &[], &[1, 2, 3], now).unwrap();
        assert_eq!(store.in_doubt_of(&[1, 2, 3]).unwrap(), vec![1, 1, 1]);
        let results = [
            marked(1, Attempt::Sent { refused: vec![] }, false),
            marked(2, Attempt::Transient("451 later".into()), false),
            marked(3, Attempt::Unreachable("no answer".into()), true),
        ];
        record_chunk(&store, &cfg(), &results, &[], now).unwrap();
        // Delivered: gone; refused: did not go; no answer: may have gone.
        assert_eq!(store.in_doubt_of(&[1, 2, 3]).unwrap(), vec![0, 0, 1]);
        let doubtful: Vec<u64> = store
            .in_doubt_outbox()
            .unwrap()
            .iter()
            .map(|(e, _)| e.id)
            .collect();
        assert_eq!(doubtful, vec![3]);
    }

    #[test]
    fn a_held_entry_is_listed_failed_and_an_admin_can_release_it() {
        let (_dir, store) = store_with(&[7]);
        let now = chrono::Utc::now();
        record_chunk(&store, &cfg(), &[], &[7], now).unwrap();
        record_chunk(&store, &cfg(), &[], &[7], now).unwrap();
        let held = [Outcome::unmarked(entry(7), Attempt::Held)];
        record_chunk(&store, &cfg(), &held, &[], now).unwrap();
        let e = store.outbox_entry(7).unwrap().unwrap();
        assert!(e.failed);
        assert_eq!(e.last_error.as_deref(), Some(HELD_UNCERTAIN));
        assert!(store.due_outbox(now, 10).unwrap().0.is_empty());
        assert!(store.in_doubt_outbox().unwrap().is_empty());

        assert!(store.release_held_outbox(7, now).unwrap());
        let e = store.outbox_entry(7).unwrap().unwrap();
        assert!(!e.failed);
        assert_eq!(store.due_outbox(now, 10).unwrap().0.len(), 1);
        // Released as in doubt once: one more interrupted send holds it again.
        assert_eq!(store.in_doubt_of(&[7]).unwrap(), vec![1]);
        assert!(!store.release_held_outbox(7, now).unwrap(), "not held now");
    }
}
