//! The ticket list index: `tickets list` reads a page, not the desk.
//!
//! Every ticket is filed in the table `TicketIndex` under keys that end in
//! its update time and number (`updated ms u64 BE, ticket u64 BE`, the
//! *position*): once under kind 0 (every ticket), and once under each of its
//! status, team, assignee, requester and tags (kind, value length u16 BE,
//! value). Within one kind and value the keys are in update order, so:
//!
//! - a page of one filter is a reverse range read of its prefix, costing the
//!   page (most recently updated first);
//! - `--since` is the range's lower bound, not a filter: older keys are never
//!   read;
//! - two or more filters are intersected by a leapfrog walk: each index seeks
//!   to the position the others reached (one sled range seek, O(log n)), so
//!   the cost is about (page + skipped positions) × filters seeks, where the
//!   skipped positions are bounded by the smaller of the ranges.
//!
//! The keys are moved in the same transaction as the ticket (`Tx::put_ticket`
//! calls [`refile`]), so the index is never behind. Each change of a ticket
//! rewrites its 3–6 keys (its position moves with its update time).

use std::ops::Bound;

use chrono::{DateTime, Utc};

use super::db::{Db, WriteSet};
use super::error::StoreError;
use super::layout::{decode, due_key, u64_of, T};
use super::records::{Status, Ticket, TicketId};

const ALL: u8 = 0;
const STATUS: u8 = 1;
const TEAM: u8 = 2;
const ASSIGNEE: u8 = 3;
const REQUESTER: u8 = 4;
const TAG: u8 = 5;

/// One filter of `tickets list`: tickets filed under this value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFilter {
    Status(Status),
    Team(String),
    Assignee(String),
    /// An address, lower case (as tickets store it).
    Requester(String),
    Tag(String),
}

/// Where a ticket stands in update order: the key suffix of its entries.
pub type Position = [u8; 16];

fn prefix(kind: u8, value: &[u8]) -> Vec<u8> {
    let len = value.len().min(u16::MAX as usize);
    let mut k = Vec::with_capacity(3 + len + 16);
    k.push(kind);
    k.extend_from_slice(&(len as u16).to_be_bytes());
    k.extend_from_slice(&value[..len]);
    k
}

fn filter_prefix(f: &ListFilter) -> Vec<u8> {
    match f {
        ListFilter::Status(s) => prefix(STATUS, s.as_str().as_bytes()),
        ListFilter::Team(v) => prefix(TEAM, v.as_bytes()),
        ListFilter::Assignee(v) => prefix(ASSIGNEE, v.as_bytes()),
        ListFilter::Requester(v) => prefix(REQUESTER, v.to_ascii_lowercase().as_bytes()),
        ListFilter::Tag(v) => prefix(TAG, v.as_bytes()),
    }
}

pub fn position(t: &Ticket) -> Position {
    due_key(t.updated_at, t.id)
}

