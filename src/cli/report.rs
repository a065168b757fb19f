//! `deskgate report`: the period asked for, and the report as tables, CSV or
//! JSON. The figures are the desk's (`desk::report`); only the period's
//! reading (in the desk's time zone) and the presentation are here.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use super::terminal::safe;
use super::times::{duration_secs, minutes, Times};
use crate::desk::report::figures::{Summary, AGE_BUCKET_NAMES};
use crate::desk::report::{Filter, Group, GroupBy, Report, Spec};
use crate::desk::sla::Target;

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

fn local(tm: &Times, t: NaiveDateTime) -> Result<DateTime<Utc>> {
    tm.tz
        .from_local_datetime(&t)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("{t} does not exist in {} (a clock change)", tm.tz))
}

/// "2026-11-02", "2026-11-02 14:00" (desk time) or RFC 3339.
fn instant(tm: &Times, s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local(tm, d.and_time(chrono::NaiveTime::MIN));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M") {
        return local(tm, t);
    }
    bail!("\"{s}\" is not a date (YYYY-MM-DD), a local time (YYYY-MM-DD HH:MM) or an RFC 3339 time")
}

/// A calendar month "YYYY-MM" as `[first day, first day of the next)`.
fn month(tm: &Times, s: &str) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let first = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
        .with_context(|| format!("\"{s}\" is not a month (YYYY-MM)"))?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .context("the month is out of range")?;
    Ok((
        local(tm, first.and_time(chrono::NaiveTime::MIN))?,
        local(tm, next.and_time(chrono::NaiveTime::MIN))?,
    ))
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

fn right(s: impl ToString) -> Cell {
    Cell::new(s.to_string()).set_alignment(CellAlignment::Right)
}

fn dur(s: Option<i64>) -> String {
    s.map(duration_secs).unwrap_or_else(|| "-".into())
}

