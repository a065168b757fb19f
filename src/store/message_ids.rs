//! The value of a `MessageIds` key: the ticket the Message-ID threads to,
//! u64 BE, and for mail deskgate sent, its recipients after it. One key
//! serves threading, "our own mail coming back" and whom a bounce may count
//! against; stores before format 6 kept the recipients under a key of their
//! own (`SentIds`, folded in by `migrate.rs`).
//!
//! Mail sent outside any ticket (a digest, a report, a reply to mail that
//! was not filed) threads nowhere: its ticket bytes are [`NO_TICKET`].

use super::error::TxResult;
use super::layout::{tx_decode, tx_encode, u64_of};
use super::records::TicketId;
use crate::mail::address::EmailAddress;

/// The ticket of sent mail that belongs to none (no ticket number can reach it:
/// numbers count up from the configured first one).
pub(super) const NO_TICKET: u64 = u64::MAX;

/// The value for a Message-ID of ours: the ticket bytes, then `recipients`
/// encoded as any record (`codec.rs`).
pub(super) fn sent_value(
    ticket: Option<TicketId>,
    recipients: &[EmailAddress],
) -> TxResult<Vec<u8>> {
    let encoded = tx_encode("sent mail", &recipients)?;
    Ok(joined(ticket, &encoded))
}

/// The ticket bytes followed by already encoded recipients (the migration
/// moves them over as they were stored).
pub(super) fn joined(ticket: Option<TicketId>, encoded_recipients: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + encoded_recipients.len());
    v.extend_from_slice(&ticket.unwrap_or(NO_TICKET).to_be_bytes());
    v.extend_from_slice(encoded_recipients);
    v
}

/// The ticket a Message-ID threads to.
pub(super) fn ticket_of(value: &[u8]) -> Option<TicketId> {
    u64_of(value.get(..8)?).filter(|&t| t != NO_TICKET)
}

/// The recipients of our mail, or None when the Message-ID is not ours.
pub(super) fn recipients_of(value: &[u8]) -> TxResult<Option<Vec<EmailAddress>>> {
    match value.get(8..) {
        Some(rest) if !rest.is_empty() => tx_decode("sent mail", rest).map(Some),
        _ => Ok(None),
    }
}

/// The same value threading to `ticket` instead: the recipients stay.
pub(super) fn with_ticket(value: &[u8], ticket: TicketId) -> Vec<u8> {
    joined(Some(ticket), value.get(8..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(a: &str) -> EmailAddress {
        EmailAddress::parse(a).unwrap()
    }

    #[test]
    fn a_message_id_of_ours_threads_and_names_its_recipients() {
        let v = sent_value(Some(1007), &[addr("a@b.c"), addr("d@e.f")]).unwrap();
        assert_eq!(ticket_of(&v), Some(1007));
        assert_eq!(
            recipients_of(&v).unwrap(),
            Some(vec![addr("a@b.c"), addr("d@e.f")])
        );
    }

    #[test]
    fn theirs_threads_and_is_not_ours() {
        let v = 1007u64.to_be_bytes();
        assert_eq!(ticket_of(&v), Some(1007));
        assert_eq!(recipients_of(&v).unwrap(), None);
    }

    #[test]
    fn ours_outside_a_ticket_threads_nowhere_until_one_claims_it() {
        let v = sent_value(None, &[addr("a@b.c")]).unwrap();
        assert_eq!(ticket_of(&v), None);
        assert_eq!(recipients_of(&v).unwrap(), Some(vec![addr("a@b.c")]));
        let claimed = with_ticket(&v, 12);
        assert_eq!(ticket_of(&claimed), Some(12));
        assert_eq!(recipients_of(&claimed).unwrap(), Some(vec![addr("a@b.c")]));
    }

    #[test]
    fn an_empty_or_short_value_is_neither() {
        assert_eq!(ticket_of(&[]), None);
        assert_eq!(ticket_of(&[1, 2, 3]), None);
        assert_eq!(recipients_of(&[1, 2, 3]).unwrap(), None);
    }
}
