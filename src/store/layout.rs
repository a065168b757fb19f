//! The key layout. Everything lives in one sled tree, `data`; the first byte
//! of a key names its table (the number of [`T`]), the rest is the table's
//! own key. Values are records (see `records`) encoded as `codec.rs` says
//! (MessagePack, big ones compressed; JSON in stores of older releases),
//! except where noted.
//!
//! | table | key | value | why |
//! |---|---|---|---|
//! | `Meta` (0) | `next_ticket`, `reply_key`, `format`, `count`+table | u64 / bytes / u32 / u64 | ticket numbers, the signing key, the store format, key counts of counted tables |
//! | `Tickets` (1) | ticket number, u64 BE | `Ticket` | the ticket, one key, rewritten on every change; it also says where its timer is filed (`timer_due_ms`) |
//! | `Messages` (2) | ticket u64 BE + seq u32 BE | `MessageRecord` | a ticket's history in order, read by prefix |
//! | `Events` (3) | ticket u64 BE + seq u32 BE | `Event` | the audit trail in order |
//! | `MessageIds` (4) | Message-ID | ticket u64 BE (`u64::MAX`: none), then for mail deskgate sent its recipients (a record) | threading by In-Reply-To/References; our own mail coming back; whom a bounce may count against (`message_ids.rs`) |
//! | `Dedupe` (5) | `mid:<id>` or `sha256:<hex>` | `Disposition` | a mail already processed is a no-op when refetched |
//! | `Outbox` (6) | outbox id u64 BE | `OutboxEntry` | mail to send, with the composed value |
//! | `Deliveries` (7) | outbox id u64 BE | `Delivery` | what was handed to SMTP, and when |
//! | `Raw` (8) | SHA-256 hex | raw bytes (`codec` bytes: a marker byte, big ones compressed) | the mail as received |
//! | `Blobs` (9) | SHA-256 hex | `codec` bytes, or a reference to the `Raw` mail holding it | attachments, once per content: an inbound attachment is read from its raw mail |
//! | `Quarantine` (10) | id u64 BE | `QuarantineEntry` | mail that could not be filed |
//! | `Checkpoints` (11) | mailbox name | `Checkpoint` | UIDVALIDITY and last UID per mailbox |
//! | `OutboxDue` (12) | due ms u64 BE + outbox id | empty | the key order is the due order: the sender reads only what is due |
//! | `Addresses` (13) | address | `AddressState` | hard bounces per address |
//! | `AutoSent` (14) | address (or a forgery-warning key) | `SendWindow` bytes (277, fixed) | rate limits of automatic mail, O(1) per mail |
//! | `Ignored` (15) | id u64 BE | `IgnoredEntry` | mail kept but not filed |
//! | `SentIds` (16) | Message-ID | recipients | format 5 and older only: folded into `MessageIds` (format 6) |
//! | `TimerDue` (17) | due ms u64 BE + ticket u64 BE | empty | the next SLA/lifecycle timer of each ticket, in due order: a timer pass costs what is due; the ticket record holds the due ms, to move the entry |
//! | `TimerOf` (18) | ticket u64 BE | its `TimerDue` key | format 5 and older only: folded into the ticket record (format 6) |
//! | `Attempts` (19) | mailbox, 0, UIDVALIDITY, UID | u32 | processing attempts of a mail not yet committed (poison mail) |
//! | `OutboxInDoubt` (20) | outbox id u64 BE | u32 | times the mail's body went to SMTP with no answer recorded (see `sending.rs`) |
//! | `TicketIndex` (21) | kind u8, [value len u16 BE, value], updated ms u64 BE, ticket u64 BE | empty | `tickets list` by update time, status, team, assignee, requester, tag: a page is a range read (see `list_index.rs`) |
//! | `ReportFacts` (22) | ticket u64 BE | `ReportFacts` | what the ticket contributes to a report, rewritten with the ticket (see `report_facts.rs`) |
//! | `Digests` (23) | `d`+digest name, or `r`+request id u64 BE | period start (RFC 3339 JSON) / `ReportRequest` | a digest is sent once per period (the mark commits with its mails); a report asked by mail waits for the timer pass |
//! | `ReportIndex` (24) | 0, moment ms u64 BE, ticket u64 BE / 1, created ms u64 BE, ticket u64 BE / 2, creation day u64 BE / 3, key kind u8, value len u16 BE, value, creation day u64 BE | created ms u64 BE / created (secs i64 BE, nanos u32 BE) + `OpenKeys` / open tickets created that day, u64 BE / the same with that team, assignee, priority, queue, domain or tag | a report reads the tickets its period touches and counts the backlog from the open tickets per day (see `report_facts.rs`, `open_days.rs`) |
//!
//! A new ticket with its acknowledgement writes 17 keys (and an `AutoSent`
//! window per new sender): the ticket, 2 messages, an event, the raw mail,
//! 2 Message-IDs, dedupe, the outbox entry and its due key, the timer due
//! key, 3 list-index keys, the report facts and 2 report-index keys.
//!
//! Counted tables ([`COUNTED`]) keep their number of keys in `Meta` under
//! `count`+table, moved in the same batch as the keys, so `stats` reads
//! counters instead of scanning.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{StoreError, TxResult};
use super::records::TicketId;

