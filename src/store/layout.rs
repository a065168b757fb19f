//! The key layout: which sled tree holds what, how keys are built, and how
//! records are encoded.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{StoreError, TxResult};
use super::records::TicketId;

/// Trees, in the order they are opened; the index is the tree's number in
/// the journal.
#[derive(Debug, Clone, Copy)]
pub(super) enum T {
    Meta,
    Tickets,
    Messages,
    Events,
    MessageIds,
    Dedupe,
    Outbox,
    Deliveries,
    Raw,
    Blobs,
    Quarantine,
    Checkpoints,
    /// (next attempt time, outbox id) of every entry still to be tried, so the
    /// sender reads only what is due instead of the whole outbox.
    OutboxDue,
    /// Per-address delivery state (hard bounces, undeliverable).
    Addresses,
    /// Per-recipient times of automatic mail, for rate limits.
    AutoSent,
    Ignored,
    /// Message-IDs of mail deskgate sent, with their recipients: recognises
    /// our own mail coming back, and which addresses a bounce may count against.
    SentIds,
}

pub(super) const TREES: [(&str, T); 17] = [
    ("meta", T::Meta),
    ("tickets", T::Tickets),
    ("messages", T::Messages),
    ("events", T::Events),
    ("message_ids", T::MessageIds),
    ("dedupe", T::Dedupe),
    ("outbox", T::Outbox),
    ("deliveries", T::Deliveries),
    ("raw", T::Raw),
    ("blobs", T::Blobs),
    ("quarantine", T::Quarantine),
    ("checkpoints", T::Checkpoints),
    ("outbox_due", T::OutboxDue),
    ("addresses", T::Addresses),
    ("auto_sent", T::AutoSent),
    ("ignored", T::Ignored),
    ("sent_ids", T::SentIds),
];

pub(super) const NEXT_TICKET: &[u8] = b"next_ticket";
pub(super) const REPLY_KEY: &[u8] = b"reply_key";

pub(super) fn ticket_key(id: TicketId) -> [u8; 8] {
    id.to_be_bytes()
}

pub(super) fn seq_key(id: TicketId, seq: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn encode<V: Serialize>(what: &'static str, v: &V) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|source| StoreError::Encode { what, source })
}

pub(super) fn decode<V: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<V, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode { what, source })
}

pub(super) fn tx_encode<V: Serialize>(what: &'static str, v: &V) -> TxResult<Vec<u8>> {
    encode(what, v)
}

pub(super) fn tx_decode<V: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> TxResult<V> {
    decode(what, bytes)
}

/// Sorts by time, then id; times before 1970 clamp to 0.
pub(super) fn due_key(at: DateTime<Utc>, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&(at.timestamp_millis().max(0) as u64).to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

pub(super) fn u64_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}
