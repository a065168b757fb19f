//! Reports by mail (`[[digest]]`): when a digest is due (the latest send
//! time of its `every` in the desk's time zone), which periods it covers and
//! compares, who gets it, and the mails themselves (rendered from its
//! template, the figures as a text table and a CSV attachment).
//!
//! Pure but for [`queue`], which writes into the caller's transaction; the
//! engine reads the store and marks the period sent in that same
//! transaction (`engine::digest`).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::config::checked::{Digest, DigestRecipient, DigestReport, Every, EveryOn};
use crate::desk::automail::{self, ReportMail};
use crate::desk::policy::Policy;
use crate::desk::report::{Filter, GroupBy, Report, Spec};
use crate::desk::report_text::{at, duration_secs};
use crate::mail::address::Party;
use crate::mail::outgoing::{AutoSubmitted, OutgoingAttachment};
use crate::store::{Tx, TxResult};

/// Longest a clock change can skip (a send time inside it moves to the
/// first minute after it).
const LONGEST_GAP_MINUTES: i64 = 180;

/// `date` at `hour:minute` in `tz`: the earlier of two when the clock is put
/// back, the first minute after the gap when it is put forward.
fn local(tz: Tz, date: NaiveDate, hour: u32, minute: u32) -> Option<DateTime<Utc>> {
    let t: NaiveDateTime = date.and_hms_opt(hour, minute, 0)?;
    (0..=LONGEST_GAP_MINUTES).find_map(|k| {
        tz.from_local_datetime(&(t + Duration::minutes(k)))
            .earliest()
            .map(|x| x.with_timezone(&Utc))
    })
}

/// The first day of the month `back` months before `d`'s.
fn month_start(d: NaiveDate, back: u32) -> Option<NaiveDate> {
    let months = d.year() * 12 + d.month0() as i32 - back as i32;
    NaiveDate::from_ymd_opt(months.div_euclid(12), months.rem_euclid(12) as u32 + 1, 1)
}

/// The latest send time of `every` at or before `t`.
pub fn latest_run(every: &Every, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let today = t.with_timezone(&tz).date_naive();
    let (h, m) = (every.hour, every.minute);
    let candidates: Vec<NaiveDate> = match every.on {
        EveryOn::Day => (0..3)
            .filter_map(|k| today.checked_sub_days(chrono::Days::new(k)))
            .collect(),
        EveryOn::Week(wd) => (0..15)
            .filter_map(|k| today.checked_sub_days(chrono::Days::new(k)))
            .filter(|d| d.weekday() == wd)
            .collect(),
        EveryOn::Month(n) => (0..3)
            .filter_map(|k| month_start(today, k)?.with_day(n))
            .collect(),
    };
    candidates
        .into_iter()
        .filter_map(|d| local(tz, d, h, m))
        .find(|run| *run <= t)
}

/// The send time before `run`.
pub fn previous_run(every: &Every, tz: Tz, run: DateTime<Utc>) -> Option<DateTime<Utc>> {
    latest_run(every, tz, run - Duration::seconds(1))
}

/// A period `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// What a digest sent at `run` covers, and the period it is compared with
/// (the one just before, as long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    pub current: Period,
    pub previous: Period,
}

/// The periods of the digest sent at `run`: `last` back from it, or (no
/// `last`) back to the send time before, so a weekly digest covers the week.
pub fn periods(d: &Digest, tz: Tz, run: DateTime<Utc>) -> Option<Periods> {
    let last = match &d.report {
        DigestReport::Report { last, .. } => *last,
        DigestReport::Recurring { last, .. } => Some(*last),
    };
    let back = |from: DateTime<Utc>| match last {
        Some(l) => Some(from - Duration::from_std(l).ok()?),
        None => previous_run(&d.every, tz, from),
    };
    let since = back(run)?;
    let before = back(since)?;
    Some(Periods {
        current: Period { since, until: run },
        previous: Period {
            since: before,
            until: since,
        },
    })
}

/// The report's question for a period: a `report` digest's rows and filter.
pub fn spec(by: Option<&str>, filter: Filter, p: Period) -> Spec {
    Spec {
        since: p.since,
        until: p.until,
        by: by.and_then(|b| <GroupBy as clap::ValueEnum>::from_str(b, true).ok()),
        filter,
    }
}

