//! The arguments of `tickets list` that need more than clap: `--since` (a
//! time ago or a date) and `--requester` (an address).

use anyhow::{bail, Result};
use chrono::{DateTime, NaiveDate, Utc};

use crate::mail::address::EmailAddress;

/// `7d`, `12h` (that long ago), `2026-11-30` (midnight UTC) or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    since_at(s, Utc::now())
}

fn since_at(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        let d = chrono::Duration::from_std(d).map_err(|_| format!("{s} is too long ago"))?;
        return now
            .checked_sub_signed(d)
            .ok_or_else(|| format!("{s} is too long ago"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(format!(
        "\"{s}\" is neither a time ago (7d, 12h) nor a date (2026-11-30, or RFC 3339)"
    ))
}

/// The requester's address as tickets store it (lower case).
pub fn address(s: &str) -> Result<String> {
    match EmailAddress::parse(s) {
        Some(a) => Ok(a.as_str().to_string()),
        None => bail!("--requester {s:?} is not an email address"),
    }
}

/// An agent as tickets store it: an address in lower case, anything else as given.
pub fn agent(s: String) -> String {
    EmailAddress::parse(&s).map_or(s, |a| a.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_ago_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            since_at("2h", now).unwrap().to_rfc3339(),
            "2026-12-02T08:00:00+00:00"
        );
        assert_eq!(
            since_at("2026-11-30", now).unwrap().to_rfc3339(),
            "2026-11-30T00:00:00+00:00"
        );
        assert!(since_at("2026-11-30T12:00:00+01:00", now).is_ok());
        assert!(since_at("last tuesday", now)
            .unwrap_err()
            .contains("neither a time ago"));
        assert_eq!(address("Alice@Example.COM").unwrap(), "alice@example.com");
        assert!(address("nope").is_err());
    }
}
