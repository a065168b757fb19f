//! The `recurring` view: the tickets created in a period, read newest first
//! and only back to the period's start (ticket numbers grow with time), each
//! with its first mail's text, grouped by `desk::recurring`.

use chrono::{DateTime, Utc};

use crate::desk::recurring::{clusters, Cluster, Doc};
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
