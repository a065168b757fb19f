//! Reading delivery reports (bounces): which of our mails they report on and
//! which recipients failed, from RFC 3464 reports and the common
//! non-standard forms (Exim, Gmail, Exchange). Pure.

use std::sync::OnceLock;

use regex::Regex;

use crate::mail::parse::{clean_message_id, InboundMail};

/// Most bytes of any one part that are searched (reports are small; the
/// returned original may be large).
const SCAN_LIMIT: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BounceReport {
    /// Message-IDs quoted from the original mail, most likely first.
    pub original_ids: Vec<String>,
    /// Recipients the report says failed (permanently or not).
    pub failed: Vec<FailedRecipient>,
    /// Recipients only delayed: still being tried, not failures.
    pub delayed: Vec<String>,
    /// Recipients the report says our mail reached.
    pub delivered: Vec<DeliveredRecipient>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredRecipient {
    pub address: String,
    /// `delivered`, `relayed` or `expanded`.
    pub action: String,
}

/// Lines of context searched after an address for the server's reply.
const BLOCK_LINES: usize = 3;
/// Lines within which quoted From, Message-ID and one more header must stand.
const HEADER_WINDOW: usize = 12;

/// Whether a mail without a machine-readable report has the shape of a
/// bounce: a failed-recipient block (an address followed by a server's
/// reply code) or the quoted headers of the original, in its text or as an
/// attached message. Says nothing about who sent it; the caller checks
/// that it came from a mail server.
pub fn looks_like_plain_report(mail: &InboundMail) -> bool {
    let text: String = mail.text.chars().take(SCAN_LIMIT).collect();
    mail.attachments
        .iter()
        .any(|a| a.content_type == "message/rfc822" || a.content_type == "text/rfc822-headers")
        || !recipient_blocks(&text).is_empty()
        || quotes_headers(&text)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecipient {
    pub address: String,
    /// RFC 3463 status such as `5.1.1`, when the report has one.
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    /// A permanent failure (5.x.x, or `Action: failed` without a status).
    pub hard: bool,
}

fn message_id_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?im)^[ \t>]*Message-ID:[ \t]*<?([^\s<>]+@[^\s<>]+)>?").expect("static regex")
    })
}

pub fn parse_report(mail: &InboundMail) -> BounceReport {
    let mut sources: Vec<String> = Vec::new();
    for a in &mail.attachments {
        let end = a.bytes.len().min(SCAN_LIMIT);
        sources.push(String::from_utf8_lossy(&a.bytes[..end]).into_owned());
    }
    sources.push(mail.text.chars().take(SCAN_LIMIT).collect());

    let mut report = BounceReport::default();
    let own = mail.message_id.as_deref();
    let mut machine_readable = false;
    for src in &sources {
        for c in message_id_re().captures_iter(src) {
            if let Some(id) = c.get(1).and_then(|m| clean_message_id(m.as_str())) {
                if Some(id.as_str()) != own && !report.original_ids.contains(&id) {
                    report.original_ids.push(id);
                }
            }
        }
        machine_readable |= parse_dsn_fields(src, &mut report);
    }
    if !machine_readable {
        // No RFC 3464 fields: the report is prose, read its recipient blocks.
        for src in &sources {
            for f in recipient_blocks(src) {
                if !report.failed.iter().any(|o| o.address == f.address) {
                    report.failed.push(f);
                }
            }
        }
    }
    for r in &mail.auto.failed_recipients {
        if !report.failed.iter().any(|f| f.address == *r) {
            report.failed.push(FailedRecipient {
                address: r.clone(),
                status: None,
                diagnostic: None,
                hard: true,
            });
        }
    }
    report
}

/// RFC 3464 per-recipient fields: a `Final-Recipient` starts a block that
/// `Action`, `Status` and `Diagnostic-Code` complete. Returns whether any
/// such block was found.
fn parse_dsn_fields(text: &str, report: &mut BounceReport) -> bool {
    let mut current: Option<(FailedRecipient, Option<String>)> = None;
    let mut found = false;
    let finish = |cur: Option<(FailedRecipient, Option<String>)>, report: &mut BounceReport| {
        if let Some((mut f, action)) = cur {
            let action = action.unwrap_or_default();
            if action == "delivered" || action == "relayed" || action == "expanded" {
                if !report.delivered.iter().any(|d| d.address == f.address) {
                    report.delivered.push(DeliveredRecipient {
                        address: f.address,
                        action,
                    });
                }
                return;
            }
            if action == "delayed" {
                if !report.delayed.contains(&f.address) {
                    report.delayed.push(f.address);
                }
                return;
            }
            f.hard = match &f.status {
                Some(s) => s.starts_with('5'),
                None => action == "failed",
            };
            if !report.failed.iter().any(|o| o.address == f.address) {
                report.failed.push(f);
            }
        }
    };
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "final-recipient" => {
                found = true;
                finish(current.take(), report);
                let addr = value.rsplit(';').next().unwrap_or(value).trim();
                let addr = addr
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_ascii_lowercase();
                if addr.contains('@') && addr.len() < 255 && !addr.chars().any(char::is_whitespace)
                {
                    current = Some((
                        FailedRecipient {
                            address: addr,
                            status: None,
                            diagnostic: None,
                            hard: false,
                        },
                        None,
                    ));
                }
            }
            "action" => {
                if let Some((_, a)) = current.as_mut() {
                    *a = Some(value.to_ascii_lowercase());
                }
            }
            "status" => {
                if let Some((f, _)) = current.as_mut() {
                    let code: String = value
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.')
                        .collect();
                    if !code.is_empty() {
                        f.status = Some(code);
                    }
                }
            }
            "diagnostic-code" => {
                if let Some((f, _)) = current.as_mut() {
                    f.diagnostic = Some(crate::mail::text::clean_header_text(value, 300));
                }
            }
            _ => {}
        }
    }
    finish(current, report);
    found
}

