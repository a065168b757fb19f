//! Report facts: what one ticket contributes to `deskgate report`, kept up
//! to date in the batch that writes the ticket, and indexed by time, so a
//! report over a period reads the tickets that had something in it instead
//! of every ticket and its trail.
//!
//! The facts are the raw values the report's figures are computed from —
//! the ticket's keys (team, assignee, tags, priority, mailbox, requester),
//! its timestamps, pauses and effort, and the status changes and
//! escalations of its trail — not the figures themselves: business time,
//! SLA outcomes and tiers depend on the configuration, which a reload may
//! change, so `desk::report` computes them when asked. The facts are a pure
//! function of the ticket and its events ([`ReportFacts::derive`]); as the
//! trail only grows, each write reads only the events added since.
//!
//! Two indexes in the table `ReportIndex`:
//! - kind 0, *instants*: `(at ms u64 BE, ticket u64 BE)` → created ms u64 BE,
//!   one key per moment a report may select the ticket on (created, each
//!   status change, first response, each effort booking, each escalation):
//!   the tickets a period touches are a range read; the value lets a reader
//!   tell tickets created before a time without reading their facts.
//! - kind 1, *open*: `(created ms u64 BE, ticket u64 BE)` → [`OpenKeys`], every
//!   ticket unfinished by its trail and not merged: the backlog at the end
//!   of a period is this range read (plus the few tickets that changed after
//!   it, read from the instants) when a report groups or filters by keys.
//! - kinds 2 and 3, *open per day*: the open entries counted by creation
//!   day, all and per team, assignee, priority, queue, domain and tag
//!   (`open_days.rs`), so a report counts the backlog from counters.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::db::{full_key, WriteSet};
use super::error::{StoreError, TxResult};
use super::layout::{decode, encode, seq_key, ticket_key, tx_decode, tx_encode, u64_of, T};
use super::open_days;
use super::records::{Effort, Event, EventKind, Pause, Priority, Status, Ticket, TicketId};
pub use super::report_keys::OpenKeys;
use super::report_keys::{exact, exact_of, index_key, millis, ms, INSTANT, OPEN};
use super::Store;
use crate::mail::address::Party;

/// One ticket's part in the report (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportFacts {
    pub id: TicketId,
    pub requester: Party,
    pub priority: Priority,
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub mailbox: String,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status: Status,
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub merged_into: Option<TicketId>,
    pub sla: Option<String>,
    pub pauses: Vec<Pause>,
    pub effort: Vec<Effort>,
    /// Every status change of the trail, in order.
    pub changes: Vec<StatusChange>,
    pub escalations: Vec<Escalation>,
    /// The last reply relayed to the requester (the board's follow-ups).
    pub replied_at: Option<DateTime<Utc>>,
    /// How many of the ticket's events these facts include.
    pub events_seen: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub at: DateTime<Utc>,
    pub from: Status,
    pub to: Status,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub at: DateTime<Utc>,
    pub from_team: Option<String>,
    pub to_team: String,
    pub reason: String,
}

/// A ticket in the open index: when it was created, and (read on demand)
/// its keys.
pub struct OpenEntry {
    pub id: TicketId,
    pub created_at: DateTime<Utc>,
    value: sled::IVec,
}

impl OpenEntry {
    pub fn keys(&self) -> Result<OpenKeys, StoreError> {
        decode("report keys", self.value.get(12..).unwrap_or(&[]))
    }
}

impl ReportFacts {
    /// The facts of `t`, from the facts of its earlier state (`prev`, which
    /// had seen the first `prev.events_seen` events) and the events since.
    /// With `prev` = None, `events` is the whole trail.
    pub fn derive(prev: Option<&ReportFacts>, t: &Ticket, events: &[Event]) -> ReportFacts {
        let (mut changes, mut escalations, mut replied_at, seen) = match prev {
            Some(p) => (
                p.changes.clone(),
                p.escalations.clone(),
                p.replied_at,
                p.events_seen,
            ),
            None => (Vec::new(), Vec::new(), None, 0),
        };
        for e in events {
            match &e.kind {
                EventKind::StatusChanged { from, to, .. } => changes.push(StatusChange {
                    at: e.at,
                    from: *from,
                    to: *to,
                }),
                EventKind::Escalated {
                    from_team,
                    to_team,
                    reason,
                } => escalations.push(Escalation {
                    at: e.at,
                    from_team: from_team.clone(),
                    to_team: to_team.clone(),
                    reason: reason.clone(),
                }),
                EventKind::ReplyRelayed { .. } => {
                    replied_at = Some(replied_at.map_or(e.at, |r: DateTime<Utc>| r.max(e.at)))
                }
                _ => {}
            }
        }
        ReportFacts {
            id: t.id,
            requester: t.requester.clone(),
            priority: t.priority,
            team: t.team.clone(),
            assignee: t.assignee.clone(),
            mailbox: t.mailbox.clone(),
            tags: t.tags.clone(),
            created_at: t.created_at,
            updated_at: t.updated_at,
            status: t.status,
            first_response_at: t.first_response_at,
            resolved_at: t.resolved_at,
            merged_into: t.merged_into,
            sla: t.sla.clone(),
            pauses: t.pauses.clone(),
            effort: t.effort.clone(),
            changes,
            escalations,
            replied_at,
            events_seen: seen + events.len() as u32,
        }
    }

