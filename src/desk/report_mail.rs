//! A report asked for by mail: a proven agent writes to `help+report@` with
//! `#report last 7d by agent` (the option words of `deskgate report`) and
//! gets the report back, as text tables and a CSV attachment.
//!
//! The mail's transaction only checks who asks and what, and files the
//! request (`store::digests`); the timer pass computes the report (it reads
//! every ticket, which never happens inside a mail's transaction) and
//! answers it in the transaction that removes the request. Anyone else's
//! mail runs nothing and gets nothing, as with mail commands; a bad option
//! gets a reply saying what is wrong.

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::desk::automail;
use crate::desk::outcome::Outcome;
use crate::desk::policy::Policy;
use crate::desk::proof::{proven_asker, AddressSignals};
use crate::desk::report::{Filter, GroupBy, Spec};
use crate::desk::report_period::{instant, month};
use crate::mail::address::Party;
use crate::mail::classify::Class;
use crate::mail::parse::InboundMail;
use crate::store::digests::ReportRequest;
use crate::store::{Tx, TxResult};

/// Longest `#report` line read, in characters, and most words in it.
const MAX_LINE: usize = 300;
const MAX_WORDS: usize = 16;
/// Longest period asked for.
const MAX_DAYS: i64 = 400;
/// The default period, as `deskgate report`'s.
const DEFAULT_DAYS: i64 = 7;
const ERROR_TEMPLATE: &str = "report_error.txt";

/// The `#report` line of a mail: its first line that starts with
/// `#report`, else the plain request (`#report`, the default report).
pub fn request_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| {
            l.get(..7)
                .is_some_and(|w| w.eq_ignore_ascii_case("#report"))
        })
        .map(|l| l.chars().take(MAX_LINE + 1).collect())
        .unwrap_or_else(|| "#report".into())
}

/// Reads a `#report` line into the report's question, with the words of
/// `deskgate report`: `last 7d`, `since 2026-11-02 [14:00]`, `until …`,
/// `month 2026-11`, `by team|agent|tier|priority|queue|domain`, `team X`,
/// `agent X`, `tag X` (a leading `--` is allowed). Dates are in the desk's
/// time zone. The error says what is wrong, in plain words.
pub fn parse(line: &str, tz: Tz, now: DateTime<Utc>) -> Result<Spec, String> {
    if line.chars().count() > MAX_LINE {
        return Err(format!(
            "the #report line is longer than {MAX_LINE} characters"
        ));
    }
    let words: Vec<&str> = line.split_whitespace().skip(1).collect();
    if words.len() > MAX_WORDS {
        return Err(format!("the #report line has more than {MAX_WORDS} words"));
    }
    let (mut last, mut since, mut until, mut by) = (None, None, None, None);
    let mut filter = Filter::default();
    let mut month_period = None;
    let mut i = 0;
    while i < words.len() {
        let word = words[i].trim_start_matches("--").to_ascii_lowercase();
        let Some(value) = words.get(i + 1).copied() else {
            return Err(format!(
                "\"{word}\" needs a value (for example \"last 7d\")"
            ));
        };
        i += 2;
        // A time of day after a date belongs to it.
        let time = words
            .get(i)
            .copied()
            .filter(|t| NaiveTime::parse_from_str(t, "%H:%M").is_ok());
        match word.as_str() {
            "last" => {
                let d = humantime::parse_duration(value)
                    .map_err(|_| format!("\"{value}\" is not a length of time (such as 7d, 24h or 4w)"))?;
                last = Some(d);
            }
            "since" | "until" => {
                let t = match time {
                    Some(t) => instant(tz, &format!("{value} {t}"))?,
                    None => instant(tz, value)?,
                };
                if time.is_some() {
                    i += 1;
                }
                if word == "since" {
                    since = Some(t);
                } else {
                    until = Some(t);
                }
            }
            "month" => month_period = Some(month(tz, value)?),
            "by" => {
                by = Some(
                    <GroupBy as clap::ValueEnum>::from_str(value, true).map_err(|_| {
                        format!(
                            "\"{value}\" is not a row of the report: use one of {}",
                            crate::config::REPORT_ROWS.join(", ")
                        )
                    })?,
                )
            }
            "team" => filter.team = Some(value.to_string()),
            "agent" => filter.agent = Some(value.to_string()),
            "tag" => filter.tag = Some(value.to_string()),
            _ => {
                return Err(format!(
                    "\"{}\" is not an option of #report: use last, since, until, month, by, team, agent or tag",
                    words[i - 2]
                ))
            }
        }
    }
    let chosen = [
        last.is_some(),
        since.is_some() || until.is_some(),
        month_period.is_some(),
    ];
    if chosen.iter().filter(|x| **x).count() > 1 {
        return Err("give one of: last, since/until, month".into());
    }
    let (since, until) = if let Some(m) = month_period {
        m
    } else if since.is_some() || until.is_some() {
        let until = until.unwrap_or(now);
        (
            since.unwrap_or(until - chrono::Duration::days(DEFAULT_DAYS)),
            until,
        )
    } else {
        let d = match last {
            Some(l) => chrono::Duration::from_std(l).unwrap_or(chrono::Duration::MAX),
            None => chrono::Duration::days(DEFAULT_DAYS),
        };
        if d > chrono::Duration::days(MAX_DAYS) {
            return Err(format!("the period is longer than {MAX_DAYS} days"));
        }
        (now - d, now)
    };
    if until <= since {
        return Err("the period is empty: its end is not after its start".into());
    }
    if until - since > chrono::Duration::days(MAX_DAYS) {
        return Err(format!("the period is longer than {MAX_DAYS} days"));
    }
    Ok(Spec {
        since,
        until,
        by,
        filter,
    })
}

