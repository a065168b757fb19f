//! "Possibly sent" marks of outbox entries: how often an entry's body was
//! handed to the SMTP server without its answer being recorded. The sender
//! raises the mark (and flushes it) just before the body goes, and takes it
//! back when the answer is recorded: a delivery removes it, a refusal
//! lowers it. So a mark found after a crash counts the copies that may have
//! gone out, and the sender never hands over a mail that may have gone out
//! twice (see `daemon::outbox`).
//!
//! A table of its own, holding only the mail in flight (at most a chunk, plus
//! the entries held as uncertain): the sender finds them at start without
//! reading the outbox.

use chrono::{DateTime, Utc};

use super::error::TxResult;
use super::layout::{due_key, u64_of, T};
use super::records::OutboxEntry;
use super::{Store, StoreError, Tx};

/// Why an entry is held: it may have reached its recipients twice already.
pub const HELD_UNCERTAIN: &str = "delivery uncertain, possibly sent twice; not sent again \
     (deskgate was stopped twice while handing it to the SMTP server; `deskgate outbox release ID` sends it anyway)";

fn count_of(v: Option<sled::IVec>) -> u32 {
    v.and_then(|v| Some(u32::from_be_bytes(v.as_ref().try_into().ok()?)))
        .unwrap_or(0)
}

impl Tx<'_> {
    /// Copies of the entry that may have gone out without an answer recorded.
    pub fn in_doubt(&self, id: u64) -> TxResult<u32> {
        let v = self.ws.get(T::OutboxInDoubt as u8, &id.to_be_bytes());
        Ok(count_of(v.map_err(StoreError::from)?))
    }

    /// Counts one more copy about to be handed over; returns the new count.
    pub fn raise_in_doubt(&self, id: u64) -> TxResult<u32> {
        let n = self.in_doubt(id)?.saturating_add(1);
        self.set_in_doubt(id, n);
        Ok(n)
    }

    /// The server refused the copy just handed over: it did not go.
    pub fn lower_in_doubt(&self, id: u64) -> TxResult<()> {
        let n = self.in_doubt(id)?.saturating_sub(1);
        self.set_in_doubt(id, n);
        Ok(())
    }

    /// The delivery is recorded: nothing is in doubt any more.
    pub fn clear_in_doubt(&self, id: u64) {
        self.set_in_doubt(id, 0);
    }

    fn set_in_doubt(&self, id: u64, n: u32) {
        let key = id.to_be_bytes();
        if n == 0 {
            self.ws.remove(T::OutboxInDoubt as u8, &key);
        } else {
            self.ws
                .insert(T::OutboxInDoubt as u8, &key, n.to_be_bytes().to_vec());
        }
    }
}

impl Store {
    /// Entries still to be tried that may have gone out already (a crash
    /// while they were handed over), with how often: the sender re-sends
    /// these first, one by one.
    pub fn in_doubt_outbox(&self) -> Result<Vec<(OutboxEntry, u32)>, StoreError> {
        let mut found = Vec::new();
        for item in self.db.iter(T::OutboxInDoubt as u8) {
            let (key, value) = item?;
            let Some(id) = u64_of(&key) else { continue };
            if let Some(e) = self.outbox_entry(id)? {
                if !e.failed {
                    found.push((e, count_of(Some(value))));
                }
            }
        }
        Ok(found)
    }

    /// Entries that fell due between `since` and `now`, newest first, at
    /// most `limit`: the mail that just arrived is found first however many
    /// others fell due in between (a backlog draining).
    pub fn newest_due_outbox(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        use std::ops::Bound;
        let from = Bound::Included(due_key(since, 0).to_vec());
        let to = Bound::Included(due_key(now, u64::MAX).to_vec());
        let mut found = Vec::new();
        for item in self.db.range(T::OutboxDue as u8, from, to).rev() {
            if found.len() >= limit {
                break;
            }
            let (key, _) = item?;
            let Some(id) = key.get(8..).and_then(u64_of) else {
                continue;
            };
            if let Some(e) = self.outbox_entry(id)? {
                found.push(e);
            }
        }
        Ok(found)
    }

    /// How often each entry may have gone out already.
    pub fn in_doubt_of(&self, ids: &[u64]) -> Result<Vec<u32>, StoreError> {
        ids.iter()
            .map(|id| {
                Ok(count_of(
                    self.db.get(T::OutboxInDoubt as u8, &id.to_be_bytes())?,
                ))
            })
            .collect()
    }

    /// An admin's "send it anyway" for an entry held as possibly sent twice:
    /// it is due now, and counts as sent once in doubt, so a crash while it
    /// goes holds it again. Returns false when `id` is not held.
    pub fn release_held_outbox(&self, id: u64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.transact(|tx| {
            let Some(old) = tx.outbox_entry(id)? else {
                return Ok(false);
            };
            if !old.failed || tx.in_doubt(id)? < 2 {
                return Ok(false);
            }
            let mut new = old.clone();
            new.failed = false;
            new.next_attempt_at = now;
            new.last_error = Some("released by an admin after an uncertain delivery".into());
            tx.update_outbox(&old, &new)?;
            tx.set_in_doubt(id, 1);
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::address::EmailAddress;

    fn entry(id: u64, at: DateTime<Utc>) -> OutboxEntry {
        OutboxEntry {
            id,
            ticket: None,
            kind: "acknowledgement".into(),
            message_id: format!("m{id}@desk.test"),
            envelope_from: EmailAddress::parse("help@desk.test").unwrap(),
            recipients: vec![EmailAddress::parse("a@customer.test").unwrap()],
            raw: String::new(),
            composed: None,
            created_at: at,
            attempts: 0,
            next_attempt_at: at,
            last_error: None,
            failed: false,
        }
    }

    #[test]
    fn the_newest_due_mail_is_found_first_behind_a_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        s.transact(|tx| {
            // A backlog queued in the last second, then one new mail.
            for id in 1..=500 {
                tx.put_outbox(&entry(id, t0 + chrono::Duration::milliseconds(id as i64)))?;
            }
            tx.put_outbox(&entry(9000, t0 + chrono::Duration::seconds(1)))?;
            tx.put_outbox(&entry(9001, t0 + chrono::Duration::seconds(30)))
        })
        .unwrap();
        let now = t0 + chrono::Duration::seconds(2);
        let ids: Vec<u64> = s
            .newest_due_outbox(t0, now, 2)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        // Not yet due: left out.
        assert_eq!(ids, vec![9000, 500]);
    }
}
