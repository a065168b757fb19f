//! Classification: is this mail from a person, from a machine, a delivery
//! report, or our own mail come back? Decided before threading, because only
//! a person's mail may ever be answered automatically (RFC 3834).

use crate::mail::address::EmailAddress;
use crate::mail::bounce::looks_like_plain_report;
use crate::mail::parse::InboundMail;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    Human,
    /// Auto-replies, lists, bulk mail, no-reply senders: recorded, never answered.
    Automatic(String),
    /// A delivery status notification (bounce).
    Bounce(String),
    /// Mail that carries our own loop marker or comes from our own address.
    OwnLoop(String),
}

impl Class {
    /// Whether deskgate may send an automatic answer to this mail.
    pub fn may_auto_reply(&self) -> bool {
        matches!(self, Class::Human)
    }
}

const MACHINE_LOCAL_PARTS: &[&str] = &[
    "mailer-daemon",
    "postmaster",
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "do_not_reply",
    "bounce",
    "bounces",
    "auto-reply",
    "autoreply",
];

/// More hops than any real path takes (Postfix gives up at 50): a loop.
const MAX_HOPS: usize = 50;

/// Whether an address belongs to a machine that must never get automatic mail.
pub fn is_machine_address(a: &EmailAddress) -> bool {
    let local = a.local_part().split('+').next().unwrap_or("");
    MACHINE_LOCAL_PARTS.contains(&local)
}

fn from_is_daemon(local: &str) -> bool {
    matches!(
        local,
        "mailer-daemon" | "postmaster" | "mail-daemon" | "maildaemon"
    )
}

/// Subjects of the common non-standard bounces (Exim, qmail, Exchange, Gmail, Postfix).
fn looks_like_bounce_subject(subject: &str) -> bool {
    const PATTERNS: &[&str] = &[
        "undelivered mail returned to sender",
        "delivery status notification",
        "undeliverable",
        "mail delivery failed",
        "failure notice",
        "returned mail",
        "delivery failure",
        "mail delivery system",
        "non remis",
        "unzustellbar",
    ];
    let s = subject.to_lowercase();
    PATTERNS.iter().any(|p| s.contains(p))
}

/// The keyword of an `Auto-Submitted` value (RFC 3834 §5): lower case, with
/// RFC 5322 comments (nested or not) and any `;` parameters removed, so
/// `No (sent by a person)` reads `no`. An unclosed comment leaves no keyword:
/// such a value is not a person's plain `no`.
pub fn auto_submitted_keyword(value: &str) -> Option<String> {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut escaped = false;
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if depth > 0 => escaped = true,
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            ';' if depth == 0 => break,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let keyword = out.trim().to_ascii_lowercase();
    (depth == 0 && !keyword.is_empty()).then_some(keyword)
}

/// The subject RFC 7489 §7.2.1.1 prescribes for DMARC aggregate reports
/// (`Report Domain: … Submitter: … Report-ID: …`): a machine's report sent as
/// an ordinary mail with a zip attached, not as a multipart/report.
fn is_dmarc_aggregate_subject(subject: &str) -> bool {
    let s = subject.to_ascii_lowercase();
    match (
        s.find("report domain:"),
        s.find("submitter:"),
        s.find("report-id:"),
    ) {
        (Some(d), Some(sub), Some(id)) => d < sub && sub < id,
        _ => false,
    }
}

