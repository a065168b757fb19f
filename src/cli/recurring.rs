//! `deskgate recurring`: the issues that keep coming back, as text.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::cli::terminal::safe;
use crate::cli::times::Times;
use crate::desk::recurring::{Cluster, Trend};

pub fn render(
    clusters: &[Cluster],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    tickets_read: usize,
    truncated: bool,
    tm: &Times,
) -> String {
    let mut out = String::new();
    // Days in the desk's time zone, as every other text view shows time.
    let day = |t: DateTime<Utc>| tm.day(&t);
    let _ = writeln!(
        out,
        "{} recurring issue(s) among {tickets_read} tickets created {} … {}{}",
        clusters.len(),
        day(since),
        day(until),
        if truncated {
            " (only the newest were read)"
        } else {
            ""
        }
    );
    for c in clusters {
        let trend = match c.trend {
            Trend::Rising => "rising",
            Trend::Steady => "steady",
            Trend::Falling => "falling",
        };
        let _ = writeln!(
            out,
            "\n{}: {} tickets, {trend}, first {} last {}{}",
            safe(&c.label),
            c.tickets.len(),
            day(c.first_seen),
            day(c.last_seen),
            if c.teams.is_empty() {
                String::new()
            } else {
                format!(", team {}", safe(&c.teams.join(", ")))
            }
        );
        let numbers: Vec<String> = c.tickets.iter().map(|t| format!("#{t}")).collect();
        let _ = writeln!(out, "  {}", numbers.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
