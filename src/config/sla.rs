//! SLA policies and lifecycle timers in their checked form: targets per
//! priority on a calendar. What they mean for a ticket is the desk's
//! (`desk::sla`).

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::Duration;

use crate::config::calendar::Calendar;
use crate::store::records::Priority;

#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicy {
    pub name: String,
    pub calendar: Calendar,
    pub first_response: BTreeMap<Priority, Duration>,
    pub resolution: BTreeMap<Priority, Duration>,
    /// Warn at this share of a target (percent).
    pub warn_at_percent: u32,
}

/// Lifecycle timers for waiting and resolved tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timers {
    pub check_interval: StdDuration,
    pub waiting_reminder_after: StdDuration,
    pub waiting_close_after: StdDuration,
    pub resolved_close_after: StdDuration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            check_interval: StdDuration::from_secs(30),
            waiting_reminder_after: StdDuration::from_secs(3 * 86400),
            waiting_close_after: StdDuration::from_secs(7 * 86400),
            resolved_close_after: StdDuration::from_secs(3 * 86400),
        }
    }
}
