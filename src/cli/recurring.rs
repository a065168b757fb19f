//! `deskgate recurring`: the issues that keep coming back, each against the
//! period before (as long, just before `--last`), as text.

use chrono::{DateTime, Utc};

use crate::cli::terminal::safe;
use crate::cli::times::Times;
use crate::desk::digest::length_word;
use crate::desk::recurring_compare::RecurringComparison;

/// What the query read: the period and its tickets.
pub struct Read {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub tickets_read: usize,
    pub truncated: bool,
}

pub fn render(compared: &RecurringComparison, read: &Read, tm: &Times) -> String {
    let length = (read.until - read.since).num_seconds().max(0) as u64;
    safe(&crate::desk::report_text::recurring_compared(
        compared,
        read.since,
        read.until,
        read.tickets_read,
        read.truncated,
        &length_word(length),
        tm.tz,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::recurring::{Cluster, Trend};
    use crate::desk::recurring_compare::compare_recurring;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn issue(label: &str, tickets: &[u64]) -> Cluster {
        Cluster {
            label: label.into(),
            tickets: tickets.to_vec(),
            // 23:30 UTC is the next day in Tokyo.
            first_seen: at("2026-11-02T23:30:00Z"),
            last_seen: at("2026-11-05T10:00:00Z"),
            teams: vec!["it".into()],
            trend: Trend::Rising,
        }
    }

    fn tokyo() -> Times {
        Times {
            tz: "Asia/Tokyo".parse().unwrap(),
        }
    }

    fn thirty_days() -> Read {
        Read {
            since: at("2026-10-06T23:00:00Z"),
            until: at("2026-11-05T23:00:00Z"),
            tickets_read: 52,
            truncated: false,
        }
    }

    #[test]
    fn days_are_the_desk_zone_s() {
        let c = compare_recurring(vec![issue("vpn connect", &[1000, 1003])], &[], 2);
        let text = render(&c, &thirty_days(), &tokyo());
        assert!(
            text.starts_with(
                "1 recurring issue(s) among 52 tickets created 2026-10-07 … 2026-11-06, compared with the 30 days before\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n  rising, first 2026-11-03 last 2026-11-05, team it\n"),
            "{text}"
        );
    }

    #[test]
    fn each_issue_is_compared_with_the_period_before_and_gone_ones_listed() {
        let now = vec![
            issue("printer toner empty", &[20, 21, 22, 23]),
            issue("vpn connect anyconnect", &[24, 25, 26]),
            issue("laptop battery dock", &[27, 28, 29]),
        ];
        let before = vec![
            issue("outlook crash start", &[1, 2, 3]),
            issue("printer toner empty", &[4, 5]),
            issue("laptop battery dock", &[6, 7, 8, 9]),
        ];
        let c = compare_recurring(now, &before, 3);
        let text = render(&c, &thirty_days(), &tokyo());
        let expected = "\
3 recurring issue(s) among 52 tickets created 2026-10-07 … 2026-11-06, compared with the 30 days before

printer toner empty: 4 tickets, the 30 days before 2, growing
  rising, first 2026-11-03 last 2026-11-05, team it
  #20 #21 #22 #23

vpn connect anyconnect: 3 tickets, new (none the 30 days before)
  rising, first 2026-11-03 last 2026-11-05, team it
  #24 #25 #26

laptop battery dock: 3 tickets, the 30 days before 4, shrinking
  rising, first 2026-11-03 last 2026-11-05, team it
  #27 #28 #29

outlook crash start: went away (the 30 days before 3 tickets)
";
        assert_eq!(text, expected);
    }
}