/// Who gets the digest now: teams and leads as configured at this moment,
/// each address once, named as the agents' list names them.
pub fn recipients(policy: &Policy, d: &Digest) -> Vec<Party> {
    let mut out: Vec<Party> = Vec::new();
    let mut add = |a: &crate::mail::address::EmailAddress| {
        if !out.iter().any(|p| p.address == *a) {
            out.push(Party {
                name: policy.agent(a).and_then(|x| x.name.clone()),
                address: a.clone(),
            });
        }
    };
    for r in &d.to {
        match r {
            DigestRecipient::Address(a) => add(a),
            DigestRecipient::Team(t) => policy
                .team(t)
                .into_iter()
                .flat_map(|t| &t.members)
                .for_each(&mut add),
            DigestRecipient::Lead(t) => policy
                .team(t)
                .and_then(|t| t.lead.as_ref())
                .into_iter()
                .for_each(&mut add),
        }
    }
    out
}

/// How the period before is called in a comparison: by `every` when the
/// period is the time between two sends, else by its length (a daily
/// digest of the last 30 days compares with "the 30 days before", not
/// "the day before").
pub fn previous_word(d: &Digest) -> String {
    let last = match &d.report {
        DigestReport::Report { last, .. } => *last,
        DigestReport::Recurring { last, .. } => Some(*last),
    };
    // What `every` calls the period before, and the time between sends
    // it stands for (a month has no fixed length).
    let (by_every, between_sends) = match d.every.on {
        EveryOn::Day => ("the day before", Some(86_400)),
        EveryOn::Week(_) => ("last week", Some(7 * 86_400)),
        EveryOn::Month(_) => ("last month", None),
    };
    match last.map(|l| l.as_secs()) {
        Some(secs) if Some(secs) != between_sends => length_word(secs),
        _ => by_every.into(),
    }
}

/// The period before called by its length, `secs`: "the day before", "the
/// 30 days before", "the 1d 12h before" (also `deskgate recurring --last`).
pub fn length_word(secs: u64) -> String {
    match secs {
        86_400 => "the day before".into(),
        s if s % 86_400 == 0 => format!("the {} days before", s / 86_400),
        s => format!(
            "the {} before",
            duration_secs(s.min(i64::MAX as u64) as i64)
        ),
    }
}

fn dur(s: Option<i64>) -> String {
    s.map(duration_secs).unwrap_or_else(|| "none".into())
}

fn share(x: Option<f64>) -> String {
    x.map(|x| format!("{:.0}%", x * 100.0))
        .unwrap_or_else(|| "none".into())
}

/// The headline figures of `cur` next to `prev`'s, one line each:
/// "first response median 2h 10m, last week 3h 5m".
pub fn comparisons(cur: &Report, prev: &Report, word: &str) -> Vec<String> {
    let (c, p) = (&cur.total, &prev.total);
    let met = |r: &Report| {
        r.total
            .sla
            .iter()
            .find(|s| s.target == crate::desk::sla::Target::FirstResponse)
            .and_then(|s| s.share_met)
    };
    vec![
        format!("tickets created {}, {word} {}", c.created, p.created),
        format!("tickets resolved {}, {word} {}", c.resolved, p.resolved),
        format!("backlog at the end {}, {word} {}", c.backlog, p.backlog),
        format!(
            "first response median {}, {word} {}",
            dur(c.first_response.business.median_secs),
            dur(p.first_response.business.median_secs)
        ),
        format!(
            "resolution median {}, {word} {}",
            dur(c.resolution.business.median_secs),
            dur(p.resolution.business.median_secs)
        ),
        format!(
            "first response target met {}, {word} {}",
            share(met(cur)),
            share(met(prev))
        ),
    ]
}

/// What a digest (or an answer to `help+report@`) says, before it is
/// addressed.
#[derive(Debug, Clone)]
pub struct Content {
    /// "report" or "recurring".
    pub report: &'static str,
    pub period: Period,
    pub previous: Option<Period>,
    /// The comparisons with the period before: a `report` digest's headline
    /// figures, a `recurring` digest's issues.
    pub headline: Vec<String>,
    /// The text tables, as `deskgate report` prints them.
    pub table: String,
    /// The CSV attachment: its name and its text.
    pub csv: Option<(String, String)>,
}

/// A period as the template sees it: instants in the desk's time zone.
#[derive(Serialize)]
pub struct PeriodText {
    pub since: String,
    pub until: String,
    /// "7d", "1d", "30d 23h".
    pub length: String,
}

fn period_text(tz: Tz, p: Period) -> PeriodText {
    PeriodText {
        since: at(tz, &p.since),
        until: at(tz, &p.until),
        length: duration_secs((p.until - p.since).num_seconds()),
    }
}

/// What `digest.txt` sees (documented in the README).
#[derive(Serialize)]
pub struct DigestContext<'a> {
    /// The digest's name; "report" for an answer to `help+report@`.
    pub digest: &'a str,
    pub report: &'a str,
    pub desk: &'a Party,
    pub recipient: &'a Party,
    pub recipient_name: &'a str,
    pub period: PeriodText,
    pub previous: Option<PeriodText>,
    pub headline: &'a [String],
    pub table: &'a str,
    /// The attachment's file name, if there is one.
    pub attachment: Option<&'a str>,
    /// The `#report` line answered (an answer to `help+report@` only).
    pub request: Option<&'a str>,
}

