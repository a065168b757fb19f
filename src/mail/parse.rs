//! Parsing: raw RFC 5322 bytes into an [`InboundMail`], everything deskgate
//! needs from a mail, already sanitised.
//!
//! mail-parser never panics and decodes unknown charsets lossily; this module
//! adds the policy: which header wins, how text is extracted, which
//! attachment names are safe. It is pure and does no I/O.

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::mail::address::{EmailAddress, Party};
use crate::mail::inline::{unnamed_image_name, InlineNames};
use crate::mail::text::{clean_header_text, crlf_to_lf, html_to_text, sanitize_file_name};

/// Longest subject kept; longer ones are cut (a giant header must not become a giant outgoing header).
const MAX_SUBJECT_CHARS: usize = 250;
/// Longest display name kept.
const MAX_NAME_CHARS: usize = 100;
/// Most Message-IDs kept from References or In-Reply-To: a hostile header
/// of thousands of ids costs one pass and this much memory, no more.
const MAX_REFERENCES: usize = 50;
/// How many of those are the oldest ids of the chain. The first id is the
/// thread's root (often the request that opened the ticket) and clients that
/// shorten References keep it (RFC 5322 §3.6.4), so the oldest few are kept
/// along with the newest `MAX_REFERENCES - OLDEST_REFERENCES`.
const OLDEST_REFERENCES: usize = 5;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("cannot parse mail: it is empty")]
    Empty,
    #[error("cannot parse mail: no headers could be read")]
    NoHeaders,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Signals used to tell automatic mail from human mail (RFC 3834 and common practice).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoSignals {
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    pub x_autoreply: bool,
    pub list: bool,
    /// `Return-Path: <>` — the mark of bounces and many auto-replies.
    pub null_return_path: bool,
    pub x_loop: Vec<String>,
    pub content_type: String,
    pub report_type: Option<String>,
    /// `X-Auto-Response-Suppress: All|AutoReply|OOF`: a person's mail that asks
    /// not to be answered automatically (Exchange/Outlook).
    pub suppress_auto_response: bool,
    /// `X-Failed-Recipients` (Exim, Gmail): addresses a bounce reports.
    pub failed_recipients: Vec<String>,
    /// Number of `Received` headers: a mail that went round in circles has many.
    pub received_count: usize,
}

#[derive(Debug, Clone)]
pub struct InboundMail {
    /// Message-ID without angle brackets; `None` when absent.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub from: Option<Party>,
    pub reply_to: Option<Party>,
    pub to: Vec<Party>,
    pub cc: Vec<Party>,
    pub delivered_to: Vec<EmailAddress>,
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    /// Full text (HTML converted), quoted history not yet trimmed.
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub auto: AutoSignals,
    pub size: usize,
    /// SHA-256 of the raw bytes, hex: the key of the stored raw mail.
    pub raw_sha256: String,
    /// Every header (name, value), capped, for routing rules on any header.
    pub headers: Vec<(String, String)>,
    /// Set when the mail names two different senders: which one is real
    /// cannot be known, so it is not filed.
    pub ambiguous: Option<String>,
    /// From names several authors and no Sender says which one sent it:
    /// whom an automatic reply would answer cannot be known.
    pub several_authors: bool,
    /// SHA-256 (hex) of what makes this mail this mail, whichever server
    /// delivered it: From, Subject, Date and the body. Trace headers
    /// (Received, Delivered-To, Return-Path, X-Original-To, …) and the
    /// recipient headers an alias rewrites are left out.
    pub content_sha256: String,
}

impl InboundMail {
    /// The key under which this mail is remembered as processed: its
    /// Message-ID with the hash of its content, or a hash of its bytes when
    /// it has no Message-ID. The same mail delivered twice (other trace
    /// headers) has the same key; a different mail reusing a Message-ID
    /// does not. A keyed lookup (two with the legacy key), whatever the
    /// history.
    pub fn dedupe_key(&self) -> String {
        match &self.message_id {
            Some(id) => {
                let hash = self
                    .content_sha256
                    .get(..32)
                    .unwrap_or(&self.content_sha256);
                format!("mid:{id}#{hash}")
            }
            None => format!("sha256:{}", self.raw_sha256),
        }
    }

