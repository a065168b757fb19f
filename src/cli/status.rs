//! `deskgate status`: is the daemon healthy, in a few lines. Exits 0 when
//! it runs and every mailbox works, 1 when a mailbox is failing, 3 when no
//! daemon runs (as `systemctl status` does), so monitoring can use it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};

use crate::cli::terminal::safe;
use crate::cli::times::{duration_secs, Times};
use crate::config::Locations;
use crate::daemon::control;
use crate::engine::queries::{Answer, Query};
use crate::engine::status_view::{DaemonStatus, MailboxState};

pub fn run(
    rt: &tokio::runtime::Runtime,
    config: &Path,
    json: bool,
    tm: &Times,
) -> Result<ExitCode> {
    let at = Locations::load(config)?;
    let status = match rt.block_on(control::ask(&at.control_socket, &Query::Status))? {
        None => {
            println!(
                "deskgate is not running (nothing answers on {})",
                at.control_socket.display()
            );
            return Ok(ExitCode::from(3));
        }
        Some(Answer::Status { status }) => status,
        Some(Answer::Error { message }) => bail!(safe(&message)),
        Some(_) => bail!("the daemon gave an unexpected answer to status"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status, Utc::now(), tm));
    }
    let failing = status
        .mailboxes
        .iter()
        .any(|m| m.state == MailboxState::Failing);
    Ok(if failing {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// "2h 10m", "45s": how long ago, for a person (a clock a little ahead
/// of ours reads as now).
fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    duration_secs((now - then).num_seconds().max(0))
}

pub fn render(s: &DaemonStatus, now: DateTime<Utc>, tm: &Times) -> String {
    let mut out = format!(
        "deskgate running since {} ({} ago)\n",
        tm.at(&s.started_at),
        ago(s.started_at, now)
    );
    for m in &s.mailboxes {
        let state = match m.state {
            MailboxState::Connecting => "connecting",
            MailboxState::Idle => "idle",
            MailboxState::Fetching => "fetching",
            MailboxState::Failing => "FAILING",
        };
        let fetch = match m.last_fetch {
            Some(t) => format!("last fetch {} ago", ago(t, now)),
            None => "no fetch yet".into(),
        };
        out.push_str(&format!(
            "mailbox {}: {state} for {}, {fetch}, {} waiting on the server\n",
            safe(&m.name),
            ago(m.since, now),
            m.waiting
        ));
        if let (Some(e), Some(at)) = (&m.last_error, m.last_error_at) {
            out.push_str(&format!("  last error {} ago: {}\n", ago(at, now), safe(e)));
        }
    }
    let oldest = match s.outbox_oldest {
        Some(t) if s.outbox_pending > 0 => format!(" (oldest queued {} ago)", ago(t, now)),
        _ => String::new(),
    };
    out.push_str(&format!(
        "outbox: {} waiting to be sent{oldest}, {} failed\n",
        s.outbox_pending, s.outbox_failed
    ));
    out.push_str(&match s.timers_last_run {
        Some(t) => format!("timers: last run {} ago\n", ago(t, now)),
        None => "timers: not run yet\n".into(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::status_view::MailboxStatus;

    #[test]
    fn status_reads_as_plain_lines() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let min = |m: i64| now - chrono::Duration::minutes(m);
        let s = DaemonStatus {
            mailboxes: vec![MailboxStatus {
                name: "hr".into(),
                state: MailboxState::Failing,
                since: min(2),
                last_fetch: None,
                last_error: Some("cannot log in to imap.example.com as hr@example.com: the server refused the user name or password".into()),
                last_error_at: Some(min(2)),
                waiting: 0,
            }],
            outbox_pending: 3,
            outbox_failed: 0,
            outbox_oldest: Some(min(130)),
            timers_last_run: Some(now - chrono::Duration::seconds(14)),
            started_at: min(200),
        };
        let berlin = Times {
            tz: "Europe/Berlin".parse().unwrap(),
        };
        let text = render(&s, now, &berlin);
        assert!(
            text.contains("deskgate running since 2026-12-02 09:40 CET (3h 20m ago)"),
            "{text}"
        );
        assert!(
            text.contains("mailbox hr: FAILING for 2m, no fetch yet, 0 waiting on the server"),
            "{text}"
        );
        assert!(
            text.contains("  last error 2m ago: cannot log in to imap.example.com"),
            "{text}"
        );
        assert!(
            text.contains("outbox: 3 waiting to be sent (oldest queued 2h 10m ago), 0 failed"),
            "{text}"
        );
        assert!(text.contains("timers: last run 14s ago"), "{text}");
    }
}
