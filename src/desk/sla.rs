//! Service-level targets: first response and resolution, per priority, in a
//! business-hours calendar, paused while a ticket waits on the customer.
//!
//! Pure. Deadlines are computed from the ticket's stored timestamps (creation,
//! first response, resolution, pauses), never from in-memory timers, and
//! every action records a mark on the ticket when it fires: after a restart,
//! or a daemon that was down while a deadline passed, each due action fires
//! exactly once.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::config::calendar::Calendar;
use crate::config::sla::{SlaPolicy, Timers};
use crate::store::records::{Status, Ticket};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    FirstResponse,
    Resolution,
}

impl Target {
    pub fn key(self) -> &'static str {
        match self {
            Target::FirstResponse => "first_response",
            Target::Resolution => "resolution",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TargetState {
    /// Done (first response sent / resolved); `late` when after the due time.
    Met {
        at: DateTime<Utc>,
        late: bool,
    },
    Running,
    /// The clock stands still: the ticket waits on the customer.
    Paused,
    Breached,
    /// The ticket was resolved, closed or merged before this target was
    /// met: its clock stopped then, so it can never breach afterwards;
    /// `late` when it stopped after the due time.
    Stopped {
        at: DateTime<Utc>,
        late: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub target: Target,
    pub policy: String,
    pub target_minutes: i64,
    pub due: Option<DateTime<Utc>>,
    pub warn_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub state: TargetState,
}

/// When `share` of `target` working time has passed since `start`, skipping
/// the ticket's pauses. `None` when the clock is paused before that point.
fn deadline(
    cal: &Calendar,
    start: DateTime<Utc>,
    target: Duration,
    share: f64,
    t: &Ticket,
) -> Option<DateTime<Utc>> {
    let mut left =
        Duration::milliseconds((target.num_milliseconds() as f64 * share).round() as i64);
    let mut cursor = start;
    for p in &t.pauses {
        if p.end.is_some_and(|e| e <= cursor) {
            continue;
        }
        if p.start > cursor {
            let at = cal.add_business(cursor, left)?;
            if at <= p.start {
                return Some(at);
            }
            left -= cal.business_time(cursor, p.start);
        }
        cursor = p.end?;
    }
    cal.add_business(cursor, left)
}

/// A resolved, closed or merged ticket: its clocks have stopped, whatever
/// was not met by then never breaches later.
fn finished(t: &Ticket) -> bool {
    t.status.is_finished() || t.merged_into.is_some()
}

/// The state of each target this ticket has under `policy`.
pub fn status(t: &Ticket, policy: &SlaPolicy, now: DateTime<Utc>) -> Vec<TargetStatus> {
    let mut out = Vec::new();
    for (target, table, done) in [
        (
            Target::FirstResponse,
            &policy.first_response,
            t.first_response_at,
        ),
        (Target::Resolution, &policy.resolution, t.resolved_at),
    ] {
        let Some(&goal) = table.get(&t.priority) else {
            continue;
        };
        let due = deadline(&policy.calendar, t.created_at, goal, 1.0, t);
        let warn_at = deadline(
            &policy.calendar,
            t.created_at,
            goal,
            policy.warn_at_percent as f64 / 100.0,
            t,
        );
        let state = match (done, due) {
            (Some(at), due) => TargetState::Met {
                at,
                late: due.is_some_and(|d| at > d),
            },
            (None, due) if finished(t) => {
                let at = t.resolved_at.unwrap_or(t.updated_at);
                TargetState::Stopped {
                    at,
                    late: due.is_some_and(|d| at > d),
                }
            }
            (None, None) => TargetState::Paused,
            (None, Some(d)) if now >= d => TargetState::Breached,
            (None, Some(_)) if t.status == Status::Waiting => TargetState::Paused,
            (None, Some(_)) => TargetState::Running,
        };
        out.push(TargetStatus {
            target,
            policy: policy.name.clone(),
            target_minutes: goal.num_minutes(),
            due,
            warn_at,
            state,
        });
    }
    out
}

/// Something the timers must do to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Warn(Target),
    Breach(Target),
    RemindWaiting,
    CloseWaiting,
    CloseResolved,
}

impl Action {
    /// The mark recorded on the ticket when the action fires.
    pub fn mark(&self) -> String {
        match self {
            Action::Warn(t) => format!("warn:{}", t.key()),
            Action::Breach(t) => format!("breach:{}", t.key()),
            Action::RemindWaiting => "waiting:remind".into(),
            Action::CloseWaiting => "waiting:close".into(),
            Action::CloseResolved => "resolved:close".into(),
        }
    }
}

fn after(t: DateTime<Utc>, d: StdDuration) -> DateTime<Utc> {
    t + Duration::from_std(d).unwrap_or(Duration::days(36500))
}

/// What is due now and has not fired yet, in the order it should happen.
pub fn due_actions(
    t: &Ticket,
    policy: Option<&SlaPolicy>,
    timers: &Timers,
    now: DateTime<Utc>,
) -> Vec<Action> {
    if t.status == Status::Closed || t.merged_into.is_some() {
        return Vec::new();
    }
    let mut acts = Vec::new();
    if let Some(p) = policy {
        for s in status(t, p, now) {
            if !matches!(s.state, TargetState::Running | TargetState::Breached) {
                continue;
            }
            if s.warn_at.is_some_and(|w| now >= w) {
                acts.push(Action::Warn(s.target));
            }
            if s.state == TargetState::Breached {
                acts.push(Action::Breach(s.target));
            }
        }
    }
    match (t.status, t.waiting_since, t.resolved_at) {
        (Status::Waiting, Some(since), _) => {
            if now >= after(since, timers.waiting_reminder_after) {
                acts.push(Action::RemindWaiting);
            }
            if now >= after(since, timers.waiting_close_after) {
                acts.push(Action::CloseWaiting);
            }
        }
        (Status::Resolved, _, Some(at)) if now >= after(at, timers.resolved_close_after) => {
            acts.push(Action::CloseResolved)
        }
        _ => {}
    }
    acts.retain(|a| !t.fired.contains(&a.mark()));
    acts
}

/// The earliest time at which [`due_actions`] will have something to do for
/// this ticket (a warning, a breach, a reminder, a closing not yet fired);
/// `None` when nothing will ever be due unless the ticket changes. The timer
/// index is keyed by this, so a timer pass reads only the tickets due.
pub fn next_due(t: &Ticket, policy: Option<&SlaPolicy>, timers: &Timers) -> Option<DateTime<Utc>> {
    if t.status == Status::Closed || t.merged_into.is_some() {
        return None;
    }
    let unfired = |a: Action| !t.fired.contains(&a.mark());
    let mut times: Vec<DateTime<Utc>> = Vec::new();
    if let Some(p) = policy {
        // The state as of the ticket's own last change: whatever is met or
        // paused then stays so until the ticket changes (and is re-indexed).
        for s in status(t, p, t.updated_at) {
            if !matches!(s.state, TargetState::Running | TargetState::Breached) {
                continue;
            }
            if let Some(w) = s.warn_at.filter(|_| unfired(Action::Warn(s.target))) {
                times.push(w);
            }
            if let Some(d) = s.due.filter(|_| unfired(Action::Breach(s.target))) {
                times.push(d);
            }
        }
    }
    match (t.status, t.waiting_since, t.resolved_at) {
        (Status::Waiting, Some(since), _) => {
            if unfired(Action::RemindWaiting) {
                times.push(after(since, timers.waiting_reminder_after));
            }
            if unfired(Action::CloseWaiting) {
                times.push(after(since, timers.waiting_close_after));
            }
        }
        (Status::Resolved, _, Some(at)) if unfired(Action::CloseResolved) => {
            times.push(after(at, timers.resolved_close_after))
        }
        _ => {}
    }
    times.into_iter().min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::calendar::{parse_windows, BusinessHours};
    use crate::mail::address::{EmailAddress, Party};
    use crate::store::records::Priority;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ticket(created: &str) -> Ticket {
        let at = utc(created);
        Ticket::new(
            1,
            "s".into(),
            Party {
                name: None,
                address: EmailAddress::parse("a@b.c").unwrap(),
            },
            "m",
            at,
        )
    }

    fn policy(calendar: Calendar) -> SlaPolicy {
        SlaPolicy {
            name: "std".into(),
            calendar,
            first_response: [(Priority::Normal, Duration::hours(4))]
                .into_iter()
                .collect(),
            resolution: [(Priority::Normal, Duration::hours(16))]
                .into_iter()
                .collect(),
            warn_at_percent: 80,
        }
    }

    fn office() -> Calendar {
        let mut week: [Vec<_>; 7] = Default::default();
        for d in week.iter_mut().take(5) {
            *d = parse_windows("09:00-17:00").unwrap();
        }
        Calendar::Business(Box::new(BusinessHours::new(
            chrono_tz::UTC,
            week,
            Default::default(),
        )))
    }

    #[test]
    fn due_and_warning_times_in_business_hours() {
        let t = ticket("2026-03-06T15:00:00Z"); // Friday 15:00
        let s = status(&t, &policy(office()), utc("2026-03-06T15:00:00Z"));
        let fr = &s[0];
        assert_eq!(
            fr.due,
            Some(utc("2026-03-09T11:00:00Z")),
            "2h Friday + 2h Monday"
        );
        // 80% of 4h = 3h12m: 2h Friday + 1h12m Monday.
        assert_eq!(fr.warn_at, Some(utc("2026-03-09T10:12:00Z")));
        assert_eq!(fr.state, TargetState::Running);
    }

    #[test]
    fn waiting_pauses_the_clock_and_a_reply_resumes_it() {
        let mut t = ticket("2026-03-02T09:00:00Z"); // Monday
        t.set_status(Status::Waiting, utc("2026-03-02T10:00:00Z"));
        let p = policy(Calendar::Always);
        let s = status(&t, &p, utc("2026-03-02T20:00:00Z"));
        assert_eq!(s[0].state, TargetState::Paused, "no breach while waiting");
        assert_eq!(s[0].due, None);
        assert!(due_actions(
            &t,
            Some(&p),
            &Timers::default(),
            utc("2026-03-02T20:00:00Z")
        )
        .is_empty());
        t.set_status(Status::Open, utc("2026-03-02T12:00:00Z"));
        // 1h used before the pause; 3h left from 12:00.
        let s = status(&t, &p, utc("2026-03-02T12:00:00Z"));
        assert_eq!(s[0].due, Some(utc("2026-03-02T15:00:00Z")));
    }

    #[test]
    fn each_action_fires_once_even_when_overdue_for_long() {
        let mut t = ticket("2026-03-02T09:00:00Z");
        let p = policy(Calendar::Always);
        let much_later = utc("2026-03-05T09:00:00Z");
        let acts = due_actions(&t, Some(&p), &Timers::default(), much_later);
        assert_eq!(
            acts,
            vec![
                Action::Warn(Target::FirstResponse),
                Action::Breach(Target::FirstResponse),
                Action::Warn(Target::Resolution),
                Action::Breach(Target::Resolution)
            ]
        );
        t.fired = acts.iter().map(Action::mark).collect();
        assert!(
            due_actions(&t, Some(&p), &Timers::default(), much_later).is_empty(),
            "never twice"
        );
    }

    #[test]
    fn met_targets_fire_nothing_and_say_if_late() {
        let mut t = ticket("2026-03-02T09:00:00Z");
        t.first_response_at = Some(utc("2026-03-02T14:00:00Z"));
        let s = status(&t, &policy(Calendar::Always), utc("2026-03-02T15:00:00Z"));
        assert_eq!(
            s[0].state,
            TargetState::Met {
                at: utc("2026-03-02T14:00:00Z"),
                late: true
            }
        );
    }

    #[test]
    fn waiting_reminder_then_close_and_resolved_close() {
        let mut t = ticket("2026-03-02T09:00:00Z");
        let timers = Timers::default();
        t.set_status(Status::Waiting, utc("2026-03-02T10:00:00Z"));
        assert_eq!(
            due_actions(&t, None, &timers, utc("2026-03-05T10:00:00Z")),
            vec![Action::RemindWaiting]
        );
        assert_eq!(
            due_actions(&t, None, &timers, utc("2026-03-09T10:00:00Z")),
            vec![Action::RemindWaiting, Action::CloseWaiting]
        );
        t.set_status(Status::Resolved, utc("2026-03-03T10:00:00Z"));
        assert_eq!(
            due_actions(&t, None, &timers, utc("2026-03-06T10:00:00Z")),
            vec![Action::CloseResolved]
        );
        t.set_status(Status::Closed, utc("2026-03-06T10:00:00Z"));
        assert!(due_actions(&t, None, &timers, utc("2026-04-01T10:00:00Z")).is_empty());
    }

    #[test]
    fn finished_and_merged_tickets_stop_their_clocks() {
        let p = policy(Calendar::Always);
        let much_later = utc("2026-03-09T09:00:00Z");
        // Closed within the hour, never answered: no target may breach later.
        let mut closed = ticket("2026-03-02T09:00:00Z");
        closed.set_status(Status::Closed, utc("2026-03-02T10:00:00Z"));
        let mut resolved = ticket("2026-03-02T09:00:00Z");
        resolved.set_status(Status::Resolved, utc("2026-03-02T10:00:00Z"));
        let mut merged = ticket("2026-03-02T09:00:00Z");
        merged.merged_into = Some(7);
        merged.set_status(Status::Closed, utc("2026-03-02T10:00:00Z"));
        for t in [&closed, &resolved, &merged] {
            for s in status(t, &p, much_later) {
                assert!(
                    matches!(
                        s.state,
                        TargetState::Met { late: false, .. }
                            | TargetState::Stopped { late: false, .. }
                    ),
                    "{:?} {:?}: {:?}",
                    t.status,
                    s.target,
                    s.state
                );
            }
            assert!(due_actions(t, Some(&p), &Timers::default(), much_later)
                .iter()
                .all(|a| !matches!(a, Action::Warn(_) | Action::Breach(_))));
        }
        // Closed after the first response was due: stopped, and late.
        let mut late = ticket("2026-03-02T09:00:00Z");
        late.set_status(Status::Closed, utc("2026-03-02T15:00:00Z"));
        let s = status(&late, &p, much_later);
        assert_eq!(
            s[0].state,
            TargetState::Stopped {
                at: utc("2026-03-02T15:00:00Z"),
                late: true
            }
        );
    }
}
