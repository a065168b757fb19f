//! Durable state in sled, behind typed methods: the store, its transaction
//! type [`Tx`] and its own error type (no sled type leaves this folder), the
//! key layout, and the stored [`records`].
//!
//! May import `mail` (records hold addresses and outgoing mail) and nothing
//! else of deskgate's.
//!
//! Every change to tickets goes through [`Store::transact`]: one atomic
//! transaction over all trees (one journal record, see [`crate::store::kv`]), so a
//! ticket, its messages, its audit trail, the Message-ID index, the dedupe
//! record and the outbox entries it queues land together or not at all.
//! [`Store::flush`] makes them durable; callers flush before telling the IMAP
//! server a mail is done.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sled::IVec;

mod attempts;
mod error;
pub mod kv;
mod layout;
pub mod records;
mod tx;

pub use error::{StoreError, TxResult};
pub use tx::Tx;

use layout::*;

use kv::Kv;

use crate::store::records::{
    AddressState, Checkpoint, Delivery, Disposition, Event, IgnoredEntry, MessageRecord,
    OutboxEntry, QuarantineEntry, Ticket, TicketId,
};

/// A handle on the store; cheap to clone (sled trees are reference-counted).
#[derive(Clone)]
pub struct Store {
    kv: Kv,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            // sled's default cache is 1 GiB; a help desk's working set is far smaller.
            .cache_capacity(64 * 1024 * 1024)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| {
                let locked = matches!(&source, sled::Error::Io(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                    || source.to_string().contains("lock");
                if locked {
                    StoreError::Locked {
                        path: path.display().to_string(),
                    }
                } else {
                    StoreError::Open {
                        path: path.display().to_string(),
                        source,
                    }
                }
            })?;
        Store::on(db)
    }

    fn on(db: sled::Db) -> Result<Store, StoreError> {
        let names: Vec<&str> = TREES
            .iter()
            .enumerate()
            .map(|(i, (name, t))| {
                debug_assert_eq!(i, *t as usize);
                *name
            })
            .collect();
        Ok(Store {
            kv: Kv::open(db, &names)?,
        })
    }