    /// The key deskgate used before content hashes (`mid:<Message-ID>`):
    /// mail filed under it by an older version is still a duplicate.
    pub fn legacy_dedupe_key(&self) -> Option<String> {
        self.message_id.as_ref().map(|id| format!("mid:{id}"))
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Parses a raw mail. Only a mail with no readable header at all is an error;
/// everything else yields an `InboundMail` with whatever could be read.
pub fn parse(raw: &[u8]) -> Result<InboundMail, ParseError> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or(ParseError::NoHeaders)?;
    if msg.headers().is_empty() {
        return Err(ParseError::NoHeaders);
    }
    let (attachments, inline) = attachments(&msg);
    let headers: Vec<(&str, &str)> = msg.headers_raw().collect();
    Ok(InboundMail {
        message_id: msg.message_id().and_then(clean_message_id),
        in_reply_to: id_list(msg.in_reply_to(), MAX_REFERENCES),
        references: id_list(msg.references(), MAX_REFERENCES),
        from: sender_of(&msg),
        reply_to: first_party(msg.reply_to()),
        to: parties(msg.to()),
        cc: parties(msg.cc()),
        delivered_to: delivered_to(&headers),
        subject: msg
            .subject()
            .map(|s| clean_header_text(s, MAX_SUBJECT_CHARS))
            .unwrap_or_default(),
        date: msg
            .date()
            .and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single()),
        text: body_text(&msg, &inline),
        attachments,
        auto: auto_signals(&msg, &headers),
        size: raw.len(),
        raw_sha256: sha256_hex(raw),
        ambiguous: ambiguity(&headers),
        several_authors: parties(msg.from()).len() > 1 && first_party(msg.sender()).is_none(),
        content_sha256: content_hash(raw, &headers),
        headers: headers
            .iter()
            .take(500)
            .map(|(n, v)| (n.to_string(), clean_header_text(v, 2000)))
            .collect(),
    })
}

/// Who sent the mail: the From address, or the Sender when From names
/// several authors (RFC 5322 §3.6.2 requires a Sender then).
fn sender_of(msg: &Message<'_>) -> Option<Party> {
    match first_party(msg.sender()) {
        Some(sender) if parties(msg.from()).len() > 1 => Some(sender),
        _ => first_party(msg.from()),
    }
}

/// See [`InboundMail::content_sha256`]. Header values are compared with
/// their whitespace collapsed (a relay may refold them) and the body with
/// CR dropped (a store may turn CRLF into LF).
fn content_hash(raw: &[u8], headers: &RawHeaders<'_>) -> String {
    let mut h = Sha256::new();
    for name in ["From", "Subject", "Date"] {
        for v in header_texts(headers, name) {
            h.update(name.as_bytes());
            h.update(b":");
            for word in v.split_whitespace() {
                h.update(word.as_bytes());
                h.update(b" ");
            }
            h.update(b"\n");
        }
    }
    h.update(b"\n");
    let body = body_start(raw).map_or(&[][..], |i| &raw[i..]);
    for chunk in body.split(|&b| b == b'\r') {
        h.update(chunk);
    }
    hex::encode(h.finalize())
}

/// Where the body starts: after the first empty line. Only the header is
/// read (looking for LF LF and LF CR LF apart read the whole mail).
fn body_start(raw: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = raw[from..].iter().position(|&b| b == b'\n') {
        let lf = from + at;
        match (raw.get(lf + 1), raw.get(lf + 2)) {
            (Some(b'\n'), _) => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
            _ => from = lf + 1,
        }
    }
    None
}

/// Two different From headers (RFC 5322 §3.6 allows one): whom to trust and
/// answer cannot be known. Duplicated Subject or Message-ID headers are only
/// sloppy, and the parser's choice is kept.
fn ambiguity(headers: &RawHeaders<'_>) -> Option<String> {
    let mut senders: Vec<String> = header_texts(headers, "From")
        .map(|v| {
            v.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_lowercase()
        })
        .collect();
    senders.sort();
    senders.dedup();
    (senders.len() > 1).then(|| format!("{} different From headers", senders.len()))
}

