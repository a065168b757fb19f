//! How the report index (`ReportIndex`, see `report_facts.rs`) spells its
//! keys and values: times as whole milliseconds in keys and to the
//! nanosecond in values, and the keys an open ticket is grouped and
//! filtered by. Shared by the facts (`report_facts.rs`) and the open
//! counters (`open_days.rs`), which both read the open index.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::{Priority, TicketId};

/// Kind 0 of the index: the moments a period selects a ticket on.
pub(super) const INSTANT: u8 = 0;
/// Kind 1 of the index: the open tickets by creation time.
pub(super) const OPEN: u8 = 1;

/// What a report groups and filters an open ticket by, kept with its entry
/// in the open index so the backlog is counted without reading facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenKeys {
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub tags: Vec<String>,
    pub priority: Priority,
    pub mailbox: String,
    /// The requester's domain, lower case.
    pub domain: String,
}

/// Milliseconds since 1970 (earlier times clamp to 0): the index's clock.
pub(super) fn millis(at: DateTime<Utc>) -> u64 {
    at.timestamp_millis().max(0) as u64
}

pub(super) fn ms(at: DateTime<Utc>) -> [u8; 8] {
    millis(at).to_be_bytes()
}

/// A time to the nanosecond (seconds i64 BE, nanoseconds u32 BE): the
/// backlog's age buckets are exact.
pub(super) fn exact(at: DateTime<Utc>) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&at.timestamp().to_be_bytes());
    b[8..].copy_from_slice(&at.timestamp_subsec_nanos().to_be_bytes());
    b
}

pub(super) fn exact_of(b: &[u8]) -> Option<DateTime<Utc>> {
    let secs = i64::from_be_bytes(b.get(..8)?.try_into().ok()?);
    let nanos = u32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
    DateTime::<Utc>::from_timestamp(secs, nanos)
}

pub(super) fn index_key(kind: u8, at_ms: u64, id: TicketId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(kind);
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    k
}