    /// A throwaway store in a temporary file, deleted on drop: lets the dry run
    /// (`rules test`) run the real engine without touching the real store.
    pub fn temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|source| StoreError::Open {
                path: "(temporary)".into(),
                source,
            })?;
        Store::on(db)
    }

    fn get(&self, t: T, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        Ok(self.kv.get(t as u8, key)?)
    }

    fn values<V: DeserializeOwned>(
        &self,
        t: T,
        what: &'static str,
    ) -> impl Iterator<Item = Result<V, StoreError>> + '_ {
        self.kv.iter(t as u8).map(move |r| decode(what, &r?.1))
    }

    fn prefixed<V: DeserializeOwned>(
        &self,
        t: T,
        prefix: &[u8],
        what: &'static str,
    ) -> Result<Vec<V>, StoreError> {
        self.kv
            .scan_prefix(t as u8, prefix)
            .map(move |r| decode(what, &r?.1))
            .collect()
    }

    /// Runs `f` as one atomic transaction over every tree: all its writes
    /// become one journal record (see [`crate::store::kv`]), or none when it fails.
    /// Transactions run one at a time.
    pub fn transact<R>(&self, f: impl FnOnce(&Tx<'_>) -> TxResult<R>) -> Result<R, StoreError> {
        self.kv.transact(|ws| f(&Tx { ws }))?
    }

    /// Makes everything committed so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let kv = self.kv.clone();
        tokio::task::spawn_blocking(move || kv.sync())
            .await
            .map_err(|e| StoreError::Aborted(format!("the flush task failed: {e}")))??;
        Ok(())
    }

    /// Copies every committed change from the journal into the trees now.
    pub fn apply_journal(&self) -> Result<(), StoreError> {
        Ok(self.kv.apply_all()?)
    }

    /// (commits not yet copied from the journal, their bytes).
    pub fn journal_backlog(&self) -> (usize, usize) {
        self.kv.backlog()
    }

    /// The key that signs per-ticket reply addresses: made once, kept forever
    /// (addresses in old notifications keep working across restarts).
    pub fn reply_key(&self) -> Result<Vec<u8>, StoreError> {
        let meta = self.kv.raw_tree(T::Meta as u8);
        if let Some(k) = meta.get(REPLY_KEY)? {
            return Ok(k.to_vec());
        }
        let mut key = vec![0u8; 32];
        getrandom::getrandom(&mut key)
            .map_err(|e| StoreError::Aborted(format!("no randomness for the reply key: {e}")))?;
        // Two processes racing here: the first write wins and both read it back.
        let _ = meta.compare_and_swap(REPLY_KEY, None as Option<&[u8]>, Some(key.as_slice()))?;
        self.kv.db().flush()?;
        Ok(meta.get(REPLY_KEY)?.map(|k| k.to_vec()).unwrap_or(key))
    }

    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        Ok(self.kv.sync()?)
    }

    // ----- reads outside transactions -----

    pub fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        self.get(T::Tickets, &ticket_key(id))?
            .map(|v| decode("ticket", &v))
            .transpose()
    }

    pub fn tickets(&self) -> impl Iterator<Item = Result<Ticket, StoreError>> + '_ {
        self.values(T::Tickets, "ticket")
    }

    pub fn ticket_count(&self) -> usize {
        self.kv.len(T::Tickets as u8)
    }

    pub fn delivery_count(&self) -> usize {
        self.kv.len(T::Deliveries as u8)
    }

    pub fn quarantine_count(&self) -> usize {
        self.kv.len(T::Quarantine as u8)
    }

    pub fn messages(&self, id: TicketId) -> Result<Vec<MessageRecord>, StoreError> {
        self.prefixed(T::Messages, &ticket_key(id), "message")
    }

    pub fn events(&self, id: TicketId) -> Result<Vec<Event>, StoreError> {
        self.prefixed(T::Events, &ticket_key(id), "event")
    }

    pub fn ticket_of_message(&self, message_id: &str) -> Result<Option<TicketId>, StoreError> {
        Ok(self
            .get(T::MessageIds, message_id.as_bytes())?
            .and_then(|v| u64_of(&v)))
    }

    pub fn disposition(&self, dedupe_key: &str) -> Result<Option<Disposition>, StoreError> {
        self.get(T::Dedupe, dedupe_key.as_bytes())?
            .map(|v| decode("disposition", &v))
            .transpose()
    }

    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.values(T::Outbox, "outbox entry").collect()
    }

    /// Entries due at `now` (oldest first, at most `limit`) and when the next
    /// one not yet due falls due.
    pub fn due_outbox(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<(Vec<OutboxEntry>, Option<DateTime<Utc>>), StoreError> {
        let mut due = Vec::new();
        for item in self.kv.iter(T::OutboxDue as u8) {
            let (key, _) = item?;
            let (at_ms, id) = match (u64_of(&key[..8]), u64_of(&key[8..])) {
                (Some(a), Some(i)) => (a as i64, i),
                _ => continue,
            };
            let at = DateTime::<Utc>::from_timestamp_millis(at_ms).unwrap_or(now);
            if at > now || due.len() >= limit {
                return Ok((due, Some(at.max(now))));
            }
            if let Some(e) = self.outbox_entry(id)? {
                due.push(e);
            }
        }
        Ok((due, None))
    }

    /// (entries still to be tried, entries that gave up), without decoding any.
    pub fn outbox_counts(&self) -> (usize, usize) {
        let pending = self.kv.len(T::OutboxDue as u8);
        (
            pending,
            self.kv.len(T::Outbox as u8).saturating_sub(pending),
        )
    }

    pub fn outbox_entry(&self, id: u64) -> Result<Option<OutboxEntry>, StoreError> {
        self.get(T::Outbox, &id.to_be_bytes())?
            .map(|v| decode("outbox entry", &v))
            .transpose()
    }

    pub fn deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        self.values(T::Deliveries, "delivery").collect()
    }

    pub fn quarantine(&self) -> Result<Vec<QuarantineEntry>, StoreError> {
        self.values(T::Quarantine, "quarantine entry").collect()
    }

    pub fn ignored(&self) -> Result<Vec<IgnoredEntry>, StoreError> {
        self.values(T::Ignored, "ignored entry").collect()
    }

    pub fn quarantine_entry(&self, id: u64) -> Result<Option<QuarantineEntry>, StoreError> {
        self.get(T::Quarantine, &id.to_be_bytes())?
            .map(|v| decode("quarantine entry", &v))
            .transpose()
    }

    pub fn address_state(&self, address: &str) -> Result<Option<AddressState>, StoreError> {
        self.get(T::Addresses, address.as_bytes())?
            .map(|v| decode("address state", &v))
            .transpose()
    }

    pub fn raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(T::Raw, key.as_bytes())?.map(|v| v.to_vec()))
    }

    pub fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(T::Blobs, sha256.as_bytes())?.map(|v| v.to_vec()))
    }

    pub fn checkpoint(&self, mailbox: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.kv
            .raw_tree(T::Checkpoints as u8)
            .get(mailbox.as_bytes())?
            .map(|v| decode("checkpoint", &v))
            .transpose()
    }

    /// Checkpoints are advisory (dedupe makes a refetch harmless), so they are
    /// written outside ticket transactions, straight to their tree.
    pub fn set_checkpoint(&self, mailbox: &str, cp: Checkpoint) -> Result<(), StoreError> {
        self.kv
            .raw_tree(T::Checkpoints as u8)
            .insert(mailbox.as_bytes(), encode("checkpoint", &cp)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::address::{EmailAddress, Party};
    use crate::store::records::OutboxEntry;

    fn ticket(id: TicketId) -> Ticket {
        let now = Utc::now();
        Ticket::new(
            id,
            "s".into(),
            Party {
                name: None,
                address: EmailAddress::parse("a@b.c").unwrap(),
            },
            "m",
            now,
        )
    }

    #[test]
    fn ids_are_sequential_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.transact(|tx| tx.next_ticket_id(1000)).unwrap(), 1000);
            assert_eq!(s.transact(|tx| tx.next_ticket_id(1000)).unwrap(), 1001);
            s.flush_blocking().unwrap();
        }
        // sled's flusher thread may hold the file lock a moment after the drop.
        let mut tries = 0;
        let s = loop {
            match Store::open(dir.path()) {
                Err(StoreError::Locked { .. }) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other.unwrap(),
            }
        };
        assert_eq!(s.transact(|tx| tx.next_ticket_id(1000)).unwrap(), 1002);
    }

    #[test]
    fn aborted_transaction_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let r: Result<(), _> = s.transact(|tx| {
            tx.put_ticket(&ticket(1))?;
            tx.index_message_id("x@y", 1)?;
            Err(StoreError::Aborted("test".into()))
        });
        assert!(r.is_err());
        assert!(s.ticket(1).unwrap().is_none());
        assert!(s.ticket_of_message("x@y").unwrap().is_none());
    }

    #[test]
    fn messages_and_events_are_ordered_per_ticket() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.transact(|tx| {
            let mut t = ticket(7);
            for i in 0..3 {
                let ev = Event {
                    at: Utc::now(),
                    actor: format!("{i}"),
                    kind: crate::store::records::EventKind::AckSkipped { reason: "x".into() },
                };
                tx.add_event(&mut t, &ev)?;
            }
            tx.put_ticket(&t)
        })
        .unwrap();
        let evs = s.events(7).unwrap();
        assert_eq!(
            evs.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            ["0", "1", "2"]
        );
        assert_eq!(s.ticket(7).unwrap().unwrap().event_count, 3);
        assert!(s.events(8).unwrap().is_empty());
    }

    fn entry(id: u64, at: DateTime<Utc>) -> OutboxEntry {
        OutboxEntry {
            id,
            ticket: None,
            kind: "k".into(),
            message_id: format!("m{id}"),
            envelope_from: EmailAddress::parse("a@b.c").unwrap(),
            recipients: vec![],
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
    fn outbox_due_index_follows_updates() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t0 = Utc::now();
        let later = t0 + chrono::Duration::seconds(60);
        s.transact(|tx| {
            tx.put_outbox(&entry(1, t0))?;
            tx.put_outbox(&entry(2, later))?;
            tx.put_outbox(&entry(3, t0))
        })
        .unwrap();
        let (due, next) = s.due_outbox(t0, 10).unwrap();
        assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(
            next.map(|n| n.timestamp_millis()),
            Some(later.timestamp_millis())
        );
        let (due, _) = s.due_outbox(t0, 1).unwrap();
        assert_eq!(due.len(), 1);

        // Entry 1 is retried later, entry 3 fails, entry 2 is delivered.
        s.transact(|tx| {
            let old = tx.outbox_entry(1)?.unwrap();
            let mut new = old.clone();
            new.next_attempt_at = later + chrono::Duration::seconds(1);
            tx.update_outbox(&old, &new)?;
            let old3 = tx.outbox_entry(3)?.unwrap();
            let mut f = old3.clone();
            f.failed = true;
            tx.update_outbox(&old3, &f)?;
            let e2 = tx.outbox_entry(2)?.unwrap();
            tx.remove_outbox(&e2)
        })
        .unwrap();
        assert!(s.due_outbox(later, 10).unwrap().0.is_empty());
        assert_eq!(s.outbox_counts(), (1, 1));
    }

    #[test]
    fn second_open_reports_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Store::open(dir.path()).unwrap();
        // sled takes an advisory lock per process; a second open in the same
        // process succeeds on some platforms, so only check the message when it fails.
        if let Err(e) = Store::open(dir.path()) {
            assert!(e.to_string().contains("cannot open the store"), "{e}");
        }
    }
}
