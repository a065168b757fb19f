//! What to work on first (`deskgate tickets next`, and later the mail
//! command #next): the ticket whose SLA falls due soonest, then the higher
//! priority, then the older ticket. One pure ordering, so every caller
//! agrees.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::sla::SlaPolicy;
use crate::desk::sla::{self, TargetState};
use crate::store::records::{Priority, Status, Ticket, TicketId};

/// What the ordering looks at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: TicketId,
    pub subject: String,
    pub status: Status,
    pub priority: Priority,
    pub assignee: Option<String>,
    pub team: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The earliest due time of a target not yet met and not paused (a
    /// breached one included: it is the most urgent).
    pub due: Option<DateTime<Utc>>,
    pub breached: bool,
}

/// Tickets someone can act on: new or open (waiting is the customer's turn,
/// finished and merged tickets are done).
pub fn actionable(t: &Ticket) -> bool {
    matches!(t.status, Status::New | Status::Open) && t.merged_into.is_none()
}

pub fn candidate(t: &Ticket, policy: Option<&SlaPolicy>, now: DateTime<Utc>) -> Candidate {
    let targets = policy.map(|p| sla::status(t, p, now)).unwrap_or_default();
    let open = targets
        .iter()
        .filter(|s| matches!(s.state, TargetState::Running | TargetState::Breached));
    Candidate {
        id: t.id,
        subject: t.subject.clone(),
        status: t.status,
        priority: t.priority,
        assignee: t.assignee.clone(),
        team: t.team.clone(),
        created_at: t.created_at,
        due: open.clone().filter_map(|s| s.due).min(),
        breached: open.clone().any(|s| s.state == TargetState::Breached),
    }
}

/// The order of work: SLA due time (earliest first; no due time last), then
/// priority (highest first), then age (oldest first), then ticket number.
pub fn compare(a: &Candidate, b: &Candidate) -> Ordering {
    let due = match (a.due, b.due) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    due.then_with(|| b.priority.cmp(&a.priority))
        .then_with(|| a.created_at.cmp(&b.created_at))
        .then_with(|| a.id.cmp(&b.id))
}

/// `cands` in the order of work.
pub fn order(mut cands: Vec<Candidate>) -> Vec<Candidate> {
    cands.sort_by(compare);
    cands
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u64, due: Option<&str>, p: Priority, created: &str) -> Candidate {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        Candidate {
            id,
            subject: String::new(),
            status: Status::Open,
            priority: p,
            assignee: None,
            team: None,
            created_at: t(created),
            due: due.map(t),
            breached: false,
        }
    }

    #[test]
    fn due_time_then_priority_then_age() {
        let got = order(vec![
            c(1, None, Priority::Urgent, "2026-03-01T00:00:00Z"),
            c(
                2,
                Some("2026-03-02T12:00:00Z"),
                Priority::Low,
                "2026-03-01T00:00:00Z",
            ),
            c(
                3,
                Some("2026-03-02T10:00:00Z"),
                Priority::Low,
                "2026-03-01T00:00:00Z",
            ),
            c(
                4,
                Some("2026-03-02T12:00:00Z"),
                Priority::High,
                "2026-03-01T05:00:00Z",
            ),
            c(5, None, Priority::Urgent, "2026-02-01T00:00:00Z"),
            c(6, None, Priority::Normal, "2026-01-01T00:00:00Z"),
            c(
                7,
                Some("2026-03-02T12:00:00Z"),
                Priority::High,
                "2026-03-01T01:00:00Z",
            ),
        ]);
        let ids: Vec<u64> = got.iter().map(|x| x.id).collect();
        assert_eq!(ids, [3, 7, 4, 2, 5, 1, 6]);
    }
}
