//! The store's one sled tree: every table is a one-byte key prefix, and a
//! commit is one `apply_batch`, which sled applies atomically and recovers
//! atomically after a crash. Nothing else makes a change durable: there is no
//! journal, no overlay and no background thread of ours.
//!
//! A transaction collects its writes in memory (reads see them first), and
//! commits them as one batch while holding the writer lock, so transactions
//! never interleave and there is nothing to retry. Readers outside a
//! transaction read the tree directly: they see every committed batch whole
//! or not at all.
//!
//! Counted tables (tickets, outbox, quarantine, …) keep their number of keys
//! in a counter key written in the same batch, so counting costs one read
//! instead of a scan.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use sled::{IVec, Tree};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DbError {
    #[error("cannot access the store: {0}")]
    Sled(#[from] sled::Error),
}

/// The key of a table's counter, in the table `meta` (prefix 0).
pub(super) fn counter_key(table: u8) -> [u8; 7] {
    [0, b'c', b'o', b'u', b'n', b't', table]
}

pub(super) fn full_key(table: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(table);
    k.extend_from_slice(key);
    k
}

struct Inner {
    db: sled::Db,
    data: Tree,
    /// Held for the whole of a transaction.
    writer: Mutex<()>,
    /// Tables whose number of keys is kept in a counter.
    counted: Vec<u8>,
}

/// A handle on the store's tree; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

