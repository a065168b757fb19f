//! Converting a store written by an older release, once, when it is opened.
//!
//! Format 1 kept one sled tree per table plus a write-ahead `journal` tree
//! of commits not yet copied into the tables. Conversion to format 2 (one
//! tree, prefixed keys):
//! 1. reads the journal's records and keeps, per key, the newest value they
//!    hold (records hold final values, so this is what replaying them gave);
//! 2. copies every table into `data` under its prefix, the journal's values
//!    winning, in batches, counting the keys of counted tables;
//! 3. writes the counters and, in the very last batch, the format key, then
//!    flushes;
//! 4. drops the old trees.
//!
//! Every step writes final values, so a crash at any point is harmless: the
//! next open either converts again from the untouched old trees (no format
//! key yet) or only drops what step 4 did not finish.
//!
//! A journal record whose first chunk is gone was being cleared by format 1
//! after it had been applied and flushed; it is skipped. (Format 1 refused to
//! start on such a journal, forever.)

use std::collections::{BTreeMap, HashMap};

use sled::{IVec, Tree};

use super::db::{counter_key, full_key};
use super::error::StoreError;
use super::layout::{decode, encode, u64_of, COUNTED, FORMAT, FORMAT_KEY, T, TREES};
use super::message_ids;
use super::records::{Ticket, TimerSlot};

/// Keys per batch while copying: bounds the memory of the conversion.
const COPY_BATCH: usize = 10_000;
/// One tree with prefixed keys, before the list index.
const FORMAT_2: u32 = 2;
/// The list index, before the report facts.
const FORMAT_3: u32 = 3;
/// The report facts, before the open tickets counted per day.
const FORMAT_4: u32 = 4;
/// The open tickets counted per day, before the timer entry moved into the
/// ticket record and sent mail's recipients into the Message-ID's value.
const FORMAT_5: u32 = 5;

fn format_of(data: &Tree) -> Result<Option<u32>, StoreError> {
    Ok(data
        .get(full_key(T::Meta as u8, FORMAT_KEY))?
        .and_then(|v| Some(u32::from_be_bytes(v.as_ref().try_into().ok()?))))
}

fn has_format_1_trees(db: &sled::Db) -> bool {
    let names = db.tree_names();
    TREES
        .iter()
        .map(|(n, _)| *n)
        .chain(["journal"])
        .any(|n| names.iter().any(|t| t.as_ref() == n.as_bytes()))
}

/// Brings the store in `db` to the current format, or refuses a newer one.
/// Each step brings one format to the next, so an old store walks them all.
pub fn to_current(db: &sled::Db, path: &str) -> Result<(), StoreError> {
    let data = db.open_tree("data")?;
    let mut format = format_of(&data)?;
    if format.is_none() && has_format_1_trees(db) {
        let copied = convert_format_1(db, &data)?;
        tracing::info!(keys = copied, "converted the store to format 2");
        drop_format_1(db)?;
        format = Some(FORMAT_2);
    }
    match format {
        Some(f) if f == FORMAT => {
            if has_format_1_trees(db) {
                drop_format_1(db)?;
            }
            Ok(())
        }
        Some(f) if f > FORMAT => Err(StoreError::NewerFormat {
            path: path.to_string(),
            found: f,
            supported: FORMAT,
        }),
        Some(FORMAT_2) => {
            if has_format_1_trees(db) {
                drop_format_1(db)?;
            }
            step_list_index(db, &data)?;
            step_report_facts(db, &data)?;
            step_open_days(db, &data)?;
            step_fewer_keys(db, &data)
        }
        Some(FORMAT_3) => {
            step_report_facts(db, &data)?;
            step_open_days(db, &data)?;
            step_fewer_keys(db, &data)
        }
        Some(FORMAT_4) => {
            step_open_days(db, &data)?;
            step_fewer_keys(db, &data)
        }
        Some(FORMAT_5) => step_fewer_keys(db, &data),
        Some(f) => Err(StoreError::Migrate {
            from: f,
            why: "no such format was ever written".into(),
        }),
        None => {
            data.insert(full_key(T::Meta as u8, FORMAT_KEY), &FORMAT.to_be_bytes())?;
            db.flush()?;
            Ok(())
        }
    }
}

