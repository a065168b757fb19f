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
use super::layout::{u64_of, T};
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