    /// The status the trail ends in (new when it changed none).
    pub fn trail_status(&self) -> Status {
        self.changes.last().map_or(Status::New, |c| c.to)
    }

    /// In the backlog from its last change on, until one finishes it.
    pub fn is_open(&self) -> bool {
        self.merged_into.is_none() && !self.trail_status().is_finished()
    }

    pub fn open_keys(&self) -> OpenKeys {
        OpenKeys {
            team: self.team.clone(),
            assignee: self.assignee.clone(),
            tags: self.tags.clone(),
            priority: self.priority,
            mailbox: self.mailbox.clone(),
            domain: self.requester.address.domain().to_ascii_lowercase(),
        }
    }

    /// Every moment a report period may select this ticket on.
    fn instants(&self) -> BTreeSet<DateTime<Utc>> {
        let mut at: BTreeSet<DateTime<Utc>> = BTreeSet::new();
        at.insert(self.created_at);
        at.extend(self.changes.iter().map(|c| c.at));
        at.extend(self.escalations.iter().map(|e| e.at));
        at.extend(self.effort.iter().map(|e| e.at));
        at.extend(self.first_response_at);
        at
    }
}

/// An index key (without the table byte) and its value.
type Entry = (Vec<u8>, Vec<u8>);

/// Every index key of `f`, with its value.
fn index_entries(f: &ReportFacts) -> Result<Vec<Entry>, StoreError> {
    let created = ms(f.created_at).to_vec();
    let mut out: Vec<Entry> = f
        .instants()
        .into_iter()
        .map(|at| (index_key(INSTANT, millis(at), f.id), created.clone()))
        .collect();
    if f.is_open() {
        let mut value = exact(f.created_at).to_vec();
        value.extend(encode("report keys", &f.open_keys())?);
        out.push((index_key(OPEN, millis(f.created_at), f.id), value));
    }
    Ok(out)
}

/// Brings the facts of `t` (about to be written in this transaction) and
/// their index keys up to date: called by `Tx::put_ticket`. Reads only the
/// events added since the facts were last written; an event not (yet)
/// stored stops the reading, and is taken up by the next write.
pub(super) fn refile(ws: &WriteSet<'_>, t: &Ticket) -> TxResult<()> {
    let table = T::ReportFacts as u8;
    let old: Option<ReportFacts> = ws
        .get(table, &ticket_key(t.id))?
        .map(|v| tx_decode("report facts", &v))
        .transpose()?;
    let mut events = Vec::new();
    for seq in old.as_ref().map_or(0, |o| o.events_seen)..t.event_count {
        match ws.get(T::Events as u8, &seq_key(t.id, seq))? {
            Some(v) => events.push(tx_decode::<Event>("event", &v)?),
            None => break,
        }
    }
    let new = ReportFacts::derive(old.as_ref(), t, &events);
    if old.as_ref() == Some(&new) {
        return Ok(());
    }
    let new_entries = index_entries(&new)?;
    let old_entries = old
        .as_ref()
        .map(index_entries)
        .transpose()?
        .unwrap_or_default();
    let index = T::ReportIndex as u8;
    for (k, _) in &old_entries {
        if !new_entries.iter().any(|(n, _)| n == k) {
            ws.remove(index, k);
        }
    }
    for e in &new_entries {
        if !old_entries.contains(e) {
            ws.insert(index, &e.0, e.1.as_slice());
        }
    }
    let old_counters = old.as_ref().map(open_counters).unwrap_or_default();
    open_days::recount_change(ws, &old_counters, &open_counters(&new))?;
    ws.insert(table, &ticket_key(t.id), tx_encode("report facts", &new)?);
    Ok(())
}

/// The open counters (`open_days.rs`) a ticket counts in: none unless it is
/// in the open index.
fn open_counters(f: &ReportFacts) -> BTreeSet<Vec<u8>> {
    if f.is_open() {
        open_days::counters_of(f.created_at, &f.open_keys())
    } else {
        BTreeSet::new()
    }
}

