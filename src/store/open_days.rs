//! Open tickets counted by creation day, so the backlog at the end of a
//! report period is a few thousand counters, not a range read of every open
//! ticket (a desk with half a million open tickets read half a million keys
//! for each report).
//!
//! Two kinds of counters in the table `ReportIndex`, each a u64 BE count of
//! the kind 1 (*open*) entries whose creation millisecond falls on a UTC day
//! (days since 1970); a count of zero has no key:
//! - kind 2, *all*: `(2, day u64 BE)`, every open ticket;
//! - kind 3, *by key*: `(3, dimension u8, value len u16 BE, value, day u64
//!   BE)`, the open tickets with that team, assignee, priority, queue,
//!   requester domain or tag ([`OpenDim`]): a report with rows by one of
//!   them, or filtered on one, counts its backlog from these.
//!
//! `report_facts::refile` moves the counts in the batch that adds, moves or
//! removes the open entry, so the counters and the open index never
//! disagree. A report counts a whole day when all of it falls in one age
//! bucket and before the period's end; the few days a bucket boundary (or
//! the end) cuts are read entry by entry from the open index, so the
//! figures stay exact to the nanosecond.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use chrono::{DateTime, Duration, Utc};

use super::db::{full_key, WriteSet};
use super::error::{StoreError, TxResult};
use super::layout::{decode, u64_of, T};
use super::records::Priority;
use super::report_keys::{exact_of, index_key, millis, OpenKeys, OPEN};
use super::Store;

const ALL: u8 = 2;
const BY_KEY: u8 = 3;
const DAY_MS: u64 = 86_400_000;

/// What open tickets are also counted by. A ticket has one value in each,
/// but one per tag (and none without tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenDim {
    Team,
    Assignee,
    Priority,
    Queue,
    Domain,
    Tag,
}

const PRIORITIES: [Priority; 4] = [
    Priority::Low,
    Priority::Normal,
    Priority::High,
    Priority::Urgent,
];

impl OpenDim {
    const ALL: [OpenDim; 6] = [
        OpenDim::Team,
        OpenDim::Assignee,
        OpenDim::Priority,
        OpenDim::Queue,
        OpenDim::Domain,
        OpenDim::Tag,
    ];

    fn code(self) -> u8 {
        self as u8
    }

    /// The ticket's values in this dimension, as counted (no team or
    /// assignee is the empty value: names are never empty).
    fn values(self, k: &OpenKeys) -> Vec<Vec<u8>> {
        let one = |v: &str| vec![v.as_bytes().to_vec()];
        match self {
            OpenDim::Team => one(k.team.as_deref().unwrap_or("")),
            OpenDim::Assignee => one(k.assignee.as_deref().unwrap_or("")),
            OpenDim::Priority => vec![vec![k.priority as u8]],
            OpenDim::Queue => one(&k.mailbox),
            OpenDim::Domain => one(&k.domain),
            OpenDim::Tag => k
                .tags
                .iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|t| t.as_bytes().to_vec())
                .collect(),
        }
    }

    /// Keys with `value` in this dimension and nothing known of the
    /// others: what a report groups or filters the count by, when it asks
    /// for this dimension only. None for a value no release writes.
    pub fn keys_with(self, value: &[u8]) -> Option<OpenKeys> {
        let text = || String::from_utf8(value.to_vec()).ok();
        let name = || text().filter(|s| !s.is_empty());
        let mut k = OpenKeys {
            team: None,
            assignee: None,
            tags: Vec::new(),
            priority: Priority::default(),
            mailbox: String::new(),
            domain: String::new(),
        };
        match self {
            OpenDim::Team => k.team = name(),
            OpenDim::Assignee => k.assignee = name(),
            OpenDim::Priority => k.priority = *PRIORITIES.get(*value.first()? as usize)?,
            OpenDim::Queue => k.mailbox = text()?,
            OpenDim::Domain => k.domain = text()?,
            OpenDim::Tag => k.tags = vec![text()?],
        }
        Some(k)
    }
}

/// The UTC day (since 1970) of an open entry's key millisecond.
fn day_of(created_ms: u64) -> u64 {
    created_ms / DAY_MS
}

fn all_key(day: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(ALL);
    k.extend_from_slice(&day.to_be_bytes());
    k
}

