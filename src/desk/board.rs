//! The board (`deskgate board`): every ticket in hand in one lane, each lane
//! with its count and its oldest card. Which lane a ticket is in is one
//! function, [`lane_of`]; the README's command-line section lists the rules
//! in the same order.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Tier;
use crate::desk::policy::Policy;
use crate::desk::report::figures::tier_of;
use crate::desk::sla::{self, TargetState};
use crate::store::records::{
    Direction, Event, EventKind, MessageRecord, Priority, Status, Ticket, TicketId,
};

/// How long a resolved ticket stays on the board.
pub const RESOLVED_RECENT: Duration = Duration::days(7);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    New,
    Open,
    /// The requester wrote since the last agent reply.
    FollowUp,
    Waiting,
    /// Escalated, or with a team above the first tier.
    FurtherSupport,
    /// Resolved within [`RESOLVED_RECENT`].
    Resolved,
}

impl Lane {
    pub const ALL: [Lane; 6] = [
        Lane::New,
        Lane::Open,
        Lane::FollowUp,
        Lane::Waiting,
        Lane::FurtherSupport,
        Lane::Resolved,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Lane::New => "New",
            Lane::Open => "Open",
            Lane::FollowUp => "Follow-up",
            Lane::Waiting => "Waiting on customer",
            Lane::FurtherSupport => "Requires further support",
            Lane::Resolved => "Resolved (recent)",
        }
    }
}

/// What the lane rules need to know of a ticket beyond the ticket itself.
pub struct Facts<'a> {
    pub ticket: &'a Ticket,
    /// The trail has an escalation.
    pub escalated: bool,
    /// The requester wrote since the last agent reply.
    pub follow_up: bool,
}

/// The SLA state a card shows: the most pressing of the ticket's targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CardSla {
    /// No target applies (no policy, or no target for the priority).
    None,
    Breached,
    Running {
        due: DateTime<Utc>,
    },
    Paused,
    Met,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub id: TicketId,
    pub subject: String,
    pub status: Status,
    pub priority: Priority,
    pub created_at: DateTime<Utc>,
    pub assignee: Option<String>,
    pub team: Option<String>,
    pub sla: CardSla,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneView {
    pub lane: Lane,
    pub title: String,
    pub count: u64,
    /// The lane's cards, oldest first.
    pub cards: Vec<Card>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Board {
    pub at: DateTime<Utc>,
    pub lanes: Vec<LaneView>,
}

/// The lane of a ticket, `None` for one not on the board (closed, merged,
/// resolved long ago). First rule that fits: resolved, waiting, further
/// support, follow-up, new, open.
pub fn lane_of(policy: &Policy, f: &Facts<'_>, now: DateTime<Utc>) -> Option<Lane> {
    let t = f.ticket;
    if t.merged_into.is_some() {
        return None;
    }
    match t.status {
        Status::Closed => None,
        Status::Resolved => t
            .resolved_at
            .is_none_or(|at| now - at <= RESOLVED_RECENT)
            .then_some(Lane::Resolved),
        Status::Waiting => Some(Lane::Waiting),
        Status::New | Status::Open => {
            let higher = tier_of(policy, t.team.as_deref()).is_some_and(|x| x > Tier::L1);
            Some(if f.escalated || higher {
                Lane::FurtherSupport
            } else if f.follow_up {
                Lane::FollowUp
            } else if t.status == Status::New {
                Lane::New
            } else {
                Lane::Open
            })
        }
    }
}

pub fn escalated(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Escalated { .. }))
}

/// Whether the requester (anyone but the desk's agents) wrote after the
/// last reply an agent sent to the requester.
pub fn follow_up(policy: &Policy, messages: &[MessageRecord], events: &[Event]) -> bool {
    let Some(replied) = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ReplyRelayed { .. }))
        .map(|e| e.at)
        .max()
    else {
        return false;
    };
    messages.iter().any(|m| {
        m.direction == Direction::Inbound
            && m.recorded_at > replied
            && m.from.as_ref().is_some_and(|p| {
                policy.agent(&p.address).is_none() && !policy.is_own_address(&p.address)
            })
    })
}

pub fn card(policy: &Policy, t: &Ticket, now: DateTime<Utc>) -> Card {
    let targets = policy
        .sla(t.sla.as_deref())
        .map(|p| sla::status(t, p, now))
        .unwrap_or_default();
    let sla = if targets.is_empty() {
        CardSla::None
    } else if targets.iter().any(|s| s.state == TargetState::Breached) {
        CardSla::Breached
    } else if let Some(due) = targets
        .iter()
        .filter(|s| s.state == TargetState::Running)
        .filter_map(|s| s.due)
        .min()
    {
        CardSla::Running { due }
    } else if targets.iter().any(|s| s.state == TargetState::Paused) {
        CardSla::Paused
    } else {
        CardSla::Met
    };
    Card {
        id: t.id,
        subject: t.subject.clone(),
        status: t.status,
        priority: t.priority,
        created_at: t.created_at,
        assignee: t.assignee.clone(),
        team: t.team.clone(),
        sla,
    }
}

/// The board of `cards` placed in their lanes; every lane is there, empty
/// or not.
pub fn board(placed: Vec<(Lane, Card)>, now: DateTime<Utc>) -> Board {
    let mut lanes: Vec<LaneView> = Lane::ALL
        .iter()
        .map(|&lane| LaneView {
            lane,
            title: lane.title().into(),
            count: 0,
            cards: Vec::new(),
        })
        .collect();
    for (lane, card) in placed {
        if let Some(l) = lanes.iter_mut().find(|l| l.lane == lane) {
            l.count += 1;
            l.cards.push(card);
        }
    }
    for l in &mut lanes {
        l.cards.sort_by_key(|c| (c.created_at, c.id));
    }
    Board { at: now, lanes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::address::{EmailAddress, Party};

    fn ticket(status: Status) -> Ticket {
        let now = Utc::now();
        let mut t = Ticket::new(
            1,
            "s".into(),
            Party {
                name: None,
                address: EmailAddress::parse("a@b.c").unwrap(),
            },
            "help",
            now - Duration::days(1),
        );
        t.set_status(status, now - Duration::hours(1));
        t
    }

    #[test]
    fn lanes_follow_the_rules_in_order() {
        let p = Policy::for_tests(None);
        let now = Utc::now();
        let lane = |t: &Ticket, escalated, follow_up| {
            lane_of(
                &p,
                &Facts {
                    ticket: t,
                    escalated,
                    follow_up,
                },
                now,
            )
        };
        assert_eq!(lane(&ticket(Status::New), false, false), Some(Lane::New));
        assert_eq!(lane(&ticket(Status::Open), false, false), Some(Lane::Open));
        assert_eq!(
            lane(&ticket(Status::Open), false, true),
            Some(Lane::FollowUp)
        );
        assert_eq!(
            lane(&ticket(Status::Open), true, true),
            Some(Lane::FurtherSupport)
        );
        assert_eq!(
            lane(&ticket(Status::Waiting), true, true),
            Some(Lane::Waiting)
        );
        assert_eq!(
            lane(&ticket(Status::Resolved), true, false),
            Some(Lane::Resolved)
        );
        assert_eq!(lane(&ticket(Status::Closed), false, false), None);
        let mut old = ticket(Status::Open);
        old.set_status(Status::Resolved, now - Duration::days(8));
        assert_eq!(lane(&old, false, false), None, "resolved long ago");
    }
}