/// The attachment's name: `report-2026-11-30.csv`, the day the period
/// ends (the digest's send day) in the desk's time zone.
pub fn csv_name(report: &str, tz: Tz, p: Period) -> String {
    format!(
        "{report}-{}.csv",
        p.until.with_timezone(&tz).format("%Y-%m-%d")
    )
}

/// One mail of a digest or an answer.
pub struct Addressed<'a> {
    /// The digest's name, or "report".
    pub name: &'a str,
    pub template: &'a str,
    pub to: &'a Party,
    pub request: Option<&'a str>,
    pub in_reply_to: Option<String>,
}

/// Renders and queues one mail of `content` (in the caller's transaction);
/// returns why it was not, if it was not (a guard, a template error).
pub fn queue(
    tx: &Tx<'_>,
    policy: &Policy,
    content: &Content,
    m: Addressed<'_>,
    now: DateTime<Utc>,
) -> TxResult<Result<(), String>> {
    let tz = policy.timezone;
    let name = m.to.name.as_deref().unwrap_or(m.to.address.local_part());
    let ctx = DigestContext {
        digest: m.name,
        report: content.report,
        desk: &policy.desk,
        recipient: m.to,
        recipient_name: name,
        period: period_text(tz, content.period),
        previous: content.previous.map(|p| period_text(tz, p)),
        headline: &content.headline,
        table: &content.table,
        attachment: content.csv.as_ref().map(|(n, _)| n.as_str()),
        request: m.request,
    };
    let rendered = match policy.templates.render(m.template, &ctx) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let answer = m.request.is_some();
    let mail = ReportMail {
        to: m.to,
        kind: if answer { "report" } else { "digest" },
        rendered,
        attachments: content
            .csv
            .iter()
            .map(|(n, text)| OutgoingAttachment {
                name: n.clone(),
                content_type: "text/csv; charset=utf-8".into(),
                bytes: text.as_bytes().to_vec(),
            })
            .collect(),
        in_reply_to: m.in_reply_to,
        auto_submitted: if answer {
            AutoSubmitted::AutoReplied
        } else {
            AutoSubmitted::AutoGenerated
        },
        rate_limited: answer,
    };
    automail::queue_report(tx, policy, mail, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every(on: EveryOn, hour: u32, minute: u32) -> Every {
        Every { on, hour, minute }
    }

    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    #[test]
    fn the_latest_send_time_is_in_the_desk_zone() {
        let monday8 = every(EveryOn::Week(Weekday::Mon), 8, 0);
        // Wednesday 2 Dec 2026: the Monday before, 08:00 CET = 07:00 UTC.
        let t = utc("2026-12-02T10:00:00Z");
        assert_eq!(
            latest_run(&monday8, BERLIN, t),
            Some(utc("2026-11-30T07:00:00Z"))
        );
        // Monday a minute before and at 08:00.
        assert_eq!(
            latest_run(&monday8, BERLIN, utc("2026-11-30T06:59:00Z")),
            Some(utc("2026-11-23T07:00:00Z"))
        );
        assert_eq!(
            latest_run(&monday8, BERLIN, utc("2026-11-30T07:00:00Z")),
            Some(utc("2026-11-30T07:00:00Z"))
        );
        let day = every(EveryOn::Day, 8, 0);
        assert_eq!(
            latest_run(&day, BERLIN, utc("2026-12-02T06:00:00Z")),
            Some(utc("2026-12-01T07:00:00Z"))
        );
        let first = every(EveryOn::Month(1), 8, 0);
        assert_eq!(
            latest_run(&first, BERLIN, utc("2026-12-02T06:00:00Z")),
            Some(utc("2026-12-01T07:00:00Z"))
        );
        assert_eq!(
            latest_run(&first, BERLIN, utc("2026-12-01T06:00:00Z")),
            Some(utc("2026-11-01T07:00:00Z"))
        );
        // January from February, across the year.
        assert_eq!(
            latest_run(&first, chrono_tz::UTC, utc("2027-01-01T07:00:00Z")),
            Some(utc("2026-12-01T08:00:00Z"))
        );
    }

    #[test]
    fn clock_changes_keep_the_local_time() {
        let day8 = every(EveryOn::Day, 8, 0);
        // Summer time starts on 29 March 2026 in Berlin: 08:00 is 06:00 UTC
        // that day, 07:00 UTC the day before.
        assert_eq!(
            latest_run(&day8, BERLIN, utc("2026-03-29T12:00:00Z")),
            Some(utc("2026-03-29T06:00:00Z"))
        );
        assert_eq!(
            previous_run(&day8, BERLIN, utc("2026-03-29T06:00:00Z")),
            Some(utc("2026-03-28T07:00:00Z"))
        );
        // 02:30 does not exist that day: the first minute after the gap.
        let early = every(EveryOn::Day, 2, 30);
        assert_eq!(
            latest_run(&early, BERLIN, utc("2026-03-29T12:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        // 02:30 happens twice on 25 October: the first one.
        assert_eq!(
            latest_run(&early, BERLIN, utc("2026-10-25T12:00:00Z")),
            Some(utc("2026-10-25T00:30:00Z"))
        );
    }

    fn digest(every: Every, last: Option<std::time::Duration>) -> Digest {
        Digest {
            name: "weekly".into(),
            to: Vec::new(),
            report: DigestReport::Report {
                last,
                by: Some("agent".into()),
                team: None,
                agent: None,
                tag: None,
            },
            every,
            template: "digest.txt".into(),
        }
    }

    #[test]
    fn a_digest_covers_the_time_since_the_send_before() {
        let monthly = digest(every(EveryOn::Month(1), 8, 0), None);
        let run = utc("2026-12-01T07:00:00Z");
        let p = periods(&monthly, BERLIN, run).unwrap();
        assert_eq!(p.current.since, utc("2026-11-01T07:00:00Z"));
        assert_eq!(p.current.until, run);
        assert_eq!(p.previous.since, utc("2026-10-01T06:00:00Z"), "CEST");
        assert_eq!(p.previous.until, p.current.since);
        let last3d = digest(
            every(EveryOn::Week(Weekday::Mon), 8, 0),
            Some(std::time::Duration::from_secs(3 * 86_400)),
        );
        let p = periods(&last3d, BERLIN, run).unwrap();
        assert_eq!(p.current.since, utc("2026-11-28T07:00:00Z"));
        assert_eq!(p.previous.since, utc("2026-11-25T07:00:00Z"));
        let s = spec(Some("agent"), Filter::default(), p.current);
        assert_eq!(s.by, Some(GroupBy::Agent));
        assert_eq!(
            csv_name("report", BERLIN, p.current),
            "report-2026-12-01.csv",
            "the send day"
        );
    }

    #[test]
    fn every_row_name_the_config_accepts_is_a_report_row() {
        for name in crate::config::REPORT_ROWS {
            assert!(
                <GroupBy as clap::ValueEnum>::from_str(name, true).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn headline_figures_are_compared_with_the_period_before() {
        let mut cur = crate::desk::report::build(
            &Policy::for_tests(None),
            &Spec {
                since: utc("2026-11-23T07:00:00Z"),
                until: utc("2026-11-30T07:00:00Z"),
                by: None,
                filter: Filter::default(),
            },
            [],
        );
        let mut prev = cur.clone();
        cur.total.first_response.business.median_secs = Some(2 * 3600 + 10 * 60);
        prev.total.first_response.business.median_secs = Some(3 * 3600 + 5 * 60);
        prev.total.created = 4;
        let lines = comparisons(&cur, &prev, "last week");
        assert!(
            lines.contains(&"first response median 2h 10m, last week 3h 5m".to_string()),
            "{lines:?}"
        );
        assert!(lines.contains(&"tickets created 0, last week 4".to_string()));
        assert!(lines.contains(&"resolution median none, last week none".to_string()));
    }

    #[test]
    fn the_period_before_is_named_by_every_or_by_its_length() {
        let week = every(EveryOn::Week(Weekday::Mon), 8, 0);
        let days = |n: u64| Some(std::time::Duration::from_secs(n * 86_400));
        assert_eq!(previous_word(&digest(week, None)), "last week");
        assert_eq!(previous_word(&digest(week, days(7))), "last week");
        assert_eq!(previous_word(&digest(week, days(3))), "the 3 days before");
        let day = every(EveryOn::Day, 8, 0);
        assert_eq!(previous_word(&digest(day, days(1))), "the day before");
        assert_eq!(previous_word(&digest(day, days(30))), "the 30 days before");
        let hours = Some(std::time::Duration::from_secs(36 * 3600));
        assert_eq!(previous_word(&digest(day, hours)), "the 1d 12h before");
        let month = every(EveryOn::Month(1), 8, 0);
        assert_eq!(previous_word(&digest(month, None)), "last month");
        let recurring = Digest {
            report: DigestReport::Recurring {
                last: std::time::Duration::from_secs(7 * 86_400),
                min: 3,
            },
            ..digest(day, None)
        };
        assert_eq!(previous_word(&recurring), "the 7 days before");
    }
}
