//! How many automatic mails went out within a sliding window, in a record of
//! fixed size: counts per 64th of the window instead of a list of send
//! times, so checking and recording a send costs the same whatever the
//! limits and however much was sent before.
//!
//! The count never misses a send made within the window: a send is counted
//! until its whole slot has left the window, that is for the window plus at
//! most a 64th of it (a 1 h window forgets a send 60 to 61 minutes after
//! it). So a limit of N never lets N + 1 mails through in any window.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Slots per window; one more is kept for the slot the window's start falls in.
pub const SLOTS: usize = 64;

/// Sends per slot of `slot_ms` milliseconds, newest slot first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored")]
pub struct SendWindow {
    /// Slot length the counts were made with; 0 for a record never written.
    slot_ms: u64,
    /// Number (time in ms / `slot_ms`) of the slot `counts[0]` counts.
    newest: i64,
    /// `counts[i]`: sends in slot `newest - i`.
    #[serde(
        serialize_with = "serialize_counts",
        deserialize_with = "deserialize_counts"
    )]
    counts: [u32; SLOTS + 1],
    /// Send times read from a store of an older release (a list of times),
    /// folded into the counts at the next send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    legacy: Vec<DateTime<Utc>>,
}

impl Default for SendWindow {
    fn default() -> Self {
        SendWindow {
            slot_ms: 0,
            newest: 0,
            counts: [0; SLOTS + 1],
            legacy: Vec::new(),
        }
    }
}

/// What a ticket record held: this release's counts, or older releases' list of times.
/// Only ever a moment on the stack while a record is read, so its size is no concern.
#[allow(clippy::large_enum_variant)]
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Counts {
        slot_ms: u64,
        newest: i64,
        #[serde(
            serialize_with = "serialize_counts",
            deserialize_with = "deserialize_counts"
        )]
        counts: [u32; SLOTS + 1],
        #[serde(default)]
        legacy: Vec<DateTime<Utc>>,
    },
    Times(Vec<DateTime<Utc>>),
}

impl From<Stored> for SendWindow {
    fn from(s: Stored) -> Self {
        match s {
            Stored::Counts {
                slot_ms,
                newest,
                counts,
                legacy,
            } => SendWindow {
                slot_ms,
                newest,
                counts,
                legacy,
            },
            Stored::Times(legacy) => SendWindow {
                legacy,
                ..SendWindow::default()
            },
        }
    }
}

/// serde derives arrays only up to 32 long: the counts go as a list.
fn serialize_counts<S: serde::Serializer>(c: &[u32; SLOTS + 1], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(c.iter())
}

fn deserialize_counts<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<[u32; SLOTS + 1], D::Error> {
    use serde::de::Error;
    let v = Vec::<u32>::deserialize(d)?;
    let n = v.len();
    v.try_into()
        .map_err(|_| D::Error::custom(format!("{n} send counts, not {}", SLOTS + 1)))
}

/// The slot length for a window: rounded up, so that `SLOTS` slots cover it.
fn slot_ms(window: std::time::Duration) -> u64 {
    let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    ms.div_ceil(SLOTS as u64).max(1)
}

fn slot_of(at: DateTime<Utc>, slot_ms: u64) -> i64 {
    at.timestamp_millis()
        .div_euclid(i64::try_from(slot_ms).unwrap_or(i64::MAX))
}

/// Length of the binary form ([`SendWindow::to_bytes`]).
const BYTES: usize = 1 + 8 + 8 + 4 * (SLOTS + 1);
/// First byte of the binary form; older releases wrote JSON (`[` first).
const VERSION: u8 = 1;

impl SendWindow {
    /// Sends within `window` of `now` (see the module doc for the rounding).
    pub fn count(&self, now: DateTime<Utc>, window: std::time::Duration) -> u32 {
        let legacy = self.legacy_within(now, window);
        let slot = slot_ms(window);
        if self.slot_ms == 0 {
            return legacy;
        }
        if self.slot_ms != slot {
            // Counted under another window (the configuration changed):
            // every send it still holds counts, so no limit is exceeded.
            return self.counts.iter().fold(legacy, |a, c| a.saturating_add(*c));
        }
        let shift = slot_of(now, slot).saturating_sub(self.newest).max(0);
        self.counts
            .iter()
            .enumerate()
            .filter(|(i, _)| (*i as i64).saturating_add(shift) <= SLOTS as i64)
            .fold(legacy, |a, (_, c)| a.saturating_add(*c))
    }

    /// Records one send at `now`.
    pub fn record(&mut self, now: DateTime<Utc>, window: std::time::Duration) {
        let slot = slot_ms(window);
        if self.slot_ms != slot {
            // First send, or counts of another window: what they still hold
            // (all of it, to be safe) moves into the current slot.
            let carried = if self.slot_ms == 0 {
                0
            } else {
                self.counts.iter().fold(0u32, |a, c| a.saturating_add(*c))
            };
            self.slot_ms = slot;
            self.newest = slot_of(now, slot);
            self.counts = [0; SLOTS + 1];
            self.counts[0] = carried;
        }
        let current = slot_of(now, slot);
        let shift = current.saturating_sub(self.newest);
        if shift > SLOTS as i64 {
            self.counts = [0; SLOTS + 1];
        } else if shift > 0 {
            self.counts.rotate_right(shift as usize);
            self.counts[..shift as usize].fill(0);
        }
        self.newest = self.newest.max(current);
        // A clock that went back counts the send in the newest slot: later,
        // so it is remembered longer, never shorter.
        for at in std::mem::take(&mut self.legacy) {
            if let Some(i) = self.index_of(at, slot) {
                self.counts[i] = self.counts[i].saturating_add(1);
            }
        }
        self.counts[0] = self.counts[0].saturating_add(1);
    }

