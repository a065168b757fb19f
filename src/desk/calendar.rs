//! Business-hours arithmetic on the configured calendars (`config::calendar`):
//! how much working time lies between two instants, and when a given amount
//! of working time will have passed. Pure; local
//! times are read in the calendar's time zone, so daylight-saving changes and
//! holidays fall where people expect them.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::config::calendar::{BusinessHours, Calendar};

/// Far enough to find the next working minute of any sane calendar; a bound
/// so a calendar with (almost) no hours can never loop forever.
const MAX_DAYS: i64 = 3 * 366;

impl BusinessHours {
    /// A local time to UTC; inside a DST gap the window starts when the clock resumes.
    fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => self.to_utc(local + Duration::hours(1)),
        }
    }

    /// The working windows of one local date, as UTC intervals.
    fn windows(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        self.week[date.weekday().num_days_from_monday() as usize]
            .iter()
            .map(|&(s, e)| (self.to_utc(date.and_time(s)), self.to_utc(date.and_time(e))))
            .filter(|(s, e)| e > s)
            .collect()
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }
}

impl Calendar {
    /// Working time between `a` and `b` (zero when `b <= a`).
    pub fn business_time(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        if b <= a {
            return Duration::zero();
        }
        match self {
            Calendar::Always => b - a,
            Calendar::Business(h) => {
                let mut total = Duration::zero();
                // One day before, for windows that start the previous local day.
                let mut date = h.local_date(a) - Duration::days(1);
                let last = h.local_date(b);
                while date <= last {
                    for (s, e) in h.windows(date) {
                        let (s, e) = (s.max(a), e.min(b));
                        if e > s {
                            total += e - s;
                        }
                    }
                    date += Duration::days(1);
                }
                total
            }
        }
    }

    /// The instant at which `d` of working time has passed after `a`.
    /// `None` only for a calendar with no working time within years.
    pub fn add_business(&self, a: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
        match self {
            Calendar::Always => Some(a + d),
            Calendar::Business(h) => {
                let mut left = d;
                let mut date = h.local_date(a) - Duration::days(1);
                for _ in 0..MAX_DAYS {
                    for (s, e) in h.windows(date) {
                        let s = s.max(a);
                        if e <= s {
                            continue;
                        }
                        if e - s >= left {
                            return Some(s + left);
                        }
                        left -= e - s;
                    }
                    date += Duration::days(1);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::calendar::parse_windows;
    use chrono::NaiveTime;
    use std::collections::BTreeSet;

    fn office(tz: &str) -> Calendar {
        let day = parse_windows("09:00-17:00").unwrap();
        let mut week: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
        for d in week.iter_mut().take(5) {
            *d = day.clone();
        }
        Calendar::Business(BusinessHours {
            tz: tz.parse().unwrap(),
            week,
            holidays: ["2026-12-25"].iter().map(|d| d.parse().unwrap()).collect(),
        })
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_parse() {
        assert_eq!(parse_windows("09:00-12:00, 13:00-17:00").unwrap().len(), 2);
        assert!(parse_windows("").unwrap().is_empty());
        assert!(parse_windows("17:00-09:00").is_err());
        assert!(parse_windows("9-5").is_err());
        assert!(parse_windows("09:00-12:00,11:00-13:00").is_err());
    }

    #[test]
    fn friday_afternoon_to_monday_morning_skips_the_weekend() {
        let cal = office("UTC");
        // Friday 2026-03-06 16:00 UTC + 4 working hours = Monday 12:00.
        let due = cal
            .add_business(utc("2026-03-06T16:00:00Z"), Duration::hours(4))
            .unwrap();
        assert_eq!(due, utc("2026-03-09T12:00:00Z"));
        assert_eq!(
            cal.business_time(utc("2026-03-06T16:00:00Z"), due),
            Duration::hours(4)
        );
        // Saturday counts nothing.
        assert_eq!(
            cal.business_time(utc("2026-03-07T00:00:00Z"), utc("2026-03-08T23:59:00Z")),
            Duration::zero()
        );
    }

    #[test]
    fn a_mail_at_night_starts_the_clock_in_the_morning() {
        let cal = office("UTC");
        let due = cal
            .add_business(utc("2026-03-03T22:00:00Z"), Duration::minutes(30))
            .unwrap();
        assert_eq!(due, utc("2026-03-04T09:30:00Z"));
    }

    #[test]
    fn holidays_are_skipped() {
        let cal = office("UTC");
        // Thursday 24 Dec 16:00 + 2h: one hour on the 24th, the 25th is a holiday, one hour on the 28th (Monday).
        let due = cal
            .add_business(utc("2026-12-24T16:00:00Z"), Duration::hours(2))
            .unwrap();
        assert_eq!(due, utc("2026-12-28T10:00:00Z"));
    }

    #[test]
    fn daylight_saving_change_keeps_local_office_hours() {
        // Berlin moves from UTC+1 to UTC+2 on Sunday 2026-03-29.
        let cal = office("Europe/Berlin");
        // Friday 27 March, 16:00 local = 15:00 UTC; 2 working hours: one on Friday, one on Monday 09:00-10:00 local = 07:00-08:00 UTC.
        let due = cal
            .add_business(utc("2026-03-27T15:00:00Z"), Duration::hours(2))
            .unwrap();
        assert_eq!(due, utc("2026-03-30T08:00:00Z"));
        // A full working day before and after the change is 8 hours either way.
        assert_eq!(
            cal.business_time(utc("2026-03-27T00:00:00Z"), utc("2026-03-28T00:00:00Z")),
            Duration::hours(8)
        );
        assert_eq!(
            cal.business_time(utc("2026-03-30T00:00:00Z"), utc("2026-03-31T00:00:00Z")),
            Duration::hours(8)
        );
    }

    #[test]
    fn round_the_clock() {
        let a = utc("2026-03-07T10:00:00Z");
        assert_eq!(
            Calendar::Always.add_business(a, Duration::hours(5)),
            Some(a + Duration::hours(5))
        );
        assert_eq!(
            Calendar::Always.business_time(a, a + Duration::hours(5)),
            Duration::hours(5)
        );
    }

    #[test]
    fn a_calendar_without_hours_ends() {
        let cal = Calendar::Business(BusinessHours {
            tz: chrono_tz::UTC,
            week: Default::default(),
            holidays: BTreeSet::new(),
        });
        assert_eq!(
            cal.add_business(utc("2026-03-07T10:00:00Z"), Duration::hours(1)),
            None
        );
    }
}
