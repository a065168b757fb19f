//! `deskgate rules test`: the real engine on a throwaway store, so an admin
//! sees what a mail would do (rules, ticket, mails) before it arrives.

use std::sync::Arc;

use anyhow::Result;

use crate::config::Config;
use crate::desk::policy::Policy;
use crate::engine::clock::SystemClock;
use crate::engine::Engine;
use crate::store::Store;

/// Runs the real engine on a throwaway store and describes what happened.
pub fn dry_run(config: &Config, raw: &[u8], mailbox: &str) -> Result<String> {
    use std::fmt::Write as _;
    let policy = Policy::from_config(config)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Mail at mailbox \"{mailbox}\" (dry run: nothing is stored or sent)"
    );
    if let Ok(mail) = crate::mail::parse::parse(raw) {
        let class = crate::mail::classify::classify(&mail, &policy.desk.address);
        let _ =
            writeln!(
            out,
            "  From: {}\n  Subject: {}\n  Classified as: {class:?}\n\nRules (as for a new ticket):",
            mail.from.as_ref().map(|p| p.display()).unwrap_or_else(|| "(none)".into()),
            mail.subject
        );
        let facts = crate::desk::routing::MailFacts::new(&mail, mailbox, mail.headers.clone());
        let (_, trace) = crate::desk::routing::evaluate(&policy.rules, &facts, false);
        out.push_str(&crate::desk::routing::render_trace(&trace));
    }
    let engine = Engine::new(Store::temporary()?, Arc::new(SystemClock), policy);
    let outcome = engine.ingest(raw, mailbox)?;
    let _ = writeln!(out, "\nOutcome: {outcome:?}");
    if let Some(t) = engine.store().tickets().next().transpose()? {
        let _ = writeln!(
            out,
            "  ticket:   #{} (the real number is assigned on arrival)\n  team:     {}\n  priority: {}\n  assignee: {}\n  tags:     {}",
            t.id,
            t.team.as_deref().unwrap_or("-"),
            t.priority,
            t.assignee.as_deref().unwrap_or("-"),
            if t.tags.is_empty() { "-".to_string() } else { t.tags.join(" ") }
        );
        for e in engine.store().events(t.id)? {
            if let crate::store::records::EventKind::AckSkipped { reason }
            | crate::store::records::EventKind::AutoReplyHeld { reason, .. } = &e.kind
            {
                let _ = writeln!(out, "  note:     {reason}");
            }
        }
    }
    let outbox = engine.store().outbox()?;
    let _ = writeln!(out, "\nMails that would be sent: {}", outbox.len());
    for e in &outbox {
        let recipients: Vec<String> = e.recipients.iter().map(|r| r.to_string()).collect();
        let _ = writeln!(out, "\n--- {} to {} ---", e.kind, recipients.join(", "));
        // Headers as sent, body decoded (the wire form is quoted-printable).
        let formatted = e.formatted()?;
        let raw = formatted.replace("\r\n", "\n");
        let headers = raw.split("\n\n").next().unwrap_or("");
        let body = crate::mail::parse::parse(formatted.as_bytes())
            .map(|m| m.text)
            .unwrap_or_default();
        let _ = writeln!(out, "{headers}\n\n{}", body.trim_end());
    }
    Ok(out)
}
