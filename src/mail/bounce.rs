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
    for src in &sources {
        for c in message_id_re().captures_iter(src) {
            if let Some(id) = c.get(1).and_then(|m| clean_message_id(m.as_str())) {
                if Some(id.as_str()) != own && !report.original_ids.contains(&id) {
                    report.original_ids.push(id);
                }
            }
        }
        parse_dsn_fields(src, &mut report.failed, &mut report.delayed);
        parse_qmail(src, &mut report.failed);
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
/// `Action`, `Status` and `Diagnostic-Code` complete.
fn parse_dsn_fields(text: &str, out: &mut Vec<FailedRecipient>, delayed: &mut Vec<String>) {
    let mut current: Option<(FailedRecipient, Option<String>)> = None;
    let mut finish = |cur: Option<(FailedRecipient, Option<String>)>,
                      out: &mut Vec<FailedRecipient>| {
        if let Some((mut f, action)) = cur {
            let action = action.unwrap_or_default();
            if action == "delivered" || action == "relayed" || action == "expanded" {
                return;
            }
            if action == "delayed" {
                if !delayed.contains(&f.address) {
                    delayed.push(f.address);
                }
                return;
            }
            f.hard = match &f.status {
                Some(s) => s.starts_with('5'),
                None => action == "failed",
            };
            if !out.iter().any(|o| o.address == f.address) {
                out.push(f);
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
                finish(current.take(), out);
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
    finish(current, out);
}

/// qmail's bounces: "<addr>:" on a line of its own, then the remote reply.
fn parse_qmail(text: &str, out: &mut Vec<FailedRecipient>) {
    if !text.contains("qmail-send") {
        return;
    }
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let Some(addr) = t.strip_prefix('<').and_then(|r| r.strip_suffix(">:")) else {
            continue;
        };
        if !addr.contains('@')
            || addr.chars().any(char::is_whitespace)
            || out.iter().any(|f| f.address == addr)
        {
            continue;
        }
        let diagnostic = lines
            .get(i + 1)
            .map(|l| crate::mail::text::clean_header_text(l, 300));
        out.push(FailedRecipient {
            address: addr.to_ascii_lowercase(),
            status: None,
            diagnostic,
            // qmail bounces only what it gave up on.
            hard: true,
        });
    }
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
}
