//! `deskgate recurring`: the issues that keep coming back, as text.

use chrono::{DateTime, Utc};

use crate::cli::terminal::safe;
use crate::cli::times::Times;
use crate::desk::recurring::Cluster;

pub fn render(
    clusters: &[Cluster],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    tickets_read: usize,
    truncated: bool,
    tm: &Times,
) -> String {
    safe(&crate::desk::report_text::recurring(
        clusters,
        since,
        until,
        tickets_read,
        truncated,
        tm.tz,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::recurring::Trend;

    #[test]
    fn days_are_the_desk_zone_s() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let c = Cluster {
            label: "vpn connect".into(),
            tickets: vec![1000, 1003],
            // 23:30 UTC is the next day in Tokyo.
            first_seen: at("2026-11-02T23:30:00Z"),
            last_seen: at("2026-11-05T10:00:00Z"),
            teams: vec!["it".into()],
            trend: Trend::Rising,
        };
        let tokyo = Times {
            tz: "Asia/Tokyo".parse().unwrap(),
        };
        let text = render(
            &[c],
            at("2026-10-06T23:00:00Z"),
            at("2026-11-05T23:00:00Z"),
            52,
            false,
            &tokyo,
        );
        assert!(
            text.starts_with(
                "1 recurring issue(s) among 52 tickets created 2026-10-07 … 2026-11-06\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "vpn connect: 2 tickets, rising, first 2026-11-03 last 2026-11-05, team it"
            ),
            "{text}"
        );
    }
}