/// A poisoned lock only means another thread panicked while holding it; the
/// unit it guarded was never committed, so the tree is consistent.
fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Db {
    /// The tree named `data` in `db`; `counted` lists the tables whose keys
    /// are counted.
    pub fn open(db: sled::Db, counted: &[u8]) -> Result<Db, DbError> {
        let data = db.open_tree("data")?;
        Ok(Db {
            inner: Arc::new(Inner {
                db,
                data,
                writer: Mutex::new(()),
                counted: counted.to_vec(),
            }),
        })
    }

    pub fn sled(&self) -> &sled::Db {
        &self.inner.db
    }

    /// The committed value of `key` in `table`.
    pub fn get(&self, table: u8, key: &[u8]) -> Result<Option<IVec>, DbError> {
        Ok(self.inner.data.get(full_key(table, key))?)
    }

    /// Committed pairs of `table` with keys (without the table byte) in the
    /// given bounds, in key order.
    pub fn range(
        &self,
        table: u8,
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
    ) -> impl DoubleEndedIterator<Item = Result<(IVec, IVec), DbError>> {
        let lift = |b: Bound<Vec<u8>>, open_end: Bound<Vec<u8>>| match b {
            Bound::Included(k) => Bound::Included(full_key(table, &k)),
            Bound::Excluded(k) => Bound::Excluded(full_key(table, &k)),
            Bound::Unbounded => open_end,
        };
        let from = lift(from, Bound::Included(vec![table]));
        let to = lift(
            to,
            if table == u8::MAX {
                Bound::Unbounded
            } else {
                Bound::Excluded(vec![table + 1])
            },
        );
        self.inner.data.range((from, to)).map(|r| {
            let (k, v) = r?;
            Ok((IVec::from(&k[1..]), v))
        })
    }

    pub fn scan_prefix(
        &self,
        table: u8,
        prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<(IVec, IVec), DbError>> {
        let to = prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        self.range(table, Bound::Included(prefix.to_vec()), to)
    }

    pub fn iter(
        &self,
        table: u8,
    ) -> impl DoubleEndedIterator<Item = Result<(IVec, IVec), DbError>> {
        self.range(table, Bound::Unbounded, Bound::Unbounded)
    }

    /// Number of keys of a counted table: one read.
    pub fn count(&self, table: u8) -> Result<u64, DbError> {
        Ok(self
            .inner
            .data
            .get(counter_key(table))?
            .and_then(|v| Some(u64::from_be_bytes(v.as_ref().try_into().ok()?)))
            .unwrap_or(0))
    }

    /// Writes one key outside any transaction (a checkpoint, the reply key):
    /// still one atomic sled write, but not ordered with transactions.
    pub fn put_direct(&self, table: u8, key: &[u8], value: &[u8]) -> Result<(), DbError> {
        self.inner.data.insert(full_key(table, key), value)?;
        Ok(())
    }

    /// Removes one key outside any transaction.
    pub fn remove_direct(&self, table: u8, key: &[u8]) -> Result<(), DbError> {
        self.inner.data.remove(full_key(table, key))?;
        Ok(())
    }

    /// Writes (`Some`) and removes (`None`) keys of `table` outside any
    /// transaction, as one atomic sled batch: for the per-mail keys of a
    /// whole fetch (attempt counts), one batch costs less than a sled write
    /// per key.
    pub fn write_direct(
        &self,
        table: u8,
        writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), DbError> {
        let mut batch = sled::Batch::default();
        let mut keys = 0;
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(full_key(table, &k), v),
                None => batch.remove(full_key(table, &k)),
            }
            keys += 1;
        }
        if keys > 0 {
            self.inner.data.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Sets `key` only if it is absent; returns the value it holds afterwards.
    pub fn put_if_absent(&self, table: u8, key: &[u8], value: &[u8]) -> Result<IVec, DbError> {
        let k = full_key(table, key);
        let _ = self
            .inner
            .data
            .compare_and_swap(&k, None as Option<&[u8]>, Some(value))?;
        Ok(self
            .inner
            .data
            .get(&k)?
            .unwrap_or_else(|| IVec::from(value)))
    }

    /// Replaces `key`'s value only if it still is `old` (None: absent);
    /// returns whether it did.
    pub fn compare_and_swap(
        &self,
        table: u8,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, DbError> {
        Ok(self
            .inner
            .data
            .compare_and_swap(full_key(table, key), old, new)?
            .is_ok())
    }

    /// Runs `f` with the writer lock held and commits what it wrote as one
    /// atomic batch. Nothing is written when `f` fails.
    pub fn transact<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&WriteSet<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let _writer = lock(&self.inner.writer);
        let ws = WriteSet {
            db: self,
            writes: RefCell::default(),
        };
        let r = f(&ws)?;
        let writes = ws.writes.into_inner();
        if writes.is_empty() {
            return Ok(r);
        }
        let batch = self.batch_of(writes)?;
        self.inner.data.apply_batch(batch).map_err(DbError::from)?;
        Ok(r)
    }

    /// The writes as one batch, with the counters of counted tables moved by
    /// how many keys the writes create or remove.
    fn batch_of(&self, writes: Writes) -> Result<sled::Batch, DbError> {
        let mut deltas: BTreeMap<u8, i64> = BTreeMap::new();
        let mut batch = sled::Batch::default();
        for (k, v) in writes {
            let table = k[0];
            if self.inner.counted.contains(&table) {
                let existed = self.inner.data.get(&k)?.is_some();
                let delta = match (existed, v.is_some()) {
                    (false, true) => 1,
                    (true, false) => -1,
                    _ => 0,
                };
                if delta != 0 {
                    *deltas.entry(table).or_default() += delta;
                }
            }
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        for (table, delta) in deltas {
            let now = self.count(table)? as i64 + delta;
            batch.insert(&counter_key(table), &(now.max(0) as u64).to_be_bytes());
        }
        Ok(batch)
    }

    /// Calls `f` with every key and value of the tree, commits held off
    /// meanwhile, so what it sees is one consistent state. Returns how many.
    pub fn snapshot<E: From<DbError>>(
        &self,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let _writer = lock(&self.inner.writer);
        let mut n = 0;
        for item in self.inner.data.iter() {
            let (k, v) = item.map_err(DbError::from)?;
            f(&k, &v)?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether the tree holds anything but `except` keys.
    pub fn holds_more_than(&self, except: &[Vec<u8>]) -> Result<bool, DbError> {
        for item in self.inner.data.iter() {
            let (k, _) = item?;
            if !except.iter().any(|e| e.as_slice() == k.as_ref()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes whole keys (table byte included) as they are, in one batch:
    /// for restoring a backup into an empty store.
    pub fn put_raw_run(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), DbError> {
        let _writer = lock(&self.inner.writer);
        let mut batch = sled::Batch::default();
        for (k, v) in pairs {
            batch.insert(k, v);
        }
        self.inner.data.apply_batch(batch)?;
        Ok(())
    }

    /// Makes every committed batch durable.
    pub fn sync(&self) -> Result<(), DbError> {
        self.inner.db.flush()?;
        Ok(())
    }

    pub fn generate_id(&self) -> Result<u64, DbError> {
        Ok(self.inner.db.generate_id()?)
    }
}

/// Whole keys (table byte first) and their new values, `None` to remove.
/// Hashed, not sorted: sled applies a batch in its own hash order anyway,
/// and a transaction of 500 mails holds some 16,000 keys, where finding
/// each in a sorted map took most of the cost of writing it.
type Writes = HashMap<Vec<u8>, Option<IVec>>;

/// The writes of one transaction, not yet committed; reads see them first.
pub struct WriteSet<'a> {
    db: &'a Db,
    writes: RefCell<Writes>,
}

impl<'a> WriteSet<'a> {
    pub fn get(&self, table: u8, key: &[u8]) -> Result<Option<IVec>, DbError> {
        let k = full_key(table, key);
        if let Some(v) = self.writes.borrow().get(&k) {
            return Ok(v.clone());
        }
        Ok(self.db.inner.data.get(k)?)
    }

    pub fn insert(&self, table: u8, key: &[u8], value: impl Into<IVec>) {
        self.writes
            .borrow_mut()
            .insert(full_key(table, key), Some(value.into()));
    }

    pub fn remove(&self, table: u8, key: &[u8]) {
        self.writes.borrow_mut().insert(full_key(table, key), None);
    }

    pub fn generate_id(&self) -> Result<u64, DbError> {
        self.db.generate_id()
    }

    /// The committed store under this write set (for index walks).
    pub(super) fn db(&self) -> &'a Db {
        self.db
    }
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Db {
        Db::open(sled::Config::new().temporary(true).open().unwrap(), &[2]).unwrap()
    }

    #[test]
    fn a_failed_transaction_writes_nothing() {
        let db = open();
        let r: Result<(), DbError> = db.transact(|ws| {
            ws.insert(1, b"a", &b"1"[..]);
            Err(DbError::Sled(sled::Error::Unsupported("no".into())))
        });
        assert!(r.is_err());
        assert!(db.get(1, b"a").unwrap().is_none());
    }

    #[test]
    fn reads_see_the_transactions_own_writes_first() {
        let db = open();
        db.transact(|ws| {
            ws.insert(1, b"a", &b"1"[..]);
            assert_eq!(ws.get(1, b"a")?.as_deref(), Some(&b"1"[..]));
            ws.remove(1, b"a");
            assert!(ws.get(1, b"a")?.is_none());
            ws.insert(1, b"b", &b"2"[..]);
            Ok::<_, DbError>(())
        })
        .unwrap();
        assert!(db.get(1, b"a").unwrap().is_none());
        assert_eq!(db.get(1, b"b").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn tables_do_not_see_each_others_keys() {
        let db = open();
        db.transact(|ws| {
            ws.insert(1, b"x1", &b"a"[..]);
            ws.insert(1, b"x2", &b"b"[..]);
            ws.insert(2, b"x3", &b"c"[..]);
            ws.insert(3, b"x4", &b"d"[..]);
            Ok::<_, DbError>(())
        })
        .unwrap();
        let keys = |t| -> Vec<Vec<u8>> { db.iter(t).map(|r| r.unwrap().0.to_vec()).collect() };
        assert_eq!(keys(1), vec![b"x1".to_vec(), b"x2".to_vec()]);
        assert_eq!(keys(2), vec![b"x3".to_vec()]);
        let scanned: Vec<_> = db
            .scan_prefix(1, b"x2")
            .map(|r| r.unwrap().0.to_vec())
            .collect();
        assert_eq!(scanned, vec![b"x2".to_vec()]);
        let newest = db.iter(1).next_back().unwrap().unwrap().0;
        assert_eq!(newest.as_ref(), b"x2");
    }

    #[test]
    fn direct_writes_put_and_remove_in_one_batch() {
        let db = open();
        db.put_direct(1, b"gone", b"x").unwrap();
        db.write_direct(
            1,
            [
                (b"a".to_vec(), Some(b"1".to_vec())),
                (b"gone".to_vec(), None),
            ],
        )
        .unwrap();
        db.write_direct(1, []).unwrap();
        assert_eq!(db.get(1, b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(db.get(1, b"gone").unwrap().is_none());
        assert!(db.get(2, b"a").unwrap().is_none());
    }

    #[test]
    fn counters_follow_inserts_updates_and_removes() {
        let db = open();
        for k in [b"a", b"b", b"c"] {
            db.transact(|ws| {
                ws.insert(2, k, &b"v"[..]);
                Ok::<_, DbError>(())
            })
            .unwrap();
        }
        assert_eq!(db.count(2).unwrap(), 3);
        db.transact(|ws| {
            ws.insert(2, b"a", &b"updated"[..]);
            ws.remove(2, b"b");
            ws.remove(2, b"missing");
            ws.insert(2, b"d", &b"v"[..]);
            ws.remove(2, b"d");
            Ok::<_, DbError>(())
        })
        .unwrap();
        assert_eq!(db.count(2).unwrap(), 2);
        assert_eq!(db.iter(2).count(), 2);
    }
}
