//! sled trees behind a write-ahead journal: a commit is one journal record.
//!
//! sled costs about 10 µs per inserted key on the machines we measured, and a
//! new ticket touches about a dozen keys (ticket, message, raw mail, events,
//! dedupe record, Message-ID index, outbox entry and its due index, …). Written
//! key by key, that capped ingest near 3,000 mails/s. So a commit turns its
//! whole change set into **one** record and makes it visible at once in an
//! in-memory overlay. A journal-writer thread stores records, in order, in the
//! `journal` tree (one sled batch each, or per run of them): that write costs
//! about as much as the transaction itself, and this way it overlaps the next
//! one. An applier thread copies written records into the real trees later
//! (when the desk goes quiet, or when the overlay grows past [`SOFT_LIMIT`])
//! and only then deletes them.
//!
//! Why this is safe:
//! - A commit is durable once its journal record is: [`Kv::sync`] (the
//!   caller's flush) waits for the writer to store every record committed so
//!   far, then flushes sled. Records are written in commit order, so what is
//!   on disk after a crash is always a prefix of what was committed.
//! - The applier only takes records already written, so it never deletes the
//!   chunks of a record before they exist (they would be replayed later over
//!   newer values).
//! - Every read looks at the overlay before the trees, so readers never see
//!   a state older than the last commit.
//! - The applier flushes the trees before it deletes a journal record; after
//!   a crash, [`Kv::open`] replays whatever records remain, in order. Records
//!   hold final values (puts and removes, no increments), so replaying one
//!   that was already applied changes nothing.
//! - Commits are serialised by one writer lock, so a transaction's reads and
//!   writes cannot interleave with another's (sled's transactions retried on
//!   conflict; here there is nothing to retry).
//! - Past [`HARD_LIMIT`] of unapplied bytes a commit waits for the applier,
//!   so memory stays bounded under a sustained flood.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::{IVec, Tree};
use thiserror::Error;

/// Unapplied bytes above which the applier starts even while mail flows.
pub const SOFT_LIMIT: usize = 96 * 1024 * 1024;
/// Unapplied bytes above which a commit waits for the applier.
pub const HARD_LIMIT: usize = 384 * 1024 * 1024;
/// Quiet time after the last commit before the applier starts on its own.
const IDLE: Duration = Duration::from_millis(200);
/// The oldest unapplied record is applied after this long even while small
/// transactions keep coming (the outbox sender records deliveries every few
/// milliseconds while it drains a backlog, so the desk is never quiet).
const MAX_AGE: Duration = Duration::from_secs(2);
/// At most this many journal bytes are applied per round, so the overlay
/// lock is released (and memory returned) in steps.
const ROUND_BYTES: usize = 32 * 1024 * 1024;
/// A journal record is stored in chunks of at most this size, written in one
/// atomic sled batch: sled writes a value over a quarter of its 512 KiB log
/// segment as a separate blob file, which measured 2x slower per byte with
/// stalls of up to 180 ms per record.
const CHUNK: usize = 100 * 1024;

#[derive(Debug, Error)]
pub enum KvError {
    #[error("cannot access the store: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot replay journal record {seq}: it is truncated or corrupt")]
    CorruptJournal { seq: u64 },
    /// Sticky: once a journal write has failed, later commits could only be
    /// held in memory, so every commit and flush fails until a restart.
    #[error("cannot write the store journal: {0}")]
    JournalFailed(String),
}

/// One change: tree index, key, new value (None removes the key).
pub type Op = (u8, IVec, Option<IVec>);

struct Record {
    seq: u64,
    ops: Vec<Op>,
    bytes: usize,
    chunks: u32,
    at: Instant,
}

struct Pending {
    seq: u64,
    value: Option<IVec>,
}

#[derive(Default)]
struct Overlay {
    /// Per tree: the newest unapplied value of each key.
    trees: Vec<BTreeMap<IVec, Pending>>,
    /// Unapplied records, oldest first.
    records: VecDeque<Arc<Record>>,
    bytes: usize,
    /// A transaction is running: the desk is busy, leave the CPU to it.
    in_transaction: bool,
    /// When the last transaction started or ended.
    last_activity: Option<Instant>,
    /// Newest committed record.
    committed: u64,
    /// Newest record whose journal chunks are written (records are written
    /// in order, so every older one is too).
    written: u64,
    /// Why the journal writer stopped, if it failed.
    failed: Option<String>,
}