pub fn classify(mail: &InboundMail, desk: &EmailAddress) -> Class {
    let a = &mail.auto;
    if a.x_loop.iter().any(|v| v.contains(desk.as_str())) {
        return Class::OwnLoop(format!("X-Loop names {desk}"));
    }
    let from = mail.from.as_ref().map(|p| &p.address);
    if from == Some(desk) {
        return Class::OwnLoop(format!("sent from {desk} itself"));
    }
    let from_local = from.map(|f| f.local_part()).unwrap_or("");
    if a.content_type == "multipart/report" && a.report_type.as_deref() == Some("delivery-status") {
        return Class::Bounce("multipart/report; report-type=delivery-status".into());
    }
    if a.content_type == "multipart/report" && a.report_type.is_none() && from_is_daemon(from_local)
    {
        return Class::Bounce("multipart/report from a mail server".into());
    }
    if !a.failed_recipients.is_empty() {
        return Class::Bounce("X-Failed-Recipients header".into());
    }
    if from_is_daemon(from_local)
        && (a.null_return_path || looks_like_bounce_subject(&mail.subject))
    {
        return Class::Bounce(format!("from {from_local}@ reporting a delivery failure"));
    }
    if a.content_type == "multipart/report" {
        // Read receipts, abuse feedback (RFC 5965) and any other machine
        // report: a delivery report was caught above.
        return Class::Automatic(match a.report_type.as_deref() {
            Some("disposition-notification") => "read receipt (disposition-notification)".into(),
            Some("feedback-report") => "abuse feedback report (feedback-report)".into(),
            Some(other) => format!("machine report (report-type={other})"),
            None => "machine report (multipart/report)".into(),
        });
    }
    if is_dmarc_aggregate_subject(&mail.subject) {
        return Class::Automatic("DMARC aggregate report".into());
    }
    // A bounce in plain text is known by its shape, not by any product's
    // wording: sent by a mail server (a daemon sender or a null
    // Return-Path) and holding a failed-recipient block or quoted headers.
    if (from_is_daemon(from_local) || a.null_return_path) && looks_like_plain_report(mail) {
        return Class::Bounce(
            "plain-text delivery report (failed recipients or quoted headers)".into(),
        );
    }
    if a.received_count > MAX_HOPS {
        return Class::Automatic(format!("mail loop: {} Received headers", a.received_count));
    }
    if let Some(v) = &a.auto_submitted {
        if auto_submitted_keyword(v).as_deref() != Some("no") {
            return Class::Automatic(format!("Auto-Submitted: {v}"));
        }
    }
    if let Some(p) = &a.precedence {
        if matches!(p.as_str(), "bulk" | "junk" | "list" | "auto_reply") {
            return Class::Automatic(format!("Precedence: {p}"));
        }
    }
    if a.x_autoreply {
        return Class::Automatic("X-Autoreply/X-Autorespond header".into());
    }
    if a.list {
        return Class::Automatic("mailing-list headers (List-Id/List-Unsubscribe)".into());
    }
    if a.null_return_path {
        return Class::Automatic("empty Return-Path".into());
    }
    if let Some(f) = from.filter(|f| is_machine_address(f)) {
        return Class::Automatic(format!("sender {} is a machine address", f));
    }
    Class::Human
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::parse;

    fn class_of(headers: &str) -> Class {
        let raw = format!("{headers}\r\nSubject: x\r\n\r\nbody");
        classify(
            &parse(raw.as_bytes()).unwrap(),
            &EmailAddress::parse("help@desk.test").unwrap(),
        )
    }

    #[test]
    fn human_mail() {
        assert_eq!(class_of("From: a@b.c"), Class::Human);
        assert_eq!(class_of("From: a@b.c\r\nAuto-Submitted: no"), Class::Human);
    }

    #[test]
    fn automatic_mail() {
        assert!(matches!(
            class_of("From: a@b.c\r\nAuto-Submitted: auto-replied"),
            Class::Automatic(_)
        ));
        assert!(matches!(
            class_of("From: a@b.c\r\nPrecedence: bulk"),
            Class::Automatic(_)
        ));
        assert!(matches!(
            class_of("From: a@b.c\r\nX-Autoreply: yes"),
            Class::Automatic(_)
        ));
        assert!(matches!(
            class_of("From: a@b.c\r\nList-Id: <l.b.c>"),
            Class::Automatic(_)
        ));
        assert!(matches!(
            class_of("From: no-reply@b.c"),
            Class::Automatic(_)
        ));
        assert!(matches!(
            class_of("From: a@b.c\r\nReturn-Path: <>"),
            Class::Automatic(_)
        ));
    }

    #[test]
    fn own_loop() {
        assert!(matches!(
            class_of("From: a@b.c\r\nX-Loop: help@desk.test"),
            Class::OwnLoop(_)
        ));
        assert!(matches!(
            class_of("From: Help@Desk.test"),
            Class::OwnLoop(_)
        ));
    }

    #[test]
    fn suppress_request_is_still_human() {
        let raw = "From: a@b.c\r\nX-Auto-Response-Suppress: All\r\nSubject: x\r\n\r\nbody";
        let m = parse(raw.as_bytes()).unwrap();
        assert!(m.auto.suppress_auto_response);
        assert_eq!(
            classify(&m, &EmailAddress::parse("help@desk.test").unwrap()),
            Class::Human
        );
    }

    #[test]
    fn non_standard_bounces() {
        assert!(matches!(class_of("From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\nX-Failed-Recipients: x@y.z"), Class::Bounce(_)));
        let c = class_of("From: postmaster@mx.example\r\nSubject: Undeliverable: hello");
        // class_of appends its own Subject; the first one wins in the parser.
        assert!(matches!(c, Class::Bounce(_) | Class::Automatic(_)), "{c:?}");
    }

    #[test]
    fn bounces() {
        let c = class_of("From: MAILER-DAEMON@mx.b.c\r\nReturn-Path: <>\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=x");
        assert!(matches!(c, Class::Bounce(_)), "{c:?}");
    }

    fn class_of_raw(raw: &str) -> Class {
        classify(
            &parse(raw.as_bytes()).unwrap(),
            &EmailAddress::parse("help@desk.test").unwrap(),
        )
    }

    #[test]
    fn auto_submitted_is_read_by_its_keyword() {
        for person in [
            "No (sent by a person)",
            "NO",
            " no ; comment=x",
            "(typed by hand) no",
            "no (a (nested) comment)",
        ] {
            assert_eq!(
                class_of(&format!("From: a@b.c\r\nAuto-Submitted: {person}")),
                Class::Human,
                "{person}"
            );
        }
        for machine in [
            "auto-replied (vacation)",
            "Auto-Generated",
            "(no) auto-notified",
            "(unclosed",
        ] {
            assert!(
                matches!(
                    class_of(&format!("From: a@b.c\r\nAuto-Submitted: {machine}")),
                    Class::Automatic(_)
                ),
                "{machine}"
            );
        }
    }

    #[test]
    fn machine_reports_are_automatic() {
        for report in ["feedback-report", "something-new"] {
            let c = class_of(&format!(
                "From: fbl@isp.example\r\nContent-Type: multipart/report; report-type={report}; boundary=x"
            ));
            assert!(matches!(c, Class::Automatic(_)), "{report}: {c:?}");
        }
        let c = class_of("From: fbl@isp.example\r\nContent-Type: multipart/report; boundary=x");
        assert!(matches!(c, Class::Automatic(_)), "{c:?}"); // A DMARC aggregate report (RFC 7489 §7.2.1.1) is a zip, not a multipart/report.
        let dmarc = "From: dmarc@reports.example\r\nSubject: Report Domain: desk.test Submitter: reports.example Report-ID: <42>\r\nContent-Type: application/zip\r\n\r\nUEsDBA==";
        assert!(matches!(class_of_raw(dmarc), Class::Automatic(_)));
        let person = "From: alice@customer.test\r\nSubject: Report domain question\r\n\r\nhi";
        assert_eq!(class_of_raw(person), Class::Human);
    }

    #[test]
    fn plain_text_bounces_are_recognised_by_structure() {
        let null_path = "Return-Path: <>\r\nFrom: Mail System <mail-system@relay.example>\r\nSubject: Your message could not be sent\r\n\r\nSorry.\r\n\r\n  <gone@x.example>: host mx.x.example said:\r\n    550 5.1.1 User unknown\r\n";
        assert!(matches!(class_of_raw(null_path), Class::Bounce(_)));
        let daemon = "Return-Path: <mailer-daemon@relay.example>\r\nFrom: MAILER-DAEMON@relay.example\r\nSubject: Nachricht nicht zugestellt\r\n\r\nDie Nachricht kam nicht an.\r\n\r\n--- Kopie der Kopfzeilen ---\r\nFrom: Help <help@desk.test>\r\nSubject: [#7] hi\r\nMessage-ID: <dg.7.ack.x@desk.test>\r\n";
        assert!(matches!(class_of_raw(daemon), Class::Bounce(_)));
        // A daemon's digest without a failed recipient or quoted headers is not a report.
        let digest = "Return-Path: <mailer-daemon@relay.example>\r\nFrom: MAILER-DAEMON@relay.example\r\nSubject: Spam quarantine summary\r\n\r\n3 messages are held for you.\r\n";
        assert!(matches!(class_of_raw(digest), Class::Automatic(_)));
        // A person who quotes a bounce is still a person.
        let person = "From: alice@customer.test\r\nSubject: Mail delivery failed?\r\n\r\nI got this:\r\n  <gone@x.example>: host said: 550 5.1.1 User unknown\r\n";
        assert_eq!(class_of_raw(person), Class::Human);
    }
}
