//! Recurring issues against the period before: which are new, growing,
//! shrinking or the same, and which went away. One rule, shared by the
//! `recurring` digest and `deskgate recurring`, so the mail and the command
//! line never disagree about an issue.

use serde::{Deserialize, Serialize};

use crate::desk::recurring::{self, Cluster};

/// How an issue's ticket count moved against the period before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// No matching issue before (not even one too small to report).
    New,
    Growing,
    Shrinking,
    Same,
}

impl Change {
    pub fn of(now: usize, before: usize) -> Change {
        match now.cmp(&before) {
            _ if before == 0 => Change::New,
            std::cmp::Ordering::Greater => Change::Growing,
            std::cmp::Ordering::Less => Change::Shrinking,
            std::cmp::Ordering::Equal => Change::Same,
        }
    }
}

fn tickets(n: usize) -> String {
    match n {
        1 => "1 ticket".to_string(),
        n => format!("{n} tickets"),
    }
}

/// An issue of the period with its tickets in the period before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparedIssue {
    #[serde(flatten)]
    pub cluster: Cluster,
    /// Tickets of the matching issue before (0: new).
    pub previous_tickets: usize,
    pub change: Change,
}

impl ComparedIssue {
    /// "printer toner: 7 tickets, last week 3, growing"; `word` names the
    /// period before ("last week", "the 30 days before").
    pub fn line(&self, word: &str) -> String {
        let p = self.previous_tickets;
        let change = match self.change {
            Change::New => format!("new (none {word})"),
            Change::Growing => format!("{word} {p}, growing"),
            Change::Shrinking => format!("{word} {p}, shrinking"),
            Change::Same => format!("{word} {p}, the same"),
        };
        format!(
            "{}: {}, {change}",
            self.cluster.label,
            tickets(self.cluster.tickets.len())
        )
    }
}

/// An issue reported before that is now under the minimum, or gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoneIssue {
    pub label: String,
    pub previous_tickets: usize,
    /// Tickets of its match now (fewer than the minimum; 0: none).
    pub tickets: usize,
}

impl GoneIssue {
    /// "outlook crash: went away (last week 5 tickets, now 2)".
    pub fn line(&self, word: &str) -> String {
        let now = if self.tickets > 0 {
            format!(", now {}", self.tickets)
        } else {
            String::new()
        };
        format!(
            "{}: went away ({word} {}{now})",
            self.label,
            tickets(self.previous_tickets)
        )
    }
}

/// The issues of a period next to the period before's.
#[derive(Debug, Clone, PartialEq)]
pub struct RecurringComparison {
    /// The issues reported (at least `min` tickets), largest first.
    pub issues: Vec<ComparedIssue>,
    /// The issues of the period before that went away.
    pub gone: Vec<GoneIssue>,
}

impl RecurringComparison {
    /// One line per issue, then one per issue that went away.
    pub fn lines(&self, word: &str) -> Vec<String> {
        let issues = self.issues.iter().map(|i| i.line(word));
        issues
            .chain(self.gone.iter().map(|g| g.line(word)))
            .collect()
    }

    pub fn clusters(&self) -> Vec<Cluster> {
        self.issues.iter().map(|i| i.cluster.clone()).collect()
    }
}

