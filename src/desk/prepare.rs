//! The pure stage before the store: parse, classify and find the threading
//! keys of a mail. Runs on any thread (a large batch is prepared on a helper
//! thread while the transaction applies the mails before it).

use chrono::{DateTime, Utc};

use crate::desk::policy::Policy;
use crate::desk::threading::{thread_keys, ThreadKeys};
use crate::mail::classify::{classify, Class};
use crate::mail::parse::{parse, sha256_hex, InboundMail};
use crate::mail::text::trim_quoted;
use crate::store::records::{AttachmentMeta, Direction, MessageRecord};

/// What can be worked out about a mail before looking at the store.
pub struct Prepared<'a> {
    pub raw: &'a [u8],
    pub dedupe_key: String,
    pub parsed: Result<ParsedParts, String>,
}

pub struct ParsedParts {
    pub mail: InboundMail,
    pub class: Class,
    pub keys: ThreadKeys,
    pub record: MessageRecord,
    /// Over the size limit: text kept, attachments and raw bytes not stored
    /// (the original stays on the IMAP server).
    pub oversized: bool,
}

impl<'a> Prepared<'a> {
    pub fn new(raw: &'a [u8], policy: &Policy, now: DateTime<Utc>) -> Prepared<'a> {
        match parse(raw) {
            Ok(mail) => {
                let oversized = raw.len() as u64 > policy.limits.max_message_size;
                Prepared {
                    raw,
                    dedupe_key: mail.dedupe_key(),
                    parsed: Ok(ParsedParts {
                        class: policy
                            .queue_loop(&mail)
                            .unwrap_or_else(|| classify(&mail, &policy.desk.address)),
                        keys: thread_keys(
                            &policy.matcher,
                            &mail.subject,
                            &mail.in_reply_to,
                            &mail.references,
                        ),
                        record: inbound_record(&mail, now, oversized),
                        oversized,
                        mail,
                    }),
                }
            }
            Err(e) => Prepared {
                raw,
                dedupe_key: format!("sha256:{}", sha256_hex(raw)),
                parsed: Err(e.to_string()),
            },
        }
    }
}

/// The stored form of an incoming mail. Attachments over the size limit are
/// listed but marked dropped.
pub fn inbound_record(mail: &InboundMail, now: DateTime<Utc>, oversized: bool) -> MessageRecord {
    let mut text = trim_quoted(&mail.text);
    let attachments: Vec<AttachmentMeta> = mail
        .attachments
        .iter()
        .map(|a| AttachmentMeta {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.bytes.len() as u64,
            sha256: if oversized {
                String::new()
            } else {
                sha256_hex(&a.bytes)
            },
            dropped: oversized,
        })
        .collect();
    if oversized {
        for a in &attachments {
            text.push_str(&format!(
                "\n[deskgate: attachment \"{}\" ({} bytes) was not kept: the mail was over the size limit; the original stays in the mailbox]",
                a.name, a.size
            ));
        }
    }
    MessageRecord {
        ticket: 0,
        seq: 0,
        direction: Direction::Inbound,
        from: mail.from.clone(),
        to: mail.to.clone(),
        cc: mail.cc.clone(),
        subject: mail.subject.clone(),
        date: mail.date,
        recorded_at: now,
        message_id: mail.message_id.clone(),
        text,
        attachments,
        raw_key: (!oversized).then(|| crate::store::raw_key(now, &mail.raw_sha256)),
        kind: None,
    }
}
