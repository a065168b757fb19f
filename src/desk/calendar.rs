//! Business-hours arithmetic on the configured calendars (`config::calendar`):
//! how much working time lies between two instants, and when a given amount
//! of working time will have passed. Pure; local
//! times are read in the calendar's time zone, so daylight-saving changes and
//! holidays fall where people expect them.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::config::calendar::{BusinessHours, Calendar, WorkedYear};

/// Far enough to find the next working minute of any sane calendar; a bound
/// so a calendar with (almost) no hours can never loop forever.
const MAX_DAYS: i64 = 3 * 366;

/// The local dates at the start of a span that are walked window by window
/// (the day before `a`'s, for windows that start the previous local day,
/// `a`'s own and the next): after them every window lies wholly after `a`.
const EDGE_DAYS: i64 = 3;

/// Spans of more local dates than this add up the dates between their edges
/// from the per-year totals; shorter ones are walked day by day.
const WALK_DAYS: i64 = 4;

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
    fn windows(&self, date: NaiveDate) -> Cow<'_, [(DateTime<Utc>, DateTime<Utc>)]> {
        match self.year(date.year()) {
            Some(y) => {
                let day = date.ordinal0() as usize;
                let (from, to) = (y.starts[day] as usize, y.starts[day + 1] as usize);
                Cow::Borrowed(&y.windows[from..to])
            }
            None => Cow::Owned(self.windows_of(date)),
        }
    }

    /// [`Self::windows`] computed through the time zone.
    fn windows_of(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        self.week[date.weekday().num_days_from_monday() as usize]
            .iter()
            .map(|&(s, e)| (self.to_utc(date.and_time(s)), self.to_utc(date.and_time(e))))
            .filter(|(s, e)| e > s)
            .collect()
    }

    /// The windows and totals of `year`, computed once; `None` outside the
    /// years kept.
    fn year(&self, year: i32) -> Option<&WorkedYear> {
        let cell = self.worked.year(year)?;
        Some(cell.get_or_init(|| {
            let (mut starts, mut windows, mut before) = (vec![0u32], Vec::new(), vec![0i64]);
            let mut date = NaiveDate::from_yo_opt(year, 1);
            while let Some(d) = date.filter(|d| d.year() == year) {
                let day = self.windows_of(d);
                let secs: i64 = day.iter().map(|(s, e)| (*e - *s).num_seconds()).sum();
                windows.extend(day);
                starts.push(u32::try_from(windows.len()).unwrap_or(u32::MAX));
                before.push(before.last().copied().unwrap_or(0) + secs);
                date = d.succ_opt();
            }
            WorkedYear {
                starts: starts.into(),
                windows: windows.into(),
                before: before.into(),
            }
        }))
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// Working time of the dates `first..=last` that lies between `a` and `b`.
    fn walked(
        &self,
        first: NaiveDate,
        last: NaiveDate,
        a: DateTime<Utc>,
        b: DateTime<Utc>,
    ) -> Duration {
        let mut total = Duration::zero();
        let mut date = first;
        while date <= last {
            for &(s, e) in self.windows(date).iter() {
                let (s, e) = (s.max(a), e.min(b));
                if e > s {
                    total += e - s;
                }
            }
            date += Duration::days(1);
        }
        total
    }

    /// Walks `days` dates from `date` on, spending `left` of working time
    /// after `a`: the instant it runs out, or what is left after them.
    fn spend(
        &self,
        mut date: NaiveDate,
        days: i64,
        a: DateTime<Utc>,
        mut left: Duration,
    ) -> Result<DateTime<Utc>, Duration> {
        for _ in 0..days {
            for &(s, e) in self.windows(date).iter() {
                let s = s.max(a);
                if e <= s {
                    continue;
                }
                if e - s >= left {
                    return Ok(s + left);
                }
                left -= e - s;
            }
            date += Duration::days(1);
        }
        Err(left)
    }

    /// Working seconds of the whole local dates `from..until`; `None` when
    /// they reach outside the years kept.
    fn whole_days(&self, from: NaiveDate, until: NaiveDate) -> Option<i64> {
        if until <= from {
            return Some(0);
        }
        let before = |d: NaiveDate| -> Option<i64> {
            self.year(d.year())?
                .before
                .get(d.ordinal0() as usize)
                .copied()
        };
        let year_total = |y: i32| -> Option<i64> { self.year(y)?.before.last().copied() };
        if from.year() == until.year() {
            return Some(before(until)? - before(from)?);
        }
        let mut total = year_total(from.year())? - before(from)?;
        for y in from.year() + 1..until.year() {
            total += year_total(y)?;
        }
        Some(total + before(until)?)
    }

    /// Like [`Self::spend`] over the whole dates from `from` on (every
    /// window after `a`), jumping over whole days by their totals: `None`
    /// when those days reach outside the years kept (walk them instead),
    /// `Some(None)` when they hold less than `left` of working time.
    fn spend_whole_days(
        &self,
        from: NaiveDate,
        days: i64,
        a: DateTime<Utc>,
        left: Duration,
    ) -> Option<Option<DateTime<Utc>>> {
        // The first date by which `left` has been worked (and some work
        // done, for a zero `left`): whole days up to it are monotone.
        let enough = |k: i64| -> Option<bool> {
            let w = Duration::seconds(self.whole_days(from, from + Duration::days(k + 1))?);
            Some(w >= left && w > Duration::zero())
        };
        if !enough(days - 1)? {
            return Some(None);
        }
        let (mut lo, mut hi) = (0, days - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if enough(mid)? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let day = from + Duration::days(lo);
        let left = left - Duration::seconds(self.whole_days(from, day)?);
        self.spend(day, 1, a, left).ok().map(Some)
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
                let (first, last) = (h.local_date(a) - Duration::days(1), h.local_date(b));
                // The dates between the edges lie wholly between a and b:
                // their windows are counted whole, from the per-year totals.
                let (inner, after) = (first + Duration::days(EDGE_DAYS), last - Duration::days(1));
                if (last - first).num_days() > WALK_DAYS {
                    if let Some(w) = h.whole_days(inner, after) {
                        return h.walked(first, inner - Duration::days(1), a, b)
                            + Duration::seconds(w)
                            + h.walked(after, last, a, b);
                    }
                }
                h.walked(first, last, a, b)
            }
        }
    }

    /// The instant at which `d` of working time has passed after `a`.
    /// `None` only for a calendar with no working time within years.
    pub fn add_business(&self, a: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
        match self {
            Calendar::Always => Some(a + d),
            Calendar::Business(h) => {
                let first = h.local_date(a) - Duration::days(1);
                let left = match h.spend(first, EDGE_DAYS, a, d) {
                    Ok(t) => return Some(t),
                    Err(left) => left,
                };
                let from = first + Duration::days(EDGE_DAYS);
                let days = MAX_DAYS - EDGE_DAYS;
                if let Some(found) = h.spend_whole_days(from, days, a, left) {
                    return found;
                }
                h.spend(from, days, a, left).ok()
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
        Calendar::Business(Box::new(BusinessHours::new(
            tz.parse().unwrap(),
            week,
            ["2026-12-25"].iter().map(|d| d.parse().unwrap()).collect(),
        )))
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
        let cal = Calendar::Business(Box::new(BusinessHours::new(
            chrono_tz::UTC,
            Default::default(),
            BTreeSet::new(),
        )));
        assert_eq!(
            cal.add_business(utc("2026-03-07T10:00:00Z"), Duration::hours(1)),
            None
        );
    }

    /// Working time from `a` to `b`, every day's windows computed through
    /// the time zone.
    fn walked(h: &BusinessHours, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        let mut date = h.local_date(a) - Duration::days(1);
        while date <= h.local_date(b) {
            for (s, e) in h.windows_of(date) {
                if e.min(b) > s.max(a) {
                    total += e.min(b) - s.max(a);
                }
            }
            date += Duration::days(1);
        }
        total
    }

    /// When `d` of working time after `a` has passed, day by day likewise.
    fn spent(h: &BusinessHours, a: DateTime<Utc>, mut d: Duration) -> Option<DateTime<Utc>> {
        let mut date = h.local_date(a) - Duration::days(1);
        for _ in 0..MAX_DAYS {
            for (s, e) in h.windows_of(date) {
                let s = s.max(a);
                if e > s && e - s >= d {
                    return Some(s + d);
                }
                d -= (e - s).max(Duration::zero());
            }
            date += Duration::days(1);
        }
        None
    }

    /// The per-year totals give exactly what walking every day gives: over
    /// spans of hours to years, across daylight-saving changes, holidays,
    /// a split working day, year ends and both ends of the years kept.
    #[test]
    fn whole_days_from_the_year_totals_equal_the_day_by_day_walk() {
        let mut week: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
        for d in week.iter_mut().take(5) {
            *d = parse_windows("08:00-12:00, 13:00-17:30").unwrap();
        }
        week[5] = parse_windows("02:00-03:30").unwrap(); // the night of a DST change
        let holidays = ["2026-12-25", "2027-01-01", "2026-03-30"]
            .iter()
            .map(|d| d.parse().unwrap())
            .collect();
        let h = BusinessHours::new("Europe/Berlin".parse().unwrap(), week, holidays);
        let cal = Calendar::Business(Box::new(h.clone()));
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: i64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as i64
        };
        let origins = [
            utc("2026-03-25T10:00:00Z"),
            utc("2026-12-20T06:59:59Z"),
            utc("1970-01-01T00:00:00Z"),
            utc("2169-11-01T00:00:00Z"),
        ];
        for _ in 0..3000 {
            let a = origins[next(4) as usize] + Duration::seconds(next(40 * 86_400));
            let span = match next(3) {
                0 => next(86_400 * 3),
                1 => next(86_400 * 60),
                _ => next(86_400 * 800),
            };
            let b = a + Duration::seconds(span) + Duration::nanoseconds(next(1_000));
            assert_eq!(cal.business_time(a, b), walked(&h, a, b), "{a} .. {b}");
            let d = Duration::seconds(next(3) * next(86_400 * 30));
            assert_eq!(cal.add_business(a, d), spent(&h, a, d), "{a} + {d}");
        }
    }
}
