//! The backlog at the end of a report's period, for the open tickets the
//! report has no other figure of: counted one by one from the open index,
//! or many at once from the store's per-day counters (`store::open_days`),
//! which count by one key (team, assignee, priority, queue, domain or tag)
//! at a time — so a report whose rows and filter ask for one key at most
//! is counted, any other read ticket by ticket.

use chrono::{DateTime, Utc};

use super::figures::AGE_BUCKET_NAMES;
use super::{key_of, Builder, Group, GroupBy, Keys};
use crate::store::open_days::OpenDim;
use crate::store::report_facts::OpenKeys;

/// How a report's backlog is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacklogCount {
    /// From the counters: of all open tickets (None), or per value of one key.
    Counted(Option<OpenDim>),
    /// Entry by entry, each with its keys: rows and a filter on different
    /// keys, or filters on several.
    PerTicket,
}

/// The key a report's rows are counted by (a tier is its team's).
fn dim_of(by: GroupBy) -> OpenDim {
    match by {
        GroupBy::Team | GroupBy::Tier => OpenDim::Team,
        GroupBy::Agent => OpenDim::Assignee,
        GroupBy::Priority => OpenDim::Priority,
        GroupBy::Queue => OpenDim::Queue,
        GroupBy::Domain => OpenDim::Domain,
    }
}

impl Builder<'_> {
    /// How this report's backlog can be read (see the module doc).
    pub fn backlog_count(&self) -> BacklogCount {
        let f = &self.spec.filter;
        let filtered: Vec<OpenDim> = [
            f.team.as_ref().map(|_| OpenDim::Team),
            f.agent.as_ref().map(|_| OpenDim::Assignee),
            f.tag.as_ref().map(|_| OpenDim::Tag),
        ]
        .into_iter()
        .flatten()
        .collect();
        match (self.spec.by.map(dim_of), filtered.as_slice()) {
            (None, []) => BacklogCount::Counted(None),
            (Some(d), []) | (None, &[d]) => BacklogCount::Counted(Some(d)),
            (Some(d), [e]) if d == *e => BacklogCount::Counted(Some(d)),
            _ => BacklogCount::PerTicket,
        }
    }

    /// Counts an open ticket in the backlog at the end of the period: one
    /// created before the end, unfinished and unmerged by its trail, with
    /// nothing in the period or after it (it has no other figure, and its
    /// status then is its status now).
    pub fn add_open(&mut self, created_at: DateTime<Utc>, keys: &OpenKeys) {
        if created_at >= self.spec.until {
            return;
        }
        let mut by_bucket = [0u64; AGE_BUCKET_NAMES.len()];
        by_bucket[self.spec.backlog_bucket(created_at)] = 1;
        self.add_open_counts(Some(keys), &by_bucket);
    }

    /// Counts open tickets (as [`Builder::add_open`] takes them) at once:
    /// `by_bucket[i]` of them in [`super::Spec::backlog_bucket`] `i`, all with
    /// `keys` — or, with None, every one (a report without rows or filter).
    /// From the counters, `keys` holds only the key [`Builder::backlog_count`]
    /// named, which is all the rows and filter look at.
    pub fn add_open_counts(&mut self, keys: Option<&OpenKeys>, by_bucket: &[u64]) {
        if by_bucket.iter().all(|&n| n == 0) {
            return;
        }
        let spec = &self.spec;
        let keys = keys.map(Keys::of_open);
        match &keys {
            Some(k) if !spec.filter.admits_keys(k) => return,
            None if !spec.filter.is_empty() => return,
            _ => {}
        }
        let count = |g: &mut Group| {
            for (age, n) in g.backlog_age.iter_mut().zip(by_bucket) {
                *age += n;
                g.backlog += n;
            }
        };
        count(&mut self.total.0);
        if let (Some(by), Some(k)) = (spec.by, &keys) {
            let key = key_of(self.policy, by, k);
            count(&mut self.groups.entry(key).or_default().0);
        }
    }
}