/// Compares the issues of two periods, each grouped with a minimum of two
/// tickets, so an issue too small to report still counts as seen (a
/// reported issue that had two tickets before is not new). Issues are
/// matched by `recurring::matches`. An issue of the period before with at
/// least `min` tickets went away when its match now has fewer, or it has none.
pub fn compare_recurring(now: Vec<Cluster>, before: &[Cluster], min: usize) -> RecurringComparison {
    let matched = recurring::matches(&now, before);
    // Each issue of the period before: its match's tickets now.
    let mut now_of = vec![0; before.len()];
    for (c, m) in now.iter().zip(&matched) {
        if let Some(j) = m {
            now_of[*j] = c.tickets.len();
        }
    }
    let issues = now
        .into_iter()
        .zip(&matched)
        .filter(|(c, _)| c.tickets.len() >= min)
        .map(|(c, m)| {
            let p = m.map_or(0, |j| before[j].tickets.len());
            ComparedIssue {
                change: Change::of(c.tickets.len(), p),
                previous_tickets: p,
                cluster: c,
            }
        })
        .collect();
    let gone = before
        .iter()
        .zip(&now_of)
        .filter(|(b, &n)| b.tickets.len() >= min && n < min)
        .map(|(b, &n)| GoneIssue {
            label: b.label.clone(),
            previous_tickets: b.tickets.len(),
            tickets: n,
        })
        .collect();
    RecurringComparison { issues, gone }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn issue(label: &str, tickets: std::ops::Range<u64>) -> Cluster {
        let at = DateTime::parse_from_rfc3339("2026-11-23T07:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Cluster {
            label: label.into(),
            tickets: tickets.collect(),
            first_seen: at,
            last_seen: at,
            teams: Vec::new(),
            trend: crate::desk::recurring::Trend::Steady,
        }
    }

    #[test]
    fn recurring_issues_are_new_growing_shrinking_or_gone() {
        let now = vec![
            issue("printer toner jam", 100..107),
            issue("vpn connect anyconnect", 107..111),
            issue("password reset expire", 111..114),
            issue("laptop battery dock", 114..117),
            issue("monitor flicker hdmi", 117..120),
            // Too small to report: the outlook issue went away, to 2.
            issue("outlook crash start", 120..122),
        ];
        let before = vec![
            issue("outlook crash start", 1..6),
            issue("password expire locked", 6..11),
            issue("badge door office", 11..15),
            issue("laptop dock battery", 15..18),
            issue("printer jam toner", 18..21),
            // Too small to report then, but seen: vpn is growing, not new.
            issue("vpn anyconnect", 21..23),
        ];
        let c = compare_recurring(now, &before, 3);
        assert_eq!(
            c.lines("last week"),
            [
                "printer toner jam: 7 tickets, last week 3, growing",
                "vpn connect anyconnect: 4 tickets, last week 2, growing",
                "password reset expire: 3 tickets, last week 5, shrinking",
                "laptop battery dock: 3 tickets, last week 3, the same",
                "monitor flicker hdmi: 3 tickets, new (none last week)",
                "outlook crash start: went away (last week 5 tickets, now 2)",
                "badge door office: went away (last week 4 tickets)",
            ]
        );
        let previous: Vec<usize> = c.issues.iter().map(|i| i.previous_tickets).collect();
        assert_eq!(previous, [3, 2, 5, 3, 0]);
        let changes: Vec<Change> = c.issues.iter().map(|i| i.change).collect();
        use Change::*;
        assert_eq!(changes, [Growing, Growing, Shrinking, Same, New]);
        let labels: Vec<String> = c.clusters().into_iter().map(|c| c.label).collect();
        assert_eq!(
            labels,
            [
                "printer toner jam",
                "vpn connect anyconnect",
                "password reset expire",
                "laptop battery dock",
                "monitor flicker hdmi"
            ]
        );
        let first = compare_recurring(vec![issue("vpn connect", 1..4)], &[], 3);
        assert_eq!(
            first.lines("the day before"),
            ["vpn connect: 3 tickets, new (none the day before)"]
        );
    }

    #[test]
    fn json_has_each_issue_s_fields_with_its_previous_count() {
        let c = compare_recurring(vec![issue("vpn connect", 1..4)], &[], 3);
        let v = serde_json::to_value(&c.issues[0]).unwrap();
        assert_eq!(v["label"], "vpn connect");
        assert_eq!(v["tickets"].as_array().unwrap().len(), 3);
        assert_eq!(v["previous_tickets"], 0);
        assert_eq!(v["change"], "new");
        let back: ComparedIssue = serde_json::from_value(v).unwrap();
        assert_eq!(back, c.issues[0]);
    }
}
