//! `deskgate doctor`: checks everything a deployment needs, one line per
//! check with a verdict, without changing anything: the config, every
//! template rendered with sample data, the state directory and the store,
//! each mailbox (log in, its folder, the move target) and the SMTP server
//! (EHLO, TLS, AUTH, then NOOP — no mail is sent). Exits non-zero when any
//! check fails, so it can gate a deployment script.

use std::fmt::Display;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::config::{AfterProcessing, Config, MailboxConfig};
use crate::daemon::{control, imap, outbox};
use crate::desk::policy::Policy;
use crate::desk::templates::{Templates, BODY_ONLY, TEMPLATE_NAMES};
use crate::engine::queries::{Answer, Query};
use crate::store::Store;

/// One check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

#[derive(Default)]
struct Report {
    failed: usize,
}

impl Report {
    fn line(&mut self, verdict: Verdict, what: &str, detail: impl Display) {
        let word = match verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => {
                self.failed += 1;
                "FAIL"
            }
        };
        println!("{word}  {what}: {detail}");
    }
}

pub fn run(rt: &tokio::runtime::Runtime, path: &Path) -> Result<ExitCode> {
    let mut report = Report::default();
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            report.line(Verdict::Fail, "config", e);
            return Ok(ExitCode::FAILURE);
        }
    };
    report.line(
        Verdict::Ok,
        "config",
        format!(
            "{} loads ({} mailbox(es))",
            path.display(),
            config.mailboxes.len()
        ),
    );
    for w in &config.warnings {
        report.line(Verdict::Warn, "config", w);
    }
    match Policy::from_config(&config) {
        Ok(policy) => check_templates(&mut report, &policy),
        Err(e) => report.line(Verdict::Fail, "templates", e),
    }
    check_state_dir(&mut report, &config.desk.storage);
    rt.block_on(check_store(&mut report, &config));
    for m in &config.mailboxes {
        rt.block_on(check_mailbox(&mut report, m));
    }
    rt.block_on(check_smtp(&mut report, &config));
    if report.failed == 0 {
        println!("all checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} check(s) failed", report.failed);
        Ok(ExitCode::FAILURE)
    }
}

/// What every template can see, filled with plausible values: a template
/// that renders this renders real mail.
fn sample_context() -> serde_json::Value {
    serde_json::json!({
        "tag": "[#1042]",
        "ticket": {
            "id": 1042, "subject": "VPN does not connect", "status": "open",
            "priority": "normal", "team": "it", "assignee": "alice",
            "tags": ["vpn"], "created_at": "2026-12-01T09:00:00Z",
        },
        "recipient": "carol@customer.example", "recipient_name": "Carol",
        "requester": {"name": "Carol", "address": "carol@customer.example"},
        "requester_name": "Carol",
        "desk": {"name": "Help desk", "address": "help@example.com"},
        "message": {"subject": "VPN does not connect", "text": "It fails since this morning."},
        "dropped_attachments": [{"name": "big.zip", "size": 30000000}],
        "max_message_size": 26214400,
        "rule": "spam",
        // digest.txt and report_error.txt (reports by mail).
        "digest": "weekly", "report": "report",
        "period": {"since": "2026-11-23 08:00 CET", "until": "2026-11-30 08:00 CET", "length": "7d"},
        "previous": {"since": "2026-11-16 08:00 CET", "until": "2026-11-23 08:00 CET", "length": "7d"},
        "headline": ["first response median 2h 10m, last week 3h 5m"],
        "table": "Report by agent: 2026-11-23 08:00 CET to 2026-11-30 08:00 CET (7d)\n",
        "attachment": "report-2026-11-30.csv",
        "request": "#report last 7d by agent",
        "error": "\"soon\" is not a length of time (such as 7d, 24h or 4w)",
    })
}

fn check_templates(report: &mut Report, policy: &Policy) {
    // A [[digest]] may name a template of its own.
    let own: Vec<&str> = policy
        .digests
        .iter()
        .map(|d| d.template.as_str())
        .filter(|t| !TEMPLATE_NAMES.contains(t))
        .collect();
    let names: Vec<&str> = TEMPLATE_NAMES.iter().copied().chain(own).collect();
    let mut broken = render_all(report, &policy.templates, &names, "");
    // A queue's own folder lies over the desk's, file by file: its mail is
    // rendered from that layered set.
    for q in &policy.queues {
        if let Some(t) = &q.templates {
            broken += render_all(report, t, &names, &format!("queue {}: ", q.name));
        }
    }
    if broken == 0 {
        let sets = 1 + policy
            .queues
            .iter()
            .filter(|q| q.templates.is_some())
            .count();
        let what = if sets == 1 {
            String::new()
        } else {
            format!(" in each of {sets} template sets (the desk's and its queues')")
        };
        report.line(
            Verdict::Ok,
            "templates",
            format!("all {} render with sample data{what}", names.len()),
        );
    }
}

