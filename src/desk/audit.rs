//! The audit trail: one helper makes every event, so each records when, who
//! and what in the same way.

use chrono::{DateTime, Utc};

use crate::store::records::{Event, EventKind};

/// An audit-trail entry by `actor` (an address, or "deskgate").
pub fn event(now: DateTime<Utc>, actor: &str, kind: EventKind) -> Event {
    Event {
        at: now,
        actor: actor.to_string(),
        kind,
    }
}