/// Failed-recipient blocks of a prose bounce, whatever the product: an
/// address line (`<addr>:` with or without text after it, as qmail and
/// Postfix write, or a bare address, as Exim writes) followed within a few
/// lines by the server's reply. A `<addr>:` line needs no reply code (qmail
/// states none for some failures); a bare address does, or any address in
/// a letter would count.
fn recipient_blocks(text: &str) -> Vec<FailedRecipient> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<FailedRecipient> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let (addr, rest, bracketed) = match t.strip_prefix('<').and_then(|r| r.split_once(">:")) {
            Some((addr, rest)) => (addr, rest, true),
            None => (t, "", false),
        };
        if !plausible_address(addr) || out.iter().any(|f| f.address == addr.to_ascii_lowercase()) {
            continue;
        }
        let mut reply = rest.trim().to_string();
        for l in lines.iter().skip(i + 1).take(BLOCK_LINES) {
            if l.trim().is_empty() {
                break;
            }
            reply.push(' ');
            reply.push_str(l.trim());
        }
        let status = enhanced_status(&reply);
        let code = reply_code(&reply);
        if !bracketed && status.is_none() && code.is_none() {
            continue;
        }
        let hard = match (&status, code) {
            (Some(s), _) => s.starts_with('5'),
            (None, Some(c)) => c.starts_with('5'),
            // qmail bounces only what it gave up on.
            (None, None) => true,
        };
        out.push(FailedRecipient {
            address: addr.to_ascii_lowercase(),
            status,
            diagnostic: (!reply.trim().is_empty())
                .then(|| crate::mail::text::clean_header_text(reply.trim(), 300)),
            hard,
        });
        if out.len() >= 100 {
            break;
        }
    }
    out
}

fn plausible_address(a: &str) -> bool {
    a.len() < 255
        && a.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
        && !a
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | ':' | ',' | '(' | ')'))
}

/// An RFC 3463 status (`5.1.1`) in a server's reply.
fn enhanced_status(reply: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\b([245]\.\d{1,3}\.\d{1,3})\b").expect("static regex"));
    re.captures(reply)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
}

/// An SMTP reply code (`550`) in a server's reply.
fn reply_code(reply: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\b([45][0-5]\d)[ -]").expect("static regex"));
    re.captures(reply)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
}

