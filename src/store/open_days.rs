//! Open tickets counted by creation day, so the backlog at the end of a
//! report period is a few hundred counters, not a range read of every open
//! ticket (a desk with half a million open tickets read half a million keys
//! for each report).
//!
//! Kind 2 of the table `ReportIndex`: `(2, day u64 BE)` → u64 BE, the number
//! of kind 1 (*open*) entries whose creation millisecond falls on that UTC
//! day (days since 1970; a day with none has no key). `report_facts::refile`
//! moves the count in the batch that adds or removes the open entry, so the
//! counters and the open index never disagree.
//!
//! A report counts a whole day when all of it falls in one age bucket and
//! before the period's end; the few days a bucket boundary (or the end)
//! cuts are read entry by entry from the open index, so the figures stay
//! exact to the nanosecond.

use std::collections::BTreeMap;
use std::ops::Bound;

use chrono::{DateTime, Duration, Utc};

use super::db::{full_key, WriteSet};
use super::error::{StoreError, TxResult};
use super::layout::{u64_of, T};
use super::report_facts::{exact_of, index_key, millis, OPEN};
use super::Store;

pub(super) const OPEN_DAYS: u8 = 2;
const DAY_MS: u64 = 86_400_000;

/// The UTC day (since 1970) an open entry's key millisecond falls on.
pub(super) fn day_of(created_ms: u64) -> u64 {
    created_ms / DAY_MS
}

fn day_key(day: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = OPEN_DAYS;
    k[1..].copy_from_slice(&day.to_be_bytes());
    k
}

/// Moves the count of open tickets created on `day` by `delta` in the
/// caller's batch; a count that reaches zero is removed.
pub(super) fn bump(ws: &WriteSet<'_>, day: u64, delta: i64) -> TxResult<()> {
    let table = T::ReportIndex as u8;
    let key = day_key(day);
    let now = ws
        .get(table, &key)?
        .as_deref()
        .and_then(u64_of)
        .unwrap_or(0) as i64
        + delta;
    if now > 0 {
        ws.insert(table, &key, (now as u64).to_be_bytes().to_vec());
    } else {
        ws.remove(table, &key);
    }
    Ok(())
}

/// The counter keys (table byte included) and values for `days`.
pub(super) fn counter_entries(
    days: BTreeMap<u64, u64>,
) -> impl Iterator<Item = (Vec<u8>, [u8; 8])> {
    days.into_iter().filter(|&(_, n)| n > 0).map(|(day, n)| {
        (
            full_key(T::ReportIndex as u8, &day_key(day)),
            n.to_be_bytes(),
        )
    })
}

/// Rebuilds every counter from the open index: the step that brings a
/// format 4 store to format 5. Returns how many days have open tickets.
pub(super) fn recount(data: &sled::Tree) -> Result<usize, StoreError> {
    let table = T::ReportIndex as u8;
    let mut clear = sled::Batch::default();
    for item in data.scan_prefix([table, OPEN_DAYS]) {
        clear.remove(item?.0);
    }
    data.apply_batch(clear)?;
    let mut days: BTreeMap<u64, u64> = BTreeMap::new();
    for item in data.scan_prefix([table, OPEN]) {
        let (k, _) = item?;
        if let Some(ms) = k.get(2..10).and_then(u64_of) {
            *days.entry(day_of(ms)).or_default() += 1;
        }
    }
    let mut b = sled::Batch::default();
    let n = days.len();
    for (k, v) in counter_entries(days) {
        b.insert(k, &v);
    }
    data.apply_batch(b)?;
    Ok(n)
}

fn at_ms(ms: u64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms as i64).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Store {
    /// How many open tickets (by their trail, not merged) created before
    /// `until` fall in each of `buckets` buckets, `bucket_of` giving the
    /// bucket of a creation time. `bucket_of` must not increase with time
    /// (an older ticket is never in a younger bucket), as age buckets don't.
    pub fn open_backlog_by_bucket(
        &self,
        until: DateTime<Utc>,
        buckets: usize,
        bucket_of: impl Fn(DateTime<Utc>) -> usize,
    ) -> Result<Vec<u64>, StoreError> {
        let table = T::ReportIndex as u8;
        let mut counts = vec![0u64; buckets];
        let mut add = |bucket: usize, n: u64| {
            if let Some(c) = counts.get_mut(bucket.min(buckets.saturating_sub(1))) {
                *c += n;
            }
        };
        let last_day = day_of(millis(until));
        let days = self.db.range(
            table,
            Bound::Included(day_key(0).to_vec()),
            Bound::Included(day_key(last_day).to_vec()),
        );
        for item in days {
            let (k, v) = item?;
            let (Some(day), Some(n)) = (k.get(1..9).and_then(u64_of), u64_of(&v)) else {
                continue;
            };
            let first = at_ms(day * DAY_MS);
            let end = at_ms((day + 1) * DAY_MS);
            let whole = day > 0
                && end <= until
                && bucket_of(first) == bucket_of(end - Duration::nanoseconds(1));
            if whole {
                add(bucket_of(first), n);
                continue;
            }
            // Cut by a bucket boundary or the period's end, or holding the
            // times before 1970 (clamped to day 0): entry by entry.
            let entries = self.db.range(
                table,
                Bound::Included(index_key(OPEN, day * DAY_MS, 0)),
                Bound::Excluded(index_key(OPEN, (day + 1) * DAY_MS, 0)),
            );
            for entry in entries {
                let (_, value) = entry?;
                if let Some(created) = exact_of(&value).filter(|c| *c < until) {
                    add(bucket_of(created), 1);
                }
            }
        }
        Ok(counts)
    }
}
