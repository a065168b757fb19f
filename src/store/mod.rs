//! Durable state in sled, behind typed methods: the store, its transaction
//! type [`Tx`] and its own error type (no sled type leaves this folder), the
//! key layout, and the stored [`records`].
//!
//! May import `mail` (records hold addresses and outgoing mail) and nothing
//! else of deskgate's.
//!
//! Every change to tickets goes through [`Store::transact`]: one atomic sled
//! batch on the store's one tree (see [`db`]), so a ticket, its messages, its
//! audit trail, the Message-ID index, the dedupe record and the outbox entries
//! it queues land together or not at all. [`Store::flush`] makes them
//! durable; callers flush before telling the IMAP server a mail is done.
//! The key layout is written down in `layout.rs`; stores of older releases are
//! converted on first open (`migrate.rs`); how each value is encoded (and
//! how values of older releases are still read) is `codec.rs`'s.

use std::ops::Bound;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sled::IVec;

mod attempts;
pub mod backup;
mod blobs;
mod codec;
#[cfg(test)]
mod codec_tests;
pub mod db;
pub mod digests;
mod error;
pub mod export;
mod import;
mod layout;
pub mod list_index;
mod message_ids;
mod migrate;
pub mod open_days;
pub mod records;
mod reply_keys;
pub mod report_facts;
mod report_keys;
pub mod retention;
mod send_window;
mod sending;
mod tx;

pub use error::{StoreError, TxResult};
pub use list_index::{ListFilter, Position};
pub use reply_keys::{KeyRing, ReplyKey};
pub use sending::HELD_UNCERTAIN;
pub use tx::Tx;

use layout::*;

use db::Db;

use crate::store::records::{
    AddressState, Checkpoint, Delivery, Disposition, Event, IgnoredEntry, MessageRecord,
    OutboxEntry, QuarantineEntry, Ticket, TicketId,
};

/// The key a filed mail's raw bytes are stored under: the time it was filed
/// (ms, 16 hex digits) before its SHA-256. Keyed by the hash alone, every
/// new mail went to a random leaf of the tree, and once the store was far
/// larger than sled's cache each one was a page read and rewrite of a node
/// of other mails' bytes (the build slowed as the desk grew, see
/// docs/performance.md); in time order new mails are appended to the few
/// newest leaves. The hash keeps keys unique; a clock set back costs only
/// locality. Older mails keep their hash-only keys: a record names its key.
pub fn raw_key(filed: DateTime<Utc>, sha256: &str) -> String {
    format!("{:016x}.{sha256}", filed.timestamp_millis().max(0))
}

/// A handle on the store; cheap to clone (sled trees are reference-counted).
#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// How the store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache, in bytes: the biggest share of the daemon's memory.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 32 * 1024 * 1024,
        }
    }
}

/// One daemon's claim on a store ([`Store::lock_for_daemon`]); released on drop.
#[derive(Debug)]
pub struct DaemonLock {
    _file: std::fs::File,
}

