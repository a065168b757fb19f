//! What a report holds: its rows, their figures, the escalations and where
//! the time went, as the CLI, the digests and `--json` show them. Computing
//! them is `report`'s (`mod.rs`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::figures::Summary;
use super::GroupBy;
use crate::desk::sla::Target;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub by: Option<GroupBy>,
    /// One row per group, by key, for each group with a figure in the
    /// period or a backlog at its end; empty without `by`.
    pub groups: Vec<Group>,
    pub total: Group,
    pub escalations: Vec<Escalations>,
    pub effort: EffortReport,
}

/// The figures of one group of tickets (or of all).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub key: String,
    pub created: u64,
    pub resolved: u64,
    pub closed: u64,
    pub reopened: u64,
    /// Reopened / resolved in the period; `None` when nothing was resolved.
    pub reopen_rate: Option<f64>,
    /// Unfinished at the end of the period.
    pub backlog: u64,
    /// The backlog by age at the end of the period (`figures::AGE_BUCKET_NAMES`).
    pub backlog_age: [u64; 5],
    pub first_response: Times,
    pub resolution: Times,
    pub sla: Vec<SlaFigures>,
    pub effort_minutes: u64,
}

/// A time to something, in working time on the ticket's calendar (waits on
/// the customer left out) and on the wall clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Times {
    pub business: Summary,
    pub wall: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaFigures {
    pub target: Target,
    pub met: u64,
    pub breached: u64,
    pub running: u64,
    /// Met / (met + breached); `None` when none is decided yet.
    pub share_met: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalations {
    /// "L1->L2"; "-" stands for a team without a configured tier.
    pub transition: String,
    pub count: u64,
    /// Each reason given, with how often.
    pub reasons: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EffortReport {
    pub total_minutes: u64,
    pub by_agent: Vec<Share>,
    pub by_team: Vec<Share>,
    pub by_tier: Vec<Share>,
    /// A ticket's minutes count for each of its tags, so shares may add up
    /// to more than 1.
    pub by_tag: Vec<Share>,
    /// The tickets with the most time booked, most first (at most 50).
    pub by_ticket: Vec<Share>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub key: String,
    pub minutes: u64,
    /// Of the total minutes booked in the period.
    pub share: f64,
}