/// Whether the text quotes a mail's headers: `From:` and `Message-ID:` and
/// one of `To:`, `Subject:` or `Date:` at the start of lines (quoted with
/// `>` or not) within a few lines of each other.
fn quotes_headers(text: &str) -> bool {
    let names: Vec<u8> = text
        .lines()
        .map(|l| {
            let l = l.trim_start_matches(['>', ' ', '\t']);
            let name = l.split_once(':').map(|(n, _)| n.to_ascii_lowercase());
            match name.as_deref() {
                Some("from") => 1,
                Some("message-id") => 2,
                Some("to" | "subject" | "date") => 4,
                _ => 0,
            }
        })
        .collect();
    names
        .windows(HEADER_WINDOW.min(names.len()).max(1))
        .any(|w| w.iter().fold(0, |acc, n| acc | n) == 7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::parse;

    const POSTFIX_DSN: &str = "From: MAILER-DAEMON@mail.test (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: help@desk.test\r\n\
Message-ID: <bounce1@mail.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
\r\n\
--B\r\n\
Content-Type: text/plain\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
--B\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mail.test\r\n\
\r\n\
Final-Recipient: rfc822; ghost@customer.test\r\n\
Original-Recipient: rfc822;ghost@customer.test\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 User doesn't exist: ghost@customer.test\r\n\
--B\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
From: Help <help@desk.test>\r\n\
To: ghost@customer.test\r\n\
Subject: [#1000] Printer\r\n\
Message-ID: <dg.1000.ack.abc@desk.test>\r\n\
--B--\r\n";

    #[test]
    fn reads_postfix_dsn() {
        let m = parse(POSTFIX_DSN.as_bytes()).unwrap();
        let r = parse_report(&m);
        assert_eq!(r.original_ids, vec!["dg.1000.ack.abc@desk.test"]);
        assert_eq!(r.failed.len(), 1);
        let f = &r.failed[0];
        assert_eq!(f.address, "ghost@customer.test");
        assert_eq!(f.status.as_deref(), Some("5.1.1"));
        assert!(f.hard);
        assert!(f
            .diagnostic
            .as_deref()
            .unwrap()
            .contains("User doesn't exist"));
    }

    #[test]
    fn reads_exim_style_plain_bounce() {
        let raw = "From: Mail Delivery System <Mailer-Daemon@mx.example>\r\n\
X-Failed-Recipients: gone@example.org\r\n\
Subject: Mail delivery failed: returning message to sender\r\n\
\r\n\
This message was created automatically by mail delivery software.\r\n\
\r\n\
  gone@example.org\r\n\
    SMTP error from remote mail server after RCPT TO:<gone@example.org>:\r\n\
    550 5.1.1 No such user\r\n\
\r\n\
------ This is a copy of the message, including all the headers. ------\r\n\
\r\n\
Message-ID: <dg.7.ack.x@desk.test>\r\n\
Subject: [#7] hi\r\n";
        let r = parse_report(&parse(raw.as_bytes()).unwrap());
        assert_eq!(r.original_ids, vec!["dg.7.ack.x@desk.test"]);
        assert_eq!(r.failed[0].address, "gone@example.org");
        assert!(r.failed[0].hard);
    }

    #[test]
    fn delayed_is_not_hard() {
        let raw = "From: MAILER-DAEMON@m\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; slow@x.y\r\nAction: delayed\r\nStatus: 4.4.1\r\n--B--\r\n";
        let r = parse_report(&parse(raw.as_bytes()).unwrap());
        assert!(r.failed.is_empty(), "a delay is not a failure");
        assert_eq!(r.delayed, vec!["slow@x.y"]);
    }

    #[test]
    fn reads_qmail() {
        let raw = "From: MAILER-DAEMON@q.example\r\nSubject: failure notice\r\n\r\nHi. This is the qmail-send program at q.example.\r\nI'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n<gone@q.example>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n--- Below this line is a copy of the message.\r\n\r\nMessage-ID: <dg.9.auto.z@desk.test>\r\n";
        let r = parse_report(&parse(raw.as_bytes()).unwrap());
        assert_eq!(r.failed[0].address, "gone@q.example");
        assert!(r.failed[0].hard);
        assert_eq!(r.original_ids, vec!["dg.9.auto.z@desk.test"]);
    }

    #[test]
    fn delivered_is_recorded_not_failed() {
        let raw = "From: MAILER-DAEMON@m\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; ok@x.y\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\nFinal-Recipient: rfc822; fwd@x.y\r\nAction: Relayed\r\nStatus: 2.0.0\r\n--B--\r\n";
        let r = parse_report(&parse(raw.as_bytes()).unwrap());
        assert!(r.failed.is_empty() && r.delayed.is_empty());
        let got: Vec<(&str, &str)> = r
            .delivered
            .iter()
            .map(|d| (d.address.as_str(), d.action.as_str()))
            .collect();
        assert_eq!(got, vec![("ok@x.y", "delivered"), ("fwd@x.y", "relayed")]);
    }

    #[test]
    fn reads_a_plain_text_recipient_block() {
        let raw = "Return-Path: <>\r\nFrom: Mail System <mail-system@relay.example>\r\nSubject: Your message could not be sent\r\n\r\nSorry.\r\n\r\n  <gone@x.example>: host mx.x.example said:\r\n    550 5.1.1 <gone@x.example>: User unknown\r\n\r\n  later@x.example\r\n    451 4.2.0 try again later\r\n\r\n----- Original message headers -----\r\nFrom: Help <help@desk.test>\r\nMessage-ID: <dg.7.ack.x@desk.test>\r\n";
        let m = parse(raw.as_bytes()).unwrap();
        assert!(looks_like_plain_report(&m));
        let r = parse_report(&m);
        assert_eq!(r.original_ids, vec!["dg.7.ack.x@desk.test"]);
        let got: Vec<(&str, Option<&str>, bool)> = r
            .failed
            .iter()
            .map(|f| (f.address.as_str(), f.status.as_deref(), f.hard))
            .collect();
        assert_eq!(
            got,
            vec![
                ("gone@x.example", Some("5.1.1"), true),
                ("later@x.example", Some("4.2.0"), false)
            ]
        );
    }
}
