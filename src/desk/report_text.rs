//! A report as people read it: the text tables and the CSV of `deskgate
//! report` (and the recurring issues of `deskgate recurring`), shared by the
//! command line and the reports sent by mail (`desk::digest`). Pure.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use thiserror::Error;

use crate::desk::recurring::{Cluster, Trend};
use crate::desk::recurring_compare::{ComparedIssue, RecurringComparison};
use crate::desk::report::figures::{Summary, AGE_BUCKET_NAMES};
use crate::desk::report::{Group, Report};
use crate::desk::sla::Target;

#[derive(Debug, Error)]
pub enum RenderError {
    #[error("cannot write the CSV: {0}")]
    Csv(String),
}

/// An instant, to the minute, in `tz` with its abbreviation.
pub fn at(tz: Tz, t: &DateTime<Utc>) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// `2h 10m`, `3d 4h`, `45m`, `30s`: the two largest units, whole.
pub fn duration_secs(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    let body = if d > 0 {
        if h > 0 {
            format!("{d}d {h}h")
        } else {
            format!("{d}d")
        }
    } else if h > 0 {
        if m > 0 {
            format!("{h}h {m}m")
        } else {
            format!("{h}h")
        }
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    };
    format!("{sign}{body}")
}

/// Minutes of effort as a duration.
pub fn minutes(m: u64) -> String {
    duration_secs((m.min(i64::MAX as u64 / 60) * 60) as i64)
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

/// The report as text tables, the way `deskgate report` prints them; instants
/// in `tz`. Not yet made safe for a terminal (the caller knows where it goes).
pub fn text(r: &Report, tz: Tz) -> String {
    let by =
        r.by.map(|b| format!(" by {b:?}").to_lowercase())
            .unwrap_or_default();
    let mut out = format!(
        "Report{by}: {} to {} ({})\n\nTickets\n",
        at(tz, &r.since),
        at(tz, &r.until),
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
    out
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

/// The report as CSV, one line per group and one for all (`deskgate report
/// --csv`, and a digest's attachment).
pub fn csv(r: &Report) -> Result<String, RenderError> {
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
    w.write_record(&header)
        .map_err(|e| RenderError::Csv(e.to_string()))?;
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
        w.write_record(&rec)
            .map_err(|e| RenderError::Csv(e.to_string()))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| RenderError::Csv(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| RenderError::Csv(e.to_string()))
}

/// The recurring issues as text (a digest's table, under its comparison).
pub fn recurring(
    clusters: &[Cluster],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    tickets_read: usize,
    truncated: bool,
    tz: chrono_tz::Tz,
) -> String {
    let mut out = recurring_heading(clusters.len(), since, until, tickets_read, truncated, tz);
    out.push('\n');
    for c in clusters {
        let _ = writeln!(
            out,
            "\n{}: {} tickets, {}",
            c.label,
            c.tickets.len(),
            recurring_details(c, tz)
        );
        let _ = writeln!(out, "  {}", ticket_numbers(c));
    }
    out
}

/// The recurring issues as `deskgate recurring` prints them: each issue
/// headed by its comparison with the period before (`word`, from `since`
/// back), then the issues that went away.
pub fn recurring_compared(
    compared: &RecurringComparison,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    tickets_read: usize,
    truncated: bool,
    word: &str,
    tz: chrono_tz::Tz,
) -> String {
    let mut out = recurring_heading(
        compared.issues.len(),
        since,
        until,
        tickets_read,
        truncated,
        tz,
    );
    let _ = writeln!(out, ", compared with {word}");
    for i in &compared.issues {
        let _ = writeln!(out, "\n{}", i.line(word));
        let _ = writeln!(out, "  {}", recurring_details(&i.cluster, tz));
        let _ = writeln!(out, "  {}", ticket_numbers(&i.cluster));
    }
    if !compared.gone.is_empty() {
        out.push('\n');
        for g in &compared.gone {
            let _ = writeln!(out, "{}", g.line(word));
        }
    }
    out
}

/// "3 recurring issue(s) among 52 tickets created 2026-10-07 … 2026-11-06",
/// days in the desk's time zone, as every other text view shows time.
fn recurring_heading(
    issues: usize,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    tickets_read: usize,
    truncated: bool,
    tz: chrono_tz::Tz,
) -> String {
    format!(
        "{issues} recurring issue(s) among {tickets_read} tickets created {} … {}{}",
        day(tz, since),
        day(tz, until),
        if truncated {
            " (only the newest were read)"
        } else {
            ""
        }
    )
}

fn day(tz: chrono_tz::Tz, t: DateTime<Utc>) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d").to_string()
}

fn trend_word(t: Trend) -> &'static str {
    match t {
        Trend::Rising => "rising",
        Trend::Steady => "steady",
        Trend::Falling => "falling",
    }
}

/// "rising, first 2026-11-03 last 2026-11-05, team it".
fn recurring_details(c: &Cluster, tz: chrono_tz::Tz) -> String {
    format!(
        "{}, first {} last {}{}",
        trend_word(c.trend),
        day(tz, c.first_seen),
        day(tz, c.last_seen),
        if c.teams.is_empty() {
            String::new()
        } else {
            format!(", team {}", c.teams.join(", "))
        }
    )
}

fn ticket_numbers(c: &Cluster) -> String {
    let numbers: Vec<String> = c.tickets.iter().map(|t| format!("#{t}")).collect();
    numbers.join(" ")
}

/// The recurring issues as CSV, one line per issue (a digest's attachment),
/// with each issue's tickets in the period before (0: new).
pub fn recurring_csv(issues: &[ComparedIssue]) -> Result<String, RenderError> {
    let err = |e: &dyn std::fmt::Display| RenderError::Csv(e.to_string());
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record([
        "issue",
        "tickets",
        "trend",
        "first_seen",
        "last_seen",
        "teams",
        "ticket_ids",
        "previous_tickets",
    ])
    .map_err(|e| err(&e))?;
    for i in issues {
        let c = &i.cluster;
        let ids: Vec<String> = c.tickets.iter().map(u64::to_string).collect();
        w.write_record([
            c.label.clone(),
            c.tickets.len().to_string(),
            trend_word(c.trend).to_string(),
            c.first_seen.to_rfc3339(),
            c.last_seen.to_rfc3339(),
            c.teams.join(" "),
            ids.join(" "),
            i.previous_tickets.to_string(),
        ])
        .map_err(|e| err(&e))?;
    }
    let bytes = w.into_inner().map_err(|e| err(&e))?;
    String::from_utf8(bytes).map_err(|e| err(&e))
}
