//! What to work on first (`deskgate tickets next`, and the mail
//! command #next): the ticket whose SLA falls due soonest, then the higher
//! priority, then the older ticket. One pure ordering, so every caller
//! agrees.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

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

/// Whether `agent` (an address, in any case) is the ticket's assignee: the
/// one rule `tickets next --agent`, the board and `#next` by mail share.
pub fn assigned_to(t: &Ticket, agent: &str) -> bool {
    t.assignee
        .as_deref()
        .is_some_and(|a| a.eq_ignore_ascii_case(agent))
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

/// The first `limit` candidates in the order of work, kept while the
/// tickets stream past: a desk with half a million open tickets holds
/// `limit` + 1 of them, not all. One more than shown is kept so that
/// whether there are more is known without counting the rest.
pub struct FirstInOrder {
    limit: usize,
    /// The best `limit` + 1 so far; its top is the last of them in the
    /// order of work, the first to leave for a better one.
    kept: BinaryHeap<InOrder>,
}

/// A candidate ordered by [`compare`] (a total order: ticket numbers are
/// unique), so a heap can keep the first ones.
struct InOrder(Candidate);

impl PartialEq for InOrder {
    fn eq(&self, other: &Self) -> bool {
        compare(&self.0, &other.0) == Ordering::Equal
    }
}

impl Eq for InOrder {}

impl PartialOrd for InOrder {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InOrder {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0, &other.0)
    }
}

impl FirstInOrder {
    pub fn new(limit: usize) -> FirstInOrder {
        FirstInOrder {
            limit,
            kept: BinaryHeap::new(),
        }
    }

    pub fn push(&mut self, c: Candidate) {
        if self.kept.len() <= self.limit {
            self.kept.push(InOrder(c));
        } else if let Some(mut last) = self.kept.peek_mut() {
            if compare(&c, &last.0) == Ordering::Less {
                *last = InOrder(c);
            }
        }
    }

    /// The first `limit` in the order of work, and whether there were more.
    pub fn finish(self) -> (Vec<Candidate>, bool) {
        let mut list: Vec<Candidate> = self
            .kept
            .into_sorted_vec()
            .into_iter()
            .map(|c| c.0)
            .collect();
        let more = list.len() > self.limit;
        list.truncate(self.limit);
        (list, more)
    }
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

    #[test]
    fn the_first_in_order_are_the_sorted_list_cut_at_the_limit() {
        // Ties on due time, priority and age, so the ticket number decides
        // too; pushed in a scrambled order.
        let dues = [
            None,
            Some("2026-03-02T10:00:00Z"),
            Some("2026-03-02T12:00:00Z"),
        ];
        let prios = [Priority::Low, Priority::High];
        let ages = ["2026-03-01T00:00:00Z", "2026-02-01T00:00:00Z"];
        let mut all = Vec::new();
        for id in 0..40u64 {
            let k = (id * 17) % 40;
            all.push(c(
                id,
                dues[(k % 3) as usize],
                prios[(k / 3 % 2) as usize],
                ages[(k / 6 % 2) as usize],
            ));
        }
        let sorted = order(all.clone());
        for limit in [0, 1, 5, 39, 40, 41, 100] {
            let mut first = FirstInOrder::new(limit);
            for x in all.iter().rev() {
                first.push(x.clone());
            }
            let (got, more) = first.finish();
            assert_eq!(got, sorted[..limit.min(40)], "limit {limit}");
            assert_eq!(more, limit < 40, "limit {limit}");
        }
        assert_eq!(FirstInOrder::new(usize::MAX).finish(), (vec![], false));
    }
}
