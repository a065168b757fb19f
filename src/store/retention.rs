//! Retention: removing raw mail, delivery logs and dedupe keys older than a
//! configured age (`[retention]`, off by default). Tickets, their messages
//! (text, attachments) and audit trails are never removed.
//!
//! Each kind is found without reading history:
//! - raw mail: the tickets not changed since the cutoff, oldest first, from
//!   the list index (`list_index.rs`), resuming at a mark kept in `Meta`
//!   (a ticket that changes moves past the mark, so it is seen again when it
//!   ages); the raw mail of its inbound messages goes. Raw mail of
//!   quarantined mail stays (it is what a retry needs), as does that of
//!   ignored mail (listed by `ignored`, kept with it).
//! - delivery logs: keyed by outbox id, which grows with time, so the oldest
//!   come first; the walk stops at the first one queued after the cutoff.
//! - dedupe keys: not in time order, so each pass examines at most a budget
//!   of them from a cursor kept in `Meta`, and a full round takes several
//!   passes; `deskgate prune` examines them all.
//!
//! Every removal and the mark that records it commit in one transaction,
//! in chunks, so a pass cut short resumes where it stopped.

use std::collections::HashSet;
use std::ops::Bound;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::layout::{decode, due_key, u64_of, T};
use super::records::{Delivery, Disposition, MessageRecord};
use super::Store;

const RAW_MARK: &[u8] = b"retention_raw";
const DEDUPE_CURSOR: &[u8] = b"retention_dedupe";
const LAST_PASS: &[u8] = b"retention_last";
/// Tickets or keys per transaction.
const CHUNK: usize = 500;
/// Dedupe keys a daemon pass examines.
pub const DAEMON_DEDUPE_BUDGET: usize = 20_000;
/// How often the daemon prunes: retention ages are days, not minutes.
pub const DAEMON_EVERY: Duration = Duration::from_secs(3600);

/// The ages of `[retention]`; None keeps that kind forever.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub raw_mail_after: Option<Duration>,
    pub delivery_logs_after: Option<Duration>,
    pub dedupe_keys_after: Option<Duration>,
}

impl Retention {
    pub fn is_off(&self) -> bool {
        self.raw_mail_after.is_none()
            && self.delivery_logs_after.is_none()
            && self.dedupe_keys_after.is_none()
    }
}

/// What a pass removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneSummary {
    pub raw_mails: u64,
    pub raw_bytes: u64,
    pub delivery_logs: u64,
    pub dedupe_keys: u64,
    /// Dedupe keys examined (a daemon pass examines a budget of them).
    pub dedupe_examined: u64,
}

