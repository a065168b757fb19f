//! `deskgate export --jsonl`: the tickets, their messages, audit trail and
//! attachments as JSON lines, for moving to another system (a backup is for
//! restoring deskgate itself; it is not meant to be read).
//!
//! One JSON object per line, named by its only key:
//!
//! ```text
//! {"header":{"format":"deskgate-export","version":1,"exported_at":"…"}}
//! {"ticket":{…}}            every ticket, by number
//! {"message":{…}}           every message (it names its ticket and seq)
//! {"event":{"ticket":1000,"seq":0,"entry":{…}}}
//! {"attachment":{"sha256":"…","base64":"…"}}   each content once
//! {"end":{"tickets":…,"messages":…,"events":…,"attachments":…}}
//! ```
//!
//! The last line's counts let an import tell a whole file from a cut one.
//! Raw mail, the outbox and the bookkeeping of ingest are not exported.
//! Commits wait while an export runs, so it is one consistent state.

use std::io::{BufWriter, Write};
use std::path::Path;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::db::Db;
use super::error::StoreError;
use super::layout::{decode, T};
use super::records::{Event, MessageRecord, Ticket, TicketId, TimerSlot};

pub(super) const FORMAT_NAME: &str = "deskgate-export";
pub(super) const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Header {
    pub format: String,
    pub version: u32,
    pub exported_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventLine {
    pub ticket: TicketId,
    pub seq: u32,
    pub entry: Event,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AttachmentLine {
    pub sha256: String,
    pub base64: String,
}

/// How many of each an export wrote or an import read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSummary {
    pub tickets: u64,
    pub messages: u64,
    pub events: u64,
    pub attachments: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Line {
    Header(Header),
    Ticket(Box<Ticket>),
    Message(Box<MessageRecord>),
    Event(Box<EventLine>),
    Attachment(AttachmentLine),
    End(TransferSummary),
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Transfer(format!("cannot {what} {}: {e}", path.display()))
}

/// Writes the export to `path` (through a temporary file renamed into place,
/// so a failed export never leaves a half file under the real name).
pub fn write(db: &Db, path: &Path, now: DateTime<Utc>) -> Result<TransferSummary, StoreError> {
    let tmp = path.with_extension("partial");
    let file = std::fs::File::create(&tmp).map_err(|e| io_error("create", &tmp, e))?;
    let mut out = BufWriter::new(file);
    let result = db.transact(|_nothing_written| {
        let mut put = |line: &Line| -> Result<(), StoreError> {
            serde_json::to_writer(&mut out, line)
                .map_err(|e| io_error("write", &tmp, e))
                .and_then(|()| out.write_all(b"\n").map_err(|e| io_error("write", &tmp, e)))
        };
        put(&Line::Header(Header {
            format: FORMAT_NAME.into(),
            version: VERSION,
            exported_at: now,
        }))?;
        let mut n = TransferSummary::default();
        for item in db.iter(T::Tickets as u8) {
            let mut t: Ticket = decode("ticket", &item?.1)?;
            // Where this store's timer index files it: nothing another
            // system (or this one, importing) can use.
            t.timer_due_ms = TimerSlot(None);
            put(&Line::Ticket(Box::new(t)))?;
            n.tickets += 1;
        }
        for item in db.iter(T::Messages as u8) {
            let m: MessageRecord = decode("message", &item?.1)?;
            put(&Line::Message(Box::new(m)))?;
            n.messages += 1;
        }
        for item in db.iter(T::Events as u8) {
            let (k, v) = item?;
            let (Some(ticket), Some(seq)) = (
                k.get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes),
                k.get(8..12)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes),
            ) else {
                continue;
            };
            let entry: Event = decode("event", &v)?;
            put(&Line::Event(Box::new(EventLine { ticket, seq, entry })))?;
            n.events += 1;
        }
        for item in db.iter(T::Blobs as u8) {
            let (k, v) = item?;
            let sha256 = String::from_utf8_lossy(&k).into_owned();
            // An attachment read from its raw mail goes out as bytes too.
            let Some(bytes) = super::blobs::resolve(db, &sha256, &v)? else {
                continue;
            };
            put(&Line::Attachment(AttachmentLine {
                sha256,
                base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
            }))?;
            n.attachments += 1;
        }
        put(&Line::End(n.clone()))?;
        Ok::<_, StoreError>(n)
    });
    let finish = |n: TransferSummary| -> Result<TransferSummary, StoreError> {
        let file = out.into_inner().map_err(|e| io_error("write", &tmp, e))?;
        file.sync_all().map_err(|e| io_error("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io_error("rename into", path, e))?;
        Ok(n)
    };
    match result {
        Ok(n) => finish(n),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