/// Format 2 → 3, the step "list index": files every ticket in the list
/// index (`list_index.rs`), then writes the format. Rewriting index keys is
/// harmless, so a crash before the format key is written just builds again.
fn step_list_index(db: &sled::Db, data: &Tree) -> Result<(), StoreError> {
    let tickets = super::list_index::build(data, COPY_BATCH)?;
    data.insert(full_key(T::Meta as u8, FORMAT_KEY), &3u32.to_be_bytes())?;
    db.flush()?;
    tracing::info!(tickets, "built the ticket list index (store format 3)");
    Ok(())
}

/// Format 3 → 4, the step "report facts": derives every ticket's report
/// facts from its trail and indexes them (`report_facts.rs`), then writes
/// the format. The build replaces what it finds, so a crash before the
/// format key is written just builds again.
fn step_report_facts(db: &sled::Db, data: &Tree) -> Result<(), StoreError> {
    let tickets = super::report_facts::build(data, COPY_BATCH)?;
    data.insert(full_key(T::Meta as u8, FORMAT_KEY), &4u32.to_be_bytes())?;
    db.flush()?;
    tracing::info!(tickets, "built the report facts (store format 4)");
    Ok(())
}

/// Format 4 → 5, the step "open per day": counts the open index by
/// creation day (`open_days.rs`), then writes the format. The count
/// replaces what it finds, so a crash before the format key is written
/// just counts again.
fn step_open_days(db: &sled::Db, data: &Tree) -> Result<(), StoreError> {
    let days = super::open_days::recount(data)?;
    data.insert(full_key(T::Meta as u8, FORMAT_KEY), &5u32.to_be_bytes())?;
    db.flush()?;
    tracing::info!(days, "counted the open tickets per day (store format 5)");
    Ok(())
}

/// Format 5 → 6, the step "fewer keys": each `TimerOf` key (ticket → its
/// `TimerDue` key) goes into the ticket record (`timer_due_ms`), each
/// `SentIds` key (Message-ID → recipients) into the Message-ID's
/// `MessageIds` value (`message_ids.rs`); then the format. Each batch
/// writes the folded values and removes the keys it folded, atomically,
/// so a crash leaves only keys still to fold, and the next open folds them.
fn step_fewer_keys(db: &sled::Db, data: &Tree) -> Result<(), StoreError> {
    let timers = fold_all(data, T::TimerOf, fold_timer_of)?;
    let sent = fold_all(data, T::SentIds, fold_sent_id)?;
    data.insert(full_key(T::Meta as u8, FORMAT_KEY), &6u32.to_be_bytes())?;
    db.flush()?;
    tracing::info!(
        timers,
        sent,
        "folded the timer and sent-mail keys into tickets and Message-IDs (store format 6)"
    );
    Ok(())
}

/// Adds to the batch what replaces one key (the key without its table
/// byte, its value) of a table being folded away.
type Fold = fn(&Tree, &mut sled::Batch, &[u8], &[u8]) -> Result<(), StoreError>;

/// Folds every key of `table` with `fold` (which adds what replaces it to
/// the batch), removing them, in batches; returns how many.
fn fold_all(data: &Tree, table: T, fold: Fold) -> Result<usize, StoreError> {
    let mut folded = 0;
    loop {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        // Each round starts at the table's first key: the folded ones are gone.
        for item in data.scan_prefix([table as u8]).take(COPY_BATCH) {
            let (k, v) = item?;
            fold(data, &mut batch, &k[1..], &v)?;
            batch.remove(k);
            n += 1;
        }
        if n == 0 {
            return Ok(folded);
        }
        data.apply_batch(batch)?;
        folded += n;
    }
}