fn dim_prefix(dim: OpenDim) -> Vec<u8> {
    vec![BY_KEY, dim.code()]
}

fn dim_key(dim: OpenDim, value: &[u8], day: u64) -> Vec<u8> {
    let len = value.len().min(u16::MAX as usize);
    let mut k = dim_prefix(dim);
    k.extend_from_slice(&(len as u16).to_be_bytes());
    k.extend_from_slice(&value[..len]);
    k.extend_from_slice(&day.to_be_bytes());
    k
}

/// (value, day) of a kind 3 key without its table byte.
fn parse_dim_key(k: &[u8]) -> Option<(&[u8], u64)> {
    let len = u16::from_be_bytes(k.get(2..4)?.try_into().ok()?) as usize;
    let value = k.get(4..4 + len)?;
    let day = u64_of(k.get(4 + len..)?)?;
    Some((value, day))
}

/// Every counter key (without the table byte) an open ticket created at
/// `created` with `keys` counts in.
pub(super) fn counters_of(created: DateTime<Utc>, keys: &OpenKeys) -> BTreeSet<Vec<u8>> {
    let day = day_of(millis(created));
    let mut out = BTreeSet::from([all_key(day)]);
    for dim in OpenDim::ALL {
        out.extend(dim.values(keys).iter().map(|v| dim_key(dim, v, day)));
    }
    out
}

/// Moves every counter in `old` and not in `new` down by one, and every one
/// in `new` and not in `old` up, in the caller's batch.
pub(super) fn recount_change(
    ws: &WriteSet<'_>,
    old: &BTreeSet<Vec<u8>>,
    new: &BTreeSet<Vec<u8>>,
) -> TxResult<()> {
    for k in old.difference(new) {
        bump(ws, k, -1)?;
    }
    for k in new.difference(old) {
        bump(ws, k, 1)?;
    }
    Ok(())
}

fn bump(ws: &WriteSet<'_>, key: &[u8], delta: i64) -> TxResult<()> {
    let table = T::ReportIndex as u8;
    let now = ws.get(table, key)?.as_deref().and_then(u64_of).unwrap_or(0) as i64 + delta;
    if now > 0 {
        ws.insert(table, key, (now as u64).to_be_bytes().to_vec());
    } else {
        ws.remove(table, key);
    }
    Ok(())
}

/// The counter keys (table byte included) and values of `counts`.
pub(super) fn counter_entries(
    counts: BTreeMap<Vec<u8>, u64>,
) -> impl Iterator<Item = (Vec<u8>, [u8; 8])> {
    counts
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(k, n)| (full_key(T::ReportIndex as u8, &k), n.to_be_bytes()))
}

/// Rebuilds every counter from the open index: the step that brings a
/// format 4 store to format 5. Returns how many counters.
pub(super) fn recount(data: &sled::Tree) -> Result<usize, StoreError> {
    let table = T::ReportIndex as u8;
    let mut clear = sled::Batch::default();
    for kind in [ALL, BY_KEY] {
        for item in data.scan_prefix([table, kind]) {
            clear.remove(item?.0);
        }
    }
    data.apply_batch(clear)?;
    let mut counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for item in data.scan_prefix([table, OPEN]) {
        let (_, value) = item?;
        let Some(created) = exact_of(&value) else {
            continue;
        };
        let keys: OpenKeys = decode("report keys", value.get(12..).unwrap_or(&[]))?;
        for k in counters_of(created, &keys) {
            *counts.entry(k).or_default() += 1;
        }
    }
    let mut b = sled::Batch::default();
    let n = counts.len();
    for (k, v) in counter_entries(counts) {
        b.insert(k, &v);
    }
    data.apply_batch(b)?;
    Ok(n)
}

fn at_ms(ms: u64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms.min(i64::MAX as u64) as i64)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// How open tickets are bucketed: `buckets` buckets, `bucket_of` giving
/// the bucket of a creation time; it must not increase with time (an older
/// ticket is never in a younger bucket), as age buckets don't.
pub struct Bucketing<F> {
    pub until: DateTime<Utc>,
    pub buckets: usize,
    pub bucket_of: F,
}

