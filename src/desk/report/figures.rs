//! The arithmetic of a report, each rule once: percentiles, backlog age
//! buckets, working time with the customer's waits left out, and the tier a
//! team stands at. Pure.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::config::calendar::Calendar;
use crate::config::Tier;
use crate::desk::policy::Policy;
use crate::store::records::{Pause, Ticket};

/// Median, 90th percentile and mean of a set of durations, in seconds.
/// Percentiles are nearest-rank (the smallest value with at least that share
/// of the values at or below it), so every figure is a duration that
/// actually occurred.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub median_secs: Option<i64>,
    pub p90_secs: Option<i64>,
    pub mean_secs: Option<i64>,
}

impl Summary {
    pub fn of(mut secs: Vec<i64>) -> Summary {
        if secs.is_empty() {
            return Summary::default();
        }
        secs.sort_unstable();
        let n = secs.len();
        let rank = |p: usize| secs[(n * p).div_ceil(100).max(1) - 1];
        let sum: i128 = secs.iter().map(|&s| s as i128).sum();
        Summary {
            count: n as u64,
            median_secs: Some(rank(50)),
            p90_secs: Some(rank(90)),
            mean_secs: Some((sum / n as i128) as i64),
        }
    }
}

/// The upper bounds (exclusive) of the backlog age buckets, in days; the
/// last bucket is everything older.
pub const AGE_BUCKET_DAYS: [i64; 4] = [1, 3, 7, 30];
pub const AGE_BUCKET_NAMES: [&str; 5] = ["<1d", "1-3d", "3-7d", "7-30d", ">=30d"];

/// Which backlog age bucket an age falls in.
pub fn age_bucket(age: Duration) -> usize {
    AGE_BUCKET_DAYS
        .iter()
        .position(|&d| age < Duration::days(d))
        .unwrap_or(AGE_BUCKET_DAYS.len())
}

/// Working time on `cal` from `a` to `b`, less the working time the ticket
/// spent waiting on the customer (its pauses) in between: the same clock
/// the SLA targets run on (`desk::sla`), measured instead of projected.
pub fn working_time(
    cal: &Calendar,
    pauses: &[Pause],
    a: DateTime<Utc>,
    b: DateTime<Utc>,
) -> Duration {
    let mut total = cal.business_time(a, b);
    for p in pauses {
        let start = p.start.max(a);
        let end = p.end.unwrap_or(b).min(b);
        total -= cal.business_time(start, end);
    }
    total.max(Duration::zero())
}

/// The calendar a ticket's times are measured on: its SLA policy's, or
/// round the clock when it has none.
pub fn calendar_of<'a>(policy: &'a Policy, t: &Ticket) -> &'a Calendar {
    static ALWAYS: Calendar = Calendar::Always;
    policy
        .sla(t.sla.as_deref())
        .map(|p| &p.calendar)
        .unwrap_or(&ALWAYS)
}

/// The tier of a team, as configured; `None` for no team or one the
/// configuration no longer has.
pub fn tier_of(policy: &Policy, team: Option<&str>) -> Option<Tier> {
    team.and_then(|n| policy.team(n)).map(|t| t.tier)
}

pub fn tier_name(t: Option<Tier>) -> &'static str {
    match t {
        Some(Tier::L1) => "L1",
        Some(Tier::L2) => "L2",
        Some(Tier::L3) => "L3",
        None => "-",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Summary::of(vec![50, 10, 40, 20, 30]);
        assert_eq!(s.count, 5);
        assert_eq!(s.median_secs, Some(30));
        assert_eq!(s.p90_secs, Some(50));
        assert_eq!(s.mean_secs, Some(30));
        let s = Summary::of((1..=10).collect());
        assert_eq!((s.median_secs, s.p90_secs), (Some(5), Some(9)));
        assert_eq!(Summary::of(vec![]), Summary::default());
    }

    #[test]
    fn age_buckets_have_exclusive_upper_bounds() {
        assert_eq!(age_bucket(Duration::hours(23)), 0);
        assert_eq!(age_bucket(Duration::days(1)), 1);
        assert_eq!(age_bucket(Duration::days(6)), 2);
        assert_eq!(age_bucket(Duration::days(29)), 3);
        assert_eq!(age_bucket(Duration::days(400)), 4);
    }

    #[test]
    fn waits_are_left_out_of_working_time() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let pauses = [
            Pause {
                start: t("2026-03-02T10:00:00Z"),
                end: Some(t("2026-03-02T12:00:00Z")),
            },
            Pause {
                start: t("2026-03-02T15:00:00Z"),
                end: None,
            },
        ];
        let w = working_time(
            &Calendar::Always,
            &pauses,
            t("2026-03-02T09:00:00Z"),
            t("2026-03-02T16:00:00Z"),
        );
        assert_eq!(w, Duration::hours(4));
    }
}