impl Overlay {
    fn check(&self) -> Result<(), KvError> {
        match &self.failed {
            Some(why) => Err(KvError::JournalFailed(why.clone())),
            None => Ok(()),
        }
    }
}

struct Inner {
    db: sled::Db,
    trees: Vec<Tree>,
    journal: Tree,
    /// Held for the whole of a transaction; guards the next journal sequence.
    writer: Mutex<u64>,
    overlay: Mutex<Overlay>,
    /// Held for a whole apply round: the applier thread and [`Kv::apply_all`]
    /// both apply the oldest records, and two rounds at once would both
    /// retire the same records from the overlay.
    applying: Mutex<()>,
    /// Signalled on every commit and every applied round.
    changed: Condvar,
    stop: AtomicBool,
}

/// Stops and joins the journal writer and the applier when the last [`Kv`]
/// handle goes, after they have written and applied everything (so a clean
/// exit leaves an empty journal).
struct ApplierHandle {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for ApplierHandle {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.changed.notify_all();
        for t in lock(&self.threads).drain(..) {
            let _ = t.join();
        }
    }
}

/// A handle on the journaled trees; cheap to clone.
#[derive(Clone)]
pub struct Kv {
    inner: Arc<Inner>,
    _applier: Arc<ApplierHandle>,
}