    /// The slot a send at `at` is counted in, if it is still kept.
    fn index_of(&self, at: DateTime<Utc>, slot: u64) -> Option<usize> {
        let age = self.newest.saturating_sub(slot_of(at, slot)).max(0);
        usize::try_from(age).ok().filter(|a| *a <= SLOTS)
    }

    fn legacy_within(&self, now: DateTime<Utc>, window: std::time::Duration) -> u32 {
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let n = self
            .legacy
            .iter()
            .filter(|t| now.signed_duration_since(**t) < window)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The fixed-size form kept in the store's per-address table.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(BYTES);
        b.push(VERSION);
        b.extend_from_slice(&self.slot_ms.to_be_bytes());
        b.extend_from_slice(&self.newest.to_be_bytes());
        for c in &self.counts {
            b.extend_from_slice(&c.to_be_bytes());
        }
        b
    }

    /// Reads [`to_bytes`](Self::to_bytes)' form, or an older release's JSON
    /// list of send times; None for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<SendWindow> {
        if bytes.first() == Some(&b'[') {
            let legacy = serde_json::from_slice(bytes).ok()?;
            return Some(SendWindow {
                legacy,
                ..SendWindow::default()
            });
        }
        if bytes.len() != BYTES || bytes[0] != VERSION {
            return None;
        }
        let u64_at = |i: usize| -> Option<[u8; 8]> { bytes.get(i..i + 8)?.try_into().ok() };
        let mut counts = [0u32; SLOTS + 1];
        for (i, c) in counts.iter_mut().enumerate() {
            let at = 17 + 4 * i;
            *c = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        }
        Some(SendWindow {
            slot_ms: u64::from_be_bytes(u64_at(1)?),
            newest: i64::from_be_bytes(u64_at(9)?),
            counts,
            legacy: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn mins(m: i64) -> chrono::Duration {
        chrono::Duration::minutes(m)
    }

    #[test]
    fn sends_count_for_the_window_and_at_most_a_64th_more() {
        let mut w = SendWindow::default();
        w.record(t0(), HOUR);
        w.record(t0() + mins(10), HOUR);
        assert_eq!(w.count(t0() + mins(10), HOUR), 2);
        // Still within the hour of the first send: both count.
        let edge = t0() + chrono::Duration::milliseconds(3_600_000 - 1);
        assert_eq!(w.count(edge, HOUR), 2);
        // An hour and a 64th after the first: only the second counts.
        assert_eq!(w.count(t0() + mins(61), HOUR), 1);
        assert_eq!(w.count(t0() + mins(75), HOUR), 0);
    }

    #[test]
    fn never_fewer_than_the_sends_within_the_window() {
        // A send every 7 minutes for a day; at every minute, the count is
        // at least the exact number within the hour, and at most the number
        // within 61 minutes.
        let mut w = SendWindow::default();
        let mut sent: Vec<DateTime<Utc>> = Vec::new();
        for m in 0..24 * 60 {
            let now = t0() + mins(m);
            if m % 7 == 0 {
                w.record(now, HOUR);
                sent.push(now);
            }
            let within = |d: i64| sent.iter().filter(|t| now - **t < mins(d)).count() as u32;
            let c = w.count(now, HOUR);
            assert!(c >= within(60), "minute {m}: {c} < {}", within(60));
            assert!(c <= within(61), "minute {m}: {c} > {}", within(61));
        }
    }

    #[test]
    fn a_long_pause_forgets_everything() {
        let mut w = SendWindow::default();
        for _ in 0..1000 {
            w.record(t0(), HOUR);
        }
        assert_eq!(w.count(t0(), HOUR), 1000);
        w.record(t0() + mins(600), HOUR);
        assert_eq!(w.count(t0() + mins(600), HOUR), 1);
    }

    #[test]
    fn the_record_has_one_size_whatever_was_sent() {
        let mut w = SendWindow::default();
        w.record(t0(), HOUR);
        let small = w.to_bytes().len();
        for i in 0..100_000 {
            w.record(t0() + chrono::Duration::milliseconds(i), HOUR);
        }
        assert_eq!(w.to_bytes().len(), small);
        assert_eq!(SendWindow::from_bytes(&w.to_bytes()), Some(w.clone()));
        let json = serde_json::to_vec(&w).unwrap();
        assert_eq!(serde_json::from_slice::<SendWindow>(&json).unwrap(), w);
    }

    #[test]
    fn older_releases_lists_of_times_still_count() {
        let old = serde_json::to_vec(&vec![t0() - mins(90), t0() - mins(30), t0()]).unwrap();
        let mut w = SendWindow::from_bytes(&old).unwrap();
        assert_eq!(w.count(t0(), HOUR), 2);
        let mut from_ticket: SendWindow = serde_json::from_slice(&old).unwrap();
        assert_eq!(from_ticket.count(t0(), HOUR), 2);
        w.record(t0() + mins(1), HOUR);
        from_ticket.record(t0() + mins(1), HOUR);
        assert_eq!(w.count(t0() + mins(1), HOUR), 3);
        assert_eq!(w, from_ticket);
        assert!(w.legacy.is_empty());
        assert!(SendWindow::from_bytes(b"garbage").is_none());
    }

    #[test]
    fn another_window_keeps_counting_what_was_sent() {
        let mut w = SendWindow::default();
        w.record(t0(), HOUR);
        w.record(t0(), HOUR);
        let half = Duration::from_secs(1800);
        assert_eq!(w.count(t0() + mins(1), half), 2);
        w.record(t0() + mins(1), half);
        assert_eq!(w.count(t0() + mins(1), half), 3);
        assert_eq!(w.count(t0() + mins(40), half), 0);
    }
}