/// Every key `t` is filed under.
pub(super) fn keys_of(t: &Ticket) -> Vec<Vec<u8>> {
    let mut prefixes = vec![
        vec![ALL],
        prefix(STATUS, t.status.as_str().as_bytes()),
        prefix(REQUESTER, t.requester.address.as_str().as_bytes()),
    ];
    if let Some(team) = &t.team {
        prefixes.push(prefix(TEAM, team.as_bytes()));
    }
    if let Some(a) = &t.assignee {
        prefixes.push(prefix(ASSIGNEE, a.as_bytes()));
    }
    for tag in &t.tags {
        prefixes.push(prefix(TAG, tag.as_bytes()));
    }
    let pos = position(t);
    let mut keys: Vec<Vec<u8>> = prefixes
        .into_iter()
        .map(|mut p| {
            p.extend_from_slice(&pos);
            p
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Moves `new`'s index keys from where `old` (the ticket as stored before
/// this write, if any) had them: only the keys that differ are written.
pub(super) fn refile(ws: &WriteSet<'_>, old: Option<&Ticket>, new: &Ticket) {
    let table = T::TicketIndex as u8;
    let new_keys = keys_of(new);
    let old_keys = old.map(keys_of).unwrap_or_default();
    for k in old_keys.iter().filter(|k| !new_keys.contains(k)) {
        ws.remove(table, k);
    }
    for k in new_keys.iter().filter(|k| !old_keys.contains(k)) {
        ws.insert(table, k, &[][..]);
    }
}

/// Tickets matching every filter, most recently updated first, from below
/// `before` (exclusive) down to `since` (inclusive).
pub struct ListWalk<'a> {
    db: &'a Db,
    prefixes: Vec<Vec<u8>>,
    lower: Position,
    upper: Bound<Position>,
    done: bool,
}

impl<'a> ListWalk<'a> {
    pub(super) fn new(
        db: &'a Db,
        filters: &[ListFilter],
        since: Option<DateTime<Utc>>,
        before: Option<Position>,
    ) -> ListWalk<'a> {
        let mut prefixes: Vec<Vec<u8>> = filters.iter().map(filter_prefix).collect();
        if prefixes.is_empty() {
            prefixes.push(vec![ALL]);
        }
        prefixes.sort();
        prefixes.dedup();
        ListWalk {
            db,
            prefixes,
            lower: since.map_or([0; 16], |s| due_key(s, 0)),
            upper: before.map_or(Bound::Unbounded, Bound::Excluded),
            done: false,
        }
    }

    /// The greatest position of index `i` at or below `upper` (and not below
    /// the lower bound): one range seek.
    fn seek(&self, i: usize, upper: Bound<Position>) -> Result<Option<Position>, StoreError> {
        let p = &self.prefixes[i];
        let with = |pos: &Position| {
            let mut k = p.clone();
            k.extend_from_slice(pos);
            k
        };
        let to = match upper {
            Bound::Unbounded => Bound::Included(with(&[0xff; 16])),
            Bound::Included(pos) => Bound::Included(with(&pos)),
            Bound::Excluded(pos) => Bound::Excluded(with(&pos)),
        };
        let from = Bound::Included(with(&self.lower));
        match self.db.range(T::TicketIndex as u8, from, to).next_back() {
            None => Ok(None),
            Some(item) => {
                let (k, _) = item?;
                Ok(k.get(p.len()..).and_then(|s| s.try_into().ok()))
            }
        }
    }

    /// The next position every index holds (leapfrog: each index seeks to
    /// the candidate of the one before, until all agree).
    fn next_position(&mut self) -> Result<Option<Position>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let n = self.prefixes.len();
        let Some(mut target) = self.seek(0, self.upper)? else {
            self.done = true;
            return Ok(None);
        };
        let (mut agreed, mut i) = (1, 1);
        while agreed < n {
            match self.seek(i % n, Bound::Included(target))? {
                None => {
                    self.done = true;
                    return Ok(None);
                }
                Some(s) if s == target => agreed += 1,
                Some(s) => {
                    target = s;
                    agreed = 1;
                }
            }
            i += 1;
        }
        self.upper = Bound::Excluded(target);
        Ok(Some(target))
    }
}

impl Iterator for ListWalk<'_> {
    type Item = Result<(Position, Ticket), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let pos = match self.next_position() {
                Ok(Some(p)) => p,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            let id: TicketId = u64_of(&pos[8..]).unwrap_or(0);
            match self.db.get(T::Tickets as u8, &id.to_be_bytes()) {
                Err(e) => return Some(Err(e.into())),
                // Written in the same batch as the ticket: never missing.
                Ok(None) => continue,
                Ok(Some(v)) => return Some(decode("ticket", &v).map(|t| (pos, t))),
            }
        }
    }
}

/// Builds the index of every stored ticket (a store of format 2), in batches
/// of `batch` keys; returns how many tickets it filed. Rewriting a key is harmless, so
/// a build cut short by a crash is simply done again.
pub(super) fn build(data: &sled::Tree, batch: usize) -> Result<usize, StoreError> {
    let mut b = sled::Batch::default();
    let (mut in_batch, mut tickets) = (0, 0);
    for item in data.scan_prefix([T::Tickets as u8]) {
        let (k, v) = item?;
        // A ticket this release cannot read stays stored, unlisted: refusing
        // to open the store over it would stop the desk for one bad record.
        let t: Ticket = match decode("ticket", &v) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(key = %hex::encode(&k), error = %e, "a stored ticket cannot be read; it is left out of the list index");
                continue;
            }
        };
        for k in keys_of(&t) {
            b.insert(super::db::full_key(T::TicketIndex as u8, &k), &[][..]);
            in_batch += 1;
        }
        tickets += 1;
        if in_batch >= batch {
            data.apply_batch(std::mem::take(&mut b))?;
            in_batch = 0;
        }
    }
    data.apply_batch(b)?;
    Ok(tickets)
}

/// A position as the CLI shows it (`--page`): update ms and ticket number.
pub fn position_token(p: &Position) -> String {
    format!(
        "{}-{}",
        u64_of(&p[..8]).unwrap_or(0),
        u64_of(&p[8..]).unwrap_or(0)
    )
}

/// The position a `--page` token names, or None when it is not one.
pub fn parse_position(token: &str) -> Option<Position> {
    let (ms, id) = token.trim().split_once('-')?;
    let (ms, id): (u64, u64) = (ms.parse().ok()?, id.parse().ok()?);
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&ms.to_be_bytes());
    p[8..].copy_from_slice(&id.to_be_bytes());
    Some(p)
}

