//! `deskgate report`: the period asked for, and the report as tables, CSV or
//! JSON. The figures are the desk's (`desk::report`); only the period's
//! reading (in the desk's time zone) and the presentation are here.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};

use super::terminal::safe;
use super::times::Times;
use crate::desk::report::{Filter, GroupBy, Report, Spec};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Start of the period: a date (midnight in the desk's time zone),
    /// "YYYY-MM-DD HH:MM" (desk time) or RFC 3339.
    #[arg(long, conflicts_with_all = ["last", "month"])]
    since: Option<String>,
    /// End of the period (not included); default now.
    #[arg(long, conflicts_with_all = ["last", "month"])]
    until: Option<String>,
    /// The period up to now, e.g. 7d, 24h, 4w (the default is 7d).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "month")]
    last: Option<std::time::Duration>,
    /// A calendar month in the desk's time zone, e.g. 2026-11.
    #[arg(long)]
    month: Option<String>,
    /// One row per team, agent (assignee), tier, priority, queue (mailbox)
    /// or requester domain.
    #[arg(long, value_enum)]
    by: Option<GroupBy>,
    /// Only tickets of this team.
    #[arg(long)]
    team: Option<String>,
    /// Only tickets assigned to this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Only tickets with this tag.
    #[arg(long)]
    tag: Option<String>,
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// One line per group (and one for all), durations in seconds.
    #[arg(long)]
    csv: bool,
}

pub enum Output {
    Text,
    Json,
    Csv,
}

impl ReportArgs {
    pub fn output(&self) -> Output {
        match (self.json, self.csv) {
            (true, _) => Output::Json,
            (_, true) => Output::Csv,
            _ => Output::Text,
        }
    }

    pub fn spec(&self, tm: &Times, now: DateTime<Utc>) -> Result<Spec> {
        let (since, until) = if let Some(m) = &self.month {
            month(tm, m)?
        } else if self.since.is_some() || self.until.is_some() {
            let until = match &self.until {
                Some(u) => instant(tm, u)?,
                None => now,
            };
            let since = match &self.since {
                Some(s) => instant(tm, s)?,
                None => until - chrono::Duration::days(7),
            };
            (since, until)
        } else {
            let last = self
                .last
                .unwrap_or(std::time::Duration::from_secs(7 * 86_400));
            let d = chrono::Duration::from_std(last).context("--last is too long")?;
            (now - d, now)
        };
        if until <= since {
            bail!("the period is empty: its end is not after its start");
        }
        Ok(Spec {
            since,
            until,
            by: self.by,
            filter: Filter {
                team: self.team.clone(),
                agent: self.agent.clone(),
                tag: self.tag.clone(),
            },
        })
    }
}

/// "2026-11-02", "2026-11-02 14:00" (desk time) or RFC 3339.
fn instant(tm: &Times, s: &str) -> Result<DateTime<Utc>> {
    crate::desk::report_period::instant(tm.tz, s).map_err(anyhow::Error::msg)
}

/// A calendar month "YYYY-MM" as `[first day, first day of the next)`.
fn month(tm: &Times, s: &str) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    crate::desk::report_period::month(tm.tz, s).map_err(anyhow::Error::msg)
}

pub fn render_text(r: &Report, tm: &Times) -> String {
    safe(&crate::desk::report_text::text(r, tm.tz))
}

pub fn render_csv(r: &Report) -> Result<String> {
    Ok(crate::desk::report_text::csv(r)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_its_local_days() {
        let tm = Times {
            tz: "Europe/Berlin".parse().unwrap(),
        };
        let (a, b) = month(&tm, "2026-12").unwrap();
        assert_eq!(a.to_rfc3339(), "2026-11-30T23:00:00+00:00");
        assert_eq!(b.to_rfc3339(), "2026-12-31T23:00:00+00:00");
        assert!(month(&tm, "2026-13").is_err());
        assert_eq!(
            instant(&tm, "2026-07-01").unwrap().to_rfc3339(),
            "2026-06-30T22:00:00+00:00"
        );
        assert!(instant(&tm, "yesterday").is_err());
    }
}