fn pct(x: Option<f64>) -> String {
    x.map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// The rows shown: each group, then all (or only all).
fn rows(r: &Report) -> Vec<&Group> {
    r.groups.iter().chain(std::iter::once(&r.total)).collect()
}

pub fn render_text(r: &Report, tm: &Times) -> String {
    let by =
        r.by.map(|b| format!(" by {b:?}").to_lowercase())
            .unwrap_or_default();
    let mut out = format!(
        "Report{by}: {} to {} ({})\n\nTickets\n",
        tm.at(&r.since),
        tm.at(&r.until),
        duration_secs((r.until - r.since).num_seconds())
    );
    let mut header = vec![
        "",
        "created",
        "resolved",
        "closed",
        "reopened",
        "reopen rate",
        "backlog",
    ];
    header.extend(AGE_BUCKET_NAMES.iter().copied());
    let mut t = table(&header);
    for g in rows(r) {
        let mut row = vec![
            Cell::new(&g.key),
            right(g.created),
            right(g.resolved),
            right(g.closed),
            right(g.reopened),
            right(pct(g.reopen_rate)),
            right(g.backlog),
        ];
        row.extend(g.backlog_age.iter().map(right));
        t.add_row(row);
    }
    out.push_str(&format!(
        "{t}\n\nTimes (business: on the SLA calendar, waits left out)\n"
    ));
    let mut t = table(&["", "measure", "n", "median", "p90", "mean"]);
    for g in rows(r) {
        for (name, s) in [
            ("first response, business", &g.first_response.business),
            ("first response, wall clock", &g.first_response.wall),
            ("resolution, business", &g.resolution.business),
            ("resolution, wall clock", &g.resolution.wall),
        ] {
            t.add_row(summary_row(&g.key, name, s));
        }
    }
    out.push_str(&format!("{t}\n\nSLA (tickets created in the period)\n"));
    let mut t = table(&["", "target", "met", "breached", "running", "met share"]);
    for g in rows(r) {
        for s in &g.sla {
            t.add_row(vec![
                Cell::new(&g.key),
                Cell::new(s.target.key().replace('_', " ")),
                right(s.met),
                right(s.breached),
                right(s.running),
                right(pct(s.share_met)),
            ]);
        }
    }
    out.push_str(&format!("{t}\n\nEscalations\n"));
    let mut t = table(&["tiers", "count", "reasons"]);
    for e in &r.escalations {
        let reasons: Vec<String> = e
            .reasons
            .iter()
            .map(|(w, n)| format!("{w} ({n})"))
            .collect();
        t.add_row(vec![
            Cell::new(&e.transition),
            right(e.count),
            Cell::new(reasons.join("; ")),
        ]);
    }
    out.push_str(&format!(
        "{t}\n\nEffort: {} booked; where the time went\n",
        minutes(r.effort.total_minutes)
    ));
    let mut t = table(&["by", "", "time", "share"]);
    for (dim, shares) in [
        ("agent", &r.effort.by_agent),
        ("team", &r.effort.by_team),
        ("tier", &r.effort.by_tier),
        ("tag", &r.effort.by_tag),
        ("ticket", &r.effort.by_ticket),
    ] {
        for s in shares {
            t.add_row(vec![
                Cell::new(dim),
                Cell::new(&s.key),
                right(minutes(s.minutes)),
                right(pct(Some(s.share))),
            ]);
        }
    }
    out.push_str(&format!("{t}\n"));
    safe(&out)
}

fn summary_row(key: &str, name: &str, s: &Summary) -> Vec<Cell> {
    vec![
        Cell::new(key),
        Cell::new(name),
        right(s.count),
        right(dur(s.median_secs)),
        right(dur(s.p90_secs)),
        right(dur(s.mean_secs)),
    ]
}

/// The CSV header: one line per group; durations in seconds, shares as
/// fractions, empty where there is no figure.
const CSV_FIXED: [&str; 7] = [
    "group",
    "created",
    "resolved",
    "closed",
    "reopened",
    "reopen_rate",
    "backlog",
];

pub fn render_csv(r: &Report) -> Result<String> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let mut header: Vec<String> = CSV_FIXED.iter().map(|s| s.to_string()).collect();
    header.extend(AGE_BUCKET_NAMES.iter().map(|b| format!("backlog_{b}")));
    for m in ["first_response", "resolution"] {
        for c in ["business", "wall"] {
            header.push(format!("{m}_{c}_count"));
            for s in ["median", "p90", "mean"] {
                header.push(format!("{m}_{c}_{s}_secs"));
            }
        }
    }
    for t in ["first_response", "resolution"] {
        for s in ["met", "breached", "running", "share_met"] {
            header.push(format!("sla_{t}_{s}"));
        }
    }
    header.push("effort_minutes".into());
    w.write_record(&header)?;
    let opt = |x: Option<i64>| x.map(|v| v.to_string()).unwrap_or_default();
    for g in rows(r) {
        let mut rec = vec![
            g.key.clone(),
            g.created.to_string(),
            g.resolved.to_string(),
            g.closed.to_string(),
            g.reopened.to_string(),
            g.reopen_rate.map(|x| format!("{x:.4}")).unwrap_or_default(),
            g.backlog.to_string(),
        ];
        rec.extend(g.backlog_age.iter().map(|n| n.to_string()));
        for s in [
            &g.first_response.business,
            &g.first_response.wall,
            &g.resolution.business,
            &g.resolution.wall,
        ] {
            rec.push(s.count.to_string());
            rec.extend([opt(s.median_secs), opt(s.p90_secs), opt(s.mean_secs)]);
        }
        for target in [Target::FirstResponse, Target::Resolution] {
            match g.sla.iter().find(|s| s.target == target) {
                Some(s) => rec.extend([
                    s.met.to_string(),
                    s.breached.to_string(),
                    s.running.to_string(),
                    s.share_met.map(|x| format!("{x:.4}")).unwrap_or_default(),
                ]),
                None => rec.extend(["0".into(), "0".into(), "0".into(), String::new()]),
            }
        }
        rec.push(g.effort_minutes.to_string());
        w.write_record(&rec)?;
    }
    let bytes = w.into_inner().context("cannot write the CSV")?;
    String::from_utf8(bytes).context("cannot write the CSV")
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