/// Tables: the number is the first byte of every key of the table (and was
/// the tree's number in the journal of format 1 stores).
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
    /// Per-recipient counts of automatic mail per slot of the window, for rate limits.
    AutoSent,
    Ignored,
    /// Format 5 and older: Message-IDs of mail deskgate sent, with their
    /// recipients. Format 6 keeps the recipients in the `MessageIds` value;
    /// only the migration reads this table (its number stays taken).
    SentIds,
    /// (next timer due ms u64 BE, ticket u64 BE) → empty: the key order is
    /// the due order, so a timer pass reads only the tickets due.
    TimerDue,
    /// Format 5 and older: ticket u64 BE → its key in `TimerDue`. Format 6
    /// keeps the due time in the ticket record; only the migration reads
    /// this table (its number stays taken).
    TimerOf,
    /// mailbox + 0 + UIDVALIDITY u32 BE + UID u32 BE → attempts u32 BE: a
    /// mail that keeps crashing the daemon is recognised (see `attempts.rs`).
    Attempts,
    /// outbox id u64 BE → u32 BE: how often the entry's body was handed to
    /// SMTP without an answer recorded (see `sending.rs`).
    OutboxInDoubt,
    /// Every ticket filed under its update time, and under each of its
    /// status, team, assignee, requester and tags, most recent last: a
    /// filtered page of `tickets list` is a range read (`list_index.rs`).
    TicketIndex,
    /// ticket u64 BE → `ReportFacts`: the report's values of one ticket,
    /// written in the batch that writes the ticket (`report_facts.rs`).
    ReportFacts = 22,
    /// `b'd'` + digest name → the period it was last sent for; `b'r'` + id
    /// u64 BE → a report asked for by mail, not answered yet (`digests.rs`).
    Digests = 23,
    /// The moments tickets can be selected on by a report period, the
    /// open tickets by creation time, and their count per creation day
    /// (`report_facts.rs`, `open_days.rs`).
    ReportIndex = 24,
}

/// The tree names of format 1 stores, by table number.
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

/// Tables whose keys are counted.
pub(super) const COUNTED: &[u8] = &[
    T::Tickets as u8,
    T::Outbox as u8,
    T::Deliveries as u8,
    T::Quarantine as u8,
    T::OutboxDue as u8,
    T::Ignored as u8,
];

/// The store format this release writes: 1 was one sled tree per table plus
/// a write-ahead journal; 2 is one tree with prefixed keys; 3 adds the
/// ticket list index (`TicketIndex`); 4 adds the report facts
/// (`ReportFacts`, `ReportIndex`); 5 adds the open tickets counted per
/// creation day (`ReportIndex` kind 2, `open_days.rs`); 6 drops two keys
/// per ticket: the timer entry is found in the ticket record (no
/// `TimerOf`), sent mail's recipients in its `MessageIds` value (no
/// `SentIds`).
pub(super) const FORMAT: u32 = 6;
pub(super) const FORMAT_KEY: &[u8] = b"format";
/// A fingerprint of the SLA policies and timers the timer index was built
/// with: another configuration means other due times.
pub(super) const TIMER_POLICY_KEY: &[u8] = b"timer_policy";
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
    super::codec::encode_record(v).map_err(|source| StoreError::Unwritable { what, source })
}

pub(super) fn decode<V: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<V, StoreError> {
    super::codec::decode_record(bytes).map_err(|source| StoreError::Unreadable { what, source })
}

/// Raw mail or attachment bytes (see `codec.rs`).
pub(super) fn encode_bytes(what: &'static str, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    super::codec::encode_bytes(bytes).map_err(|source| StoreError::Unwritable { what, source })
}

pub(super) fn tx_encode<V: Serialize>(what: &'static str, v: &V) -> TxResult<Vec<u8>> {
    encode(what, v)
}

pub(super) fn tx_decode<V: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> TxResult<V> {
    decode(what, bytes)
}

/// Sorts by time, then id; times before 1970 clamp to 0.
pub(super) fn due_key(at: DateTime<Utc>, id: u64) -> [u8; 16] {
    due_key_ms(due_ms(at), id)
}

/// A due time as the index keys it: ms since 1970, earlier times clamped to 0.
pub(super) fn due_ms(at: DateTime<Utc>) -> u64 {
    at.timestamp_millis().max(0) as u64
}

pub(super) fn due_key_ms(ms: u64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&ms.to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

pub(super) fn u64_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}