fn cutoff(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// One pass: removes what is older than the ages at `now`. `dedupe_budget`
/// bounds the dedupe keys examined (None: all, from the start). `dry` only
/// counts.
pub fn prune(
    store: &Store,
    rules: &Retention,
    now: DateTime<Utc>,
    dedupe_budget: Option<usize>,
    dry: bool,
) -> Result<PruneSummary, StoreError> {
    let mut s = PruneSummary::default();
    if let Some(age) = rules.raw_mail_after {
        prune_raw(store, cutoff(now, age), dry, &mut s)?;
    }
    if let Some(age) = rules.delivery_logs_after {
        prune_deliveries(store, cutoff(now, age), dry, &mut s)?;
    }
    if let Some(age) = rules.dedupe_keys_after {
        prune_dedupe(store, cutoff(now, age), dedupe_budget, dry, &mut s)?;
    }
    Ok(s)
}

/// The daemon's pass: at most every [`DAEMON_EVERY`] (the time of the last
/// one is kept in the store), a budget of dedupe keys. None when not due.
pub fn daemon_pass(
    store: &Store,
    rules: &Retention,
    now: DateTime<Utc>,
) -> Result<Option<PruneSummary>, StoreError> {
    if rules.is_off() {
        return Ok(None);
    }
    let last = store
        .get(T::Meta, LAST_PASS)?
        .and_then(|v| u64_of(&v))
        .and_then(|ms| DateTime::<Utc>::from_timestamp_millis(ms as i64));
    let every = chrono::Duration::from_std(DAEMON_EVERY).unwrap_or_default();
    if last.is_some_and(|l| now < l + every && now >= l) {
        return Ok(None);
    }
    let s = prune(store, rules, now, Some(DAEMON_DEDUPE_BUDGET), false)?;
    store.transact(|tx| {
        let ms = now.timestamp_millis().max(0) as u64;
        tx.ws.insert(T::Meta as u8, LAST_PASS, &ms.to_be_bytes());
        Ok(())
    })?;
    Ok(Some(s))
}

fn prune_raw(
    store: &Store,
    cutoff: DateTime<Utc>,
    dry: bool,
    s: &mut PruneSummary,
) -> Result<(), StoreError> {
    let keep: HashSet<String> = store
        .quarantine()?
        .into_iter()
        .map(|q| q.raw_key)
        .chain(store.ignored()?.into_iter().filter_map(|i| i.raw_key))
        .collect();
    let mark = store.get(T::Meta, RAW_MARK)?.map(|v| v.to_vec());
    let all = |pos: &[u8]| [&[0u8][..], pos].concat();
    let from = match (&mark, dry) {
        (Some(m), false) => Bound::Excluded(all(m)),
        _ => Bound::Included(vec![0]),
    };
    let to = Bound::Excluded(all(&due_key(cutoff, 0)));
    let mut positions = store.db.range(T::TicketIndex as u8, from, to);
    loop {
        let chunk: Vec<Vec<u8>> = positions
            .by_ref()
            .take(CHUNK)
            .map(|r| r.map(|(k, _)| k[1..].to_vec()))
            .collect::<Result<_, _>>()?;
        let Some(last) = chunk.last() else {
            return Ok(());
        };
        let mut gone = Vec::new();
        for pos in &chunk {
            let Some(id) = pos.get(8..).and_then(u64_of) else {
                continue;
            };
            for m in store.messages(id)? {
                let m: MessageRecord = m;
                let Some(key) = m.raw_key.clone().filter(|k| !keep.contains(k)) else {
                    continue;
                };
                if let Some(raw) = store.get(T::Raw, key.as_bytes())? {
                    s.raw_mails += 1;
                    s.raw_bytes += super::codec::bytes_len(&raw);
                    if !dry {
                        keep_attachments(store, &key, &raw, &m)?;
                    }
                    gone.push(key);
                }
            }
        }
        if !dry {
            store.transact(|tx| {
                for key in &gone {
                    tx.ws.remove(T::Raw as u8, key.as_bytes());
                }
                tx.ws.insert(T::Meta as u8, RAW_MARK, &last[..]);
                Ok(())
            })?;
        }
    }
}

/// Writes whole the attachments of `m` that are read from the raw mail
/// about to be pruned (see `blobs.rs`): they stay when the mail goes. One
/// transaction per mail, so a chunk never holds many mails' attachments.
fn keep_attachments(
    store: &Store,
    key: &str,
    stored: &[u8],
    m: &MessageRecord,
) -> Result<(), StoreError> {
    let refer = |sha: &str| -> Result<bool, StoreError> {
        Ok(store
            .get(T::Blobs, sha.as_bytes())?
            .and_then(|v| super::blobs::referred_raw(sha, &v))
            .is_some_and(|k| k == key))
    };
    let mut whole = Vec::new();
    let mut raw = None;
    for a in m.attachments.iter().filter(|a| !a.dropped) {
        if !refer(&a.sha256)? {
            continue;
        }
        if raw.is_none() {
            raw = Some(super::blobs::raw_bytes(key, stored)?);
        }
        let bytes = raw
            .as_deref()
            .and_then(|r| super::blobs::attachment_in(r, &a.sha256));
        if let Some(bytes) = bytes {
            whole.push((
                a.sha256.clone(),
                super::layout::encode_bytes("attachment", &bytes)?,
            ));
        }
    }
    if whole.is_empty() {
        return Ok(());
    }
    store.transact(|tx| {
        for (sha, value) in &whole {
            // Still this mail's (checked again inside the transaction).
            let still = tx
                .ws
                .get(T::Blobs as u8, sha.as_bytes())?
                .and_then(|v| super::blobs::referred_raw(sha, &v))
                .is_some_and(|k| k == key);
            if still {
                tx.ws.insert(T::Blobs as u8, sha.as_bytes(), value.clone());
            }
        }
        Ok(())
    })
}

fn prune_deliveries(
    store: &Store,
    cutoff: DateTime<Utc>,
    dry: bool,
    s: &mut PruneSummary,
) -> Result<(), StoreError> {
    let mut after: Bound<Vec<u8>> = Bound::Unbounded;
    loop {
        let mut gone = Vec::new();
        let mut past_cutoff = false;
        let mut seen = 0;
        for item in store
            .db
            .range(T::Deliveries as u8, after.clone(), Bound::Unbounded)
        {
            let (k, v) = item?;
            seen += 1;
            after = Bound::Excluded(k.to_vec());
            // One that cannot be read is left alone.
            if let Ok(d) = decode::<Delivery>("delivery", &v) {
                if d.queued_at >= cutoff {
                    past_cutoff = true;
                    break;
                }
                if d.delivered_at < cutoff {
                    gone.push(k.to_vec());
                }
            }
            if seen >= CHUNK {
                break;
            }
        }
        s.delivery_logs += gone.len() as u64;
        if !dry && !gone.is_empty() {
            store.transact(|tx| {
                for k in &gone {
                    tx.ws.remove(T::Deliveries as u8, k);
                }
                Ok(())
            })?;
        }
        if past_cutoff || seen < CHUNK {
            return Ok(());
        }
    }
}

fn prune_dedupe(
    store: &Store,
    cutoff: DateTime<Utc>,
    budget: Option<usize>,
    dry: bool,
    s: &mut PruneSummary,
) -> Result<(), StoreError> {
    let cursor = match budget {
        Some(_) => store.get(T::Meta, DEDUPE_CURSOR)?.map(|v| v.to_vec()),
        None => None,
    };
    let mut after = cursor.map_or(Bound::Unbounded, Bound::Excluded);
    let mut left = budget.unwrap_or(usize::MAX);
    loop {
        let mut gone = Vec::new();
        let mut last = None;
        let mut seen = 0;
        let want = CHUNK.min(left);
        for item in store
            .db
            .range(T::Dedupe as u8, after.clone(), Bound::Unbounded)
            .take(want)
        {
            let (k, v) = item?;
            seen += 1;
            if decode::<Disposition>("disposition", &v).is_ok_and(|d| d.at < cutoff) {
                gone.push(k.to_vec());
            }
            last = Some(k.to_vec());
        }
        left -= seen;
        s.dedupe_examined += seen as u64;
        s.dedupe_keys += gone.len() as u64;
        // At the end of the table the next round starts over.
        let at_end = seen < want;
        if !dry {
            store.transact(|tx| {
                for k in &gone {
                    tx.ws.remove(T::Dedupe as u8, k);
                }
                match (&last, at_end) {
                    (Some(k), false) => tx.ws.insert(T::Meta as u8, DEDUPE_CURSOR, &k[..]),
                    _ => tx.ws.remove(T::Meta as u8, DEDUPE_CURSOR),
                }
                Ok(())
            })?;
        }
        match last {
            Some(k) if !at_end && left > 0 => after = Bound::Excluded(k),
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::address::{EmailAddress, Party};
    use crate::store::records::{Direction, Ticket};

    fn at(day: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + day * 86_400, 0).unwrap()
    }

    fn message(raw_key: &str) -> MessageRecord {
        MessageRecord {
            ticket: 0,
            seq: 0,
            direction: Direction::Inbound,
            from: None,
            to: vec![],
            cc: vec![],
            subject: "s".into(),
            date: None,
            recorded_at: at(0),
            message_id: None,
            text: "hello".into(),
            attachments: vec![],
            raw_key: Some(raw_key.into()),
            kind: None,
        }
    }

    /// Ticket 1 last changed on day 0, ticket 2 on day 50; a delivery and a
    /// dedupe key of each day.
    fn store() -> Store {
        let s = Store::temporary().unwrap();
        s.transact(|tx| {
            for (id, day) in [(1u64, 0), (2, 50)] {
                let mut t = Ticket::new(
                    id,
                    "s".into(),
                    Party {
                        name: None,
                        address: EmailAddress::parse("a@b.c").unwrap(),
                    },
                    "help",
                    at(day),
                );
                let key = format!("raw{id}");
                tx.put_raw(&key, b"the mail as received")?;
                tx.add_message(&mut t, message(&key))?;
                tx.put_ticket(&t)?;
                tx.put_delivery(&Delivery {
                    outbox_id: id,
                    ticket: Some(id),
                    message_id: format!("m{id}"),
                    recipients: vec![],
                    delivered_at: at(day),
                    queued_at: at(day),
                    attempts: 1,
                })?;
                tx.put_disposition(
                    &format!("mid:{id}"),
                    &Disposition {
                        ticket: Some(id),
                        at: at(day),
                        outcome: "new".into(),
                    },
                )?;
            }
            Ok(())
        })
        .unwrap();
        s
    }

    fn rules() -> Retention {
        let month = Some(Duration::from_secs(30 * 86_400));
        Retention {
            raw_mail_after: month,
            delivery_logs_after: month,
            dedupe_keys_after: month,
        }
    }

    #[test]
    fn old_raw_mail_logs_and_keys_go_history_stays() {
        let s = store();
        let dry = prune(&s, &rules(), at(60), None, true).unwrap();
        assert_eq!(
            (dry.raw_mails, dry.delivery_logs, dry.dedupe_keys),
            (1, 1, 1)
        );
        assert!(
            s.raw("raw1").unwrap().is_some(),
            "a dry run removes nothing"
        );
        let done = prune(&s, &rules(), at(60), None, false).unwrap();
        assert_eq!(done, dry);
        assert!(s.raw("raw1").unwrap().is_none());
        assert!(s.raw("raw2").unwrap().is_some());
        assert_eq!(s.deliveries().unwrap().len(), 1);
        assert!(s.disposition("mid:1").unwrap().is_none());
        assert!(s.disposition("mid:2").unwrap().is_some());
        // The ticket and its history are kept.
        assert_eq!(s.messages(1).unwrap()[0].text, "hello");
        assert!(s.ticket(1).unwrap().is_some());
        // Nothing more to do: the next pass starts from its mark.
        let again = prune(&s, &rules(), at(60), None, false).unwrap();
        assert_eq!(again.raw_mails + again.delivery_logs + again.dedupe_keys, 0);
    }

    #[test]
    fn an_attachment_read_from_its_raw_mail_stays_when_the_mail_goes() {
        let s = store();
        let (raw, bytes) = crate::store::blobs::tests::mail_with_attachment();
        let key = crate::mail::parse::sha256_hex(&raw);
        let sha = crate::mail::parse::sha256_hex(&bytes);
        s.transact(|tx| {
            let mut t = tx.ticket_required(1)?;
            tx.put_raw(&key, &raw)?;
            tx.put_blob_of_raw(&sha, &key)?;
            let mut m = message(&key);
            m.attachments.push(crate::store::records::AttachmentMeta {
                name: "log.bin".into(),
                content_type: "application/octet-stream".into(),
                size: bytes.len() as u64,
                sha256: sha.clone(),
                dropped: false,
            });
            tx.add_message(&mut t, m)?;
            tx.put_ticket(&t)
        })
        .unwrap();
        let done = prune(&s, &rules(), at(60), None, false).unwrap();
        assert_eq!(done.raw_mails, 2);
        assert_eq!(
            done.raw_bytes,
            20 + raw.len() as u64,
            "mail bytes, not stored bytes"
        );
        assert!(s.raw(&key).unwrap().is_none());
        assert_eq!(s.blob(&sha).unwrap(), Some(bytes));
    }

    #[test]
    fn quarantined_mail_keeps_its_raw_mail() {
        let s = store();
        s.transact(|tx| {
            tx.put_quarantine(&crate::store::records::QuarantineEntry {
                id: 9,
                mailbox: "help".into(),
                reason: "r".into(),
                at: at(0),
                raw_key: "raw1".into(),
                size: 1,
            })
        })
        .unwrap();
        prune(&s, &rules(), at(60), None, false).unwrap();
        assert!(s.raw("raw1").unwrap().is_some());
    }

    #[test]
    fn the_daemon_pass_is_hourly_and_examines_a_budget() {
        let s = store();
        let first = daemon_pass(&s, &rules(), at(60)).unwrap().unwrap();
        assert_eq!(first.dedupe_keys, 1);
        let soon = at(60) + chrono::Duration::minutes(10);
        assert!(daemon_pass(&s, &rules(), soon).unwrap().is_none());
        assert!(daemon_pass(&s, &Retention::default(), at(70))
            .unwrap()
            .is_none());
        let later = at(60) + chrono::Duration::hours(2);
        assert!(daemon_pass(&s, &rules(), later).unwrap().is_some());
    }

    #[test]
    fn a_budget_walks_the_dedupe_keys_round_robin() {
        let s = Store::temporary().unwrap();
        s.transact(|tx| {
            for i in 0..7 {
                let d = Disposition {
                    ticket: None,
                    at: at(i % 2),
                    outcome: "x".into(),
                };
                tx.put_disposition(&format!("mid:{i}"), &d)?;
            }
            Ok(())
        })
        .unwrap();
        let r = Retention {
            dedupe_keys_after: Some(Duration::from_secs(86_400 / 2)),
            ..Retention::default()
        };
        let mut gone = 0;
        for _ in 0..3 {
            let p = prune(&s, &r, at(1), Some(3), false).unwrap();
            assert!(p.dedupe_examined <= 3);
            gone += p.dedupe_keys;
        }
        // Days 0 go (keys 0, 2, 4, 6); days 1 stay.
        assert_eq!(gone, 4);
        assert_eq!(s.db.iter(T::Dedupe as u8).count(), 3);
    }
}
