//! A business-hours calendar as the config defines it: a time zone, working
//! windows per weekday and holidays. The arithmetic over it is the desk's
//! (`desk::calendar`).

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq)]
pub enum Calendar {
    /// Round the clock: every second counts.
    Always,
    Business(BusinessHours),
}

#[derive(Debug, Clone, PartialEq)]
pub struct BusinessHours {
    pub tz: Tz,
    /// Working windows per weekday, Monday first.
    pub week: [Vec<(NaiveTime, NaiveTime)>; 7],
    pub holidays: BTreeSet<NaiveDate>,
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