impl Store {
    /// Opens (creating if needed) the store in `path`, with the default cache.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default())
    }

    /// Opens (creating if needed) the store in `path`; a store written by an
    /// older release is converted first, one written by a newer one refused.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
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
        Store::on(db, &path.display().to_string())
    }

    fn on(db: sled::Db, path: &str) -> Result<Store, StoreError> {
        migrate::to_current(&db, path)?;
        Ok(Store {
            db: Db::open(db, COUNTED)?,
        })
    }

    /// Writes a consistent copy of the whole store to `file` (see
    /// [`backup`]); commits wait while it runs.
    pub fn backup(&self, file: &Path) -> Result<backup::BackupSummary, StoreError> {
        backup::write(&self.db, file)
    }

    /// Restores a backup into the store at `path`, which must be new: a
    /// restore never mixes with what a store already holds.
    pub fn restore(path: &Path, file: &Path) -> Result<backup::BackupSummary, StoreError> {
        let store = Store::open_when_released(path)?;
        let format_key = db::full_key(T::Meta as u8, FORMAT_KEY);
        if store.db.holds_more_than(&[format_key])? {
            return Err(StoreError::Backup(format!(
                "cannot restore into {}: it already holds a store; restore into an empty state directory",
                path.display()
            )));
        }
        let summary = backup::read(file, |run| Ok(store.db.put_raw_run(run)?))?;
        store.db.sync()?;
        Ok(summary)
    }

    /// Claims the store for one daemon, for as long as the returned lock
    /// lives. sled's own lock cannot tell a second daemon (wait forever)
    /// from a CLI command that has the store open for a moment (wait a
    /// little); this one is taken by daemons only, so a second `deskgate
    /// run` is refused at once. The lock goes with the process, also on a
    /// crash: no stale lock to remove.
    pub fn lock_for_daemon(path: &Path) -> Result<DaemonLock, StoreError> {
        let shown = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join("daemon.lock"))
            .map_err(|source| StoreError::DaemonLock {
                path: shown.clone(),
                source,
            })?;
        match fs2::FileExt::try_lock_exclusive(&file) {
            Ok(()) => Ok(DaemonLock { _file: file }),
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
                Err(StoreError::InUse { path: shown })
            }
            Err(source) => Err(StoreError::DaemonLock {
                path: shown,
                source,
            }),
        }
    }

    /// Writes the tickets, messages, events and attachments as JSON lines
    /// to `file` (see [`export`]); commits wait while it runs.
    pub fn export(
        &self,
        file: &Path,
        now: DateTime<Utc>,
    ) -> Result<export::TransferSummary, StoreError> {
        export::write(&self.db, file, now)
    }

    /// Imports an export into the store at `path`, which must be new, like
    /// a restore's.
    pub fn import(path: &Path, file: &Path) -> Result<export::TransferSummary, StoreError> {
        let store = Store::open_when_released(path)?;
        let format_key = db::full_key(T::Meta as u8, FORMAT_KEY);
        if store.db.holds_more_than(&[format_key])? {
            return Err(StoreError::Transfer(format!(
                "cannot import into {}: it already holds a store; import into an empty state directory",
                path.display()
            )));
        }
        import::read(&store, file)
    }

    /// Opens a store this process may have just dropped: sled releases its
    /// lock a moment after the last handle goes, so this waits for that (at
    /// most 5 s). Only for offline work (a restore) and tests; the daemon
    /// and the CLI say at once when another process holds the store.
    fn open_when_released(path: &Path) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Store::open(path) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other,
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn open_when_free(path: &Path) -> Store {
        Store::open_when_released(path).unwrap()
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
        Store::on(db, "(temporary)")
    }

    fn get(&self, t: T, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        Ok(self.db.get(t as u8, key)?)
    }

    fn values<V: DeserializeOwned>(
        &self,
        t: T,
        what: &'static str,
    ) -> impl Iterator<Item = Result<V, StoreError>> + '_ {
        self.db.iter(t as u8).map(move |r| decode(what, &r?.1))
    }

    fn prefixed<V: DeserializeOwned>(
        &self,
        t: T,
        prefix: &[u8],
        what: &'static str,
    ) -> Result<Vec<V>, StoreError> {
        self.db
            .scan_prefix(t as u8, prefix)
            .map(move |r| decode(what, &r?.1))
            .collect()
    }

    /// Runs `f` as one atomic unit: all its writes become one sled batch, or
    /// nothing when it fails. Transactions run one at a time.
    pub fn transact<R>(&self, f: impl FnOnce(&Tx<'_>) -> TxResult<R>) -> Result<R, StoreError> {
        self.db.transact(|ws| {
            f(&Tx {
                ws,
                touched: Default::default(),
            })
        })
    }

    /// Makes everything committed so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.sync())
            .await
            .map_err(|e| StoreError::Aborted(format!("the flush task failed: {e}")))??;
        Ok(())
    }

    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        Ok(self.db.sync()?)
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

    /// Tickets by number, highest (newest) first.
    pub fn tickets_newest_first(&self) -> impl Iterator<Item = Result<Ticket, StoreError>> + '_ {
        self.db
            .iter(T::Tickets as u8)
            .rev()
            .map(|r| decode("ticket", &r?.1))
    }

    /// Tickets matching every filter, most recently updated first, updated
    /// at `since` or later, below `before` (a position of an earlier page):
    /// read from the list index, a page costs its size (see `list_index`).
    pub fn ticket_list<'a>(
        &'a self,
        filters: &[ListFilter],
        since: Option<DateTime<Utc>>,
        before: Option<Position>,
    ) -> list_index::ListWalk<'a> {
        list_index::ListWalk::new(&self.db, filters, since, before)
    }

    /// Counted in the transactions that add and remove tickets: one read.
    pub fn ticket_count(&self) -> usize {
        self.count(T::Tickets)
    }

    pub fn delivery_count(&self) -> usize {
        self.count(T::Deliveries)
    }

    pub fn quarantine_count(&self) -> usize {
        self.count(T::Quarantine)
    }

    fn count(&self, t: T) -> usize {
        self.db.count(t as u8).unwrap_or(0) as usize
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
            .and_then(|v| message_ids::ticket_of(&v)))
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
        self.due_outbox_from(Bound::Unbounded, now, limit)
    }

    /// Like [`Store::due_outbox`], but only entries that fell due at `since`
    /// or later: the mail that just arrived, which the sender takes ahead of
    /// a backlog.
    pub fn due_outbox_since(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let from = Bound::Included(due_key(since, 0).to_vec());
        Ok(self.due_outbox_from(from, now, limit)?.0)
    }

    fn due_outbox_from(
        &self,
        from: Bound<Vec<u8>>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<(Vec<OutboxEntry>, Option<DateTime<Utc>>), StoreError> {
        let mut due = Vec::new();
        for item in self.db.range(T::OutboxDue as u8, from, Bound::Unbounded) {
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

    /// Makes every entry waiting out a backoff due at `now` (the SMTP server
    /// answers again); returns how many. In transactions of a bounded size.
    pub fn retry_waiting_outbox(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let now_ms = now.timestamp_millis().max(0) as u64;
        let ids: Vec<u64> = self
            .db
            .iter(T::OutboxDue as u8)
            .filter_map(|item| item.ok())
            .filter_map(|(key, _)| Some((u64_of(key.get(..8)?)?, u64_of(key.get(8..)?)?)))
            .filter(|(at, _)| *at > now_ms)
            .map(|(_, id)| id)
            .collect();
        for chunk in ids.chunks(512) {
            self.transact(|tx| {
                for id in chunk {
                    if let Some(old) = tx.outbox_entry(*id)? {
                        let mut new = old.clone();
                        new.next_attempt_at = now;
                        tx.update_outbox(&old, &new)?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(ids.len())
    }

    /// Tickets whose next timer is due at `now`, soonest first, at most `limit`.
    pub fn timers_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<TicketId>, StoreError> {
        let mut due = Vec::new();
        for item in self.db.iter(T::TimerDue as u8) {
            let (key, _) = item?;
            let (Some(at_ms), Some(id)) = (u64_of(&key[..8]), u64_of(&key[8..])) else {
                continue;
            };
            if at_ms as i64 > now.timestamp_millis() || due.len() >= limit {
                break;
            }
            due.push(id);
        }
        Ok(due)
    }

    /// The fingerprint the timer index was last built with.
    pub fn timer_policy(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(T::Meta, TIMER_POLICY_KEY)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Ticket numbers from `after` (exclusive) upwards, at most `limit`.
    pub fn ticket_ids_after(
        &self,
        after: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<TicketId>, StoreError> {
        let from = match after {
            Some(id) => std::ops::Bound::Excluded(ticket_key(id).to_vec()),
            None => std::ops::Bound::Unbounded,
        };
        self.db
            .range(T::Tickets as u8, from, std::ops::Bound::Unbounded)
            .take(limit)
            .map(|r| Ok(u64_of(&r?.0).unwrap_or(0)))
            .collect()
    }

    /// (entries still to be tried, entries that gave up), without decoding any.
    pub fn outbox_counts(&self) -> (usize, usize) {
        let pending = self.count(T::OutboxDue);
        (pending, self.count(T::Outbox).saturating_sub(pending))
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

    /// The mail as received, byte for byte.
    pub fn raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(T::Raw, key.as_bytes())?
            .map(|v| blobs::raw_bytes(key, &v))
            .transpose()
    }

    /// An attachment's bytes, wherever they are kept (see `blobs.rs`).
    pub fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(T::Blobs, sha256.as_bytes())? {
            Some(v) => blobs::resolve(&self.db, sha256, &v),
            None => Ok(None),
        }
    }

    pub fn checkpoint(&self, mailbox: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.get(T::Checkpoints, mailbox.as_bytes())?
            .map(|v| decode("checkpoint", &v))
            .transpose()
    }

    /// (table number, keys, bytes of keys and values) of every table that
    /// holds keys: where the store's bytes go (benches, `docs/performance.md`).
    /// A walk of the whole store.
    pub fn table_sizes(&self) -> Result<Vec<(u8, u64, u64)>, StoreError> {
        let mut sizes = Vec::new();
        for table in 0..=u8::MAX {
            let (mut keys, mut bytes) = (0u64, 0u64);
            for item in self.db.iter(table) {
                let (k, v) = item?;
                keys += 1;
                bytes += (k.len() + 1 + v.len()) as u64;
            }
            if keys > 0 {
                sizes.push((table, keys, bytes));
            }
        }
        Ok(sizes)
    }

    /// Checkpoints are advisory (dedupe makes a refetch harmless), so they are
    /// written outside ticket transactions, straight to their tree.
    pub fn set_checkpoint(&self, mailbox: &str, cp: Checkpoint) -> Result<(), StoreError> {
        let value = encode("checkpoint", &cp)?;
        Ok(self
            .db
            .put_direct(T::Checkpoints as u8, mailbox.as_bytes(), &value)?)
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
    fn waiting_entries_become_due_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t0 = Utc::now();
        let later = t0 + chrono::Duration::minutes(15);
        s.transact(|tx| {
            tx.put_outbox(&entry(1, later))?;
            tx.put_outbox(&entry(2, t0))?;
            let mut failed = entry(3, later);
            failed.failed = true;
            tx.put_outbox(&failed)
        })
        .unwrap();
        assert_eq!(s.due_outbox(t0, 10).unwrap().0.len(), 1);
        assert_eq!(s.retry_waiting_outbox(t0).unwrap(), 1);
        let (due, next) = s.due_outbox(t0, 10).unwrap();
        assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(next, None, "the failed entry stays failed");
        let fresh = s
            .due_outbox_since(t0 - chrono::Duration::seconds(1), t0, 10)
            .unwrap();
        assert_eq!(fresh.len(), 2);
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
