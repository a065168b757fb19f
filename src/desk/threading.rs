//! Threading: which ticket, if any, a mail continues.
//!
//! Pure: it extracts the keys (the subject token, then In-Reply-To, then
//! References newest first) and the caller checks them against the store
//! inside the same transaction that writes the result.

use regex::Regex;

use crate::config::SubjectTag;
use crate::store::records::TicketId;
use crate::store::{Tx, TxResult};

/// Recognises the subject token, whatever case and wherever it stands.
#[derive(Debug, Clone)]
pub struct TokenMatcher {
    tag: SubjectTag,
    re: Regex,
}

impl TokenMatcher {
    pub fn new(tag: &SubjectTag) -> TokenMatcher {
        let pattern = format!(
            "(?i){}\\s*([0-9]+)\\s*{}",
            regex::escape(tag.prefix.trim_end()),
            regex::escape(tag.suffix.trim_start())
        );
        TokenMatcher {
            tag: tag.clone(),
            // Escaped literals around a digit class always compile.
            re: Regex::new(&pattern).expect("escaped token pattern compiles"),
        }
    }

    pub fn render(&self, id: TicketId) -> String {
        self.tag.render(id)
    }

    /// Every ticket number named in the subject, in order. Numbers too large
    /// for a ticket id are skipped, not errors: `[#99999999999999999999]` is
    /// just text.
    pub fn tokens(&self, subject: &str) -> Vec<TicketId> {
        self.re
            .captures_iter(subject)
            .filter_map(|c| c.get(1)?.as_str().parse::<TicketId>().ok())
            .collect()
    }

    /// The subject with every token removed, for storing a new ticket's title.
    pub fn strip_tokens(&self, subject: &str) -> String {
        let s = self.re.replace_all(subject, "");
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// "TAG subject", without duplicating a token the subject already carries.
    pub fn tagged_subject(&self, id: TicketId, subject: &str) -> String {
        if self.tokens(subject).contains(&id) {
            return subject.to_string();
        }
        let base = self.strip_tokens(subject);
        if base.is_empty() {
            self.render(id)
        } else {
            format!("{} {}", self.render(id), base)
        }
    }
}

/// The order in which a mail's claims to belong to a ticket are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadKeys {
    pub tokens: Vec<TicketId>,
    /// In-Reply-To first, then References from newest to oldest, no repeats.
    pub referenced_ids: Vec<String>,
}

pub fn thread_keys(
    matcher: &TokenMatcher,
    subject: &str,
    in_reply_to: &[String],
    references: &[String],
) -> ThreadKeys {
    let mut referenced_ids: Vec<String> = Vec::new();
    for id in in_reply_to.iter().chain(references.iter().rev()) {
        if !referenced_ids.contains(id) {
            referenced_ids.push(id.clone());
        }
    }
    ThreadKeys {
        tokens: matcher.tokens(subject),
        referenced_ids,
    }
}

/// Resolves the keys against the store: the first token naming an existing
/// ticket wins, then the first referenced Message-ID we know. A token for a
/// ticket that does not exist is ignored (the mail then starts a new ticket).
pub fn resolve<E>(
    keys: &ThreadKeys,
    mut ticket_exists: impl FnMut(TicketId) -> Result<bool, E>,
    mut ticket_of_message: impl FnMut(&str) -> Result<Option<TicketId>, E>,
) -> Result<Option<TicketId>, E> {
    for &t in &keys.tokens {
        if ticket_exists(t)? {
            return Ok(Some(t));
        }
    }
    for id in &keys.referenced_ids {
        if let Some(t) = ticket_of_message(id)? {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

/// A merged ticket forwards: mail for it lands on the ticket it was merged into.
pub fn follow_merges(tx: &Tx<'_>, mut id: TicketId) -> TxResult<TicketId> {
    for _ in 0..16 {
        match tx.ticket(id)?.and_then(|t| t.merged_into) {
            Some(next) => id = next,
            None => break,
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> TokenMatcher {
        TokenMatcher::new(&SubjectTag::default())
    }

    #[test]
    fn token_anywhere_any_case() {
        assert_eq!(m().tokens("Re: AW: Fwd: [#1042] printer"), vec![1042]);
        assert_eq!(m().tokens("printer [#7]"), vec![7]);
        assert_eq!(m().tokens("RE: [# 12 ] x"), vec![12]);
        let custom = TokenMatcher::new(&SubjectTag::parse("Ticket {id}:").unwrap());
        assert_eq!(custom.tokens("re: TICKET 55: help"), vec![55]);
        assert_eq!(custom.tokens("Ticket 55 help"), Vec::<u64>::new());
    }

    #[test]
    fn absurd_numbers_are_not_tokens() {
        assert!(m().tokens("[#99999999999999999999] hi").is_empty());
        assert_eq!(m().tokens("[#99999999999999999999] [#3]"), vec![3]);
        assert!(m().tokens("[#] [#abc] #5").is_empty());
    }

    #[test]
    fn tagged_subject_adds_or_keeps_token() {
        assert_eq!(m().tagged_subject(5, "Printer"), "[#5] Printer");
        assert_eq!(
            m().tagged_subject(5, "Re: [#5] Printer"),
            "Re: [#5] Printer"
        );
        assert_eq!(m().tagged_subject(5, "[#99] Printer"), "[#5] Printer");
        assert_eq!(m().tagged_subject(5, ""), "[#5]");
    }

    #[test]
    fn keys_order_in_reply_to_then_references_newest_first() {
        let k = thread_keys(
            &m(),
            "hi",
            &["c".into()],
            &["a".into(), "b".into(), "c".into()],
        );
        assert_eq!(k.referenced_ids, vec!["c", "b", "a"]);
    }

    #[test]
    fn resolve_prefers_existing_token_then_references() {
        let k = ThreadKeys {
            tokens: vec![9, 3],
            referenced_ids: vec!["x".into()],
        };
        let r: Result<_, ()> = resolve(&k, |t| Ok(t == 3), |_| Ok(Some(1)));
        assert_eq!(r, Ok(Some(3)));
        let r: Result<_, ()> = resolve(&k, |_| Ok(false), |id| Ok((id == "x").then_some(1)));
        assert_eq!(r, Ok(Some(1)));
        let r: Result<_, ()> = resolve(&k, |_| Ok(false), |_| Ok(None));
        assert_eq!(r, Ok(None));
    }
}
