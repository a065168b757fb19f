//! The reports the timer pass mails: each `[[digest]]` once per period, and
//! the reports asked for at `help+report@`.
//!
//! A digest is due when its latest send time (`desk::digest::latest_run`)
//! is after the period it was last sent for. Its figures are read from the
//! store first (outside any transaction: a report reads every ticket), then
//! one transaction checks the mark again, queues every recipient's mail and
//! moves the mark: a crash before the commit sends it on the next pass, a
//! crash after it never twice. A daemon that was down at the send time
//! sends the latest period when it is back, not every period it missed.
//!
//! Runs on the blocking side (the timer task calls it in `spawn_blocking`).

use tracing::{info, warn};

use crate::config::checked::{Digest, DigestReport};
use crate::desk::digest::{self, Addressed, Content, Period};
use crate::desk::report::{Filter, Report, Spec};
use crate::desk::report_text;
use crate::engine::{Engine, EngineError};
use crate::store::digests::ReportRequest;

/// Requests answered per pass: the rest wait for the next one.
const REQUESTS_PER_PASS: usize = 20;

impl Engine {
    /// Sends every digest that is due and answers the reports asked for by
    /// mail. Returns how many mails were queued.
    pub fn run_digests(&self) -> Result<usize, EngineError> {
        let policy = self.policy();
        let mut queued = 0;
        for d in &policy.digests {
            queued += self.run_digest(d)?;
        }
        for r in self.store.report_requests(REQUESTS_PER_PASS)? {
            queued += self.answer_request(&r)?;
        }
        Ok(queued)
    }

    fn run_digest(&self, d: &Digest) -> Result<usize, EngineError> {
        let policy = self.policy();
        let (tz, now) = (policy.timezone, self.now());
        let Some(run) = digest::latest_run(&d.every, tz, now) else {
            return Ok(0);
        };
        let sent = |last: Option<chrono::DateTime<chrono::Utc>>| last.is_some_and(|s| s >= run);
        if sent(self.store.digest_sent(&d.name)?) {
            return Ok(0);
        }
        let Some(periods) = digest::periods(d, tz, run) else {
            return Ok(0);
        };
        let content = self.digest_content(d, periods)?;
        let to = digest::recipients(&policy, d);
        let (queued, skipped) = self.store.transact(|tx| {
            if sent(tx.digest_sent(&d.name)?) {
                return Ok((0, Vec::new()));
            }
            let mut queued = 0;
            let mut skipped = Vec::new();
            for p in &to {
                let m = Addressed {
                    name: &d.name,
                    template: &d.template,
                    to: p,
                    request: None,
                    in_reply_to: None,
                };
                match digest::queue(tx, &policy, &content, m, now)? {
                    Ok(()) => queued += 1,
                    Err(why) => skipped.push(format!("{}: {why}", p.address)),
                }
            }
            tx.set_digest_sent(&d.name, run)?;
            Ok((queued, skipped))
        })?;
        for why in skipped {
            warn!(digest = %d.name, "digest not sent to {why}");
        }
        info!(digest = %d.name, period = %run, mails = queued, "digest queued");
        Ok(queued)
    }

    fn digest_content(&self, d: &Digest, periods: digest::Periods) -> Result<Content, EngineError> {
        let tz = self.policy().timezone;
        match &d.report {
            DigestReport::Report {
                by,
                team,
                agent,
                tag,
                ..
            } => {
                let spec = |p: Period| {
                    let filter = Filter {
                        team: team.clone(),
                        agent: agent.clone(),
                        tag: tag.clone(),
                    };
                    digest::spec(by.as_deref(), filter, p)
                };
                let (cur, prev) = (spec(periods.current), spec(periods.previous));
                let cur = crate::engine::views::report(self, &cur)?;
                let prev = crate::engine::views::report(self, &prev)?;
                let mut c = self.report_content(&cur, tz, periods.current);
                c.previous = Some(periods.previous);
                c.headline = digest::comparisons(&cur, &prev, &digest::previous_word(d));
                Ok(c)
            }
            DigestReport::Recurring { min, .. } => {
                let (p, before) = (periods.current, periods.previous);
                let r = crate::engine::recurring::compared(self.store(), p, before, *min)?;
                let word = digest::previous_word(d);
                let table = report_text::recurring(
                    &r.compared.clusters(),
                    p.since,
                    p.until,
                    r.tickets_read,
                    r.truncated,
                    tz,
                );
                let csv = report_text::recurring_csv(&r.compared.issues)
                    .ok()
                    .map(|text| (digest::csv_name("recurring", tz, p), text));
                Ok(Content {
                    report: "recurring",
                    period: p,
                    previous: Some(before),
                    headline: r.compared.lines(&word),
                    table,
                    csv,
                })
            }
        }
    }

    fn report_content(&self, r: &Report, tz: chrono_tz::Tz, p: Period) -> Content {
        let csv = match report_text::csv(r) {
            Ok(text) => Some((digest::csv_name("report", tz, p), text)),
            Err(e) => {
                warn!(error = %e, "report sent without its CSV");
                None
            }
        };
        Content {
            report: "report",
            period: p,
            previous: None,
            headline: Vec::new(),
            table: report_text::text(r, tz),
            csv,
        }
    }

    /// Answers one request from `help+report@` in the transaction that
    /// removes it. Its line was read when it was filed; one that no longer
    /// reads (a release that changed the words) is dropped with a warning.
    fn answer_request(&self, r: &ReportRequest) -> Result<usize, EngineError> {
        let policy = self.policy();
        let (tz, now) = (policy.timezone, self.now());
        let spec: Option<Spec> = crate::desk::report_mail::parse(&r.line, tz, now).ok();
        let content = match &spec {
            Some(s) => {
                let report = crate::engine::views::report(self, s)?;
                Some(self.report_content(
                    &report,
                    tz,
                    Period {
                        since: s.since,
                        until: s.until,
                    },
                ))
            }
            None => None,
        };
        let outcome = self.store.transact(|tx| {
            if !tx.take_report_request(r.id)? {
                return Ok(None);
            }
            let Some(content) = &content else {
                return Ok(Some(Err("its options no longer read".to_string())));
            };
            let m = Addressed {
                name: "report",
                template: crate::config::DEFAULT_DIGEST_TEMPLATE,
                to: &r.to,
                request: Some(&r.line),
                in_reply_to: r.message_id.clone(),
            };
            Ok(Some(digest::queue(tx, &policy, content, m, now)?))
        })?;
        match outcome {
            Some(Ok(())) => {
                info!(to = %r.to.address, request = %r.line, "report sent by mail");
                Ok(1)
            }
            Some(Err(why)) => {
                warn!(to = %r.to.address, request = %r.line, "report asked by mail not sent: {why}");
                Ok(0)
            }
            None => Ok(0),
        }
    }
}
