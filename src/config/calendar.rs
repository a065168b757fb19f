//! A business-hours calendar as the config defines it: a time zone, working
//! windows per weekday and holidays. The arithmetic over it is the desk's
//! (`desk::calendar`).

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq)]
pub enum Calendar {
    /// Round the clock: every second counts.
    Always,
    /// Boxed: the week of windows and the cache make it large.
    Business(Box<BusinessHours>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct BusinessHours {
    pub tz: Tz,
    /// Working windows per weekday, Monday first.
    pub week: [Vec<(NaiveTime, NaiveTime)>; 7],
    pub holidays: BTreeSet<NaiveDate>,
    /// Filled in by `desk::calendar` as years are asked for.
    /// Shared by the clones of a calendar (every SLA that names it).
    pub worked: Arc<WorkedYears>,
}

impl BusinessHours {
    pub fn new(
        tz: Tz,
        week: [Vec<(NaiveTime, NaiveTime)>; 7],
        holidays: BTreeSet<NaiveDate>,
    ) -> BusinessHours {
        BusinessHours {
            tz,
            week,
            holidays,
            worked: Arc::default(),
        }
    }
}

/// The first year [`WorkedYears`] keeps; times outside its years are
/// counted day by day instead.
pub const WORKED_FIRST_YEAR: i32 = 1970;
pub const WORKED_YEARS: usize = 200;

/// A year of a calendar's working windows in UTC, computed the first time
/// the year is asked for: a report over months of tickets then adds a few
/// numbers per ticket instead of walking every day in between through the
/// time zone. A cache of the fields beside it, so it takes no part in
/// comparing calendars.
#[derive(Debug, Clone)]
pub struct WorkedYears(Box<[OnceLock<WorkedYear>]>);

/// One year's windows, day by day.
#[derive(Debug, Clone, Default)]
pub struct WorkedYear {
    /// Day `i` (0 = 1 January) has the windows `starts[i]..starts[i + 1]`.
    pub starts: Box<[u32]>,
    pub windows: Box<[(DateTime<Utc>, DateTime<Utc>)]>,
    /// Working seconds before day `i`; the year's total last.
    pub before: Box<[i64]>,
}

impl Default for WorkedYears {
    fn default() -> Self {
        WorkedYears((0..WORKED_YEARS).map(|_| OnceLock::new()).collect())
    }
}

impl PartialEq for WorkedYears {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl WorkedYears {
    /// The cell of `year`; `None` outside the years kept.
    pub fn year(&self, year: i32) -> Option<&OnceLock<WorkedYear>> {
        usize::try_from(year - WORKED_FIRST_YEAR)
            .ok()
            .and_then(|i| self.0.get(i))
    }
}

/// Parses "09:00-12:00,13:00-17:00" (empty: closed that day).
pub fn parse_windows(s: &str) -> Result<Vec<(NaiveTime, NaiveTime)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part
            .split_once('-')
            .ok_or_else(|| format!("\"{part}\" is not HH:MM-HH:MM"))?;
        let t = |x: &str| {
            NaiveTime::parse_from_str(x.trim(), "%H:%M")
                .map_err(|_| format!("\"{x}\" is not a time (HH:MM)"))
        };
        let (start, end) = (t(a)?, t(b)?);
        if end <= start {
            return Err(format!("\"{part}\": the end must be after the start"));
        }
        if out.last().is_some_and(|&(_, prev_end)| start < prev_end) {
            return Err(format!("\"{part}\" overlaps or is out of order"));
        }
        out.push((start, end));
    }
    Ok(out)
}