/// `TimerOf`: ticket u64 BE → its `TimerDue` key (due ms u64 BE + ticket).
fn fold_timer_of(
    data: &Tree,
    batch: &mut sled::Batch,
    ticket: &[u8],
    due_key: &[u8],
) -> Result<(), StoreError> {
    let ticket_key = full_key(T::Tickets as u8, ticket);
    let due = due_key.get(..8).and_then(u64_of);
    match (data.get(&ticket_key)?, due) {
        (Some(v), Some(ms)) => {
            let mut t: Ticket = decode("ticket", &v)?;
            t.timer_due_ms = TimerSlot(Some(ms));
            batch.insert(ticket_key, encode("ticket", &t)?);
        }
        // Nothing can move an entry of a ticket that is not there (or
        // whose entry cannot be read): it goes.
        _ => batch.remove(full_key(T::TimerDue as u8, due_key)),
    }
    Ok(())
}

/// `SentIds`: Message-ID → recipients (a record, kept as stored).
fn fold_sent_id(
    data: &Tree,
    batch: &mut sled::Batch,
    message_id: &[u8],
    recipients: &[u8],
) -> Result<(), StoreError> {
    let key = full_key(T::MessageIds as u8, message_id);
    let ticket = data.get(&key)?.and_then(|v| message_ids::ticket_of(&v));
    batch.insert(key, message_ids::joined(ticket, recipients));
    Ok(())
}

/// Copies the format 1 trees and journal into `data`; returns how many keys.
fn convert_format_1(db: &sled::Db, data: &Tree) -> Result<usize, StoreError> {
    let journal = journal_finals(&db.open_tree("journal")?)?;
    let mut counts: HashMap<u8, u64> = HashMap::new();
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    let mut copied = 0;
    let mut put = |batch: &mut sled::Batch, table: u8, key: &[u8], value: &[u8]| {
        if COUNTED.contains(&table) {
            *counts.entry(table).or_default() += 1;
        }
        batch.insert(full_key(table, key), value);
    };
    for (name, t) in TREES {
        let table = t as u8;
        let tree = db.open_tree(name)?;
        for item in tree.iter() {
            let (k, v) = item?;
            if journal.contains_key(&(table, k.clone())) {
                continue;
            }
            put(&mut batch, table, &k, &v);
            in_batch += 1;
            copied += 1;
            if in_batch >= COPY_BATCH {
                data.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
    }
    for ((table, k), v) in &journal {
        if let Some(v) = v {
            put(&mut batch, *table, k, v);
            copied += 1;
        }
    }
    for (table, n) in counts {
        batch.insert(&counter_key(table), &n.to_be_bytes());
    }
    batch.insert(full_key(T::Meta as u8, FORMAT_KEY), &FORMAT_2.to_be_bytes());
    data.apply_batch(batch)?;
    db.flush()?;
    Ok(copied)
}

fn drop_format_1(db: &sled::Db) -> Result<(), StoreError> {
    for name in TREES.iter().map(|(n, _)| *n).chain(["journal"]) {
        db.drop_tree(name)?;
    }
    db.flush()?;
    Ok(())
}

type Finals = BTreeMap<(u8, IVec), Option<IVec>>;

/// The newest value per key in the journal's whole records, oldest first.
fn journal_finals(journal: &Tree) -> Result<Finals, StoreError> {
    let corrupt = |seq: u64| StoreError::Migrate {
        from: 1,
        why: format!("journal record {seq} is truncated or corrupt"),
    };
    // Chunks come in key order: by record (u64), then by chunk (u32).
    let mut records: Vec<(u64, u32, Vec<u8>)> = Vec::new();
    for item in journal.iter() {
        let (k, v) = item?;
        let seq = k
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt(0))?;
        let chunk = k
            .get(8..12)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| corrupt(seq))?;
        match records.last_mut() {
            Some((s, _, bytes)) if *s == seq => bytes.extend_from_slice(&v),
            _ => records.push((seq, chunk, v.to_vec())),
        }
    }
    let mut finals = Finals::new();
    for (seq, first_chunk, bytes) in records {
        if first_chunk != 0 {
            // Half cleared: it was applied and flushed before the clear began.
            continue;
        }
        let ops = decode_record(&bytes).ok_or_else(|| corrupt(seq))?;
        for (t, k, v) in ops {
            if t as usize >= TREES.len() {
                return Err(corrupt(seq));
            }
            finals.insert((t, k), v);
        }
    }
    Ok(finals)
}