/// Builds the facts and their index for every stored ticket from its trail,
/// replacing what was there, in batches of about `batch` keys; returns how
/// many tickets. Writes final values only, so a build cut short is simply
/// done again.
pub(super) fn build(data: &sled::Tree, batch: usize) -> Result<usize, StoreError> {
    for table in [T::ReportFacts as u8, T::ReportIndex as u8] {
        let mut b = sled::Batch::default();
        for item in data.scan_prefix([table]) {
            b.remove(item?.0);
        }
        data.apply_batch(b)?;
    }
    let mut b = sled::Batch::default();
    let (mut in_batch, mut tickets) = (0, 0);
    let mut open_counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for item in data.scan_prefix([T::Tickets as u8]) {
        let (k, v) = item?;
        let t: Ticket = match decode("ticket", &v) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(key = %hex::encode(&k), error = %e, "a stored ticket cannot be read; it is left out of reports");
                continue;
            }
        };
        let events = data
            .scan_prefix(full_key(T::Events as u8, &ticket_key(t.id)))
            .map(|r| decode::<Event>("event", &r?.1))
            .collect::<Result<Vec<_>, _>>()?;
        let f = ReportFacts::derive(None, &t, &events);
        for k in open_counters(&f) {
            *open_counts.entry(k).or_default() += 1;
        }
        for (k, v) in index_entries(&f)? {
            b.insert(full_key(T::ReportIndex as u8, &k), v);
            in_batch += 1;
        }
        b.insert(
            full_key(T::ReportFacts as u8, &ticket_key(t.id)),
            encode("report facts", &f)?,
        );
        in_batch += 1;
        tickets += 1;
        if in_batch >= batch {
            data.apply_batch(std::mem::take(&mut b))?;
            in_batch = 0;
        }
    }
    for (k, v) in open_days::counter_entries(open_counts) {
        b.insert(k, &v);
    }
    data.apply_batch(b)?;
    Ok(tickets)
}

impl Store {
    pub fn report_facts(&self, id: TicketId) -> Result<Option<ReportFacts>, StoreError> {
        self.get(T::ReportFacts, &ticket_key(id))?
            .map(|v| decode("report facts", &v))
            .transpose()
    }

    /// Whether every moment of every ticket lies in `[since, until]` (to
    /// the index's millisecond): then [`Store::report_tickets`] would name
    /// every ticket, and reading all facts in ticket order
    /// ([`Store::all_report_facts`]) costs far less than gathering the
    /// moments and looking each ticket up.
    pub fn report_period_holds_all(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut moments = self.db.range(
            T::ReportIndex as u8,
            Bound::Included(vec![INSTANT]),
            Bound::Excluded(vec![OPEN]),
        );
        let moment = |k: &[u8]| k.get(1..9).and_then(u64_of);
        let first = moments.next().transpose()?.and_then(|(k, _)| moment(&k));
        // With one moment in all, the first is also the last.
        let last = match moments.next_back().transpose()? {
            Some((k, _)) => moment(&k),
            None => first,
        };
        Ok(match (first, last) {
            (Some(first), Some(last)) => first >= millis(since) && last <= millis(until),
            _ => false,
        })
    }

    /// The facts of every ticket, in ticket order.
    pub fn all_report_facts(&self) -> impl Iterator<Item = Result<ReportFacts, StoreError>> + '_ {
        self.db
            .iter(T::ReportFacts as u8)
            .map(|item| decode("report facts", &item?.1))
    }

    /// The tickets a report over `[since, until)` must read the facts of:
    /// those with a moment in the period, and those created before `until`
    /// with a moment after it (their status at `until` is not their status
    /// now). Every other ticket counts only in the backlog, from the open
    /// index ([`Store::open_created_before`]). In ticket order. The index
    /// keeps whole milliseconds, so a bound's own millisecond is read on
    /// both sides: a few tickets too many, never one too few (the report
    /// checks each moment exactly).
    pub fn report_tickets(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<BTreeSet<TicketId>, StoreError> {
        let table = T::ReportIndex as u8;
        let key = |at_ms| index_key(INSTANT, at_ms, 0);
        let until_ms = millis(until);
        let mut ids = BTreeSet::new();
        let during = self.db.range(
            table,
            Bound::Included(key(millis(since))),
            Bound::Excluded(key(until_ms + 1)),
        );
        for item in during {
            let (k, _) = item?;
            ids.extend(k.get(9..17).and_then(u64_of));
        }
        let after = self.db.range(
            table,
            Bound::Included(key(until_ms)),
            Bound::Excluded(vec![OPEN]),
        );
        for item in after {
            let (k, v) = item?;
            if u64_of(&v).is_some_and(|created| created <= until_ms) {
                ids.extend(k.get(9..17).and_then(u64_of));
            }
        }
        Ok(ids)
    }

    /// Open tickets (by their trail, not merged) created before `until`,
    /// oldest first.
    pub fn open_created_before(
        &self,
        until: DateTime<Utc>,
    ) -> impl Iterator<Item = Result<OpenEntry, StoreError>> + '_ {
        self.db
            .range(
                T::ReportIndex as u8,
                Bound::Included(vec![OPEN]),
                Bound::Excluded(index_key(OPEN, millis(until) + 1, 0)),
            )
            .filter_map(move |item| {
                let (k, value) = match item {
                    Ok(kv) => kv,
                    Err(e) => return Some(Err(e.into())),
                };
                let created_at = exact_of(&value)?;
                (created_at < until).then(|| {
                    Ok(OpenEntry {
                        id: k.get(9..17).and_then(u64_of).unwrap_or(0),
                        created_at,
                        value,
                    })
                })
            })
    }
}