/// What `report_error.txt` sees.
#[derive(Serialize)]
struct ErrorContext<'a> {
    desk: &'a Party,
    recipient: &'a Party,
    recipient_name: &'a str,
    request: &'a str,
    error: &'a str,
    message: Message<'a>,
}

#[derive(Serialize)]
struct Message<'a> {
    subject: &'a str,
}

/// A mail to `help+report@`: never a ticket. A proven agent's person-made
/// mail with a good request files it for the timer pass; a bad one gets a
/// reply saying what is wrong; anything else runs nothing and is kept in
/// the ignored list with why.
pub fn on_address(
    tx: &Tx<'_>,
    policy: &Policy,
    mail: &InboundMail,
    class: &Class,
    signals: &AddressSignals,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let ignored = |why: String| Outcome::Ignored {
        reason: format!("mail to help+report@: {why}"),
    };
    let agent = match proven_asker(policy, mail, class, signals, now) {
        Ok(agent) => agent,
        Err(why) => return Ok(ignored(format!("{why}; no report"))),
    };
    let to = Party {
        name: Some(crate::desk::agent_tell::agent_name(policy, agent)),
        address: agent.address.clone(),
    };
    let line = request_line(&mail.text);
    if let Err(why) = parse(&line, policy.timezone, now) {
        let ctx = ErrorContext {
            desk: &policy.desk,
            recipient: &to,
            recipient_name: to.name.as_deref().unwrap_or(to.address.local_part()),
            request: &line,
            error: &why,
            message: Message {
                subject: &mail.subject,
            },
        };
        let sent = match policy.templates.render(ERROR_TEMPLATE, &ctx) {
            Ok(rendered) => automail::queue_ticketless(
                tx,
                policy,
                &to,
                "report error",
                rendered,
                mail.message_id.clone(),
                now,
            )?,
            Err(e) => Err(e.to_string()),
        };
        return Ok(ignored(match sent {
            Ok(()) => format!("{line}: {why}; told {}", to.address),
            Err(not) => format!("{line}: {why}; not told ({not})"),
        }));
    }
    // Checked again when the answer is queued; here it keeps a flood of
    // requests from making the timer pass compute reports nobody will get.
    let window = policy.limits.auto_reply_window;
    let sent = tx.auto_sent(to.address.as_str())?.count(now, window);
    if let Err(why) = automail::check_limits(sent, 0, &policy.limits) {
        return Ok(ignored(format!("{line}: no report ({why})")));
    }
    tx.put_report_request(&ReportRequest {
        id: tx.generate_id()?,
        to,
        message_id: mail.message_id.clone(),
        subject: mail.subject.clone(),
        line: line.clone(),
        asked_at: now,
    })?;
    Ok(ignored(format!(
        "{line} from {}: the report follows",
        agent.address
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    #[test]
    fn the_options_are_the_command_lines() {
        let now = utc("2026-12-02T10:00:00Z");
        let s = parse("#report last 7d by agent", BERLIN, now).unwrap();
        assert_eq!((s.since, s.until), (utc("2026-11-25T10:00:00Z"), now));
        assert_eq!(s.by, Some(GroupBy::Agent));
        let s = parse("#report --month 2026-11 --team it", BERLIN, now).unwrap();
        assert_eq!(s.since, utc("2026-10-31T23:00:00Z"));
        assert_eq!(s.until, utc("2026-11-30T23:00:00Z"));
        assert_eq!(s.filter.team.as_deref(), Some("it"));
        let s = parse(
            "#report since 2026-11-02 14:00 until 2026-11-03 tag vpn",
            BERLIN,
            now,
        )
        .unwrap();
        assert_eq!(s.since, utc("2026-11-02T13:00:00Z"));
        assert_eq!(s.until, utc("2026-11-02T23:00:00Z"));
        assert_eq!(s.filter.tag.as_deref(), Some("vpn"));
        let s = parse("#report", BERLIN, now).unwrap();
        assert_eq!(s.until - s.since, chrono::Duration::days(7));
    }

    #[test]
    fn a_bad_option_says_what_is_wrong_in_plain_words() {
        let now = utc("2026-12-02T10:00:00Z");
        let e = |l: &str| parse(l, BERLIN, now).unwrap_err();
        assert!(e("#report last soon").contains("\"soon\" is not a length of time"));
        assert!(e("#report by colour").contains("\"colour\" is not a row"));
        assert!(e("#report bogus 1").contains("\"bogus\" is not an option"));
        assert!(e("#report last").contains("needs a value"));
        assert!(e("#report last 7d month 2026-11").contains("one of"));
        assert!(e("#report last 1000d").contains("longer than 400 days"));
        assert!(e("#report since 2026-12-03 until 2026-12-01").contains("empty"));
        assert!(e(&format!("#report {}", "x ".repeat(200))).contains("longer than"));
    }

    #[test]
    fn the_request_is_the_first_report_line() {
        assert_eq!(
            request_line("Hi,\n  #report last 30d by team\nthanks\n#report last 1d"),
            "#report last 30d by team"
        );
        assert_eq!(request_line("please"), "#report");
    }
}