/// Format 1's journal record: per change, tree u8, key length u32, key,
/// present u8, [value length u32, value].
fn decode_record(mut bytes: &[u8]) -> Option<Vec<(u8, IVec, Option<IVec>)>> {
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
    use crate::store::records::TicketId;
    use crate::store::Store;

    /// A store written by the release before this one (format 1): 15 tickets
    /// with their acknowledgements, a reply on ticket 1003, one quarantined
    /// mail and a checkpoint, the last commits still in the journal, as a
    /// kill -9 leaves them. Made by ingesting through that release's engine.
    fn format_1_fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/store/format1.tar.gz");
        let ok = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(&fixture)
            .arg("-C")
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot unpack {}", fixture.display());
        dir
    }

    #[test]
    fn a_format_1_store_with_a_journal_is_converted_whole() {
        let dir = format_1_fixture();
        let path = dir.path().join("f1store");
        {
            let db = sled::open(&path).unwrap();
            assert!(
                !db.open_tree("journal").unwrap().is_empty(),
                "the fixture must hold unapplied journal records"
            );
        }
        let store = Store::open_when_free(&path);
        assert_eq!(store.ticket_count(), 15);
        assert_eq!(store.tickets().count(), 15);
        assert_eq!(store.outbox().unwrap().len(), 15);
        assert_eq!(store.outbox_counts(), (15, 0));
        assert_eq!(store.quarantine_count(), 1);
        let t: TicketId = 1003;
        // Its mail, its acknowledgement and the reply.
        assert_eq!(store.messages(t).unwrap().len(), 3);
        assert_eq!(store.ticket(1014).unwrap().unwrap().id, 1014);
        // Through format 2 to 3: the list index holds every ticket.
        assert_eq!(store.ticket_list(&[], None, None).count(), 15);
        let cp = store.checkpoint("help").unwrap().unwrap();
        assert_eq!((cp.uid_validity, cp.last_uid), (7, 11));
        assert!(store
            .disposition("mid:f14@outside.example")
            .unwrap()
            .is_some());
        // Through format 5 to 6: the acknowledgement's Message-ID threads
        // and still names whom it went to.
        let ack = store.messages(t).unwrap()[1].message_id.clone().unwrap();
        let sent = store
            .transact(|tx| Ok((tx.ticket_of_message(&ack)?, tx.sent_recipients(&ack)?)))
            .unwrap();
        assert_eq!(sent.0, Some(t));
        assert_eq!(sent.1.map(|r| r.len()), Some(1));
        assert_eq!(store.db.iter(T::SentIds as u8).count(), 0);
        let key = store.reply_keys().unwrap();
        drop(store);
        // Converted once: the old trees are gone, a second open changes nothing.
        let store = Store::open_when_free(&path);
        assert_eq!(store.reply_keys().unwrap(), key);
        assert_eq!(store.ticket_count(), 15);
        let next = store.transact(|tx| tx.next_ticket_id(1000)).unwrap();
        assert_eq!(next, 1015, "ticket numbers go on where they were");
        drop(store);
        // sled lets go of its lock a moment after the last handle.
        let db = (0..250)
            .find_map(|_| {
                sled::open(&path)
                    .inspect_err(|_| std::thread::sleep(std::time::Duration::from_millis(20)))
                    .ok()
            })
            .unwrap();
        assert!(!db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == b"journal" || n.as_ref() == b"tickets"));
    }

    /// A ticket of the help mailbox from a@b.c, created at `created`.
    fn plain_ticket(
        id: u64,
        created: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::records::Ticket {
        crate::store::records::Ticket::new(
            id,
            "s".into(),
            crate::mail::address::Party {
                name: None,
                address: crate::mail::address::EmailAddress::parse("a@b.c").unwrap(),
            },
            "help",
            created,
        )
    }

    #[test]
    fn a_format_2_store_gets_its_list_index_built_once() {
        use crate::store::ListFilter;
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .transact(|tx| {
                    for id in 1..=3u64 {
                        let mut t = plain_ticket(id, chrono::Utc::now());
                        t.team = (id != 2).then(|| "net".to_string());
                        tx.put_ticket(&t)?;
                    }
                    Ok(())
                })
                .unwrap();
            // What a format 2 store looks like: no index, format 2.
            crate::store::list_index::drop_all(&store.db).unwrap();
            store
                .db
                .put_direct(T::Meta as u8, FORMAT_KEY, &FORMAT_2.to_be_bytes())
                .unwrap();
            assert_eq!(store.ticket_list(&[], None, None).count(), 0);
            store.flush_blocking().unwrap();
        }
        let store = Store::open_when_free(dir.path());
        let net = [ListFilter::Team("net".into())];
        let ids: Vec<_> = store
            .ticket_list(&net, None, None)
            .map(|r| r.unwrap().1.id)
            .collect();
        assert_eq!(ids, [3, 1]);
        assert_eq!(store.ticket_list(&[], None, None).count(), 3);
        let format = store.db.get(T::Meta as u8, FORMAT_KEY).unwrap().unwrap();
        assert_eq!(format.as_ref(), &FORMAT.to_be_bytes());
    }

    #[test]
    fn a_format_3_store_gets_its_report_facts_built_once() {
        use crate::store::records::{Event, EventKind, Status};
        use crate::store::report_facts::ReportFacts;
        let dir = tempfile::tempdir().unwrap();
        let t0 = chrono::Utc::now() - chrono::Duration::days(2);
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .transact(|tx| {
                    for id in 1..=3u64 {
                        let mut t = plain_ticket(id, t0);
                        if id == 2 {
                            let to = Status::Resolved;
                            let kind = EventKind::StatusChanged {
                                from: t.status,
                                to,
                                reason: "done".into(),
                            };
                            t.status = to;
                            let at = t0 + chrono::Duration::hours(1);
                            tx.add_event(
                                &mut t,
                                &Event {
                                    at,
                                    actor: "a".into(),
                                    kind,
                                },
                            )?;
                        }
                        tx.put_ticket(&t)?;
                    }
                    Ok(())
                })
                .unwrap();
            // What a format 3 store looks like: no report facts, format 3.
            for table in [T::ReportFacts as u8, T::ReportIndex as u8] {
                let keys: Vec<_> = store.db.iter(table).map(|r| r.unwrap().0).collect();
                for k in keys {
                    store.db.remove_direct(table, &k).unwrap();
                }
            }
            store
                .db
                .put_direct(T::Meta as u8, FORMAT_KEY, &FORMAT_3.to_be_bytes())
                .unwrap();
            assert!(store.report_facts(1).unwrap().is_none());
            store.flush_blocking().unwrap();
        }
        let store = Store::open_when_free(dir.path());
        for id in 1..=3u64 {
            let t = store.ticket(id).unwrap().unwrap();
            let want = ReportFacts::derive(None, &t, &store.events(id).unwrap());
            assert_eq!(store.report_facts(id).unwrap(), Some(want));
        }
        let now = chrono::Utc::now();
        let read = store.report_tickets(t0, now).unwrap();
        assert_eq!(read.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
        let open: Vec<_> = store
            .open_created_before(now)
            .map(|e| e.unwrap().id)
            .collect();
        assert_eq!(open, [1, 3], "the resolved ticket is not in the backlog");
        let format = store.db.get(T::Meta as u8, FORMAT_KEY).unwrap().unwrap();
        assert_eq!(format.as_ref(), &FORMAT.to_be_bytes());
    }

    #[test]
    fn a_format_4_store_gets_its_open_tickets_counted_per_day() {
        use crate::store::open_days::{Bucketing, OpenDim};
        use crate::store::records::Status;
        let dir = tempfile::tempdir().unwrap();
        let t0 = chrono::Utc::now() - chrono::Duration::days(5);
        let how = Bucketing {
            until: chrono::Utc::now(),
            buckets: 2,
            bucket_of: |c| usize::from(c >= t0 + chrono::Duration::hours(12)),
        };
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .transact(|tx| {
                    for id in 1..=4u64 {
                        let mut t = plain_ticket(id, t0 + chrono::Duration::days(id as i64 % 2));
                        if id == 4 {
                            t.merged_into = Some(1);
                            t.status = Status::Closed;
                        }
                        tx.put_ticket(&t)?;
                    }
                    Ok(())
                })
                .unwrap();
            // What a format 4 store looks like: no counters, format 4.
            let counted = store.open_backlog_counts(None, &how).unwrap();
            assert_eq!(counted[&Vec::new()], [1, 2]);
            for kind in [2u8, 3] {
                let keys: Vec<_> = store
                    .db
                    .scan_prefix(T::ReportIndex as u8, &[kind])
                    .map(|r| r.unwrap().0)
                    .collect();
                assert!(!keys.is_empty());
                for k in keys {
                    store.db.remove_direct(T::ReportIndex as u8, &k).unwrap();
                }
            }
            store
                .db
                .put_direct(T::Meta as u8, FORMAT_KEY, &FORMAT_4.to_be_bytes())
                .unwrap();
            assert!(store.open_backlog_counts(None, &how).unwrap().is_empty());
            store.flush_blocking().unwrap();
        }
        let store = Store::open_when_free(dir.path());
        let all = store.open_backlog_counts(None, &how).unwrap();
        assert_eq!(
            all[&Vec::new()],
            [1, 2],
            "ticket 2 / tickets 1 and 3; the merged one not at all"
        );
        let by_priority = store
            .open_backlog_counts(Some(OpenDim::Priority), &how)
            .unwrap();
        assert_eq!(by_priority.len(), 1, "all of normal priority");
        assert_eq!(by_priority.values().next().unwrap(), &[1, 2]);
        let format = store.db.get(T::Meta as u8, FORMAT_KEY).unwrap().unwrap();
        assert_eq!(format.as_ref(), &FORMAT.to_be_bytes());
    }

    #[test]
    fn a_format_5_store_gets_its_timer_and_sent_keys_folded() {
        use crate::mail::address::EmailAddress;
        use crate::store::layout::{due_key, tx_encode};
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now();
        let due = |h: i64| now + chrono::Duration::hours(h);
        let to = vec![EmailAddress::parse("a@b.c").unwrap()];
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .transact(|tx| {
                    for id in 1..=3u64 {
                        tx.put_ticket(&plain_ticket(id, now))?;
                    }
                    Ok(())
                })
                .unwrap();
            // What a format 5 store looks like: the timer entry of tickets
            // 1 and 2 (and of a ticket 9 that is not there) under `TimerOf`,
            // tickets without one; recipients under `SentIds`, the
            // Message-ID key holding the ticket alone (ours on ticket 1),
            // or nothing (ours outside any ticket).
            let db = &store.db;
            for (id, h) in [(1u64, 1), (2, 2), (9, 3)] {
                let key = due_key(due(h), id);
                db.put_direct(T::TimerDue as u8, &key, &[]).unwrap();
                db.put_direct(T::TimerOf as u8, &id.to_be_bytes(), &key)
                    .unwrap();
            }
            let sent = tx_encode("sent mail", &to).unwrap();
            for mid in ["ack1@desk", "digest@desk"] {
                db.put_direct(T::SentIds as u8, mid.as_bytes(), &sent)
                    .unwrap();
            }
            db.put_direct(T::MessageIds as u8, b"ack1@desk", &1u64.to_be_bytes())
                .unwrap();
            db.put_direct(T::MessageIds as u8, b"theirs@out", &2u64.to_be_bytes())
                .unwrap();
            db.put_direct(T::Meta as u8, FORMAT_KEY, &FORMAT_5.to_be_bytes())
                .unwrap();
            store.flush_blocking().unwrap();
        }
        let store = Store::open_when_free(dir.path());
        let keys = |t: T| store.db.iter(t as u8).count();
        assert_eq!((keys(T::TimerOf), keys(T::SentIds)), (0, 0));
        let ms = |h: i64| Some(due(h).timestamp_millis() as u64);
        let timer_of = |id| store.ticket(id).unwrap().unwrap().timer_due_ms.0;
        assert_eq!(
            (timer_of(1), timer_of(2), timer_of(3)),
            (ms(1), ms(2), None)
        );
        let due_ids = store.timers_due(due(5), 10).unwrap();
        assert_eq!(due_ids, [1, 2], "ticket 9's entry is gone with its key");
        store
            .transact(|tx| {
                assert_eq!(tx.ticket_of_message("ack1@desk")?, Some(1));
                assert_eq!(tx.sent_recipients("ack1@desk")?, Some(to.clone()));
                assert_eq!(tx.ticket_of_message("digest@desk")?, None);
                assert_eq!(tx.sent_recipients("digest@desk")?, Some(to.clone()));
                assert_eq!(tx.ticket_of_message("theirs@out")?, Some(2));
                assert_eq!(tx.sent_recipients("theirs@out")?, None);
                // The folded entries move like new ones.
                tx.set_timer_due(1, None)?;
                tx.set_timer_due(2, Some(due(4)))
            })
            .unwrap();
        let left: Vec<_> = store
            .db
            .iter(T::TimerDue as u8)
            .map(|r| r.unwrap().0.to_vec())
            .collect();
        assert_eq!(left, [due_key(due(4), 2).to_vec()]);
        let format = store.db.get(T::Meta as u8, FORMAT_KEY).unwrap().unwrap();
        assert_eq!(format.as_ref(), &FORMAT.to_be_bytes());
    }

    #[test]
    fn a_backup_made_by_the_format_2_release_restores_and_gets_its_index() {
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().unwrap();
        let (old, file) = (dir.path().join("old"), dir.path().join("b.backup"));
        {
            let store = Store::open(&old).unwrap();
            store
                .transact(|tx| {
                    let t = crate::store::records::Ticket::new(
                        7,
                        "s".into(),
                        crate::mail::address::Party {
                            name: None,
                            address: crate::mail::address::EmailAddress::parse("a@b.c").unwrap(),
                        },
                        "help",
                        chrono::Utc::now(),
                    );
                    tx.put_ticket(&t)
                })
                .unwrap();
            crate::store::list_index::drop_all(&store.db).unwrap();
            store
                .db
                .put_direct(T::Meta as u8, FORMAT_KEY, &FORMAT_2.to_be_bytes())
                .unwrap();
            store.backup(&file).unwrap();
        }
        // The header says format 2, as that release wrote it; the digest follows.
        let mut bytes = std::fs::read(&file).unwrap();
        let at = b"deskgate-backup 1\n".len();
        bytes[at..at + 4].copy_from_slice(&FORMAT_2.to_be_bytes());
        let end = bytes.len() - 32;
        let digest = Sha256::digest(&bytes[..end]);
        bytes[end..].copy_from_slice(&digest);
        std::fs::write(&file, &bytes).unwrap();

        let new = dir.path().join("new");
        Store::restore(&new, &file).unwrap();
        let store = Store::open_when_free(&new);
        assert_eq!(store.ticket_list(&[], None, None).count(), 1);
        assert_eq!(store.ticket(7).unwrap().unwrap().id, 7);
    }

    #[test]
    fn a_store_of_a_newer_format_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("data")
                .unwrap()
                .insert(
                    full_key(T::Meta as u8, FORMAT_KEY),
                    &(FORMAT + 1).to_be_bytes(),
                )
                .unwrap();
            db.flush().unwrap();
        }
        let err = Store::open_when_released(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("written by a newer deskgate"), "{err}");
        assert!(err.contains(&format!("format {}", FORMAT + 1)), "{err}");
    }

    #[test]
    fn a_half_cleared_journal_record_is_skipped_not_fatal() {
        // Format 1 cleared an applied record key by key; a kill in between
        // left its later chunks without the first.
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("tickets")
                .unwrap()
                .insert(1000u64.to_be_bytes(), &b"{}"[..])
                .unwrap();
            let journal = db.open_tree("journal").unwrap();
            let mut key = [0u8; 12];
            key[..8].copy_from_slice(&5u64.to_be_bytes());
            key[8..].copy_from_slice(&1u32.to_be_bytes());
            journal.insert(key, &b"\x01garbage tail"[..]).unwrap();
            db.flush().unwrap();
        }
        let store = Store::open_when_free(dir.path());
        assert_eq!(store.ticket_count(), 1);
    }
}