/// Strips brackets and whitespace; refuses ids that could not be ours or anyone's.
pub fn clean_message_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if id.is_empty()
        || id.len() > 250
        || id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
    {
        return None;
    }
    Some(id.to_string())
}

fn id_list(v: &HeaderValue<'_>, max: usize) -> Vec<String> {
    let ids: Box<dyn Iterator<Item = String> + '_> = match v {
        HeaderValue::Text(t) => Box::new(t.split_whitespace().filter_map(clean_message_id)),
        HeaderValue::TextList(l) => Box::new(l.iter().filter_map(|t| clean_message_id(t))),
        _ => Box::new(std::iter::empty()),
    };
    keep_oldest_and_newest(ids, OLDEST_REFERENCES.min(max), max)
}

/// The first `oldest` items and the newest ones up to `max` in all, in their
/// order, in one pass holding at most `max` items.
fn keep_oldest_and_newest<T>(items: impl Iterator<Item = T>, oldest: usize, max: usize) -> Vec<T> {
    let mut head: Vec<T> = Vec::with_capacity(oldest);
    let mut tail: std::collections::VecDeque<T> = std::collections::VecDeque::new();
    let newest = max - oldest;
    for item in items {
        if head.len() < oldest {
            head.push(item);
        } else if newest > 0 {
            if tail.len() == newest {
                tail.pop_front();
            }
            tail.push_back(item);
        }
    }
    head.extend(tail);
    head
}

fn party(addr: &mail_parser::Addr<'_>) -> Option<Party> {
    let address = EmailAddress::parse(addr.address()?)?;
    let name = addr
        .name()
        .map(|n| clean_header_text(n, MAX_NAME_CHARS))
        .filter(|n| !n.is_empty());
    Some(Party { name, address })
}

fn parties(a: Option<&Address<'_>>) -> Vec<Party> {
    a.map(|a| a.iter().filter_map(party).take(100).collect())
        .unwrap_or_default()
}

fn first_party(a: Option<&Address<'_>>) -> Option<Party> {
    a.and_then(|a| a.iter().find_map(party))
}

/// Every header as (name, value), read out of the parsed mail once: each
/// lookup by name walks this list instead of decoding every header again.
type RawHeaders<'a> = [(&'a str, &'a str)];

fn header_texts<'a>(
    headers: &'a RawHeaders<'a>,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn delivered_to(headers: &RawHeaders<'_>) -> Vec<EmailAddress> {
    header_texts(headers, "Delivered-To")
        .filter_map(|v| EmailAddress::parse(v.trim_start_matches('<').trim_end_matches('>')))
        .collect()
}

/// The text parts, HTML converted; an inline picture is named where it was.
fn body_text(msg: &Message<'_>, inline: &InlineNames) -> String {
    let mut out = String::new();
    for part in msg.text_bodies() {
        let piece = match &part.body {
            PartType::Text(t) => {
                let t = match flowed_params(part) {
                    Some(delsp) => crate::mail::flowed::decode(t, delsp),
                    None => t.to_string(),
                };
                inline.in_text(&t).into_owned()
            }
            PartType::Html(h) => html_to_text(&inline.in_html(h)),
            _ => continue,
        };
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&piece);
    }
    crlf_to_lf(&out)
}

/// `Some(delsp)` for a `format=flowed` text part (RFC 3676), else `None`.
fn flowed_params(part: &mail_parser::MessagePart<'_>) -> Option<bool> {
    let ct = part.content_type()?;
    let param = |name: &str| {
        ct.attributes()?
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .map(|a| a.value.trim().to_ascii_lowercase())
    };
    (param("format").as_deref() == Some("flowed")).then(|| param("delsp").as_deref() == Some("yes"))
}