/// Only for the format-migration test: forget the index, as a format 2
/// store has none.
#[cfg(test)]
pub(super) fn drop_all(db: &Db) -> super::error::TxResult<()> {
    let keys: Vec<_> = db
        .iter(T::TicketIndex as u8)
        .map(|r| r.map(|(k, _)| k))
        .collect::<Result<_, _>>()?;
    db.transact(|ws| {
        for k in &keys {
            ws.remove(T::TicketIndex as u8, k);
        }
        Ok::<_, StoreError>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::address::{EmailAddress, Party};
    use crate::store::Store;

    fn ticket(id: TicketId, minute: i64, team: Option<&str>, requester: &str) -> Ticket {
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000 + minute * 60, 0).unwrap();
        let mut t = Ticket::new(
            id,
            format!("s{id}"),
            Party {
                name: None,
                address: EmailAddress::parse(requester).unwrap(),
            },
            "help",
            at,
        );
        t.team = team.map(str::to_string);
        t
    }

    fn ids(s: &Store, f: &[ListFilter], since: Option<i64>) -> Vec<TicketId> {
        let since = since.map(|m| DateTime::from_timestamp(1_700_000_000 + m * 60, 0).unwrap());
        s.ticket_list(f, since, None)
            .map(|r| r.unwrap().1.id)
            .collect()
    }

    fn team(v: &str) -> ListFilter {
        ListFilter::Team(v.into())
    }

    #[test]
    fn filters_read_their_index_most_recent_first_and_intersect() {
        let s = Store::temporary().unwrap();
        s.transact(|tx| {
            for (id, team) in [(1, "net"), (2, "hr"), (3, "net"), (4, "net"), (5, "hr")] {
                let req = if id % 2 == 0 { "a@x.test" } else { "b@x.test" };
                tx.put_ticket(&ticket(id, id as i64, Some(team), req))?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(ids(&s, &[], None), [5, 4, 3, 2, 1]);
        assert_eq!(ids(&s, &[team("net")], None), [4, 3, 1]);
        let b = ListFilter::Requester("B@x.test".into());
        assert_eq!(ids(&s, &[team("net"), b.clone()], None), [3, 1]);
        assert_eq!(ids(&s, &[b.clone(), team("hr")], None), [5]);
        assert_eq!(ids(&s, &[team("net")], Some(3)), [4, 3]);
        assert!(ids(&s, &[team("nobody")], None).is_empty());
        assert!(ids(&s, &[team("net"), ListFilter::Tag("vip".into())], None).is_empty());
    }

    #[test]
    fn a_change_moves_the_ticket_in_every_index_in_the_same_transaction() {
        let s = Store::temporary().unwrap();
        s.transact(|tx| {
            tx.put_ticket(&ticket(1, 1, Some("net"), "a@x.test"))?;
            tx.put_ticket(&ticket(2, 2, Some("net"), "a@x.test"))
        })
        .unwrap();
        s.transact(|tx| {
            let mut t = tx.ticket_required(1)?;
            t.team = Some("hr".into());
            t.tags.push("vip".into());
            t.set_status(Status::Open, t.updated_at);
            t.updated_at += chrono::Duration::minutes(10);
            tx.put_ticket(&t)?;
            // Twice in one transaction: the keys of the first write go too.
            t.updated_at += chrono::Duration::minutes(1);
            tx.put_ticket(&t)
        })
        .unwrap();
        assert_eq!(ids(&s, &[], None), [1, 2]);
        assert_eq!(ids(&s, &[team("net")], None), [2]);
        assert_eq!(ids(&s, &[team("hr")], None), [1]);
        assert_eq!(ids(&s, &[ListFilter::Tag("vip".into())], None), [1]);
        assert_eq!(ids(&s, &[ListFilter::Status(Status::New)], None), [2]);
        assert_eq!(ids(&s, &[ListFilter::Status(Status::Open)], None), [1]);
        // 2 tickets: all, status, requester, team each; ticket 1 a tag too.
        assert_eq!(s.db.iter(T::TicketIndex as u8).count(), 9);
    }

    #[test]
    fn a_page_token_resumes_below_the_last_position_shown() {
        let s = Store::temporary().unwrap();
        s.transact(|tx| {
            for id in 1..=5 {
                tx.put_ticket(&ticket(id, 1, None, "a@x.test"))?;
            }
            Ok(())
        })
        .unwrap();
        let first: Vec<_> = s
            .ticket_list(&[], None, None)
            .take(2)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(first.iter().map(|p| p.1.id).collect::<Vec<_>>(), [5, 4]);
        let token = position_token(&first[1].0);
        let next = parse_position(&token).unwrap();
        let rest: Vec<_> = s
            .ticket_list(&[], None, Some(next))
            .map(|r| r.unwrap().1.id)
            .collect();
        assert_eq!(rest, [3, 2, 1]);
        assert!(parse_position("junk").is_none());
    }
}
