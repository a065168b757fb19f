//! `deskgate recurring`: the issues that keep coming back, as text.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::cli::terminal::safe;
use crate::desk::recurring::{Cluster, Trend};

pub fn render(
    clusters: &[Cluster],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    tickets_read: usize,
    truncated: bool,
) -> String {
    let mut out = String::new();
    let day = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
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