/// The attachments, with the names their `Content-ID`s go by (see
/// `mail::inline`): an unnamed image is `image-N.EXT`.
fn attachments(msg: &Message<'_>) -> (Vec<Attachment>, InlineNames) {
    let mut inline = InlineNames::default();
    let files = msg
        .attachments()
        .enumerate()
        .map(|(i, part)| {
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .map(|ct| clean_header_text(&ct.to_ascii_lowercase(), 100))
                .unwrap_or_else(|| "application/octet-stream".into());
            let name = match (part.attachment_name(), part.message()) {
                (None, Some(m)) => {
                    sanitize_file_name(Some(&format!("{}.eml", m.subject().unwrap_or("message"))))
                }
                (None, None) => {
                    sanitize_file_name(unnamed_image_name(&content_type, i + 1).as_deref())
                }
                (name, _) => sanitize_file_name(name),
            };
            if let Some(id) = part.content_id() {
                inline.insert(id, &name);
            }
            Attachment {
                name,
                content_type,
                bytes: part.contents().to_vec(),
            }
        })
        .collect();
    (files, inline)
}

fn auto_signals(msg: &Message<'_>, headers: &RawHeaders<'_>) -> AutoSignals {
    let first = |name: &str| {
        header_texts(headers, name)
            .next()
            .map(|v| v.to_ascii_lowercase())
    };
    let (content_type, report_type) = match msg.root_part().content_type() {
        Some(ct) => (
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase(),
            ct.attribute("report-type").map(|r| r.to_ascii_lowercase()),
        ),
        None => ("text/plain".into(), None),
    };
    AutoSignals {
        auto_submitted: first("Auto-Submitted"),
        precedence: first("Precedence"),
        x_autoreply: ["X-Autoreply", "X-Autorespond", "X-Autoresponse"]
            .iter()
            .any(|h| header_texts(headers, h).next().is_some()),
        suppress_auto_response: header_texts(headers, "X-Auto-Response-Suppress").any(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("all") || v.contains("autoreply") || v.contains("oof")
        }),
        failed_recipients: header_texts(headers, "X-Failed-Recipients")
            .flat_map(|v| v.split(','))
            .filter_map(|a| {
                EmailAddress::parse(a.trim().trim_start_matches('<').trim_end_matches('>'))
            })
            .map(|a| a.to_string())
            .take(100)
            .collect(),
        list: first("List-Id").is_some() || first("List-Unsubscribe").is_some(),
        null_return_path: header_texts(headers, "Return-Path")
            .any(|v| v.trim_matches(|c: char| c.is_whitespace()) == "<>"),
        received_count: header_texts(headers, "Received").count(),
        x_loop: header_texts(headers, "X-Loop")
            .map(|v| v.to_ascii_lowercase())
            .collect(),
        content_type,
        report_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMPLE: &[u8] = b"From: Alice Example <Alice@Customer.test>\r\n\
To: help@desk.test\r\n\
Cc: Bob <bob@customer.test>, carol@customer.test\r\n\
Subject: Printer on fire\r\n\
Message-ID: <abc@customer.test>\r\n\
Date: Mon, 3 Mar 2025 10:00:00 +0100\r\n\
\r\n\
It is really on fire.\r\n";

    #[test]
    fn parses_simple_mail() {
        let m = parse(SIMPLE).unwrap();
        assert_eq!(m.message_id.as_deref(), Some("abc@customer.test"));
        let from = m.from.clone().unwrap();
        assert_eq!(from.address.as_str(), "alice@customer.test");
        assert_eq!(from.name.as_deref(), Some("Alice Example"));
        assert_eq!(m.cc.len(), 2);
        assert_eq!(m.subject, "Printer on fire");
        assert_eq!(m.text.trim(), "It is really on fire.");
        assert_eq!(m.date.unwrap().to_rfc3339(), "2025-03-03T09:00:00+00:00");
        assert!(m.dedupe_key().starts_with("mid:abc@customer.test#"));
    }

    #[test]
    fn the_body_starts_where_it_did_before_the_header_only_search() {
        fn as_before(raw: &[u8]) -> Option<usize> {
            let lf = raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
            let crlf = raw.windows(3).position(|w| w == b"\n\r\n").map(|i| i + 3);
            match (lf, crlf) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        for raw in [
            &b""[..],
            b"\n",
            b"\n\n",
            b"\n\r",
            b"\n\r\n",
            b"\r\n\r\n",
            b"a: b\r\nc: d\r\n\r\nbody\n\nmore",
            b"a: b\nc: d\n\nbody\r\n\r\n",
            b"a\n\r\n\n",
            b"a\n\rx\n\n",
            b"no empty line\r\nat all\r\n",
        ] {
            assert_eq!(body_start(raw), as_before(raw), "{raw:?}");
        }
        assert_eq!(body_start(SIMPLE), as_before(SIMPLE));
    }

    #[test]
    fn references_and_in_reply_to() {
        let raw = b"From: a@b.c\r\nIn-Reply-To: <x@y>\r\nReferences: <r1@y> <r2@y>\r\n  <r3@y>\r\nSubject: Re: hi\r\n\r\nbody";
        let m = parse(raw).unwrap();
        assert_eq!(m.in_reply_to, vec!["x@y"]);
        assert_eq!(m.references, vec!["r1@y", "r2@y", "r3@y"]);
    }

    #[test]
    fn no_message_id_dedupes_by_hash() {
        let m = parse(b"From: a@b.c\r\nSubject: x\r\n\r\nbody").unwrap();
        assert!(m.message_id.is_none());
        assert!(m.dedupe_key().starts_with("sha256:"));
    }

    #[test]
    fn inline_images_become_named_attachments_mentioned_where_they_were() {
        let m = parse(include_bytes!(
            "../../tests/fixtures/inline/html-related.eml"
        ))
        .unwrap();
        let names: Vec<&str> = m.attachments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["error dialog.png", "image-2.jpg"], "{names:?}");
        assert_eq!(m.attachments[1].content_type, "image/jpeg");
        assert!(m.attachments[0].bytes.starts_with(b"\x89PNG"));
        let shot = m.text.find("[image: error dialog.png]").expect(&m.text);
        let second = m.text.find("[image: image-2.jpg]").expect(&m.text);
        assert!(m.text.find("shows this").unwrap() < shot, "{}", m.text);
        assert!(shot < m.text.find("and then this").unwrap(), "{}", m.text);
        assert!(second < m.text.find("Thanks").unwrap(), "{}", m.text);
        assert!(!m.text.contains("cid:"), "{}", m.text);
    }

    #[test]
    fn an_outlook_text_part_names_its_inline_image_by_file_name() {
        let m = parse(include_bytes!(
            "../../tests/fixtures/inline/outlook-related.eml"
        ))
        .unwrap();
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].name, "image001.png");
        assert!(
            m.text
                .contains("The printer says:\n[image: image001.png]\nDave"),
            "{}",
            m.text
        );
    }

    #[test]
    fn html_only_is_converted() {
        let raw = b"From: a@b.c\r\nContent-Type: text/html; charset=utf-8\r\nSubject: x\r\n\r\n<html><body><p>Hello <i>there</i></p></body></html>";
        let m = parse(raw).unwrap();
        assert!(m.text.contains("Hello"), "{}", m.text);
        assert!(!m.text.contains("<p>"), "{}", m.text);
    }

    #[test]
    fn hostile_subject_is_cleaned() {
        let raw = b"From: a@b.c\r\nSubject: =?utf-8?q?hi=0D=0ABcc=3A_evil=40x?=\r\n\r\nbody";
        let m = parse(raw).unwrap();
        assert!(
            !m.subject.contains('\r') && !m.subject.contains('\n'),
            "{:?}",
            m.subject
        );
    }

    #[test]
    fn empty_is_an_error() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::Empty);
        assert_eq!(parse(b"\r\n\r\n").unwrap_err(), ParseError::Empty);
    }

    #[test]
    fn attachments_are_kept_with_safe_names() {
        let raw = b"From: a@b.c\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"../../x.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--XX--\r\n";
        let m = parse(raw).unwrap();
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].name, "x.pdf");
        assert_eq!(m.attachments[0].bytes, b"hello");
        assert_eq!(m.attachments[0].content_type, "application/pdf");
        assert!(m.text.contains("see file"));
    }

    #[test]
    fn auto_signals_are_read() {
        let raw = b"From: a@b.c\r\nAuto-Submitted: Auto-Replied\r\nPrecedence: bulk\r\nReturn-Path: <>\r\nX-Loop: help@desk.test\r\nSubject: x\r\n\r\nbody";
        let m = parse(raw).unwrap();
        assert_eq!(m.auto.auto_submitted.as_deref(), Some("auto-replied"));
        assert_eq!(m.auto.precedence.as_deref(), Some("bulk"));
        assert!(m.auto.null_return_path);
        assert_eq!(m.auto.x_loop, vec!["help@desk.test"]);
    }

    #[test]
    fn long_references_keep_the_root_and_the_newest() {
        let ids: Vec<String> = (0..500).map(|i| format!("<r{i}@y>")).collect();
        let raw = format!(
            "From: a@b.c\r\nReferences: {}\r\nSubject: Re: hi\r\n\r\nbody",
            ids.join("\r\n ")
        );
        let m = parse(raw.as_bytes()).unwrap();
        assert!(
            m.references.len() <= MAX_REFERENCES,
            "{}",
            m.references.len()
        );
        assert_eq!(m.references.first().map(String::as_str), Some("r0@y"));
        assert_eq!(m.references.last().map(String::as_str), Some("r499@y"));
        assert!(m.references.contains(&"r460@y".to_string()));
        // Oldest-first order is kept.
        let pos = |id: &str| m.references.iter().position(|r| r == id).unwrap();
        assert!(pos("r0@y") < pos("r460@y") && pos("r460@y") < pos("r499@y"));
    }

    #[test]
    fn dedupe_key_ignores_trace_headers_but_not_content() {
        let base = "From: Alice <alice@customer.test>\r\nTo: help@desk.test\r\nSubject: Printer\r\nMessage-ID: <same@customer.test>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\n\r\nIt burns.\r\n";
        let key = parse(base.as_bytes()).unwrap().dedupe_key();
        assert!(key.starts_with("mid:same@customer.test#"), "{key}");
        let redelivered = format!("Return-Path: <alice@customer.test>\r\nDelivered-To: alias@desk.test\r\nX-Original-To: alias@desk.test\r\nReceived: from x by y; Mon, 3 Mar 2025 10:00:01 +0000\r\n{base}");
        assert_eq!(parse(redelivered.as_bytes()).unwrap().dedupe_key(), key);
        let other_body = base.replace("It burns.", "An invoice question.");
        assert_ne!(parse(other_body.as_bytes()).unwrap().dedupe_key(), key);
        let other_sender = base.replace("alice@customer.test", "mallory@other.test");
        assert_ne!(parse(other_sender.as_bytes()).unwrap().dedupe_key(), key);
    }

    #[test]
    fn several_authors_use_the_sender_or_refuse_auto_replies() {
        let m = parse(b"From: a@b.c, d@e.f\r\nSubject: x\r\n\r\nbody").unwrap();
        assert_eq!(m.from.unwrap().address.as_str(), "a@b.c");
        assert!(m.several_authors);
        let m = parse(b"From: a@b.c, d@e.f\r\nSender: s@b.c\r\nSubject: x\r\n\r\nbody").unwrap();
        assert_eq!(m.from.unwrap().address.as_str(), "s@b.c");
        assert!(!m.several_authors);
        let m = parse(b"From: a@b.c\r\nSender: s@b.c\r\nSubject: x\r\n\r\nbody").unwrap();
        assert_eq!(m.from.unwrap().address.as_str(), "a@b.c");
        assert!(!m.several_authors);
    }

    #[test]
    fn format_flowed_is_decoded() {
        let raw = b"From: a@b.c\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\r\n\r\nThe printer on the third  \r\nfloor is broken again, it  \r\nsays PC LOAD LETTER.\r\n From now on I print at home.\r\n";
        let m = parse(raw).unwrap();
        assert_eq!(
            m.text.trim(),
            "The printer on the third floor is broken again, it says PC LOAD LETTER.\nFrom now on I print at home."
        );
        let raw = b"From: a@b.c\r\nSubject: x\r\nContent-Type: text/plain; format=flowed\r\n\r\nThe printer on the third \r\nfloor.\r\n";
        assert_eq!(
            parse(raw).unwrap().text.trim(),
            "The printer on the third floor."
        );
    }
}
