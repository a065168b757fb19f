//! The managers' views behind `report`, `board`, `tickets next` and
//! `tickets search`: each reads the store and hands the records to the pure
//! code in `desk` (report, board, next).

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::store::records::{Status, Ticket, TicketId};
use crate::store::StoreError;

/// Reads every ticket with its trail: a report is computed from the
/// stored events (no sampling, no cache that could drift from them).
pub(crate) fn report(
    engine: &Engine,
    spec: &crate::desk::report::Spec,
) -> Result<crate::desk::report::Report, StoreError> {
    let store = engine.store();
    let policy = engine.policy();
    let mut b = crate::desk::report::Builder::new(&policy, spec);
    for t in store.tickets() {
        let ticket = t?;
        if !b.wants(&ticket) {
            continue;
        }
        let events = store.events(ticket.id)?;
        b.add(&crate::desk::report::Record { ticket, events });
    }
    Ok(b.finish())
}

/// Whether a ticket belongs to the asked team and agent (either may be absent).
fn belongs(t: &Ticket, team: Option<&str>, agent: Option<&str>) -> bool {
    team.is_none_or(|x| t.team.as_deref() == Some(x))
        && agent.is_none_or(|x| {
            t.assignee
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(x))
        })
}

pub(crate) fn board(
    engine: &Engine,
    team: Option<&str>,
    agent: Option<&str>,
) -> Result<crate::desk::board::Board, StoreError> {
    use crate::desk::board::{self, Facts};
    let store = engine.store();
    let policy = engine.policy();
    let now = engine.now();
    let mut placed = Vec::new();
    for t in store.tickets() {
        let t = t?;
        if t.status == Status::Closed || t.merged_into.is_some() || !belongs(&t, team, agent) {
            continue;
        }
        let events = store.events(t.id)?;
        // Only an open ticket can be a follow-up: read its mail only then.
        let follow_up =
            t.status == Status::Open && board::follow_up(&policy, &store.messages(t.id)?, &events);
        let facts = Facts {
            ticket: &t,
            escalated: board::escalated(&events),
            follow_up,
        };
        if let Some(lane) = board::lane_of(&policy, &facts, now) {
            placed.push((lane, board::card(&policy, &t, now)));
        }
    }
    Ok(board::board(placed, now))
}

pub(crate) fn next(
    engine: &Engine,
    team: Option<&str>,
    agent: Option<&str>,
    limit: usize,
) -> Result<(Vec<crate::desk::next::Candidate>, bool), StoreError> {
    use crate::desk::next;
    let policy = engine.policy();
    let now = engine.now();
    let mut cands = Vec::new();
    for t in engine.store().tickets() {
        let t = t?;
        if next::actionable(&t) && belongs(&t, team, agent) {
            cands.push(next::candidate(&t, policy.sla(t.sla.as_deref()), now));
        }
    }
    let mut tickets = next::order(cands);
    let more = tickets.len() > limit;
    tickets.truncate(limit);
    Ok((tickets, more))
}

/// Longest excerpt shown around a match, in characters either side.
const EXCERPT: usize = 40;

pub(crate) fn search(
    engine: &Engine,
    text: &str,
    limit: usize,
) -> Result<(Vec<SearchHit>, bool), StoreError> {
    let store = engine.store();
    let needle = text.to_lowercase();
    let mut hits = Vec::new();
    let mut more = false;
    if needle.trim().is_empty() {
        return Ok((hits, more));
    }
    for t in store.tickets_newest_first() {
        let t = t?;
        let requester = t.requester.display();
        let found = if t.subject.to_lowercase().contains(&needle) {
            Some(("subject", None))
        } else if requester.to_lowercase().contains(&needle) {
            Some(("requester", None))
        } else {
            store
                .messages(t.id)?
                .iter()
                .find_map(|m| excerpt(&m.text, &needle))
                .map(|x| ("message", Some(x)))
        };
        let Some((found_in, excerpt)) = found else {
            continue;
        };
        if hits.len() >= limit {
            more = true;
            break;
        }
        hits.push(SearchHit {
            id: t.id,
            subject: t.subject,
            status: t.status,
            requester,
            updated_at: t.updated_at,
            found_in: found_in.into(),
            excerpt,
        });
    }
    Ok((hits, more))
}

/// The text around the first case-insensitive match of `needle` (already
/// lower case), on one line.
pub(crate) fn excerpt(text: &str, needle: &str) -> Option<String> {
    let lower: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let chars: Vec<char> = text.chars().collect();
    let n: Vec<char> = needle.chars().collect();
    // Lower-casing can change lengths (rarely); then match on the text alone.
    let hay = if lower.len() == chars.len() {
        &lower
    } else {
        &chars
    };
    let at = hay.windows(n.len()).position(|w| w == n.as_slice())?;
    let start = at.saturating_sub(EXCERPT);
    let end = (at + n.len() + EXCERPT).min(chars.len());
    let mut s: String = chars[start..end]
        .iter()
        .map(|&c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    if start > 0 {
        s.insert(0, '…');
    }
    if end < chars.len() {
        s.push('…');
    }
    Some(s)
}

/// A ticket `tickets search` found, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub id: TicketId,
    pub subject: String,
    pub status: Status,
    pub requester: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// "subject", "requester" or "message".
    pub found_in: String,
    /// The text around the first match (messages only).
    pub excerpt: Option<String>,
}
