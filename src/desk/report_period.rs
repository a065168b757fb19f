//! A report's period as people write it, read in the desk's time zone:
//! `deskgate report --since/--until/--month` and the same words in a
//! `#report` line at `help+report@`. Pure; errors in plain words.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A local time in `tz`; the earlier of two when the clock is put back.
pub fn local(tz: Tz, t: NaiveDateTime) -> Result<DateTime<Utc>, String> {
    tz.from_local_datetime(&t)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{t} does not exist in {tz} (a clock change)"))
}

/// "2026-11-02" (midnight), "2026-11-02 14:00" (desk time) or RFC 3339.
pub fn instant(tz: Tz, s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local(tz, d.and_time(NaiveTime::MIN));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M") {
        return local(tz, t);
    }
    Err(format!(
        "\"{s}\" is not a date (YYYY-MM-DD), a local time (YYYY-MM-DD HH:MM) or an RFC 3339 time"
    ))
}

/// A calendar month "YYYY-MM" as `[first day, first day of the next)`.
pub fn month(tz: Tz, s: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let first = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
        .map_err(|_| format!("\"{s}\" is not a month (YYYY-MM)"))?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(|| "the month is out of range".to_string())?;
    Ok((
        local(tz, first.and_time(NaiveTime::MIN))?,
        local(tz, next.and_time(NaiveTime::MIN))?,
    ))
}
