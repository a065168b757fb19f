//! `deskgate import --jsonl`: a file written by `export` (see `export.rs`)
//! into an empty store. Every line is checked before it is stored: a ticket
//! number seen twice, a message or event of a ticket not (yet) in the file or
//! beyond the ticket's counts, an attachment whose bytes do not have its
//! SHA-256, a line longer than [`MAX_LINE`] or a file without its last line
//! stops the import with the line number. What was imported before stays:
//! the store is new, so moving it aside and importing again loses nothing.
//!
//! Tickets go through `Tx::put_ticket`, so the list index is built as they
//! land; the Message-IDs of their messages are indexed, so replies to
//! imported mail thread; the next ticket number follows the highest one.
//! The timer index is built by the daemon when it starts (no timer policy
//! is stored yet).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::error::StoreError;
use super::export::{Line, TransferSummary, FORMAT_NAME, VERSION};
use super::layout::{seq_key, tx_encode, NEXT_TICKET, T};
use super::records::{Ticket, TicketId};
use super::Store;

/// The longest line an import reads: an attachment as base64 is 4/3 of its
/// size, and attachments are bounded by the mail size limit far below this.
pub const MAX_LINE: u64 = 512 * 1024 * 1024;
/// Lines per transaction: bounds the memory of an import.
const BATCH: usize = 500;

/// What a ticket allows the lines after it to add.
struct Seen {
    message_count: u32,
    event_count: u32,
}

pub(super) fn read(store: &Store, path: &Path) -> Result<TransferSummary, StoreError> {
    let file = std::fs::File::open(path)
        .map_err(|e| StoreError::Transfer(format!("cannot open {}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    let mut seen: std::collections::HashMap<TicketId, Seen> = Default::default();
    let mut n = TransferSummary::default();
    let mut lines: Vec<(usize, Line)> = Vec::with_capacity(BATCH);
    let mut number = 0usize;
    let mut header = false;
    let mut end: Option<TransferSummary> = None;
    let mut highest: Option<TicketId> = None;
    loop {
        let mut buf = Vec::new();
        let got = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| StoreError::Transfer(format!("cannot read {}: {e}", path.display())))?;
        if got == 0 {
            break;
        }
        number += 1;
        let bad = |why: String| {
            StoreError::Transfer(format!(
                "cannot import {}: line {number}: {why}; nothing after it was imported",
                path.display()
            ))
        };
        if buf.len() as u64 > MAX_LINE {
            return Err(bad(format!("longer than {MAX_LINE} bytes")));
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if end.is_some() {
            return Err(bad("there is more after the last line (end)".into()));
        }
        let line: Line = serde_json::from_slice(&buf)
            .map_err(|e| bad(format!("not a line of a deskgate export ({e})")))?;
        match &line {
            Line::Header(h) => {
                if header || number != 1 {
                    return Err(bad("a second header".into()));
                }
                if h.format != FORMAT_NAME || h.version != VERSION {
                    return Err(bad(format!(
                        "format {} version {}; this release reads {FORMAT_NAME} version {VERSION}",
                        h.format, h.version
                    )));
                }
                header = true;
                continue;
            }
            _ if !header => return Err(bad("the file does not start with a header".into())),
            Line::Ticket(t) => {
                if seen.contains_key(&t.id) {
                    return Err(bad(format!("ticket {} appears twice", t.id)));
                }
                seen.insert(
                    t.id,
                    Seen {
                        message_count: t.message_count,
                        event_count: t.event_count,
                    },
                );
                highest = highest.max(Some(t.id));
                n.tickets += 1;
            }
            Line::Message(m) => {
                match seen.get(&m.ticket) {
                    None => {
                        return Err(bad(format!(
                            "a message of ticket {}, which comes before no ticket line",
                            m.ticket
                        )))
                    }
                    Some(s) if m.seq >= s.message_count => {
                        return Err(bad(format!(
                            "message {} of ticket {}, which has {} messages",
                            m.seq, m.ticket, s.message_count
                        )))
                    }
                    Some(_) => {}
                }
                n.messages += 1;
            }
            Line::Event(e) => {
                match seen.get(&e.ticket) {
                    None => {
                        return Err(bad(format!(
                            "an event of ticket {}, which comes before no ticket line",
                            e.ticket
                        )))
                    }
                    Some(s) if e.seq >= s.event_count => {
                        return Err(bad(format!(
                            "event {} of ticket {}, which has {} events",
                            e.seq, e.ticket, s.event_count
                        )))
                    }
                    Some(_) => {}
                }
                n.events += 1;
            }
            Line::Attachment(a) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&a.base64)
                    .map_err(|e| bad(format!("the attachment is not base64 ({e})")))?;
                if hex::encode(Sha256::digest(&bytes)) != a.sha256 {
                    return Err(bad(format!(
                        "the attachment's bytes do not have its SHA-256 {}",
                        a.sha256
                    )));
                }
                n.attachments += 1;
            }
            Line::End(counts) => {
                if *counts != n {
                    return Err(bad(format!(
                        "the file says it holds {counts:?}, it holds {n:?}"
                    )));
                }
                end = Some(counts.clone());
                continue;
            }
        }
        lines.push((number, line));
        if lines.len() >= BATCH {
            store_lines(store, std::mem::take(&mut lines))?;
        }
    }
    store_lines(store, lines)?;
    // Events come in after their ticket: the report facts are derived
    // once everything is in (report_facts.rs).
    super::report_facts::build(&store.db.sled().open_tree("data")?, 10_000)?;
    if end.is_none() {
        return Err(StoreError::Transfer(format!(
            "cannot import {}: it is cut short (no end line after line {number}); what came before it was imported",
            path.display()
        )));
    }
    if let Some(h) = highest {
        store.transact(|tx| {
            tx.ws
                .insert(T::Meta as u8, NEXT_TICKET, &(h + 1).to_be_bytes());
            Ok(())
        })?;
    }
    store.flush_blocking()?;
    Ok(n)
}

/// Stores checked lines in one transaction.
fn store_lines(store: &Store, lines: Vec<(usize, Line)>) -> Result<(), StoreError> {
    if lines.is_empty() {
        return Ok(());
    }
    store.transact(|tx| {
        for (_, line) in lines {
            match line {
                Line::Ticket(t) => put_ticket(tx, &t)?,
                Line::Message(m) => {
                    if let Some(id) = &m.message_id {
                        tx.index_message_id(id, m.ticket)?;
                    }
                    tx.ws.insert(
                        T::Messages as u8,
                        &seq_key(m.ticket, m.seq),
                        tx_encode("message", &m)?,
                    );
                }
                Line::Event(e) => tx.ws.insert(
                    T::Events as u8,
                    &seq_key(e.ticket, e.seq),
                    tx_encode("event", &e.entry)?,
                ),
                Line::Attachment(a) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(&a.base64)
                        .map_err(|e| {
                            StoreError::Transfer(format!("cannot decode an attachment: {e}"))
                        })?;
                    tx.put_blob(&a.sha256, &bytes)?;
                }
                Line::Header(_) | Line::End(_) => {}
            }
        }
        Ok(())
    })
}

fn put_ticket(tx: &super::Tx<'_>, t: &Ticket) -> Result<(), StoreError> {
    if tx.ticket_exists(t.id)? {
        return Err(StoreError::Transfer(format!(
            "cannot import ticket {}: the store already holds it",
            t.id
        )));
    }
    tx.put_ticket(t)
}