impl<F: Fn(DateTime<Utc>) -> usize> Bucketing<F> {
    /// Whether every ticket created on `day` is counted before `until` and
    /// in one bucket. Day 0 also holds the times before 1970 (clamped).
    fn whole(&self, day: u64) -> bool {
        let first = at_ms(day * DAY_MS);
        let end = at_ms((day + 1) * DAY_MS);
        day > 0
            && end <= self.until
            && (self.bucket_of)(first) == (self.bucket_of)(end - Duration::nanoseconds(1))
    }

    fn add(&self, counts: &mut [u64], created: DateTime<Utc>, n: u64) {
        let last = self.buckets.saturating_sub(1);
        if let Some(c) = counts.get_mut((self.bucket_of)(created).min(last)) {
            *c += n;
        }
    }
}

/// Open tickets counted per value (the empty value for the count of all),
/// each a count per bucket.
pub type Counted = BTreeMap<Vec<u8>, Vec<u64>>;

impl Store {
    /// How many open tickets (by their trail, not merged) created before
    /// `until` fall in each bucket: per value of `dim`, or all of them
    /// under the empty value with `dim` None.
    pub fn open_backlog_counts<F: Fn(DateTime<Utc>) -> usize>(
        &self,
        dim: Option<OpenDim>,
        how: &Bucketing<F>,
    ) -> Result<Counted, StoreError> {
        let table = T::ReportIndex as u8;
        let last_day = day_of(millis(how.until));
        let mut counted = Counted::new();
        let mut cut_days = BTreeSet::new();
        let counters: Box<dyn Iterator<Item = _>> = match dim {
            None => Box::new(self.db.range(
                table,
                Bound::Included(all_key(0)),
                Bound::Included(all_key(last_day)),
            )),
            Some(d) => Box::new(self.db.scan_prefix(table, &dim_prefix(d))),
        };
        for item in counters {
            let (k, v) = item?;
            let parsed = match dim {
                None => k.get(1..).and_then(u64_of).map(|day| (&[][..], day)),
                Some(_) => parse_dim_key(&k),
            };
            let (Some((value, day)), Some(n)) = (parsed, u64_of(&v)) else {
                continue;
            };
            if day > last_day {
                continue;
            }
            if how.whole(day) {
                let counts = counted
                    .entry(value.to_vec())
                    .or_insert_with(|| vec![0; how.buckets]);
                how.add(counts, at_ms(day * DAY_MS), n);
            } else {
                cut_days.insert(day);
            }
        }
        for day in cut_days {
            self.count_day_exactly(day, dim, how, &mut counted)?;
        }
        Ok(counted)
    }

    /// Counts the open entries of one day one by one.
    fn count_day_exactly<F: Fn(DateTime<Utc>) -> usize>(
        &self,
        day: u64,
        dim: Option<OpenDim>,
        how: &Bucketing<F>,
        counted: &mut Counted,
    ) -> Result<(), StoreError> {
        let entries = self.db.range(
            T::ReportIndex as u8,
            Bound::Included(index_key(OPEN, day * DAY_MS, 0)),
            Bound::Excluded(index_key(OPEN, (day + 1) * DAY_MS, 0)),
        );
        for entry in entries {
            let (_, value) = entry?;
            let Some(created) = exact_of(&value).filter(|c| *c < how.until) else {
                continue;
            };
            let values = match dim {
                None => vec![Vec::new()],
                Some(d) => d.values(&decode("report keys", value.get(12..).unwrap_or(&[]))?),
            };
            for v in values {
                let counts = counted.entry(v).or_insert_with(|| vec![0; how.buckets]);
                how.add(counts, created, 1);
            }
        }
        Ok(())
    }
}

/// Takes the open ticket with `keys` created at `created` out of `counted`
/// again (one a report counts from its facts instead).
pub fn uncount_open<F: Fn(DateTime<Utc>) -> usize>(
    dim: Option<OpenDim>,
    how: &Bucketing<F>,
    counted: &mut Counted,
    created: DateTime<Utc>,
    keys: &OpenKeys,
) {
    let values = dim.map_or_else(|| vec![Vec::new()], |d| d.values(keys));
    let bucket = (how.bucket_of)(created).min(how.buckets.saturating_sub(1));
    for v in values {
        if let Some(n) = counted.get_mut(&v).and_then(|c| c.get_mut(bucket)) {
            *n = n.saturating_sub(1);
        }
    }
}
