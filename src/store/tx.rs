//! Writes and reads inside one transaction: every change to tickets goes
//! through a [`Tx`], so it lands with everything else of its unit or not at
//! all.

use chrono::{DateTime, Utc};

use super::db::WriteSet;
use super::error::{StoreError, TxResult};
use super::layout::*;
use super::message_ids;
use super::records::{
    AddressState, Delivery, Disposition, Event, IgnoredEntry, MessageRecord, OutboxEntry,
    QuarantineEntry, Ticket, TicketId, TimerSlot,
};
use super::send_window::SendWindow;
use crate::mail::address::EmailAddress;

/// The view of the store inside one transaction.
pub struct Tx<'a> {
    pub(super) ws: &'a WriteSet<'a>,
    /// Tickets written in this transaction, in order, each as last written:
    /// their timers are re-indexed before it commits, from these copies
    /// rather than from the store (reading one back would decode it again).
    pub(super) touched: std::cell::RefCell<Vec<Ticket>>,
}

impl Tx<'_> {
    /// A ticket the caller already saw in this same transaction: its absence
    /// means the store is inconsistent, and the transaction is aborted.
    pub fn ticket_required(&self, id: TicketId) -> TxResult<Ticket> {
        self.ticket(id)?
            .ok_or_else(|| StoreError::Aborted(format!("ticket {id} vanished")))
    }

    fn get(&self, t: T, key: &[u8]) -> TxResult<Option<sled::IVec>> {
        self.ws.get(t as u8, key).map_err(StoreError::from)
    }

    fn insert(&self, t: T, key: &[u8], value: impl Into<sled::IVec>) {
        self.ws.insert(t as u8, key, value)
    }

    fn remove(&self, t: T, key: &[u8]) {
        self.ws.remove(t as u8, key)
    }

    /// Allocates the next ticket number.
    pub fn next_ticket_id(&self, first: TicketId) -> TxResult<TicketId> {
        let next = self
            .get(T::Meta, NEXT_TICKET)?
            .and_then(|v| u64_of(&v))
            .unwrap_or(first)
            .max(first);
        self.insert(T::Meta, NEXT_TICKET, &(next + 1).to_be_bytes());
        Ok(next)
    }

    pub fn ticket(&self, id: TicketId) -> TxResult<Option<Ticket>> {
        self.get(T::Tickets, &ticket_key(id))?
            .map(|v| tx_decode("ticket", &v))
            .transpose()
    }

    /// At most `limit` tickets matching every filter, most recently updated
    /// first: a walk of the list index as last committed, each ticket read
    /// through this transaction (so one it changed shows as changed). Costs
    /// what it returns, not the desk (see `list_index`).
    pub fn ticket_list(
        &self,
        filters: &[super::ListFilter],
        limit: usize,
    ) -> TxResult<Vec<Ticket>> {
        let mut out = Vec::new();
        let walk = super::list_index::ListWalk::new(self.ws.db(), filters, None, None);
        for item in walk.take(limit) {
            let (_, t) = item?;
            out.extend(self.ticket(t.id)?);
        }
        Ok(out)
    }

    pub fn ticket_exists(&self, id: TicketId) -> TxResult<bool> {
        Ok(self.get(T::Tickets, &ticket_key(id))?.is_some())
    }

    pub fn put_ticket(&self, t: &Ticket) -> TxResult<()> {
        let stored = self.ticket(t.id)?;
        // The list index moves in this same transaction (list_index.rs).
        super::list_index::refile(self.ws, stored.as_ref(), t);
        // So are the report facts (report_facts.rs).
        super::report_facts::refile(self.ws, t)?;
        // The timer index entry is the store's: a caller's copy may predate
        // the last move (see `set_timer_due`).
        let mut t = t.clone();
        t.timer_due_ms = stored.map(|s| s.timer_due_ms).unwrap_or_default();
        self.insert(T::Tickets, &ticket_key(t.id), tx_encode("ticket", &t)?);
        let mut touched = self.touched.borrow_mut();
        match touched.iter_mut().find(|w| w.id == t.id) {
            Some(written) => *written = t,
            None => touched.push(t),
        }
        Ok(())
    }

    /// Appends a message to the ticket's history; returns its sequence number.
    pub fn add_message(&self, ticket: &mut Ticket, mut rec: MessageRecord) -> TxResult<u32> {
        let seq = ticket.message_count;
        ticket.message_count += 1;
        rec.ticket = ticket.id;
        rec.seq = seq;
        self.insert(
            T::Messages,
            &seq_key(ticket.id, seq),
            tx_encode("message", &rec)?,
        );
        Ok(seq)
    }

    pub fn add_event(&self, ticket: &mut Ticket, event: &Event) -> TxResult<()> {
        let seq = ticket.event_count;
        ticket.event_count += 1;
        self.insert(
            T::Events,
            &seq_key(ticket.id, seq),
            tx_encode("event", event)?,
        );
        Ok(())
    }

    pub fn ticket_of_message(&self, message_id: &str) -> TxResult<Option<TicketId>> {
        Ok(self
            .get(T::MessageIds, message_id.as_bytes())?
            .and_then(|v| message_ids::ticket_of(&v)))
    }

    /// Remembers that a Message-ID (ours or theirs) belongs to a ticket, so
    /// replies referencing it thread. The first ticket to claim an id keeps it.
    pub fn index_message_id(&self, message_id: &str, ticket: TicketId) -> TxResult<()> {
        match self.get(T::MessageIds, message_id.as_bytes())? {
            None => self.insert(T::MessageIds, message_id.as_bytes(), &ticket.to_be_bytes()),
            // Ours, sent outside any ticket: it threads here now.
            Some(v) if message_ids::ticket_of(&v).is_none() => self.insert(
                T::MessageIds,
                message_id.as_bytes(),
                message_ids::with_ticket(&v, ticket),
            ),
            Some(_) => {}
        }
        Ok(())
    }

    /// Indexes a Message-ID known to be new (no read: the hot path of ingest).
    pub fn claim_message_id(&self, message_id: &str, ticket: TicketId) -> TxResult<()> {
        self.insert(T::MessageIds, message_id.as_bytes(), &ticket.to_be_bytes());
        Ok(())
    }

    pub fn disposition(&self, key: &str) -> TxResult<Option<Disposition>> {
        self.get(T::Dedupe, key.as_bytes())?
            .map(|v| tx_decode("disposition", &v))
            .transpose()
    }

    pub fn put_disposition(&self, key: &str, d: &Disposition) -> TxResult<()> {
        self.insert(T::Dedupe, key.as_bytes(), tx_encode("disposition", d)?);
        Ok(())
    }

    pub fn remove_disposition(&self, key: &str) -> TxResult<()> {
        self.remove(T::Dedupe, key.as_bytes());
        Ok(())
    }

    pub fn put_raw(&self, key: &str, bytes: &[u8]) -> TxResult<()> {
        self.insert(T::Raw, key.as_bytes(), encode_bytes("raw mail", bytes)?);
        Ok(())
    }

    pub fn remove_raw(&self, key: &str) -> TxResult<()> {
        self.remove(T::Raw, key.as_bytes());
        Ok(())
    }

    /// Stores an attachment's bytes, once per content.
    pub fn put_blob(&self, sha256: &str, bytes: &[u8]) -> TxResult<()> {
        if self.get(T::Blobs, sha256.as_bytes())?.is_none() {
            self.insert(
                T::Blobs,
                sha256.as_bytes(),
                encode_bytes("attachment", bytes)?,
            );
        }
        Ok(())
    }

    /// Files an attachment of the raw mail stored (in this transaction)
    /// under `raw_key` without storing its bytes again (see `blobs.rs`).
    pub fn put_blob_of_raw(&self, sha256: &str, raw_key: &str) -> TxResult<()> {
        if self.get(T::Blobs, sha256.as_bytes())?.is_none() {
            self.insert(
                T::Blobs,
                sha256.as_bytes(),
                super::codec::encode_in_raw(raw_key),
            );
        }
        Ok(())
    }

    /// A fresh id, unique across restarts (sled keeps the counter durable).
    pub fn generate_id(&self) -> TxResult<u64> {
        self.ws.generate_id().map_err(StoreError::from)
    }

    /// Stores a new outbox entry.
    pub fn put_outbox(&self, e: &OutboxEntry) -> TxResult<()> {
        self.insert(
            T::Outbox,
            &e.id.to_be_bytes(),
            tx_encode("outbox entry", e)?,
        );
        if !e.failed {
            self.insert(T::OutboxDue, &due_key(e.next_attempt_at, e.id), &[]);
        }
        Ok(())
    }

    /// Replaces a stored entry (`old` as read in this transaction) with `new`.
    pub fn update_outbox(&self, old: &OutboxEntry, new: &OutboxEntry) -> TxResult<()> {
        self.remove(T::OutboxDue, &due_key(old.next_attempt_at, old.id));
        self.put_outbox(new)
    }

    pub fn outbox_entry(&self, id: u64) -> TxResult<Option<OutboxEntry>> {
        self.get(T::Outbox, &id.to_be_bytes())?
            .map(|v| tx_decode("outbox entry", &v))
            .transpose()
    }

    /// Removes an entry (`e` as read in this transaction).
    pub fn remove_outbox(&self, e: &OutboxEntry) -> TxResult<()> {
        self.remove(T::Outbox, &e.id.to_be_bytes());
        self.remove(T::OutboxDue, &due_key(e.next_attempt_at, e.id));
        Ok(())
    }

    pub fn put_delivery(&self, d: &Delivery) -> TxResult<()> {
        self.insert(
            T::Deliveries,
            &d.outbox_id.to_be_bytes(),
            tx_encode("delivery", d)?,
        );
        Ok(())
    }

    /// Remembers mail deskgate sends under its fresh Message-ID (nobody
    /// holds it): replies to it thread to `ticket`, and the mail coming
    /// back, or a bounce of it, is recognised, with whom it went to.
    pub fn put_sent(
        &self,
        message_id: &str,
        ticket: Option<TicketId>,
        recipients: &[EmailAddress],
    ) -> TxResult<()> {
        self.insert(
            T::MessageIds,
            message_id.as_bytes(),
            message_ids::sent_value(ticket, recipients)?,
        );
        Ok(())
    }

    /// Recipients of a mail deskgate sent, or None when the id is not ours.
    pub fn sent_recipients(&self, message_id: &str) -> TxResult<Option<Vec<EmailAddress>>> {
        match self.get(T::MessageIds, message_id.as_bytes())? {
            Some(v) => message_ids::recipients_of(&v),
            None => Ok(None),
        }
    }

    pub fn put_ignored(&self, e: &IgnoredEntry) -> TxResult<()> {
        self.insert(
            T::Ignored,
            &e.id.to_be_bytes(),
            tx_encode("ignored entry", e)?,
        );
        Ok(())
    }

    pub fn remove_quarantine(&self, id: u64) -> TxResult<()> {
        self.remove(T::Quarantine, &id.to_be_bytes());
        Ok(())
    }

    pub fn address_state(&self, address: &str) -> TxResult<Option<AddressState>> {
        self.get(T::Addresses, address.as_bytes())?
            .map(|v| tx_decode("address state", &v))
            .transpose()
    }

    pub fn put_address_state(&self, address: &str, st: &AddressState) -> TxResult<()> {
        self.insert(
            T::Addresses,
            address.as_bytes(),
            tx_encode("address state", st)?,
        );
        Ok(())
    }

    pub fn remove_address_state(&self, address: &str) -> TxResult<()> {
        self.remove(T::Addresses, address.as_bytes());
        Ok(())
    }

    /// Automatic mail sent to `address` lately (see [`SendWindow`]): one
    /// fixed-size record, read and rewritten per mail whatever the limits.
    pub fn auto_sent(&self, address: &str) -> TxResult<SendWindow> {
        match self.get(T::AutoSent, address.as_bytes())? {
            Some(v) => SendWindow::from_bytes(&v).ok_or_else(|| StoreError::Decode {
                what: "auto-reply log",
                source: serde::de::Error::custom("neither send counts nor a list of times"),
            }),
            None => Ok(SendWindow::default()),
        }
    }

    pub fn put_auto_sent(&self, address: &str, sent: &SendWindow) -> TxResult<()> {
        self.insert(T::AutoSent, address.as_bytes(), sent.to_bytes());
        Ok(())
    }

    pub fn put_quarantine(&self, q: &QuarantineEntry) -> TxResult<()> {
        self.insert(
            T::Quarantine,
            &q.id.to_be_bytes(),
            tx_encode("quarantine entry", q)?,
        );
        Ok(())
    }

    /// Tickets written so far in this transaction.
    pub fn touched_tickets(&self) -> Vec<TicketId> {
        self.touched.borrow().iter().map(|t| t.id).collect()
    }

    /// A ticket as this transaction last wrote it (`None` if it wrote none):
    /// what [`Tx::ticket`] would read back, without decoding it again.
    pub fn written_ticket(&self, id: TicketId) -> Option<Ticket> {
        self.touched.borrow().iter().find(|t| t.id == id).cloned()
    }

    /// Files the ticket's next timer under `due`, or nowhere. The entry
    /// filed before is found in the ticket record (`timer_due_ms`), which is
    /// rewritten when the entry moves; nothing is written when it stays.
    /// A ticket that is not stored has no entry to move.
    pub fn set_timer_due(&self, id: TicketId, due: Option<DateTime<Utc>>) -> TxResult<()> {
        let ticket = match self.written_ticket(id) {
            Some(t) => Some(t),
            None => self.ticket(id)?,
        };
        let Some(mut ticket) = ticket else {
            return Ok(());
        };
        let due = due.map(due_ms);
        if ticket.timer_due_ms.0 == due {
            return Ok(());
        }
        if let Some(old) = ticket.timer_due_ms.0 {
            self.remove(T::TimerDue, &due_key_ms(old, id));
        }
        if let Some(ms) = due {
            self.insert(T::TimerDue, &due_key_ms(ms, id), &[]);
        }
        ticket.timer_due_ms = TimerSlot(due);
        self.insert(T::Tickets, &ticket_key(id), tx_encode("ticket", &ticket)?);
        // Only a ticket written in this transaction is in `touched`; a
        // timer that moved is no change of the ticket's.
        if let Some(written) = self.touched.borrow_mut().iter_mut().find(|w| w.id == id) {
            *written = ticket;
        }
        Ok(())
    }

    pub fn set_timer_policy(&self, fingerprint: &str) {
        self.insert(T::Meta, TIMER_POLICY_KEY, fingerprint.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use crate::mail::address::{EmailAddress, Party};
    use crate::store::records::Ticket;
    use crate::store::Store;

    fn ticket(id: u64, subject: &str) -> Ticket {
        let requester = Party {
            name: None,
            address: EmailAddress::parse("a@b.c").unwrap(),
        };
        Ticket::new(id, subject.into(), requester, "help", chrono::Utc::now())
    }

    fn timer_keys(store: &Store) -> Vec<Vec<u8>> {
        use crate::store::layout::T;
        let keys = |t: T| store.db.iter(t as u8).map(|r| r.unwrap().0.to_vec());
        assert_eq!(keys(T::TimerOf).count(), 0, "no key besides the due one");
        keys(T::TimerDue).collect()
    }

    #[test]
    fn a_timer_entry_moves_by_the_ticket_record_alone() {
        use crate::store::layout::due_key;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = chrono::Utc::now();
        let (t1, t2) = (
            now + chrono::Duration::hours(1),
            now + chrono::Duration::hours(2),
        );
        store
            .transact(|tx| {
                tx.put_ticket(&ticket(7, "s"))?;
                tx.set_timer_due(7, Some(t1))?;
                // What this transaction wrote says so.
                assert_eq!(
                    tx.written_ticket(7).unwrap().timer_due_ms.0,
                    Some(t1.timestamp_millis() as u64)
                );
                Ok(())
            })
            .unwrap();
        assert_eq!(timer_keys(&store), [due_key(t1, 7).to_vec()]);
        store
            .transact(|tx| {
                let stale = tx.ticket(7)?.unwrap();
                tx.set_timer_due(7, Some(t2))?;
                // A copy read before the move does not put the entry back.
                let mut changed = stale;
                changed.subject = "changed".into();
                tx.put_ticket(&changed)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(timer_keys(&store), [due_key(t2, 7).to_vec()]);
        let stored = store.ticket(7).unwrap().unwrap();
        assert_eq!(stored.subject, "changed");
        // Where the timer is filed is the store's, not the ticket's state.
        let mut copy = stored.clone();
        copy.timer_due_ms = crate::store::records::TimerSlot(None);
        assert_eq!(copy, stored);
        assert_eq!(stored.timer_due_ms.0, Some(t2.timestamp_millis() as u64));
        store.transact(|tx| tx.set_timer_due(7, None)).unwrap();
        assert!(timer_keys(&store).is_empty());
        assert_eq!(store.ticket(7).unwrap().unwrap().timer_due_ms.0, None);
        // A ticket not stored has nothing to file.
        store.transact(|tx| tx.set_timer_due(8, Some(t1))).unwrap();
        assert!(timer_keys(&store).is_empty());
    }

    #[test]
    fn a_sent_message_id_is_one_key_for_threading_and_bounces() {
        use crate::store::layout::T;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let to = vec![EmailAddress::parse("a@b.c").unwrap()];
        store
            .transact(|tx| {
                tx.put_sent("ack@desk", Some(7), &to)?;
                tx.put_sent("digest@desk", None, &to)?;
                tx.claim_message_id("theirs@out", 7)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(store.db.iter(T::MessageIds as u8).count(), 3);
        assert_eq!(store.db.iter(T::SentIds as u8).count(), 0);
        assert_eq!(store.ticket_of_message("ack@desk").unwrap(), Some(7));
        assert_eq!(store.ticket_of_message("digest@desk").unwrap(), None);
        store
            .transact(|tx| {
                assert_eq!(tx.ticket_of_message("ack@desk")?, Some(7));
                assert_eq!(tx.sent_recipients("ack@desk")?, Some(to.clone()));
                assert_eq!(tx.ticket_of_message("digest@desk")?, None);
                assert_eq!(tx.sent_recipients("digest@desk")?, Some(to.clone()));
                assert_eq!(tx.ticket_of_message("theirs@out")?, Some(7));
                assert_eq!(tx.sent_recipients("theirs@out")?, None);
                assert_eq!(tx.sent_recipients("unknown@out")?, None);
                // The first ticket to claim an id keeps it; ours outside a
                // ticket is claimed and stays ours.
                tx.index_message_id("ack@desk", 9)?;
                tx.index_message_id("digest@desk", 9)?;
                assert_eq!(tx.ticket_of_message("ack@desk")?, Some(7));
                assert_eq!(tx.ticket_of_message("digest@desk")?, Some(9));
                assert_eq!(tx.sent_recipients("digest@desk")?, Some(to.clone()));
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_written_ticket_is_the_last_version_put() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .transact(|tx| {
                tx.put_ticket(&ticket(7, "first"))?;
                tx.put_ticket(&ticket(8, "other"))?;
                tx.put_ticket(&ticket(7, "second"))?;
                assert_eq!(tx.touched_tickets(), vec![7, 8]);
                let written = tx.written_ticket(7).unwrap();
                assert_eq!(written.subject, "second");
                // What reading it back gives.
                let read = tx.ticket(7)?.unwrap();
                assert_eq!(read, written);
                assert!(tx.written_ticket(9).is_none());
                Ok(())
            })
            .unwrap();
        store
            .transact(|tx| {
                // A new transaction has written nothing yet.
                assert!(tx.written_ticket(7).is_none());
                assert!(tx.touched_tickets().is_empty());
                Ok(())
            })
            .unwrap();
    }
}
