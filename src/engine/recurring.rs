//! The `recurring` view: the tickets created in a period, read newest first
//! and only back to the period's start (ticket numbers grow with time), each
//! with its first mail's text, grouped by `desk::recurring`; and the same
//! for the period before, compared by `desk::recurring_compare` (shared by
//! `deskgate recurring` and the `recurring` digest).

use chrono::{DateTime, Utc};

use crate::desk::digest::Period;
use crate::desk::recurring::{clusters, Cluster, Doc};
use crate::desk::recurring_compare::{compare_recurring, RecurringComparison};
use crate::store::records::Direction;
use crate::store::{Store, StoreError};

/// Most tickets one report reads: a period that holds more is cut to its
/// newest tickets, and the answer says so.
pub const MAX_TICKETS: usize = 200_000;

pub struct Recurring {
    pub clusters: Vec<Cluster>,
    pub tickets_read: usize,
    pub truncated: bool,
}

pub fn recurring(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    min: usize,
) -> Result<Recurring, StoreError> {
    let mut docs = Vec::new();
    let mut truncated = false;
    for t in store.tickets_newest_first() {
        let t = t?;
        if t.created_at < since {
            break;
        }
        if t.created_at > until || t.merged_into.is_some() {
            continue;
        }
        if docs.len() >= MAX_TICKETS {
            truncated = true;
            break;
        }
        let text = store
            .messages(t.id)?
            .into_iter()
            .find(|m| m.direction == Direction::Inbound)
            .map(|m| m.text)
            .unwrap_or_default();
        docs.push(Doc {
            id: t.id,
            subject: t.subject,
            text,
            created_at: t.created_at,
            team: t.team,
        });
    }
    docs.reverse();
    Ok(Recurring {
        tickets_read: docs.len(),
        clusters: clusters(&docs, min, (since, until)),
        truncated,
    })
}

/// The issues of `current` (at least `min` tickets) against `previous`'s,
/// with what was read of `current`.
pub struct Compared {
    pub compared: RecurringComparison,
    pub tickets_read: usize,
    pub truncated: bool,
}

/// Both periods are grouped at the smallest size, so issues too small to
/// report still count as seen (`compare_recurring`).
pub fn compared(
    store: &Store,
    current: Period,
    previous: Period,
    min: usize,
) -> Result<Compared, StoreError> {
    let now = recurring(store, current.since, current.until, 2)?;
    let before = recurring(store, previous.since, previous.until, 2)?;
    Ok(Compared {
        compared: compare_recurring(now.clusters, &before.clusters, min),
        tickets_read: now.tickets_read,
        truncated: now.truncated,
    })
}