/// A poisoned lock only means another thread panicked while holding it; the
/// data it guards is still consistent (every mutation completes in place).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Kv {
    /// Opens `tree_names` in `db`, replays any journal left by a crash, and
    /// starts the applier.
    pub fn open(db: sled::Db, tree_names: &[&str]) -> Result<Kv, KvError> {
        let trees = tree_names
            .iter()
            .map(|n| db.open_tree(n))
            .collect::<Result<Vec<_>, _>>()?;
        let journal = db.open_tree("journal")?;
        replay(&db, &trees, &journal)?;
        let inner = Arc::new(Inner {
            db,
            trees,
            journal,
            writer: Mutex::new(0),
            overlay: Mutex::new(Overlay {
                trees: (0..tree_names.len()).map(|_| BTreeMap::new()).collect(),
                ..Overlay::default()
            }),
            applying: Mutex::new(()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let handle = ApplierHandle {
            inner: inner.clone(),
            threads: Mutex::new(Vec::new()),
        };
        for (name, work) in [
            ("deskgate-journal", journal_writer as fn(&Inner)),
            ("deskgate-applier", applier),
        ] {
            let worker = inner.clone();
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || work(&worker))
                .map_err(|e| KvError::Sled(sled::Error::Io(e)))?;
            lock(&handle.threads).push(thread);
        }
        Ok(Kv {
            _applier: Arc::new(handle),
            inner,
        })
    }

    pub fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    /// The tree itself, for keys written only outside transactions
    /// (checkpoints, the reply key).
    pub fn raw_tree(&self, t: u8) -> &Tree {
        &self.inner.trees[t as usize]
    }

    /// The committed value of `key`.
    pub fn get(&self, t: u8, key: &[u8]) -> Result<Option<IVec>, KvError> {
        if let Some(p) = lock(&self.inner.overlay).trees[t as usize].get(key) {
            return Ok(p.value.clone());
        }
        Ok(self.inner.trees[t as usize].get(key)?)
    }

    /// Committed pairs with keys in `range`, in key order.
    pub fn range(
        &self,
        t: u8,
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
    ) -> impl Iterator<Item = Result<(IVec, IVec), KvError>> {
        // The overlay part is copied out (values are reference-counted) so the
        // lock is not held while the caller iterates.
        let pending: Vec<(IVec, Option<IVec>)> = lock(&self.inner.overlay).trees[t as usize]
            .range::<[u8], _>((as_ref(&from), as_ref(&to)))
            .map(|(k, p)| (k.clone(), p.value.clone()))
            .collect();
        Merge {
            tree: self.inner.trees[t as usize].range((from, to)).peekable(),
            pending: pending.into_iter().peekable(),
        }
    }

    pub fn scan_prefix(
        &self,
        t: u8,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(IVec, IVec), KvError>> {
        let to = prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        self.range(t, Bound::Included(prefix.to_vec()), to)
    }

    pub fn iter(&self, t: u8) -> impl Iterator<Item = Result<(IVec, IVec), KvError>> {
        self.range(t, Bound::Unbounded, Bound::Unbounded)
    }

    /// Number of keys (sled counts by iterating too).
    pub fn len(&self, t: u8) -> usize {
        self.iter(t).filter(|r| r.is_ok()).count()
    }

    /// Runs `f` with the writer lock held and commits what it wrote as one
    /// journal record. Nothing is written when `f` fails.
    pub fn transact<R, E>(
        &self,
        f: impl FnOnce(&WriteSet<'_>) -> Result<R, E>,
    ) -> Result<Result<R, E>, KvError> {
        let mut seq = lock(&self.inner.writer);
        lock(&self.inner.overlay).check()?;
        self.wait_for_room();
        self.set_active(true);
        let ws = WriteSet {
            kv: self,
            writes: Default::default(),
        };
        let r = f(&ws);
        let writes = ws.writes.into_inner();
        let r = match r {
            Ok(r) if !writes.is_empty() => r,
            other => {
                self.set_active(false);
                return Ok(other);
            }
        };
        *seq += 1;
        let ops: Vec<Op> = writes.into_iter().map(|((t, k), v)| (t, k, v)).collect();
        let bytes = encoded_len(&ops);
        // The journal writer thread encodes and stores the record while this
        // thread goes on with the next transaction; `sync` waits for it.
        let record = Arc::new(Record {
            seq: *seq,
            ops,
            bytes,
            chunks: bytes.div_ceil(CHUNK) as u32,
            at: Instant::now(),
        });
        let mut ov = lock(&self.inner.overlay);
        for (t, k, v) in &record.ops {
            ov.trees[*t as usize].insert(
                k.clone(),
                Pending {
                    seq: record.seq,
                    value: v.clone(),
                },
            );
        }
        ov.bytes += bytes;
        ov.committed = record.seq;
        ov.records.push_back(record);
        ov.in_transaction = false;
        ov.last_activity = Some(Instant::now());
        drop(ov);
        self.inner.changed.notify_all();
        Ok(Ok(r))
    }

    fn set_active(&self, active: bool) {
        let mut ov = lock(&self.inner.overlay);
        ov.in_transaction = active;
        ov.last_activity = Some(Instant::now());
    }

    fn wait_for_room(&self) {
        let mut ov = lock(&self.inner.overlay);
        while ov.bytes > HARD_LIMIT && !self.inner.stop.load(Ordering::SeqCst) {
            self.inner.changed.notify_all();
            ov = self
                .inner
                .changed
                .wait_timeout(ov, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Makes every commit so far durable: waits for the journal writer to
    /// store them, then flushes sled.
    pub fn sync(&self) -> Result<(), KvError> {
        let ov = lock(&self.inner.overlay);
        let target = ov.committed;
        drop(wait_written(&self.inner, ov, target)?);
        self.inner.db.flush()?;
        Ok(())
    }

    /// Applies every pending record now (tests, and `deskgate` commands that
    /// want the trees complete before they exit).
    pub fn apply_all(&self) -> Result<(), KvError> {
        apply_round(&self.inner, usize::MAX)
    }

    /// (unapplied records, unapplied bytes): shown by `stats`.
    pub fn backlog(&self) -> (usize, usize) {
        let ov = lock(&self.inner.overlay);
        (ov.records.len(), ov.bytes)
    }
}

/// The reads and writes of one transaction.
pub struct WriteSet<'a> {
    kv: &'a Kv,
    writes: std::cell::RefCell<BTreeMap<(u8, IVec), Option<IVec>>>,
}

impl WriteSet<'_> {
    pub fn get(&self, t: u8, key: &[u8]) -> Result<Option<IVec>, KvError> {
        // A tuple key cannot be looked up by borrowed parts, so this builds
        // one; it is only an IVec of the key (inline when short).
        if let Some(v) = self.writes.borrow().get(&(t, IVec::from(key))) {
            return Ok(v.clone());
        }
        self.kv.get(t, key)
    }

    pub fn insert(&self, t: u8, key: &[u8], value: impl Into<IVec>) {
        self.writes
            .borrow_mut()
            .insert((t, IVec::from(key)), Some(value.into()));
    }

    pub fn remove(&self, t: u8, key: &[u8]) {
        self.writes.borrow_mut().insert((t, IVec::from(key)), None);
    }

    pub fn generate_id(&self) -> Result<u64, KvError> {
        Ok(self.kv.inner.db.generate_id()?)
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
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

/// Tree pairs and overlay pairs merged by key; the overlay wins, and its
/// removals hide the tree's pair.
struct Merge<I: Iterator<Item = Result<(IVec, IVec), sled::Error>>> {
    tree: std::iter::Peekable<I>,
    pending: std::iter::Peekable<std::vec::IntoIter<(IVec, Option<IVec>)>>,
}

impl<I: Iterator<Item = Result<(IVec, IVec), sled::Error>>> Iterator for Merge<I> {
    type Item = Result<(IVec, IVec), KvError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_pending = match (self.tree.peek(), self.pending.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => {
                    return self.tree.next().map(|r| r.map_err(KvError::from));
                }
                (None, Some(_)) => true,
                (Some(Ok(_)), None) => false,
                (Some(Ok((tk, _))), Some((pk, _))) => {
                    if tk == pk {
                        // The overlay's value replaces the tree's.
                        self.tree.next();
                        true
                    } else {
                        pk < tk
                    }
                }
            };
            if take_pending {
                match self.pending.next() {
                    Some((k, Some(v))) => return Some(Ok((k, v))),
                    _ => continue,
                }
            }
            return self.tree.next().map(|r| r.map_err(KvError::from));
        }
    }
}

/// Stores committed records in the journal tree, oldest first, several per
/// sled batch when commits outpace it.
fn journal_writer(inner: &Inner) {
    loop {
        let todo: Vec<Arc<Record>> = {
            let mut ov = lock(&inner.overlay);
            loop {
                if ov.failed.is_some() {
                    return;
                }
                let first = ov.records.partition_point(|r| r.seq <= ov.written);
                if first < ov.records.len() {
                    break up_to_bytes(ov.records.range(first..), ROUND_BYTES);
                }
                if inner.stop.load(Ordering::SeqCst) {
                    return;
                }
                ov = inner.changed.wait(ov).unwrap_or_else(|p| p.into_inner());
            }
        };
        let mut batch = sled::Batch::default();
        for rec in &todo {
            for (i, part) in encode(&rec.ops).chunks(CHUNK).enumerate() {
                batch.insert(&chunk_key(rec.seq, i as u32), part);
            }
        }
        let result = inner.journal.apply_batch(batch);
        let mut ov = lock(&inner.overlay);
        match result {
            Ok(()) => ov.written = todo.last().map_or(ov.written, |r| r.seq),
            Err(e) => {
                tracing::error!(error = %e, "cannot write the store journal; commits stop until a restart");
                ov.failed = Some(e.to_string());
            }
        }
        drop(ov);
        inner.changed.notify_all();
    }
}

/// Waits until the journal writer has stored record `seq`, and so every
/// record before it.
fn wait_written<'a>(
    inner: &Inner,
    mut ov: MutexGuard<'a, Overlay>,
    seq: u64,
) -> Result<MutexGuard<'a, Overlay>, KvError> {
    while ov.written < seq {
        ov.check()?;
        ov = inner.changed.wait(ov).unwrap_or_else(|p| p.into_inner());
    }
    Ok(ov)
}

/// The leading records, at least one, up to `max_bytes` in all.
fn up_to_bytes<'a>(
    records: impl Iterator<Item = &'a Arc<Record>>,
    max_bytes: usize,
) -> Vec<Arc<Record>> {
    let mut bytes = 0;
    records
        .take_while(|r| {
            let take = bytes == 0 || bytes + r.bytes <= max_bytes;
            bytes += r.bytes;
            take
        })
        .cloned()
        .collect()
}

fn applier(inner: &Inner) {
    loop {
        {
            let mut ov = lock(&inner.overlay);
            loop {
                let stopping = inner.stop.load(Ordering::SeqCst);
                if ov.records.is_empty() {
                    if stopping {
                        return;
                    }
                    ov = inner.changed.wait(ov).unwrap_or_else(|p| p.into_inner());
                    continue;
                }
                let quiet = ov.last_activity.map_or(IDLE, |t| t.elapsed());
                let oldest = ov
                    .records
                    .front()
                    .map_or(Duration::ZERO, |r| r.at.elapsed());
                if stopping
                    || ov.bytes >= SOFT_LIMIT
                    || oldest >= MAX_AGE
                    || (!ov.in_transaction && quiet >= IDLE)
                {
                    break;
                }
                ov = inner
                    .changed
                    .wait_timeout(
                        ov,
                        IDLE.saturating_sub(quiet).max(Duration::from_millis(10)),
                    )
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        if let Err(e) = apply_round(inner, ROUND_BYTES) {
            // The records stay journaled and visible; try again shortly.
            tracing::error!(error = %e, "cannot apply the store journal; will retry");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Copies the oldest records (up to `max_bytes`, at least one) into the
/// trees, makes that durable, then drops them from the journal and overlay.
fn apply_round(inner: &Inner, max_bytes: usize) -> Result<(), KvError> {
    let _applying = lock(&inner.applying);
    loop {
        let round: Vec<Arc<Record>> = {
            let mut ov = lock(&inner.overlay);
            // Only records already in the journal: deleting the chunks of one
            // not yet written would leave them to be written afterwards and
            // replayed over newer values after a restart.
            if let Some(oldest) = ov.records.front().map(|r| r.seq) {
                ov = wait_written(inner, ov, oldest)?;
            }
            let written = ov.written;
            up_to_bytes(
                ov.records.iter().take_while(|r| r.seq <= written),
                max_bytes,
            )
        };
        if round.is_empty() {
            return Ok(());
        }
        apply_finals(&inner.trees, round.iter().map(|r| r.ops.as_slice()))?;
        inner.db.flush()?;
        let mut done = sled::Batch::default();
        for rec in &round {
            for i in 0..rec.chunks {
                done.remove(&chunk_key(rec.seq, i));
            }
        }
        inner.journal.apply_batch(done)?;

        let mut ov = lock(&inner.overlay);
        for rec in &round {
            for (t, k, _) in &rec.ops {
                let tree = &mut ov.trees[*t as usize];
                if tree.get(k).is_some_and(|p| p.seq == rec.seq) {
                    tree.remove(k);
                }
            }
            ov.bytes -= rec.bytes;
        }
        ov.records.drain(..round.len());
        drop(ov);
        inner.changed.notify_all();
        if max_bytes != usize::MAX {
            return Ok(());
        }
    }
}

/// Writes records, oldest first, into the trees. Later records overwrite
/// earlier ones, so each key is written once, with its final value.
fn apply_finals<'a>(
    trees: &[Tree],
    records: impl Iterator<Item = &'a [Op]>,
) -> Result<(), KvError> {
    let mut finals: Vec<BTreeMap<&IVec, &Option<IVec>>> =
        (0..trees.len()).map(|_| BTreeMap::new()).collect();
    for ops in records {
        for (t, k, v) in ops {
            finals[*t as usize].insert(k, v);
        }
    }
    for (tree, changes) in trees.iter().zip(finals) {
        if changes.is_empty() {
            continue;
        }
        let mut batch = sled::Batch::default();
        for (k, v) in changes {
            match v {
                Some(v) => batch.insert(k.clone(), v.clone()),
                None => batch.remove(k.clone()),
            }
        }
        tree.apply_batch(batch)?;
    }
    Ok(())
}

/// Applies records a crash left in the journal, oldest first, then clears it.
fn replay(db: &sled::Db, trees: &[Tree], journal: &Tree) -> Result<(), KvError> {
    if journal.is_empty() {
        return Ok(());
    }
    // Chunks come in key order: by record, then by chunk.
    let mut whole: Vec<(u64, Vec<u8>)> = Vec::new();
    for item in journal.iter() {
        let (k, v) = item?;
        let seq = k
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or(KvError::CorruptJournal { seq: 0 })?;
        match whole.last_mut() {
            Some((s, bytes)) if *s == seq => bytes.extend_from_slice(&v),
            _ => whole.push((seq, v.to_vec())),
        }
    }
    let mut records = Vec::new();
    for (seq, bytes) in whole {
        let ops = decode(&bytes).ok_or(KvError::CorruptJournal { seq })?;
        if ops.iter().any(|(t, _, _)| *t as usize >= trees.len()) {
            return Err(KvError::CorruptJournal { seq });
        }
        records.push(ops);
    }
    let n = records.len();
    apply_finals(trees, records.iter().map(|ops| ops.as_slice()))?;
    db.flush()?;
    journal.clear()?;
    db.flush()?;
    tracing::info!(
        records = n,
        "replayed the store journal left by an unclean exit"
    );
    Ok(())
}

fn chunk_key(seq: u64, chunk: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&seq.to_be_bytes());
    k[8..].copy_from_slice(&chunk.to_be_bytes());
    k
}

fn encoded_len(ops: &[Op]) -> usize {
    ops.iter()
        .map(|(_, k, v)| 6 + k.len() + v.as_ref().map_or(0, |v| 4 + v.len()))
        .sum()
}

/// tree u8, key length u32, key, present u8, [value length u32, value].
fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(ops));
    for (t, k, v) in ops {
        out.push(*t);
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        match v {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
    }
    out
}

fn decode(mut bytes: &[u8]) -> Option<Vec<Op>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Some(head)
    }
    fn len(bytes: &mut &[u8]) -> Option<usize> {
        Some(u32::from_be_bytes(take(bytes, 4)?.try_into().ok()?) as usize)
    }
    let mut ops = Vec::new();
    while !bytes.is_empty() {
        let t = take(&mut bytes, 1)?[0];
        let klen = len(&mut bytes)?;
        let key = IVec::from(take(&mut bytes, klen)?);
        let value = match take(&mut bytes, 1)?[0] {
            0 => None,
            1 => {
                let vlen = len(&mut bytes)?;
                Some(IVec::from(take(&mut bytes, vlen)?))
            }
            _ => return None,
        };
        ops.push((t, key, value));
    }
    Some(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> Kv {
        let db = sled::Config::new().path(dir).open().unwrap();
        Kv::open(db, &["a", "b"]).unwrap()
    }

    fn put(kv: &Kv, t: u8, k: &str, v: Option<&str>) {
        kv.transact(|ws| {
            match v {
                Some(v) => ws.insert(t, k.as_bytes(), v.as_bytes()),
                None => ws.remove(t, k.as_bytes()),
            }
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
    }

    fn keys(kv: &Kv, t: u8) -> Vec<String> {
        kv.iter(t)
            .map(|r| String::from_utf8(r.unwrap().0.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn reads_see_commits_before_and_after_they_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let kv = open(dir.path());
        put(&kv, 0, "k2", Some("v2"));
        put(&kv, 0, "k1", Some("v1"));
        kv.apply_all().unwrap();
        put(&kv, 0, "k3", Some("v3"));
        put(&kv, 0, "k1", None);
        put(&kv, 1, "k1", Some("other tree"));
        // k1 removed in the overlay hides the applied k1; k3 only in the overlay.
        assert_eq!(keys(&kv, 0), ["k2", "k3"]);
        assert_eq!(kv.get(0, b"k1").unwrap(), None);
        assert_eq!(kv.len(0), 2);
        assert_eq!(keys(&kv, 1), ["k1"]);
        kv.apply_all().unwrap();
        assert_eq!(keys(&kv, 0), ["k2", "k3"]);
        assert_eq!(kv.backlog(), (0, 0));
        assert_eq!(
            kv.scan_prefix(0, b"k3").count(),
            1,
            "prefix scan sees the applied key"
        );
    }

    #[test]
    fn a_failed_transaction_writes_nothing_and_reads_its_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let kv = open(dir.path());
        let r = kv
            .transact(|ws| {
                ws.insert(0, b"x", &b"1"[..]);
                assert_eq!(ws.get(0, b"x").unwrap().as_deref(), Some(&b"1"[..]));
                Err::<(), _>("no")
            })
            .unwrap();
        assert_eq!(r, Err("no"));
        assert_eq!(kv.get(0, b"x").unwrap(), None);
        assert_eq!(kv.backlog().0, 0);
    }

    #[test]
    fn a_journal_left_by_a_crash_is_replayed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            // Write records straight into the journal, as a crash before
            // the applier ran would leave them.
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let journal = db.open_tree("journal").unwrap();
            let rec = |ops: Vec<Op>| encode(&ops);
            journal
                .insert(
                    chunk_key(1, 0),
                    rec(vec![(0, "k".into(), Some("old".into()))]),
                )
                .unwrap();
            // Record 2 in two chunks.
            let two = rec(vec![
                (0, "k".into(), Some("new".into())),
                (1, "gone".into(), None),
            ]);
            journal.insert(chunk_key(2, 0), &two[..5]).unwrap();
            journal.insert(chunk_key(2, 1), &two[5..]).unwrap();
            db.open_tree("b").unwrap().insert("gone", "x").unwrap();
            db.flush().unwrap();
        }
        let kv = open(dir.path());
        assert_eq!(kv.get(0, b"k").unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(kv.get(1, b"gone").unwrap(), None);
        assert!(kv.inner.journal.is_empty());
    }

    #[test]
    fn a_corrupt_journal_is_an_error_not_a_panic() {
        assert!(decode(&[0, 0, 0, 0, 9, b'k']).is_none());
        assert!(decode(&[0, 0, 0, 0, 1, b'k', 7]).is_none());
        let ops = vec![
            (1, IVec::from("key"), Some(IVec::from("v"))),
            (0, "r".into(), None),
        ];
        assert_eq!(decode(&encode(&ops)).unwrap(), ops);
        assert_eq!(encode(&ops).len(), encoded_len(&ops));
    }

    #[test]
    fn the_applier_runs_once_the_desk_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let kv = open(dir.path());
        put(&kv, 0, "k", Some("v"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while kv.backlog().0 > 0 {
            assert!(Instant::now() < deadline, "never applied");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(kv.inner.journal.is_empty());
        assert_eq!(kv.raw_tree(0).get("k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn applying_from_several_threads_at_once_retires_each_record_once() {
        // Found by examples/engine_profile: apply_all racing the applier
        // thread drained records the other round had already retired.
        let dir = tempfile::tempdir().unwrap();
        let kv = open(dir.path());
        for round in 0..20 {
            for i in 0..50 {
                put(&kv, 0, &format!("k{round}-{i}"), Some("v"));
            }
            std::thread::scope(|s| {
                for _ in 0..3 {
                    s.spawn(|| kv.apply_all().unwrap());
                }
            });
            assert_eq!(kv.backlog(), (0, 0));
        }
        assert_eq!(kv.len(0), 1000);
        assert!(kv.inner.journal.is_empty());
    }

    #[test]
    fn sync_returns_once_every_commit_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let kv = open(dir.path());
        for i in 0..200 {
            put(&kv, 0, &format!("k{i}"), Some("v"));
        }
        kv.sync().unwrap();
        // Written by the journal writer (and perhaps applied already).
        let in_journal = !kv.inner.journal.is_empty();
        let applied = kv.raw_tree(0).get("k199").unwrap().is_some();
        assert!(in_journal || applied);
        assert_eq!(lock(&kv.inner.overlay).written, 200);
    }

    #[test]
    fn dropping_the_last_handle_applies_everything() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = open(dir.path());
            put(&kv, 0, "k", Some("v"));
            kv.db().flush().unwrap();
        }
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        assert!(db.open_tree("journal").unwrap().is_empty());
        assert_eq!(
            db.open_tree("a").unwrap().get("k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
}