/// Renders every template of one set; returns how many are broken, each
/// reported (prefixed with `label`).
fn render_all(report: &mut Report, templates: &Templates, names: &[&str], label: &str) -> usize {
    let ctx = sample_context();
    let mut broken = 0;
    for name in names {
        if BODY_ONLY.contains(name) {
            if let Err(e) = templates.render_body(name, &ctx) {
                broken += 1;
                report.line(Verdict::Fail, "template", format!("{label}{e}"));
            }
            continue;
        }
        match templates.render(name, &ctx) {
            Ok(r) if r.subject.trim().is_empty() => {
                broken += 1;
                report.line(
                    Verdict::Fail,
                    "template",
                    format!("{label}{name}: the subject renders empty"),
                );
            }
            Ok(_) => {}
            Err(e) => {
                broken += 1;
                report.line(Verdict::Fail, "template", format!("{label}{e}"));
            }
        }
    }
    broken
}

fn check_state_dir(report: &mut Report, dir: &Path) {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(_) => {
            report.line(
                Verdict::Warn,
                "state directory",
                format!(
                    "{} does not exist yet (the daemon creates it)",
                    dir.display()
                ),
            );
            return;
        }
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mode = meta.permissions().mode() & 0o777;
    let detail = format!(
        "{} (owner uid {}, mode {mode:04o})",
        dir.display(),
        meta.uid()
    );
    if mode & 0o002 != 0 {
        report.line(
            Verdict::Fail,
            "state directory",
            format!("{detail}: anyone may write to it; chmod o-w"),
        );
    } else if meta.uid() != me && me != 0 {
        report.line(
            Verdict::Warn,
            "state directory",
            format!("{detail}: not yours (uid {me}); run doctor as its owner to check the store"),
        );
    } else {
        report.line(Verdict::Ok, "state directory", detail);
    }
}

async fn check_store(report: &mut Report, config: &Config) {
    match control::ask(&config.desk.control_socket, &Query::Stats).await {
        Ok(Some(Answer::Stats { stats })) => {
            report.line(
                Verdict::Ok,
                "store",
                format!(
                    "in use by the running daemon, which answers ({} tickets, {} mails waiting to be sent)",
                    stats.tickets, stats.outbox_pending
                ),
            );
            return;
        }
        Ok(Some(_)) | Err(_) => {
            report.line(
                Verdict::Fail,
                "store",
                format!(
                    "the control socket {} exists but the daemon does not answer properly",
                    config.desk.control_socket.display()
                ),
            );
            return;
        }
        Ok(None) => {}
    }
    let storage = config.desk.storage.clone();
    if !storage.exists() {
        report.line(
            Verdict::Warn,
            "store",
            "no store yet (the daemon makes it at its first start)",
        );
        return;
    }
    let options = crate::daemon::store_options(config);
    let opened = tokio::task::spawn_blocking(move || {
        Store::open_with(&storage, options).map(|s| s.ticket_count())
    })
    .await;
    match opened {
        Ok(Ok(n)) => report.line(
            Verdict::Ok,
            "store",
            format!("opens, {n} tickets (no daemon running)"),
        ),
        Ok(Err(e)) => report.line(Verdict::Fail, "store", e),
        Err(_) => report.line(Verdict::Fail, "store", "opening it failed unexpectedly"),
    }
}

async fn check_mailbox(report: &mut Report, m: &MailboxConfig) {
    let what = format!("mailbox {}", m.name);
    let mut session = match crate::daemon::imap_login::connect(m).await {
        Ok(s) => s,
        Err(e) => return report.line(Verdict::Fail, &what, e),
    };
    report.line(
        Verdict::Ok,
        &what,
        format!("logged in to {}:{} as {}", m.host, m.port, m.user),
    );
    // EXAMINE, not SELECT: the check must not change flags or recent state.
    match imap::bounded(m, "open the folder", session.examine(&m.folder)).await {
        Ok(mb) => report.line(
            Verdict::Ok,
            &what,
            format!("folder \"{}\" holds {} mail(s)", m.folder, mb.exists),
        ),
        Err(e) => report.line(
            Verdict::Fail,
            &what,
            format!("folder \"{}\" cannot be opened: {e}", m.folder),
        ),
    }
    if let AfterProcessing::MoveTo(target) = &m.after_processing {
        match imap::bounded(m, "open the move target", session.examine(target)).await {
            Ok(_) => report.line(Verdict::Ok, &what, format!("move target \"{target}\" exists")),
            Err(_) => report.line(
                Verdict::Warn,
                &what,
                format!("move target \"{target}\" does not exist yet (deskgate creates it at the first move)"),
            ),
        }
    }
    let _ = imap::bounded(m, "log out", session.logout()).await;
}

async fn check_smtp(report: &mut Report, config: &Config) {
    let what = "smtp";
    let smtp = &config.smtp;
    let pool = match outbox::transport(smtp) {
        Ok(p) => p,
        Err(e) => return report.line(Verdict::Fail, what, e),
    };
    let auth = if smtp.credentials.is_some() || smtp.oauth2.is_some() {
        ", logged in"
    } else {
        ""
    };
    match pool.check().await {
        Ok(()) => report.line(
            Verdict::Ok,
            what,
            format!("{}:{} answers{auth} (nothing sent)", smtp.host, smtp.port),
        ),
        Err(e) => report.line(Verdict::Fail, what, e),
    }
}
